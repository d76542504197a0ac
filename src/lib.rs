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

#![forbid(unsafe_code)]

pub mod cli;
pub mod core;
pub mod discovery;
pub mod email;
pub mod embed;
pub mod error;
pub mod fetch;

pub mod http;
pub mod jose;
pub mod keys;
pub mod log;
pub mod mail;
pub mod metrics;
pub mod model;
pub mod phone;
pub mod proto;
pub mod ratelimit;
pub mod secrets;
pub mod settings;
pub mod site;
pub mod store;
pub mod sweeper;
pub mod time;
pub mod upstream;
pub mod url;

#[cfg(test)]
mod layout_tests;

pub use core::guard::Caller;
pub use embed::{Guard, Refusal, Running, ServerOptions, start_server};
