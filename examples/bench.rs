//! The benchmark tool: starts the release `authmd` on a fresh database,
//! drives it over HTTP with N concurrent keep-alive clients for a fixed time,
//! and reports requests per second, latency percentiles, errors and the
//! server's peak RSS. Timing never decides a test; this is where it is
//! measured. See BENCHMARKS.md for the commands and the figures.
//!
//! ```sh
//! cargo build --release && cargo run --release --example bench -- id-jag --clients 32 --seconds 10
//! ```
//!
//! Scenarios: `anonymous` (POST /agent/auth), `identity` (the v0.7
//! anonymous POST /agent/identity), `token-exchange` (one v0.7 assertion
//! exchanged at /oauth2/token again and again), `refresh` (a v0.7 refresh
//! chain per client, each from a claimed agent), `id-jag` (ES256 ID-JAGs minted
//! beforehand, a new user each; also reports the `jose` verifier alone, the
//! ring ceiling), `authenticated` (GET /api/resource with an API key),
//! `gateway` (the same GET to an upstream directly and through `--upstream`),
//! `scale` (authentication and claim lookups on an empty database, then after
//! filling `--count` registrations; the database size),
//! `revoke-all` (fills `--count` registrations, then times `authmd revoke --all`),
//! `commit-rate` (one writer, one row and one fsync per commit: the ceiling
//! group commit has to beat), `write-path` (issue 13 in one invocation: the
//! two ceilings, the commit rate in a temp dir and the one-thread ES256
//! verification rate; then, each on a fresh server, v0.1 anonymous and
//! ID-JAG registration, v0.7 ID-JAG registration and v0.7 anonymous
//! registration with its token exchange, each with its first and last
//! seconds; authentication and claim lookups on the v0.1 anonymous server
//! after its run; and a table of each flow's ratio to its ceiling beside the
//! issue's target; `--flow TEXT` runs only the flows whose names contain it),
//! `nodes` (issue 14 in one invocation: a durable PostgreSQL server in a
//! temp dir, the ceilings measured on it and on SQLite, then v0.1 anonymous
//! registration, authenticated GET /api/resource and v0.1 ID-JAG
//! registration, each on a fresh database, with one SQLite node, one
//! PostgreSQL node and two PostgreSQL nodes sharing a database, the
//! clients split between them; each flow's ratio to its backend's ceiling,
//! and the cores the nodes, PostgreSQL, the load generator and every other
//! process kept busy; `--flow` as in write-path, on names such as
//! `2 PostgreSQL nodes: v0.1 anonymous registration`).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use authmd::internals::jose::{self, Jwks, Policy, TokenKind};
use authmd::time::{UnixMs, UnixSecs};
use authmd_dev::{Alg, JwksServer, SigningKey};
use lexopt::prelude::*;
use serde_json::{Value, json};

struct Options {
    scenario: String,
    clients: usize,
    seconds: u64,
    binary: String,
    workers: usize,
    count: usize,
    /// write-path: only the flows whose names contain this.
    flow: String,
}

fn options() -> Result<Options, lexopt::Error> {
    let mut parser = lexopt::Parser::from_env();
    let mut o = Options {
        scenario: String::new(),
        clients: 32,
        seconds: 10,
        binary: "target/release/authmd".into(),
        workers: 16,
        count: 100_000,
        flow: String::new(),
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("clients") => o.clients = parser.value()?.parse()?,
            Long("seconds") => o.seconds = parser.value()?.parse()?,
            Long("binary") => o.binary = parser.value()?.string()?,
            Long("workers") => o.workers = parser.value()?.parse()?,
            Long("count") => o.count = parser.value()?.parse()?,
            Long("flow") => o.flow = parser.value()?.string()?,
            Value(s) if o.scenario.is_empty() => o.scenario = s.string()?,
            other => return Err(other.unexpected()),
        }
    }
    Ok(o)
}

/// One authmd node.
struct Server {
    child: Child,
    base: String,
    /// A file (in `_dir` when the node made it), or a `postgres://` URL.
    db: std::path::PathBuf,
    binary: String,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A node on a new SQLite file in a temp dir.
    fn start(binary: &str, workers: usize, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_on(binary, &dir.path().join("bench.db"), workers, extra);
        server._dir = Some(dir);
        server
    }

    /// A node on the database `db` (a file or a `postgres://` URL), every
    /// rate limit set to 0 first.
    fn start_on(binary: &str, db: &std::path::Path, workers: usize, extra: &[&str]) -> Server {
        let cli = |args: &[&str]| {
            let status = Command::new(binary)
                .arg("--db")
                .arg(db)
                .args(args)
                .stdout(Stdio::null())
                .status()
                .expect("run authmd");
            assert!(status.success(), "authmd {args:?}");
        };
        // Commands other than `serve` refuse a database file that does not
        // exist (issue 15); an empty file is a new SQLite database.
        if !db.to_string_lossy().starts_with("postgres") && !db.exists() {
            std::fs::File::create(db).expect("create the database file");
        }
        // Rate limits off for the benchmark (recorded in BENCHMARKS.md):
        // every limit the binary knows (an older binary knows fewer).
        let known = Command::new(binary)
            .arg("--db")
            .arg(db)
            .args(["config", "list"])
            .output()
            .expect("run authmd");
        let known = String::from_utf8_lossy(&known.stdout).into_owned();
        for key in known
            .split_whitespace()
            .filter(|w| w.starts_with("rate_limit.") && *w != "rate_limit.window_secs")
        {
            cli(&["config", "set", key, "0"]);
        }
        let (child, base) = spawn(binary, db, workers, extra);
        Server {
            child,
            base,
            db: db.to_path_buf(),
            binary: binary.to_string(),
            _dir: None,
        }
    }

    /// Another node on this node's database, on a port of its own, with
    /// this node's base URL: the issuer and audience of every token, which
    /// README "Running several nodes" has every node share.
    fn join(&self, workers: usize) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let listen = listener.local_addr().unwrap().to_string();
        drop(listener);
        let (child, public) = spawn(
            &self.binary,
            &self.db,
            workers,
            &["--listen", &listen, "--base-url", &self.base],
        );
        assert_eq!(public, self.base, "the second node's base URL");
        Server {
            child,
            base: format!("http://{listen}"),
            db: self.db.clone(),
            binary: self.binary.clone(),
            _dir: None,
        }
    }

    /// Stops the server and starts it again on the same database.
    fn restart(&mut self, workers: usize) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, base) = spawn(&self.binary, &self.db, workers, &[]);
        self.child = child;
        self.base = base;
    }

    fn cli(&self, args: &[&str]) {
        let status = Command::new(&self.binary)
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib() as f64 / 1024.0
    }

    /// Peak resident set size so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the server has used so far (user and system, every thread).
    fn cpu(&self) -> Duration {
        process_cpu(&self.child.id().to_string()).map_or(Duration::ZERO, |p| p.own)
    }
}

/// A process's CPU time so far, from `/proc/PID/stat`.
struct ProcessCpu {
    parent: u32,
    /// User and system, every thread.
    own: Duration,
    /// Its children's that it has waited for.
    reaped: Duration,
}

/// `pid` is a number or `self`.
fn process_cpu(pid: &str) -> Option<ProcessCpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: the parent's pid is
    // the 2nd; utime, stime, cutime and cstime the 12th to the 15th, in
    // clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |at: usize| -> Option<u64> {
        Some(fields.get(at)?.parse::<u64>().ok()? + fields.get(at + 1)?.parse::<u64>().ok()?)
    };
    Some(ProcessCpu {
        parent: fields.get(1)?.parse().ok()?,
        own: Duration::from_millis(ticks(11)? * 10),
        reaped: Duration::from_millis(ticks(13)? * 10),
    })
}

/// The CPU time of the PostgreSQL server whose postmaster is `postmaster`:
/// its own, its live children's (backends, WAL writer, checkpointer, ...)
/// and those it has reaped.
fn postgres_cpu(postmaster: u32) -> Duration {
    let all = |p: ProcessCpu| p.own + p.reaped;
    let children: Duration = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.ok()?.file_name().into_string().ok()?;
            let process = process_cpu(&pid).filter(|p| p.parent == postmaster)?;
            Some(all(process))
        })
        .sum();
    process_cpu(&postmaster.to_string()).map_or(Duration::ZERO, all) + children
}

/// The machine's CPU time so far, busy and idle (all cores, from
/// `/proc/stat`): where the idle share shows whether a flow is CPU-bound.
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    let busy = ticks.iter().take(8).sum::<u64>() - idle;
    (busy, idle)
}

/// CPU time used so far: by the nodes (summed), the PostgreSQL server (if
/// any), the load generator (this process) and the machine.
#[derive(Clone, Copy)]
struct CpuUse {
    nodes: Duration,
    postgres: Option<Duration>,
    load: Duration,
    /// Busy and idle clock ticks, all cores.
    machine: (u64, u64),
}

impl CpuUse {
    fn now(nodes: &[&Server], postgres: Option<u32>) -> CpuUse {
        CpuUse {
            nodes: nodes.iter().map(|node| node.cpu()).sum(),
            postgres: postgres.map(postgres_cpu),
            load: process_cpu("self").map_or(Duration::ZERO, |p| p.own),
            machine: machine_cpu(),
        }
    }

    /// What was used from `self` to `later`.
    fn until(&self, later: &CpuUse) -> CpuUse {
        CpuUse {
            nodes: later.nodes.saturating_sub(self.nodes),
            postgres: later
                .postgres
                .zip(self.postgres)
                .map(|(to, from)| to.saturating_sub(from)),
            load: later.load.saturating_sub(self.load),
            machine: (later.machine.0 - self.machine.0, later.machine.1 - self.machine.1),
        }
    }

    /// The machine's idle share.
    fn idle(&self) -> f64 {
        let (busy, idle) = self.machine;
        idle as f64 / (busy + idle).max(1) as f64
    }
}

/// The nodes', the PostgreSQL server's and the machine's CPU use, sampled
/// every 100 ms while a flow runs, counted from when it started.
struct CpuSamples {
    started: Instant,
    samples: Vec<(Duration, CpuUse)>,
}

impl CpuSamples {
    /// `postgres`: the postmaster's pid, when the nodes run on PostgreSQL.
    fn during<T>(nodes: &[&Server], postgres: Option<u32>, run: impl FnOnce() -> T) -> (T, CpuSamples) {
        let done = std::sync::atomic::AtomicBool::new(false);
        let started = Instant::now();
        std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut samples = Vec::new();
                loop {
                    samples.push((started.elapsed(), CpuUse::now(nodes, postgres)));
                    if done.load(Ordering::SeqCst) {
                        return CpuSamples { started, samples };
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            let value = run();
            done.store(true, Ordering::SeqCst);
            (value, sampler.join().unwrap())
        })
    }

    /// The CPU used between the samples nearest `from` and `to` (counted
    /// from `since`), and the wall time between those samples.
    fn between(&self, since: Instant, from: Duration, to: Duration) -> (CpuUse, Duration) {
        let offset = since.saturating_duration_since(self.started);
        let nearest = |at: Duration| {
            self.samples
                .iter()
                .filter(|(when, _)| *when >= offset)
                .map(|(when, cpu)| (*when - offset, cpu))
                .min_by_key(|(when, _)| when.abs_diff(at))
                .expect("one sample at least")
        };
        let (when_from, cpu_from) = nearest(from);
        let (when_to, cpu_to) = nearest(to);
        (cpu_from.until(cpu_to), when_to.saturating_sub(when_from))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(binary: &str, db: &std::path::Path, workers: usize, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(binary)
        .arg("--db")
        .arg(db)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", &workers.to_string()])
        .args(extra)
        // The bench's provider serves its JWKS on 127.0.0.1 (an env var, not
        // the flag, so older binaries compared against still start).
        .env("AUTHMD_ALLOW_LOOPBACK_FETCH", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start authmd (build it first: cargo build --release)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (
        child,
        line.trim().trim_start_matches("authmd listening on ").to_string(),
    )
}

/// Inserts `count` unclaimed anonymous registrations with an API key each,
/// straight into the database (the server is not running).
fn fill(db: &std::path::Path, count: usize) {
    let mut conn = authmd::internals::store::connect(db).unwrap();
    for chunk in 0..count.div_ceil(100_000) {
        authmd::internals::store::write(&mut conn, |tx| {
            for n in chunk * 100_000..((chunk + 1) * 100_000).min(count) {
                let id = format!("reg_fill{n:08}");
                tx.insert_registration(&authmd::internals::store::NewRegistration {
                    id: &id,
                    generation: authmd::internals::model::Generation::V0_1,
                    kind: authmd::internals::model::RegistrationKind::Anonymous,
                    status: authmd::internals::model::Status::Unclaimed,
                    user_id: None,
                    claim_token_hash: Some(&authmd::internals::hash(&id)),
                    requested_credential_type: Some(authmd::internals::model::CredentialType::ApiKey),
                    email: None,
                    scopes: None,
                    created_ms: UnixMs::from_millis(0),
                    expires_ms: Some(UnixMs::from_millis(i64::MAX / 2)),
                })?;
                tx.insert_credential(&authmd::internals::store::NewCredential {
                    id: &format!("cred_fill{n:08}"),
                    registration_id: &id,
                    kind: authmd::internals::model::CredentialType::ApiKey,
                    token_hash: &authmd::internals::hash(&format!("key{n}")),
                    scopes: "api.read",
                    created_ms: UnixMs::from_millis(0),
                    expires_ms: None,
                })?;
                tx.record_event(
                    UnixMs::from_millis(0),
                    authmd::internals::model::EventName::RegistrationCreated,
                    authmd::internals::store::NewEvent {
                        registration_id: Some(&id),
                        ..Default::default()
                    },
                )?;
            }
            Ok(())
        })
        .unwrap();
    }
}

/// Authentication and claim-lookup latency, one client at a time.
fn lookups(server: &Server, keys: &[(String, String)], seconds: u64) -> (Report, Report) {
    let auth = authenticated_gets(&[&server.base], keys, 1, seconds);
    let claim = drive(&[&server.base], 1, seconds, &|turn| {
        let body = json!({ "claim_token": keys[turn.n % keys.len()].1, "otp": "000000" }).to_string();
        Some(("POST", "/agent/auth/claim/complete".into(), Some(body), None))
    });
    (auth, claim)
}

/// GET /api/resource with the API keys of `keys` in turn.
fn authenticated_gets(bases: &[&str], keys: &[(String, String)], clients: usize, seconds: u64) -> Report {
    drive(bases, clients, seconds, &|turn| {
        Some((
            "GET",
            "/api/resource".into(),
            None,
            Some(keys[turn.n % keys.len()].0.clone()),
        ))
    })
}

/// Where a client stands when it picks its next request: the request's
/// number across all clients, the client's own number, and the body of its
/// previous answer (a refresh chain takes its next token from it).
struct Turn<'a> {
    n: usize,
    client: usize,
    previous: Option<&'a str>,
}

/// What one client should send next; `None` when it has nothing left.
type NextRequest<'a> = &'a (dyn Fn(Turn<'_>) -> Option<(&'static str, String, Option<String>, Option<String>)> + Sync);

/// A request that was answered or failed: when, counted from the start of
/// the run, to which path, and whether it was a 200.
struct Done {
    at: Duration,
    path: String,
    ok: bool,
}

struct Report {
    /// When the first client started.
    started: Instant,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    done: Vec<Done>,
    /// A client had nothing left to send before the deadline.
    ran_out: bool,
}

/// Runs `clients` clients for `seconds`, client `n` sending to `bases[n %
/// bases.len()]`: the clients are split evenly between the nodes.
fn drive(bases: &[&str], clients: usize, seconds: u64, next: NextRequest<'_>) -> Report {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let counter = AtomicUsize::new(0);
    let results: Vec<(Vec<u64>, Vec<Done>, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let counter = &counter;
                let base = bases[client % bases.len()];
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .max_idle_connections_per_host(1)
                        .build()
                        .into();
                    let (mut latencies, mut done, mut ran_out) = (Vec::new(), Vec::new(), false);
                    let mut previous: Option<String> = None;
                    while Instant::now() < deadline {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let turn = Turn {
                            n,
                            client,
                            previous: previous.as_deref(),
                        };
                        let Some((method, path, body, bearer)) = next(turn) else {
                            ran_out = true;
                            break;
                        };
                        let url = format!("{base}{path}");
                        let t0 = Instant::now();
                        let result = match (method, body) {
                            ("POST", Some(body)) => agent
                                .post(&url)
                                .header("Content-Type", "application/json")
                                .send(body.as_bytes()),
                            ("FORM", Some(body)) => agent
                                .post(&url)
                                .header("Content-Type", "application/x-www-form-urlencoded")
                                .send(body.as_bytes()),
                            _ => {
                                let mut request = agent.get(&url);
                                if let Some(token) = &bearer {
                                    request = request.header("Authorization", &format!("Bearer {token}"));
                                }
                                request.call()
                            }
                        };
                        let ok = match result {
                            Ok(mut response) => {
                                previous = response.body_mut().read_to_string().ok();
                                response.status() == 200
                            }
                            Err(_) => false,
                        };
                        latencies.push(t0.elapsed().as_micros() as u64);
                        done.push(Done {
                            at: started.elapsed(),
                            path,
                            ok,
                        });
                    }
                    (latencies, done, ran_out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    let (mut latencies_us, mut done, mut ran_out) = (Vec::new(), Vec::new(), false);
    for (latencies, finished, exhausted) in results {
        latencies_us.extend(latencies);
        done.extend(finished);
        ran_out |= exhausted;
    }
    latencies_us.sort_unstable();
    Report {
        started,
        requests: latencies_us.len(),
        errors: done.iter().filter(|d| !d.ok).count(),
        elapsed,
        latencies_us,
        done,
        ran_out,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// `nodes`: the server's, or each node's, peak RSS is printed.
fn print_report(name: &str, report: &Report, nodes: &[&Server], clients: usize) {
    let rps = report.requests as f64 / report.elapsed.as_secs_f64();
    println!(
        "{name}: {} requests in {:.1} s with {clients} clients: {rps:.0} req/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, errors {}, server peak RSS {} MiB",
        report.requests,
        report.elapsed.as_secs_f64(),
        percentile(&report.latencies_us, 0.50),
        percentile(&report.latencies_us, 0.95),
        percentile(&report.latencies_us, 0.99),
        report.errors,
        mib(nodes.iter().map(|node| node.peak_rss_mib()))
    );
    if report.ran_out {
        println!("  the clients ran out of requests before the deadline: a shorter run");
    }
}

/// Each node's figure in MiB, `+` between them.
fn mib(each: impl Iterator<Item = f64>) -> String {
    each.map(|m| format!("{m:.1}")).collect::<Vec<_>>().join(" + ")
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn register_body() -> Value {
    json!({"type":"anonymous","requested_credential_type":"api_key"})
}

/// An API key with api.read, registered anonymously.
fn anonymous_key(server: &Server) -> String {
    let reply = post_json(&server.base, "/agent/auth", &register_body());
    reply["credential"].as_str().unwrap().to_string()
}

/// A minimal upstream API on loopback: a small JSON answer per request,
/// served by a pool of threads.
fn start_upstream() -> String {
    let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    for _ in 0..8 {
        let server = server.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let body = r#"{"items":[1,2,3]}"#;
                let _ = request.respond(tiny_http::Response::from_string(body));
            }
        });
    }
    url
}

/// A person at the service's pages, as a browser would be: a cookie jar,
/// the last form's CSRF token, no redirects followed.
struct Person {
    agent: ureq::Agent,
    base: String,
    cookies: Vec<(String, String)>,
    csrf: String,
}

impl Person {
    fn new(base: &str) -> Person {
        Person {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
            base: base.to_string(),
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    /// GET `path` (or a full URL) or POST `form` to it; the page's text.
    fn visit(&mut self, path: &str, form: Option<String>) -> String {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let jar = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut response = match form {
            Some(form) => self
                .agent
                .post(&url)
                .header("Cookie", &jar)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(form.as_bytes()),
            None => self.agent.get(&url).header("Cookie", &jar).call(),
        }
        .unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            self.cookies.push((name.to_string(), value.to_string()));
        }
        let page = response.body_mut().read_to_string().unwrap();
        if let Some(value) = text_after(&page, r#"name="csrf" value=""#, |c| c != '"') {
            self.csrf = value;
        }
        page
    }

    /// Signs in as `email` with the code the server mailed into `outbox`.
    fn sign_in(&mut self, email: &str, outbox: &std::path::Path) {
        self.visit("/login", None);
        let form = format!("email={}&return_to=%2F&csrf={}", email.replace('@', "%40"), self.csrf);
        self.visit("/login", Some(form));
        let code = (0..100)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::read_dir(outbox).ok()?.flatten().find_map(|entry| {
                    let mail = std::fs::read_to_string(entry.path()).ok()?;
                    text_after(&mail, "Your code: ", |c| c.is_ascii_digit())
                })
            })
            .expect("the sign-in code in the outbox");
        let form = format!("code={code}&csrf={}", self.csrf);
        self.visit("/login/verify", Some(form));
    }
}

/// The run of characters satisfying `keep` right after `marker` in `text`.
fn text_after(text: &str, marker: &str, keep: impl Fn(char) -> bool) -> Option<String> {
    let rest = &text[text.find(marker)? + marker.len()..];
    Some(rest.chars().take_while(|&c| keep(c)).collect())
}

fn post_json(base: &str, path: &str, body: &Value) -> Value {
    let text = ureq::post(&format!("{base}{path}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A refresh token of an agent that `person` claimed through the
/// ceremony of SPEC-v0.7 6 (service_auth, the confirm page, the code).
fn claimed_refresh_token(base: &str, person: &mut Person, email: &str) -> String {
    let made = post_json(
        base,
        "/agent/identity",
        &json!({"type":"service_auth","login_hint":email}),
    );
    let link = made["claim"]["attempt"]["verification_uri"].as_str().unwrap();
    let attempt = link.split("claim_attempt_token=").nth(1).unwrap();
    person.visit(link, None);
    let form = format!("claim_attempt_token={attempt}&csrf={}", person.csrf);
    let page = person.visit("/claim/confirm", Some(form));
    let code = text_after(&page, r#"id="user-code">"#, |c| c.is_ascii_digit()).expect("the code on the page");
    let done = post_json(
        base,
        "/agent/identity/claim/complete",
        &json!({"claim_token": made["claim"]["token"], "user_code": code}),
    );
    done["identity"]["refresh_token"]["value"].as_str().unwrap().to_string()
}

/// The ceiling group commit has to beat: one writer, one small row per
/// transaction, one fsync per commit (WAL, synchronous=FULL), for `seconds`.
fn commit_rate(db: &std::path::Path, seconds: u64) -> f64 {
    let conn = authmd::internals::store::connect(db).unwrap();
    conn.execute_batch("CREATE TABLE bench_commits (n INTEGER)").unwrap();
    let t0 = Instant::now();
    let mut commits = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        conn.execute("INSERT INTO bench_commits (n) VALUES (?1)", [commits])
            .unwrap();
        commits += 1;
    }
    let rate = commits as f64 / t0.elapsed().as_secs_f64();
    println!(
        "single-writer commit rate: {rate:.0} commits/s ({commits} in {:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    rate
}

/// An agent provider on loopback publishing one ES256 key.
struct Provider {
    jwks: JwksServer,
    key: SigningKey,
}

impl Provider {
    fn start() -> Provider {
        let jwks = JwksServer::start("127.0.0.1:0").unwrap();
        let key = SigningKey::generate(Alg::Es256, "bench");
        jwks.publish(&[&key], "public, max-age=86400");
        Provider { jwks, key }
    }

    /// An ID-JAG about `sub` for the service at `audience`, logged in and
    /// issued now, expiring `lifetime_secs` from now.
    fn id_jag(&self, sub: &str, audience: &str, lifetime_secs: u64) -> String {
        let mut claims = authmd_dev::id_jag_claims(&self.jwks.base_url, sub, audience, now_secs());
        claims["exp"] = json!(now_secs() + lifetime_secs as i64);
        self.key.sign(&authmd_dev::id_jag_header(), &claims)
    }
}

/// The verifier alone, one thread, ES256 ID-JAGs parsed and verified for
/// 2 s: the ring ceiling per core.
fn verify_rate(provider: &Provider) -> f64 {
    let audience = "https://service.example";
    let tokens: Vec<String> = (0..2000)
        .map(|n| provider.id_jag(&format!("user-{n}"), audience, 300))
        .collect();
    let jwks = Jwks::parse(json!({ "keys": [provider.key.public_jwk()] }).to_string().as_bytes()).unwrap();
    let policy = Policy {
        audiences: vec![audience.to_string()],
        clock_skew_secs: 60,
        max_assertion_lifetime_secs: 3600,
        logout_lifetime_without_exp_secs: 300,
    };
    let t0 = Instant::now();
    let mut verified = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        for token in &tokens {
            let unverified = jose::parse(token, TokenKind::IdJag).unwrap();
            jose::verify(unverified, &jwks, &policy, UnixSecs::new(now_secs())).unwrap();
            verified += 1;
        }
    }
    let rate = verified as f64 / t0.elapsed().as_secs_f64();
    println!("jose alone: {rate:.0} ES256 parse+verify per second on one thread");
    rate
}

const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// SPEC.md 4's ID-JAG registration body.
fn v0_1_id_jag(assertion: String) -> Value {
    json!({"type":"identity_assertion","assertion_type":ID_JAG,"assertion":assertion,"requested_credential_type":"access_token"})
}

/// SPEC-v0.7 4.3's.
fn v0_7_id_jag(assertion: String) -> Value {
    json!({"type":"identity_assertion","assertion_type":ID_JAG,"assertion":assertion})
}

/// Enough ID-JAGs for a run at this rate: none of its clients runs out.
const ID_JAGS_PER_SECOND: usize = 5_000;

/// ID-JAG registrations at `path`, a new user each, with bodies made by
/// `body`. The ID-JAGs are minted before the measured window, and one is
/// registered first, so the provider's keys are cached as in steady state
/// (a cold burst gets 503s while one fetch runs).
///
/// On several nodes, every node registers one first (each caches the
/// provider's keys), and the ID-JAGs name the first node's base URL, which
/// every node has.
fn id_jag_registrations(
    nodes: &[&Server],
    provider: &Provider,
    path: &'static str,
    body: fn(String) -> Value,
    o: &Options,
) -> Report {
    let first = nodes[0];
    first.cli(&["provider", "add", &provider.jwks.base_url, "--allow-loopback-fetch"]);
    let count = (o.seconds as usize * ID_JAGS_PER_SECOND).max(1000);
    let minting = Instant::now();
    let mut bodies: Vec<String> = (0..count)
        .map(|n| body(provider.id_jag(&format!("user-{n}"), &first.base, 300 + o.seconds)).to_string())
        .collect();
    eprintln!(
        "minted {count} ES256 ID-JAGs in {:.1} s",
        minting.elapsed().as_secs_f64()
    );
    for node in nodes {
        // Another node learns of the provider at its next settings reload
        // (every 2 s), so its warm-up may be refused until then.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let warm = bodies.pop().expect("enough ID-JAGs");
            let answer = ureq::post(&format!("{}{path}", node.base))
                .header("Content-Type", "application/json")
                .send(warm.as_bytes());
            if answer.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "the warm-up registration failed: {answer:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    drive(&bases(nodes), o.clients, o.seconds, &|turn| {
        bodies
            .get(turn.n)
            .map(|body| ("POST", path.to_string(), Some(body.clone()), None))
    })
}

fn bases<'a>(nodes: &[&'a Server]) -> Vec<&'a str> {
    nodes.iter().map(|node| node.base.as_str()).collect()
}

fn anonymous_registrations(nodes: &[&Server], o: &Options) -> Report {
    let body = register_body().to_string();
    drive(&bases(nodes), o.clients, o.seconds, &|_| {
        Some(("POST", "/agent/auth".into(), Some(body.clone()), None))
    })
}

const TOKEN_PATH: &str = "/oauth2/token";

/// The token request exchanging a v0.7 assertion (SPEC-v0.7 8).
fn exchange_form(assertion: &str) -> String {
    format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}")
}

/// v0.7 anonymous registrations, each followed by the exchange of the
/// assertion it answered: a client alternates the two.
fn anonymous_exchanges(server: &Server, o: &Options) -> Report {
    let register = r#"{"type":"anonymous"}"#.to_string();
    drive(&[&server.base], o.clients, o.seconds, &|turn| {
        let assertion = turn.previous.and_then(|answer| {
            let answer: Value = serde_json::from_str(answer).ok()?;
            Some(answer["identity"]["assertion"].as_str()?.to_string())
        });
        Some(match assertion {
            Some(assertion) => ("FORM", TOKEN_PATH.into(), Some(exchange_form(&assertion)), None),
            None => ("POST", "/agent/identity".into(), Some(register.clone()), None),
        })
    })
}

/// `count` anonymous registrations: an API key and a claim token each.
fn registered_keys(server: &Server, count: usize) -> Vec<(String, String)> {
    let body = register_body();
    (0..count)
        .map(|_| {
            let reply = post_json(&server.base, "/agent/auth", &body);
            (
                reply["credential"].as_str().unwrap().to_string(),
                reply["claim_token"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A flow's rate in its units (a request, or a registration with its
/// exchange) over the whole run, and over its first and its last seconds,
/// where a growing database would show.
struct Pace {
    unit: &'static str,
    whole: f64,
    first: f64,
    last: f64,
    window: Duration,
    /// The server's CPU time per unit (both nodes' when there are two),
    /// over the whole run, its first and its last window: a falling rate
    /// with a steady cost is the machine.
    cpu_us: [f64; 3],
    /// The machine's idle share over the run (both cores, the clients' too).
    idle: f64,
    /// Where the machine's time went over the run.
    cores: Cores,
}

/// Cores kept busy (CPU time over wall time) by each part of a run.
struct Cores {
    nodes: f64,
    postgres: Option<f64>,
    /// This process: the clients and the sampler.
    load: f64,
    /// Every other process on the machine (the machine's busy time less
    /// the above).
    other: f64,
}

impl Cores {
    fn text(&self) -> String {
        let postgres = self.postgres.map(|c| format!(", postgres {c:.2}")).unwrap_or_default();
        format!(
            "nodes {:.2}{postgres}, load generator {:.2}, other processes {:.2}",
            self.nodes, self.load, self.other
        )
    }
}

impl Pace {
    /// `counts` says which requests complete one unit.
    fn of(report: &Report, cpu: &CpuSamples, unit: &'static str, counts: fn(&Done) -> bool) -> Pace {
        // Issue 13's 3 s, less in a run too short for two of them.
        let window = Duration::from_secs(3).min(report.elapsed / 2);
        let end = report.elapsed;
        let units: Vec<Duration> = report.done.iter().filter(|d| counts(d)).map(|d| d.at).collect();
        let count_in = |from: Duration, to: Duration| units.iter().filter(|&&at| at >= from && at < to).count();
        let cpu_us = |from: Duration, to: Duration| {
            cpu.between(report.started, from, to).0.nodes.as_micros() as f64 / count_in(from, to).max(1) as f64
        };
        let (run, wall) = cpu.between(report.started, Duration::ZERO, end);
        let cores = |used: Duration| used.as_secs_f64() / wall.as_secs_f64().max(0.001);
        // The machine's busy clock ticks, 100 a second on Linux.
        let busy = cores(Duration::from_millis(run.machine.0 * 10));
        let (nodes, postgres, load) = (cores(run.nodes), run.postgres.map(cores), cores(run.load));
        Pace {
            unit,
            whole: units.len() as f64 / end.as_secs_f64(),
            first: count_in(Duration::ZERO, window) as f64 / window.as_secs_f64(),
            last: count_in(end - window, end + window) as f64 / window.as_secs_f64(),
            window,
            cpu_us: [
                cpu_us(Duration::ZERO, end + window),
                cpu_us(Duration::ZERO, window),
                cpu_us(end - window, end + window),
            ],
            idle: run.idle(),
            cores: Cores {
                nodes,
                postgres,
                load,
                other: (busy - nodes - postgres.unwrap_or(0.0) - load).max(0.0),
            },
        }
    }

    fn change_pct(&self) -> f64 {
        (self.last / self.first - 1.0) * 100.0
    }
}

/// A rate measured in the same run that a flow's rate is a ratio to.
#[derive(Clone, Copy)]
struct Ceiling {
    name: &'static str,
    rate: f64,
}

/// Issue 13's targets beside the ratio to the ceiling.
const P99_TARGET_MS: f64 = 20.0;
const CHANGE_TARGET_PCT: f64 = -10.0;

/// A flow's line in the write-path and the nodes summaries.
struct Row {
    flow: String,
    pace: Pace,
    p99_ms: f64,
    errors: usize,
    ran_out: bool,
    stalled: usize,
    ceiling: Ceiling,
    /// Issue 13's ratio to the ceiling (write-path only).
    target: Option<f64>,
    /// Each node's.
    peak_rss_mib: Vec<f64>,
}

impl Row {
    /// Prints the flow's pace (after its `print_report`) and keeps its line.
    fn new(
        flow: String,
        (report, nodes): (&Report, &[&Server]),
        pace: Pace,
        ceiling: Ceiling,
        target: Option<f64>,
    ) -> Row {
        let window = pace.window.as_secs_f64();
        // A request that waited over a second is a client left idle that
        // long, which p99 hides: the run had fewer clients than it says.
        let stalled = report.latencies_us.iter().filter(|&&us| us > 1_000_000).count();
        println!(
            "  {:.0} {}/s; first {window:.1} s: {:.0}/s, last {window:.1} s: {:.0}/s ({:+.1} %); slowest request {:.0} ms, {stalled} over 1 s",
            pace.whole,
            pace.unit,
            pace.first,
            pace.last,
            pace.change_pct(),
            percentile(&report.latencies_us, 1.0)
        );
        let [whole, first, last] = pace.cpu_us;
        println!(
            "  server CPU per {}: {whole:.0} us (first {window:.1} s: {first:.0} us, last: {last:.0} us); machine idle {:.0} %; cores busy: {}",
            pace.unit.trim_end_matches('s'),
            pace.idle * 100.0,
            pace.cores.text()
        );
        if report.errors > 0 {
            println!("  {} ERRORS: this flow's figures do not count", report.errors);
        }
        Row {
            flow,
            pace,
            p99_ms: percentile(&report.latencies_us, 0.99),
            errors: report.errors,
            ran_out: report.ran_out,
            stalled,
            ceiling,
            target,
            peak_rss_mib: nodes.iter().map(|node| node.peak_rss_mib()).collect(),
        }
    }

    fn ratio(&self) -> f64 {
        self.pace.whole / self.ceiling.rate
    }

    fn verdict(&self) -> String {
        if self.errors > 0 {
            return format!("not counted: {} errors", self.errors);
        }
        if self.ran_out {
            return "not counted: ran out of requests".into();
        }
        let missed: Vec<&str> = [
            (self.target.is_some_and(|target| self.ratio() < target), "ratio"),
            (self.p99_ms >= P99_TARGET_MS, "p99"),
            (self.pace.change_pct() < CHANGE_TARGET_PCT, "first-to-last"),
        ]
        .into_iter()
        .filter_map(|(miss, what)| miss.then_some(what))
        .collect();
        let verdict = if missed.is_empty() {
            "met".to_string()
        } else {
            format!("missed: {}", missed.join(", "))
        };
        match self.stalled {
            0 => verdict,
            n => format!("{verdict}; {n} requests waited over 1 s"),
        }
    }
}

/// Every request completes a unit.
const EVERY: fn(&Done) -> bool = |_| true;

/// Prints a flow's report and keeps its row for the summary.
fn record(
    rows: &mut Vec<Row>,
    flow: String,
    run: (&Report, &[&Server]),
    clients: usize,
    pace: Pace,
    (ceiling, target): (Ceiling, Option<f64>),
) {
    print_report(&flow, run.0, run.1, clients);
    rows.push(Row::new(flow, run, pace, ceiling, target));
}

/// The SQLite single-writer commit rate ([`commit_rate`]) in a temp dir on
/// the filesystem `Server::start` makes its databases on.
fn sqlite_commit_ceiling(seconds: u64) -> Ceiling {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("commits.db");
    // An empty file is a new database to SQLite; connect opens only files that exist.
    std::fs::File::create(&db).expect("create the database file");
    Ceiling {
        name: "commit",
        rate: commit_rate(&db, seconds),
    }
}

/// Issue 13 in one invocation: the ceilings first, then each write flow on
/// a fresh server, then each flow's ratio to its ceiling beside the target.
fn write_path(o: &Options) {
    let commits = sqlite_commit_ceiling(o.seconds.min(10));
    let provider = Provider::start();
    let verifies = Ceiling {
        name: "verify",
        rate: verify_rate(&provider),
    };
    let fresh = || Server::start(&o.binary, o.workers, &[]);
    let mut rows = Vec::new();
    let chosen = |name: &str| name.contains(&o.flow);

    let name = "v0.1 anonymous registration";
    let lookups_after = chosen(name).then(|| {
        let server = fresh();
        let (report, cpu) = CpuSamples::during(&[&server], None, || anonymous_registrations(&[&server], o));
        let pace = Pace::of(&report, &cpu, "registrations", EVERY);
        let run = (&report, &[&server][..]);
        record(&mut rows, name.into(), run, o.clients, pace, (commits, Some(1.5)));
        let keys = registered_keys(&server, 50);
        let (auth, claim) = lookups(&server, &keys, o.seconds.min(3));
        print_report("  then authenticate (1 client)", &auth, &[&server], 1);
        // No code was sent, so every lookup is answered 4xx.
        print_report(
            "  then claim lookup (1 client, refused by design)",
            &claim,
            &[&server],
            1,
        );
        (auth, claim, report.requests - report.errors + keys.len())
    });

    for (name, path, body) in [
        (
            "v0.1 ID-JAG registration",
            "/agent/auth",
            v0_1_id_jag as fn(String) -> Value,
        ),
        ("v0.7 ID-JAG registration", "/agent/identity", v0_7_id_jag),
    ] {
        if !chosen(name) {
            continue;
        }
        let server = fresh();
        let nodes = [&server];
        let (report, cpu) = CpuSamples::during(&nodes, None, || id_jag_registrations(&nodes, &provider, path, body, o));
        let pace = Pace::of(&report, &cpu, "registrations", EVERY);
        record(
            &mut rows,
            name.into(),
            (&report, &nodes),
            o.clients,
            pace,
            (verifies, Some(0.25)),
        );
    }

    let name = "v0.7 anonymous + token exchange";
    if chosen(name) {
        let server = fresh();
        let (report, cpu) = CpuSamples::during(&[&server], None, || anonymous_exchanges(&server, o));
        // A pair is complete when its exchange is answered.
        let pace = Pace::of(&report, &cpu, "pairs", |d| d.ok && d.path == TOKEN_PATH);
        record(
            &mut rows,
            name.into(),
            (&report, &[&server]),
            o.clients,
            pace,
            (commits, Some(1.0)),
        );
    }

    println!(
        "\nsummary: ceilings {:.0} commits/s, {:.0} ES256 verifies/s; targets: the ratio, p99 < {P99_TARGET_MS} ms, first-to-last >= {CHANGE_TARGET_PCT} %, 0 errors",
        commits.rate, verifies.rate
    );
    println!(
        "{:<32} {:>8} {:>14} {:>7} {:>7} {:>12}  verdict",
        "flow", "rate/s", "ratio", "target", "p99 ms", "first-to-last"
    );
    for row in &rows {
        println!(
            "{:<32} {:>8.0} {:>14} {:>7} {:>7.2} {:>12}  {}",
            row.flow,
            row.pace.whole,
            format!("{:.2}x {}", row.ratio(), row.ceiling.name),
            format!(">={:.2}x", row.target.unwrap_or_default()),
            row.p99_ms,
            format!("{:+.1} %", row.pace.change_pct()),
            row.verdict()
        );
    }
    if let Some((auth, claim, registrations)) = lookups_after {
        println!(
            "after {registrations} v0.1 registrations: authenticate p50 {:.3} ms p99 {:.3} ms, claim lookup p50 {:.3} ms p99 {:.3} ms (no target within one run: compare with the baseline build's)",
            percentile(&auth.latencies_us, 0.5),
            percentile(&auth.latencies_us, 0.99),
            percentile(&claim.latencies_us, 0.5),
            percentile(&claim.latencies_us, 0.99),
        );
    }
}

/// `threads` threads, each with a connection of its own made by `connect`,
/// each running `op` until `seconds` have passed since all were connected:
/// the operations per second of them all. `op` is given a number no other
/// call is given.
fn concurrent_rate<C>(
    threads: usize,
    seconds: u64,
    connect: impl Fn() -> C + Sync,
    op: impl Fn(&mut C, i64) + Sync,
) -> f64 {
    let connected = std::sync::Barrier::new(threads + 1);
    let (count, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (connect, op, connected) = (&connect, &op, &connected);
                scope.spawn(move || {
                    let mut conn = connect();
                    connected.wait();
                    let deadline = Instant::now() + Duration::from_secs(seconds);
                    let mut done = 0;
                    while Instant::now() < deadline {
                        op(&mut conn, done * threads as i64 + thread as i64);
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        connected.wait();
        let t0 = Instant::now();
        let count: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        (count, t0.elapsed())
    });
    count as f64 / elapsed.as_secs_f64()
}

/// Rows of the read ceilings' table, looked up by id in turn.
const READ_ROWS: i64 = 10_000;

/// `connections` SQLite connections (a node's workers each read on one of
/// their own) looking up a 32-byte value by primary key, in a temp dir on
/// the filesystem `Server::start` makes its databases on.
fn sqlite_read_rate(connections: usize, seconds: u64) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("reads.db");
    std::fs::File::create(&db).expect("create the database file");
    authmd::internals::store::connect(&db)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE bench_reads (id INTEGER PRIMARY KEY, value BLOB NOT NULL);
             WITH RECURSIVE n(id) AS (SELECT 0 UNION ALL SELECT id + 1 FROM n WHERE id < {READ_ROWS} - 1)
             INSERT INTO bench_reads SELECT id, randomblob(32) FROM n;"
        ))
        .unwrap();
    let rate = concurrent_rate(
        connections,
        seconds,
        || authmd::internals::store::connect(&db).unwrap(),
        |conn, n| {
            let mut select = conn
                .prepare_cached("SELECT value FROM bench_reads WHERE id = ?1")
                .unwrap();
            let value: Vec<u8> = select.query_row([n % READ_ROWS], |row| row.get(0)).unwrap();
            assert_eq!(value.len(), 32);
        },
    );
    println!("SQLite read rate, {connections} connections, one row by primary key each: {rate:.0} reads/s");
    rate
}

fn postgres_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect to the bench's PostgreSQL server")
}

/// `connections` connections, each committing one-row INSERTs (one
/// transaction each, no index) into one table: the server's commit rate
/// at that many concurrent writers, which its group commit serves together.
fn postgres_commit_rate(url: &str, connections: usize, seconds: u64) -> f64 {
    postgres_client(url)
        .batch_execute("CREATE TABLE IF NOT EXISTS bench_commits (n bigint NOT NULL)")
        .unwrap();
    let rate = concurrent_rate(
        connections,
        seconds,
        || {
            let mut client = postgres_client(url);
            let insert = client.prepare("INSERT INTO bench_commits (n) VALUES ($1)").unwrap();
            (client, insert)
        },
        |(client, insert), n| {
            client.execute(&*insert, &[&n]).unwrap();
        },
    );
    println!("PostgreSQL commit rate, {connections} connections, one-row INSERT per transaction: {rate:.0} commits/s");
    rate
}

/// [`sqlite_read_rate`] on the PostgreSQL server, over loopback TCP.
fn postgres_read_rate(url: &str, connections: usize, seconds: u64) -> f64 {
    postgres_client(url)
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS bench_reads (id bigint PRIMARY KEY, value bytea NOT NULL);
             INSERT INTO bench_reads SELECT n, sha256(int8send(n)) FROM generate_series(0, {READ_ROWS} - 1) n
             ON CONFLICT DO NOTHING;
             ANALYZE bench_reads;"
        ))
        .unwrap();
    let rate = concurrent_rate(
        connections,
        seconds,
        || {
            let mut client = postgres_client(url);
            let select = client.prepare("SELECT value FROM bench_reads WHERE id = $1").unwrap();
            (client, select)
        },
        |(client, select), n| {
            let value: Vec<u8> = client.query_one(&*select, &[&(n % READ_ROWS)]).unwrap().get(0);
            assert_eq!(value.len(), 32);
        },
    );
    println!("PostgreSQL read rate, {connections} connections, one row by primary key each: {rate:.0} reads/s");
    rate
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// How many nodes on which backend, in the nodes scenario.
struct Setup {
    name: &'static str,
    backend: Backend,
    nodes: usize,
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "1 SQLite node",
        backend: Backend::Sqlite,
        nodes: 1,
    },
    Setup {
        name: "1 PostgreSQL node",
        backend: Backend::Postgres,
        nodes: 1,
    },
    Setup {
        name: "2 PostgreSQL nodes",
        backend: Backend::Postgres,
        nodes: 2,
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Flow {
    Anonymous,
    Authenticated,
    IdJag,
}

/// What a ceiling counts.
#[derive(Clone, Copy, PartialEq)]
enum Measure {
    Commits,
    Reads,
    Verifies,
}

impl Flow {
    const ALL: [Flow; 3] = [Flow::Anonymous, Flow::Authenticated, Flow::IdJag];

    fn name(self) -> &'static str {
        match self {
            Flow::Anonymous => "v0.1 anonymous registration",
            Flow::Authenticated => "authenticated GET /api/resource",
            Flow::IdJag => "v0.1 ID-JAG registration",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Flow::Anonymous | Flow::IdJag => "registrations",
            Flow::Authenticated => "requests",
        }
    }

    /// Its ceiling: a commit per registration, a lookup per authenticated
    /// request, and for an ID-JAG registration the ES256 verification (as
    /// in write-path).
    fn measure(self) -> Measure {
        match self {
            Flow::Anonymous => Measure::Commits,
            Flow::Authenticated => Measure::Reads,
            Flow::IdJag => Measure::Verifies,
        }
    }
}

/// A node's write pool on PostgreSQL: one connection per worker and per
/// background writer (`store::db::postgres_pool_sizes`, not public).
fn write_pool_size(workers: usize) -> usize {
    workers + 2
}

/// A node's connections on PostgreSQL at most (README "Running several
/// nodes": reads and writes from separate bounds).
fn node_connections(workers: usize) -> usize {
    2 * workers + 5
}

/// The PostgreSQL server's settings the nodes scenario prints, one line.
const SHOWN_SETTINGS: &str = "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) \
    FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', \
    'commit_delay', 'max_connections', 'shared_buffers')";

/// Issue 14 in one invocation: a PostgreSQL server as durable as a
/// production one; the ceilings each setup's flows are a ratio to, measured
/// first (only those the chosen flows need); then each flow on a fresh
/// database with one SQLite node, one PostgreSQL node and two PostgreSQL
/// nodes sharing a database, the clients split between them.
fn nodes(o: &Options) {
    let wanted: Vec<(&Setup, Flow, String)> = SETUPS
        .iter()
        .flat_map(|setup| Flow::ALL.map(|flow| (setup, flow, format!("{}: {}", setup.name, flow.name()))))
        .filter(|(_, _, name)| name.contains(&o.flow))
        .collect();
    let needs = |backend: Backend, nodes: usize, measure: Measure| {
        wanted
            .iter()
            .any(|(setup, flow, _)| setup.backend == backend && setup.nodes == nodes && flow.measure() == measure)
    };
    let seconds = o.seconds.min(10);
    println!(
        "machine: {} cores; {} workers a node, {} clients in all",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.workers,
        o.clients
    );

    let postgres = wanted
        .iter()
        .any(|(setup, _, _)| setup.backend == Backend::Postgres)
        .then(|| {
            // Two nodes' pools with as many again spare, for the backends
            // of the flow before's nodes, which exit when they see their
            // connection closed.
            let max_connections = (4 * node_connections(o.workers)).to_string();
            let settings: Vec<(&str, &str)> = authmd_dev::postgres::DURABLE
                .iter()
                .copied()
                .chain([("max_connections", max_connections.as_str())])
                .collect();
            let server = authmd_dev::postgres::Server::new("authmd-bench-pg-", &settings);
            let cluster = server.cluster();
            for (name, value) in &settings {
                assert_eq!(cluster.psql("postgres", &format!("SHOW {name}")).trim(), *value);
            }
            println!(
                "PostgreSQL {} on 127.0.0.1:{}: {}",
                cluster.psql("postgres", "SHOW server_version").trim(),
                cluster.port,
                cluster.psql("postgres", SHOWN_SETTINGS).trim()
            );
            cluster.psql("postgres", "CREATE DATABASE ceilings");
            server
        });

    let mut ceilings: Vec<(Backend, usize, Measure, Ceiling)> = Vec::new();
    if needs(Backend::Sqlite, 1, Measure::Commits) {
        ceilings.push((Backend::Sqlite, 1, Measure::Commits, sqlite_commit_ceiling(seconds)));
    }
    if needs(Backend::Sqlite, 1, Measure::Reads) {
        let read = Ceiling {
            name: "read",
            rate: sqlite_read_rate(o.workers, seconds),
        };
        ceilings.push((Backend::Sqlite, 1, Measure::Reads, read));
    }
    if let Some(server) = &postgres {
        let url = server.cluster().url("ceilings");
        for (nodes, commit, read) in [(1, "pg commit", "pg read"), (2, "pg commit x2", "pg read x2")] {
            if needs(Backend::Postgres, nodes, Measure::Commits) {
                let rate = postgres_commit_rate(&url, nodes * write_pool_size(o.workers), seconds);
                ceilings.push((
                    Backend::Postgres,
                    nodes,
                    Measure::Commits,
                    Ceiling { name: commit, rate },
                ));
            }
            if needs(Backend::Postgres, nodes, Measure::Reads) {
                let rate = postgres_read_rate(&url, nodes * o.workers, seconds);
                ceilings.push((Backend::Postgres, nodes, Measure::Reads, Ceiling { name: read, rate }));
            }
        }
    }
    let provider = wanted.iter().any(|(_, flow, _)| *flow == Flow::IdJag).then(|| {
        let provider = Provider::start();
        let verifies = Ceiling {
            name: "verify",
            rate: verify_rate(&provider),
        };
        (provider, verifies)
    });
    let ceiling = |setup: &Setup, flow: Flow| match (flow.measure(), &provider) {
        (Measure::Verifies, Some((_, verifies))) => *verifies,
        (measure, _) => {
            let found = ceilings
                .iter()
                .find(|(backend, nodes, m, _)| *backend == setup.backend && *nodes == setup.nodes && *m == measure);
            found.expect("measured above").3
        }
    };

    let mut rows = Vec::new();
    for (n, (setup, flow, name)) in wanted.iter().enumerate() {
        let started: Vec<Server> = match &postgres {
            Some(server) if setup.backend == Backend::Postgres => {
                let database = format!("flow_{n}");
                server
                    .cluster()
                    .psql("postgres", &format!("CREATE DATABASE {database}"));
                let url = server.cluster().url(&database);
                let first = Server::start_on(&o.binary, std::path::Path::new(&url), o.workers, &[]);
                let others: Vec<Server> = (1..setup.nodes).map(|_| first.join(o.workers)).collect();
                std::iter::once(first).chain(others).collect()
            }
            _ => vec![Server::start(&o.binary, o.workers, &[])],
        };
        let nodes: Vec<&Server> = started.iter().collect();
        let postmaster = postgres
            .as_ref()
            .filter(|_| setup.backend == Backend::Postgres)
            .and_then(|server| server.pid());
        let (report, cpu) = CpuSamples::during(&nodes, postmaster, || match flow {
            Flow::Anonymous => anonymous_registrations(&nodes, o),
            Flow::Authenticated => {
                let keys = registered_keys(nodes[0], 50);
                authenticated_gets(&bases(&nodes), &keys, o.clients, o.seconds)
            }
            Flow::IdJag => {
                let (provider, _) = provider.as_ref().expect("started above");
                id_jag_registrations(&nodes, provider, "/agent/auth", v0_1_id_jag, o)
            }
        });
        let pace = Pace::of(&report, &cpu, flow.unit(), EVERY);
        let limit = (ceiling(setup, *flow), None);
        record(&mut rows, name.clone(), (&report, &nodes), o.clients, pace, limit);
    }

    println!(
        "\nsummary: ceilings {}; cores busy: nodes / postgres / load generator (this process) / other processes",
        ceilings
            .iter()
            .map(|(_, _, _, c)| *c)
            .chain(provider.as_ref().map(|(_, verifies)| *verifies))
            .map(|c| format!("{} {:.0}/s", c.name, c.rate))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{:<51} {:>7} {:>18} {:>7} {:>6} {:>8} {:>5} {:>23} {:>13}",
        "flow", "rate/s", "ratio", "p99 ms", "errors", "CPU us", "idle", "cores busy", "peak RSS MiB"
    );
    for row in &rows {
        let cores = &row.pace.cores;
        println!(
            "{:<51} {:>7.0} {:>18} {:>7.2} {:>6} {:>8.0} {:>4.0}% {:>23} {:>13}",
            row.flow,
            row.pace.whole,
            format!("{:.2}x {}", row.ratio(), row.ceiling.name),
            row.p99_ms,
            row.errors,
            row.pace.cpu_us[0],
            row.pace.idle * 100.0,
            format!(
                "{:.2} / {} / {:.2} / {:.2}",
                cores.nodes,
                cores.postgres.map_or("-".into(), |c| format!("{c:.2}")),
                cores.load,
                cores.other
            ),
            mib(row.peak_rss_mib.iter().copied())
        );
    }
}

fn main() {
    let o = options().unwrap_or_else(|e| panic!("{e}"));
    match o.scenario.as_str() {
        "write-path" => return write_path(&o),
        "nodes" => return nodes(&o),
        _ => {}
    }
    // The gateway scenario needs its upstream before the server starts, the
    // refresh scenario a mail outbox the person reads the sign-in code from.
    let upstream = (o.scenario == "gateway").then(start_upstream);
    let outbox = tempfile::tempdir().expect("temp dir");
    let mail = format!("file:{}", outbox.path().display());
    let extra: Vec<&str> = match (&upstream, o.scenario.as_str()) {
        (Some(url), _) => vec!["--upstream", url.as_str()],
        (None, "refresh") => vec!["--mail", mail.as_str()],
        (None, _) => vec![],
    };
    let mut server = Server::start(&o.binary, o.workers, &extra);
    match o.scenario.as_str() {
        "gateway" => {
            let upstream = upstream.expect("started above");
            let key = anonymous_key(&server);
            let direct = drive(&[&upstream], o.clients, o.seconds, &|_| {
                Some(("GET", "/api/items".into(), None, None))
            });
            print_report("upstream directly", &direct, &[&server], o.clients);
            let through = drive(&[&server.base], o.clients, o.seconds, &|_| {
                Some(("GET", "/api/items".into(), None, Some(key.clone())))
            });
            print_report("through the gateway", &through, &[&server], o.clients);
            println!(
                "added by the gateway: p50 {:+.2} ms, p99 {:+.2} ms",
                percentile(&through.latencies_us, 0.50) - percentile(&direct.latencies_us, 0.50),
                percentile(&through.latencies_us, 0.99) - percentile(&direct.latencies_us, 0.99)
            );
        }
        "anonymous" => {
            let report = anonymous_registrations(&[&server], &o);
            print_report("anonymous registration", &report, &[&server], o.clients);
        }
        "identity" => {
            // The current generation's anonymous registration (SPEC-v0.7 4.1).
            let body = r#"{"type":"anonymous"}"#.to_string();
            let report = drive(&[&server.base], o.clients, o.seconds, &|_| {
                Some(("POST", "/agent/identity".into(), Some(body.clone()), None))
            });
            print_report("v0.7 anonymous registration", &report, &[&server], o.clients);
        }
        "token-exchange" => {
            // One anonymous v0.7 assertion, exchanged again and again (SPEC-v0.7 8).
            let registered = post_json(&server.base, "/agent/identity", &json!({"type":"anonymous"}));
            let assertion = registered["identity"]["assertion"].as_str().unwrap().to_string();
            let form = exchange_form(&assertion);
            let report = drive(&[&server.base], o.clients, o.seconds, &|_| {
                Some(("FORM", TOKEN_PATH.into(), Some(form.clone()), None))
            });
            print_report("v0.7 token exchange", &report, &[&server], o.clients);
        }
        "refresh" => {
            // A refresh chain per client (SPEC-v0.7 9): each rotation spends
            // the token and answers the next one. The chains come from one
            // person claiming an agent per client, before the measured window.
            let mut person = Person::new(&server.base);
            person.sign_in("bench@example.com", outbox.path());
            let first: Vec<String> = (0..o.clients)
                .map(|_| claimed_refresh_token(&server.base, &mut person, "bench@example.com"))
                .collect();
            let report = drive(&[&server.base], o.clients, o.seconds, &|turn| {
                let token = match turn.previous {
                    None => first[turn.client].clone(),
                    Some(answer) => serde_json::from_str::<Value>(answer).ok()?["identity"]["refresh_token"]["value"]
                        .as_str()?
                        .to_string(),
                };
                let body = json!({"type":"refresh","refresh_token":token}).to_string();
                Some(("POST", "/agent/identity".into(), Some(body), None))
            });
            print_report("v0.7 refresh rotation", &report, &[&server], o.clients);
        }
        "authenticated" => {
            let key = anonymous_key(&server);
            let report = drive(&[&server.base], o.clients, o.seconds, &|_| {
                Some(("GET", "/api/resource".into(), None, Some(key.clone())))
            });
            print_report("authenticated GET /api/resource", &report, &[&server], o.clients);
        }
        "id-jag" => {
            let provider = Provider::start();
            verify_rate(&provider);
            let report = id_jag_registrations(&[&server], &provider, "/agent/auth", v0_1_id_jag, &o);
            print_report(
                "ID-JAG registration (ES256, new user each)",
                &report,
                &[&server],
                o.clients,
            );
        }
        "commit-rate" => {
            commit_rate(&server.db, o.seconds);
        }
        "scale" => {
            let keys = registered_keys(&server, 50);
            let (auth_empty, claim_empty) = lookups(&server, &keys, o.seconds);
            print_report("empty: authenticate (1 client)", &auth_empty, &[&server], 1);
            print_report("empty: claim lookup (1 client)", &claim_empty, &[&server], 1);
            let _ = server.child.kill();
            let _ = server.child.wait();
            let filling = Instant::now();
            fill(&server.db, o.count);
            eprintln!(
                "filled {} registrations in {:.1} s",
                o.count,
                filling.elapsed().as_secs_f64()
            );
            server.restart(o.workers);
            let (auth_full, claim_full) = lookups(&server, &keys, o.seconds);
            print_report(
                &format!("{} registrations: authenticate (1 client)", o.count),
                &auth_full,
                &[&server],
                1,
            );
            print_report(
                &format!("{} registrations: claim lookup (1 client)", o.count),
                &claim_full,
                &[&server],
                1,
            );
            for (what, empty, full) in [
                ("authenticate", &auth_empty, &auth_full),
                ("claim lookup", &claim_empty, &claim_full),
            ] {
                println!(
                    "{what}: p50 {:.3} -> {:.3} ms (x{:.2}), p99 {:.3} -> {:.3} ms (x{:.2})",
                    percentile(&empty.latencies_us, 0.5),
                    percentile(&full.latencies_us, 0.5),
                    percentile(&full.latencies_us, 0.5) / percentile(&empty.latencies_us, 0.5),
                    percentile(&empty.latencies_us, 0.99),
                    percentile(&full.latencies_us, 0.99),
                    percentile(&full.latencies_us, 0.99) / percentile(&empty.latencies_us, 0.99),
                );
            }
            let loaded = authenticated_gets(&[&server.base], &keys, o.clients, o.seconds);
            print_report(
                &format!("{} registrations: authenticated GET", o.count),
                &loaded,
                &[&server],
                o.clients,
            );
            let size = std::fs::metadata(&server.db).map_or(0, |m| m.len())
                + std::fs::metadata(server.db.with_extension("db-wal")).map_or(0, |m| m.len());
            println!(
                "database: {:.0} MiB for {} registrations ({:.0} MiB per million)",
                size as f64 / 1048576.0,
                o.count + 50,
                size as f64 / 1048576.0 / ((o.count + 50) as f64 / 1e6)
            );
        }
        "revoke-all" => {
            let count = o.count;
            // The server is not needed: the fill writes the file directly.
            let _ = server.child.kill();
            let _ = server.child.wait();
            let filling = Instant::now();
            fill(&server.db, count);
            eprintln!(
                "filled {count} registrations in {:.1} s",
                filling.elapsed().as_secs_f64()
            );
            let t0 = Instant::now();
            let out = Command::new(&server.binary)
                .arg("--db")
                .arg(&server.db)
                .args(["revoke", "--all", "--yes"])
                .output()
                .unwrap();
            println!(
                "revoke --all: {} in {:.2} s",
                String::from_utf8_lossy(&out.stdout).trim(),
                t0.elapsed().as_secs_f64()
            );
        }
        other => panic!(
            "unknown scenario {other:?}: anonymous, identity, token-exchange, refresh, id-jag, authenticated, gateway, scale, revoke-all, commit-rate, write-path, nodes"
        ),
    }
}
