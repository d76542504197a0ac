//! A bounded pool of PostgreSQL connections: at most
//! [`Limits::connections`] open at once (in use, idle or still connecting),
//! a caller waiting at most [`Limits::wait`] for one, and every connection
//! attempt bounded by [`Limits::connect_timeout`] as a whole.
//!
//! The driver's own connect timeout covers only the TCP connect; a server
//! that accepts and then says nothing would hold the TLS handshake or the
//! startup forever. So each attempt runs on a thread of its own, which the
//! caller stops waiting for at the bound. An abandoned attempt keeps its
//! place in the pool until it ends, so the bound counts it too.
//!
//! Once made, every round trip on a connection through [`Pool::write`],
//! [`Pool::read`] and `PgTx` is bounded by [`Limits::round_trip_timeout`]
//! (`watchdog.rs`): a connection the watchdog cut is dropped, never given
//! out again.

use std::ops::{Deref, DerefMut};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, Config, IsolationLevel, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::statements::Statements;
use super::watchdog::{self, Watch};
use super::{Failure, PgTx};
use crate::store::{Error, Tx};

/// How many times [`Pool::write`] runs a transaction that PostgreSQL
/// aborted as a serialization failure or a deadlock, in all.
pub const SERIALIZATION_RETRIES: u32 = 5;

/// The pool's bounds, each by name.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once, counting those being made.
    pub connections: usize,
    /// How long [`Pool::get`] waits for a connection before it fails.
    pub wait: Duration,
    /// How long one connection attempt (TCP, TLS, startup, authentication)
    /// may take.
    pub connect_timeout: Duration,
    /// The server cancels any statement running longer (`statement_timeout`).
    pub statement_timeout: Duration,
    /// How long one round trip on a pooled connection (a statement, BEGIN,
    /// COMMIT, ROLLBACK) may go unanswered before the watchdog cuts the
    /// connection (`watchdog.rs`): for a server that cannot answer at all,
    /// not even with its own timeout's error. Longer than
    /// `statement_timeout`, so a slow statement is cancelled by the server
    /// first and its connection kept.
    pub round_trip_timeout: Duration,
    /// How long sent data may stay unacknowledged, and an idle connection's
    /// peer silent to keepalives, before the connection counts as dead.
    pub tcp_user_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections: 16,
            wait: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            round_trip_timeout: Duration::from_secs(10 + 2),
            tcp_user_timeout: Duration::from_secs(20),
        }
    }
}

/// The bounded pool; clones share it.
#[derive(Clone)]
pub struct Pool(Arc<Shared>);

struct Shared {
    config: Config,
    /// `None`: no TLS (the URL did not ask for it).
    tls: Option<MakeRustlsConnect>,
    limits: Limits,
    /// `host:port/database`, for messages (never the password).
    target: String,
    state: Mutex<State>,
    freed: Condvar,
    steps_applied: OnceLock<Vec<u32>>,
}

struct State {
    /// Each with its watch (the watch holds the socket open, so the two
    /// go together) and the statements prepared on it.
    idle: Vec<(Client, Watch, Statements)>,
    /// In use, idle and being made: never above `limits.connections`.
    open: usize,
}

/// A connection taken from the pool; dropping it gives it back.
pub struct Conn {
    pool: Pool,
    client: Option<Client>,
    watch: Watch,
    statements: Statements,
}

impl Pool {
    pub(super) fn new(config: Config, tls: Option<MakeRustlsConnect>, limits: Limits, target: String) -> Pool {
        Pool(Arc::new(Shared {
            config,
            tls,
            limits,
            target,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            steps_applied: OnceLock::new(),
        }))
    }

    pub(super) fn set_steps_applied(&self, steps: Vec<u32>) {
        let _ = self.0.steps_applied.set(steps);
    }

    /// The schema steps this pool's opening applied (none when the
    /// database was already at the latest).
    pub fn steps_applied(&self) -> &[u32] {
        self.0.steps_applied.get().map_or(&[], Vec::as_slice)
    }

    /// Another pool on the same database (the same URL, TLS and timeouts)
    /// with bounds of its own: a server's reads and writes each have one,
    /// so readers holding connections never starve the writes.
    pub fn sibling(&self, connections: usize) -> Pool {
        let limits = Limits {
            connections,
            ..self.0.limits.clone()
        };
        let pool = Pool::new(self.0.config.clone(), self.0.tls.clone(), limits, self.0.target.clone());
        pool.set_steps_applied(self.steps_applied().to_vec());
        pool
    }

    /// `host:port/database`: never the password.
    pub fn target(&self) -> &str {
        &self.0.target
    }

    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// Connections open now (in use, idle, or being made).
    pub fn open_connections(&self) -> usize {
        self.0.lock().open
    }

    /// An idle connection, or a new one while fewer than the bound are
    /// open; otherwise waits up to [`Limits::wait`] for one to come back.
    pub fn get(&self) -> Result<Conn, Error> {
        let limits = &self.0.limits;
        let deadline = Instant::now() + limits.wait;
        let mut state = self.0.lock();
        loop {
            while let Some((client, watch, statements)) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(self.conn(client, watch, statements));
            }
            if state.open < limits.connections {
                state.open += 1;
                drop(state);
                return self
                    .connect_bounded()
                    .map(|(client, watch)| self.conn(client, watch, Statements::default()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Unavailable(format!(
                    "{}: all {} connections stayed in use for {:?}",
                    self.0.target, limits.connections, limits.wait
                )));
            }
            state = self
                .0
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Runs `work` in one transaction on a pooled connection: commits when
    /// it answers `Ok`, rolls back when it answers `Err`. A transaction
    /// PostgreSQL aborted as a serialization failure or deadlock (SQLSTATE
    /// 40001, 40P01) is rolled back and `work` run again, in all at most
    /// [`SERIALIZATION_RETRIES`] times, so `work` must do nothing outside
    /// the transaction it cannot do twice. A statement that failed aborts
    /// the transaction: it is never committed, even if `work` went on and
    /// answered `Ok` (SQLite would have kept the other statements).
    pub fn write<T>(
        &self,
        work: impl FnMut(&dyn Tx) -> Result<T, crate::error::Error>,
    ) -> Result<T, crate::error::Error> {
        self.write_under(None, work)
    }

    /// [`Pool::write`], the transaction first taking the advisory lock
    /// `key` (transaction-scoped, waiting for it): two nodes' transactions
    /// under the same key never overlap, and under READ COMMITTED each
    /// statement after the lock sees what the previous holder committed.
    pub fn write_locked<T>(
        &self,
        key: i64,
        work: impl FnMut(&dyn Tx) -> Result<T, crate::error::Error>,
    ) -> Result<T, crate::error::Error> {
        self.write_under(Some(key), work)
    }

    fn write_under<T>(
        &self,
        lock: Option<i64>,
        mut work: impl FnMut(&dyn Tx) -> Result<T, crate::error::Error>,
    ) -> Result<T, crate::error::Error> {
        let mut conn = self.get()?;
        match self.write_on(&mut conn, lock, &mut work)? {
            Some(value) => Ok(value),
            // An idle connection the server cut (a restart, a failover, an
            // operator): nothing ran on it, so once more on a new one.
            None => {
                drop(conn);
                let mut conn = self.get()?;
                self.write_on(&mut conn, lock, &mut work)?.ok_or_else(|| {
                    Error::Unavailable(format!("{}: the connection was cut twice", self.0.target)).into()
                })
            }
        }
    }

    /// [`Pool::write_under`] on `conn`; `None` when `conn` turned out cut
    /// before the transaction began.
    fn write_on<T>(
        &self,
        conn: &mut Conn,
        lock: Option<i64>,
        work: &mut impl FnMut(&dyn Tx) -> Result<T, crate::error::Error>,
    ) -> Result<Option<T>, crate::error::Error> {
        let watch = conn.watch.clone();
        let mut run = 1;
        loop {
            let (client, statements) = conn.parts();
            let begun = {
                let _trip = watch.begin();
                client.transaction()
            };
            let tx = match begun {
                Ok(tx) => tx,
                // Unless the watchdog cut it: that server is not answering,
                // and a new connection would only add its connect timeout.
                Err(e) if run == 1 && !watch.was_cut() && matches!(super::error(&e), Error::Unavailable(_)) => {
                    return Ok(None);
                }
                Err(e) => return Err(super::error(&e).into()),
            };
            let tx = PgTx::new(tx, statements, true, watch.clone());
            let (tx, answer) = work_on(tx, &watch, |tx| match lock {
                Some(key) => tx
                    .execute("SELECT pg_advisory_xact_lock($1)", &[&key])
                    .map_err(crate::error::Error::from)
                    .and_then(|_| work(tx)),
                None => work(tx),
            });
            let again = run < SERIALIZATION_RETRIES;
            match (answer, tx.failure()) {
                (Ok(value), None) => match watch.round_trip(|| tx.into_inner().commit()) {
                    Ok(()) => return Ok(Some(value)),
                    Err(e) if super::retryable(&e) && again => {}
                    Err(e) => return Err(super::error(&e).into()),
                },
                (answer, Some(failure)) => {
                    let _ = watch.round_trip(|| tx.into_inner().rollback());
                    if failure == Failure::Retryable && again {
                        // Let the transaction that won finish first.
                        std::thread::sleep(Duration::from_millis(1 << run));
                        run += 1;
                        continue;
                    }
                    return match answer {
                        Err(e) => Err(e),
                        Ok(_) => Err(Error::Failed(
                            "a statement failed inside the transaction, so it was rolled back".into(),
                        )
                        .into()),
                    };
                }
                (Err(e), None) => {
                    let _ = watch.round_trip(|| tx.into_inner().rollback());
                    return Err(e);
                }
            }
            run += 1;
        }
    }

    /// Runs `work` in one read-only transaction on a pooled connection, on
    /// one snapshot (REPEATABLE READ: a read-only transaction there never
    /// fails to serialize). Writes through it are refused by the server.
    pub fn read<T>(
        &self,
        work: impl FnOnce(&dyn Tx) -> Result<T, crate::error::Error>,
    ) -> Result<T, crate::error::Error> {
        let mut conn = self.get()?;
        let watch = conn.watch.clone();
        let (client, statements) = conn.parts();
        let begun = {
            let _trip = watch.begin();
            client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
        };
        let tx = PgTx::new(begun.map_err(|e| super::error(&e))?, statements, false, watch.clone());
        let (tx, answer) = work_on(tx, &watch, |tx| work(tx));
        let failed = tx.failure().is_some();
        let _ = watch.round_trip(|| tx.into_inner().rollback());
        match answer {
            Ok(_) if failed => Err(Error::Failed("a statement failed inside the read".into()).into()),
            answer => answer,
        }
    }

    fn conn(&self, client: Client, watch: Watch, statements: Statements) -> Conn {
        Conn {
            pool: self.clone(),
            client: Some(client),
            watch,
            statements,
        }
    }

    /// Makes a connection in the place the caller reserved (`open` counts
    /// it), waiting at most [`Limits::connect_timeout`]. The place is given
    /// up when the attempt fails, or, if the caller stopped waiting, when
    /// the attempt ends.
    fn connect_bounded(&self) -> Result<(Client, Watch), Error> {
        // Zero capacity: a result is either taken by the waiting caller or,
        // once the caller has gone, refused back to the attempt.
        let (send, receive) = mpsc::sync_channel(0);
        let shared = self.0.clone();
        let attempt = std::thread::Builder::new()
            .name("postgres-connect".into())
            .spawn(move || {
                if let Err(mpsc::SendError(_late)) = send.send(shared.connect()) {
                    shared.release();
                }
            });
        if let Err(e) = attempt {
            self.0.release();
            return Err(Error::Unavailable(format!("cannot start a connection attempt: {e}")));
        }
        let limit = self.0.limits.connect_timeout;
        let failed = |why: String| Error::Unavailable(format!("{}: {why}", self.0.target));
        match receive.recv_timeout(limit) {
            Ok(Ok(made)) => Ok(made),
            Ok(Err(why)) => {
                self.0.release();
                Err(failed(why))
            }
            // The attempt gives its place up when it ends.
            Err(mpsc::RecvTimeoutError::Timeout) => Err(failed(format!("no connection within {limit:?}"))),
            // The attempt panicked before it could answer.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.0.release();
                Err(failed("the connection attempt failed".into()))
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One connection fewer is open.
    fn release(&self) {
        self.lock().open -= 1;
        self.freed.notify_one();
    }

    /// A new connection, and its watch.
    fn connect(&self) -> Result<(Client, Watch), String> {
        let connected = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        };
        // The server's own words (its message and SQLSTATE: "database ... does
        // not exist", "password authentication failed") or the cause of a
        // failed TLS handshake: the driver's own text is only a summary.
        let mut client = connected.map_err(|e| why_not_connected(&e))?;
        let watch = watchdog::watch(&mut client, self.limits.round_trip_timeout, &self.target)?;
        Ok((client, watch))
    }
}

/// `work(&tx)`, answering `tx` back; should `work` panic, `tx` is rolled
/// back as a bounded round trip before the panic goes on (dropped, the
/// driver's transaction would roll back unbounded).
fn work_on<'c, T>(tx: PgTx<'c>, watch: &Watch, work: impl FnOnce(&PgTx<'c>) -> T) -> (PgTx<'c>, T) {
    match panic::catch_unwind(AssertUnwindSafe(|| work(&tx))) {
        Ok(answer) => (tx, answer),
        Err(panicked) => {
            let _ = watch.round_trip(|| tx.into_inner().rollback());
            panic::resume_unwind(panicked)
        }
    }
}

impl Conn {
    /// `call` on the client, as one round trip bounded by the watchdog.
    pub(super) fn round_trip<T>(&mut self, call: impl FnOnce(&mut Client, &mut Statements) -> T) -> T {
        let client = self.client.as_mut().expect("present until dropped");
        let statements = &mut self.statements;
        self.watch.round_trip(|| call(client, statements))
    }

    /// Whether the watchdog bounds this connection's round trips (not over
    /// a unix socket, nor through address translation: `watchdog.rs`).
    pub fn is_watched(&self) -> bool {
        self.watch.is_watched()
    }
}

impl Conn {
    /// The client and the statements prepared on it, apart: a transaction
    /// borrows the one, its statements the other.
    pub(super) fn parts(&mut self) -> (&mut Client, &mut Statements) {
        (
            self.client.as_mut().expect("present until dropped"),
            &mut self.statements,
        )
    }
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

/// Drops a connection that will not be used again, its socket shut down
/// first when it is watched. The driver's client, dropped, waits for the
/// answers to what it still has to send (a used statement's Close, queued
/// until the next call), and a server that cannot answer would hold that
/// drop for ever. An unwatched one is dropped as it is.
fn discard(client: Client, watch: Watch) {
    watch.shut();
    drop(client);
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let watch = std::mem::take(&mut self.watch);
        let shared = &self.pool.0;
        if client.is_closed() || watch.was_cut() {
            // A broken connection is never handed out again, and neither
            // are the idle ones made before it broke: a restarted or
            // failed-over server has cut them all, and each would fail a
            // request of its own. New ones are made as requests need them.
            discard(client, watch);
            let stale = {
                let mut state = shared.lock();
                let stale = std::mem::take(&mut state.idle);
                state.open -= stale.len();
                stale
            };
            for (client, watch, _statements) in stale {
                discard(client, watch);
            }
            shared.release();
            shared.freed.notify_all();
        } else {
            let statements = std::mem::take(&mut self.statements);
            shared.lock().idle.push((client, watch, statements));
            shared.freed.notify_one();
        }
    }
}

/// Why a connection attempt failed: the server's message and SQLSTATE, or
/// the driver's summary and its causes (never the password, which neither
/// holds).
fn why_not_connected(err: &postgres::Error) -> String {
    if err.as_db_error().is_some() {
        let (Error::Unavailable(why) | Error::Failed(why)) = super::error(err);
        return why;
    }
    let mut why = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(next) = cause {
        why = format!("{why}: {next}");
        cause = next.source();
    }
    why
}
