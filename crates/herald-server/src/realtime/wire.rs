//! A direct session's connection: a TCP socket, plain or under TLS, read
//! and written without waiting (the reader and the writers never block on
//! it; readiness comes from the socket, whatever the layer).
//!
//! Under TLS the session owns rustls' [`ServerConnection`] (taken from
//! tokio-rustls' stream at the upgrade) and drives it sans-IO: bytes read
//! from the socket go into it and come out as plaintext; frames go into
//! it and come out as TLS records, written while the socket takes them.
//! rustls bounds what it buffers (64 KiB by default), so what waits is
//! still the session's own frame buffer, counted in its budget.

use std::io::{self, Read, Write};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use rustls::ServerConnection;
use tokio::net::TcpStream;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 4096;

/// The peer, after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Bytes (maybe none) were added; the connection is open.
    Open,
    /// The peer closed its side (end of stream, or TLS `close_notify`).
    Closed,
}

/// A direct session's connection.
#[derive(Debug)]
pub(crate) struct Wire {
    stream: TcpStream,
    /// Boxed: rustls' connection is large, and most sessions have none.
    tls: Option<Box<Mutex<ServerConnection>>>,
}

/// `std::io` over a tokio socket's non-blocking calls (`WouldBlock` when
/// it is not ready: tokio then waits for its next readiness event).
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Wire {
    /// A plain TCP connection.
    pub(crate) fn plain(stream: TcpStream) -> Self {
        Self { stream, tls: None }
    }

    /// A TLS connection, its handshake done.
    pub(crate) fn tls(stream: TcpStream, tls: ServerConnection) -> Self {
        Self {
            stream,
            tls: Some(Box::new(Mutex::new(tls))),
        }
    }

    fn lock(tls: &Mutex<ServerConnection>) -> MutexGuard<'_, ServerConnection> {
        tls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the socket may have bytes to read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Waits until the socket may take bytes.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }

    /// Registers `cx`'s waker for the socket's next write readiness
    /// (`Ready` if it is writable already).
    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_write_ready(cx)
    }

    /// Appends what can be read now, as plaintext, to `buf`.
    pub(crate) fn read(&self, buf: &mut Vec<u8>) -> io::Result<Peer> {
        // On the stack only while reading (never kept across waits).
        let mut chunk = [0u8; READ_CHUNK];
        let Some(tls) = &self.tls else {
            return match self.stream.try_read(&mut chunk) {
                Ok(0) => Ok(Peer::Closed),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    Ok(Peer::Open)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Peer::Open),
                Err(e) => Err(e),
            };
        };
        let mut tls = Self::lock(tls);
        let mut eof = false;
        match tls.read_tls(&mut NonBlocking(&self.stream)) {
            Ok(0) => eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        tls.process_new_packets().map_err(io::Error::other)?;
        loop {
            match tls.reader().read(&mut chunk) {
                // `close_notify`.
                Ok(0) => return Ok(Peer::Closed),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(if eof { Peer::Closed } else { Peer::Open })
    }

    /// Whether TLS has records of its own to send (answers to what it
    /// read): the session's writer should run.
    pub(crate) fn wants_write(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| Self::lock(t).wants_write())
    }

    /// Writes `bytes` from `*at` on without waiting, advancing `*at`:
    /// `Ok(true)` once all is written (under TLS: handed to rustls and its
    /// records written), `Ok(false)` when the socket takes no more.
    pub(crate) fn write(&self, bytes: &[u8], at: &mut usize) -> io::Result<bool> {
        let Some(tls) = &self.tls else {
            while *at < bytes.len() {
                match self.stream.try_write(&bytes[*at..]) {
                    Ok(n) => *at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            return Ok(true);
        };
        let mut tls = Self::lock(tls);
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut NonBlocking(&self.stream)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            if *at == bytes.len() {
                return Ok(true);
            }
            // Encrypted at once, up to rustls' buffer limit.
            let n = tls.writer().write(&bytes[*at..])?;
            if n == 0 {
                // Unreachable: a full buffer wants writing.
                return Ok(false);
            }
            *at += n;
        }
    }

    /// Under TLS, queues `close_notify` (written by the next `write`).
    pub(crate) fn close_notify(&self) {
        if let Some(tls) = &self.tls {
            Self::lock(tls).send_close_notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_connection_carries_no_tls_state_inline() {
        // rustls' connection is ~1 KB: inline, every plain session (most
        // of them) would pay for it.
        assert!(
            std::mem::size_of::<Wire>() <= 48,
            "{} bytes",
            std::mem::size_of::<Wire>()
        );
        assert!(std::mem::size_of::<ServerConnection>() > 200);
    }
}
