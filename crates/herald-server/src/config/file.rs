//! The TOML file's shape (`--config`).

use std::path::PathBuf;

use serde::Deserialize;

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) max_body: Option<usize>,
    pub(super) poll_ttl_secs: Option<u64>,
    #[serde(default)]
    pub(super) apps: Vec<FileApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApp {
    pub(super) id: String,
    #[serde(default)]
    pub(super) keys: Vec<FileKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKey {
    pub(super) key: String,
    pub(super) publish: Option<Vec<String>>,
    pub(super) subscribe: Option<Vec<String>>,
}
