//! Entry points for the fuzz targets in `fuzz/` (not a public API).

use herald_core::Tick;
use serde_json::Value;

use crate::engine::plan_for_fuzzing;
use crate::{DeliveryOptions, PublishOptions, PublishRequest};

/// Decodes `data` as a publish request body, validates it against a fixed
/// clock, and checks the invariants: no panic; every error has a code from
/// the table and a message; options that decode re-encode to JSON that
/// decodes to the same options.
pub fn publish_body(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match PublishRequest::from_json(&body) {
        Err(e) => {
            assert!(
                matches!(e.code(), 5003 | 5007 | 5008 | 5009 | 5011 | 5012 | 5013),
                "unexpected code {} for {body}",
                e.code()
            );
            assert!(!e.to_string().is_empty());
        }
        Ok(req) => {
            let delivery = Value::Object(req.delivery.to_json());
            let again =
                DeliveryOptions::from_json(&delivery).expect("re-encoded delivery options decode");
            assert_eq!(again, req.delivery, "delivery options round trip");
            let publish = Value::Object(req.publish.to_json());
            let again =
                PublishOptions::from_json(&publish).expect("re-encoded publish options decode");
            assert_eq!(again, req.publish, "publish options round trip");
            for now in [0, 1_800_000_000_000, u64::MAX / 2] {
                if let Err(e) = plan_for_fuzzing(&req.delivery, Tick::from_millis(now)) {
                    assert!(
                        matches!(e.code(), 5003 | 5007 | 5008 | 5009),
                        "code {}",
                        e.code()
                    );
                }
            }
        }
    }
}
