//! The PostgreSQL store (issue 14) against a real server
//! (`common::postgres`): the fixture itself, the schema steps, opening and
//! the pool's bounds.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ::postgres::{Client, NoTls};
use authmd::internals::store::postgres as store;
use store::Limits;

use crate::common::postgres;

/// The last step of schema/postgres.sql (and schema.sql).
const LATEST_STEP: u32 = 15;

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap()
}

/// Each test gets a database of its own, empty, on a server that syncs
/// its writes and listens on loopback only.
#[test]
fn fixture_hands_out_fresh_databases() {
    let (first, second) = (postgres::database(), postgres::database());
    assert_ne!(first, second);
    let server = postgres::server();
    let name = |url: &str| url.rsplit('/').next().unwrap().to_string();
    server.psql(&name(&first), "CREATE TABLE only_here (x INTEGER)");
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'";
    assert_eq!(server.psql(&name(&first), tables).trim(), "1");
    assert_eq!(server.psql(&name(&second), tables).trim(), "0");
    assert_eq!(server.psql("postgres", "SHOW fsync").trim(), "on");
    assert_eq!(server.psql("postgres", "SHOW listen_addresses").trim(), "127.0.0.1");
    let socket_dir = server.psql("postgres", "SHOW unix_socket_directories");
    assert_eq!(socket_dir.trim(), server.dir().to_str().unwrap());
}

/// The constraint (or unique index) a refused statement violated.
fn violated(result: Result<(), ::postgres::Error>) -> String {
    let error = result.expect_err("the statement should be refused");
    let db = error
        .as_db_error()
        .unwrap_or_else(|| panic!("not a database error: {error}"));
    db.constraint()
        .unwrap_or_else(|| panic!("no constraint named: {db}"))
        .to_string()
}

/// `(table, column, not null)` of every column of the public schema.
fn pg_columns(client: &mut Client) -> BTreeSet<(String, String, bool)> {
    client
        .query(
            "SELECT table_name::TEXT, column_name::TEXT, is_nullable = 'NO' FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'schema_steps'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The same for the SQLite schema, all its steps applied; a primary key
/// column counts as NOT NULL (SQLite lets a TEXT key be NULL, a quirk the
/// store never relies on).
fn sqlite_columns() -> (BTreeSet<(String, String, bool)>, BTreeSet<String>) {
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(include_str!("../../schema.sql")).unwrap();
    let mut tables = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap();
    let tables: Vec<String> = tables
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut columns = BTreeSet::new();
    for table in tables {
        let mut info = db.prepare(&format!("PRAGMA table_info({table})")).unwrap();
        let rows = info
            .query_map([], |r| {
                Ok((r.get::<_, String>(1)?, r.get::<_, bool>(3)? || r.get::<_, i64>(5)? > 0))
            })
            .unwrap();
        for row in rows {
            let (column, not_null) = row.unwrap();
            columns.insert((table.clone(), column, not_null));
        }
    }
    let mut indexes = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'")
        .unwrap();
    let indexes = indexes
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (columns, indexes)
}

/// On an empty database every step applies, once, and leaves the tables,
/// columns (with their nullability) and named indexes that SQLite's steps
/// leave; the CHECKs the later steps changed hold their new values.
#[test]
fn schema_applies_on_an_empty_database_as_sqlite_has_it() {
    let mut client = connect(&postgres::database());
    assert_eq!(
        store::migrate(&mut client).unwrap(),
        (1..=LATEST_STEP).collect::<Vec<u32>>()
    );
    let steps: Vec<i32> = client
        .query("SELECT step FROM schema_steps ORDER BY step", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(steps, (1..=LATEST_STEP as i32).collect::<Vec<i32>>());

    let (sqlite_columns, sqlite_indexes) = sqlite_columns();
    assert_eq!(pg_columns(&mut client), sqlite_columns);
    let pg_indexes: BTreeSet<String> = client
        .query(
            "SELECT indexname::TEXT FROM pg_indexes WHERE schemaname = 'public'
             AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(pg_indexes, sqlite_indexes);

    // Step 9 widened the kind's CHECK; step 8 keyed delegations by generation.
    client
        .batch_execute(
            "INSERT INTO users (id, created_ms) VALUES ('u', 1);
             INSERT INTO registrations (id, kind, status, created_ms, updated_ms)
                 VALUES ('r', 'service_auth', 'active', 1, 1);
             INSERT INTO delegations (iss, sub, generation, user_id, registration_id, created_ms)
                 VALUES ('i', 's', 'v0.1', 'u', 'r', 1), ('i', 's', 'v0.7', 'u', 'r', 1);",
        )
        .unwrap();
    let refused = client.batch_execute(
        "INSERT INTO registrations (id, kind, status, created_ms, updated_ms) VALUES ('q', 'other', 'active', 1, 1)",
    );
    assert_eq!(violated(refused), "registrations_kind_check");
    // One current signing key at most (the expression index of step 6).
    client
        .batch_execute("INSERT INTO signing_keys (kid, pkcs8, created_ms) VALUES ('a', '\\x00', 1)")
        .unwrap();
    let second = client.batch_execute("INSERT INTO signing_keys (kid, pkcs8, created_ms) VALUES ('b', '\\x00', 1)");
    assert_eq!(violated(second), "signing_keys_one_current");
}

/// Opening a database at the latest step applies nothing and changes
/// nothing.
#[test]
fn opening_again_applies_nothing() {
    let url = postgres::database();
    assert_eq!(
        store::open(&url).unwrap().steps_applied(),
        (1..=LATEST_STEP).collect::<Vec<u32>>()
    );
    let recorded = || -> Vec<(i32, i64)> {
        connect(&url)
            .query("SELECT step, applied_ms FROM schema_steps ORDER BY step", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let before = recorded();
    assert_eq!(store::open(&url).unwrap().steps_applied(), &[] as &[u32]);
    assert_eq!(store::migrate(&mut connect(&url)).unwrap(), Vec::<u32>::new());
    assert_eq!(recorded(), before);
}

/// Two nodes opening the same fresh database at the same moment apply
/// every step exactly once between them, and both succeed.
#[test]
fn two_nodes_opening_at_once_apply_each_step_once() {
    let url = postgres::database();
    for _ in 0..3 {
        let barrier = Arc::new(Barrier::new(2));
        let nodes: Vec<_> = (0..2)
            .map(|_| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    store::open(&url).unwrap().steps_applied().to_vec()
                })
            })
            .collect();
        let mut applied: Vec<u32> = nodes.into_iter().flat_map(|n| n.join().unwrap()).collect();
        applied.sort();
        assert_eq!(applied, (1..=LATEST_STEP).collect::<Vec<u32>>());
        let mut client = connect(&url);
        let count: i64 = client
            .query_one("SELECT count(*) FROM schema_steps", &[])
            .unwrap()
            .get(0);
        assert_eq!(count, i64::from(LATEST_STEP));
        assert_eq!(pg_columns(&mut client), sqlite_columns().0);
        // Fresh again for the next round.
        client
            .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            .unwrap();
    }
}

fn limits(connections: usize, wait_ms: u64) -> Limits {
    Limits {
        connections,
        wait: Duration::from_millis(wait_ms),
        ..Limits::default()
    }
}

/// The server's connections to `url`'s database made by the pool.
fn server_connections(url: &str) -> i64 {
    let database = url.rsplit('/').next().unwrap();
    connect(url)
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'authmd'",
            &[&database],
        )
        .unwrap()
        .get(0)
}

/// Many threads taking and returning connections never hold more than the
/// bound between them, nor does the server see more; all of them are
/// served.
#[test]
fn pool_never_hands_out_more_than_its_bound() {
    let url = postgres::database();
    let pool = store::open_with(&url, limits(3, 10_000)).unwrap();
    let held = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (pool, held, most) = (pool.clone(), held.clone(), most.clone());
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let mut conn = pool.get().unwrap();
                    let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    assert!(pool.open_connections() <= 3);
                    conn.batch_execute("SELECT pg_sleep(0.002)").unwrap();
                    held.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert!(
        most.load(Ordering::SeqCst) <= 3,
        "{} held at once",
        most.load(Ordering::SeqCst)
    );
    assert!(pool.open_connections() <= 3);
    assert_eq!(server_connections(&url), pool.open_connections() as i64);
}

/// With every connection in use, a caller gets an error once the wait is
/// up, not a hang; a connection given back serves the next caller.
#[test]
fn pool_waiter_past_the_wait_gets_an_error() {
    let pool = store::open_with(&postgres::database(), limits(2, 300)).unwrap();
    let first = pool.get().unwrap();
    let _second = pool.get().unwrap();
    let started = Instant::now();
    let Err(error) = pool.get() else {
        panic!("a third connection beyond the bound of 2")
    };
    let waited = started.elapsed();
    assert!(
        matches!(error, authmd::internals::store::Error::Unavailable(_)),
        "{error}"
    );
    assert!(error.to_string().contains("all 2 connections stayed in use"), "{error}");
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A caller waiting when one comes back gets it.
    let waiter = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.get().map(|_| ()).map_err(|e| e.to_string()))
    };
    std::thread::sleep(Duration::from_millis(50));
    drop(first);
    waiter.join().unwrap().unwrap();
    assert_eq!(pool.open_connections(), 2);
}

/// The server cancels a statement past the pool's statement timeout.
#[test]
fn statements_are_cancelled_past_the_timeout() {
    let limits = Limits {
        statement_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let pool = store::open_with(&postgres::database(), limits).unwrap();
    let started = Instant::now();
    let error = pool.get().unwrap().batch_execute("SELECT pg_sleep(10)").unwrap_err();
    assert_eq!(
        error.code(),
        Some(&::postgres::error::SqlState::QUERY_CANCELED),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A server that accepts the connection and then says nothing: opening
/// fails at the connect timeout instead of waiting forever.
#[test]
fn a_silent_server_fails_at_the_connect_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let limits = Limits {
        connect_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let started = Instant::now();
    let Err(error) = store::open_with(&format!("postgres://authmd@127.0.0.1:{port}/db"), limits) else {
        panic!("opened a database on a server that never answered")
    };
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(error.to_string().contains("no connection within"), "{error}");
    drop(silent);
}

/// `sslmode=require` insists on TLS: a server without it is refused, not
/// used in clear. The fixture's server has no TLS.
#[test]
fn sslmode_require_refuses_a_server_without_tls() {
    let url = format!("{}?sslmode=require", postgres::database());
    let Err(error) = store::open(&url) else {
        panic!("connected without TLS")
    };
    assert!(error.to_string().contains("TLS"), "{error}");
}

/// Errors name the server and database, never the URL's password.
#[test]
fn open_errors_never_carry_the_password() {
    let closed = crate::common::smtp::free_port();
    let Err(error) = store::open(&format!("postgres://authmd:hunter2@127.0.0.1:{closed}/app")) else {
        panic!("connected to a closed port")
    };
    let said = error.to_string();
    assert!(said.contains(&format!("127.0.0.1:{closed}/app")), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

/// Each SQL text is prepared once per connection and its statement reused
/// (one round trip, no parse or plan, on every later run), through commits
/// and rollbacks alike; a statement that fails is prepared again.
#[test]
fn statements_are_prepared_once_per_connection() {
    use authmd::internals::store::Tx;
    use authmd::time::UnixMs;
    let pool = store::open_with(
        &postgres::database(),
        Limits {
            connections: 1,
            ..Limits::default()
        },
    )
    .unwrap();
    let at = UnixMs::from_millis;
    for n in 0..5 {
        let jti = format!("j{n}");
        let answer: Result<(), authmd::Error> = pool.write(|tx: &dyn Tx| {
            assert!(tx.first_use("https://p", &jti, at(2_000), at(1_000))?);
            // Every other transaction rolls back.
            match n % 2 {
                0 => Ok(()),
                _ => Err(authmd::Error::InvalidRequest("roll back".into())),
            }
        });
        assert_eq!(answer.is_ok(), n % 2 == 0, "{answer:?}");
    }
    let mut conn = pool.get().unwrap();
    let prepared: Vec<String> = conn
        .query(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO seen_jtis%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(prepared.len(), 1, "{prepared:?}");
    drop(conn);
    // Committed twice and thrice rolled back: the rolled back ones' rows are gone.
    let kept: i64 = pool
        .get()
        .unwrap()
        .query_one("SELECT count(*) FROM seen_jtis", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 3);
}
