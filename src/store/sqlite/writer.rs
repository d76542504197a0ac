//! Group commit: the server's one writer connection, shared by every request.
//!
//! A request runs its transaction's work inside a savepoint of the batch
//! that is open, on the caller's own thread. Whoever finds nobody queued
//! behind it (or the batch full) commits. The others wait until their batch
//! is durable, so no request is acknowledged before its data is on disk. A
//! request whose work fails rolls back to its savepoint and sinks nothing
//! else; a failed COMMIT fails every request of that batch. With one request
//! at a time this is exactly one transaction per request.
//!
//! The fsync runs after the writer is let go (a pipeline of two stages).
//! The connection commits with `synchronous = NORMAL`: COMMIT appends the
//! batch's frames to the WAL with `write` and returns, and the next batch's
//! statements run at once while [`Writer::write`]'s caller makes the WAL
//! durable with `fdatasync` before anyone of the batch is answered. Why no
//! acknowledged write can be lost:
//!
//! 1. A batch is answered only after an `fdatasync` of the WAL file that
//!    began after its COMMIT returned, so every frame of it, and every frame
//!    before it, is on disk (fdatasync covers all data written to the file
//!    before the call, by any descriptor).
//! 2. Recovery replays the WAL from its start up to the last commit frame
//!    whose checksums hold; the checksums chain, and every earlier frame
//!    was written before ours, so ours is replayed.
//! 3. The WAL is rewritten from its start only after a checkpoint copied
//!    every frame into the database file and synced it (checkpoints sync
//!    under NORMAL as under FULL); a batch the restart overwrites is in the
//!    synced database file already.
//! 4. A failed fdatasync leaves it unknown what reached the disk (and Linux
//!    may drop the unwritten pages), so the writer refuses every write from
//!    then on: the process must restart and recover from the file.
//!
//! Other connections can read a batch between its COMMIT and its sync; what
//! they answer depends on it only through secrets its own answer carries
//! (not yet sent), so a crash in between loses nothing anyone was told,
//! except to the operator's own reads (the CLI, metrics).
//!
//! Checkpoints are off the commit path too: the writer never checkpoints
//! (`wal_autocheckpoint = 0`); [`Writer::checkpoint`] copies the WAL into
//! the database from its own connection while writes go on, and holds the
//! writer only for the last few frames, so that the next batch can restart
//! the WAL from its beginning.
//!
//! One connection also keeps its page cache warm: with a connection per
//! worker, every commit by one invalidated the caches of the others.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::Connection;

use super::OpenError;
use crate::error::Error;
use crate::store::{self, Tx};

const LOST: &str = "the database file is gone";
const SYNC_FAILED: &str = "the disk refused to sync the database's log; writes stop until authmd restarts";

/// Requests in one commit at most (bounds the wait of the first).
pub const MAX_BATCH: usize = 64;

/// WAL frames a checkpoint leaves for the writer's own pause at the most:
/// it copies in passes beside the writes until fewer than this are left.
const CHECKPOINT_REMAINDER: i64 = 256;

/// WAL frames (of 4 KiB pages) past which [`Writer::checkpoint`] restarts
/// the WAL rather than only copying it: 16 MiB (2 MiB in the unit tests).
const CHECKPOINT_RESTART_FRAMES: i64 = if cfg!(test) { 512 } else { 4096 };

/// How long a restart waits for readers to leave the WAL (while it holds
/// the writer): a reader in a long read makes it try again next time.
const CHECKPOINT_RESTART_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

struct State {
    conn: Connection,
    /// The file this connection opened, checked before every COMMIT.
    file: Option<super::FileIdentity>,
    /// The batch whose transaction is open, if any.
    open: Option<u64>,
    last_batch: u64,
    in_batch: usize,
    /// Recent batches whose COMMIT failed, with why.
    failed: VecDeque<(u64, String)>,
}

pub struct Writer {
    state: Mutex<State>,
    committed: Condvar,
    /// Requests waiting for the connection right now.
    queued: AtomicUsize,
    /// The last batch whose COMMIT returned (what an fdatasync begun now
    /// covers); written under `state`'s lock, so its waiters see it there.
    committed_through: AtomicU64,
    sync: Mutex<Durability>,
    synced: Condvar,
}

/// The second stage: making committed batches durable.
struct Durability {
    /// The WAL file (`None` for a database without one on disk).
    wal: Option<PathBuf>,
    file: Option<std::sync::Arc<std::fs::File>>,
    durable_through: u64,
    syncing: bool,
    /// Why a sync failed: from then on nothing is written.
    failed: Option<String>,
}

impl Writer {
    pub fn open(path: &Path) -> Result<Writer, OpenError> {
        let conn = super::connect(path)?;
        // Each request's savepoint keeps the pages it changes in a
        // sub-journal, in memory: on disk it cost a write per page per
        // request (it is only ever read to roll one request back).
        conn.execute_batch(&format!(
            "PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY",
            super::WRITER_CACHE_KIB
        ))
        .map_err(|e| OpenError(format!("cannot prepare the writer's connection: {e}")))?;
        let writer = Writer::new(conn);
        writer.lock().file = Some(super::FileIdentity::of(path)?);
        Ok(writer)
    }

    pub fn new(conn: Connection) -> Writer {
        // A database on disk has a WAL beside it, which this writer syncs
        // itself; anything else keeps SQLite's own sync at each COMMIT.
        let wal = conn
            .path()
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(format!("{p}-wal")))
            .filter(|_| {
                conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL")
                    .is_ok()
            });
        if wal.is_none() {
            // Whatever else failed, every COMMIT stays synced by SQLite.
            let _ = conn.execute_batch("PRAGMA synchronous = FULL");
        }
        Writer {
            committed_through: AtomicU64::new(0),
            sync: Mutex::new(Durability {
                wal,
                file: None,
                durable_through: 0,
                syncing: false,
                failed: None,
            }),
            synced: Condvar::new(),
            state: Mutex::new(State {
                conn,
                file: None,
                open: None,
                last_batch: 0,
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
        if let Some(why) = self.failure() {
            return Err(store::Error::Unavailable(why).into());
        }
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
            self.commit(&mut state, batch);
        } else {
            while self.committed_through.load(Ordering::SeqCst) < batch {
                state = self.committed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
        let failed = state
            .failed
            .iter()
            .find(|(b, _)| *b == batch)
            .map(|(_, why)| why.clone());
        drop(state);
        let failed = match failed {
            None => self.durable(batch).err(),
            failed => failed,
        };
        match (outcome, failed) {
            (Err(panic), _) => resume_unwind(panic),
            (Ok(Err(err)), _) => Err(err),
            (Ok(Ok(_)), Some(why)) if why.starts_with(LOST) || why.starts_with(SYNC_FAILED) => {
                Err(store::Error::Unavailable(why).into())
            }
            (Ok(Ok(_)), Some(why)) => Err(store::Error::Failed(format!("commit failed: {why}")).into()),
            (Ok(Ok(value)), None) => Ok(value),
        }
    }

    /// Commits the open `batch` (its requests then wait for its sync).
    fn commit(&self, state: &mut State, batch: u64) {
        // A file deleted or replaced under the server would take every
        // acknowledged write with it: such a batch is rolled back instead.
        let committed = match state.file.as_ref().map(super::FileIdentity::check) {
            Some(Err(why)) => Err(format!("{LOST}: {why}")),
            _ => state.conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
        };
        if committed.is_err() {
            let _ = state.conn.execute_batch("ROLLBACK");
        }
        self.finish(state, batch, committed);
    }

    /// Returns once `batch` (committed) is durable: after an fdatasync of
    /// the WAL begun after its COMMIT, made by this caller or another
    /// (one sync serves every batch committed before it began).
    fn durable(&self, batch: u64) -> Result<(), String> {
        let mut sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(why) = &sync.failed {
                return Err(why.clone());
            }
            if sync.durable_through >= batch || sync.wal.is_none() {
                return Ok(());
            }
            if sync.syncing {
                sync = self.synced.wait(sync).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            sync.syncing = true;
            let target = self.committed_through.load(Ordering::SeqCst);
            let file = match wal_file(&mut sync) {
                Ok(file) => file,
                Err(why) => {
                    sync.syncing = false;
                    sync.failed = Some(why.clone());
                    self.synced.notify_all();
                    return Err(why);
                }
            };
            drop(sync);
            let synced = file.sync_data();
            sync = self.sync.lock().unwrap_or_else(|e| e.into_inner());
            sync.syncing = false;
            match synced {
                Ok(()) => sync.durable_through = sync.durable_through.max(target),
                Err(e) => sync.failed = Some(format!("{SYNC_FAILED}: {e}")),
            }
            self.synced.notify_all();
        }
    }

    /// Why writes are refused for good, if a sync failed: the server
    /// should stop, so that it restarts and recovers from the file.
    pub fn failure(&self) -> Option<String> {
        self.sync.lock().unwrap_or_else(|e| e.into_inner()).failed.clone()
    }

    /// Copies the WAL into the database file from `conn` (a connection of
    /// its own) in passes beside the writes; once the WAL has grown past
    /// [`CHECKPOINT_RESTART_FRAMES`], holds the writer (committing a batch
    /// left open) for the last frames and until readers have left the WAL,
    /// so that the next batch writes the WAL again from its beginning.
    /// Returns the frames the WAL held.
    pub fn checkpoint(&self, conn: &Connection) -> Result<i64, store::Error> {
        let pass = |mode: &str| -> Result<(i64, i64), store::Error> {
            let query = format!("PRAGMA wal_checkpoint({mode})");
            Ok(conn.query_row(&query, [], |r| Ok((r.get(1)?, r.get(2)?)))?)
        };
        let (mut frames, mut copied) = pass("PASSIVE")?;
        for _ in 0..3 {
            if frames - copied < CHECKPOINT_REMAINDER {
                break;
            }
            (frames, copied) = pass("PASSIVE")?;
        }
        if frames >= CHECKPOINT_RESTART_FRAMES {
            let mut state = self.lock();
            if let Some(batch) = state.open {
                self.commit(&mut state, batch);
            }
            conn.busy_timeout(CHECKPOINT_RESTART_WAIT)?;
            let restarted = pass("RESTART");
            conn.busy_timeout(super::BUSY_TIMEOUT)?;
            restarted?;
        }
        Ok(frames)
    }

    fn finish(&self, state: &mut State, batch: u64, committed: Result<(), String>) {
        state.open = None;
        state.in_batch = 0;
        self.committed_through.store(batch, Ordering::SeqCst);
        if let Err(why) = committed {
            state.failed.push_back((batch, why));
            if state.failed.len() > 16 {
                state.failed.pop_front();
            }
        }
        self.committed.notify_all();
    }
}

/// The WAL file, opened at the first sync. It stays the same file while
/// the writer's connection is open: SQLite deletes a WAL only when its last
/// connection closes.
fn wal_file(sync: &mut Durability) -> Result<std::sync::Arc<std::fs::File>, String> {
    if let Some(file) = &sync.file {
        return Ok(file.clone());
    }
    let path = sync.wal.clone().expect("a WAL to sync");
    let file = std::fs::File::open(&path).map_err(|e| format!("{SYNC_FAILED}: {}: {e}", path.display()))?;
    Ok(sync.file.insert(std::sync::Arc::new(file)).clone())
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

    /// Frames in the WAL now, as a checkpoint from another connection sees it.
    fn wal_frames(path: &Path) -> i64 {
        let conn = store::connect(path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    /// Writes key `n` with a value never written before (SQLite leaves a
    /// page untouched by a write of the bytes it holds).
    fn put(writer: &Writer, n: usize) {
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let value = format!("{}{}", WRITES.fetch_add(1, Ordering::SeqCst), "x".repeat(3000));
        let key = format!("k{n}");
        let result = writer.write(|tx| Ok(tx.put_setting(&key, Some(&value), crate::time::UnixMs::from_millis(0))?));
        result.unwrap();
    }

    /// The writer never checkpoints; `checkpoint` does, beside the writes,
    /// and the WAL stays short however long they go on.
    #[test]
    fn checkpoints_keep_the_wal_short_under_writes_and_wait_for_no_reader() {
        let (dir, conn) = store::open_temp();
        drop(conn);
        let path = dir.path().join("test.db");
        let writer = Writer::open(&path).unwrap();
        for n in 0..100 {
            put(&writer, n);
        }
        assert!(wal_frames(&path) >= 100, "no checkpoint on commit");

        // Writes go on while checkpoints run: the WAL is started again each
        // time it grows past the mark, though no pass beside them ends it.
        let done = std::sync::atomic::AtomicBool::new(false);
        let longest = std::thread::scope(|scope| {
            scope.spawn(|| {
                for n in 0..(6 * CHECKPOINT_RESTART_FRAMES as usize) {
                    put(&writer, n);
                }
                done.store(true, Ordering::SeqCst);
            });
            let checkpointer = store::connect(&path).unwrap();
            let mut longest = 0;
            while !done.load(Ordering::SeqCst) {
                longest = longest.max(writer.checkpoint(&checkpointer).unwrap());
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            longest
        });
        assert!(
            longest < 3 * CHECKPOINT_RESTART_FRAMES,
            "the WAL reached {longest} frames"
        );

        // A reader in a long read holds the WAL: a checkpoint goes on
        // without it, and ends the WAL once the reader has left.
        let reader = store::connect(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM settings", [], |r| r.get(0))
            .unwrap();
        for n in 0..(2 * CHECKPOINT_RESTART_FRAMES as usize) {
            put(&writer, n);
        }
        let checkpointer = store::connect(&path).unwrap();
        writer.checkpoint(&checkpointer).unwrap();
        put(&writer, 0);
        reader.execute_batch("COMMIT").unwrap();
        writer.checkpoint(&checkpointer).unwrap();
        put(&writer, 0);
        let frames = wal_frames(&path);
        assert!(frames < 10, "the WAL starts again once copied: {frames} frames");
        let count: i64 = reader
            .query_row("SELECT count(*) FROM settings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 6 * CHECKPOINT_RESTART_FRAMES, "every write is there");
    }
}
