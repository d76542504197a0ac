//! People in a real headless browser (Debian's chromium driven by
//! playwright-core; `scripts/test` installs both), one node script per
//! journey in `tests/browser/`. A script that signs in asks this side for
//! the code: the server mails it over SMTP to an [`SmtpSink`], and the test
//! reads it from the delivered message. Screenshots land in `target/`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::smtp::{SmtpSink, free_port};
use crate::common::{Client, TestServer};
use serde_json::{Value, json};

fn as_os<S: AsRef<OsStr> + ?Sized>(arg: &S) -> &OsStr {
    arg.as_ref()
}

/// Runs `tests/browser/<script>` with `args` under node; the JSON line it
/// ends with. Before that, each `{"codeFor": EMAIL}` line it prints is
/// answered on its stdin with the code from the next mail `sink` received
/// for EMAIL.
pub(crate) fn run_script(script: &str, args: &[&OsStr], sink: Option<&SmtpSink>) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(args)
        .current_dir(root.join("tests/browser"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (scripts/test installs the browser test's dependencies)");
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdin = child.stdin.take();
    let mut result = None;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{script} printed {line:?}: {e}"));
        match value["codeFor"].as_str() {
            Some(email) => {
                let sink = sink.unwrap_or_else(|| panic!("{script} signs in: give it an SmtpSink"));
                let code = sink.next_to(email, Duration::from_secs(10)).signin_code();
                writeln!(stdin.as_mut().expect("stdin open until the result"), "{code}").unwrap();
            }
            None => {
                result = Some(value);
                stdin = None; // the script may end now
            }
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "{script} failed ({status}):\n{stderr}");
    result.unwrap_or_else(|| panic!("{script} printed no result:\n{stderr}"))
}

/// A server whose mail goes over SMTP to the sink.
fn server_mailing_to(sink: &SmtpSink) -> TestServer {
    TestServer::start_with(&["--mail", &sink.url()], &[])
}

/// Registers for a person by address (SPEC-v0.7 4.2): the registration,
/// with the link the agent hands over.
fn service_auth(server: &TestServer, email: &str) -> Value {
    let made = server.post_json(
        "/agent/identity",
        &json!({ "type": "service_auth", "login_hint": email }).to_string(),
    );
    assert_eq!(made.status, 200, "{}", made.body);
    made.json()
}

/// Every named step fit a 320 px screen, and the console logged no error
/// (a CSP violation would show there) but Chromium's note of each page
/// in `refused` answering with its status, as these pages mean to.
fn assert_fits_and_quiet(result: &Value, steps: &[&str], refused: &[(&str, &str)]) {
    for step in steps {
        let width = result["steps"][step]["width"].as_u64();
        assert!(width.is_some_and(|w| w <= 320), "{step} overflows: {}", result["steps"]);
    }
    let expected: Vec<String> = refused
        .iter()
        .map(|(status, url)| {
            format!("Failed to load resource: the server responded with a status of {status} at {url}")
        })
        .collect();
    assert_eq!(result["errors"], json!(expected), "console errors");
}

/// SPEC.md 5.3: a person opens the emailed v0.1 claim link, sees the page
/// without a code, presses the button and reads the code off the page; the
/// agent completes the claim over HTTP and calls the API.
#[test]
fn a_person_reads_the_code_off_the_claim_page_in_chromium() {
    let server = TestServer::start();
    let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":"pat@example.com","requested_credential_type":"access_token"});
    let reg = server.post_json("/agent/auth", &body.to_string()).json();
    let mail = server.wait_for_mail(1).remove(0);

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let screenshot = root.join("target/claim-code-page.png");
    let result = run_script("claim.mjs", &[as_os(&mail.link()), as_os(&screenshot)], None);
    assert_eq!(result["before"]["status"], 200);
    assert_eq!(result["before"]["hasButton"], 1);
    assert_eq!(result["before"]["hasCode"], 0, "opening the link showed a code");
    assert_eq!(
        result["errors"],
        json!([]),
        "console errors (a CSP violation would show here)"
    );
    let code = result["code"].as_str().unwrap();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    assert!(screenshot.exists());

    let done = server.post_json(
        "/agent/auth/claim/complete",
        &json!({ "claim_token": reg["claim_token"], "otp": code }).to_string(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let credential = done.json()["credential"].as_str().unwrap().to_string();
    let me = server.get_with_token("/api/resource", &credential);
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["status"], "claimed");
}

/// SPEC-v0.7 7: a person signs in and out in Chromium on a 320 px screen,
/// with the code from the mail that crossed SMTP.
#[test]
fn a_person_signs_in_with_the_mailed_code_in_chromium() {
    let sink = SmtpSink::start(free_port());
    let server = server_mailing_to(&sink);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("target/signin");
    let args = [as_os(&server.base), as_os("pat@example.com"), as_os(&shots)];
    let result = run_script("signin.mjs", &args, Some(&sink));
    let steps = &result["steps"];
    assert_eq!(steps["form"]["status"], 200);
    assert_fits_and_quiet(&result, &["form", "sent", "signedIn"], &[]);
    assert_eq!(steps["signedIn"]["url"], format!("{}/", server.base));
    assert!(
        steps["signedIn"]["text"].as_str().unwrap().contains("pat@example.com"),
        "{steps}"
    );
    assert!(
        steps["signedOut"]["url"].as_str().unwrap().ends_with("/login"),
        "{steps}"
    );
    assert!(root.join("target/signin-signed-in.png").exists());
}

/// SPEC-v0.7 6: a person takes the link an agent handed over, signs in,
/// authorizes and reads the code off the page in Chromium on a 320 px
/// screen; the agent completes with it.
#[test]
fn a_person_confirms_an_agent_and_reads_its_code_in_chromium() {
    let sink = SmtpSink::start(free_port());
    let server = server_mailing_to(&sink);
    let made = service_auth(&server, "pat@example.com");
    let link = made["claim"]["attempt"]["verification_uri"].as_str().unwrap();
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ceremony");
    let args = [as_os(link), as_os("pat@example.com"), as_os(&shots)];
    let result = run_script("ceremony.mjs", &args, Some(&sink));
    let steps = &result["steps"];
    assert!(
        steps["login"]["url"].as_str().unwrap().contains("/login?return_to="),
        "{steps}"
    );
    assert_eq!(
        steps["login"]["prefilled"], "pat@example.com",
        "the link fills in its address"
    );
    assert_eq!(steps["confirm"]["url"], link, "back on the link after signing in");
    assert_eq!(steps["confirm"]["hasCode"], 0, "opening the link showed a code");
    let text = steps["confirm"]["text"].as_str().unwrap();
    assert!(
        text.contains("pat@example.com") && text.contains(made["id"].as_str().unwrap()),
        "{text}"
    );
    assert_fits_and_quiet(&result, &["confirm", "code"], &[]);
    let code = steps["code"]["value"].as_str().unwrap();
    let done = server.post_json(
        "/agent/identity/claim/complete",
        &json!({ "claim_token": made["claim"]["token"], "user_code": code }).to_string(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["status"], "claimed");
}

/// SPEC-v0.7 6.2 gate 6: signed in as b@, a person opens a link for a@.
/// The page answers 403, names the account the link is for and offers to
/// switch; switching (sign out, sign in as a@) lands on the confirm page.
/// Both are accounts made ahead of time, with just-in-time provisioning off.
#[test]
fn a_link_for_another_account_offers_to_switch_to_it_in_chromium() {
    let sink = SmtpSink::start(free_port());
    let server = server_mailing_to(&sink);
    server.set("jit_provisioning", "false");
    for email in ["a@example.com", "b@example.com"] {
        server.cli_ok(&["users", "add", email]);
    }
    let made = service_auth(&server, "a@example.com");
    let link = made["claim"]["attempt"]["verification_uri"].as_str().unwrap();
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/wrong-account");
    let args = [
        as_os(&server.base),
        as_os(link),
        as_os("b@example.com"),
        as_os("a@example.com"),
        as_os(&shots),
    ];
    let result = run_script("wrong-account.mjs", &args, Some(&sink));
    let steps = &result["steps"];
    assert_eq!(steps["wrong"]["status"], 403, "{steps}");
    let wrong = steps["wrong"]["text"].as_str().unwrap();
    assert!(
        wrong.contains("signed in as b@example.com") && wrong.contains("this link is for a@example.com"),
        "names both accounts: {wrong}"
    );
    assert!(
        steps["login"]["url"].as_str().unwrap().contains("/login?return_to="),
        "{steps}"
    );
    assert_eq!(steps["login"]["prefilled"], "a@example.com", "{steps}");
    assert_eq!(steps["confirm"]["url"], link, "back on the link after switching");
    assert_eq!(steps["confirm"]["offersAuthorize"], 1, "{steps}");
    assert!(
        steps["confirm"]["text"].as_str().unwrap().contains("a@example.com"),
        "{steps}"
    );
    assert_fits_and_quiet(&result, &["wrong", "login", "confirm"], &[("403 (Forbidden)", link)]);
}

/// SPEC-v0.7 6.2: "This wasn't me" asks a second time and changes nothing
/// until confirmed (going back shows the confirm page as it was); then the service_auth registration is rejected, the
/// link no longer offers to authorize, and the agent's completion is
/// refused with 410 claim_expired (6.4).
#[test]
fn this_wasnt_me_asks_twice_then_turns_the_agent_away_in_chromium() {
    let sink = SmtpSink::start(free_port());
    let server = server_mailing_to(&sink);
    let made = service_auth(&server, "pat@example.com");
    let link = made["claim"]["attempt"]["verification_uri"].as_str().unwrap();
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/reject");
    let args = [as_os(link), as_os("pat@example.com"), as_os(&shots)];
    let result = run_script("reject.mjs", &args, Some(&sink));
    let steps = &result["steps"];
    let ask = steps["ask"]["text"].as_str().unwrap();
    assert!(ask.contains("Nothing changes until you press it"), "{ask}");
    assert_eq!(steps["back"]["url"], link, "{steps}");
    assert_eq!(
        steps["back"]["offersAuthorize"], 1,
        "the first press cancelled: {steps}"
    );
    assert_eq!(steps["after"]["status"], 410, "{steps}");
    assert_eq!(steps["after"]["offersAuthorize"], 0, "{steps}");
    let after = steps["after"]["text"].as_str().unwrap();
    assert!(after.contains("You turned this agent away"), "{after}");
    assert_fits_and_quiet(&result, &["ask", "rejected", "after"], &[("410 (Gone)", link)]);

    let rejected = server.events("claim.rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["registration_status"], "rejected");
    server
        .post_json(
            "/agent/identity/claim/complete",
            &json!({ "claim_token": made["claim"]["token"], "user_code": "123456" }).to_string(),
        )
        .assert_error(410, "claim_expired");
}

/// A v0.1 anonymous agent claimed by `email` through the mail the sink
/// received: its registration id and API key.
fn claimed_by_mail(server: &TestServer, sink: &SmtpSink, email: &str) -> (String, String) {
    let reg = server.register_anonymous();
    let asked = server.post_json(
        "/agent/auth/claim",
        &json!({ "claim_token": reg["claim_token"], "email": email }).to_string(),
    );
    assert_eq!(asked.status, 200, "{}", asked.body);
    let mail = sink.next_to(email, Duration::from_secs(10));
    let challenge = server.post_json(
        "/agent/auth/claim/attempt/challenge",
        &json!({ "claim_attempt_token": mail.token() }).to_string(),
    );
    let otp = challenge.json()["challenge"].as_str().unwrap().to_string();
    let done = server.post_json(
        "/agent/auth/claim/complete",
        &json!({ "claim_token": reg["claim_token"], "otp": otp }).to_string(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let id = reg["registration_id"].as_str().unwrap().to_string();
    (id, reg["credential"].as_str().unwrap().to_string())
}

/// Issue 15: signed out, the person's page sends to sign-in and back; the
/// list shows both agents; revoking one asks once more, then it is
/// revoked (its key refused at once) and the list says so, on a 320 px
/// screen without a script error.
#[test]
fn a_person_revokes_one_of_their_agents_on_their_page_in_chromium() {
    let sink = SmtpSink::start(free_port());
    let server = server_mailing_to(&sink);
    let (kept, kept_key) = claimed_by_mail(&server, &sink, "pat@example.com");
    let (gone, gone_key) = claimed_by_mail(&server, &sink, "pat@example.com");
    assert_eq!(server.get_with_token("/api/resource", &kept_key).status, 200);
    let used = || {
        let sql = format!("SELECT last_used_ms FROM registrations WHERE id = '{kept}'");
        crate::common::rows(&server, &sql)[0]["last_used_ms"].is_i64()
    };
    assert!(
        server.eventually(Duration::from_secs(20), used),
        "the use was not written"
    );
    // Beside the build (CARGO_TARGET_DIR when set), where they are looked at.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let shots = target.join("account");
    let args = [
        as_os(&server.base),
        as_os("pat@example.com"),
        as_os(&gone),
        as_os(&shots),
    ];
    let result = run_script("account.mjs", &args, Some(&sink));
    let steps = &result["steps"];
    assert!(
        steps["login"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/login?return_to=%2Faccount%2Fagents"),
        "{steps}"
    );
    assert_eq!(steps["list"]["url"], format!("{}/account/agents", server.base));
    let list = steps["list"]["text"].as_str().unwrap();
    assert!(list.contains(&kept) && list.contains(&gone), "{list}");
    assert_eq!(steps["list"]["buttons"], 2, "{steps}");
    let confirm = steps["confirm"]["text"].as_str().unwrap();
    assert!(confirm.contains("It loses access at once"), "{confirm}");
    let revoked = steps["revoked"]["text"].as_str().unwrap();
    assert!(revoked.contains(&format!("Agent {gone} was revoked.")), "{revoked}");
    assert_eq!(steps["revoked"]["buttons"], 1, "{steps}");
    assert_fits_and_quiet(&result, &["login", "list", "confirm", "revoked"], &[]);
    assert_eq!(server.get_with_token("/api/resource", &gone_key).status, 401);
    assert_eq!(server.get_with_token("/api/resource", &kept_key).status, 200);
    let events = server.events("registration.revoked");
    assert_eq!(
        (events.len(), events[0]["by"].as_str()),
        (1, Some("user")),
        "{events:?}"
    );
}
