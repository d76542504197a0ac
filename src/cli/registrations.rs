//! `authmd registrations list [--status STATUS] [--json] [--limit N]`.

use lexopt::prelude::*;
use serde_json::json;

use super::{CliError, Command, Context, print, print_lines};
use crate::model::Status;
use crate::store::registrations::Registration;
use crate::time::rfc3339;

pub const COMMAND: Command = Command {
    name: "registrations",
    uses_db: true,
    synopsis: &["registrations list [--status STATUS] [--json] [--limit N]"],
    summary: "list registrations",
    details: "  --status STATUS   only this status: active, unclaimed, pending_claim, claimed,
                    expired, rejected, locked, revoked
  --json            one JSON object per line
  --limit N         at most N rows, newest first (default 1000)
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut listing, mut status, mut as_json, mut limit) = (false, None, false, 1000u32);
    while let Some(arg) = parser.next()? {
        match arg {
            Value(word) if word == "list" && !listing => listing = true,
            Long("status") => {
                let text = parser.value()?.string()?;
                let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                status =
                    Some(Status::parse(&text).ok_or_else(|| {
                        CliError::usage(format!("unknown status `{text}`; valid: {}", all.join(", ")))
                    })?);
            }
            Long("json") => as_json = true,
            Long("limit") => limit = parser.value()?.parse()?,
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            other => return Err(other.unexpected().into()),
        }
    }
    if !listing {
        return Err(CliError::usage(COMMAND.usage()));
    }
    let rows = ctx.open_db()?.registrations(status, limit)?;
    if as_json {
        return print_lines(rows.iter().map(|r| to_json(r).to_string()));
    }
    let mut lines = vec![format!(
        "{:<29} {:<18} {:<13} {:<29} {:<24} {}",
        "ID", "TYPE", "STATUS", "USER", "CREATED", "EXPIRES"
    )];
    lines.extend(rows.iter().map(|r| {
        format!(
            "{:<29} {:<18} {:<13} {:<29} {:<24} {}",
            r.id,
            r.kind.as_wire(),
            r.status.as_str(),
            r.user_id.as_deref().unwrap_or("-"),
            rfc3339(r.created_ms),
            r.expires_ms.map_or("-".into(), rfc3339)
        )
    }));
    print_lines(lines)
}

fn to_json(r: &Registration) -> serde_json::Value {
    json!({
        "registration_id": r.id,
        "registration_type": r.kind.as_wire(),
        "status": r.status.as_str(),
        "user_id": r.user_id,
        "created_at": rfc3339(r.created_ms),
        "expires_at": r.expires_ms.map(rfc3339),
        "updated_at": rfc3339(r.updated_ms),
    })
}
