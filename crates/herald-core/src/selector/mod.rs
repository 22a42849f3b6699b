//! TEMP STUB (not committed)
#![allow(missing_docs, missing_debug_implementations)]
use std::collections::BTreeMap;
#[derive(Clone, Debug)]
pub struct Selector(String);
#[derive(Clone, Debug, thiserror::Error)]
#[error("bad selector at {0}")]
pub struct SelectorError(usize);
impl SelectorError {
    pub fn code(&self) -> u32 {
        5012
    }
    pub fn position(&self) -> usize {
        self.0
    }
}
pub trait Headers {
    fn header(&self, name: &str) -> Option<&str>;
}
impl Headers for BTreeMap<String, String> {
    fn header(&self, n: &str) -> Option<&str> {
        self.get(n).map(|s| s.as_str())
    }
}
impl Selector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.ends_with('>') {
            Err(SelectorError(s.len()))
        } else {
            Ok(Self(s.into()))
        }
    }
    pub fn matches<H: Headers + ?Sized>(&self, _h: &H) -> bool {
        true
    }
    pub fn source(&self) -> &str {
        &self.0
    }
}
