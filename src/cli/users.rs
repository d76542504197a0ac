//! `authmd users list | add EMAIL [--name NAME]`: users, for operators who
//! turn just-in-time provisioning off and create accounts ahead of time.

use lexopt::prelude::*;
use serde_json::json;

use super::{CliError, Command, Context, print, print_lines};
use crate::email;
use crate::secrets;
use crate::store::users::User;
use crate::time::{Clock, SystemClock, rfc3339};

pub const COMMAND: Command = Command {
    name: "users",
    uses_db: true,
    synopsis: &["users list [--json]", "users add EMAIL [--name NAME]"],
    summary: "list and add users",
    details: "",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut words, mut name, mut as_json) = (Vec::new(), None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("name") => name = Some(parser.value()?.string()?),
            Long("json") => as_json = true,
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            Value(word) => words.push(word.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["list"] => list(ctx, as_json),
        ["add", address] => add(ctx, address, name),
        _ => Err(CliError::usage(COMMAND.usage())),
    }
}

fn list(ctx: &Context, as_json: bool) -> Result<(), CliError> {
    let all = ctx.open_db()?.users(10_000)?;
    if as_json {
        return print_lines(all.iter().map(|u| {
            json!({ "user_id": u.id, "email": u.email, "phone_number": u.phone_number, "name": u.name, "created_at": rfc3339(u.created_ms) })
                .to_string()
        }));
    }
    print_lines(all.iter().map(|u| {
        format!(
            "{}  {}  {}",
            u.id,
            u.email.as_deref().or(u.phone_number.as_deref()).unwrap_or("-"),
            u.name.as_deref().unwrap_or("")
        )
    }))
}

fn add(ctx: &Context, address: &str, name: Option<String>) -> Result<(), CliError> {
    let address = email::normalize(address).map_err(CliError::config)?;
    let mut conn = ctx.open_db()?;
    let now_ms = SystemClock.now();
    let user = User {
        id: secrets::new_id("usr_", now_ms),
        email: Some(address.clone()),
        phone_number: None,
        name,
        created_ms: now_ms,
    };
    let added = conn.write(|tx| {
        if tx.user_by_email(&address)?.is_some() {
            return Ok(false);
        }
        tx.insert_user(&user)?;
        Ok(true)
    })?;
    if !added {
        return Err(CliError::failure(format!("a user with {address} already exists")));
    }
    print(&format!("{} {address}\n", user.id))
}
