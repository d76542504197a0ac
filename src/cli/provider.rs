//! `authmd provider add | list | remove`: the trust list of agent providers
//! (SPEC.md 4.3). Changes are audited and reach a running server at once
//! (the trust list is read from the database per request).

use lexopt::prelude::*;
use serde_json::json;

use super::{CliError, Command, Context, print, print_lines};
use crate::fetch;
use crate::jose::Jwks;
use crate::model::EventName;
use crate::store::{audit, providers::Provider};
use crate::time::{Clock, SystemClock, rfc3339};
use crate::url::HttpUrl;
use crate::words::count;

pub const COMMAND: Command = Command {
    name: "provider",
    uses_db: true,
    synopsis: &[
        "provider add ISSUER [--jwks-uri URL] [--client-id ID] [--name NAME] [--offline] [--allow-loopback-fetch]",
        "provider list [--json]",
        "provider remove ISSUER",
    ],
    summary: "the trust list of agent providers",
    details: "\
ISSUER is the provider's `iss`, such as https://agents.example.com. Its keys are
fetched from --jwks-uri, by default ISSUER/.well-known/jwks.json (https, or http
to a loopback host for development). --client-id pins the `client_id` its
ID-JAGs must carry.

`add` fetches the key set once, as the server would, and refuses the
provider (exit 78) when that fails or the set holds no usable key, saying
why: a mistyped issuer is caught now rather than at the first ID-JAG.
  --offline               add without fetching (a warning says so), for a
                          provider not reachable from here yet
  --allow-loopback-fetch  allow a provider on a loopback address (env
                          AUTHMD_ALLOW_LOOPBACK_FETCH), as `serve` needs the
                          same flag to fetch from it: development only
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut words, mut jwks_uri, mut client_id, mut name, mut as_json) = (Vec::new(), None, None, None, false);
    let mut reach = Reach {
        offline: false,
        allow_loopback: super::env_flag(ctx, "AUTHMD_ALLOW_LOOPBACK_FETCH")?,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("offline") => reach.offline = true,
            Long("allow-loopback-fetch") => reach.allow_loopback = true,
            Long("jwks-uri") => jwks_uri = Some(parser.value()?.string()?),
            Long("client-id") => client_id = Some(parser.value()?.string()?),
            Long("name") => name = Some(parser.value()?.string()?),
            Long("json") => as_json = true,
            Short('h') | Long("help") => return print(&COMMAND.usage()),
            Value(word) => words.push(word.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["add", issuer] => add(ctx, issuer, jwks_uri, client_id, name, reach),
        ["list"] => list(ctx, as_json),
        ["remove", issuer] => remove(ctx, issuer),
        _ => Err(CliError::usage(COMMAND.usage())),
    }
}

/// How `add` checks that the provider's keys can be had.
struct Reach {
    /// Do not fetch (warn instead).
    offline: bool,
    /// Loopback addresses may be fetched (`serve --allow-loopback-fetch`).
    allow_loopback: bool,
}

/// Fetches the key set at `uri` once, with the server's fetcher and parser;
/// why not, when it cannot be had or holds no usable key.
fn check_key_set(uri: &str, allow_loopback: bool) -> Result<usize, String> {
    let fetched = fetch::Fetcher::new(allow_loopback).get(uri).map_err(|err| match err {
        fetch::FetchError::NotAllowed(why)
            if !allow_loopback && (why.contains("resolves to 127.") || why.contains("resolves to ::1")) =>
        {
            format!("{why} (for a development provider: --allow-loopback-fetch, and serve with it too)")
        }
        other => other.to_string(),
    })?;
    let jwks = Jwks::parse(&fetched.body).map_err(|why| why.to_string())?;
    let published = serde_json::from_slice::<serde_json::Value>(&fetched.body)
        .ok()
        .and_then(|doc| doc["keys"].as_array().map(Vec::len))
        .unwrap_or(0);
    let skipped = jwks.skipped();
    let usable = published.saturating_sub(skipped.len());
    if usable == 0 {
        let why: Vec<String> = skipped
            .iter()
            .map(|(kid, why)| format!("{}: {why}", kid.as_deref().unwrap_or("(no kid)")))
            .collect();
        return Err(if why.is_empty() {
            "the key set holds no keys".into()
        } else {
            format!("the key set holds no usable key ({})", why.join("; "))
        });
    }
    Ok(usable)
}

fn add(
    ctx: &Context,
    issuer: &str,
    jwks_uri: Option<String>,
    client_id: Option<String>,
    name: Option<String>,
    reach: Reach,
) -> Result<(), CliError> {
    HttpUrl::parse(issuer).map_err(|why| CliError::config(format!("ISSUER: {why}")))?;
    if let Some(name) = &name
        && (name.chars().any(char::is_control) || name.chars().count() > 100)
    {
        return Err(CliError::config(
            "--name: at most 100 characters, no control characters",
        ));
    }
    if let Some(id) = &client_id
        && (id.is_empty() || id.len() > 512 || id.chars().any(char::is_control))
    {
        return Err(CliError::config(
            "--client-id: 1 to 512 characters, no control characters",
        ));
    }
    let now_ms = SystemClock.now();
    let provider = Provider {
        issuer: issuer.to_string(),
        pinned_jwks_uri: jwks_uri,
        client_id,
        name,
        created_ms: now_ms,
    };
    fetch::check_url(&provider.jwks_uri()).map_err(|why| CliError::config(format!("JWKS URI: {why}")))?;
    let mut conn = ctx.open_db()?;
    let keys = if reach.offline {
        eprintln!(
            "authmd: warning: --offline: the key set at {} was not fetched; its ID-JAGs fail until it can be",
            provider.jwks_uri()
        );
        None
    } else {
        let usable = check_key_set(&provider.jwks_uri(), reach.allow_loopback).map_err(|why| {
            CliError::config(format!(
                "cannot use the key set of {issuer} at {}: {why}; nothing added (--offline adds it anyway)",
                provider.jwks_uri()
            ))
        })?;
        Some(usable)
    };
    let added = conn.write(|tx| {
        let added = tx.upsert_provider(&provider)?;
        tx.record_event(
            now_ms,
            EventName::ProviderAdded,
            audit::NewEvent {
                iss: Some(&provider.issuer),
                detail:
                    json!({ "jwks_uri": provider.jwks_uri(), "client_id": provider.client_id, "name": provider.name })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ..Default::default()
            },
        )?;
        Ok(added)
    })?;
    let verb = if added { "trusted" } else { "updated" };
    let fetched = match keys {
        Some(usable) => format!(", {} fetched", count(usable as u64, "usable key")),
        None => String::new(),
    };
    print(&format!(
        "{verb} {issuer} (keys from {}{fetched})\n",
        provider.jwks_uri()
    ))
}

fn list(ctx: &Context, as_json: bool) -> Result<(), CliError> {
    let all = ctx.open_db()?.providers()?;
    if as_json {
        return print_lines(all.iter().map(|p| {
            json!({
                "issuer": p.issuer,
                "jwks_uri": p.jwks_uri(),
                "client_id": p.client_id,
                "name": p.name,
                "created_at": rfc3339(p.created_ms),
            })
            .to_string()
        }));
    }
    if all.is_empty() {
        return print("no trusted providers; add one with `authmd provider add ISSUER`\n");
    }
    print_lines(all.iter().map(|p| {
        format!(
            "{}  jwks={}  client_id={}  name={}",
            p.issuer,
            p.jwks_uri(),
            p.client_id.as_deref().unwrap_or("(any)"),
            p.name.as_deref().unwrap_or("-")
        )
    }))
}

fn remove(ctx: &Context, issuer: &str) -> Result<(), CliError> {
    let mut conn = ctx.open_db()?;
    let now_ms = SystemClock.now();
    let removed = conn.write(|tx| {
        let removed = tx.remove_provider(issuer)?;
        if removed {
            tx.record_event(
                now_ms,
                EventName::ProviderRemoved,
                audit::NewEvent {
                    iss: Some(issuer),
                    ..Default::default()
                },
            )?;
        }
        Ok(removed)
    })?;
    if !removed {
        return Err(CliError::failure(format!("{issuer} is not on the trust list")));
    }
    print(&format!(
        "removed {issuer}; its ID-JAGs are no longer accepted (credentials already issued stay until revoked)\n"
    ))
}
