//! A real PostgreSQL server for authmd's tests and its benchmark tool:
//! Debian's packages (the newest `/usr/lib/postgresql/<version>/bin`), a
//! fresh cluster made by initdb in a temp dir, listening on a free loopback
//! port with its unix socket in that dir, trust authentication for the
//! `postgres` user (loopback only), and the settings its caller gives
//! ([`DURABLE`]: every acknowledged commit is on disk).
//!
//! Two ways to run one:
//! - [`Server`], a server of its owner's: it can be stopped, paused,
//!   resumed and started again on the same port and data dir, and dropping
//!   it stops it (immediate shutdown) and removes its dir. Were the owner's
//!   process killed instead, the postmaster gets `SIGKILL` (`setpriv
//!   --pdeathsig`) and its backends exit after it.
//! - [`start_until_exit`], one server for the rest of the process (a test
//!   process's shared server, held in a static whose `Drop` never runs). It
//!   runs under a small `sh` supervisor that, on `SIGTERM`, shuts postgres
//!   down (`SIGQUIT`: immediate) and removes the temp dir, and the
//!   supervisor is sent that signal twice over: at exit, by an `atexit`
//!   handler that then waits for the supervisor, so no server is left once
//!   the process has exited (libtest leaves through `exit` on success and
//!   on failure alike); and when the process dies any other way (killed,
//!   aborted), by the kernel: the supervisor is started with `setpriv
//!   --pdeathsig TERM` from a thread that lives as long as the process (the
//!   death signal follows the thread that forked, and test threads end). A
//!   server that dies on its own keeps its dir, so its log can be read.
//!
//! initdb and postgres refuse to run as root: as root, both run as the
//! system user `authmd-pg` (created here if missing), which owns the temp
//! dir. The death signal and the change of user are given to one `setpriv`,
//! as the kernel clears a process's death signal when its user changes.
//!
//! Not here: databases, roles, schemas (the caller's SQL), TLS.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The user initdb and postgres run as when the caller runs as root.
const SERVER_USER: &str = "authmd-pg";
const START_LIMIT: Duration = Duration::from_secs(60);

/// A production server's durability, said explicitly rather than left to
/// the defaults: a commit is acknowledged once its WAL is flushed to disk,
/// and a page's first write after a checkpoint is logged whole, so a crash
/// mid-write can be repaired.
pub const DURABLE: &[(&str, &str)] = &[
    ("fsync", "on"),
    ("synchronous_commit", "on"),
    ("full_page_writes", "on"),
];

/// The supervisor: `$1` is the temp dir, the rest the server's command.
const SUPERVISOR: &str = r#"
dir=$1; shift
trap 'kill -QUIT "$pg" 2>/dev/null; wait "$pg"; rm -rf "$dir"; exit 0' TERM
"$@" &
pg=$!
wait "$pg"
"#;

/// A fresh cluster (initdb's data dir in a temp dir of its own) and the
/// port its server listens on; running or not.
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_root: bool,
    /// `name=value`, each given to postgres as `-c`.
    settings: Vec<String>,
}

impl Cluster {
    /// initdb in a new temp dir named from `prefix` (kept when the server
    /// dies on its own: its log outlives a failed test), on a free port,
    /// owned by the server's user when running as root. Not started.
    pub fn new(prefix: &str, settings: &[(&str, &str)]) -> Cluster {
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
        let cluster = Cluster {
            port: free_port(),
            dir,
            bin: bin_dir(),
            as_root,
            settings: settings.iter().map(|(name, value)| format!("{name}={value}")).collect(),
        };
        let initdb = cluster
            .as_server_user(&cluster.bin.join("initdb"), None)
            .arg("-D")
            .arg(cluster.dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"])
            .current_dir(&cluster.dir)
            .output()
            .expect("initdb");
        assert!(
            initdb.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        cluster
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Writes `name` into the data dir with `mode`, owned by the server's
    /// user (postgres refuses a key file that others may read or that its
    /// user does not own).
    pub fn install(&self, name: &str, contents: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join("data").join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        if self.as_root {
            let (uid, gid) = server_user();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown to the server's user");
        }
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

    /// Cuts every client connection (`pg_terminate_backend`), the server
    /// staying up.
    pub fn cut_connections(&self) {
        self.psql(
            "postgres",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
        );
    }

    pub fn accepts(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p", &self.port.to_string()])
            .status()
            .expect("pg_isready")
            .success()
    }

    /// The temp dir (data dir, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Waits until the server accepts connections, and panics with its log
    /// if it does not within [`START_LIMIT`].
    fn wait_until_accepting(&self) {
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

    /// The server's command line, as the server's user when running as root,
    /// sent `death` (a signal's name) when the thread that starts it ends.
    fn postgres(&self, death: Option<&str>) -> Command {
        let mut command = self.as_server_user(&self.bin.join("postgres"), death);
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for setting in &self.settings {
            command.args(["-c", setting]);
        }
        command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    /// `program` as [`SERVER_USER`] when running as root, else as it is,
    /// with a death signal when `death` names one.
    fn as_server_user(&self, program: &Path, death: Option<&str>) -> Command {
        if !self.as_root && death.is_none() {
            return Command::new(program);
        }
        let mut command = Command::new("setpriv");
        if let Some(signal) = death {
            command.args(["--pdeathsig", signal]);
        }
        if self.as_root {
            command.args(["--reuid", SERVER_USER, "--regid", SERVER_USER, "--clear-groups"]);
        }
        command.arg("--").arg(program);
        command
    }
}

/// A PostgreSQL server of its owner's (see the module's header).
pub struct Server {
    cluster: Cluster,
    postmaster: Option<Child>,
}

impl Server {
    /// A new cluster ([`Cluster::new`]), started.
    pub fn new(prefix: &str, settings: &[(&str, &str)]) -> Server {
        let mut server = Server {
            cluster: Cluster::new(prefix, settings),
            postmaster: None,
        };
        server.start();
        server
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The postmaster's pid while it runs (its backends are its children).
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().map(Child::id)
    }

    /// Starts the server (again) on its port and data dir, and waits until
    /// it accepts connections.
    pub fn start(&mut self) {
        assert!(self.postmaster.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cluster.log_path())
            .expect("server log");
        let child = self
            .cluster
            .postgres(Some("KILL"))
            // Its own process group, so a pause reaches every backend.
            .process_group(0)
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.postmaster = Some(child);
        self.cluster.wait_until_accepting();
    }

    /// Appends `lines` to the data dir's `postgresql.conf` and restarts the
    /// server, so they hold from now on (and after any later restart).
    pub fn configure(&mut self, lines: &str) {
        use std::io::Write;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.cluster.dir.join("data").join("postgresql.conf"))
            .expect("postgresql.conf");
        writeln!(conf, "\n{lines}").expect("write postgresql.conf");
        drop(conf);
        self.stop();
        self.start();
    }

    /// Stops the server (immediate shutdown: every connection is cut) and
    /// waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.postmaster.take() {
            self.signal_group(&child, libc::SIGCONT);
            // SAFETY: `kill` on the pid of this process's own unreaped child.
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            child.wait().expect("wait for postgres");
        }
    }

    /// Pauses every process of the server: connections stay open, nothing
    /// answers on them, new ones are accepted by the kernel and then hang.
    pub fn pause(&self) {
        if let Some(child) = &self.postmaster {
            self.signal_group(child, libc::SIGSTOP);
        }
    }

    pub fn resume(&self) {
        if let Some(child) = &self.postmaster {
            self.signal_group(child, libc::SIGCONT);
        }
    }

    fn signal_group(&self, postmaster: &Child, signal: i32) {
        // SAFETY: the process group this struct's unreaped child leads.
        unsafe { libc::killpg(postmaster.id() as i32, signal) };
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.cluster.dir);
    }
}

/// The supervisor's pid, for [`stop_at_exit`]; 0 before it starts.
static SUPERVISOR_PID: AtomicI32 = AtomicI32::new(0);

/// A new cluster's server, running until the process exits or dies (see
/// the module's header); one per process.
pub fn start_until_exit(prefix: &str, settings: &[(&str, &str)]) -> Cluster {
    assert_eq!(
        SUPERVISOR_PID.load(Ordering::SeqCst),
        0,
        "one server until exit per process"
    );
    let cluster = Cluster::new(prefix, settings);
    let postgres = cluster.postgres(None);
    let mut supervisor = Command::new("setpriv");
    supervisor
        .args(["--pdeathsig", "TERM", "--", "sh", "-c", SUPERVISOR, "sh"])
        .arg(&cluster.dir)
        .arg(postgres.get_program())
        .args(postgres.get_args())
        .current_dir(&cluster.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(cluster.log_path()).expect("server log"));
    // The death signal is sent when the thread that forked ends, so that
    // thread must live as long as the process.
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
    cluster.wait_until_accepting();
    cluster
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
        // 9: another process created it meanwhile.
        assert!(
            added.status.success() || added.status.code() == Some(9),
            "useradd {SERVER_USER}: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
    (id("-u").expect("uid"), id("-g").expect("gid"))
}
