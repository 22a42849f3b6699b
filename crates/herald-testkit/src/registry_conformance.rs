//! The [`DeviceRegistry`] and [`TemplateStore`] conformance suites: each
//! `pub async fn` takes a fresh, empty registry and panics (naming the
//! rule) if it breaks its contract.
//! [`registry_conformance_tests!`](crate::registry_conformance_tests) and
//! [`template_conformance_tests!`](crate::template_conformance_tests) run
//! each check as its own test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use herald::{DeviceRegistration, DeviceRegistry, InvalidToken, Os, PushTemplate, TemplateStore};
use herald_core::Tick;

/// Generates one `#[tokio::test]` per registry check, each on a fresh
/// registry made by the given expression (an `async` block evaluating to
/// it).
///
/// `(optional $make)`: the expression evaluates to an `Option` of it, and
/// `None` ends each test at once, passing (for a store that needs a
/// service the environment may lack; the caller prints the one `SKIPPED:`
/// line).
#[macro_export]
macro_rules! registry_conformance_tests {
    ($make:expr) => {
        $crate::registry_conformance_tests!(@each $make;
            register_then_device_round_trips_everything,
            device_of_an_unknown_id_is_none,
            register_again_replaces_everything,
            unregister_removes_the_device_from_every_channel,
            channel_pages_are_complete_and_in_device_id_order,
            a_cursor_survives_changes_during_a_walk,
            remove_invalid_spares_devices_registered_since,
            purge_expired_removes_only_expired_up_to_the_limit,
            concurrent_registers_of_one_device_leave_one_registration,
        );
    };
    (optional $make:expr) => {
        $crate::registry_conformance_tests!(@each_optional $make;
            register_then_device_round_trips_everything,
            device_of_an_unknown_id_is_none,
            register_again_replaces_everything,
            unregister_removes_the_device_from_every_channel,
            channel_pages_are_complete_and_in_device_id_order,
            a_cursor_survives_changes_during_a_walk,
            remove_invalid_spares_devices_registered_since,
            purge_expired_removes_only_expired_up_to_the_limit,
            concurrent_registers_of_one_device_leave_one_registration,
        );
    };
    (@each $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let registry = $make.await;
                $crate::registry_conformance::$check(registry).await;
            }
        )*
    };
    (@each_optional $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(registry) = $make.await else {
                    return;
                };
                $crate::registry_conformance::$check(registry).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per template-store check.
///
/// `(optional $make)`: the expression evaluates to an `Option` of it, and
/// `None` ends each test at once, passing (for a store that needs a
/// service the environment may lack; the caller prints the one `SKIPPED:`
/// line).
#[macro_export]
macro_rules! template_conformance_tests {
    ($make:expr) => {
        $crate::template_conformance_tests!(@each $make;
            put_then_get_round_trips_a_template,
            put_replaces_and_delete_answers_whether_it_existed,
            list_is_by_name_and_filtered_by_os,
        );
    };
    (optional $make:expr) => {
        $crate::template_conformance_tests!(@each_optional $make;
            put_then_get_round_trips_a_template,
            put_replaces_and_delete_answers_whether_it_existed,
            list_is_by_name_and_filtered_by_os,
        );
    };
    (@each $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let templates = $make.await;
                $crate::registry_conformance::$check(templates).await;
            }
        )*
    };
    (@each_optional $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(templates) = $make.await else {
                    return;
                };
                $crate::registry_conformance::$check(templates).await;
            }
        )*
    };
}

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

/// A registration of `device_id` to `channels`, registered at
/// `registered_at` ms.
pub fn device(device_id: &str, channels: &[&str], registered_at: u64) -> DeviceRegistration {
    let mut properties = BTreeMap::new();
    properties.insert("lang".to_owned(), "de".to_owned());
    properties.insert("name's".to_owned(), "Zoë \"✓\"".to_owned());
    DeviceRegistration {
        registration_id: format!("reg-{device_id}-{registered_at}"),
        device_id: device_id.to_owned(),
        device_token: format!("token-{device_id}"),
        os: Os::Ios,
        os_version: "17.4".to_owned(),
        channels: {
            let mut c: Vec<String> = channels.iter().map(|s| (*s).to_owned()).collect();
            c.sort();
            c.dedup();
            c
        },
        expiration: None,
        properties,
        registered_at: t(registered_at),
    }
}

async fn ids<R: DeviceRegistry>(r: &R, channel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = r
            .channel_devices(channel, after.as_deref(), 7)
            .await
            .expect("channel_devices");
        assert!(page.len() <= 7, "a page holds at most `limit` devices");
        let Some(last) = page.last() else { break };
        after = Some(last.device_id.clone());
        out.extend(page.iter().map(|d| d.device_id.clone()));
    }
    out
}

/// Every field survives the round trip, with unicode.
pub async fn register_then_device_round_trips_everything<R: DeviceRegistry>(r: R) {
    let mut d = device("dévice-1", &["news", "sport"], 1_000);
    d.os = Os::Osx;
    d.expiration = Some(t(9_999_999));
    r.register(d.clone()).await.unwrap();
    let got = r.device("dévice-1").await.unwrap().expect("registered");
    assert_eq!(*got, d, "every field round-trips");
    for c in ["news", "sport"] {
        let page = r.channel_devices(c, None, 10).await.unwrap();
        assert_eq!(page.len(), 1, "listed in {c}");
        assert_eq!(*page[0], d);
    }
}

/// Unknown ids, channels and empty pages.
pub async fn device_of_an_unknown_id_is_none<R: DeviceRegistry>(r: R) {
    assert!(r.device("nobody").await.unwrap().is_none());
    assert!(!r.unregister("nobody").await.unwrap());
    r.register(device("a", &["news"], 1)).await.unwrap();
    assert!(
        r.device("A").await.unwrap().is_none(),
        "ids are case-sensitive"
    );
    assert!(
        r.channel_devices("other", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(r.channel_devices("news", None, 0).await.unwrap().is_empty());
    assert!(
        r.channel_devices("new", None, 10).await.unwrap().is_empty(),
        "no prefix match"
    );
    assert!(
        r.channel_devices("news2", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A second registration replaces token, channels, expiration, properties.
pub async fn register_again_replaces_everything<R: DeviceRegistry>(r: R) {
    let mut first = device("d", &["a", "b"], 1);
    first.expiration = Some(t(50));
    r.register(first).await.unwrap();
    let mut second = device("d", &["b", "c"], 2);
    second.device_token = "new-token".into();
    second.properties.clear();
    second.os = Os::Android;
    r.register(second.clone()).await.unwrap();
    assert_eq!(*r.device("d").await.unwrap().unwrap(), second);
    assert!(
        ids(&r, "a").await.is_empty(),
        "dropped channel no longer lists it"
    );
    assert_eq!(ids(&r, "b").await, ["d"], "listed once");
    assert_eq!(ids(&r, "c").await, ["d"]);
    assert_eq!(
        r.purge_expired(t(100), 10).await.unwrap(),
        0,
        "the old expiration went with the old registration"
    );
    assert!(r.device("d").await.unwrap().is_some());
}

/// Unregister removes it everywhere, once.
pub async fn unregister_removes_the_device_from_every_channel<R: DeviceRegistry>(r: R) {
    r.register(device("d", &["a", "b"], 1)).await.unwrap();
    r.register(device("e", &["a"], 1)).await.unwrap();
    assert!(r.unregister("d").await.unwrap());
    assert!(
        !r.unregister("d").await.unwrap(),
        "a second unregister finds nothing"
    );
    assert!(r.device("d").await.unwrap().is_none());
    assert_eq!(ids(&r, "a").await, ["e"]);
    assert!(ids(&r, "b").await.is_empty());
}

/// 300 devices in two channels: paging lists each channel's devices
/// once, in byte order of their ids, and nothing of the other channel.
pub async fn channel_pages_are_complete_and_in_device_id_order<R: DeviceRegistry>(r: R) {
    let mut expected = BTreeSet::new();
    for i in (0..300u32).rev() {
        // Mixed widths and cases, so numeric and byte order differ.
        let id = format!("{}-{i}", if i % 3 == 0 { "Z" } else { "a" });
        let channels: &[&str] = if i % 2 == 0 {
            &["even", "all"]
        } else {
            &["all"]
        };
        r.register(device(&id, channels, 1)).await.unwrap();
        if i % 2 == 0 {
            expected.insert(id);
        }
    }
    let even = ids(&r, "even").await;
    assert_eq!(
        even,
        expected.into_iter().collect::<Vec<_>>(),
        "complete, in byte order"
    );
    assert_eq!(ids(&r, "all").await.len(), 300);
}

/// Devices registered or removed during a walk do not make the walk skip
/// or repeat any other device.
pub async fn a_cursor_survives_changes_during_a_walk<R: DeviceRegistry>(r: R) {
    for i in 0..100 {
        r.register(device(&format!("d{i:03}"), &["c"], 1))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut round = 0;
    loop {
        let page = r.channel_devices("c", after.as_deref(), 10).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.device_id.clone());
        seen.extend(page.iter().map(|d| d.device_id.clone()));
        // Between pages: remove one device ahead, add one behind and one
        // ahead, re-register the cursor's own device.
        round += 1;
        let _ = r
            .unregister(&format!("d{:03}", (round * 10 + 5).min(99)))
            .await;
        r.register(device(&format!("b{round:03}"), &["c"], 2))
            .await
            .unwrap();
        r.register(device(&format!("e{round:03}"), &["c"], 2))
            .await
            .unwrap();
        r.register(device(&last.device_id, &["c"], 3))
            .await
            .unwrap();
    }
    let untouched: Vec<String> = (0..100)
        .filter(|i| i % 10 != 5 || *i < 15)
        .map(|i| format!("d{i:03}"))
        .collect();
    for id in &untouched {
        assert_eq!(
            seen.iter().filter(|s| *s == id).count(),
            1,
            "{id} is seen exactly once"
        );
    }
    assert!(
        !seen.iter().any(|s| s.starts_with('b')),
        "registered behind the cursor: unseen"
    );
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "the walk is ordered and without repeats");
}

/// Only a device that still has the refused token and was registered at or
/// before the gateway's time is removed.
pub async fn remove_invalid_spares_devices_registered_since<R: DeviceRegistry>(r: R) {
    r.register(device("old", &["c"], 100)).await.unwrap();
    r.register(device("new", &["c"], 300)).await.unwrap();
    r.register(device("same", &["c"], 200)).await.unwrap();
    let mut other = device("other", &["c"], 100);
    other.device_token = "rotated".into();
    r.register(other).await.unwrap();
    let refuse = |id: &str, seen: u64| InvalidToken {
        device_id: id.to_owned(),
        device_token: format!("token-{id}"),
        seen_at: t(seen),
    };
    let removed = r
        .remove_invalid(vec![
            refuse("old", 200),
            refuse("new", 200),
            refuse("same", 200),
            refuse("other", 200),
            refuse("ghost", 200),
        ])
        .await
        .unwrap();
    assert_eq!(
        removed,
        [true, false, true, false, false],
        "one answer per token, in order"
    );
    assert!(r.device("old").await.unwrap().is_none());
    assert!(
        r.device("same").await.unwrap().is_none(),
        "registered at the gateway's time: removed"
    );
    assert!(
        r.device("new").await.unwrap().is_some(),
        "registered again since: kept"
    );
    assert!(
        r.device("other").await.unwrap().is_some(),
        "another token now: kept"
    );
    assert_eq!(ids(&r, "c").await, ["new", "other"]);
}

/// Purge takes expired registrations only, at most `limit` per call.
pub async fn purge_expired_removes_only_expired_up_to_the_limit<R: DeviceRegistry>(r: R) {
    for i in 0..10u64 {
        let mut d = device(&format!("x{i}"), &["c"], 1);
        d.expiration = Some(t(1_000 + i));
        r.register(d).await.unwrap();
    }
    r.register(device("forever", &["c"], 1)).await.unwrap();
    assert_eq!(r.purge_expired(t(999), 100).await.unwrap(), 0);
    assert_eq!(
        r.purge_expired(t(1_005), 4).await.unwrap(),
        4,
        "at most the limit"
    );
    assert_eq!(
        r.purge_expired(t(1_005), 4).await.unwrap(),
        2,
        "the rest expired at 1005"
    );
    assert_eq!(r.purge_expired(t(1_005), 4).await.unwrap(), 0);
    assert!(
        r.device("x5").await.unwrap().is_none(),
        "expired at exactly now: purged"
    );
    assert!(r.device("x6").await.unwrap().is_some());
    assert_eq!(r.purge_expired(t(u64::MAX), 100).await.unwrap(), 4);
    assert_eq!(ids(&r, "c").await, ["forever"]);
}

/// Racing registrations of one device leave exactly one of them, listed
/// in exactly its channels.
pub async fn concurrent_registers_of_one_device_leave_one_registration<R: DeviceRegistry>(r: R) {
    let r = Arc::new(r);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move {
                let channel = format!("c{i}");
                let mut d = device("d", &[channel.as_str(), "shared"], i);
                d.device_token = format!("t{i}");
                r.register(d).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let d = r.device("d").await.unwrap().expect("registered");
    let i: u64 = d.device_token[1..].parse().unwrap();
    assert_eq!(d.registered_at, t(i), "one registration, whole");
    for j in 0..16 {
        let listed = ids(&*r, &format!("c{j}")).await;
        assert_eq!(
            listed.len(),
            usize::from(j == i),
            "c{j} lists it only if it won"
        );
    }
    assert_eq!(ids(&*r, "shared").await, ["d"]);
}

/// A template with every field set.
pub fn template(name: &str, os: &[&str]) -> PushTemplate {
    PushTemplate::from_json(&serde_json::json!({
        "name": name,
        "message": "Hallo {firstName|Freund} ✓",
        "title": "T {{x}}",
        "subtitle": "S",
        "headers": {"ios-badge": "1", "custom": "{v|w}"},
        "audience": {"os": os, "channel": "news", "segmentQuery": "lang = {lang|de}"},
    }))
    .expect("a valid template")
}

/// Put then get answers the same template; unknown names are `None`.
pub async fn put_then_get_round_trips_a_template<T: TemplateStore>(s: T) {
    let tpl = template("welcome", &["IOS"]);
    s.put_template(tpl.clone()).await.unwrap();
    assert_eq!(*s.template("welcome").await.unwrap().unwrap(), tpl);
    assert!(
        s.template("Welcome").await.unwrap().is_none(),
        "names are case-sensitive"
    );
    assert!(s.template("nope").await.unwrap().is_none());
}

/// Put replaces; delete answers whether there was one.
pub async fn put_replaces_and_delete_answers_whether_it_existed<T: TemplateStore>(s: T) {
    s.put_template(template("a", &["IOS"])).await.unwrap();
    let replaced = template("a", &["ANDROID"]);
    s.put_template(replaced.clone()).await.unwrap();
    assert_eq!(*s.template("a").await.unwrap().unwrap(), replaced);
    assert_eq!(s.list_templates(None).await.unwrap().len(), 1);
    assert!(s.delete_template("a").await.unwrap());
    assert!(!s.delete_template("a").await.unwrap());
    assert!(s.template("a").await.unwrap().is_none());
}

/// Listing is by name and filtered by OS (`IOS` covers OSX).
pub async fn list_is_by_name_and_filtered_by_os<T: TemplateStore>(s: T) {
    s.put_template(template("c-ios", &["IOS"])).await.unwrap();
    s.put_template(template("a-android", &["ANDROID"]))
        .await
        .unwrap();
    s.put_template(template("b-all", &["ALL"])).await.unwrap();
    let names = |v: Vec<Arc<PushTemplate>>| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_templates(None).await.unwrap()),
        ["a-android", "b-all", "c-ios"]
    );
    assert_eq!(
        names(s.list_templates(Some(Os::Ios)).await.unwrap()),
        ["b-all", "c-ios"]
    );
    assert_eq!(
        names(s.list_templates(Some(Os::Osx)).await.unwrap()),
        ["b-all", "c-ios"]
    );
    assert_eq!(
        names(s.list_templates(Some(Os::Android)).await.unwrap()),
        ["a-android", "b-all"]
    );
}
