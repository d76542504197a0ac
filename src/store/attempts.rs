//! The `claim_attempts` table: emailed claim links and their codes
//! (SPEC.md 5). Looked up by the SHA-256 of the attempt token, or as the
//! one `open` attempt of a registration (a partial index).

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Error;
use crate::secrets::SecretHash;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptStatus {
    Open,
    /// A newer attempt replaced it.
    Superseded,
    /// The user said "this wasn't me".
    Cancelled,
    /// The claim completed with it.
    Completed,
    /// The registration ended otherwise (locked, expired, revoked).
    Closed,
}

impl AttemptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Open => "open",
            AttemptStatus::Superseded => "superseded",
            AttemptStatus::Cancelled => "cancelled",
            AttemptStatus::Completed => "completed",
            AttemptStatus::Closed => "closed",
        }
    }

    fn parse(text: &str) -> Option<AttemptStatus> {
        [
            Self::Open,
            Self::Superseded,
            Self::Cancelled,
            Self::Completed,
            Self::Closed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub registration_id: String,
    pub email: String,
    pub status: AttemptStatus,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub otp_mac: Option<Vec<u8>>,
    pub otp_expires_ms: Option<i64>,
    pub otp_failures: i64,
}

const COLUMNS: &str =
    "id, registration_id, email, status, created_ms, expires_ms, otp_mac, otp_expires_ms, otp_failures";

/// The lookups of [`by_token_hash`] and [`open_of`], shared with `store::index_tests`.
pub(crate) static BY_TOKEN_HASH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM claim_attempts WHERE token_hash = ?1"));
pub(crate) static OPEN_OF: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM claim_attempts WHERE registration_id = ?1 AND status = 'open'"));

fn from_row(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        id: row.get(0)?,
        registration_id: row.get(1)?,
        email: row.get(2)?,
        status: super::text_enum(row, 3, AttemptStatus::parse)?,
        created_ms: row.get(4)?,
        expires_ms: row.get(5)?,
        otp_mac: row.get(6)?,
        otp_expires_ms: row.get(7)?,
        otp_failures: row.get(8)?,
    })
}

pub struct NewAttempt<'a> {
    pub id: &'a str,
    pub registration_id: &'a str,
    pub email: &'a str,
    pub token_hash: &'a SecretHash,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// Opens a new attempt, superseding any open one of the same registration.
pub fn open(conn: &Connection, attempt: &NewAttempt<'_>) -> Result<(), Error> {
    conn.prepare_cached("UPDATE claim_attempts SET status = 'superseded', otp_mac = NULL WHERE registration_id = ?1 AND status = 'open'")?
        .execute([attempt.registration_id])?;
    conn.prepare_cached(
        "INSERT INTO claim_attempts (id, registration_id, email, token_hash, status, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6)",
    )?
    .execute(params![
        attempt.id,
        attempt.registration_id,
        attempt.email,
        &attempt.token_hash[..],
        attempt.created_ms,
        attempt.expires_ms
    ])?;
    Ok(())
}

pub fn by_token_hash(conn: &Connection, hash: &SecretHash) -> Result<Option<Attempt>, Error> {
    let mut stmt = conn.prepare_cached(&BY_TOKEN_HASH)?;
    Ok(stmt.query_row([&hash[..]], from_row).optional()?)
}

pub fn open_of(conn: &Connection, registration_id: &str) -> Result<Option<Attempt>, Error> {
    let mut stmt = conn.prepare_cached(&OPEN_OF)?;
    Ok(stmt.query_row([registration_id], from_row).optional()?)
}

/// Stores a fresh code's MAC, replacing (and so invalidating) the previous code.
pub fn set_code(conn: &Connection, id: &str, mac: &[u8], expires_ms: i64) -> Result<(), Error> {
    conn.prepare_cached("UPDATE claim_attempts SET otp_mac = ?2, otp_expires_ms = ?3, otp_failures = 0 WHERE id = ?1")?
        .execute(params![id, mac, expires_ms])?;
    Ok(())
}

/// Counts a wrong code; burns the code once `burn_at` failures are reached.
/// Returns the attempt's failure count after this one.
pub fn record_failure(conn: &Connection, id: &str, burn_at: i64) -> Result<i64, Error> {
    let failures: i64 = conn
        .prepare_cached(
            "UPDATE claim_attempts SET otp_failures = otp_failures + 1 WHERE id = ?1 RETURNING otp_failures",
        )?
        .query_row([id], |r| r.get(0))?;
    if failures >= burn_at {
        conn.prepare_cached("UPDATE claim_attempts SET otp_mac = NULL WHERE id = ?1")?
            .execute([id])?;
    }
    Ok(failures)
}

pub fn set_status(conn: &Connection, id: &str, status: AttemptStatus) -> Result<(), Error> {
    conn.prepare_cached("UPDATE claim_attempts SET status = ?2, otp_mac = NULL WHERE id = ?1")?
        .execute(params![id, status.as_str()])?;
    Ok(())
}

/// Closes every open attempt of a registration (it ended some other way).
pub fn close_all(conn: &Connection, registration_id: &str) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE claim_attempts SET status = 'closed', otp_mac = NULL WHERE registration_id = ?1 AND status = 'open'",
    )?
    .execute([registration_id])?;
    Ok(())
}
