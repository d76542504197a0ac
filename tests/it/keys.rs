//! The keys that sign authmd's own assertions (SPEC-v0.7 2.4, 5.3): made on
//! first start, published at /.well-known/jwks.json (current first, public
//! members only), rotated by `authmd keys rotate` with the old key still
//! published, and never shown: not by the CLI, not in the server's log.

use serde_json::Value;

use crate::common;
use crate::common::{Client, TestServer};

fn kids(server: &TestServer) -> Vec<String> {
    let reply = server.get("/.well-known/jwks.json");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    let doc = reply.json();
    let keys = doc["keys"].as_array().unwrap();
    for key in keys {
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["x"].as_str().unwrap().len(), 43);
        assert_eq!(key["y"].as_str().unwrap().len(), 43);
        let members: Vec<&String> = key.as_object().unwrap().keys().collect();
        assert_eq!(members.len(), 7, "public members only: {members:?}");
    }
    keys.iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

/// The private keys as the database holds them, in every form a leak could take.
fn private_forms(server: &TestServer) -> Vec<String> {
    let keys: Vec<Vec<u8>> = common::rows(server, "SELECT pkcs8 FROM signing_keys")
        .iter()
        .map(|r| {
            let hex = r["pkcs8"].as_str().unwrap();
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect();
    keys.iter()
        .flat_map(|k| {
            use base64::Engine;
            [
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k),
                base64::engine::general_purpose::STANDARD.encode(k),
                k.iter().map(|b| format!("{b:02x}")).collect(),
            ]
        })
        .collect()
}

#[test]
fn the_first_start_makes_a_key_rotation_keeps_the_old_one_published_and_nothing_shows_them() {
    let mut server = TestServer::start();
    let first = kids(&server);
    assert_eq!(first.len(), 1, "one key from the first start");

    let listed: Vec<Value> = server
        .cli_ok(&["keys", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["kid"], first[0].as_str());
    assert_eq!(listed[0]["state"], "current");
    assert!(listed[0]["retired_at"].is_null());

    let rotated = server.cli_ok(&["keys", "rotate"]);
    let now = kids(&server);
    assert_eq!(now.len(), 2);
    assert_eq!(
        now[1], first[0],
        "the retired key stays published, after the current one"
    );
    assert!(rotated.starts_with(&now[0]), "{rotated}");
    assert!(rotated.contains(&format!("{} retired", first[0])), "{rotated}");

    let events = server.events("signing_key.rotated");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kid"], now[0].as_str());
    assert_eq!(events[0]["retired_kid"], first[0].as_str());

    // A restart keeps the keys (no new one is made while one is current).
    server.restart();
    assert_eq!(kids(&server), now);

    let text = server.cli_ok(&["keys", "list"]);
    assert!(text.contains("current") && text.contains("retired"), "{text}");
    let shown = [
        text,
        server.cli_ok(&["keys", "list", "--json"]),
        server.cli_ok(&["audit", "--json"]),
        rotated,
        server.stderr(),
    ]
    .join("\n");
    for private in private_forms(&server) {
        assert!(!shown.contains(&private), "a private key was shown");
    }
}
