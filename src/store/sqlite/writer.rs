//! Group commit: the server's one writer connection, shared by every request.
//!
//! A request runs its transaction's work in the batch that is open, on the
//! caller's own thread. Whoever finds nobody queued behind it (or the batch
//! full) commits. The others wait until their batch is durable, so no
//! request is acknowledged before its data is on disk. With one request at
//! a time this is exactly one transaction per request.
//!
//! A request whose work fails sinks nothing else. Most fail before they
//! change a row, and then there is nothing to undo; one that changed rows
//! (SQLite's change counter moved) rolls its whole batch back, and the
//! batch's other requests run their work again in a new batch, so `work`
//! is `FnMut` and must act only through its transaction. The requests after
//! such a rollback each run in a savepoint of their own (rolled back to
//! alone), so no caller can make others run again more than once in
//! [`GUARDED_AFTER_ROLLBACK`] requests. Savepoints are not the rule because
//! SQLite copies each page a savepoint changes first: a fifth of an
//! anonymous registration's instructions. A failed COMMIT fails every
//! request of its batch.
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

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use rusqlite::Connection;

use super::OpenError;
use crate::error::Error;
use crate::store::{self, Tx};

const LOST: &str = "the database file is gone";
const SYNC_FAILED: &str = "the disk refused to sync the database's log; writes stop until authmd restarts";

/// Requests in one commit at most (bounds the wait of the first).
pub const MAX_BATCH: usize = 64;

/// Requests run in savepoints of their own after a batch was rolled back.
const GUARDED_AFTER_ROLLBACK: usize = 1024;

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
    open: Option<Arc<Batch>>,
    last_batch: u64,
    in_batch: usize,
    /// Requests left to run in savepoints of their own (after a rollback of
    /// a whole batch, so that one caller cannot make the others run again
    /// and again).
    guarded: usize,
}

/// One transaction shared by the requests that joined it.
struct Batch {
    number: u64,
    /// Set once, under the state's lock, when the transaction ends.
    ended: OnceLock<Ended>,
}

#[derive(Clone)]
enum Ended {
    Committed,
    /// The COMMIT (or closing a savepoint) failed: every request of it fails.
    Failed(String),
    /// Rolled back to undo a request that changed rows and then failed:
    /// the batch's other requests run again in a new one.
    RolledBack,
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
                guarded: 0,
            }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `work` as one atomic, durable unit: committed (and fsynced)
    /// before this returns `Ok`, rolled back if it returns `Err`. `work`
    /// may run more than once (its batch rolled back for another request's
    /// failure), each time in a fresh transaction; only the last run's
    /// changes and value count.
    pub fn write<T>(&self, mut work: impl FnMut(&dyn Tx) -> Result<T, Error>) -> Result<T, Error> {
        loop {
            if let Some(done) = self.write_once(&mut work) {
                return done;
            }
        }
    }

    /// One run of `work` in the open batch; `None` when the batch was
    /// rolled back and `work` must run again.
    fn write_once<T>(&self, work: &mut impl FnMut(&dyn Tx) -> Result<T, Error>) -> Option<Result<T, Error>> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut state = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if let Some(why) = self.failure() {
            return Some(Err(store::Error::Unavailable(why).into()));
        }
        let batch = match &state.open {
            Some(batch) => batch.clone(),
            None => {
                if let Err(err) = state.conn.execute_batch("BEGIN IMMEDIATE") {
                    return Some(Err(store::Error::from(err).into()));
                }
                state.last_batch += 1;
                let batch = Arc::new(Batch {
                    number: state.last_batch,
                    ended: OnceLock::new(),
                });
                state.open = Some(batch.clone());
                batch
            }
        };
        let outcome = if state.guarded > 0 {
            state.guarded -= 1;
            match self.in_savepoint(&mut state, &batch, work) {
                Ok(outcome) => outcome,
                Err(failed) => return Some(Err(failed)),
            }
        } else {
            // Most requests either succeed or fail before changing a row,
            // so none pays for a savepoint (SQLite copies every page a
            // savepoint touches first: a fifth of a registration's work).
            let before = state.conn.total_changes();
            let outcome = catch_unwind(AssertUnwindSafe(|| work(&state.conn)));
            if !matches!(outcome, Ok(Ok(_))) && state.conn.total_changes() != before {
                // Only rolling the whole batch back undoes this request:
                // the others run again, the next few in savepoints.
                let _ = state.conn.execute_batch("ROLLBACK");
                self.finish(&mut state, &batch, Ended::RolledBack);
                state.guarded = GUARDED_AFTER_ROLLBACK;
                drop(state);
                return Some(match outcome {
                    Err(panic) => resume_unwind(panic),
                    Ok(result) => result,
                });
            }
            outcome
        };
        state.in_batch += 1;
        if self.queued.load(Ordering::SeqCst) == 0 || state.in_batch >= MAX_BATCH {
            self.commit(&mut state, &batch);
        }
        let ended = loop {
            match batch.ended.get() {
                Some(ended) => break ended.clone(),
                None => state = self.committed.wait(state).unwrap_or_else(|e| e.into_inner()),
            }
        };
        drop(state);
        let failed = match ended {
            Ended::RolledBack => return None,
            Ended::Committed => self.durable(batch.number).err(),
            Ended::Failed(why) => Some(why),
        };
        Some(match (outcome, failed) {
            (Err(panic), _) => resume_unwind(panic),
            (Ok(Err(err)), _) => Err(err),
            (Ok(Ok(_)), Some(why)) if why.starts_with(LOST) || why.starts_with(SYNC_FAILED) => {
                Err(store::Error::Unavailable(why).into())
            }
            (Ok(Ok(_)), Some(why)) => Err(store::Error::Failed(format!("commit failed: {why}")).into()),
            (Ok(Ok(value)), None) => Ok(value),
        })
    }

    /// Runs `work` inside a savepoint of its own, rolled back to if it
    /// fails; `Err` when the savepoint cannot be closed (the batch is then
    /// rolled back and fails).
    fn in_savepoint<T>(
        &self,
        state: &mut MutexGuard<'_, State>,
        batch: &Arc<Batch>,
        work: &mut impl FnMut(&dyn Tx) -> Result<T, Error>,
    ) -> Result<std::thread::Result<Result<T, Error>>, Error> {
        if let Err(err) = state.conn.execute_batch("SAVEPOINT request") {
            return Ok(Ok(Err(store::Error::from(err).into())));
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| work(&state.conn)));
        let end = if matches!(outcome, Ok(Ok(_))) {
            "RELEASE request"
        } else {
            "ROLLBACK TO request; RELEASE request"
        };
        if let Err(err) = state.conn.execute_batch(end) {
            // The savepoint could not be closed: the batch is in an
            // unknown state, so it must not be committed.
            let _ = state.conn.execute_batch("ROLLBACK");
            self.finish(state, batch, Ended::Failed(err.to_string()));
            return Err(store::Error::Failed(format!("savepoint: {err}")).into());
        }
        Ok(outcome)
    }

    /// Commits the open `batch` (its requests then wait for its sync).
    fn commit(&self, state: &mut State, batch: &Batch) {
        // A file deleted or replaced under the server would take every
        // acknowledged write with it: such a batch is rolled back instead.
        let committed = match state.file.as_ref().map(super::FileIdentity::check) {
            Some(Err(why)) => Err(format!("{LOST}: {why}")),
            _ => state.conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
        };
        let ended = match committed {
            Ok(()) => Ended::Committed,
            Err(why) => {
                let _ = state.conn.execute_batch("ROLLBACK");
                Ended::Failed(why)
            }
        };
        self.finish(state, batch, ended);
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
            if let Some(batch) = state.open.clone() {
                self.commit(&mut state, &batch);
            }
            conn.busy_timeout(CHECKPOINT_RESTART_WAIT)?;
            let restarted = pass("RESTART");
            conn.busy_timeout(super::BUSY_TIMEOUT)?;
            restarted?;
        }
        Ok(frames)
    }

    fn finish(&self, state: &mut State, batch: &Batch, ended: Ended) {
        state.open = None;
        state.in_batch = 0;
        if matches!(ended, Ended::Committed) {
            self.committed_through.store(batch.number, Ordering::SeqCst);
        }
        let _ = batch.ended.set(ended);
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

    /// Seven good requests and one that fails (after writing its row, or
    /// before writing anything) queued for one batch while the writer is
    /// held, in savepoints of their own or not; returns how many times the
    /// good ones' work ran in all.
    fn one_batch_with_a_failure(writer: &Writer, round: usize, writes_before_failing: bool, guarded: bool) -> usize {
        let runs = AtomicUsize::new(0);
        let mut held = writer.lock();
        held.guarded = if guarded { GUARDED_AFTER_ROLLBACK } else { 0 };
        std::thread::scope(|scope| {
            let queue_up = |expected: usize| {
                while writer.queued.load(Ordering::SeqCst) < expected {
                    std::thread::yield_now();
                }
            };
            for n in 0..7 {
                let runs = &runs;
                scope.spawn(move || {
                    let key = format!("good-{round}-{n}");
                    writer
                        .write(|tx| {
                            runs.fetch_add(1, Ordering::SeqCst);
                            Ok(tx.put_setting(&key, Some("v"), crate::time::UnixMs::from_millis(0))?)
                        })
                        .unwrap();
                });
            }
            queue_up(7);
            scope.spawn(move || {
                let key = format!("bad-{round}");
                let refused = writer.write(|tx| {
                    if writes_before_failing {
                        tx.put_setting(&key, Some("v"), crate::time::UnixMs::from_millis(0))?;
                    }
                    Err::<(), _>(Error::InvalidRequest("refused".into()))
                });
                assert!(refused.is_err());
            });
            queue_up(8);
            drop(held);
        });
        runs.into_inner()
    }

    fn settings_named(path: &Path, like: &str) -> i64 {
        let conn = store::connect(path).unwrap();
        conn.query_row("SELECT count(*) FROM settings WHERE key LIKE ?1", [like], |r| r.get(0))
            .unwrap()
    }

    /// No savepoint per request: a request that changed rows and failed is
    /// undone by rolling its whole batch back, and the batch's others run
    /// again (in a new batch) and are committed; a request that failed
    /// before changing anything rolls nothing back.
    #[test]
    fn a_request_failing_after_its_writes_is_undone_and_only_its_batch_runs_again() {
        let (dir, conn) = store::open_temp();
        drop(conn);
        let path = dir.path().join("test.db");
        let writer = Writer::open(&path).unwrap();
        // Which of the eight the mutex lets in first is the scheduler's
        // choice: the failing one is behind a good one in all but 1 of 8.
        let mut ran_again = 0;
        for round in 0..20 {
            let runs = one_batch_with_a_failure(&writer, round, true, false);
            assert!(runs >= 7, "round {round}: {runs} runs");
            ran_again += usize::from(runs > 7);
        }
        assert!(
            ran_again > 0,
            "some good request ran again after its batch was rolled back"
        );
        assert_eq!(
            settings_named(&path, "good-%"),
            20 * 7,
            "every good request is committed"
        );
        assert_eq!(settings_named(&path, "bad-%"), 0, "no failed request's row is");

        for round in 20..40 {
            assert_eq!(
                one_batch_with_a_failure(&writer, round, false, false),
                7,
                "nothing ran again"
            );
        }
        assert_eq!(settings_named(&path, "good-%"), 40 * 7);

        // After a rollback, requests run in savepoints for a while: a
        // failure then rolls back only itself, and nobody runs again.
        one_batch_with_a_failure(&writer, 40, true, false);
        assert!(writer.lock().guarded > 0, "a rollback guards the requests after it");
        for round in 41..61 {
            assert_eq!(
                one_batch_with_a_failure(&writer, round, true, true),
                7,
                "nothing ran again"
            );
        }
        assert_eq!(settings_named(&path, "good-%"), 61 * 7);
        assert_eq!(settings_named(&path, "bad-%"), 0);
    }
}
