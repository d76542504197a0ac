//! Signing in at the service (SPEC-v0.7 7): sessions, found by the hash of
//! their cookie value, and pending sign-ins, found by the hash of the
//! pre-session cookie. No cookie value and no code is ever kept.

use super::Result;
use crate::secrets::SecretHash;
use crate::time::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub created_ms: UnixMs,
    pub expires_ms: UnixMs,
}

/// A session as `authmd sessions list` shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    pub user_id: String,
    pub email: Option<String>,
    pub created_ms: UnixMs,
    pub expires_ms: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signin {
    pub email: String,
    pub return_to: String,
    pub code_mac: Option<Vec<u8>>,
    pub code_expires_ms: Option<UnixMs>,
    pub failures: i64,
}

pub trait Sessions {
    fn insert_session(&self, id_hash: &SecretHash, session: &Session) -> Result<()>;
    fn session(&self, id_hash: &SecretHash) -> Result<Option<Session>>;
    fn delete_session(&self, id_hash: &SecretHash) -> Result<()>;
    /// Live sessions at `now_ms`, of one user or all, newest first.
    fn list_sessions(&self, user_id: Option<&str>, now_ms: UnixMs) -> Result<Vec<ListedSession>>;
    /// Ends the sessions of one user, or all; returns how many.
    fn delete_sessions(&self, user_id: Option<&str>) -> Result<usize>;

    /// Starts (or replaces) the pending sign-in of a pre-session.
    fn put_signin(&self, presession_hash: &SecretHash, signin: &Signin, now_ms: UnixMs) -> Result<()>;
    fn signin(&self, presession_hash: &SecretHash) -> Result<Option<Signin>>;
    /// Counts a wrong code, atomically with the check that read it; burns
    /// the code at `burn_at` failures. Returns the count after this one.
    fn record_signin_failure(&self, presession_hash: &SecretHash, burn_at: i64) -> Result<i64>;
    fn delete_signin(&self, presession_hash: &SecretHash) -> Result<()>;
}
