//! Issue 15, "pages for people, JSON for agents": the same URL answers a
//! person's browser (an `Accept` naming `text/html`, as on navigation and
//! form posts) with a page and an agent with today's JSON, status and
//! headers unchanged. Times on pages are `time::human`'s; an unset
//! `resource_name` shows the host and a hint for the operator.

use std::time::Duration;

use crate::common::{Client, InProcess, Reply, TestServer};
use crate::signin::sign_in;
use serde_json::{Value, json};

/// What Chromium sends when it opens a page or submits a form.
const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

fn browse(server: &impl Client, method: &str, path: &str) -> Reply {
    server.request(method, path, &[("Accept", BROWSER)], b"")
}

fn press(server: &impl Client, path: &str, form: &str, accept: Option<&str>) -> Reply {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(accept) = accept {
        headers.push(("Accept", accept));
    }
    server.request("POST", path, &headers, form.as_bytes())
}

/// A page (or its HEAD) with SPEC.md 5.3's headers: HTML, no-store, never framed, a CSP
/// that allows no script.
fn assert_page(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let header = |name: &str| reply.header(name).unwrap_or_else(|| panic!("no {name}: {reply:?}"));
    assert!(header("content-type").starts_with("text/html"), "{reply:?}");
    // A HEAD answer has the headers without the body.
    assert!(
        reply.body.is_empty() || reply.body.starts_with("<!doctype html>"),
        "{}",
        reply.body
    );
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let csp = header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("frame-ancestors 'none'") && !csp.contains("script"),
        "{csp}"
    );
    assert!(!reply.body.contains("<script"), "{}", reply.body);
}

/// The JSON refusal agents get, exactly as before this issue.
fn assert_json(reply: &Reply, status: u16, code: &str) -> Value {
    reply.assert_error(status, code);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.json()
}

/// A POST-only protocol URL opened in a browser is a page that says what
/// it is and that it is for agents, with a link to `/auth.md`; 405 and
/// `Allow` stay. Agents (no Accept, `*/*`, JSON, JSON ranked above HTML)
/// get the JSON 405 they always got. The URLs handed out in registration
/// answers are among them: v0.1's `claim_url`, v0.7's `claim.url`.
#[test]
fn a_post_only_url_is_a_page_for_a_browser_and_json_for_an_agent() {
    let server = TestServer::start();
    let v0_1 = server.register_anonymous();
    let claim_url = v0_1["claim_url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&server.base)
        .to_string();
    assert_eq!(claim_url, "/agent/auth/claim");
    let v0_7 = server.post_json("/agent/identity", r#"{"type":"anonymous"}"#).json();
    let identity_claim_url = v0_7["claim"]["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&server.base)
        .to_string();
    assert_eq!(identity_claim_url, "/agent/identity/claim");

    for (path, says) in [
        (claim_url.as_str(), "email you a confirmation link"),
        (identity_claim_url.as_str(), "ask it for the link it got back"),
        ("/agent/auth", "AI agents register"),
        ("/agent/identity/claim/complete", "the code you read back"),
        ("/oauth2/token", "access tokens"),
        ("/claim/confirm", "Open the link you were given"),
    ] {
        for method in ["GET", "HEAD"] {
            let page = browse(&server, method, path);
            assert_page(&page, 405);
            assert_eq!(page.header("allow"), Some("POST"), "{path}");
            if method == "GET" {
                assert!(
                    page.body.contains("This address is for AI agents"),
                    "{path}: {}",
                    page.body
                );
                assert!(page.body.contains(says), "{path}: {}", page.body);
                assert!(page.body.contains(r#"<a href="/auth.md">"#), "{path}: {}", page.body);
            }
        }
        for accept in [
            None,
            Some("*/*"),
            Some("application/json"),
            Some("application/json, text/html;q=0.9"),
        ] {
            let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
            let reply = server.request("GET", path, &headers, b"");
            let body = assert_json(&reply, 405, "method_not_allowed");
            assert_eq!(reply.header("allow"), Some("POST"), "{path}");
            assert_eq!(reply.header("cache-control"), Some("no-store"));
            assert_eq!(
                body,
                json!({
                    "error": "method_not_allowed",
                    "message": body["message"],
                    "error_description": body["message"],
                }),
                "{path} {accept:?}"
            );
        }
    }
}

/// Unknown paths: a 404 page for a browser, `not_found` JSON for an agent.
#[test]
fn an_unknown_path_is_a_404_page_for_a_browser_and_json_for_an_agent() {
    let server = TestServer::start();
    let page = browse(&server, "GET", "/nowhere/at/all");
    assert_page(&page, 404);
    assert!(
        page.body.contains("Nothing here") && page.body.contains(r#"href="/""#),
        "{}",
        page.body
    );
    assert_json(&server.get("/nowhere/at/all"), 404, "not_found");
    assert_json(
        &server.request("GET", "/nowhere", &[("Accept", "application/json")], b""),
        404,
        "not_found",
    );
}

/// `/` is a page for a browser whichever generations are on. With v0.7
/// off there is no sign-in to offer, and agents keep the JSON 404 a
/// switched-off generation answers (SPEC-v0.7 1).
#[test]
fn home_is_a_page_whichever_generations_are_on() {
    let server = InProcess::start();
    let home = browse(&server, "GET", "/");
    assert_page(&home, 200);
    assert!(home.body.contains(r#"href="/login""#), "{}", home.body);

    server.set("v0_7_enabled", "false");
    let home = browse(&server, "GET", "/");
    assert_page(&home, 200);
    assert!(!home.body.contains("/login"), "no sign-in without v0.7: {}", home.body);
    assert!(home.body.contains("you get an email with a link"), "{}", home.body);
    assert!(home.body.contains(r#"<a href="/auth.md">"#), "{}", home.body);
    assert_page(&browse(&server, "HEAD", "/"), 200);
    assert_json(&server.get("/"), 404, "not_found");
    // Its sign-in pages are gone for browsers too: a 404 page.
    assert_page(&browse(&server, "GET", "/login"), 404);
}

/// A verified-email registration's emailed link (SPEC.md 5.2) on a server
/// on a fixed clock: the attempt token.
fn emailed_link(server: &InProcess, email: &str) -> String {
    let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":email,"requested_credential_type":"api_key"});
    let reply = server.post_json("/agent/auth", &body.to_string());
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.wait_for_mail(1).remove(0).token()
}

/// The v0.1 claim link and its code page show times as `time::human` says
/// them, relative to the server's clock; the code page has no button, and
/// says how to get a new code instead of "press the button again".
#[test]
fn the_claim_pages_show_times_in_utc_and_in_words() {
    let server = InProcess::start();
    let token = emailed_link(&server, "pat@example.com");
    let link = format!("/agent/auth/claim/view?token={token}");
    let now = authmd::time::Clock::now(server.clock.as_ref());
    let expires = authmd::time::human(now + Duration::from_secs(600), now);
    assert!(expires.ends_with("UTC (in 10 minutes)"), "{expires}");
    let (clock, _) = expires.split_once(" (").unwrap();

    let page = browse(&server, "GET", &link);
    assert_page(&page, 200);
    assert!(
        page.body.contains(&format!(
            r#"<span class="nw">{clock}</span> <span class="nw">(in 10 minutes)</span>"#
        )),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"<span class="addr">pat@example.com</span>"#),
        "{}",
        page.body
    );
    server.advance(Duration::from_secs(4 * 60));
    assert!(browse(&server, "GET", &link).body.contains("(in 6 minutes)"));

    let code = press(
        &server,
        "/agent/auth/claim/view",
        &format!("token={token}"),
        Some(BROWSER),
    );
    assert_page(&code, 200);
    assert!(code.body.contains(r#"id="otp""#), "{}", code.body);
    assert!(
        code.body.contains("(in 10 minutes)"),
        "the code lives 10 min from now: {}",
        code.body
    );
    assert!(!code.body.contains("<button"), "{}", code.body);
    assert!(!code.body.contains("button again"), "{}", code.body);
    assert!(code.body.contains("open the link in the email again"), "{}", code.body);
}

/// The v0.7 code page: its time in words, and nothing offered it lacks.
#[test]
fn the_identity_code_page_shows_its_time_in_words_and_offers_no_button() {
    let server = InProcess::start();
    let made = server
        .post_json(
            "/agent/identity",
            r#"{"type":"service_auth","login_hint":"pat@example.com"}"#,
        )
        .json();
    let link = made["claim"]["attempt"]["verification_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(&server.base)
        .to_string();
    let token = link.split("claim_attempt_token=").nth(1).unwrap().to_string();
    let mut person = sign_in(&server, "pat@example.com");
    assert_eq!(person.get(&link).status, 200);
    let csrf = person.csrf.clone();
    let code = person.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"));
    assert_page(&code, 200);
    assert!(code.body.contains(r#"id="user-code""#), "{}", code.body);
    assert!(
        code.body
            .contains(" UTC</span> <span class=\"nw\">(in 10 minutes)</span>"),
        "{}",
        code.body
    );
    assert!(
        !code.body.contains("<button") && !code.body.contains("button again"),
        "{}",
        code.body
    );
}

/// An expired link is a 410 page, opened or pressed; no JSON on the way.
#[test]
fn an_expired_link_is_a_page_opened_or_pressed() {
    let server = InProcess::start();
    let token = emailed_link(&server, "pat@example.com");
    server.advance(Duration::from_secs(601));
    let opened = browse(&server, "GET", &format!("/agent/auth/claim/view?token={token}"));
    assert_page(&opened, 410);
    assert!(opened.body.contains("This link expired"), "{}", opened.body);
    let pressed = press(
        &server,
        "/agent/auth/claim/view",
        &format!("token={token}"),
        Some(BROWSER),
    );
    assert_page(&pressed, 410);
    assert!(pressed.body.contains("This link expired"), "{}", pressed.body);
    let unknown = browse(&server, "GET", "/agent/auth/claim/view?token=cat_nonsense");
    assert_page(&unknown, 404);
}

/// A form whose CSRF token does not match (no session) is the 403 "form
/// expired" page, changing nothing (SPEC-v0.7 7.3).
#[test]
fn a_stale_form_is_a_403_page() {
    let server = TestServer::start();
    let page = press(
        &server,
        "/claim/confirm",
        "claim_attempt_token=cvt_x&csrf=nope",
        Some(BROWSER),
    );
    assert_page(&page, 403);
    assert!(page.body.contains("This form expired"), "{}", page.body);
}

/// Issue 15: a rate limit met while pressing the claim page's button was
/// raw JSON ("try again in 3487 s"). A browser now gets a 429 page that
/// says when in words, with `Retry-After`; an agent pressing the same
/// form without `text/html` gets the same JSON refusal as before.
#[test]
fn a_rate_limited_button_press_is_a_page_with_retry_after() {
    let mut server = TestServer::start_rate_limited(&[], &[]);
    server.cli_ok(&["config", "set", "rate_limit.claim_code.per_ip", "1"]);
    server.restart();
    let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":"pat@example.com","requested_credential_type":"api_key"});
    assert_eq!(server.post_json("/agent/auth", &body.to_string()).status, 200);
    let form = format!("token={}", server.wait_for_mail(1)[0].token());
    assert_page(&press(&server, "/agent/auth/claim/view", &form, Some(BROWSER)), 200);

    let limited = press(&server, "/agent/auth/claim/view", &form, Some(BROWSER));
    assert_page(&limited, 429);
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let wait = authmd::time::span_words(Duration::from_secs(retry));
    assert!(
        limited
            .body
            .contains(&format!(r#"try again in about <span class="nw">{wait}</span>, after"#)),
        "{}",
        limited.body
    );
    assert!(limited.body.contains(" UTC</time>"), "{}", limited.body);
    assert!(
        !limited.body.contains(" s<") && !limited.body.contains("3600 s"),
        "{}",
        limited.body
    );

    let agent = press(&server, "/agent/auth/claim/view", &form, None);
    let json = assert_json(&agent, 429, "rate_limited");
    assert!(json["message"].as_str().unwrap().contains("try again in"), "{json}");
    assert!(agent.header("retry-after").is_some());
    assert_eq!(agent.header("cache-control"), Some("no-store"));
}

/// A refusal from a page's own handler (here a form of the wrong type) is
/// a page for a browser and the v0.1 JSON body for an agent.
#[test]
fn a_handler_refusal_on_a_page_url_is_negotiated_too() {
    let server = TestServer::start();
    let headers = |accept| vec![("Content-Type", "text/plain"), ("Accept", accept)];
    let page = server.request("POST", "/agent/auth/claim/view", &headers(BROWSER), b"token=x");
    assert_page(&page, 415);
    let agent = server.request(
        "POST",
        "/agent/auth/claim/view",
        &headers("application/json"),
        b"token=x",
    );
    assert_json(&agent, 415, "unsupported_media_type");
    // The guarded API keeps its JSON and challenge for every caller.
    let api = browse(&server, "GET", "/api/resource");
    assert_json(&api, 401, "invalid_token");
    assert!(api.header("www-authenticate").is_some());
}

/// While `resource_name` is unset, pages name the service by its host and
/// tell the operator how to name it, and `serve` says so once at start;
/// set (even to "API"), neither. JSON (discovery) keeps "API" throughout.
#[test]
fn an_unset_resource_name_shows_the_host_and_a_hint_for_the_operator() {
    let mut server = TestServer::start();
    let host = server.base.trim_start_matches("http://").to_string();
    let warning = "resource_name is not set";
    // stderr is read on a thread of its own: wait for the start-up lines.
    let started = |server: &TestServer, times: usize| {
        let logged = || server.stderr().matches(" listening on ").count() >= times;
        assert!(server.eventually(Duration::from_secs(5), logged), "{}", server.stderr());
    };
    started(&server, 1);
    assert_eq!(server.stderr().matches(warning).count(), 1, "{}", server.stderr());
    let line = server
        .stderr()
        .lines()
        .find(|l| l.contains(warning))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&host) && line.contains("authmd config set resource_name NAME"),
        "{line}"
    );

    let home = browse(&server, "GET", "/");
    assert!(
        home.body.contains(&format!(r#"<p class="who">{host}</p>"#)),
        "{}",
        home.body
    );
    assert!(
        home.body.contains("authmd config set resource_name NAME"),
        "{}",
        home.body
    );
    assert!(!home.body.contains(">API<"), "{}", home.body);
    let prm = server.get("/.well-known/oauth-protected-resource").json();
    assert_eq!(prm["resource_name"], "API", "JSON unchanged");
    // The mail a person reads names the service as the pages do.
    let registered = server.post_json(
        "/agent/auth",
        r#"{"type":"identity_assertion","assertion_type":"verified_email","assertion":"you@example.com","requested_credential_type":"api_key"}"#,
    );
    assert_eq!(registered.status, 200, "{}", registered.body);
    assert!(
        server.eventually(Duration::from_secs(10), || !server.outbox().is_empty()),
        "no mail"
    );
    let mail = server.outbox().remove(0);
    assert_eq!(mail.subject, format!("Confirm the AI agent registered with {host}"));
    assert!(
        mail.text.contains(&format!("registered with {host} and")),
        "{}",
        mail.text
    );

    server.set("resource_name", "API");
    let home = browse(&server, "GET", "/");
    assert!(home.body.contains(r#"<p class="who">API</p>"#), "{}", home.body);
    assert!(!home.body.contains("config set"), "{}", home.body);
    server.set("resource_name", "Hobby Notes");
    server.restart();
    started(&server, 2);
    assert_eq!(
        server.stderr().matches(warning).count(),
        1,
        "no second warning once set"
    );
    let page = browse(&server, "GET", "/agent/auth");
    assert!(page.body.contains(r#"<p class="who">Hobby Notes</p>"#), "{}", page.body);
}

/// Issue 15 in Chromium at 320 px: `/`, a POST-only URL, the claim link
/// for a long address, its code, a press over the rate limit (429 page,
/// `Retry-After`) and an expired link. On every page nothing is wider
/// than the screen and no word of a time, an address, a button or a
/// heading is broken across lines. Screenshots: `<target>/people-*.png`.
#[test]
fn the_pages_fit_a_320_px_screen_without_breaking_words_in_chromium() {
    let server = InProcess::start_with(false, &[("rate_limit.claim_code.per_ip", "1")]);
    let register = |email: &str| {
        let body = json!({"type":"identity_assertion","assertion_type":"verified_email","assertion":email,"requested_credential_type":"api_key"});
        assert_eq!(server.post_json("/agent/auth", &body.to_string()).status, 200);
    };
    register("old@example.com");
    server.advance(Duration::from_secs(601));
    let long = "patricia.montgomery-featherstonehaugh@research.example-university.edu";
    register(long);
    let mail = server.wait_for_mail(2);
    let link = |to: &str| mail.iter().find(|m| m.to == to).unwrap().link();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let shots = target.join("people");
    let (live, expired) = (link(long), link("old@example.com"));
    let args = [
        std::ffi::OsStr::new(&server.base),
        std::ffi::OsStr::new(&live),
        std::ffi::OsStr::new(&expired),
        shots.as_os_str(),
    ];
    let result = crate::browser::run_script("people.mjs", &args, None);
    let steps = &result["steps"];
    for (step, status) in [
        ("home", 200),
        ("postOnly", 405),
        ("link", 200),
        ("code", 200),
        ("limited", 429),
        ("expired", 410),
    ] {
        let at = &steps[step];
        assert_eq!(at["status"], status, "{step}: {at}");
        assert!(
            at["width"].as_u64().is_some_and(|w| w <= 320),
            "{step} scrolls sideways: {at}"
        );
        assert_eq!(at["broken"], json!([]), "{step}: words broken across lines: {at}");
        assert_eq!(at["outside"], json!([]), "{step}: wider than the screen: {at}");
        assert!(target.join(format!("people-{step}.png")).exists(), "{step}");
    }
    let text = |step: &str| steps[step]["text"].as_str().unwrap().to_string();
    assert!(text("postOnly").contains("This address is for AI agents"), "{steps}");
    assert!(text("link").contains(long), "{steps}");
    assert!(text("limited").contains("try again in about"), "{steps}");
    assert!(text("expired").contains("This link expired"), "{steps}");
    let times = |step: &str| steps[step]["times"].as_array().unwrap().len();
    assert_eq!((times("link"), times("code"), times("limited")), (1, 1, 1), "{steps}");
    assert!(
        steps["link"]["times"][0]
            .as_str()
            .unwrap()
            .ends_with("UTC (in 10 minutes)"),
        "{steps}"
    );
    assert!(
        steps["limited"]["retryAfter"]
            .as_str()
            .is_some_and(|r| r.parse::<u64>().is_ok()),
        "{steps}"
    );
    // Chromium notes each refused status; a CSP violation would show too.
    for error in result["errors"].as_array().unwrap() {
        let error = error.as_str().unwrap();
        assert!(
            error.starts_with("Failed to load resource: the server responded with a status of 4"),
            "{error}"
        );
    }
}
