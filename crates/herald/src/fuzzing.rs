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
        template: None,
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

/// Decodes `data` as a stored envelope and as a cluster-bus frame (which
/// carries one): no panic; what decodes encodes back to what decodes the
/// same.
pub fn stored_envelope(data: &[u8]) {
    use crate::bus::frame::{self, Frame};
    match frame::decode(data, &PlanCache::new(0)) {
        Ok(Frame::Run {
            origin,
            run,
            envelope,
        }) => {
            let again = frame::encode_run(origin, run, &envelope).expect("encodes");
            assert_eq!(frame::origin_of(&again), Some(origin));
            let back = frame::decode(&again, &PlanCache::new(0)).expect("decodes");
            assert_eq!(
                back,
                Frame::Run {
                    origin,
                    run,
                    envelope
                }
            );
        }
        Ok(Frame::Lost { origin, missed }) => {
            assert_eq!(&*frame::encode_lost(origin, missed), data);
        }
        Err(_) => {}
    }
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

/// Decodes `data` as a device registration body: no panic; an error is
/// 5015 with a reason; a registration re-encodes (`to_json`) to JSON that
/// decodes to the same registration (times in ms), and satisfies its own
/// limits.
pub fn device_registration(data: &[u8]) {
    use crate::DeviceRegistration;
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let reg = match DeviceRegistration::from_json(&body) {
        Ok(reg) => reg,
        Err(e) => {
            assert_eq!(e.code(), 5015, "{e}");
            assert!(e.reason().is_some(), "a refusal says why");
            return;
        }
    };
    assert!(!reg.channels.is_empty());
    assert!(
        reg.channels.windows(2).all(|w| w[0] < w[1]),
        "sorted, no repeats"
    );
    for c in &reg.channels {
        assert!(crate::limits::check_channel(c).is_ok());
    }
    let mut json = reg.to_json();
    // `to_json` answers ms; ms below 1e11 would read as seconds.
    if reg
        .expiration
        .is_some_and(|t| t.as_millis() < 100_000_000_000)
    {
        json["expiration"] = serde_json::Value::Null;
    }
    let again = DeviceRegistration::from_json(&json).expect("a registration's JSON decodes");
    assert_eq!(again.device_id, reg.device_id);
    assert_eq!(again.device_token, reg.device_token);
    assert_eq!(again.os, reg.os);
    assert_eq!(again.channels, reg.channels);
    assert_eq!(again.properties, reg.properties);
    if reg
        .expiration
        .is_some_and(|t| t.as_millis() >= 100_000_000_000)
    {
        assert_eq!(again.expiration, reg.expiration);
    }
}

/// Decodes `data` as a push template (and its first line as smart text):
/// no panic; an error is 5051 with a reason; a template re-encodes to the
/// same template; its texts render with any values; its segment query
/// parses whatever values fill it.
pub fn push_template(data: &[u8]) {
    use crate::{PushTemplate, SmartText};
    if let Ok(text) = std::str::from_utf8(data) {
        let line = text.lines().next().unwrap_or("");
        if let Ok(t) = SmartText::parse(line) {
            let _ = t.render(&[("a", "{}"), ("b", "'")]);
            let quoted = t.render_quoted(&[("a", line)]);
            if !line.contains(['\'', '{', '}']) {
                assert_eq!(t.render(&()), line, "text without braces renders to itself");
                assert_eq!(quoted, line);
            }
        }
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let tpl = match PushTemplate::from_json(&body) {
        Ok(t) => t,
        Err(e) => {
            assert_eq!(e.code(), 5051, "{e}");
            assert!(e.reason().is_some(), "a refusal says why");
            return;
        }
    };
    let again = PushTemplate::from_json(&tpl.to_json()).expect("a template's JSON decodes");
    assert_eq!(again, tpl, "round trip");
    for values in [&[][..], &[("x", "' OR 1=1 --")][..]] {
        if let Err(e) = tpl.segment(&values) {
            panic!("an accepted segment query must parse with any values: {e}");
        }
    }
}
