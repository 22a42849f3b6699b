//! The mock refuses what Google refuses: raw requests to its token and
//! send endpoints (so the gateway tests mean something).

use std::sync::Arc;

use bytes::Bytes;
use herald::{Clock, ManualClock};
use herald_core::Tick;
use herald_http2::{Pool, PoolOptions, Response};
use herald_testkit::mock_fcm::{
    MockFcm, MockFcmOptions, OTHER_TEST_PRIVATE_KEY_PEM, TEST_PRIVATE_KEY_PEM,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const NOW_S: u64 = 1_700_000_000;
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

struct Raw {
    clock: ManualClock,
    mock: MockFcm,
    pool: Pool,
}

async fn raw() -> Raw {
    let clock = ManualClock::new(Tick::from_millis(NOW_S * 1000));
    let mock = MockFcm::start(MockFcmOptions::new(Arc::new(clock.clone())))
        .await
        .unwrap();
    let tls = herald_http2::client_tls_only(mock.ca_pem().as_bytes()).unwrap();
    let pool = Pool::new(
        &mock.url(),
        tls,
        PoolOptions::default(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    Raw { clock, mock, pool }
}

impl Raw {
    fn claims(&self) -> Value {
        let now = self.clock.now().as_millis() / 1000;
        json!({
            "iss": "herald-sender@herald-test.iam.gserviceaccount.com",
            "scope": SCOPE,
            "aud": self.mock.token_uri(),
            "iat": now,
            "exp": now + 3600,
        })
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        auth: Option<&str>,
        body: &[u8],
    ) -> Response {
        let mut r = http::Request::post(path).header("content-type", content_type);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        self.pool
            .send(r.body(Bytes::copy_from_slice(body)).unwrap())
            .await
            .unwrap()
    }

    async fn token_with(&self, header: &Header, claims: &Value, key_pem: &str) -> Response {
        let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
        let jwt = jsonwebtoken::encode(header, claims, &key).unwrap();
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
        );
        self.post(
            "/token",
            "application/x-www-form-urlencoded",
            None,
            form.as_bytes(),
        )
        .await
    }

    async fn token(&self) -> String {
        let r = self
            .token_with(&header(), &self.claims(), TEST_PRIVATE_KEY_PEM)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["expires_in"], 3600);
        assert_eq!(v["token_type"], "Bearer");
        format!("Bearer {}", v["access_token"].as_str().unwrap())
    }

    async fn send(&self, auth: &str, body: &Value) -> (u16, Value) {
        let r = self
            .post(
                "/v1/projects/herald-test/messages:send",
                "application/json",
                Some(auth),
                body.to_string().as_bytes(),
            )
            .await;
        (
            r.status.as_u16(),
            serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        )
    }
}

fn header() -> Header {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("herald-test-key-1".into());
    h
}

fn oauth_error(r: &Response) -> (u16, String, String) {
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    (
        r.status.as_u16(),
        v["error"].as_str().unwrap_or("").to_owned(),
        v["error_description"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_checks_the_assertion_like_google() {
    let r = raw().await;
    let good = r.claims();
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let signature = ("invalid_grant", "Invalid JWT Signature.");
    let short = (
        "invalid_grant",
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
    );
    let mut other_kid = header();
    other_kid.kid = Some("another-key".into());
    let audience = format!(
        "Invalid JWT: Failed audience check. The right audience is {}",
        r.mock.token_uri()
    );
    let cases: Vec<(Header, Value, &str, (&str, &str))> = vec![
        (
            header(),
            good.clone(),
            OTHER_TEST_PRIVATE_KEY_PEM,
            signature,
        ),
        (other_kid, good.clone(), TEST_PRIVATE_KEY_PEM, signature),
        (
            header(),
            with("iss", json!("someone@else.iam.gserviceaccount.com")),
            TEST_PRIVATE_KEY_PEM,
            ("invalid_grant", "Not a valid email or user ID."),
        ),
        (
            header(),
            with("aud", json!("https://oauth2.googleapis.com/token")),
            TEST_PRIVATE_KEY_PEM,
            ("invalid_grant", audience.as_str()),
        ),
        (
            header(),
            with(
                "scope",
                json!("https://www.googleapis.com/auth/userinfo.email"),
            ),
            TEST_PRIVATE_KEY_PEM,
            (
                "invalid_scope",
                "Invalid OAuth scope or ID token audience provided.",
            ),
        ),
        (
            header(),
            with("exp", json!(NOW_S + 3601)),
            TEST_PRIVATE_KEY_PEM,
            short,
        ),
        (
            header(),
            with("iat", json!(NOW_S - 7200)).tap_exp(NOW_S - 3600),
            TEST_PRIVATE_KEY_PEM,
            short,
        ),
        (
            header(),
            with("iat", json!("now")),
            TEST_PRIVATE_KEY_PEM,
            short,
        ),
    ];
    for (h, claims, key, (error, description)) in cases {
        let resp = r.token_with(&h, &claims, key).await;
        assert_eq!(
            oauth_error(&resp),
            (400, error.to_owned(), description.to_owned()),
            "{claims}"
        );
    }
    // Not the JWT grant, not a form, not a JWT.
    let form = "application/x-www-form-urlencoded";
    let resp = r
        .post("/token", form, None, b"grant_type=client_credentials")
        .await;
    assert_eq!(oauth_error(&resp).1, "unsupported_grant_type");
    let jwt_bearer = b"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer";
    let resp = r.post("/token", form, None, jwt_bearer).await;
    assert_eq!(
        oauth_error(&resp).2,
        "Missing required parameter: assertion"
    );
    let resp = r.post("/token", "application/json", None, b"{}").await;
    assert_eq!(oauth_error(&resp).1, "invalid_request");
    let mut garbage = jwt_bearer.to_vec();
    garbage.extend_from_slice(b"&assertion=%FF%00.x.\xff");
    let resp = r.post("/token", form, None, &garbage).await;
    assert_eq!(oauth_error(&resp).1, "invalid_grant");
    assert_eq!(r.mock.tokens_issued(), 0);
    // Refused keys (a deleted account), then a good assertion.
    r.mock.refuse_keys(true);
    let resp = r.token_with(&header(), &good, TEST_PRIVATE_KEY_PEM).await;
    assert_eq!(oauth_error(&resp).2, "Invalid grant: account not found");
    r.mock.refuse_keys(false);
    r.token().await;
    assert_eq!(r.mock.tokens_issued(), 1);
}

trait TapExp {
    fn tap_exp(self, exp: u64) -> Self;
}

impl TapExp for Value {
    fn tap_exp(mut self, exp: u64) -> Self {
        self["exp"] = json!(exp);
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_endpoint_checks_the_bearer_token_and_project() {
    let r = raw().await;
    let msg = json!({"message": {"token": "t"}});
    let (status, body) = r.send("Bearer ya29.made-up", &msg).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let token = r.token().await;
    assert_eq!(r.send(&token, &msg).await.0, 200);
    let resp = r
        .post(
            "/v1/projects/other-project/messages:send",
            "application/json",
            Some(&token),
            msg.to_string().as_bytes(),
        )
        .await;
    assert_eq!(resp.status, 403);
    let resp = r
        .post(
            "/v1/projects/herald-test/other",
            "application/json",
            Some(&token),
            b"{}",
        )
        .await;
    assert_eq!(resp.status, 404);
    // The token expires on the mock's clock; a revoked one is unknown.
    r.clock.advance(std::time::Duration::from_secs(3600));
    assert_eq!(r.send(&token, &msg).await.0, 401);
    let token = r.token().await;
    r.mock.revoke_access_tokens();
    assert_eq!(r.send(&token, &msg).await.0, 401);
    assert_eq!(r.mock.accepted_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_send_endpoint_checks_the_message_like_fcm() {
    let r = raw().await;
    let token = r.token().await;
    let cases = [
        (
            json!({"message": {"token": "t", "data": {"a": "x", "n": 5}}}),
            "message.data[1].value",
        ),
        (
            json!({"message": {"token": "t", "data": {"from": "x"}}}),
            "message.data",
        ),
        (
            json!({"message": {"token": "t", "data": {"gcm.notification": "x"}}}),
            "message.data",
        ),
        (
            json!({"message": {"token": "t", "topic": "news"}}),
            "message",
        ),
        (json!({"message": {"data": {}}}), "message"),
        (
            json!({"message": {"token": "t", "android": {"ttl": "86400"}}}),
            "message.android.ttl",
        ),
        (
            json!({"message": {"token": "t", "android": {"priority": "urgent"}}}),
            "message.android.priority",
        ),
        (
            json!({"message": {"token": "t", "android": {"notification": {"ticker": 1}}}}),
            "message.android.notification.ticker",
        ),
        (
            json!({"message": {"token": "t", "data": {"big": "x".repeat(4090)}}}),
            "message",
        ),
        (json!({"msg": {}}), ""),
    ];
    for (body, field) in cases {
        let (status, answer) = r.send(&token, &body).await;
        assert_eq!(status, 400, "{body}");
        let e = &answer["error"];
        assert_eq!(e["status"], "INVALID_ARGUMENT");
        let violations = e["details"]
            .as_array()
            .and_then(|d| {
                d.iter()
                    .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
            })
            .map(|d| d["fieldViolations"][0]["field"].clone());
        assert_eq!(violations, Some(json!(field)), "{body}");
    }
    let resp = r
        .post(
            "/v1/projects/herald-test/messages:send",
            "application/json",
            Some(&token),
            b"\xff\x00garbage",
        )
        .await;
    assert_eq!(resp.status, 400);
    let (status, answer) = r
        .send(
            &token,
            &json!({"validate_only": true, "message": {"token": "t"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        answer["name"]
            .as_str()
            .unwrap()
            .starts_with("projects/herald-test/messages/")
    );
    assert_eq!(r.mock.accepted_count(), 0, "validate_only sends nothing");
}
