//! The `fetched_documents` table: JWKS and Client ID Metadata Documents as
//! last fetched, with the instant they stop being fresh. Public documents:
//! no secrets here.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Document {
    pub body: Vec<u8>,
    pub fetched_ms: i64,
    pub expires_ms: i64,
}

/// The statement of [`get`], shared with `store::index_tests`.
pub(crate) const GET: &str = "SELECT body, fetched_ms, expires_ms FROM fetched_documents WHERE uri = ?1";

pub fn get(conn: &Connection, uri: &str) -> Result<Option<Document>, Error> {
    let mut stmt = conn.prepare_cached(GET)?;
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

pub fn put(conn: &Connection, uri: &str, doc: &Document) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO fetched_documents (uri, body, fetched_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (uri) DO UPDATE SET body = excluded.body, fetched_ms = excluded.fetched_ms,
                                         expires_ms = excluded.expires_ms",
    )?
    .execute(params![uri, doc.body, doc.fetched_ms, doc.expires_ms])?;
    Ok(())
}
