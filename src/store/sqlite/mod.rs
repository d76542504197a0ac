//! The SQLite store: opening, migrating, transactions, and the store
//! interface (`store::Tx`) implemented on a `rusqlite::Connection`, one file
//! per table (the same names as the interface's files), plus `writer.rs`,
//! the group commit every server write goes through, `backup.rs` (`authmd
//! backup`) and `migrate.rs` (`authmd migrate`, the copy into PostgreSQL). All SQL of authmd for
//! SQLite lives here; the schema is `schema.sql`, applied in numbered steps.
//!
//! One SQLite file in WAL mode with `synchronous=FULL`, so an acknowledged
//! write survives power loss, and `secure_delete`, so erased secrets do not
//! linger in free space; `busy_timeout` lets the server, the sweeper and
//! CLI commands share the file. Writers take the lock up front
//! (`BEGIN IMMEDIATE`), so a read-then-write transaction never fails halfway
//! with `SQLITE_BUSY`.

mod assertions;
mod attempts;
mod audit;
pub mod backup;
mod credentials;
mod delegations;
mod documents;
mod local_keys;
#[cfg(feature = "postgres")]
pub mod migrate;
mod outbox;
mod providers;
mod rate_windows;
mod registrations;
mod replay;
mod sessions;
mod settings;
mod signing_keys;
mod users;
pub mod writer;

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use rusqlite::Connection;
use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::Error;
use crate::store::{self, Tx};
use crate::time::{UnixMs, UnixSecs};

const SCHEMA: &str = include_str!("../../../schema.sql");
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of a reading connection (one per worker), in KiB.
pub const READER_CACHE_KIB: u32 = 1024;
/// Page cache of the one writer connection, in KiB: it touches every index.
pub const WRITER_CACHE_KIB: u32 = 8192;

/// Why a database could not be opened; said to the operator at start.
#[derive(Debug)]
pub struct OpenError(pub String);

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which file a path named when the server opened it: device and inode.
/// A file deleted or replaced under a running server keeps taking writes
/// that no restart will see, so the writer and `/readyz` check this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity {
    path: std::path::PathBuf,
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    pub fn of(path: &Path) -> Result<FileIdentity, OpenError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|e| OpenError(format!("cannot read {}: {e}", path.display())))?;
        Ok(FileIdentity {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// `Err` says what happened to the file.
    pub fn check(&self) -> Result<(), String> {
        match FileIdentity::of(&self.path) {
            Ok(now) if now == *self => Ok(()),
            Ok(_) => Err(format!("{} was replaced by another file", self.path.display())),
            Err(_) => Err(format!("{} was deleted", self.path.display())),
        }
    }
}

/// Opens (creating it if needed) and migrates the database at `path`.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    let mut conn = connect_with(path, OpenFlags::SQLITE_OPEN_CREATE)?;
    migrate(&mut conn).map_err(|e| OpenError(format!("{}: {e}", path.display())))?;
    Ok(conn)
}

/// Opens an already migrated database: what each server worker does. It
/// never creates one: a file gone from under a server stays gone.
pub fn connect(path: &Path) -> Result<Connection, OpenError> {
    connect_with(path, OpenFlags::empty())
}

fn connect_with(path: &Path, create: OpenFlags) -> Result<Connection, OpenError> {
    let fail = |e: rusqlite::Error| {
        OpenError(format!(
            "cannot open database {}: {}",
            path.display(),
            explain_open(path, &e)
        ))
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | create | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
    // Plans must not depend on bound values: otherwise every statement that
    // touches a table with a partial index is re-prepared (parsed and planned
    // again) at each new binding, which was most of the cost of a cached
    // credential lookup. Every hot query names its partial index's condition
    // itself, so the plans stay the same (see index_tests).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(fail)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError(format!(
            "cannot open database {}: it would not switch to WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(fail)?;
    // Deleted and overwritten content is zeroed, not left in free pages and
    // free cell space: a delivered claim mail's body (a live link until it
    // expires) must not outlive its erasure in the file, nor in a backup of it.
    conn.execute_batch("PRAGMA secure_delete = ON").map_err(fail)?;
    // Page caches are sized on purpose: a server holds a connection per
    // worker plus the writer's, and memory must not grow with their count
    // times SQLite's default. Readers need the index pages of one lookup.
    conn.execute_batch(&format!("PRAGMA cache_size = -{READER_CACHE_KIB}"))
        .map_err(fail)?;
    Ok(conn)
}

/// Why a file could not be opened: SQLite says only "unable to open", the
/// operating system says why (a missing directory, too many open files).
fn explain_open(path: &Path, err: &rusqlite::Error) -> String {
    if err.sqlite_error_code() != Some(rusqlite::ErrorCode::CannotOpen) {
        return explain(err);
    }
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                format!("the directory {} does not exist", dir.display())
            }
            _ => "the file does not exist and cannot be created here (is the directory writable?)".into(),
        },
        Err(e) => format!("the file cannot be opened: {e}"),
        Ok(_) => "the file cannot be opened or created (is its directory writable?)".into(),
    }
}

fn explain(err: &rusqlite::Error) -> String {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "the file is not an SQLite database (corrupt, or some other file)".into()
        }
        Some(rusqlite::ErrorCode::ReadOnly) => "the file or its directory is read-only".into(),
        _ => err.to_string(),
    }
}

/// The numbered steps of `schema.sql`: `(n, sql)` in order.
fn steps() -> Vec<(u32, &'static str)> {
    crate::store::schema_steps(SCHEMA, "schema.sql")
}

/// The last step of `schema.sql`: the `user_version` of a database opened
/// (and so migrated) by this authmd.
pub fn latest_step() -> u32 {
    steps().last().map_or(0, |s| s.0)
}

/// Applies the steps of `schema.sql` above the database's `user_version`, all
/// in one transaction: a failing step leaves the file as it was.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let latest = steps().last().map_or(0, |s| s.0);
    let current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| explain(&e))?;
    if current == latest {
        return Ok(());
    }
    // A step may rebuild a table others refer to (SQLite's procedure for a
    // change ALTER TABLE cannot make): foreign keys are off while the steps
    // run, which only works outside a transaction, and are checked before
    // the commit, so a step that broke one fails and changes nothing.
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(|e| explain(&e))?;
    let result = apply_steps(conn, latest);
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| explain(&e))?;
    result
}

/// The steps above the `user_version` read inside the write transaction
/// (another process may have migrated meanwhile), all or none.
fn apply_steps(conn: &mut Connection, latest: u32) -> Result<(), String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| explain(&e))?;
    let current: u32 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| explain(&e))?;
    if current > latest {
        return Err(format!(
            "the database is at schema step {current}, newer than this authmd knows ({latest}); use a newer authmd"
        ));
    }
    for (number, sql) in steps().into_iter().filter(|s| s.0 > current) {
        tx.execute_batch(sql)
            .map_err(|e| format!("schema step {number}: {e}"))?;
        tx.pragma_update(None, "user_version", number)
            .map_err(|e| e.to_string())?;
    }
    let broken: Option<String> = tx
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()
        .map_err(|e| explain(&e))?;
    if let Some(table) = broken {
        return Err(format!("the schema steps would break a reference from {table}"));
    }
    tx.commit().map_err(|e| explain(&e))
}

/// Writers in this process queue here instead of in SQLite's busy handler,
/// which sleeps and polls (up to 100 ms at a time) while another connection
/// holds the write lock: handing the lock over directly keeps tail latency
/// down. Other processes (CLI commands) still meet the busy timeout.
static WRITE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Reads text column `index` of `row` as one of the enum spellings `parse`
/// knows; anything else is a corrupt row, reported as such.
pub(crate) fn text_enum<T>(
    row: &rusqlite::Row<'_>,
    index: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| rusqlite::Error::InvalidColumnType(index, text, rusqlite::types::Type::Text))
}

/// An instant is stored as its raw count in an INTEGER column (`*_ms`
/// milliseconds; `revoked_iat`, a provider's NumericDate, seconds): the SQL
/// and the schema do not know the types.
impl ToSql for UnixMs {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.millis()))
    }
}

impl FromSql for UnixMs {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<UnixMs> {
        i64::column_result(value).map(UnixMs::from_millis)
    }
}

impl ToSql for UnixSecs {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.secs()))
    }
}

impl FromSql for UnixSecs {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<UnixSecs> {
        i64::column_result(value).map(UnixSecs::new)
    }
}

/// Runs `work` in one write transaction of its own and commits it, or rolls
/// back on error: for CLI commands, which do not share the server's writer.
pub fn write<T>(conn: &mut Connection, work: impl FnOnce(&dyn Tx) -> Result<T, Error>) -> Result<T, Error> {
    let _turn = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store::Error::from)?;
    let value = work(&*tx)?;
    tx.commit().map_err(store::Error::from)?;
    Ok(value)
}

impl From<rusqlite::Error> for store::Error {
    fn from(err: rusqlite::Error) -> store::Error {
        store::Error::Failed(explain(&err))
    }
}

impl Tx for Connection {
    fn ping(&self) -> store::Result<()> {
        self.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) fn open_temp() -> (tempfile_dir::TempDir, Connection) {
    let dir = tempfile_dir::TempDir::new();
    let conn = open(&dir.path().join("test.db")).expect("open temp database");
    (dir, conn)
}

/// A temporary directory removed on drop, for unit tests (no extra crate).
#[cfg(test)]
pub(crate) mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            let path = std::env::temp_dir().join(format!("authmd-unit-{}", crate::secrets::new_request_id()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_steps_are_numbered_from_one_without_gaps() {
        let numbers: Vec<u32> = steps().iter().map(|s| s.0).collect();
        assert_eq!(numbers, (1..=numbers.len() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn open_migrates_once_and_sets_durable_pragmas() {
        let (dir, conn) = open_temp();
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, steps().last().unwrap().0);
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let secure_delete: i64 = conn.query_row("PRAGMA secure_delete", [], |r| r.get(0)).unwrap();
        assert_eq!(secure_delete, 1, "secure_delete");
        drop(conn);
        // Opening again applies nothing and fails nothing.
        open(&dir.path().join("test.db")).unwrap();
    }

    /// A database as an authmd that knew the steps up to `last` left it.
    fn at_step(dir: &tempfile_dir::TempDir, last: u32) -> Connection {
        let conn = connect_with(&dir.path().join("old.db"), OpenFlags::SQLITE_OPEN_CREATE).unwrap();
        for (number, sql) in steps().into_iter().take_while(|s| s.0 <= last) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", number).unwrap();
        }
        conn
    }

    /// Issue 11: step 5 splits the revocation mark by clock; marks written
    /// before it stay the provider-clock marks they were compared as.
    #[test]
    fn step_5_keeps_old_revocation_marks_on_the_provider_clock() {
        let dir = tempfile_dir::TempDir::new();
        let mut conn = at_step(&dir, 4);
        conn.execute(
            "INSERT INTO provider_revocations (iss, sub, revoked_iat) VALUES ('i', 's', 42)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let marks = crate::store::delegations::Delegations::revocation_marks(&conn, "i", "s").unwrap();
        assert_eq!(
            marks,
            crate::store::delegations::RevocationMarks {
                revoked_iat: Some(UnixSecs::new(42)),
                revoked_ms: None
            }
        );
        assert!(marks.refuse(UnixSecs::new(42), 60) && !marks.refuse(UnixSecs::new(43), 60));
        let operator = crate::store::delegations::RevocationMarks {
            revoked_iat: None,
            revoked_ms: Some(UnixMs::from_millis(1_000_000)),
        };
        assert!(
            operator.refuse(UnixSecs::new(939), 60),
            "issued more than the skew before: refused"
        );
        assert!(
            !operator.refuse(UnixSecs::new(940), 60),
            "within the skew: a provider behind by up to it is not refused"
        );
    }

    /// Issue 12: step 8 keys delegations by generation; those made before it
    /// are v0.1's.
    #[test]
    fn step_8_keeps_delegations_as_the_first_generations() {
        use crate::store::delegations::Delegations;
        let dir = tempfile_dir::TempDir::new();
        let mut conn = at_step(&dir, 7);
        conn.execute_batch(
            "INSERT INTO users (id, created_ms) VALUES ('usr_1', 0);
             INSERT INTO registrations (id, kind, status, user_id, created_ms, updated_ms)
                 VALUES ('reg_1', 'agent_provider', 'active', 'usr_1', 0, 0);
             INSERT INTO delegations (iss, sub, user_id, registration_id, created_ms)
                 VALUES ('https://p', 's', 'usr_1', 'reg_1', 0);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let found = conn.delegations("https://p", "s").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].generation, crate::model::Generation::V0_1);
        assert_eq!(found[0].registration_id, "reg_1");
        // Step 9 rebuilt `registrations` under the rows that refer to it.
        let kept = crate::store::registrations::Registrations::registration(&conn, "reg_1")
            .unwrap()
            .unwrap();
        assert_eq!(kept.kind, crate::model::RegistrationKind::AgentProvider);
        let enforced: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(enforced, 1, "foreign keys are enforced again after the migration");
    }

    #[test]
    fn a_newer_database_is_refused() {
        let (dir, conn) = open_temp();
        conn.pragma_update(None, "user_version", 999).unwrap();
        drop(conn);
        let err = open(&dir.path().join("test.db")).unwrap_err();
        assert!(err.0.contains("newer"), "{err}");
    }

    #[test]
    fn a_corrupt_file_is_refused_with_a_clear_message() {
        let dir = tempfile_dir::TempDir::new();
        let path = dir.path().join("junk.db");
        std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        let err = open(&path).unwrap_err();
        assert!(err.0.contains("not an SQLite database"), "{err}");
    }
}

/// Every query on a request's path is served by an index: none may scan a
/// table whose size grows with use.
#[cfg(test)]
mod index_tests {
    use super::*;

    /// The plan of `sql` with its parameters unbound (NULL): plans do not
    /// depend on bound values (QPSG, see `connect_with`).
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("; ")
    }

    /// The store's own statements, not copies: changing a query changes what
    /// is planned here (issue 11).
    #[test]
    fn hot_queries_use_indexes() {
        let (_dir, conn) = open_temp();
        use crate::store::audit::Filter;
        use crate::store::registrations::Selection;
        let audit_by_event = audit::list_sql(&Filter {
            event: Some(crate::model::EventName::RegistrationCreated),
            ..Default::default()
        });
        let audit_following = audit::list_sql(&Filter::default());
        let audit_since = audit::list_sql(&Filter {
            since_ms: Some(UnixMs::from_millis(0)),
            ..Default::default()
        });
        // What revocation of one registration and expiry run (`core::revoke`).
        let for_selections: Vec<String> = [Selection::Registration(""), Selection::Lapsed]
            .into_iter()
            .flat_map(|chosen| {
                [
                    registrations::END,
                    credentials::REVOKE_OF,
                    attempts::CLOSE_OF,
                    delegations::MARK_HERE,
                    audit::FOR_EACH,
                ]
                .map(|template| registrations::statement(template, chosen))
            })
            .collect();
        for sql in [
            credentials::BY_HASH.as_str(),
            registrations::BY_ID.as_str(),
            registrations::LIST_BY_STATUS.as_str(),
            registrations::BY_CLAIM_TOKEN_HASH.as_str(),
            &audit_by_event,
            &audit_following,
            &audit_since,
            audit::PRUNE,
            users::BY_EMAIL.as_str(),
            users::BY_PHONE.as_str(),
            delegations::GET,
            delegations::OF_REGISTRATION,
            delegations::REVOCATION_MARKS,
            delegations::PENDING,
            delegations::OF_USER_FROM,
            registrations::OTHER_AGENT,
            registrations::OF_USER_LIVE.as_str(),
            registrations::OF_USER_ENDED.as_str(),
            registrations::RECORD_LAST_USED,
            credentials::LIVE_SCOPES_OF,
            delegations::PENDING_OF,
            assertions::BY_JTI,
            assertions::REFRESH_BY_HASH,
            sessions::SESSION,
            sessions::SIGNIN,
            replay::FIRST_USE,
            rate_windows::COUNT,
            rate_windows::PRUNE,
            providers::BY_ISSUER,
            documents::GET,
            attempts::BY_TOKEN_HASH.as_str(),
            attempts::OPEN_OF.as_str(),
        ]
        .into_iter()
        .chain(for_selections.iter().map(String::as_str))
        {
            let plan = plan(&conn, sql);
            let scans_a_table = plan
                .split("; ")
                .any(|step| step.starts_with("SCAN") && !step.contains("USING"));
            assert!(!scans_a_table, "{sql}\n  plan: {plan}");
        }
    }

    /// A person's page reads their registrations newest first off the user
    /// index, never a status's worth of everyone's, and sorts nothing.
    #[test]
    fn a_persons_agents_are_read_in_order_off_the_user_index() {
        let (_dir, conn) = open_temp();
        for sql in [&*registrations::OF_USER_LIVE, &*registrations::OF_USER_ENDED] {
            let plan = plan(&conn, sql);
            assert!(
                plan.contains("USING INDEX registrations_by_user") && !plan.contains("TEMP B-TREE"),
                "{sql}\n  plan: {plan}"
            );
        }
    }
}
