//! The mock's send endpoint (`POST /v1/projects/{project}/messages:send`):
//! checks the bearer token, the project and the message as FCM does, then
//! accepts it or answers what the device token's script says.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::google_error::{api_error, fcm_message, invalid_argument, json_bytes};
use super::{AcceptedMessage, FcmScript, State};

/// FCM's limit on a message without its target.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;

/// Answers one send request.
pub(crate) async fn answer(
    state: &State,
    project: &str,
    request: http::Request<Bytes>,
    connection: u64,
) -> http::Response<Bytes> {
    state.counts.send_requests.fetch_add(1, Ordering::SeqCst);
    state.lock_send_connections().insert(connection);
    if request.method() != http::Method::POST {
        return api_error(405, "Method Not Allowed", None, &[], None);
    }
    if !authorized(state, &request) {
        return api_error(401, fcm_message(None, 401), None, &[], None);
    }
    if project != state.options.project_id {
        return api_error(
            403,
            &format!(
                "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist)."
            ),
            None,
            &[],
            None,
        );
    }
    let json = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return invalid_argument(
            "",
            "Invalid JSON payload received: the content type is not application/json.".to_owned(),
        );
    }
    let (message, validate_only) = match check(request.body()) {
        Ok(m) => m,
        Err(violation) => return violation.answer(),
    };
    let token = |message: &Map<String, Value>| {
        message
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let script = {
        let target = message.get("token").and_then(Value::as_str);
        state
            .lock_scripts()
            .get(target.unwrap_or_default())
            .cloned()
    };
    match script {
        Some(FcmScript::Error(e)) => {
            return api_error(
                e.status,
                fcm_message(e.error_code.as_deref(), e.status),
                e.error_code.as_deref(),
                &[],
                e.retry_after.as_deref(),
            );
        }
        Some(FcmScript::Slow(gate)) => gate.pass().await,
        None => {}
    }
    let id = state.counts.messages.fetch_add(1, Ordering::SeqCst) + 1;
    let name = Name { project, id };
    if !validate_only {
        if state.options.keep_accepted {
            state.lock_accepted().push(AcceptedMessage {
                name: name.to_string(),
                token: token(&message),
                message: Value::Object(message),
                connection,
            });
        }
        state.counts.accepted.fetch_add(1, Ordering::SeqCst);
    }
    // `{"name": …}`, written directly (what `json!` then `to_string`
    // would give).
    let mut body = Vec::with_capacity(project.len() + 64);
    body.extend_from_slice(b"{\"name\":");
    let _ = serde_json::to_writer(&mut body, &name);
    body.push(b'}');
    json_bytes(200, Bytes::from(body))
}

/// An accepted message's name, `projects/{project}/messages/0:{id}%mock`,
/// written (and JSON-escaped) without building the string first.
struct Name<'a> {
    project: &'a str,
    id: u64,
}

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "projects/{}/messages/0:{}%mock", self.project, self.id)
    }
}

impl serde::Serialize for Name<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Whether the request carries a bearer token the mock issued and that
/// has not expired by its clock.
fn authorized(state: &State, request: &http::Request<Bytes>) -> bool {
    let Some(token) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let now = state.options.clock.now();
    state
        .lock_tokens()
        .get(token)
        .is_some_and(|&expires_at| now < expires_at)
}

/// A field FCM refuses, and why.
#[derive(Debug)]
struct Violation {
    field: String,
    description: String,
}

impl Violation {
    fn new(field: &str, description: String) -> Self {
        Self {
            field: field.to_owned(),
            description,
        }
    }

    /// FCM's 400 `INVALID_ARGUMENT` answer naming the field.
    fn answer(self) -> http::Response<Bytes> {
        invalid_argument(&self.field, self.description)
    }
}

type Checked = Result<(Map<String, Value>, bool), Violation>;

/// The request body's `message` and `validate_only`, or FCM's 400.
fn check(body: &[u8]) -> Checked {
    let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(body) else {
        return Err(Violation::new(
            "",
            "Invalid JSON payload received. Unexpected token.".to_owned(),
        ));
    };
    if let Some(unknown) = top
        .keys()
        .find(|k| !matches!(k.as_str(), "message" | "validate_only"))
    {
        return Err(Violation::new(
            "",
            format!(
                "Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."
            ),
        ));
    }
    let validate_only = match top.get("validate_only") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(Violation::new(
                "validate_only",
                format!("Invalid value at 'validate_only' (TYPE_BOOL), {other}"),
            ));
        }
    };
    let Some(Value::Object(message)) = top.remove("message") else {
        return Err(Violation::new(
            "message",
            "Request contains an invalid argument: no message.".to_owned(),
        ));
    };
    check_message(&message)?;
    Ok((message, validate_only))
}

fn check_message(message: &Map<String, Value>) -> Result<(), Violation> {
    const FIELDS: [&str; 9] = [
        "name",
        "data",
        "notification",
        "android",
        "webpush",
        "apns",
        "fcm_options",
        "token",
        "topic",
    ];
    if let Some(unknown) = message
        .keys()
        .find(|k| !FIELDS.contains(&k.as_str()) && k.as_str() != "condition")
    {
        return Err(Violation::new(
            "message",
            format!(
                "Invalid JSON payload received. Unknown name \"{unknown}\" at 'message': Cannot find field."
            ),
        ));
    }
    let targets: Vec<&str> = ["token", "topic", "condition"]
        .into_iter()
        .filter(|t| message.contains_key(*t))
        .collect();
    match targets.as_slice() {
        [] => {
            return Err(Violation::new(
                "message",
                "Recipient of the message is not set.".to_owned(),
            ));
        }
        [_] => {}
        [_, second, ..] => {
            return Err(Violation::new(
                "message",
                format!(
                    "Invalid value at 'message' (oneof), oneof field 'target' is already set. Cannot set '{second}'"
                ),
            ));
        }
    }
    if let Some(token) = message.get("token") {
        let ok = token
            .as_str()
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
        if !ok {
            return Err(Violation::new(
                "message.token",
                "The registration token is not a valid FCM registration token".to_owned(),
            ));
        }
    }
    if let Some(data) = message.get("data") {
        check_data(data)?;
    }
    if let Some(n) = message.get("notification") {
        check_strings(n, "message.notification", &["title", "body", "image"])?;
    }
    if let Some(android) = message.get("android") {
        check_android(android)?;
    }
    // The message's JSON without its (one) target: the whole, less
    // `"token":"…"` and its comma.
    // Lengths counted as serialized, without building the text.
    let size = json_len(message).map_or(usize::MAX, |whole| {
        let target: usize = ["token", "topic", "condition"]
            .iter()
            .filter_map(|t| message.get_key_value(*t))
            .map(|(k, v)| {
                let key = json_len(k).unwrap_or(0);
                let value = json_len(v).unwrap_or(0);
                key + 1 + value + usize::from(message.len() > 1)
            })
            .sum();
        whole.saturating_sub(target)
    });
    if size > MAX_MESSAGE_BYTES {
        return Err(Violation::new(
            "message",
            format!("Message is too big: {size} bytes, over the limit of {MAX_MESSAGE_BYTES}."),
        ));
    }
    Ok(())
}

/// The length of `value`'s compact JSON, counted as it is written.
fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> Option<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).ok()?;
    Some(count.0)
}

/// Whether FCM reserves `key` in `data`.
fn reserved(key: &str) -> bool {
    key == "from" || key.starts_with("gcm") || key.starts_with("google")
}

fn check_data(data: &Value) -> Result<(), Violation> {
    let Value::Object(data) = data else {
        return Err(Violation::new(
            "message.data",
            format!(
                "Invalid value at 'message.data' (type.googleapis.com/google.protobuf.Map), {data}"
            ),
        ));
    };
    for (i, (key, value)) in data.iter().enumerate() {
        if !value.is_string() {
            let field = format!("message.data[{i}].value");
            return Err(Violation::new(
                &field,
                format!("Invalid value at '{field}' (TYPE_STRING), {value}"),
            ));
        }
        if reserved(key) {
            return Err(Violation::new(
                "message.data",
                format!("Invalid data payload key: {key}"),
            ));
        }
    }
    Ok(())
}

/// `value` is an object whose keys are among `known`, each a string.
fn check_strings(value: &Value, at: &str, known: &[&str]) -> Result<(), Violation> {
    let Value::Object(map) = value else {
        return Err(Violation::new(
            at,
            format!("Invalid value at '{at}', {value}"),
        ));
    };
    for (key, v) in map {
        if !known.contains(&key.as_str()) {
            return Err(Violation::new(
                at,
                format!(
                    "Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find field."
                ),
            ));
        }
        if !v.is_string() {
            let field = format!("{at}.{key}");
            return Err(Violation::new(
                &field,
                format!("Invalid value at '{field}' (TYPE_STRING), {v}"),
            ));
        }
    }
    Ok(())
}

fn check_android(android: &Value) -> Result<(), Violation> {
    let Value::Object(a) = android else {
        return Err(Violation::new(
            "message.android",
            format!("Invalid value at 'message.android', {android}"),
        ));
    };
    for (key, value) in a {
        // Named only in an answer (formatted then, not for every key).
        let field = || format!("message.android.{key}");
        match key.as_str() {
            "ttl" => {
                if !value.as_str().is_some_and(is_duration) {
                    let field = field();
                    return Err(Violation::new(
                        &field,
                        format!(
                            "Invalid value at '{field}' (type.googleapis.com/google.protobuf.Duration), {value}"
                        ),
                    ));
                }
            }
            "priority" => {
                let ok = value.as_str().is_some_and(|p| {
                    p.eq_ignore_ascii_case("normal") || p.eq_ignore_ascii_case("high")
                });
                if !ok {
                    let field = field();
                    return Err(Violation::new(
                        &field,
                        format!(
                            "Invalid value at '{field}' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), {value}"
                        ),
                    ));
                }
            }
            "collapse_key" | "restricted_package_name" => {
                if !value.is_string() {
                    let field = field();
                    return Err(Violation::new(
                        &field,
                        format!("Invalid value at '{field}' (TYPE_STRING), {value}"),
                    ));
                }
            }
            "data" => check_data(value)?,
            "notification" => check_strings(
                value,
                &field(),
                &[
                    "title",
                    "body",
                    "icon",
                    "color",
                    "sound",
                    "tag",
                    "click_action",
                    "body_loc_key",
                    "title_loc_key",
                    "channel_id",
                    "ticker",
                    "image",
                ],
            )?,
            "direct_boot_ok" | "fcm_options" => {}
            _ => {
                return Err(Violation::new(
                    "message.android",
                    format!(
                        "Invalid JSON payload received. Unknown name \"{key}\" at 'message.android': Cannot find field."
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A protobuf `Duration` in JSON: seconds with up to 9 fraction digits,
/// then `s` (`"3600s"`, `"0.5s"`).
fn is_duration(text: &str) -> bool {
    let Some(number) = text.strip_suffix('s') else {
        return false;
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && whole.len() <= 12
        && digits(whole)
        && digits(fraction)
        && fraction.len() <= 9
        && !(number.contains('.') && fraction.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_protobufs() {
        for ok in ["0s", "3600s", "0.5s", "1.000000001s"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in [
            "",
            "s",
            "3600",
            "1.s",
            "-1s",
            "1.0000000001s",
            "3d",
            "1e3s",
            " 1s",
        ] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    fn status_of(body: &str) -> u16 {
        match check(body.as_bytes()) {
            Ok(_) => 200,
            Err(v) => v.answer().status().as_u16(),
        }
    }

    #[test]
    fn messages_are_checked_like_fcm_and_garbage_is_a_400() {
        assert_eq!(
            status_of(
                r#"{"message":{"token":"t","data":{"a":"b"},"android":{"ttl":"5s","priority":"high"}}}"#
            ),
            200
        );
        for bad in [
            "",
            "\u{0}\u{ff}",
            "[]",
            "{}",
            r#"{"message":{}}"#,
            r#"{"message":{"token":"t","topic":"x"}}"#,
            r#"{"message":{"token":""}}"#,
            r#"{"message":{"token":"t","data":{"a":1}}}"#,
            r#"{"message":{"token":"t","data":{"from":"x"}}}"#,
            r#"{"message":{"token":"t","data":{"google.x":"x"}}}"#,
            r#"{"message":{"token":"t","android":{"ttl":"3d"}}}"#,
            r#"{"message":{"token":"t","android":{"priority":"max"}}}"#,
            r#"{"message":{"token":"t","notification":{"title":5}}}"#,
            r#"{"message":{"token":"t","extra":1}}"#,
            r#"{"message":{"token":"t"},"x":1}"#,
        ] {
            assert_eq!(status_of(bad), 400, "{bad}");
        }
        let big = format!(
            r#"{{"message":{{"token":"t","data":{{"a":"{}"}}}}}}"#,
            "x".repeat(4096)
        );
        assert_eq!(status_of(&big), 400);
        let fits = format!(
            r#"{{"message":{{"token":"{}","data":{{"a":"{}"}}}}}}"#,
            "t".repeat(3000),
            "x".repeat(4070)
        );
        assert_eq!(status_of(&fits), 200, "the target does not count");
    }
}
