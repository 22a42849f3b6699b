//! The frames the engine sends over a [`ClusterBus`](super::ClusterBus):
//! a run some node delivered, or a count of runs a node could not send.
//!
//! ```text
//! run:  "HB" 1 'R' origin:u64 run:u64 id:u128 envelope (herald::codec's stored form)
//! lost: "HB" 1 'L' origin:u64 missed:u64
//! ```
//!
//! Integers are little-endian. `origin` names the sending engine (its node
//! id), so an engine skips its own frames; `run` is the run's time (the
//! delivered message's timestamp).

use std::sync::Arc;

use herald_core::Tick;

use crate::codec::{CodecError, PlanCache, decode_envelope, encode_envelope};
use crate::{Envelope, MessageId};

const MAGIC: [u8; 3] = [b'H', b'B', 1];
const RUN: u8 = b'R';
const LOST: u8 = b'L';
const RUN_HEADER: usize = 4 + 8 + 8 + 16;
const LOST_LEN: usize = 4 + 8 + 8;

/// A decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A run delivered on node `origin`.
    Run {
        /// The sending node.
        origin: u64,
        /// The run's time.
        run: Tick,
        /// The message.
        envelope: Arc<Envelope>,
    },
    /// Node `origin` could not send `missed` runs (its bus was down or its
    /// queue overflowed): subscribers elsewhere may have missed them.
    Lost {
        /// The sending node.
        origin: u64,
        /// How many runs.
        missed: u64,
    },
}

/// The frame of a run of `envelope` at `run`, sent by `origin`.
///
/// # Errors
///
/// The envelope cannot be encoded (a field over 4 GiB).
pub fn encode_run(origin: u64, run: Tick, envelope: &Envelope) -> Result<Arc<[u8]>, CodecError> {
    let body = encode_envelope(envelope)?;
    let mut out = Vec::with_capacity(RUN_HEADER + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(RUN);
    out.extend_from_slice(&origin.to_le_bytes());
    out.extend_from_slice(&run.as_millis().to_le_bytes());
    out.extend_from_slice(&envelope.id.as_u128().to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out.into())
}

/// The frame saying `origin` could not send `missed` runs.
pub fn encode_lost(origin: u64, missed: u64) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(LOST_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(LOST);
    out.extend_from_slice(&origin.to_le_bytes());
    out.extend_from_slice(&missed.to_le_bytes());
    out.into()
}

/// The node that sent `frame`, if it is one of ours (cheap: no decoding).
pub fn origin_of(frame: &[u8]) -> Option<u64> {
    if frame.len() < 12 || frame[..3] != MAGIC {
        return None;
    }
    Some(u64_at(frame, 4))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Decodes a frame; repeating messages' plans are cached in `plans`.
///
/// # Errors
///
/// The bytes are not a frame of this version, or hold a damaged envelope.
pub fn decode(frame: &[u8], plans: &PlanCache) -> Result<Frame, CodecError> {
    if frame.len() < 4 || frame[..3] != MAGIC {
        return Err(CodecError::new(
            "bus frame: not a Herald frame of version 1",
        ));
    }
    match frame[3] {
        RUN if frame.len() > RUN_HEADER => {
            let mut id = [0u8; 16];
            id.copy_from_slice(&frame[20..36]);
            let id = MessageId::from_u128(u128::from_le_bytes(id));
            let envelope = decode_envelope(id, &frame[RUN_HEADER..], plans)?;
            Ok(Frame::Run {
                origin: u64_at(frame, 4),
                run: Tick::from_millis(u64_at(frame, 12)),
                envelope: Arc::new(envelope),
            })
        }
        LOST if frame.len() == LOST_LEN => Ok(Frame::Lost {
            origin: u64_at(frame, 4),
            missed: u64_at(frame, 12),
        }),
        kind => Err(CodecError::new(format!(
            "bus frame: kind {kind:#04x} with {} bytes",
            frame.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, DeliveryPlan, PublishOptions};

    fn envelope() -> Envelope {
        Envelope {
            template: None,
            id: MessageId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042),
            channel: "news".to_owned(),
            accepted_at: Tick::from_millis(1_000),
            publish: PublishOptions::default(),
            plan: Arc::new(DeliveryPlan::default()),
            body: Body::from(serde_json::json!({"a": "ü"})),
        }
    }

    #[test]
    fn frames_round_trip() {
        let plans = PlanCache::new(16);
        let e = envelope();
        let f = encode_run(7, Tick::from_millis(99), &e).unwrap();
        assert_eq!(origin_of(&f), Some(7));
        assert_eq!(
            decode(&f, &plans).unwrap(),
            Frame::Run {
                origin: 7,
                run: Tick::from_millis(99),
                envelope: Arc::new(e),
            }
        );
        let l = encode_lost(u64::MAX, 3);
        assert_eq!(origin_of(&l), Some(u64::MAX));
        assert_eq!(
            decode(&l, &plans).unwrap(),
            Frame::Lost {
                origin: u64::MAX,
                missed: 3
            }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let plans = PlanCache::new(16);
        let good = encode_run(1, Tick::from_millis(2), &envelope()).unwrap();
        for cut in 0..good.len() {
            let _ = decode(&good[..cut], &plans);
            let _ = origin_of(&good[..cut]);
        }
        assert!(decode(b"HB\x01X", &plans).is_err());
        assert!(decode(b"nope", &plans).is_err());
        let mut bad_id = good.to_vec();
        bad_id[20] ^= 1;
        assert!(decode(&bad_id, &plans).is_err(), "id and envelope disagree");
    }
}
