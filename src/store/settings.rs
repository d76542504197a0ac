//! Stored settings: the values of the keys in `crate::settings::DEFS`, as
//! set by the operator. Values arrive already normalised; an absent key
//! means its default.

use std::collections::BTreeMap;

use super::Result;
use crate::time::UnixMs;

pub trait Settings {
    fn stored_settings(&self) -> Result<BTreeMap<String, String>>;
    /// Stores `value` for `key`, or removes it when `value` is `None`.
    fn put_setting(&self, key: &str, value: Option<&str>, now_ms: UnixMs) -> Result<()>;
}
