//! The examples, run as a user would: the agent's anonymous flow against the
//! real server, and the embedded hobby API guarding its notes in-process.
//! (`cargo test` builds the examples before running the tests.)

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::{Client, TestServer};
use serde_json::json;

pub(crate) fn example(name: &str) -> PathBuf {
    let bin = PathBuf::from(crate::common::BIN);
    bin.parent().unwrap().join("examples").join(name)
}

/// Runs the agent example against `server` with `args`; returns its stdout.
fn run_agent(server: &TestServer, args: &[&str]) -> String {
    let out = Command::new(example("agent"))
        .args(["--api", &format!("{}/api/resource", server.base)])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the agent example (built by cargo test)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Both generations' agents against one server at the same time, three
/// of each, every one through to its API call.
#[test]
fn the_agent_example_runs_the_anonymous_flow_of_both_generations_at_once() {
    let server = TestServer::start();
    let runs: Vec<(&str, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["v0.7", "v0.1", "v0.7", "v0.1", "v0.7", "v0.1"]
            .into_iter()
            .map(|protocol| {
                let server = &server;
                scope.spawn(move || (protocol, run_agent(server, &["--protocol", protocol])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (protocol, stdout) in &runs {
        let steps: &[&str] = if *protocol == "v0.7" {
            &[
                "1. calling",
                "401, WWW-Authenticate: Bearer resource_metadata=",
                "2. protected resource metadata",
                "3. authorization server metadata",
                "4. registering (\"anonymous\"",
                "6. exchanging the assertion at",
                "7. calling",
            ]
        } else {
            &["4. registering (\"anonymous\"", "6. calling"]
        };
        for step in steps {
            assert!(stdout.contains(step), "{protocol}: missing {step:?} in:\n{stdout}");
        }
        assert!(stdout.contains("   200 {"), "{protocol}: {stdout}");
    }
    // The registrations they made are real, three per generation.
    let created = server.events("registration.created");
    assert_eq!(created.len(), 6);
    assert_eq!(created.iter().filter(|e| e["generation"] == "v0.7").count(), 3);
    // The default is the current generation.
    let stdout = run_agent(&server, &[]);
    assert!(stdout.contains("6. exchanging the assertion at"), "{stdout}");
    let help = Command::new(example("agent")).arg("--help").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--protocol"));
}

/// The current generation's `service_auth` with the person's step played
/// over HTTP: the agent prints the link, the person signs in and confirms,
/// and types the code the page showed into the agent.
#[test]
fn the_agent_example_waits_for_the_person_to_confirm() {
    use std::io::Write;
    let server = TestServer::start();
    let mut agent = Command::new(example("agent"))
        .args([
            "--api",
            &format!("{}/api/resource", server.base),
            "--email",
            "pat@example.com",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let link = loop {
        let line = lines.next().expect("the agent printed the link").unwrap();
        seen += &line;
        seen.push('\n');
        if let Some(at) = line.find("open http") {
            break line[at + "open ".len()..].trim().to_string();
        }
    };
    let path = link.trim_start_matches(&server.base).to_string();
    let token = path.split("claim_attempt_token=").nth(1).unwrap().to_string();
    let mut person = crate::signin::sign_in(&server, "pat@example.com");
    person.get(&path);
    let csrf = person.csrf.clone();
    let page = person.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"));
    let at = page.body.find(r#"id="user-code">"#).unwrap() + r#"id="user-code">"#.len();
    let code = &page.body[at..at + 6];
    writeln!(agent.stdin.take().unwrap(), "{code}").unwrap();
    for line in lines {
        seen += &line.unwrap();
        seen.push('\n');
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut agent.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(agent.wait().unwrap().success(), "{seen}\n{stderr}");
    assert!(seen.contains("claimed; a refresh token came with it"), "{seen}");
    assert!(
        seen.contains("scope api.read api.write") && seen.contains("   200 {"),
        "{seen}"
    );
}

#[test]
fn the_embedded_example_guards_its_api_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(example("embedded"))
        .args([
            "--db",
            dir.path().join("notes.db").to_str().unwrap(),
            "--authmd-listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
        ])
        // Its default mail transport, file:./notes-outbox, lands here.
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the embedded example");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let authmd_url = lines
        .next()
        .unwrap()
        .unwrap()
        .trim_start_matches("authmd on ")
        .to_string();
    let api_url = lines
        .next()
        .unwrap()
        .unwrap()
        .trim_start_matches("notes API on ")
        .to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();

    let response = agent.get(&format!("{api_url}/api/notes")).call().unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{authmd_url}/.well-known/oauth-protected-resource/api/\"")
    );
    let prm: serde_json::Value = serde_json::from_str(
        &agent
            .get(&format!("{authmd_url}/.well-known/oauth-protected-resource/api/"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        prm["resource"],
        format!("{api_url}/api/"),
        "authmd advertises the notes API as its resource"
    );

    let registered: serde_json::Value = serde_json::from_str(
        &agent
            .post(&format!("{authmd_url}/agent/auth"))
            .header("Content-Type", "application/json")
            .send(
                json!({"type":"anonymous","requested_credential_type":"api_key"})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let bearer = format!("Bearer {}", registered["credential"].as_str().unwrap());
    let mut read = agent
        .get(&format!("{api_url}/api/notes"))
        .header("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(read.status(), 200);
    assert!(
        read.body_mut()
            .read_to_string()
            .unwrap()
            .contains(registered["registration_id"].as_str().unwrap())
    );
    let write = agent
        .post(&format!("{api_url}/api/notes"))
        .header("Authorization", &bearer)
        .send(&b"a note"[..])
        .unwrap();
    assert_eq!(write.status(), 403, "an unclaimed key has api.read only");

    // Issue 15: a claim can be finished, since the mail with its link is
    // kept where a person can open it (the `log` transport dropped it).
    let claim = agent
        .post(&format!("{authmd_url}/agent/auth/claim"))
        .header("Content-Type", "application/json")
        .send(
            json!({"claim_token": registered["claim_token"], "email": "you@example.com"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(claim.status(), 200);
    let outbox = dir.path().join("notes-outbox");
    let started = std::time::Instant::now();
    let mail = loop {
        let found = std::fs::read_dir(&outbox)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "eml"));
        if let Some(found) = found {
            break std::fs::read_to_string(found.path()).unwrap();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no mail in {}",
            outbox.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(mail.contains("you@example.com"), "{mail}");
    assert!(
        mail.replace("=\r\n", "")
            .replace("=\n", "")
            .contains("claim/view?token="),
        "{mail}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `examples/provider.rs` as its header shows it: serve a JWKS, mint an
/// ID-JAG the server accepts, and push a Security Event Token that revokes
/// what it asserted (SPEC-v0.7 11).
#[test]
fn the_provider_example_mints_and_pushes_a_revocation() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("provider-key.p8");
    let key = key.to_str().unwrap();
    let mut provider = Command::new(example("provider"))
        .args(["serve", "--listen", "127.0.0.1:0", "--key", key])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the provider example");
    // Kept open to the end: the provider prints more lines after the first,
    // and a closed pipe would end it (a failed print panics).
    let mut banner = BufReader::new(provider.stdout.take().unwrap());
    let mut first = String::new();
    banner.read_line(&mut first).unwrap();
    let issuer = first
        .split_whitespace()
        .nth(2)
        .expect("provider issuer URL")
        .to_string();
    server.cli_ok(&["provider", "add", &issuer]);
    let run = |args: &[&str]| {
        let out = Command::new(example("provider"))
            .args(args)
            .args([
                "--issuer",
                &issuer,
                "--key",
                key,
                "--sub",
                "alice",
                "--aud",
                &server.base,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let token = run(&["mint"]);
    let body = json!({
        "type": "identity_assertion",
        "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
        "assertion": token,
        "requested_credential_type": "api_key",
    });
    let registered = server.post_json("/agent/auth", &body.to_string());
    assert_eq!(registered.status, 200, "{}", registered.body);
    let credential = registered.json()["credential"].as_str().unwrap().to_string();
    assert_eq!(server.get_with_token("/api/resource", &credential).status, 200);
    assert_eq!(run(&["notify"]), "202");
    assert_eq!(server.get_with_token("/api/resource", &credential).status, 401);
    let _ = provider.kill();
    let _ = provider.wait();
    drop(banner);
}
