//! The `settings` table: stored values of the keys in `crate::settings::DEFS`.
//! Values arrive here already normalised; absent keys mean "default".

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use crate::error::Error;

pub fn load(conn: &Connection) -> Result<BTreeMap<String, String>, Error> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM settings")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores `value` for `key`, or deletes the row when `value` is `None`.
pub fn put(conn: &Connection, key: &str, value: Option<&str>, now_ms: i64) -> Result<(), Error> {
    match value {
        Some(value) => conn.execute(
            "INSERT INTO settings (key, value, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            params![key, value, now_ms],
        )?,
        None => conn.execute("DELETE FROM settings WHERE key = ?1", [key])?,
    };
    Ok(())
}
