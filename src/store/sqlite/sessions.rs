//! The `sessions` and `signins` tables.

use rusqlite::{Connection, OptionalExtension, params};

use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::sessions::*;
use crate::time::UnixMs;

/// The lookups of `session` and `signin`, planned by `index_tests`.
pub(crate) const SESSION: &str = "SELECT user_id, created_ms, expires_ms FROM sessions WHERE id_hash = ?1";
pub(crate) const SIGNIN: &str =
    "SELECT email, return_to, code_mac, code_expires_ms, failures FROM signins WHERE presession_hash = ?1";

impl Sessions for Connection {
    fn insert_session(&self, id_hash: &SecretHash, session: &Session) -> Result<()> {
        self.prepare_cached("INSERT INTO sessions (id_hash, user_id, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![
                &id_hash[..],
                session.user_id,
                session.created_ms,
                session.expires_ms
            ])?;
        Ok(())
    }

    fn session(&self, id_hash: &SecretHash) -> Result<Option<Session>> {
        Ok(self
            .prepare_cached(SESSION)?
            .query_row([&id_hash[..]], |r| {
                Ok(Session {
                    user_id: r.get(0)?,
                    created_ms: r.get(1)?,
                    expires_ms: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn delete_session(&self, id_hash: &SecretHash) -> Result<()> {
        self.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
            .execute([&id_hash[..]])?;
        Ok(())
    }

    fn list_sessions(&self, user_id: Option<&str>, now_ms: UnixMs) -> Result<Vec<ListedSession>> {
        let mut stmt = self.prepare_cached(
            "SELECT s.user_id, u.email, s.created_ms, s.expires_ms FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.expires_ms > ?1 AND (?2 IS NULL OR s.user_id = ?2) ORDER BY s.created_ms DESC",
        )?;
        let rows = stmt.query_map(params![now_ms, user_id], |r| {
            Ok(ListedSession {
                user_id: r.get(0)?,
                email: r.get(1)?,
                created_ms: r.get(2)?,
                expires_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn delete_sessions(&self, user_id: Option<&str>) -> Result<usize> {
        Ok(match user_id {
            Some(user) => self
                .prepare_cached("DELETE FROM sessions WHERE user_id = ?1")?
                .execute([user])?,
            None => self.prepare_cached("DELETE FROM sessions")?.execute([])?,
        })
    }

    fn put_signin(&self, presession_hash: &SecretHash, signin: &Signin, now_ms: UnixMs) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO signins (presession_hash, email, return_to, code_mac, code_expires_ms, failures, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
             ON CONFLICT (presession_hash) DO UPDATE SET email = excluded.email, return_to = excluded.return_to,
                 code_mac = excluded.code_mac, code_expires_ms = excluded.code_expires_ms, failures = 0,
                 created_ms = excluded.created_ms",
        )?
        .execute(params![
            &presession_hash[..],
            signin.email,
            signin.return_to,
            signin.code_mac,
            signin.code_expires_ms,
            now_ms
        ])?;
        Ok(())
    }

    fn signin(&self, presession_hash: &SecretHash) -> Result<Option<Signin>> {
        Ok(self
            .prepare_cached(SIGNIN)?
            .query_row([&presession_hash[..]], |r| {
                Ok(Signin {
                    email: r.get(0)?,
                    return_to: r.get(1)?,
                    code_mac: r.get(2)?,
                    code_expires_ms: r.get(3)?,
                    failures: r.get(4)?,
                })
            })
            .optional()?)
    }

    fn record_signin_failure(&self, presession_hash: &SecretHash, burn_at: i64) -> Result<i64> {
        let failures: i64 = self
            .prepare_cached("UPDATE signins SET failures = failures + 1 WHERE presession_hash = ?1 RETURNING failures")?
            .query_row([&presession_hash[..]], |r| r.get(0))?;
        if failures >= burn_at {
            self.prepare_cached("UPDATE signins SET code_mac = NULL WHERE presession_hash = ?1")?
                .execute([&presession_hash[..]])?;
        }
        Ok(failures)
    }

    fn delete_signin(&self, presession_hash: &SecretHash) -> Result<()> {
        self.prepare_cached("DELETE FROM signins WHERE presession_hash = ?1")?
            .execute([&presession_hash[..]])?;
        Ok(())
    }
}
