//! The `delegations` and `provider_revocations` tables: which user and
//! registration stand behind a provider's `(iss, sub)`, and what the provider
//! has revoked (SPEC.md 3.2, 4.4, 6).

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub iss: String,
    pub sub: String,
    pub user_id: String,
    pub registration_id: String,
}

/// The lookups below, shared with `store::index_tests`.
pub(crate) const GET: &str = "SELECT iss, sub, user_id, registration_id FROM delegations WHERE iss = ?1 AND sub = ?2";
pub(crate) const OF_REGISTRATION: &str = "SELECT iss, sub FROM delegations WHERE registration_id = ?1";
pub(crate) const REVOCATION_MARKS: &str =
    "SELECT revoked_iat, revoked_ms FROM provider_revocations WHERE iss = ?1 AND sub = ?2";

pub fn get(conn: &Connection, iss: &str, sub: &str) -> Result<Option<Delegation>, Error> {
    let mut stmt = conn.prepare_cached(GET)?;
    Ok(stmt
        .query_row([iss, sub], |r| {
            Ok(Delegation {
                iss: r.get(0)?,
                sub: r.get(1)?,
                user_id: r.get(2)?,
                registration_id: r.get(3)?,
            })
        })
        .optional()?)
}

/// Records the delegation, or points it at a new registration (after the
/// previous one was revoked).
pub fn put(conn: &Connection, delegation: &Delegation, now_ms: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO delegations (iss, sub, user_id, registration_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (iss, sub) DO UPDATE SET registration_id = excluded.registration_id",
    )?
    .execute(params![
        delegation.iss,
        delegation.sub,
        delegation.user_id,
        delegation.registration_id,
        now_ms
    ])?;
    Ok(())
}

/// The `(iss, sub)` behind a registration, if it came from an ID-JAG.
pub fn of_registration(conn: &Connection, registration_id: &str) -> Result<Option<(String, String)>, Error> {
    let mut stmt = conn.prepare_cached(OF_REGISTRATION)?;
    Ok(stmt
        .query_row([registration_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// What has been revoked of a delegation `(iss, sub)`, each instant on the
/// clock it was read from, so neither is ever compared with the other clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevocationMarks {
    /// Provider clock, seconds: the latest logout token's `iat`.
    pub revoked_iat: Option<i64>,
    /// This server's clock, milliseconds: the latest revocation here.
    pub revoked_ms: Option<i64>,
}

impl RevocationMarks {
    /// Whether an ID-JAG issued at `iat` (Unix seconds, the provider's
    /// clock) is refused: issued at or before the provider's own mark (its
    /// clock against its clock), or certainly issued before this server's
    /// revocation (`revoked_ms`, this server's clock): more than
    /// `clock_skew_secs` earlier, the skew the verifier already allows
    /// between the two clocks. A provider whose clock is up to that much
    /// behind keeps getting fresh assertions accepted.
    pub fn refuse(&self, iat: i64, clock_skew_secs: u64) -> bool {
        let skew_ms = (clock_skew_secs as i64).saturating_mul(1000);
        self.revoked_iat.is_some_and(|mark| iat <= mark)
            || self
                .revoked_ms
                .is_some_and(|mark| iat.saturating_mul(1000).saturating_add(skew_ms) < mark)
    }
}

pub fn revocation_marks(conn: &Connection, iss: &str, sub: &str) -> Result<RevocationMarks, Error> {
    let mut stmt = conn.prepare_cached(REVOCATION_MARKS)?;
    let marks = stmt
        .query_row([iss, sub], |r| {
            Ok(RevocationMarks {
                revoked_iat: r.get(0)?,
                revoked_ms: r.get(1)?,
            })
        })
        .optional()?;
    Ok(marks.unwrap_or_default())
}

/// Raises the provider-clock mark of `(iss, sub)` to a logout token's `iat`
/// (never lowers it).
pub fn mark_revoked_by_provider(conn: &Connection, iss: &str, sub: &str, iat: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO provider_revocations (iss, sub, revoked_iat) VALUES (?1, ?2, ?3)
         ON CONFLICT (iss, sub) DO UPDATE SET revoked_iat = excluded.revoked_iat
         WHERE provider_revocations.revoked_iat IS NULL OR provider_revocations.revoked_iat < excluded.revoked_iat",
    )?
    .execute(params![iss, sub, iat])?;
    Ok(())
}
