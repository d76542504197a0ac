//! SPEC.md 3.1 and 7, end to end against the real server: an agent
//! discovers, registers anonymously, and calls the API with its key.

use std::time::Duration;

use crate::common;
use crate::common::{Client, InProcess, TestServer};
use serde_json::{Value, json};

#[test]
fn the_anonymous_flow_end_to_end() {
    let server = TestServer::start();
    let base = server.base.clone();

    // 1. The API refuses an unauthenticated call and says where to look.
    let challenge = server.get("/api/resource");
    challenge.assert_error(401, "invalid_token");
    let expected_metadata = format!("{base}/.well-known/oauth-protected-resource/api/");
    assert_eq!(
        challenge.header("www-authenticate"),
        Some(format!("Bearer resource_metadata=\"{expected_metadata}\"").as_str()),
        "no error attribute when no token was presented"
    );

    // 2. Discovery leads to the registration endpoint.
    let prm = server.get(expected_metadata.trim_start_matches(&base)).json();
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_string();
    let asm = server
        .get(&format!(
            "{}/.well-known/oauth-authorization-server",
            issuer.trim_start_matches(&base)
        ))
        .json();
    assert_eq!(asm["agent_auth"]["register_uri"], format!("{base}/agent/auth"));

    // 3. Register.
    let reply = server.post_json(
        "/agent/auth",
        r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reg = reply.json();
    let id = reg["registration_id"].as_str().unwrap();
    assert!(id.starts_with("reg_"));
    assert_eq!(reg["registration_type"], "anonymous");
    assert_eq!(reg["credential_type"], "api_key");
    assert_eq!(reg["credential_expires"], Value::Null);
    assert_eq!(reg["scopes"], json!(["api.read"]));
    assert_eq!(reg["post_claim_scopes"], json!(["api.read", "api.write"]));
    assert_eq!(reg["claim_url"], format!("{base}/agent/auth/claim"));
    let key = reg["credential"].as_str().unwrap();
    assert!(key.starts_with("authmd_sk_") && key.len() >= 10 + 43);
    let claim_token = reg["claim_token"].as_str().unwrap();
    assert!(claim_token.starts_with("clm_") && claim_token.len() >= 4 + 22);
    let expires = reg["claim_token_expires"].as_str().unwrap();
    assert!(
        expires.len() == 24 && expires.ends_with('Z') && expires.as_bytes()[19] == b'.',
        "RFC 3339 with ms: {expires}"
    );

    // 4. The key works, with its scopes.
    let me = server.get_with_token("/api/resource", key);
    assert_eq!(me.status, 200, "{}", me.body);
    let me = me.json();
    assert_eq!(me["registration_id"], id);
    assert_eq!(me["status"], "unclaimed");
    assert_eq!(me["scopes"], json!(["api.read"]));
    assert_eq!(me["credential_type"], "api_key");
    assert_eq!(me["user_id"], Value::Null);
    assert_eq!(server.get_with_token("/api/deeper/path?x=1", key).status, 200);

    // 5. A bad token gets the challenge with error="invalid_token".
    for bad in [
        format!("{key}x"),
        "authmd_sk_nonsense".to_string(),
        // The last character changed (to one it is not).
        format!(
            "{}{}",
            &key[..key.len() - 1],
            if key.ends_with('A') { 'B' } else { 'A' }
        ),
    ] {
        let reply = server.get_with_token("/api/resource", &bad);
        reply.assert_error(401, "invalid_token");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(format!("Bearer resource_metadata=\"{expected_metadata}\", error=\"invalid_token\"").as_str())
        );
        assert!(!reply.body.contains(&bad), "a refused token is not echoed");
    }

    // 6. The audit log has the event, and no secret reached it or the log.
    let audit = server.cli_ok(&["audit", "--json", "--event", "registration.created"]);
    let event: Value = serde_json::from_str(audit.lines().next().expect("one event")).unwrap();
    assert_eq!(event["registration_id"], id);
    assert_eq!(event["registration_type"], "anonymous");
    assert_eq!(event["client_ip"], "127.0.0.1");
    let everything = server.cli_ok(&["audit", "--json"]) + &server.stderr();
    for secret in [key, claim_token] {
        assert!(!everything.contains(secret), "a secret reached the audit log or stderr");
    }
    if common::sqlite_only("the file's bytes are searched for the secrets") {
        return;
    }
    let db = std::fs::read(server.db()).unwrap();
    let wal = std::fs::read(server.db().with_extension("db-wal")).unwrap_or_default();
    for secret in [key, claim_token] {
        let needle = secret.as_bytes();
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "a secret is stored in plaintext"
        );
        assert!(
            !wal.windows(needle.len()).any(|w| w == needle),
            "a secret is stored in plaintext (WAL)"
        );
    }
}

#[test]
fn a_key_without_the_read_scope_gets_403_insufficient_scope() {
    let server = TestServer::start();
    server.cli_ok(&["config", "set", "scopes_supported", "api.read api.write basic"]);
    server.cli_ok(&["config", "set", "pre_claim_scopes", "basic"]);
    assert!(
        server.eventually(Duration::from_secs(3), || server.register_anonymous()["scopes"]
            == json!(["basic"]))
    );
    let key = server.register_anonymous()["credential"].as_str().unwrap().to_string();
    let reply = server.get_with_token("/api/resource", &key);
    reply.assert_error(403, "insufficient_scope");
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope", scope="api.read""#),
        "{challenge}"
    );
}

#[test]
fn restart_on_the_same_file_keeps_registrations_and_keys() {
    let mut server = TestServer::start();
    let reg = server.register_anonymous();
    let key = reg["credential"].as_str().unwrap().to_string();
    server.restart();
    let me = server.get_with_token("/api/resource", &key);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["registration_id"], reg["registration_id"]);
    let listed = server.cli_ok(&["registrations", "list", "--json"]);
    assert!(listed.contains(reg["registration_id"].as_str().unwrap()));
}

#[test]
fn an_unclaimed_registration_stops_working_after_its_ttl() {
    let server = InProcess::start();
    server.set("registration_ttl_secs", "60");
    let reg = server.register_anonymous();
    let key = reg["credential"].as_str().unwrap();
    server.advance(Duration::from_secs(59));
    assert_eq!(server.get_with_token("/api/resource", key).status, 200);
    server.advance(Duration::from_secs(1));
    server
        .get_with_token("/api/resource", key)
        .assert_error(401, "invalid_token");
}

#[test]
fn operator_revocation_of_one_and_of_all() {
    let server = TestServer::start();
    let (a, b, c) = (
        server.register_anonymous(),
        server.register_anonymous(),
        server.register_anonymous(),
    );
    let key = |reg: &Value| reg["credential"].as_str().unwrap().to_string();
    let id = |reg: &Value| reg["registration_id"].as_str().unwrap().to_string();

    let out = server.cli_ok(&["revoke", "--registration", &id(&a)]);
    assert!(out.contains("revoked 1"), "{out}");
    server
        .get_with_token("/api/resource", &key(&a))
        .assert_error(401, "invalid_token");
    assert_eq!(server.get_with_token("/api/resource", &key(&b)).status, 200);
    let again = server.cli(&["revoke", "--registration", &id(&a)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    assert!(!server.cli(&["revoke", "--registration", "reg_nope"]).status.success());

    let out = server.cli_ok(&["revoke", "--all", "--yes"]);
    assert!(out.contains("revoked 2 registrations"), "{out}");
    for reg in [&b, &c] {
        server
            .get_with_token("/api/resource", &key(reg))
            .assert_error(401, "invalid_token");
    }
    let events = server.cli_ok(&["audit", "--json", "--event", "registration.revoked"]);
    let events: Vec<Value> = events.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 3, "one event per registration revoked");
    assert!(events.iter().all(|e| e["by"] == "operator"));
    let revoked = server.cli_ok(&["registrations", "list", "--status", "revoked", "--json"]);
    assert_eq!(revoked.lines().count(), 3);
    assert_eq!(
        server.cli_ok(&["registrations", "list", "--status", "unclaimed", "--json"]),
        ""
    );
}

/// Issue 11: the library's `Guard` takes the clock, like the server, so
/// expiry is decided by the instant it is given (here, one moved by hand).
#[test]
fn the_library_guard_decides_expiry_on_its_clock() {
    let server = InProcess::start();
    server.set("registration_ttl_secs", "60");
    let key = server.register_anonymous()["credential"].as_str().unwrap().to_string();
    let guard = authmd::Guard::open_with_clock(&server.db(), &server.base, server.clock.clone()).unwrap();
    let bearer = format!("Bearer {key}");
    assert!(guard.check(Some(&bearer), "api.read").is_ok());
    server.advance(Duration::from_secs(60));
    let refused = guard.check(Some(&bearer), "api.read").unwrap_err();
    assert_eq!(refused.status, 401, "{}", refused.body);
}

/// Issued secrets are stored under their time and then their hash, so each
/// new key lands at the end of its index; a database from before they
/// carried their time keeps them under the plain SHA-256, and such an API
/// key and claim token still work (the rows are rewritten to that form).
#[test]
fn secrets_stored_under_their_plain_hash_still_work() {
    let server = TestServer::start();
    let reply = server.post_json(
        "/agent/auth",
        r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let registered = reply.json();
    let key = registered["credential"].as_str().unwrap().to_string();
    let claim_token = registered["claim_token"].as_str().unwrap().to_string();

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (table, column, secret) in [
        ("credentials", "token_hash", &key),
        ("registrations", "claim_token_hash", &claim_token),
    ] {
        let stored = common::rows(&server, &format!("SELECT {column} AS stored FROM {table}"));
        let stored = unhex(stored[0]["stored"].as_str().unwrap());
        let made = u64::from_be_bytes(stored[..8].try_into().unwrap());
        assert!(
            made <= now_ms && now_ms - made < 60_000,
            "{table}: keyed by when it was made"
        );
        assert_eq!(
            stored[8..],
            authmd::internals::hash(secret)[..24],
            "{table}: then by its hash"
        );
        let plain = authmd::internals::hash(secret);
        common::execute(
            &server,
            &format!("UPDATE {table} SET {column} = {}", common::blob(&plain)),
        );
    }

    assert_eq!(server.get_with_token("/api/resource", &key).status, 200);
    let reply = server.post_json(
        "/agent/auth/claim",
        &json!({ "claim_token": claim_token, "email": "alice@example.com" }).to_string(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
