//! The device record: a `devices` value (the key is the device id, so the
//! record does not repeat it).
//!
//! ```text
//! offset  size  field
//!      0     1  record version (1)
//!      1     1  os: `Os::code` (1 IOS, 2 ANDROID, 4 WP, 8 OSX)
//!      2     1  flags: bit 0 = has an expiration; the other bits are 0
//!      3     8  registered_at, ms
//!     11     8  expiration, ms (0 without one)
//!     19        registration_id, device_token, os_version: strings
//!               channels: a count, then that many strings, strictly
//!               ascending (sorted, no duplicates)
//!               properties: a count, then that many name and value
//!               strings, names strictly ascending
//! ```
//!
//! Integers are little-endian; a count is a LEB128 varint, a string its
//! byte length (a varint) and its UTF-8 bytes. Decoding checks the version,
//! the OS code, the flags, every length, UTF-8, the order of channels and
//! property names, and that nothing follows; it never panics.

use std::collections::BTreeMap;

use herald::{DeviceRegistration, Os};
use herald_core::Tick;

use super::bytes::{Input, RecordError, put_str, put_varint};

/// The device record version this build writes and reads.
pub(crate) const DEVICE_RECORD_VERSION: u8 = 1;

const HAS_EXPIRATION: u8 = 1;

/// The stored form of `reg`. Its channels must be sorted without
/// duplicates (see [`normalize`]).
pub(crate) fn encode(reg: &DeviceRegistration) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + reg.device_token.len());
    out.push(DEVICE_RECORD_VERSION);
    out.push(reg.os.code());
    out.push(if reg.expiration.is_some() {
        HAS_EXPIRATION
    } else {
        0
    });
    out.extend_from_slice(&reg.registered_at.as_millis().to_le_bytes());
    let expiration = reg.expiration.map_or(0, Tick::as_millis);
    out.extend_from_slice(&expiration.to_le_bytes());
    put_str(&mut out, &reg.registration_id);
    put_str(&mut out, &reg.device_token);
    put_str(&mut out, &reg.os_version);
    put_varint(&mut out, reg.channels.len() as u64);
    for c in &reg.channels {
        put_str(&mut out, c);
    }
    put_varint(&mut out, reg.properties.len() as u64);
    for (name, value) in &reg.properties {
        put_str(&mut out, name);
        put_str(&mut out, value);
    }
    out
}

/// Sorts a registration's channels and drops duplicates: a registration
/// built by hand may break that rule, and the record and the channel index
/// rely on it.
pub(crate) fn normalize(reg: &mut DeviceRegistration) {
    reg.channels.sort_unstable();
    reg.channels.dedup();
}

/// The registration of `device_id` from its record.
pub(crate) fn decode(device_id: &str, bytes: &[u8]) -> Result<DeviceRegistration, RecordError> {
    let mut input = Input::new(bytes);
    let version = input.u8("the record version")?;
    if version != DEVICE_RECORD_VERSION {
        return Err(RecordError(format!(
            "record version {version}; this build reads version {DEVICE_RECORD_VERSION}"
        )));
    }
    let code = input.u8("os")?;
    let os = Os::from_code(code).ok_or_else(|| RecordError(format!("unknown os code {code}")))?;
    let flags = input.u8("flags")?;
    if flags & !HAS_EXPIRATION != 0 {
        return Err(RecordError(format!("unknown flags {flags:#04x}")));
    }
    let registered_at = Tick::from_millis(input.u64_le("registered_at")?);
    let expiration = input.u64_le("expiration")?;
    let expiration = match (flags & HAS_EXPIRATION != 0, expiration) {
        (true, at) => Some(Tick::from_millis(at)),
        (false, 0) => None,
        (false, at) => {
            return Err(RecordError(format!(
                "an expiration of {at} without its flag"
            )));
        }
    };
    let registration_id = input.str("registration_id")?.to_owned();
    let device_token = input.str("device_token")?.to_owned();
    let os_version = input.str("os_version")?.to_owned();
    let channels = channels(&mut input)?;
    let properties = properties(&mut input)?;
    input.end()?;
    Ok(DeviceRegistration {
        registration_id,
        device_id: device_id.to_owned(),
        device_token,
        os,
        os_version,
        channels,
        expiration,
        properties,
        registered_at,
    })
}

fn channels(input: &mut Input<'_>) -> Result<Vec<String>, RecordError> {
    let n = input.count("the channel count")?;
    let mut out: Vec<String> = Vec::with_capacity(n);
    for _ in 0..n {
        let c = input.str("a channel")?;
        if let Some(before) = out.last()
            && before.as_str() >= c
        {
            return Err(RecordError(format!(
                "channel {c:?} follows {before:?}: channels are strictly ascending"
            )));
        }
        out.push(c.to_owned());
    }
    Ok(out)
}

fn properties(input: &mut Input<'_>) -> Result<BTreeMap<String, String>, RecordError> {
    let n = input.count("the property count")?;
    let mut out = BTreeMap::new();
    let mut last: Option<&str> = None;
    for _ in 0..n {
        let name = input.str("a property name")?;
        let value = input.str("a property value")?;
        if let Some(before) = last
            && before >= name
        {
            return Err(RecordError(format!(
                "property {name:?} follows {before:?}: names are strictly ascending"
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

    fn sample(expiration: Option<u64>) -> DeviceRegistration {
        DeviceRegistration {
            registration_id: "reg-1".into(),
            device_id: "dévice".into(),
            device_token: "a1b2".into(),
            os: Os::Osx,
            os_version: "14.1".into(),
            channels: vec!["a".into(), "news".into(), "ß".into()],
            expiration: expiration.map(Tick::from_millis),
            properties: [("lang", "de"), ("name's", "Zoë \"✓\""), ("x", "")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            registered_at: Tick::from_millis(0x0102_0304),
        }
    }

    #[test]
    fn every_field_round_trips() {
        for expiration in [None, Some(0), Some(1_900_000_000_000), Some(u64::MAX)] {
            let reg = sample(expiration);
            let bytes = encode(&reg);
            assert_eq!(decode("dévice", &bytes), Ok(reg), "{expiration:?}");
        }
        let mut empty = sample(None);
        empty.channels.clear();
        empty.properties.clear();
        empty.os_version.clear();
        assert_eq!(decode("dévice", &encode(&empty)), Ok(empty));
    }

    #[test]
    fn the_fixed_fields_sit_where_the_format_says() {
        let b = encode(&sample(Some(0x0A0B)));
        assert_eq!(&b[..3], &[1, 8, 1]);
        assert_eq!(&b[3..11], &0x0102_0304u64.to_le_bytes());
        assert_eq!(&b[11..19], &0x0A0Bu64.to_le_bytes());
        assert_eq!(&b[19..25], b"\x05reg-1");
        let b = encode(&sample(None));
        assert_eq!((b[2], &b[11..19]), (0, &[0u8; 8][..]));
    }

    #[test]
    fn normalize_sorts_and_dedups_channels() {
        let mut reg = sample(None);
        reg.channels = vec!["b".into(), "a".into(), "b".into()];
        normalize(&mut reg);
        assert_eq!(reg.channels, ["a", "b"]);
    }

    /// Every truncation and every trailing byte is an error; every
    /// single-byte change is an error or some registration, never a panic;
    /// a change to the version, the OS code or the flags is an error.
    #[test]
    fn damage_is_an_error_not_a_panic() {
        let good = encode(&sample(Some(5)));
        for len in 0..good.len() {
            assert!(decode("d", &good[..len]).is_err(), "cut to {len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode("d", &long).is_err());
        for at in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                let got = decode("d", &bad);
                if at < 3 {
                    assert!(got.is_err(), "byte {at} ^ {flip:#x} decoded");
                }
            }
        }
        let e = decode("d", &[9]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "record version 9; this build reads version 1"
        );
        let mut unsorted = sample(None);
        unsorted.channels = vec!["b".into(), "a".into()];
        let e = decode("d", &encode(&unsorted)).unwrap_err();
        assert!(e.to_string().contains("strictly ascending"), "{e}");
        let mut no_flag = encode(&sample(Some(7)));
        no_flag[2] = 0;
        let e = decode("d", &no_flag).unwrap_err();
        assert_eq!(e.to_string(), "an expiration of 7 without its flag");
    }
}
