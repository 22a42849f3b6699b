//! `Envelope`: a message as the engine accepted it.

use std::sync::Arc;

use herald_core::Tick;

use crate::{Body, DeliveryOptions, DeliveryPlan, MessageId, PublishOptions, TemplateSend};

/// A message as the engine accepted it: immutable from publish on. Stores
/// persist it; every run is delivered from it.
///
/// The body is raw JSON ([`Body`]) and the delivery options are a parsed
/// [`DeliveryPlan`], both shared by reference count: the store, the driver
/// and every delivered run see the same bytes and the same plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The id issued at publish.
    pub id: MessageId,
    /// The channel it was published to.
    pub channel: String,
    /// When the engine accepted it.
    pub accepted_at: Tick,
    /// Publisher id, headers, subtopic.
    pub publish: PublishOptions,
    /// Timing, repetition and push targeting, checked and parsed.
    pub plan: Arc<DeliveryPlan>,
    /// The message body, any JSON value, as raw JSON text.
    pub body: Body,
    /// For a push template send: the template's content and the send's
    /// values, rendered per device when the run fires.
    pub template: Option<Arc<TemplateSend>>,
}

impl Envelope {
    /// The delivery options as given at publish.
    pub fn delivery(&self) -> &DeliveryOptions {
        self.plan.options()
    }
}
