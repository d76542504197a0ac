//! The current generation's claim ceremony (SPEC-v0.7 6) end to end: the
//! agent hands a person a link; they sign in, see what the agent asks,
//! authorize, read the code off the page; the agent completes with it and
//! gets an assertion with the person's address and a refresh token.

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Client, InProcess, Reply};
use crate::signin::{Browser, sign_in};

fn claims_of(assertion: &str) -> Value {
    let part = assertion.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// SPEC-v0.7 8: the RFC 7523 exchange of a service assertion for an access token.
pub(crate) fn exchange(server: &impl Client, assertion: &str) -> Reply {
    server.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}").as_bytes(),
    )
}

fn complete(server: &impl Client, claim_token: &str, code: &str) -> Reply {
    let body = json!({ "claim_token": claim_token, "user_code": code });
    server.post_json("/agent/identity/claim/complete", &body.to_string())
}

/// A `service_auth` registration for `email`: the answer, its link's path
/// and its attempt token.
fn service_auth(server: &impl Client, email: &str) -> (Value, String, String) {
    let body = json!({ "type": "service_auth", "login_hint": email });
    let made = server.post_json("/agent/identity", &body.to_string()).json();
    let link = made["claim"]["attempt"]["verification_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(server.base())
        .to_string();
    let token = link.split("claim_attempt_token=").nth(1).unwrap().to_string();
    (made, link, token)
}

fn code_on(page: &str) -> String {
    let at = page.find(r#"id="user-code">"#).expect("the code on the page") + r#"id="user-code">"#.len();
    page[at..at + 6].to_string()
}

#[test]
fn an_anonymous_agent_is_claimed_by_the_person_who_signs_in_and_confirms() {
    let server = InProcess::start();
    let made = server.post_json("/agent/identity", r#"{"type":"anonymous"}"#).json();
    let claim_token = made["claim"]["token"].as_str().unwrap().to_string();
    let pre_claim = made["identity"]["assertion"].as_str().unwrap().to_string();
    let pre_access = exchange(&server, &pre_claim).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let started = server
        .post_json(
            "/agent/identity/claim",
            &json!({ "type": "service_auth", "claim_token": claim_token, "login_hint": "pat@example.com" }).to_string(),
        )
        .json();
    let link = started["attempt"]["verification_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(&server.base)
        .to_string();

    // Signed out, the link goes to sign-in first, and back.
    let mut stranger = Browser::new(&server);
    let bounced = stranger.get(&link);
    assert_eq!(bounced.status, 303);
    assert!(
        bounced
            .header("location")
            .unwrap()
            .starts_with("/login?return_to=%2Fclaim%3Fclaim_attempt_token%3Dcvt_")
    );

    complete(&server, &claim_token, "123456").assert_error(409, "claim_not_confirmed");
    let mut kim = sign_in(&server, "kim@example.com");
    let wrong = kim.get(&link);
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(wrong.body.contains("pat@example.com"), "names the account it is for");

    let mut pat = sign_in(&server, "pat@example.com");
    let page = pat.get(&link);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Authorize") && page.body.contains(made["id"].as_str().unwrap()));
    assert!(
        !page.body.contains(r#"id="user-code""#),
        "opening the link mints nothing"
    );
    assert!(page.body.contains("This would be the first agent acting for you here."));
    assert!(
        !page.body.contains("asks to act for you here"),
        "no provider behind an anonymous agent"
    );
    let token = link.split("claim_attempt_token=").nth(1).unwrap().to_string();
    let csrf = pat.csrf.clone();
    let shown = pat.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"));
    assert_eq!(shown.status, 200, "{}", shown.body);
    let code = code_on(&shown.body);

    let wrong_code = if code == "000000" { "111111" } else { "000000" };
    complete(&server, &claim_token, wrong_code).assert_error(401, "invalid_user_code");
    let done = complete(&server, &claim_token, &code);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.header("cache-control"), Some("no-store"));
    let done = done.json();
    assert_eq!(done["id"], made["id"]);
    assert_eq!(done["status"], "claimed");
    let refresh = done["identity"]["refresh_token"]["value"].as_str().unwrap();
    assert!(refresh.starts_with("authmd_rt_"), "{refresh}");
    let assertion = done["identity"]["assertion"].as_str().unwrap();
    assert_eq!(claims_of(assertion)["email"], "pat@example.com");
    complete(&server, &claim_token, &code).assert_error(409, "already_claimed");

    // The pre-claim identity is over; the claimed one gets the post-claim scopes.
    assert_eq!(exchange(&server, &pre_claim).json()["error"], "invalid_grant");
    server
        .get_with_token("/api/resource", &pre_access)
        .assert_error(401, "invalid_token");
    let access = exchange(&server, assertion).json();
    assert_eq!(access["scope"], "api.read api.write");
    let me = server
        .get_with_token("/api/resource", access["access_token"].as_str().unwrap())
        .json();
    assert_eq!(me["status"], "claimed");

    for event in ["claim.confirmed_on_page", "otp.generated", "claim.confirmed"] {
        assert_eq!(server.events(event).len(), 1, "{event}");
    }
    let issued = server.events("credential.issued");
    assert!(
        issued.iter().any(|e| e["credential_type"] == "refresh_token"),
        "{issued:?}"
    );
    let audit = server.cli_ok(&["audit", "--json"]);
    assert!(
        !audit.contains(&code) && !audit.contains(refresh),
        "no code or token in the audit log"
    );
}

#[test]
fn this_wasnt_me_rejects_a_service_auth_registration_after_asking_twice() {
    let server = InProcess::start();
    let (made, link, token) = service_auth(&server, "lee@example.com");
    let mut lee = sign_in(&server, "lee@example.com");
    lee.get(&link);
    let csrf = lee.csrf.clone();
    let asked = lee.post("/claim/reject", &format!("claim_attempt_token={token}&csrf={csrf}"));
    assert!(
        asked.body.contains("Yes, this wasn't me") || asked.body.contains("Yes, this wasn&#39;t me"),
        "{}",
        asked.body
    );
    assert_eq!(lee.get(&link).status, 200, "nothing changed on the first press");
    let csrf = lee.csrf.clone();
    assert_eq!(
        lee.post("/claim/reject", &format!("claim_attempt_token={token}&csrf={csrf}"))
            .status,
        200
    );
    let csrf = lee.csrf.clone();
    let rejected = lee.post(
        "/claim/reject",
        &format!("claim_attempt_token={token}&csrf={csrf}&confirm=yes"),
    );
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    assert_eq!(lee.get(&link).status, 410, "the link is cancelled");
    complete(&server, made["claim"]["token"].as_str().unwrap(), "123456").assert_error(410, "claim_expired");
    assert_eq!(server.events("claim.rejected")[0]["registration_status"], "rejected");
    // No CSRF token: nothing happens.
    let (_, _, token) = service_auth(&server, "lee@example.com");
    assert_eq!(
        lee.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf=forged"))
            .status,
        403
    );
    assert!(server.events("otp.generated").is_empty());
}

/// Signed in as another account by the time they press a button, the
/// person still gets the wrong-account page, and its sign-out comes back
/// to the link, not to the form's endpoint.
#[test]
fn a_press_from_another_account_switches_back_to_the_link() {
    let server = InProcess::start();
    let (_, link, token) = service_auth(&server, "lee@example.com");
    let mut kim = sign_in(&server, "kim@example.com");
    kim.get(&link);
    for path in ["/claim/confirm", "/claim/reject"] {
        let csrf = kim.csrf.clone();
        let wrong = kim.post(path, &format!("claim_attempt_token={token}&csrf={csrf}"));
        assert_eq!(wrong.status, 403, "{}", wrong.body);
        assert!(
            wrong.body.contains(&format!(r#"name="return_to" value="{link}""#)),
            "{path}: {}",
            wrong.body
        );
    }
    assert!(server.events("otp.generated").is_empty());
}

/// A `service_auth` registration has no identity until the person confirms;
/// then its assertion carries their address and the post-claim scopes.
#[test]
fn a_service_auth_agent_gets_its_first_identity_at_the_claim() {
    let server = InProcess::start();
    let (made, link, token) = service_auth(&server, "ana@example.com");
    let mut ana = sign_in(&server, "ana@example.com");
    ana.get(&link);
    let csrf = ana.csrf.clone();
    let code = code_on(
        &ana.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"))
            .body,
    );
    let done = complete(&server, made["claim"]["token"].as_str().unwrap(), &code).json();
    let assertion = done["identity"]["assertion"].as_str().unwrap();
    assert_eq!(claims_of(assertion)["email"], "ana@example.com");
    assert_eq!(exchange(&server, assertion).json()["scope"], "api.read api.write");
}

/// A claimed registration: its claim answer.
fn claimed(server: &InProcess, email: &str) -> Value {
    claimed_by(server, &mut sign_in(server, email), email)
}

/// A `service_auth` registration for `email`, claimed by `person`, who is
/// signed in as `email`: the claim answer, with the first refresh token.
pub(crate) fn claimed_by<C: Client>(server: &C, person: &mut Browser<'_, C>, email: &str) -> Value {
    let (made, link, token) = service_auth(server, email);
    person.get(&link);
    let csrf = person.csrf.clone();
    let code = code_on(
        &person
            .post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"))
            .body,
    );
    complete(server, made["claim"]["token"].as_str().unwrap(), &code).json()
}

/// SPEC-v0.7 4.4: `type: refresh` at `/agent/identity`.
pub(crate) fn refresh(server: &impl Client, token: &str) -> Reply {
    server.post_json(
        "/agent/identity",
        &json!({ "type": "refresh", "refresh_token": token }).to_string(),
    )
}

/// SPEC-v0.7 9: refresh tokens rotate; a spent one presented again revokes
/// the whole family; of two concurrent refreshes with one token, one wins.
#[test]
fn refresh_tokens_rotate_and_a_reuse_revokes_the_family() {
    let server = InProcess::start();
    let done = claimed(&server, "ray@example.com");
    let first = done["identity"]["refresh_token"]["value"].as_str().unwrap().to_string();
    let reply = refresh(&server, &first);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let rotated = reply.json();
    assert_eq!(rotated["type"], "refresh");
    assert_eq!(rotated["id"], done["id"]);
    assert!(rotated.get("scopes").is_none());
    let second = rotated["identity"]["refresh_token"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    let assertion = rotated["identity"]["assertion"].as_str().unwrap();
    assert_eq!(claims_of(assertion)["email"], "ray@example.com");
    let access = exchange(&server, assertion).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(server.events("refresh_token.rotated").len(), 1);

    // The spent one again: refused, and everything of the family ends.
    refresh(&server, &first).assert_error(400, "invalid_refresh_token");
    refresh(&server, &second).assert_error(400, "invalid_refresh_token");
    assert_eq!(exchange(&server, assertion).json()["error"], "invalid_grant");
    server
        .get_with_token("/api/resource", &access)
        .assert_error(401, "invalid_token");
    let reused = server.events("refresh_token.reused");
    assert_eq!(reused.len(), 1);
    assert!(reused[0]["revoked"].as_u64().unwrap() >= 3, "{reused:?}");
    for bad in ["authmd_rt_garbage", "", "authmd_sk_whatever"] {
        refresh(&server, bad).assert_error(400, "invalid_refresh_token");
    }

    // Two refreshes with one token at once: one rotation, one reuse.
    let other = claimed(&server, "sue@example.com");
    let token = other["identity"]["refresh_token"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| refresh(&server, &token).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [200, 400], "{statuses:?}");
}

/// SPEC-v0.7 10: revoking a refresh token takes its family, without the alarm.
#[test]
fn revoking_a_refresh_token_revokes_its_family() {
    let server = InProcess::start();
    let done = claimed(&server, "val@example.com");
    let token = done["identity"]["refresh_token"]["value"].as_str().unwrap();
    let assertion = done["identity"]["assertion"].as_str().unwrap();
    let revoked = server.request(
        "POST",
        "/oauth2/revoke",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("token={token}&token_type_hint=refresh_token").as_bytes(),
    );
    assert_eq!((revoked.status, revoked.body.as_str()), (200, ""));
    refresh(&server, token).assert_error(400, "invalid_refresh_token");
    assert_eq!(exchange(&server, assertion).json()["error"], "invalid_grant");
    assert!(server.events("refresh_token.reused").is_empty(), "no alarm");
    let events = server.events("credential.revoked");
    assert_eq!(events[0]["credential_type"], "refresh_token");
}

/// SPEC-v0.7 6.3, 6.4 on the fixed clock: a link not confirmed within
/// `claim_attempt_ttl_secs` is `user_code_expired` (ask for a new one), and a
/// code lives `otp_ttl_secs` from the confirmation, even past the link.
#[test]
fn a_late_link_and_a_late_code_are_user_code_expired() {
    let server = InProcess::start();
    let (made, link, token) = service_auth(&server, "kai@example.com");
    let claim_token = made["claim"]["token"].as_str().unwrap().to_string();
    server.advance(std::time::Duration::from_secs(601));
    complete(&server, &claim_token, "123456").assert_error(410, "user_code_expired");
    let mut kai = sign_in(&server, "kai@example.com");
    assert_eq!(kai.get(&link).status, 410, "the link expired unconfirmed");

    // A new link, confirmed just before it ends: the code outlives the link.
    let body = json!({ "type": "service_auth", "claim_token": claim_token, "login_hint": "kai@example.com" });
    let fresh = server.post_json("/agent/identity/claim", &body.to_string()).json();
    let link = fresh["attempt"]["verification_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(&server.base)
        .to_string();
    let token2 = link.split("claim_attempt_token=").nth(1).unwrap().to_string();
    assert_ne!(token2, token);
    server.advance(std::time::Duration::from_secs(590));
    kai.get(&link);
    let csrf = kai.csrf.clone();
    let code = code_on(
        &kai.post("/claim/confirm", &format!("claim_attempt_token={token2}&csrf={csrf}"))
            .body,
    );
    server.advance(std::time::Duration::from_secs(300));
    assert_eq!(
        complete(&server, &claim_token, &code).status,
        200,
        "within otp_ttl_secs of the confirmation"
    );

    let (made, link, token) = service_auth(&server, "kai@example.com");
    kai.get(&link);
    let csrf = kai.csrf.clone();
    let code = code_on(
        &kai.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"))
            .body,
    );
    server.advance(std::time::Duration::from_secs(601));
    complete(&server, made["claim"]["token"].as_str().unwrap(), &code).assert_error(410, "user_code_expired");
}

/// SPEC-v0.7 9 on the fixed clock: a refresh token lives
/// `refresh_token_ttl_secs` from its issue; each rotation's token has a
/// fresh lifetime; a token past its lifetime refreshes nothing, and is no
/// reuse alarm (the family it belonged to stays as it was).
#[test]
fn a_refresh_token_lives_its_ttl_from_issue() {
    let server = InProcess::start();
    let ttl = std::time::Duration::from_secs(2_592_000);
    let done = claimed(&server, "lee@example.com");
    let first = done["identity"]["refresh_token"]["value"].as_str().unwrap().to_string();
    server.advance(ttl - std::time::Duration::from_secs(1));
    let rotated = refresh(&server, &first);
    assert_eq!(rotated.status, 200, "a second before its end: {}", rotated.body);
    let second = rotated.json()["identity"]["refresh_token"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    server.advance(ttl - std::time::Duration::from_secs(1));
    let third = refresh(&server, &second);
    assert_eq!(
        third.status, 200,
        "the rotated token's lifetime starts at its issue: {}",
        third.body
    );
    let third = third.json()["identity"]["refresh_token"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    server.advance(ttl);
    refresh(&server, &third).assert_error(400, "invalid_refresh_token");
    assert!(
        server.events("refresh_token.reused").is_empty(),
        "an expired token is no reuse"
    );
    // And a spent token past its lifetime: refused, still no alarm.
    refresh(&server, &first).assert_error(400, "invalid_refresh_token");
    assert!(server.events("refresh_token.reused").is_empty());
}
