//! The store interface: what authmd keeps, as typed functions over one
//! transaction ([`Tx`]), one trait per table, and the rows they take and
//! give. `core` and the flows see only this module; the SQL lives in one
//! implementation per database (`sqlite/`, `postgres/`; `db.rs` holds
//! either behind one type), which is the only code
//! that names a driver.
//!
//! A [`Tx`] is either a write transaction (inside [`Writer::write`] or
//! [`Db::write`]) or a worker's reading connection ([`Reader`]). Writes are made
//! only through the first; the type does not stop a reader from writing,
//! the one write path does (`layout_tests`).
//!
//! Every function answers [`Error`], converted once into the internal error
//! (in `error.rs`), so no driver error travels further than its backend.

pub mod assertions;
pub mod attempts;
pub mod audit;
pub mod credentials;
mod db;
pub mod delegations;
pub mod documents;
pub mod local_keys;
pub mod outbox;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod providers;
pub mod rate_windows;
pub mod registrations;
pub mod replay;
pub mod sessions;
pub mod settings;
pub mod signing_keys;
pub mod sqlite;
pub mod users;

use std::fmt;

pub use db::{Db, Reader, Target, Writer};
#[cfg(test)]
pub(crate) use sqlite::open_temp;
pub use sqlite::{FileIdentity, OpenError, connect, open, write};

/// Why the store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The database is gone or unreachable; retrying later may work.
    Unavailable(String),
    /// Anything else: a failed statement, a corrupt row.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(why) => write!(f, "database unavailable: {why}"),
            Error::Failed(why) => write!(f, "database: {why}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The numbered steps of a backend's schema file (`-- step N` lines, each
/// followed by its SQL up to the next): `(n, sql)` in order. Both backends'
/// files number the same steps.
pub(crate) fn schema_steps(schema: &'static str, file: &str) -> Vec<(u32, &'static str)> {
    let mut steps = Vec::new();
    let mut rest = schema;
    while let Some(start) = rest.find("-- step ") {
        let after = &rest[start + "-- step ".len()..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let number = after[..line_end]
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{file}: `-- step N` needs a number"));
        let body_start = (line_end + 1).min(after.len());
        let body_end = after[body_start..]
            .find("-- step ")
            .map_or(after.len(), |i| body_start + i);
        steps.push((number, &after[body_start..body_end]));
        rest = &after[body_end..];
    }
    steps
}

/// One transaction (or reading connection) of the store: every table's
/// functions. Implemented by each backend, used as `&dyn Tx`.
pub trait Tx:
    assertions::Assertions
    + attempts::Attempts
    + audit::Audit
    + credentials::Credentials
    + delegations::Delegations
    + documents::Documents
    + local_keys::LocalKeys
    + outbox::Outbox
    + providers::Providers
    + rate_windows::RateWindows
    + registrations::Registrations
    + replay::Replay
    + sessions::Sessions
    + settings::Settings
    + signing_keys::SigningKeys
    + users::Users
{
    /// Does the database answer?
    fn ping(&self) -> Result<()>;
}

/// Every table's trait, for code that calls them on a concrete connection
/// (`use crate::store::prelude::*`); through `&dyn Tx` they need no import.
/// Whole, whichever a caller uses.
#[allow(unused_imports)]
pub mod prelude {
    pub use super::Tx;
    pub use super::assertions::Assertions as _;
    pub use super::attempts::Attempts as _;
    pub use super::audit::Audit as _;
    pub use super::credentials::Credentials as _;
    pub use super::delegations::Delegations as _;
    pub use super::documents::Documents as _;
    pub use super::local_keys::LocalKeys as _;
    pub use super::outbox::Outbox as _;
    pub use super::providers::Providers as _;
    pub use super::rate_windows::RateWindows as _;
    pub use super::registrations::Registrations as _;
    pub use super::replay::Replay as _;
    pub use super::sessions::Sessions as _;
    pub use super::settings::Settings as _;
    pub use super::signing_keys::SigningKeys as _;
    pub use super::users::Users as _;
}
