//! The sweeper thread: every few seconds, unclaimed registrations past their
//! TTL become `expired` (recorded once), and what can no longer matter is
//! pruned: seen jtis a day past their lifetime (`replay::PRUNE_MARGIN`:
//! a clock jump must not reopen replay), idle rate-limit windows, access
//! tokens an hour past expiry, and, with `audit_retention_days` set, audit
//! events older than that (in batches of [`AUDIT_PRUNE_BATCH_ROWS`], at most
//! [`AUDIT_PRUNE_BATCHES`] a pass, so a first prune of years of history
//! never holds the writer long; one log line a pass, no audit event per
//! row); and the uses of credentials noted since the last pass are written
//! (`last_used`). Each step is one short transaction, so CLI commands
//! working on the same file meet at most a brief busy wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::log;
use crate::ratelimit::Limiter;
use crate::store::Writer;
use crate::time::Clock;

/// The advisory lock expiry runs under on a shared database (any constant
/// used for nothing else: "expire" in ASCII).
const EXPIRY_LOCK: i64 = i64::from_be_bytes(*b"\0\0expire");
/// The advisory lock audit pruning runs under on a shared database, so
/// two nodes do not delete the same rows at once.
const AUDIT_PRUNE_LOCK: i64 = i64::from_be_bytes(*b"\0\0\0audit");
/// Audit events deleted per transaction.
pub const AUDIT_PRUNE_BATCH_ROWS: u32 = 1000;
/// Transactions of audit pruning per pass (the rest waits for the next).
pub const AUDIT_PRUNE_BATCHES: usize = 50;
const DAY: Duration = Duration::from_secs(86_400);
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// Expired access tokens are kept this long (a late presenter still gets
/// "expired" in the log rather than "unknown").
const ACCESS_TOKEN_GRACE: Duration = Duration::from_secs(3600);

pub struct Sweeper {
    pub clock: Arc<dyn Clock>,
    pub limiter: Arc<Limiter>,
    pub ticker: Arc<dyn crate::time::Ticker>,
    /// Writes go through the server's one writer, like requests'.
    pub writer: Arc<Writer>,
    /// Uses of credentials noted by the workers, written here in batches.
    pub last_used: Arc<crate::last_used::LastUsed>,
    /// The rate-limit window, from the live settings.
    pub window_secs: Box<dyn Fn() -> u64 + Send>,
    pub stopping: Arc<AtomicBool>,
}

impl Sweeper {
    pub fn run(self) {
        let mut slept = Duration::ZERO;
        while !self.stopping.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            slept += Duration::from_millis(100);
            if slept < SWEEP_EVERY {
                continue;
            }
            slept = Duration::ZERO;
            self.sweep();
        }
    }

    /// One pass; public so tests can run it at a chosen instant.
    pub fn sweep(&self) {
        let now_ms = self.clock.now();
        // Nodes sharing a database expire one at a time, so each expiry is
        // recorded once: the second finds the registrations already ended.
        match self
            .writer
            .write_alone(EXPIRY_LOCK, |tx| crate::core::revoke::expire(tx, now_ms))
        {
            Ok(0) => {}
            Ok(n) => log::info(&format!("sweeper: {n} unclaimed registrations expired")),
            Err(err) => log::warn(&format!("sweeper: expiring registrations failed: {err}")),
        }
        if let Err(err) = self.writer.write(|tx| Ok(tx.prune_replay(now_ms)?)) {
            log::warn(&format!("sweeper: pruning seen jtis failed: {err}"));
        }
        if let Err(err) = self
            .writer
            .write(|tx| Ok(tx.prune_expired_credentials(now_ms - ACCESS_TOKEN_GRACE)?))
        {
            log::warn(&format!("sweeper: pruning expired access tokens failed: {err}"));
        }
        self.prune_audit(now_ms);
        let at = crate::ratelimit::Now {
            elapsed: self.ticker.elapsed(),
            wall: now_ms,
        };
        if let Err(err) = self.limiter.prune(at, (self.window_secs)()) {
            log::warn(&format!("sweeper: pruning rate-limit windows failed: {err}"));
        }
        flush_last_used(&self.last_used, &self.writer);
    }

    /// Audit retention: events recorded more than `audit_retention_days`
    /// before `now_ms` are deleted, oldest first, a bounded batch per
    /// transaction. The setting is read in each batch's transaction (the
    /// stored row, so a change made with `config set` applies at the next pass).
    fn prune_audit(&self, now_ms: crate::time::UnixMs) {
        let mut pruned = 0;
        let mut kept_days = None;
        for _ in 0..AUDIT_PRUNE_BATCHES {
            let batch = self.writer.write_alone(AUDIT_PRUNE_LOCK, |tx| {
                let Some(days) = crate::settings::audit_retention_days(&tx.stored_settings()?) else {
                    return Ok(None);
                };
                let before_ms = now_ms - DAY * u32::try_from(days).unwrap_or(u32::MAX);
                Ok(Some((days, tx.prune_events(before_ms, AUDIT_PRUNE_BATCH_ROWS)?)))
            });
            match batch {
                Ok(Some((days, deleted))) => {
                    kept_days = Some(days);
                    pruned += deleted;
                    if deleted < AUDIT_PRUNE_BATCH_ROWS as usize {
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    log::warn(&format!("sweeper: pruning audit events failed: {err}"));
                    break;
                }
            }
        }
        if let (Some(days), 1..) = (kept_days, pruned) {
            log::info(&format!(
                "sweeper: {pruned} audit events older than {days} days pruned (audit_retention_days)"
            ));
        }
    }
}

/// Writes the uses of credentials noted since the last flush (`last_used`).
pub fn flush_last_used(last_used: &crate::last_used::LastUsed, writer: &Writer) {
    match last_used.flush(writer) {
        Ok(flushed) if flushed.dropped > 0 => log::warn(&format!(
            "last use: {} uses not noted, more than {} registrations waiting to be written",
            flushed.dropped,
            crate::last_used::MAX_PENDING
        )),
        Ok(_) => {}
        Err(err) => log::warn(&format!("last use: writing it failed (kept for the next try): {err}")),
    }
}
