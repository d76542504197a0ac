//! The command line as an operator meets it: settings, exit statuses,
//! environment variables, signals, logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{BIN, Client, TestServer, cli};
use serde_json::Value;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_set_refuses_unknown_keys_and_bad_values_with_what_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::new_db(dir.path(), "a.db");
    let cases: &[(&[&str], &str)] = &[
        (
            &["config", "set", "registration_ttl", "60"],
            "valid keys are: resource_name",
        ),
        (
            &["config", "set", "registration_ttl_secs", "soon"],
            "whole number from 1 to",
        ),
        (&["config", "set", "registration_ttl_secs", "-5"], "whole number"),
        (&["config", "set", "anonymous_enabled", "maybe"], "true or false"),
        (&["config", "set", "resource", "not a url"], "http"),
        (
            &["config", "set", "pre_claim_scopes", "admin"],
            "not in `scopes_supported`",
        ),
        (
            &["config", "set", "scopes_supported", "api.read"],
            "`post_claim_scopes` names `api.write`",
        ),
        (&["config", "set", "api_key_prefix", "authmd_at_"], "must differ"),
        (&["config", "set", "mail_from", "nobody"], "mailbox"),
        (&["config", "set", "auth_md_path", "/no/such/file.md"], "cannot read"),
        (&["config", "get", "nonsense"], "valid keys are"),
    ];
    for (args, fragment) in cases {
        let out = cli(&db, args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains(fragment), "{args:?}: {}", stderr_of(&out));
    }
    // Nothing was stored by the refusals.
    let list = String::from_utf8(cli(&db, &["config", "list"]).stdout).unwrap();
    assert!(list.lines().all(|l| l.contains("(default)")), "{list}");
    assert_eq!(
        String::from_utf8(cli(&db, &["config", "get", "registration_ttl_secs"]).stdout).unwrap(),
        "86400\n"
    );
}

/// The library's `configure` is `config set` for several keys at once: the
/// same validation and audit, and all or none.
#[test]
fn configure_from_the_library_is_all_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let err = authmd::configure(&db, &[("registration_ttl_secs", "120"), ("anonymous_enabled", "maybe")]).unwrap_err();
    assert!(err.contains("true or false"), "{err}");
    let get = |key| String::from_utf8(cli(&db, &["config", "get", key]).stdout).unwrap();
    assert_eq!(
        get("registration_ttl_secs"),
        "86400\n",
        "the first change was rolled back"
    );
    authmd::configure(&db, &[("registration_ttl_secs", "120"), ("anonymous_enabled", "false")]).unwrap();
    assert_eq!(get("registration_ttl_secs"), "120\n");
    assert_eq!(get("anonymous_enabled"), "false\n");
    let audit = String::from_utf8(cli(&db, &["audit", "--json"]).stdout).unwrap();
    assert_eq!(audit.matches("setting.changed").count(), 2, "{audit}");
}

#[test]
fn config_set_get_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::new_db(dir.path(), "a.db");
    assert!(
        cli(&db, &["config", "set", "registration_ttl_secs", "120"])
            .status
            .success()
    );
    assert_eq!(
        String::from_utf8(cli(&db, &["config", "get", "registration_ttl_secs"]).stdout).unwrap(),
        "120\n"
    );
    assert!(
        cli(&db, &["config", "set", "introspection_secret", "s3cret-s3cret-s3cret"])
            .status
            .success()
    );
    let list = String::from_utf8(cli(&db, &["config", "list"]).stdout).unwrap();
    assert!(
        list.contains("(set; stored hashed)") && !list.contains("s3cret"),
        "{list}"
    );
    assert!(
        cli(&db, &["config", "set", "registration_ttl_secs", ""])
            .status
            .success()
    );
    assert_eq!(
        String::from_utf8(cli(&db, &["config", "get", "registration_ttl_secs"]).stdout).unwrap(),
        "86400\n"
    );
    let audit = String::from_utf8(cli(&db, &["audit", "--event", "setting.changed"]).stdout).unwrap();
    assert_eq!(audit.lines().count(), 3, "{audit}");
    assert!(!audit.contains("s3cret"));
}

#[test]
fn audit_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::new_db(dir.path(), "a.db");
    let out = cli(&db, &["audit", "--event", "registration.made"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("valid: registration.created"),
        "{}",
        stderr_of(&out)
    );
    let out = cli(&db, &["audit", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("RFC 3339"));
    assert!(cli(&db, &["audit", "--since", "1h"]).status.success());
    let out = cli(&db, &["registrations", "list", "--status", "asleep"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("unclaimed"));
}

#[test]
fn a_corrupt_or_unwritable_database_stops_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 16384]).unwrap();
    let out = cli(&junk, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr_of(&out).contains("not an SQLite database"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        vec![0x42u8; 16384],
        "the file is left alone"
    );

    let missing_dir = dir.path().join("no/such/dir/a.db");
    let out = cli(&missing_dir, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr_of(&out).contains("cannot open database"), "{}", stderr_of(&out));
}

#[test]
fn bad_flags_and_environment_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    for (args, fragment) in [
        (&["serve", "--workers", "0"][..], "--workers"),
        (&["serve", "--log-format", "xml"], "--log-format"),
        (&["serve", "--base-url", "ftp://x"], "--base-url"),
        (&["serve", "--base-url", "https://x.example/prefix"], "without a path"),
        (&["serve", "--listen", "not-an-address"], "cannot listen"),
    ] {
        let out = cli(&db, args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains(fragment), "{args:?}: {}", stderr_of(&out));
    }
    assert_eq!(cli(&db, &["serve", "--bogus"]).status.code(), Some(2));
    assert_eq!(cli(&db, &["frobnicate"]).status.code(), Some(2));
    assert!(cli(&db, &["--help"]).status.success());
    assert!(cli(&db, &["serve", "--help"]).status.success());
}

#[test]
fn environment_variables_file_forms_and_unknown_variable_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let listen_file = dir.path().join("listen");
    std::fs::write(&listen_file, "127.0.0.1:0\n").unwrap();
    let server = TestServer::start_with(
        &[],
        &[
            ("AUTHMD_LISTEN_FILE", listen_file.to_str().unwrap()),
            ("AUTHMD_LOG_FORMAT", "json"),
            ("AUTHMD_LISTNE", "typo"),
        ],
    );
    assert_eq!(server.get("/healthz").status, 200);
    assert!(server.eventually(Duration::from_secs(3), || {
        server.stderr().contains("unknown environment variable AUTHMD_LISTNE")
    }));

    // Both forms at once is a configuration error.
    let out = Command::new(BIN)
        .args(["--db", dir.path().join("b.db").to_str().unwrap(), "serve"])
        .env("AUTHMD_LISTEN", "127.0.0.1:0")
        .env("AUTHMD_LISTEN_FILE", listen_file.to_str().unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr_of(&out).contains("not both"));
}

#[test]
fn json_logs_have_one_object_per_line_and_no_query_strings_or_secrets() {
    let server = TestServer::start_with(&["--log-format", "json"], &[]);
    let reg = server.register_anonymous();
    let key = reg["credential"].as_str().unwrap();
    assert_eq!(
        server
            .get_with_token("/api/resource?token=query-secret-123", key)
            .status,
        200
    );
    server.get("/auth.md?token=another-secret-456");
    assert!(
        server.eventually(Duration::from_secs(3), || server.stderr().matches("\"access\"").count()
            >= 3)
    );
    let stderr = server.stderr();
    let mut access = 0;
    for line in stderr.lines() {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if entry["level"] == "access" {
            access += 1;
            for field in [
                "time",
                "request_id",
                "method",
                "path",
                "status",
                "duration_ms",
                "client_ip",
            ] {
                assert!(entry.get(field).is_some(), "{field} missing: {line}");
            }
        }
    }
    assert!(access >= 3);
    for secret in [
        "query-secret-123",
        "another-secret-456",
        key,
        reg["claim_token"].as_str().unwrap(),
    ] {
        assert!(!stderr.contains(secret), "{secret} reached the log");
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_zero() {
    let mut server = TestServer::start();
    // A request whose body is still arriving is in a worker's hands.
    let body = format!(
        "{{\"type\":\"anonymous\",\"requested_credential_type\":\"api_key\",\"pad\":\"{}\"}}",
        "x".repeat(4000)
    );
    let (first, rest) = body.split_at(100);
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "POST /agent/auth HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}", body.len()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.pid();
    let stopper = std::thread::spawn(move || {
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(rest.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stopper.join().unwrap();
    let (status, took) = server.stop_after_signal();
    assert!(status.success(), "exit {status}");
    assert!(took < Duration::from_secs(10));
    // New connections are refused once it stopped.
    assert!(TcpStream::connect(server.base.trim_start_matches("http://")).is_err());
}

#[test]
fn healthcheck_answers_for_a_running_server_only() {
    let server = TestServer::start();
    let out = cli(&server.db(), &["healthcheck", "--url", &server.base]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = Command::new(BIN)
        .args(["healthcheck"])
        .env("AUTHMD_LISTEN", "127.0.0.1:1")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
