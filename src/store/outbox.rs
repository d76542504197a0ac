//! The `outbox` table: mail written in the same transaction as the change
//! that caused it, delivered later by the sender thread (`mail`). Bodies are
//! erased once a message is delivered or abandoned: they hold a live link.

use rusqlite::{Connection, params};

use crate::error::Error;

pub struct NewMessage<'a> {
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: &'a str,
    pub registration_id: Option<&'a str>,
    pub created_ms: i64,
}

pub fn enqueue(conn: &Connection, message: &NewMessage<'_>) -> Result<i64, Error> {
    conn.prepare_cached(
        "INSERT INTO outbox (recipient, subject, body_text, body_html, registration_id, status, next_attempt_ms, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
    )?
    .execute(params![
        message.recipient,
        message.subject,
        message.body_text,
        message.body_html,
        message.registration_id,
        message.created_ms
    ])?;
    Ok(conn.last_insert_rowid())
}

#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub registration_id: Option<String>,
    pub attempts: i64,
}

/// Messages due at `now_ms`, oldest first (the partial index on due time).
pub fn due(conn: &Connection, now_ms: i64, limit: u32) -> Result<Vec<Pending>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, recipient, subject, body_text, body_html, registration_id, attempts FROM outbox
         WHERE status = 'pending' AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, limit], |r| {
        Ok(Pending {
            id: r.get(0)?,
            recipient: r.get(1)?,
            subject: r.get(2)?,
            body_text: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            body_html: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            registration_id: r.get(5)?,
            attempts: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn pending_count(conn: &Connection) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM outbox WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))?)
}

pub fn failed_count(conn: &Connection) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM outbox WHERE status = 'failed'")?
        .query_row([], |r| r.get(0))?)
}

pub fn mark_sent(conn: &Connection, id: i64, now_ms: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'sent', body_text = NULL, body_html = NULL, attempts = attempts + 1,
                           last_error = NULL, done_ms = ?2 WHERE id = ?1",
    )?
    .execute(params![id, now_ms])?;
    Ok(())
}

pub fn mark_retry(conn: &Connection, id: i64, error: &str, next_attempt_ms: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 WHERE id = ?1",
    )?
    .execute(params![id, error, next_attempt_ms])?;
    Ok(())
}

pub fn mark_failed(conn: &Connection, id: i64, error: &str, now_ms: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'failed', body_text = NULL, body_html = NULL, attempts = attempts + 1,
                           last_error = ?2, done_ms = ?3 WHERE id = ?1",
    )?
    .execute(params![id, error, now_ms])?;
    Ok(())
}
