//! Device registrations and push templates: the engine's side of the
//! registry and template boundaries.

use std::sync::Arc;

use serde_json::Value;

use super::Engine;
use crate::store::StoreError;
use crate::{DeviceRegistration, Error, Os, PushTemplate};

impl Engine {
    /// Registers a device from a registration request body (Backendless's
    /// `POST messaging/registrations`; see [`DeviceRegistration::from_json`])
    /// and answers its new `registrationId`. Registering a device id again
    /// replaces its registration and records the time of this one.
    ///
    /// # Errors
    ///
    /// 5015 for a malformed registration (nothing is stored), 5090/5093
    /// when the registry fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::Error> {
    /// let engine = herald::Engine::builder().build();
    /// let body = serde_json::json!({"deviceId": "d1", "deviceToken": "t", "os": "ANDROID"});
    /// let id = engine.register_device(&body).await?;
    /// let reg = engine.device("d1").await?;
    /// assert_eq!(reg.registration_id, id);
    /// assert_eq!(reg.channels, ["default"]);
    /// assert!(engine.unregister_device("d1").await.is_ok());
    /// assert_eq!(engine.device("d1").await.unwrap_err().code(), 5000);
    /// # engine.shutdown().await; Ok(()) }
    /// ```
    pub async fn register_device(&self, body: &Value) -> Result<String, Error> {
        let mut reg = DeviceRegistration::from_json(body)?;
        self.register(&mut reg).await?;
        Ok(reg.registration_id)
    }

    /// Registers `registration` (already checked), setting its
    /// `registration_id` and `registered_at`.
    ///
    /// # Errors
    ///
    /// 5015 when its `expiration` is not after now (it would receive
    /// nothing and be purged; nothing is stored), 5090/5093 when the
    /// registry fails.
    pub async fn register(&self, registration: &mut DeviceRegistration) -> Result<(), Error> {
        let sh = &self.shared;
        let now = sh.clock.now();
        if let Some(end) = registration
            .expiration
            .filter(|_| registration.is_expired(now))
        {
            return Err(Error::InvalidRegistration {
                reason: format!(
                    "expiration {} (epoch ms) is not in the future; the device would receive nothing.",
                    end.as_millis()
                ),
            });
        }
        registration.registration_id = sh
            .ids
            .next(now)
            .map_err(|e| Error::Store(StoreError::other(e.to_string())))?
            .to_string();
        registration.registered_at = now;
        sh.registry.register(registration.clone()).await?;
        Ok(())
    }

    /// The registration of `device_id`.
    ///
    /// # Errors
    ///
    /// 5000 if it is not registered (or its registration expired), 5090/5093
    /// when the registry fails.
    pub async fn device(&self, device_id: &str) -> Result<Arc<DeviceRegistration>, Error> {
        let now = self.shared.clock.now();
        match self.shared.registry.device(device_id).await? {
            Some(reg) if !reg.is_expired(now) => Ok(reg),
            _ => Err(Error::UnknownDevice),
        }
    }

    /// Removes the registration of `device_id`.
    ///
    /// # Errors
    ///
    /// 5000 if it is not registered, 5090/5093 when the registry fails.
    pub async fn unregister_device(&self, device_id: &str) -> Result<(), Error> {
        if self.shared.registry.unregister(device_id).await? {
            Ok(())
        } else {
            Err(Error::UnknownDevice)
        }
    }

    /// Creates or replaces a push template from its JSON (see
    /// [`PushTemplate::from_json`]) and answers the stored template.
    ///
    /// # Errors
    ///
    /// 5051 for a malformed template (nothing is stored), 5090/5093 when
    /// the template store fails.
    pub async fn put_template(&self, body: &Value) -> Result<PushTemplate, Error> {
        let template = PushTemplate::from_json(body)?;
        self.shared.templates.put_template(template.clone()).await?;
        Ok(template)
    }

    /// The template called `name`.
    ///
    /// # Errors
    ///
    /// 5050 if there is none, 5090/5093 when the template store fails.
    pub async fn template(&self, name: &str) -> Result<Arc<PushTemplate>, Error> {
        self.shared
            .templates
            .template(name)
            .await?
            .ok_or(Error::TemplateNotFound)
    }

    /// Deletes the template called `name`.
    ///
    /// # Errors
    ///
    /// 5050 if there is none, 5090/5093 when the template store fails.
    pub async fn delete_template(&self, name: &str) -> Result<(), Error> {
        if self.shared.templates.delete_template(name).await? {
            Ok(())
        } else {
            Err(Error::TemplateNotFound)
        }
    }

    /// The templates whose audience includes `os` (all of them for
    /// `None`), by name.
    ///
    /// # Errors
    ///
    /// 5090/5093 when the template store fails.
    pub async fn templates(&self, os: Option<Os>) -> Result<Vec<Arc<PushTemplate>>, Error> {
        Ok(self.shared.templates.list_templates(os).await?)
    }
}

impl Engine {
    /// Sends the push template `name` (Herald's `POST messaging/push/{name}`):
    /// `body` is the send's JSON, `{"templateValues": {...}}` plus, if
    /// wanted, the timing options of a publish (`publishAt`,
    /// `repeatEvery`, `repeatExpiresAt`, `repeatCron`, `timeZone`) and
    /// the push options (`pushTimeToLive`, `pushCollapseKey`,
    /// `pushThrottlePerMinute`). The audience is the template's (its
    /// channel, OSes and segment query, filled from the values); each
    /// device's content is rendered when the run fires.
    ///
    /// # Errors
    ///
    /// 5050 (no such template), 5014 (no push gateway), 5013 (values that
    /// are not an object of strings), the publish errors of the timing
    /// options.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald::{Engine, PublishStatus, PushBroadcast, RecordingTransport};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::Error> {
    /// let apns = RecordingTransport::new("apns");
    /// let engine = Engine::builder().push_gateway(PushBroadcast::IOS, apns.clone()).build();
    /// engine.register_device(&serde_json::json!({
    ///     "deviceId": "d1", "deviceToken": "t1", "os": "IOS", "properties": {"name": "Ada"}})).await?;
    /// engine.put_template(&serde_json::json!({"name": "hi", "message": "Hi {name}, {greeting|hello}!"})).await?;
    /// let status = engine
    ///     .push_template("hi", &serde_json::json!({"templateValues": {"greeting": "welcome"}}), Default::default())
    ///     .await?;
    /// assert_eq!(status.status, PublishStatus::Published);
    /// engine.settle().await;
    /// assert_eq!(apns.sent()[0].content.body.as_deref(), Some("Hi Ada, welcome!"));
    /// # engine.shutdown().await; Ok(()) }
    /// ```
    pub async fn push_template(
        &self,
        name: &str,
        body: &Value,
        extras: super::PublishExtras,
    ) -> Result<crate::MessageStatus, Error> {
        let template = self.template(name).await?;
        let (values, mut delivery) = match body {
            Value::Null => (&Value::Null, crate::DeliveryOptions::default()),
            Value::Object(fields) => (
                fields.get("templateValues").unwrap_or(&Value::Null),
                crate::DeliveryOptions::from_json(body)?,
            ),
            other => {
                return Err(Error::InvalidOptions {
                    field: "templateValues",
                    reason: format!(
                        "A template send's body is a JSON object, not {}.",
                        crate::error::shown(other)
                    ),
                });
            }
        };
        let send = Arc::new(crate::TemplateSend::new(&template, values)?);
        delivery.publish_policy = crate::PublishPolicy::Push;
        delivery.push_broadcast = Some(template.os);
        delivery.push_singlecast = Vec::new();
        delivery.segment_query = template.segment_text(&send.values)?;
        let message = crate::Body::from(send.to_json());
        super::publish::publish(
            &self.shared,
            &template.channel,
            message,
            crate::PublishOptions::default(),
            delivery,
            extras,
            Some(send),
        )
        .await
    }
}
