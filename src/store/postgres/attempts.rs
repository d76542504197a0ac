//! The `claim_attempts` table: emailed claim links and their codes
//! (SPEC.md 5). Looked up by the SHA-256 of the attempt token, or as the
//! one `open` attempt of a registration (a partial index).

use postgres::Row;

use super::{Columns, PgTx, registrations};
use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::attempts::*;
use crate::store::registrations::Selection;
use crate::time::UnixMs;

const COLUMNS: &str = "id, registration_id, email, status, created_ms, expires_ms, otp_mac, otp_expires_ms, otp_failures, confirmed_user_id, confirmed_ms";

fn from_row(row: &Row) -> Result<Attempt> {
    Ok(Attempt {
        id: row.col(0)?,
        registration_id: row.col(1)?,
        email: row.col(2)?,
        status: row.parsed(3, AttemptStatus::parse)?,
        created_ms: row.ms(4)?,
        expires_ms: row.ms(5)?,
        otp_mac: row.col(6)?,
        otp_expires_ms: row.ms_opt(7)?,
        otp_failures: row.int(8)?,
        confirmed_user_id: row.col(9)?,
        confirmed_ms: row.ms_opt(10)?,
    })
}

/// The statement of [`Attempts::close_attempts_of`].
const CLOSE_OF: &str = "UPDATE claim_attempts SET status = 'closed', otp_mac = NULL, otp_expires_ms = $1
     WHERE status = 'open' AND registration_id IN ({chosen})";

impl Attempts for PgTx<'_> {
    /// At most one attempt is open per registration, and no constraint
    /// says so: the registration's row lock, taken first, makes a second
    /// node's open wait for the first's commit, so its UPDATE then sees
    /// (and supersedes) the attempt the first opened.
    fn open_attempt(&self, attempt: &NewAttempt<'_>) -> Result<()> {
        self.query(
            "SELECT 1 FROM registrations WHERE id = $1 FOR NO KEY UPDATE",
            &[&attempt.registration_id],
        )?;
        self.execute(
            "UPDATE claim_attempts SET status = 'superseded', otp_mac = NULL WHERE registration_id = $1 AND status = 'open'",
            &[&attempt.registration_id],
        )?;
        self.execute(
            "INSERT INTO claim_attempts (id, registration_id, email, token_hash, status, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, 'open', $5, $6)",
            &[
                &attempt.id,
                &attempt.registration_id,
                &attempt.email,
                &&attempt.token_hash[..],
                &attempt.created_ms.millis(),
                &attempt.expires_ms.millis(),
            ],
        )?;
        Ok(())
    }

    fn attempt_by_token_hash(&self, hash: &SecretHash) -> Result<Option<Attempt>> {
        self.first(
            &format!("SELECT {COLUMNS} FROM claim_attempts WHERE token_hash = $1"),
            &[&&hash[..]],
        )?
        .map(|r| from_row(&r))
        .transpose()
    }

    /// In a write, locks the row until the transaction ends: core reads the
    /// code, checks a guess against it, then counts a failure. On SQLite the
    /// one writer keeps the next guess's read after that count; here a guess
    /// that read the code just before the count that burned it would still
    /// answer `otp_invalid` (one too many). With the lock, it waits here and
    /// reads the code burned.
    fn open_attempt_of(&self, registration_id: &str) -> Result<Option<Attempt>> {
        let lock = if self.writing() { " FOR UPDATE" } else { "" };
        self.first(
            &format!("SELECT {COLUMNS} FROM claim_attempts WHERE registration_id = $1 AND status = 'open'{lock}"),
            &[&registration_id],
        )?
        .map(|r| from_row(&r))
        .transpose()
    }

    fn set_attempt_code(&self, id: &str, mac: &[u8], expires_ms: UnixMs) -> Result<()> {
        self.execute(
            "UPDATE claim_attempts SET otp_mac = $2, otp_expires_ms = $3, otp_failures = 0 WHERE id = $1",
            &[&id, &mac, &expires_ms.millis()],
        )?;
        Ok(())
    }

    /// The check, the count and the burn are one statement: it counts only
    /// while the code is live (`otp_mac IS NOT NULL`), and the row lock
    /// orders nodes counting at once, each re-checking that condition on
    /// the row the one before committed. So however many nodes read the
    /// code before it burned, exactly `burn_at` failures are counted
    /// against it. A failure that finds the code already burned counts
    /// nothing and answers the count as it stands (at least `burn_at`).
    fn record_attempt_failure(&self, id: &str, burn_at: i64) -> Result<i64> {
        let counted = self.first(
            "UPDATE claim_attempts SET otp_failures = otp_failures + 1,
                    otp_mac = CASE WHEN otp_failures + 1 >= $2::BIGINT THEN NULL ELSE otp_mac END
             WHERE id = $1 AND otp_mac IS NOT NULL RETURNING otp_failures",
            &[&id, &burn_at],
        )?;
        match counted {
            Some(row) => row.int(0),
            None => self
                .one("SELECT otp_failures FROM claim_attempts WHERE id = $1", &[&id])?
                .int(0),
        }
    }

    fn set_attempt_status(&self, id: &str, status: AttemptStatus) -> Result<()> {
        self.execute(
            "UPDATE claim_attempts SET status = $2, otp_mac = NULL WHERE id = $1",
            &[&id, &status.as_str()],
        )?;
        Ok(())
    }

    fn confirm_attempt(
        &self,
        id: &str,
        user_id: &str,
        mac: &[u8],
        code_expires_ms: UnixMs,
        now_ms: UnixMs,
    ) -> Result<()> {
        self.execute(
            "UPDATE claim_attempts SET confirmed_user_id = $2, confirmed_ms = $5, otp_mac = $3, otp_expires_ms = $4,
                    otp_failures = 0 WHERE id = $1",
            &[&id, &user_id, &mac, &code_expires_ms.millis(), &now_ms.millis()],
        )?;
        Ok(())
    }

    fn close_attempts(&self, registration_id: &str) -> Result<()> {
        self.execute(
            "UPDATE claim_attempts SET status = 'closed', otp_mac = NULL WHERE registration_id = $1 AND status = 'open'",
            &[&registration_id],
        )?;
        Ok(())
    }

    fn close_attempts_of(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<usize> {
        registrations::run_for(self, CLOSE_OF, chosen, now_ms, &[])
    }
}
