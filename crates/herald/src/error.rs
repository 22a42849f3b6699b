//! The engine's one error type, carrying Backendless's codes and messages.

use std::fmt;

use herald_core::selector::SelectorError;

use crate::store::StoreError;
use crate::transport::TransportError;

/// Everything an [`Engine`](crate::Engine) call can fail with.
///
/// Validation errors carry the Backendless error [`code`](Self::code) and
/// Backendless's text unchanged ([`summary`](Self::summary)), followed by
/// what exactly was wrong ([`reason`](Self::reason)); `Display` and
/// [`message`](Self::message) print both. A failed validation stores
/// nothing.
///
/// | code | variant |
/// |---|---|
/// | 5003 | [`InvalidPublishAt`](Self::InvalidPublishAt) |
/// | 5007 | [`InvalidRepeatExpiresAt`](Self::InvalidRepeatExpiresAt) |
/// | 5008 | [`InvalidRepeatEvery`](Self::InvalidRepeatEvery) |
/// | 5009 | [`InvalidCron`](Self::InvalidCron) |
/// | 5010 | [`InvalidChannel`](Self::InvalidChannel) |
/// | 5011 | [`InvalidPolicy`](Self::InvalidPolicy) |
/// | 5012 | [`InvalidSelector`](Self::InvalidSelector) |
/// | 5013 | [`InvalidOptions`](Self::InvalidOptions), [`MissingMessage`](Self::MissingMessage) (Herald's: a malformed field outside the table) |
/// | 5040 | [`NotCancellable`](Self::NotCancellable) |
/// | 5090 | [`Store`](Self::Store) (Herald's) |
/// | 5091 | [`ShutDown`](Self::ShutDown) (Herald's) |
/// | 5092 | [`Transport`](Self::Transport) (Herald's) |
/// | 5093 | [`StoreUnavailable`](Self::StoreUnavailable) (Herald's) |
/// | 5094 | [`TooManySubscriptions`](Self::TooManySubscriptions) (Herald's) |
/// | 5095 | [`IdempotencyKeyReused`](Self::IdempotencyKeyReused) (Herald's) |
/// | 5096 | [`InvalidIdempotencyKey`](Self::InvalidIdempotencyKey) (Herald's) |
/// | 5000 | [`UnknownDevice`](Self::UnknownDevice) |
/// | 5014 | [`PushNotConfigured`](Self::PushNotConfigured) (Herald's) |
/// | 5015 | [`InvalidRegistration`](Self::InvalidRegistration) (Herald's) |
/// | 5050 | [`TemplateNotFound`](Self::TemplateNotFound) (Herald's) |
/// | 5051 | [`InvalidTemplate`](Self::InvalidTemplate) (Herald's) |
///
/// # Examples
///
/// ```
/// use herald::Error;
///
/// let err = Error::InvalidPublishAt {
///     reason: "1700000000 is in the past: publishAt is in epoch milliseconds.".into(),
/// };
/// assert_eq!(err.code(), 5003);
/// assert_eq!(err.summary(), "Invalid publishAt date in the delivery options.");
/// assert_eq!(
///     err.to_string(),
///     "Invalid publishAt date in the delivery options. \
///      1700000000 is in the past: publishAt is in epoch milliseconds."
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `publishAt` is not a number, negative, or more than 1 s in the past.
    InvalidPublishAt {
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
    /// `repeatExpiresAt` is not a number, in the past, or before `publishAt`.
    InvalidRepeatExpiresAt {
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
    /// `repeatEvery` is below 1, not an integer, or given with `repeatCron`.
    InvalidRepeatEvery {
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
    /// `repeatCron` (or its `timeZone`) does not parse, or never fires.
    InvalidCron {
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
    /// The channel name is empty, contains `/` or a control character, or
    /// is over [`MAX_CHANNEL_LEN`](crate::limits::MAX_CHANNEL_LEN) bytes.
    InvalidChannel {
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
    /// `publishPolicy` or `pushBroadcast` (or `pushSinglecast`) does not parse.
    InvalidPolicy {
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
    /// A subscription selector (or a `segmentQuery`) does not parse.
    InvalidSelector(SelectorError),
    /// A field outside Backendless's table is malformed (for example
    /// `headers` that is not an object). Herald's code 5013.
    InvalidOptions {
        /// The offending field's wire name.
        field: &'static str,
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
    /// A publish request body with no `message` key. Herald's code 5013.
    MissingMessage,
    /// Cancel of a message that is not scheduled: unknown, already
    /// published, failed or cancelled.
    NotCancellable,
    /// The store failed; nothing was acknowledged.
    Store(StoreError),
    /// The store cannot write right now (a full disk, a lost connection):
    /// nothing was acknowledged, and a retry later may succeed. Herald's
    /// code 5093.
    StoreUnavailable(StoreError),
    /// The engine has been shut down.
    ShutDown,
    /// The pub/sub transport failed (a remote bus unreachable, say).
    Transport(TransportError),
    /// The inbox already has as many subscriptions as its
    /// [`InboxLimits::max_subscriptions`](crate::InboxLimits::max_subscriptions)
    /// allows (or it is closed). Herald's code 5094.
    TooManySubscriptions {
        /// The limit.
        limit: usize,
    },
    /// A publish with an idempotency key that a different request (another
    /// channel, options or message) used in the last 24 hours; nothing was
    /// published. Herald's code 5095.
    IdempotencyKeyReused,
    /// An idempotency key that is empty, longer than
    /// [`MAX_IDEMPOTENCY_KEY_LEN`](crate::limits::MAX_IDEMPOTENCY_KEY_LEN)
    /// bytes, or not printable ASCII. Herald's code 5096.
    InvalidIdempotencyKey,
    /// A registration lookup or unregister of a device id that is not
    /// registered.
    UnknownDevice,
    /// A `PUSH`/`BOTH` publish (or a template send) to an engine with no
    /// push gateway. Herald's code 5014.
    PushNotConfigured,
    /// A device registration without `deviceToken` or `deviceId`, with an
    /// unknown `os`, or otherwise malformed. Herald's code 5015.
    InvalidRegistration {
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
    /// A push template name that is not stored. Herald's code 5050.
    TemplateNotFound,
    /// A push template that does not parse. Herald's code 5051.
    InvalidTemplate {
        /// What exactly was wrong (appended to the message).
        reason: String,
    },
}

impl Error {
    /// The Backendless error code (Herald's own in the 5013 and 509x range
    /// where Backendless publishes none).
    pub fn code(&self) -> u32 {
        match self {
            Self::InvalidPublishAt { .. } => 5003,
            Self::InvalidRepeatExpiresAt { .. } => 5007,
            Self::InvalidRepeatEvery { .. } => 5008,
            Self::InvalidCron { .. } => 5009,
            Self::InvalidChannel { .. } => 5010,
            Self::InvalidPolicy { .. } => 5011,
            Self::InvalidSelector(_) => 5012,
            Self::InvalidOptions { .. } | Self::MissingMessage => 5013,
            Self::NotCancellable => 5040,
            Self::Store(_) => 5090,
            Self::ShutDown => 5091,
            Self::Transport(_) => 5092,
            Self::StoreUnavailable(_) => 5093,
            Self::TooManySubscriptions { .. } => 5094,
            Self::IdempotencyKeyReused => 5095,
            Self::InvalidIdempotencyKey => 5096,
            Self::UnknownDevice => 5000,
            Self::PushNotConfigured => 5014,
            Self::InvalidRegistration { .. } => 5015,
            Self::TemplateNotFound => 5050,
            Self::InvalidTemplate { .. } => 5051,
        }
    }

    /// Whether this is the caller's fault (a validation error or a bad
    /// cancel), as opposed to the engine's (store failure, shut down). A
    /// server answers the first kind with 400.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Self::Store(_) | Self::StoreUnavailable(_) | Self::ShutDown | Self::Transport(_)
        )
    }

    /// The whole message: Backendless's text, then what exactly was wrong.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Backendless's text for this error, unchanged (without the
    /// [`reason`](Self::reason)). For the errors whose text depends on a
    /// value (a selector's position, a field's name, a store's failure)
    /// this is the generic form.
    pub fn summary(&self) -> &'static str {
        match self {
            Self::InvalidPublishAt { .. } => "Invalid publishAt date in the delivery options.",
            Self::InvalidRepeatExpiresAt { .. } => {
                "Invalid repeatExpiresAt date in delivery options."
            }
            Self::InvalidRepeatEvery { .. } => "Invalid repeatEvery value in delivery options.",
            Self::InvalidCron { .. } => "Invalid cron expression in delivery options.",
            Self::InvalidChannel { .. } => "Invalid channel name.",
            Self::InvalidPolicy { .. } => "Invalid publishPolicy / pushBroadcast value.",
            Self::InvalidSelector(_) => "Invalid selector.",
            Self::InvalidOptions { .. } => "Invalid value in publish options.",
            Self::MissingMessage => "message is required",
            Self::NotCancellable => "Message has already been canceled or does not exist.",
            Self::Store(_) => "Message store failure.",
            Self::StoreUnavailable(_) => "The message store cannot write.",
            Self::ShutDown => "The messaging engine is shut down.",
            Self::Transport(_) => "Message transport failure.",
            Self::TooManySubscriptions { .. } => "Too many subscriptions.",
            Self::IdempotencyKeyReused => {
                "The Idempotency-Key was used for a different request in the last 24 hours."
            }
            Self::InvalidIdempotencyKey => {
                "Invalid Idempotency-Key: use 1 to 255 printable ASCII characters."
            }
            Self::UnknownDevice => "Unable to retrieve device registration - unknown device ID.",
            Self::PushNotConfigured => {
                "Push notifications are not configured for this application."
            }
            Self::InvalidRegistration { .. } => "Invalid device registration.",
            Self::TemplateNotFound => "Push template not found.",
            Self::InvalidTemplate { .. } => "Invalid push template.",
        }
    }

    /// What exactly was wrong with the input, for the validation errors
    /// that carry it.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::InvalidPublishAt { reason }
            | Self::InvalidRepeatExpiresAt { reason }
            | Self::InvalidRepeatEvery { reason }
            | Self::InvalidCron { reason }
            | Self::InvalidChannel { reason }
            | Self::InvalidPolicy { reason }
            | Self::InvalidRegistration { reason }
            | Self::InvalidTemplate { reason }
            | Self::InvalidOptions { reason, .. } => {
                Some(reason.as_str()).filter(|r| !r.is_empty())
            }
            _ => None,
        }
    }
}

/// A user-supplied string as a reason shows it: quoted and escaped (no
/// control character reaches a log line or an answer raw), and cut to 64
/// characters.
pub(crate) fn quoted(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
    }
}

/// A JSON value as a reason shows it: its JSON text (strings escaped), cut
/// to 64 characters.
pub(crate) fn shown(v: &serde_json::Value) -> String {
    const MAX: usize = 64;
    let text = v.to_string();
    match text.char_indices().nth(MAX) {
        None => text,
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// Backendless's `text`, then `reason` after a space (if any).
fn with_reason(f: &mut fmt::Formatter<'_>, text: &str, reason: &str) -> fmt::Result {
    f.write_str(text)?;
    if reason.is_empty() {
        Ok(())
    } else {
        write!(f, " {reason}")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPublishAt { reason }
            | Self::InvalidRepeatExpiresAt { reason }
            | Self::InvalidRepeatEvery { reason }
            | Self::InvalidCron { reason }
            | Self::InvalidChannel { reason }
            | Self::InvalidPolicy { reason }
            | Self::InvalidRegistration { reason }
            | Self::InvalidTemplate { reason } => with_reason(f, self.summary(), reason),
            Self::InvalidSelector(e) => write!(
                f,
                "Invalid selector at column {}: {}",
                e.column(),
                e.message()
            ),
            Self::InvalidOptions { field, reason } => {
                write!(f, "Invalid {field} value in publish options.")?;
                with_reason(f, "", reason)
            }
            Self::MissingMessage => f.write_str(self.summary()),
            Self::NotCancellable => {
                f.write_str("Message has already been canceled or does not exist.")
            }
            Self::Store(e) => write!(f, "Message store failure: {e}"),
            Self::StoreUnavailable(e) => {
                let why = match e {
                    StoreError::Unavailable(inner) => inner.to_string(),
                    other => other.to_string(),
                };
                write!(f, "The message store cannot write: {why}.")
            }
            Self::ShutDown => f.write_str("The messaging engine is shut down."),
            Self::Transport(e) => write!(f, "Message transport failure: {e}"),
            Self::TooManySubscriptions { limit } => {
                write!(f, "Too many subscriptions: at most {limit} at once.")
            }
            Self::IdempotencyKeyReused => f.write_str(
                "The Idempotency-Key was used for a different request in the last 24 hours.",
            ),
            Self::InvalidIdempotencyKey
            | Self::UnknownDevice
            | Self::PushNotConfigured
            | Self::TemplateNotFound => f.write_str(self.summary()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidSelector(e) => Some(e),
            Self::Store(e) | Self::StoreUnavailable(e) => Some(e),
            Self::Transport(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    /// A retryable store error (it cannot write right now) is
    /// [`StoreUnavailable`](Self::StoreUnavailable); the rest
    /// [`Store`](Self::Store).
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            Self::StoreUnavailable(e)
        } else {
            Self::Store(e)
        }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}

impl From<SelectorError> for Error {
    fn from(e: SelectorError) -> Self {
        Self::InvalidSelector(e)
    }
}
