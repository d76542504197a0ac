//! Claim attempts: emailed claim links and their codes (SPEC.md 5), found by
//! the hash of the attempt token or as the one open attempt of a registration.

use super::Result;
use super::registrations::Selection;
use crate::secrets::SecretHash;
use crate::time::UnixMs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    Open,
    /// A newer attempt replaced it.
    Superseded,
    /// The user said "this wasn't me".
    Cancelled,
    /// The claim completed with it.
    Completed,
    /// The registration ended otherwise (locked, expired, revoked).
    Closed,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Open => "open",
            AttemptStatus::Superseded => "superseded",
            AttemptStatus::Cancelled => "cancelled",
            AttemptStatus::Completed => "completed",
            AttemptStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<AttemptStatus> {
        [
            Self::Open,
            Self::Superseded,
            Self::Cancelled,
            Self::Completed,
            Self::Closed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub registration_id: String,
    pub email: String,
    pub status: AttemptStatus,
    pub created_ms: UnixMs,
    pub expires_ms: UnixMs,
    pub otp_mac: Option<Vec<u8>>,
    pub otp_expires_ms: Option<UnixMs>,
    pub otp_failures: i64,
    /// v0.7: who confirmed the attempt on the page, and when.
    pub confirmed_user_id: Option<String>,
    pub confirmed_ms: Option<UnixMs>,
}

pub struct NewAttempt<'a> {
    pub id: &'a str,
    pub registration_id: &'a str,
    pub email: &'a str,
    pub token_hash: &'a SecretHash,
    pub created_ms: UnixMs,
    pub expires_ms: UnixMs,
}

pub trait Attempts {
    /// Opens a new attempt, superseding any open one of the same registration.
    fn open_attempt(&self, attempt: &NewAttempt<'_>) -> Result<()>;
    fn attempt_by_token_hash(&self, hash: &SecretHash) -> Result<Option<Attempt>>;
    fn open_attempt_of(&self, registration_id: &str) -> Result<Option<Attempt>>;
    /// Stores a fresh code's MAC, replacing (and so invalidating) the previous code.
    fn set_attempt_code(&self, id: &str, mac: &[u8], expires_ms: UnixMs) -> Result<()>;
    /// Counts a wrong code, atomically with the check that read the code;
    /// burns the code once `burn_at` failures are reached. Returns the
    /// attempt's failure count after this one.
    fn record_attempt_failure(&self, id: &str, burn_at: i64) -> Result<i64>;
    /// Sets the status and erases the code.
    fn set_attempt_status(&self, id: &str, status: AttemptStatus) -> Result<()>;
    /// v0.7 (SPEC-v0.7 6.2): `user_id` confirmed the attempt on the page;
    /// a fresh code's MAC replaces any earlier one.
    fn confirm_attempt(
        &self,
        id: &str,
        user_id: &str,
        mac: &[u8],
        code_expires_ms: UnixMs,
        now_ms: UnixMs,
    ) -> Result<()>;
    /// Closes every open attempt of a registration (it ended some other way).
    fn close_attempts(&self, registration_id: &str) -> Result<()>;
    /// Closes the open attempts of the chosen registrations and erases their codes.
    fn close_attempts_of(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<usize>;
}
