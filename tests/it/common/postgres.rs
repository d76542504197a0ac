//! The real PostgreSQL servers of the tests of the PostgreSQL store: one
//! per test process, started on first use and stopped at exit, each test
//! asking [`database`] for a fresh database of its own; and [`Private`]
//! servers for the fault tests. Both are `authmd_dev::postgres`'s (the
//! benchmark tool starts its server there too), where it says how they are
//! made, started and stopped; these wrappers keep the tests' names. `fsync`
//! and the rest of [`DURABLE`] on, as in production.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use authmd_dev::postgres::{self as dev, Cluster, DURABLE};

pub struct Server {
    pub port: u16,
    cluster: Cluster,
    databases: AtomicU32,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The process's server, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        let cluster = dev::start_until_exit("authmd-pg-", DURABLE);
        Server {
            port: cluster.port,
            cluster,
            databases: AtomicU32::new(0),
        }
    })
}

/// A `postgres://` URL naming a new, empty database on the process's server.
pub fn database() -> String {
    let server = server();
    let name = format!("test_{}", server.databases.fetch_add(1, Ordering::Relaxed));
    server.psql("postgres", &format!("CREATE DATABASE {name}"));
    server.url(&name)
}

impl Server {
    pub fn url(&self, database: &str) -> String {
        self.cluster.url(database)
    }

    /// Runs `sql` in `database` with psql (stopping at the first error) and
    /// returns what it printed, unaligned and without headers.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.cluster.psql(database, sql)
    }

    /// The server's temp dir (data dir, socket, log).
    pub fn dir(&self) -> &Path {
        self.cluster.dir()
    }
}

/// A PostgreSQL server of one test's own, for the fault tests: it can be
/// stopped, paused (`SIGSTOP`, every process of it), resumed and started
/// again on the same port and data dir, leaving the process's shared
/// [`server`] alone. Dropping it stops it (immediate shutdown) and removes
/// its dir.
pub struct Private {
    pub port: u16,
    server: dev::Server,
}

impl Private {
    /// initdb in a temp dir of its own, then [`Private::start`].
    pub fn new() -> Private {
        let server = dev::Server::new("authmd-pg-private-", DURABLE);
        Private {
            port: server.cluster().port,
            server,
        }
    }

    pub fn url(&self) -> String {
        self.server.cluster().url("postgres")
    }

    /// Appends `lines` to the data dir's `postgresql.conf` and restarts the
    /// server, so they hold from now on (and after any later restart).
    pub fn configure(&mut self, lines: &str) {
        self.server.configure(lines);
    }

    /// Turns TLS on (`ssl = on`) with `cert_pem` (the server's certificate,
    /// then any intermediates) and its `key_pem`, and restarts. Clients may
    /// still connect without TLS (trust on every `host` line).
    pub fn enable_tls(&mut self, cert_pem: &[u8], key_pem: &[u8]) {
        let cluster = self.server.cluster();
        cluster.install("server.crt", cert_pem, 0o644);
        cluster.install("server.key", key_pem, 0o600);
        self.configure("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'");
    }

    /// Starts the server (again) on its port and data dir, and waits until
    /// it accepts connections.
    pub fn start(&mut self) {
        self.server.start();
    }

    /// Stops the server (immediate shutdown: every connection is cut) and
    /// waits until it is gone.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Pauses every process of the server: connections stay open, nothing
    /// answers on them, new ones are accepted by the kernel and then hang.
    pub fn pause(&self) {
        self.server.pause();
    }

    pub fn resume(&self) {
        self.server.resume();
    }

    /// Cuts every client connection (`pg_terminate_backend`), the server
    /// staying up.
    pub fn cut_connections(&self) {
        self.server.cluster().cut_connections();
    }

    pub fn log(&self) -> String {
        self.server.cluster().log()
    }
}
