//! `authmd audit [--json] [--follow] [--since TIME] [--event NAME]`: the
//! audit log, oldest first; `--follow` keeps printing events as they land,
//! from this separate process while the server runs.

use std::time::Duration;

use lexopt::prelude::*;
use serde_json::{Map, Value, json};

use super::{CliError, Command, Context, print, print_lines};
use crate::model::EventName;
use crate::store::audit::{Event, Filter};
use crate::time::{Clock, SystemClock, UnixMs, parse_rfc3339, rfc3339};

pub const COMMAND: Command = Command {
    name: "audit",
    uses_db: true,
    synopsis: &["audit [--json] [--follow] [--since TIME] [--event NAME]"],
    summary: "print the audit log",
    details: "  --json          one JSON object per line
  --follow        keep printing new events until interrupted; only events
                  from now on, unless --since is given too
  --since TIME    only events at or after TIME: RFC 3339 (2026-05-04T13:00:00Z,
                  2026-05-04) or an age such as 30s, 15m, 2h, 7d
  --event NAME    only this event, such as registration.created
",
    run,
};

const FOLLOW_POLL: Duration = Duration::from_millis(250);
const PAGE: u32 = 10_000;

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut as_json, mut follow, mut since_ms, mut event) = (false, false, None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("json") => as_json = true,
            Long("follow") | Short('f') => follow = true,
            Long("since") => since_ms = Some(parse_since(&parser.value()?.string()?, SystemClock.now())?),
            Long("event") => {
                let name = parser.value()?.string()?;
                event = Some(EventName::parse(&name).ok_or_else(|| {
                    let all: Vec<&str> = EventName::ALL.iter().map(|e| e.as_str()).collect();
                    CliError::usage(format!("unknown event `{name}`; valid: {}", all.join(", ")))
                })?);
            }
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            other => return Err(other.unexpected().into()),
        }
    }
    let conn = ctx.open_db()?;
    // Following without --since shows what happens from now on, as `tail
    // -f` would, rather than first replaying the whole history (issue 15).
    let after_id = if follow && since_ms.is_none() {
        conn.last_event_id()?
    } else {
        0
    };
    let mut filter = Filter {
        event,
        since_ms,
        after_id,
        limit: Some(PAGE),
    };
    loop {
        let events = conn.events(&filter)?;
        if let Some(last) = events.last() {
            filter.after_id = last.id;
        }
        let page_full = events.len() == PAGE as usize;
        print_lines(
            events
                .iter()
                .map(|e| if as_json { to_json(e).to_string() } else { to_text(e) }),
        )?;
        if page_full {
            continue;
        }
        if !follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

fn parse_since(text: &str, now_ms: UnixMs) -> Result<UnixMs, CliError> {
    let bad = || {
        CliError::usage(format!(
            "--since `{text}` is neither an RFC 3339 time (2026-05-04T13:00:00Z) nor an age (30s, 15m, 2h, 7d)"
        ))
    };
    if let Some(at) = parse_rfc3339(text) {
        return Ok(at);
    }
    let unit = match text.chars().last().ok_or_else(bad)? {
        's' => Duration::from_secs(1),
        'm' => Duration::from_secs(60),
        'h' => Duration::from_secs(3600),
        'd' => Duration::from_secs(86_400),
        _ => return Err(bad()),
    };
    let count: i64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    let count = u32::try_from(count).ok().filter(|&n| n <= 100_000).ok_or_else(bad)?;
    Ok(now_ms - unit * count)
}

fn to_json(e: &Event) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(e.id));
    object.insert("time".into(), json!(rfc3339(e.at_ms)));
    object.insert("event".into(), json!(e.name));
    for (key, value) in [
        ("registration_id", &e.registration_id),
        ("client_ip", &e.client_ip),
        ("iss", &e.iss),
        ("sub", &e.sub),
        ("agent_platform", &e.agent_platform),
        ("agent_context_id", &e.agent_context_id),
    ] {
        if let Some(value) = value {
            object.insert(key.into(), json!(value));
        }
    }
    for (key, value) in &e.detail {
        object.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Value::Object(object)
}

fn to_text(e: &Event) -> String {
    let mut line = format!("{}  {:<22}", rfc3339(e.at_ms), e.name);
    let Value::Object(fields) = to_json(e) else { return line };
    for (key, value) in fields
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "id" | "time" | "event") && !v.is_null())
    {
        match value {
            Value::String(text) => line += &format!(" {key}={text}"),
            other => line += &format!(" {key}={other}"),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now = UnixMs::from_millis(1_800_000_000_000);
        assert_eq!(parse_since("15m", now).unwrap(), now - Duration::from_secs(900));
        assert_eq!(parse_since("2d", now).unwrap(), now - Duration::from_secs(172_800));
        assert_eq!(
            parse_since("2026-05-04T13:00:00Z", now).unwrap(),
            UnixMs::from_millis(1_777_899_600_000)
        );
        for bad in ["", "m", "5y", "-5m", "yesterday", "2026-13-01"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
