//! The `providers` table: the trust list of agent providers (SPEC.md 4.3).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::Result;
use crate::store::providers::*;

fn from_row(row: &Row<'_>) -> rusqlite::Result<Provider> {
    Ok(Provider {
        issuer: row.get(0)?,
        pinned_jwks_uri: row.get(1)?,
        client_id: row.get(2)?,
        name: row.get(3)?,
        created_ms: row.get(4)?,
    })
}

/// The statement of `provider`, planned by `index_tests`.
pub(crate) const BY_ISSUER: &str =
    "SELECT issuer, jwks_uri, client_id, name, created_ms FROM providers WHERE issuer = ?1";

impl Providers for Connection {
    /// Adds or replaces a provider; returns true if it was new.
    fn upsert_provider(&self, provider: &Provider) -> Result<bool> {
        let existed = self.provider(&provider.issuer)?.is_some();
        self.execute(
            "INSERT INTO providers (issuer, jwks_uri, client_id, name, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (issuer) DO UPDATE SET jwks_uri = excluded.jwks_uri, client_id = excluded.client_id,
                                                name = excluded.name",
            params![
                provider.issuer,
                provider.pinned_jwks_uri,
                provider.client_id,
                provider.name,
                provider.created_ms
            ],
        )?;
        Ok(!existed)
    }

    fn remove_provider(&self, issuer: &str) -> Result<bool> {
        Ok(self.execute("DELETE FROM providers WHERE issuer = ?1", [issuer])? > 0)
    }

    fn provider(&self, issuer: &str) -> Result<Option<Provider>> {
        let mut stmt = self.prepare_cached(BY_ISSUER)?;
        Ok(stmt.query_row([issuer], from_row).optional()?)
    }

    fn providers(&self) -> Result<Vec<Provider>> {
        let mut stmt =
            self.prepare_cached("SELECT issuer, jwks_uri, client_id, name, created_ms FROM providers ORDER BY issuer")?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
