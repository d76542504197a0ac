//! The current generation (SPEC-v0.7) as served so far: an anonymous agent
//! registers at /agent/identity, gets a service assertion signed by the
//! keys at /.well-known/jwks.json, and exchanges it at /oauth2/token
//! (RFC 7523) for access tokens that work on the guarded API; the token
//! endpoint speaks RFC 6749's envelope and refuses anything it did not sign.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::common::{Client, InProcess, Reply};

const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

fn register(server: &InProcess) -> Value {
    let reply = server.post_json("/agent/identity", r#"{"type":"anonymous"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.json()
}

fn post_form(server: &InProcess, path: &str, form: &str) -> Reply {
    server.request(
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
}

fn exchange(server: &InProcess, assertion: &str) -> Reply {
    post_form(
        server,
        "/oauth2/token",
        &format!("grant_type={JWT_BEARER}&assertion={assertion}"),
    )
}

/// An OAuth error: status, code, RFC 6749's two members and no-cache headers.
fn assert_oauth_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(body.get("message").is_none(), "RFC 6749's envelope: {body}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
}

fn part(token: &str, index: usize) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(token.split('.').nth(index).unwrap()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn an_anonymous_agent_registers_and_exchanges_its_assertion_for_access_tokens() {
    let server = InProcess::start();
    let base = server.base.clone();
    let registered = register(&server);
    let id = registered["id"].as_str().unwrap();
    assert!(id.starts_with("reg_"));
    assert_eq!(registered["type"], "anonymous");
    assert_eq!(registered["scopes"]["pre_claim"], serde_json::json!(["api.read"]));
    assert_eq!(
        registered["scopes"]["post_claim"],
        serde_json::json!(["api.read", "api.write"])
    );
    assert!(registered["claim"]["token"].as_str().unwrap().starts_with("clm_"));
    assert_eq!(registered["claim"]["url"], format!("{base}/agent/identity/claim"));
    assert!(registered["claim"].get("attempt").is_none());
    assert!(registered["identity"]["expires_at"].as_str().unwrap().ends_with('Z'));

    // SPEC-v0.7 5.1: the assertion's shape, signed by a published key.
    let assertion = registered["identity"]["assertion"].as_str().unwrap();
    let (header, claims) = (part(assertion, 0), part(assertion, 1));
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "oauth-id-jag+jwt");
    let jwks = server.get("/.well-known/jwks.json").json();
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    assert_eq!(claims["iss"], base.as_str());
    assert_eq!(claims["aud"], base.as_str());
    assert_eq!(claims["sub"], id);
    assert!(claims["jti"].as_str().unwrap().starts_with("jti_"));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    assert!(claims.get("email").is_none(), "no user is bound yet");

    let reply = exchange(&server, assertion);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    let token = reply.json();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    assert_eq!(token["scope"], "api.read");
    assert!(token.get("refresh_token").is_none());
    let access = token["access_token"].as_str().unwrap();
    assert!(access.starts_with("authmd_at_"));
    let api = server.get_with_token("/api/resource", access);
    assert_eq!(api.status, 200, "{}", api.body);
    assert_eq!(api.json()["registration_id"], id);

    // Not single-use: every exchange mints a new access token.
    let again = exchange(&server, assertion).json();
    assert_ne!(again["access_token"], token["access_token"]);

    let created = server.events("registration.created");
    assert_eq!(created.last().unwrap()["generation"], "v0.7");
    let issued = server.events("credential.issued");
    assert!(issued.iter().any(|e| e["credential_type"] == "assertion"), "{issued:?}");
    assert_eq!(server.events("token.issued").len(), 2);
    assert_eq!(server.events("token.issued")[0]["scope"], "api.read");

    // RFC 7009 at either name: an empty 200 whatever the token, and the
    // token named stops working; `token` itself is required, once.
    let second = again["access_token"].as_str().unwrap();
    for path in ["/oauth2/revoke", "/oauth/revoke"] {
        let reply = post_form(&server, path, &format!("token={second}&token_type_hint=whatever"));
        assert_eq!((reply.status, reply.body.as_str()), (200, ""));
        assert_eq!(reply.header("pragma"), Some("no-cache"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    assert_eq!(server.get_with_token("/api/resource", second).status, 401);
    assert_eq!(
        server.get_with_token("/api/resource", access).status,
        200,
        "only that token"
    );
    assert_oauth_error(
        &post_form(&server, "/oauth2/revoke", "token_type_hint=access_token"),
        400,
        "invalid_request",
    );
    // RFC 6749 3.1: a parameter given twice is refused, revoking neither.
    assert_oauth_error(
        &post_form(&server, "/oauth2/revoke", &format!("token={access}&token={second}")),
        400,
        "invalid_request",
    );
    assert_eq!(server.get_with_token("/api/resource", access).status, 200);
    assert_eq!(
        server.events("credential.revoked").len(),
        1,
        "revoked once, audited once"
    );

    // Revoking the registration stops its assertion and its tokens.
    server.cli_ok(&["revoke", "--registration", id]);
    assert_oauth_error(&exchange(&server, assertion), 400, "invalid_grant");
    assert_eq!(server.get_with_token("/api/resource", access).status, 401);
}

#[test]
fn the_token_endpoint_refuses_what_it_did_not_sign_in_the_oauth_envelope() {
    let server = InProcess::start();
    let assertion = register(&server)["identity"]["assertion"].as_str().unwrap().to_string();
    assert_oauth_error(
        &post_form(&server, "/oauth2/token", &format!("assertion={assertion}")),
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &post_form(
            &server,
            "/oauth2/token",
            &format!("grant_type=password&assertion={assertion}"),
        ),
        400,
        "unsupported_grant_type",
    );
    assert_oauth_error(
        &post_form(&server, "/oauth2/token", &format!("grant_type={JWT_BEARER}")),
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &post_form(
            &server,
            "/oauth2/token",
            &format!("grant_type={JWT_BEARER}&assertion={assertion}&assertion={assertion}"),
        ),
        400,
        "invalid_request",
    );
    assert_oauth_error(
        &post_form(
            &server,
            "/oauth2/token",
            &format!("grant_type={JWT_BEARER}&assertion={assertion}&resource=https%3A%2F%2Felsewhere.example%2F"),
        ),
        400,
        "invalid_target",
    );
    let resource = format!("{}/api/", server.base).replace(':', "%3A").replace('/', "%2F");
    assert_eq!(
        post_form(
            &server,
            "/oauth2/token",
            &format!("grant_type={JWT_BEARER}&assertion={assertion}&resource={resource}")
        )
        .status,
        200
    );
    let json = server.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/json")],
        format!(r#"{{"grant_type":"urn:ietf:params:oauth:grant-type:jwt-bearer","assertion":"{assertion}"}}"#)
            .as_bytes(),
    );
    assert_oauth_error(&json, 400, "invalid_request");

    // A tampered signature, a token from nowhere, a v0.1 key.
    let mut tampered = assertion.clone();
    tampered.pop();
    tampered.push(if assertion.ends_with('A') { 'B' } else { 'A' });
    assert_oauth_error(&exchange(&server, &tampered), 400, "invalid_grant");
    assert_oauth_error(&exchange(&server, "not.a.jwt"), 400, "invalid_grant");
    let v0_1 = server
        .post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
        .json();
    assert_oauth_error(
        &exchange(&server, v0_1["credential"].as_str().unwrap()),
        400,
        "invalid_grant",
    );

    // Shapes not served yet say so; the v0.1 shape is not a v0.7 one.
    for body in [
        r#"{"type":"identity_assertion","assertion_type":"verified_email","assertion":"a@example.com"}"#,
        r#"{"type":"nonsense"}"#,
        r#"[1]"#,
    ] {
        server
            .post_json("/agent/identity", body)
            .assert_error(400, "invalid_request");
    }
}

#[test]
fn a_lapsed_registration_and_a_retired_key() {
    let server = InProcess::start_with(
        false,
        &[("registration_ttl_secs", "60"), ("rate_limit.anonymous.per_ip", "0")],
    );
    let assertion = register(&server)["identity"]["assertion"].as_str().unwrap().to_string();
    // A rotation keeps the old key's assertions exchangeable.
    server.cli_ok(&["keys", "rotate"]);
    assert_eq!(exchange(&server, &assertion).status, 200);
    let fresh = register(&server)["identity"]["assertion"].as_str().unwrap().to_string();
    let jwks = server.get("/.well-known/jwks.json").json();
    assert_eq!(part(&fresh, 0)["kid"], jwks["keys"][0]["kid"], "the new key signs");
    // Past the claim window, unclaimed: over, though the assertion has not expired.
    server.advance(Duration::from_secs(61));
    assert_oauth_error(&exchange(&server, &assertion), 400, "invalid_grant");
}

/// SPEC-v0.7 4.2: `service_auth` makes a pending registration and a link
/// for the person the hint names; no mail, nothing looked up.
#[test]
fn service_auth_opens_a_link_for_the_person_and_sends_nothing() {
    let server = InProcess::start();
    let base = server.base.clone();
    let reply = server.post_json(
        "/agent/identity",
        r#"{"type":"service_auth","login_hint":"  Alice@Example.COM "}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let made = reply.json();
    assert_eq!(made["type"], "service_auth");
    assert!(made.get("identity").is_none(), "no identity before the claim");
    assert_eq!(
        made["scopes"],
        serde_json::json!({ "post_claim": ["api.read", "api.write"] })
    );
    assert!(made["claim"]["token"].as_str().unwrap().starts_with("clm_"));
    assert_eq!(made["claim"]["url"], format!("{base}/agent/identity/claim"));
    let link = made["claim"]["attempt"]["verification_uri"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{base}/claim?claim_attempt_token=cvt_")),
        "{link}"
    );
    assert!(made["claim"]["attempt"]["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        server.queued_mail().is_empty(),
        "the person proves the address by signing in"
    );
    let requested = server.events("claim.requested");
    assert_eq!(requested[0]["login_hint"], "alice@example.com");
    assert_eq!(
        server.events("registration.created")[0]["registration_type"],
        "service_auth"
    );

    for hint in [
        "not-an-address",
        "a@b",
        "@x.y",
        "a b@c.d",
        "a@b@c.d",
        &format!("{}@example.com", "x".repeat(250)),
    ] {
        let body = serde_json::json!({ "type": "service_auth", "login_hint": hint }).to_string();
        let refused = server.post_json("/agent/identity", &body);
        refused.assert_error(400, "invalid_login_hint");
        assert!(refused.body.contains("recognizable identifier"), "{}", refused.body);
    }
    server.set("service_auth_enabled", "false");
    server
        .post_json(
            "/agent/identity",
            r#"{"type":"service_auth","login_hint":"a@example.com"}"#,
        )
        .assert_error(400, "service_auth_not_enabled");
}

/// SPEC-v0.7 6.1: a new attempt for a v0.7 registration, in the SPEC's order of checks.
#[test]
fn a_claim_request_opens_a_new_link_each_time() {
    let server = InProcess::start();
    let anonymous = register(&server);
    let token = anonymous["claim"]["token"].as_str().unwrap();
    let claim = |token: &str, hint: &str| {
        let body = serde_json::json!({ "type": "service_auth", "claim_token": token, "login_hint": hint });
        server.post_json("/agent/identity/claim", &body.to_string())
    };
    let first = claim(token, "bob@example.com");
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(first["id"], anonymous["id"]);
    assert_eq!(first["type"], "service_auth");
    let second = claim(token, "bob@example.com").json();
    assert_ne!(
        first["attempt"]["verification_uri"], second["attempt"]["verification_uri"],
        "the link is stored hashed: a new one each time"
    );
    let listed = server.cli_ok(&["registrations", "list", "--json"]);
    assert!(listed.contains("pending_claim"), "{listed}");
    // The link's page asks a person who is not signed in to sign in first.
    let path = second["attempt"]["verification_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(&server.base)
        .to_string();
    assert_eq!(server.get(&path).status, 303);

    claim(token, "not an address").assert_error(400, "invalid_login_hint");
    claim("clm_unknown", "bob@example.com").assert_error(401, "invalid_claim_token");
    let v0_1 = server
        .post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
        .json();
    claim(v0_1["claim_token"].as_str().unwrap(), "bob@example.com").assert_error(401, "invalid_claim_token");
    server
        .post_json(
            "/agent/identity/claim",
            r#"{"type":"anonymous","claim_token":"x","login_hint":"a@b.c"}"#,
        )
        .assert_error(400, "invalid_request");
    server.cli_ok(&["revoke", "--registration", anonymous["id"].as_str().unwrap()]);
    claim(token, "bob@example.com").assert_error(410, "claim_expired");

    let lapsing = register(&server);
    server.advance(Duration::from_secs(86_401));
    claim(lapsing["claim"]["token"].as_str().unwrap(), "bob@example.com").assert_error(410, "claim_expired");
}

/// SPEC-v0.7 1: a registration belongs to its generation; a claim token
/// (or link) of one is refused by the other's endpoints.
#[test]
fn claim_tokens_work_only_in_their_generation() {
    let server = InProcess::start();
    let v0_7 = register(&server);
    let token = v0_7["claim"]["token"].as_str().unwrap();
    let body = serde_json::json!({ "claim_token": token, "email": "a@example.com" });
    server
        .post_json("/agent/auth/claim", &body.to_string())
        .assert_error(401, "invalid_claim_token");
    let body = serde_json::json!({ "claim_token": token, "otp": "123456" });
    server
        .post_json("/agent/auth/claim/complete", &body.to_string())
        .assert_error(401, "invalid_claim_token");
    let v0_1 = server
        .post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
        .json();
    let body = serde_json::json!({ "claim_token": v0_1["claim_token"], "user_code": "123456" });
    server
        .post_json("/agent/identity/claim/complete", &body.to_string())
        .assert_error(400, "invalid_claim");
    // A v0.7 link opened on the v0.1 page is unknown there.
    let started = server
        .post_json(
            "/agent/identity/claim",
            &serde_json::json!({ "type": "service_auth", "claim_token": token, "login_hint": "a@example.com" })
                .to_string(),
        )
        .json();
    let link = started["attempt"]["verification_uri"].as_str().unwrap();
    let attempt = link.split("claim_attempt_token=").nth(1).unwrap();
    assert_eq!(
        server.get(&format!("/agent/auth/claim/view?token={attempt}")).status,
        404
    );
}
