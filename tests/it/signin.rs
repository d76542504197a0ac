//! Signing in at the service (SPEC-v0.7 7): the form, a code through the
//! real outbox, the session cookie, CSRF on every form, `return_to` kept to
//! this origin, and the same answer whether or not an address is known.

use std::time::Duration;

use crate::common::{Client, InProcess, Reply};

/// A browser's cookie jar and the last form's CSRF token, by hand.
pub struct Browser<'a, C: Client> {
    server: &'a C,
    pub cookies: Vec<(String, String)>,
    pub csrf: String,
}

impl<'a, C: Client> Browser<'a, C> {
    pub fn new(server: &'a C) -> Browser<'a, C> {
        Browser {
            server,
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, reply: Reply) -> Reply {
        for (name, value) in &reply.headers {
            if name.eq_ignore_ascii_case("set-cookie") {
                let (pair, _) = value.split_once(';').unwrap_or((value, ""));
                let (n, v) = pair.split_once('=').unwrap();
                self.cookies.retain(|(k, _)| k != n);
                if !value.contains("Max-Age=0") {
                    self.cookies.push((n.to_string(), v.to_string()));
                }
            }
        }
        if let Some(start) = reply.body.find(r#"name="csrf" value=""#) {
            let rest = &reply.body[start + r#"name="csrf" value=""#.len()..];
            self.csrf = rest[..rest.find('"').unwrap()].to_string();
        }
        reply
    }

    pub fn get(&mut self, path: &str) -> Reply {
        let cookies = self.cookie_header();
        let reply = self.server.request("GET", path, &[("Cookie", &cookies)], b"");
        self.take(reply)
    }

    pub fn post(&mut self, path: &str, form: &str) -> Reply {
        let cookies = self.cookie_header();
        let reply = self.server.request(
            "POST",
            path,
            &[
                ("Cookie", &cookies),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            form.as_bytes(),
        );
        self.take(reply)
    }

    fn has(&self, cookie: &str) -> bool {
        self.cookies.iter().any(|(n, _)| n == cookie)
    }
}

#[test]
fn a_person_signs_in_with_a_mailed_code_and_signs_out() {
    let server = InProcess::start();
    let mut browser = Browser::new(&server);
    let form = browser.get("/login?return_to=%2F");
    assert_eq!(form.status, 200);
    assert_eq!(form.header("cache-control"), Some("no-store"));
    assert!(
        form.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    let cookie = form.header("set-cookie").unwrap();
    assert!(cookie.starts_with("authmd_login="), "{cookie}");
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Lax; Path=/; Max-Age=600"),
        "no Secure over http: {cookie}"
    );
    assert!(!browser.csrf.is_empty());

    // No CSRF token, or another one: refused, nothing sent.
    assert_eq!(
        browser.post("/login", "email=pat%40example.com&return_to=%2F").status,
        403
    );
    assert_eq!(
        browser
            .post("/login", "email=pat%40example.com&return_to=%2F&csrf=forged")
            .status,
        403
    );
    assert!(server.queued_mail().is_empty());

    let csrf = browser.csrf.clone();
    let sent = browser.post("/login", &format!("email=Pat%40Example.com&return_to=%2F&csrf={csrf}"));
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("If this address can sign in"), "{}", sent.body);
    let mail = server.wait_for_mail(1);
    assert_eq!(mail[0].to, "pat@example.com");
    let code = mail[0].signin_code();

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let csrf = browser.csrf.clone();
    assert_eq!(
        browser
            .post("/login/verify", &format!("code={wrong}&csrf={csrf}"))
            .status,
        401
    );
    let csrf = browser.csrf.clone();
    let signed_in = browser.post("/login/verify", &format!("code={code}&csrf={csrf}"));
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.header("location"), Some("/"));
    assert!(browser.has("authmd_session") && !browser.has("authmd_login"));
    let session_cookie = signed_in
        .headers
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with("authmd_session="))
        .unwrap()
        .1
        .clone();
    assert!(
        session_cookie.ends_with("; HttpOnly; SameSite=Lax; Path=/; Max-Age=86400"),
        "{session_cookie}"
    );

    let home = browser.get("/");
    assert!(
        home.body.contains("pat@example.com") && home.body.contains("Sign out"),
        "{}",
        home.body
    );
    // Already signed in, the form sends you on.
    assert_eq!(
        browser.get("/login?return_to=%2Fsomewhere").header("location"),
        Some("/somewhere")
    );

    let csrf = browser.csrf.clone();
    let out = browser.post("/logout", &format!("csrf={csrf}"));
    assert_eq!((out.status, out.header("location")), (303, Some("/login")));
    assert!(!browser.get("/").body.contains("Sign out"));

    let created = server.events("signin.succeeded");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["created"], true, "made just in time");
    assert_eq!(server.events("signin.failed")[0]["reason"], "wrong_code");
    let audit = server.cli_ok(&["audit", "--json"]);
    let session_value = session_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("authmd_session=");
    assert!(
        !audit.contains(&code) && !audit.contains(session_value),
        "no code or cookie in the audit log"
    );
}

#[test]
fn unknown_addresses_get_the_same_answer_and_codes_burn_after_five_tries() {
    let server = InProcess::start_with(
        false,
        &[
            ("jit_provisioning", "false"),
            ("rate_limit.signin.per_ip", "0"),
            ("rate_limit.signin.per_email", "0"),
        ],
    );
    server.cli_ok(&["users", "add", "known@example.com"]);
    let mut stranger = Browser::new(&server);
    stranger.get("/login");
    let csrf = stranger.csrf.clone();
    let answer = stranger.post(
        "/login",
        &format!("email=nobody%40example.com&return_to=%2F&csrf={csrf}"),
    );
    let mut known = Browser::new(&server);
    known.get("/login");
    let csrf = known.csrf.clone();
    let same = known.post(
        "/login",
        &format!("email=known%40example.com&return_to=%2F&csrf={csrf}"),
    );
    assert_eq!((answer.status, same.status), (200, 200));
    let strip = |body: &str| body.replace(&stranger.csrf, "").replace(&known.csrf, "");
    assert_eq!(strip(&answer.body), strip(&same.body), "the same page, known or not");
    let mail = server.wait_for_mail(1);
    assert_eq!(
        server.queued_mail(),
        ["known@example.com"],
        "a code only for the address that can sign in"
    );
    let code = mail[0].signin_code();

    for _ in 0..5 {
        let csrf = known.csrf.clone();
        assert_eq!(
            known.post("/login/verify", &format!("code=999999&csrf={csrf}")).status,
            if code == "999999" { 303 } else { 401 }
        );
    }
    let csrf = known.csrf.clone();
    let burned = known.post("/login/verify", &format!("code={code}&csrf={csrf}"));
    assert_eq!(burned.status, 410, "burned after five wrong codes");
    assert!(burned.body.contains("/login?return_to=%2F"), "{}", burned.body);

    // A code expires, too.
    let mut late = Browser::new(&server);
    late.get("/login");
    let csrf = late.csrf.clone();
    late.post(
        "/login",
        &format!("email=known%40example.com&return_to=%2F&csrf={csrf}"),
    );
    let mail = server.wait_for_mail(2);
    let code = mail.iter().last().unwrap().signin_code();
    server.advance(Duration::from_secs(601));
    let csrf = late.csrf.clone();
    assert_eq!(
        late.post("/login/verify", &format!("code={code}&csrf={csrf}")).status,
        410
    );
}

#[test]
fn return_to_stays_on_this_origin_and_a_claim_link_fills_in_the_address() {
    let server = InProcess::start();
    let made = server
        .post_json(
            "/agent/identity",
            r#"{"type":"service_auth","login_hint":"lee@example.com"}"#,
        )
        .json();
    let link = made["claim"]["attempt"]["verification_uri"].as_str().unwrap();
    let path = link.trim_start_matches(&server.base);
    let mut browser = Browser::new(&server);
    let form = browser.get(&format!(
        "/login?return_to={}",
        path.replace('?', "%3F").replace('=', "%3D")
    ));
    assert!(form.body.contains(r#"value="lee@example.com""#), "{}", form.body);
    for evil in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
    ] {
        let form = browser.get(&format!("/login?return_to={evil}"));
        assert!(
            form.body.contains(r#"name="return_to" value="/""#),
            "{evil}: {}",
            form.body
        );
    }
}

/// Regression for issue 12: a `return_to` of this origin with a byte a
/// header cannot carry (`/café`, a space) got a 303 whose `Location` the
/// edge dropped, a redirect to nowhere. It is percent-encoded now, on every
/// redirect: signed in already, after the code, and after signing out.
#[test]
fn a_return_to_beyond_ascii_is_percent_encoded_in_the_redirect() {
    let server = InProcess::start();
    let mut pat = sign_in(&server, "pat@example.com");
    let back = pat.get("/login?return_to=%2Fcaf%C3%A9%20menu%E2%80%AE");
    assert_eq!(back.status, 303);
    assert_eq!(back.header("location"), Some("/caf%C3%A9%20menu%E2%80%AE"));

    let mut lee = Browser::new(&server);
    lee.get("/login");
    let csrf = lee.csrf.clone();
    let form = format!("email=lee%40example.com&return_to=%2Fcaf%C3%A9&csrf={csrf}");
    assert_eq!(lee.post("/login", &form).status, 200);
    let code = server.wait_for_mail(2).last().unwrap().signin_code();
    let csrf = lee.csrf.clone();
    let signed_in = lee.post("/login/verify", &format!("code={code}&csrf={csrf}"));
    assert_eq!(
        (signed_in.status, signed_in.header("location")),
        (303, Some("/caf%C3%A9"))
    );

    pat.get("/");
    let csrf = pat.csrf.clone();
    let out = pat.post("/logout", &format!("csrf={csrf}&return_to=%2Fcaf%C3%A9"));
    assert_eq!(out.status, 303);
    assert_eq!(out.header("location"), Some("/login?return_to=%2Fcaf%C3%A9"));
}

/// Signs `email` in through the form and the mailed code.
pub fn sign_in<'a, C: Client>(server: &'a C, email: &str) -> Browser<'a, C> {
    let mut browser = Browser::new(server);
    browser.get("/login");
    let before = server.outbox().len();
    let csrf = browser.csrf.clone();
    let sent = browser.post(
        "/login",
        &format!("email={}&return_to=%2F&csrf={csrf}", email.replace('@', "%40")),
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    let mail = server.wait_for_mail(before + 1);
    let code = mail.iter().rev().find(|m| m.to == email).unwrap().signin_code();
    let csrf = browser.csrf.clone();
    assert_eq!(
        browser
            .post("/login/verify", &format!("code={code}&csrf={csrf}"))
            .status,
        303
    );
    browser
}

/// SPEC-v0.7 7.2: `authmd sessions list` shows sessions (never their
/// values) and `sessions revoke` ends them at once.
#[test]
fn the_operator_lists_and_ends_sessions() {
    let server = InProcess::start();
    let mut pat = sign_in(&server, "pat@example.com");
    let mut kim = sign_in(&server, "kim@example.com");
    let listed: Vec<serde_json::Value> = server
        .cli_ok(&["sessions", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    let pat_id = listed.iter().find(|s| s["email"] == "pat@example.com").unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let values: Vec<String> = pat
        .cookies
        .iter()
        .chain(kim.cookies.iter())
        .map(|(_, v)| v.clone())
        .collect();
    let text = server.cli_ok(&["sessions", "list"]);
    assert!(
        values.iter().all(|v| !text.contains(v.as_str())),
        "never a cookie value"
    );

    assert_eq!(
        server.cli_ok(&["sessions", "revoke", "--user", &pat_id]),
        "ended 1 session\n"
    );
    assert!(!pat.get("/").body.contains("Sign out"), "signed out at once");
    assert!(kim.get("/").body.contains("Sign out"), "only that user's");
    assert!(
        !server
            .cli(&["sessions", "revoke", "--user", "usr_nobody"])
            .status
            .success()
    );
    assert_eq!(server.cli_ok(&["sessions", "revoke", "--all"]), "ended 1 session\n");
    assert!(!kim.get("/").body.contains("Sign out"));
    assert_eq!(server.cli_ok(&["sessions", "list"]), "no live sessions\n");
    // A session lasts session_ttl_secs, fixed.
    let mut lee = sign_in(&server, "lee@example.com");
    server.advance(Duration::from_secs(86_401));
    assert!(!lee.get("/").body.contains("Sign out"));
}
