//! authmd: the service side of the auth.md agent-registration protocol, as one
//! binary and one SQLite file. See README.md for what it does and how to run
//! it, `../shared/SPEC.md` for the wire contract, and each module's header for
//! what belongs in it.
//!
//! Layers, data flowing one way: `http` (tiny_http workers, the route table,
//! bodies, headers, pages) calls `proto::v0_1` (the wire of SPEC.md: parsing
//! and answers), which calls `core` (the protocol operations, no sockets, the
//! clock passed in), which calls the store interface (`store::Tx`, one trait
//! per table; the SQL in `store::sqlite`). `proto::v0_1::wire` maps every
//! refusal to its wire code in one place.

// Deny, not forbid: one function allows it, the duplicate of a socket
// descriptor in `store::postgres::watchdog`, with its SAFETY note.
#![deny(unsafe_code)]

mod cli;
mod core;
mod discovery;
mod email;
mod embed;
mod error;
mod fetch;

mod http;
mod jose;
mod keys;
mod last_used;
mod log;
mod mail;
mod metrics;
mod model;
mod phone;
mod proto;
mod ratelimit;
mod secrets;
mod settings;
mod site;
mod store;
mod sweeper;
pub mod time;
mod upstream;
mod url;
mod words;

#[cfg(test)]
mod layout_tests;
#[cfg(test)]
mod readme_tests;

pub use cli::{CliError, run as run_cli};
pub use core::guard::Caller;
pub use embed::{Guard, Refusal, Running, ServerOptions, StartError, configure, configure_db, start_server};
pub use error::Error;
pub use http::server::EdgeLimits;
pub use mail::Transport as MailTransport;
pub use settings::keys as setting_keys;
pub use store::OpenError;
/// What `--db` names: a SQLite file or a PostgreSQL URL (`ServerOptions::db`).
pub use store::Target as DbTarget;

/// What the fuzz targets, the benchmark and the integration tests reach
/// into beyond the facade above. Not a stable interface: it moves with the
/// code, and nothing outside this repository should use it.
#[doc(hidden)]
pub mod internals {
    pub mod jose {
        pub use crate::jose::json::object as json_object;
        pub use crate::jose::{Jwks, Policy, TokenKind, parse, verify};
    }
    pub mod model {
        pub use crate::model::{CredentialType, EventName, Generation, RegistrationKind, Status};
    }
    pub mod store {
        pub use crate::store::audit::NewEvent;
        pub use crate::store::credentials::NewCredential;
        #[cfg(feature = "postgres")]
        pub use crate::store::postgres;
        pub use crate::store::registrations::NewRegistration;
        pub use crate::store::{Error, Tx, connect, open, write};
        /// Every table's interface and rows, for the tests that drive both
        /// backends through `&dyn Tx`.
        pub use crate::store::{
            assertions, attempts, audit, credentials, delegations, documents, local_keys, outbox, providers,
            registrations, replay, sessions, settings, signing_keys, users,
        };
    }
    pub use crate::core::signin::safe_return_to;
    pub use crate::email::normalize as normalize_email;
    pub use crate::http::{cookie_value, form_pairs};
    pub use crate::proto::v0_1::{Request as V0_1Request, wire as v0_1_wire};
    pub use crate::proto::v0_7::{TokenRequest, revocation_token};
    pub use crate::secrets::hash;
    pub use crate::time::parse_rfc3339;
    pub use crate::url::{HttpUrl, percent_decode};
}
