//! The `users` table: people who own registrations. Emails are stored
//! lower-cased and compared that way (SPEC.md 4.4).

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::Result;
use crate::store::users::*;

const COLUMNS: &str = "id, email, phone_number, name, created_ms";

/// The lookups of `user_by_email` and `user_by_phone`, planned by `index_tests`.
pub(crate) static BY_EMAIL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM users WHERE email = ?1"));
pub(crate) static BY_PHONE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM users WHERE phone_number = ?1"));

fn from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        phone_number: row.get(2)?,
        name: row.get(3)?,
        created_ms: row.get(4)?,
    })
}

impl Users for Connection {
    fn insert_user(&self, user: &User) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO users (id, email, phone_number, name, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            user.id,
            user.email.as_deref().map(str::to_lowercase),
            user.phone_number,
            user.name,
            user.created_ms
        ])?;
        Ok(())
    }

    fn user(&self, id: &str) -> Result<Option<User>> {
        let mut stmt = self.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?;
        Ok(stmt.query_row([id], from_row).optional()?)
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let mut stmt = self.prepare_cached(&BY_EMAIL)?;
        Ok(stmt.query_row([email.to_lowercase()], from_row).optional()?)
    }

    fn user_by_phone(&self, phone_number: &str) -> Result<Option<User>> {
        let mut stmt = self.prepare_cached(&BY_PHONE)?;
        Ok(stmt.query_row([phone_number], from_row).optional()?)
    }

    fn users(&self, limit: u32) -> Result<Vec<User>> {
        let mut stmt = self.prepare_cached(&format!("SELECT {COLUMNS} FROM users ORDER BY rowid DESC LIMIT ?1"))?;
        let rows = stmt.query_map([limit], from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
