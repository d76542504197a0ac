//! SPEC.md 3.3 and 5 against the real server: the claim ceremony for
//! anonymous and verified-email registrations, every refusal, the lockout
//! rules, and the pages a person (or a link scanner) meets.

use std::time::Duration;

use crate::common;
use crate::common::{Client, InProcess, Mail, Reply, TestServer};
use serde_json::{Value, json};

fn register_email(server: &TestServer, email: &str, credential_type: &str) -> Value {
    let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":email,"requested_credential_type":credential_type});
    let reply = server.post_json("/agent/auth", &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.json()
}

fn request_claim(server: &impl Client, claim_token: &str, email: &str) -> Reply {
    server.post_json(
        "/agent/auth/claim",
        &json!({ "claim_token": claim_token, "email": email }).to_string(),
    )
}

fn challenge(server: &TestServer, attempt_token: &str) -> Reply {
    server.post_json(
        "/agent/auth/claim/attempt/challenge",
        &json!({ "claim_attempt_token": attempt_token }).to_string(),
    )
}

fn complete(server: &impl Client, claim_token: &str, otp: &str) -> Reply {
    server.post_json(
        "/agent/auth/claim/complete",
        &json!({ "claim_token": claim_token, "otp": otp }).to_string(),
    )
}

fn code(server: &TestServer, mail: &Mail) -> String {
    let reply = challenge(server, &mail.token());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["type"], "otp");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    body["challenge"].as_str().unwrap().to_string()
}

/// A six-digit code that is not `code`.
fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

fn post_form(server: &TestServer, path: &str, fields: &[(&str, &str)]) -> Reply {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    server.request(
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.join("&").as_bytes(),
    )
}

/// The six digits on the code page.
fn code_on_page(page: &str) -> String {
    let start = page.find("id=\"otp\">").expect("the code element") + "id=\"otp\">".len();
    page[start..start + 6].to_string()
}

#[test]
fn verified_email_flow_end_to_end_through_the_pages() {
    let server = TestServer::start();
    let reg = register_email(&server, "Alice@Example.com", "access_token");
    assert_eq!(reg["registration_type"], "email-verification");
    assert!(reg.get("credential").is_none(), "no credential before the claim");
    assert_eq!(reg["claim_url"], format!("{}/agent/auth/claim", server.base));
    assert_eq!(reg["post_claim_scopes"], json!(["api.read", "api.write"]));
    let claim_token = reg["claim_token"].as_str().unwrap();

    let mail = server.wait_for_mail(1).remove(0);
    assert_eq!(mail.to, "alice@example.com");
    // resource_name unset: the mail names the service by its host (issue 15).
    let host = server.base.trim_start_matches("http://");
    assert!(mail.subject.ends_with(host), "{}", mail.subject);
    assert!(mail.text.contains(reg["registration_id"].as_str().unwrap()) && mail.text.contains("ignore this email"));
    assert!(mail.html.contains("<a href=\"http://127.0.0.1:") && mail.html.contains("Confirm the agent"));

    // Opening the link (twice) shows the page and mints nothing.
    for _ in 0..2 {
        let page = server.get(&mail.link_path());
        assert_eq!(page.status, 200);
        assert!(page.body.contains("Show my code") && page.body.contains("alice@example.com"));
        assert!(!page.body.contains("id=\"otp\""));
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'") && !csp.contains("script")
        );
    }
    assert_eq!(server.request("HEAD", &mail.link_path(), &[], b"").status, 200);
    assert!(server.events("otp.generated").is_empty(), "a GET minted a code");
    complete(&server, claim_token, "123456").assert_error(400, "otp_not_generated");

    // The button.
    let page = post_form(&server, "/agent/auth/claim/view", &[("token", &mail.token())]);
    assert_eq!(page.status, 200, "{}", page.body);
    let otp = code_on_page(&page.body);
    assert_eq!(server.events("otp.generated").len(), 1);

    let reply = complete(&server, claim_token, &otp);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let done = reply.json();
    assert_eq!(done["status"], "claimed");
    assert_eq!(done["credential_type"], "access_token");
    assert_eq!(done["scopes"], json!(["api.read", "api.write"]));
    assert!(done["credential_expires"].as_str().unwrap().ends_with('Z'));
    let me = server
        .get_with_token("/api/resource", done["credential"].as_str().unwrap())
        .json();
    assert_eq!(me["status"], "claimed");
    assert!(me["user_id"].as_str().unwrap().starts_with("usr_"));

    // Afterwards: the page says so, and nothing can be reused.
    let page = server.get(&mail.link_path());
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Already confirmed"));
    complete(&server, claim_token, &otp).assert_error(409, "previously_claimed");
    challenge(&server, &mail.token()).assert_error(409, "claim_completed");
    request_claim(&server, claim_token, "alice@example.com").assert_error(409, "claimed_or_in_flight");

    let confirmed = server.events("claim.confirmed");
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0]["claimed_by_user_id"], me["user_id"]);
    let audit = server.cli_ok(&["audit", "--json"]) + &server.stderr();
    for secret in [claim_token, &mail.token(), &otp, done["credential"].as_str().unwrap()] {
        assert!(!audit.contains(secret), "a secret reached the audit log or stderr");
    }
}

#[test]
fn anonymous_claim_raises_the_existing_key_in_place() {
    let server = TestServer::start();
    let reg = server.register_anonymous();
    let (key, claim_token) = (
        reg["credential"].as_str().unwrap(),
        reg["claim_token"].as_str().unwrap(),
    );
    let reply = request_claim(&server, claim_token, "bob@example.com");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let started = reply.json();
    assert_eq!(started["status"], "initiated");
    assert_eq!(started["registration_id"], reg["registration_id"]);
    assert!(started["claim_attempt_id"].as_str().unwrap().starts_with("att_"));
    assert_eq!(
        server.get_with_token("/api/resource", key).json()["status"],
        "pending_claim"
    );

    let mail = server.wait_for_mail(1).remove(0);
    let otp = code(&server, &mail);
    let done = complete(&server, claim_token, &otp);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        done.json(),
        json!({ "registration_id": reg["registration_id"], "status": "claimed" })
    );
    let me = server.get_with_token("/api/resource", key).json();
    assert_eq!(me["status"], "claimed");
    assert_eq!(me["scopes"], json!(["api.read", "api.write"]));
    assert!(me["user_id"].as_str().unwrap().starts_with("usr_"));

    // The same person claiming another agent is the same user.
    let other = server.register_anonymous();
    request_claim(&server, other["claim_token"].as_str().unwrap(), "BOB@example.com");
    let mail = server.wait_for_mail(2).remove(1);
    let otp = code(&server, &mail);
    assert_eq!(
        complete(&server, other["claim_token"].as_str().unwrap(), &otp).status,
        200
    );
    let other_me = server
        .get_with_token("/api/resource", other["credential"].as_str().unwrap())
        .json();
    assert_eq!(other_me["user_id"], me["user_id"]);
}

#[test]
fn repeat_requests_reuse_the_attempt_and_a_new_email_supersedes_it() {
    let server = TestServer::start();
    let reg = server.register_anonymous();
    let claim_token = reg["claim_token"].as_str().unwrap();
    let first = request_claim(&server, claim_token, "carol@example.com").json();
    let again = request_claim(&server, claim_token, "carol@example.com").json();
    assert_eq!(first["claim_attempt_id"], again["claim_attempt_id"]);
    assert_eq!(
        server.queued_mail(),
        ["carol@example.com"],
        "no second email for the same request"
    );

    let newer = request_claim(&server, claim_token, "dave@example.com").json();
    assert_ne!(newer["claim_attempt_id"], first["claim_attempt_id"]);
    let mail = server.wait_for_mail(2);
    let (old, new) = (&mail[0], &mail[1]);
    assert_eq!(new.to, "dave@example.com");
    let page = server.get(&old.link_path());
    assert_eq!(page.status, 410);
    assert!(page.body.contains("replaced"));
    challenge(&server, &old.token()).assert_error(410, "claim_superseded");
    challenge(&server, "cat_unknown").assert_error(410, "claim_superseded");
    assert_eq!(server.get("/agent/auth/claim/view?token=cat_nonsense").status, 404);
    let otp = code(&server, new);
    assert_eq!(complete(&server, claim_token, &otp).status, 200);
}

#[test]
fn verified_email_resend_needs_the_same_address() {
    let server = TestServer::start();
    let reg = register_email(&server, "erin@example.com", "api_key");
    let claim_token = reg["claim_token"].as_str().unwrap();
    server.wait_for_mail(1);
    request_claim(&server, claim_token, "mallory@example.com").assert_error(409, "claimed_or_in_flight");
    // The same address while the link is live: the same attempt, no new mail.
    assert_eq!(request_claim(&server, claim_token, "Erin@example.com").status, 200);
    assert_eq!(server.queued_mail(), ["erin@example.com"]);
}

#[test]
fn refusals_have_their_codes() {
    let server = InProcess::start();
    request_claim(&server, "clm_nope", "a@example.com").assert_error(401, "invalid_claim_token");
    complete(&server, "clm_nope", "123456").assert_error(401, "invalid_claim_token");
    let reg = server.register_anonymous();
    let claim_token = reg["claim_token"].as_str().unwrap();
    request_claim(&server, claim_token, "not an address").assert_error(400, "invalid_request");
    request_claim(&server, claim_token, "a@b").assert_error(400, "invalid_request");
    server
        .post_json("/agent/auth/claim", r#"{"claim_token":7,"email":"a@example.com"}"#)
        .assert_error(400, "invalid_request");
    server
        .post_json("/agent/auth/claim/attempt/challenge", "{}")
        .assert_error(400, "invalid_request");
    server
        .post_json("/agent/auth/claim/complete", r#"{"claim_token":"x"}"#)
        .assert_error(400, "invalid_request");
    complete(&server, claim_token, "123456").assert_error(400, "otp_not_generated");
    let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":"nope","requested_credential_type":"api_key"});
    server
        .post_json("/agent/auth", &body.to_string())
        .assert_error(400, "invalid_request");

    // An expired registration cannot be claimed.
    server.set("registration_ttl_secs", "1");
    let short = server.register_anonymous();
    server.advance(Duration::from_secs(1));
    request_claim(&server, short["claim_token"].as_str().unwrap(), "a@example.com").assert_error(410, "claim_expired");
    complete(&server, short["claim_token"].as_str().unwrap(), "123456").assert_error(410, "claim_expired");

    // Verified email switched off.
    server.set("verified_email_enabled", "false");
    let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":"a@example.com","requested_credential_type":"api_key"});
    server
        .post_json("/agent/auth", &body.to_string())
        .assert_error(400, "verified_email_not_enabled");
}

#[test]
fn five_wrong_codes_burn_the_code_and_twenty_lock_the_registration() {
    let server = TestServer::start();
    let reg = register_email(&server, "frank@example.com", "api_key");
    let claim_token = reg["claim_token"].as_str().unwrap();
    let mail = server.wait_for_mail(1).remove(0);
    for round in 0..4 {
        let otp = code(&server, &mail);
        for _ in 0..5 {
            complete(&server, claim_token, &wrong(&otp)).assert_error(401, "otp_invalid");
        }
        if round < 3 {
            // Burned: even the right code is refused now, and the refusal counts for nothing.
            complete(&server, claim_token, &otp).assert_error(410, "otp_expired");
        }
    }
    // Twenty wrong codes in total: the registration is closed.
    complete(&server, claim_token, "000000").assert_error(410, "claim_expired");
    challenge(&server, &mail.token()).assert_error(410, "claim_expired");
    assert_eq!(server.get(&mail.link_path()).status, 410);
    let listed = server.cli_ok(&["registrations", "list", "--status", "locked", "--json"]);
    assert!(listed.contains(reg["registration_id"].as_str().unwrap()));
    assert_eq!(server.events("otp.failed").len(), 20);
}

#[test]
fn fifty_parallel_wrong_guesses_evaluate_exactly_five() {
    let server = TestServer::start();
    let reg = register_email(&server, "grace@example.com", "api_key");
    let claim_token = reg["claim_token"].as_str().unwrap();
    let mail = server.wait_for_mail(1).remove(0);
    let otp = code(&server, &mail);
    let guess = wrong(&otp);
    let codes: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                scope.spawn(|| {
                    complete(&server, claim_token, &guess).json()["error"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(codes.iter().filter(|c| *c == "otp_invalid").count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| *c == "otp_expired").count(), 45, "{codes:?}");
    assert_eq!(server.events("otp.failed").len(), 5);
    // A new code works.
    let otp = code(&server, &mail);
    assert_eq!(complete(&server, claim_token, &otp).status, 200);
}

#[test]
fn a_link_scanner_cannot_spoil_the_claim() {
    let server = TestServer::start();
    let reg = register_email(&server, "heidi@example.com", "api_key");
    let claim_token = reg["claim_token"].as_str().unwrap();
    let mail = server.wait_for_mail(1).remove(0);
    // The scanner: HEAD, GET, then a POST of the first form on the page, and of the second.
    assert_eq!(server.request("HEAD", &mail.link_path(), &[], b"").status, 200);
    let page = server.get(&mail.link_path()).body;
    let first_action = page
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let second_action = page
        .split("action=\"")
        .nth(2)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        post_form(&server, &first_action, &[("token", &mail.token())]).status,
        200
    );
    let confirm = post_form(&server, &second_action, &[("token", &mail.token())]);
    assert!(
        confirm.body.contains("Yes, cancel it"),
        "one stray POST only asks for confirmation"
    );
    // The person then opens the link and finishes.
    let page = post_form(&server, "/agent/auth/claim/view", &[("token", &mail.token())]);
    let otp = code_on_page(&page.body);
    assert_eq!(complete(&server, claim_token, &otp).status, 200);
    assert!(server.events("claim.rejected").is_empty());
}

#[test]
fn this_wasnt_me_cancels_after_confirmation() {
    let server = TestServer::start();
    // Verified email: the registration is rejected for good.
    let reg = register_email(&server, "ivan@example.com", "api_key");
    let mail = server.wait_for_mail(1).remove(0);
    post_form(&server, "/agent/auth/claim/reject", &[("token", &mail.token())]);
    let done = post_form(
        &server,
        "/agent/auth/claim/reject",
        &[("token", &mail.token()), ("confirm", "yes")],
    );
    assert_eq!(done.status, 200);
    assert!(done.body.contains("Request cancelled"));
    assert!(server.get(&mail.link_path()).body.contains("cancelled"));
    complete(&server, reg["claim_token"].as_str().unwrap(), "123456").assert_error(410, "claim_expired");
    assert!(
        server
            .cli_ok(&["registrations", "list", "--status", "rejected"])
            .contains(reg["registration_id"].as_str().unwrap())
    );

    // Anonymous: the attempt is cancelled and the registration is unclaimed again, key still working.
    let anon = server.register_anonymous();
    request_claim(&server, anon["claim_token"].as_str().unwrap(), "judy@example.com");
    let mail = server.wait_for_mail(2).remove(1);
    post_form(
        &server,
        "/agent/auth/claim/reject",
        &[("token", &mail.token()), ("confirm", "yes")],
    );
    let me = server
        .get_with_token("/api/resource", anon["credential"].as_str().unwrap())
        .json();
    assert_eq!(me["status"], "unclaimed");
    assert_eq!(server.events("claim.rejected").len(), 2);
}

/// The claim attempts of a registration in the database: (status, whether a code is stored).
fn attempt_rows(server: &TestServer, registration_id: &str) -> Vec<(String, bool)> {
    let sql = format!(
        "SELECT status, otp_mac IS NOT NULL AS coded FROM claim_attempts WHERE registration_id = '{registration_id}'
         ORDER BY created_ms, id"
    );
    common::rows(server, &sql)
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_string(),
                r["coded"] == true || r["coded"] == 1,
            )
        })
        .collect()
}

/// Regression for issue 11: `authmd revoke --registration` left an open
/// claim link open, its code stored, while the bulk forms closed it. Every
/// revocation now ends the same way: the link is closed and its code erased.
#[test]
fn an_open_claim_link_stops_working_after_any_operator_revocation() {
    let server = TestServer::start();
    for (n, target) in [&["--registration", ""][..], &["--all", "--yes"][..]]
        .into_iter()
        .enumerate()
    {
        let reg = server.register_anonymous();
        let id = reg["registration_id"].as_str().unwrap();
        request_claim(&server, reg["claim_token"].as_str().unwrap(), "olga@example.com");
        let mail = server.wait_for_mail(n + 1).remove(n);
        let otp = code(&server, &mail);
        assert_eq!(attempt_rows(&server, id), [("open".to_string(), true)]);

        let mut args = vec!["revoke"];
        args.extend(target.iter().map(|a| if a.is_empty() { id } else { a }));
        server.cli_ok(&args);

        assert_eq!(
            attempt_rows(&server, id),
            [("closed".to_string(), false)],
            "revoke {target:?}: the link is closed and its code erased"
        );
        assert_eq!(server.get(&mail.link_path()).status, 410, "revoke {target:?}");
        challenge(&server, &mail.token()).assert_error(410, "claim_expired");
        complete(&server, reg["claim_token"].as_str().unwrap(), &otp).assert_error(410, "claim_expired");
    }
}
