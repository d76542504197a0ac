//! `authmd serve`: run the server until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use lexopt::prelude::*;

use super::{CliError, Context, print};
use crate::http::server::{self, Options, StartError};
use crate::log;
use crate::time::SystemClock;
use crate::url::HttpUrl;

const USAGE: &str = "\
usage: authmd [--db PATH] serve [OPTIONS]

  --listen ADDR          address to listen on (env AUTHMD_LISTEN, default 127.0.0.1:8080;
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
  --log-format FORMAT    text or json (env AUTHMD_LOG_FORMAT, default text)

Prints `authmd listening on <base-url>` once it accepts requests. SIGINT or
SIGTERM: stop accepting, finish in-flight requests, exit 0.
";

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
    let mut trust_proxy = match env.get("AUTHMD_TRUST_PROXY")?.as_deref() {
        None | Some("" | "false" | "0" | "no") => false,
        Some("true" | "1" | "yes") => true,
        Some(other) => {
            return Err(CliError::config(format!(
                "AUTHMD_TRUST_PROXY must be true or false, not `{other}`"
            )));
        }
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("listen") => listen = Some(parser.value()?.string()?),
            Long("base-url") => base_url = Some(parser.value()?.string()?),
            Long("workers") => workers = Some(parser.value()?.string()?),
            Long("log-format") => log_format = Some(parser.value()?.string()?),
            Long("mail") => mail = Some(parser.value()?.string()?),
            Long("trust-proxy") => trust_proxy = true,
            Long("upstream") => upstream = Some(parser.value()?.string()?),
            Short('h') | Long("help") => return print(USAGE),
            other => return Err(other.unexpected().into()),
        }
    }
    let workers = match workers {
        None => 16,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => n,
            _ => {
                return Err(CliError::config(format!(
                    "--workers must be a number from 1 to 1024, not `{text}`"
                )));
            }
        },
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

    let running = server::start(Options {
        db_path: ctx.db.clone(),
        listen: listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
        base_url,
        workers,
        clock: Arc::new(SystemClock),
        mail: mail.clone(),
        trust_proxy,
        upstream: upstream.clone(),
    })
    .map_err(|err| match err {
        StartError::Config(why) => CliError::config(why),
        StartError::Database(err) => CliError::config(err.0),
    })?;

    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| CliError::failure(format!("cannot install signal handlers: {e}")))?;
    print(&format!("authmd listening on {}\n", running.base_url))?;
    log::info(&format!(
        "listening on {} with {workers} workers, database {}, mail {}",
        running.local_addr,
        ctx.db.display(),
        mail.describe()
    ));

    let signal = signals.forever().next();
    log::info(&format!(
        "signal {} received: finishing in-flight requests",
        signal.unwrap_or_default()
    ));
    running.shutdown(SHUTDOWN_GRACE);
    log::info("stopped");
    Ok(())
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
