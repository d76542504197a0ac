//! Issue 14 "Faults": authmd on a PostgreSQL server of the test's own
//! (`postgres::Private`) that the test stops, pauses and cuts. While the
//! database cannot answer, `/healthz` stays 200, `/readyz` is 503, and each
//! surface refuses in its own envelope with `503 temporarily_unavailable`
//! and `Retry-After`, each answer within [`BOUND`]; when the database is
//! back the same process answers again. And a node killed mid-load loses
//! nothing it acknowledged.
//!
//! A server stopped whole ([`freeze`]: `SIGSTOP` to every process of it)
//! is the hard case: its kernel still acknowledges, so an open connection
//! hangs with no error, and only the pool's watchdog
//! (`src/store/postgres/watchdog.rs`) ends the wait.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authmd::internals::store::Tx;
use authmd::internals::store::postgres as store;

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
    // A person on a page gets a page saying so (issue 15), not JSON.
    let page = timed("a claim page", || {
        server.request(
            "GET",
            "/agent/auth/claim/view?token=cat_unknown",
            &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
            b"",
        )
    });
    assert_eq!(page.status, 503, "{when}: {}", page.body);
    assert!(
        page.header("content-type").is_some_and(|t| t.starts_with("text/html")),
        "{when}: {page:?}"
    );
    assert!(page.body.contains("Try again in a moment"), "{when}: {}", page.body);
    retry(&page);
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

/// The postmaster stopped (`Private::pause` reaches it alone: see
/// [`freeze`]), with no connection open: a new one hangs after the TCP
/// connect. The pool's connect timeout bounds a request that needs one.
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

/// Every process of a server stopped, until dropped ([`freeze`]).
struct Frozen {
    postmaster: u32,
}

/// Stops every process of `pg` (`SIGSTOP`): the postmaster, then each of
/// its children, the open connections' backends among them. Not
/// `Private::pause`: each postmaster child is a process group of its own
/// (`setsid`), so the pause's group signal reaches the postmaster only, and
/// open connections go on answering. Dropping the answer resumes them all,
/// on a failed assertion too (`Private`'s own drop, which does not resume
/// first, would wait for ever on a stopped postmaster).
fn freeze(pg: &postgres::Private) -> Frozen {
    let mut client = ::postgres::Client::connect(&pg.url(), ::postgres::NoTls).unwrap();
    let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let postmaster = parent(backend as u32).expect("the backend's postmaster");
    drop(client);
    // The postmaster first: no process starts after its children are listed.
    signal("-STOP", postmaster);
    let frozen = Frozen { postmaster };
    for child in children(postmaster) {
        signal("-STOP", child);
    }
    frozen
}

impl Frozen {
    fn thaw(postmaster: u32) {
        for child in children(postmaster) {
            signal("-CONT", child);
        }
        signal("-CONT", postmaster);
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        Frozen::thaw(self.postmaster);
    }
}

/// `call()`, which must not take [`BOUND`] on the server `postmaster`
/// leads, frozen: should it, the server is thawed then, so the test fails
/// on the time taken instead of hanging.
fn bounded<T>(what: &str, postmaster: u32, call: impl FnOnce() -> T) -> T {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let alarm = std::thread::spawn(move || {
        if finished.recv_timeout(BOUND) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            Frozen::thaw(postmaster);
        }
    });
    let started = Instant::now();
    let value = call();
    let took = started.elapsed();
    drop(done);
    alarm.join().unwrap();
    assert!(
        took < BOUND,
        "{what} took {took:?}: it waited until the server was thawed"
    );
    value
}

/// The parent of process `pid`, from `/proc/<pid>/stat`.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| parent(*child) == Some(pid))
        .collect()
}

/// Sends `which` to `pid` (a child may have exited meanwhile: not checked).
fn signal(which: &str, pid: u32) {
    let _ = Command::new("kill").args([which, &pid.to_string()]).status();
}

/// The node's connections to `pg` (its pools' open ones).
fn node_connections(pg: &postgres::Private) -> i64 {
    let mut client = ::postgres::Client::connect(&pg.url(), ::postgres::NoTls).unwrap();
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'authmd'",
            &[],
        )
        .unwrap()
        .get(0)
}

/// One request over a fresh connection, waiting for the answer longer
/// than [`BOUND`] (the common client gives up at 10 s, before the
/// watchdog's default bound), so [`timed`] reports a slow answer as slow
/// and a hang as no answer at all.
fn patient(server: &TestServer, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(BOUND + Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    stream.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        panic!("{method} {path}: no answer ({read:?}); stderr:\n{}", server.stderr())
    };
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "a length-delimited answer: {head}"
    );
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Issue 14: the server frozen whole ([`freeze`]) with the node's pooled
/// connections open. A request on one of them hangs with no error from the
/// kernel (without the watchdog, for ever); the
/// watchdog cuts it at the pool's round-trip bound (12 s by default), so
/// it answers 503 `temporarily_unavailable` with `Retry-After` within
/// [`BOUND`], `/healthz` stays 200, `/readyz` is 503, and once thawed the
/// node answers again by itself.
#[test]
fn a_frozen_database_with_open_connections_answers_503_within_the_bound() {
    let pg = postgres::Private::new();
    let server = TestServer::start_on(&pg.url(), &[], &[]);
    let held = hold(&server);
    // Open pooled connections in both pools: requests at once, from several
    // clients, each needing its own.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..3 {
                    server.register_anonymous();
                    assert_eq!(server.get_with_token("/api/resource", &held.key).status, 200);
                    assert_eq!(server.get("/readyz").status, 200);
                }
            });
        }
    });
    let open = node_connections(&pg);
    assert!(open >= 2, "{open} pooled connections open");
    let frozen = freeze(&pg);

    let health = timed("/healthz", || patient(&server, "GET", "/healthz", &[], ""));
    assert_eq!(health.status, 200, "{}", health.body);
    let ready = timed("/readyz", || patient(&server, "GET", "/readyz", &[], ""));
    assert_eq!(ready.status, 503, "{}", ready.body);
    let retry = |reply: &Reply| assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
    let register = timed("v0.1 registration", || {
        patient(
            &server,
            "POST",
            "/agent/auth",
            &[("Content-Type", "application/json")],
            r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        )
    });
    register.assert_error(503, "temporarily_unavailable");
    retry(&register);
    let api = timed("guarded API", || {
        patient(
            &server,
            "GET",
            "/api/resource",
            &[("Authorization", &format!("Bearer {}", held.key))],
            "",
        )
    });
    api.assert_error(503, "temporarily_unavailable");
    retry(&api);
    assert!(
        server.stderr().contains("its connection is cut"),
        "the watchdog says what it did; stderr:\n{}",
        server.stderr()
    );
    drop(frozen);
    assert_recovered(&server, &held, "resumed");
}

/// The watchdog on each kind of round trip, through the pool itself with a
/// short bound: BEGIN (a write's, a read's), a statement inside a
/// transaction, COMMIT, and an autocommit statement, each on a connection
/// open before the server was stopped, fail `Unavailable` within about the
/// bound; a transaction of many statements that together take longer than
/// the bound is not cut; and the pool works again once the server is back.
#[test]
fn the_watchdog_bounds_each_round_trip_not_the_transaction() {
    let pg = postgres::Private::new();
    let round_trip = Duration::from_secs(1);
    let limits = store::Limits {
        connections: 2,
        connect_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_millis(500),
        round_trip_timeout: round_trip,
        ..store::Limits::default()
    };
    let pool = store::open_with(&pg.url(), limits).unwrap();
    assert!(pool.get().unwrap().is_watched(), "a TCP connection is watched");

    // Many statements, longer than the bound in all: untouched.
    let started = Instant::now();
    pool.write(|tx| {
        for _ in 0..6 {
            tx.ping()?;
            std::thread::sleep(round_trip / 4);
        }
        Ok(())
    })
    .unwrap();
    assert!(started.elapsed() > round_trip);

    // One pool per case, each with idle connections from before, used (a
    // used connection has a statement's Close queued, and the driver's
    // client waits for its answer when dropped: the pool shuts the idle
    // ones down before it drops them after a cut, or that drop would hang).
    let cases: Vec<(&str, store::Pool)> = ["write's BEGIN", "read's BEGIN", "a statement", "COMMIT", "autocommit"]
        .into_iter()
        .map(|case| {
            let pool = pool.sibling(3);
            let used: Vec<_> = (0..3).map(|_| store::PgTx::reading(&pool).unwrap()).collect();
            for tx in &used {
                tx.ping().unwrap();
            }
            drop(used);
            assert_eq!(pool.open_connections(), 3);
            (case, pool)
        })
        .collect();
    let mut frozen = Some(freeze(&pg));
    // The same postmaster however often a case thaws and freezes it.
    let postmaster = frozen.as_ref().unwrap().postmaster;
    for (case, pool) in &cases {
        let started = Instant::now();
        let error = bounded(case, postmaster, || match *case {
            "write's BEGIN" => pool.write(|tx| tx.ping().map_err(Into::into)),
            "read's BEGIN" => pool.read(|tx| tx.ping().map_err(Into::into)),
            // BEGIN answered before the freeze; the statement after it hangs.
            "a statement" => {
                frozen = None;
                pool.write(|tx| {
                    tx.ping()?;
                    frozen = Some(freeze(&pg));
                    tx.ping().map_err(Into::into)
                })
            }
            "COMMIT" => {
                frozen = None;
                pool.write(|tx| {
                    tx.ping()?;
                    frozen = Some(freeze(&pg));
                    Ok(())
                })
            }
            "autocommit" => store::PgTx::reading_lazily(pool).ping().map_err(Into::into),
            _ => unreachable!(),
        })
        .unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(error, authmd::Error::DatabaseUnavailable(_)),
            "{case}: {error:?}"
        );
        assert!(took < round_trip + Duration::from_secs(2), "{case}: {took:?}");
        // The cut connection is not handed out again: a new one is made,
        // and waits its connect timeout, as the server is still stopped.
        let error = pool.read(|tx| tx.ping().map_err(Into::into)).unwrap_err();
        assert!(
            format!("{error:?}").contains("no connection within"),
            "{case}: {error:?}"
        );
    }
    drop(frozen);
    let back = Instant::now() + Duration::from_secs(10);
    while pool.write(|tx| tx.ping().map_err(Into::into)).is_err() {
        assert!(Instant::now() < back, "the pool never works again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Over a unix socket the server sees no inet endpoints, so the watchdog
/// cannot tell the socket: the connection works, unwatched.
#[test]
fn a_unix_socket_connection_works_unwatched() {
    let url = postgres::database();
    let database = url.rsplit('/').next().unwrap();
    let server = postgres::server();
    let socket = format!(
        "postgres://postgres@/{database}?host={}&port={}&sslmode=disable",
        server.dir().display(),
        server.port
    );
    let pool = store::open(&socket).unwrap();
    assert!(!pool.get().unwrap().is_watched());
    pool.write(|tx| tx.ping().map_err(Into::into)).unwrap();
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
