//! Running authmd on a VM (issue 15) with the files in `contrib/`: the
//! systemd unit passes `systemd-analyze verify` and `security`, and the
//! shipped Caddyfile and nginx.conf, run by the real Caddy and nginx in front
//! of `authmd serve` started with the unit's own command line and the
//! example environment file, serve HTTPS, forward the client's address, and
//! let no client choose its IP with `X-Forwarded-For`.
//!
//! The client connects from 127.0.0.2, so the address authmd records tells
//! apart the client (127.0.0.2, forwarded by the proxy), the proxy itself
//! (127.0.0.1: `--trust-proxy` missing) and a forged header (203.0.113.x:
//! the proxy passed on what the client sent).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

fn contrib(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `Key=value` lines of a unit file (comments and sections left out).
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with('[') && !line.is_empty())
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn directive(unit: &str, key: &str) -> Option<String> {
    directives(unit).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The unit with the installed binary's path replaced by this build's
/// (`verify` checks that `ExecStart` names an executable).
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let unit = contrib("authmd.service").replace("/usr/local/bin/authmd", common::BIN);
    let path = dir.join("authmd.service");
    std::fs::write(&path, unit).unwrap();
    path
}

fn output(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

#[test]
fn the_unit_passes_systemd_analyze_verify_and_security() {
    let unit = contrib("authmd.service");
    for (key, value) in [
        ("User", "authmd"),
        ("StateDirectory", "authmd"),
        ("WorkingDirectory", "/var/lib/authmd"),
        ("EnvironmentFile", "-/etc/authmd/authmd.env"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("LimitNOFILE", "65536"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "78"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert_eq!(
            directive(&unit, key).as_deref(),
            Some(value),
            "{key}= in contrib/authmd.service"
        );
    }
    // The drain takes up to 10 s (8 s of grace, then exit): systemd must wait longer.
    let stop = directive(&unit, "TimeoutStopSec").expect("TimeoutStopSec=");
    let secs: u64 = stop.trim_end_matches('s').parse().expect("TimeoutStopSec in seconds");
    assert!(secs > 10, "TimeoutStopSec={stop}");
    let exec = directive(&unit, "ExecStart").expect("ExecStart=");
    let args: Vec<&str> = exec.split_whitespace().collect();
    let listen = args.iter().position(|a| *a == "--listen").map(|i| args[i + 1]);
    assert!(
        listen.is_some_and(|addr| addr.starts_with("127.0.0.1:")),
        "--trust-proxy is safe only on loopback: {exec}"
    );
    assert!(args.contains(&"--trust-proxy"), "{exec}");

    let dir = tempfile::tempdir().unwrap();
    let path = unit_for_this_build(dir.path());
    let verify = output(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(
        verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
        "systemd-analyze verify: {}\n{}{}",
        verify.status,
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // An exposure of 2.0 or less is systemd's "OK" (it says 1.4 today).
    let security = output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
            .arg(&path),
    );
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "systemd-analyze security: {}\n{}{}",
        security.status,
        report.lines().last().unwrap_or(""),
        String::from_utf8_lossy(&security.stderr)
    );
}

/// A port free right now (bound and let go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A process that is killed when the test ends, its stderr kept.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    name: &'static str,
}

impl Running {
    fn spawn(name: &'static str, command: &mut Command) -> Running {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(&mut pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Running { child, stderr, name }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("{} did not stop on SIGTERM", self.name);
    }
}

/// authmd as the unit runs it: the unit's `ExecStart` arguments (the
/// database in `dir`, the port `port`), the example environment file (the
/// base URL the proxy's), the working directory its state directory, and
/// anonymous registrations limited to 2 per client IP.
fn authmd_as_the_unit_runs_it(dir: &Path, port: u16, base_url: &str) -> Running {
    let unit = contrib("authmd.service");
    let exec = directive(&unit, "ExecStart").unwrap();
    let state = Path::new("/var/lib/authmd");
    assert_eq!(directive(&unit, "WorkingDirectory").as_deref(), state.to_str());
    let db = dir.join("authmd.db");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|arg| {
            arg.replace(state.join("authmd.db").to_str().unwrap(), db.to_str().unwrap())
                .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        })
        .collect();
    assert!(args.iter().any(|a| a == &format!("127.0.0.1:{port}")), "{exec}");

    // Commands other than serve refuse a database that does not exist yet.
    authmd::configure(&db, &[]).expect("create the database");
    let config = output(Command::new(common::BIN).arg("--db").arg(&db).args([
        "config",
        "set",
        "rate_limit.anonymous.per_ip",
        "2",
    ]));
    assert!(config.status.success(), "{}", String::from_utf8_lossy(&config.stderr));

    // EnvironmentFile: NAME=value lines, comments skipped.
    let mut env: Vec<(String, String)> = contrib("authmd.env.example")
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (k, v) = line.split_once('=').expect("NAME=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let base = env
        .iter_mut()
        .find(|(k, _)| k == "AUTHMD_BASE_URL")
        .expect("the example sets AUTHMD_BASE_URL");
    assert!(base.1.starts_with("https://"), "{}", base.1);
    base.1 = base_url.to_string();
    env.push(("AUTHMD_LOG_FORMAT".into(), "json".into()));

    let server = Running::spawn(
        "authmd",
        Command::new(common::BIN)
            .args(&args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env),
    );
    wait_for(&server, "authmd", || {
        server.stderr().contains(&format!("listening on 127.0.0.1:{port}"))
    });
    assert!(
        !server.stderr().contains("unknown environment variable"),
        "the example environment has a variable authmd does not know:\n{}",
        server.stderr()
    );
    server
}

fn wait_for(process: &Running, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} not ready after 30 s; stderr:\n{}",
            process.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTPS request with curl, from 127.0.0.2, trusting `ca`: the status
/// and the body.
fn curl(ca: &Path, port: u16, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> (u16, String) {
    let mut command = Command::new("curl");
    command
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--interface",
            "127.0.0.2",
        ])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["--request", method, "--write-out", "\n%{http_code}"]);
    for header in headers {
        command.args(["--header", header]);
    }
    if let Some(body) = body {
        command.args(["--header", "Content-Type: application/json", "--data", body]);
    }
    let out = output(command.arg(format!("https://localhost:{port}{path}")));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.parse().unwrap_or(0), body.to_string())
}

/// Through the proxy on `port` (HTTPS, certificate from `ca`) to `authmd`:
/// discovery and registration work, and the client's address is what
/// authmd records and limits, whatever `X-Forwarded-For` the client sends.
fn check_through_the_proxy(proxy: &Running, authmd: &Running, db: &Path, ca: &Path, port: u16) {
    wait_for(proxy, "the proxy", || {
        curl(ca, port, "GET", "/healthz", &[], None).0 == 200
    });
    let base = format!("https://localhost:{port}");

    let (status, auth_md) = curl(ca, port, "GET", "/auth.md", &[], None);
    assert_eq!(status, 200, "{auth_md}\nproxy:\n{}", proxy.stderr());
    assert!(auth_md.contains(&format!("{base}/agent/auth")), "{auth_md}");

    let register = r#"{"type":"anonymous","requested_credential_type":"api_key"}"#;
    let mut statuses = Vec::new();
    for forged in ["203.0.113.9", "203.0.113.10", "203.0.113.11"] {
        let header = format!("X-Forwarded-For: {forged}");
        let (status, body) = curl(ca, port, "POST", "/agent/auth", &[&header], Some(register));
        if status == 200 {
            let reply: Value = serde_json::from_str(&body).unwrap();
            assert!(reply["credential"].as_str().unwrap().starts_with("authmd_sk_"));
            assert_eq!(reply["claim_url"], format!("{base}/agent/auth/claim"));
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [200, 200, 429],
        "2 registrations per client IP: a forged X-Forwarded-For must not make a new client; authmd:\n{}",
        authmd.stderr()
    );

    // The access line is written after the answer has gone.
    let registrations = || -> Vec<Value> {
        authmd
            .stderr()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["msg"] == "request" && entry["path"] == "/agent/auth")
            .collect()
    };
    wait_for(authmd, "3 access-log lines for /agent/auth", || {
        registrations().len() >= 3
    });
    let (log, registrations) = (authmd.stderr(), registrations());
    assert_eq!(registrations.len(), 3, "access log:\n{log}");
    for entry in &registrations {
        assert_eq!(
            entry["client_ip"], "127.0.0.2",
            "the client's address; access log:\n{log}"
        );
    }
    assert!(!log.contains("203.0.113."), "a forged address reached the log:\n{log}");

    let audit = output(Command::new(common::BIN).arg("--db").arg(db).args([
        "audit",
        "--json",
        "--event",
        "registration.created",
    ]));
    let events: Vec<Value> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        assert_eq!(event["client_ip"], "127.0.0.2", "{event}");
    }
}

/// The shipped Caddyfile with the site's name made `localhost` (Caddy's own
/// CA, `tls internal`), non-privileged ports and no admin endpoint; the
/// directives inside the site block are the shipped ones.
#[test]
fn caddy_in_front_with_the_shipped_caddyfile() {
    if common::sqlite_only("the proxy does not depend on the store") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (backend, https, http) = (free_port(), free_port(), free_port());
    let authmd = authmd_as_the_unit_runs_it(dir.path(), backend, &format!("https://localhost:{https}"));

    let shipped = contrib("Caddyfile");
    assert!(shipped.contains("\napi.example.com {\n"), "{shipped}");
    assert!(shipped.contains("reverse_proxy 127.0.0.1:8080"), "{shipped}");
    let caddyfile = format!(
        "{{\n\tadmin off\n\thttp_port {http}\n\thttps_port {https}\n\tskip_install_trust\n}}\n\n{}",
        shipped
            .replace("\napi.example.com {\n", "\nlocalhost {\n\ttls internal\n")
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{backend}"))
    );
    std::fs::write(dir.path().join("Caddyfile"), caddyfile).unwrap();
    let home = dir.path().join("caddy-home");
    std::fs::create_dir(&home).unwrap();
    let caddy = Running::spawn(
        "caddy",
        Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(dir.path().join("Caddyfile"))
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config")),
    );
    let ca = home.join("data/caddy/pki/authorities/local/root.crt");
    wait_for(&caddy, "caddy's certificate authority", || ca.is_file());
    check_through_the_proxy(&caddy, &authmd, &dir.path().join("authmd.db"), &ca, https);
}

/// The shipped nginx.conf (a site for sites-enabled) inside a minimal main
/// configuration, with loopback ports, a certificate made here with the
/// openssl CLI for `localhost`, and the backend's port.
#[test]
fn nginx_in_front_with_the_shipped_config() {
    if common::sqlite_only("the proxy does not depend on the store") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (backend, https, http) = (free_port(), free_port(), free_port());
    let authmd = authmd_as_the_unit_runs_it(d, backend, &format!("https://localhost:{https}"));

    let made = output(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args([
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .arg("-keyout")
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem")),
    );
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let shipped = contrib("nginx.conf");
    let live = "/etc/letsencrypt/live/api.example.com/";
    for needed in [
        "    listen 80;\n",
        "    listen [::]:80;\n",
        "    listen 443 ssl http2;\n",
        "    listen [::]:443 ssl http2;\n",
        "proxy_pass http://127.0.0.1:8080;",
        live,
    ] {
        assert!(shipped.contains(needed), "{needed:?} in contrib/nginx.conf");
    }
    let site = shipped
        .replace("    listen 80;\n", &format!("    listen 127.0.0.1:{http};\n"))
        .replace("    listen [::]:80;\n", "")
        .replace(
            "    listen 443 ssl http2;\n",
            &format!("    listen 127.0.0.1:{https} ssl http2;\n"),
        )
        .replace("    listen [::]:443 ssl http2;\n", "")
        .replace("server_name api.example.com;", "server_name localhost;")
        .replace(&format!("{live}fullchain.pem"), d.join("cert.pem").to_str().unwrap())
        .replace(&format!("{live}privkey.pem"), d.join("key.pem").to_str().unwrap())
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{backend}"));
    std::fs::write(d.join("authmd.conf"), site).unwrap();
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let p = d.to_str().unwrap();
    let main = format!(
        "{user}worker_processes 1;\ndaemon off;\npid {p}/nginx.pid;\nerror_log stderr;\nevents {{}}\n\
         http {{\n    access_log {p}/access.log;\n    client_body_temp_path {p}/body;\n    proxy_temp_path {p}/proxy;\n\
         \x20   fastcgi_temp_path {p}/fastcgi;\n    uwsgi_temp_path {p}/uwsgi;\n    scgi_temp_path {p}/scgi;\n\
         \x20   include {p}/authmd.conf;\n}}\n",
        // As root the workers would run as nobody, who cannot enter the temp dir.
        user = if root { "user root;\n" } else { "" }
    );
    std::fs::write(d.join("main.conf"), main).unwrap();
    let nginx = Running::spawn(
        "nginx",
        // Debian's, in /usr/sbin (not on every user's PATH).
        Command::new(if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        })
        .arg("-p")
        .arg(d)
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(d.join("main.conf")),
    );
    check_through_the_proxy(&nginx, &authmd, &d.join("authmd.db"), &d.join("cert.pem"), https);
}
