//! The person's own page (issue 15): signed in, `/account/agents` lists the
//! agents acting for that person, in both generations, and revokes one after
//! a confirmation (`registration.revoked`, `by: user`); signed out, it sends
//! to sign-in. The pages' rules are the claim pages' (CSP, no-store, CSRF).
//! Through the real binary, on either backend (`AUTHMD_TEST_BACKEND`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::ceremony::exchange;
use crate::common::{Client, Reply, TestServer, rows};
use crate::signin::{Browser, sign_in};

/// A v0.7 agent of `email`, claimed through the pages by `person` (signed
/// in as `email`): its registration id, an access token and its refresh token.
fn v0_7_agent(server: &TestServer, person: &mut Browser<'_, TestServer>, email: &str) -> (String, String, String) {
    let made = server.post_json(
        "/agent/identity",
        &json!({ "type": "service_auth", "login_hint": email }).to_string(),
    );
    assert_eq!(made.status, 200, "{}", made.body);
    let made = made.json();
    let link = made["claim"]["attempt"]["verification_uri"].as_str().unwrap();
    let token = link.split("claim_attempt_token=").nth(1).unwrap();
    assert_eq!(person.get(link.trim_start_matches(&server.base)).status, 200);
    let csrf = person.csrf.clone();
    let shown = person.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"));
    assert_eq!(shown.status, 200, "{}", shown.body);
    let at = shown.body.find(r#"id="user-code">"#).unwrap() + r#"id="user-code">"#.len();
    let code = &shown.body[at..at + 6];
    let done = server.post_json(
        "/agent/identity/claim/complete",
        &json!({ "claim_token": made["claim"]["token"], "user_code": code }).to_string(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    let assertion = done["identity"]["assertion"].as_str().unwrap();
    let access = exchange(server, assertion).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = done["identity"]["refresh_token"]["value"].as_str().unwrap().to_string();
    (made["id"].as_str().unwrap().to_string(), access, refresh)
}

/// A v0.1 anonymous agent claimed by mail for `email`: its registration id
/// and API key. Its mail is taken from the outbox before anyone signs in.
fn v0_1_agent(server: &TestServer, email: &str) -> (String, String) {
    let reg = server.register_anonymous();
    let before = server.outbox().len();
    let asked = server.post_json(
        "/agent/auth/claim",
        &json!({ "claim_token": reg["claim_token"], "email": email }).to_string(),
    );
    assert_eq!(asked.status, 200, "{}", asked.body);
    let mail = server.wait_for_mail(before + 1).pop().unwrap();
    let otp = server
        .post_json(
            "/agent/auth/claim/attempt/challenge",
            &json!({ "claim_attempt_token": mail.token() }).to_string(),
        )
        .json()["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    let done = server.post_json(
        "/agent/auth/claim/complete",
        &json!({ "claim_token": reg["claim_token"], "otp": otp }).to_string(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    (
        reg["registration_id"].as_str().unwrap().to_string(),
        reg["credential"].as_str().unwrap().to_string(),
    )
}

/// The text of the facts shown for agent `id` (its `<dl>`), tags dropped.
fn facts_of(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!("<dt>Agent</dt><dd>{id}</dd>"))?;
    let start = page[..at].rfind("<dl>")?;
    let end = at + page[at..].find("</dl>")?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in page[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn revoke(person: &mut Browser<'_, TestServer>, id: &str, confirm: bool, csrf: &str) -> Reply {
    let confirm = if confirm { "&confirm=yes" } else { "" };
    person.post(
        "/account/agents/revoke",
        &format!("registration_id={id}&csrf={csrf}{confirm}"),
    )
}

fn user_id(server: &TestServer, email: &str) -> String {
    let found = rows(server, &format!("SELECT id FROM users WHERE email = '{email}'"));
    found[0]["id"].as_str().unwrap().to_string()
}

fn assert_page_headers(reply: &Reply) {
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    let csp = reply.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("form-action 'self'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(!reply.body.contains("<script"), "no script");
}

#[test]
fn signed_out_the_page_sends_to_sign_in_and_its_form_refuses() {
    let server = TestServer::start();
    let mut stranger = Browser::new(&server);
    let bounced = stranger.get("/account/agents");
    assert_eq!(bounced.status, 303, "{}", bounced.body);
    assert_eq!(bounced.header("location"), Some("/login?return_to=%2Faccount%2Fagents"));
    assert_eq!(bounced.header("cache-control"), Some("no-store"));
    // HEAD answers as GET.
    assert_eq!(server.request("HEAD", "/account/agents", &[], b"").status, 303);
    // The sign-in form carries the way back.
    let form = stranger.get("/login?return_to=%2Faccount%2Fagents");
    assert!(
        form.body.contains(r#"name="return_to" value="/account/agents""#),
        "{}",
        form.body
    );
    let refused = stranger.post("/account/agents/revoke", "registration_id=reg_x&confirm=yes&csrf=x");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_page_headers(&refused);
}

#[test]
fn each_person_sees_their_own_agents_of_both_generations_and_no_one_elses() {
    let server = TestServer::start();
    let (old_id, _) = v0_1_agent(&server, "pat@example.com");
    let mut pat = sign_in(&server, "pat@example.com");
    let (new_id, _, _) = v0_7_agent(&server, &mut pat, "pat@example.com");
    let mut kim = sign_in(&server, "kim@example.com");
    let empty = kim.get("/account/agents");
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(empty.body.contains("No agent acts for you now."), "{}", empty.body);

    let home = pat.get("/");
    assert!(home.body.contains(r#"<a href="/account/agents">"#), "{}", home.body);
    let page = pat.get("/account/agents");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_page_headers(&page);
    assert!(page.body.contains("pat@example.com"), "{}", page.body);
    let new = facts_of(&page.body, &new_id).expect("the v0.7 agent is listed");
    assert!(
        new.contains("Registered for your address, confirmed by you (protocol v0.7)")
            && new.contains("Permissions api.read, api.write")
            && new.contains("Last used never")
            && new.contains("Status active")
            && new.contains(" UTC ("),
        "{new}"
    );
    let old = facts_of(&page.body, &old_id).expect("the v0.1 agent is listed");
    assert!(
        old.contains("Registered on its own, then claimed by you (protocol v0.1)")
            && old.contains("Permissions api.read, api.write")
            && old.contains("Status active"),
        "{old}"
    );
    // Newest first.
    let place = |id: &str| page.body.find(&format!("<dd>{id}</dd>")).unwrap();
    assert!(place(&new_id) < place(&old_id));
    assert_eq!(page.body.matches("Revoke this agent").count(), 2);

    // Kim's first agent: on Kim's page only.
    let (kim_id, _, _) = v0_7_agent(&server, &mut kim, "kim@example.com");
    let kims = kim.get("/account/agents");
    assert!(facts_of(&kims.body, &kim_id).is_some(), "{}", kims.body);
    assert!(!kims.body.contains(&new_id) && !kims.body.contains(&old_id));
    assert!(!pat.get("/account/agents").body.contains(&kim_id));
}

#[test]
fn revoking_asks_once_more_then_ends_the_agent_and_all_its_credentials_at_once() {
    let server = TestServer::start();
    let mut pat = sign_in(&server, "pat@example.com");
    let (id, access, refresh) = v0_7_agent(&server, &mut pat, "pat@example.com");
    let (old_id, key) = v0_1_agent(&server, "pat@example.com");
    assert_eq!(server.get_with_token("/api/resource", &access).status, 200);
    pat.get("/account/agents");

    // The first press only asks.
    let csrf = pat.csrf.clone();
    let asked = revoke(&mut pat, &id, false, &csrf);
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert_page_headers(&asked);
    assert!(
        asked.body.replace("<wbr>", "").contains(&format!("Revoke agent {id}?"))
            && asked.body.contains("loses access at once"),
        "{}",
        asked.body
    );
    assert!(asked.body.contains(r#"name="confirm" value="yes""#));
    assert_eq!(
        server.get_with_token("/api/resource", &access).status,
        200,
        "asking changed nothing"
    );
    assert!(server.events("registration.revoked").is_empty());

    let csrf = pat.csrf.clone();
    let done = revoke(&mut pat, &id, true, &csrf);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location").unwrap(),
        format!("/account/agents?revoked={id}")
    );
    // At once: the access token, the refresh token and the assertion's family.
    assert_eq!(server.get_with_token("/api/resource", &access).status, 401);
    server
        .post_json(
            "/agent/identity",
            &json!({ "type": "refresh", "refresh_token": refresh }).to_string(),
        )
        .assert_error(400, "invalid_refresh_token");
    // The other agent goes on.
    assert_eq!(server.get_with_token("/api/resource", &key).status, 200);

    let events = server.events("registration.revoked");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["registration_id"], id);
    assert_eq!(events[0]["by"], "user");
    assert_eq!(events[0]["user_id"], user_id(&server, "pat@example.com"));

    let after = pat.get(done.header("location").unwrap());
    assert_eq!(after.status, 200);
    assert!(
        after
            .body
            .replace("<wbr>", "")
            .contains(&format!("Agent {id} was revoked.")),
        "{}",
        after.body
    );
    let facts = facts_of(&after.body, &id).unwrap();
    assert!(facts.contains("Status revoked"), "{facts}");
    // Live first: the other agent, then the revoked one, without a button.
    let place = |id: &str| after.body.find(&format!("<dd>{id}</dd>")).unwrap();
    assert!(place(&old_id) < place(&id));
    assert_eq!(after.body.matches("Revoke this agent").count(), 1);
    // A notice is only for this person's revoked agents.
    let forged = pat.get(&format!("/account/agents?revoked={old_id}"));
    assert!(!forged.body.contains("was revoked."), "{}", forged.body);
}

/// Every refusal is a page with a 4xx and changes nothing: another
/// person's agent and an unknown id (404 alike), an agent already revoked
/// (409), a missing, wrong or other session's CSRF token (403).
#[test]
fn refusals_change_nothing() {
    let server = TestServer::start();
    let mut pat = sign_in(&server, "pat@example.com");
    let (id, access, _) = v0_7_agent(&server, &mut pat, "pat@example.com");
    let (gone, _) = v0_1_agent(&server, "pat@example.com");
    pat.get("/account/agents");
    let csrf = pat.csrf.clone();
    assert_eq!(revoke(&mut pat, &gone, true, &csrf).status, 303);
    let mut kim = sign_in(&server, "kim@example.com");
    kim.get("/"); // its sign-out form: Kim has no agent, so no form on the list
    let kim_csrf = kim.csrf.clone();
    let still_live = |why: &str| {
        assert_eq!(
            server.get_with_token("/api/resource", &access).status,
            200,
            "{why} changed something"
        );
        assert_eq!(
            server.events("registration.revoked").len(),
            1,
            "{why} recorded a revocation"
        );
    };

    for confirm in [false, true] {
        let theirs = revoke(&mut kim, &id, confirm, &kim_csrf);
        assert_eq!(theirs.status, 404, "{}", theirs.body);
        assert!(theirs.body.contains("No such agent"), "{}", theirs.body);
        assert_page_headers(&theirs);
        still_live("another person's agent");
        let unknown = revoke(&mut pat, "reg_nope", confirm, &csrf);
        assert_eq!(unknown.status, 404, "{}", unknown.body);
        still_live("an unknown id");
        let again = revoke(&mut pat, &gone, confirm, &csrf);
        assert_eq!(again.status, 409, "{}", again.body);
        assert!(again.body.contains("It is revoked"), "{}", again.body);
        still_live("an agent already revoked");
    }
    let no_csrf = pat.post("/account/agents/revoke", &format!("registration_id={id}&confirm=yes"));
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    still_live("no CSRF token");
    assert_eq!(revoke(&mut pat, &id, true, "forged").status, 403);
    still_live("a wrong CSRF token");
    assert_eq!(revoke(&mut pat, &id, true, &kim_csrf).status, 403);
    still_live("another session's CSRF token");
    // With its own token, it works.
    assert_eq!(revoke(&mut pat, &id, true, &csrf).status, 303);
    assert_eq!(server.get_with_token("/api/resource", &access).status, 401);
}

/// "Last used": a call at the guarded API shows on the page once the
/// server has written it (the sweeper's pass, every few seconds), without
/// the call itself writing.
#[test]
fn a_use_of_the_api_shows_as_last_used() {
    let server = TestServer::start();
    let mut pat = sign_in(&server, "pat@example.com");
    let (id, access, _) = v0_7_agent(&server, &mut pat, "pat@example.com");
    let (unused, _) = v0_1_agent(&server, "pat@example.com");
    let last_used = |pat: &mut Browser<'_, TestServer>, id: &str| {
        let facts = facts_of(&pat.get("/account/agents").body, id).unwrap();
        let at = facts.find("Last used ").unwrap() + "Last used ".len();
        facts[at..facts.find(" Status").unwrap()].to_string()
    };
    assert_eq!(last_used(&mut pat, &id), "never");
    assert_eq!(server.get_with_token("/api/resource", &access).status, 200);
    let mut seen = String::new();
    let shown = server.eventually(Duration::from_secs(20), || {
        seen = last_used(&mut pat, &id);
        seen != "never"
    });
    assert!(shown, "last use never shown; stderr:\n{}", server.stderr());
    assert!(seen.contains(" UTC ("), "{seen}");
    assert_eq!(last_used(&mut pat, &unused), "never", "only the agent that called");
    let stored: Vec<Value> = rows(
        &server,
        &format!("SELECT last_used_ms FROM registrations WHERE id = '{id}'"),
    );
    assert!(stored[0]["last_used_ms"].as_i64().is_some(), "{stored:?}");
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An agent from an ID-JAG names its provider by the trust list's name,
/// and its revocation carries the delegation's `iss` and `sub` besides
/// `by: user`.
#[test]
fn an_agent_from_a_provider_is_shown_by_the_providers_name() {
    use authmd_dev::{Alg, JwksServer, SigningKey};
    let server = TestServer::start();
    let key = SigningKey::generate(Alg::Es256, "k1");
    let provider = JwksServer::start("127.0.0.1:0").unwrap();
    provider.publish(&[&key], "public, max-age=3600");
    server.cli_ok(&["provider", "add", &provider.base_url, "--name", "Dev <Provider>"]);
    let claims = authmd_dev::id_jag_claims(&provider.base_url, "pat", &server.base, now_secs());
    let body = json!({
        "type": "identity_assertion",
        "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
        "assertion": key.sign(&authmd_dev::id_jag_header(), &claims),
        "requested_credential_type": "api_key",
    });
    let made = server.post_json("/agent/auth", &body.to_string());
    assert_eq!(made.status, 200, "{}", made.body);
    let made = made.json();
    let (id, api_key) = (
        made["registration_id"].as_str().unwrap().to_string(),
        made["credential"].as_str().unwrap().to_string(),
    );
    let mut pat = sign_in(&server, "pat@example.com");
    let page = pat.get("/account/agents");
    let facts = facts_of(&page.body, &id).unwrap_or_else(|| panic!("{}", page.body));
    let named = format!(
        "How Through Dev &lt;Provider&gt; ({}), an agent provider you use (protocol v0.1)",
        provider.base_url
    );
    assert!(facts.contains(&named), "{facts}");
    assert!(facts.contains("Status active"), "{facts}");
    let csrf = pat.csrf.clone();
    assert_eq!(revoke(&mut pat, &id, true, &csrf).status, 303);
    assert_eq!(server.get_with_token("/api/resource", &api_key).status, 401);
    let events = server.events("registration.revoked");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            events[0]["by"].as_str(),
            events[0]["iss"].as_str(),
            events[0]["sub"].as_str()
        ),
        (Some("user"), Some(provider.base_url.as_str()), Some("pat"))
    );
}
