//! The person's own page (issue 15): `GET /account/agents` lists the agents
//! acting for the signed-in person, and `POST /account/agents/revoke` asks
//! once more, then revokes one. A child of `routes`, whose sign-in helpers
//! (session, CSRF, 303s, forms) it uses; the decisions are
//! `core::account`'s. Pages follow the claim pages' rules (SPEC-v0.7 6.2:
//! `pages::page`'s headers, every value escaped, no script); a POST
//! without a session or with a bad CSRF token is a 403 page that changes
//! nothing (7.3).

use super::{Deps, csrf_matches, form_body, form_expired, form_value, query_param, see_other, signed_in};
use crate::core::account::{self, Agent, Origin, Refused};
use crate::core::signin;
use crate::error::Error;
use crate::http::pages::{self, escape};
use crate::http::{Request, Response};
use crate::model::Status;
use crate::site::Endpoint;
use crate::store::Tx;
use crate::time::UnixMs;
use pages::Brand;

/// `GET /account/agents`: signed out, to sign-in and back; signed in, the
/// list, and after a revocation (`?revoked=ID`) a line saying so.
pub(super) fn agents(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let Some((user, binding)) = signed_in(conn, deps, req)? else {
        return Ok(see_other(&format!(
            "{}?return_to={}",
            Endpoint::Login.path(),
            crate::url::percent_encode(Endpoint::AccountAgents.path())
        )));
    };
    let settings = &deps.config.settings;
    let listing = account::list(conn, settings, &user.id, deps.now_ms)?;
    let csrf = signin::csrf_token(conn, &binding, deps.now_ms)?;
    // Only an agent of this person's that is revoked is named back.
    let revoked = query_param(req, "revoked").filter(|id| {
        listing
            .agents
            .iter()
            .any(|a| &a.id == id && a.status == Status::Revoked)
    });
    Ok(list_page(
        &Brand::of(deps.config),
        user.email.as_deref().unwrap_or(&user.id),
        &listing,
        revoked.as_deref(),
        &csrf,
        deps.now_ms,
    ))
}

/// `POST /account/agents/revoke` (form `registration_id`, `csrf`): without
/// `confirm=yes` the question "Revoke agent X?"; with it, the revocation and
/// a 303 back to the list.
pub(super) fn revoke(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let form = form_body(req)?;
    let Some((user, binding)) = signed_in(conn, deps, req)? else {
        return Ok(form_expired(deps));
    };
    if !csrf_matches(conn, deps, Some(&binding), &form) {
        return Ok(form_expired(deps));
    }
    let id = form_value(&form, "registration_id");
    let name = &Brand::of(deps.config);
    if form_value(&form, "confirm") != "yes" {
        let csrf = signin::csrf_token(conn, &binding, deps.now_ms)?;
        return Ok(
            match account::find(conn, &deps.config.settings, &user.id, &id, deps.now_ms)? {
                Ok(agent) => confirm_page(name, &agent, &csrf, deps.now_ms),
                Err(refused) => refused_page(name, refused),
            },
        );
    }
    Ok(match deps.run(conn, req, |ctx| account::revoke(ctx, &user.id, &id))? {
        Ok(_) => see_other(&format!(
            "{}?revoked={}",
            Endpoint::AccountAgents.path(),
            crate::url::percent_encode(&id)
        )),
        Err(refused) => refused_page(name, refused),
    })
}

/// An id escaped, with a break opportunity every few characters: an id has
/// no spaces, and in a heading or a bold line it would push a 320 px page
/// sideways (the stylesheet wraps only `dd`s anywhere).
fn breakable(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    chars
        .chunks(8)
        .map(|chunk| escape(&chunk.iter().collect::<String>()))
        .collect::<Vec<_>>()
        .join("<wbr>")
}

fn refused_page(brand: &Brand, refused: Refused) -> Response {
    let back = format!(
        "<p><a href=\"{}\">Back to your agents</a></p>",
        Endpoint::AccountAgents.path()
    );
    let (status, title, text) = match refused {
        Refused::Unknown => (
            404,
            "No such agent",
            "None of the agents acting for you has this id. Nothing was changed.".to_string(),
        ),
        Refused::Ended(status) => (
            409,
            "This agent has no access already",
            format!(
                "It is {}, so there is nothing to revoke. Nothing was changed.",
                status_text(status)
            ),
        ),
    };
    let body = format!("<h1>{}</h1><p>{}</p>{back}", escape(title), escape(&text));
    pages::page(status, brand, title, &body)
}

/// How an agent came to act for its person, in words.
fn origin_text(agent: &Agent) -> String {
    match &agent.origin {
        Origin::Provider { name, issuer } if name != issuer => {
            format!("Through {name} ({issuer}), an agent provider you use")
        }
        Origin::Provider { issuer, .. } => format!("Through the agent provider {issuer}"),
        Origin::ProviderUnknown => "Through an agent provider".into(),
        Origin::Anonymous => "Registered on its own, then claimed by you".into(),
        Origin::ServiceAuth => "Registered for your address, confirmed by you".into(),
        Origin::VerifiedEmail(Some(email)) => format!("By a code mailed to {email}"),
        Origin::VerifiedEmail(None) => "By a code mailed to you".into(),
    }
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Active | Status::Claimed => "active",
        Status::PendingClaim => "waiting for a confirmation",
        Status::Unclaimed => "not claimed",
        Status::Expired => "expired",
        Status::Rejected => "turned away",
        Status::Locked => "locked (too many wrong codes)",
        Status::Revoked => "revoked",
    }
}

/// An agent's facts, as a definition list.
fn facts(agent: &Agent, now_ms: UnixMs) -> String {
    let scopes = match agent.scopes.is_empty() {
        true => "none".to_string(),
        false => agent.scopes.join(", "),
    };
    let last_used = agent
        .last_used_ms
        .map_or_else(|| "never".to_string(), |at| pages::time(at, now_ms));
    format!(
        "<dl><dt>Agent</dt><dd>{id}</dd><dt>How</dt><dd>{how} <span class=\"muted\">(protocol {generation})</span></dd>\
         <dt>Permissions</dt><dd>{scopes}</dd><dt>Created</dt><dd>{created}</dd>\
         <dt>Last used</dt><dd>{last_used}</dd><dt>Status</dt><dd>{status}</dd></dl>",
        id = escape(&agent.id),
        how = escape(&origin_text(agent)),
        generation = escape(agent.generation.as_db()),
        scopes = escape(&scopes),
        created = pages::time(agent.created_ms, now_ms),
        last_used = last_used,
        status = escape(status_text(agent.status)),
    )
}

fn list_page(
    brand: &Brand,
    signed_in_as: &str,
    listing: &account::Listing,
    revoked: Option<&str>,
    csrf: &str,
    now_ms: UnixMs,
) -> Response {
    let (live, ended): (Vec<&Agent>, Vec<&Agent>) = listing.agents.iter().partition(|a| a.revocable());
    let mut body = format!(
        "<h1>Your agents</h1><p>The AI agents acting for <strong>{who}</strong> at {name}. \
         Revoking one stops it at once.</p>",
        who = escape(signed_in_as),
        name = escape(&brand.name),
    );
    if let Some(id) = revoked {
        body.push_str(&format!(
            "<p id=\"notice\"><strong>Agent {} was revoked.</strong> It has no access any more.</p>",
            breakable(id)
        ));
    }
    body.push_str("<h2 class=\"who\">Active</h2>");
    if live.is_empty() {
        body.push_str("<p class=\"muted\">No agent acts for you now.</p>");
    }
    for agent in &live {
        body.push_str(&format!(
            "<hr class=\"after\">{facts}<form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"registration_id\" value=\"{id}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button class=\"quiet\" type=\"submit\">Revoke this agent</button></form>",
            facts = facts(agent, now_ms),
            action = Endpoint::AccountAgentsRevoke.path(),
            id = escape(&agent.id),
            csrf = escape(csrf),
        ));
    }
    if !ended.is_empty() {
        body.push_str("<hr class=\"after\"><h2 class=\"who after\">No longer active</h2>");
        for (n, agent) in ended.iter().enumerate() {
            if n > 0 {
                body.push_str("<hr>");
            }
            body.push_str(&facts(agent, now_ms));
        }
    }
    if listing.cut {
        body.push_str(&format!(
            "<p class=\"muted after\">Showing the newest {} active and {} ended agents only.</p>",
            account::LIVE_SHOWN,
            account::ENDED_SHOWN
        ));
    }
    body.push_str(&format!(
        "<p class=\"muted after\">Times are UTC. Last use is kept to the minute and shows up here within a minute.</p>\
         <p><a href=\"{home}\">Home</a></p>",
        home = Endpoint::Home.path()
    ));
    pages::page(200, brand, "Your agents", &body)
}

/// "Revoke agent X?", asked once more before anything changes.
fn confirm_page(brand: &Brand, agent: &Agent, csrf: &str, now_ms: UnixMs) -> Response {
    let body = format!(
        "<h1>Revoke agent {heading}?</h1>\
         <p>It loses access at once: its keys and tokens stop working for good. To act for you again it would \
         have to register again, and you would confirm it again.</p>{facts}\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"registration_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"confirm\" value=\"yes\">\
         <button class=\"danger\" type=\"submit\">Yes, revoke it</button></form>\
         <p class=\"muted after\">Nothing changes until you press it. <a href=\"{back}\">Go back</a></p>",
        heading = breakable(&agent.id),
        id = escape(&agent.id),
        facts = facts(agent, now_ms),
        action = Endpoint::AccountAgentsRevoke.path(),
        csrf = escape(csrf),
        back = Endpoint::AccountAgents.path(),
    );
    pages::page(200, brand, "Revoke an agent", &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Generation;

    #[test]
    fn every_value_on_the_pages_is_escaped() {
        let hostile = Agent {
            id: "reg_<b>\"x".into(),
            generation: Generation::V0_7,
            origin: Origin::Provider {
                name: "<script>alert(1)</script>".into(),
                issuer: "https://p.example/\"><i>".into(),
            },
            scopes: vec!["<s>".into()],
            created_ms: UnixMs::from_millis(0),
            last_used_ms: None,
            status: Status::Active,
        };
        let listing = account::Listing {
            agents: vec![hostile.clone()],
            cut: false,
        };
        let pages = [
            list_page(
                &Brand::from("<API>"),
                "<pat>@example.com",
                &listing,
                Some("reg_<b>\"x"),
                "c\"srf",
                UnixMs::from_millis(0),
            ),
            confirm_page(&Brand::from("<API>"), &hostile, "c\"srf", UnixMs::from_millis(0)),
        ];
        for page in pages {
            let html = String::from_utf8(page.body).unwrap();
            for raw in ["<script>", "<b>", "<i>", "<s>", "<pat>", "<API>", "c\"srf"] {
                assert!(!html.contains(raw), "{raw} unescaped in {html}");
            }
            assert!(html.contains("&lt;script&gt;"), "{html}");
        }
    }
}
