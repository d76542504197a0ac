//! `authmd sessions list [--user ID] | sessions revoke (--user ID | --all)`:
//! the sign-in sessions of people at the service (SPEC-v0.7 7.2). A session
//! is shown by its user and times only, never its cookie value (which is
//! not kept); revoking ends it at once.

use lexopt::prelude::*;
use serde_json::json;

use super::{CliError, Command, Context, print, print_lines};
use crate::time::{Clock, SystemClock, rfc3339};

pub const COMMAND: Command = Command {
    name: "sessions",
    uses_db: true,
    synopsis: &[
        "sessions list [--user ID] [--json]",
        "sessions revoke (--user ID | --all)",
    ],
    summary: "people's sign-in sessions at the service",
    details: "\
`list` shows the live sessions (user, address, started, ends), newest first.
`revoke` ends the sessions of one user (--user, an id from `users list`) or
every session (--all): the next page they open asks them to sign in again.
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut words, mut user, mut all, mut as_json) = (Vec::new(), None, false, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("user") => user = Some(parser.value()?.string()?),
            Long("all") => all = true,
            Long("json") => as_json = true,
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            Value(word) => words.push(word.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match (words.as_slice(), user, all) {
        (["list"], user, false) => list(ctx, user.as_deref(), as_json),
        (["revoke"], Some(user), false) => revoke(ctx, Some(&user)),
        (["revoke"], None, true) => revoke(ctx, None),
        _ => Err(CliError::usage(COMMAND.usage())),
    }
}

fn list(ctx: &Context, user: Option<&str>, as_json: bool) -> Result<(), CliError> {
    let sessions = ctx.open_db()?.list_sessions(user, SystemClock.now())?;
    if as_json {
        return print_lines(sessions.iter().map(|s| {
            json!({
                "user_id": s.user_id,
                "email": s.email,
                "created_at": rfc3339(s.created_ms),
                "expires_at": rfc3339(s.expires_ms),
            })
            .to_string()
        }));
    }
    if sessions.is_empty() {
        return print("no live sessions\n");
    }
    print_lines(sessions.iter().map(|s| {
        format!(
            "{}  {}  started {}  ends {}",
            s.user_id,
            s.email.as_deref().unwrap_or("-"),
            rfc3339(s.created_ms),
            rfc3339(s.expires_ms)
        )
    }))
}

fn revoke(ctx: &Context, user: Option<&str>) -> Result<(), CliError> {
    let mut conn = ctx.open_db()?;
    if let Some(id) = user
        && conn.user(id)?.is_none()
    {
        return Err(CliError::failure(format!("no user {id}")));
    }
    let ended = conn.write(|tx| Ok(tx.delete_sessions(user)?))?;
    print(&format!("ended {}\n", crate::words::count(ended as u64, "session")))
}
