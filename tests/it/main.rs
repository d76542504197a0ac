//! The integration tests: one test binary (one link, one run) whose modules
//! each cover one area, against the real `authmd` binary on loopback or the
//! server in this process (`common::InProcess`). Regression tests cite their issue.

mod common;

mod account;
mod anonymous;
mod backup;
mod bad_input;
mod browser;
mod ceremony;
mod claim;
mod claim_states;
mod cli;
mod cli_safety;
mod crash;
#[cfg(feature = "postgres")]
mod cross_node;
mod discovery;
mod edge;
mod examples;
mod gateway;
mod id_jag;
mod identity;
mod keys;
mod mail;
mod malformed;
#[cfg(feature = "postgres")]
mod migrate;
mod operations;
mod pages_for_people;
#[cfg(feature = "postgres")]
mod pg_faults;
#[cfg(feature = "postgres")]
mod pg_tls;
mod release;
#[cfg(feature = "postgres")]
mod serve_postgres;
mod signin;
#[cfg(feature = "postgres")]
mod store_differential;
#[cfg(feature = "postgres")]
mod store_postgres;
#[cfg(feature = "postgres")]
mod store_two_nodes;
mod vectors;
mod vm;
