//! CORS over HTTP: preflights and grants for the REST API and socket.io's
//! long polling, with the default `cors_origins = ["*"]` and with a list.
//! (`browser.rs` runs the JS SDK in a real browser from another origin.)

mod support;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{APP, KEY};

const PAGE: &str = "http://page.example:5173";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The comma-separated values of `name`, lower-cased.
    fn list(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let res = req.send().await.expect("request sent");
    Answer {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.text().await.expect("body"),
    }
}

/// The preflight a browser sends before `method` with `headers` from
/// `origin`.
async fn preflight(
    server: &support::TestServer,
    url: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> Answer {
    let mut req = server
        .http
        .request(Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method);
    if !headers.is_empty() {
        req = req.header("Access-Control-Request-Headers", headers);
    }
    send(req).await
}

#[tokio::test]
async fn preflights_on_the_rest_routes_are_granted_not_405() {
    let server = support::start("").await;
    let routes = [
        (
            "POST",
            "messaging/news",
            "content-type,user-token,idempotency-key",
        ),
        ("GET", "messaging/some-id", "user-token"),
        ("DELETE", "messaging/some-id", ""),
        (
            "DELETE",
            "messaging/channels/news",
            "application-id,secret-key",
        ),
        ("POST", "messaging/news/subscribe", "content-type"),
        ("GET", "messaging/news/some-subscription", ""),
        ("GET", "info", "user-token"),
    ];
    for (method, path, headers) in routes {
        let a = preflight(&server, &server.url(path), PAGE, method, headers).await;
        assert!(a.status.is_success(), "{method} {path}: {}", a.status);
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some(PAGE),
            "{method} {path}"
        );
        let methods = a.list("access-control-allow-methods");
        assert!(
            methods.contains(&method.to_ascii_lowercase()),
            "{method} {path}: {methods:?}"
        );
        let allowed = a.list("access-control-allow-headers");
        for h in [
            "content-type",
            "user-token",
            "application-id",
            "secret-key",
            "idempotency-key",
        ] {
            assert!(allowed.iter().any(|a| a == h), "{h} in {allowed:?}");
        }
        let max_age: u64 = a
            .header("access-control-max-age")
            .and_then(|v| v.parse().ok())
            .expect("a max age");
        assert!(max_age >= 60, "{max_age}");
        assert!(
            a.list("vary").contains(&"origin".to_owned()),
            "{:?}",
            a.headers
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn answers_and_errors_carry_the_grant() {
    let server = support::start("").await;
    let publish = send(
        server
            .http
            .post(server.url("messaging/news"))
            .header("Origin", PAGE)
            .json(&json!({"message": "hi"})),
    )
    .await;
    assert_eq!(publish.status, StatusCode::OK, "{}", publish.body);
    assert_eq!(publish.header("access-control-allow-origin"), Some(PAGE));
    assert!(publish.list("vary").contains(&"origin".to_owned()));

    // The SDK reads `{code, message}` of an error: the page must see it too.
    for (req, status) in [
        (
            server.http.get(server.url_as(APP, "wrong-key", "info")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            server
                .http
                .post(server.url("messaging/news"))
                .json(&json!({"message": 1, "publishAt": "soon"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            server.http.put(server.url("messaging/news")),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            server.http.get(format!("{}/nowhere", server.base)),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let a = send(req.header("Origin", PAGE)).await;
        assert_eq!(a.status, status, "{}", a.body);
        assert_eq!(a.header("access-control-allow-origin"), Some(PAGE));
        let body: serde_json::Value = serde_json::from_str(&a.body).expect("JSON error");
        assert!(body["code"].is_u64(), "{body}");
    }

    // A request without an Origin (not a browser) gets no grant.
    let plain = send(server.http.get(server.url("info"))).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.header("access-control-allow-origin"), None);
    server.stop().await;
}

#[tokio::test]
async fn socket_io_long_polling_is_granted() {
    let server = support::start("").await;
    let base = format!(
        "{}/{APP}/?EIO=4&transport=polling&apiKey={KEY}",
        server.base
    );
    let open = send(server.http.get(&base).header("Origin", PAGE)).await;
    assert_eq!(open.status, StatusCode::OK, "{}", open.body);
    assert_eq!(open.header("access-control-allow-origin"), Some(PAGE));
    let handshake: serde_json::Value =
        serde_json::from_str(open.body.strip_prefix('0').expect("open packet")).unwrap();
    let sid = handshake["sid"].as_str().expect("sid");

    // The namespace connect, as engine.io-client POSTs it from a page
    // (text/plain: no preflight).
    let url = format!("{base}&sid={sid}");
    let post = send(
        server
            .http
            .post(&url)
            .header("Origin", PAGE)
            .header("Content-Type", "text/plain;charset=UTF-8")
            .body(format!("40/{APP},")),
    )
    .await;
    assert_eq!(post.status, StatusCode::OK, "{}", post.body);
    assert_eq!(post.header("access-control-allow-origin"), Some(PAGE));
    let poll = send(server.http.get(&url).header("Origin", PAGE)).await;
    assert_eq!(poll.status, StatusCode::OK);
    assert_eq!(poll.header("access-control-allow-origin"), Some(PAGE));
    // Engine.IO packets are separated by \x1e (a ping may come first).
    assert!(
        poll.body
            .split('\x1e')
            .any(|p| p.starts_with(&format!("40/{APP},{{\"sid\""))),
        "the namespace is connected: {:?}",
        poll.body
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_grant_no_origin_others_do() {
    let server = support::start("").await;
    let url = format!("{}/metrics", server.base);
    let a = send(server.http.get(&url).header("Origin", PAGE)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("access-control-allow-origin"), None);
    let a = preflight(&server, &url, PAGE, "GET", "").await;
    assert_eq!(a.header("access-control-allow-origin"), None);
    // `/health` and the OpenAPI document (for API tools in a page) are
    // harmless: granted.
    for path in ["health", "openapi.json"] {
        let url = format!("{}/{path}", server.base);
        let a = send(server.http.get(&url).header("Origin", PAGE)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some(PAGE),
            "{path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_restricted_list_grants_its_origins_only() {
    let server =
        support::start(r#"cors_origins = ["https://app.example", "http://Other.Example:80"]"#)
            .await;
    let url = server.url("messaging/news");
    for allowed in ["https://app.example", "http://other.example"] {
        let a = preflight(&server, &url, allowed, "POST", "content-type").await;
        assert!(a.status.is_success());
        assert_eq!(a.header("access-control-allow-origin"), Some(allowed));
        let a = send(
            server
                .http
                .post(&url)
                .header("Origin", allowed)
                .json(&json!({"message": 1})),
        )
        .await;
        assert_eq!(a.header("access-control-allow-origin"), Some(allowed));
    }

    for denied in [
        "https://evil.example",
        "https://app.example:8443",
        "http://app.example",
        "null",
    ] {
        let a = preflight(&server, &url, denied, "POST", "content-type").await;
        assert_eq!(
            a.header("access-control-allow-origin"),
            None,
            "preflight from {denied}"
        );
        // The server still answers (CORS is the browser's rule, not access
        // control), but grants nothing, so a browser hides the answer.
        let a = send(
            server
                .http
                .post(&url)
                .header("Origin", denied)
                .json(&json!({"message": 1})),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.header("access-control-allow-origin"), None, "{denied}");
        let poll = send(
            server
                .http
                .get(format!(
                    "{}/{APP}/?EIO=4&transport=polling&apiKey={KEY}",
                    server.base
                ))
                .header("Origin", denied),
        )
        .await;
        assert_eq!(poll.header("access-control-allow-origin"), None, "{denied}");
    }
    server.stop().await;
}
