//! The connection's byte stream under h2: TLS over a buffered TCP socket,
//! shaped so that many small frames leave in one TLS record and one write.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How much of the socket is read at once, below TLS: rustls asks for
/// 4 KB at a time, so without a buffer a 16 KB TLS record (a server's many
/// answers together) takes four reads from the socket. About two full
/// records: the buffer lives as long as the connection (one per pooled
/// connection, per gateway, per app), so it is kept small.
pub(crate) const READ_BUFFER: usize = 32 * 1024;

/// The TCP socket under TLS.
pub(crate) type Socket = BufReader<TcpStream>;

/// The TLS stream h2 runs on.
///
/// It tells h2 it has no vectored writes. h2 then copies a DATA frame's
/// payload of up to 1 KB into its 16 KB write buffer (instead of up to
/// 256 bytes) and flushes when the buffer is full or the connection has
/// nothing more to send; otherwise each request body over 256 bytes (an
/// FCM message with its 152-character token) is written on its own:
/// its own TLS record (an encryption, a 22-byte overhead) and its own
/// system call.
pub(crate) struct Coalesced(pub(crate) TlsStream<Socket>);

impl AsyncRead for Coalesced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Coalesced {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
