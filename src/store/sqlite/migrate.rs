//! `authmd migrate`: a SQLite deployment copied into an empty PostgreSQL
//! database (issue 14). Generic over the schema: the tables and columns are
//! read from both databases (SQLite's `sqlite_master` and `table_info`,
//! PostgreSQL's `information_schema`), and a table or column one side has
//! and the other lacks fails the copy before anything is written, so a new
//! column is never silently dropped. Each value is converted to its
//! PostgreSQL column's type (INTEGER to BIGINT or INTEGER, BLOB to BYTEA,
//! TEXT to TEXT, NULL kept); one that does not fit fails the copy.
//!
//! Consistency: the source is read inside one read transaction (a WAL
//! snapshot: a server writing meanwhile changes nothing this copy sees),
//! and the target is written in one transaction that first locks every
//! table against writes, then checks they are empty, copies parents before
//! the tables that refer to them, advances the id sequences past the copied
//! ids (audit events, outbox), and counts each table before it commits: a
//! failure or a count that differs leaves the target as it was.
//!
//! It lives with the SQLite backend, the only modules that name its driver
//! (`layout_tests`). Not here: the command line and its progress display
//! (`cli/migrate.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::Value;

use crate::store::postgres::{self as pg, Limits};
use crate::store::sqlite;

/// Rows per INSERT at most (PostgreSQL allows 65535 parameters in one).
const ROWS_PER_INSERT: usize = 500;
const MAX_PARAMETERS: usize = 60_000;

/// One table's rows in the source snapshot and in the target after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub table: String,
    pub source: u64,
    pub target: u64,
}

#[derive(Debug)]
pub enum Error {
    /// A database could not be opened or is not what this authmd knows.
    Open(String),
    /// The two schemas do not have the same tables and columns.
    Schema(String),
    /// The target already holds rows: these tables, with their counts.
    NotEmpty(Vec<(String, u64)>),
    /// A count differed after the copy; nothing was committed.
    Mismatch(Vec<Count>),
    /// Anything else (a statement failed, a value did not fit).
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Open(why) | Error::Schema(why) | Error::Failed(why) => f.write_str(why),
            Error::NotEmpty(tables) => {
                let listed: Vec<String> = tables
                    .iter()
                    .map(|(t, n)| format!("{t} ({})", crate::words::count(*n, "row")))
                    .collect();
                write!(
                    f,
                    "the target database is not empty: {}; migrate copies into an empty database only, and left it untouched",
                    listed.join(", ")
                )
            }
            Error::Mismatch(counts) => {
                let differing: Vec<String> = counts
                    .iter()
                    .filter(|c| c.source != c.target)
                    .map(|c| format!("{}: {} in SQLite, {} in PostgreSQL", c.table, c.source, c.target))
                    .collect();
                write!(
                    f,
                    "row counts differ after the copy ({}); nothing was committed",
                    differing.join("; ")
                )
            }
        }
    }
}

fn failed(context: &str) -> impl Fn(postgres::Error) -> Error + '_ {
    move |e| Error::Failed(format!("{context}: {}", describe(&e)))
}

fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn sqlite_failed(context: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Failed(format!("{context}: {e}"))
}

/// What the copy reports as it goes: `(table, rows copied, rows in all)`.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Copies the SQLite database at `source` (migrated to the latest step on
/// opening, as every command does) into the PostgreSQL database at `url`
/// (its schema steps applied first), which must hold no rows. Answers each
/// table's counts, in the order the tables were copied.
pub fn copy(source: &Path, url: &str, progress: Progress<'_>) -> Result<Vec<Count>, Error> {
    if !source.is_file() {
        return Err(Error::Open(format!("no SQLite database at {}", source.display())));
    }
    let mut src = sqlite::open(source).map_err(|e| Error::Open(e.0))?;
    let pool = pg::open_with(
        url,
        Limits {
            connections: 1,
            ..Limits::default()
        },
    )
    .map_err(|e| Error::Open(e.0))?;
    let mut conn = pool.get().map_err(|e| Error::Open(e.to_string()))?;

    // The snapshot starts with the first read, the table list.
    let snapshot = src
        .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
        .map_err(sqlite_failed("starting the read transaction"))?;
    let step: u32 = snapshot
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_failed("reading the schema step"))?;
    if step != sqlite::latest_step() {
        return Err(Error::Open(format!(
            "{} is at schema step {step}, not {}",
            source.display(),
            sqlite::latest_step()
        )));
    }
    let source_tables = sqlite_tables(&snapshot)?;

    let mut tx = conn.transaction().map_err(failed("starting the transaction"))?;
    // A large table may take longer than a request's statement timeout.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(failed("lifting the statement timeout"))?;
    let target_tables = pg_tables(&mut tx)?;
    compare(&source_tables, &target_tables)?;

    let names: Vec<&str> = target_tables.keys().map(String::as_str).collect();
    let quoted: Vec<String> = names.iter().map(|t| quote(t)).collect();
    // Writes from a node started too early wait for this transaction.
    tx.batch_execute(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", quoted.join(", ")))
        .map_err(failed("locking the target's tables"))?;
    let mut occupied = Vec::new();
    for table in &names {
        let n = pg_count(&mut tx, table)?;
        if n > 0 {
            occupied.push((table.to_string(), n));
        }
    }
    if !occupied.is_empty() {
        return Err(Error::NotEmpty(occupied));
    }

    let order = parents_first(&snapshot, &source_tables)?;
    let mut counts = Vec::new();
    for table in &order {
        let columns = &target_tables[table];
        let total: u64 = snapshot
            .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sqlite_failed(table))? as u64;
        progress(table, 0, total);
        copy_table(&snapshot, &mut tx, table, columns, total, progress)?;
        advance_sequences(&snapshot, &mut tx, table, columns)?;
        counts.push(Count {
            table: table.clone(),
            source: total,
            target: pg_count(&mut tx, table)?,
        });
    }
    if counts.iter().any(|c| c.source != c.target) {
        return Err(Error::Mismatch(counts));
    }
    tx.commit().map_err(failed("committing"))?;
    drop(snapshot);
    Ok(counts)
}

/// A target column: its name and `information_schema` data type, and
/// whether its default draws from a sequence.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    data_type: String,
    serial: bool,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Each table's column names, in the schema's order.
fn sqlite_tables(conn: &rusqlite::Connection) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let mut tables = BTreeMap::new();
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sqlite_failed("listing the SQLite tables"))?;
    for name in names {
        let columns: Vec<String> = conn
            .prepare(&format!("PRAGMA table_info({})", quote(&name)))
            .and_then(|mut s| s.query_map([], |r| r.get(1))?.collect())
            .map_err(sqlite_failed(&name))?;
        tables.insert(name, columns);
    }
    Ok(tables)
}

/// Each table's columns, `schema_steps` (the target's own) left out.
fn pg_tables(tx: &mut postgres::Transaction<'_>) -> Result<BTreeMap<String, Vec<Column>>, Error> {
    let rows = tx
        .query(
            "SELECT c.table_name::TEXT, c.column_name::TEXT, c.data_type::TEXT,
                    coalesce(c.column_default LIKE 'nextval(%' OR c.is_identity = 'YES', false)
             FROM information_schema.columns c
             JOIN information_schema.tables t
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.table_name <> 'schema_steps'
             ORDER BY c.table_name, c.ordinal_position",
            &[],
        )
        .map_err(failed("listing the PostgreSQL tables"))?;
    let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for row in rows {
        tables.entry(row.get(0)).or_default().push(Column {
            name: row.get(1),
            data_type: row.get(2),
            serial: row.get(3),
        });
    }
    Ok(tables)
}

/// The same tables with the same column names on both sides, or what differs.
fn compare(source: &BTreeMap<String, Vec<String>>, target: &BTreeMap<String, Vec<Column>>) -> Result<(), Error> {
    let mut problems = Vec::new();
    for (table, columns) in source {
        let Some(theirs) = target.get(table) else {
            problems.push(format!("table {table} is missing from PostgreSQL"));
            continue;
        };
        let ours: BTreeSet<&str> = columns.iter().map(String::as_str).collect();
        let theirs: BTreeSet<&str> = theirs.iter().map(|c| c.name.as_str()).collect();
        for missing in ours.difference(&theirs) {
            problems.push(format!("column {table}.{missing} is missing from PostgreSQL"));
        }
        for extra in theirs.difference(&ours) {
            problems.push(format!("column {table}.{extra} is missing from SQLite"));
        }
    }
    for table in target.keys().filter(|t| !source.contains_key(*t)) {
        problems.push(format!("table {table} is missing from SQLite"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Schema(format!(
            "the SQLite and PostgreSQL schemas differ: {}",
            problems.join("; ")
        )))
    }
}

/// The tables in an order where each comes after those it refers to.
fn parents_first(conn: &rusqlite::Connection, tables: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>, Error> {
    let mut parents: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for table in tables.keys() {
        let referred: BTreeSet<String> = conn
            .prepare(&format!("PRAGMA foreign_key_list({})", quote(table)))
            .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(2))?.collect())
            .map_err(sqlite_failed(table))?;
        parents.insert(table, referred.into_iter().filter(|p| p != table).collect());
    }
    let mut order: Vec<String> = Vec::new();
    while order.len() < tables.len() {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(t, ps)| !order.iter().any(|o| o == *t) && ps.iter().all(|p| order.contains(p)))
            .map(|(t, _)| *t)
            .collect();
        if ready.is_empty() {
            return Err(Error::Schema("the tables' references form a cycle".into()));
        }
        order.extend(ready.into_iter().map(String::from));
    }
    Ok(order)
}

fn pg_count(tx: &mut postgres::Transaction<'_>, table: &str) -> Result<u64, Error> {
    let n: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {}", quote(table)), &[])
        .map_err(failed(table))?
        .get(0);
    Ok(n as u64)
}

type Param = Box<dyn ToSql + Sync>;

/// `value` as a parameter for a column of `column.data_type`.
fn convert(table: &str, column: &Column, value: Value) -> Result<Param, Error> {
    let refuse = |value: &Value| {
        Error::Failed(format!(
            "{table}.{}: a {:?} value does not fit PostgreSQL's {}",
            column.name,
            value.data_type(),
            column.data_type
        ))
    };
    Ok(match (column.data_type.as_str(), value) {
        ("bigint", Value::Integer(n)) => Box::new(n),
        ("bigint", Value::Null) => Box::new(None::<i64>),
        ("integer", Value::Integer(n)) => Box::new(i32::try_from(n).map_err(|_| refuse(&Value::Integer(n)))?),
        ("integer", Value::Null) => Box::new(None::<i32>),
        ("smallint", Value::Integer(n)) => Box::new(i16::try_from(n).map_err(|_| refuse(&Value::Integer(n)))?),
        ("smallint", Value::Null) => Box::new(None::<i16>),
        ("boolean", Value::Integer(n @ (0 | 1))) => Box::new(n == 1),
        ("boolean", Value::Null) => Box::new(None::<bool>),
        ("double precision", Value::Real(x)) => Box::new(x),
        ("double precision", Value::Integer(n)) => Box::new(n as f64),
        ("double precision", Value::Null) => Box::new(None::<f64>),
        ("text", Value::Text(s)) => Box::new(s),
        ("text", Value::Null) => Box::new(None::<String>),
        ("bytea", Value::Blob(b)) => Box::new(b),
        ("bytea", Value::Null) => Box::new(None::<Vec<u8>>),
        (_, value) => return Err(refuse(&value)),
    })
}

/// Copies every row of `table`, [`ROWS_PER_INSERT`] to a statement.
fn copy_table(
    src: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &[Column],
    total: u64,
    progress: Progress<'_>,
) -> Result<(), Error> {
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let list = names.join(", ");
    let per_insert = ROWS_PER_INSERT.min(MAX_PARAMETERS / columns.len().max(1)).max(1);
    let mut select = src
        .prepare(&format!("SELECT {list} FROM {}", quote(table)))
        .map_err(sqlite_failed(table))?;
    let mut rows = select.query([]).map_err(sqlite_failed(table))?;
    let mut batch: Vec<Param> = Vec::new();
    let mut copied = 0u64;
    let mut flush = |batch: &mut Vec<Param>, copied: &mut u64| -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let n_rows = batch.len() / columns.len();
        let tuples: Vec<String> = (0..n_rows)
            .map(|r| {
                let marks: Vec<String> = (0..columns.len())
                    .map(|c| format!("${}", r * columns.len() + c + 1))
                    .collect();
                format!("({})", marks.join(", "))
            })
            .collect();
        let sql = format!("INSERT INTO {} ({list}) VALUES {}", quote(table), tuples.join(", "));
        let params: Vec<&(dyn ToSql + Sync)> = batch.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        tx.execute(&sql, &params).map_err(failed(table))?;
        *copied += n_rows as u64;
        batch.clear();
        progress(table, *copied, total);
        Ok(())
    };
    while let Some(row) = rows.next().map_err(sqlite_failed(table))? {
        for (i, column) in columns.iter().enumerate() {
            let value: Value = row.get(i).map_err(sqlite_failed(table))?;
            batch.push(convert(table, column, value)?);
        }
        if batch.len() >= per_insert * columns.len() {
            flush(&mut batch, &mut copied)?;
        }
    }
    flush(&mut batch, &mut copied)
}

/// Sets each sequence-backed column's sequence past the largest id copied,
/// or past SQLite's own high-water mark (`sqlite_sequence`, which an
/// AUTOINCREMENT table keeps beyond deleted rows), so no id is handed out twice.
fn advance_sequences(
    src: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &[Column],
) -> Result<(), Error> {
    use rusqlite::OptionalExtension;
    for column in columns.iter().filter(|c| c.serial) {
        let copied: i64 = tx
            .query_one(
                &format!(
                    "SELECT coalesce(max({}), 0)::BIGINT FROM {}",
                    quote(&column.name),
                    quote(table)
                ),
                &[],
            )
            .map_err(failed(table))?
            .get(0);
        let has_sequence_table: bool = src
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'sqlite_sequence'",
                [],
                |r| r.get(0),
            )
            .map_err(sqlite_failed("sqlite_sequence"))?;
        let high_water: i64 = if has_sequence_table {
            src.query_row("SELECT seq FROM sqlite_sequence WHERE name = ?1", [table], |r| r.get(0))
                .optional()
                .map_err(sqlite_failed("sqlite_sequence"))?
                .unwrap_or(0)
        } else {
            0
        };
        let last = copied.max(high_water);
        if last > 0 {
            tx.execute(
                "SELECT setval(pg_get_serial_sequence($1, $2), $3, true)",
                &[&quote(table), &column.name, &last],
            )
            .map_err(failed(table))?;
        }
    }
    Ok(())
}
