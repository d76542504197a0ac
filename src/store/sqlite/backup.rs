//! `authmd backup`: a consistent online copy of the SQLite database through
//! SQLite's backup API, while a server may be writing (issue 14).
//!
//! The source connection holds one read transaction for the whole copy, so
//! every step copies pages of the same WAL snapshot (taken when the backup
//! begins: everything committed before is in the copy) and writers never
//! restart it; they are not blocked either (WAL readers and writers do not
//! wait for each other). The copy is written beside the destination under
//! a temporary name, switched to a rollback journal so it is one
//! self-contained file, checked (`PRAGMA integrity_check`, and its schema at
//! this authmd's latest step), and only then put in place: without `force`
//! by a hard link, which fails if the destination appeared meanwhile.
//!
//! Not here: PostgreSQL (`pg_dump` does this there), the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use crate::store::sqlite;

/// Pages copied per step (4 MiB at SQLite's default page size).
pub const PAGES_PER_STEP: i32 = 1024;
/// How long a step that found the destination busy waits before retrying.
const BUSY_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub enum Error {
    /// The source cannot be backed up (missing, not migratable).
    Open(String),
    /// The destination exists and `force` was not given.
    Exists(PathBuf),
    /// The copy failed or did not check out; the destination is untouched.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Open(why) | Error::Failed(why) => f.write_str(why),
            Error::Exists(path) => write!(f, "{} exists; --force replaces it", path.display()),
        }
    }
}

/// What a finished backup holds.
#[derive(Debug, Clone)]
pub struct Done {
    pub pages: u64,
    pub page_size: u64,
    pub schema_step: u32,
}

/// Copies the database at `source` to `dest`, calling `progress(pages
/// copied, pages in all)` after each step.
pub fn backup(source: &Path, dest: &Path, force: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<Done, Error> {
    if !source.is_file() {
        return Err(Error::Open(format!("no SQLite database at {}", source.display())));
    }
    if dest.exists() {
        if !force {
            return Err(Error::Exists(dest.to_path_buf()));
        }
        let same = std::fs::canonicalize(source).ok() == std::fs::canonicalize(dest).ok();
        if same {
            return Err(Error::Open(format!("{} is the database itself", dest.display())));
        }
    }
    let src = sqlite::open(source).map_err(|e| Error::Open(e.0))?;
    let partial = partial_path(dest);
    remove_with_sidecars(&partial);
    let result = copy_to(&src, &partial, progress).and_then(|done| {
        check(&partial)?;
        put_in_place(&partial, dest, force)?;
        Ok(done)
    });
    remove_with_sidecars(&partial);
    result
}

fn copy_to(src: &Connection, partial: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Done, Error> {
    let failed = |what: &'static str| move |e: rusqlite::Error| Error::Failed(format!("{what}: {e}"));
    // The snapshot: held from the first read until the copy is done.
    src.execute_batch("BEGIN DEFERRED")
        .map_err(failed("starting the read"))?;
    let snapshot = (|| {
        let page_size: i64 = src
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(failed("reading the page size"))?;
        let schema_step: u32 = src
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(failed("reading the schema step"))?;
        // The copy holds the signing keys: its owner's alone, whatever the
        // umask (SQLite would create it 0644). An empty file is a new database.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(partial)
                .map_err(|e| Error::Failed(format!("{}: {e}", partial.display())))?;
        }
        let mut dst = Connection::open(partial).map_err(|e| Error::Failed(format!("{}: {e}", partial.display())))?;
        let pages = {
            let backup = Backup::new(src, &mut dst).map_err(failed("starting the backup"))?;
            loop {
                match backup.step(PAGES_PER_STEP).map_err(failed("copying"))? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    StepResult::Busy | StepResult::Locked => std::thread::sleep(BUSY_PAUSE),
                    _ => std::thread::sleep(BUSY_PAUSE),
                }
                let p = backup.progress();
                let total = p.pagecount.max(0) as u64;
                progress(total.saturating_sub(p.remaining.max(0) as u64), total);
            }
            let total = backup.progress().pagecount.max(0) as u64;
            progress(total, total);
            total
        };
        // One file, no -wal beside it: a copy can be moved on its own. A
        // server opening it switches it back to WAL.
        let _: String = dst
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(failed("switching the copy to a rollback journal"))?;
        dst.close()
            .map_err(|(_, e)| Error::Failed(format!("closing the copy: {e}")))?;
        Ok(Done {
            pages,
            page_size: page_size as u64,
            schema_step,
        })
    })();
    let _ = src.execute_batch("COMMIT");
    snapshot
}

/// The copy passes `integrity_check` and is at this authmd's latest step.
fn check(partial: &Path) -> Result<(), Error> {
    let failed = |e: rusqlite::Error| Error::Failed(format!("checking the copy: {e}"));
    let conn = Connection::open_with_flags(partial, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(failed)?;
    let verdict: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(failed)?;
    if verdict != ["ok"] {
        return Err(Error::Failed(format!(
            "the copy fails integrity_check: {}",
            verdict.join("; ")
        )));
    }
    let step: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(failed)?;
    if step != sqlite::latest_step() {
        return Err(Error::Failed(format!(
            "the copy is at schema step {step}, not {}",
            sqlite::latest_step()
        )));
    }
    Ok(())
}

fn put_in_place(partial: &Path, dest: &Path, force: bool) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Failed(format!("{}: {e}", dest.display()));
    if force {
        // A -wal left beside an old file would be replayed into the new one.
        for sidecar in sidecars(dest) {
            match std::fs::remove_file(&sidecar) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
                _ => {}
            }
        }
        return std::fs::rename(partial, dest).map_err(fail);
    }
    match std::fs::hard_link(partial, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Exists(dest.to_path_buf())),
        Err(e) => Err(fail(e)),
    }
}

fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

fn sidecars(path: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with("-wal"), with("-shm")]
}

fn remove_with_sidecars(path: &Path) {
    let _ = std::fs::remove_file(path);
    for sidecar in sidecars(path) {
        let _ = std::fs::remove_file(sidecar);
    }
}
