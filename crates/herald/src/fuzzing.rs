//! Entry points for the fuzz targets in `fuzz/` (not a public API).

use herald_core::Tick;

use crate::codec::{PlanCache, decode_envelope, encode_envelope};
use crate::{
    DeliveryOptions, DeliveryPlan, MessageId, PublishOptions, PublishRequest, RequestError,
};

/// Decodes `data` as a publish request body, builds its delivery plan
/// against fixed clocks, and checks the invariants: no panic; every error
/// has a code from the table and a message; options that decode re-encode
/// to JSON that decodes to the same options; the message keeps its bytes.
pub fn publish_body(data: &[u8]) {
    let req = match PublishRequest::from_slice(data) {
        Err(RequestError::Json(_)) => return,
        Err(RequestError::Invalid(e)) => {
            assert!(
                matches!(e.code(), 5003 | 5007 | 5008 | 5009 | 5011 | 5013),
                "unexpected code {}",
                e.code()
            );
            assert!(!e.to_string().is_empty());
            return;
        }
        Ok(req) => req,
    };
    assert!(
        crate::Body::from_json(req.message.get()).is_ok(),
        "the message is one JSON value"
    );
    let delivery = serde_json::Value::Object(req.delivery.to_json());
    let again = DeliveryOptions::from_json(&delivery).expect("re-encoded delivery options decode");
    assert_eq!(again, req.delivery, "delivery options round trip");
    let publish = serde_json::Value::Object(req.publish.to_json());
    let again = PublishOptions::from_json(&publish).expect("re-encoded publish options decode");
    assert_eq!(again, req.publish, "publish options round trip");
    let plan = match DeliveryPlan::new(req.delivery.clone()) {
        Ok(plan) => plan,
        Err(e) => {
            assert!(
                matches!(e.code(), 5003 | 5007 | 5008 | 5009 | 5012),
                "code {}",
                e.code()
            );
            return;
        }
    };
    for now in [0, 1_800_000_000_000, u64::MAX / 2] {
        let now = Tick::from_millis(now);
        match plan.first_run(now) {
            Ok(first) => {
                if let Some(due) = first {
                    let _ = plan.after_run(due, due.saturating_add_millis(123_456));
                }
            }
            Err(e) => assert!(matches!(e.code(), 5003 | 5007 | 5009), "code {}", e.code()),
        }
    }
    // The stored form round trips.
    let envelope = crate::Envelope {
        id: MessageId::from_u128(1),
        channel: "c".into(),
        accepted_at: Tick::from_millis(1),
        publish: req.publish,
        plan: std::sync::Arc::new(plan),
        body: req.message,
    };
    let bytes = encode_envelope(&envelope).expect("encodes");
    let back = decode_envelope(envelope.id, &bytes, &PlanCache::new(0)).expect("decodes");
    assert_eq!(back, envelope, "stored form round trip");
}

/// Decodes `data` as a stored envelope: no panic; what decodes encodes
/// back to the same bytes.
pub fn stored_envelope(data: &[u8]) {
    let id = match data.get(1..17) {
        Some(b) => MessageId::from_bytes(b.try_into().unwrap_or([0; 16])),
        None => MessageId::from_u128(0),
    };
    if let Ok(e) = decode_envelope(id, data, &PlanCache::new(0)) {
        let again = encode_envelope(&e).expect("encodes");
        let back = decode_envelope(id, &again, &PlanCache::new(0)).expect("decodes");
        assert_eq!(back, e);
    }
}
