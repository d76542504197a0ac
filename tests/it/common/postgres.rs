//! A real PostgreSQL server for the tests of the PostgreSQL store: Debian's
//! packages (`scripts/test` installs them), one server per test process,
//! started on first use in a temp dir, on a loopback port with its unix
//! socket in that dir, trust authentication for loopback only, `fsync` on.
//! Each test asks [`database`] for a fresh database of its own.
//!
//! Stopping it: a `Drop` on a static never runs. The server runs under a
//! small `sh` supervisor that, on `SIGTERM`, shuts postgres down (`SIGQUIT`:
//! immediate) and removes the temp dir, and the supervisor is sent that
//! signal twice over:
//! - at exit, by an `atexit` handler that then waits for the supervisor, so
//!   no server is left once `cargo test` returns (libtest leaves through
//!   `exit` on success and on failure alike);
//! - when the test process dies any other way (killed, aborted), by the
//!   kernel: the supervisor is started with `setpriv --pdeathsig TERM` from
//!   a thread that lives as long as the process (the death signal follows
//!   the thread that forked, and test threads end).
//!
//! A server that dies on its own keeps its dir, so its log can be read.
//!
//! initdb and postgres refuse to run as root: as root, both run as the
//! system user `authmd-pg` (created here if missing), which owns the temp dir.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::smtp::free_port;

/// The user initdb and postgres run as when the tests run as root.
const SERVER_USER: &str = "authmd-pg";
const START_LIMIT: Duration = Duration::from_secs(60);

/// The supervisor: `$1` is the temp dir, the rest the server's command.
const SUPERVISOR: &str = r#"
dir=$1; shift
trap 'kill -QUIT "$pg" 2>/dev/null; wait "$pg"; rm -rf "$dir"; exit 0' TERM
"$@" &
pg=$!
wait "$pg"
"#;

pub struct Server {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    databases: AtomicU32,
}

static SERVER: OnceLock<Server> = OnceLock::new();
/// The supervisor's pid, for [`stop_at_exit`]; 0 before it starts.
static SUPERVISOR_PID: AtomicI32 = AtomicI32::new(0);

/// The process's server, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(Server::start)
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
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs `sql` in `database` with psql (stopping at the first error) and
    /// returns what it printed, unaligned and without headers.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql -c {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn start() -> Server {
        let bin = bin_dir();
        let (dir, as_root) = new_cluster(&bin, "authmd-pg-");
        let data = dir.join("data");

        let port = free_port();
        let log = dir.join("postgres.log");
        let mut postgres = unprivileged(as_root, &bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"]);
        let mut supervisor = Command::new("setpriv");
        supervisor
            .args(["--pdeathsig", "TERM", "--", "sh", "-c", SUPERVISOR, "sh"])
            .arg(&dir)
            .arg(postgres.get_program())
            .args(postgres.get_args())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("server log"));
        // The death signal is sent when the thread that forked ends, so
        // that thread must live as long as the process.
        let (started, spawned) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres-supervisor".into())
            .spawn(move || {
                let child = supervisor.spawn();
                if let Ok(child) = &child {
                    SUPERVISOR_PID.store(child.id() as i32, Ordering::SeqCst);
                    // SAFETY: registers a plain `extern "C" fn()` that only
                    // calls async-signal-safe kill and waitpid.
                    assert_eq!(unsafe { libc::atexit(stop_at_exit) }, 0, "atexit");
                }
                let failed = child.as_ref().err().map(|e| e.to_string());
                started.send(failed).unwrap();
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        if let Some(why) = spawned.recv().unwrap() {
            panic!("cannot start postgres (setpriv, sh): {why}");
        }

        let deadline = Instant::now() + START_LIMIT;
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p", &port.to_string()])
                .status()
                .expect("pg_isready");
            if ready.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start within {START_LIMIT:?}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            port,
            dir,
            bin,
            databases: AtomicU32::new(0),
        }
    }

    /// The server's temp dir (data dir, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding initdb.
fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max();
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "no {}/<version>/bin/initdb: scripts/test installs Debian's postgresql",
            root.display()
        ),
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `program` as [`SERVER_USER`] when running as root, else as it is.
fn unprivileged(as_root: bool, program: &Path) -> Command {
    if !as_root {
        return Command::new(program);
    }
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid", SERVER_USER, "--regid", SERVER_USER, "--clear-groups", "--"])
        .arg(program);
    command
}

/// [`SERVER_USER`]'s uid and gid, creating the user if missing.
fn server_user() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, SERVER_USER]).output().expect("id");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().unwrap())
    };
    if id("-u").is_none() {
        let added = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ])
            .output()
            .expect("useradd");
        // 9: another test process created it meanwhile.
        assert!(
            added.status.success() || added.status.code() == Some(9),
            "useradd {SERVER_USER}: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
    (id("-u").expect("uid"), id("-g").expect("gid"))
}

/// Tells the supervisor to stop the server and waits until it has (the
/// supervisor waits for postgres, which waits for its backends).
extern "C" fn stop_at_exit() {
    let pid = SUPERVISOR_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: `pid` is this process's own unreaped child (nothing else
        // waits for it), so the signal and the wait reach only it.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// A temp dir (kept: the server's log outlives a failed test) holding a
/// fresh cluster in `data/`, owned by the server's user when running as
/// root. Returns the dir and whether the server must drop to that user.
fn new_cluster(bin: &Path, prefix: &str) -> (PathBuf, bool) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
        .keep();
    let as_root = is_root();
    if as_root {
        let (uid, gid) = server_user();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the server's temp dir");
    }
    let initdb = unprivileged(as_root, &bin.join("initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"])
        .current_dir(&dir)
        .output()
        .expect("initdb");
    assert!(
        initdb.status.success(),
        "initdb: {}{}",
        String::from_utf8_lossy(&initdb.stdout),
        String::from_utf8_lossy(&initdb.stderr)
    );
    (dir, as_root)
}

/// A PostgreSQL server of one test's own, for the fault tests: it can be
/// stopped, paused (`SIGSTOP`, every process of it), resumed and started
/// again on the same port and data dir, leaving the process's shared
/// [`server`] alone. Dropping it stops it (immediate shutdown) and removes
/// its dir; were the test process killed instead, the postmaster gets
/// `SIGKILL` (`setpriv --pdeathsig`) and its backends exit after it.
pub struct Private {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
    postmaster: Option<std::process::Child>,
}

impl Private {
    /// initdb in a temp dir of its own, then [`Private::start`].
    pub fn new() -> Private {
        let bin = bin_dir();
        let (dir, as_root) = new_cluster(&bin, "authmd-pg-private-");
        let mut server = Private {
            port: free_port(),
            dir,
            bin,
            as_root,
            postmaster: None,
        };
        server.start();
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Appends `lines` to the data dir's `postgresql.conf` and restarts the
    /// server, so they hold from now on (and after any later restart).
    pub fn configure(&mut self, lines: &str) {
        use std::io::Write;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("data").join("postgresql.conf"))
            .expect("postgresql.conf");
        writeln!(conf, "\n{lines}").expect("write postgresql.conf");
        drop(conf);
        self.stop();
        self.start();
    }

    /// Turns TLS on (`ssl = on`) with `cert_pem` (the server's certificate,
    /// then any intermediates) and its `key_pem`, and restarts. Clients may
    /// still connect without TLS (trust on every `host` line).
    pub fn enable_tls(&mut self, cert_pem: &[u8], key_pem: &[u8]) {
        self.install("server.crt", cert_pem, 0o644);
        // postgres refuses a key that others may read, or that its user
        // does not own.
        self.install("server.key", key_pem, 0o600);
        self.configure("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'");
    }

    /// Writes `name` into the data dir with `mode`, owned by the server's user.
    fn install(&self, name: &str, contents: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join("data").join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        if self.as_root {
            let (uid, gid) = server_user();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown to the server's user");
        }
    }

    /// Starts the server (again) on its port and data dir, and waits until
    /// it accepts connections.
    pub fn start(&mut self) {
        assert!(self.postmaster.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("server log");
        let mut command = Command::new("setpriv");
        command.args(["--pdeathsig", "KILL"]);
        if self.as_root {
            command.args(["--reuid", SERVER_USER, "--regid", SERVER_USER, "--clear-groups"]);
        }
        let child = command
            .arg("--")
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .current_dir(&self.dir)
            // Its own process group, so a pause reaches every backend.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.postmaster = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        while !self.accepts() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start within {START_LIMIT:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (immediate shutdown: every connection is cut) and
    /// waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.postmaster.take() {
            self.signal_group(libc::SIGCONT);
            // SAFETY: `kill` on the pid of this process's own unreaped child.
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            child.wait().expect("wait for postgres");
        }
    }

    /// Pauses every process of the server: connections stay open, nothing
    /// answers on them, new ones are accepted by the kernel and then hang.
    pub fn pause(&self) {
        self.signal_group(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal_group(libc::SIGCONT);
    }

    /// Cuts every client connection (`pg_terminate_backend`), the server
    /// staying up.
    pub fn cut_connections(&self) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c"])
            .arg("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
            .output()
            .expect("psql");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    fn signal_group(&self, signal: i32) {
        if let Some(child) = &self.postmaster {
            // SAFETY: the process group this struct's child leads.
            unsafe { libc::killpg(child.id() as i32, signal) };
        }
    }

    fn accepts(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p", &self.port.to_string()])
            .status()
            .expect("pg_isready")
            .success()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
