//! Fetched documents: JWKS and Client ID Metadata Documents as last fetched,
//! with the instant they stop being fresh. Public documents: no secrets here.

use super::Result;
use crate::time::UnixMs;

#[derive(Debug, Clone)]
pub struct Document {
    pub body: Vec<u8>,
    pub fetched_ms: UnixMs,
    pub expires_ms: UnixMs,
}

pub trait Documents {
    fn document(&self, uri: &str) -> Result<Option<Document>>;
    fn put_document(&self, uri: &str, doc: &Document) -> Result<()>;
}
