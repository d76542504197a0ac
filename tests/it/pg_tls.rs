//! Issue 14 "TLS via rustls when the URL asks for it": authmd on a
//! PostgreSQL server of the test's own with `ssl = on`, its certificate
//! (for `localhost` only) signed by a CA the test makes with the openssl
//! CLI (`scripts/test` installs it). What each `sslmode` does
//! (`store/postgres/tls.rs`): `verify-full` and `require` check the chain
//! and the host name, `verify-ca` the chain to `sslrootcert` only, `prefer`
//! encrypts when offered and checks nothing, `disable` never encrypts. The
//! server's own view (`pg_stat_ssl`) says whether a connection is TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

use ::postgres::NoTls;
use authmd::internals::store::postgres as store;

use crate::common::{self, Client, TestServer, postgres};

/// A CA made here, in a temp dir of its own, and what it signs.
struct Ca {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new P-256 key: `openssl req` options.
const NEW_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

impl Ca {
    fn new(name: &str) -> Ca {
        let dir = tempfile::tempdir().expect("temp dir");
        let subject = format!("/CN=authmd test {name}");
        let mut args = vec!["req", "-x509", "-new", "-days", "2", "-subj", &subject];
        args.extend(NEW_KEY);
        args.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(dir.path(), &args);
        Ca { dir }
    }

    /// The CA's certificate (PEM), for `sslrootcert`.
    fn cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A server certificate for `names` (`subjectAltName`, such as
    /// `DNS:localhost`) and its key, PEM.
    fn server(&self, names: &str) -> (Vec<u8>, Vec<u8>) {
        let dir = self.dir.path();
        let mut args = vec!["req", "-new", "-subj", "/CN=authmd test server"];
        args.extend(NEW_KEY);
        args.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(dir, &args);
        let extensions = format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName={names}\n"
        );
        std::fs::write(dir.join("server.ext"), extensions).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-CAserial",
                "ca.srl",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        (read("server.crt"), read("server.key"))
    }
}

/// A server of the test's own with TLS on, its certificate for
/// `localhost` only, signed by `ca`.
fn tls_server(ca: &Ca) -> postgres::Private {
    let mut pg = postgres::Private::new();
    let (cert, key) = ca.server("DNS:localhost");
    pg.enable_tls(&cert, &key);
    pg
}

fn url(pg: &postgres::Private, host: &str, query: &str) -> String {
    format!("postgres://postgres@{host}:{}/postgres?{query}", pg.port)
}

fn root(ca: &Ca) -> String {
    format!("sslrootcert={}", ca.cert().display())
}

/// Whether a connection of the pool `url` opens is TLS, as the server sees it.
fn pool_uses_tls(url: &str) -> bool {
    let pool = store::open(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut conn = pool.get().unwrap();
    let row = conn
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .unwrap();
    row.get(0)
}

/// Why opening `url` fails.
fn refused(url: &str) -> String {
    match store::open(url) {
        Ok(_) => panic!("connected: {url}"),
        Err(error) => error.to_string(),
    }
}

/// `(all, over TLS)`: the connections named `authmd` the server has now.
fn authmd_connections(pg: &postgres::Private) -> (i64, i64) {
    let mut client = ::postgres::Client::connect(&pg.url(), NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl)
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.application_name = 'authmd'",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn verify_full_with_the_ca_serves_and_runs_commands_over_tls() {
    let ca = Ca::new("CA");
    let pg = tls_server(&ca);
    let url = url(&pg, "localhost", &format!("sslmode=verify-full&{}", root(&ca)));
    assert!(pool_uses_tls(&url), "verify-full connected in clear");

    let server = TestServer::start_on(&url, &[], &[]);
    let registered = server.register_anonymous();
    let key = registered["credential"].as_str().unwrap();
    let reply = server.get_with_token("/api/resource", key);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (all, encrypted) = authmd_connections(&pg);
    assert!(all > 0, "the server holds no connection named authmd");
    assert_eq!(encrypted, all, "of the server's {all} connections, {encrypted} are TLS");

    let listed = server.cli_ok(&["registrations", "list", "--json"]);
    let id = registered["registration_id"].as_str().unwrap();
    assert!(listed.contains(id), "{id} not in:\n{listed}");
}

/// The certificate is for `localhost`; connecting to `127.0.0.1` is
/// refused by verify-full and by require (which checks as verify-full
/// does), and accepted by verify-ca, which checks only the chain.
#[test]
fn the_host_name_is_checked_by_verify_full_and_require_not_by_verify_ca() {
    let ca = Ca::new("CA");
    let pg = tls_server(&ca);
    for mode in ["verify-full", "require"] {
        let said = refused(&url(&pg, "127.0.0.1", &format!("sslmode={mode}&{}", root(&ca))));
        assert!(
            said.starts_with(&format!("127.0.0.1:{}/postgres: TLS: ", pg.port)),
            "{mode}: {said}"
        );
        assert!(
            said.contains("certificate is not for the host name 127.0.0.1"),
            "{mode}: {said}"
        );
    }
    assert!(pool_uses_tls(&url(
        &pg,
        "127.0.0.1",
        &format!("sslmode=verify-ca&{}", root(&ca))
    )));
    assert!(pool_uses_tls(&url(
        &pg,
        "localhost",
        &format!("sslmode=require&{}", root(&ca))
    )));

    // As an operator sees it.
    let wrong = url(&pg, "127.0.0.1", &format!("sslmode=verify-full&{}", root(&ca)));
    let out = common::cli(Path::new(&wrong), &["registrations", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not for the host name 127.0.0.1"), "{stderr}");
}

#[test]
fn a_certificate_the_given_ca_did_not_sign_is_refused() {
    let (ca, other) = (Ca::new("CA"), Ca::new("other CA"));
    let pg = tls_server(&ca);
    for mode in ["verify-full", "verify-ca", "require"] {
        let said = refused(&url(&pg, "localhost", &format!("sslmode={mode}&{}", root(&other))));
        let expected = format!(
            "localhost:{}/postgres: TLS: the server's certificate is not signed by a CA in sslrootcert {}",
            pg.port,
            other.cert().display()
        );
        assert_eq!(said, expected, "{mode}");
    }
    // Without sslrootcert: the public roots, which did not sign it either.
    for mode in ["verify-full", "require"] {
        let said = refused(&url(&pg, "localhost", &format!("sslmode={mode}")));
        assert!(
            said.contains("not signed by a CA in the public roots"),
            "{mode}: {said}"
        );
    }
}

/// The fixture's shared server has TLS off: a URL that demands TLS is
/// refused, saying so, without the password.
#[test]
fn a_server_without_tls_is_refused_when_the_url_demands_tls() {
    let ca = Ca::new("CA");
    let plain = postgres::database().replacen("postgres@", "postgres:hunter2@", 1);
    let database = plain.rsplit('/').next().unwrap();
    let target = format!("127.0.0.1:{}/{database}", postgres::server().port);
    for query in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-full&{}", root(&ca)),
        format!("sslmode=verify-ca&{}", root(&ca)),
    ] {
        let said = refused(&format!("{plain}?{query}"));
        assert_eq!(
            said,
            format!("{target}: TLS: the server does not offer TLS (is its `ssl` setting on?)")
        );
    }

    let out = common::cli(
        Path::new(&format!("{plain}?sslmode=require")),
        &["registrations", "list"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{target}: TLS: the server does not offer TLS")),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// prefer (also what no sslmode means): TLS when the server offers it,
/// whatever its certificate (here neither its name nor its CA is known),
/// and in clear when it does not.
#[test]
fn prefer_encrypts_when_tls_is_offered_and_goes_on_in_clear_when_not() {
    let ca = Ca::new("CA");
    let pg = tls_server(&ca);
    assert!(pool_uses_tls(&url(&pg, "127.0.0.1", "sslmode=prefer")));
    assert!(pool_uses_tls(&pg.url()), "no sslmode is prefer");
    assert!(!pool_uses_tls(&url(&pg, "127.0.0.1", "sslmode=disable")));

    let plain = postgres::database();
    assert!(!pool_uses_tls(&format!("{plain}?sslmode=prefer")));
    assert!(!pool_uses_tls(&plain));
}

/// Settings that cannot work are refused before any connection, naming
/// the server and never the password; the connection is not tried (the
/// port is closed, which would say otherwise).
#[test]
fn tls_settings_that_cannot_work_are_refused_before_connecting() {
    let ca = Ca::new("CA");
    let closed = common::smtp::free_port();
    let base = format!("postgres://authmd:hunter2@db.example:{closed}/app");
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = dir.path().join("missing.pem");
    for (query, says) in [
        (
            format!("sslmode=verify-full&sslrootcert={}", missing.display()),
            format!("cannot read sslrootcert {}", missing.display()),
        ),
        (
            format!("sslmode=verify-full&sslrootcert={}", not_pem.display()),
            format!("sslrootcert {} holds no certificate", not_pem.display()),
        ),
        (
            format!("sslmode=prefer&{}", root(&ca)),
            "sslmode=prefer checks no certificate".into(),
        ),
        (
            root(&ca),
            "sslmode=prefer (no sslmode given) checks no certificate".into(),
        ),
        ("sslmode=verify-ca".into(), "give sslrootcert=PATH".into()),
        ("sslmode=verify_full".into(), "sslmode=verify_full is none of".into()),
    ] {
        let out = common::cli(Path::new(&format!("{base}?{query}")), &["registrations", "list"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{query}: {stderr}");
        assert!(
            stderr.contains(&format!("db.example:{closed}/app: TLS: ")),
            "{query}: {stderr}"
        );
        assert!(stderr.contains(&says), "{query}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{query}: {stderr}");
    }
}
