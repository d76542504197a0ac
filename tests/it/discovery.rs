//! SPEC.md section 2 against the real server: every discovery document,
//! field by field, consistent with each other and with the live settings.

use std::time::Duration;

use crate::common::{Client, TestServer};
use serde_json::json;

#[test]
fn protected_resource_metadata_field_by_field() {
    let server = TestServer::start();
    let base = &server.base;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/api/",
        "/.well-known/oauth-protected-resource/api",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
        assert!(reply.header("content-type").unwrap().starts_with("application/json"));
        let prm = reply.json();
        assert_eq!(prm["resource"], format!("{base}/api/"));
        assert_eq!(prm["resource_name"], "API");
        assert_eq!(prm["authorization_servers"], json!([base]));
        assert_eq!(prm["scopes_supported"], json!(["api.read", "api.write"]));
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
        assert!(prm.get("resource_logo_uri").is_none(), "unset logo is left out");
    }
    assert_eq!(
        server.get("/.well-known/oauth-protected-resource/elsewhere").status,
        404
    );
}

#[test]
fn authorization_server_metadata_field_by_field_and_consistent_with_prm() {
    let server = TestServer::start();
    let base = &server.base;
    let reply = server.get("/.well-known/oauth-authorization-server");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    let asm = reply.json();
    assert_eq!(asm["issuer"], *base);
    let agent_auth = &asm["agent_auth"];
    assert_eq!(agent_auth["skill"], format!("{base}/auth.md"));
    assert_eq!(agent_auth["register_uri"], format!("{base}/agent/auth"));
    assert_eq!(agent_auth["claim_uri"], format!("{base}/agent/auth/claim"));
    assert_eq!(agent_auth["revocation_uri"], format!("{base}/agent/auth/revoke"));
    assert_eq!(
        agent_auth["identity_types_supported"],
        json!(["anonymous", "identity_assertion", "service_auth"])
    );
    assert_eq!(agent_auth["identity_endpoint"], format!("{base}/agent/identity"));
    assert_eq!(agent_auth["claim_endpoint"], format!("{base}/agent/identity/claim"));
    assert_eq!(agent_auth["events_endpoint"], format!("{base}/agent/event/notify"));
    assert_eq!(asm["token_endpoint"], format!("{base}/oauth2/token"));
    assert_eq!(
        agent_auth["identity_assertion"]["assertion_types_supported"],
        json!(["urn:ietf:params:oauth:token-type:id-jag", "verified_email"])
    );
    assert_eq!(
        agent_auth["identity_assertion"]["credential_types_supported"],
        json!(["access_token", "api_key"])
    );
    assert_eq!(
        agent_auth["events_supported"],
        json!(["https://schemas.workos.com/events/agent/auth/identity/assertion/revoked"])
    );
    assert_eq!(
        agent_auth["anonymous"]["credential_types_supported"],
        json!(["api_key"])
    );

    let prm = server.get("/.well-known/oauth-protected-resource").json();
    for field in [
        "resource",
        "authorization_servers",
        "scopes_supported",
        "bearer_methods_supported",
    ] {
        assert_eq!(asm[field], prm[field], "{field} restated identically");
    }
    // The issuer named by the resource is the one serving this metadata.
    assert_eq!(prm["authorization_servers"][0], asm["issuer"]);
    // Every URL is absolute and of this deployment.
    for url in [
        &agent_auth["skill"],
        &agent_auth["register_uri"],
        &agent_auth["claim_uri"],
        &prm["resource"],
    ] {
        assert!(url.as_str().unwrap().starts_with(base.as_str()), "{url}");
    }
}

#[test]
fn auth_md_is_markdown_with_this_deployments_urls() {
    let server = TestServer::start();
    let reply = server.get("/auth.md");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/markdown; charset=utf-8"));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    let md = reply.body;
    assert!(md.contains(&format!("POST {}/agent/auth", server.base)), "{md}");
    assert!(md.contains(&format!("{}/.well-known/oauth-protected-resource/api/", server.base)));
    assert!(md.contains(r#"{"type":"anonymous","requested_credential_type":"api_key"}"#));
    assert!(md.contains("`api.read`") && md.contains("`api.write`"));
    assert!(md.contains("| 429 | `rate_limited` |"), "error table");
    assert!(!md.contains("example.com/agent"), "no placeholder URLs");
    assert_eq!(
        server.request("HEAD", "/auth.md", &[], b"").body,
        "",
        "HEAD has no body"
    );
}

#[test]
fn discovery_follows_settings_changed_while_running() {
    let server = TestServer::start();
    server.cli_ok(&["config", "set", "resource_name", "Hobby Notes"]);
    server.cli_ok(&["config", "set", "scopes_supported", "api.read api.write notes.admin"]);
    // The running server reloads settings within 2 seconds.
    assert!(server.eventually(Duration::from_secs(3), || {
        server.get("/auth.md").body.starts_with("# Agent access to Hobby Notes")
    }));
    let prm = server.get("/.well-known/oauth-protected-resource").json();
    assert_eq!(prm["resource_name"], "Hobby Notes");
    assert_eq!(prm["scopes_supported"], json!(["api.read", "api.write", "notes.admin"]));
    assert!(server.get("/auth.md").body.contains("`notes.admin`"));

    // A disabled flow leaves every document and its endpoint refuses.
    server.cli_ok(&["config", "set", "anonymous_enabled", "false"]);
    assert!(server.eventually(Duration::from_secs(3), || {
        server.get("/.well-known/oauth-authorization-server").json()["agent_auth"]["identity_types_supported"]
            == json!(["identity_assertion", "service_auth"])
    }));
    assert!(!server.get("/auth.md").body.contains(r#""type":"anonymous""#));
    server
        .post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
        .assert_error(400, "anonymous_not_enabled");
}

#[test]
fn an_operator_file_replaces_the_rendered_auth_md() {
    let server = TestServer::start();
    let path = server.dir.path().join("custom-auth.md");
    std::fs::write(&path, "# Our own agent instructions\n").unwrap();
    server.cli_ok(&["config", "set", "auth_md_path", path.to_str().unwrap()]);
    assert!(server.eventually(Duration::from_secs(3), || server.get("/auth.md").body
        == "# Our own agent instructions\n"));
    assert_eq!(
        server.get("/auth.md").header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
}

#[test]
fn a_configured_base_url_and_resource_are_used_everywhere() {
    let mut server = TestServer::start_with(&["--base-url", "https://api.example.net/"], &[]);
    assert_eq!(server.base, "https://api.example.net");
    // The test talks to the socket; the documents speak of the public URL.
    server.base = format!("http://{}", server.listening_addr());
    let asm = server.get("/.well-known/oauth-authorization-server").json();
    assert_eq!(asm["issuer"], "https://api.example.net");
    assert_eq!(asm["resource"], "https://api.example.net/api/");
    let challenge = server.get("/api/x");
    assert_eq!(
        challenge.header("www-authenticate"),
        Some(r#"Bearer resource_metadata="https://api.example.net/.well-known/oauth-protected-resource/api/""#)
    );
}

/// SPEC-v0.7 1: a generation switched off answers 404 at its places and
/// leaves discovery; what it issued keeps working on the guarded API.
#[test]
fn a_generation_switched_off_answers_404_and_leaves_discovery() {
    let server = crate::common::InProcess::start();
    let registered = server
        .post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
        .json();
    let key = registered["credential"].as_str().unwrap().to_string();
    assert_eq!(server.get("/.well-known/jwks.json").status, 200);

    server.set("v0_1_enabled", "false");
    server
        .post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
        .assert_error(404, "not_found");
    server
        .post_json("/agent/auth/claim", r#"{"claim_token":"x","email":"a@example.com"}"#)
        .assert_error(404, "not_found");
    let asm = server.get("/.well-known/oauth-authorization-server").json();
    assert!(asm["agent_auth"].get("register_uri").is_none(), "{asm}");
    assert_eq!(
        server.get_with_token("/api/resource", &key).status,
        200,
        "disabling revokes nothing"
    );

    server.set("v0_7_enabled", "false");
    server.get("/.well-known/jwks.json").assert_error(404, "not_found");
    let asm = server.get("/.well-known/oauth-authorization-server").json();
    assert!(asm.get("jwks_uri").is_none(), "{asm}");
    assert_eq!(asm["agent_auth"]["identity_types_supported"], json!([]));

    server.set("v0_1_enabled", "true");
    assert_eq!(
        server
            .post_json(
                "/agent/auth",
                r#"{"type":"anonymous","requested_credential_type":"api_key"}"#
            )
            .status,
        200
    );
}
