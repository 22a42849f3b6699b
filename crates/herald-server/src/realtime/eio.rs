//! Engine.IO 4 and socket.io 5 packets, as far as the direct WebSocket
//! path speaks them (sans-IO): what a client sends, parsed from one text
//! message, and what the server sends, written into a buffer.
//!
//! A WebSocket text message is one Engine.IO packet: a type digit (`1`
//! close, `2` ping, `3` pong, `4` message, `6` noop), then its data. A
//! message packet carries one socket.io packet:
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`, the namespace
//! `/` when it is left out.

use serde_json::Value;

/// What a client's text message says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientPacket<'a> {
    /// Engine.IO `1`: the client closes the session.
    Close,
    /// Engine.IO `3`: the answer to the server's ping.
    Pong,
    /// Engine.IO `2`, `5`, `6` (a ping, an upgrade or a noop: nothing to
    /// do on a session that is a WebSocket from its start).
    Ignored,
    /// socket.io `CONNECT` to namespace `nsp` (its auth payload is not
    /// used: the key came with the handshake).
    Connect { nsp: &'a str },
    /// socket.io `DISCONNECT` from namespace `nsp`.
    Disconnect { nsp: &'a str },
    /// socket.io `EVENT` `name` with its first argument (`null` without
    /// one); an ack id, if any, is not answered (the Backendless client
    /// asks for none).
    Event {
        nsp: &'a str,
        name: String,
        arg: Value,
    },
    /// A socket.io packet this server does not take from clients (`ACK`,
    /// binary events and acks, connect errors): ignored.
    Unsupported { nsp: &'a str, kind: u8 },
}

/// Why a client's text message is not a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketError {
    /// Empty, or an Engine.IO type that is not one.
    Engine,
    /// A message packet whose socket.io packet does not parse.
    Socket(&'static str),
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Engine => f.write_str("not an Engine.IO packet"),
            Self::Socket(why) => write!(f, "not a socket.io packet: {why}"),
        }
    }
}

impl std::error::Error for PacketError {}

/// Parses one text message from a client.
pub(crate) fn parse(text: &str) -> Result<ClientPacket<'_>, PacketError> {
    let mut chars = text.chars();
    match chars.next() {
        Some('1') => Ok(ClientPacket::Close),
        Some('3') => Ok(ClientPacket::Pong),
        Some('2' | '5' | '6') => Ok(ClientPacket::Ignored),
        Some('4') => parse_socket(&text[1..]),
        _ => Err(PacketError::Engine),
    }
}

fn parse_socket(p: &str) -> Result<ClientPacket<'_>, PacketError> {
    let kind = match p.as_bytes().first() {
        Some(b @ b'0'..=b'6') => b - b'0',
        _ => return Err(PacketError::Socket("its type is not 0-6")),
    };
    let mut rest = &p[1..];
    // Binary packets count their attachments: `<n>-`.
    if matches!(kind, 5 | 6) {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest.as_bytes().get(digits) == Some(&b'-') {
            rest = &rest[digits + 1..];
        }
    }
    let nsp = if rest.starts_with('/') {
        match rest.find(',') {
            Some(i) => {
                let nsp = &rest[..i];
                rest = &rest[i + 1..];
                nsp
            }
            None => std::mem::take(&mut rest),
        }
    } else {
        "/"
    };
    match kind {
        0 => Ok(ClientPacket::Connect { nsp }),
        1 => Ok(ClientPacket::Disconnect { nsp }),
        2 => {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let json = &rest[digits..];
            let Ok(Value::Array(mut args)) = serde_json::from_str::<Value>(json) else {
                return Err(PacketError::Socket("an event's data is a JSON array"));
            };
            if args.is_empty() {
                return Err(PacketError::Socket("an event has a name"));
            }
            let Value::String(name) = args.remove(0) else {
                return Err(PacketError::Socket("an event's name is a string"));
            };
            let arg = if args.is_empty() {
                Value::Null
            } else {
                args.swap_remove(0)
            };
            Ok(ClientPacket::Event { nsp, name, arg })
        }
        kind => Ok(ClientPacket::Unsupported { nsp, kind }),
    }
}

/// The Engine.IO open packet (`0{...}`) of session `sid` (`upgradable`: a
/// long-polling session, which may upgrade to a WebSocket).
pub(crate) fn open(
    sid: &str,
    upgradable: bool,
    ping_interval_ms: u128,
    ping_timeout_ms: u128,
    max_payload: usize,
) -> String {
    let upgrades: &[&str] = if upgradable { &["websocket"] } else { &[] };
    format!(
        "0{}",
        serde_json::json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": ping_interval_ms,
            "pingTimeout": ping_timeout_ms,
            "maxPayload": max_payload,
        })
    )
}

/// Engine.IO's ping.
pub(crate) const PING: &str = "2";

/// socket.io `CONNECT` acknowledged: `40<nsp>,{"sid":...}`.
pub(crate) fn connected(nsp: &str, sid: &str) -> String {
    format!("40{nsp},{}", serde_json::json!({ "sid": sid }))
}

/// socket.io `CONNECT_ERROR`: `44<nsp>,{"message":...}`.
pub(crate) fn connect_error(nsp: &str, message: &str) -> String {
    format!("44{nsp},{}", serde_json::json!({ "message": message }))
}

/// socket.io `DISCONNECT` (the server ends the namespace connection).
pub(crate) fn disconnect(nsp: &str) -> String {
    format!("41{nsp},")
}

/// Appends socket.io `EVENT` `[event, payload]` on `nsp` to `out`.
pub(crate) fn event<T: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    nsp: &str,
    event: &str,
    payload: &T,
) {
    out.extend_from_slice(b"42");
    out.extend_from_slice(nsp.as_bytes());
    out.push(b',');
    // Writing into a Vec cannot fail; the strings and values are JSON.
    let _ = serde_json::to_writer(&mut *out, &(event, payload));
}

/// The parts of a `SUB_RES` run packet around the request id's JSON and
/// the run's JSON, so that its length is known before it is written:
/// `42<nsp>,["SUB_RES",{"id":` ID `,"data":` DATA `}]`.
pub(crate) struct RunPacket {
    head: Vec<u8>,
}

const RUN_MID: &[u8] = b",\"data\":";
const RUN_TAIL: &[u8] = b"}]";

impl RunPacket {
    /// The packet's fixed parts for namespace `nsp`.
    pub(crate) fn new(nsp: &str) -> Self {
        let mut head = Vec::with_capacity(nsp.len() + 24);
        head.extend_from_slice(b"42");
        head.extend_from_slice(nsp.as_bytes());
        head.extend_from_slice(b",[\"SUB_RES\",{\"id\":");
        Self { head }
    }

    /// The packet's length for an id whose JSON is `id_json` and a run
    /// whose JSON is `data`.
    pub(crate) fn len(&self, id_json: &[u8], data: &[u8]) -> usize {
        self.head.len() + id_json.len() + RUN_MID.len() + data.len() + RUN_TAIL.len()
    }

    /// Appends the packet.
    pub(crate) fn write(&self, out: &mut Vec<u8>, id_json: &[u8], data: &[u8]) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(id_json);
        out.extend_from_slice(RUN_MID);
        out.extend_from_slice(data);
        out.extend_from_slice(RUN_TAIL);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn engine_packets_are_told_apart() {
        assert_eq!(parse("1"), Ok(ClientPacket::Close));
        assert_eq!(parse("3"), Ok(ClientPacket::Pong));
        assert_eq!(parse("3probe"), Ok(ClientPacket::Pong));
        assert_eq!(parse("6"), Ok(ClientPacket::Ignored));
        assert_eq!(parse(""), Err(PacketError::Engine));
        assert_eq!(parse("9"), Err(PacketError::Engine));
        assert_eq!(parse("é"), Err(PacketError::Engine));
    }

    #[test]
    fn connects_and_disconnects_name_their_namespace() {
        assert_eq!(parse("40/APP,"), Ok(ClientPacket::Connect { nsp: "/APP" }));
        assert_eq!(
            parse("40/APP,{\"token\":1}"),
            Ok(ClientPacket::Connect { nsp: "/APP" })
        );
        assert_eq!(parse("40/APP"), Ok(ClientPacket::Connect { nsp: "/APP" }));
        assert_eq!(parse("40"), Ok(ClientPacket::Connect { nsp: "/" }));
        assert_eq!(
            parse("41/APP,"),
            Ok(ClientPacket::Disconnect { nsp: "/APP" })
        );
    }

    #[test]
    fn an_event_gives_its_name_and_first_argument() {
        assert_eq!(
            parse("42/APP,[\"SUB_ON\",{\"id\":1},\"more\"]"),
            Ok(ClientPacket::Event {
                nsp: "/APP",
                name: "SUB_ON".into(),
                arg: json!({"id": 1}),
            })
        );
        assert_eq!(
            parse("42/APP,17[\"SUB_OFF\"]"),
            Ok(ClientPacket::Event {
                nsp: "/APP",
                name: "SUB_OFF".into(),
                arg: Value::Null,
            }),
            "an ack id is skipped"
        );
        assert_eq!(
            parse("42[\"x\",2]"),
            Ok(ClientPacket::Event {
                nsp: "/",
                name: "x".into(),
                arg: json!(2),
            })
        );
    }

    #[test]
    fn malformed_events_are_errors() {
        for bad in [
            "42/APP,",
            "42/APP,{}",
            "42/APP,[]",
            "42/APP,[1]",
            "42/APP,[\"x\"",
        ] {
            assert!(
                matches!(parse(bad), Err(PacketError::Socket(_))),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        assert!(matches!(parse("4x"), Err(PacketError::Socket(_))));
        assert!(matches!(parse("4"), Err(PacketError::Socket(_))));
    }

    #[test]
    fn binary_packets_are_unsupported() {
        assert_eq!(
            parse("451-/APP,[\"SUB_ON\",{\"_placeholder\":true,\"num\":0}]"),
            Ok(ClientPacket::Unsupported {
                nsp: "/APP",
                kind: 5
            })
        );
        assert_eq!(
            parse("43/APP,1[]"),
            Ok(ClientPacket::Unsupported {
                nsp: "/APP",
                kind: 3
            })
        );
    }

    #[test]
    fn server_packets_read_back_as_socket_io_writes_them() {
        let packet = open("abc", false, 25_000, 20_000, 100_000);
        let v: Value = serde_json::from_str(packet.strip_prefix('0').unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"sid": "abc", "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000, "maxPayload": 100000})
        );
        assert!(open("abc", true, 1, 1, 1).contains("\"upgrades\":[\"websocket\"]"));
        assert_eq!(connected("/A", "s"), "40/A,{\"sid\":\"s\"}");
        assert_eq!(connect_error("/A", "no"), "44/A,{\"message\":\"no\"}");
        assert_eq!(disconnect("/A"), "41/A,");
        let mut out = Vec::new();
        event(&mut out, "/A", "SUB_READY", &json!({"id": "1"}));
        assert_eq!(out, b"42/A,[\"SUB_READY\",{\"id\":\"1\"}]");
    }

    #[test]
    fn a_run_packet_is_as_long_as_it_says_and_parses_back() {
        let p = RunPacket::new("/APP");
        let id = serde_json::to_vec("r\"1").unwrap();
        let data = br#"{"message":"hi","headers":{}}"#;
        let mut out = b"prefix".to_vec();
        p.write(&mut out, &id, data);
        assert_eq!(out.len(), 6 + p.len(&id, data));
        let text = std::str::from_utf8(&out[6..]).unwrap();
        assert_eq!(
            parse(&format!("4{}", &text[1..])),
            Ok(ClientPacket::Event {
                nsp: "/APP",
                name: "SUB_RES".into(),
                arg: json!({"id": "r\"1", "data": {"message": "hi", "headers": {}}}),
            })
        );
    }
}
