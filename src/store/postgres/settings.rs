//! The `settings` table.

use std::collections::BTreeMap;

use super::{Columns, PgTx};
use crate::store::Result;
use crate::store::settings::Settings;
use crate::time::UnixMs;

impl Settings for PgTx<'_> {
    fn stored_settings(&self) -> Result<BTreeMap<String, String>> {
        self.query("SELECT key, value FROM settings", &[])?
            .iter()
            .map(|r| Ok((r.col(0)?, r.col(1)?)))
            .collect()
    }

    fn put_setting(&self, key: &str, value: Option<&str>, now_ms: UnixMs) -> Result<()> {
        match value {
            Some(value) => self.execute(
                "INSERT INTO settings (key, value, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
                &[&key, &value, &now_ms.millis()],
            )?,
            None => self.execute("DELETE FROM settings WHERE key = $1", &[&key])?,
        };
        Ok(())
    }
}
