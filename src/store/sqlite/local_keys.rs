//! The `local_keys` table.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::Result;
use crate::store::local_keys::LocalKeys;
use crate::time::UnixMs;

const GET: &str = "SELECT value FROM local_keys WHERE name = ?1";

impl LocalKeys for Connection {
    fn local_key(&self, name: &str, fresh: &[u8], now_ms: UnixMs) -> Result<Vec<u8>> {
        if let Some(value) = self.prepare_cached(GET)?.query_row([name], |r| r.get(0)).optional()? {
            return Ok(value);
        }
        self.prepare_cached(
            "INSERT INTO local_keys (name, value, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![name, fresh, now_ms])?;
        Ok(self.prepare_cached(GET)?.query_row([name], |r| r.get(0))?)
    }
}
