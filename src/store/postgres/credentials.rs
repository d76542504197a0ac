//! The `credentials` table: API keys and access tokens, stored only as the
//! SHA-256 of the token and looked up by it (a unique index).

use super::{Columns, PgTx, registrations};
use crate::model::CredentialType;
use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::credentials::*;
use crate::store::registrations::Selection;
use crate::time::UnixMs;

/// The statement of [`Credentials::revoke_credentials_of`].
const REVOKE_OF: &str =
    "UPDATE credentials SET revoked_ms = $1 WHERE revoked_ms IS NULL AND registration_id IN ({chosen})";

impl Credentials for PgTx<'_> {
    fn insert_credential(&self, cred: &NewCredential<'_>) -> Result<()> {
        self.execute(
            "INSERT INTO credentials (id, registration_id, kind, token_hash, scopes, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &cred.id,
                &cred.registration_id,
                &cred.kind.as_str(),
                &&cred.token_hash[..],
                &cred.scopes,
                &cred.created_ms.millis(),
                &cred.expires_ms.map(UnixMs::millis),
            ],
        )?;
        Ok(())
    }

    fn credential_by_hash(&self, hash: &SecretHash) -> Result<Option<Found>> {
        let sql = format!(
            "SELECT c.id, c.kind, c.scopes, c.created_ms, c.expires_ms, c.revoked_ms, {}
             FROM credentials c JOIN registrations r ON r.id = c.registration_id
             WHERE c.token_hash = $1",
            registrations::COLUMNS
        );
        let Some(row) = self.first(&sql, &[&&hash[..]])? else {
            return Ok(None);
        };
        Ok(Some(Found {
            id: row.col(0)?,
            kind: row.parsed(1, CredentialType::parse)?,
            scopes: row.col(2)?,
            created_ms: row.ms(3)?,
            expires_ms: row.ms_opt(4)?,
            revoked_ms: row.ms_opt(5)?,
            registration: registrations::from_row(&row, 6)?,
        }))
    }

    fn set_live_credential_scopes(&self, registration_id: &str, scopes: &str) -> Result<usize> {
        self.execute(
            "UPDATE credentials SET scopes = $2 WHERE registration_id = $1 AND revoked_ms IS NULL",
            &[&registration_id, &scopes],
        )
    }

    fn prune_expired_credentials(&self, before_ms: UnixMs) -> Result<usize> {
        self.execute(
            "DELETE FROM credentials WHERE expires_ms IS NOT NULL AND expires_ms <= $1",
            &[&before_ms.millis()],
        )
    }

    /// The condition `revoked_ms IS NULL` is re-checked on the row's latest
    /// version when another node revoked it meanwhile: one of two wins.
    fn revoke_credential(&self, id: &str, now_ms: UnixMs) -> Result<bool> {
        Ok(self.execute(
            "UPDATE credentials SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
            &[&id, &now_ms.millis()],
        )? == 1)
    }

    fn revoke_credentials_of(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<usize> {
        registrations::run_for(self, REVOKE_OF, chosen, now_ms, &[])
    }

    fn live_scopes_of(&self, registration_id: &str, now_ms: UnixMs) -> Result<Option<String>> {
        self.first(
            "SELECT scopes FROM credentials WHERE registration_id = $1
             AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > $2) ORDER BY created_ms DESC LIMIT 1",
            &[&registration_id, &now_ms.millis()],
        )?
        .map(|row| row.col(0))
        .transpose()
    }
}
