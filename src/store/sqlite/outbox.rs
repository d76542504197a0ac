//! The `outbox` table: mail written in the same transaction as the change
//! that caused it, delivered later by the sender thread (`mail`). Bodies are
//! erased once a message is delivered or abandoned: they hold a live link.

use rusqlite::{Connection, params};

use crate::store::Result;
use crate::store::outbox::*;
use crate::time::UnixMs;

impl Outbox for Connection {
    fn enqueue_mail(&self, message: &NewMessage<'_>) -> Result<i64> {
        self.prepare_cached(
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
        Ok(self.last_insert_rowid())
    }

    /// Messages due at `now_ms`, oldest first (the partial index on due time).
    fn due_mail(&self, now_ms: UnixMs, limit: u32) -> Result<Vec<Pending>> {
        let mut stmt = self.prepare_cached(
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
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn pending_mail_count(&self) -> Result<i64> {
        Ok(self
            .prepare_cached("SELECT count(*) FROM outbox WHERE status = 'pending'")?
            .query_row([], |r| r.get(0))?)
    }

    fn failed_mail_count(&self) -> Result<i64> {
        Ok(self
            .prepare_cached("SELECT count(*) FROM outbox WHERE status = 'failed'")?
            .query_row([], |r| r.get(0))?)
    }

    fn mark_mail_sent(&self, id: i64, now_ms: UnixMs) -> Result<()> {
        self.prepare_cached(
            "UPDATE outbox SET status = 'sent', body_text = NULL, body_html = NULL, attempts = attempts + 1,
                               last_error = NULL, done_ms = ?2 WHERE id = ?1",
        )?
        .execute(params![id, now_ms])?;
        Ok(())
    }

    fn mark_mail_retry(&self, id: i64, error: &str, next_attempt_ms: UnixMs) -> Result<()> {
        self.prepare_cached(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 WHERE id = ?1",
        )?
        .execute(params![id, error, next_attempt_ms])?;
        Ok(())
    }

    fn mark_mail_failed(&self, id: i64, error: &str, now_ms: UnixMs) -> Result<()> {
        self.prepare_cached(
            "UPDATE outbox SET status = 'failed', body_text = NULL, body_html = NULL, attempts = attempts + 1,
                               last_error = ?2, done_ms = ?3 WHERE id = ?1",
        )?
        .execute(params![id, error, now_ms])?;
        Ok(())
    }
}
