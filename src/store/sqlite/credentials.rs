//! The `credentials` table: API keys and access tokens, stored only as the
//! SHA-256 of the token and looked up by it (a unique index).

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, params};

use super::registrations;
use crate::model::CredentialType;
use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::credentials::*;
use crate::store::registrations::Selection;
use crate::time::UnixMs;

/// The statement of `credential_by_hash`, planned by `index_tests`.
pub(crate) static BY_HASH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT c.id, c.kind, c.scopes, c.created_ms, c.expires_ms, c.revoked_ms, {}
             FROM credentials c JOIN registrations r ON r.id = c.registration_id
             WHERE c.token_hash = ?1",
        registrations::COLUMNS
    )
});

/// The statement of [`Credentials::revoke_credentials_of`].
pub(crate) const REVOKE_OF: &str =
    "UPDATE credentials SET revoked_ms = :now WHERE revoked_ms IS NULL AND registration_id IN ({chosen})";

/// The statement of `live_scopes_of`, planned by `index_tests`.
pub(crate) const LIVE_SCOPES_OF: &str = "SELECT scopes FROM credentials WHERE registration_id = ?1
     AND revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?2) ORDER BY created_ms DESC LIMIT 1";

impl Credentials for Connection {
    fn insert_credential(&self, cred: &NewCredential<'_>) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO credentials (id, registration_id, kind, token_hash, scopes, created_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            cred.id,
            cred.registration_id,
            cred.kind.as_str(),
            &cred.token_hash[..],
            cred.scopes,
            cred.created_ms,
            cred.expires_ms,
        ])?;
        Ok(())
    }

    /// The credential whose token hashes to `hash`: one unique-index probe and
    /// one primary-key join, whatever the size of the tables.
    fn credential_by_hash(&self, hash: &SecretHash) -> Result<Option<Found>> {
        let mut stmt = self.prepare_cached(&BY_HASH)?;
        let found = stmt
            .query_row([&hash[..]], |row| {
                Ok(Found {
                    id: row.get(0)?,
                    kind: super::text_enum(row, 1, CredentialType::parse)?,
                    scopes: row.get(2)?,
                    created_ms: row.get(3)?,
                    expires_ms: row.get(4)?,
                    revoked_ms: row.get(5)?,
                    registration: registrations::from_row(row, 6)?,
                })
            })
            .optional()?;
        Ok(found)
    }

    /// Sets the scopes of every live credential of a registration (an anonymous
    /// key raised to the post-claim scopes in place).
    fn set_live_credential_scopes(&self, registration_id: &str, scopes: &str) -> Result<usize> {
        Ok(self
            .prepare_cached("UPDATE credentials SET scopes = ?2 WHERE registration_id = ?1 AND revoked_ms IS NULL")?
            .execute(params![registration_id, scopes])?)
    }

    /// Deletes access tokens that expired before `before_ms` (over the expiry index).
    fn prune_expired_credentials(&self, before_ms: UnixMs) -> Result<usize> {
        Ok(self
            .prepare_cached("DELETE FROM credentials WHERE expires_ms IS NOT NULL AND expires_ms <= ?1")?
            .execute([before_ms])?)
    }

    /// Revokes one credential; false if it already was.
    fn revoke_credential(&self, id: &str, now_ms: UnixMs) -> Result<bool> {
        Ok(self
            .prepare_cached("UPDATE credentials SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL")?
            .execute(params![id, now_ms])?
            == 1)
    }

    fn revoke_credentials_of(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<usize> {
        Ok(registrations::run_for(self, REVOKE_OF, chosen, now_ms, &[])?)
    }

    fn live_scopes_of(&self, registration_id: &str, now_ms: UnixMs) -> Result<Option<String>> {
        Ok(self
            .prepare_cached(LIVE_SCOPES_OF)?
            .query_row(params![registration_id, now_ms], |r| r.get(0))
            .optional()?)
    }
}
