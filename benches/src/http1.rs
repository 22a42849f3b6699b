//! Minimal clients for the server benches: keep-alive HTTP/1.1 requests
//! ([`Conn`]) and a socket.io subscriber over a raw WebSocket
//! ([`SocketIo`]), hand-written on tokio's TCP so the benches measure the
//! server, not a client library. Errors are returned as text (a bench
//! aborts on them); nothing here panics on what a server sends.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive HTTP/1.1 connection that sends a request and reads its
/// answer, one after the other.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects (no Nagle).
    ///
    /// # Errors
    ///
    /// The connection cannot be made.
    pub async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` (complete bytes) and returns the answer's status and
    /// body. The answer must have a `Content-Length` (the server's JSON
    /// answers do) and must not close the connection.
    ///
    /// # Errors
    ///
    /// I/O errors, a malformed answer, or one that closes the connection.
    pub async fn call(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|e| e.to_string())?;
        let status: u16 = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        let mut length = None;
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("connection") && v.trim() == "close" {
                    return Err("the server closes the connection".into());
                }
            }
        }
        let length = length.ok_or_else(|| format!("no Content-Length: {head:?}"))?;
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        if self.buf.len() > head_end + length {
            return Err("more bytes than one answer".into());
        }
        Ok((status, self.buf[head_end..].to_vec()))
    }

    /// `method path` with a JSON `body` (may be empty): the status and the
    /// answer parsed as JSON (`/metrics`' text comes back as a JSON string).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), or an answer that is not JSON.
    pub async fn json(
        &mut self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, Value), String> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (status, bytes) = self.call(req.as_bytes()).await?;
        let v = if path.ends_with("/metrics") {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: {e}"))?
        };
        Ok((status, v))
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 4096];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// A socket.io client on a raw WebSocket (Engine.IO 4), enough to
/// subscribe to a channel and read what it receives.
#[derive(Debug)]
pub struct SocketIo {
    stream: TcpStream,
    buf: Vec<u8>,
    nsp: String,
}

impl SocketIo {
    /// Opens `ws://addr/{app}/?EIO=4&transport=websocket&apiKey=KEY`,
    /// connects to the app's namespace and subscribes to `channel`
    /// (`SUB_ON` … `SUB_READY`).
    ///
    /// # Errors
    ///
    /// Anything the server answers other than what the protocol says.
    pub async fn subscribe(
        addr: SocketAddr,
        app: &str,
        key: &str,
        channel: &str,
    ) -> Result<Self, String> {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("ws connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let req = format!(
            "GET /{app}/?EIO=4&transport=websocket&apiKey={key} HTTP/1.1\r\n\
             Host: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("ws handshake: {e}"))?;
        let mut buf = Vec::new();
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("ws handshake: {e}"))?;
            if n == 0 {
                return Err("closed during the WebSocket handshake".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        if !buf.starts_with(b"HTTP/1.1 101") {
            return Err(format!(
                "WebSocket refused: {}",
                String::from_utf8_lossy(&buf[..header_end])
            ));
        }
        buf.drain(..header_end);
        let mut ws = Self {
            stream,
            buf,
            nsp: format!("/{app}"),
        };
        let open = ws
            .recv_text()
            .await?
            .ok_or("closed before the open packet")?;
        if !open.starts_with('0') {
            return Err(format!("not an Engine.IO open packet: {open}"));
        }
        let nsp = format!("40{},", ws.nsp);
        ws.send_text(&nsp).await?;
        let answer = ws.recv_text().await?.ok_or("closed before the namespace")?;
        if !answer.starts_with(&nsp) {
            return Err(format!("namespace refused: {answer}"));
        }
        let sub = json!(["SUB_ON", {"id": "s", "name": "PUB_SUB_MESSAGES",
                                     "options": {"channel": channel}}]);
        ws.send_text(&format!("42{},{sub}", ws.nsp)).await?;
        let ready = ws.recv_text().await?.ok_or("closed before SUB_READY")?;
        if !ready.contains("SUB_READY") {
            return Err(format!("subscription refused: {ready}"));
        }
        Ok(ws)
    }

    /// The next socket.io event packet's text (`42/app,[…]`), answering
    /// Engine.IO pings; `None` once the server closed.
    ///
    /// # Errors
    ///
    /// A read error, or a frame that is not UTF-8 text.
    pub async fn next_event(&mut self) -> Result<Option<String>, String> {
        loop {
            let Some(text) = self.recv_text().await? else {
                return Ok(None);
            };
            if text.starts_with("42") {
                return Ok(Some(text));
            }
        }
    }

    async fn send_text(&mut self, text: &str) -> Result<(), String> {
        let payload = text.as_bytes();
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("ws write: {e}"))
    }

    /// The next text frame (answering Engine.IO pings), or `None` on close.
    async fn recv_text(&mut self) -> Result<Option<String>, String> {
        loop {
            while let Some((opcode, payload)) = self.take_frame() {
                match opcode {
                    0x1 => {
                        let text = String::from_utf8(payload)
                            .map_err(|_| "a text frame that is not UTF-8".to_owned())?;
                        if text == "2" {
                            self.send_text("3").await?;
                            continue;
                        }
                        return Ok(Some(text));
                    }
                    0x8 => return Ok(None),
                    _ => {}
                }
            }
            // Straight into `buf`: no chunk on the future's stack (a bench
            // holds 10k of these futures at once).
            self.buf.reserve(4096);
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| format!("ws read: {e}"))?;
            if n == 0 {
                return Ok(None);
            }
        }
    }

    fn take_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let (len, off): (usize, usize) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX),
                    10,
                )
            }
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < off.saturating_add(len) {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let payload = b[off..off + len].to_vec();
        self.buf.drain(..off + len);
        Some((opcode, payload))
    }
}
