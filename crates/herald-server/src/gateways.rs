//! The push gateways of an app, built from its `[apps.apns]` and
//! `[apps.fcm]` sections: [`ApnsGateway`] for IOS and OSX devices,
//! [`FcmGateway`] for ANDROID devices.

use std::sync::Arc;

use anyhow::Context;
use herald::{Clock, PushBroadcast, PushTransport};
use herald_apns::{ApnsConfig as ApnsSettings, ApnsGateway};
use herald_fcm::{FcmConfig as FcmSettings, FcmGateway};

use crate::Gateway;
use crate::config::AppConfig;

/// The gateways `app` configures, their keys read and checked now, so a
/// bad key fails the start with one line naming the app and the file (and
/// never the key's contents).
///
/// # Errors
///
/// A key or CA file cannot be read or is not what it must be.
pub(crate) fn of_app(app: &AppConfig, clock: &Arc<dyn Clock>) -> anyhow::Result<Vec<Gateway>> {
    let mut gateways = Vec::new();
    if let Some(apns) = &app.apns {
        let gateway = ApnsSettings::from_files(
            &apns.key_file,
            &apns.key_id,
            &apns.team_id,
            &apns.topic,
            &apns.base_url(),
            apns.ca_file.as_deref(),
        )
        .and_then(|settings| ApnsGateway::new(settings, clock.clone()))
        .with_context(|| format!("app {:?}: [apps.apns]", app.id))?;
        let os = PushBroadcast::from_bits(PushBroadcast::IOS.bits() | PushBroadcast::OSX.bits())
            .expect("IOS | OSX");
        gateways.push((os, Arc::new(gateway) as Arc<dyn PushTransport>));
    }
    if let Some(fcm) = &app.fcm {
        let gateway = FcmSettings::from_files(
            &fcm.service_account_file,
            &fcm.base_url(),
            fcm.ca_file.as_deref(),
        )
        .and_then(|settings| FcmGateway::new(settings, clock.clone()))
        .with_context(|| format!("app {:?}: [apps.fcm]", app.id))?;
        gateways.push((
            PushBroadcast::ANDROID,
            Arc::new(gateway) as Arc<dyn PushTransport>,
        ));
    }
    Ok(gateways)
}
