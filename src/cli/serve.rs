//! `authmd serve`: run the server until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use lexopt::prelude::*;

use super::{CliError, Command, Context, env_flag, print};
use crate::http::server::{self, Options, StartError};
use crate::log;
use crate::time::SystemClock;
use crate::url::HttpUrl;

pub const COMMAND: Command = Command {
    name: "serve",
    uses_db: true,
    synopsis: &["serve [OPTIONS]"],
    summary: "run the server",
    details: "  --listen ADDR          address to listen on (env AUTHMD_LISTEN, default 127.0.0.1:8080;
                         port 0 picks a free port)
  --base-url URL         public URL of this server (env AUTHMD_BASE_URL,
                         default http://<bound address>)
  --upstream URL         guard and proxy this API: requests under the resource path are
                         authenticated, scope-checked and forwarded (env AUTHMD_UPSTREAM)
  --mail SPEC            where claim emails go (env AUTHMD_MAIL or AUTHMD_MAIL_FILE):
                         smtp://user:pass@host:port (STARTTLS required: a server
                         that does not offer it gets nothing), smtps://user:pass@host:port
                         (TLS), smtp://host:port?tls=none (plaintext, only without
                         credentials: a relay on loopback), file:DIR (one .eml file
                         per message), log; default file:./authmd-outbox
  --workers N            request worker threads (env AUTHMD_WORKERS, default 16)
  --trust-proxy          client IP = right-most X-Forwarded-For entry, set by the one
                         reverse proxy in front (env AUTHMD_TRUST_PROXY=true); without
                         it the header is ignored
  --allow-loopback-fetch fetch provider keys and client metadata from loopback addresses
                         (127.0.0.1, ::1): development providers only (env
                         AUTHMD_ALLOW_LOOPBACK_FETCH=true); without it authmd fetches
                         only from public addresses
  --log-format FORMAT    text or json (env AUTHMD_LOG_FORMAT, default text)
  --max-connections N    connections open at once; more are closed at once (env
                         AUTHMD_MAX_CONNECTIONS, default: what the file-descriptor limit
                         allows, at most 4096; the soft limit is raised to the hard one)
  --header-timeout-secs N  a request's line and headers must arrive within N s (env
                         AUTHMD_HEADER_TIMEOUT_SECS, default 10); else 408 and close
  --body-timeout-secs N  its body within N s more (env AUTHMD_BODY_TIMEOUT_SECS,
                         default 30); else 408 and close
  --idle-timeout-secs N  an idle kept-alive connection is closed after N s (env
                         AUTHMD_IDLE_TIMEOUT_SECS, default 15)

Prints `authmd listening on <base-url>` once it accepts requests. SIGINT or
SIGTERM: stop accepting, finish in-flight requests, exit 0. Only one server
may run on a database file (it is locked); if the file is deleted or replaced
while serving, writes are refused (503) and the server exits with status 1.
",
    run,
};

/// A first run needs no mail server: messages land as files.
pub const DEFAULT_MAIL: &str = "file:./authmd-outbox";

/// Container runtimes kill 10 s after SIGTERM; finish well before.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let env = &ctx.env;
    let mut listen = env.get("AUTHMD_LISTEN")?;
    let mut base_url = env.get("AUTHMD_BASE_URL")?;
    let mut workers = env.get("AUTHMD_WORKERS")?;
    let mut log_format = env.get("AUTHMD_LOG_FORMAT")?;
    let mut mail = env.get("AUTHMD_MAIL")?;
    let mut upstream = env.get("AUTHMD_UPSTREAM")?;
    let mut max_connections = env.get("AUTHMD_MAX_CONNECTIONS")?;
    let mut header_timeout = env.get("AUTHMD_HEADER_TIMEOUT_SECS")?;
    let mut body_timeout = env.get("AUTHMD_BODY_TIMEOUT_SECS")?;
    let mut idle_timeout = env.get("AUTHMD_IDLE_TIMEOUT_SECS")?;
    let mut trust_proxy = env_flag(ctx, "AUTHMD_TRUST_PROXY")?;
    let mut allow_loopback_fetch = env_flag(ctx, "AUTHMD_ALLOW_LOOPBACK_FETCH")?;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => listen = Some(parser.value()?.string()?),
            Long("base-url") => base_url = Some(parser.value()?.string()?),
            Long("workers") => workers = Some(parser.value()?.string()?),
            Long("log-format") => log_format = Some(parser.value()?.string()?),
            Long("mail") => mail = Some(parser.value()?.string()?),
            Long("trust-proxy") => trust_proxy = true,
            Long("allow-loopback-fetch") => allow_loopback_fetch = true,
            Long("upstream") => upstream = Some(parser.value()?.string()?),
            Long("max-connections") => max_connections = Some(parser.value()?.string()?),
            Long("header-timeout-secs") => header_timeout = Some(parser.value()?.string()?),
            Long("body-timeout-secs") => body_timeout = Some(parser.value()?.string()?),
            Long("idle-timeout-secs") => idle_timeout = Some(parser.value()?.string()?),
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            other => return Err(other.unexpected().into()),
        }
    }
    let workers = match workers {
        None => 16,
        Some(text) => number("--workers", &text, 1..=1024)?,
    };
    let defaults = server::EdgeLimits::default();
    let edge = server::EdgeLimits {
        max_connections: max_connections
            .map(|text| number("--max-connections", &text, 1..=1_000_000))
            .transpose()?,
        header_timeout: seconds("--header-timeout-secs", header_timeout, defaults.header_timeout)?,
        body_timeout: seconds("--body-timeout-secs", body_timeout, defaults.body_timeout)?,
        idle_timeout: seconds("--idle-timeout-secs", idle_timeout, defaults.idle_timeout)?,
    };
    log::init(match log_format.as_deref() {
        None | Some("text") => log::Format::Text,
        Some("json") => log::Format::Json,
        Some(other) => {
            return Err(CliError::config(format!(
                "--log-format must be text or json, not `{other}`"
            )));
        }
    });
    let base_url = base_url.map(|url| checked_base_url(&url)).transpose()?;
    if let Some(url) = &upstream {
        HttpUrl::parse(url).map_err(|why| CliError::config(format!("--upstream: {why}")))?;
    }
    let mail = crate::mail::Transport::parse(mail.as_deref().unwrap_or(DEFAULT_MAIL)).map_err(CliError::config)?;

    let created = ctx
        .db
        .path()
        .filter(|path| !path.exists())
        .map(std::path::Path::to_path_buf);
    let running = server::start(Options {
        db: ctx.db.clone(),
        listen: listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
        base_url,
        workers,
        clock: Arc::new(SystemClock),
        ticker: Arc::new(crate::time::SystemTicker::default()),
        mail: mail.clone(),
        trust_proxy,
        upstream: upstream.clone(),
        edge,
        allow_loopback_fetch,
    })
    .map_err(|err| match err {
        StartError::Config(why) => CliError::config(why),
        StartError::Database(err) => CliError::config(err.0),
    })?;

    if let Some(path) = created {
        log::info(&format!("created a new database at {}", path.display()));
    }
    if running.unnamed() {
        warn_unnamed(&running.base_url);
    }
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| CliError::failure(format!("cannot install signal handlers: {e}")))?;
    print(&format!("authmd listening on {}\n", running.base_url))?;
    log::info(&format!(
        "listening on {} with {workers} workers, database {}, mail {}{}",
        running.local_addr,
        ctx.db,
        mail.describe(),
        if allow_loopback_fetch {
            ", fetching from loopback addresses allowed (development)"
        } else {
            ""
        }
    ));

    loop {
        if let Some(signal) = signals.pending().next() {
            log::info(&format!("signal {signal} received: finishing in-flight requests"));
            break;
        }
        if let Some(why) = running.fatal() {
            running.shutdown(SHUTDOWN_GRACE);
            return Err(CliError::failure(format!("stopped: {why}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    running.shutdown(SHUTDOWN_GRACE);
    log::info("stopped");
    Ok(())
}

/// Issue 15: while `resource_name` is unset, pages name the service by its
/// host; one line at start tells the operator how to name it.
fn warn_unnamed(base_url: &str) {
    let host = HttpUrl::parse(base_url).map_or_else(|_| base_url.to_string(), |url| url.authority);
    log::warn(&format!(
        "resource_name is not set: pages call this service {host}; name it with `authmd config set resource_name NAME`"
    ));
}

fn number(flag: &str, text: &str, range: std::ops::RangeInclusive<u64>) -> Result<usize, CliError> {
    match text.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n as usize),
        _ => Err(CliError::config(format!(
            "{flag} must be a number from {} to {}, not `{text}`",
            range.start(),
            range.end()
        ))),
    }
}

fn seconds(flag: &str, text: Option<String>, default: Duration) -> Result<Duration, CliError> {
    match text {
        None => Ok(default),
        Some(text) => Ok(Duration::from_secs(number(flag, &text, 1..=3600)? as u64)),
    }
}

/// A base URL is an origin: authmd serves its paths at the root, so a path
/// here would make every advertised URL wrong.
fn checked_base_url(text: &str) -> Result<String, CliError> {
    let url = HttpUrl::parse(text).map_err(|why| CliError::config(format!("--base-url: {why}")))?;
    if url.path != "/" {
        return Err(CliError::config(format!(
            "--base-url must be an origin such as https://api.example.com, without a path (got {})",
            url.path
        )));
    }
    Ok(url.origin())
}
