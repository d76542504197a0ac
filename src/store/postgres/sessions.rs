//! The `sessions` and `signins` tables.

use super::{Columns, PgTx};
use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::sessions::*;
use crate::time::UnixMs;

impl Sessions for PgTx<'_> {
    fn insert_session(&self, id_hash: &SecretHash, session: &Session) -> Result<()> {
        self.execute(
            "INSERT INTO sessions (id_hash, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
            &[
                &&id_hash[..],
                &session.user_id,
                &session.created_ms.millis(),
                &session.expires_ms.millis(),
            ],
        )?;
        Ok(())
    }

    fn session(&self, id_hash: &SecretHash) -> Result<Option<Session>> {
        let Some(r) = self.first(
            "SELECT user_id, created_ms, expires_ms FROM sessions WHERE id_hash = $1",
            &[&&id_hash[..]],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(Session {
            user_id: r.col(0)?,
            created_ms: r.ms(1)?,
            expires_ms: r.ms(2)?,
        }))
    }

    fn delete_session(&self, id_hash: &SecretHash) -> Result<()> {
        self.execute("DELETE FROM sessions WHERE id_hash = $1", &[&&id_hash[..]])?;
        Ok(())
    }

    fn list_sessions(&self, user_id: Option<&str>, now_ms: UnixMs) -> Result<Vec<ListedSession>> {
        self.query(
            "SELECT s.user_id, u.email, s.created_ms, s.expires_ms FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.expires_ms > $1 AND ($2::TEXT IS NULL OR s.user_id = $2::TEXT) ORDER BY s.created_ms DESC",
            &[&now_ms.millis(), &user_id],
        )?
        .iter()
        .map(|r| {
            Ok(ListedSession {
                user_id: r.col(0)?,
                email: r.col(1)?,
                created_ms: r.ms(2)?,
                expires_ms: r.ms(3)?,
            })
        })
        .collect()
    }

    fn delete_sessions(&self, user_id: Option<&str>) -> Result<usize> {
        match user_id {
            Some(user) => self.execute("DELETE FROM sessions WHERE user_id = $1", &[&user]),
            None => self.execute("DELETE FROM sessions", &[]),
        }
    }

    fn put_signin(&self, presession_hash: &SecretHash, signin: &Signin, now_ms: UnixMs) -> Result<()> {
        self.execute(
            "INSERT INTO signins (presession_hash, email, return_to, code_mac, code_expires_ms, failures, created_ms)
             VALUES ($1, $2, $3, $4, $5, 0, $6)
             ON CONFLICT (presession_hash) DO UPDATE SET email = excluded.email, return_to = excluded.return_to,
                 code_mac = excluded.code_mac, code_expires_ms = excluded.code_expires_ms, failures = 0,
                 created_ms = excluded.created_ms",
            &[
                &&presession_hash[..],
                &signin.email,
                &signin.return_to,
                &signin.code_mac,
                &signin.code_expires_ms.map(UnixMs::millis),
                &now_ms.millis(),
            ],
        )?;
        Ok(())
    }

    fn signin(&self, presession_hash: &SecretHash) -> Result<Option<Signin>> {
        let Some(r) = self.first(
            "SELECT email, return_to, code_mac, code_expires_ms, failures FROM signins WHERE presession_hash = $1",
            &[&&presession_hash[..]],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(Signin {
            email: r.col(0)?,
            return_to: r.col(1)?,
            code_mac: r.col(2)?,
            code_expires_ms: r.ms_opt(3)?,
            failures: r.int(4)?,
        }))
    }

    /// As `record_attempt_failure`: one statement counts only while the
    /// code is live and burns it at `burn_at`, so nodes counting at once
    /// count exactly `burn_at` against it; a failure finding it burned
    /// counts nothing and answers the count as it stands.
    fn record_signin_failure(&self, presession_hash: &SecretHash, burn_at: i64) -> Result<i64> {
        let hash = &presession_hash[..];
        let counted = self.first(
            "UPDATE signins SET failures = failures + 1,
                    code_mac = CASE WHEN failures + 1 >= $2::BIGINT THEN NULL ELSE code_mac END
             WHERE presession_hash = $1 AND code_mac IS NOT NULL RETURNING failures",
            &[&hash, &burn_at],
        )?;
        match counted {
            Some(row) => row.int(0),
            None => self
                .one("SELECT failures FROM signins WHERE presession_hash = $1", &[&hash])?
                .int(0),
        }
    }

    fn delete_signin(&self, presession_hash: &SecretHash) -> Result<()> {
        self.execute(
            "DELETE FROM signins WHERE presession_hash = $1",
            &[&&presession_hash[..]],
        )?;
        Ok(())
    }
}
