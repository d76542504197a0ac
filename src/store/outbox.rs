//! The outbox: mail written in the same transaction as the change that
//! caused it, delivered later by the sender thread (`mail`). Bodies are
//! erased once a message is delivered or abandoned: they hold a live link.

use super::Result;
use crate::time::UnixMs;

pub struct NewMessage<'a> {
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: &'a str,
    pub registration_id: Option<&'a str>,
    pub created_ms: UnixMs,
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

pub trait Outbox {
    /// Queues a message; returns its id.
    fn enqueue_mail(&self, message: &NewMessage<'_>) -> Result<i64>;
    /// Messages due at `now_ms`, oldest first.
    fn due_mail(&self, now_ms: UnixMs, limit: u32) -> Result<Vec<Pending>>;
    fn pending_mail_count(&self) -> Result<i64>;
    fn failed_mail_count(&self) -> Result<i64>;
    fn mark_mail_sent(&self, id: i64, now_ms: UnixMs) -> Result<()>;
    fn mark_mail_retry(&self, id: i64, error: &str, next_attempt_ms: UnixMs) -> Result<()>;
    fn mark_mail_failed(&self, id: i64, error: &str, now_ms: UnixMs) -> Result<()>;
}
