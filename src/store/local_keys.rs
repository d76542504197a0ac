//! Secrets the database makes for itself, such as the key OTPs are MACed
//! under: made once, on first use, and never leave the database.

use super::Result;
use crate::time::UnixMs;

pub trait LocalKeys {
    /// The key called `name`; `fresh` is stored as it if there is none yet
    /// (of two racing first uses, one value wins and both read it).
    fn local_key(&self, name: &str, fresh: &[u8], now_ms: UnixMs) -> Result<Vec<u8>>;
}
