//! The PostgreSQL store (issue 14, DESIGN.md "Growing past one machine"):
//! [`open`] a `postgres://` URL into a bounded [`Pool`] (`pool.rs`), with
//! TLS when the URL asks for it, applying the schema steps
//! (`schema/postgres.sql`), each round trip on its connections bounded by a
//! watchdog (`watchdog.rs`); and the store interface (`store::Tx`)
//! implemented on one transaction of it, [`PgTx`], one file per table (the
//! same names as the interface's files). [`Pool::write`] runs a closure in
//! one transaction (retrying it on a serialization failure or deadlock),
//! [`Pool::read`] in a read-only snapshot, [`PgTx::reading`] on an
//! autocommit connection; `store::db` puts them behind the server's
//! `Writer`, `Reader` and the commands' `Db`.
//!
//! Race-freedom: SQLite has one writer, so a read-then-write inside one
//! transaction can never interleave with another. Here several nodes write
//! at once under READ COMMITTED, so every rule that relied on the single
//! writer is carried by one statement (a unique constraint with
//! `ON CONFLICT`, an `UPDATE ... WHERE <the check> RETURNING`, a row lock);
//! each table's file says, beside the statement, what makes it safe.
//! Where core's rule is a read that decides an insert across tables (no
//! delegation of `(iss, sub)` yet: match or provision a user, make a
//! registration; no user of this address yet: make one), the read itself
//! takes a transaction-scoped advisory lock on what it looks up
//! ([`PgTx::lock_key`]), so a second writer of the same key waits at the
//! read until the first commits, and then sees its rows.
//!
//! TLS (`tls.rs`): rustls on the ring provider, as the URL's `sslmode` and
//! `sslrootcert` ask: `require` and `verify-full` check the chain and the
//! host name, `verify-ca` the chain to `sslrootcert` only, `prefer` (the
//! default) encrypts when the server offers it and checks nothing,
//! `disable` never encrypts.
//!
//! Every node opens the same database, so the steps must be applied once
//! however many nodes start together: a node takes a transaction-scoped
//! advisory lock ([`SCHEMA_LOCK`]) before it reads which steps are done
//! (the `schema_steps` table), applies the rest and records them in that one
//! transaction. A second node waits for the lock, then finds them done.

mod assertions;
mod attempts;
mod audit;
mod credentials;
mod delegations;
mod documents;
mod local_keys;
mod outbox;
mod pool;
mod providers;
mod rate_windows;
mod registrations;
mod replay;
mod sessions;
mod settings;
mod signing_keys;
mod statements;
mod tls;
mod users;
mod watchdog;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

use postgres::config::Host;
use postgres::error::SqlState;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, Config, Row, Transaction};

pub use self::pool::{Conn, Limits, Pool, SERIALIZATION_RETRIES};
use self::watchdog::Watch;
use crate::store::{self, OpenError, Tx};
use crate::time::{UnixMs, UnixSecs};

const SCHEMA: &str = include_str!("../../../schema/postgres.sql");

/// The advisory lock key the schema steps are applied under (any constant
/// the application uses for nothing else: "authmd" in ASCII).
pub const SCHEMA_LOCK: i64 = i64::from_be_bytes(*b"\0\0authmd");

/// How long applying the schema steps may wait for another node's, and
/// each step's statement may run, before opening fails.
pub const SCHEMA_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Opens the database `url` names into a pool with the default
/// [`Limits`], applying the schema steps it lacks.
pub fn open(url: &str) -> Result<Pool, OpenError> {
    open_with(url, Limits::default())
}

/// [`open`] with the pool's bounds given.
pub fn open_with(url: &str, limits: Limits) -> Result<Pool, OpenError> {
    let (url, wanted) = tls::split(url).map_err(|e| OpenError(format!("the database URL: {e}")))?;
    // The driver's parse errors name the option, never its value.
    let mut config: Config = url
        .parse()
        .map_err(|e| OpenError(format!("the database URL does not parse: {e}")))?;
    let target = target(&config);
    let tls = wanted.tls().map_err(|e| OpenError(format!("{target}: TLS: {e}")))?;
    config.ssl_mode(tls.ssl_mode);
    let probe = config.clone();
    let options = format!(
        "{} -c statement_timeout={}",
        config.get_options().unwrap_or_default(),
        limits.statement_timeout.as_millis()
    );
    config
        .options(options.trim_start())
        .connect_timeout(limits.connect_timeout)
        .tcp_user_timeout(limits.tcp_user_timeout)
        .keepalives(true)
        .keepalives_idle(limits.tcp_user_timeout / 2);
    if config.get_application_name().is_none() {
        config.application_name("authmd");
    }
    let pool = Pool::new(config, tls.connector.clone(), limits, target.clone());
    let mut conn = pool
        .get()
        .map_err(|e| OpenError(tls.explain(e.to_string(), &target, &probe, pool.limits().connect_timeout)))?;
    let applied = migrate(&mut conn).map_err(|e| OpenError(format!("{target}: {e}")))?;
    drop(conn);
    pool.set_steps_applied(applied);
    Ok(pool)
}

/// `host:port/database` of a URL, for messages: never its password.
fn target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(dir)) => dir.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().or(config.get_user()).unwrap_or_default();
    format!("{host}:{port}/{database}")
}

/// The numbered steps of `schema/postgres.sql`: `(n, sql)` in order.
fn steps() -> Vec<(u32, &'static str)> {
    crate::store::schema_steps(SCHEMA, "schema/postgres.sql")
}

/// Applies the schema steps not yet recorded in `schema_steps`, all in one
/// transaction under [`SCHEMA_LOCK`]: all or none, each exactly once however
/// many nodes run this at once. Answers the steps this call applied.
pub fn migrate(client: &mut Client) -> Result<Vec<u32>, String> {
    let steps = steps();
    let latest = steps.last().map_or(0, |s| s.0);
    let mut tx = client.transaction().map_err(|e| e.to_string())?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        SCHEMA_STATEMENT_TIMEOUT.as_millis()
    ))
    .map_err(|e| e.to_string())?;
    // First, before anything reads: under READ COMMITTED each statement
    // after this sees what the lock's previous holder committed.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(|e| format!("waiting for another node's schema steps: {e}"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_steps (
            step        INTEGER PRIMARY KEY,
            applied_ms  BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
        )",
    )
    .map_err(|e| e.to_string())?;
    let done: BTreeSet<u32> = tx
        .query("SELECT step FROM schema_steps", &[])
        .map_err(|e| e.to_string())?
        .iter()
        .map(|row| row.get::<_, i32>(0) as u32)
        .collect();
    if let Some(newer) = done.iter().find(|n| **n > latest) {
        return Err(format!(
            "the database has schema step {newer}, newer than this authmd knows ({latest}); use a newer authmd"
        ));
    }
    let mut applied = Vec::new();
    for (number, sql) in steps.into_iter().filter(|s| !done.contains(&s.0)) {
        tx.batch_execute(sql)
            .map_err(|e| format!("schema step {number}: {e}"))?;
        tx.execute("INSERT INTO schema_steps (step) VALUES ($1)", &[&(number as i32)])
            .map_err(|e| e.to_string())?;
        applied.push(number);
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(applied)
}

/// One statement parameter.
pub(crate) type Param<'p> = &'p (dyn ToSql + Sync);

/// One transaction of the store: what [`Pool::write`] and [`Pool::read`]
/// hand their closure; or a reading connection of its own
/// ([`PgTx::reading`]), each statement in a transaction of its own
/// (autocommit), as a SQLite worker's reading connection. The table traits
/// take `&self`, the driver `&mut`: hence the cell (a transaction is used by
/// one thread at a time).
pub struct PgTx<'c> {
    tx: RefCell<Inner<'c>>,
    /// A write transaction (row locks may be taken) or a read-only one.
    writing: bool,
    /// The first statement that failed: PostgreSQL aborts the transaction
    /// there, so it must not commit whatever the closure answers.
    failed: Cell<Option<Failure>>,
}

/// What a [`PgTx`] runs its statements on. Unboxed: a reading one is made
/// for each request on PostgreSQL, and lives on the worker's stack.
#[allow(clippy::large_enum_variant)]
enum Inner<'c> {
    /// With its connection's watch (`watchdog.rs`) and the statements
    /// prepared on it.
    Transaction(Transaction<'c>, Watch, &'c mut statements::Statements),
    /// A pooled connection outside any transaction: every statement commits
    /// on its own, and the connection goes back to its pool on drop.
    Autocommit(Conn),
    /// [`Inner::Autocommit`] once a statement needs it: a request that
    /// reads nothing (`/healthz`) takes no connection, and one that cannot
    /// get a connection fails at its first statement, in its own envelope.
    Pending(Pool),
}

/// What a [`PgTx::lock_key`] key names: the first of the two keys.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockClass {
    /// A delegation `(iss, sub)`: its registrations, pending link and user.
    Delegation = 1,
    /// A user's (lower-cased) email address.
    UserEmail = 2,
    /// A user's phone number.
    UserPhone = 3,
}

/// How a statement inside a [`PgTx`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A serialization failure or a deadlock: running the whole
    /// transaction again may succeed.
    Retryable,
    Other,
}

impl PgTx<'static> {
    /// A reading connection of its own, taken from `pool` (given back when
    /// this is dropped): each statement commits on its own, no row is
    /// locked (`due_mail` claims nothing), as on SQLite's reading connection.
    pub fn reading(pool: &Pool) -> store::Result<PgTx<'static>> {
        Ok(PgTx {
            tx: RefCell::new(Inner::Autocommit(pool.get()?)),
            writing: false,
            failed: Cell::new(None),
        })
    }

    /// [`PgTx::reading`], taking the connection at the first statement
    /// (each statement fails `Unavailable` while none can be had).
    pub fn reading_lazily(pool: &Pool) -> PgTx<'static> {
        PgTx {
            tx: RefCell::new(Inner::Pending(pool.clone())),
            writing: false,
            failed: Cell::new(None),
        }
    }
}

impl<'c> PgTx<'c> {
    fn new(tx: Transaction<'c>, statements: &'c mut statements::Statements, writing: bool, watch: Watch) -> PgTx<'c> {
        PgTx {
            tx: RefCell::new(Inner::Transaction(tx, watch, statements)),
            writing,
            failed: Cell::new(None),
        }
    }

    pub(crate) fn failure(&self) -> Option<Failure> {
        self.failed.get()
    }

    pub(crate) fn into_inner(self) -> Transaction<'c> {
        match self.tx.into_inner() {
            Inner::Transaction(tx, _, _) => tx,
            Inner::Autocommit(_) | Inner::Pending(_) => {
                unreachable!("only a PgTx made by PgTx::new holds a transaction")
            }
        }
    }

    /// Whether row locks may be taken (`FOR UPDATE` is refused in a
    /// read-only transaction).
    pub(crate) fn writing(&self) -> bool {
        self.writing
    }

    fn noted(&self, err: postgres::Error) -> store::Error {
        if self.failed.get().is_none() {
            self.failed.set(Some(if retryable(&err) {
                Failure::Retryable
            } else {
                Failure::Other
            }));
        }
        error(&err)
    }

    /// The cell's contents, a pending connection taken from its pool.
    fn inner(&self) -> store::Result<std::cell::RefMut<'_, Inner<'c>>> {
        let mut inner = self.tx.borrow_mut();
        if let Inner::Pending(pool) = &*inner {
            *inner = Inner::Autocommit(pool.get()?);
        }
        Ok(inner)
    }

    /// In a write transaction, waits for and takes the transaction-scoped
    /// advisory lock of `key` within `class` (the two-key space, apart from
    /// the one-key locks of [`SCHEMA_LOCK`] and `Writer::write_alone`); in a
    /// read, does nothing. Two keys with the same hash only wait for each
    /// other needlessly.
    pub(crate) fn lock_key(&self, class: LockClass, key: &str) -> store::Result<()> {
        if self.writing {
            self.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&(class as i32), &key],
            )?;
        }
        Ok(())
    }

    pub(crate) fn query(&self, sql: &str, params: &[Param<'_>]) -> store::Result<Vec<Row>> {
        let rows = match &mut *self.inner()? {
            Inner::Transaction(tx, watch, statements) => watch.round_trip(|| statements.query(tx, sql, params)),
            Inner::Autocommit(conn) => conn.round_trip(|client, statements| statements.query(client, sql, params)),
            Inner::Pending(_) => unreachable!("taken by `inner`"),
        };
        rows.map_err(|e| self.noted(e))
    }

    /// The first row, if any (as SQLite's `query_row(..).optional()`).
    pub(crate) fn first(&self, sql: &str, params: &[Param<'_>]) -> store::Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row; none is a failure (as SQLite's `query_row`).
    pub(crate) fn one(&self, sql: &str, params: &[Param<'_>]) -> store::Result<Row> {
        self.first(sql, params)?
            .ok_or_else(|| store::Error::Failed("the statement returned no row".into()))
    }

    pub(crate) fn execute(&self, sql: &str, params: &[Param<'_>]) -> store::Result<usize> {
        let changed = match &mut *self.inner()? {
            Inner::Transaction(tx, watch, statements) => watch.round_trip(|| statements.execute(tx, sql, params)),
            Inner::Autocommit(conn) => conn.round_trip(|client, statements| statements.execute(client, sql, params)),
            Inner::Pending(_) => unreachable!("taken by `inner`"),
        };
        let changed = changed.map_err(|e| self.noted(e))?;
        Ok(changed as usize)
    }
}

/// A serialization failure or deadlock: the transaction may be run again.
pub(crate) fn retryable(err: &postgres::Error) -> bool {
    matches!(err.code(), Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// A driver error as the store's: the server gone, refusing, shutting
/// down, out of connections or past a timeout is `Unavailable`, anything
/// else `Failed`. A server error says its message and SQLSTATE only: its
/// detail may quote a row's values.
pub(crate) fn error(err: &postgres::Error) -> store::Error {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        let why = format!("{} (SQLSTATE {code})", db.message());
        // 08: connection exception; 53: insufficient resources (too many
        // connections); 57P: shutting down, cannot connect now; 57014: the
        // statement timeout; 55P03: a lock timeout.
        let unavailable = code.starts_with("08") || code.starts_with("53") || code.starts_with("57P");
        return if unavailable || code == "57014" || code == "55P03" {
            store::Error::Unavailable(why)
        } else {
            store::Error::Failed(why)
        };
    }
    let io = std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>());
    if err.is_closed() || io {
        store::Error::Unavailable(err.to_string())
    } else {
        store::Error::Failed(err.to_string())
    }
}

/// Typed column reads that fail as the store's error (the driver's `get`
/// panics on a mismatch).
pub(crate) trait Columns {
    fn col<'r, T: FromSql<'r>>(&'r self, index: usize) -> store::Result<T>;
    /// A BIGINT instant (`*_ms`).
    fn ms(&self, index: usize) -> store::Result<UnixMs>;
    fn ms_opt(&self, index: usize) -> store::Result<Option<UnixMs>>;
    fn secs_opt(&self, index: usize) -> store::Result<Option<UnixSecs>>;
    /// An INTEGER column (counters), widened.
    fn int(&self, index: usize) -> store::Result<i64>;
    /// A text column holding one of the spellings `parse` knows.
    fn parsed<T>(&self, index: usize, parse: impl FnOnce(&str) -> Option<T>) -> store::Result<T>;
}

impl Columns for Row {
    fn col<'r, T: FromSql<'r>>(&'r self, index: usize) -> store::Result<T> {
        self.try_get(index).map_err(|e| error(&e))
    }

    fn ms(&self, index: usize) -> store::Result<UnixMs> {
        self.col::<i64>(index).map(UnixMs::from_millis)
    }

    fn ms_opt(&self, index: usize) -> store::Result<Option<UnixMs>> {
        Ok(self.col::<Option<i64>>(index)?.map(UnixMs::from_millis))
    }

    fn secs_opt(&self, index: usize) -> store::Result<Option<UnixSecs>> {
        Ok(self.col::<Option<i64>>(index)?.map(UnixSecs::new))
    }

    fn int(&self, index: usize) -> store::Result<i64> {
        self.col::<i32>(index).map(i64::from)
    }

    fn parsed<T>(&self, index: usize, parse: impl FnOnce(&str) -> Option<T>) -> store::Result<T> {
        let text: &str = self.col(index)?;
        parse(text).ok_or_else(|| store::Error::Failed(format!("column {index}: unknown value {text:?}")))
    }
}

impl Tx for PgTx<'_> {
    fn ping(&self) -> store::Result<()> {
        self.one("SELECT 1", &[])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both backends' schemas number the same steps, so a database of
    /// either kind at step N means the same thing.
    #[test]
    fn steps_match_sqlite() {
        let numbers: Vec<u32> = steps().iter().map(|s| s.0).collect();
        let sqlite: Vec<u32> = include_str!("../../../schema.sql")
            .lines()
            .filter_map(|line| line.strip_prefix("-- step "))
            .map(|n| n.trim().parse().unwrap())
            .collect();
        assert_eq!(numbers, sqlite);
        assert_eq!(numbers, (1..=numbers.len() as u32).collect::<Vec<_>>());
    }
}
