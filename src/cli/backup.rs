//! `authmd backup PATH [--force]`: a consistent online copy of the SQLite
//! database (`store::sqlite::backup`), safe while a server writes to it. On
//! PostgreSQL this is `pg_dump`'s job.

use std::path::PathBuf;

use lexopt::prelude::*;

use super::progress::Line;
use super::{CliError, Command, Context, print};
use crate::store::Target;
use crate::store::sqlite::backup;

pub const COMMAND: Command = Command {
    name: "backup",
    uses_db: true,
    synopsis: &["backup PATH [--force]"],
    summary: "a consistent online copy of the database",
    details: "\
Copies the SQLite database (--db) to PATH through SQLite's backup API, a few
megabytes at a time, while a server may keep writing: the copy holds
everything committed when the backup began. On a terminal, stderr shows
the pages copied as it goes. The copy is checked (PRAGMA integrity_check, and its schema at this
authmd's latest step) before it is put at PATH, as one file (no -wal beside
it); serve it again with `authmd --db PATH serve`.

An existing PATH is refused unless --force, which replaces it.

On PostgreSQL (--db postgres://...) use pg_dump instead, for example
  pg_dump --format=custom --file=authmd.dump 'postgres://...'
and pg_restore to bring it back.
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut path, mut force): (Option<PathBuf>, bool) = (None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("force") => force = true,
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            Value(value) if path.is_none() => path = Some(value.into()),
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(path) = path else {
        return Err(CliError::usage(COMMAND.usage()));
    };
    let source = match &ctx.db {
        Target::Sqlite(source) => source,
        Target::Postgres(_) => {
            return Err(CliError::config(format!(
                "backup copies a SQLite file; {} is PostgreSQL: use pg_dump \
                 (pg_dump --format=custom --file=authmd.dump URL), see `authmd backup --help`",
                ctx.db
            )));
        }
    };
    ctx.check_db_exists()?;
    let mut line = Line::on_stderr();
    let done = backup::backup(source, &path, force, &mut |copied, total| {
        line.update(&progress(copied, total));
    })
    .map_err(|e| match e {
        backup::Error::Open(why) => CliError::config(why),
        other => CliError::failure(other.to_string()),
    })?;
    line.finish(&progress(done.pages, done.pages), false);
    let mib = (done.pages * done.page_size) as f64 / (1024.0 * 1024.0);
    print(&format!(
        "backed up {} to {} ({}, {mib:.1} MiB); integrity_check ok, schema step {}\n",
        source.display(),
        path.display(),
        crate::words::count(done.pages, "page"),
        done.schema_step
    ))
}

/// The terminal's progress line: pages and share copied.
fn progress(copied: u64, total: u64) -> String {
    let percent = (copied * 100).checked_div(total).unwrap_or(100);
    format!("backup: {copied}/{total} pages ({percent}%)")
}
