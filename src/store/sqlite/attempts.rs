//! The `claim_attempts` table: emailed claim links and their codes
//! (SPEC.md 5). Looked up by the SHA-256 of the attempt token, or as the
//! one `open` attempt of a registration (a partial index).

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::attempts::*;
use crate::store::registrations::Selection;
use crate::time::UnixMs;

const COLUMNS: &str = "id, registration_id, email, status, created_ms, expires_ms, otp_mac, otp_expires_ms, otp_failures, confirmed_user_id, confirmed_ms";

/// The lookups of `attempt_by_token_hash` and `open_attempt_of`, planned by `index_tests`.
pub(crate) static BY_TOKEN_HASH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM claim_attempts WHERE token_hash = ?1"));
pub(crate) static OPEN_OF: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM claim_attempts WHERE registration_id = ?1 AND status = 'open'"));

fn from_row(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        id: row.get(0)?,
        registration_id: row.get(1)?,
        email: row.get(2)?,
        status: super::text_enum(row, 3, AttemptStatus::parse)?,
        created_ms: row.get(4)?,
        expires_ms: row.get(5)?,
        otp_mac: row.get(6)?,
        otp_expires_ms: row.get(7)?,
        otp_failures: row.get(8)?,
        confirmed_user_id: row.get(9)?,
        confirmed_ms: row.get(10)?,
    })
}

/// The statement of [`Attempts::close_attempts_of`].
pub(crate) const CLOSE_OF: &str = "UPDATE claim_attempts SET status = 'closed', otp_mac = NULL, otp_expires_ms = :now
     WHERE status = 'open' AND registration_id IN ({chosen})";

impl Attempts for Connection {
    /// Opens a new attempt, superseding any open one of the same registration.
    fn open_attempt(&self, attempt: &NewAttempt<'_>) -> Result<()> {
        self.prepare_cached("UPDATE claim_attempts SET status = 'superseded', otp_mac = NULL WHERE registration_id = ?1 AND status = 'open'")?
            .execute([attempt.registration_id])?;
        self.prepare_cached(
            "INSERT INTO claim_attempts (id, registration_id, email, token_hash, status, created_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6)",
        )?
        .execute(params![
            attempt.id,
            attempt.registration_id,
            attempt.email,
            &attempt.token_hash[..],
            attempt.created_ms,
            attempt.expires_ms
        ])?;
        Ok(())
    }

    fn attempt_by_token_hash(&self, hash: &SecretHash) -> Result<Option<Attempt>> {
        let mut stmt = self.prepare_cached(&BY_TOKEN_HASH)?;
        Ok(stmt.query_row([&hash[..]], from_row).optional()?)
    }

    fn open_attempt_of(&self, registration_id: &str) -> Result<Option<Attempt>> {
        let mut stmt = self.prepare_cached(&OPEN_OF)?;
        Ok(stmt.query_row([registration_id], from_row).optional()?)
    }

    /// Stores a fresh code's MAC, replacing (and so invalidating) the previous code.
    fn set_attempt_code(&self, id: &str, mac: &[u8], expires_ms: UnixMs) -> Result<()> {
        self.prepare_cached(
            "UPDATE claim_attempts SET otp_mac = ?2, otp_expires_ms = ?3, otp_failures = 0 WHERE id = ?1",
        )?
        .execute(params![id, mac, expires_ms])?;
        Ok(())
    }

    /// Counts a wrong code; burns the code once `burn_at` failures are reached.
    /// Returns the attempt's failure count after this one.
    fn record_attempt_failure(&self, id: &str, burn_at: i64) -> Result<i64> {
        let failures: i64 = self
            .prepare_cached(
                "UPDATE claim_attempts SET otp_failures = otp_failures + 1 WHERE id = ?1 RETURNING otp_failures",
            )?
            .query_row([id], |r| r.get(0))?;
        if failures >= burn_at {
            self.prepare_cached("UPDATE claim_attempts SET otp_mac = NULL WHERE id = ?1")?
                .execute([id])?;
        }
        Ok(failures)
    }

    fn set_attempt_status(&self, id: &str, status: AttemptStatus) -> Result<()> {
        self.prepare_cached("UPDATE claim_attempts SET status = ?2, otp_mac = NULL WHERE id = ?1")?
            .execute(params![id, status.as_str()])?;
        Ok(())
    }

    /// Closes every open attempt of a registration (it ended some other way).
    fn confirm_attempt(
        &self,
        id: &str,
        user_id: &str,
        mac: &[u8],
        code_expires_ms: UnixMs,
        now_ms: UnixMs,
    ) -> Result<()> {
        self.prepare_cached(
            "UPDATE claim_attempts SET confirmed_user_id = ?2, confirmed_ms = ?5, otp_mac = ?3, otp_expires_ms = ?4,
                    otp_failures = 0 WHERE id = ?1",
        )?
        .execute(params![id, user_id, mac, code_expires_ms, now_ms])?;
        Ok(())
    }

    fn close_attempts(&self, registration_id: &str) -> Result<()> {
        self.prepare_cached(
            "UPDATE claim_attempts SET status = 'closed', otp_mac = NULL WHERE registration_id = ?1 AND status = 'open'",
        )?
        .execute([registration_id])?;
        Ok(())
    }

    fn close_attempts_of(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<usize> {
        Ok(super::registrations::run_for(self, CLOSE_OF, chosen, now_ms, &[])?)
    }
}
