//! The stored form of an [`Envelope`]: one byte layout that every durable
//! store writes (herald-redb now, herald-postgres later), read back
//! without parsing the body.
//!
//! ```text
//! offset  size  field
//!      0     1  envelope format version (2)
//!      1    16  id, big-endian (must be the id it is stored under)
//!     17     8  accepted_at, ms, little-endian
//!     25   4+n  channel, UTF-8
//!          4+n  publish section: entries (below)
//!          4+n  plan section: entries (below)
//!          4+n  body: the message's JSON text, UTF-8
//! ```
//!
//! Nothing may follow the body, so a cut anywhere (inside the body too) is
//! an error.
//!
//! Lengths are `u32` little-endian. A section is a run of entries, each
//! `tag: u8, length: u32, value`; a field that is unset has no entry, and a
//! list has one entry per item, in order. Unknown tags are an error (data
//! written by a newer Herald); new optional fields add tags without a new
//! format version.
//!
//! | section | tag | value |
//! |---|---|---|
//! | publish | 1 | `publisherId`, UTF-8 |
//! | publish | 2 | `subtopic`, UTF-8 |
//! | publish | 3 | one header: `4+n` name, then the value to the end |
//! | publish | 4 | a push template send: [`TemplateSend`]'s JSON |
//! | plan | 1 | `publishPolicy` ordinal, 1 byte (0 PUSH, 1 PUBSUB, 2 BOTH) |
//! | plan | 2 | `pushBroadcast` mask, 1 byte |
//! | plan | 3 | one `pushSinglecast` device id, UTF-8 |
//! | plan | 4 | `segmentQuery`, UTF-8 |
//! | plan | 5 | `publishAt`, ms, `u64` |
//! | plan | 6 | `repeatEvery`, whole seconds, `u64` |
//! | plan | 7 | `repeatExpiresAt`, ms, `u64` |
//! | plan | 8 | `repeatCron`, UTF-8 |
//! | plan | 9 | `timeZone`, UTF-8 |
//! | plan | 10 | `pushTimeToLive`, seconds, `u64` |
//! | plan | 11 | `pushCollapseKey`, UTF-8 |
//! | plan | 12 | `pushThrottlePerMinute`, `u64` |
//!
//! Reading an envelope checks lengths and UTF-8 only: the body is not
//! parsed (it was validated when it was published). The plan section is
//! small; decoding it rebuilds the [`DeliveryPlan`] (the cron rule and the
//! segment query are parsed), which a [`PlanCache`] saves for messages that
//! repeat. Every malformed input is a [`CodecError`], never a panic.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use herald_core::Tick;

use crate::options::{PublishPolicy, PushBroadcast};
use crate::{
    Body, DeliveryOptions, DeliveryPlan, Envelope, MessageId, PublishOptions, TemplateSend, limits,
};

/// The envelope format version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 2;

const FIXED: usize = 1 + 16 + 8;

const P_PUBLISHER: u8 = 1;
const P_SUBTOPIC: u8 = 2;
const P_HEADER: u8 = 3;
const P_TEMPLATE: u8 = 4;

const D_POLICY: u8 = 1;
const D_BROADCAST: u8 = 2;
const D_SINGLECAST: u8 = 3;
const D_SEGMENT: u8 = 4;
const D_PUBLISH_AT: u8 = 5;
const D_REPEAT_EVERY: u8 = 6;
const D_EXPIRES: u8 = 7;
const D_CRON: u8 = 8;
const D_TIME_ZONE: u8 = 9;
const D_PUSH_TTL: u8 = 10;
const D_COLLAPSE_KEY: u8 = 11;
const D_THROTTLE: u8 = 12;

/// Stored bytes that are not an envelope (damaged, or not ours), or an
/// envelope that cannot be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    what: String,
}

impl CodecError {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }

    /// What is wrong, for logs and humans.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stored envelope: {}", self.what)
    }
}

impl std::error::Error for CodecError {}

/// Encodes `envelope` in the stored form.
///
/// # Errors
///
/// A field longer than 4 GiB.
pub fn encode_envelope(envelope: &Envelope) -> Result<Vec<u8>, CodecError> {
    let e = envelope;
    let mut out = Vec::with_capacity(FIXED + 64 + e.channel.len() + e.body.len());
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&e.id.to_bytes());
    out.extend_from_slice(&e.accepted_at.as_millis().to_le_bytes());
    put(&mut out, e.channel.as_bytes())?;
    section(&mut out, |s| {
        let p = &e.publish;
        if let Some(v) = &p.publisher_id {
            entry(s, P_PUBLISHER, v.as_bytes())?;
        }
        if let Some(v) = &p.subtopic {
            entry(s, P_SUBTOPIC, v.as_bytes())?;
        }
        for (k, v) in &p.headers {
            let mut h = Vec::with_capacity(4 + k.len() + v.len());
            put(&mut h, k.as_bytes())?;
            h.extend_from_slice(v.as_bytes());
            entry(s, P_HEADER, &h)?;
        }
        if let Some(t) = &e.template {
            entry(s, P_TEMPLATE, t.to_json().to_string().as_bytes())?;
        }
        Ok(())
    })?;
    section(&mut out, |s| encode_plan(s, e.delivery()))?;
    put(&mut out, e.body.get().as_bytes())?;
    Ok(out)
}

fn encode_plan(s: &mut Vec<u8>, d: &DeliveryOptions) -> Result<(), CodecError> {
    entry(s, D_POLICY, &[d.publish_policy.ordinal()])?;
    if let Some(b) = d.push_broadcast {
        entry(s, D_BROADCAST, &[b.bits()])?;
    }
    for id in &d.push_singlecast {
        entry(s, D_SINGLECAST, id.as_bytes())?;
    }
    if let Some(q) = &d.segment_query {
        entry(s, D_SEGMENT, q.as_bytes())?;
    }
    let ms = |t: chrono::DateTime<chrono::Utc>| {
        u64::try_from(t.timestamp_millis())
            .map_err(|_| CodecError::new(format!("a time before 1970: {t}")))
    };
    if let Some(t) = d.publish_at {
        entry(s, D_PUBLISH_AT, &ms(t)?.to_le_bytes())?;
    }
    if let Some(every) = d.repeat_every {
        let secs = u64::try_from(every.num_seconds())
            .map_err(|_| CodecError::new(format!("a negative repeatEvery: {every}")))?;
        entry(s, D_REPEAT_EVERY, &secs.to_le_bytes())?;
    }
    if let Some(t) = d.repeat_expires_at {
        entry(s, D_EXPIRES, &ms(t)?.to_le_bytes())?;
    }
    if let Some(ttl) = d.push_time_to_live {
        entry(s, D_PUSH_TTL, &u64::from(ttl).to_le_bytes())?;
    }
    if let Some(k) = &d.push_collapse_key {
        entry(s, D_COLLAPSE_KEY, k.as_bytes())?;
    }
    if let Some(n) = d.push_throttle_per_minute {
        entry(s, D_THROTTLE, &u64::from(n).to_le_bytes())?;
    }
    if let Some(c) = &d.repeat_cron {
        entry(s, D_CRON, c.as_bytes())?;
    }
    if let Some(z) = &d.time_zone {
        entry(s, D_TIME_ZONE, z.as_bytes())?;
    }
    Ok(())
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), CodecError> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| CodecError::new(format!("a field of {} bytes is over 4 GiB", bytes.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn entry(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<(), CodecError> {
    out.push(tag);
    put(out, value)
}

fn section(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out)?;
    let len = out.len() - at - 4;
    let len = u32::try_from(len)
        .map_err(|_| CodecError::new(format!("a section of {len} bytes is over 4 GiB")))?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// A stored envelope split into its sections, borrowing the bytes.
struct Parts<'a> {
    id: MessageId,
    accepted_at: Tick,
    channel: &'a str,
    publish: &'a [u8],
    plan: &'a [u8],
    body: &'a [u8],
}

fn split(bytes: &[u8]) -> Result<Parts<'_>, CodecError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.take(1, "version")?[0];
    if version != ENVELOPE_VERSION {
        return Err(CodecError::new(format!(
            "envelope format version {version}, this build reads version {ENVELOPE_VERSION}"
        )));
    }
    let id = MessageId::from_bytes(r.array("id")?);
    let accepted_at = Tick::from_millis(u64::from_le_bytes(r.array("accepted_at")?));
    let channel = utf8(r.field("channel")?, "channel")?;
    let publish = r.field("publish section")?;
    let plan = r.field("plan section")?;
    let body = r.field("body")?;
    if r.at != bytes.len() {
        return Err(CodecError::new(format!(
            "{} bytes after the body",
            bytes.len() - r.at
        )));
    }
    Ok(Parts {
        id,
        accepted_at,
        channel,
        publish,
        plan,
        body,
    })
}

/// Decodes a stored envelope that must be `id`'s. The plan comes from
/// `plans` when it holds `id`'s, and goes there when the message repeats.
///
/// # Errors
///
/// The bytes are damaged, belong to another id, or hold options that no
/// longer make a plan.
pub fn decode_envelope(
    id: MessageId,
    bytes: &[u8],
    plans: &PlanCache,
) -> Result<Envelope, CodecError> {
    let p = split(bytes)?;
    if p.id != id {
        return Err(CodecError::new(format!(
            "the envelope of {} stored under {id}",
            p.id
        )));
    }
    let plan = match plans.get(id) {
        Some(plan) => plan,
        None => {
            let plan = Arc::new(decode_plan_section(p.plan)?);
            if plan.is_repeating() {
                plans.insert(id, plan.clone());
            }
            plan
        }
    };
    let (publish, template) = decode_publish(p.publish)?;
    let body = std::str::from_utf8(p.body).map_err(|e| CodecError::new(format!("body: {e}")))?;
    if body.is_empty() {
        return Err(CodecError::new("body: empty"));
    }
    Ok(Envelope {
        template,
        id,
        channel: p.channel.to_owned(),
        accepted_at: p.accepted_at,
        publish,
        plan,
        body: Body::from_trusted(body),
    })
}

/// Decodes only the delivery plan of a stored envelope (not the body, not
/// the headers).
///
/// # Errors
///
/// As [`decode_envelope`].
pub fn decode_plan(bytes: &[u8]) -> Result<DeliveryPlan, CodecError> {
    decode_plan_section(split(bytes)?.plan)
}

fn decode_publish(
    section: &[u8],
) -> Result<(PublishOptions, Option<Arc<TemplateSend>>), CodecError> {
    let mut p = PublishOptions::default();
    let mut template = None;
    for e in entries(section) {
        let (tag, v) = e?;
        match tag {
            P_PUBLISHER => p.publisher_id = Some(utf8(v, "publisherId")?.to_owned()),
            P_SUBTOPIC => p.subtopic = Some(utf8(v, "subtopic")?.to_owned()),
            P_HEADER => {
                let mut r = Reader { bytes: v, at: 0 };
                let name = utf8(r.field("header name")?, "header name")?;
                let value = utf8(&v[r.at..], "header value")?;
                p.headers.insert(name.to_owned(), value.to_owned());
            }
            P_TEMPLATE => {
                let v: serde_json::Value = serde_json::from_slice(v)
                    .map_err(|e| CodecError::new(format!("template: {e}")))?;
                template =
                    Some(Arc::new(TemplateSend::from_json(&v).ok_or_else(|| {
                        CodecError::new("template: not a template send")
                    })?));
            }
            other => return Err(unknown(other, "publish")),
        }
    }
    Ok((p, template))
}

fn decode_plan_section(section: &[u8]) -> Result<DeliveryPlan, CodecError> {
    let mut d = DeliveryOptions::default();
    for e in entries(section) {
        let (tag, v) = e?;
        match tag {
            D_POLICY => {
                d.publish_policy = PublishPolicy::from_ordinal(byte(v, "publishPolicy")?.into())
                    .ok_or_else(|| CodecError::new("publishPolicy: unknown ordinal"))?;
            }
            D_BROADCAST => {
                d.push_broadcast = Some(
                    PushBroadcast::from_bits(byte(v, "pushBroadcast")?)
                        .ok_or_else(|| CodecError::new("pushBroadcast: unknown bits"))?,
                );
            }
            D_SINGLECAST => d
                .push_singlecast
                .push(utf8(v, "pushSinglecast")?.to_owned()),
            D_SEGMENT => d.segment_query = Some(utf8(v, "segmentQuery")?.to_owned()),
            D_PUSH_TTL => {
                let ttl = number(v, "pushTimeToLive")?;
                d.push_time_to_live = Some(
                    u32::try_from(ttl)
                        .ok()
                        .filter(|&t| t <= limits::MAX_PUSH_TTL_SECONDS)
                        .ok_or_else(|| CodecError::new("pushTimeToLive: out of range"))?,
                );
            }
            D_COLLAPSE_KEY => {
                let k = utf8(v, "pushCollapseKey")?;
                if !limits::is_collapse_key(k) {
                    return Err(CodecError::new("pushCollapseKey: not a collapse key"));
                }
                d.push_collapse_key = Some(k.to_owned());
            }
            D_THROTTLE => {
                let n = number(v, "pushThrottlePerMinute")?;
                d.push_throttle_per_minute = Some(
                    u32::try_from(n)
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| CodecError::new("pushThrottlePerMinute: out of range"))?,
                );
            }
            D_PUBLISH_AT => {
                d.publish_at = Some(
                    limits::time_of_ms(number(v, "publishAt")?, |reason| {
                        crate::Error::InvalidPublishAt { reason }
                    })
                    .map_err(|e| CodecError::new(format!("publishAt: {e}")))?,
                );
            }
            D_REPEAT_EVERY => {
                d.repeat_every = Some(
                    limits::repeat_every_of_secs(number(v, "repeatEvery")?)
                        .map_err(|e| CodecError::new(format!("repeatEvery: {e}")))?,
                );
            }
            D_EXPIRES => {
                d.repeat_expires_at = Some(
                    limits::time_of_ms(number(v, "repeatExpiresAt")?, |reason| {
                        crate::Error::InvalidRepeatExpiresAt { reason }
                    })
                    .map_err(|e| CodecError::new(format!("repeatExpiresAt: {e}")))?,
                );
            }
            D_CRON => d.repeat_cron = Some(utf8(v, "repeatCron")?.to_owned()),
            D_TIME_ZONE => d.time_zone = Some(utf8(v, "timeZone")?.to_owned()),
            other => return Err(unknown(other, "plan")),
        }
    }
    DeliveryPlan::new(d).map_err(|e| CodecError::new(format!("delivery options: {e}")))
}

fn unknown(tag: u8, section: &str) -> CodecError {
    CodecError::new(format!(
        "unknown tag {tag} in the {section} section (written by a newer Herald?)"
    ))
}

fn utf8<'a>(v: &'a [u8], what: &str) -> Result<&'a str, CodecError> {
    std::str::from_utf8(v).map_err(|e| CodecError::new(format!("{what}: {e}")))
}

fn byte(v: &[u8], what: &str) -> Result<u8, CodecError> {
    match v {
        [b] => Ok(*b),
        _ => Err(CodecError::new(format!("{what}: {} bytes, not 1", v.len()))),
    }
}

fn number(v: &[u8], what: &str) -> Result<u64, CodecError> {
    let a: [u8; 8] = v
        .try_into()
        .map_err(|_| CodecError::new(format!("{what}: {} bytes, not 8", v.len())))?;
    Ok(u64::from_le_bytes(a))
}

/// The entries of a section.
fn entries(section: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), CodecError>> {
    let mut r = Reader {
        bytes: section,
        at: 0,
    };
    std::iter::from_fn(move || {
        if r.at == r.bytes.len() {
            return None;
        }
        let item = r
            .take(1, "entry tag")
            .and_then(|t| Ok((t[0], r.field("entry")?)));
        if item.is_err() {
            r.at = r.bytes.len(); // stop after the first error
        }
        Some(item)
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CodecError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                CodecError::new(format!(
                    "{what}: needs {n} bytes at offset {}, has {}",
                    self.at,
                    self.bytes.len()
                ))
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn field(&mut self, what: &str) -> Result<&'a [u8], CodecError> {
        let len = u32::from_le_bytes(self.array(what)?);
        self.take(len as usize, what)
    }
}

/// A bounded cache of parsed [`DeliveryPlan`]s by message id, so a
/// repeating message's cron rule and segment query are parsed once per
/// process rather than once per run.
///
/// # Implementation
///
/// Two generations of at most half the capacity each: entries go into the
/// young one; when it is full it becomes the old one (the previous old one
/// is dropped) and a hit in the old one moves the entry back to the young
/// one. So memory is bounded, the hot entries survive, and every operation
/// is O(1) with no per-entry bookkeeping.
#[derive(Debug)]
pub struct PlanCache {
    inner: Mutex<Generations>,
    half: usize,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<MessageId, Arc<DeliveryPlan>>,
    old: HashMap<MessageId, Arc<DeliveryPlan>>,
}

impl PlanCache {
    /// The default capacity: 65,536 plans.
    pub const DEFAULT_CAPACITY: usize = 1 << 16;

    /// A cache holding at most about `capacity` plans (0 caches nothing).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Generations::default()),
            half: capacity / 2,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached plan of `id`.
    pub fn get(&self, id: MessageId) -> Option<Arc<DeliveryPlan>> {
        if self.half == 0 {
            return None;
        }
        let mut g = self.lock();
        if let Some(p) = g.young.get(&id) {
            return Some(p.clone());
        }
        let p = g.old.remove(&id)?;
        Self::put(&mut g, self.half, id, p.clone());
        Some(p)
    }

    /// Caches `plan` as `id`'s.
    pub fn insert(&self, id: MessageId, plan: Arc<DeliveryPlan>) {
        if self.half == 0 {
            return;
        }
        let mut g = self.lock();
        Self::put(&mut g, self.half, id, plan);
    }

    /// Forgets `id`'s plan (the message finished).
    pub fn remove(&self, id: MessageId) {
        let mut g = self.lock();
        g.young.remove(&id);
        g.old.remove(&id);
    }

    /// How many plans are cached.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn put(g: &mut Generations, half: usize, id: MessageId, plan: Arc<DeliveryPlan>) {
        if g.young.len() >= half && !g.young.contains_key(&id) {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(id, plan);
    }
}

impl Default for PlanCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeDelta};
    use std::collections::BTreeMap;

    fn full(id: u128) -> Envelope {
        let mut headers = BTreeMap::new();
        headers.insert("city".to_owned(), "Zürich ✓".to_owned());
        headers.insert(String::new(), String::new());
        Envelope {
            template: None,
            id: MessageId::from_u128(id),
            channel: "chan-ü".into(),
            accepted_at: Tick::from_millis(1_899_999_999_000),
            publish: PublishOptions {
                publisher_id: Some("pub".into()),
                headers,
                subtopic: Some(String::new()),
            },
            plan: Arc::new(
                DeliveryPlan::new(DeliveryOptions {
                    publish_policy: PublishPolicy::Both,
                    push_broadcast: Some(PushBroadcast::IOS | PushBroadcast::OSX),
                    push_singlecast: vec!["d1".into(), "d2".into()],
                    segment_query: Some("os = 'IOS'".into()),
                    publish_at: DateTime::from_timestamp_millis(1_900_000_000_123),
                    repeat_every: None,
                    repeat_expires_at: DateTime::from_timestamp_millis(1_900_000_999_000),
                    repeat_cron: Some("0 30 9 * * Mon-Fri".into()),
                    time_zone: Some("Europe/Berlin".into()),
                    ..DeliveryOptions::default()
                })
                .unwrap(),
            ),
            body: Body::from_json(r#"{"text": "héllo", "n": [1, 2.5, null]}"#).unwrap(),
        }
    }

    fn plain(id: u128) -> Envelope {
        Envelope {
            template: None,
            id: MessageId::from_u128(id),
            channel: "c".into(),
            accepted_at: Tick::from_millis(0),
            publish: PublishOptions::default(),
            plan: Arc::new(DeliveryPlan::default()),
            body: Body::from("x"),
        }
    }

    #[test]
    fn push_options_and_a_template_send_round_trip() {
        let mut e = full(9);
        let mut d = e.delivery().clone();
        d.push_time_to_live = Some(0);
        d.push_collapse_key = Some("k".into());
        d.push_throttle_per_minute = Some(1);
        e.plan = Arc::new(DeliveryPlan::new(d).unwrap());
        e.template = Some(Arc::new(TemplateSend {
            name: "t ✓".into(),
            message: "{a|b}".into(),
            title: String::new(),
            subtitle: "s".into(),
            headers: BTreeMap::from([("h".into(), "{x}".into())]),
            values: BTreeMap::from([("x".into(), "\"'".into())]),
        }));
        let bytes = encode_envelope(&e).unwrap();
        let back = decode_envelope(e.id, &bytes, &PlanCache::new(16)).unwrap();
        assert_eq!(back.template, e.template);
        assert_eq!(back.delivery(), e.delivery());
        assert_eq!(encode_envelope(&back).unwrap(), bytes);
    }

    #[test]
    fn round_trips() {
        let cache = PlanCache::new(16);
        for e in [full(1), plain(2)] {
            let bytes = encode_envelope(&e).unwrap();
            assert_eq!(bytes[0], ENVELOPE_VERSION);
            assert_eq!(&bytes[1..17], &e.id.to_bytes());
            assert_eq!(decode_envelope(e.id, &bytes, &cache).unwrap(), e);
            assert_eq!(decode_plan(&bytes).unwrap(), *e.plan);
            assert!(
                bytes.ends_with(e.body.get().as_bytes()),
                "the body is last, as is"
            );
        }
        let every = Envelope {
            template: None,
            plan: Arc::new(
                DeliveryPlan::new(DeliveryOptions {
                    repeat_every: Some(TimeDelta::seconds(60)),
                    ..DeliveryOptions::default()
                })
                .unwrap(),
            ),
            ..plain(3)
        };
        let bytes = encode_envelope(&every).unwrap();
        assert_eq!(decode_envelope(every.id, &bytes, &cache).unwrap(), every);
        assert_eq!(
            cache.len(),
            2,
            "the two repeating plans are cached, the one-off not"
        );
    }

    #[test]
    fn a_cached_plan_is_reused() {
        let cache = PlanCache::new(16);
        let e = full(7);
        let bytes = encode_envelope(&e).unwrap();
        let a = decode_envelope(e.id, &bytes, &cache).unwrap();
        let b = decode_envelope(e.id, &bytes, &cache).unwrap();
        assert!(Arc::ptr_eq(&a.plan, &b.plan));
        cache.remove(e.id);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_hot_entries() {
        let cache = PlanCache::new(8);
        let plan = Arc::new(DeliveryPlan::default());
        let hot = MessageId::from_u128(0);
        cache.insert(hot, plan.clone());
        for i in 1..1000u128 {
            cache.insert(MessageId::from_u128(i), plan.clone());
            assert!(cache.get(hot).is_some(), "a hot entry survives ({i})");
            assert!(cache.len() <= 8);
        }
        assert!(cache.get(MessageId::from_u128(1)).is_none());
        let off = PlanCache::new(0);
        off.insert(hot, plan);
        assert!(off.get(hot).is_none());
    }

    /// The fuzz seeds were written from the layout documented above by an
    /// independent (Python) writer: the codec reads them as documented.
    #[test]
    fn the_documented_layout_decodes() {
        let cache = PlanCache::new(0);
        let full = include_bytes!("../../../fuzz/seeds/stored_envelope/full");
        let id = MessageId::from_u128(0x0190_B2E4_5A1C_7D3E_8F00_1234_5678_90AB);
        let e = decode_envelope(id, full, &cache).expect("the documented layout");
        assert_eq!(e.channel, "chan-ü");
        assert_eq!(e.accepted_at, Tick::from_millis(1_800_000_000_000));
        assert_eq!(e.publish.publisher_id.as_deref(), Some("pub-1"));
        assert_eq!(e.publish.subtopic.as_deref(), Some("sub"));
        assert_eq!(e.publish.headers["city"], "Zürich");
        let d = e.delivery();
        assert_eq!(d.publish_policy, PublishPolicy::Both);
        assert_eq!(d.push_broadcast.map(PushBroadcast::bits), Some(9));
        assert_eq!(d.push_singlecast, ["dev-1"]);
        assert_eq!(d.segment_query.as_deref(), Some("os = 'IOS'"));
        assert_eq!(
            d.publish_at.map(|t| t.timestamp_millis()),
            Some(1_900_000_000_123)
        );
        assert_eq!(
            d.repeat_expires_at.map(|t| t.timestamp_millis()),
            Some(1_900_000_999_000)
        );
        assert_eq!(d.repeat_cron.as_deref(), Some("0 30 9 * * Mon-Fri"));
        assert_eq!(d.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(e.body.get(), r#"{"text": "héllo", "n": [1, 2.5, null]}"#);
        assert_eq!(
            encode_envelope(&e).unwrap(),
            full,
            "and writes it back the same"
        );
        let every = include_bytes!("../../../fuzz/seeds/stored_envelope/every");
        let e = decode_envelope(MessageId::from_u128(id.as_u128() + 1), every, &cache).unwrap();
        assert_eq!(e.delivery().repeat_every, Some(TimeDelta::seconds(60)));
        assert_eq!(e.body.get(), r#""tick""#);
        let plain = include_bytes!("../../../fuzz/seeds/stored_envelope/plain");
        let e = decode_envelope(MessageId::from_u128(id.as_u128() + 2), plain, &cache).unwrap();
        assert_eq!(*e.plan, DeliveryPlan::default());
    }

    /// Every truncation and every single-byte change decodes to an error or
    /// to some envelope, never a panic; truncations are errors.
    #[test]
    fn damage_is_an_error_not_a_panic() {
        let e = full(9);
        let good = encode_envelope(&e).unwrap();
        let cache = PlanCache::new(0);
        for len in 0..good.len() {
            assert!(
                decode_envelope(e.id, &good[..len], &cache).is_err(),
                "truncated to {len} bytes"
            );
        }
        for at in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                let _ = decode_envelope(e.id, &bad, &cache);
            }
        }
        assert!(decode_envelope(MessageId::from_u128(10), &good, &cache).is_err());
        let mut long = good.clone();
        long.push(b' ');
        assert!(
            decode_envelope(e.id, &long, &cache).is_err(),
            "a trailing byte"
        );
        let mut v3 = good.clone();
        v3[0] = 3;
        assert!(
            decode_envelope(e.id, &v3, &cache)
                .unwrap_err()
                .what()
                .contains("version 3")
        );
    }
}
