//! The `credentials` table: API keys and access tokens, stored only as the
//! SHA-256 of the token and looked up by it (a unique index).

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, params};

use super::registrations::{self, Registration};
use crate::error::Error;
use crate::model::CredentialType;
use crate::secrets::SecretHash;

pub struct NewCredential<'a> {
    pub id: &'a str,
    pub registration_id: &'a str,
    pub kind: CredentialType,
    pub token_hash: &'a SecretHash,
    pub scopes: &'a str,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
}

pub fn insert(conn: &Connection, cred: &NewCredential<'_>) -> Result<(), Error> {
    conn.prepare_cached(
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

/// A stored credential with the registration it belongs to.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    pub kind: CredentialType,
    pub scopes: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    pub registration: Registration,
}

/// The statement of [`by_hash`], shared with `store::index_tests`.
pub(crate) static BY_HASH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT c.id, c.kind, c.scopes, c.created_ms, c.expires_ms, c.revoked_ms, {}
             FROM credentials c JOIN registrations r ON r.id = c.registration_id
             WHERE c.token_hash = ?1",
        registrations::COLUMNS
    )
});

/// The credential whose token hashes to `hash`: one unique-index probe and
/// one primary-key join, whatever the size of the tables.
pub fn by_hash(conn: &Connection, hash: &SecretHash) -> Result<Option<Found>, Error> {
    let mut stmt = conn.prepare_cached(&BY_HASH)?;
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
pub fn set_scopes_for_registration(conn: &Connection, registration_id: &str, scopes: &str) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached("UPDATE credentials SET scopes = ?2 WHERE registration_id = ?1 AND revoked_ms IS NULL")?
        .execute(params![registration_id, scopes])?)
}

/// Deletes access tokens that expired before `before_ms` (over the expiry index).
pub fn prune_expired(conn: &Connection, before_ms: i64) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached("DELETE FROM credentials WHERE expires_ms IS NOT NULL AND expires_ms <= ?1")?
        .execute([before_ms])?)
}

/// Revokes one credential; false if it already was.
pub fn revoke_one(conn: &Connection, id: &str, now_ms: i64) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached("UPDATE credentials SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL")?
        .execute(params![id, now_ms])?
        == 1)
}
