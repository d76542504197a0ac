//! The `fetched_documents` table: JWKS and Client ID Metadata Documents as
//! last fetched, with the instant they stop being fresh. Public documents:
//! no secrets here.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::Result;
use crate::store::documents::*;

/// The statement of `document`, planned by `index_tests`.
pub(crate) const GET: &str = "SELECT body, fetched_ms, expires_ms FROM fetched_documents WHERE uri = ?1";

impl Documents for Connection {
    fn document(&self, uri: &str) -> Result<Option<Document>> {
        let mut stmt = self.prepare_cached(GET)?;
        Ok(stmt
            .query_row([uri], |r| {
                Ok(Document {
                    body: r.get(0)?,
                    fetched_ms: r.get(1)?,
                    expires_ms: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn put_document(&self, uri: &str, doc: &Document) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO fetched_documents (uri, body, fetched_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (uri) DO UPDATE SET body = excluded.body, fetched_ms = excluded.fetched_ms,
                                             expires_ms = excluded.expires_ms",
        )?
        .execute(params![uri, doc.body, doc.fetched_ms, doc.expires_ms])?;
        Ok(())
    }
}
