//! The `providers` table: the trust list of agent providers (SPEC.md 4.3).

use postgres::Row;

use super::{Columns, PgTx};
use crate::store::Result;
use crate::store::providers::*;

fn from_row(row: &Row) -> Result<Provider> {
    Ok(Provider {
        issuer: row.col(0)?,
        pinned_jwks_uri: row.col(1)?,
        client_id: row.col(2)?,
        name: row.col(3)?,
        created_ms: row.ms(4)?,
    })
}

impl Providers for PgTx<'_> {
    /// Whether the row is new is the statement's own answer (a row the
    /// statement inserted has no `xmax`), not a read before it: of two
    /// nodes adding the same issuer at once, exactly one says new.
    fn upsert_provider(&self, provider: &Provider) -> Result<bool> {
        self.one(
            "INSERT INTO providers (issuer, jwks_uri, client_id, name, created_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (issuer) DO UPDATE SET jwks_uri = excluded.jwks_uri, client_id = excluded.client_id,
                                                name = excluded.name
             RETURNING (xmax = 0)",
            &[
                &provider.issuer,
                &provider.pinned_jwks_uri,
                &provider.client_id,
                &provider.name,
                &provider.created_ms.millis(),
            ],
        )?
        .col(0)
    }

    fn remove_provider(&self, issuer: &str) -> Result<bool> {
        Ok(self.execute("DELETE FROM providers WHERE issuer = $1", &[&issuer])? > 0)
    }

    fn provider(&self, issuer: &str) -> Result<Option<Provider>> {
        self.first(
            "SELECT issuer, jwks_uri, client_id, name, created_ms FROM providers WHERE issuer = $1",
            &[&issuer],
        )?
        .map(|r| from_row(&r))
        .transpose()
    }

    /// By issuer, compared bytewise as SQLite does (not by the database's
    /// collation).
    fn providers(&self) -> Result<Vec<Provider>> {
        self.query(
            "SELECT issuer, jwks_uri, client_id, name, created_ms FROM providers ORDER BY issuer COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(from_row)
        .collect()
    }
}
