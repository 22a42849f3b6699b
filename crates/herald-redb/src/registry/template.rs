//! The template record: a `templates` value (the key is the template's
//! name, so the record does not repeat it).
//!
//! ```text
//! offset  size  field
//!      0     1  record version (1)
//!      1     1  os: the audience's `PushBroadcast` bits (at most 15)
//!      2     1  flags: bit 0 = has a segment query; the other bits are 0
//!      3        message, title, subtitle, channel: strings
//!               segment query: a string, if the flag says so
//!               headers: a count, then that many name and value strings,
//!               names strictly ascending
//! ```
//!
//! A count is a LEB128 varint, a string its byte length (a varint) and its
//! UTF-8 bytes. The record is the template as given, field by field (not
//! its JSON, which [`PushTemplate::from_json`] would check and normalize
//! again on the way back): what was stored is what is read. Decoding never
//! panics.

use std::collections::BTreeMap;

use herald::{PushBroadcast, PushTemplate};

use super::bytes::{Input, RecordError, put_str, put_varint};

/// The template record version this build writes and reads.
pub(crate) const TEMPLATE_RECORD_VERSION: u8 = 1;

const HAS_SEGMENT_QUERY: u8 = 1;

/// The stored form of `template`.
pub(crate) fn encode(template: &PushTemplate) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        16 + template.message.len() + template.title.len() + template.subtitle.len(),
    );
    out.push(TEMPLATE_RECORD_VERSION);
    out.push(template.os.bits());
    out.push(if template.segment_query.is_some() {
        HAS_SEGMENT_QUERY
    } else {
        0
    });
    put_str(&mut out, &template.message);
    put_str(&mut out, &template.title);
    put_str(&mut out, &template.subtitle);
    put_str(&mut out, &template.channel);
    if let Some(q) = &template.segment_query {
        put_str(&mut out, q);
    }
    put_varint(&mut out, template.headers.len() as u64);
    for (name, value) in &template.headers {
        put_str(&mut out, name);
        put_str(&mut out, value);
    }
    out
}

/// The template called `name` from its record.
pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<PushTemplate, RecordError> {
    let mut input = Input::new(bytes);
    let version = input.u8("the record version")?;
    if version != TEMPLATE_RECORD_VERSION {
        return Err(RecordError(format!(
            "record version {version}; this build reads version {TEMPLATE_RECORD_VERSION}"
        )));
    }
    let bits = input.u8("os")?;
    let os = PushBroadcast::from_bits(bits)
        .ok_or_else(|| RecordError(format!("unknown os bits {bits:#04x}")))?;
    let flags = input.u8("flags")?;
    if flags & !HAS_SEGMENT_QUERY != 0 {
        return Err(RecordError(format!("unknown flags {flags:#04x}")));
    }
    let message = input.str("message")?.to_owned();
    let title = input.str("title")?.to_owned();
    let subtitle = input.str("subtitle")?.to_owned();
    let channel = input.str("channel")?.to_owned();
    let segment_query = if flags & HAS_SEGMENT_QUERY != 0 {
        Some(input.str("segment query")?.to_owned())
    } else {
        None
    };
    let headers = headers(&mut input)?;
    input.end()?;
    Ok(PushTemplate {
        name: name.to_owned(),
        message,
        title,
        subtitle,
        headers,
        os,
        channel,
        segment_query,
    })
}

fn headers(input: &mut Input<'_>) -> Result<BTreeMap<String, String>, RecordError> {
    let n = input.count("the header count")?;
    let mut out = BTreeMap::new();
    let mut last: Option<&str> = None;
    for _ in 0..n {
        let name = input.str("a header name")?;
        let value = input.str("a header value")?;
        if let Some(before) = last
            && before >= name
        {
            return Err(RecordError(format!(
                "header {name:?} follows {before:?}: names are strictly ascending"
            )));
        }
        last = Some(name);
        out.insert(name.to_owned(), value.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PushTemplate {
        PushTemplate::from_json(&serde_json::json!({
            "name": "welcome",
            "message": "Hallo {firstName|Freund} ✓",
            "title": "T {{x}}",
            "subtitle": "S",
            "headers": {"ios-badge": "1", "custom": "{v|w}"},
            "audience": {"os": ["IOS"], "channel": "news", "segmentQuery": "lang = {lang|de}"},
        }))
        .expect("a valid template")
    }

    #[test]
    fn every_field_round_trips() {
        let t = sample();
        assert_eq!(decode("welcome", &encode(&t)), Ok(t.clone()));
        // As given, even what `from_json` would not take back as it is.
        let mut odd = t;
        odd.os = PushBroadcast::IOS;
        odd.segment_query = Some("  ".into());
        odd.headers.clear();
        assert_eq!(decode("welcome", &encode(&odd)), Ok(odd));
    }

    #[test]
    fn the_fixed_fields_sit_where_the_format_says() {
        let b = encode(&sample());
        assert_eq!(&b[..3], &[1, 1 | 8, 1]);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let good = encode(&sample());
        for len in 0..good.len() {
            assert!(decode("t", &good[..len]).is_err(), "cut to {len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode("t", &long).is_err());
        for at in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                let got = decode("t", &bad);
                if at == 0 || (at == 1 && flip != 0x01) {
                    assert!(got.is_err(), "byte {at} ^ {flip:#x} decoded");
                }
            }
        }
        let e = decode("t", &[1, 16, 0]).unwrap_err();
        assert_eq!(e.to_string(), "unknown os bits 0x10");
    }
}
