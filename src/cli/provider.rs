//! `authmd provider add | list | remove`: the trust list of agent providers
//! (SPEC.md 4.3). Changes are audited and reach a running server at once
//! (the trust list is read from the database per request).

use lexopt::prelude::*;
use serde_json::json;

use super::{CliError, Command, Context, print, print_lines};
use crate::fetch;
use crate::model::EventName;
use crate::store::{audit, providers::Provider};
use crate::time::{Clock, SystemClock, rfc3339};
use crate::url::HttpUrl;

pub const COMMAND: Command = Command {
    name: "provider",
    uses_db: true,
    synopsis: &[
        "provider add ISSUER [--jwks-uri URL] [--client-id ID] [--name NAME]",
        "provider list [--json]",
        "provider remove ISSUER",
    ],
    summary: "the trust list of agent providers",
    details: "\
ISSUER is the provider's `iss`, such as https://agents.example.com. Its keys are
fetched from --jwks-uri, by default ISSUER/.well-known/jwks.json (https, or http
to a loopback host for development). --client-id pins the `client_id` its
ID-JAGs must carry.
",
    run,
};

pub fn run(parser: &mut lexopt::Parser, ctx: &Context) -> Result<(), CliError> {
    let (mut words, mut jwks_uri, mut client_id, mut name, mut as_json) = (Vec::new(), None, None, None, false);
    while let Some(arg) = parser.next()? {
        match arg {
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
        ["add", issuer] => add(ctx, issuer, jwks_uri, client_id, name),
        ["list"] => list(ctx, as_json),
        ["remove", issuer] => remove(ctx, issuer),
        _ => Err(CliError::usage(COMMAND.usage())),
    }
}

fn add(
    ctx: &Context,
    issuer: &str,
    jwks_uri: Option<String>,
    client_id: Option<String>,
    name: Option<String>,
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
    print(&format!("{verb} {issuer} (keys from {})\n", provider.jwks_uri()))
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
