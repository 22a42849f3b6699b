//! The push REST routes: device registrations (`messaging/registrations`)
//! push templates (`messaging/pushtemplates`), and template sends
//! (`messaging/push/{name}`).
//!
//! Each handler checks the key's right first (5032 for registrations, 5034
//! for templates), then reads the body, then asks the engine; the engine's
//! errors map to statuses in [`ApiError`]'s `From` (5015 and 5051 are 400,
//! 5000 and 5050 are 404).

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herald::Os;
use serde_json::{Value, json};

use crate::State;
use crate::auth::Key;
use crate::body::read_json;
use crate::error::{ApiError, json_response};
use crate::percent::decode_segment_lenient;
use crate::state::App;

/// A path segment naming a device or a template, percent-decoded
/// leniently: an escape that does not decode stays as its text, so a name
/// holding `%e3` is found even when the client left that `%` unescaped.
/// (Found by schemathesis: a template named `aò…%e3¸` was created, then
/// its DELETE, `a%C3%B2…%e3%C2%B8`, answered 5050 not found.)
fn segment(raw: &str) -> String {
    decode_segment_lenient(raw)
}

/// `POST messaging/registrations`: registers the device of the body (see
/// [`herald::DeviceRegistration::from_json`]); answers
/// `{"registrationId": "..."}`.
pub(crate) async fn register(
    state: &State,
    app: &App,
    key: &Key,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    key.check_register()?;
    let body = read_json(headers, body, state.limits.max_body, false).await?;
    let id = app.engine.register_device(&body).await?;
    app.devices.registered();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "registrationId": id }),
    ))
}

/// `GET messaging/registrations/{deviceId}`: a list with the device's one
/// registration (as the JS, .NET and Swift SDKs read it).
pub(crate) async fn registration(app: &App, key: &Key, device: &str) -> Result<Response, ApiError> {
    key.check_register()?;
    let reg = app.engine.device(&segment(device)).await?;
    Ok(json_response(StatusCode::OK, &json!([reg.to_json()])))
}

/// `DELETE messaging/registrations/{deviceId}`: `{"result": true}`.
pub(crate) async fn unregister(app: &App, key: &Key, device: &str) -> Result<Response, ApiError> {
    key.check_register()?;
    app.engine.unregister_device(&segment(device)).await?;
    app.devices.unregistered();
    Ok(json_response(StatusCode::OK, &json!({ "result": true })))
}

/// `POST messaging/pushtemplates`: creates or replaces the template of the
/// body (see [`herald::PushTemplate::from_json`]); answers the stored
/// template.
pub(crate) async fn put_template(
    state: &State,
    app: &App,
    key: &Key,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    key.check_templates()?;
    let body = read_json(headers, body, state.limits.max_body, false).await?;
    let template = app.engine.put_template(&body).await?;
    Ok(json_response(StatusCode::OK, &template.to_json()))
}

/// `GET messaging/pushtemplates/{deviceType}` (and, for the Swift SDK,
/// `GET messaging/pushtemplates`, which is `ALL`): the templates whose
/// audience includes the device type, by name.
pub(crate) async fn templates(
    app: &App,
    key: &Key,
    device_type: Option<&str>,
) -> Result<Response, ApiError> {
    key.check_list_templates()?;
    let os = match device_type {
        None => None,
        Some(raw) => device_type_os(&segment(raw))?,
    };
    let list: Vec<Value> = app
        .engine
        .templates(os)
        .await?
        .iter()
        .map(|t| t.to_json())
        .collect();
    Ok(json_response(StatusCode::OK, &list))
}

/// `DELETE messaging/pushtemplates/{name}`: `{"result": true}`.
pub(crate) async fn delete_template(
    app: &App,
    key: &Key,
    name: &str,
) -> Result<Response, ApiError> {
    key.check_templates()?;
    app.engine.delete_template(&segment(name)).await?;
    Ok(json_response(StatusCode::OK, &json!({ "result": true })))
}

/// A `getPushTemplates` device type, in any case: `IOS`, `ANDROID`, or
/// `ALL` (`None`: every template); anything else is 8012.
fn device_type_os(name: &str) -> Result<Option<Os>, ApiError> {
    match name.to_ascii_uppercase().as_str() {
        "IOS" => Ok(Some(Os::Ios)),
        "ANDROID" => Ok(Some(Os::Android)),
        "ALL" => Ok(None),
        _ => Err(ApiError::invalid_device_type(name)),
    }
}

/// `POST messaging/push/{name}`: sends the push template `name` with the
/// body's `templateValues` (and, optionally, the timing and push options
/// of a publish); answers the message's status. Needs the push right on
/// the template's channel (5033); an `Idempotency-Key` works as on a
/// publish.
pub(crate) async fn send_template(
    state: &State,
    app: &App,
    key: &Key,
    headers: &HeaderMap,
    body: Body,
    name: &str,
) -> Result<Response, ApiError> {
    let name = segment(name);
    let template = app.engine.template(&name).await?;
    key.check_push(&template.channel)?;
    let body = read_json(headers, body, state.limits.max_body, true).await?;
    let extras = crate::rest::idempotency(headers)?;
    let status = app.engine.push_template(&name, &body, extras).await?;
    Ok(json_response(StatusCode::OK, &status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_types() {
        assert_eq!(device_type_os("IOS").unwrap(), Some(Os::Ios));
        assert_eq!(device_type_os("ios").unwrap(), Some(Os::Ios));
        assert_eq!(device_type_os("Android").unwrap(), Some(Os::Android));
        assert_eq!(device_type_os("all").unwrap(), None);
        for bad in ["OSX", "WP", "", " IOS", "IOS ", "ıos", "WINDOWS"] {
            let e = device_type_os(bad).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (400, 8012), "{bad:?}");
        }
        let long = "x".repeat(100);
        let e = device_type_os(&long).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "Invalid device type \"{}\"…: use IOS, ANDROID or ALL.",
                "x".repeat(64)
            )
        );
    }
}
