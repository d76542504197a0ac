//! The `local_keys` table.

use super::{Columns, PgTx};
use crate::store::Result;
use crate::store::local_keys::LocalKeys;
use crate::time::UnixMs;

const GET: &str = "SELECT value FROM local_keys WHERE name = $1";

impl LocalKeys for PgTx<'_> {
    /// Of two nodes' first uses, the primary key lets one insert; the
    /// other's insert waits for it and does nothing, and its read after
    /// (a new statement, so a new snapshot under READ COMMITTED) finds the
    /// winner's value.
    fn local_key(&self, name: &str, fresh: &[u8], now_ms: UnixMs) -> Result<Vec<u8>> {
        if let Some(row) = self.first(GET, &[&name])? {
            return row.col(0);
        }
        let inserted = self.first(
            "INSERT INTO local_keys (name, value, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING RETURNING value",
            &[&name, &fresh, &now_ms.millis()],
        )?;
        match inserted {
            Some(row) => row.col(0),
            None => self.one(GET, &[&name])?.col(0),
        }
    }
}
