//! SPEC.md 3.2, 4 and 6 against the real server and a real provider serving
//! its JWKS over HTTP on loopback (`authmd_dev`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{Client, Reply, TestServer};
use authmd_dev::{Alg, JwksServer, SigningKey, StalledServer};
use serde_json::{Value, json};

const RSA_PKCS8: &[u8] = include_bytes!("../fixtures/rsa2048.pk8.der");

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A running authmd that trusts a running provider.
struct World {
    server: TestServer,
    provider: JwksServer,
    key: SigningKey,
}

impl World {
    fn new() -> World {
        World::with_key(SigningKey::generate(Alg::Es256, "k1"))
    }

    fn with_key(key: SigningKey) -> World {
        let server = TestServer::start();
        let provider = JwksServer::start("127.0.0.1:0").unwrap();
        provider.publish(&[&key], "public, max-age=3600");
        server.cli_ok(&["provider", "add", &provider.base_url, "--name", "Dev Provider"]);
        World { server, provider, key }
    }

    fn issuer(&self) -> &str {
        &self.provider.base_url
    }

    fn claims(&self, sub: &str) -> Value {
        authmd_dev::id_jag_claims(self.issuer(), sub, &self.server.base, now_secs())
    }

    fn mint(&self, claims: &Value) -> String {
        self.key.sign(&authmd_dev::id_jag_header(), claims)
    }

    fn register(&self, token: &str, credential_type: &str) -> Reply {
        let body = json!({
            "type": "identity_assertion",
            "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
            "assertion": token,
            "requested_credential_type": credential_type,
        });
        self.server.post_json("/agent/auth", &body.to_string())
    }

    fn register_ok(&self, sub: &str) -> Value {
        let reply = self.register(&self.mint(&self.claims(sub)), "access_token");
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    fn revoke(&self, sub: &str, iat: i64) -> Reply {
        // Addressed to the resource URL, the other name of this service: the
        // delegation is revoked whichever alias the ID-JAGs used.
        let resource = format!("{}/api/", self.server.base);
        let claims = authmd_dev::logout_claims(self.issuer(), sub, &resource, iat);
        let token = self.key.sign(&authmd_dev::logout_header(), &claims);
        self.server.request(
            "POST",
            "/agent/auth/revoke",
            &[("Content-Type", "application/logout+jwt")],
            token.as_bytes(),
        )
    }
}

fn bearer_ok(server: &TestServer, credential: &str) -> Value {
    let reply = server.get_with_token("/api/resource", credential);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[test]
fn every_algorithm_and_both_credential_types_register() {
    let keys = [
        SigningKey::generate(Alg::Es256, "es256"),
        SigningKey::generate(Alg::Es384, "es384"),
        SigningKey::generate(Alg::EdDsa, "eddsa"),
        SigningKey::from_pkcs8(Alg::Rs256, "rs256", RSA_PKCS8).unwrap(),
        SigningKey::from_pkcs8(Alg::Ps256, "ps256", RSA_PKCS8).unwrap(),
    ];
    let world = World::new();
    world
        .provider
        .publish(&keys.iter().collect::<Vec<_>>(), "public, max-age=3600");
    for (n, key) in keys.iter().enumerate() {
        for credential_type in ["access_token", "api_key"] {
            let claims = authmd_dev::id_jag_claims(world.issuer(), &format!("user{n}"), &world.server.base, now_secs());
            let token = key.sign(&authmd_dev::id_jag_header(), &claims);
            let reply = world.register(&token, credential_type);
            assert_eq!(
                reply.status,
                200,
                "{} {credential_type}: {}",
                key.alg.name(),
                reply.body
            );
            assert_eq!(reply.header("cache-control"), Some("no-store"));
            let body = reply.json();
            assert_eq!(body["registration_type"], "agent-provider");
            assert_eq!(body["credential_type"], credential_type);
            assert_eq!(body["scopes"], json!(["api.read", "api.write"]));
            assert!(body.get("refresh_token").is_none());
            let credential = body["credential"].as_str().unwrap();
            if credential_type == "access_token" {
                assert!(credential.starts_with("authmd_at_"));
                assert!(body["credential_expires"].as_str().unwrap().ends_with('Z'));
            } else {
                assert!(credential.starts_with("authmd_sk_"));
                assert_eq!(body["credential_expires"], Value::Null);
            }
            let me = bearer_ok(&world.server, credential);
            assert_eq!(me["registration_id"], body["registration_id"]);
            assert_eq!(me["status"], "active");
            assert!(me["user_id"].as_str().unwrap().starts_with("usr_"));
        }
    }
}

#[test]
fn one_registration_and_user_per_delegation_and_audit_carries_the_provider_fields() {
    let world = World::new();
    let first = world.register_ok("alice");
    let second = world.register_ok("alice");
    assert_eq!(first["registration_id"], second["registration_id"]);
    assert_ne!(first["credential"], second["credential"]);
    let (a, b) = (
        bearer_ok(&world.server, first["credential"].as_str().unwrap()),
        bearer_ok(&world.server, second["credential"].as_str().unwrap()),
    );
    assert_eq!(a["user_id"], b["user_id"]);
    let other = world.register_ok("bob");
    assert_ne!(other["registration_id"], first["registration_id"]);

    let audit = world.server.cli_ok(&["audit", "--json"]);
    let events: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |name: &str, id: &Value| {
        events
            .iter()
            .filter(|e| e["event"] == name && e["registration_id"] == *id)
            .count()
    };
    assert_eq!(of("registration.created", &first["registration_id"]), 1);
    assert_eq!(of("credential.issued", &first["registration_id"]), 2);
    let created = events
        .iter()
        .find(|e| e["event"] == "registration.created" && e["registration_id"] == first["registration_id"])
        .unwrap();
    assert_eq!(created["iss"], world.issuer());
    assert_eq!(created["sub"], "alice");
    assert_eq!(created["agent_platform"], "authmd-devprovider");
    assert_eq!(created["agent_context_id"], "ctx_dev");
    assert_eq!(created["registration_type"], "agent-provider");
    for secret in [&first["credential"], &second["credential"]] {
        assert!(!audit.contains(secret.as_str().unwrap()));
    }
}

#[test]
fn a_verified_email_matches_an_existing_user_and_jit_off_refuses_strangers() {
    let world = World::new();
    let added = world
        .server
        .cli_ok(&["users", "add", "Carol@Example.com", "--name", "Carol"]);
    let user_id = added.split_whitespace().next().unwrap().to_string();
    let mut claims = world.claims("provider-user-77");
    claims["email"] = json!("carol@EXAMPLE.com");
    let reply = world.register(&world.mint(&claims), "api_key");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        bearer_ok(&world.server, reply.json()["credential"].as_str().unwrap())["user_id"],
        user_id
    );

    world.server.set("jit_provisioning", "false");
    world
        .register(&world.mint(&world.claims("stranger")), "api_key")
        .assert_error(400, "user_not_provisioned");
    // A known user still gets in with JIT off.
    let mut claims = world.claims("provider-user-78");
    claims["email"] = json!("carol@example.com");
    assert_eq!(world.register(&world.mint(&claims), "api_key").status, 200);
}

#[test]
fn key_rotation_is_picked_up_through_one_refetch() {
    let world = World::new();
    world.register_ok("alice");
    let rotated = SigningKey::generate(Alg::Es256, "k2");
    world.provider.publish(&[&world.key, &rotated], "public, max-age=86400");
    let hits_before = world.provider.hits(authmd_dev::JWKS_PATH);
    let token = rotated.sign(&authmd_dev::id_jag_header(), &world.claims("alice"));
    let reply = world.register(&token, "access_token");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(world.provider.hits(authmd_dev::JWKS_PATH), hits_before + 1);
    // An unknown kid again within 30 s does not refetch again.
    let stranger = SigningKey::generate(Alg::Es256, "k3");
    let token = stranger.sign(&authmd_dev::id_jag_header(), &world.claims("alice"));
    world
        .register(&token, "access_token")
        .assert_error(400, "invalid_signature");
    assert_eq!(world.provider.hits(authmd_dev::JWKS_PATH), hits_before + 1);
}

#[test]
fn every_refusal_has_its_code() {
    let world = World::new();
    let base = world.server.base.clone();
    let check = |claims: Value, code: &str| {
        let reply = world.register(&world.mint(&claims), "access_token");
        reply.assert_error(400, code);
        reply
    };
    let mut c = world.claims("u");
    c["iss"] = json!("https://stranger.example");
    check(c, "invalid_issuer");
    let mut c = world.claims("u");
    c["aud"] = json!("https://someone-else.example");
    check(c, "invalid_audience");
    let mut c = world.claims("u");
    c["aud"] = json!([base, "https://someone-else.example"]);
    check(c, "invalid_audience");
    let mut c = world.claims("u");
    c["iat"] = json!(now_secs() - 1000);
    c["exp"] = json!(now_secs() - 500);
    check(c, "expired");
    let mut c = world.claims("u");
    c["email_verified"] = json!(false);
    check(c, "missing_verified_email");
    let mut c = world.claims("u");
    c["scope"] = json!("admin");
    check(c, "invalid_scope");
    let mut c = world.claims("u");
    c["client_id"] = json!("http://127.0.0.1:9/not-a-client");
    check(c, "invalid_client_id");
    let mut c = world.claims("u");
    c["exp"] = json!("tomorrow");
    check(c, "invalid_request");

    // Signature and shape.
    let token = world.mint(&world.claims("u"));
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    world
        .register(std::str::from_utf8(&tampered).unwrap(), "access_token")
        .assert_error(400, "invalid_signature");
    let reply = world.register("not.a.jwt", "access_token");
    reply.assert_error(400, "invalid_request");
    let logout = world.key.sign(&authmd_dev::logout_header(), &world.claims("u"));
    world
        .register(&logout, "access_token")
        .assert_error(400, "invalid_request");
    world
        .register(&token, "cookie")
        .assert_error(400, "unsupported_credential_type");
    let huge = format!("{}.{}.{}", "a".repeat(6000), "b".repeat(6000), "c".repeat(6000));
    world
        .register(&huge, "access_token")
        .assert_error(400, "invalid_request");

    // Replay.
    assert_eq!(world.register(&token, "access_token").status, 200);
    world
        .register(&token, "access_token")
        .assert_error(400, "replay_detected");

    // No message ever echoes the token.
    for reply in [
        world.register(&token, "access_token"),
        world.register(&logout, "access_token"),
    ] {
        assert!(!reply.body.contains(&token[20..60]) && !reply.body.contains(&logout[20..60]));
    }
    assert!(!world.server.stderr().contains(&token[..60]));

    // ID-JAG disabled altogether.
    world.server.set("id_jag_enabled", "false");
    world
        .register(&world.mint(&world.claims("u")), "access_token")
        .assert_error(400, "issuer_not_enabled");
}

#[test]
fn twenty_parallel_submissions_of_one_token_give_exactly_one_success() {
    let world = World::new();
    world.register_ok("warmup"); // the JWKS is cached, so all 20 race on the replay store
    let token = world.mint(&world.claims("racer"));
    let statuses: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    let reply = world.register(&token, "access_token");
                    (reply.status, reply.json()["error"].as_str().unwrap_or("").to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|(s, _)| *s == 200).count(), 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, e)| *s == 400 && e == "replay_detected"),
        "{statuses:?}"
    );
}

#[test]
fn replay_protection_survives_a_restart() {
    let mut world = World::new();
    let token = world.mint(&world.claims("alice"));
    assert_eq!(world.register(&token, "api_key").status, 200);
    world.server.restart();
    world.register(&token, "api_key").assert_error(400, "replay_detected");
}

#[test]
fn a_provider_that_is_down_gives_invalid_signature_quickly() {
    let server = TestServer::start();
    let key = SigningKey::generate(Alg::Es256, "k1");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    server.cli_ok(&["provider", "add", &issuer, "--offline"]);
    let claims = authmd_dev::id_jag_claims(&issuer, "alice", &server.base, now_secs());
    let token = key.sign(&authmd_dev::id_jag_header(), &claims);
    let started = Instant::now();
    let body = json!({"type":"identity_assertion","assertion_type":"urn:ietf:params:oauth:token-type:id-jag","assertion":token,"requested_credential_type":"api_key"});
    let reply = server.post_json("/agent/auth", &body.to_string());
    reply.assert_error(400, "invalid_signature");
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("could not be fetched"),
        "{}",
        reply.body
    );
    assert!(started.elapsed() < Duration::from_secs(6));
    // Other requests are not held up meanwhile.
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn client_id_metadata_documents_match_or_refuse() {
    let world = World::new();
    let jwks_uri = format!("{}{}", world.issuer(), authmd_dev::JWKS_PATH);
    let good = format!("{}/clients/good.json", world.issuer());
    world.provider.put(
        "/clients/good.json",
        json!({ "client_id": good, "jwks_uri": jwks_uri }),
        "max-age=600",
    );
    let wrong_keys = format!("{}/clients/wrong.json", world.issuer());
    world.provider.put(
        "/clients/wrong.json",
        json!({ "client_id": wrong_keys, "jwks_uri": "https://elsewhere.example/jwks" }),
        "max-age=600",
    );
    let wrong_name = format!("{}/clients/liar.json", world.issuer());
    world.provider.put(
        "/clients/liar.json",
        json!({ "client_id": good, "jwks_uri": jwks_uri }),
        "max-age=600",
    );

    let with_client = |client_id: &str| {
        let mut claims = world.claims("alice");
        claims["client_id"] = json!(client_id);
        world.register(&world.mint(&claims), "api_key")
    };
    assert_eq!(with_client(&good).status, 200);
    with_client(&wrong_keys).assert_error(400, "invalid_client_id");
    with_client(&wrong_name).assert_error(400, "invalid_client_id");
    with_client(&format!("{}/clients/missing.json", world.issuer())).assert_error(400, "invalid_client_id");

    // A pinned client_id must match exactly.
    world
        .server
        .cli_ok(&["provider", "add", world.issuer(), "--client-id", "agent-app-1"]);
    assert_eq!(with_client("agent-app-1").status, 200);
    with_client(world.issuer()).assert_error(400, "invalid_client_id");
}

#[test]
fn provider_revocation_end_to_end() {
    let world = World::new();
    let alice1 = world.register_ok("alice");
    let alice2 = world.register_ok("alice");
    let bob = world.register_ok("bob");
    let reply = world.revoke("alice", now_secs());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({ "revoked": 2 }));
    for reg in [&alice1, &alice2] {
        world
            .server
            .get_with_token("/api/resource", reg["credential"].as_str().unwrap())
            .assert_error(401, "invalid_token");
    }
    bearer_ok(&world.server, bob["credential"].as_str().unwrap());

    // An ID-JAG issued before the revocation is refused; a fresh one works.
    let mut stale = world.claims("alice");
    stale["iat"] = json!(now_secs() - 5);
    world
        .register(&world.mint(&stale), "access_token")
        .assert_error(400, "expired");
    let mut fresh = world.claims("alice");
    fresh["iat"] = json!(now_secs() + 2);
    let reply = world.register(&world.mint(&fresh), "access_token");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_ne!(
        reply.json()["registration_id"],
        alice1["registration_id"],
        "a new registration after revocation"
    );

    let events = world
        .server
        .cli_ok(&["audit", "--json", "--event", "registration.revoked"]);
    let event: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(event["by"], "provider");
    assert_eq!(event["iss"], world.issuer());
    assert_eq!(event["sub"], "alice");

    // The same logout token twice is a replay; a wrong media type is 415; an ID-JAG is not a logout token.
    let claims = authmd_dev::logout_claims(world.issuer(), "bob", &world.server.base, now_secs());
    let token = world.key.sign(&authmd_dev::logout_header(), &claims);
    let send = |token: &str, content_type: &str| {
        world.server.request(
            "POST",
            "/agent/auth/revoke",
            &[("Content-Type", content_type)],
            token.as_bytes(),
        )
    };
    assert_eq!(send(&token, "application/logout+jwt").status, 200);
    send(&token, "application/logout+jwt").assert_error(400, "replay_detected");
    send(&token, "application/json").assert_error(415, "unsupported_media_type");
    send(&world.mint(&world.claims("bob")), "application/logout+jwt").assert_error(400, "invalid_request");
}

/// Regression for issue 11: the revocation mark mixed clocks. An operator's
/// revocation was written in server seconds into the mark compared with the
/// provider's `iat`, so a provider whose clock runs behind had its fresh
/// assertions refused. Each mark now stays on its own clock.
#[test]
fn revocation_marks_keep_their_clocks() {
    let world = World::new();
    world.register_ok("alice");
    world
        .server
        .cli_ok(&["revoke", "--issuer", world.issuer(), "--subject", "alice"]);
    // The provider's clock runs 30 s behind this server's: what it mints now is fresh.
    let behind = now_secs() - 30;
    let at = |iat: i64| {
        let mut claims = world.claims("alice");
        claims["iat"] = json!(iat);
        world.register(&world.mint(&claims), "api_key")
    };
    let fresh = at(behind);
    assert_eq!(
        fresh.status, 200,
        "a fresh assertion after an operator revocation: {}",
        fresh.body
    );

    // The provider's own revocation is on its clock: what it issued before
    // the logout token is refused, what it issues after is accepted.
    let reply = world.revoke("alice", behind);
    assert_eq!(reply.status, 200, "{}", reply.body);
    at(behind - 1).assert_error(400, "expired");
    at(behind).assert_error(400, "expired");
    let after = at(behind + 1);
    assert_eq!(after.status, 200, "{}", after.body);
    assert_ne!(after.json()["registration_id"], fresh.json()["registration_id"]);
}

fn id_jag_body(token: &str) -> String {
    json!({
        "type": "identity_assertion",
        "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
        "assertion": token,
        "requested_credential_type": "api_key",
    })
    .to_string()
}

/// Issue 10 item 6: twenty concurrent ID-JAGs for a provider whose JWKS
/// hangs cost one fetch (not one each), and the failure is remembered, so
/// the next token costs none. The refusal names no URI; the log does.
#[test]
fn a_hanging_jwks_is_fetched_once_for_twenty_concurrent_tokens() {
    let server = TestServer::start();
    let stalled = StalledServer::start().unwrap();
    server.cli_ok(&["provider", "add", &stalled.base_url, "--offline"]);
    let key = SigningKey::generate(Alg::Es256, "k1");
    let body = |sub: &str| {
        let claims = authmd_dev::id_jag_claims(&stalled.base_url, sub, &server.base, now_secs());
        id_jag_body(&key.sign(&authmd_dev::id_jag_header(), &claims))
    };
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|n| {
                let body = body(&format!("user{n}"));
                let server = &server;
                scope.spawn(move || server.post_json("/agent/auth", &body))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let host = stalled.base_url.trim_start_matches("http://");
    // The fetcher and those waiting for it get the failure; the rest are
    // told at once to retry in a moment (they wait for nothing).
    for reply in &replies {
        match reply.status {
            503 => {
                reply.assert_error(503, "service_unavailable");
                assert_eq!(reply.header("retry-after"), Some("1"));
            }
            _ => reply.assert_error(400, "invalid_signature"),
        }
        assert!(!reply.body.contains(host), "{}", reply.body);
    }
    assert!(
        replies.iter().any(|r| r.status == 400),
        "the fetch's own failure was answered"
    );
    assert_eq!(stalled.connections(), 1, "one fetch for twenty requests");
    server
        .post_json("/agent/auth", &body("late"))
        .assert_error(400, "invalid_signature");
    assert_eq!(stalled.connections(), 1, "the failure is remembered");
    let jwks_uri = format!("{}{}", stalled.base_url, authmd_dev::JWKS_PATH);
    assert!(server.eventually(Duration::from_secs(5), || server.stderr().contains(&jwks_uri)));
}

/// Issue 10 item 9: a token's jti is recorded before its `client_id`
/// document is fetched, so one token makes authmd fetch at most once; the
/// refusal says what failed, the log says where and how.
#[test]
fn a_token_makes_authmd_fetch_its_client_id_document_at_most_once() {
    let world = World::new();
    let url = format!("{}/clients/missing.json?probe=1", world.issuer());
    let mut claims = world.claims("alice");
    claims["client_id"] = json!(url);
    let token = world.mint(&claims);
    let first = world.register(&token, "api_key");
    first.assert_error(400, "invalid_client_id");
    assert!(
        !first.body.contains("404") && !first.body.contains("/clients/missing.json"),
        "{}",
        first.body
    );
    for _ in 0..3 {
        world.register(&token, "api_key").assert_error(400, "replay_detected");
    }
    assert_eq!(world.provider.hits("/clients/missing.json"), 1);
    let logged = || world.server.stderr().contains("answered HTTP 404");
    assert!(world.server.eventually(Duration::from_secs(5), logged));
}

/// Issue 10 item 9: a `client_id` on a private or link-local address is
/// never connected to, and the refusal does not say how the attempt went.
#[test]
fn client_id_documents_on_private_addresses_are_refused_unfetched() {
    let world = World::new();
    let targets = [
        "https://169.254.169.254/latest/meta-data/?x=1",
        "https://10.0.0.1/client",
        "https://[fd00::1]/client",
        "https://[::ffff:192.168.1.1]/client",
    ];
    for target in targets {
        let mut claims = world.claims("alice");
        claims["client_id"] = json!(target);
        let reply = world.register(&world.mint(&claims), "api_key");
        reply.assert_error(400, "invalid_client_id");
        assert!(!reply.body.contains("public address"), "{}", reply.body);
    }
    // The access log line follows the response: wait for it, then count.
    let logged = || world.server.stderr().matches("which is not a public address").count();
    world
        .server
        .eventually(Duration::from_secs(5), || logged() >= targets.len());
    assert_eq!(logged(), targets.len(), "{}", world.server.stderr());
}

/// Issue 10 item 9: loopback providers are fetched only with
/// `--allow-loopback-fetch` (the tests' servers have it, as
/// AUTHMD_ALLOW_LOOPBACK_FETCH=true); without it nothing reaches them.
#[test]
fn without_the_development_flag_loopback_providers_are_not_fetched() {
    let server = TestServer::start_with(&[], &[("AUTHMD_ALLOW_LOOPBACK_FETCH", "false")]);
    let provider = JwksServer::start("127.0.0.1:0").unwrap();
    let key = SigningKey::generate(Alg::Es256, "k1");
    provider.publish(&[&key], "max-age=3600");
    // --offline: `provider add` would fetch once itself (issue 15); this
    // counts the server's fetches.
    server.cli_ok(&["provider", "add", &provider.base_url, "--offline"]);
    let claims = authmd_dev::id_jag_claims(&provider.base_url, "alice", &server.base, now_secs());
    let reply = server.post_json(
        "/agent/auth",
        &id_jag_body(&key.sign(&authmd_dev::id_jag_header(), &claims)),
    );
    reply.assert_error(400, "invalid_signature");
    assert!(!reply.body.contains("127.0.0.1"), "{}", reply.body);
    assert_eq!(provider.hits(authmd_dev::JWKS_PATH), 0);
    let logged = || server.stderr().contains("which is not a public address");
    assert!(server.eventually(Duration::from_secs(5), logged));
}

/// Regression for issue 10 (item 9): verified phone numbers were compared as
/// typed, so `+1 (415) 555-0100` and `+14155550100` were two users. They are
/// compared in E.164 now, and a number with no E.164 spelling is refused
/// rather than provisioned as a user nobody can match again.
#[test]
fn a_verified_phone_number_matches_however_it_is_written() {
    let world = World::new();
    let by_phone = |sub: &str, number: &str| {
        let mut claims = world.claims(sub);
        claims.as_object_mut().unwrap().remove("email");
        claims["email_verified"] = json!(false);
        claims["phone_number"] = json!(number);
        claims["phone_number_verified"] = json!(true);
        world.register(&world.mint(&claims), "api_key")
    };
    let user_of = |reply: Reply| {
        assert_eq!(reply.status, 200, "{}", reply.body);
        bearer_ok(&world.server, reply.json()["credential"].as_str().unwrap())["user_id"].clone()
    };
    let first = user_of(by_phone("phone-user-1", "+1 (415) 555-0100"));
    assert_eq!(user_of(by_phone("phone-user-2", "+14155550100")), first);
    assert_eq!(user_of(by_phone("phone-user-3", "+1.415.555.0100")), first);
    let users = world.server.cli_ok(&["users", "list"]);
    assert!(users.contains("+14155550100"), "{users}");
    assert_eq!(users.lines().filter(|l| l.contains("usr_")).count(), 1, "{users}");

    let refused = by_phone("phone-user-4", "(415) 555-0100");
    refused.assert_error(400, "invalid_request");
    assert!(
        refused.json()["message"].as_str().unwrap().contains("E.164"),
        "{}",
        refused.body
    );
    // With a verified email beside it, an odd number is ignored, not fatal.
    let mut claims = world.claims("phone-user-5");
    claims["phone_number"] = json!("ext. 12");
    claims["phone_number_verified"] = json!(true);
    assert_eq!(world.register(&world.mint(&claims), "api_key").status, 200);
}

/// SPEC-v0.7 11: a provider pushes a Security Event Token; the
/// assertion-revoked event revokes the delegation (202, empty), other
/// events change nothing, and refusals use RFC 8935's `{err, description}`.
#[test]
fn a_security_event_token_push_revokes_the_delegation() {
    let world = World::new();
    let alice = world.register_ok("alice");
    let bob = world.register_ok("bob");
    let push = |token: &str, content_type: &str| {
        world.server.request(
            "POST",
            "/agent/event/notify",
            &[("Content-Type", content_type)],
            token.as_bytes(),
        )
    };
    let set = |sub: &str, events: Value| {
        let claims = authmd_dev::secevent_claims(world.issuer(), sub, &world.server.base, now_secs(), events);
        world.key.sign(&authmd_dev::secevent_header(), &claims)
    };
    let refused = |reply: Reply, err: &str| {
        assert_eq!(reply.status, 400, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["err"], err, "{body}");
        assert!(body["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(body.get("error").is_none(), "RFC 8935's envelope: {body}");
    };

    // An event authmd does not act on is accepted and ignored.
    let other = set("bob", json!({ "https://schemas.example/other": {} }));
    assert_eq!(push(&other, "application/secevent+jwt").status, 202);
    bearer_ok(&world.server, bob["credential"].as_str().unwrap());

    let revoke = set("alice", json!({ authmd_dev::REVOKED_EVENT: {} }));
    let reply = push(&format!("  {revoke}\n"), "application/secevent+jwt; charset=utf-8");
    assert_eq!((reply.status, reply.body.as_str()), (202, ""));
    world
        .server
        .get_with_token("/api/resource", alice["credential"].as_str().unwrap())
        .assert_error(401, "invalid_token");
    bearer_ok(&world.server, bob["credential"].as_str().unwrap());
    let revoked = world.server.events("registration.revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["by"], "provider");
    assert_eq!(revoked[0]["sub"], "alice");
    assert_eq!(revoked[0]["iss"], world.issuer());
    // An ID-JAG issued before the push is refused as expired (v0.1 6).
    let mut old = world.claims("alice");
    old["iat"] = json!(now_secs() - 5);
    world
        .register(&world.mint(&old), "access_token")
        .assert_error(400, "expired");

    refused(push(&revoke, "application/secevent+jwt"), "invalid_request"); // replay
    refused(
        push(&set("bob", json!({ authmd_dev::REVOKED_EVENT: {} })), "application/jwt"),
        "invalid_request",
    );
    refused(
        push(&set("bob", json!({})), "application/secevent+jwt"),
        "invalid_request",
    );
    refused(push("not a token", "application/secevent+jwt"), "invalid_request");
    // `typ` alone decides: a logout token is not a SET, nor a SET a logout token.
    let logout = world.key.sign(
        &authmd_dev::logout_header(),
        &authmd_dev::logout_claims(world.issuer(), "bob", &world.server.base, now_secs()),
    );
    refused(push(&logout, "application/secevent+jwt"), "invalid_request");
    world
        .server
        .request(
            "POST",
            "/agent/auth/revoke",
            &[("Content-Type", "application/logout+jwt")],
            set("bob", json!({ authmd_dev::REVOKED_EVENT: {} })).as_bytes(),
        )
        .assert_error(400, "invalid_request");
    // Keys, issuer, audience and signature each have their code.
    let stranger = SigningKey::generate(Alg::Es256, "k-unknown");
    let claims = authmd_dev::secevent_claims(
        world.issuer(),
        "bob",
        &world.server.base,
        now_secs(),
        json!({ authmd_dev::REVOKED_EVENT: {} }),
    );
    refused(
        push(
            &stranger.sign(&authmd_dev::secevent_header(), &claims),
            "application/secevent+jwt",
        ),
        "invalid_key",
    );
    let impostor = SigningKey::generate(Alg::Es256, "k1");
    refused(
        push(
            &impostor.sign(&authmd_dev::secevent_header(), &claims),
            "application/secevent+jwt",
        ),
        "authentication_failed",
    );
    let mut elsewhere = claims.clone();
    elsewhere["aud"] = json!("https://elsewhere.example");
    refused(
        push(
            &world.key.sign(&authmd_dev::secevent_header(), &elsewhere),
            "application/secevent+jwt",
        ),
        "invalid_audience",
    );
    let mut unknown = claims.clone();
    unknown["iss"] = json!("https://unknown.example");
    refused(
        push(
            &world.key.sign(&authmd_dev::secevent_header(), &unknown),
            "application/secevent+jwt",
        ),
        "invalid_issuer",
    );
    bearer_ok(&world.server, bob["credential"].as_str().unwrap());
}

/// SPEC-v0.7 4.3 for `POST /agent/identity`.
fn identity(world: &World, token: &str) -> Reply {
    crate::common::identity_assertion(&world.server, token)
}

fn exchange(world: &World, assertion: &str) -> Value {
    let reply = world.server.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}").as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// The current generation's ID-JAG: a clean match (made now, or found in
/// either generation) gets a service assertion for the granted scopes; a
/// delegation has its own registration per generation, and a provider's
/// push revokes both.
#[test]
fn a_v0_7_id_jag_clean_match_gets_an_assertion_and_a_push_revokes_both_generations() {
    let world = World::new();
    let reply = identity(&world, &world.mint(&world.claims("carol")));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let carol = reply.json();
    assert_eq!(carol["type"], "identity_assertion");
    assert_eq!(carol["scopes"], json!(["api.read", "api.write"]));
    assert!(carol.get("claim").is_none());
    let assertion = carol["identity"]["assertion"].as_str().unwrap();
    let claims: Value = {
        use base64::Engine;
        let part = assertion.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(claims["email"], "carol@example.com", "the bound user's address");
    assert_eq!(claims["email_verified"], true);
    let token = exchange(&world, assertion);
    assert_eq!(token["scope"], "api.read api.write");
    bearer_ok(&world.server, token["access_token"].as_str().unwrap());
    // A fresh ID-JAG for the same delegation finds the same registration.
    let again = identity(&world, &world.mint(&world.claims("carol"))).json();
    assert_eq!(again["id"], carol["id"]);

    // A delegation linked in v0.1 is a clean match here, with a registration of its own.
    let v0_1 = world.register_ok("dave");
    let v0_7 = identity(&world, &world.mint(&world.claims("dave"))).json();
    assert_ne!(v0_7["id"], v0_1["registration_id"]);
    let access = exchange(&world, v0_7["identity"]["assertion"].as_str().unwrap());
    let access = access["access_token"].as_str().unwrap().to_string();
    let (old, new) = (
        bearer_ok(&world.server, v0_1["credential"].as_str().unwrap()),
        bearer_ok(&world.server, &access),
    );
    assert_eq!(old["user_id"], new["user_id"], "one person behind both");

    let claims = authmd_dev::secevent_claims(
        world.issuer(),
        "dave",
        &world.server.base,
        now_secs(),
        json!({ authmd_dev::REVOKED_EVENT: {} }),
    );
    let set = world.key.sign(&authmd_dev::secevent_header(), &claims);
    let pushed = world.server.request(
        "POST",
        "/agent/event/notify",
        &[("Content-Type", "application/secevent+jwt")],
        set.as_bytes(),
    );
    assert_eq!(pushed.status, 202, "{}", pushed.body);
    for credential in [v0_1["credential"].as_str().unwrap(), access.as_str()] {
        world
            .server
            .get_with_token("/api/resource", credential)
            .assert_error(401, "invalid_token");
    }
    assert_eq!(
        world.server.events("registration.revoked").len(),
        2,
        "one per registration"
    );
    bearer_ok(&world.server, token["access_token"].as_str().unwrap());
}

/// SPEC-v0.7 4.3: `auth_time` missing, too old or in the future is a 401
/// challenge, and a refused ID-JAG consumes nothing (its jti stays unused).
#[test]
fn a_stale_login_is_login_required_and_consumes_nothing() {
    let world = World::new();
    let mut claims = world.claims("frank");
    for auth_time in [
        json!(null),
        json!(now_secs() - 3600 - 61),
        json!(now_secs() + 61),
        json!("recently"),
    ] {
        claims["auth_time"] = auth_time;
        let reply = identity(&world, &world.mint(&claims));
        assert_eq!(reply.status, 401, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["error"], "login_required");
        assert_eq!(body["max_age"], 3600);
        assert_eq!(body["message"], body["error_description"]);
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with(r#"AgentAuth error="login_required", max_age="3600", error_description=""#),
            "{challenge}"
        );
    }
    // The same jti, now with a fresh login: accepted, so nothing was spent.
    claims["auth_time"] = json!(now_secs() - 3600 + 30);
    assert_eq!(identity(&world, &world.mint(&claims)).status, 200);
    identity(&world, &world.mint(&claims)).assert_error(400, "replay_detected");
    // v0.1 does not look at `auth_time` at all.
    let mut old = world.claims("frank");
    old["auth_time"] = json!(now_secs() - 100_000);
    assert_eq!(world.register(&world.mint(&old), "access_token").status, 200);
}

/// SPEC-v0.7 4.3: a v0.1 refusal keeps its code on v0.7 even when the
/// login is stale too. A `client_id` that can never be accepted was
/// answered `login_required`, sending the agent to make its person sign in
/// again for a token that would be refused anyway.
#[test]
fn a_bad_client_id_is_invalid_client_id_even_with_a_stale_login() {
    let world = World::new();
    let stale = |client_id: &str| {
        let mut claims = world.claims("hana");
        claims["client_id"] = json!(client_id);
        claims["auth_time"] = json!(null);
        identity(&world, &world.mint(&claims))
    };
    stale("agent-42").assert_error(400, "invalid_client_id");
    world
        .server
        .cli_ok(&["provider", "add", world.issuer(), "--client-id", "agent-app-1"]);
    stale(world.issuer()).assert_error(400, "invalid_client_id");
    // The pinned one, still with the stale login: only now is a login the trouble.
    assert_eq!(stale("agent-app-1").json()["error"], "login_required");
}

/// SPEC-v0.7 4.3: an ID-JAG whose verified email names an existing account
/// with no delegation is a first link: a 401 challenge with a claim block
/// pinned to that account; the person confirms, the agent completes, and
/// from then on the delegation is a clean match.
#[test]
fn a_first_link_is_bound_when_the_person_confirms() {
    let world = World::new();
    world.server.cli_ok(&["users", "add", "erin@example.com"]);
    let reply = identity(&world, &world.mint(&world.claims("erin")));
    assert_eq!(reply.status, 401, "{}", reply.body);
    let challenge = reply.header("www-authenticate").unwrap();
    assert_eq!(
        challenge,
        r#"AgentAuth error="interaction_required", error_description="ID-JAG matches existing account; user confirmation required to bind delegation""#
    );
    let first = reply.json();
    assert_eq!(first["error"], "interaction_required");
    assert_eq!(first["message"], first["error_description"]);
    assert_eq!(first["type"], "identity_assertion");
    assert_eq!(first["scopes"], json!({ "post_claim": ["api.read", "api.write"] }));
    assert!(
        first["claim"]["attempt"]["verification_uri"]
            .as_str()
            .unwrap()
            .contains("claim_attempt_token=cvt_")
    );

    // Asserted again while pending: the same registration, a new token; the old one is dead.
    let again = identity(&world, &world.mint(&world.claims("erin"))).json();
    assert_eq!(again["id"], first["id"]);
    let old_token = first["claim"]["token"].as_str().unwrap();
    let claim_token = again["claim"]["token"].as_str().unwrap();
    assert_ne!(old_token, claim_token);
    let complete = |token: &str, code: &str| {
        let body = json!({ "claim_token": token, "user_code": code });
        world
            .server
            .post_json("/agent/identity/claim/complete", &body.to_string())
    };
    complete(old_token, "123456").assert_error(400, "invalid_claim");
    // Only the matched account can take the link.
    let body = json!({ "type": "service_auth", "claim_token": claim_token, "login_hint": "mallory@example.com" });
    world
        .server
        .post_json("/agent/identity/claim", &body.to_string())
        .assert_error(409, "claimed_or_in_flight");

    let link = again["claim"]["attempt"]["verification_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(&world.server.base)
        .to_string();
    let token = link.split("claim_attempt_token=").nth(1).unwrap().to_string();
    let mut erin = crate::signin::sign_in(&world.server, "erin@example.com");
    let page = erin.get(&link);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("An AI agent from Dev Provider"), "{}", page.body);
    assert!(
        page.body
            .contains("This is the first time Dev Provider asks to act for you here.")
    );
    assert!(page.body.contains("This would be the first agent acting for you here."));
    let csrf = erin.csrf.clone();
    let shown = erin.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"));
    let at = shown.body.find(r#"id="user-code">"#).unwrap() + r#"id="user-code">"#.len();
    let code = shown.body[at..at + 6].to_string();
    let done = complete(claim_token, &code);
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    assert_eq!(done["id"], first["id"]);
    let token = exchange(&world, done["identity"]["assertion"].as_str().unwrap());
    assert_eq!(token["scope"], "api.read api.write");

    // Bound: the next ID-JAG is a clean match on the same registration.
    let clean = identity(&world, &world.mint(&world.claims("erin")));
    assert_eq!(clean.status, 200, "{}", clean.body);
    assert_eq!(clean.json()["id"], first["id"]);
}

/// Concurrent v0.7 ID-JAGs for one new delegation: one registration is
/// made, and every answer's assertion speaks for it (those signed before
/// the transaction for another id are signed again inside).
#[test]
fn concurrent_v0_7_id_jags_share_one_registration_and_every_assertion_exchanges() {
    let world = World::new();
    // Warm the provider's keys: a cold burst waits for one fetch, some with 503.
    world.register_ok("warm");
    let tokens: Vec<String> = (0..10).map(|_| world.mint(&world.claims("gina"))).collect();
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens.iter().map(|t| scope.spawn(|| identity(&world, t))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .map(|r| {
                assert_eq!(r.status, 200, "{}", r.body);
                r.json()
            })
            .collect()
    });
    let id = answers[0]["id"].clone();
    assert!(answers.iter().all(|a| a["id"] == id), "{answers:?}");
    for answer in &answers {
        let token = exchange(&world, answer["identity"]["assertion"].as_str().unwrap());
        assert_eq!(
            bearer_ok(&world.server, token["access_token"].as_str().unwrap())["registration_id"],
            id
        );
    }
    let created = world.server.events("registration.created");
    assert_eq!(
        created.iter().filter(|e| e["generation"] == "v0.7").count(),
        1,
        "{created:?}"
    );
}

/// SPEC-v0.7 11 and 4.3: a provider's push ends the delegation. A first
/// link still waiting for its person is revoked with it, and a fresh
/// ID-JAG afterwards finds no delegation: it matches the account again, as
/// a first link the person must confirm, on a new registration (v0.1, which
/// links a verified address without asking, links the same person again).
/// A logout token ends a delegation as a SET does.
#[test]
fn a_push_ends_the_delegation_and_a_fresh_id_jag_matches_again() {
    let world = World::new();
    let hana = identity(&world, &world.mint(&world.claims("hana")));
    assert_eq!(hana.status, 200, "{}", hana.body);
    let hana = hana.json();
    let hana_v0_1 = world.register_ok("hana");
    let hana_user = bearer_ok(&world.server, hana_v0_1["credential"].as_str().unwrap())["user_id"].clone();
    world.server.cli_ok(&["users", "add", "ivan@example.com"]);
    let waiting = identity(&world, &world.mint(&world.claims("ivan")));
    assert_eq!(waiting.status, 401, "{}", waiting.body);
    let waiting = waiting.json();
    let jo_v0_1 = world.register_ok("jo");

    for sub in ["hana", "ivan"] {
        let claims = authmd_dev::secevent_claims(
            world.issuer(),
            sub,
            &world.server.base,
            now_secs(),
            json!({ authmd_dev::REVOKED_EVENT: {} }),
        );
        let pushed = world.server.request(
            "POST",
            "/agent/event/notify",
            &[("Content-Type", "application/secevent+jwt")],
            world.key.sign(&authmd_dev::secevent_header(), &claims).as_bytes(),
        );
        assert_eq!(pushed.status, 202, "{}", pushed.body);
    }
    assert_eq!(world.revoke("jo", now_secs()).status, 200);
    let revoked: Vec<(Value, Value)> = world
        .server
        .events("registration.revoked")
        .into_iter()
        .map(|e| (e["registration_id"].clone(), e["sub"].clone()))
        .collect();
    for (registration, sub) in [
        (&hana["id"], "hana"),
        (&hana_v0_1["registration_id"], "hana"),
        (&waiting["id"], "ivan"),
        (&jo_v0_1["registration_id"], "jo"),
    ] {
        assert!(
            revoked.contains(&(registration.clone(), json!(sub))),
            "{registration} not revoked: {revoked:?}"
        );
    }
    let body = json!({ "claim_token": waiting["claim"]["token"], "user_code": "123456" });
    world
        .server
        .post_json("/agent/identity/claim/complete", &body.to_string())
        .assert_error(410, "claim_expired");

    // Issued after the pushes (an iat at the push's own second is refused).
    let fresh = |sub: &str| {
        let mut claims = world.claims(sub);
        claims["iat"] = json!(now_secs() + 2);
        world.mint(&claims)
    };
    for (sub, before) in [("hana", &hana["id"]), ("ivan", &waiting["id"]), ("jo", &json!(null))] {
        let again = identity(&world, &fresh(sub));
        assert_eq!(again.status, 401, "{sub}: {}", again.body);
        let again = again.json();
        assert_eq!(again["error"], "interaction_required", "{sub}: {again}");
        assert_ne!(&again["id"], before, "{sub}: a revoked registration is never revived");
    }
    let v0_1 = world.register(&fresh("hana"), "access_token");
    assert_eq!(v0_1.status, 200, "{}", v0_1.body);
    let v0_1 = v0_1.json();
    assert_ne!(v0_1["registration_id"], hana_v0_1["registration_id"]);
    assert_eq!(
        bearer_ok(&world.server, v0_1["credential"].as_str().unwrap())["user_id"],
        hana_user,
        "v0.1 links the same person again"
    );
}
