//! Thousands of generated malformed bodies to every POST endpoint: each gets
//! a 4xx (or a 200 where the input happens to be acceptable), never a 5xx,
//! and the server keeps serving. Deterministic: a fixed-seed generator, so a
//! failure names a case that can be replayed. The v0.7 endpoints and the
//! person's pages and forms get theirs with cookies, CSRF tokens and
//! `return_to` values too, and each answer is checked against its surface's
//! envelope (SPEC-v0.7 3).

use crate::common;
use crate::common::{Client, TestServer};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
    r#"{"type":"identity_assertion","assertion_type":"verified_email","assertion":"a@example.com","requested_credential_type":"api_key"}"#,
    r#"{"type":"identity_assertion","assertion_type":"urn:ietf:params:oauth:token-type:id-jag","assertion":"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln","requested_credential_type":"access_token"}"#,
    r#"{"claim_token":"clm_abc","email":"a@example.com"}"#,
    r#"{"claim_attempt_token":"cat_abc"}"#,
    r#"{"claim_token":"clm_abc","otp":"123456"}"#,
    "token=cat_abc&confirm=yes",
    "eyJhbGciOiJFUzI1NiIsInR5cCI6ImxvZ291dCtqd3QifQ.eyJpc3MiOiJ4In0.c2ln",
];

const SPLICES: &[&str] = &[
    "null",
    "true",
    "[]",
    "{}",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\u{202e}",
    "%",
    "%zz",
    "&&&",
    "=",
    "\\",
    "\"",
    "{\"a\":",
    "[[[[[[[[[[[[[[[[",
    "\u{1F600}",
    "\r\n",
    "\0",
];

fn mutate(rng: &mut Rng, seed: &str) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            1 => bytes.truncate(rng.below(bytes.len() + 1)),
            2 => {
                let at = rng.below(bytes.len() + 1);
                let splice = SPLICES[rng.below(SPLICES.len())].as_bytes();
                bytes.splice(at..at, splice.iter().copied());
            }
            3 => bytes = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            4 => {
                let depth = 1 + rng.below(3000);
                bytes = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
            }
            5 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                let copy = bytes[at..].to_vec();
                bytes.extend_from_slice(&copy);
            }
            _ => bytes.reverse(),
        }
    }
    bytes
}

#[test]
fn generated_malformed_bodies_never_get_a_5xx() {
    let server = TestServer::start();
    let endpoints: &[(&str, &str)] = &[
        ("/agent/auth", "application/json"),
        ("/agent/auth/claim", "application/json"),
        ("/agent/auth/claim/attempt/challenge", "application/json"),
        ("/agent/auth/claim/complete", "application/json"),
        ("/agent/auth/claim/view", "application/x-www-form-urlencoded"),
        ("/agent/auth/claim/reject", "application/x-www-form-urlencoded"),
        ("/agent/auth/revoke", "application/logout+jwt"),
        ("/oauth/revoke", "application/x-www-form-urlencoded"),
        ("/oauth2/revoke", "application/x-www-form-urlencoded"),
        ("/oauth2/token", "application/x-www-form-urlencoded"),
        ("/agent/identity", "application/json"),
        ("/oauth/introspect", "application/x-www-form-urlencoded"),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut sent = 0;
    for case in 0..3000 {
        let (path, content_type) = endpoints[case % endpoints.len()];
        let seed = SEEDS[rng.below(SEEDS.len())];
        let body = mutate(&mut rng, seed);
        let reply = server.request("POST", path, &[("Content-Type", content_type)], &body);
        sent += 1;
        assert!(
            reply.status < 500,
            "case {case}: POST {path} with {:?} got {}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)]),
            reply.status,
            reply.body
        );
        if reply.status >= 400 {
            let error: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::Null);
            let page = reply.header("content-type").is_some_and(|t| t.starts_with("text/html"));
            assert!(
                page || error["error"].is_string(),
                "case {case}: a 4xx without a JSON error: {}",
                reply.body
            );
        }
    }
    assert_eq!(sent, 3000);
    assert_eq!(server.get("/healthz").status, 200);
    assert!(!server.stderr().contains("panic"), "a handler panicked");
}

/// The envelope a refusal takes at one place (SPEC-v0.7 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `{error, message, error_description}`.
    Profile,
    /// RFC 6749 5.2: `{error, error_description}`, `Pragma: no-cache`.
    OAuth,
    /// RFC 8935 2.4: `{err, description}`.
    Set,
    /// HTML with the page headers of SPEC.md 5.3.
    Page,
}

/// The cookie a form or page is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    Nothing,
    Session,
    Presession,
}

struct Target {
    method: &'static str,
    path: &'static str,
    /// The right Content-Type (for a GET, none: the seed is the query).
    content_type: &'static str,
    surface: Surface,
    /// The statuses an acceptable request gets.
    success: &'static [u16],
    binding: Binding,
    /// With `{csrf}` and `{return_to}` filled in per case.
    seeds: Vec<String>,
}

/// Content types each endpoint must refuse in its own envelope.
const WRONG_TYPES: &[&str] = &[
    "",
    "text/plain",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/secevent+jwt",
    "application/jwt",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded;;;",
    "*/*",
];

/// `return_to` values a form or the sign-in page may be handed (SPEC-v0.7 7.3).
const RETURN_TOS: &[&str] = &[
    "/",
    "/claim?claim_attempt_token=cvt_x",
    "//evil.example/",
    "/\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/\r\nSet-Cookie: x=y",
    "/%2F%2Fevil.example",
    "/\t/evil.example",
    "",
    "evil",
    "/\u{202e}",
    "/café menu",
];

/// Percent-encodes all but unreserved bytes: a value inside a form.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query the edge takes (visible ASCII, no `#`, within its 8 KiB request
/// line), from any bytes: the rest is percent-encoded, and a stray `%` left
/// as it is, so malformed escapes reach the server.
fn as_query(bytes: &[u8]) -> String {
    let mut query: String = bytes
        .iter()
        .map(|&b| match b {
            b'#' => "%23".to_string(),
            0x21..=0x7e => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    query.truncate(6 * 1024);
    query
}

/// The `Cookie` headers of one case: a third of the time the right one,
/// otherwise none or one of the ways a cookie goes wrong (some of which
/// still carry the right value: quoted, spaced, first of two, among many).
fn cookie_headers(rng: &mut Rng, name: &str, valid: &str, other_name: &str, other: &str) -> Vec<String> {
    let garbage: String = (0..1 + rng.below(60))
        .map(|_| (0x20 + rng.below(0x5f) as u8) as char)
        .collect();
    if rng.below(3) == 0 {
        return vec![format!("{name}={valid}")];
    }
    match rng.below(16) {
        0 => vec![],
        1 => vec![format!("{name}=")],
        2 => vec![name.to_string()],
        3 => vec![format!("{name}=\"{valid}\"")],
        4 => vec![format!("{name}={garbage}")],
        5 => vec![garbage],
        6 => vec![format!("{}={valid}", name.to_uppercase())],
        7 => vec![format!("{other_name}={valid}")],
        8 => vec![format!("{name}={other}")],
        9 => vec![format!("{name}=forged; {name}={valid}")],
        10 => vec![format!("{name}={valid}; {name}=forged")],
        11 => vec![format!("{name}=forged"), format!("{name}={valid}")],
        12 => vec![format!("{name}={}", "A".repeat(7 * 1024))],
        13 => vec![format!(";;=; {name} = {valid} ;")],
        14 => vec![format!("{name}={valid}"), format!("{name}={valid}")],
        _ => {
            let many: Vec<String> = (0..150).map(|i| format!("c{i}=v{i}")).collect();
            vec![format!("{}; {name}={valid}", many.join("; "))]
        }
    }
}

/// The `csrf` field of one case: half the time the right token, otherwise
/// none or a wrong one.
fn csrf_field(rng: &mut Rng, valid: &str, other: &str) -> String {
    if rng.below(2) == 0 {
        return format!("csrf={valid}");
    }
    let value = match rng.below(6) {
        0 => return "csrf_=x".into(),
        1 => String::new(),
        2 => other.to_string(),
        3 => format!("{valid}A"),
        4 => valid[..valid.len() - 1].to_string(),
        _ => "A".repeat(4000),
    };
    format!("csrf={value}")
}

/// A same-origin path, as SPEC-v0.7 7.3 allows `return_to`.
fn same_origin(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') && !path.chars().any(char::is_control)
}

/// What every answer at `target` must be, whatever was sent.
fn check(target: &Target, reply: &crate::common::Reply) -> Result<(), String> {
    let header = |name: &str| reply.header(name).unwrap_or("");
    let json = || serde_json::from_str::<serde_json::Value>(&reply.body).map_err(|e| format!("not JSON: {e}"));
    if reply.status >= 500 {
        return Err("a 5xx".into());
    }
    if !target.success.contains(&reply.status) && !(400..500).contains(&reply.status) {
        return Err(format!("neither {:?} nor a 4xx", target.success));
    }
    if header("cache-control") != "no-store" {
        return Err("not no-store".into());
    }
    let refused = reply.status >= 400;
    match target.surface {
        Surface::Profile => {
            let body = json()?;
            let challenge = reply.status == 401 && header("www-authenticate").starts_with("AgentAuth error=");
            if refused
                && !(body["error"].is_string()
                    && body["message"].as_str().is_some_and(|m| !m.is_empty())
                    && body["error_description"] == body["message"])
            {
                return Err("not the profile envelope".into());
            }
            if matches!(body["error"].as_str(), Some("login_required" | "interaction_required")) && !challenge {
                return Err("a challenge without WWW-Authenticate".into());
            }
        }
        Surface::OAuth => {
            if header("pragma") != "no-cache" {
                return Err("no Pragma: no-cache".into());
            }
            if refused {
                let body = json()?;
                if !body["error"].is_string() || !body["error_description"].is_string() || body.get("message").is_some()
                {
                    return Err("not the RFC 6749 envelope".into());
                }
            }
        }
        Surface::Set => {
            if refused {
                let body = json()?;
                if !body["err"].is_string() || !body["description"].is_string() || body.get("error").is_some() {
                    return Err("not the RFC 8935 envelope".into());
                }
            } else if !reply.body.is_empty() {
                return Err("a 202 with a body".into());
            }
        }
        Surface::Page => {
            if header("content-type").starts_with("application/json") || reply.body.trim_start().starts_with('{') {
                return Err("JSON on a page".into());
            }
            if reply.status == 303 {
                let location = header("location");
                // Sign-out passes on the form's `return_to`, which it checked
                // (the claim page passes on its own path, for sign-in to check).
                let back = location
                    .split_once("?return_to=")
                    .filter(|_| target.path == "/logout")
                    .map(|(_, r)| authmd::internals::percent_decode(r).unwrap_or_default());
                if !same_origin(location) || back.is_some_and(|r| !same_origin(&r)) {
                    return Err(format!("a redirect to {location:?}, not a path of this origin"));
                }
            } else {
                let csp = header("content-security-policy");
                let rules = header("content-type").starts_with("text/html")
                    && header("referrer-policy") == "no-referrer"
                    && header("x-content-type-options") == "nosniff"
                    && header("x-frame-options") == "DENY"
                    && ["default-src 'none'", "form-action 'self'", "frame-ancestors 'none'"]
                        .iter()
                        .all(|rule| csp.contains(rule));
                if !rules {
                    return Err("a page without the page headers".into());
                }
            }
        }
    }
    for (name, value) in &reply.headers {
        if name.eq_ignore_ascii_case("set-cookie") && !value.contains("; HttpOnly; SameSite=Lax; Path=/; Max-Age=") {
            return Err(format!("a cookie without its attributes: {value}"));
        }
    }
    Ok(())
}

fn claims_of(assertion: &str) -> serde_json::Value {
    use base64::Engine;
    let part = assertion.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// An anonymous registration claimed by the person `browser` is signed in
/// as: the `/complete` answer.
fn claimed_anonymous(
    server: &TestServer,
    browser: &mut crate::signin::Browser<'_, TestServer>,
    email: &str,
) -> serde_json::Value {
    let made = server.post_json("/agent/identity", r#"{"type":"anonymous"}"#).json();
    let claim_token = made["claim"]["token"].as_str().unwrap();
    let body = serde_json::json!({ "type": "service_auth", "claim_token": claim_token, "login_hint": email });
    let started = server.post_json("/agent/identity/claim", &body.to_string()).json();
    let link = started["attempt"]["verification_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(&server.base);
    let token = link.split("claim_attempt_token=").nth(1).unwrap().to_string();
    assert_eq!(browser.get(link).status, 200);
    let csrf = browser.csrf.clone();
    let shown = browser.post("/claim/confirm", &format!("claim_attempt_token={token}&csrf={csrf}"));
    let at = shown.body.find(r#"id="user-code">"#).expect("a code") + r#"id="user-code">"#.len();
    let code = &shown.body[at..at + 6];
    let body = serde_json::json!({ "claim_token": claim_token, "user_code": code });
    let done = server.post_json("/agent/identity/claim/complete", &body.to_string());
    assert_eq!(done.status, 200, "{}", done.body);
    done.json()
}

fn cookie_of<C: crate::common::Client>(browser: &crate::signin::Browser<'_, C>, name: &str) -> String {
    browser
        .cookies
        .iter()
        .find(|(n, _)| n == name)
        .expect("the cookie")
        .1
        .clone()
}

fn exchange(server: &TestServer, assertion: &str) -> crate::common::Reply {
    server.request(
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}").as_bytes(),
    )
}

/// Issue 12: every v0.7 POST endpoint and form, and the two pages that take
/// a query, get generated malformed input: bodies, content types, missing,
/// garbage, huge, duplicated and misnamed cookies, wrong CSRF tokens and
/// `return_to` values off this origin. Each answer is in its surface's
/// envelope (the three JSON ones, or an HTML page with the page headers),
/// never a 5xx; the server never panics, and what was stored before (a
/// claimed registration, its refresh token, a person's session, an ID-JAG
/// delegation) works the same after.
#[test]
fn generated_malformed_v0_7_requests_get_their_surfaces_envelope() {
    use crate::signin::{Browser, sign_in};
    use authmd_dev::{Alg, JwksServer, SigningKey};

    let server = TestServer::start();
    let provider = JwksServer::start("127.0.0.1:0").unwrap();
    let key = SigningKey::generate(Alg::Es256, "k1");
    provider.publish(&[&key], "public, max-age=3600");
    server.cli_ok(&["provider", "add", &provider.base_url, "--name", "Dev Provider"]);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let id_jag = |sub: &str| {
        let claims = authmd_dev::id_jag_claims(&provider.base_url, sub, &server.base, now());
        let token = key.sign(&authmd_dev::id_jag_header(), &claims);
        format!(
            r#"{{"type":"identity_assertion","assertion_type":"urn:ietf:params:oauth:token-type:id-jag","assertion":"{token}"}}"#
        )
    };
    let set = |sub: &str, event: &str| {
        let events = serde_json::json!({ event: {} });
        let claims = authmd_dev::secevent_claims(&provider.base_url, sub, &server.base, now(), events);
        key.sign(&authmd_dev::secevent_header(), &claims)
    };

    // What must survive the barrage: nothing of it is in a seed.
    let mut sentinel_browser = sign_in(&server, "sentinel@example.com");
    let sentinel = claimed_anonymous(&server, &mut sentinel_browser, "sentinel@example.com");
    let sentinel_link = server.post_json("/agent/identity", &id_jag("sentinel-idp"));
    assert_eq!(sentinel_link.status, 200, "{}", sentinel_link.body);

    // What the seeds carry: a signed-in person, a pre-session, live tokens.
    let mut person = sign_in(&server, "fuzz@example.com");
    let claimed = claimed_anonymous(&server, &mut person, "fuzz@example.com");
    let session = cookie_of(&person, "authmd_session");
    let session_csrf = person.csrf.clone();
    let mut stranger = Browser::new(&server);
    stranger.get("/login");
    let presession = cookie_of(&stranger, "authmd_login");
    let presession_csrf = stranger.csrf.clone();
    // A reused refresh token revokes its family (SPEC-v0.7 9), so the token
    // endpoint's seeds come from another registration than the refresh seed.
    let refresh = claimed["identity"]["refresh_token"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let anonymous = server.post_json("/agent/identity", r#"{"type":"anonymous"}"#).json();
    let assertion = anonymous["identity"]["assertion"].as_str().unwrap().to_string();
    let access = exchange(&server, &assertion).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let claim_token = anonymous["claim"]["token"].as_str().unwrap().to_string();
    let service = server
        .post_json(
            "/agent/identity",
            r#"{"type":"service_auth","login_hint":"fuzz@example.com"}"#,
        )
        .json();
    let link = service["claim"]["attempt"]["verification_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let attempt = link.split("claim_attempt_token=").nth(1).unwrap().to_string();
    let forged_jws = "eyJhbGciOiJFUzI1NiIsInR5cCI6InNlY2V2ZW50K2p3dCJ9.eyJpc3MiOiJ4In0.c2ln";
    let grant = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
    let resource = encode(&format!("{}/api/", server.base));

    use Binding::{Nothing, Presession, Session};
    use Surface::{OAuth, Page, Profile, Set};
    let json_type = "application/json";
    let form_type = "application/x-www-form-urlencoded";
    let target = |method, path, content_type, surface, success: &'static [u16], binding, seeds: Vec<String>| Target {
        method,
        path,
        content_type,
        surface,
        success,
        binding,
        seeds,
    };
    // In this order: the forms that end what the seeds carry come last.
    let targets = [
        target(
            "POST",
            "/agent/identity",
            json_type,
            Profile,
            &[200],
            Nothing,
            vec![
                r#"{"type":"anonymous"}"#.into(),
                r#"{"type":"service_auth","login_hint":"someone@example.com"}"#.into(),
                id_jag("fuzz-idp"),
                format!(
                    r#"{{"type":"identity_assertion","assertion_type":"urn:ietf:params:oauth:token-type:id-jag","assertion":"{forged_jws}"}}"#
                ),
                r#"{"type":"identity_assertion","assertion_type":"verified_email","assertion":"a@example.com"}"#.into(),
                format!(r#"{{"type":"refresh","refresh_token":"{refresh}"}}"#),
                r#"{"type":"refresh","refresh_token":"authmd_rt_AAAA"}"#.into(),
            ],
        ),
        target(
            "POST",
            "/agent/identity/claim",
            json_type,
            Profile,
            &[200],
            Nothing,
            vec![
                format!(r#"{{"type":"service_auth","claim_token":"{claim_token}","login_hint":"fuzz@example.com"}}"#),
                r#"{"type":"service_auth","claim_token":"clm_unknown","login_hint":"a@example.com"}"#.into(),
            ],
        ),
        target(
            "POST",
            "/agent/identity/claim/complete",
            json_type,
            Profile,
            &[200],
            Nothing,
            vec![
                format!(r#"{{"claim_token":"{claim_token}","user_code":"123456"}}"#),
                r#"{"claim_token":"clm_unknown","user_code":"000000"}"#.into(),
            ],
        ),
        target(
            "POST",
            "/oauth2/token",
            form_type,
            OAuth,
            &[200],
            Nothing,
            vec![
                format!("{grant}&assertion={assertion}"),
                format!("{grant}&assertion={assertion}&resource={resource}&scope=api.read"),
                format!("{grant}&assertion={forged_jws}"),
                "grant_type=password&username=a&password=b".into(),
                format!(r#"{{"grant_type":"urn:ietf:params:oauth:grant-type:jwt-bearer","assertion":"{assertion}"}}"#),
            ],
        ),
        target(
            "POST",
            "/oauth2/revoke",
            form_type,
            OAuth,
            &[200],
            Nothing,
            vec![
                "token=authmd_at_unknown&token_type_hint=access_token".into(),
                format!("token={access}&token_type_hint=refresh_token"),
                "token_type_hint=refresh_token".into(),
            ],
        ),
        target(
            "POST",
            "/oauth/revoke",
            form_type,
            OAuth,
            &[200],
            Nothing,
            vec![
                "token=authmd_rt_unknown&token_type_hint=wizard".into(),
                format!("token={access}"),
            ],
        ),
        target(
            "POST",
            "/agent/event/notify",
            "application/secevent+jwt",
            Set,
            &[202],
            Nothing,
            vec![
                set("fuzz-idp", authmd_dev::REVOKED_EVENT),
                set("fuzz-idp", "https://example.com/events/other"),
                forged_jws.into(),
                "not a token".into(),
            ],
        ),
        target(
            "GET",
            "/login",
            "",
            Page,
            &[200, 303],
            Session,
            vec!["return_to={return_to}".into()],
        ),
        target(
            "GET",
            "/claim",
            "",
            Page,
            &[200, 303],
            Session,
            vec![
                format!("claim_attempt_token={attempt}"),
                "claim_attempt_token=cvt_unknown".into(),
            ],
        ),
        target(
            "POST",
            "/login",
            form_type,
            Page,
            &[200],
            Presession,
            vec![
                "email=fuzz-login%40example.com&return_to={return_to}&{csrf}".into(),
                "email=not-an-address&{csrf}".into(),
            ],
        ),
        target(
            "POST",
            "/login/verify",
            form_type,
            Page,
            &[303],
            Presession,
            vec!["code=123456&{csrf}".into(), "code=%20000000%20&{csrf}".into()],
        ),
        target(
            "POST",
            "/claim/confirm",
            form_type,
            Page,
            &[200],
            Session,
            vec![
                format!("claim_attempt_token={attempt}&{{csrf}}"),
                "claim_attempt_token=cvt_unknown&{csrf}".into(),
            ],
        ),
        target(
            "POST",
            "/claim/reject",
            form_type,
            Page,
            &[200],
            Session,
            vec![
                format!("claim_attempt_token={attempt}&{{csrf}}"),
                format!("claim_attempt_token={attempt}&confirm=yes&{{csrf}}"),
            ],
        ),
        target(
            "POST",
            "/logout",
            form_type,
            Page,
            &[303],
            Session,
            vec!["{csrf}&return_to={return_to}".into(), "{csrf}".into()],
        ),
    ];

    const PER_TARGET: usize = 250;
    let mut rng = Rng(0x12_f0a5_c00c_1e5e);
    let mut succeeded = std::collections::HashSet::new();
    for target in &targets {
        for case in 0..PER_TARGET {
            let seed = &target.seeds[rng.below(target.seeds.len())];
            let (csrf, other_csrf) = match target.binding {
                Presession => (&presession_csrf, &session_csrf),
                _ => (&session_csrf, &presession_csrf),
            };
            let filled = seed
                .replace("{csrf}", &csrf_field(&mut rng, csrf, other_csrf))
                .replace("{return_to}", &encode(RETURN_TOS[rng.below(RETURN_TOS.len())]));
            let bytes = match rng.below(3) {
                0 => filled.into_bytes(),
                _ => mutate(&mut rng, &filled),
            };
            let cookies = match target.binding {
                Presession => cookie_headers(&mut rng, "authmd_login", &presession, "authmd_session", &session),
                Session => cookie_headers(&mut rng, "authmd_session", &session, "authmd_login", &presession),
                // Cookies mean nothing to the agents' endpoints.
                Nothing if rng.below(4) == 0 => {
                    cookie_headers(&mut rng, "authmd_session", &session, "authmd_login", &presession)
                }
                Nothing => vec![],
            };
            let mut headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("Cookie", c.as_str())).collect();
            let content_type = match rng.below(5) {
                0 => WRONG_TYPES[rng.below(WRONG_TYPES.len())],
                _ => target.content_type,
            };
            let (path, body) = if target.method == "GET" {
                (format!("{}?{}", target.path, as_query(&bytes)), Vec::new())
            } else {
                (target.path.to_string(), bytes)
            };
            if target.method == "POST" && !(content_type.is_empty() && rng.below(2) == 0) {
                headers.push(("Content-Type", content_type));
            }
            let reply = server.request(target.method, &path, &headers, &body);
            if target.success.contains(&reply.status) {
                succeeded.insert(target.path);
            }
            if let Err(why) = check(target, &reply) {
                panic!(
                    "case {case}: {} {} with {headers:?} and {:?}: {why}; got {} {:?}: {}",
                    target.method,
                    &path[..path.len().min(300)],
                    String::from_utf8_lossy(&body[..body.len().min(300)]),
                    reply.status,
                    reply.headers,
                    &reply.body[..reply.body.len().min(500)],
                );
            }
        }
    }

    // The seeds are live: everything got through at times, but for the two
    // forms that need a code read off a page or out of a mail.
    for target in &targets {
        let needs_code = ["/agent/identity/claim/complete", "/login/verify"].contains(&target.path);
        assert!(
            needs_code || succeeded.contains(target.path),
            "no case got through to {}",
            target.path
        );
    }

    // One cookie line over the edge's 8 KiB: refused there, before routing.
    let huge = format!("authmd_session={}", "A".repeat(9 * 1024));
    assert_eq!(server.request("GET", "/", &[("Cookie", &huge)], b"").status, 431);

    assert!(!server.stderr().contains("panic"), "a handler panicked");
    assert_eq!(server.get("/healthz").status, 200);
    if !common::postgres_backend() {
        let conn = rusqlite::Connection::open(server.db()).unwrap();
        let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(integrity, "ok");
    }

    // What was stored before works as before.
    let sentinel_assertion = sentinel["identity"]["assertion"].as_str().unwrap();
    assert_eq!(claims_of(sentinel_assertion)["email"], "sentinel@example.com");
    let token = exchange(&server, sentinel_assertion);
    assert_eq!(token.status, 200, "{}", token.body);
    let me = server.get_with_token("/api/resource", token.json()["access_token"].as_str().unwrap());
    assert_eq!(
        (me.status, me.json()["status"].as_str()),
        (200, Some("claimed")),
        "{}",
        me.body
    );
    let sentinel_refresh = sentinel["identity"]["refresh_token"]["value"].as_str().unwrap();
    let rotated = server.post_json(
        "/agent/identity",
        &serde_json::json!({ "type": "refresh", "refresh_token": sentinel_refresh }).to_string(),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(rotated.json()["id"], sentinel["id"]);
    let home = sentinel_browser.get("/");
    assert!(
        home.body.contains("sentinel@example.com") && home.body.contains("Sign out"),
        "{}",
        home.body
    );
    let again = server.post_json("/agent/identity", &id_jag("sentinel-idp"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.json()["id"],
        sentinel_link.json()["id"],
        "the same delegation, a clean match"
    );
}
