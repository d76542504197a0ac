//! Registrations: one per agent registration, its kind, status and (once
//! known) its user; and [`Selection`], the sets of them that revocation and
//! expiry change at once.

use super::Result;
use crate::model::{CredentialType, Generation, RegistrationKind, Status};
use crate::secrets::SecretHash;
use crate::time::UnixMs;

pub struct NewRegistration<'a> {
    pub id: &'a str,
    pub generation: Generation,
    pub kind: RegistrationKind,
    pub status: Status,
    pub user_id: Option<&'a str>,
    pub claim_token_hash: Option<&'a SecretHash>,
    pub requested_credential_type: Option<CredentialType>,
    /// Verified-email registrations: the address (lower-cased).
    pub email: Option<&'a str>,
    /// v0.7 ID-JAG registrations: the scopes granted, space-separated.
    pub scopes: Option<&'a str>,
    pub created_ms: UnixMs,
    pub expires_ms: Option<UnixMs>,
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub id: String,
    pub generation: Generation,
    pub kind: RegistrationKind,
    pub status: Status,
    pub user_id: Option<String>,
    pub created_ms: UnixMs,
    pub expires_ms: Option<UnixMs>,
    pub updated_ms: UnixMs,
    pub requested_credential_type: Option<CredentialType>,
    pub email: Option<String>,
    pub claim_failures: i64,
    /// v0.7 ID-JAG registrations: the scopes granted, space-separated.
    pub scopes: Option<String>,
    /// When its credentials were last used at the guarded API, to the
    /// minute, as last written (`last_used::LastUsed`); `None`: never.
    pub last_used_ms: Option<UnixMs>,
}

impl Registration {
    /// Unclaimed (or pending) and past its TTL: as good as expired, even
    /// before the sweeper records it.
    pub fn lapsed(&self, now_ms: UnixMs) -> bool {
        matches!(self.status, Status::Unclaimed | Status::PendingClaim)
            && self.expires_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A set of registrations changed at once, in a few set-wide statements, so
/// even a large database is shut off in one short transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Every live registration.
    All,
    /// One, if live.
    Registration(&'a str),
    /// The live registrations of a user.
    User(&'a str),
    /// The live registrations behind every delegation (or first link
    /// waiting for its person) of an issuer, or of one of its subjects.
    Issuer { iss: &'a str, sub: Option<&'a str> },
    /// Unclaimed or pending registrations past their TTL at the instant
    /// the statement is given ([`Registration::lapsed`]).
    Lapsed,
}

pub trait Registrations {
    fn insert_registration(&self, reg: &NewRegistration<'_>) -> Result<()>;
    fn registration(&self, id: &str) -> Result<Option<Registration>>;
    fn registration_by_claim_token_hash(&self, hash: &SecretHash) -> Result<Option<Registration>>;
    fn set_registration_status(&self, id: &str, status: Status, now_ms: UnixMs) -> Result<()>;
    /// The claim completed: the registration belongs to `user_id` and no
    /// longer expires.
    fn mark_claimed(&self, id: &str, user_id: &str, now_ms: UnixMs) -> Result<()>;
    /// A new claim token for a registration (a first link asserted again).
    fn replace_claim_token(&self, id: &str, hash: &SecretHash) -> Result<()>;
    /// Whether the user has a claimed or active registration other than `except`.
    fn user_has_other_agent(&self, user_id: &str, except: &str) -> Result<bool>;
    /// Counts one wrong code against the registration; returns the total.
    fn add_claim_failure(&self, id: &str) -> Result<i64>;
    /// Registrations, newest first, optionally of one status; `limit`
    /// bounds the answer.
    fn registrations(&self, status: Option<Status>, limit: u32) -> Result<Vec<Registration>>;
    /// Moves the chosen registrations to `status` (which ends them: they no
    /// longer expire). Returns how many.
    fn end_registrations(&self, chosen: Selection<'_>, status: Status, now_ms: UnixMs) -> Result<usize>;
    /// A user's registrations, newest first: the live ones ([`Status::LIVE`])
    /// or the others; `limit` bounds the answer (the user index serves it).
    fn registrations_of_user(&self, user_id: &str, live: bool, limit: u32) -> Result<Vec<Registration>>;
    /// Raises each registration's `last_used_ms` to the instant given, never
    /// lowering it (nodes writing their own uses agree on the latest).
    /// Returns how many rows changed.
    fn record_last_used(&self, uses: &[(String, UnixMs)]) -> Result<usize>;
}
