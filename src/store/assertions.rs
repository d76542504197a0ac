//! The service assertions authmd signed (SPEC-v0.7 5.2), by `jti`: which
//! registration each speaks for, until when, and whether it was revoked
//! before that. The assertion itself is not kept.

use super::Result;
use crate::time::UnixMs;

pub struct NewAssertion<'a> {
    pub jti: &'a str,
    pub registration_id: &'a str,
    pub kid: &'a str,
    pub created_ms: UnixMs,
    pub expires_ms: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAssertion {
    pub registration_id: String,
    pub expires_ms: UnixMs,
    pub revoked_ms: Option<UnixMs>,
}

/// A refresh token as stored (SPEC-v0.7 9): never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefresh {
    pub registration_id: String,
    pub expires_ms: UnixMs,
    pub spent_ms: Option<UnixMs>,
    pub revoked_ms: Option<UnixMs>,
}

pub trait Assertions {
    fn record_assertion(&self, assertion: &NewAssertion<'_>) -> Result<()>;
    fn assertion(&self, jti: &str) -> Result<Option<StoredAssertion>>;
    /// Revokes every live assertion of a registration; returns how many.
    fn revoke_assertions_of(&self, registration_id: &str, now_ms: UnixMs) -> Result<usize>;
    /// Stores a refresh token's hash (SPEC-v0.7 9), live until `expires_ms`.
    fn insert_refresh_token(
        &self,
        token_hash: &crate::secrets::SecretHash,
        registration_id: &str,
        now_ms: UnixMs,
        expires_ms: UnixMs,
    ) -> Result<()>;
    fn refresh_token(&self, token_hash: &crate::secrets::SecretHash) -> Result<Option<StoredRefresh>>;
    /// Spends a live, unspent refresh token; false if it already was spent
    /// or revoked (of two concurrent spends, exactly one wins).
    fn spend_refresh_token(&self, token_hash: &crate::secrets::SecretHash, now_ms: UnixMs) -> Result<bool>;
    /// Revokes every refresh token of a registration; returns how many.
    fn revoke_refresh_tokens_of(&self, registration_id: &str, now_ms: UnixMs) -> Result<usize>;
}
