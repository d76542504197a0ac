//! Group commit: the server's one writer connection, shared by every request.
//!
//! A request runs its transaction's work inside a savepoint of the batch
//! that is open, on the caller's own thread. Whoever finds nobody queued
//! behind it (or the batch full) commits: one fsync for every request in the
//! batch. The others wait until their batch is committed, so no request is
//! acknowledged before its data is durable. A request whose work fails rolls
//! back to its savepoint and sinks nothing else; a failed COMMIT fails every
//! request of that batch. With one request at a time this is exactly one
//! transaction per request, as before.
//!
//! One connection also keeps its page cache warm: with a connection per
//! worker, every commit by one invalidated the caches of the others.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::Connection;

use super::OpenError;
use crate::error::Error;
use crate::store::{self, Tx};

const LOST: &str = "the database file is gone";

/// Requests in one commit at most (bounds the wait of the first).
pub const MAX_BATCH: usize = 64;

struct State {
    conn: Connection,
    /// The file this connection opened, checked before every COMMIT.
    file: Option<super::FileIdentity>,
    /// The batch whose transaction is open, if any.
    open: Option<u64>,
    last_batch: u64,
    committed_through: u64,
    in_batch: usize,
    /// Recent batches whose COMMIT failed, with why.
    failed: VecDeque<(u64, String)>,
}

pub struct Writer {
    state: Mutex<State>,
    committed: Condvar,
    /// Requests waiting for the connection right now.
    queued: AtomicUsize,
}

impl Writer {
    pub fn open(path: &Path) -> Result<Writer, OpenError> {
        let conn = super::connect(path)?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{}", super::WRITER_CACHE_KIB))
            .map_err(|e| OpenError(format!("cannot size the writer's cache: {e}")))?;
        let writer = Writer::new(conn);
        writer.lock().file = Some(super::FileIdentity::of(path)?);
        Ok(writer)
    }

    pub fn new(conn: Connection) -> Writer {
        Writer {
            state: Mutex::new(State {
                conn,
                file: None,
                open: None,
                last_batch: 0,
                committed_through: 0,
                in_batch: 0,
                failed: VecDeque::new(),
            }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `work` as one atomic, durable unit: committed (and fsynced)
    /// before this returns `Ok`, rolled back if it returns `Err`.
    pub fn write<T>(&self, work: impl FnOnce(&dyn Tx) -> Result<T, Error>) -> Result<T, Error> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut state = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let batch = match state.open {
            Some(batch) => batch,
            None => {
                state
                    .conn
                    .execute_batch("BEGIN IMMEDIATE")
                    .map_err(store::Error::from)?;
                state.last_batch += 1;
                state.open = Some(state.last_batch);
                state.last_batch
            }
        };
        let outcome = match state.conn.execute_batch("SAVEPOINT request") {
            Ok(()) => {
                let outcome = catch_unwind(AssertUnwindSafe(|| work(&state.conn)));
                let keep = matches!(outcome, Ok(Ok(_)));
                let end = if keep {
                    "RELEASE request"
                } else {
                    "ROLLBACK TO request; RELEASE request"
                };
                if let Err(err) = state.conn.execute_batch(end) {
                    // The savepoint could not be closed: the batch is in an
                    // unknown state, so it must not be committed.
                    let _ = state.conn.execute_batch("ROLLBACK");
                    self.finish(&mut state, batch, Err(err.to_string()));
                    return Err(store::Error::Failed(format!("savepoint: {err}")).into());
                }
                outcome
            }
            Err(err) => Ok(Err(store::Error::from(err).into())),
        };
        state.in_batch += 1;
        if self.queued.load(Ordering::SeqCst) == 0 || state.in_batch >= MAX_BATCH {
            // A file deleted or replaced under the server would take every
            // acknowledged write with it: such a batch is rolled back instead.
            let committed = match state.file.as_ref().map(super::FileIdentity::check) {
                Some(Err(why)) => Err(format!("{LOST}: {why}")),
                _ => state.conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
            };
            if committed.is_err() {
                let _ = state.conn.execute_batch("ROLLBACK");
            }
            self.finish(&mut state, batch, committed);
        } else {
            while state.committed_through < batch {
                state = self.committed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
        let failed = state
            .failed
            .iter()
            .find(|(b, _)| *b == batch)
            .map(|(_, why)| why.clone());
        drop(state);
        match (outcome, failed) {
            (Err(panic), _) => resume_unwind(panic),
            (Ok(Err(err)), _) => Err(err),
            (Ok(Ok(_)), Some(why)) if why.starts_with(LOST) => Err(store::Error::Unavailable(why).into()),
            (Ok(Ok(_)), Some(why)) => Err(store::Error::Failed(format!("commit failed: {why}")).into()),
            (Ok(Ok(value)), None) => Ok(value),
        }
    }

    fn finish(&self, state: &mut State, batch: u64, committed: Result<(), String>) {
        state.open = None;
        state.in_batch = 0;
        state.committed_through = batch;
        if let Err(why) = committed {
            state.failed.push_back((batch, why));
            if state.failed.len() > 16 {
                state.failed.pop_front();
            }
        }
        self.committed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store;

    #[test]
    fn concurrent_writes_are_all_committed_and_a_failure_sinks_only_itself() {
        let (dir, conn) = store::open_temp();
        drop(conn);
        let writer = Writer::open(&dir.path().join("test.db")).unwrap();
        std::thread::scope(|scope| {
            for n in 0..8 {
                let writer = &writer;
                scope.spawn(move || {
                    for m in 0..50 {
                        let key = format!("k{n}-{m}");
                        let result = writer.write(|tx| {
                            tx.put_setting(&key, Some("v"), crate::time::UnixMs::from_millis(0))?;
                            if m % 10 == 0 {
                                return Err(Error::InvalidRequest("refused".into()));
                            }
                            Ok(())
                        });
                        assert_eq!(result.is_ok(), m % 10 != 0);
                    }
                });
            }
        });
        let conn = store::connect(&dir.path().join("test.db")).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM settings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 8 * 45, "every acknowledged write is there, no refused one is");
    }
}
