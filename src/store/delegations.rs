//! Delegations and provider revocation marks: which user and registration
//! stand behind a provider's `(iss, sub)`, and what has been revoked of it
//! (SPEC.md 3.2, 4.4, 6).

use std::time::Duration;

use super::Result;
use super::registrations::Selection;
use crate::model::Generation;
use crate::time::{UnixMs, UnixSecs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub iss: String,
    pub sub: String,
    /// A delegation has one registration per generation (SPEC-v0.7 4.3).
    pub generation: Generation,
    pub user_id: String,
    pub registration_id: String,
}

/// What has been revoked of a delegation `(iss, sub)`, each instant on the
/// clock it was read from, so neither is ever compared with the other clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevocationMarks {
    /// Provider clock, seconds: the latest logout token's `iat`.
    pub revoked_iat: Option<UnixSecs>,
    /// This server's clock, milliseconds: the latest revocation here.
    pub revoked_ms: Option<UnixMs>,
}

impl RevocationMarks {
    /// Whether an ID-JAG issued at `iat` (Unix seconds, the provider's
    /// clock) is refused: issued at or before the provider's own mark (its
    /// clock against its clock), or certainly issued before this server's
    /// revocation (`revoked_ms`, this server's clock): more than
    /// `clock_skew_secs` earlier, the skew the verifier already allows
    /// between the two clocks. A provider whose clock is up to that much
    /// behind keeps getting fresh assertions accepted.
    pub fn refuse(&self, iat: UnixSecs, clock_skew_secs: u64) -> bool {
        let skew = Duration::from_secs(clock_skew_secs);
        self.revoked_iat.is_some_and(|mark| iat <= mark)
            || self.revoked_ms.is_some_and(|mark| UnixMs::from(iat) + skew < mark)
    }
}

/// A first link waiting for its person's confirmation (SPEC-v0.7 4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLink {
    pub registration_id: String,
    pub iss: String,
    pub sub: String,
    pub user_id: String,
}

pub trait Delegations {
    /// The delegations of `(iss, sub)` in force, one per generation that
    /// linked it (an ended one is not among them).
    fn delegations(&self, iss: &str, sub: &str) -> Result<Vec<Delegation>>;
    /// Records the delegation, or points its generation's row at a new
    /// registration and user (after the previous one was revoked or the
    /// delegation ended), in force again.
    fn put_delegation(&self, delegation: &Delegation, now_ms: UnixMs) -> Result<()>;
    /// The `(iss, sub)` behind a registration, if it came from an ID-JAG.
    fn delegation_of(&self, registration_id: &str) -> Result<Option<(String, String)>>;
    fn revocation_marks(&self, iss: &str, sub: &str) -> Result<RevocationMarks>;
    /// Raises the provider-clock mark of `(iss, sub)` to a logout token's
    /// `iat` (never lowers it).
    fn mark_revoked_by_provider(&self, iss: &str, sub: &str, iat: UnixSecs) -> Result<()>;
    /// Whether the user has a delegation from issuer `iss` (in either generation).
    fn user_has_delegation_from(&self, user_id: &str, iss: &str) -> Result<bool>;
    fn pending_link(&self, iss: &str, sub: &str) -> Result<Option<PendingLink>>;
    fn pending_link_of(&self, registration_id: &str) -> Result<Option<PendingLink>>;
    /// Records a pending link, replacing one of the same `(iss, sub)`.
    fn put_pending_link(&self, link: &PendingLink, now_ms: UnixMs) -> Result<()>;
    fn delete_pending_link(&self, registration_id: &str) -> Result<()>;
    /// Ends every delegation of `(iss, sub)` (a provider's revocation):
    /// matching no longer finds them; each row keeps naming its registration.
    fn end_delegations(&self, iss: &str, sub: &str, now_ms: UnixMs) -> Result<()>;
    /// Raises this server's mark (`revoked_ms`) of every delegation behind
    /// the chosen registrations to `now_ms`.
    fn mark_revoked_here(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<()>;
}
