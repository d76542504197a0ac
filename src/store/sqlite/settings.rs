//! The `settings` table.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use crate::store::Result;
use crate::store::settings::Settings;
use crate::time::UnixMs;

impl Settings for Connection {
    fn stored_settings(&self) -> Result<BTreeMap<String, String>> {
        let mut stmt = self.prepare_cached("SELECT key, value FROM settings")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put_setting(&self, key: &str, value: Option<&str>, now_ms: UnixMs) -> Result<()> {
        match value {
            Some(value) => self.execute(
                "INSERT INTO settings (key, value, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
                params![key, value, now_ms],
            )?,
            None => self.execute("DELETE FROM settings WHERE key = ?1", [key])?,
        };
        Ok(())
    }
}
