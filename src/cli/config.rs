//! `authmd config list | get KEY | set KEY VALUE`: the settings of
//! DESIGN.md, stored in the database. A running server sees a change within
//! 2 seconds. `set KEY ""` returns a key to its default.

use super::{CliError, Command, Context, print, print_lines};
use crate::core::configure;
use crate::settings::{self, DEFS};
use crate::time::{Clock, SystemClock};
use lexopt::prelude::*;

pub const COMMAND: Command = Command {
    name: "config",
    uses_db: true,
    synopsis: &[
        "config list",
        "config get KEY",
        "config set KEY VALUE     (VALUE \"\" restores the default)",
    ],
    summary: "read and change the settings",
    details: "",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let mut words: Vec<String> = Vec::new();
    loop {
        if words.len() == 2 && words[0] == "set" {
            // The value is taken verbatim, even one that starts with `-`.
            words.push(parser.value()?.string()?);
            continue;
        }
        let Some(arg) = parser.next()? else { break };
        match arg {
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            Value(word) => words.push(word.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["list"] => list(ctx),
        ["get", key] => get(ctx, key),
        ["set", key, value] => set(ctx, key, value),
        _ => Err(CliError::usage(COMMAND.usage())),
    }
}

fn list(ctx: &Context) -> Result<(), CliError> {
    let stored = ctx.open_db()?.stored_settings()?;
    let width = DEFS.iter().map(|d| d.key.len()).max().unwrap_or(0);
    print_lines(DEFS.iter().map(|def| {
        let value = match stored.get(def.key) {
            Some(value) => settings::display(def.key, value),
            None => format!("{} (default)", def.default.unwrap_or("unset")),
        };
        format!("{:width$}  {value}    # {}", def.key, def.doc)
    }))
}

fn get(ctx: &Context, key: &str) -> Result<(), CliError> {
    let def = settings::def(key).ok_or_else(|| CliError::config(settings::normalize(key, "").unwrap_err()))?;
    let stored = ctx.open_db()?.stored_settings()?;
    let value = match stored.get(key) {
        Some(value) => settings::display(key, value),
        None => def.default.unwrap_or("").to_string(),
    };
    print(&format!("{value}\n"))
}

fn set(ctx: &Context, key: &str, value: &str) -> Result<(), CliError> {
    let mut conn = ctx.open_db()?;
    let now_ms = SystemClock.now();
    let checked = conn.write(|tx| configure::set(tx, key, value, now_ms))?;
    let normalized = checked.map_err(CliError::config)?;
    let shown = normalized.map_or_else(|| "its default".to_string(), |v| settings::display(key, &v));
    print(&format!("{key} set to {shown}\n"))
}
