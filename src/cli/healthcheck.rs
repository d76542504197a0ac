//! `authmd healthcheck`: for containers without curl. Exit 0 if the server
//! answers `/readyz` with 200 within 3 seconds, 1 otherwise.

use std::time::Duration;

use lexopt::prelude::*;

use super::{CliError, Command, Context, print};

pub const COMMAND: Command = Command {
    name: "healthcheck",
    uses_db: false,
    synopsis: &["healthcheck [--url URL]"],
    summary: "exit 0 if the running server is ready",
    details: "  --url URL   the server's base URL (default http://<AUTHMD_LISTEN>, or
              http://127.0.0.1:8080); a 0.0.0.0 or [::] listen address is
              reached through loopback
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let mut url = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("url") => url = Some(parser.value()?.string()?),
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            other => return Err(other.unexpected().into()),
        }
    }
    let base = match url {
        Some(url) => url,
        None => {
            let listen = ctx.env.get("AUTHMD_LISTEN")?.unwrap_or_else(|| "127.0.0.1:8080".into());
            let listen = listen.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
            format!("http://{listen}")
        }
    };
    let target = format!("{}/readyz", base.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3)))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(&target).call() {
        Ok(response) if response.status() == 200 => print("ready\n"),
        Ok(response) => Err(CliError::failure(format!("{target} answered {}", response.status()))),
        Err(err) => Err(CliError::failure(format!("{target}: {err}"))),
    }
}
