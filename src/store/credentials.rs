//! Credentials: API keys and access tokens, kept only as the SHA-256 of the
//! token and found by it.

use super::Result;
use super::registrations::{Registration, Selection};
use crate::model::CredentialType;
use crate::secrets::SecretHash;
use crate::time::UnixMs;

pub struct NewCredential<'a> {
    pub id: &'a str,
    pub registration_id: &'a str,
    pub kind: CredentialType,
    pub token_hash: &'a SecretHash,
    pub scopes: &'a str,
    pub created_ms: UnixMs,
    pub expires_ms: Option<UnixMs>,
}

/// A stored credential with the registration it belongs to.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    pub kind: CredentialType,
    pub scopes: String,
    pub created_ms: UnixMs,
    pub expires_ms: Option<UnixMs>,
    pub revoked_ms: Option<UnixMs>,
    pub registration: Registration,
}

pub trait Credentials {
    /// Only `core::issue` calls this: the one place a credential is made.
    fn insert_credential(&self, cred: &NewCredential<'_>) -> Result<()>;
    /// The credential whose token hashes to `hash`, with its registration:
    /// one unique-index probe whatever the size of the tables.
    fn credential_by_hash(&self, hash: &SecretHash) -> Result<Option<Found>>;
    /// Sets the scopes of every live credential of a registration (an
    /// anonymous key raised to the post-claim scopes in place).
    fn set_live_credential_scopes(&self, registration_id: &str, scopes: &str) -> Result<usize>;
    /// Deletes access tokens that expired before `before_ms`.
    fn prune_expired_credentials(&self, before_ms: UnixMs) -> Result<usize>;
    /// Revokes one credential; false if it already was.
    fn revoke_credential(&self, id: &str, now_ms: UnixMs) -> Result<bool>;
    /// Revokes every live credential of the chosen registrations; returns how many.
    fn revoke_credentials_of(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<usize>;
    /// The scopes of a registration's newest credential neither revoked
    /// nor expired at `now_ms`, if any (over the registration index).
    fn live_scopes_of(&self, registration_id: &str, now_ms: UnixMs) -> Result<Option<String>>;
}
