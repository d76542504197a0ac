//! The `fetched_documents` table: JWKS and Client ID Metadata Documents as
//! last fetched. Public documents: no secrets here.

use super::{Columns, PgTx};
use crate::store::Result;
use crate::store::documents::*;

impl Documents for PgTx<'_> {
    fn document(&self, uri: &str) -> Result<Option<Document>> {
        let Some(r) = self.first(
            "SELECT body, fetched_ms, expires_ms FROM fetched_documents WHERE uri = $1",
            &[&uri],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(Document {
            body: r.col(0)?,
            fetched_ms: r.ms(1)?,
            expires_ms: r.ms(2)?,
        }))
    }

    /// Two nodes fetching at once: the last write wins, either is fresh.
    fn put_document(&self, uri: &str, doc: &Document) -> Result<()> {
        self.execute(
            "INSERT INTO fetched_documents (uri, body, fetched_ms, expires_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (uri) DO UPDATE SET body = excluded.body, fetched_ms = excluded.fetched_ms,
                                             expires_ms = excluded.expires_ms",
            &[&uri, &doc.body, &doc.fetched_ms.millis(), &doc.expires_ms.millis()],
        )?;
        Ok(())
    }
}
