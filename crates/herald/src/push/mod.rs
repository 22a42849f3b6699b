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
//! | `audience.rs` | which devices a push run reaches |

mod audience;
mod memory;
mod os;
mod registration;
mod registry;
mod smart_text;
mod template;

pub use audience::Audience;
pub use memory::MemoryRegistry;
pub use os::Os;
pub use registration::{DeviceRegistration, RESERVED_PROPERTY_NAMES};
pub use registry::{DeviceRegistry, InvalidToken, TemplateStore};
pub use smart_text::{Lookup, SmartText, SmartTextError};
pub use template::PushTemplate;
