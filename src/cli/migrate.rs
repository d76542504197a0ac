//! `authmd migrate --from PATH --to postgres://...`: a SQLite deployment
//! copied into an empty PostgreSQL database (`store::sqlite::migrate`), with a
//! progress line per table and the row counts checked at the end.

use std::path::PathBuf;

use lexopt::prelude::*;
#[cfg(feature = "postgres")]
use serde_json::json;

use super::{CliError, Command, Context, print};
use crate::store::Target;

pub const COMMAND: Command = Command {
    name: "migrate",
    uses_db: false,
    synopsis: &["migrate --from PATH [--to URL] [--json]"],
    summary: "SQLite deployment into PostgreSQL (empty target)",
    details: "\
Copies the SQLite database at PATH into the PostgreSQL database at URL
(postgres://user:password@host:port/database[?sslmode=verify-full&sslrootcert=CA],
TLS as for --db: see the README; without --to, the database of --db or
AUTHMD_DB, so AUTHMD_DB_FILE keeps the password out of the command line,
where other users can read it): every table of the schema, the signing
keys and the OTP and local keys included, audit event and outbox ids kept
(the sequences continue after them), each value exactly (BLOB as BYTEA,
INTEGER as BIGINT, NULL as NULL).

The source is opened as every command opens it (its schema steps applied)
and read in one snapshot: a server still writing to it changes nothing the
copy sees, but what it writes after the copy began is not copied, so stop
it first. The target gets its schema steps, then everything is copied in
one transaction, which first locks the target's tables and checks they hold
no rows: a non-empty target is refused and left untouched, as is any target
when the copy fails. A table or column present on one side only fails the
copy before anything is written.

A terminal shows rows copied / rows in all for the table being copied;
otherwise a line per table. At the end each table's rows in SQLite and in
PostgreSQL are printed (--json: one object per table); any difference is a
failure and nothing is committed. Then start the nodes on URL:
  authmd --db URL serve

Exit status: 0 copied and verified, 1 refused or failed, 78 a database that
cannot be opened.
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut from, mut to, mut as_json): (Option<PathBuf>, Option<String>, bool) = (None, None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("from") => from = Some(parser.value()?.into()),
            Long("to") => to = Some(parser.value()?.string()?),
            Long("json") => as_json = true,
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(from) = from else {
        return Err(CliError::usage(COMMAND.usage()));
    };
    let to = match to {
        Some(to) => Target::parse(&to),
        None => ctx.db.clone(),
    };
    match to {
        Target::Postgres(url) => copy(&from, &url, as_json),
        Target::Sqlite(_) => Err(CliError::usage(format!(
            "--to (or else --db, AUTHMD_DB) takes a postgres:// URL\n\n{}",
            COMMAND.usage()
        ))),
    }
}

#[cfg(not(feature = "postgres"))]
fn copy(_: &std::path::Path, _: &str, _: bool) -> Result<(), CliError> {
    Err(CliError::config(
        "this authmd was built without PostgreSQL (the `postgres` cargo feature)",
    ))
}

#[cfg(feature = "postgres")]
fn copy(from: &std::path::Path, url: &str, as_json: bool) -> Result<(), CliError> {
    use super::progress::Line;
    use crate::store::sqlite::migrate::{self, Count, Error};

    let shown = Target::Postgres(url.to_string()).to_string();
    let mut line = Line::new(as_json);
    let mut current: Option<(String, u64)> = None;
    let finish = |line: &mut Line, current: &mut Option<(String, u64)>| {
        if let Some((table, total)) = current.take() {
            line.finish(&format!("copied {table}: {total}/{total} rows"), as_json);
        }
    };
    let result = migrate::copy(from, url, &mut |table, copied, total| {
        if current.as_ref().is_some_and(|(t, _)| t != table) {
            finish(&mut line, &mut current);
        }
        current = Some((table.to_string(), total));
        line.update(&format!("copying {table}: {copied}/{total} rows"));
    });
    finish(&mut line, &mut current);
    let report = |counts: &[Count]| {
        if as_json {
            super::print_lines(counts.iter().map(|c| {
                json!({
                    "table": c.table,
                    "sqlite_rows": c.source,
                    "postgres_rows": c.target,
                    "ok": c.source == c.target,
                })
                .to_string()
            }))
        } else {
            let width = counts.iter().map(|c| c.table.len()).max().unwrap_or(0);
            super::print_lines(counts.iter().map(|c| {
                let verdict = if c.source == c.target { "ok" } else { "MISMATCH" };
                format!(
                    "{:width$}  {:>8} in SQLite  {:>8} in PostgreSQL  {verdict}",
                    c.table, c.source, c.target
                )
            }))
        }
    };
    match result {
        Ok(counts) => {
            report(&counts)?;
            if as_json {
                return Ok(());
            }
            let rows: u64 = counts.iter().map(|c| c.target).sum();
            print(&format!(
                "migrated {} into {shown}: {} in {}, counts verified\n",
                from.display(),
                crate::words::count(rows, "row"),
                crate::words::count(counts.len() as u64, "table")
            ))
        }
        Err(Error::Mismatch(counts)) => {
            report(&counts)?;
            Err(CliError::failure(Error::Mismatch(counts).to_string()))
        }
        Err(Error::Open(why)) => Err(CliError::config(why)),
        Err(other) => Err(CliError::failure(other.to_string())),
    }
}
