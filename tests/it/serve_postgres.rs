//! Issue 14: `authmd --db postgres://... serve`, the real binary over real
//! HTTP on a real PostgreSQL database (`common::postgres`): both
//! generations' flows, the CLI commands on the same database, and two
//! nodes on one database, where what one does the other sees.

use std::time::Duration;

use crate::common::{Client, TestServer, postgres};
use authmd_dev::{Alg, JwksServer, SigningKey};
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

fn node(url: &str) -> TestServer {
    TestServer::start_on(url, &[], &[])
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn me(server: &TestServer, credential: &str) -> Value {
    let reply = server.get_with_token("/api/resource", credential);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[test]
fn v0_1_anonymous_registration_and_an_api_key_call() {
    let server = node(&postgres::database());
    assert_eq!(server.get("/readyz").status, 200);
    let reg = server.register_anonymous();
    let key = reg["credential"].as_str().unwrap();
    assert!(key.starts_with("authmd_sk_"));
    let who = me(&server, key);
    assert_eq!(who["registration_id"], reg["registration_id"]);
    assert_eq!(who["scopes"], json!(["api.read"]));
    // The CLI on the same database sees it.
    let listed = server.cli_ok(&["registrations", "list", "--json"]);
    assert!(listed.contains(reg["registration_id"].as_str().unwrap()), "{listed}");
    let created = server.events("registration.created");
    assert_eq!(created.len(), 1, "{created:?}");
    let wrong = server.get_with_token("/api/resource", "authmd_sk_wrong");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
}

#[test]
fn v0_1_claim_with_the_mailed_code() {
    let server = node(&postgres::database());
    let reg = server.register_anonymous();
    let (key, claim_token) = (
        reg["credential"].as_str().unwrap(),
        reg["claim_token"].as_str().unwrap(),
    );
    let started = server.post_json(
        "/agent/auth/claim",
        &json!({ "claim_token": claim_token, "email": "bob@example.com" }).to_string(),
    );
    assert_eq!(started.status, 200, "{}", started.body);
    let mail = server.wait_for_mail(1).remove(0);
    assert_eq!(mail.to, "bob@example.com");
    let challenge = server.post_json(
        "/agent/auth/claim/attempt/challenge",
        &json!({ "claim_attempt_token": mail.token() }).to_string(),
    );
    assert_eq!(challenge.status, 200, "{}", challenge.body);
    let otp = challenge.json()["challenge"].as_str().unwrap().to_string();
    let done = server.post_json(
        "/agent/auth/claim/complete",
        &json!({ "claim_token": claim_token, "otp": otp }).to_string(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let who = me(&server, key);
    assert_eq!(who["status"], "claimed");
    assert_eq!(who["scopes"], json!(["api.read", "api.write"]));
    // Delivered once, and marked so: nothing left pending.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(server.outbox().len(), 1);
    let users = server.cli_ok(&["users", "list", "--json"]);
    assert!(users.contains("bob@example.com"), "{users}");
}

/// A provider trusted through `authmd provider add` on the database.
fn trusting_provider(server: &TestServer) -> (JwksServer, SigningKey) {
    let key = SigningKey::generate(Alg::Es256, "k1");
    let provider = JwksServer::start("127.0.0.1:0").unwrap();
    provider.publish(&[&key], "public, max-age=3600");
    server.cli_ok(&["provider", "add", &provider.base_url, "--name", "Dev Provider"]);
    (provider, key)
}

fn id_jag(server: &TestServer, provider: &JwksServer, key: &SigningKey, sub: &str) -> String {
    let claims = authmd_dev::id_jag_claims(&provider.base_url, sub, &server.base, now_secs());
    key.sign(&authmd_dev::id_jag_header(), &claims)
}

fn register_id_jag(server: &TestServer, token: &str) -> Value {
    let body = json!({
        "type": "identity_assertion",
        "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
        "assertion": token,
        "requested_credential_type": "api_key",
    });
    let reply = server.post_json("/agent/auth", &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[test]
fn an_id_jag_registration_and_its_replay_refused() {
    let server = node(&postgres::database());
    let (provider, key) = trusting_provider(&server);
    assert!(server.cli_ok(&["provider", "list"]).contains(&provider.base_url));
    let token = id_jag(&server, &provider, &key, "alice");
    let reg = register_id_jag(&server, &token);
    let who = me(&server, reg["credential"].as_str().unwrap());
    assert_eq!(who["registration_id"], reg["registration_id"]);
    let body = json!({
        "type": "identity_assertion",
        "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
        "assertion": token,
        "requested_credential_type": "api_key",
    });
    let replay = server.post_json("/agent/auth", &body.to_string());
    assert_ne!(replay.status, 200, "a replayed jti: {}", replay.body);
}

#[test]
fn v0_7_anonymous_registration_and_its_token_exchange() {
    let server = node(&postgres::database());
    let reply = server.post_json("/agent/identity", r#"{"type":"anonymous"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let registered = reply.json();
    let assertion = registered["identity"]["assertion"].as_str().unwrap();
    let token = server.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("grant_type={JWT_BEARER}&assertion={assertion}").as_bytes(),
    );
    assert_eq!(token.status, 200, "{}", token.body);
    let access = token.json()["access_token"].as_str().unwrap().to_string();
    assert!(access.starts_with("authmd_at_"));
    assert_eq!(me(&server, &access)["registration_id"], registered["id"]);
    let keys = server.cli_ok(&["keys", "list", "--json"]);
    assert!(keys.contains("current"), "{keys}");
}

/// Two nodes on one database: a registration made on one authenticates on
/// the other, a revocation on one is refused on the other, a setting set
/// through the CLI reaches both, and each claim mail is sent by one node.
#[test]
fn two_nodes_share_registrations_revocations_settings_and_mail() {
    let url = postgres::database();
    let (a, b) = (node(&url), node(&url));
    let reg = a.register_anonymous();
    let key = reg["credential"].as_str().unwrap();
    assert_eq!(me(&b, key)["registration_id"], reg["registration_id"]);

    // The agent revokes its key on node b (RFC 7009); node a refuses it.
    let revoked = b.request(
        "POST",
        "/oauth/revoke",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("token={key}").as_bytes(),
    );
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    a.get_with_token("/api/resource", key)
        .assert_error(401, "invalid_token");
    // An operator's revocation through the CLI reaches both as well.
    let other = b.register_anonymous();
    let other_key = other["credential"].as_str().unwrap();
    assert_eq!(me(&a, other_key)["registration_id"], other["registration_id"]);
    a.cli_ok(&["revoke", "--registration", other["registration_id"].as_str().unwrap()]);
    assert_eq!(a.get_with_token("/api/resource", other_key).status, 401);
    assert_eq!(b.get_with_token("/api/resource", other_key).status, 401);
    assert_eq!(b.get_with_token("/api/resource", key).status, 401);

    // Settings: the CLI writes once, both nodes reload.
    a.set("resource_name", "Shared API");
    assert!(
        b.eventually(Duration::from_secs(5), || b.stderr().contains("settings reloaded")),
        "{}",
        b.stderr()
    );

    // Claim mails queued through both nodes: each delivered by one node.
    let mut claims = 0;
    for (n, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        let reg = server.register_anonymous();
        let started = server.post_json(
            "/agent/auth/claim",
            &json!({ "claim_token": reg["claim_token"], "email": format!("p{n}@example.com") }).to_string(),
        );
        assert_eq!(started.status, 200, "{}", started.body);
        claims += 1;
    }
    assert!(
        a.eventually(Duration::from_secs(10), || a.outbox().len() + b.outbox().len()
            >= claims),
        "mail not delivered"
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut recipients: Vec<String> = a.outbox().into_iter().chain(b.outbox()).map(|m| m.to).collect();
    recipients.sort();
    assert_eq!(
        recipients,
        (0..claims).map(|n| format!("p{n}@example.com")).collect::<Vec<_>>()
    );
}

/// `config set KEY VALUE` through `a`, in effect on both nodes when this
/// returns.
fn set_on_both(a: &TestServer, b: &TestServer, key: &str, value: &str) {
    let reloads = || b.stderr().matches("settings reloaded").count();
    let before = reloads();
    a.set(key, value);
    assert!(
        b.eventually(Duration::from_secs(5), || reloads() > before),
        "node B did not reload {key}: {}",
        b.stderr()
    );
}

/// Rate limits are counted in the database the nodes share (issue 14): 30
/// registrations at once, spread over two nodes, with a global limit of 10
/// admit exactly 10 (counted per node, 20 would pass); and a client whose
/// requests alternate between the nodes meets its per-IP limit once.
#[test]
fn rate_limits_are_shared_by_the_nodes() {
    let url = postgres::database();
    let (a, b) = (node(&url), node(&url));
    set_on_both(&a, &b, "rate_limit.anonymous.global", "10");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..30)
            .map(|n| {
                let server = if n % 2 == 0 { &a } else { &b };
                scope.spawn(move || {
                    let reply = server.post_json(
                        "/agent/auth",
                        r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
                    );
                    if reply.status == 429 {
                        reply.assert_error(429, "rate_limited");
                    }
                    reply.status
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((admitted, refused), (10, 20), "{statuses:?}");
    assert_eq!(a.events("registration.created").len(), 10);

    set_on_both(&a, &b, "rate_limit.verified_email.per_ip", "3");
    let verified = |server: &TestServer, n: usize| {
        let body = json!({
            "type": "identity_assertion",
            "assertion_type": "verified_email",
            "assertion": format!("agent{n}@example.com"),
            "requested_credential_type": "api_key",
        });
        server.post_json("/agent/auth", &body.to_string())
    };
    for (n, server) in [&a, &b, &a].into_iter().enumerate() {
        assert_eq!(verified(server, n).status, 200, "request {n}");
    }
    for server in [&b, &a] {
        let refused = verified(server, 9);
        refused.assert_error(429, "rate_limited");
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    }
}
