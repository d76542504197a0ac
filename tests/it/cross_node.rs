//! Issue 14, the rules that hold between nodes: two real `authmd serve`
//! processes on one PostgreSQL database (`common::postgres`), over real
//! HTTP, behind one name: the second node serves the first's base URL, as
//! nodes behind one load balancer do, and writes mail where the first does.
//!
//! - Both nodes sweep, and each expiry is recorded once.
//! - Trust-list and settings changes reach every node within 2 seconds.
//! - One refresh token presented to both nodes at once rotates once; the
//!   other presentation is a reuse, and the family ends on both nodes.
//! - `AUTHMD_DB_FILE` carries the URL with its password, which no log line,
//!   command line or error shows.
//!
//! Each starts its own PostgreSQL database, so, like `serve_postgres`, they
//! run whatever `AUTHMD_TEST_BACKEND` says.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::ceremony::{claimed_by, exchange, refresh};
use crate::common::{self, BIN, Client, Reply, TestServer, postgres};
use crate::signin::sign_in;
use authmd_dev::{Alg, JwksServer, SigningKey};
use serde_json::{Value, json};

/// Two nodes on `url`: `a` as the fixture starts it; `b` serving `a`'s base
/// URL (`b.base` is its own socket, what the test talks to) and writing
/// mail to `a`'s outbox, so a mail is found whichever node sent it.
fn nodes(url: &str) -> (TestServer, TestServer) {
    let a = TestServer::start_on(url, &[], &[]);
    let mail = format!("file:{}", a.outbox_dir().display());
    let mut b = TestServer::start_on(url, &["--base-url", &a.base, "--mail", &mail], &[]);
    b.base = format!("http://{}", b.listening_addr());
    (a, b)
}

/// A reply's status and error code (empty when it has none).
fn outcome(reply: &Reply) -> (u16, String) {
    let error = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .map(|body| body["error"].clone());
    (
        reply.status,
        error.and_then(|e| e.as_str().map(String::from)).unwrap_or_default(),
    )
}

fn answer(status: u16, code: &str) -> (u16, String) {
    (status, code.to_string())
}

/// Polls until `done` answers `Some`, for at most `limit`: for background
/// work the test waits on, never a timing rule.
fn wait_for<T>(what: &str, limit: Duration, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = done() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 14: each expiry is recorded once while both nodes sweep.
///
/// Two sweeps meet only when the nodes' 2-second cycles happen to line up,
/// so the test makes them meet: it holds a row lock on each registration
/// from right after its creation, so a sweep that finds them lapsed stops
/// inside its transaction at ending them. Once a sweep of each node waits,
/// the test lets go. Had each node recorded its own `registration.expired`
/// meanwhile (no one-node-at-a-time rule), both records would commit.
#[test]
fn each_expiry_is_recorded_once_while_both_nodes_sweep() {
    let url = postgres::database();
    authmd::configure_db(&authmd::DbTarget::parse(&url), &[("registration_ttl_secs", "2")]).unwrap();
    let (a, b) = nodes(&url);
    let mut held = common::pg_connection(&url);
    let mut hold = held.transaction().unwrap();
    let mut ids = Vec::new();
    for n in 0..9 {
        let node = if n % 2 == 0 { &a } else { &b };
        // Both generations, and some with a claim under way (an open attempt).
        let id = match n % 3 {
            0 => node.register_anonymous()["registration_id"].clone(),
            1 => {
                let made = node.post_json("/agent/identity", r#"{"type":"anonymous"}"#);
                assert_eq!(made.status, 200, "{}", made.body);
                made.json()["id"].clone()
            }
            _ => {
                let made = node.register_anonymous();
                let body = json!({ "claim_token": made["claim_token"], "email": format!("p{n}@example.com") });
                let started = node.post_json("/agent/auth/claim", &body.to_string());
                assert_eq!(started.status, 200, "{}", started.body);
                made["registration_id"].clone()
            }
        };
        let id = id.as_str().unwrap().to_string();
        let row = hold
            .query_one("SELECT status FROM registrations WHERE id = $1 FOR UPDATE", &[&id])
            .unwrap();
        let status: String = row.get(0);
        assert!(
            status == "unclaimed" || status == "pending_claim",
            "{id} was {status} before the test held it"
        );
        ids.push(id);
    }

    // A sweep of each node waits: one at the row locks, the other (while
    // the rule holds) for the first to finish.
    let mut watch = common::pg_connection(&url);
    let waiting = wait_for("a sweep of each node waiting", Duration::from_secs(30), || {
        let rows = watch
            .query(
                "SELECT pid, xact_start::text FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'authmd'
                   AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap();
        let found: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        (found.len() == 2).then_some(found)
    });
    hold.rollback().unwrap();
    wait_for("both sweeps' transactions to end", Duration::from_secs(30), || {
        let still: i64 = waiting
            .iter()
            .map(|(pid, started)| -> i64 {
                watch
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND xact_start::text = $2",
                        &[pid, started],
                    )
                    .unwrap()
                    .get(0)
            })
            .sum();
        (still == 0).then_some(())
    });
    wait_for("every registration expired", Duration::from_secs(30), || {
        let expired: i64 = watch
            .query_one(
                "SELECT count(*) FROM registrations WHERE id = ANY($1) AND status = 'expired'",
                &[&ids],
            )
            .unwrap()
            .get(0);
        (expired == ids.len() as i64).then_some(())
    });

    let mut recorded: Vec<String> = a
        .events("registration.expired")
        .iter()
        .map(|e| e["registration_id"].as_str().unwrap().to_string())
        .collect();
    recorded.sort();
    ids.sort();
    assert_eq!(recorded, ids, "one registration.expired per registration");
}

/// The 2 seconds issue 14 gives a trust-list or settings change to reach
/// every node, and 1 s more for scheduling on a busy machine.
const PROPAGATION: Duration = Duration::from_secs(2 + 1);

/// Polls `check` on each node until it holds there; fails unless it held
/// on both within [`PROPAGATION`] of `changed` (when the CLI returned, so
/// the change was committed).
fn seen_by_both(what: &str, changed: Instant, nodes: [&TestServer; 2], check: impl Fn(&TestServer) -> bool) {
    for (name, node) in ["a", "b"].into_iter().zip(nodes) {
        while !check(node) {
            assert!(
                changed.elapsed() < PROPAGATION,
                "{what}: node {name} did not see it within {PROPAGATION:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Issue 14 (DESIGN.md "Growing past one machine"): settings and the trust
/// list, changed through the database by the CLI, are seen by every node
/// within 2 seconds: a provider added is accepted on both, anonymous
/// registration switched off and on again is refused and accepted on
/// both, and a provider removed is refused on both.
#[test]
fn trust_list_and_settings_changes_reach_both_nodes_within_two_seconds() {
    let url = postgres::database();
    let (a, b) = nodes(&url);
    let key = SigningKey::generate(Alg::Es256, "k1");
    let provider = JwksServer::start("127.0.0.1:0").unwrap();
    provider.publish(&[&key], "public, max-age=3600");
    let id_jag = |node: &TestServer| {
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        // The audience is the name both nodes serve.
        let claims = authmd_dev::id_jag_claims(&provider.base_url, "alice", &a.base, now_secs);
        let body = json!({
            "type": "identity_assertion",
            "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
            "assertion": key.sign(&authmd_dev::id_jag_header(), &claims),
            "requested_credential_type": "api_key",
        });
        node.post_json("/agent/auth", &body.to_string())
    };
    let anonymous = |node: &TestServer| {
        node.post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
    };
    for node in [&a, &b] {
        id_jag(node).assert_error(400, "invalid_issuer");
    }

    a.cli_ok(&["provider", "add", &provider.base_url, "--name", "Dev Provider"]);
    seen_by_both("provider added", Instant::now(), [&a, &b], |node| {
        id_jag(node).status == 200
    });

    b.cli_ok(&["config", "set", "anonymous_enabled", "false"]);
    seen_by_both("anonymous registration off", Instant::now(), [&a, &b], |node| {
        outcome(&anonymous(node)) == answer(400, "anonymous_not_enabled")
    });
    a.cli_ok(&["config", "set", "anonymous_enabled", "true"]);
    seen_by_both("anonymous registration on", Instant::now(), [&a, &b], |node| {
        anonymous(node).status == 200
    });

    b.cli_ok(&["provider", "remove", &provider.base_url]);
    seen_by_both("provider removed", Instant::now(), [&a, &b], |node| {
        outcome(&id_jag(node)) == answer(400, "invalid_issuer")
    });
}

/// SPEC-v0.7 9 across nodes: one refresh token presented to node a and node
/// b at the same moment, round after round (each round a registration of
/// its own, claimed through the ceremony on node a): exactly one rotation
/// succeeds and the other is a reuse (`invalid_refresh_token`), which ends
/// the family: both refresh tokens, both assertions and the access token
/// taken before are refused on both nodes. Each registration records one
/// `refresh_token.rotated` and one `refresh_token.reused`.
#[test]
fn one_refresh_token_at_both_nodes_at_once_rotates_once_and_ends_the_family() {
    const ROUNDS: usize = 30;
    let url = postgres::database();
    let (a, b) = nodes(&url);
    let email = "ray@example.com";
    let mut person = sign_in(&a, email);
    let mut ids = Vec::new();
    for round in 0..ROUNDS {
        let done = claimed_by(&a, &mut person, email);
        let text = |v: &Value| {
            v.as_str()
                .unwrap_or_else(|| panic!("round {round}: {done}"))
                .to_string()
        };
        let first = text(&done["identity"]["refresh_token"]["value"]);
        let assertion = text(&done["identity"]["assertion"]);
        // One issuer and one key set: node b takes what node a signed.
        let taken = exchange(&b, &assertion);
        assert_eq!(taken.status, 200, "{}", taken.body);
        let access = text(&taken.json()["access_token"]);

        let barrier = Barrier::new(2);
        let replies: Vec<Reply> = std::thread::scope(|scope| {
            let racers: Vec<_> = [&a, &b]
                .into_iter()
                .map(|node| {
                    let (barrier, first) = (&barrier, &first);
                    scope.spawn(move || {
                        barrier.wait();
                        refresh(node, first)
                    })
                })
                .collect();
            racers.into_iter().map(|racer| racer.join().unwrap()).collect()
        });
        let mut answers: Vec<(u16, String)> = replies.iter().map(outcome).collect();
        answers.sort();
        assert_eq!(
            answers,
            [answer(200, ""), answer(400, "invalid_refresh_token")],
            "round {round}: one rotation and one reuse"
        );
        let rotated = replies.iter().find(|r| r.status == 200).unwrap().json();
        let second = text(&rotated["identity"]["refresh_token"]["value"]);
        let rotated_assertion = text(&rotated["identity"]["assertion"]);

        // The family is over, on both nodes.
        for (name, node) in [("a", &a), ("b", &b)] {
            for (what, token) in [("the raced", &first), ("the rotated", &second)] {
                let refused = outcome(&refresh(node, token));
                let expected = answer(400, "invalid_refresh_token");
                assert_eq!(refused, expected, "round {round}, node {name}: {what} refresh token");
            }
            for (what, signed) in [("the first", &assertion), ("the rotated", &rotated_assertion)] {
                let refused = outcome(&exchange(node, signed));
                let expected = answer(400, "invalid_grant");
                assert_eq!(refused, expected, "round {round}, node {name}: {what} assertion");
            }
            let refused = outcome(&node.get_with_token("/api/resource", &access));
            assert_eq!(
                refused,
                answer(401, "invalid_token"),
                "round {round}, node {name}: the access token"
            );
        }
        ids.push(text(&done["id"]));
    }

    for event in ["refresh_token.rotated", "refresh_token.reused"] {
        let mut recorded: Vec<String> = a
            .events(event)
            .iter()
            .map(|e| e["registration_id"].as_str().unwrap().to_string())
            .collect();
        recorded.sort();
        ids.sort();
        assert_eq!(recorded, ids, "one {event} per registration");
    }
}

/// What the `AUTHMD_DB_FILE` test's role logs in with: distinctive, so
/// finding it anywhere is no accident.
const PASSWORD: &str = "Xnode7pass9Quartz4";
const WRONG_PASSWORD: &str = "Wrong3pass8Basalt1";

/// psql on a test's own server as `user` (with `password`).
fn psql(server: &postgres::Private, user: &str, password: &str, database: &str, sql: &str) -> Output {
    Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", &server.port.to_string(), "-U", user, "-d", database, "-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .expect("psql")
}

fn psql_ok(server: &postgres::Private, sql: &str) -> String {
    let out = psql(server, "postgres", "", "postgres", sql);
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `authmd ARGS` in `file`'s dir with only `AUTHMD_DB_FILE` naming the
/// database, run to its end (killed after 30 s: a server that should have
/// refused to start).
fn with_db_file(file: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(file.parent().unwrap())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTHMD_DB_FILE", file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authmd");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// Issue 14: `serve` and a CLI command take the database from the file
/// `AUTHMD_DB_FILE` names, the URL with its password (a role that must log
/// in with it: the test's own server asks for it, scram-sha-256); the
/// password is in no log line, not on the command line (nor in the
/// environment), and not in the error when the file names a database that
/// does not exist or the wrong password, which does name the host, port and
/// database.
#[test]
fn the_url_comes_from_authmd_db_file_and_its_password_shows_nowhere() {
    let server = postgres::Private::new();
    let port = server.port;
    psql_ok(&server, &format!("CREATE ROLE authmd_node LOGIN PASSWORD '{PASSWORD}'"));
    psql_ok(&server, "CREATE DATABASE nodes OWNER authmd_node");
    // That role (and only it) must give its password.
    let hba = psql_ok(&server, "SHOW hba_file").trim().to_string();
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all authmd_node 127.0.0.1/32 scram-sha-256\n{rules}"),
    )
    .unwrap();
    psql_ok(&server, "SELECT pg_reload_conf()");
    wait_for("the password asked for", Duration::from_secs(10), || {
        let out = psql(&server, "authmd_node", WRONG_PASSWORD, "nodes", "SELECT 1");
        (!out.status.success()).then_some(())
    });

    let dir = tempfile::tempdir().unwrap();
    let url_file = |name: &str, password: &str, database: &str| {
        let file = dir.path().join(name);
        let url = format!("postgres://authmd_node:{password}@127.0.0.1:{port}/{database}");
        std::fs::write(&file, format!("{url}\n")).unwrap();
        (file, url)
    };
    let (file, url) = url_file("db-url", PASSWORD, "nodes");
    let file_env = file.to_str().unwrap();
    let node = TestServer::start_db_from_env(&url, &[], &[("AUTHMD_DB_FILE", file_env)]);
    assert_eq!(node.get("/readyz").status, 200);
    let registered = node.register_anonymous();
    let proc_file = |name: &str| std::fs::read(format!("/proc/{}/{name}", node.pid())).unwrap();
    let cmdline = String::from_utf8_lossy(&proc_file("cmdline")).replace('\0', " ");
    assert!(!cmdline.contains("postgres"), "{cmdline}");
    assert!(!String::from_utf8_lossy(&proc_file("environ")).contains(PASSWORD));

    // The CLI on the same file sees what the server made.
    let listed = with_db_file(&file, &["registrations", "list", "--json"]);
    let listed_out = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(
        listed_out.contains(registered["registration_id"].as_str().unwrap()),
        "{listed_out}"
    );
    let set = with_db_file(&file, &["config", "set", "resource_name", "Nodes API"]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert!(node.eventually(Duration::from_secs(5), || node.stderr().contains("settings reloaded")));
    for out in [&listed, &set] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(PASSWORD), "{all}");
    }
    // The log names the database it came to from the file, without the password.
    let log = node.stderr();
    assert!(
        log.contains(&format!("database postgres://127.0.0.1:{port}/nodes")),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");

    // A file naming a database that is not there, or the wrong password.
    let (no_database, _) = url_file("no-database", PASSWORD, "nodes_gone");
    let (wrong_password, _) = url_file("wrong-password", WRONG_PASSWORD, "nodes");
    for (file, target, why) in [
        (&no_database, format!("127.0.0.1:{port}/nodes_gone"), "does not exist"),
        (
            &wrong_password,
            format!("127.0.0.1:{port}/nodes"),
            "password authentication failed",
        ),
    ] {
        for args in [&["serve", "--listen", "127.0.0.1:0"][..], &["registrations", "list"]] {
            let out = with_db_file(file, args);
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert_eq!(out.status.code(), Some(78), "{args:?} on {file:?}: {stdout}{stderr}");
            assert!(
                stderr.contains(&target),
                "{args:?} on {file:?}: the error names {target}: {stderr}"
            );
            assert!(
                stderr.contains(why),
                "{args:?} on {file:?}: the server's reason: {stderr}"
            );
            for secret in [PASSWORD, WRONG_PASSWORD] {
                assert!(
                    !stderr.contains(secret) && !stdout.contains(secret),
                    "{args:?}: {stderr}"
                );
            }
        }
    }
}
