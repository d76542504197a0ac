//! Guarding an API: the gateway in front of a real upstream HTTP server on
//! loopback, introspection (RFC 7662) and self-revocation (RFC 7009).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{Client, InProcess, TestServer};
use serde_json::{Value, json};

/// An upstream that answers `/api/echo...` with what it received, `/api/big`
/// with 4 MiB, and `/api/slow` after 5 s.
struct Upstream {
    base: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const BIG: usize = 4 * 1024 * 1024;

impl Upstream {
    fn start() -> Upstream {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let base = format!("http://{}", server.server_addr().to_ip().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let server = Arc::new(server);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                std::thread::spawn(move || {
                    let url = request.url().to_string();
                    if url.starts_with("/api/slow") {
                        std::thread::sleep(Duration::from_secs(5));
                    }
                    if url.starts_with("/api/big") {
                        let body: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
                        let response =
                            tiny_http::Response::new(tiny_http::StatusCode(200), vec![], &body[..], None, None);
                        let _ = request.respond(response);
                        return;
                    }
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    let headers: Vec<(String, String)> = request
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect();
                    let echo =
                        json!({ "method": request.method().as_str(), "url": url, "headers": headers, "body": body });
                    let response = tiny_http::Response::from_string(echo.to_string())
                        .with_status_code(if url.contains("status=418") { 418 } else { 200 })
                        .with_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap())
                        .with_header(tiny_http::Header::from_bytes("X-Upstream", "yes").unwrap());
                    let _ = request.respond(response);
                });
            }
        });
        Upstream {
            base,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == name)
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

fn claimed_key(server: &TestServer) -> (Value, String) {
    // Scopes api.read + api.write right away: the pre-claim scopes raised for this test.
    server.cli_ok(&["config", "set", "pre_claim_scopes", "api.read api.write"]);
    assert!(
        server.eventually(Duration::from_secs(3), || server.register_anonymous()["scopes"]
            == json!(["api.read", "api.write"]))
    );
    let reg = server.register_anonymous();
    let key = reg["credential"].as_str().unwrap().to_string();
    (reg, key)
}

#[test]
fn requests_round_trip_with_headers_added_and_removed() {
    let upstream = Upstream::start();
    let server = TestServer::start_with(&["--upstream", &upstream.base], &[]);
    let (reg, key) = claimed_key(&server);
    let reply = server.request(
        "POST",
        "/api/echo/items?q=1&r=two",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("X-Authmd-User-Id", "usr_spoofed"),
            ("X-Authmd-Scopes", "admin"),
            ("Content-Type", "text/plain"),
            ("X-Custom", "kept"),
        ],
        b"hello upstream",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("x-upstream"), Some("yes"), "upstream headers come back");
    let echo = reply.json();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["url"], "/api/echo/items?q=1&r=two");
    assert_eq!(echo["body"], "hello upstream");
    assert!(
        header(&echo, "authorization").is_empty(),
        "the credential never reaches the upstream"
    );
    assert!(
        header(&echo, "x-authmd-user-id").is_empty(),
        "no user yet, and the spoofed one is gone"
    );
    assert_eq!(header(&echo, "x-authmd-scopes"), ["api.read api.write"]);
    assert_eq!(
        header(&echo, "x-authmd-registration-id"),
        [reg["registration_id"].as_str().unwrap()]
    );
    assert_eq!(header(&echo, "x-authmd-credential-type"), ["api_key"]);
    assert_eq!(header(&echo, "x-custom"), ["kept"]);
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "GET"] {
        let reply = server.request(method, "/api/echo", &[("Authorization", &format!("Bearer {key}"))], b"");
        assert_eq!(reply.status, 200, "{method}");
        assert_eq!(reply.json()["method"], method);
    }
    let teapot = server.get_with_token("/api/echo?status=418", &key);
    assert_eq!(teapot.status, 418, "upstream statuses pass through");
    // Paths outside the resource path are authmd's own.
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/auth.md").status, 200);
}

#[test]
fn scopes_are_checked_per_method_and_unauthenticated_calls_never_reach_the_upstream() {
    let upstream = Upstream::start();
    let server = TestServer::start_with(&["--upstream", &upstream.base], &[]);
    let key = server.register_anonymous()["credential"].as_str().unwrap().to_string(); // api.read only
    assert_eq!(server.get_with_token("/api/echo", &key).status, 200);
    let refused = server.request(
        "POST",
        "/api/echo",
        &[("Authorization", &format!("Bearer {key}"))],
        b"x",
    );
    refused.assert_error(403, "insufficient_scope");
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .contains("scope=\"api.write\"")
    );
    server
        .request("DELETE", "/api/echo", &[], b"")
        .assert_error(401, "invalid_token");
}

#[test]
fn large_responses_stream_and_large_bodies_are_refused_before_forwarding() {
    let upstream = Upstream::start();
    let server = TestServer::start_with(&["--upstream", &upstream.base], &[]);
    let (_, key) = claimed_key(&server);
    let big = server.get_with_token("/api/big", &key);
    assert_eq!(big.status, 200);
    assert_eq!(
        big.header("transfer-encoding"),
        Some("chunked"),
        "streamed, not buffered whole"
    );
    assert_eq!(
        big.body.len(),
        String::from_utf8_lossy(&(0..BIG).map(|i| (i % 251) as u8).collect::<Vec<_>>()).len()
    );

    server.set("gateway_max_body_bytes", "1000");
    let body = vec![b'a'; 1001];
    server
        .request(
            "POST",
            "/api/echo",
            &[("Authorization", &format!("Bearer {key}"))],
            &body,
        )
        .assert_error(413, "request_too_large");
    let ok = server.request(
        "POST",
        "/api/echo",
        &[("Authorization", &format!("Bearer {key}"))],
        &body[..1000],
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["body"].as_str().unwrap().len(), 1000);
}

#[test]
fn an_unavailable_upstream_is_502_and_a_slow_one_504_quickly() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = TestServer::start_with(&["--upstream", &dead], &[]);
    let key = server.register_anonymous()["credential"].as_str().unwrap().to_string();
    let started = Instant::now();
    server
        .get_with_token("/api/echo", &key)
        .assert_error(502, "upstream_unavailable");
    assert!(started.elapsed() < Duration::from_secs(3));

    let upstream = Upstream::start();
    let server = TestServer::start_with(&["--upstream", &upstream.base], &[]);
    server.set("upstream_timeout_secs", "1");
    let key = server.register_anonymous()["credential"].as_str().unwrap().to_string();
    let started = Instant::now();
    server
        .get_with_token("/api/slow", &key)
        .assert_error(504, "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}

fn introspect(server: &impl Client, secret: &str, token: &str) -> crate::common::Reply {
    server.request(
        "POST",
        "/oauth/introspect",
        &[
            ("Authorization", &format!("Bearer {secret}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("token={token}").as_bytes(),
    )
}

#[test]
fn introspection_answers_for_live_expired_revoked_and_unknown_tokens() {
    let server = InProcess::start();
    assert_eq!(
        introspect(&server, "whatever", "x").status,
        404,
        "disabled until a secret is set"
    );
    server.set("introspection_secret", "s3cret-for-the-api-only");
    let asm = server.get("/.well-known/oauth-authorization-server").json();
    assert_eq!(
        asm["introspection_endpoint"],
        format!("{}/oauth/introspect", server.base)
    );

    let reg = server.register_anonymous();
    let key = reg["credential"].as_str().unwrap();
    let live = introspect(&server, "s3cret-for-the-api-only", key).json();
    assert_eq!(live["active"], true);
    assert_eq!(live["token_type"], "Bearer");
    assert_eq!(live["credential_type"], "api_key");
    assert_eq!(live["scope"], "api.read");
    assert_eq!(live["registration_id"], reg["registration_id"]);
    assert_eq!(
        live["sub"], reg["registration_id"],
        "unclaimed: the registration stands in for the user"
    );
    assert!(live.get("exp").is_none() && live["iat"].as_i64().unwrap() > 1_700_000_000);

    let wrong = introspect(&server, "not-the-secret", key);
    wrong.assert_error(401, "unauthorized");
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    server
        .request(
            "POST",
            "/oauth/introspect",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"token=x",
        )
        .assert_error(401, "unauthorized");

    assert_eq!(
        introspect(&server, "s3cret-for-the-api-only", "authmd_sk_unknown").json(),
        json!({ "active": false })
    );
    server.cli_ok(&["revoke", "--registration", reg["registration_id"].as_str().unwrap()]);
    assert_eq!(
        introspect(&server, "s3cret-for-the-api-only", key).json(),
        json!({ "active": false })
    );

    server.set("registration_ttl_secs", "1");
    let short = server.register_anonymous();
    server.advance(Duration::from_secs(1));
    assert_eq!(
        introspect(
            &server,
            "s3cret-for-the-api-only",
            short["credential"].as_str().unwrap()
        )
        .json(),
        json!({ "active": false })
    );
}

#[test]
fn an_agent_revokes_its_own_credential() {
    let server = TestServer::start();
    let asm = server.get("/.well-known/oauth-authorization-server").json();
    assert_eq!(asm["revocation_endpoint"], format!("{}/oauth2/revoke", server.base));
    let (a, b) = (server.register_anonymous(), server.register_anonymous());
    let revoke = |token: &str| {
        server.request(
            "POST",
            "/oauth/revoke",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            format!("token={token}").as_bytes(),
        )
    };
    assert_eq!(revoke(a["credential"].as_str().unwrap()).status, 200);
    server
        .get_with_token("/api/resource", a["credential"].as_str().unwrap())
        .assert_error(401, "invalid_token");
    assert_eq!(
        server
            .get_with_token("/api/resource", b["credential"].as_str().unwrap())
            .status,
        200
    );
    assert_eq!(
        revoke("authmd_sk_unknown").status,
        200,
        "unknown tokens get 200 too (RFC 7009)"
    );
    assert_eq!(
        revoke(a["credential"].as_str().unwrap()).status,
        200,
        "and so do repeats"
    );
    let events = server.events("credential.revoked");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["registration_id"], a["registration_id"]);
    assert_eq!(events[0]["by"], "agent");
}
