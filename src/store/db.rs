//! The database as the layers above the store hold it, whichever backend
//! the `--db` value names ([`Target`]): a file path is SQLite, a
//! `postgres://` or `postgresql://` URL PostgreSQL (DESIGN.md "Growing past
//! one machine").
//!
//! - [`Writer`]: the server's one write path (`ctx.writer.write(..)`): on
//!   SQLite the group-commit writer, on PostgreSQL a pool of write
//!   connections, each write one transaction of its own.
//! - [`Reader`]: a request worker's or background thread's reading
//!   connection, from [`Writer::reader`]: on SQLite a connection of its
//!   own, held for the thread's life, as before; on PostgreSQL a connection
//!   taken from a second pool for each use (autocommit), so a worker holding
//!   one never takes a write connection's place.
//! - [`Db`]: one connection for a command (the CLI, the server's start):
//!   reads on it, and writes each in a transaction of its own.

use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(feature = "postgres")]
use super::postgres;
use super::sqlite::{self, Connection};
use super::{Error as StoreError, OpenError, Tx};
use crate::error::Error;

/// What `--db` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    /// The URL, password included: never printed (see [`Target`]'s Display).
    Postgres(String),
}

impl Target {
    /// A `postgres://` or `postgresql://` URL is PostgreSQL; anything else
    /// is a file path.
    pub fn parse(text: &str) -> Target {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Target::Postgres(text.to_string())
        } else {
            Target::Sqlite(PathBuf::from(text))
        }
    }

    /// The file, for SQLite.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Target::Sqlite(path) => Some(path),
            Target::Postgres(_) => None,
        }
    }
}

impl From<PathBuf> for Target {
    fn from(path: PathBuf) -> Target {
        Target::Sqlite(path)
    }
}

impl From<&Path> for Target {
    fn from(path: &Path) -> Target {
        Target::Sqlite(path.to_path_buf())
    }
}

/// The path, or the URL without its user information (the password).
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Sqlite(path) => write!(f, "{}", path.display()),
            Target::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
                write!(f, "{scheme}://{rest}")
            }
        }
    }
}

#[cfg(not(feature = "postgres"))]
fn no_postgres() -> OpenError {
    OpenError("this authmd was built without PostgreSQL (the `postgres` cargo feature)".into())
}

/// Connections a server's PostgreSQL pools hold at most, for `workers`
/// request workers: reads one per worker and per background thread that
/// reads (settings, mail, `Running::reload_settings`), writes one per worker
/// and per background writer (mail, sweeper). Each thread takes at most one
/// of each at a time, and no write waits for a read, so neither pool can
/// run dry of what a holder waits for.
#[cfg(feature = "postgres")]
pub fn postgres_pool_sizes(workers: usize) -> (usize, usize) {
    (workers + 3, workers + 2)
}

/// The server's write path: what `core` calls `ctx.writer`. One per
/// server, behind an `Arc`: its size does not matter, an indirection on
/// every SQLite write would.
#[allow(clippy::large_enum_variant)]
pub enum Writer {
    Sqlite {
        writer: sqlite::writer::Writer,
        /// Where reading connections are opened (`None`: an in-memory
        /// database given to [`Writer::new`], which has none).
        path: Option<PathBuf>,
    },
    #[cfg(feature = "postgres")]
    Postgres {
        writes: postgres::Pool,
        reads: postgres::Pool,
    },
}

impl Writer {
    /// The SQLite group-commit writer on the (migrated) file at `path`.
    pub fn open(path: &Path) -> Result<Writer, OpenError> {
        Ok(Writer::Sqlite {
            writer: sqlite::writer::Writer::open(path)?,
            path: Some(path.to_path_buf()),
        })
    }

    /// The SQLite group-commit writer on `conn`.
    #[cfg(test)]
    pub fn new(conn: Connection) -> Writer {
        let path = conn.path().filter(|p| !p.is_empty()).map(PathBuf::from);
        Writer::Sqlite {
            writer: sqlite::writer::Writer::new(conn),
            path,
        }
    }

    /// The pools of a server on PostgreSQL at `url` (migrated on opening),
    /// sized for `workers` ([`postgres_pool_sizes`]).
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str, workers: usize) -> Result<Writer, OpenError> {
        let (reads, writes) = postgres_pool_sizes(workers);
        let writes = postgres::open_with(
            url,
            postgres::Limits {
                connections: writes,
                ..postgres::Limits::default()
            },
        )?;
        let reads = writes.sibling(reads);
        Ok(Writer::Postgres { writes, reads })
    }

    /// Runs `work` as one atomic, durable unit (see each backend's `write`).
    pub fn write<T>(&self, work: impl FnMut(&dyn Tx) -> Result<T, Error>) -> Result<T, Error> {
        match self {
            Writer::Sqlite { writer, .. } => writer.write(work),
            #[cfg(feature = "postgres")]
            Writer::Postgres { writes, .. } => writes.write(work),
        }
    }

    /// [`Writer::write`], never at the same time as another node's
    /// `write_alone` under the same `key` (on SQLite the one writer already
    /// runs one transaction at a time): for work that reads what it then
    /// records, such as the sweeper's expiry, on a database several nodes share.
    pub fn write_alone<T>(&self, key: i64, work: impl FnMut(&dyn Tx) -> Result<T, Error>) -> Result<T, Error> {
        match self {
            Writer::Sqlite { writer, .. } => {
                let _ = key;
                writer.write(work)
            }
            #[cfg(feature = "postgres")]
            Writer::Postgres { writes, .. } => writes.write_locked(key, work),
        }
    }

    /// Whether other nodes may write the same database: work taken from a
    /// shared queue (the outbox) must then be claimed in the write that
    /// finishes it.
    pub fn shared(&self) -> bool {
        match self {
            Writer::Sqlite { .. } => false,
            #[cfg(feature = "postgres")]
            Writer::Postgres { .. } => true,
        }
    }

    /// A reading connection (see [`Reader`]).
    pub fn reader(&self) -> Result<Reader, OpenError> {
        match self {
            Writer::Sqlite { path: Some(path), .. } => Ok(Reader::Sqlite(sqlite::connect(path)?)),
            Writer::Sqlite { path: None, .. } => {
                Err(OpenError("an in-memory database has no reading connections".into()))
            }
            #[cfg(feature = "postgres")]
            Writer::Postgres { reads, .. } => Ok(Reader::Postgres(reads.clone())),
        }
    }

    /// Why writes are refused for good (a failed sync of the SQLite WAL).
    pub fn failure(&self) -> Option<String> {
        match self {
            Writer::Sqlite { writer, .. } => writer.failure(),
            #[cfg(feature = "postgres")]
            Writer::Postgres { .. } => None,
        }
    }

    /// The SQLite writer's WAL checkpoint from `conn` (a connection of its
    /// own); nothing to do on PostgreSQL.
    pub fn checkpoint(&self, conn: &Connection) -> Result<i64, StoreError> {
        match self {
            Writer::Sqlite { writer, .. } => writer.checkpoint(conn),
            #[cfg(feature = "postgres")]
            Writer::Postgres { .. } => Ok(0),
        }
    }
}

/// A thread's reading connection: `with` hands its closure a `&dyn Tx`.
pub enum Reader {
    Sqlite(Connection),
    /// A connection is taken from the pool for each `with`, and given back.
    #[cfg(feature = "postgres")]
    Postgres(postgres::Pool),
}

impl Reader {
    /// Runs `read` on the connection; `Err` when none could be had (a
    /// SQLite connection never fails here). On PostgreSQL the connection is
    /// taken at `read`'s first statement, so a read that needs none
    /// (`/healthz`) works with the database unreachable, and one that does
    /// fails there as `Unavailable`, answered in its route's own envelope.
    pub fn with<T>(&mut self, read: impl FnOnce(&dyn Tx) -> T) -> Result<T, StoreError> {
        match self {
            Reader::Sqlite(conn) => Ok(read(&*conn)),
            #[cfg(feature = "postgres")]
            Reader::Postgres(pool) => {
                let conn = postgres::PgTx::reading_lazily(pool);
                Ok(read(&conn))
            }
        }
    }
}

/// One connection for a command: reads through `Deref` to `&dyn Tx`,
/// writes each in a transaction of its own ([`Db::write`]). One per
/// command: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Db {
    Sqlite(Connection),
    #[cfg(feature = "postgres")]
    Postgres {
        pool: postgres::Pool,
        read: postgres::PgTx<'static>,
    },
}

/// Connections a command's PostgreSQL pool holds: its reading one and one
/// for its writes.
#[cfg(feature = "postgres")]
const COMMAND_CONNECTIONS: usize = 2;

impl Db {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub fn open(target: &Target) -> Result<Db, OpenError> {
        match target {
            Target::Sqlite(path) => Ok(Db::Sqlite(sqlite::open(path)?)),
            #[cfg(feature = "postgres")]
            Target::Postgres(url) => {
                let pool = postgres::open_with(
                    url,
                    postgres::Limits {
                        connections: COMMAND_CONNECTIONS,
                        ..postgres::Limits::default()
                    },
                )?;
                let read = postgres::PgTx::reading(&pool).map_err(|e| OpenError(e.to_string()))?;
                Ok(Db::Postgres { pool, read })
            }
            #[cfg(not(feature = "postgres"))]
            Target::Postgres(_) => Err(no_postgres()),
        }
    }

    /// Runs `work` in one write transaction and commits it, or rolls back
    /// on error. On PostgreSQL `work` may run again (a serialization
    /// failure), so it must do nothing outside the transaction.
    pub fn write<T>(&mut self, work: impl FnMut(&dyn Tx) -> Result<T, Error>) -> Result<T, Error> {
        match self {
            Db::Sqlite(conn) => sqlite::write(conn, work),
            #[cfg(feature = "postgres")]
            Db::Postgres { pool, .. } => pool.write(work),
        }
    }
}

impl std::ops::Deref for Db {
    type Target = dyn Tx;
    fn deref(&self) -> &(dyn Tx + 'static) {
        match self {
            Db::Sqlite(conn) => conn,
            #[cfg(feature = "postgres")]
            Db::Postgres { read, .. } => read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_postgres_and_anything_else_a_file() {
        assert_eq!(
            Target::parse("postgres://u:p@h/db"),
            Target::Postgres("postgres://u:p@h/db".into())
        );
        assert_eq!(
            Target::parse("PostgreSQL://h/db"),
            Target::Postgres("PostgreSQL://h/db".into())
        );
        assert_eq!(Target::parse("./authmd.db"), Target::Sqlite("./authmd.db".into()));
        assert_eq!(Target::parse("postgres.db"), Target::Sqlite("postgres.db".into()));
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        let shown = Target::parse("postgres://authmd:s3cret@db.example:5432/authmd?sslmode=require").to_string();
        assert_eq!(shown, "postgres://db.example:5432/authmd");
        assert!(!shown.contains("s3cret"));
        assert_eq!(Target::parse("/var/lib/authmd.db").to_string(), "/var/lib/authmd.db");
    }
}
