//! The PostgreSQL store (issue 14, DESIGN.md "Growing past one machine"):
//! for now its groundwork: [`open`] a `postgres://` URL into a bounded
//! [`Pool`] (`pool.rs`), with TLS when the URL asks for it, applying the
//! schema steps (`schema/postgres.sql`). The table traits of `store::Tx`
//! are not implemented here yet, and no flow reaches this module.
//!
//! TLS: `sslmode=require` connects over rustls (the ring provider, the
//! webpki-roots CA set, the host name checked); any other mode connects
//! without TLS. `prefer` (the driver's default) is treated as `disable`, as
//! a verifying client cannot fall back quietly when the certificate fails.
//!
//! Every node opens the same database, so the steps must be applied once
//! however many nodes start together: a node takes a transaction-scoped
//! advisory lock ([`SCHEMA_LOCK`]) before it reads which steps are done
//! (the `schema_steps` table), applies the rest and records them in that one
//! transaction. A second node waits for the lock, then finds them done.

mod pool;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use self::pool::{Conn, Limits, Pool};
use crate::store::OpenError;

const SCHEMA: &str = include_str!("../../../schema/postgres.sql");

/// The advisory lock key the schema steps are applied under (any constant
/// the application uses for nothing else: "authmd" in ASCII).
pub const SCHEMA_LOCK: i64 = i64::from_be_bytes(*b"\0\0authmd");

/// How long applying the schema steps may wait for another node's, and
/// each step's statement may run, before opening fails.
pub const SCHEMA_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Opens the database `url` names into a pool with the default
/// [`Limits`], applying the schema steps it lacks.
pub fn open(url: &str) -> Result<Pool, OpenError> {
    open_with(url, Limits::default())
}

/// [`open`] with the pool's bounds given.
pub fn open_with(url: &str, limits: Limits) -> Result<Pool, OpenError> {
    // The driver's parse errors name the option, never its value.
    let mut config: Config = url
        .parse()
        .map_err(|e| OpenError(format!("the database URL does not parse: {e}")))?;
    let target = target(&config);
    let tls = match config.get_ssl_mode() {
        SslMode::Require => Some(tls().map_err(|e| OpenError(format!("{target}: TLS: {e}")))?),
        _ => {
            config.ssl_mode(SslMode::Disable);
            None
        }
    };
    let options = format!(
        "{} -c statement_timeout={}",
        config.get_options().unwrap_or_default(),
        limits.statement_timeout.as_millis()
    );
    config
        .options(options.trim_start())
        .connect_timeout(limits.connect_timeout)
        .tcp_user_timeout(limits.tcp_user_timeout)
        .keepalives(true)
        .keepalives_idle(limits.tcp_user_timeout / 2);
    if config.get_application_name().is_none() {
        config.application_name("authmd");
    }
    let pool = Pool::new(config, tls, limits, target.clone());
    let mut conn = pool.get().map_err(|e| OpenError(e.to_string()))?;
    let applied = migrate(&mut conn).map_err(|e| OpenError(format!("{target}: {e}")))?;
    drop(conn);
    pool.set_steps_applied(applied);
    Ok(pool)
}

/// rustls on the ring provider, verifying against Mozilla's roots.
fn tls() -> Result<MakeRustlsConnect, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `host:port/database` of a URL, for messages: never its password.
fn target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(dir)) => dir.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config.get_dbname().or(config.get_user()).unwrap_or_default();
    format!("{host}:{port}/{database}")
}

/// The numbered steps of `schema/postgres.sql`: `(n, sql)` in order.
fn steps() -> Vec<(u32, &'static str)> {
    let mut steps = Vec::new();
    let mut rest = SCHEMA;
    while let Some(start) = rest.find("-- step ") {
        let after = &rest[start + "-- step ".len()..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let number = after[..line_end]
            .trim()
            .parse()
            .expect("schema/postgres.sql: `-- step N` needs a number");
        let body_start = (line_end + 1).min(after.len());
        let body_end = after[body_start..]
            .find("-- step ")
            .map_or(after.len(), |i| body_start + i);
        steps.push((number, &after[body_start..body_end]));
        rest = &after[body_end..];
    }
    steps
}

/// Applies the schema steps not yet recorded in `schema_steps`, all in one
/// transaction under [`SCHEMA_LOCK`]: all or none, each exactly once however
/// many nodes run this at once. Answers the steps this call applied.
pub fn migrate(client: &mut Client) -> Result<Vec<u32>, String> {
    let steps = steps();
    let latest = steps.last().map_or(0, |s| s.0);
    let mut tx = client.transaction().map_err(|e| e.to_string())?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        SCHEMA_STATEMENT_TIMEOUT.as_millis()
    ))
    .map_err(|e| e.to_string())?;
    // First, before anything reads: under READ COMMITTED each statement
    // after this sees what the lock's previous holder committed.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(|e| format!("waiting for another node's schema steps: {e}"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_steps (
            step        INTEGER PRIMARY KEY,
            applied_ms  BIGINT NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
        )",
    )
    .map_err(|e| e.to_string())?;
    let done: BTreeSet<u32> = tx
        .query("SELECT step FROM schema_steps", &[])
        .map_err(|e| e.to_string())?
        .iter()
        .map(|row| row.get::<_, i32>(0) as u32)
        .collect();
    if let Some(newer) = done.iter().find(|n| **n > latest) {
        return Err(format!(
            "the database has schema step {newer}, newer than this authmd knows ({latest}); use a newer authmd"
        ));
    }
    let mut applied = Vec::new();
    for (number, sql) in steps.into_iter().filter(|s| !done.contains(&s.0)) {
        tx.batch_execute(sql)
            .map_err(|e| format!("schema step {number}: {e}"))?;
        tx.execute("INSERT INTO schema_steps (step) VALUES ($1)", &[&(number as i32)])
            .map_err(|e| e.to_string())?;
        applied.push(number);
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both backends' schemas number the same steps, so a database of
    /// either kind at step N means the same thing.
    #[test]
    fn steps_match_sqlite() {
        let numbers: Vec<u32> = steps().iter().map(|s| s.0).collect();
        let sqlite: Vec<u32> = include_str!("../../../schema.sql")
            .lines()
            .filter_map(|line| line.strip_prefix("-- step "))
            .map(|n| n.trim().parse().unwrap())
            .collect();
        assert_eq!(numbers, sqlite);
        assert_eq!(numbers, (1..=numbers.len() as u32).collect::<Vec<_>>());
    }
}
