//! Issue 15: commands that could do harm by a typo or a reflex ask or
//! refuse, and say what they did. Through the real binary: revocations of
//! more than one registration confirmed on a terminal (a real
//! pseudo-terminal, util-linux `script`) or by `--yes`; a revocation that
//! matches nothing exits 3; `revoke --user` takes an email; `provider add`
//! fetches the key set first; a missing `--db` file is created only by
//! `serve`; audit retention pruned by the sweeper on both backends; the
//! examples' `--help`; the backup's progress on a terminal.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authmd_dev::{Alg, JwksServer, SigningKey};
use serde_json::{Value, json};

use crate::common::{self, BIN, Client, TestServer, cli};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs `authmd --db DB ARGS` with a pseudo-terminal as its stdin, stdout
/// and stderr (`script -qec`), `input` typed at it and then end of input;
/// returns the exit status and everything the terminal showed.
fn on_terminal(db: &Path, args: &[&str], input: &str) -> (Option<i32>, String) {
    let mut line = format!("{} --db {}", sh_quote(BIN), sh_quote(db.to_str().unwrap()));
    for arg in args {
        line.push(' ');
        line.push_str(&sh_quote(arg));
    }
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTHMD_ALLOW_LOOPBACK_FETCH", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the binary on a pseudo-terminal");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), shown)
}

/// Registrations by status, from `registrations list --json`.
fn statuses(server: &TestServer) -> Vec<String> {
    server
        .cli_ok(&["registrations", "list", "--json"])
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn revoked(server: &TestServer) -> usize {
    statuses(server).iter().filter(|s| *s == "revoked").count()
}

/// A provider the server trusts and a way to register through it (an ID-JAG
/// for `sub`, whose user is `sub@example.com`, provisioned on first use).
struct Provider {
    jwks: JwksServer,
    key: SigningKey,
}

impl Provider {
    fn trusted_by(server: &TestServer) -> Provider {
        let jwks = JwksServer::start("127.0.0.1:0").unwrap();
        let key = SigningKey::generate(Alg::Es256, "k");
        jwks.publish(&[&key], "max-age=600");
        server.cli_ok(&["provider", "add", &jwks.base_url]);
        Provider { jwks, key }
    }

    fn register(&self, server: &TestServer, sub: &str) -> Value {
        let claims = authmd_dev::id_jag_claims(&self.jwks.base_url, sub, &server.base, now_secs());
        let body = json!({
            "type": "identity_assertion",
            "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
            "assertion": self.key.sign(&authmd_dev::id_jag_header(), &claims),
            "requested_credential_type": "api_key",
        });
        let reply = server.post_json("/agent/auth", &body.to_string());
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }
}

#[test]
fn revoke_all_on_a_terminal_asks_and_revokes_only_on_yes() {
    let server = TestServer::start();
    server.register_anonymous();
    server.register_anonymous();
    let db = server.db();

    for (answer, what) in [("n\n", "no"), ("", "end of input"), ("maybe\n", "anything else")] {
        let (status, shown) = on_terminal(&db, &["revoke", "--all"], answer);
        assert!(
            shown.contains("revoke 2 registrations and 2 credentials (--all)? [y/N]"),
            "{what}: {shown}"
        );
        assert_eq!(status, Some(1), "{what}: {shown}");
        assert!(shown.contains("nothing revoked"), "{what}: {shown}");
        assert_eq!(revoked(&server), 0, "{what}: nothing revoked");
    }

    let (status, shown) = on_terminal(&db, &["revoke", "--all"], "y\n");
    assert_eq!(status, Some(0), "{shown}");
    assert!(shown.contains("revoked 2 registrations and 2 credentials"), "{shown}");
    assert_eq!(revoked(&server), 2);
}

#[test]
fn without_a_terminal_a_revoke_of_several_needs_yes() {
    let server = TestServer::start();
    let provider = Provider::trusted_by(&server);
    let (alice, _bob) = (provider.register(&server, "alice"), provider.register(&server, "bob"));
    server.register_anonymous();

    // The test's stdin is no terminal: refused, naming the count and --yes.
    for args in [
        &["revoke", "--all"][..],
        &["revoke", "--issuer", &provider.jwks.base_url],
    ] {
        let out = server.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains("--yes") && stderr.contains("nothing revoked"),
            "{stderr}"
        );
        assert_eq!(revoked(&server), 0, "{args:?}");
    }
    let out = server.cli(&["revoke", "--all"]);
    assert!(
        stderr_of(&out).contains("revoke 3 registrations and 3 credentials"),
        "{}",
        stderr_of(&out)
    );

    // One registration is not asked about, even for a set-wide form; the
    // user may be named by email, in any case.
    let out = server.cli_ok(&["revoke", "--user", "ALICE@Example.com"]);
    assert_eq!(out, "revoked 1 registration and 1 credential\n");
    let alice_id = alice["registration_id"].as_str().unwrap();
    let listed = server.cli_ok(&["registrations", "list", "--status", "revoked", "--json"]);
    assert!(listed.contains(alice_id), "{listed}");

    let out = server.cli_ok(&["revoke", "--issuer", &provider.jwks.base_url, "-y"]);
    assert_eq!(out, "revoked 1 registration and 1 credential\n", "bob's");
    let out = server.cli_ok(&["revoke", "--all", "--yes"]);
    assert_eq!(out, "revoked 1 registration and 1 credential\n", "the anonymous one");
    assert_eq!(revoked(&server), 3);
}

#[test]
fn a_revoke_that_matches_nothing_says_so_and_exits_3() {
    let server = TestServer::start();
    let provider = Provider::trusted_by(&server);
    provider.register(&server, "carol");
    for (args, says) in [
        (
            &["revoke", "--issuer", "https://typo.example"][..],
            "no live registration matches --issuer https://typo.example",
        ),
        (
            &["revoke", "--issuer", &provider.jwks.base_url, "--subject", "nobody"],
            "no live registration matches --issuer",
        ),
        (
            &["revoke", "--user", "nobody@example.com"],
            "no user matches --user nobody@example.com",
        ),
        (&["revoke", "--user", "usr_nobody"], "no user matches --user usr_nobody"),
        (
            &["revoke", "--registration", "reg_nope"],
            "no registration matches --registration reg_nope",
        ),
    ] {
        let out = server.cli(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains(says), "{args:?}: {}", stderr_of(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(revoked(&server), 0);
    // A user with no live registration left matches nothing either.
    server.cli_ok(&["revoke", "--user", "carol@example.com"]);
    let out = server.cli(&["revoke", "--user", "carol@example.com"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("no live registration matches --user carol@example.com"));
    let out = server.cli(&["revoke", "--all", "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let help = server.cli_ok(&["revoke", "--help"]);
    assert!(help.contains("3 nothing matched") && help.contains("--yes"), "{help}");
}

#[test]
fn provider_add_fetches_the_key_set_and_refuses_what_it_cannot_use() {
    let server = TestServer::start();
    let listed = || server.cli_ok(&["provider", "list", "--json"]);
    let refused = |args: &[&str], says: &str| {
        let out = server.cli(args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", stderr_of(&out));
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains("nothing added") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert_eq!(listed(), "", "{args:?}: nothing added");
    };
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    refused(&["provider", "add", &down], "unreachable");
    // It answers, but not with a key set, or with one holding no usable key.
    let jwks = JwksServer::start("127.0.0.1:0").unwrap();
    refused(&["provider", "add", &jwks.base_url], "answered HTTP 404");
    jwks.put("/.well-known/jwks.json", json!({"keys": []}), "max-age=600");
    refused(&["provider", "add", &jwks.base_url], "holds no keys");
    jwks.put(
        "/.well-known/jwks.json",
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}),
        "max-age=600",
    );
    refused(&["provider", "add", &jwks.base_url], "no usable key (s: ");
    jwks.put("/keys", json!({"nope": 1}), "max-age=600");
    refused(
        &[
            "provider",
            "add",
            &jwks.base_url,
            "--jwks-uri",
            &format!("{}/keys", jwks.base_url),
        ],
        "no `keys` array",
    );

    // Loopback only with the flag the server needs to fetch from it too.
    let key = SigningKey::generate(Alg::Es256, "k1");
    jwks.publish(&[&key], "max-age=600");
    let out = Command::new(BIN)
        .arg("--db")
        .arg(server.db())
        .args(["provider", "add", &jwks.base_url])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("--allow-loopback-fetch"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(listed(), "");
    let out = Command::new(BIN)
        .arg("--db")
        .arg(server.db())
        .args(["provider", "add", &jwks.base_url, "--allow-loopback-fetch"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "trusted {0} (keys from {0}/.well-known/jwks.json, 1 usable key fetched)\n",
            jwks.base_url
        )
    );

    // --offline adds what cannot be fetched, with a warning.
    let out = server.cli(&["provider", "add", &down, "--offline"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("warning: --offline"), "{}", stderr_of(&out));
    assert_eq!(listed().lines().count(), 2);
}

#[test]
fn a_missing_database_file_is_created_only_by_serve() {
    if common::sqlite_only("a SQLite file that does not exist") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.db");
    for args in [
        &["config", "list"][..],
        &["config", "set", "resource_name", "X"],
        &["registrations", "list"],
        &["audit"],
        &["audit", "--follow"],
        &["provider", "list"],
        &["provider", "add", "https://agents.example", "--offline"],
        &["users", "list"],
        &["users", "add", "a@example.com"],
        &["revoke", "--all", "--yes"],
        &["keys", "list"],
        &["sessions", "list"],
        &["mail", "test", "a@example.com", "--mail", "log"],
        &["backup", "copy.db"],
    ] {
        let out = cli(&typo, args);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains(&format!("no database at {}", typo.display())),
            "{args:?}: {}",
            stderr_of(&out)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }

    // `serve` creates it, and says so once.
    let serve = |db: &Path| {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", "127.0.0.1:0", "--mail", "log"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut first);
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(child.wait().unwrap().success(), "{stderr}");
        assert!(first.starts_with("authmd listening on "), "{first:?}\n{stderr}");
        stderr
    };
    let fresh: PathBuf = dir.path().join("fresh.db");
    let stderr = serve(&fresh);
    let said = format!("created a new database at {}", fresh.display());
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
    assert!(fresh.is_file());
    assert!(cli(&fresh, &["config", "list"]).status.success());
    let stderr = serve(&fresh);
    assert!(!stderr.contains("created a new database"), "{stderr}");
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

const DAY_MS: i64 = 86_400_000;

/// Audit rows recorded `days_ago`, told apart by `registration_id`.
fn insert_events(server: &TestServer, marker: &str, days_ago: i64, count: u32) {
    let at_ms = now_ms() - days_ago * DAY_MS;
    common::execute(
        server,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
             INSERT INTO audit_events (at_ms, event, registration_id, detail)
             SELECT {at_ms} - i, 'registration.created', '{marker}', '{{}}' FROM n"
        ),
    );
}

fn events_marked(server: &TestServer, marker: &str) -> i64 {
    let rows = common::rows(
        server,
        &format!("SELECT count(*) AS n FROM audit_events WHERE registration_id = '{marker}'"),
    );
    rows[0]["n"].as_i64().unwrap()
}

/// More than one batch (1000 rows) of old events goes; the newer stay;
/// one log line, not an audit event per row.
#[test]
fn the_sweeper_prunes_audit_events_past_the_retention() {
    let server = TestServer::start();
    insert_events(&server, "old_bulk", 30, 2500);
    insert_events(&server, "old_edge", 8, 3);
    insert_events(&server, "recent", 6, 3);
    let events_before = common::rows(&server, "SELECT count(*) AS n FROM audit_events")[0]["n"]
        .as_i64()
        .unwrap();
    let listed = server.cli_ok(&["config", "list"]);
    assert!(listed.contains("audit_retention_days"), "{listed}");
    let out = server.cli(&["config", "set", "audit_retention_days", "-3"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr_of(&out));

    server.cli_ok(&["config", "set", "audit_retention_days", "7"]);
    let gone = server.eventually(Duration::from_secs(60), || {
        events_marked(&server, "old_bulk") + events_marked(&server, "old_edge") == 0
    });
    assert!(gone, "old events remain; stderr:\n{}", server.stderr());
    assert_eq!(events_marked(&server, "recent"), 3, "newer than 7 days: kept");
    let after = common::rows(&server, "SELECT count(*) AS n FROM audit_events")[0]["n"]
        .as_i64()
        .unwrap();
    // What is left: the recent rows, and what happened since (the setting
    // change): no event recorded per pruned row.
    assert_eq!(after, events_before - 2503 + 1, "{}", server.cli_ok(&["audit"]));
    assert!(
        server.stderr().contains("audit events older than 7 days pruned"),
        "{}",
        server.stderr()
    );
}

/// Unset (the default), nothing is pruned, however old: checked after two
/// sweeps that each expired a registration, so at least one whole pass ran.
#[test]
fn without_a_retention_every_audit_event_is_kept() {
    let server = TestServer::start();
    insert_events(&server, "ancient", 3650, 5);
    server.set("registration_ttl_secs", "1");
    for _ in 0..2 {
        let reg = server.register_anonymous();
        let id = reg["registration_id"].as_str().unwrap().to_string();
        let expired = server.eventually(Duration::from_secs(30), || {
            server
                .cli_ok(&["registrations", "list", "--status", "expired", "--json"])
                .contains(&id)
        });
        assert!(expired, "the sweeper did not run; stderr:\n{}", server.stderr());
    }
    assert_eq!(events_marked(&server, "ancient"), 5);
    assert!(!server.stderr().contains("audit events older"), "{}", server.stderr());
}

/// Issue 15: a JSON body where a logout token belongs was refused with
/// "the body must be application/json, not application/json (...)".
#[test]
fn a_wrong_media_type_is_named_with_what_to_send() {
    let server = TestServer::start();
    let reply = server.request(
        "POST",
        "/agent/auth/revoke",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    reply.assert_error(415, "unsupported_media_type");
    let message = reply.json()["message"].as_str().unwrap().to_string();
    assert!(!message.contains("must be application/json"), "{message}");
    assert!(message.contains("application/logout+jwt"), "{message}");
    let reply = server.request("POST", "/agent/auth", &[("Content-Type", "text/plain")], b"{}");
    reply.assert_error(415, "unsupported_media_type");
    assert_eq!(
        reply.json()["message"],
        "the body must be application/json, not text/plain"
    );
}

use crate::examples::example;

/// Issue 15: `--help` on the examples printed a panic; the embedded API
/// panicked with a backtrace when its port was taken.
#[test]
fn the_examples_print_usage_and_fail_in_one_line() {
    for name in ["agent", "embedded"] {
        let out = Command::new(example(name)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{name}: {}", stderr_of(&out));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: "), "{name}");
    }
    let help = Command::new(example("embedded")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.contains("--listen ADDR") && help.contains("--authmd-listen ADDR"),
        "{help}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.db");
    for (flag, other) in [("--listen", "--authmd-listen"), ("--authmd-listen", "--listen")] {
        let out = Command::new(example("embedded"))
            .arg("--db")
            .arg(&db)
            .args([flag, &addr, other, "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{flag}: {stderr}");
        assert!(stderr.contains(&addr) && stderr.contains(flag), "{flag}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = Command::new(example("embedded")).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr_of(&out).contains("panicked"), "{}", stderr_of(&out));
}

/// `backup` draws its progress on a terminal's stderr, and nothing of it
/// reaches a pipe: stdout keeps the one result line.
#[test]
fn backup_shows_progress_only_on_a_terminal() {
    let server = TestServer::start_sqlite(&[], &[]);
    server.register_anonymous();
    let copy = server.dir.path().join("copy.db");
    let (status, shown) = on_terminal(&server.db(), &["backup", copy.to_str().unwrap()], "");
    assert_eq!(status, Some(0), "{shown}");
    assert!(
        shown.contains("\rbackup: ") && shown.contains(" pages (100%)"),
        "{shown:?}"
    );
    assert!(shown.contains("integrity_check ok"), "{shown}");

    let piped = server.dir.path().join("piped.db");
    let out = cli(&server.db(), &["backup", piped.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("backed up "), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", stderr_of(&out));
}
