//! The `providers` table: the trust list of agent providers (SPEC.md 4.3).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub issuer: String,
    /// As configured; see [`Provider::jwks_uri`] for the effective one.
    pub pinned_jwks_uri: Option<String>,
    pub client_id: Option<String>,
    pub name: Option<String>,
    pub created_ms: i64,
}

impl Provider {
    /// The pinned JWKS URI, or `<iss>/.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        self.pinned_jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", self.issuer.trim_end_matches('/')))
    }
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Provider> {
    Ok(Provider {
        issuer: row.get(0)?,
        pinned_jwks_uri: row.get(1)?,
        client_id: row.get(2)?,
        name: row.get(3)?,
        created_ms: row.get(4)?,
    })
}

/// Adds or replaces a provider; returns true if it was new.
pub fn upsert(conn: &Connection, provider: &Provider) -> Result<bool, Error> {
    let existed = by_issuer(conn, &provider.issuer)?.is_some();
    conn.execute(
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

pub fn remove(conn: &Connection, issuer: &str) -> Result<bool, Error> {
    Ok(conn.execute("DELETE FROM providers WHERE issuer = ?1", [issuer])? > 0)
}

/// The statement of [`by_issuer`], shared with `store::index_tests`.
pub(crate) const BY_ISSUER: &str =
    "SELECT issuer, jwks_uri, client_id, name, created_ms FROM providers WHERE issuer = ?1";

pub fn by_issuer(conn: &Connection, issuer: &str) -> Result<Option<Provider>, Error> {
    let mut stmt = conn.prepare_cached(BY_ISSUER)?;
    Ok(stmt.query_row([issuer], from_row).optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Provider>, Error> {
    let mut stmt =
        conn.prepare_cached("SELECT issuer, jwks_uri, client_id, name, created_ms FROM providers ORDER BY issuer")?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
