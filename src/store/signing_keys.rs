//! The keys that sign authmd's own assertions (SPEC-v0.7 5.3). The private
//! key is PKCS#8 bytes, read only to sign; nothing prints or logs it.

use super::Result;
use crate::time::UnixMs;

pub struct StoredSigningKey {
    pub kid: String,
    pub pkcs8: Vec<u8>,
    pub created_ms: UnixMs,
    /// `None`: the current key, the one that signs.
    pub retired_ms: Option<UnixMs>,
}

pub trait SigningKeys {
    /// Every key kept, the current one first, then the retired ones, newest
    /// retired first. A handful of rows at most.
    fn signing_keys(&self) -> Result<Vec<StoredSigningKey>>;
    /// Makes `kid` the current key, retiring the one that was (at `now_ms`).
    /// Returns the retired key's `kid`, if there was one.
    fn rotate_signing_key(&self, kid: &str, pkcs8: &[u8], now_ms: UnixMs) -> Result<Option<String>>;
    /// Deletes retired keys retired at or before `before_ms`; returns how many.
    fn drop_signing_keys_retired_before(&self, before_ms: UnixMs) -> Result<usize>;
}
