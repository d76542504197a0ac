//! Issue 14: `authmd backup PATH`, the real binary copying a real server's
//! SQLite file while the server keeps taking registrations.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Client, TestServer, cli};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn registration_ids(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.prepare("SELECT id FROM registrations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_copy_taken_while_registrations_continue_is_whole_and_consistent() {
    let server = Arc::new(TestServer::start_sqlite(&[], &[]));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, acknowledged, stop) = (server.clone(), acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let reg = server.register_anonymous();
                acknowledged
                    .lock()
                    .unwrap()
                    .push(reg["registration_id"].as_str().unwrap().to_string());
            }
        })
    };
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 30 {
        assert!(started.elapsed() < Duration::from_secs(30), "registrations too slow");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let copy = server.dir.path().join("copy.db");
    let out = cli(&server.db(), &["backup", copy.to_str().unwrap()]);
    let during_backup = acknowledged.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("integrity_check ok"), "{stdout}");
    assert!(during_backup >= before.len());

    // One file, whole, at the latest step, with everything acknowledged before.
    assert!(!server.dir.path().join("copy.db-wal").exists());
    // It holds the signing keys: its owner's alone, whatever the umask.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the copy's mode is {mode:o}");
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(verdict, "ok");
    let step = |db: &Path| -> u32 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(step(&copy), step(&server.db()));
    drop(conn);
    let copied = registration_ids(&copy);
    for id in &before {
        assert!(
            copied.contains(id),
            "{id}, acknowledged before the backup, is not in it"
        );
    }
    // And authmd opens it as a database of its own.
    let listed = cli(&copy, &["registrations", "list", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains(&before[0]));
}

#[test]
fn an_existing_path_is_refused_without_force() {
    let server = TestServer::start_sqlite(&[], &[]);
    server.register_anonymous();
    let copy = server.dir.path().join("copy.db");
    std::fs::write(&copy, b"precious").unwrap();
    let out = cli(&server.db(), &["backup", copy.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--force"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&copy).unwrap(), b"precious");
    let out = cli(&server.db(), &["backup", copy.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(registration_ids(&copy).len(), 1);
    // No temporary file left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let help = cli(&server.db(), &["backup", "--help"]);
    assert!(text(&help.stdout).contains("pg_dump"));
    let missing = cli(&server.dir.path().join("none.db"), &["backup", "x.db"]);
    assert_eq!(missing.status.code(), Some(78), "{}", text(&missing.stderr));
}

#[cfg(feature = "postgres")]
#[test]
fn on_postgres_it_points_to_pg_dump() {
    let url = crate::common::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let out = cli(Path::new(&url), &["backup", dir.path().join("x.db").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("pg_dump"), "{}", text(&out.stderr));
    assert!(!dir.path().join("x.db").exists());
}
