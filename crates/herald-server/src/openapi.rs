//! The OpenAPI 3.1 description of the REST API, served at
//! `GET /openapi.json` (no key needed).
//!
//! # Why it is built in code
//!
//! The document is a `serde_json::json!` value rather than a checked-in
//! JSON file: it takes the server's own numbers from the code (the error
//! codes of [`codes`], the engine's [`limits`], the crate version), shares
//! one definition of the error answers between all operations, and its
//! syntax is checked by the compiler. It is built once and served as bytes.
//!
//! # Kept honest
//!
//! The routing is hand-written (`rest.rs`), so nothing ties it to this
//! document but the tests: every operation here is probed through the real
//! router (it must be routed, answer one of its documented statuses, and
//! answer errors as `{code, message}`), and every path built from the API's
//! segment vocabulary, with every method, is probed too: whatever the router
//! routes must be an operation here. CI also runs schemathesis against the
//! binary with this document (`compat/openapi/schemathesis.sh`): no 5xx,
//! and every answer matches its schema.
//!
//! Not described, by design: socket.io's Engine.IO endpoint `/{appId}/`
//! (the real-time API; not REST, see the crate docs), `OPTIONS` (CORS
//! preflights, answered on every path) and `HEAD` (axum answers it for the
//! `GET` routes outside the app prefix).

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald::limits;
use serde_json::{Value, json};

use crate::error::codes;

/// `GET /openapi.json`.
pub(crate) async fn serve() -> Response {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = BYTES
        .get_or_init(|| serde_json::to_vec_pretty(&document()).expect("a JSON value serializes"));
    let mut res = (StatusCode::OK, bytes.as_slice()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Adds `Allow` to a 405 answer (RFC 9110 requires it): the methods of the
/// operations of the most specific path of this document that matches the
/// request's path (a literal segment beats a parameter, the leftmost
/// first, as the router matches). The tests keep the document equal to
/// the router.
pub(crate) async fn allow_header(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    if res.status() == StatusCode::METHOD_NOT_ALLOWED
        && !res.headers().contains_key(header::ALLOW)
        && let Some(allow) = allowed_methods(&path)
    {
        res.headers_mut().insert(header::ALLOW, allow.clone());
    }
    res
}

/// The `Allow` value for `path`: see [`allow_header`].
fn allowed_methods(path: &str) -> Option<&'static HeaderValue> {
    /// Each path of the document: its segments (`None`: a parameter), and
    /// its methods as an `Allow` value.
    type Paths = Vec<(Vec<Option<String>>, HeaderValue)>;
    static PATHS: OnceLock<Paths> = OnceLock::new();
    let paths = PATHS.get_or_init(|| {
        let doc = document();
        let mut paths = Paths::new();
        for (template, item) in doc["paths"].as_object().into_iter().flatten() {
            let segments = template
                .split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                .collect();
            let mut methods: Vec<String> = item
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(m, _)| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                .map(|m| m.to_string())
                .collect();
            methods.sort_unstable();
            if let Ok(allow) = HeaderValue::from_str(&methods.join(", ")) {
                paths.push((segments, allow));
            }
        }
        paths
    });
    let segments: Vec<&str> = path.split('/').collect();
    paths
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.as_deref().is_none_or(|t| t == *s))
        })
        // Literal segments first, the leftmost the most significant.
        .max_by(|(a, _), (b, _)| {
            let literals = |t: &[Option<String>]| t.iter().map(Option::is_some).collect::<Vec<_>>();
            literals(a).cmp(&literals(b))
        })
        .map(|(_, allow)| allow)
}

/// A reference to `#/components/{kind}/{name}`.
fn reference(kind: &str, name: &str) -> Value {
    json!({ "$ref": format!("#/components/{kind}/{name}") })
}

fn schema(name: &str) -> Value {
    reference("schemas", name)
}

/// A JSON answer with this schema.
fn ok(description: &str, schema_name: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema(schema_name) } }
    })
}

/// References to the shared error answers with these statuses.
fn errors(statuses: &[&str]) -> serde_json::Map<String, Value> {
    statuses
        .iter()
        .map(|status| ((*status).to_owned(), reference("responses", status)))
        .collect()
}

/// `{appId}` and `{apiKey}`, then these path parameters.
fn app_params(more: &[Value]) -> Value {
    let mut params = vec![
        reference("parameters", "appId"),
        reference("parameters", "apiKey"),
    ];
    params.extend_from_slice(more);
    Value::Array(params)
}

/// A path parameter `name`: a string segment (percent-decoded).
fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "type": "string", "minLength": 1 }
    })
}

/// An operation answering `200` with `ok_schema`, or the shared error
/// answers with `error_statuses`.
fn operation(
    id: &str,
    summary: &str,
    params: Value,
    ok_schema: &str,
    error_statuses: &[&str],
) -> serde_json::Map<String, Value> {
    let mut responses = errors(error_statuses);
    // Every request but a long poll is bounded by `request_timeout`.
    if id != "poll" {
        responses.insert("408".into(), reference("responses", "408"));
    }
    responses.insert("200".into(), ok(summary, ok_schema));
    let mut op = serde_json::Map::new();
    op.insert("operationId".into(), id.into());
    op.insert("summary".into(), summary.into());
    op.insert("tags".into(), json!(["messaging"]));
    op.insert("parameters".into(), params);
    op.insert("responses".into(), Value::Object(responses));
    op
}

/// The OpenAPI 3.1 document.
pub(crate) fn document() -> Value {
    let channel = path_param(
        "channel",
        "A channel name: at most 255 bytes, no `/` (`%2F` included) or control \
         characters, and not `registrations`, `push`, `pushtemplates`, `channels` or `email`.",
    );
    let message_id = path_param("id", "A message id, as publish answered it.");

    let mut publish = operation(
        "publish",
        "Publish a message to a channel, now, later or repeatedly",
        app_params(&[path_param(
            "id",
            "The channel to publish to (created on first use): at most 255 bytes, no `/` or \
             control characters, and not a reserved name (`registrations`, `push`, \
             `pushtemplates`, `channels`, `email`).",
        )]),
        "MessageStatus",
        &["400", "401", "404", "409", "413", "415", "500", "503"],
    );
    publish["parameters"]
        .as_array_mut()
        .expect("parameters")
        .push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes the publish safe to retry: a retry with the same key (same app) \
                within 24 h answers the first answer and publishes nothing new; another request \
                with the key is 409 (5095). 1 to 255 printable ASCII characters (else 400, 5096).",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$" }
        }));
    let with_app = |more: Value| {
        let mut params = json!({
            "appId": "$request.path.appId",
            "apiKey": "$request.path.apiKey"
        });
        params
            .as_object_mut()
            .expect("an object")
            .extend(more.as_object().expect("an object").clone());
        params
    };
    publish["responses"]["200"]["links"] = json!({
        "status": {
            "operationId": "getMessageStatus",
            "parameters": with_app(json!({ "id": "$response.body#/messageId" }))
        },
        "cancel": {
            "operationId": "cancelMessage",
            "parameters": with_app(json!({ "id": "$response.body#/messageId" }))
        }
    });
    publish.insert(
        "description".into(),
        "The body is Backendless's flat merge of the message, its `PublishOptions` and its \
         `DeliveryOptions`; unknown keys are ignored. A body without a `message` key is \
         refused (5013, `message is required`). The answer's `status` is `published` for an \
         immediate publish, `scheduled` for a delayed or repeating one."
            .into(),
    );
    publish.insert(
        "requestBody".into(),
        json!({
            "required": true,
            "content": { "application/json": { "schema": schema("PublishBody") } }
        }),
    );

    let mut status = operation(
        "getMessageStatus",
        "The status of a message (`unknown` for an id never issued)",
        app_params(std::slice::from_ref(&message_id)),
        "MessageStatus",
        &["401", "404", "500", "503"],
    );
    status.insert(
        "description".into(),
        "`GET` and `DELETE` take a message id where `POST` takes a channel name.".into(),
    );
    let cancel = operation(
        "cancelMessage",
        "Cancel a scheduled (delayed or repeating) message",
        app_params(&[message_id]),
        "MessageStatus",
        &["400", "401", "404", "500", "503"],
    );
    let delete_channel = operation(
        "deleteChannel",
        "Delete a channel: its subscriptions end",
        app_params(std::slice::from_ref(&channel)),
        "Result",
        &["400", "401", "500", "503"],
    );
    let mut subscribe = operation(
        "pollingSubscribe",
        "Legacy polling: subscribe to a channel",
        app_params(std::slice::from_ref(&channel)),
        "Subscription",
        &["400", "401", "404", "413", "415", "429", "500", "503"],
    );
    subscribe.insert(
        "requestBody".into(),
        json!({
            "required": false,
            "content": { "application/json": { "schema": {
                "anyOf": [schema("PollingSubscribeBody"), { "type": "null" }]
            } } }
        }),
    );
    subscribe["responses"]["200"]["links"] = json!({
        "poll": {
            "operationId": "poll",
            "parameters": with_app(json!({
                "channel": "$request.path.channel",
                "subscriptionId": "$response.body#/subscriptionId"
            }))
        }
    });
    let mut poll = operation(
        "poll",
        "Legacy polling: the messages since the last poll (at most 60 s old)",
        app_params(&[
            channel,
            path_param("subscriptionId", "A polling subscription's id."),
        ]),
        "PolledMessages",
        &["400", "401", "404"],
    );
    poll.insert(
        "description".into(),
        "A subscription not polled for `poll_ttl_secs` expires (404, code 8006).".into(),
    );
    let info = operation(
        "info",
        "The app's info: the real-time URL the JS SDK connects socket.io to",
        app_params(&[]),
        "Info",
        &["401"],
    );
    let push = push_operations(&with_app);

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Herald",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Backendless Messaging compatible publish/subscribe and scheduling",
            "description": "The REST API of a Herald server. Every API path is under \
                `/{appId}/{apiKey}/`; the API key is the credential. Errors are \
                `{\"code\": N, \"message\": \"...\"}`. The real-time API (socket.io, Engine.IO v4, \
                at `/{appId}/`) is not described here: see the crate docs of herald-server. \
                Browsers may call the API from the origins `cors_origins` allows (CORS \
                preflights are answered on every path).",
            "license": { "name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0" }
        },
        "tags": [
            { "name": "messaging", "description": "Backendless Messaging: publish, status, cancel, polling" },
            { "name": "push", "description": "Push notifications: device registrations and push templates" },
            { "name": "server", "description": "The server itself; no key needed" }
        ],
        "paths": {
            "/health": { "get": {
                "operationId": "health",
                "summary": "Liveness",
                "tags": ["server"],
                "responses": {
                    "200": ok("The server is up", "Health"),
                    "503": {
                        "description": "An app's store cannot write (a full disk, say)",
                        "content": { "application/json": { "schema": schema("Unhealthy") } }
                    }
                }
            } },
            "/metrics": { "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition format 0.0.4)",
                "tags": ["server"],
                "description": "With `metrics_token` set, for `Authorization: Bearer <token>` \
                    only; without it, for loopback clients only.",
                "responses": {
                    "200": {
                        "description": "The metrics",
                        "content": { "text/plain": { "schema": { "type": "string" } } }
                    },
                    "401": error_response(&format!(
                        "No or a wrong bearer token ({})", codes::METRICS_DENIED
                    )),
                    "403": error_response(&format!(
                        "No token is configured and the client is not on loopback ({})",
                        codes::METRICS_DENIED
                    ))
                }
            } },
            "/openapi.json": { "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["server"],
                "responses": { "200": {
                    "description": "The OpenAPI 3.1 description of this API",
                    "content": { "application/json": { "schema": { "type": "object" } } }
                } }
            } },
            "/{appId}/{apiKey}/info": { "get": info },
            "/{appId}/{apiKey}/messaging/{id}": {
                "post": publish,
                "get": status,
                "delete": cancel
            },
            "/{appId}/{apiKey}/messaging/channels/{channel}": { "delete": delete_channel },
            "/{appId}/{apiKey}/messaging/{channel}/subscribe": { "post": subscribe },
            "/{appId}/{apiKey}/messaging/{channel}/{subscriptionId}": { "get": poll },
            "/{appId}/{apiKey}/messaging/registrations": { "post": push.register },
            "/{appId}/{apiKey}/messaging/registrations/{deviceId}": {
                "get": push.registration,
                "delete": push.unregister
            },
            "/{appId}/{apiKey}/messaging/pushtemplates": {
                "post": push.put_template,
                "get": push.all_templates
            },
            "/{appId}/{apiKey}/messaging/pushtemplates/{deviceTypeOrName}": {
                "get": push.templates,
                "delete": push.delete_template
            },
            "/{appId}/{apiKey}/messaging/push/{name}": {
                "post": push.send_template
            }
        },
        "components": {
            "parameters": {
                "appId": {
                    "name": "appId",
                    "in": "path",
                    "required": true,
                    "description": "The application id.",
                    "schema": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$" }
                },
                "apiKey": {
                    "name": "apiKey",
                    "in": "path",
                    "required": true,
                    "description": "An API key of the app: the credential. Its permissions \
                        (channel globs for publish, subscribe and push; the rights to register \
                        devices and to manage push templates) come from the configuration.",
                    "schema": { "type": "string", "minLength": 1 }
                }
            },
            "responses": {
                "400": error_response(&format!(
                    "Invalid request: an option (the engine's codes, e.g. 5003 publishAt, 5007 \
                     repeatExpiresAt, 5008 repeatEvery, 5010 channel name, 5040 not \
                     cancellable, 5015 device registration, 5051 push template), a denied \
                     permission ({}, {}, {}, {}, {}), a device type other than IOS, ANDROID \
                     and ALL ({}), or a malformed body ({})",
                    codes::PUBLISH_DENIED, codes::SUBSCRIBE_DENIED, codes::REGISTER_DENIED,
                    codes::PUSH_DENIED, codes::TEMPLATES_DENIED, codes::INVALID_DEVICE_TYPE,
                    codes::MALFORMED_JSON
                )),
                "401": error_response(&format!(
                    "Unknown app id or API key ({})", codes::BAD_CREDENTIALS
                )),
                "404": error_response(&format!(
                    "A Backendless endpoint this server does not serve ({}), an unknown \
                     polling subscription ({}), an unknown device ({}) or push template ({})",
                    codes::UNKNOWN_ROUTE, codes::UNKNOWN_SUBSCRIPTION,
                    herald::Error::UnknownDevice.code(), herald::Error::TemplateNotFound.code()
                )),
                "409": error_response(&format!(
                    "The Idempotency-Key was used for a different request in the last 24 h ({})",
                    herald::Error::IdempotencyKeyReused.code()
                )),
                "408": error_response(&format!(
                    "Not answered within `request_timeout` ({}); a publish may still have \
                     been accepted",
                    codes::REQUEST_TIMEOUT
                )),
                "413": error_response(&format!(
                    "The body is larger than `max_body` ({})", codes::BODY_TOO_LARGE
                )),
                "415": error_response(&format!(
                    "The body's content type is not JSON ({})", codes::UNSUPPORTED_MEDIA_TYPE
                )),
                "429": error_response(&format!(
                    "Too many polling subscriptions ({})", codes::TOO_MANY_SUBSCRIPTIONS
                )),
                "500": error_response("The store or the transport failed (5090, 5092)"),
                "503": error_response(
                    "The engine is shutting down, or the store cannot write (5091, 5093)"
                )
            },
            "schemas": schemas()
        }
    })
}

/// The push routes' operations.
struct PushOperations {
    register: serde_json::Map<String, Value>,
    registration: serde_json::Map<String, Value>,
    unregister: serde_json::Map<String, Value>,
    put_template: serde_json::Map<String, Value>,
    all_templates: serde_json::Map<String, Value>,
    templates: serde_json::Map<String, Value>,
    delete_template: serde_json::Map<String, Value>,
    send_template: serde_json::Map<String, Value>,
}

/// A push operation: [`operation`], tagged `push`, with this request body
/// schema (if any) and description.
fn push_operation(
    id: &str,
    summary: &str,
    params: Value,
    ok_schema: &str,
    error_statuses: &[&str],
    body: Option<&str>,
    description: &str,
) -> serde_json::Map<String, Value> {
    let mut op = operation(id, summary, params, ok_schema, error_statuses);
    op.insert("tags".into(), json!(["push"]));
    op.insert("description".into(), description.into());
    if let Some(body) = body {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "application/json": { "schema": schema(body) } }
            }),
        );
    }
    op
}

/// `messaging/registrations` and `messaging/pushtemplates`; `with_app`
/// adds the app and key to a link's parameters.
fn push_operations(with_app: &dyn Fn(Value) -> Value) -> PushOperations {
    let device_id = path_param(
        "deviceId",
        "The device's id, as it registered (`deviceId`).",
    );
    let mut register = push_operation(
        "registerDevice",
        "Register a device for push notifications (again: replace its registration)",
        app_params(&[]),
        "RegistrationId",
        &["400", "401", "413", "415", "500", "503"],
        Some("RegistrationBody"),
        &format!(
            "Needs the key's `register` right ({}). Registering a `deviceId` again replaces its \
             token, channels, expiration and properties. A registration without `deviceToken` \
             or `deviceId`, with an unknown `os`, an invalid channel, or a property named like \
             a registration field is refused ({}).",
            codes::REGISTER_DENIED,
            herald::Error::InvalidRegistration {
                reason: String::new()
            }
            .code()
        ),
    );
    register["responses"]["200"]["links"] = json!({
        "registration": {
            "operationId": "getRegistration",
            "parameters": with_app(json!({ "deviceId": "$request.body#/deviceId" }))
        },
        "unregister": {
            "operationId": "unregisterDevice",
            "parameters": with_app(json!({ "deviceId": "$request.body#/deviceId" }))
        }
    });
    let registration = push_operation(
        "getRegistration",
        "A device's registration, as a list of one",
        app_params(std::slice::from_ref(&device_id)),
        "Registrations",
        &["400", "401", "404", "500", "503"],
        None,
        &format!(
            "Needs the key's `register` right ({}). An unknown or expired device is 404 ({}).",
            codes::REGISTER_DENIED,
            herald::Error::UnknownDevice.code()
        ),
    );
    let unregister = push_operation(
        "unregisterDevice",
        "Remove a device's registration",
        app_params(&[device_id]),
        "Done",
        &["400", "401", "404", "500", "503"],
        None,
        &format!(
            "Needs the key's `register` right ({}). An unknown device is 404 ({}).",
            codes::REGISTER_DENIED,
            herald::Error::UnknownDevice.code()
        ),
    );
    let mut put_template = push_operation(
        "putPushTemplate",
        "Create or replace a push template",
        app_params(&[]),
        "PushTemplate",
        &["400", "401", "413", "415", "500", "503"],
        Some("PushTemplateBody"),
        &format!(
            "Needs the key's `templates` right ({}). Smart text `{{var}}` or `{{var|default}}` in \
             `message`, `title`, `subtitle`, header values and `audience.segmentQuery` is \
             filled when the template is sent (`{{{{` and `}}}}` are literal braces). A template \
             that does not parse is refused ({}). Answers the stored template.",
            codes::TEMPLATES_DENIED,
            herald::Error::InvalidTemplate {
                reason: String::new()
            }
            .code()
        ),
    );
    put_template["responses"]["200"]["links"] = json!({
        "delete": {
            "operationId": "deletePushTemplate",
            "parameters": with_app(json!({ "deviceTypeOrName": "$response.body#/name" }))
        }
    });
    let listing = format!(
        "Needs the key's `templates` right or any `push` channel ({}).",
        codes::TEMPLATES_DENIED
    );
    let all_templates = push_operation(
        "listAllPushTemplates",
        "Every push template, by name (as `ALL`; the Swift SDK asks this way)",
        app_params(&[]),
        "PushTemplates",
        &["400", "401", "500", "503"],
        None,
        &listing,
    );
    let templates = push_operation(
        "listPushTemplates",
        "The push templates whose audience includes a device type, by name",
        app_params(&[json!({
            "name": "deviceTypeOrName",
            "in": "path",
            "required": true,
            "description": "The device type: `IOS` (which covers OSX devices too), `ANDROID` or \
                `ALL`, in any case; another value is 400.",
            "schema": {
                "type": "string",
                "pattern": "^([Ii][Oo][Ss]|[Aa][Nn][Dd][Rr][Oo][Ii][Dd]|[Aa][Ll][Ll])$"
            }
        })]),
        "PushTemplates",
        &["400", "401", "500", "503"],
        None,
        &format!(
            "{listing} A device type other than IOS, ANDROID and ALL is 400 ({}).",
            codes::INVALID_DEVICE_TYPE
        ),
    );
    let delete_template = push_operation(
        "deletePushTemplate",
        "Delete a push template",
        app_params(&[path_param("deviceTypeOrName", "The template's name.")]),
        "Done",
        &["400", "401", "404", "500", "503"],
        None,
        &format!(
            "Needs the key's `templates` right ({}). An unknown template is 404 ({}).",
            codes::TEMPLATES_DENIED,
            herald::Error::TemplateNotFound.code()
        ),
    );
    let send_template = push_operation(
        "sendPushTemplate",
        "Send a push template",
        app_params(&[path_param("name", "The template's name.")]),
        "MessageStatus",
        &[
            "400", "401", "404", "408", "409", "413", "415", "500", "503",
        ],
        Some("TemplateSendBody"),
        &format!(
            "Needs the key's `push` right on the template's channel ({}). The template's \
             audience (channel, OSes, segment query filled with the values as string \
             literals) receives its content, rendered per device when the run fires: \
             `templateValues` first, then the device's registration, then the defaults. \
             An unknown template is 404 ({}); no push gateway is 400 ({}); an optional \
             `Idempotency-Key` works as on a publish.",
            codes::PUSH_DENIED,
            herald::Error::TemplateNotFound.code(),
            herald::Error::PushNotConfigured.code()
        ),
    );
    PushOperations {
        send_template,
        register,
        registration,
        unregister,
        put_template,
        all_templates,
        templates,
        delete_template,
    }
}

/// A pattern for strings without control characters (C0, DEL, C1, and
/// the Unicode line and paragraph separators), as the engine checks names.
const NO_CONTROL_CHARACTERS: &str = "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]+$";

/// The push schemas: registrations and templates, as the server takes
/// and answers them. Types are exact (a value of another type is refused,
/// so schemathesis's negative cases are), bounds are the engine's
/// [`limits`] (in bytes, so a string within `maxLength` characters may
/// still be refused); rules no schema says simply (control characters,
/// reserved property names, smart-text syntax) are in the descriptions.
fn push_schemas() -> serde_json::Map<String, Value> {
    let channel = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": limits::MAX_CHANNEL_LEN,
        "description": "A channel name (no `/`, no control characters, not a reserved name)"
    });
    let smart = |what: &str| {
        json!({
            "type": ["string", "null"],
            "maxLength": limits::MAX_TEMPLATE_TEXT_LEN,
            "description": format!("{what} (smart text)")
        })
    };
    let json = json!({
        "RegistrationBody": {
            "type": "object",
            "description": "A device registration. Unknown keys are ignored; null is unset.",
            "required": ["deviceId", "deviceToken", "os"],
            "properties": {
                "deviceId": {
                    "type": "string", "minLength": 1, "maxLength": limits::MAX_DEVICE_ID_LEN,
                    "pattern": NO_CONTROL_CHARACTERS,
                    "description": "The device's id (no control characters): registering it again replaces its registration"
                },
                "deviceToken": {
                    "type": "string", "minLength": 1, "maxLength": limits::MAX_DEVICE_TOKEN_LEN,
                    "pattern": "^[!-~]+$",
                    "description": "The gateway's token for the device: printable ASCII, no spaces"
                },
                "os": {
                    "type": "string",
                    "pattern": "^\\s*([Ii][Oo][Ss]|[Aa][Nn][Dd][Rr][Oo][Ii][Dd]|[Oo][Ss][Xx]|[Ww][Pp])\\s*$",
                    "description": "IOS, ANDROID, OSX or WP, in any case"
                },
                "osVersion": {
                    "type": ["string", "number", "boolean", "null"],
                    "maxLength": limits::MAX_OS_VERSION_LEN
                },
                "channels": {
                    "description": "The channels it receives pushes of (default `[\"default\"]`)",
                    "anyOf": [
                        { "type": "array", "maxItems": limits::MAX_DEVICE_CHANNELS, "items": channel },
                        channel,
                        { "type": "null" }
                    ]
                },
                "expiration": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "maximum": limits::MAX_EPOCH_MS,
                    "description": "When the registration ends: epoch seconds below 1e11 (the JS SDK), else epoch milliseconds; a time not in the future is refused (5015)"
                },
                "properties": {
                    "type": ["object", "null"],
                    "description": "Herald: values for segment queries and template smart text; not named like a registration field (deviceId, deviceToken, os, osVersion, channels, expiration); numbers and booleans become their text",
                    "maxProperties": limits::MAX_DEVICE_PROPERTIES,
                    "propertyNames": { "minLength": 1, "maxLength": limits::MAX_PROPERTY_NAME_LEN },
                    "additionalProperties": {
                        "type": ["string", "number", "boolean"],
                        "maxLength": limits::MAX_PROPERTY_VALUE_LEN
                    }
                }
            },
            "additionalProperties": true
        },
        "RegistrationId": {
            "type": "object",
            "required": ["registrationId"],
            "properties": { "registrationId": { "type": "string", "minLength": 1 } }
        },
        "Registrations": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": schema("Registration")
        },
        "Registration": {
            "type": "object",
            "required": ["id", "deviceId", "deviceToken", "os", "osVersion", "channels", "expiration", "properties", "registeredAt"],
            "properties": {
                "id": { "type": "string", "description": "The registrationId of its latest registration" },
                "deviceId": { "type": "string" },
                "deviceToken": { "type": "string" },
                "os": { "enum": ["IOS", "ANDROID", "OSX", "WP"] },
                "osVersion": { "type": "string" },
                "channels": { "type": "array", "items": { "type": "string" } },
                "expiration": { "type": ["integer", "null"], "minimum": 0, "description": "Epoch milliseconds; null: never" },
                "properties": { "type": "object", "additionalProperties": { "type": "string" } },
                "registeredAt": { "type": "integer", "minimum": 0, "description": "Herald: epoch milliseconds of its latest registration" }
            }
        },
        "PushTemplateBody": {
            "type": "object",
            "description": "A push template. Unknown keys are ignored; null is unset.",
            "required": ["name"],
            "properties": {
                "name": {
                    "type": "string", "minLength": 1, "maxLength": limits::MAX_TEMPLATE_NAME_LEN,
                    "pattern": "^[^/\\x00-\\x1f\\x7f-\\x9f]+$",
                    "description": "Its name (its key): no `/` or control characters"
                },
                "message": smart("The body on every OS"),
                "title": smart("The iOS alert title and the Android content title"),
                "subtitle": smart("The iOS alert subtitle"),
                "headers": {
                    "type": ["object", "null"],
                    "description": "Headers as in a publish; values are smart text (numbers and booleans become their text)",
                    "maxProperties": limits::MAX_TEMPLATE_HEADERS,
                    "additionalProperties": {
                        "type": ["string", "number", "boolean"],
                        "maxLength": limits::MAX_TEMPLATE_TEXT_LEN
                    }
                },
                "audience": {
                    "type": ["object", "null"],
                    "properties": {
                        "os": {
                            "description": "IOS (which covers OSX), ANDROID, OSX, WP or ALL (default ALL)",
                            "anyOf": [
                                { "type": "array", "minItems": 1, "items": { "type": "string" } },
                                { "type": "string" },
                                { "type": "null" }
                            ]
                        },
                        "channel": {
                            "anyOf": [channel, { "type": "null" }],
                            "description": "The channel whose devices receive it (default `default`)"
                        },
                        "segmentQuery": {
                            "type": ["string", "null"],
                            "maxLength": limits::MAX_TEMPLATE_TEXT_LEN,
                            "description": "A selector over device registrations (smart text: a value is inserted as a quoted string literal)"
                        }
                    },
                    "additionalProperties": true
                }
            },
            "additionalProperties": true
        },
        "PushTemplate": {
            "type": "object",
            "required": ["name", "message", "title", "subtitle", "headers", "audience"],
            "properties": {
                "name": { "type": "string" },
                "message": { "type": "string" },
                "title": { "type": "string" },
                "subtitle": { "type": "string" },
                "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                "audience": {
                    "type": "object",
                    "required": ["os", "channel"],
                    "properties": {
                        "os": { "type": "array", "items": { "enum": ["IOS", "ANDROID", "WP", "OSX"] } },
                        "channel": { "type": "string" },
                        "segmentQuery": { "type": "string" }
                    }
                }
            }
        },
        "PushTemplates": { "type": "array", "items": schema("PushTemplate") },
        "Done": {
            "type": "object",
            "required": ["result"],
            "properties": { "result": { "const": true } }
        }
    });
    match json {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// An error answer: `{code, message}`.
fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema("Error") } }
    })
}

/// A whole number in `min ..= max`, or null (unset).
fn whole(min: u64, max: u64, description: &str) -> Value {
    json!({
        "type": ["integer", "null"],
        "minimum": min,
        "maximum": max,
        "description": description
    })
}

fn schemas() -> Value {
    let mut all = base_schemas();
    all.as_object_mut()
        .expect("an object")
        .extend(push_schemas());
    all
}

fn base_schemas() -> Value {
    let text_or_number = json!({ "type": ["string", "number", "boolean", "null"] });
    json!({
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "integer", "description": "Backendless's code, or Herald's (8001 …)" },
                "message": { "type": "string" }
            }
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": { "status": { "const": "ok" } }
        },
        "Unhealthy": {
            "type": "object",
            "required": ["status", "stores", "buses"],
            "properties": {
                "status": { "const": "unavailable" },
                "stores": {
                    "type": "array",
                    "description": "Apps whose store cannot write",
                    "items": {
                        "type": "object",
                        "required": ["app", "error"],
                        "properties": { "app": { "type": "string" }, "error": { "type": "string" } }
                    }
                },
                "buses": {
                    "type": "array",
                    "description": "Apps whose cluster bus is disconnected",
                    "items": {
                        "type": "object",
                        "required": ["app", "error"],
                        "properties": { "app": { "type": "string" }, "error": { "type": "string" } }
                    }
                }
            }
        },
        "Info": {
            "type": "object",
            "required": ["rtURL", "loggers"],
            "properties": {
                "rtURL": { "type": "string", "pattern": "^https?://", "description": "This server, as the client reached it" },
                "loggers": { "type": "array", "maxItems": 0 }
            }
        },
        "Result": {
            "type": "object",
            "required": ["result"],
            "properties": { "result": { "type": "boolean", "description": "Whether the channel existed" } }
        },
        "MessageStatus": {
            "type": "object",
            "required": ["messageId", "status", "errorMessage", "deliveries"],
            "properties": {
                "messageId": { "type": "string" },
                "status": {
                    "enum": ["published", "scheduled", "failed", "cancelled", "unknown"]
                },
                "errorMessage": { "type": ["string", "null"] },
                "deliveries": schema("DeliveryCounts")
            }
        },
        "DeliveryCounts": {
            "type": "object",
            "required": ["runs", "pubsub", "pushSent", "pushFailed", "pushInvalidTokens", "pushExpired", "pushPending"],
            "properties": {
                "runs": { "type": "integer", "minimum": 0 },
                "pubsub": { "type": "integer", "minimum": 0, "description": "Pub/sub deliveries: one per run per matching subscription" },
                "pushSent": { "type": "integer", "minimum": 0 },
                "pushFailed": { "type": "integer", "minimum": 0 },
                "pushInvalidTokens": { "type": "integer", "minimum": 0 },
                "pushExpired": { "type": "integer", "minimum": 0 },
                "pushPending": { "type": "integer", "minimum": 0 }
            }
        },
        "PublishBody": {
            "type": "object",
            "description": "The message and its options, flat. Unknown keys are ignored; null is unset.",
            "required": ["message"],
            "properties": {
                "message": { "description": "Any JSON value: delivered as it arrived" },
                "publisherId": text_or_number,
                "subtopic": text_or_number,
                "headers": {
                    "type": ["object", "null"],
                    "description": "Delivered to subscribers with string values (non-strings as their JSON text; null values dropped); selectors test them",
                    "additionalProperties": true
                },
                "publishPolicy": {
                    "description": "PUBSUB (the default), PUSH or BOTH (any case), or 0 = PUSH, 1 = PUBSUB, 2 = BOTH. PUSH and BOTH need a push gateway (else 5014).",
                    "anyOf": [
                        { "enum": ["PUSH", "PUBSUB", "BOTH"] },
                        { "type": "integer", "minimum": 0, "maximum": 2 },
                        { "type": "null" }
                    ]
                },
                "pushBroadcast": {
                    "description": "OS mask IOS=1, ANDROID=2, WP=4, OSX=8, ALL=15, or tokens (`FOR_IOS|FOR_ANDROID`)",
                    "anyOf": [
                        { "type": "integer", "minimum": 0, "maximum": 15 },
                        { "type": "string" },
                        { "type": "null" }
                    ]
                },
                "pushSinglecast": {
                    "description": "Device ids",
                    "anyOf": [
                        { "type": "array", "items": { "type": "string" } },
                        { "type": "string" },
                        { "type": "null" }
                    ]
                },
                "segmentQuery": { "type": ["string", "null"], "description": "A selector over device registrations" },
                "publishAt": whole(0, limits::MAX_EPOCH_MS, "When to publish, epoch milliseconds (at most 1 s in the past)"),
                "repeatEvery": whole(1, limits::MAX_REPEAT_SECONDS, "Repeat every this many seconds"),
                "repeatExpiresAt": whole(0, limits::MAX_EPOCH_MS, "The last repetition is at or before this, epoch milliseconds"),
                "repeatCron": { "type": ["string", "null"], "description": "Herald: repeat on a cron schedule (6 or 7 fields), instead of repeatEvery" },
                "timeZone": { "type": ["string", "null"], "description": "Herald: the IANA time zone of repeatCron (UTC by default)" },
                "pushTimeToLive": whole(0, u64::from(limits::MAX_PUSH_TTL_SECONDS), "Herald: seconds a push notification stays worth sending (default 259200, 3 days)"),
                "pushCollapseKey": { "type": ["string", "null"], "minLength": 1, "maxLength": limits::MAX_COLLAPSE_KEY_LEN, "pattern": "^[ -~]+$", "description": "Herald: apns-collapse-id and android.collapse_key (printable ASCII)" },
                "pushThrottlePerMinute": whole(1, u64::from(u32::MAX), "Herald: at most this many notifications of the message per minute")
            },
            "additionalProperties": true
        },
        "TemplateSendBody": {
            "type": "object",
            "description": "A template send: its values, and optionally the timing and push options of a publish. Unknown keys are ignored; an empty body is `{}`.",
            "properties": {
                "templateValues": {
                    "type": ["object", "null"],
                    "description": "Values for the template's smart text (strings; numbers and booleans become their text)",
                    "additionalProperties": { "type": ["string", "number", "boolean"] }
                },
                "publishAt": whole(0, limits::MAX_EPOCH_MS, "When to send, epoch milliseconds (at most 1 s in the past)"),
                "repeatEvery": whole(1, limits::MAX_REPEAT_SECONDS, "Repeat every this many seconds"),
                "repeatExpiresAt": whole(0, limits::MAX_EPOCH_MS, "The last repetition is at or before this, epoch milliseconds"),
                "pushTimeToLive": whole(0, u64::from(limits::MAX_PUSH_TTL_SECONDS), "Seconds a notification stays worth sending"),
                "pushCollapseKey": { "type": ["string", "null"], "minLength": 1, "maxLength": limits::MAX_COLLAPSE_KEY_LEN, "pattern": "^[ -~]+$" },
                "pushThrottlePerMinute": whole(1, u64::from(u32::MAX), "At most this many notifications per minute")
            },
            "additionalProperties": true
        },
        "PollingSubscribeBody": {
            "type": "object",
            "properties": {
                "subscriberId": { "description": "Accepted and ignored" },
                "subtopic": { "description": "Accepted and ignored" },
                "selector": { "type": ["string", "null"], "description": "An SQL-92 condition over the message headers (5012 if it does not parse)" }
            },
            "additionalProperties": true
        },
        "Subscription": {
            "type": "object",
            "required": ["subscriptionId"],
            "properties": { "subscriptionId": { "type": "string" } }
        },
        "PolledMessages": {
            "type": "object",
            "required": ["messages"],
            "properties": { "messages": { "type": "array", "items": schema("PolledMessage") } }
        },
        "PolledMessage": {
            "type": "object",
            "required": ["messageId", "data", "publishedAt", "publisherId", "headers"],
            "properties": {
                "messageId": { "type": "string" },
                "data": { "description": "The message, as published" },
                "publishedAt": { "type": "integer", "description": "Epoch milliseconds of the run" },
                "publisherId": { "type": ["string", "null"] },
                "headers": { "type": "object", "additionalProperties": { "type": "string" } }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    //! The document against the router, both ways: every operation is
    //! routed and answers as documented; every routed request is an
    //! operation.

    use std::collections::BTreeSet;
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::State;
    use crate::config::{AppConfig, Config};

    /// The socket.io endpoints of app `app`: routed, but not REST.
    const NOT_REST: [&str; 2] = ["/app", "/app/"];

    /// The methods probed. `OPTIONS` (CORS preflights, answered on every
    /// path) and `HEAD` (axum's, for the GET routes) are not operations.
    const METHODS: [Method; 5] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];

    /// Every segment the API's paths are made of, plus an unknown one, an
    /// empty one and the test app's credentials.
    const VOCABULARY: [&str; 15] = [
        "info",
        "messaging",
        "channels",
        "subscribe",
        "registrations",
        "push",
        "pushtemplates",
        "email",
        "health",
        "metrics",
        "openapi.json",
        "app",
        "key",
        "x",
        "",
    ];

    /// A server state with app `app` and key `key`, on in-memory engines.
    fn router() -> (Router, Arc<State>) {
        let config = Config {
            apps: vec![AppConfig::new("app", "key")],
            ..Config::default()
        };
        let state = Arc::new(
            State::new(
                &config,
                Arc::new(herald::SystemClock),
                ([127, 0, 0, 1], 0).into(),
                |_| Ok(herald::Engine::builder().build()),
            )
            .expect("in-memory apps"),
        );
        let (router, _ios) = crate::router(&state);
        (router, state)
    }

    struct Answer {
        status: StatusCode,
        content_type: String,
        body: Vec<u8>,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        }

        /// Routed: neither a wrong method (405) nor an unknown path (404,
        /// 8001). Anything else, errors included, is the route answering.
        fn routed(&self) -> bool {
            self.status != StatusCode::METHOD_NOT_ALLOWED
                && !(self.status == StatusCode::NOT_FOUND
                    && self.json()["code"] == codes::UNKNOWN_ROUTE)
        }
    }

    async fn send(router: &Router, method: &Method, path: &str) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("a request");
        let res = router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let content_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = res.into_body().collect().await.expect("a body").to_bytes();
        Answer {
            status,
            content_type,
            body: body.to_vec(),
        }
    }

    /// Every `(path template, method, operation)` of the document.
    fn operations(doc: &Value) -> Vec<(String, Method, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .expect("an HTTP method");
                ops.push((path.clone(), method, op.clone()));
            }
        }
        ops
    }

    /// `template` with each parameter replaced by a value.
    fn instantiate(template: &str) -> String {
        template
            .split('/')
            .map(|seg| match seg {
                "{appId}" => "app",
                "{apiKey}" => "key",
                s if s.starts_with('{') => "x",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Whether `path` is an instance of `template` (a parameter matches
    /// any one segment: the route is the same when it is empty, only its
    /// answer differs).
    fn matches(template: &str, path: &str) -> bool {
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
    }

    /// `#/components/{kind}/{name}` of `doc`, following one `$ref`.
    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v["$ref"].as_str() {
            Some(r) => r
                .strip_prefix("#/")
                .expect("a local reference")
                .split('/')
                .fold(doc, |node, key| &node[key]),
            None => v,
        }
    }

    #[tokio::test]
    async fn every_operation_is_routed_and_answers_as_documented() {
        let (router, state) = router();
        let doc = document();
        let ops = operations(&doc);
        assert_eq!(
            ops.len(),
            18,
            "{:?}",
            ops.iter().map(|o| (&o.0, &o.1)).collect::<Vec<_>>()
        );
        for (template, method, op) in ops {
            let path = instantiate(&template);
            let a = send(&router, &method, &path).await;
            let what = format!("{method} {path} ({template}): {} {:?}", a.status, a.json());
            assert!(a.routed(), "not routed: {what}");
            let response = &op["responses"][a.status.as_str()];
            assert!(!response.is_null(), "undocumented status: {what}");
            let response = resolve(&doc, response);
            let content = response["content"].as_object().expect("documented content");
            assert!(
                content
                    .keys()
                    .any(|ct| a.content_type.starts_with(ct.as_str())),
                "content type {:?} not in {:?}: {what}",
                a.content_type,
                content.keys()
            );
            if let Some(schema) = content.get("application/json") {
                let schema = resolve(&doc, &schema["schema"]);
                let body = a.json();
                for field in schema["required"].as_array().into_iter().flatten() {
                    let field = field.as_str().expect("a field name");
                    assert!(body.get(field).is_some(), "no {field:?}: {what}");
                }
            }
        }
        for app in state.apps.values() {
            app.engine.shutdown().await;
        }
    }

    #[tokio::test]
    async fn every_routed_request_is_an_operation() {
        let (router, state) = router();
        let doc = document();
        let ops = operations(&doc);
        let mut paths = BTreeSet::new();
        for a in VOCABULARY {
            paths.insert(format!("/{a}"));
            for b in VOCABULARY {
                paths.insert(format!("/{a}/{b}"));
            }
        }
        let mut suffixes: Vec<String> = VOCABULARY.iter().map(|s| (*s).to_owned()).collect();
        for _ in 1..3 {
            let longer: Vec<String> = suffixes
                .iter()
                .flat_map(|s| VOCABULARY.iter().map(move |v| format!("{s}/{v}")))
                .collect();
            suffixes.extend(longer);
        }
        paths.extend(suffixes.iter().map(|s| format!("/app/key/{s}")));
        for ignored in NOT_REST {
            paths.remove(ignored);
        }
        assert!(paths.len() > 3500, "{}", paths.len());

        let mut routed = 0;
        for path in &paths {
            for method in &METHODS {
                let a = send(&router, method, path).await;
                if !a.routed() {
                    continue;
                }
                routed += 1;
                assert!(
                    ops.iter().any(|(t, m, _)| m == method && matches(t, path)),
                    "{method} {path} is answered ({} {:?}) but not in the document",
                    a.status,
                    a.json()
                );
            }
        }
        // The operations and their instances with other segments.
        assert!(routed > 100, "{routed}");
        for app in state.apps.values() {
            app.engine.shutdown().await;
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_its_references_resolve() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let reference = json!({ "$ref": r });
            assert!(
                resolve(&doc, &reference).is_object(),
                "{r} does not resolve"
            );
        }
        // Links name operations that exist, and their path parameters.
        let ops = operations(&doc);
        let mut links = 0;
        for (_, _, op) in &ops {
            for response in op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, r)| r)
            {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links += 1;
                    let target = ops
                        .iter()
                        .find(|(_, _, o)| o["operationId"] == link["operationId"])
                        .unwrap_or_else(|| panic!("link {name}: no such operation"));
                    for param in link["parameters"].as_object().expect("parameters").keys() {
                        assert!(
                            target.0.contains(&format!("{{{param}}}")),
                            "link {name}: {param} is no parameter of {}",
                            target.0
                        );
                    }
                }
            }
        }
        assert_eq!(links, 6);
        // Every path parameter of a template is declared by its operations.
        for (template, method, op) in operations(&doc) {
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolve(&doc, p))
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let used: BTreeSet<String> = template
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_owned)
                .collect();
            assert_eq!(declared, used, "{method} {template}");
        }
    }

    #[test]
    fn cors_allows_exactly_the_documented_methods() {
        let documented: BTreeSet<String> = operations(&document())
            .into_iter()
            .map(|(_, m, _)| m.to_string())
            .collect();
        let allowed: BTreeSet<String> = crate::cors::ALLOWED_METHODS
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(documented, allowed);
    }

    #[test]
    fn no_app_may_take_the_route() {
        // Its socket.io route would collide with `/openapi.json`.
        let config = Config {
            apps: vec![AppConfig::new("openapi.json", "key")],
            ..Config::default()
        };
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains("reserved"), "{e}");
    }

    #[tokio::test]
    async fn a_405_says_what_is_allowed() {
        let (router, state) = router();
        for (method, path, allow) in [
            (Method::PUT, "/app/key/messaging/x", "DELETE, GET, POST"),
            (Method::POST, "/app/key/info", "GET"),
            (Method::GET, "/app/key/messaging/channels/x", "DELETE"),
            (
                Method::POST,
                "/app/key/messaging/channels/subscribe",
                "DELETE",
            ),
            (Method::PUT, "/app/key/messaging/x/subscribe", "POST"),
            (Method::POST, "/app/key/messaging/x/y", "GET"),
            (Method::GET, "/app/key/messaging/registrations", "POST"),
            (
                Method::PUT,
                "/app/key/messaging/registrations/d",
                "DELETE, GET",
            ),
            (
                Method::POST,
                "/app/key/messaging/registrations/subscribe",
                "DELETE, GET",
            ),
            (
                Method::DELETE,
                "/app/key/messaging/pushtemplates",
                "GET, POST",
            ),
            (
                Method::POST,
                "/app/key/messaging/pushtemplates/IOS",
                "DELETE, GET",
            ),
            (Method::POST, "/health", "GET"),
            (Method::DELETE, "/openapi.json", "GET"),
        ] {
            let req = Request::builder()
                .method(&method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(
                res.headers()
                    .get(header::ALLOW)
                    .and_then(|v| v.to_str().ok()),
                Some(allow),
                "{method} {path}"
            );
        }
        for app in state.apps.values() {
            app.engine.shutdown().await;
        }
    }

    #[tokio::test]
    async fn served_without_a_key() {
        let (router, state) = router();
        let a = send(&router, &Method::GET, "/openapi.json").await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.content_type, "application/json");
        assert_eq!(a.json(), document());
        let a = send(&router, &Method::POST, "/openapi.json").await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
        for app in state.apps.values() {
            app.engine.shutdown().await;
        }
    }
}
