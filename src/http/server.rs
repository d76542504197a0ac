//! The running server: `tiny_http` accepting connections, a bounded pool of
//! worker threads (each with its own database connection) answering them,
//! and a thread that reloads settings every second so `authmd config set`
//! reaches a running server within 2 seconds.
//!
//! This is the only module that touches `tiny_http`: [`to_request`] turns its
//! request into an owned [`Request`] (body read up to the cap), and
//! [`respond`] writes a [`Response`] and the access-log line.
//!
//! The edge's own defences live in `vendor/tiny_http` (see its README): a
//! cap on open connections below the file-descriptor limit, deadlines for a
//! request's head and body and for idle connections, bounded headers,
//! strict framing, and bodies up to 64 KiB read before a request reaches a
//! worker. Here they are configured ([`EdgeLimits`]) and their refusals get
//! the JSON error body and an access-log line ([`EdgeHooks`]). The database
//! file is locked for as long as the server runs, and watched: deleted or
//! replaced, it takes no more writes and the server exits.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Body, MAX_BODY_BYTES, Request, Response, error_response, refusal_for, routes};
use crate::core::Config;
use crate::error::Error;
use crate::keys::KeyCache;
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::settings::Settings;
use crate::store::{self, OpenError};
use crate::time::{Clock, Ticker};
use crate::{log, secrets};

const SETTINGS_RELOAD_EVERY: Duration = Duration::from_secs(1);
const DATABASE_CHECK_EVERY: Duration = Duration::from_secs(2);
/// Connections the default cap allows at most, whatever the descriptor limit.
const DEFAULT_MAX_CONNECTIONS: usize = 4096;
const POLL_EVERY: Duration = Duration::from_millis(100);

pub struct Options {
    /// The SQLite file, or the PostgreSQL database (`--db`).
    pub db: store::Target,
    pub listen: String,
    /// `None`: `http://<bound address>`.
    pub base_url: Option<String>,
    pub workers: usize,
    /// The wall clock: every instant stored or compared with a token.
    pub clock: Arc<dyn Clock>,
    /// The monotonic clock: rate-limit windows and cache freshness.
    pub ticker: Arc<dyn Ticker>,
    /// Where the outbox is delivered.
    pub mail: crate::mail::Transport,
    /// Take the client IP from the right-most `X-Forwarded-For` entry (one trusted proxy).
    pub trust_proxy: bool,
    /// Guard and proxy this API (`--upstream`).
    pub upstream: Option<String>,
    pub edge: EdgeLimits,
    /// Fetch provider keys and client metadata from loopback addresses too
    /// (`--allow-loopback-fetch`, development providers on 127.0.0.1).
    pub allow_loopback_fetch: bool,
}

/// What one client may hold of the server (`serve --max-connections`,
/// `--header-timeout-secs`, `--body-timeout-secs`, `--idle-timeout-secs`).
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    /// `None`: derived from the file-descriptor limit.
    pub max_connections: Option<usize>,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for EdgeLimits {
    fn default() -> EdgeLimits {
        EdgeLimits {
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(15),
        }
    }
}

/// State every worker shares.
struct Shared {
    config: RwLock<Arc<Config>>,
    keys: KeyCache,
    limiter: Arc<Limiter>,
    metrics: Metrics,
    trust_proxy: bool,
    upstream: Option<String>,
    upstream_client: crate::upstream::Client,
    writer: Arc<crate::store::Writer>,
    /// Uses of credentials at the guarded API, written in batches.
    last_used: Arc<crate::last_used::LastUsed>,
    clock: Arc<dyn Clock>,
    ticker: Arc<dyn Ticker>,
    base_url: String,
    mail_wake: std::sync::mpsc::SyncSender<()>,
    stopping: Arc<AtomicBool>,
    /// The SQLite file the server opened (none on PostgreSQL).
    db_file: Option<store::FileIdentity>,
    /// Set when the database file is gone: the server answers 503 and exits.
    fatal: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why the server must stop: its database file is gone, or the disk
    /// refused to sync it.
    fn fatal(&self) -> Option<String> {
        let gone = self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone();
        gone.or_else(|| self.writer.failure())
    }
}

/// A server that is accepting requests; stop it with [`Running::shutdown`].
pub struct Running {
    pub base_url: String,
    pub local_addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Held (an exclusive `flock`) until the server is gone; dropped last,
    /// since closing a descriptor of the file drops SQLite's locks too.
    /// None on PostgreSQL, which several nodes share.
    _lock: Option<std::fs::File>,
}

#[derive(Debug)]
pub enum StartError {
    /// Bad configuration: exit status 78.
    Config(String),
    Database(OpenError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(why) => f.write_str(why),
            StartError::Database(err) => write!(f, "{err}"),
        }
    }
}

/// Opens (creating and migrating) the database, binds, and starts the workers.
pub fn start(options: Options) -> Result<Running, StartError> {
    let workers = options.workers.max(1);
    let mut conn = store::Db::open(&options.db).map_err(StartError::Database)?;
    let stored = conn.stored_settings().map_err(|e| StartError::Config(e.to_string()))?;
    let settings = Settings::from_stored(&stored)
        .map_err(|why| StartError::Config(format!("stored settings are invalid: {why}")))?;
    let lock = options.db.path().map(lock_database).transpose()?;
    // The first start makes the key that signs assertions (SPEC-v0.7 5.3)
    // and the ones pages' codes and forms are keyed with, so reads never write.
    let now_ms = options.clock.now();
    conn.write(|tx| {
        crate::core::signin::ensure_keys(tx, now_ms)?;
        crate::core::signing::ensure_current(tx, now_ms)
    })
    .map_err(|e| StartError::Database(store::OpenError(format!("cannot make the signing key: {e}"))))?;
    drop(conn);
    let (writer, db_file) = match &options.db {
        store::Target::Sqlite(path) => (
            store::Writer::open(path).map_err(StartError::Database)?,
            Some(store::FileIdentity::of(path).map_err(StartError::Database)?),
        ),
        #[cfg(feature = "postgres")]
        store::Target::Postgres(url) => (
            store::Writer::open_postgres(url, workers).map_err(StartError::Database)?,
            None,
        ),
        #[cfg(not(feature = "postgres"))]
        store::Target::Postgres(_) => unreachable!("store::Db::open refused it"),
    };

    let listener = std::net::TcpListener::bind(&options.listen)
        .map_err(|e| StartError::Config(format!("cannot listen on {}: {e}", options.listen)))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| StartError::Config(format!("cannot listen on {}: {e}", options.listen)))?;
    let base_url = match options.base_url {
        Some(url) => url,
        None => format!("http://{local_addr}"),
    };
    let max_connections = connection_limit(options.edge.max_connections, workers)?;
    let (mail_wake, wake) = std::sync::mpsc::sync_channel(1);
    let writer = Arc::new(writer);
    // Nodes sharing a database share its rate-limit windows (`ratelimit`).
    let limiter = match writer.shared() {
        true => Limiter::in_database(writer.clone()),
        false => Limiter::default(),
    };
    let shared = Arc::new(Shared {
        config: RwLock::new(Arc::new(Config::new(&base_url, settings))),
        keys: KeyCache::new(
            crate::fetch::Fetcher::new(options.allow_loopback_fetch),
            options.ticker.clone(),
        ),
        limiter: Arc::new(limiter),
        metrics: Metrics::default(),
        trust_proxy: options.trust_proxy,
        upstream: options.upstream,
        upstream_client: crate::upstream::Client::default(),
        writer,
        last_used: Arc::default(),
        clock: options.clock,
        ticker: options.ticker,
        base_url: base_url.clone(),
        mail_wake,
        stopping: Arc::new(AtomicBool::new(false)),
        db_file,
        fatal: std::sync::Mutex::new(None),
    });
    let limits = tiny_http::Limits {
        max_connections,
        head_timeout: options.edge.header_timeout,
        body_timeout: options.edge.body_timeout,
        idle_timeout: options.edge.idle_timeout,
        write_timeout: options.edge.body_timeout,
        buffered_body_bytes: MAX_BODY_BYTES,
        ..tiny_http::Limits::default()
    };
    let hooks = Arc::new(EdgeHooks {
        shared: shared.clone(),
        last_accept_warning: std::sync::Mutex::new(None),
    });
    let server = tiny_http::Server::from_listener(listener, limits, hooks)
        .map_err(|e| StartError::Config(format!("cannot listen on {}: {e}", options.listen)))?;
    let server = Arc::new(server);

    let mut threads = Vec::new();
    for n in 0..workers {
        let conn = shared.writer.reader().map_err(StartError::Database)?;
        let (server, shared) = (server.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("worker-{n}"))
            .spawn(move || work(&server, &shared, conn))
            .map_err(|e| StartError::Config(format!("cannot start worker threads: {e}")))?;
        threads.push(thread);
    }
    let policy_shared = shared.clone();
    let sender = crate::mail::Sender {
        transport: options.mail,
        clock: shared.clock.clone(),
        policy: Box::new(move || {
            let settings = &policy_shared.config().settings;
            crate::mail::Policy {
                from: settings.mail_from.clone(),
                max_attempts: settings.mail_max_attempts as i64,
                retry_base_secs: settings.mail_retry_base_secs,
            }
        }),
        stopping: shared.stopping.clone(),
        writer: shared.writer.clone(),
        wake,
    };
    threads.push(
        std::thread::Builder::new()
            .name("mail".into())
            .spawn(move || sender.run())
            .map_err(|e| StartError::Config(format!("cannot start the mail thread: {e}")))?,
    );
    let window_shared = shared.clone();
    let sweeper = crate::sweeper::Sweeper {
        clock: shared.clock.clone(),
        limiter: shared.limiter.clone(),
        ticker: shared.ticker.clone(),
        writer: shared.writer.clone(),
        last_used: shared.last_used.clone(),
        window_secs: Box::new(move || window_shared.config().settings.rate_limits.window_secs),
        stopping: shared.stopping.clone(),
    };
    threads.push(
        std::thread::Builder::new()
            .name("sweeper".into())
            .spawn(move || sweeper.run())
            .map_err(|e| StartError::Config(format!("cannot start the sweeper thread: {e}")))?,
    );
    let reload_shared = shared.clone();
    threads.push(
        std::thread::Builder::new()
            .name("settings".into())
            .spawn(move || reload_settings(&reload_shared))
            .map_err(|e| StartError::Config(format!("cannot start the settings thread: {e}")))?,
    );
    // SQLite's own: the WAL checkpoints, and the file watched.
    if let Some(path) = options.db.path() {
        let checkpointed = shared.clone();
        let conn = store::connect(path).map_err(StartError::Database)?;
        threads.push(
            std::thread::Builder::new()
                .name("checkpoint".into())
                .spawn(move || checkpoint(&checkpointed, &conn))
                .map_err(|e| StartError::Config(format!("cannot start the checkpoint thread: {e}")))?,
        );
        let watched = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("database-watch".into())
                .spawn(move || watch_database(&watched))
                .map_err(|e| StartError::Config(format!("cannot start the database watch: {e}")))?,
        );
    }
    Ok(Running {
        base_url,
        local_addr,
        server,
        shared,
        threads,
        _lock: lock,
    })
}

/// One server per database file: a second would send every mail again and
/// double every in-memory limit.
fn lock_database(path: &Path) -> Result<std::fs::File, StartError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StartError::Config(format!("cannot open {} to lock it: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::Config(format!(
            "{} is in use by another `authmd serve` (it holds the file's lock); stop that one first",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StartError::Config(format!("cannot lock {}: {e}", path.display()))),
    }
}

/// Raises the soft descriptor limit to the hard one, and keeps connections
/// below what is left after the database connections, outbound clients and
/// logs (each connection costs one descriptor).
fn connection_limit(requested: Option<usize>, workers: usize) -> Result<usize, StartError> {
    let soft = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024);
    // Three descriptors per SQLite connection (file, WAL, shared memory),
    // one connection per worker plus a few, and room for outbound sockets.
    let reserve = 3 * (workers + 8) + 64;
    let available = usize::try_from(soft).unwrap_or(usize::MAX).saturating_sub(reserve);
    match requested {
        Some(n) if n > available => Err(StartError::Config(format!(
            "--max-connections {n} needs more file descriptors than the {available} left under the limit of {soft} \
             (raise LimitNOFILE or ulimit -n, or lower --max-connections)"
        ))),
        Some(n) => Ok(n),
        None => Ok(available.clamp(16, DEFAULT_MAX_CONNECTIONS)),
    }
}

/// Every few seconds: is the file at the database path still the one the
/// server opened? If not, every acknowledged write from now on would be lost
/// with the unlinked file, so the server refuses them and stops.
fn watch_database(shared: &Shared) {
    let Some(db_file) = &shared.db_file else { return };
    every(shared, DATABASE_CHECK_EVERY, || match db_file.check() {
        Ok(()) => true,
        Err(why) => {
            log::error(
                &format!("{why} while the server was running: refusing writes and stopping"),
                None,
            );
            *shared.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            false
        }
    });
}

/// Copies the WAL into the database file beside the writes, off every
/// request's path (`store::Writer::checkpoint`).
fn checkpoint(shared: &Shared, conn: &store::sqlite::Connection) {
    every(shared, POLL_EVERY, || {
        if let Err(e) = shared.writer.checkpoint(conn) {
            log::warn(&format!("checkpoint: {e}"));
        }
        true
    });
}

/// Runs `tick` every `interval` until the server stops or `tick` says
/// `false`, waking often enough to notice the stop within `POLL_EVERY`.
fn every(shared: &Shared, interval: Duration, mut tick: impl FnMut() -> bool) {
    let mut last = Instant::now();
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(POLL_EVERY);
        if last.elapsed() < interval {
            continue;
        }
        last = Instant::now();
        if !tick() {
            return;
        }
    }
}

/// The edge's refusals, in the JSON error body and the access log.
struct EdgeHooks {
    shared: Arc<Shared>,
    last_accept_warning: std::sync::Mutex<Option<Instant>>,
}

impl tiny_http::Hooks for EdgeHooks {
    fn refusal(&self, refusal: &tiny_http::Refusal, peer: Option<SocketAddr>) -> (Vec<tiny_http::Header>, Vec<u8>) {
        use crate::error::Edge;
        use tiny_http::Refusal as R;
        let edge = match refusal {
            R::BadRequest(why) => Edge::Malformed(why),
            R::Timeout => Edge::Timeout,
            R::UriTooLong => Edge::UriTooLong,
            R::ExpectationFailed => Edge::ExpectationFailed,
            R::HeadersTooLarge(why) => Edge::HeadersTooLarge(why),
        };
        let request_id = secrets::new_request_id();
        let response = error_response(&Error::Edge(edge), &self.shared.config(), &request_id);
        self.shared.metrics.request("edge", response.status, Duration::ZERO);
        let client_ip = peer.map(|p| p.ip().to_string());
        log::access(&log::Access {
            request_id: &request_id,
            method: "-",
            path: "-",
            status: response.status,
            duration_us: 0,
            client_ip: client_ip.as_deref(),
            reason: response.reason.as_deref(),
        });
        let mut headers: Vec<tiny_http::Header> = response
            .headers
            .iter()
            .filter_map(|(name, value)| tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok())
            .collect();
        headers.extend(tiny_http::Header::from_bytes("X-Request-Id", request_id.as_bytes()).ok());
        (headers, response.body)
    }

    fn accept_failed(&self, error: &std::io::Error) {
        let mut last = self.last_accept_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
            *last = Some(Instant::now());
            log::warn(&format!(
                "cannot accept connections: {error}; retrying (see --max-connections and the file-descriptor limit)"
            ));
        }
    }
}

impl Running {
    /// Loads the settings now, rather than within the next 2 seconds (for
    /// programs that change them and go on at once, such as tests).
    pub fn reload_settings(&self) -> Result<(), String> {
        let mut reader = self.shared.writer.reader().map_err(|e| e.to_string())?;
        reader
            .with(|conn| load_settings(conn, &self.shared))
            .map_err(|e| e.to_string())?
    }

    /// Whether the settings it serves leave `resource_name` unset (pages
    /// then name the service by its host).
    pub fn unnamed(&self) -> bool {
        !self.shared.config().settings.resource_name_set
    }

    /// Why the server must stop on its own (its database file is gone), once it must.
    pub fn fatal(&self) -> Option<String> {
        self.shared.fatal()
    }

    /// Stops accepting, lets workers finish what they hold and what is
    /// queued, and returns once they have, or after `grace`.
    pub fn shutdown(self, grace: Duration) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The mail thread would notice only at its next idle poll (500 ms).
        let _ = self.shared.mail_wake.try_send(());
        self.server.stop_accepting();
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        let deadline = Instant::now() + grace;
        for thread in self.threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                log::warn("a worker did not finish within the shutdown grace period");
            }
        }
        // The uses noted since the sweeper's last flush.
        crate::sweeper::flush_last_used(&self.shared.last_used, &self.shared.writer);
    }
}

fn work(server: &tiny_http::Server, shared: &Shared, mut conn: store::Reader) {
    loop {
        // Stopping: serve what is still arriving (a body being uploaded is
        // in flight too) and what was queued, then stop. A request is queued
        // before it stops counting as being read, so once none is being read
        // the queue holds all that is left.
        if shared.stopping.load(Ordering::SeqCst) && server.requests_being_read() == 0 {
            match server.try_recv() {
                Ok(Some(request)) => serve_one(shared, &mut conn, request),
                _ => return,
            }
            continue;
        }
        if let Ok(Some(request)) = server.recv_timeout(POLL_EVERY) {
            serve_one(shared, &mut conn, request);
        }
    }
}

fn serve_one(shared: &Shared, reader: &mut store::Reader, mut raw: tiny_http::Request) {
    let started = Instant::now();
    let config = shared.config();
    // Gateway requests may carry bodies up to `gateway_max_body_bytes`;
    // everything else is a protocol request, capped at 64 KiB.
    let body_cap = |path: &str| match &shared.upstream {
        Some(_) if config.site.is_resource_path(path) => config.settings.gateway_max_body_bytes as usize,
        _ => MAX_BODY_BYTES,
    };
    let mut request = to_request(&mut raw, shared.trust_proxy, body_cap);
    let now_ms = shared.clock.now();
    let deps = routes::Deps {
        config: &config,
        keys: &shared.keys,
        limiter: &shared.limiter,
        upstream: shared.upstream.as_deref(),
        upstream_client: &shared.upstream_client,
        writer: &shared.writer,
        last_used: &shared.last_used,
        metrics: &shared.metrics,
        now_ms,
        elapsed: shared.ticker.elapsed(),
        mail_wake: Some(&shared.mail_wake),
        db_file: shared.db_file.as_ref(),
    };
    let response = catch_unwind(AssertUnwindSafe(|| {
        if let Some(why) = shared
            .fatal()
            .filter(|_| request.path != crate::site::Endpoint::Healthz.path())
        {
            return refusal_for(&Error::DatabaseUnavailable(why), &config, &request, now_ms);
        }
        let answer = reader.with(|conn| {
            if request.body == Body::Unread {
                if let Some(refusal) = routes::refuse_upload(conn, &deps, &request) {
                    return refusal;
                }
                request.body = read_body(&mut raw, body_cap(&request.path));
            }
            routes::handle(conn, &deps, &request)
        });
        answer.unwrap_or_else(|err| refusal_for(&Error::from(err), &config, &request, now_ms))
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        refusal_for(&Error::Internal(format!("panic: {what}")), &config, &request, now_ms)
    });
    respond(shared, raw, &request, response, started);
}

/// The owned request value: the body as the edge read it (whole, up to
/// 64 KiB; a larger one only on a gateway path, and then left [`Body::Unread`]),
/// the client IP from the socket.
fn to_request(raw: &mut tiny_http::Request, trust_proxy: bool, body_cap: impl Fn(&str) -> usize) -> Request {
    let (path, query) = match raw.url().split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (raw.url().to_string(), None),
    };
    let headers: Vec<(String, String)> = raw
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let cap = body_cap(&path);
    let body = if raw.body_length().is_some_and(|len| len > cap) {
        Body::TooLarge
    } else if raw.body_complete() {
        read_body(raw, cap)
    } else if cap > MAX_BODY_BYTES {
        Body::Unread
    } else {
        Body::TooLarge
    };
    Request {
        id: secrets::new_request_id(),
        method: raw.method().as_str().to_ascii_uppercase(),
        path,
        query,
        body,
        client_ip: client_ip(raw.remote_addr().map(|a| a.ip()), &headers, trust_proxy),
        headers,
    }
}

/// Reads the body up to `cap` bytes (within the edge's body deadline).
fn read_body(raw: &mut tiny_http::Request, cap: usize) -> Body {
    let mut bytes = Vec::new();
    match raw.as_reader().take(cap as u64 + 1).read_to_end(&mut bytes) {
        Ok(n) if n > cap => Body::TooLarge,
        Ok(_) => Body::Complete(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Body::TimedOut,
        Err(_) => Body::Unreadable,
    }
}

/// The socket peer; behind a trusted proxy, the right-most `X-Forwarded-For`
/// entry (the address that proxy saw). Without `--trust-proxy` the header is
/// ignored: anyone can send it.
fn client_ip(peer: Option<IpAddr>, headers: &[(String, String)], trust_proxy: bool) -> Option<IpAddr> {
    if !trust_proxy {
        return peer;
    }
    let forwarded = headers
        .iter()
        .rev()
        .find(|(name, _)| name == "x-forwarded-for")
        .map(|(_, v)| v.as_str());
    let right_most = forwarded.and_then(|v| v.rsplit(',').next()).map(str::trim);
    right_most.and_then(|ip| ip.parse().ok()).or(peer)
}

fn respond(shared: &Shared, raw: tiny_http::Request, request: &Request, response: Response, started: Instant) {
    let status = response.status;
    if status >= 500 {
        log::error(response.reason.as_deref().unwrap_or("server error"), Some(&request.id));
    }
    let mut headers: Vec<tiny_http::Header> = response
        .headers
        .iter()
        .filter_map(|(name, value)| tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok())
        .collect();
    headers.extend(
        response
            .forwarded_headers
            .iter()
            .filter_map(|(name, value)| tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()),
    );
    headers.extend(tiny_http::Header::from_bytes("X-Request-Id", request.id.as_bytes()).ok());
    // tiny_http sends no body for HEAD, but keeps the Content-Length of GET;
    // a stream without a known length goes out chunked.
    // Counted before the answer leaves, so whoever reads /metrics after an
    // answer sees it counted (a streamed body's time is not included).
    shared.metrics.request(response.route, status, started.elapsed());
    let code = tiny_http::StatusCode(status);
    let _ = match response.stream {
        Some(stream) => raw.respond(tiny_http::Response::new(
            code,
            headers,
            stream.reader,
            stream.length,
            None,
        )),
        None => {
            let length = response.body.len();
            raw.respond(tiny_http::Response::new(
                code,
                headers,
                &response.body[..],
                Some(length),
                None,
            ))
        }
    };
    let client_ip = request.client_ip.map(|ip| ip.to_string());
    log::access(&log::Access {
        request_id: &request.id,
        method: &request.method,
        path: &request.path,
        status,
        duration_us: started.elapsed().as_micros(),
        client_ip: client_ip.as_deref(),
        reason: response.reason.as_deref(),
    });
}

/// Loads the settings from the database into the running server; `Err`
/// keeps the previous ones.
fn load_settings(conn: &dyn store::Tx, shared: &Shared) -> Result<(), String> {
    let stored = conn.stored_settings().map_err(|e| e.to_string())?;
    let settings = Settings::from_stored(&stored)?;
    if shared.config().settings != settings {
        *shared.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Config::new(&shared.base_url, settings));
        log::info("settings reloaded");
    }
    Ok(())
}

/// Every second, so `authmd config set` reaches a running server within 2 s.
fn reload_settings(shared: &Shared) {
    let mut conn = None;
    let mut last_error = None;
    every(shared, SETTINGS_RELOAD_EVERY, || {
        if conn.is_none() {
            conn = shared.writer.reader().ok();
        }
        let Some(db) = &mut conn else { return true };
        let loaded = db
            .with(|db| load_settings(db, shared))
            .unwrap_or_else(|e| Err(e.to_string()));
        match loaded {
            Ok(()) => last_error = None,
            Err(why) if last_error.as_ref() != Some(&why) => {
                log::warn(&format!("keeping the previous settings: {why}"));
                last_error = Some(why);
            }
            Err(_) => {}
        }
        true
    });
}
