//! Issue 14: `authmd migrate --from PATH --to postgres://...`, the real
//! binary from a SQLite deployment made by really using the server into a
//! real PostgreSQL database (`common::postgres`), which then serves it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use ::postgres::{Client as Pg, NoTls};
use authmd_dev::{Alg, JwksServer, SigningKey};
use serde_json::{Value, json};

use crate::common::{BIN, Client, TestServer, cli, postgres};

fn migrate(from: &Path, to: &str, extra: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(["migrate", "--from"])
        .arg(from)
        .args(["--to", to])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run authmd migrate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Each table's column names in SQLite (`schema.sql` at its latest step).
fn sqlite_columns(db: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let columns = conn
                .prepare(&format!("PRAGMA table_info(\"{t}\")"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            (t, columns)
        })
        .collect()
}

/// Each table's column names in PostgreSQL (`schema/postgres.sql`), the
/// step bookkeeping left out.
fn postgres_columns(url: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut pg = Pg::connect(url, NoTls).unwrap();
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in pg
        .query(
            "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name <> 'schema_steps'",
            &[],
        )
        .unwrap()
    {
        tables.entry(row.get(0)).or_default().insert(row.get(1));
    }
    tables
}

/// Every row of every table as text, sorted: NULL as `NULL`, a blob as
/// `\x` and lower-case hex (PostgreSQL's bytea text form), numbers in decimal.
fn sqlite_dump(db: &Path, tables: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, Vec<Vec<String>>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    tables
        .iter()
        .map(|(table, columns)| {
            let exprs: Vec<String> = columns
                .iter()
                .map(|c| {
                    format!(
                        "CASE WHEN \"{c}\" IS NULL THEN 'NULL' WHEN typeof(\"{c}\") = 'blob' \
                         THEN '\\x' || lower(hex(\"{c}\")) ELSE CAST(\"{c}\" AS TEXT) END"
                    )
                })
                .collect();
            let mut rows: Vec<Vec<String>> = conn
                .prepare(&format!("SELECT {} FROM \"{table}\"", exprs.join(", ")))
                .unwrap()
                .query_map([], |r| (0..columns.len()).map(|i| r.get::<_, String>(i)).collect())
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.sort();
            (table.clone(), rows)
        })
        .collect()
}

fn postgres_dump(url: &str, tables: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut pg = Pg::connect(url, NoTls).unwrap();
    tables
        .iter()
        .map(|(table, columns)| {
            let exprs: Vec<String> = columns
                .iter()
                .map(|c| format!("CASE WHEN \"{c}\" IS NULL THEN 'NULL' ELSE \"{c}\"::TEXT END"))
                .collect();
            let mut rows: Vec<Vec<String>> = pg
                .query(&format!("SELECT {} FROM \"{table}\"", exprs.join(", ")), &[])
                .unwrap()
                .iter()
                .map(|r| (0..columns.len()).map(|i| r.get::<_, String>(i)).collect())
                .collect();
            rows.sort();
            (table.clone(), rows)
        })
        .collect()
}

fn audit(db: &Path) -> Vec<Value> {
    let out = cli(db, &["audit", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A schema change made to one backend and not the other fails here: the
/// copy is by column name, and a column on one side only fails it.
#[test]
fn both_schemas_have_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::new_db(dir.path(), "authmd.db");
    let url = postgres::database();
    let out = cli(Path::new(&url), &["config", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ours, theirs) = (sqlite_columns(&db), postgres_columns(&url));
    assert!(
        ours.contains_key("signing_keys") && ours.contains_key("local_keys"),
        "{ours:?}"
    );
    assert_eq!(ours, theirs, "SQLite's tables and columns, then PostgreSQL's");
}

#[test]
fn a_used_deployment_migrates_exactly_and_serves_on_postgres() {
    let mut server = TestServer::start_sqlite(&[], &[]);
    // v0.1 anonymous, claimed by mail: a claim attempt and its outbox message.
    let anonymous = server.register_anonymous();
    let api_key = anonymous["credential"].as_str().unwrap().to_string();
    let started = server.post_json(
        "/agent/auth/claim",
        &json!({ "claim_token": anonymous["claim_token"], "email": "bob@example.com" }).to_string(),
    );
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(server.wait_for_mail(1).len(), 1);
    // An ID-JAG registration: a provider, a user, a delegation, a seen jti.
    let key = SigningKey::generate(Alg::Es256, "k1");
    let provider = JwksServer::start("127.0.0.1:0").unwrap();
    provider.publish(&[&key], "public, max-age=3600");
    server.cli_ok(&["provider", "add", &provider.base_url, "--name", "Dev Provider"]);
    let claims = authmd_dev::id_jag_claims(&provider.base_url, "alice", &server.base, now_secs());
    let body = json!({
        "type": "identity_assertion",
        "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
        "assertion": key.sign(&authmd_dev::id_jag_header(), &claims),
        "requested_credential_type": "api_key",
    });
    let jag = server.post_json("/agent/auth", &body.to_string());
    assert_eq!(jag.status, 200, "{}", jag.body);
    let jag_key = jag.json()["credential"].as_str().unwrap().to_string();
    // A key rotation (two signing keys, one retired) and a setting.
    server.cli_ok(&["keys", "rotate"]);
    server.set("resource_name", "Migrated Service");
    let jwks = server.get("/.well-known/jwks.json");
    assert_eq!(jwks.status, 200);
    let jwks = jwks.json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    server.stop();
    let db = server.db();

    let url = postgres::database();
    let out = migrate(&db, &url, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));

    // Counts printed per table, all verified.
    let tables = sqlite_columns(&db);
    for table in tables.keys() {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{table} ")))
            .unwrap_or_else(|| panic!("no count for {table}:\n{stdout}"));
        assert!(line.ends_with("ok"), "{line}");
    }
    assert!(stdout.contains("counts verified"), "{stdout}");
    // Not a terminal: plain lines, no carriage returns.
    assert!(!stdout.contains('\r'), "{stdout:?}");

    // Every value of every row, exactly (keys, hashes, ids, NULLs).
    let (ours, theirs) = (sqlite_dump(&db, &tables), postgres_dump(&url, &tables));
    for table in tables.keys() {
        assert_eq!(ours[table], theirs[table], "table {table}");
    }
    for table in [
        "registrations",
        "credentials",
        "audit_events",
        "outbox",
        "signing_keys",
        "local_keys",
        "settings",
    ] {
        assert!(!ours[table].is_empty(), "the scenario left {table} empty");
    }
    // The same audit list through the CLI.
    let before = audit(&db);
    assert_eq!(audit(Path::new(&url)), before);

    // Served on PostgreSQL: the API keys authenticate, the same signing keys
    // are published, and new ids follow the copied ones.
    let served = TestServer::start_on(&url, &[], &[]);
    for credential in [&api_key, &jag_key] {
        let who = served.get_with_token("/api/resource", credential);
        assert_eq!(who.status, 200, "{}", who.body);
    }
    assert_eq!(served.get("/.well-known/jwks.json").json(), jwks);
    assert_eq!(served.get("/auth.md").status, 200);
    let last_id = before.iter().map(|e| e["id"].as_i64().unwrap()).max().unwrap();
    let fresh = served.register_anonymous();
    let created = served.events("registration.created");
    let new_event = created
        .iter()
        .find(|e| e["registration_id"] == fresh["registration_id"])
        .expect("the new registration's event");
    assert!(
        new_event["id"].as_i64().unwrap() > last_id,
        "{new_event} after {last_id}"
    );
    let mut pg = Pg::connect(&url, NoTls).unwrap();
    let outbox_next: bool = pg
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('outbox', 'id')) > (SELECT max(id) FROM outbox)",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(outbox_next, "the outbox sequence was not advanced past the copied ids");
}

#[test]
fn a_target_that_holds_rows_is_refused_and_left_untouched() {
    let mut server = TestServer::start_sqlite(&[], &[]);
    server.register_anonymous();
    server.stop();
    let url = postgres::database();
    let out = cli(Path::new(&url), &["config", "set", "resource_name", "Already Here"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tables = postgres_columns(&url);
    let before = postgres_dump(&url, &tables);

    let out = migrate(&server.db(), &url, &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not empty") && stderr.contains("settings (1 row)"),
        "{stderr}"
    );
    assert_eq!(postgres_dump(&url, &tables), before, "the refused target changed");
}

#[test]
fn json_counts_help_and_bad_arguments() {
    let mut server = TestServer::start_sqlite(&[], &[]);
    server.register_anonymous();
    server.stop();
    let url = postgres::database();
    let out = migrate(&server.db(), &url, &["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let counts: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let registrations = counts.iter().find(|c| c["table"] == "registrations").unwrap();
    assert_eq!(registrations["sqlite_rows"], 1);
    assert_eq!(registrations["postgres_rows"], 1);
    assert!(counts.iter().all(|c| c["ok"] == true), "{counts:?}");

    let help = std::process::Command::new(BIN)
        .args(["migrate", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = text(&help.stdout);
    assert!(
        help.contains("--from PATH [--to URL]") && help.contains("empty"),
        "{help}"
    );

    let missing = migrate(&server.dir.path().join("nothing.db"), &postgres::database(), &[]);
    assert_eq!(missing.status.code(), Some(78), "{}", text(&missing.stderr));
    assert!(
        !server.dir.path().join("nothing.db").exists(),
        "a missing source was created"
    );
    let not_a_url = migrate(&server.db(), "/tmp/x.db", &[]);
    assert_eq!(not_a_url.status.code(), Some(2));
}

/// Without `--to`, the target is the database of `--db` / `AUTHMD_DB`, so
/// `AUTHMD_DB_FILE` keeps the URL (its password) off the command line.
#[test]
fn the_target_may_come_from_authmd_db_file() {
    let mut server = TestServer::start_sqlite(&[], &[]);
    server.register_anonymous();
    server.stop();
    let url = postgres::database();
    let file = server.dir.path().join("db-url");
    std::fs::write(&file, format!("{url}\n")).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["migrate", "--from"])
        .arg(server.db())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTHMD_DB_FILE", &file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("counts verified"), "{}", text(&out.stdout));
    let tables = postgres_columns(&url);
    assert_eq!(postgres_dump(&url, &tables)["registrations"].len(), 1);

    // Neither --to nor a postgres:// --db: a usage error.
    let out = std::process::Command::new(BIN)
        .args(["migrate", "--from"])
        .arg(server.db())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("postgres://"), "{}", text(&out.stderr));
}
