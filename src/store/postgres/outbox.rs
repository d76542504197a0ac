//! The `outbox` table: mail written in the same transaction as the change
//! that caused it, delivered later by a sender. Bodies are erased once a
//! message is delivered or abandoned: they hold a live link.

use super::{Columns, PgTx};
use crate::store::Result;
use crate::store::outbox::*;
use crate::time::UnixMs;

impl Outbox for PgTx<'_> {
    fn enqueue_mail(&self, message: &NewMessage<'_>) -> Result<i64> {
        self.one(
            "INSERT INTO outbox (recipient, subject, body_text, body_html, registration_id, status, next_attempt_ms, created_ms)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) RETURNING id",
            &[
                &message.recipient,
                &message.subject,
                &message.body_text,
                &message.body_html,
                &message.registration_id,
                &message.created_ms.millis(),
            ],
        )?
        .col(0)
    }

    /// Oldest first. In a write transaction the messages answered are
    /// claimed: locked (`FOR UPDATE`) until it ends, and skipped by every
    /// other node's `due_mail` meanwhile (`SKIP LOCKED`), which then finds
    /// them no longer pending once this one marks them. So each message is
    /// taken by one sender, provided the sender sends and marks it in the
    /// transaction that took it. In a read-only transaction nothing is
    /// claimed (the answer is what SQLite's reading connection gives).
    fn due_mail(&self, now_ms: UnixMs, limit: u32) -> Result<Vec<Pending>> {
        let claim = if self.writing() { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "SELECT id, recipient, subject, body_text, body_html, registration_id, attempts FROM outbox
             WHERE status = 'pending' AND next_attempt_ms <= $1 ORDER BY next_attempt_ms, id LIMIT $2{claim}"
        );
        self.query(&sql, &[&now_ms.millis(), &i64::from(limit)])?
            .iter()
            .map(|r| {
                Ok(Pending {
                    id: r.col(0)?,
                    recipient: r.col(1)?,
                    subject: r.col(2)?,
                    body_text: r.col::<Option<String>>(3)?.unwrap_or_default(),
                    body_html: r.col::<Option<String>>(4)?.unwrap_or_default(),
                    registration_id: r.col(5)?,
                    attempts: r.int(6)?,
                })
            })
            .collect()
    }

    fn pending_mail_count(&self) -> Result<i64> {
        self.one("SELECT count(*) FROM outbox WHERE status = 'pending'", &[])?
            .col(0)
    }

    fn failed_mail_count(&self) -> Result<i64> {
        self.one("SELECT count(*) FROM outbox WHERE status = 'failed'", &[])?
            .col(0)
    }

    fn mark_mail_sent(&self, id: i64, now_ms: UnixMs) -> Result<()> {
        self.execute(
            "UPDATE outbox SET status = 'sent', body_text = NULL, body_html = NULL, attempts = attempts + 1,
                               last_error = NULL, done_ms = $2 WHERE id = $1",
            &[&id, &now_ms.millis()],
        )?;
        Ok(())
    }

    fn mark_mail_retry(&self, id: i64, error: &str, next_attempt_ms: UnixMs) -> Result<()> {
        self.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_ms = $3 WHERE id = $1",
            &[&id, &error, &next_attempt_ms.millis()],
        )?;
        Ok(())
    }

    fn mark_mail_failed(&self, id: i64, error: &str, now_ms: UnixMs) -> Result<()> {
        self.execute(
            "UPDATE outbox SET status = 'failed', body_text = NULL, body_html = NULL, attempts = attempts + 1,
                               last_error = $2, done_ms = $3 WHERE id = $1",
            &[&id, &error, &now_ms.millis()],
        )?;
        Ok(())
    }
}
