//! The push REST routes end to end: device registrations
//! (`messaging/registrations`) and push templates
//! (`messaging/pushtemplates`), their errors, and the keys' push rights.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{APP, KEY, TestServer, now_ms, start};

const UNKNOWN_DEVICE: &str = "Unable to retrieve device registration - unknown device ID.";

/// Keys with one push right each (and `plain`, configured as before push
/// rights existed), on the test app.
const KEYS: &str = r#"
    [[apps]]
    id = "TEST-APP"

    [[apps.keys]]
    key = "phone"
    publish = []
    subscribe = ["news.*"]
    register = true

    [[apps.keys]]
    key = "pusher"
    publish = ["news.*"]
    push = ["news.*"]

    [[apps.keys]]
    key = "editor"
    publish = []
    subscribe = []
    templates = true

    [[apps.keys]]
    key = "plain"
"#;

fn device(id: &str) -> Value {
    json!({"deviceId": id, "deviceToken": format!("token-{id}"), "os": "ANDROID"})
}

/// `(status, code, message)` of an answer, for one-line comparisons.
fn error_of(answer: &(StatusCode, Value)) -> (u16, u64, &str) {
    let (status, body) = answer;
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "an error body is {{code, message}}: {body}"
    );
    (
        status.as_u16(),
        body["code"].as_u64().expect("a code"),
        body["message"].as_str().expect("a message"),
    )
}

impl TestServer {
    async fn register(&self, body: &Value) -> (StatusCode, Value) {
        self.post(&self.url("messaging/registrations"), body).await
    }

    async fn registration(&self, device: &str) -> (StatusCode, Value) {
        self.get(&self.url(&format!("messaging/registrations/{device}")))
            .await
    }

    async fn unregister(&self, device: &str) -> (StatusCode, Value) {
        self.delete(&self.url(&format!("messaging/registrations/{device}")))
            .await
    }

    async fn put_template(&self, body: &Value) -> (StatusCode, Value) {
        self.post(&self.url("messaging/pushtemplates"), body).await
    }

    async fn templates(&self, device_type: &str) -> (StatusCode, Value) {
        self.get(&self.url(&format!("messaging/pushtemplates/{device_type}")))
            .await
    }

    /// The names of the templates listed for `device_type` (asserts 200).
    async fn template_names(&self, device_type: &str) -> Vec<String> {
        let (status, body) = self.templates(device_type).await;
        assert_eq!(status, StatusCode::OK, "{device_type}: {body}");
        body.as_array()
            .expect("an array")
            .iter()
            .map(|t| t["name"].as_str().expect("a name").to_owned())
            .collect()
    }
}

#[tokio::test]
async fn a_registration_round_trips() {
    let s = start("").await;
    let before = now_ms();
    let body = json!({
        "deviceToken": "a1b2c3",
        "deviceId": "phone-1",
        "os": "ios",
        "osVersion": "17.4",
        "channels": ["news", "alerts", "news"],
        "expiration": 1_893_477_600, // seconds (the JS SDK's Date)
        "properties": {"lang": "de", "age": 42, "vip": true},
        "unknownKey": "ignored",
    });
    let (status, answer) = s.register(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["registrationId"].as_str().expect("registrationId");
    assert!(!id.is_empty());
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");

    let (status, list) = s.registration("phone-1").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 1);
    let reg = &list[0];
    let registered_at = reg["registeredAt"].as_u64().expect("registeredAt");
    assert!(
        (before..=now_ms()).contains(&registered_at),
        "{registered_at}"
    );
    assert_eq!(
        reg,
        &json!({
            "id": id,
            "deviceId": "phone-1",
            "deviceToken": "a1b2c3",
            "os": "IOS",
            "osVersion": "17.4",
            "channels": ["alerts", "news"],
            "expiration": 1_893_477_600_000_u64,
            "properties": {"lang": "de", "age": "42", "vip": "true"},
            "registeredAt": registered_at,
        })
    );

    // Again, the Swift way (expiration in ms): replaces everything.
    let (status, again) = s
        .register(&json!({
            "deviceToken": "d4e5f6",
            "deviceId": "phone-1",
            "os": "OSX",
            "channels": ["sport"],
            "expiration": 1_893_477_600_123_u64,
        }))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_ne!(again["registrationId"], answer["registrationId"]);
    let (_, list) = s.registration("phone-1").await;
    let reg = &list[0];
    assert_eq!(reg["id"], again["registrationId"]);
    assert_eq!(reg["deviceToken"], "d4e5f6");
    assert_eq!(reg["os"], "OSX");
    assert_eq!(reg["osVersion"], "");
    assert_eq!(reg["channels"], json!(["sport"]), "channels replaced");
    assert_eq!(reg["expiration"], 1_893_477_600_123_u64);
    assert_eq!(reg["properties"], json!({}), "properties replaced");

    // No channels: "default"; no expiration: null.
    let (status, _) = s.register(&device("tablet")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = s.registration("tablet").await;
    assert_eq!(list[0]["channels"], json!(["default"]));
    assert_eq!(list[0]["expiration"], Value::Null);

    // Unregister: {"result": true}; then it is unknown (404, 5000).
    let (status, body) = s.unregister("phone-1").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": true})));
    let gone = s.registration("phone-1").await;
    assert_eq!(error_of(&gone), (404, 5000, UNKNOWN_DEVICE));
    let again = s.unregister("phone-1").await;
    assert_eq!(error_of(&again), (404, 5000, UNKNOWN_DEVICE));
    // The other device is still there.
    let (status, _) = s.registration("tablet").await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn device_ids_are_percent_decoded_path_segments() {
    let s = start("").await;
    let body = json!({"deviceId": "my phone/ä", "deviceToken": "t", "os": "IOS"});
    let (status, answer) = s.register(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, list) = s.registration("my%20phone%2F%C3%A4").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list[0]["deviceId"], "my phone/ä");
    // Not decodable: taken as it is, so unknown.
    let bad = s.registration("%FF").await;
    assert_eq!(error_of(&bad), (404, 5000, UNKNOWN_DEVICE));
    let (status, body) = s.unregister("my%20phone%2F%C3%A4").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": true})));
    s.stop().await;
}

#[tokio::test]
async fn a_registration_that_has_already_expired_is_refused_and_stores_nothing() {
    let s = start("").await;
    let expired = json!({"deviceId": "old", "deviceToken": "t", "os": "WP", "expiration": 10});
    let (status, body) = s.register(&expired).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 5015, "{body}");
    assert_eq!(
        body["message"],
        "Invalid device registration. expiration 10000 (epoch ms) is not in the future; \
         the device would receive nothing."
    );
    let answer = s.registration("old").await;
    assert_eq!(error_of(&answer), (404, 5000, UNKNOWN_DEVICE));
    s.stop().await;
}

#[tokio::test]
async fn invalid_registrations_are_400_with_what_is_wrong() {
    let s = start("").await;
    let cases = [
        (
            json!({"deviceId": "d", "os": "IOS"}),
            "Invalid device registration. deviceToken is required.",
        ),
        (
            json!({"deviceToken": "t", "os": "IOS"}),
            "Invalid device registration. deviceId is required.",
        ),
        (
            json!({"deviceId": "d", "deviceToken": "t", "os": "PALM"}),
            "Invalid device registration. os is IOS, ANDROID, OSX or WP, not \"PALM\".",
        ),
        (
            json!({"deviceId": "d", "deviceToken": "t", "os": "IOS", "properties": {"os": "x"}}),
            "Invalid device registration. The property \"os\" is named like a registration field.",
        ),
        (
            json!({"deviceId": "d", "deviceToken": "t", "os": "IOS", "channels": ["ok", "push"]}),
            "Invalid device registration. Channel \"push\": Invalid channel name. \
             \"push\" is reserved: messaging/push is not a channel.",
        ),
        (
            json!({"deviceId": "d", "deviceToken": "t", "os": "IOS", "expiration": "soon"}),
            "Invalid device registration. expiration is a time in epoch seconds (below 1e11) \
             or milliseconds, not \"soon\".",
        ),
        (
            json!(["not", "an", "object"]),
            "Invalid device registration. The body is a JSON object, not [\"not\",\"an\",\"object\"].",
        ),
    ];
    for (body, message) in cases {
        let answer = s.register(&body).await;
        assert_eq!(error_of(&answer), (400, 5015, message), "{body}");
    }
    // Nothing was stored.
    let answer = s.registration("d").await;
    assert_eq!(error_of(&answer).1, 5000);

    // The body: JSON, present, not too large.
    let url = s.url("messaging/registrations");
    let empty = s.send(s.http.post(&url)).await;
    assert_eq!(
        error_of(&empty),
        (400, 8004, "Malformed JSON body: the body is empty")
    );
    let broken = s
        .send(
            s.http
                .post(&url)
                .header("content-type", "application/json")
                .body("{\"deviceId\":"),
        )
        .await;
    assert_eq!(error_of(&broken).1, 8004);
    let text = s
        .send(
            s.http
                .post(&url)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_eq!(
        error_of(&text),
        (415, 8005, "Content-Type must be application/json.")
    );
    s.stop().await;
}

#[tokio::test]
async fn templates_are_created_replaced_listed_by_os_and_deleted() {
    let s = start("").await;
    assert!(s.template_names("ALL").await.is_empty());

    let welcome = json!({
        "name": "welcome",
        "message": "Hello {firstName|there}",
        "title": "Welcome",
        "headers": {"ios-badge": 1},
        "audience": {"os": ["IOS"], "channel": "news", "segmentQuery": "lang = {lang|en}"},
    });
    let (status, stored) = s.put_template(&welcome).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        stored,
        json!({
            "name": "welcome",
            "message": "Hello {firstName|there}",
            "title": "Welcome",
            "subtitle": "",
            "headers": {"ios-badge": "1"},
            "audience": {"os": ["IOS"], "channel": "news", "segmentQuery": "lang = {lang|en}"},
        })
    );
    let (status, stored) = s
        .put_template(
            &json!({"name": "sale", "message": "20% off", "audience": {"os": ["ANDROID"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        stored["audience"],
        json!({"os": ["ANDROID"], "channel": "default"})
    );
    let (status, stored) = s.put_template(&json!({"name": "all-os"})).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        stored["audience"]["os"],
        json!(["IOS", "ANDROID", "WP"]),
        "ALL by default (IOS covers OSX)"
    );

    // By OS, any case, by name.
    assert_eq!(s.template_names("IOS").await, ["all-os", "welcome"]);
    assert_eq!(s.template_names("ios").await, ["all-os", "welcome"]);
    assert_eq!(s.template_names("ANDROID").await, ["all-os", "sale"]);
    assert_eq!(s.template_names("All").await, ["all-os", "sale", "welcome"]);
    // Without a device type (the Swift SDK): all of them.
    let (status, all) = s.get(&s.url("messaging/pushtemplates")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (_, ios) = s.templates("IOS").await;
    assert_eq!(
        ios[1]["message"], "Hello {firstName|there}",
        "whole templates"
    );

    // Replace: same name, new content and audience.
    let (status, _) = s
        .put_template(&json!({"name": "welcome", "message": "Hi", "audience": {"os": "ANDROID"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.template_names("IOS").await, ["all-os"]);
    assert_eq!(
        s.template_names("ANDROID").await,
        ["all-os", "sale", "welcome"]
    );
    let (_, android) = s.templates("ANDROID").await;
    assert_eq!(android[2]["message"], "Hi");
    assert_eq!(android[2]["title"], "", "replaced, not merged");

    // Delete: {"result": true}; again: 404, 5050.
    let url = s.url("messaging/pushtemplates/welcome");
    let (status, body) = s.delete(&url).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": true})));
    let again = s.delete(&url).await;
    assert_eq!(error_of(&again), (404, 5050, "Push template not found."));
    assert_eq!(s.template_names("ALL").await, ["all-os", "sale"]);
    // A name is a percent-decoded segment.
    let (status, _) = s.put_template(&json!({"name": "sale ä"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .delete(&s.url("messaging/pushtemplates/sale%20%C3%A4"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.template_names("ALL").await, ["all-os", "sale"]);
    // Found by schemathesis: a name holding `%e3`, addressed with its other
    // characters escaped and that `%` not (an escape that is not UTF-8
    // stays as its text).
    let (status, _) = s.put_template(&json!({"name": "aò%e3¸"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s
        .delete(&s.url("messaging/pushtemplates/a%C3%B2%e3%C2%B8"))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": true})));
    assert_eq!(s.template_names("ALL").await, ["all-os", "sale"]);
    s.stop().await;
}

#[tokio::test]
async fn invalid_templates_and_device_types_are_400() {
    let s = start("").await;
    let cases = [
        (json!({}), "Invalid push template. name is required."),
        (
            json!({"name": "n", "title": "{"}),
            "Invalid push template. title: '{' at byte 0 is not closed (write '{{' for a literal brace).",
        ),
        (
            json!({"name": "n", "audience": {"channel": "channels"}}),
            "Invalid push template. audience.channel \"channels\": Invalid channel name. \
             \"channels\" is reserved: messaging/channels is not a channel.",
        ),
        (
            json!({"name": "n", "audience": {"os": []}}),
            "Invalid push template. audience.os is a non-empty list of OS names, not [].",
        ),
    ];
    for (body, message) in cases {
        let answer = s.put_template(&body).await;
        assert_eq!(error_of(&answer), (400, 5051, message), "{body}");
    }
    assert!(s.template_names("ALL").await.is_empty(), "nothing stored");
    for bad in ["OSX", "WINDOWS", "%20IOS"] {
        let answer = s.templates(bad).await;
        let (status, code, message) = error_of(&answer);
        assert_eq!((status, code), (400, 8012), "{bad}");
        assert!(
            message.starts_with("Invalid device type \"")
                && message.ends_with("\": use IOS, ANDROID or ALL."),
            "{message}"
        );
    }
    let answer = s.templates("WINDOWS").await;
    assert_eq!(
        error_of(&answer).2,
        "Invalid device type \"WINDOWS\": use IOS, ANDROID or ALL."
    );
    let empty = s.send(s.http.post(s.url("messaging/pushtemplates"))).await;
    assert_eq!(error_of(&empty).1, 8004);
    s.stop().await;
}

#[tokio::test]
async fn each_push_right_is_its_own() {
    let s = start(KEYS).await;
    let as_key = |key: &str, path: &str| s.url_as(APP, key, path);
    let denied_register = "User does not have the permission to register devices";
    let denied_templates = "User does not have the permission to manage push templates";

    // Registrations: the `register` right only. Denied before the body is
    // read: an invalid body still answers 5032.
    for key in ["pusher", "editor", "plain"] {
        for body in [device("d-1"), json!({"nonsense": true})] {
            let answer = s.post(&as_key(key, "messaging/registrations"), &body).await;
            assert_eq!(error_of(&answer), (400, 5032, denied_register), "{key}");
        }
        let answer = s.get(&as_key(key, "messaging/registrations/d-1")).await;
        assert_eq!(error_of(&answer), (400, 5032, denied_register), "{key}");
        let answer = s.delete(&as_key(key, "messaging/registrations/d-1")).await;
        assert_eq!(error_of(&answer), (400, 5032, denied_register), "{key}");
    }
    let (status, body) = s
        .post(&as_key("phone", "messaging/registrations"), &device("d-1"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = s.get(&as_key("phone", "messaging/registrations/d-1")).await;
    assert_eq!(status, StatusCode::OK);
    // The full key sees the phone's registration (one registry per app).
    let (status, _) = s.registration("d-1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .delete(&as_key("phone", "messaging/registrations/d-1"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Templates: `templates` creates and deletes; listing also takes any
    // `push` glob.
    for key in ["phone", "pusher", "plain"] {
        for body in [json!({"name": "t"}), json!({"bad": "template"})] {
            let answer = s.post(&as_key(key, "messaging/pushtemplates"), &body).await;
            assert_eq!(error_of(&answer), (400, 5034, denied_templates), "{key}");
        }
        let answer = s.delete(&as_key(key, "messaging/pushtemplates/t")).await;
        assert_eq!(error_of(&answer), (400, 5034, denied_templates), "{key}");
    }
    let (status, body) = s
        .post(
            &as_key("editor", "messaging/pushtemplates"),
            &json!({"name": "t"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for key in ["editor", "pusher", KEY] {
        let (status, list) = s.get(&as_key(key, "messaging/pushtemplates/ALL")).await;
        assert_eq!(status, StatusCode::OK, "{key}: {list}");
        assert_eq!(list[0]["name"], "t", "{key}");
        let (status, _) = s.get(&as_key(key, "messaging/pushtemplates")).await;
        assert_eq!(status, StatusCode::OK, "{key}");
    }
    for key in ["phone", "plain"] {
        for path in ["messaging/pushtemplates/ALL", "messaging/pushtemplates"] {
            let answer = s.get(&as_key(key, path)).await;
            assert_eq!(error_of(&answer), (400, 5034, denied_templates), "{key}");
        }
    }
    let (status, _) = s
        .delete(&as_key("editor", "messaging/pushtemplates/t"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The push rights add nothing to publish and subscribe.
    let answer = s
        .post(
            &as_key("editor", "messaging/news.a"),
            &json!({"message": 1}),
        )
        .await;
    assert_eq!(error_of(&answer).1, 5030);
    let (status, _) = s
        .post(&as_key("plain", "messaging/news.a"), &json!({"message": 1}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "publish keeps its default, everywhere"
    );
    s.stop().await;
}

#[tokio::test]
async fn reserved_channel_names_are_refused_for_publish() {
    let s = start("").await;
    // Spelled so that they reach the publish route (the router takes the
    // plain lower-case names for the push endpoints).
    for (segment, name) in [
        ("Registrations", "registrations"),
        ("%72egistrations", "registrations"),
        ("PUSH", "push"),
        ("%70ush", "push"),
        ("PushTemplates", "pushtemplates"),
        ("%70ushtemplates", "pushtemplates"),
        ("%63hannels", "channels"),
    ] {
        let answer = s
            .post(
                &s.url(&format!("messaging/{segment}")),
                &json!({"message": 1}),
            )
            .await;
        let message = format!(
            "Invalid channel name. \"{name}\" is reserved: messaging/{name} is not a channel."
        );
        assert_eq!(
            error_of(&answer),
            (400, 5010, message.as_str()),
            "{segment}"
        );
        // Nor for legacy polling.
        let answer = s
            .send(
                s.http
                    .post(s.url(&format!("messaging/{segment}/subscribe"))),
            )
            .await;
        assert_eq!(error_of(&answer).1, 5010, "{segment}");
    }
    // Names that only start like them are channels.
    for channel in ["registrations2", "push-news", "pushtemplates.x"] {
        let (status, body) = s
            .post(
                &s.url(&format!("messaging/{channel}")),
                &json!({"message": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{channel}: {body}");
    }
    s.stop().await;
}

#[tokio::test]
async fn wrong_methods_are_405_and_unknown_paths_404() {
    let s = start("").await;
    for (method, path, allow) in [
        ("GET", "messaging/registrations", "POST"),
        ("DELETE", "messaging/registrations", "POST"),
        ("PUT", "messaging/registrations/d", "DELETE, GET"),
        ("POST", "messaging/registrations/d", "DELETE, GET"),
        ("PATCH", "messaging/pushtemplates", "GET, POST"),
        ("DELETE", "messaging/pushtemplates", "GET, POST"),
        ("POST", "messaging/pushtemplates/IOS", "DELETE, GET"),
        ("PUT", "messaging/pushtemplates/name", "DELETE, GET"),
    ] {
        let res = s
            .http
            .request(method.parse().unwrap(), s.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            res.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], 8009, "{method} {path}");
    }
    for path in [
        "messaging/registrations/d/x",
        "messaging/pushtemplates/IOS/x",
    ] {
        let answer = s.get(&s.url(path)).await;
        assert_eq!(
            error_of(&answer),
            (404, 8001, "No such endpoint (GET)."),
            "{path}"
        );
    }
    // A send of an unknown template; `messaging/push` alone is not served.
    let answer = s.post(&s.url("messaging/push/welcome"), &json!({})).await;
    assert_eq!(error_of(&answer), (404, 5050, "Push template not found."));
    let answer = s.post(&s.url("messaging/push"), &json!({})).await;
    assert_eq!(
        error_of(&answer),
        (
            404,
            8001,
            "Not supported by this Herald server: messaging/push."
        )
    );
    // Bad credentials come first.
    for (method, path) in [
        ("POST", "messaging/registrations"),
        ("GET", "messaging/registrations/d"),
        ("DELETE", "messaging/registrations/d"),
        ("POST", "messaging/pushtemplates"),
        ("GET", "messaging/pushtemplates/IOS"),
        ("DELETE", "messaging/pushtemplates/t"),
    ] {
        let req = s
            .http
            .request(method.parse().unwrap(), s.url_as(APP, "wrong", path))
            .json(&device("d"));
        let answer = s.send(req).await;
        assert_eq!(
            error_of(&answer),
            (401, 8002, "Invalid application id or API key."),
            "{method} {path}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_registrations_per_app() {
    let s = start("[[apps]]\nid = \"OTHER\"\n[[apps.keys]]\nkey = \"k\"\nregister = true").await;
    let registrations = format!("herald_device_registrations_total{{app=\"{APP}\"}}");
    let unregistrations = format!("herald_device_unregistrations_total{{app=\"{APP}\"}}");
    assert_eq!(s.metric(&registrations).await, Some(0.0));
    for id in ["a", "b", "a"] {
        let (status, _) = s.register(&device(id)).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Refusals count nothing.
    let (status, _) = s.register(&json!({"deviceId": "c"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.unregister("a").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.unregister("a").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(s.metric(&registrations).await, Some(3.0));
    assert_eq!(s.metric(&unregistrations).await, Some(1.0));
    // Per app.
    let (status, _) = s
        .post(
            &s.url_as("OTHER", "k", "messaging/registrations"),
            &device("x"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.metric("herald_device_registrations_total{app=\"OTHER\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        s.metric("herald_device_unregistrations_total{app=\"OTHER\"}")
            .await,
        Some(0.0)
    );
    assert_eq!(s.metric(&registrations).await, Some(3.0));
    // The OTHER app has its own registry.
    let answer = s
        .get(&s.url_as("OTHER", "k", "messaging/registrations/b"))
        .await;
    assert_eq!(error_of(&answer).1, 5000);
    s.stop().await;
}
