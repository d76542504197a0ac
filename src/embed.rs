//! authmd as a library, for a Rust program that serves its own API: open
//! the database, authenticate bearer tokens in-process, and (optionally) run
//! the registration server on a thread beside it. `examples/embedded.rs` is
//! a hobby API built this way.
//!
//! ```no_run
//! let guard = authmd::Guard::open("authmd.db".as_ref(), "http://127.0.0.1:8080").unwrap();
//! match guard.check(Some("Bearer authmd_sk_..."), "api.read") {
//!     Ok(caller) => println!("hello {}", caller.registration_id()),
//!     Err(refusal) => println!("{} {:?}", refusal.status, refusal.www_authenticate),
//! }
//! ```

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;

use crate::core::Config;
use crate::core::guard::{self, Caller};
use crate::settings::Settings;
use crate::store::prelude::*;
use crate::store::{self, OpenError};
use crate::time::{Clock, SystemClock};

pub use crate::http::server::{Options as ServerOptions, Running, StartError, start as start_server};

/// Opens (creating and migrating if needed) the database at `db` and sets
/// each `(key, value)` as `authmd config set` does: validated, the whole set
/// checked, each change audited; all or none. For a program that configures
/// authmd before it starts the server.
pub fn configure(db: &Path, settings: &[(&str, &str)]) -> Result<(), String> {
    configure_db(&store::Target::from(db), settings)
}

/// [`configure`] on either backend: a SQLite file or a PostgreSQL URL.
pub fn configure_db(db: &store::Target, settings: &[(&str, &str)]) -> Result<(), String> {
    let mut conn = store::Db::open(db).map_err(|e| e.0)?;
    let now_ms = SystemClock.now();
    let mut refused = None;
    let written = conn.write(|tx| {
        for (key, value) in settings {
            if let Err(why) = crate::core::configure::set(tx, key, value, now_ms)? {
                // An error rolls back the settings set before this one.
                refused = Some(why);
                return Err(crate::error::Error::InvalidRequest(String::new()));
            }
        }
        Ok(())
    });
    match refused {
        Some(why) => Err(why),
        None => written.map_err(|e| e.to_string()),
    }
}

/// Authenticates bearer tokens against an authmd database.
pub struct Guard {
    conn: Mutex<Connection>,
    base_url: String,
    clock: std::sync::Arc<dyn Clock>,
}

/// Why a request was refused, ready to send: the status, the
/// `WWW-Authenticate` challenge and the JSON error body of SPEC.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: String,
}

impl Guard {
    /// Opens (creating and migrating if needed) the database; `base_url` is
    /// the authmd server's public URL, named in challenges.
    pub fn open(db: &Path, base_url: &str) -> Result<Guard, OpenError> {
        Guard::open_with_clock(db, base_url, std::sync::Arc::new(SystemClock))
    }

    /// [`Guard::open`] on a given clock (a test's `FixedClock`, say), which
    /// decides when credentials and registrations expire.
    pub fn open_with_clock(db: &Path, base_url: &str, clock: std::sync::Arc<dyn Clock>) -> Result<Guard, OpenError> {
        Ok(Guard {
            conn: Mutex::new(store::open(db)?),
            base_url: base_url.trim_end_matches('/').to_string(),
            clock,
        })
    }

    /// Who presents this `Authorization` header value, if the credential is live.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, Refusal> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        guard::authenticate(&*conn, self.clock.now(), authorization).map_err(|err| self.refusal(&conn, &err))
    }

    /// [`Guard::authenticate`], and the credential must carry `scope`.
    pub fn check(&self, authorization: Option<&str>, scope: &str) -> Result<Caller, Refusal> {
        let caller = self.authenticate(authorization)?;
        caller.require_scope(scope).map_err(|err| {
            let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            self.refusal(&conn, &err)
        })?;
        Ok(caller)
    }

    fn refusal(&self, conn: &Connection, err: &crate::error::Error) -> Refusal {
        let settings = conn
            .stored_settings()
            .ok()
            .and_then(|stored| Settings::from_stored(&stored).ok())
            .unwrap_or_default();
        let response = crate::http::error_response(err, &Config::new(&self.base_url, settings), "embedded");
        Refusal {
            status: response.status,
            www_authenticate: response.header("www-authenticate").map(str::to_string),
            body: String::from_utf8_lossy(&response.body).into_owned(),
        }
    }
}
