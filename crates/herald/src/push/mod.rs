//! Push notifications: the device registry, templates with smart text, and
//! the audience of a push run.
//!
//! | file | concept |
//! |---|---|
//! | `os.rs` | the platforms, and their bits in a `pushBroadcast` mask |
//! | `registration.rs` | one device's registration, and how a request is checked |
//! | `registry.rs` | the `DeviceRegistry` and `TemplateStore` boundaries |
//! | `memory.rs` | both in memory |
//! | `smart_text.rs` | `{var}` / `{var|default}` text |
//! | `template.rs` | a stored template, and how one is checked |
//! | `template_send.rs` | a template as sent, rendered per device when the run fires |
//! | `audience.rs` | which devices a push run reaches |
//! | `content.rs` | what a notification says, per OS; its stable id |
//! | `recording.rs` | a scriptable gateway for tests |
//! | `retry.rs` | backoff with full jitter, `Retry-After`, time to live |
//! | `transport.rs` | the `PushTransport` boundary: one gateway |

mod audience;
mod content;
mod memory;
mod os;
mod recording;
mod registration;
mod registry;
mod retry;
mod smart_text;
mod template;
mod template_send;
mod transport;

pub use audience::{Audience, AudiencePage};
pub use content::{NotificationId, PushContent};
pub use memory::MemoryRegistry;
pub use os::Os;
pub use recording::RecordingTransport;
pub use registration::{DeviceRegistration, RESERVED_PROPERTY_NAMES};
pub use registry::{DeviceRegistry, InvalidToken, TemplateStore};
pub use retry::RetryPolicy;
pub use smart_text::{Lookup, SmartText, SmartTextError};
pub use template::PushTemplate;
pub use template_send::{CompiledSend, TemplateSend};
pub use transport::{
    Delivery, MAX_BATCH, Notification, Outcome, PushFuture, PushTransport, Refusal,
};
