//! The `assertions` table.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::Result;
use crate::store::assertions::*;

/// The lookup of `refresh_token`, planned by `index_tests`.
pub(crate) const REFRESH_BY_HASH: &str =
    "SELECT registration_id, expires_ms, spent_ms, revoked_ms FROM refresh_tokens WHERE token_hash = ?1";

/// The lookup of `assertion`, planned by `index_tests`.
pub(crate) const BY_JTI: &str = "SELECT registration_id, expires_ms, revoked_ms FROM assertions WHERE jti = ?1";

impl Assertions for Connection {
    fn record_assertion(&self, a: &NewAssertion<'_>) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO assertions (jti, registration_id, kid, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![a.jti, a.registration_id, a.kid, a.created_ms, a.expires_ms])?;
        Ok(())
    }

    fn revoke_assertions_of(&self, registration_id: &str, now_ms: crate::time::UnixMs) -> Result<usize> {
        Ok(self
            .prepare_cached("UPDATE assertions SET revoked_ms = ?2 WHERE registration_id = ?1 AND revoked_ms IS NULL")?
            .execute(params![registration_id, now_ms])?)
    }

    fn insert_refresh_token(
        &self,
        token_hash: &crate::secrets::SecretHash,
        registration_id: &str,
        now_ms: crate::time::UnixMs,
        expires_ms: crate::time::UnixMs,
    ) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO refresh_tokens (token_hash, registration_id, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![&token_hash[..], registration_id, now_ms, expires_ms])?;
        Ok(())
    }

    fn refresh_token(&self, token_hash: &crate::secrets::SecretHash) -> Result<Option<StoredRefresh>> {
        Ok(self
            .prepare_cached(REFRESH_BY_HASH)?
            .query_row([&token_hash[..]], |r| {
                Ok(StoredRefresh {
                    registration_id: r.get(0)?,
                    expires_ms: r.get(1)?,
                    spent_ms: r.get(2)?,
                    revoked_ms: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn spend_refresh_token(
        &self,
        token_hash: &crate::secrets::SecretHash,
        now_ms: crate::time::UnixMs,
    ) -> Result<bool> {
        Ok(self
            .prepare_cached(
                "UPDATE refresh_tokens SET spent_ms = ?2 WHERE token_hash = ?1 AND spent_ms IS NULL AND revoked_ms IS NULL",
            )?
            .execute(params![&token_hash[..], now_ms])?
            == 1)
    }

    fn revoke_refresh_tokens_of(&self, registration_id: &str, now_ms: crate::time::UnixMs) -> Result<usize> {
        Ok(self
            .prepare_cached(
                "UPDATE refresh_tokens SET revoked_ms = ?2 WHERE registration_id = ?1 AND revoked_ms IS NULL",
            )?
            .execute(params![registration_id, now_ms])?)
    }

    fn assertion(&self, jti: &str) -> Result<Option<StoredAssertion>> {
        Ok(self
            .prepare_cached(BY_JTI)?
            .query_row([jti], |r| {
                Ok(StoredAssertion {
                    registration_id: r.get(0)?,
                    expires_ms: r.get(1)?,
                    revoked_ms: r.get(2)?,
                })
            })
            .optional()?)
    }
}
