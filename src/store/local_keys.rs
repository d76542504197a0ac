//! The `local_keys` table: secrets this database makes for itself, such as
//! the key OTPs are MACed under. Made once, on first use, and never leave
//! the file.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Error;

/// The key called `name`, created with `make` if it does not exist yet.
pub fn get_or_create(
    conn: &Connection,
    name: &str,
    now_ms: i64,
    make: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, Error> {
    if let Some(value) = conn
        .prepare_cached("SELECT value FROM local_keys WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
    {
        return Ok(value);
    }
    conn.prepare_cached(
        "INSERT INTO local_keys (name, value, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![name, make(), now_ms])?;
    Ok(conn
        .prepare_cached("SELECT value FROM local_keys WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}
