//! The errors of the HTTP/2 client: [`SendError`], [`TlsError`], [`BadUrl`].

use std::fmt;
use std::path::PathBuf;

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No connection could be opened (name resolution, TCP, TLS: a
    /// certificate the client does not trust lands here, or a server that
    /// does not speak HTTP/2). Nothing was sent.
    Connect(String),
    /// The request timeout passed before the whole answer arrived; the
    /// server may have processed the request.
    Timeout,
    /// The connection broke after the request left; the server may have
    /// processed it.
    Lost(String),
    /// The server refused the request on every connection it was sent on
    /// (GOAWAY, `REFUSED_STREAM`), so it did not process it.
    Refused(String),
}

impl SendError {
    /// Whether the server may have acted on the request (so sending it
    /// again may duplicate it): false for [`SendError::Connect`] and
    /// [`SendError::Refused`].
    pub const fn maybe_processed(&self) -> bool {
        !matches!(self, Self::Connect(_) | Self::Refused(_))
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(why) => write!(f, "cannot connect: {why}"),
            Self::Timeout => f.write_str("no answer before the request timeout"),
            Self::Lost(why) => write!(f, "the connection was lost: {why}"),
            Self::Refused(why) => write!(f, "the server refused the request: {why}"),
        }
    }
}

impl std::error::Error for SendError {}

/// A base URL the pool cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadUrl {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for BadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad gateway URL {:?}: {}", self.url, self.reason)
    }
}

impl std::error::Error for BadUrl {}

/// Trusted roots that cannot be loaded.
#[derive(Debug)]
pub enum TlsError {
    /// The roots file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM text holds no usable certificate, or a malformed one.
    Pem {
        /// The file, if the PEM came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "cannot read CA file {}: {source}", path.display())
            }
            Self::Pem {
                path: Some(path),
                reason,
            } => write!(f, "CA file {}: {reason}", path.display()),
            Self::Pem { path: None, reason } => write!(f, "CA certificates: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Pem { .. } => None,
        }
    }
}
