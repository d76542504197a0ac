//! The sweeper thread: every few seconds, unclaimed registrations past their
//! TTL become `expired` (recorded once), and what can no longer matter is
//! pruned: seen jtis a day past their lifetime (`replay::PRUNE_MARGIN`:
//! a clock jump must not reopen replay), idle rate-limit windows, access
//! tokens an hour past expiry; and the uses of credentials noted since the
//! last pass are written (`last_used`). Each step is one short transaction, so CLI
//! commands working on the same file meet at most a brief busy wait.

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
        let at = crate::ratelimit::Now {
            elapsed: self.ticker.elapsed(),
            wall: now_ms,
        };
        if let Err(err) = self.limiter.prune(at, (self.window_secs)()) {
            log::warn(&format!("sweeper: pruning rate-limit windows failed: {err}"));
        }
        flush_last_used(&self.last_used, &self.writer);
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
