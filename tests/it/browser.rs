//! A person confirming a verified-email registration in a real headless
//! browser (Debian's chromium driven by playwright-core; `scripts/test`
//! installs both): open the emailed link, see the page without a code, press
//! the button, read the code off the page, then the agent completes the
//! claim over HTTP and calls the API. Screenshots land in `target/`.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{Client, TestServer};
use serde_json::{Value, json};

fn as_os<S: AsRef<std::ffi::OsStr> + ?Sized>(arg: &S) -> &std::ffi::OsStr {
    arg.as_ref()
}

/// Runs `tests/browser/<script>` with `args` under node; its one JSON line.
fn run_script(script: &str, args: &[&std::ffi::OsStr]) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .args(args)
        .current_dir(root.join("tests/browser"))
        .output()
        .expect("node (scripts/test installs the browser test's dependencies)");
    assert!(
        out.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(out.stdout.trim_ascii()).unwrap()
}

#[test]
fn a_person_reads_the_code_off_the_claim_page_in_chromium() {
    let server = TestServer::start();
    let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":"pat@example.com","requested_credential_type":"access_token"});
    let reg = server.post_json("/agent/auth", &body.to_string()).json();
    let mail = server.wait_for_mail(1).remove(0);

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let screenshot = root.join("target/claim-code-page.png");
    let result = run_script("claim.mjs", &[as_os(&mail.link()), as_os(&screenshot)]);
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
/// reading the code from the mail the real outbox wrote.
#[test]
fn a_person_signs_in_with_the_mailed_code_in_chromium() {
    let server = TestServer::start();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("target/signin");
    let result = run_script(
        "signin.mjs",
        &[
            as_os(&server.base),
            as_os(&server.outbox_dir()),
            as_os(&"pat@example.com"),
            as_os(&shots),
        ],
    );
    let steps = &result["steps"];
    assert_eq!(steps["form"]["status"], 200);
    for step in ["form", "sent", "signedIn"] {
        assert!(
            steps[step]["width"].as_u64().unwrap() <= 320,
            "{step} overflows: {steps}"
        );
    }
    assert_eq!(steps["signedIn"]["url"], format!("{}/", server.base));
    assert!(
        steps["signedIn"]["text"].as_str().unwrap().contains("pat@example.com"),
        "{steps}"
    );
    assert!(
        steps["signedOut"]["url"].as_str().unwrap().ends_with("/login"),
        "{steps}"
    );
    assert_eq!(
        result["errors"],
        json!([]),
        "console errors (a CSP violation would show here)"
    );
    assert!(root.join("target/signin-signed-in.png").exists());
}

/// SPEC-v0.7 6: a person takes the link an agent handed over, signs in,
/// authorizes and reads the code off the page in Chromium on a 320 px
/// screen; the agent completes with it.
#[test]
fn a_person_confirms_an_agent_and_reads_its_code_in_chromium() {
    let server = TestServer::start();
    let made = server
        .post_json(
            "/agent/identity",
            r#"{"type":"service_auth","login_hint":"pat@example.com"}"#,
        )
        .json();
    let link = made["claim"]["attempt"]["verification_uri"].as_str().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("target/ceremony");
    let result = run_script(
        "ceremony.mjs",
        &[
            as_os(&link),
            as_os(&server.outbox_dir()),
            as_os(&"pat@example.com"),
            as_os(&shots),
        ],
    );
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
    for step in ["confirm", "code"] {
        assert!(
            steps[step]["width"].as_u64().unwrap() <= 320,
            "{step} overflows: {steps}"
        );
    }
    assert_eq!(
        result["errors"],
        json!([]),
        "console errors (a CSP violation would show here)"
    );
    let code = steps["code"]["value"].as_str().unwrap();
    let done = server.post_json(
        "/agent/identity/claim/complete",
        &json!({ "claim_token": made["claim"]["token"], "user_code": code }).to_string(),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["status"], "claimed");
}
