//! RFC 6455 WebSocket framing, server side, sans-IO.
//!
//! [`Decoder`] turns the client's bytes into [`Incoming`] messages and
//! control frames and enforces the framing rules of RFC 6455 §5 (masking,
//! reserved bits and opcodes, control frame limits, fragmentation, close
//! codes) and a message size limit. [`header`], [`frame`] and
//! [`close_frame`] write the server's (unmasked) frames, and [`accept_key`]
//! answers the opening handshake (§4.2.2).
//!
//! No IO and no clock: the caller reads and writes the socket, answers
//! pings, closes on errors (with [`WsError::close_code`]) and times out
//! silent peers.
//!
//! # Usage
//!
//! Append what the socket read to a buffer, then call [`Decoder::decode`]
//! until it returns `Ok((0, None))`, removing the bytes it consumed after
//! each call. A frame not yet complete stays in the buffer; a fragmented
//! message's completed frames are held by the decoder ([`Decoder::held`]).
//!
//! # Not handled
//!
//! Extensions (none is ever negotiated: any RSV bit is an error) and
//! subprotocols. Text is checked for UTF-8 once the message is complete,
//! not fragment by fragment.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Opcode of a frame continuing a fragmented message.
const CONTINUATION: u8 = 0x0;
/// Opcode of a text frame (the payload is UTF-8).
pub(crate) const TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub(crate) const BINARY: u8 = 0x2;
/// Opcode of a close frame (an optional status code and UTF-8 reason).
pub(crate) const CLOSE: u8 = 0x8;
/// Opcode of a ping frame (answered with a pong carrying its payload).
pub(crate) const PING: u8 = 0x9;
/// Opcode of a pong frame.
pub(crate) const PONG: u8 = 0xA;

/// The largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

/// The GUID the handshake appends to the client's key (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (base64 of
/// SHA-1 of key + the RFC's GUID, RFC 6455 §4.2.2). The key is used as
/// given: the caller checks it (24 characters of base64) if it cares.
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    STANDARD.encode(ctx.finish())
}

/// One complete message (fragments joined) or control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A text message (checked UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping and its payload (at most 125 bytes), to be echoed in a pong.
    Ping(Vec<u8>),
    /// A pong and its payload (at most 125 bytes).
    Pong(Vec<u8>),
    /// A close frame: its status code (None when the payload is empty) and reason.
    Close(Option<u16>, String),
}

/// Why the client's bytes are not a valid WebSocket stream; the connection
/// is then closed with [`close_code()`](Self::close_code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WsError {
    /// A framing rule was broken (1002); the text says which.
    Protocol(&'static str),
    /// A text message or close reason is not UTF-8 (1007).
    InvalidUtf8,
    /// A message (or one frame's declared length) is over the limit (1009).
    TooBig,
}

impl WsError {
    /// The status code of the close frame that answers this error (RFC 6455
    /// §7.4.1): 1002 (protocol error), 1007 (invalid payload data) or 1009
    /// (message too big).
    pub(crate) fn close_code(self) -> u16 {
        match self {
            Self::Protocol(_) => 1002,
            Self::InvalidUtf8 => 1007,
            Self::TooBig => 1009,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(rule) => write!(f, "WebSocket protocol error: {rule}"),
            Self::InvalidUtf8 => {
                f.write_str("a WebSocket text message or close reason is not valid UTF-8")
            }
            Self::TooBig => f.write_str("a WebSocket message is larger than the server accepts"),
        }
    }
}

impl std::error::Error for WsError {}

/// A frame header read (and checked) from the front of a buffer.
#[derive(Debug)]
struct Head {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Payload length: checked against the limits, so it fits in memory.
    len: usize,
    /// Header length: 2, plus 2 or 8 for an extended length, plus 4 (mask).
    size: usize,
}

/// Reassembles client frames into messages.
#[derive(Debug)]
pub(crate) struct Decoder {
    /// The largest message accepted, in bytes.
    max_message: usize,
    /// The fragmented message in progress: its opcode (text or binary) and
    /// its bytes so far (unmasked).
    partial: Option<(u8, Vec<u8>)>,
}

impl Decoder {
    /// Messages longer than `max_message` bytes (the sum of a fragmented
    /// message's frames) are refused with [`WsError::TooBig`]. Control
    /// frames have their own limit (125 bytes) and do not count.
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            max_message,
            partial: None,
        }
    }

    /// Reads frames from the front of `buf`: returns how many bytes it
    /// consumed (whole frames only; a frame not yet complete is left in
    /// `buf`) and the first message or control frame it completed, if any
    /// (it stops right after it). `Ok((0, None))`: more bytes are needed.
    /// Frames that only add to a fragmented message are consumed and kept
    /// inside the decoder.
    ///
    /// # Errors
    ///
    /// A broken framing rule, as soon as the bytes that break it are in
    /// `buf` (a declared length over the limit is refused once the header
    /// is read, before the payload arrives). After an `Err` the decoder
    /// must not be used again: close the connection with
    /// [`WsError::close_code`].
    pub(crate) fn decode(&mut self, buf: &[u8]) -> Result<(usize, Option<Incoming>), WsError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            let Some(head) = self.head(rest)? else {
                return Ok((used, None));
            };
            let Some(payload) = rest.get(head.size..).and_then(|p| p.get(..head.len)) else {
                return Ok((used, None));
            };
            used += head.size + head.len;
            if let Some(incoming) = self.complete(&head, payload)? {
                return Ok((used, Some(incoming)));
            }
        }
    }

    /// Bytes held for a fragmented message in progress (for the caller's
    /// memory accounting). At most `max_message`.
    pub(crate) fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |(_, bytes)| bytes.len())
    }

    /// Reads and checks the header at the front of `buf`: `Ok(None)` while
    /// it is incomplete. Each rule is checked as soon as the bytes it needs
    /// are there.
    fn head(&self, buf: &[u8]) -> Result<Option<Head>, WsError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        let control = opcode & 0x08 != 0;
        if b0 & 0x70 != 0 {
            return Err(WsError::Protocol(
                "a reserved bit (RSV1-3) is set, but no extension was negotiated",
            ));
        }
        match opcode {
            CONTINUATION if self.partial.is_none() => {
                return Err(WsError::Protocol(
                    "a continuation frame arrived without a fragmented message in progress",
                ));
            }
            TEXT | BINARY if self.partial.is_some() => {
                return Err(WsError::Protocol(
                    "a new data frame arrived before the fragmented message in progress ended",
                ));
            }
            CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG => {}
            _ => return Err(WsError::Protocol("a frame has a reserved opcode")),
        }
        if control && !fin {
            return Err(WsError::Protocol(
                "a control frame is fragmented (its FIN bit is clear)",
            ));
        }
        if b1 & 0x80 == 0 {
            return Err(WsError::Protocol("a client frame is not masked"));
        }
        let (len, at) = match b1 & 0x7f {
            126 => match buf.get(2..4) {
                Some(&[hi, lo]) => (u64::from(u16::from_be_bytes([hi, lo])), 4),
                _ => return Ok(None),
            },
            127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(bytes) => (u64::from_be_bytes(bytes), 10),
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        if len >> 63 != 0 {
            return Err(WsError::Protocol(
                "a frame's 64-bit payload length has its most significant bit set",
            ));
        }
        let len = if control {
            match usize::try_from(len) {
                Ok(len) if len <= MAX_CONTROL => len,
                _ => {
                    return Err(WsError::Protocol(
                        "a control frame's payload is longer than 125 bytes",
                    ));
                }
            }
        } else {
            let room = self.max_message.saturating_sub(self.held());
            match usize::try_from(len) {
                Ok(len) if len <= room => len,
                _ => return Err(WsError::TooBig),
            }
        };
        let Some(&[m0, m1, m2, m3]) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        Ok(Some(Head {
            fin,
            opcode,
            mask: [m0, m1, m2, m3],
            len,
            size: at + 4,
        }))
    }

    /// Takes in a complete frame (`payload` still masked): the message or
    /// control frame it completes, if any.
    fn complete(&mut self, head: &Head, payload: &[u8]) -> Result<Option<Incoming>, WsError> {
        let unmasked = || {
            let mut bytes = payload.to_vec();
            unmask(&mut bytes, head.mask);
            bytes
        };
        match head.opcode {
            PING => Ok(Some(Incoming::Ping(unmasked()))),
            PONG => Ok(Some(Incoming::Pong(unmasked()))),
            CLOSE => close(&unmasked()).map(Some),
            CONTINUATION => {
                let Some((_, bytes)) = self.partial.as_mut() else {
                    // `head` refused this frame already.
                    return Err(WsError::Protocol(
                        "a continuation frame arrived without a fragmented message in progress",
                    ));
                };
                let start = bytes.len();
                bytes.extend_from_slice(payload);
                unmask(&mut bytes[start..], head.mask);
                match (head.fin, self.partial.take()) {
                    (true, Some((kind, bytes))) => message(kind, bytes).map(Some),
                    (_, partial) => {
                        self.partial = partial;
                        Ok(None)
                    }
                }
            }
            kind if head.fin => message(kind, unmasked()).map(Some),
            kind => {
                self.partial = Some((kind, unmasked()));
                Ok(None)
            }
        }
    }
}

/// A complete data message of opcode `kind` (text or binary).
fn message(kind: u8, bytes: Vec<u8>) -> Result<Incoming, WsError> {
    if kind == TEXT {
        String::from_utf8(bytes)
            .map(Incoming::Text)
            .map_err(|_| WsError::InvalidUtf8)
    } else {
        Ok(Incoming::Binary(bytes))
    }
}

/// A close frame's (unmasked) payload: nothing, or a status code a peer
/// may send (RFC 6455 §7.4) and a UTF-8 reason.
fn close(payload: &[u8]) -> Result<Incoming, WsError> {
    match *payload {
        [] => Ok(Incoming::Close(None, String::new())),
        [_] => Err(WsError::Protocol(
            "a close frame's payload is 1 byte long (a status code takes 2)",
        )),
        [hi, lo, ref reason @ ..] => {
            let code = u16::from_be_bytes([hi, lo]);
            if !matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999) {
                return Err(WsError::Protocol(
                    "a close frame has a status code a peer may not send",
                ));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Incoming::Close(Some(code), reason.to_owned()))
        }
    }
}

/// XORs `data` with the rotating 4-byte `mask` (RFC 6455 §5.3), the mask's
/// first byte on `data[0]`; 8 bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8: the mask starts over.
    for (byte, m) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Appends the header of an unmasked, final server frame (FIN set) of
/// `opcode` whose payload is `len` bytes (2, 4 or 10 bytes of header: the
/// shortest length encoding). The payload follows, written by the caller.
pub(crate) fn header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    debug_assert!(opcode <= 0x0f, "opcode {opcode:#x} does not fit in 4 bits");
    let first = 0x80 | (opcode & 0x0f);
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short @ 0..=125), _) => out.extend_from_slice(&[first, short]),
        (_, Ok(medium)) => {
            out.extend_from_slice(&[first, 126]);
            out.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            out.extend_from_slice(&[first, 127]);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Appends a whole unmasked, final server frame (header + payload).
pub(crate) fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` (and no reason).
pub(crate) fn close_frame(out: &mut Vec<u8>, code: u16) {
    frame(out, CLOSE, &code.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;

    /// A masked client frame: `first` is the first byte (FIN, RSV, opcode);
    /// the length gets its shortest encoding. Written apart from
    /// [`header`], so the two are checked against each other.
    fn client_frame(first: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend((n as u64).to_be_bytes());
            }
        }
        out.extend(mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const FIN: u8 = 0x80;

    /// Decodes `bytes` given at once: what comes out until more bytes are
    /// needed, and how many bytes are left unconsumed.
    fn decode_all(max: usize, bytes: &[u8]) -> Result<(Vec<Incoming>, usize), WsError> {
        let mut decoder = Decoder::new(max);
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let (used, incoming) = decoder.decode(&bytes[at..])?;
            assert!(used <= bytes.len() - at);
            at += used;
            match incoming {
                Some(incoming) => out.push(incoming),
                None if used == 0 => return Ok((out, bytes.len() - at)),
                None => {}
            }
        }
    }

    /// The error decoding `bytes` ends with (a test failure if none).
    fn error_of(bytes: &[u8]) -> WsError {
        decode_all(1 << 20, bytes).expect_err("an error")
    }

    fn only(bytes: &[u8]) -> Incoming {
        let (mut out, left) = decode_all(1 << 20, bytes).expect("valid frames");
        assert_eq!((out.len(), left), (1, 0), "one message, all bytes: {out:?}");
        out.remove(0)
    }

    #[test]
    fn the_handshake_sample_key_gets_the_rfc_accept_value() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn the_rfc_masked_hello_is_one_text_message() {
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            Decoder::new(16).decode(&bytes),
            Ok((11, Some(Incoming::Text("Hello".into()))))
        );
    }

    #[test]
    fn the_rfc_fragmented_hello_is_joined_into_one_text_message() {
        let mut bytes = client_frame(TEXT, MASK, b"Hel");
        bytes.extend(client_frame(FIN | CONTINUATION, [1, 2, 3, 4], b"lo"));
        let mut decoder = Decoder::new(16);
        // The first frame is consumed and held; the second completes it.
        assert_eq!(decoder.decode(&bytes[..9]), Ok((9, None)));
        assert_eq!(decoder.held(), 3);
        assert_eq!(
            decoder.decode(&bytes[9..]),
            Ok((8, Some(Incoming::Text("Hello".into()))))
        );
        assert_eq!(decoder.held(), 0);
    }

    #[test]
    fn the_rfc_masked_ping_and_pong_are_control_frames() {
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(only(&pong), Incoming::Pong(b"Hello".to_vec()));
        let mut ping = pong;
        ping[0] = 0x89;
        assert_eq!(only(&ping), Incoming::Ping(b"Hello".to_vec()));
    }

    #[test]
    fn the_rfc_256_byte_binary_frame_uses_the_16_bit_length() {
        let payload: Vec<u8> = (0..=255).collect();
        let bytes = client_frame(FIN | BINARY, MASK, &payload);
        assert_eq!(bytes[..4], [0x82, 0xfe, 0x01, 0x00]);
        assert_eq!(only(&bytes), Incoming::Binary(payload));
    }

    #[test]
    fn the_rfc_64_kib_binary_frame_uses_the_64_bit_length() {
        let payload: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let bytes = client_frame(FIN | BINARY, MASK, &payload);
        assert_eq!(bytes[..10], [0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0, 0]);
        assert_eq!(only(&bytes), Incoming::Binary(payload));
    }

    #[test]
    fn server_frames_match_the_rfc_examples() {
        let mut out = Vec::new();
        frame(&mut out, TEXT, b"Hello");
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        header(&mut out, BINARY, 256);
        assert_eq!(out, [0x82, 0x7e, 0x01, 0x00]);
        out.clear();
        header(&mut out, BINARY, 65536);
        assert_eq!(out, [0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0]);
        out.clear();
        close_frame(&mut out, 1000);
        assert_eq!(out, [0x88, 0x02, 0x03, 0xe8]);
    }

    #[test]
    fn a_frame_fed_one_byte_at_a_time_completes_only_at_its_last_byte() {
        let bytes = client_frame(FIN | BINARY, MASK, &[7; 300]);
        let mut decoder = Decoder::new(1024);
        for end in 0..bytes.len() {
            assert_eq!(decoder.decode(&bytes[..end]), Ok((0, None)), "at {end}");
        }
        assert_eq!(
            decoder.decode(&bytes),
            Ok((bytes.len(), Some(Incoming::Binary(vec![7; 300]))))
        );
    }

    #[test]
    fn decode_stops_right_after_the_first_message() {
        let mut bytes = client_frame(FIN | TEXT, MASK, b"one");
        let first = bytes.len();
        bytes.extend(client_frame(FIN | TEXT, MASK, b"two"));
        let mut decoder = Decoder::new(16);
        assert_eq!(
            decoder.decode(&bytes),
            Ok((first, Some(Incoming::Text("one".into()))))
        );
        assert_eq!(
            decoder.decode(&bytes[first..]),
            Ok((bytes.len() - first, Some(Incoming::Text("two".into()))))
        );
    }

    #[test]
    fn control_frames_between_fragments_come_out_before_the_message() {
        let mut bytes = client_frame(BINARY, MASK, b"ab");
        bytes.extend(client_frame(FIN | PING, [9; 4], b"p"));
        bytes.extend(client_frame(CONTINUATION, MASK, b"cd"));
        bytes.extend(client_frame(FIN | PONG, [8; 4], b""));
        bytes.extend(client_frame(FIN | CLOSE, [7; 4], &[0x03, 0xe8]));
        bytes.extend(client_frame(FIN | CONTINUATION, MASK, b"e"));
        assert_eq!(
            decode_all(16, &bytes),
            Ok((
                vec![
                    Incoming::Ping(b"p".to_vec()),
                    Incoming::Pong(Vec::new()),
                    Incoming::Close(Some(1000), String::new()),
                    Incoming::Binary(b"abcde".to_vec()),
                ],
                0
            ))
        );
    }

    #[test]
    fn held_counts_the_fragmented_message_in_progress() {
        let mut decoder = Decoder::new(64);
        let first = client_frame(TEXT, MASK, b"12345");
        let ping = client_frame(FIN | PING, MASK, b"ping bytes do not count");
        let second = client_frame(CONTINUATION, MASK, b"678");
        assert_eq!(decoder.decode(&first), Ok((first.len(), None)));
        assert_eq!(decoder.held(), 5);
        assert!(matches!(decoder.decode(&ping), Ok((_, Some(_)))));
        assert_eq!(decoder.held(), 5);
        assert_eq!(decoder.decode(&second), Ok((second.len(), None)));
        assert_eq!(decoder.held(), 8);
    }

    #[test]
    fn empty_messages_and_empty_fragments_are_accepted() {
        let mut bytes = client_frame(FIN | TEXT, MASK, b"");
        bytes.extend(client_frame(BINARY, MASK, b""));
        bytes.extend(client_frame(CONTINUATION, MASK, b""));
        bytes.extend(client_frame(FIN | CONTINUATION, MASK, b""));
        assert_eq!(
            decode_all(0, &bytes),
            Ok((
                vec![Incoming::Text(String::new()), Incoming::Binary(Vec::new())],
                0
            ))
        );
    }

    #[test]
    fn a_non_minimal_length_encoding_is_accepted() {
        let mut medium = vec![FIN | TEXT, 0x80 | 126, 0, 2, 0, 0, 0, 0];
        medium.extend(b"hi");
        assert_eq!(only(&medium), Incoming::Text("hi".into()));
        let mut long = vec![FIN | TEXT, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        long.extend(b"hi");
        assert_eq!(only(&long), Incoming::Text("hi".into()));
    }

    #[test]
    fn a_reserved_bit_is_a_protocol_error() {
        for rsv in [0x40, 0x20, 0x10] {
            assert_eq!(
                error_of(&client_frame(FIN | rsv | TEXT, MASK, b"x")),
                WsError::Protocol(
                    "a reserved bit (RSV1-3) is set, but no extension was negotiated"
                ),
                "RSV bit {rsv:#x}"
            );
        }
    }

    #[test]
    fn an_unmasked_client_frame_is_a_protocol_error() {
        // RFC 6455 §5.7's unmasked "Hello": what a server sends, not a client.
        assert_eq!(
            error_of(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
            WsError::Protocol("a client frame is not masked")
        );
    }

    #[test]
    fn a_reserved_opcode_is_a_protocol_error() {
        for opcode in (0x3..=0x7).chain(0xb..=0xf) {
            assert_eq!(
                error_of(&client_frame(FIN | opcode, MASK, b"")),
                WsError::Protocol("a frame has a reserved opcode"),
                "opcode {opcode:#x}"
            );
        }
    }

    #[test]
    fn a_fragmented_control_frame_is_a_protocol_error() {
        for opcode in [CLOSE, PING, PONG] {
            assert_eq!(
                error_of(&client_frame(opcode, MASK, b"")),
                WsError::Protocol("a control frame is fragmented (its FIN bit is clear)"),
                "opcode {opcode:#x}"
            );
        }
    }

    #[test]
    fn a_control_frame_over_125_bytes_is_a_protocol_error() {
        let bytes = client_frame(FIN | PING, MASK, &[0; 126]);
        // Refused at the header.
        assert_eq!(
            Decoder::new(1024).decode(&bytes[..4]),
            Err(WsError::Protocol(
                "a control frame's payload is longer than 125 bytes"
            ))
        );
    }

    #[test]
    fn a_continuation_without_a_message_in_progress_is_a_protocol_error() {
        assert_eq!(
            error_of(&client_frame(FIN | CONTINUATION, MASK, b"x")),
            WsError::Protocol(
                "a continuation frame arrived without a fragmented message in progress"
            )
        );
    }

    #[test]
    fn a_new_data_frame_inside_a_fragmented_message_is_a_protocol_error() {
        for opcode in [TEXT, BINARY] {
            let mut bytes = client_frame(TEXT, MASK, b"a");
            bytes.extend(client_frame(FIN | opcode, MASK, b"b"));
            assert_eq!(
                error_of(&bytes),
                WsError::Protocol(
                    "a new data frame arrived before the fragmented message in progress ended"
                ),
                "opcode {opcode:#x}"
            );
        }
    }

    #[test]
    fn a_64_bit_length_with_its_top_bit_set_is_a_protocol_error() {
        let bytes = [FIN | BINARY, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            Decoder::new(usize::MAX).decode(&bytes),
            Err(WsError::Protocol(
                "a frame's 64-bit payload length has its most significant bit set"
            ))
        );
    }

    #[test]
    fn a_frame_over_the_limit_is_too_big_as_soon_as_its_header_is_read() {
        let bytes = client_frame(FIN | BINARY, MASK, &[0; 200]);
        // The type byte and the 16-bit length only: no mask, no payload yet.
        assert_eq!(Decoder::new(199).decode(&bytes[..4]), Err(WsError::TooBig));
        assert_eq!(Decoder::new(199).decode(&bytes[..3]), Ok((0, None)));
    }

    #[test]
    fn a_fragmented_message_over_the_limit_is_too_big_at_the_crossing_fragments_header() {
        let mut decoder = Decoder::new(10);
        let first = client_frame(TEXT, MASK, b"123456");
        assert_eq!(decoder.decode(&first), Ok((first.len(), None)));
        let second = client_frame(FIN | CONTINUATION, MASK, b"12345");
        assert_eq!(decoder.decode(&second[..2]), Err(WsError::TooBig));
    }

    #[test]
    fn a_message_exactly_at_the_limit_is_accepted() {
        let mut bytes = client_frame(TEXT, MASK, b"123456");
        bytes.extend(client_frame(FIN | CONTINUATION, MASK, b"7890"));
        assert_eq!(
            decode_all(10, &bytes),
            Ok((vec![Incoming::Text("1234567890".into())], 0))
        );
    }

    #[test]
    fn lengths_near_u64_max_neither_overflow_nor_get_buffered() {
        let huge = [
            FIN | BINARY,
            0x80 | 127,
            0x7f,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ];
        assert_eq!(Decoder::new(1 << 20).decode(&huge), Err(WsError::TooBig));
        // With no limit the frame waits for its payload, without arithmetic
        // overflow (on 32-bit targets the length does not fit: TooBig).
        let mut bytes = huge.to_vec();
        bytes.extend([1, 2, 3, 4, 5, 6]);
        let expected = if usize::BITS >= 64 {
            Ok((0, None))
        } else {
            Err(WsError::TooBig)
        };
        assert_eq!(Decoder::new(usize::MAX).decode(&bytes), expected);
        // Also in a fragmented message, with bytes held.
        let mut decoder = Decoder::new(usize::MAX);
        let first = client_frame(BINARY, MASK, b"held");
        assert_eq!(decoder.decode(&first), Ok((first.len(), None)));
        let mut more = bytes.clone();
        more[0] = FIN | CONTINUATION;
        assert_eq!(decoder.decode(&more), expected);
    }

    #[test]
    fn text_that_is_not_utf8_is_invalid_utf8() {
        assert_eq!(
            error_of(&client_frame(FIN | TEXT, MASK, b"caf\xc3")),
            WsError::InvalidUtf8
        );
    }

    #[test]
    fn utf8_is_checked_on_the_joined_message_not_per_fragment() {
        // "é" split between two fragments is fine...
        let mut bytes = client_frame(TEXT, MASK, b"caf\xc3");
        bytes.extend(client_frame(FIN | CONTINUATION, MASK, b"\xa9"));
        assert_eq!(only(&bytes), Incoming::Text("café".into()));
        // ...a truncated one is not.
        let mut bytes = client_frame(TEXT, MASK, b"caf");
        bytes.extend(client_frame(FIN | CONTINUATION, MASK, b"\xc3"));
        assert_eq!(error_of(&bytes), WsError::InvalidUtf8);
    }

    #[test]
    fn a_close_frame_without_payload_has_no_code_and_no_reason() {
        assert_eq!(
            only(&client_frame(FIN | CLOSE, MASK, b"")),
            Incoming::Close(None, String::new())
        );
    }

    #[test]
    fn a_close_frame_with_a_1_byte_payload_is_a_protocol_error() {
        assert_eq!(
            error_of(&client_frame(FIN | CLOSE, MASK, &[3])),
            WsError::Protocol("a close frame's payload is 1 byte long (a status code takes 2)")
        );
    }

    #[test]
    fn close_codes_a_peer_may_send_come_with_their_reason() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            let mut payload = u16::to_be_bytes(code).to_vec();
            payload.extend("bye ✓".as_bytes());
            assert_eq!(
                only(&client_frame(FIN | CLOSE, MASK, &payload)),
                Incoming::Close(Some(code), "bye ✓".into())
            );
        }
    }

    #[test]
    fn close_codes_a_peer_may_not_send_are_protocol_errors() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535,
        ] {
            assert_eq!(
                error_of(&client_frame(FIN | CLOSE, MASK, &code.to_be_bytes())),
                WsError::Protocol("a close frame has a status code a peer may not send"),
                "code {code}"
            );
        }
    }

    #[test]
    fn a_close_reason_that_is_not_utf8_is_invalid_utf8() {
        assert_eq!(
            error_of(&client_frame(FIN | CLOSE, MASK, b"\x03\xe8\xff")),
            WsError::InvalidUtf8
        );
    }

    #[test]
    fn each_error_has_its_close_code_and_says_what_went_wrong() {
        let protocol = WsError::Protocol("a client frame is not masked");
        assert_eq!(protocol.close_code(), 1002);
        assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
        assert_eq!(WsError::TooBig.close_code(), 1009);
        assert_eq!(
            protocol.to_string(),
            "WebSocket protocol error: a client frame is not masked"
        );
        assert!(WsError::InvalidUtf8.to_string().contains("UTF-8"));
        assert!(WsError::TooBig.to_string().contains("larger"));
    }

    #[test]
    fn unmasking_handles_every_length_and_offset_of_the_mask() {
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mask = [0x12, 0x34, 0x56, 0x78];
            let mut data: Vec<u8> = plain
                .iter()
                .zip(mask.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            unmask(&mut data, mask);
            assert_eq!(data, plain, "length {len}");
        }
    }

    #[test]
    fn the_fuzz_entry_point_runs_valid_and_invalid_streams() {
        // A knob byte, then client bytes: it asserts its invariants inside.
        let mut input = vec![0x3c];
        input.extend(client_frame(TEXT, MASK, b"Hel"));
        input.extend(client_frame(FIN | PING, MASK, b"!"));
        input.extend(client_frame(FIN | CONTINUATION, MASK, b"lo"));
        input.extend(client_frame(FIN | CLOSE, MASK, &[0x03, 0xe8]));
        crate::fuzzing::ws_frames(&input);
        crate::fuzzing::ws_frames(&[0x00, 0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
        crate::fuzzing::ws_frames(&[0xf0, 0x82, 0xff, 0x7f, 0xff, 0, 0, 0, 0, 0, 0]);
        crate::fuzzing::ws_frames(b"");
    }

    /// A control frame of the model.
    #[derive(Debug, Clone)]
    enum Control {
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    impl Control {
        fn encode(&self, mask: [u8; 4]) -> Vec<u8> {
            match self {
                Self::Ping(p) => client_frame(FIN | PING, mask, p),
                Self::Pong(p) => client_frame(FIN | PONG, mask, p),
                Self::Close(None) => client_frame(FIN | CLOSE, mask, b""),
                Self::Close(Some((code, reason))) => {
                    let mut payload = code.to_be_bytes().to_vec();
                    payload.extend(reason.as_bytes());
                    client_frame(FIN | CLOSE, mask, &payload)
                }
            }
        }

        fn incoming(&self) -> Incoming {
            match self {
                Self::Ping(p) => Incoming::Ping(p.clone()),
                Self::Pong(p) => Incoming::Pong(p.clone()),
                Self::Close(None) => Incoming::Close(None, String::new()),
                Self::Close(Some((code, reason))) => Incoming::Close(Some(*code), reason.clone()),
            }
        }
    }

    /// A step of the model: a control frame, or a data message split at
    /// `cuts` (each an index into its bytes, 0..=len, sorted; repeats make
    /// empty fragments) with control frames sent before some of its
    /// fragments.
    #[derive(Debug, Clone)]
    enum Step {
        Control(Control),
        Data {
            message: Incoming,
            cuts: Vec<Index>,
            between: Vec<(Index, Control)>,
        },
    }

    fn control() -> impl Strategy<Value = Control> {
        let code = prop_oneof![1000u16..=1003, 1007u16..=1011, 3000u16..=4999];
        // At most 30 chars: 120 bytes of reason, 122 with the code.
        let reason = vec(any::<char>(), 0..=30).prop_map(String::from_iter);
        prop_oneof![
            vec(any::<u8>(), 0..=125).prop_map(Control::Ping),
            vec(any::<u8>(), 0..=125).prop_map(Control::Pong),
            proptest::option::of((code, reason)).prop_map(Control::Close),
        ]
    }

    fn data() -> impl Strategy<Value = Incoming> {
        prop_oneof![
            4 => vec(any::<char>(), 0..100).prop_map(|c| Incoming::Text(String::from_iter(c))),
            4 => vec(any::<u8>(), 0..400).prop_map(Incoming::Binary),
            // The 64-bit length form.
            1 => (65536usize..66000, any::<u8>()).prop_map(|(n, seed)| {
                Incoming::Binary((0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect())
            }),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            1 => control().prop_map(Step::Control),
            3 => (data(), vec(any::<Index>(), 0..5), vec((any::<Index>(), control()), 0..3))
                .prop_map(|(message, cuts, between)| Step::Data { message, cuts, between }),
        ]
    }

    /// The client's bytes for `steps` (masks taken in turn from `masks`) and
    /// what the decoder must yield, in order.
    fn encode(steps: &[Step], masks: &[[u8; 4]]) -> (Vec<u8>, Vec<Incoming>) {
        let mut masks = masks.iter().copied().cycle();
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for step in steps {
            let (message, cuts, between) = match step {
                Step::Control(c) => {
                    bytes.extend(c.encode(masks.next().unwrap()));
                    expected.push(c.incoming());
                    continue;
                }
                Step::Data {
                    message,
                    cuts,
                    between,
                } => (message, cuts, between),
            };
            let (opcode, payload) = match message {
                Incoming::Text(s) => (TEXT, s.as_bytes()),
                Incoming::Binary(b) => (BINARY, b.as_slice()),
                _ => unreachable!("data() makes text and binary only"),
            };
            let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
            bounds.push(0);
            bounds.push(payload.len());
            bounds.sort_unstable();
            let fragments = bounds.len() - 1;
            let mut between: Vec<_> = between
                .iter()
                .map(|(i, c)| (i.index(fragments), c))
                .collect();
            between.sort_by_key(|(at, _)| *at);
            for (k, window) in bounds.windows(2).enumerate() {
                for (_, c) in between.iter().filter(|(at, _)| *at == k) {
                    bytes.extend(c.encode(masks.next().unwrap()));
                    expected.push(c.incoming());
                }
                let fin = if k + 1 == fragments { FIN } else { 0 };
                let op = if k == 0 { opcode } else { CONTINUATION };
                let part = &payload[window[0]..window[1]];
                bytes.extend(client_frame(fin | op, masks.next().unwrap(), part));
            }
            expected.push(message.clone());
        }
        (bytes, expected)
    }

    /// A server frame read back: (FIN, RSV bits, opcode, masked, header
    /// length, payload), parsed plainly from the RFC's layout.
    fn parse_server_frame(bytes: &[u8]) -> (bool, u8, u8, bool, usize, &[u8]) {
        let (len, at) = match bytes[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => {
                let mut n = 0u64;
                for &b in &bytes[2..10] {
                    n = n << 8 | u64::from(b);
                }
                (usize::try_from(n).unwrap(), 10)
            }
            n => (usize::from(n), 2),
        };
        (
            bytes[0] & 0x80 != 0,
            bytes[0] & 0x70,
            bytes[0] & 0x0f,
            bytes[1] & 0x80 != 0,
            at,
            &bytes[at..at + len],
        )
    }

    const MODEL_MAX: usize = 1 << 17;

    proptest! {
        #[test]
        fn arbitrary_fragmented_masked_streams_decode_to_the_original_messages(
            steps in vec(step(), 0..8),
            masks in vec(any::<[u8; 4]>(), 1..6),
            chunks in vec(prop_oneof![1usize..=16, 1usize..=4096], 1..8),
        ) {
            let (bytes, expected) = encode(&steps, &masks);
            let mut decoder = Decoder::new(MODEL_MAX);
            let mut buf = Vec::new();
            let mut got = Vec::new();
            let mut sizes = chunks.iter().cycle();
            let mut at = 0;
            while at < bytes.len() {
                let n = (*sizes.next().unwrap()).min(bytes.len() - at);
                buf.extend_from_slice(&bytes[at..at + n]);
                at += n;
                loop {
                    let (used, incoming) = decoder.decode(&buf).map_err(|e| {
                        TestCaseError::fail(format!("{e} after {} messages", got.len()))
                    })?;
                    prop_assert!(used <= buf.len());
                    prop_assert!(decoder.held() <= MODEL_MAX);
                    buf.drain(..used);
                    match incoming {
                        Some(incoming) => got.push(incoming),
                        None if used == 0 => break,
                        None => {}
                    }
                }
            }
            prop_assert_eq!(got, expected);
            prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
            prop_assert_eq!(decoder.held(), 0);
        }

        #[test]
        fn server_frames_read_back_with_all_three_length_forms(
            opcode in proptest::sample::select(vec![TEXT, BINARY, CLOSE, PING, PONG]),
            len in prop_oneof![0usize..=125, 126usize..=0xffff, 0x1_0000usize..=0x1_1000],
            seed in any::<u8>(),
        ) {
            let payload: Vec<u8> = (0..len).map(|i| (i as u8) ^ seed).collect();
            let mut out = Vec::new();
            frame(&mut out, opcode, &payload);
            let (fin, rsv, read_opcode, masked, header_len, read_payload) =
                parse_server_frame(&out);
            prop_assert!(fin);
            prop_assert_eq!(rsv, 0);
            prop_assert_eq!(read_opcode, opcode);
            prop_assert!(!masked);
            let shortest = match len {
                0..=125 => 2,
                126..=0xffff => 4,
                _ => 10,
            };
            prop_assert_eq!(header_len, shortest);
            prop_assert_eq!(out.len(), header_len + len);
            prop_assert_eq!(read_payload, payload.as_slice());
            let mut head = Vec::new();
            header(&mut head, opcode, len);
            prop_assert_eq!(head.as_slice(), &out[..header_len]);
        }

        #[test]
        fn arbitrary_bytes_never_overrun_and_always_progress(
            bytes in vec(any::<u8>(), 0..600),
            max in 0usize..700,
        ) {
            let mut decoder = Decoder::new(max);
            let mut at = 0;
            while let Ok((used, incoming)) = decoder.decode(&bytes[at..]) {
                prop_assert!(used <= bytes.len() - at);
                prop_assert!(decoder.held() <= max);
                if incoming.is_some() {
                    prop_assert!(used > 0);
                } else if used == 0 {
                    break;
                }
                at += used;
            }
        }
    }
}
