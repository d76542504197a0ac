//! The one integration-test helper: [`TestServer`] runs the real `authmd`
//! binary on `127.0.0.1:0` against a real SQLite file in a temp dir, and
//! prints the server's stderr when a test fails.

#![allow(dead_code)] // each test file uses a different part of this helper

pub mod postgres;
pub mod smtp;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authmd::time::Clock;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_authmd");

/// Every rate limit at 0 (no limit): most tests register more than five
/// times an hour from one address.
fn rate_limits_off() -> Vec<(&'static str, &'static str)> {
    authmd::setting_keys()
        .filter(|key| key.starts_with("rate_limit.") && *key != "rate_limit.window_secs")
        .map(|key| (key, "0"))
        .collect()
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub base: String,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    extra_env: Vec<(String, String)>,
    extra_args: Vec<String>,
    /// A program that runs the binary (`prlimit --nofile=...`), if any.
    launcher: Vec<String>,
    /// `127.0.0.1:0` at first; the bound address after, so a restart keeps
    /// the URL (and with it the audience tokens were minted for).
    listen: String,
    /// The PostgreSQL database it runs on (`--db URL`); `None`: the SQLite
    /// file `authmd.db` in `dir`.
    url: Option<String>,
    /// Whether `serve` gets `--db`; `false`: its environment names the
    /// database (`AUTHMD_DB_FILE`), and only the CLI helpers use `url`.
    db_arg: bool,
}

/// `AUTHMD_TEST_BACKEND=postgres`: every [`TestServer`] runs on a fresh
/// PostgreSQL database of the fixture's server instead of a SQLite file.
pub fn postgres_backend() -> bool {
    std::env::var("AUTHMD_TEST_BACKEND").is_ok_and(|v| v == "postgres")
}

/// An HTTP answer, read fully.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts a SPEC.md section 10 error body with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status; body: {}", self.body);
        let body = self.json();
        assert_eq!(body["error"], code, "error code; body: {}", self.body);
        let message = body["message"].as_str().expect("message is a string");
        assert!(!message.is_empty());
        assert_eq!(body["error_description"], body["message"]);
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(&[], &[])
    }

    /// Starts with extra `serve` arguments and environment variables.
    /// Starts with extra `serve` arguments and environment variables. Rate
    /// limits are off, as most tests register more than five times an hour
    /// from one address; [`TestServer::start_rate_limited`] keeps the defaults.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        if postgres_backend() {
            return TestServer::start_on(&postgres::database(), args, env);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        authmd::configure(&dir.path().join("authmd.db"), &rate_limits_off()).expect("configure the database");
        TestServer::start_in(dir, args, env, None)
    }

    /// [`TestServer::start_with`] on a SQLite file whatever
    /// `AUTHMD_TEST_BACKEND` says: for tests of SQLite itself (backup, migrate).
    pub fn start_sqlite(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        authmd::configure(&dir.path().join("authmd.db"), &rate_limits_off()).expect("configure the database");
        TestServer::start_in(dir, args, env, None)
    }

    /// Starts on the PostgreSQL database `url` (rate limits off, as
    /// [`TestServer::start_with`]), in a temp dir of its own (its outbox):
    /// several servers on one URL are several nodes on one database.
    pub fn start_on(url: &str, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        authmd::configure_db(&authmd::DbTarget::parse(url), &rate_limits_off()).expect("configure the database");
        TestServer::start_in(tempfile::tempdir().expect("temp dir"), args, env, Some(url.to_string()))
    }

    /// [`TestServer::start_on`] without `--db` on the server's command line:
    /// `env` names the database (`AUTHMD_DB_FILE`, a file holding `url`).
    /// The CLI helpers still pass `--db url`.
    pub fn start_db_from_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        authmd::configure_db(&authmd::DbTarget::parse(url), &rate_limits_off()).expect("configure the database");
        let mut server =
            TestServer::unstarted(tempfile::tempdir().expect("temp dir"), args, env, Some(url.to_string()));
        server.db_arg = false;
        server.boot();
        server
    }

    /// Starts the binary through `launcher` (for example `prlimit --nofile=200:200`).
    pub fn start_under(launcher: &[&str], args: &[&str]) -> TestServer {
        let mut server = TestServer::start_with(args, &[]);
        server.stop();
        server.launcher = launcher.iter().map(|a| a.to_string()).collect();
        server.boot();
        server
    }

    pub fn start_rate_limited(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let url = postgres_backend().then(postgres::database);
        TestServer::start_in(tempfile::tempdir().expect("temp dir"), args, env, url)
    }

    fn start_in(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)], url: Option<String>) -> TestServer {
        let mut server = TestServer::unstarted(dir, args, env, url);
        server.boot();
        server
    }

    fn unstarted(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)], url: Option<String>) -> TestServer {
        TestServer {
            dir,
            base: String::new(),
            child: None,
            stderr: Arc::new(Mutex::new(String::new())),
            extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            launcher: Vec::new(),
            listen: "127.0.0.1:0".into(),
            url,
            db_arg: true,
        }
    }

    fn boot(&mut self) {
        let mut command = match self.launcher.split_first() {
            None => Command::new(BIN),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
        };
        if self.db_arg {
            command.arg("--db").arg(self.db());
        }
        command
            .args(["serve", "--listen", &self.listen, "--workers", "4"])
            .args(&self.extra_args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // The tests' providers serve on 127.0.0.1; a test may set it to false.
            .env("AUTHMD_ALLOW_LOOPBACK_FETCH", "true")
            .envs(self.extra_env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start authmd");
        let stderr = child.stderr.take().expect("stderr");
        let sink = self.stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("read the listening line");
        self.child = Some(child);
        let base = first
            .trim()
            .strip_prefix("authmd listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}; stderr:\n{}", self.stderr()));
        self.base = base.to_string();
        if let Some(addr) = base.strip_prefix("http://127.0.0.1:") {
            self.listen = format!("127.0.0.1:{addr}");
        }
    }

    /// `authmd config set KEY VALUE`, in effect when this returns: it waits
    /// for the server to log that it reloaded its settings.
    pub fn set(&self, key: &str, value: &str) {
        let reloads = || self.stderr().matches("settings reloaded").count();
        let before = reloads();
        self.cli_ok(&["config", "set", key, value]);
        assert!(
            self.eventually(Duration::from_secs(10), || reloads() > before),
            "the server did not reload its settings; stderr:\n{}",
            self.stderr()
        );
    }

    /// The address the server bound, from its start-up log line: the one to
    /// talk to when `--base-url` names another (a load balancer's, say).
    pub fn listening_addr(&self) -> String {
        let logged = || self.stderr().lines().any(|l| l.contains(" listening on "));
        assert!(
            self.eventually(Duration::from_secs(5), logged),
            "no start-up log line; stderr:\n{}",
            self.stderr()
        );
        let stderr = self.stderr();
        let line = stderr.lines().find(|l| l.contains(" listening on ")).unwrap();
        line.split(" listening on ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap()
            .to_string()
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Stops the server with SIGTERM and waits; returns its exit status and the time it took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("server running");
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        let status = child.wait().expect("wait");
        (status, started.elapsed())
    }

    /// Waits for a server that was already sent a signal.
    pub fn stop_after_signal(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("server running");
        let started = Instant::now();
        let status = child.wait().expect("wait");
        (status, started.elapsed())
    }

    /// Starts again after the process died (killed by the test).
    pub fn restart_after_crash(&mut self) {
        assert!(self.child.is_none(), "the server still runs");
        self.boot();
    }

    pub fn restart(&mut self) {
        let (status, _) = self.stop();
        assert!(
            status.success(),
            "server exited with {status}; stderr:\n{}",
            self.stderr()
        );
        self.boot();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

/// HTTP over a fresh loopback connection per request, to whichever server.
pub trait Client {
    /// `http://127.0.0.1:PORT`.
    fn base(&self) -> &str;
    /// What to print when no answer came.
    fn log(&self) -> String;
    /// Its database file.
    fn db(&self) -> PathBuf;
    /// Where its `file:` mail transport writes.
    fn outbox_dir(&self) -> PathBuf;

    /// Messages the default `file:` transport wrote, oldest first.
    fn outbox(&self) -> Vec<Mail> {
        let dir = self.outbox_dir();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).unwrap());
        files
            .iter()
            .map(|p| parse_mail(&std::fs::read_to_string(p).unwrap()))
            .collect()
    }

    /// Recipients of the messages queued in the database, oldest first: the
    /// committed state, complete once the request that queued them was
    /// answered (a claim mail is queued in the request's own transaction),
    /// whether or not the sender thread delivered them yet.
    fn queued_mail(&self) -> Vec<String> {
        let db = self.db();
        if let Some(name) = db
            .to_str()
            .filter(|d| d.starts_with("postgres://"))
            .and_then(|d| d.rsplit('/').next())
        {
            let out = postgres::server().psql(name, "SELECT recipient FROM outbox ORDER BY id");
            return out.lines().map(str::to_string).collect();
        }
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut stmt = conn.prepare("SELECT recipient FROM outbox ORDER BY id").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    /// Waits for the outbox to hold `count` messages and returns them.
    fn wait_for_mail(&self, count: usize) -> Vec<Mail> {
        let found = self.eventually(Duration::from_secs(5), || self.outbox().len() >= count);
        let mail = self.outbox();
        assert!(found, "expected {count} messages, found {}", mail.len());
        mail
    }

    /// Runs `authmd --db <this db> ARGS`.
    fn cli(&self, args: &[&str]) -> Output {
        cli(&self.db(), args)
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "authmd {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Polls `check` until it holds or `limit` passes.
    fn eventually(&self, limit: Duration, mut check: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        check()
    }
    /// Events of one name from `authmd audit --json`.
    fn events(&self, name: &str) -> Vec<Value> {
        self.cli_ok(&["audit", "--json", "--event", name])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    fn get_with_token(&self, path: &str, token: &str) -> Reply {
        self.request("GET", path, &[("Authorization", &format!("Bearer {token}"))], b"")
    }

    fn post_json(&self, path: &str, body: &str) -> Reply {
        self.request("POST", path, &[("Content-Type", "application/json")], body.as_bytes())
    }

    /// One request over a fresh connection, written by hand so tests can send
    /// exactly the bytes they mean (bad UTF-8, odd headers, lying lengths).
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (name, value) in headers {
            head += &format!("{name}: {value}\r\n");
        }
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"))
        {
            head += &format!("Content-Length: {}\r\n", body.len());
        }
        head += "\r\n";
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(&bytes)
    }

    /// Sends raw bytes and reads the response until the server closes.
    fn raw(&self, bytes: &[u8]) -> Reply {
        let addr = self.base().trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server may answer (and close) before taking a whole oversized body.
        let _ = stream.write_all(bytes);
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        parse_reply(&buf).unwrap_or_else(|| {
            panic!(
                "no HTTP reply to {:?}; stderr:\n{}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]),
                self.log()
            )
        })
    }

    /// Registers anonymously; returns the response body.
    fn register_anonymous(&self) -> Value {
        let reply = self.post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }
}

impl Client for TestServer {
    fn base(&self) -> &str {
        &self.base
    }

    fn outbox_dir(&self) -> PathBuf {
        self.dir.path().join("authmd-outbox")
    }

    /// The SQLite file, or the PostgreSQL URL (as a path: what `--db` takes).
    fn db(&self) -> PathBuf {
        match &self.url {
            Some(url) => PathBuf::from(url),
            None => self.dir.path().join("authmd.db"),
        }
    }

    fn log(&self) -> String {
        self.stderr()
    }
}

/// authmd's server in this process (`authmd::start_server`) on a real
/// SQLite file and a real socket, with clocks that move only when told:
/// every TTL, expiry and rate-limit window is tested by moving the clock,
/// never by sleeping. Settings changes take effect at once ([`InProcess::set`]).
pub struct InProcess {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub clock: Arc<authmd::time::FixedClock>,
    pub ticker: Arc<authmd::time::ManualTicker>,
    running: Option<authmd::Running>,
}

impl InProcess {
    /// Rate limits off, as [`TestServer::start`] has them.
    pub fn start() -> InProcess {
        InProcess::start_with(false, &rate_limits_off())
    }

    /// With these settings stored before it starts (rate limits at their defaults otherwise).
    pub fn start_with(trust_proxy: bool, settings: &[(&str, &str)]) -> InProcess {
        InProcess::launch(None, authmd::time::SystemClock.now(), trust_proxy, settings)
    }

    /// Serving as `base_url` (its issuer and audience; [`Client::base`] stays
    /// the loopback address), its clock standing at `now`, rate limits off
    /// and these settings: for tokens minted for another service at another
    /// time, such as the shared vectors.
    pub fn start_at(base_url: &str, now: authmd::time::UnixMs, settings: &[(&str, &str)]) -> InProcess {
        let mut all = rate_limits_off();
        all.extend_from_slice(settings);
        InProcess::launch(Some(base_url.to_string()), now, false, &all)
    }

    fn launch(
        base_url: Option<String>,
        now: authmd::time::UnixMs,
        trust_proxy: bool,
        settings: &[(&str, &str)],
    ) -> InProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("authmd.db");
        authmd::configure(&db, settings).expect("configure the database");
        let clock = Arc::new(authmd::time::FixedClock::at(now));
        let ticker = Arc::new(authmd::time::ManualTicker::default());
        let running = authmd::start_server(authmd::ServerOptions {
            db: db.into(),
            listen: "127.0.0.1:0".into(),
            base_url,
            workers: 4,
            clock: clock.clone(),
            ticker: ticker.clone(),
            mail: authmd::MailTransport::parse(&format!("file:{}", dir.path().join("outbox").display())).unwrap(),
            trust_proxy,
            upstream: None,
            edge: Default::default(),
            allow_loopback_fetch: true,
        })
        .expect("start authmd in process");
        InProcess {
            base: format!("http://{}", running.local_addr),
            dir,
            clock,
            ticker,
            running: Some(running),
        }
    }

    /// `authmd config set KEY VALUE`, in effect when this returns.
    pub fn set(&self, key: &str, value: &str) {
        let out = cli(&self.db(), &["config", "set", key, value]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.running
            .as_ref()
            .unwrap()
            .reload_settings()
            .expect("reload the settings");
    }

    /// Moves both clocks (wall and monotonic) forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance_secs(by.as_secs() as i64);
        self.ticker.advance(by);
    }
}

impl Client for InProcess {
    fn base(&self) -> &str {
        &self.base
    }

    fn outbox_dir(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("authmd.db")
    }

    fn log(&self) -> String {
        "(in process: the log went to this test's stderr)".into()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown(Duration::from_secs(5));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- authmd stderr ----\n{}", self.stderr());
        }
    }
}

/// SPEC-v0.7 4.3: an ID-JAG presented at `POST /agent/identity`.
pub fn identity_assertion(server: &impl Client, token: &str) -> Reply {
    let body = serde_json::json!({
        "type": "identity_assertion",
        "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
        "assertion": token,
    });
    server.post_json("/agent/identity", &body.to_string())
}

/// Runs `authmd --db DB ARGS`. Like the servers, it may fetch from
/// loopback addresses: `provider add` checks the tests' providers, which
/// serve on 127.0.0.1 (issue 15).
pub fn cli(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTHMD_ALLOW_LOOPBACK_FETCH", "true")
        .output()
        .expect("run authmd")
}

/// A new, empty (migrated) SQLite database `name` in `dir`: commands other
/// than `serve` refuse a file that does not exist (issue 15).
pub fn new_db(dir: &Path, name: &str) -> PathBuf {
    let db = dir.join(name);
    authmd::configure(&db, &[]).expect("create the database");
    db
}

fn parse_reply(buf: &[u8]) -> Option<Reply> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Some(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

/// One delivered message, decoded: headers and the text and HTML parts.
#[derive(Debug, Clone)]
pub struct Mail {
    pub raw: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The claim link in the plain-text part.
    pub fn link(&self) -> String {
        let start = self
            .text
            .find("http")
            .unwrap_or_else(|| panic!("no link in {}", self.text));
        self.text[start..].split_whitespace().next().unwrap().to_string()
    }

    /// The link's path and query, to request from the test server.
    pub fn link_path(&self) -> String {
        let link = self.link();
        let after_scheme = link.split_once("://").unwrap().1;
        after_scheme[after_scheme.find('/').unwrap()..].to_string()
    }

    pub fn token(&self) -> String {
        self.link().split("token=").nth(1).unwrap().to_string()
    }

    /// The six digits of a sign-in mail (SPEC-v0.7 7.1).
    pub fn signin_code(&self) -> String {
        let at = self.text.find("Your code: ").expect("a code in the mail") + "Your code: ".len();
        self.text[at..at + 6].to_string()
    }
}

/// Parses an RFC 5322 message with a multipart/alternative body, decoding
/// quoted-printable and base64 parts.
pub fn parse_mail(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let header = |block: &str, name: &str| -> String {
        let unfolded = block.replace("\n ", " ").replace("\n\t", " ");
        unfolded
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let content_type = header(head, "Content-Type");
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .map(|b| b.trim_matches('"').to_string());
    let (mut text, mut html) = (String::new(), String::new());
    let parts: Vec<String> = match &boundary {
        Some(b) => body.split(&format!("--{b}")).map(str::to_string).collect(),
        None => vec![format!(
            "Content-Type: {content_type}\nContent-Transfer-Encoding: {}\n\n{body}",
            header(head, "Content-Transfer-Encoding")
        )],
    };
    for part in parts {
        let part = part.trim_start_matches('\n');
        let Some((part_head, part_body)) = part.split_once("\n\n") else {
            continue;
        };
        let decoded = match header(part_head, "Content-Transfer-Encoding")
            .to_ascii_lowercase()
            .as_str()
        {
            "quoted-printable" => decode_qp(part_body),
            "base64" => {
                use base64::Engine;
                let compact: String = part_body.split_whitespace().collect();
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).unwrap()).unwrap()
            }
            _ => part_body.to_string(),
        };
        let kind = header(part_head, "Content-Type").to_ascii_lowercase();
        if kind.starts_with("text/plain") {
            text = decoded;
        } else if kind.starts_with("text/html") {
            html = decoded;
        }
    }
    Mail {
        raw: raw.clone(),
        to: header(head, "To"),
        subject: header(head, "Subject"),
        text,
        html,
    }
}

fn decode_qp(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 3 <= bytes.len()
            && let Ok(byte) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Whether the test is about the SQLite file itself (its bytes, its WAL,
/// the file gone, its lock): under `AUTHMD_TEST_BACKEND=postgres` it is
/// skipped, saying so in one line, and this answers true.
pub fn sqlite_only(why: &str) -> bool {
    let skipped = postgres_backend();
    if skipped {
        eprintln!("skipped on PostgreSQL: {why}");
    }
    skipped
}

/// The rows a read-only `sql` (written to run on both SQLite and
/// PostgreSQL) finds in the server's database, on either backend: each row
/// a JSON object by column name, a blob as lower-case hex.
pub fn rows(server: &impl Client, sql: &str) -> Vec<Value> {
    let db = server.db();
    if postgres_backend() {
        let mut conn = pg_conn(&db);
        let wrapped = format!("SELECT coalesce(json_agg(q), '[]')::text FROM ({sql}) q");
        let text: String = conn.query_one(wrapped.as_str(), &[]).unwrap().get(0);
        let Value::Array(rows) = serde_json::from_str(&text).unwrap() else {
            unreachable!()
        };
        // json_agg writes a bytea as "\x<hex>".
        return rows
            .into_iter()
            .map(|mut row| {
                for value in row.as_object_mut().unwrap().values_mut() {
                    if let Some(hex) = value.as_str().and_then(|s| s.strip_prefix("\\x")) {
                        *value = Value::String(hex.to_string());
                    }
                }
                row
            })
            .collect();
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let names: Vec<String> = stmt.column_names().map(|n| n.to_string()).collect();
    stmt.query_map([], |r| {
        let mut row = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            use rusqlite::types::ValueRef;
            let value = match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(x) => Value::from(x),
                ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            };
            row.insert(name.clone(), value);
        }
        Ok(Value::Object(row))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Runs a statement that changes rows (written to run on both backends;
/// [`blob`] spells a blob literal) in the server's database.
pub fn execute(server: &impl Client, sql: &str) {
    let db = server.db();
    if postgres_backend() {
        pg_conn(&db).batch_execute(sql).unwrap();
    } else {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch(sql).unwrap();
    }
}

/// A blob literal in the backend's SQL.
pub fn blob(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if postgres_backend() {
        format!("'\\x{hex}'::bytea")
    } else {
        format!("X'{hex}'")
    }
}

/// A connection of its own to the server's PostgreSQL database (its
/// `--db`, which [`Client::db`] answers as the URL).
fn pg_conn(db: &Path) -> authmd::internals::store::postgres::Conn {
    pg_connection(db.to_str().unwrap())
}

/// A connection of its own to the PostgreSQL database `url`, whatever
/// `AUTHMD_TEST_BACKEND` says: for tests that hold locks or read
/// PostgreSQL's own views (`pg_stat_activity`).
pub fn pg_connection(url: &str) -> authmd::internals::store::postgres::Conn {
    let pool = authmd::internals::store::postgres::open(url).unwrap();
    pool.get().unwrap()
}
