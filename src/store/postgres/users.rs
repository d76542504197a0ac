//! The `users` table: people who own registrations. Emails are stored
//! lower-cased and compared that way (SPEC.md 4.4); the unique indexes on
//! email and phone keep one user per address across nodes, and a lookup by
//! either in a write locks the address until the transaction ends: core
//! makes a user when the lookup finds none (just-in-time provisioning, a
//! confirmed claim, a sign-in), so two first registrations of one new
//! address at once must not both find none. The second waits at the
//! lookup and then finds the first's user.

use postgres::Row;

use super::{Columns, LockClass, PgTx};
use crate::store::Result;
use crate::store::users::*;

const COLUMNS: &str = "id, email, phone_number, name, created_ms";

fn from_row(row: &Row) -> Result<User> {
    Ok(User {
        id: row.col(0)?,
        email: row.col(1)?,
        phone_number: row.col(2)?,
        name: row.col(3)?,
        created_ms: row.ms(4)?,
    })
}

impl Users for PgTx<'_> {
    fn insert_user(&self, user: &User) -> Result<()> {
        self.execute(
            "INSERT INTO users (id, email, phone_number, name, created_ms) VALUES ($1, $2, $3, $4, $5)",
            &[
                &user.id,
                &user.email.as_deref().map(str::to_lowercase),
                &user.phone_number,
                &user.name,
                &user.created_ms.millis(),
            ],
        )?;
        Ok(())
    }

    fn user(&self, id: &str) -> Result<Option<User>> {
        self.first(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"), &[&id])?
            .map(|r| from_row(&r))
            .transpose()
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_lowercase();
        self.lock_key(LockClass::UserEmail, &email)?;
        self.first(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"), &[&email])?
            .map(|r| from_row(&r))
            .transpose()
    }

    fn user_by_phone(&self, phone_number: &str) -> Result<Option<User>> {
        self.lock_key(LockClass::UserPhone, phone_number)?;
        self.first(
            &format!("SELECT {COLUMNS} FROM users WHERE phone_number = $1"),
            &[&phone_number],
        )?
        .map(|r| from_row(&r))
        .transpose()
    }

    /// The newest: SQLite goes by insertion (rowid); here there is none,
    /// so by creation time, then id, descending.
    fn users(&self, limit: u32) -> Result<Vec<User>> {
        self.query(
            &format!("SELECT {COLUMNS} FROM users ORDER BY created_ms DESC, id DESC LIMIT $1"),
            &[&i64::from(limit)],
        )?
        .iter()
        .map(from_row)
        .collect()
    }
}
