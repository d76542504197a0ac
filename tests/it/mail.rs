//! Mail through a real SMTP server process on loopback (Python's aiosmtpd,
//! which `scripts/test` installs), the durable outbox, and the other transports.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::smtp::{SmtpSink, free_port};
use crate::common::{Client, TestServer, cli, parse_mail};
use serde_json::json;

fn register_email(server: &TestServer, email: &str) -> serde_json::Value {
    let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":email,"requested_credential_type":"api_key"});
    let reply = server.post_json("/agent/auth", &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn outbox_rows(server: &TestServer) -> Vec<(String, Option<String>, i64)> {
    common::rows(server, "SELECT status, body_text, attempts FROM outbox ORDER BY id")
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_string(),
                r["body_text"].as_str().map(str::to_string),
                r["attempts"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_claim_email_arrives_over_smtp_with_both_parts_and_a_working_link() {
    let sink = SmtpSink::start(free_port());
    let server = TestServer::start_with(&["--mail", &format!("smtp://127.0.0.1:{}?tls=none", sink.port)], &[]);
    let reg = register_email(&server, "alice@example.com");
    let messages = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(messages.len(), 1, "{}", server.stderr());
    let mail = parse_mail(&messages[0]);
    assert_eq!(mail.to, "alice@example.com");
    assert!(mail.raw.contains("multipart/alternative"));
    assert!(mail.text.contains(reg["registration_id"].as_str().unwrap()));
    assert!(mail.html.contains("Confirm the agent"));
    let page = server.get(&mail.link_path());
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Show my code"));
    // Delivered: the body (and the live link in it) is gone from the database.
    assert!(server.eventually(Duration::from_secs(3), || outbox_rows(&server)
        == vec![("sent".to_string(), None, 1)]));
}

#[test]
fn a_mail_server_that_is_down_delays_mail_but_never_a_request() {
    let port = free_port();
    let mut server = TestServer::start_with(&["--mail", &format!("smtp://127.0.0.1:{port}?tls=none")], &[]);
    server.cli_ok(&["config", "set", "mail_retry_base_secs", "1"]);
    server.restart();
    let started = Instant::now();
    register_email(&server, "bob@example.com");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the request waited for mail"
    );
    assert!(server.eventually(Duration::from_secs(5), || {
        outbox_rows(&server).first().is_some_and(|r| r.2 >= 1)
    }));
    // The server comes up; the retry delivers.
    let sink = SmtpSink::start(port);
    let messages = sink.wait_for(1, Duration::from_secs(15));
    assert_eq!(
        messages.len(),
        1,
        "not delivered after the server came up: {:?}\n{}",
        outbox_rows(&server),
        server.stderr()
    );
    assert_eq!(parse_mail(&messages[0]).to, "bob@example.com");
}

#[test]
fn after_the_last_attempt_the_message_is_abandoned_and_recorded() {
    let port = free_port();
    let mut server = TestServer::start_with(&["--mail", &format!("smtp://127.0.0.1:{port}?tls=none")], &[]);
    server.cli_ok(&["config", "set", "mail_retry_base_secs", "1"]);
    server.cli_ok(&["config", "set", "mail_max_attempts", "2"]);
    server.restart();
    let reg = register_email(&server, "carol@example.com");
    assert!(server.eventually(Duration::from_secs(8), || !server.events("mail.failed").is_empty()));
    let failed = server.events("mail.failed");
    assert_eq!(failed[0]["registration_id"], reg["registration_id"]);
    assert_eq!(failed[0]["attempts"], 2);
    assert_eq!(outbox_rows(&server)[0].0, "failed");
    assert_eq!(outbox_rows(&server)[0].1, None, "the abandoned body is erased");
}

#[test]
fn the_log_transport_never_prints_the_link() {
    let server = TestServer::start_with(&["--mail", "log"], &[]);
    register_email(&server, "dave@example.com");
    assert!(server.eventually(Duration::from_secs(3), || {
        server.stderr().contains("mail (log transport) to dave@example.com")
    }));
    assert!(!server.stderr().contains("token="));
    assert!(!server.stderr().contains("cat_"));
}

#[test]
fn mail_test_reports_success_or_the_failure() {
    let sink = SmtpSink::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::new_db(dir.path(), "a.db");
    let out = cli(
        &db,
        &[
            "mail",
            "test",
            "erin@example.com",
            "--mail",
            &format!("smtp://127.0.0.1:{}?tls=none", sink.port),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent a test message to erin@example.com"));
    let messages = sink.wait_for(1, Duration::from_secs(5));
    assert!(parse_mail(&messages[0]).subject.contains("authmd test message"));

    let out = cli(
        &db,
        &[
            "mail",
            "test",
            "erin@example.com",
            "--mail",
            &format!("smtp://127.0.0.1:{}?tls=none", free_port()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &db,
        &["mail", "test", "erin@example.com", "--mail", "carrier-pigeon://x"],
    );
    assert_eq!(out.status.code(), Some(78));
}

/// Regression for issue 10 (item 7): with credentials, `smtp://` fell back to
/// plaintext when the server offered no STARTTLS, sending `AUTH PLAIN` and the
/// claim link in clear. Now nothing crosses: the message waits in the outbox.
#[test]
fn credentials_and_claim_links_never_cross_a_connection_without_starttls() {
    let sink = SmtpSink::start_plaintext_auth(free_port());
    let url = format!("smtp://agent:hunter2@127.0.0.1:{}", sink.port);
    let server = TestServer::start_with(&["--mail", &url], &[]);
    register_email(&server, "frank@example.com");
    assert!(
        server.eventually(Duration::from_secs(10), || server
            .stderr()
            .contains("mail to frank@example.com not delivered (attempt 1)")),
        "{}",
        server.stderr()
    );
    let stderr = server.stderr();
    assert!(
        stderr.contains("STARTTLS is not supported") && stderr.contains("nothing was sent in clear"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password reached the log");
    assert_eq!(sink.auth_seen(), "", "the password was sent in clear");
    assert!(sink.messages().is_empty(), "the claim mail was sent in clear");
    assert_eq!(outbox_rows(&server)[0].0, "pending", "kept for a retry");

    // `mail test` refuses the same way, and says why.
    let out = server.cli(&["mail", "test", "frank@example.com", "--mail", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STARTTLS"));
    assert_eq!(sink.auth_seen(), "");
    assert!(sink.messages().is_empty());
}

/// Regression for issue 10 (item 7): plain `smtp://` without credentials
/// refuses plaintext too; only `?tls=none`, spelled out, allows it.
#[test]
fn plain_smtp_needs_starttls_unless_tls_none_is_spelled_out() {
    let sink = SmtpSink::start(free_port());
    let server = TestServer::start_with(&["--mail", &format!("smtp://127.0.0.1:{}", sink.port)], &[]);
    register_email(&server, "gina@example.com");
    assert!(
        server.eventually(Duration::from_secs(10), || server
            .stderr()
            .contains("mail to gina@example.com not delivered (attempt 1)")),
        "{}",
        server.stderr()
    );
    assert!(sink.messages().is_empty(), "sent in clear without ?tls=none");
    assert_eq!(outbox_rows(&server)[0].0, "pending");
    // Credentials with ?tls=none are a configuration error, and the error
    // does not repeat the password.
    let out = server.cli(&[
        "mail",
        "test",
        "gina@example.com",
        "--mail",
        &format!("smtp://agent:hunter2@127.0.0.1:{}?tls=none", sink.port),
    ]);
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in clear") && !stderr.contains("hunter2"), "{stderr}");
}

/// Regression for issue 10 (item 9): erasing a delivered message's body left
/// its bytes (the claim link) in the database file's free space. With
/// `secure_delete` they are zeroed: after delivery and a checkpoint the link
/// is nowhere in the file or its WAL.
#[test]
fn a_delivered_claim_link_leaves_no_trace_in_the_database_file() {
    let server = TestServer::start();
    register_email(&server, "ivan@example.com");
    let token = server.wait_for_mail(1)[0].token();
    assert!(server.eventually(Duration::from_secs(5), || outbox_rows(&server)
        == vec![("sent".to_string(), None, 1)]));
    if common::sqlite_only("the file and its WAL are searched for the link") {
        return;
    }
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        server.eventually(Duration::from_secs(5), || {
            let busy: i64 = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .unwrap();
            busy == 0
        }),
        "the checkpoint did not complete"
    );
    for file in ["authmd.db", "authmd.db-wal"] {
        let bytes = std::fs::read(server.dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the claim link is still in {file}"
        );
    }
}
