//! `authmd keys list | keys rotate`: the keys that sign the assertions
//! authmd issues (SPEC-v0.7 5.3). The private keys never leave the
//! database: these commands show `kid`s and times only. A running server
//! signs with the new key from its next assertion on.

use lexopt::prelude::*;
use serde_json::json;

use super::{CliError, Command, Context, print, print_lines};
use crate::core::signing;
use crate::settings::Settings;
use crate::time::{Clock, SystemClock, rfc3339};

pub const COMMAND: Command = Command {
    name: "keys",
    uses_db: true,
    synopsis: &["keys list [--json]", "keys rotate"],
    summary: "the keys that sign identity assertions (SPEC-v0.7.md)",
    details: "\
`list` shows each key's kid (its RFC 7638 thumbprint), whether it is current
(signs) or retired, and when it was made and retired. `rotate` makes a new
current key; the previous one retires, stays published at
/.well-known/jwks.json and stays accepted until its last assertion has expired
(assertion_ttl_secs + clock_skew_secs after it retired), then it is dropped.
The first key is made when `serve` first starts.
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut words, mut as_json) = (Vec::new(), false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("json") => as_json = true,
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            Value(word) => words.push(word.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["list"] => list(ctx, as_json),
        ["rotate"] if !as_json => rotate(ctx),
        _ => Err(CliError::usage(COMMAND.usage())),
    }
}

fn list(ctx: &Context, as_json: bool) -> Result<(), CliError> {
    let keys = signing::list(&*ctx.open_db()?)?;
    let state = |k: &signing::KeyInfo| if k.retired_ms.is_none() { "current" } else { "retired" };
    if as_json {
        return print_lines(keys.iter().map(|k| {
            json!({
                "kid": k.kid,
                "state": state(k),
                "created_at": rfc3339(k.created_ms),
                "retired_at": k.retired_ms.map(rfc3339),
            })
            .to_string()
        }));
    }
    if keys.is_empty() {
        return print("no signing keys yet; `authmd serve` makes the first on start\n");
    }
    print_lines(keys.iter().map(|k| {
        let retired = k
            .retired_ms
            .map(|at| format!("  retired {}", rfc3339(at)))
            .unwrap_or_default();
        format!("{}  {:<7}  created {}{retired}", k.kid, state(k), rfc3339(k.created_ms))
    }))
}

fn rotate(ctx: &Context) -> Result<(), CliError> {
    let mut conn = ctx.open_db()?;
    let settings = Settings::from_stored(&conn.stored_settings()?).map_err(CliError::config)?;
    let now_ms = SystemClock.now();
    let (kid, retired) = conn.write(|tx| signing::rotate(tx, &settings, now_ms))?;
    match retired {
        Some(retired) => print(&format!("{kid} is the current signing key; {retired} retired\n")),
        None => print(&format!("{kid} is the current signing key\n")),
    }
}
