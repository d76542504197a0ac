//! The `assertions` and `refresh_tokens` tables.

use super::{Columns, PgTx};
use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::assertions::*;
use crate::time::UnixMs;

impl Assertions for PgTx<'_> {
    fn record_assertion(&self, a: &NewAssertion<'_>) -> Result<()> {
        self.execute(
            "INSERT INTO assertions (jti, registration_id, kid, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)",
            &[
                &a.jti,
                &a.registration_id,
                &a.kid,
                &a.created_ms.millis(),
                &a.expires_ms.millis(),
            ],
        )?;
        Ok(())
    }

    fn assertion(&self, jti: &str) -> Result<Option<StoredAssertion>> {
        let Some(r) = self.first(
            "SELECT registration_id, expires_ms, revoked_ms FROM assertions WHERE jti = $1",
            &[&jti],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(StoredAssertion {
            registration_id: r.col(0)?,
            expires_ms: r.ms(1)?,
            revoked_ms: r.ms_opt(2)?,
        }))
    }

    fn revoke_assertions_of(&self, registration_id: &str, now_ms: UnixMs) -> Result<usize> {
        self.execute(
            "UPDATE assertions SET revoked_ms = $2 WHERE registration_id = $1 AND revoked_ms IS NULL",
            &[&registration_id, &now_ms.millis()],
        )
    }

    fn insert_refresh_token(
        &self,
        token_hash: &SecretHash,
        registration_id: &str,
        now_ms: UnixMs,
        expires_ms: UnixMs,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO refresh_tokens (token_hash, registration_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
            &[
                &&token_hash[..],
                &registration_id,
                &now_ms.millis(),
                &expires_ms.millis(),
            ],
        )?;
        Ok(())
    }

    fn refresh_token(&self, token_hash: &SecretHash) -> Result<Option<StoredRefresh>> {
        let Some(r) = self.first(
            "SELECT registration_id, expires_ms, spent_ms, revoked_ms FROM refresh_tokens WHERE token_hash = $1",
            &[&&token_hash[..]],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(StoredRefresh {
            registration_id: r.col(0)?,
            expires_ms: r.ms(1)?,
            spent_ms: r.ms_opt(2)?,
            revoked_ms: r.ms_opt(3)?,
        }))
    }

    /// The check is the statement's condition: a second node's UPDATE
    /// waits for the first's row lock, then re-checks `spent_ms IS NULL` on
    /// the row the first committed and changes nothing. Exactly one wins.
    fn spend_refresh_token(&self, token_hash: &SecretHash, now_ms: UnixMs) -> Result<bool> {
        Ok(self
            .first(
                "UPDATE refresh_tokens SET spent_ms = $2
                 WHERE token_hash = $1 AND spent_ms IS NULL AND revoked_ms IS NULL RETURNING 1",
                &[&&token_hash[..], &now_ms.millis()],
            )?
            .is_some())
    }

    fn revoke_refresh_tokens_of(&self, registration_id: &str, now_ms: UnixMs) -> Result<usize> {
        self.execute(
            "UPDATE refresh_tokens SET revoked_ms = $2 WHERE registration_id = $1 AND revoked_ms IS NULL",
            &[&registration_id, &now_ms.millis()],
        )
    }
}
