//! Issue 14 "Faults": authmd on a PostgreSQL server of the test's own
//! (`postgres::Private`) that the test stops, pauses and cuts. While the
//! database cannot answer, `/healthz` stays 200, `/readyz` is 503, and each
//! surface refuses in its own envelope with `503 temporarily_unavailable`
//! and `Retry-After`, each answer within [`BOUND`]; when the database is
//! back the same process answers again. And a node killed mid-load loses
//! nothing it acknowledged.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Client, Reply, TestServer, postgres};

const JWT_BEARER: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// No answer may take longer, whatever the database does: a bound on
/// hanging (the pool's wait, connect and statement timeouts are 5, 5 and
/// 10 s), not a timing benchmark.
const BOUND: Duration = Duration::from_secs(15);

/// What a client holds from before the fault: an API key and a v0.7
/// identity assertion.
struct Held {
    key: String,
    assertion: String,
}

fn hold(server: &TestServer) -> Held {
    let key = server.register_anonymous()["credential"].as_str().unwrap().to_string();
    let identity = server.post_json("/agent/identity", r#"{"type":"anonymous"}"#);
    assert_eq!(identity.status, 200, "{}", identity.body);
    let assertion = identity.json()["identity"]["assertion"].as_str().unwrap().to_string();
    Held { key, assertion }
}

fn timed(what: &str, request: impl FnOnce() -> Reply) -> Reply {
    let started = Instant::now();
    let reply = request();
    let took = started.elapsed();
    assert!(took < BOUND, "{what} took {took:?}, over {BOUND:?}: {}", reply.body);
    reply
}

fn token(server: &TestServer, assertion: &str) -> Reply {
    server.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("grant_type={JWT_BEARER}&assertion={assertion}").as_bytes(),
    )
}

/// Every surface refuses with 503 `temporarily_unavailable`, `Retry-After`
/// and its own envelope, each within [`BOUND`]; `/healthz` stays 200.
fn assert_unavailable(server: &TestServer, held: &Held, when: &str) {
    let health = timed("/healthz", || server.get("/healthz"));
    assert_eq!(
        health.status, 200,
        "{when}: /healthz needs no database: {}",
        health.body
    );
    let ready = timed("/readyz", || server.get("/readyz"));
    assert_eq!(ready.status, 503, "{when}: /readyz: {}", ready.body);

    let retry = |reply: &Reply| {
        let after: u64 = reply
            .header("retry-after")
            .unwrap_or_else(|| panic!("{when}: no Retry-After: {reply:?}"))
            .parse()
            .unwrap();
        assert!((1..=60).contains(&after), "{when}: Retry-After {after}");
    };
    // v0.1's JSON endpoint: {"error", "error_description", "message"}.
    let register = timed("v0.1 registration", || {
        server.post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
    });
    register.assert_error(503, "temporarily_unavailable");
    retry(&register);
    // v0.7's token endpoint: RFC 6749's {"error", "error_description"}.
    let exchanged = timed("v0.7 token exchange", || token(server, &held.assertion));
    assert_eq!(exchanged.status, 503, "{when}: {}", exchanged.body);
    let body = exchanged.json();
    assert_eq!(body["error"], "temporarily_unavailable", "{when}: {}", exchanged.body);
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(body.get("message").is_none(), "the OAuth envelope: {}", exchanged.body);
    retry(&exchanged);
    // The guarded API: the same 503, not a 401 for a key it could not look up.
    let api = timed("guarded API", || server.get_with_token("/api/resource", &held.key));
    api.assert_error(503, "temporarily_unavailable");
    retry(&api);
}

/// The node answers again, by itself: `/readyz` 200 within `limit`, then
/// the key from before the fault works and a new registration succeeds.
fn assert_recovered(server: &TestServer, held: &Held, when: &str) {
    assert!(
        server.eventually(Duration::from_secs(20), || server.get("/readyz").status == 200),
        "{when}: /readyz never 200 again; stderr:\n{}",
        server.stderr()
    );
    let ok = |reply: Reply| reply.status == 200;
    // A request or two may still meet a connection cut before the fault.
    assert!(
        server.eventually(Duration::from_secs(10), || ok(
            server.get_with_token("/api/resource", &held.key)
        )),
        "{when}: the key from before is refused; stderr:\n{}",
        server.stderr()
    );
    let reply = server.get_with_token("/api/resource", &held.key);
    assert_eq!(reply.status, 200, "{when}: {}", reply.body);
    let exchanged = token(server, &held.assertion);
    assert_eq!(exchanged.status, 200, "{when}: {}", exchanged.body);
    server.register_anonymous();
}

#[test]
fn a_stopped_database_answers_503_and_the_node_recovers_when_it_restarts() {
    let mut pg = postgres::Private::new();
    let server = TestServer::start_on(&pg.url(), &[], &[]);
    let held = hold(&server);
    pg.stop();
    assert_unavailable(&server, &held, "stopped");
    // Again: the broken connections were dropped, not handed out again.
    assert_unavailable(&server, &held, "still stopped");
    pg.start();
    assert_recovered(&server, &held, "restarted");
    // And once more, the same process.
    pg.stop();
    assert_unavailable(&server, &held, "stopped again");
    pg.start();
    assert_recovered(&server, &held, "restarted again");
}

/// Every process of the server stopped: connections stay open and nothing
/// answers on them, new ones hang after the TCP connect. The pool's
/// connect timeout bounds a request that needs a new connection.
#[test]
fn a_paused_database_answers_within_the_bound_and_the_node_recovers() {
    let pg = postgres::Private::new();
    let server = TestServer::start_on(&pg.url(), &[], &[]);
    let held = hold(&server);
    // No idle pooled connection from before: each request needs a new one.
    pg.cut_connections();
    assert!(server.eventually(Duration::from_secs(10), || server.get("/readyz").status == 200));
    pg.cut_connections();
    pg.pause();
    let health = timed("/healthz", || server.get("/healthz"));
    assert_eq!(health.status, 200, "{}", health.body);
    let register = timed("v0.1 registration", || {
        server.post_json(
            "/agent/auth",
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
    });
    register.assert_error(503, "temporarily_unavailable");
    assert_eq!(register.header("retry-after"), Some("1"));
    let ready = timed("/readyz", || server.get("/readyz"));
    assert_eq!(ready.status, 503, "{}", ready.body);
    pg.resume();
    assert_recovered(&server, &held, "resumed");
}

/// Every connection cut under a running node (`pg_terminate_backend`):
/// the node drops the broken ones and makes new ones.
#[test]
fn cut_connections_are_replaced() {
    let pg = postgres::Private::new();
    let server = TestServer::start_on(&pg.url(), &[], &[]);
    let held = hold(&server);
    for _ in 0..3 {
        pg.cut_connections();
        assert_recovered(&server, &held, "cut");
    }
}

/// One POST over a fresh connection; `None` when no whole answer came (the
/// node was killed).
fn try_register(base: &str) -> Option<(u16, String)> {
    let body = r#"{"type":"anonymous","requested_credential_type":"api_key"}"#;
    let mut stream = TcpStream::connect(base.trim_start_matches("http://")).ok()?;
    stream.set_read_timeout(Some(BOUND)).ok()?;
    let head = format!(
        "POST /agent/auth HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Two nodes on one database, clients registering through both; one node
/// is killed (SIGKILL) mid-load. Every registration either node answered
/// 200 authenticates on the surviving node.
#[test]
fn a_node_killed_mid_load_loses_nothing_it_acknowledged() {
    let url = postgres::database();
    let (mut killed, survivor) = (
        TestServer::start_on(&url, &[], &[]),
        TestServer::start_on(&url, &[], &[]),
    );
    let acknowledged = Mutex::new(Vec::<(String, String)>::new());
    let stop = AtomicBool::new(false);
    let (killed_base, survivor_base) = (killed.base.clone(), survivor.base.clone());
    let pid = killed.pid();
    std::thread::scope(|scope| {
        for n in 0..8 {
            let base = if n % 2 == 0 { &killed_base } else { &survivor_base };
            let (acknowledged, stop) = (&acknowledged, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some((200, body)) = try_register(base) {
                        let reg: serde_json::Value = serde_json::from_str(&body).unwrap();
                        let key = reg["credential"].as_str().unwrap().to_string();
                        acknowledged.lock().unwrap().push((base.clone(), key));
                    }
                }
            });
        }
        // Mid-load: once both nodes have acknowledged some.
        let started = Instant::now();
        while acknowledged
            .lock()
            .unwrap()
            .iter()
            .filter(|(b, _)| *b == killed_base)
            .count()
            < 20
        {
            assert!(started.elapsed() < Duration::from_secs(60), "no load reached the node");
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed_at = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        assert!(killed_at.unwrap().success());
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
    });
    let (status, _) = killed.stop_after_signal();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    let acknowledged = acknowledged.into_inner().unwrap();
    let by_killed = acknowledged.iter().filter(|(b, _)| *b == killed_base).count();
    assert!(
        by_killed >= 20 && acknowledged.len() > by_killed,
        "{by_killed} of {}",
        acknowledged.len()
    );
    for (base, key) in &acknowledged {
        let reply = survivor.get_with_token("/api/resource", key);
        assert_eq!(
            reply.status, 200,
            "a registration {base} acknowledged is gone on the survivor: {}",
            reply.body
        );
    }
}
