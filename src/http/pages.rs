//! The pages people see (SPEC.md 5.3, SPEC-v0.7 6.2 and 7): self-contained
//! HTML and CSS, no script, every value escaped, readable on a 320 px phone
//! (no horizontal scroll, no word broken in the middle: times never wrap
//! inside a part, addresses only at `@` and `.`). Every time is shown as
//! [`crate::time::human`] says it. The HTTP headers that go with them
//! (no-store, no framing, the CSP) are set by [`page`]; which requests get a
//! page rather than JSON is `http::wants_html`'s to say, not this module's.

use crate::core::Config;
use crate::site::Endpoint;
use crate::time::UnixMs;
use ring::digest::{SHA256, digest};

use super::Response;

/// Whom the pages speak for: the operator's `resource_name`, or, while it
/// is unset, the base URL's host (the default "API" names no service a
/// person would recognise), with a line telling the operator how to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    pub name: String,
    /// `resource_name` is unset: the page says how to set it.
    pub unnamed: bool,
}

impl Brand {
    pub fn of(config: &Config) -> Brand {
        Brand {
            name: config.shown_name.clone(),
            unnamed: !config.settings.resource_name_set,
        }
    }
}

/// A name given as it is, with no hint.
impl From<&str> for Brand {
    fn from(name: &str) -> Brand {
        Brand {
            name: name.to_string(),
            unnamed: false,
        }
    }
}

impl From<&String> for Brand {
    fn from(name: &String) -> Brand {
        Brand::from(name.as_str())
    }
}

impl From<&Brand> for Brand {
    fn from(brand: &Brand) -> Brand {
        brand.clone()
    }
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An address longer than this may not fit one 320 px line in bold.
const LONG_ADDRESS_CHARS: usize = 24;

/// An email address, escaped. A long one may wrap before its `@` and
/// before each `.` (and after a `-`, as any text), never inside a word; a
/// short one fits a line and stays as typed, so it can be found in the page.
pub fn email(address: &str) -> String {
    let escaped = escape(address);
    let shown = if address.chars().count() > LONG_ADDRESS_CHARS {
        escaped.replace('@', "<wbr>@").replace('.', "<wbr>.")
    } else {
        escaped
    };
    format!("<span class=\"addr\">{shown}</span>")
}

/// An identifier such as a registration id: one unbreakable word, set in a
/// monospace face small enough that the longest fits a 320 px screen.
fn id(text: &str) -> String {
    format!("<span class=\"id\">{}</span>", escape(text))
}

/// An instant as [`crate::time::human`] says it, in a `<time>` element
/// whose two parts (the UTC minute, how far it is) never wrap inside.
pub fn time(at: UnixMs, now: UnixMs) -> String {
    let text = crate::time::human(at, now);
    let (clock, relative) = text.split_once(" (").unwrap_or((&text, ""));
    let relative = if relative.is_empty() {
        String::new()
    } else {
        format!(" <span class=\"nw\">({}</span>", escape(relative))
    };
    format!(
        "<time datetime=\"{wire}\"><span class=\"nw\">{clock}</span>{relative}</time>",
        wire = crate::time::rfc3339(at),
        clock = escape(clock),
    )
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:24px;\
background:#f4f6f9;color:#1c2430;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{width:100%;max-width:440px;min-width:0;background:#fff;border:1px solid #e2e6ec;border-radius:14px;padding:32px 28px;\
box-shadow:0 1px 3px rgba(20,30,50,.06)}\
.who{margin:0 0 20px;font-size:13px;letter-spacing:.04em;text-transform:uppercase;color:#5b6573}\
h1{margin:0 0 12px;font-size:22px;line-height:1.3}\
p{margin:0 0 14px}\
a{color:#1f5eff}\
.muted{color:#5b6573;font-size:14px}\
.nw{white-space:nowrap}\
.id{font:13px/1.7 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f0f2f5;padding:1px 4px;border-radius:4px}\
.operator{margin:20px 0 0;padding-top:12px;border-top:1px solid #e2e6ec;font-size:13px;color:#5b6573}\
dl{margin:0 0 20px;font-size:14px;display:grid;grid-template-columns:auto minmax(0,1fr);gap:4px 12px}\
dt{color:#5b6573}dd{margin:0;min-width:0;overflow-wrap:break-word}\
form{margin:0}\
label{display:block;font-size:14px;color:#5b6573}\
input{display:block;width:100%;margin-top:6px;padding:12px 14px;border:1px solid #c9d0da;border-radius:10px;\
font:inherit;color:#1c2430;background:#fff}\
input:focus{outline:2px solid #1f5eff;outline-offset:1px}\
button{width:100%;border:0;border-radius:10px;padding:14px 18px;font-family:inherit;font-size:16px;font-weight:600;line-height:1.2;cursor:pointer}\
.primary{background:#1f5eff;color:#fff}.primary:hover{background:#1a50d9}\
.quiet{margin-top:12px;background:none;color:#5b6573;text-decoration:underline;padding:8px}\
.danger{background:#c62828;color:#fff}\
.after{margin-top:14px}\
.code{margin:8px 0 16px;padding:18px 8px;border-radius:12px;background:#f0f4ff;text-align:center;\
font:700 40px/1 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;letter-spacing:.18em;color:#12214d}\
@media (max-width:400px){body{padding:12px}main{padding:24px 20px}dl{grid-template-columns:minmax(0,1fr);gap:0}dd{margin-bottom:8px}}\
";

/// The Content-Security-Policy of every page: nothing but this stylesheet,
/// forms only to this origin, never framed.
fn csp() -> String {
    use base64::Engine;
    let hash = base64::engine::general_purpose::STANDARD.encode(digest(&SHA256, STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// A whole page with the headers SPEC.md 5.3 asks for. `body` is HTML,
/// every value in it escaped by the caller.
pub fn page(status: u16, brand: impl Into<Brand>, title: &str, body: &str) -> Response {
    let brand = brand.into();
    let operator = if brand.unnamed {
        "<p class=\"operator\">For the operator: this service has no name yet, so its address stands in. \
         Name it with <code>authmd config set resource_name NAME</code>.</p>"
    } else {
        ""
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · {name}</title><style>{STYLE}</style></head>\
         <body><main><p class=\"who\">{name}</p>{body}{operator}</main></body></html>\n",
        title = escape(title),
        name = escape(&brand.name),
    );
    Response::text(status, "text/html; charset=utf-8", html)
        .with_header("Cache-Control", "no-store")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("X-Frame-Options", "DENY")
        .with_header("Content-Security-Policy", csp())
}

pub struct ClaimDetails<'a> {
    pub brand: &'a Brand,
    pub registration_id: &'a str,
    pub email: &'a str,
    pub expires_ms: UnixMs,
    pub now: UnixMs,
}

/// The page the emailed link opens: it names the request and offers the
/// button. Showing it mints nothing.
pub fn claim(details: &ClaimDetails<'_>, token: &str) -> Response {
    let body = format!(
        "<h1>Confirm your AI agent</h1>\
         <p>An AI agent registered with {name} and asked to be linked to <strong>{email}</strong>.</p>\
         <p>If you asked it to, press the button to get a six-digit code, then read the code back to your agent.</p>\
         <dl><dt>Registration</dt><dd>{reg}</dd><dt>Link expires</dt><dd>{expires}</dd></dl>\
         <form method=\"post\" action=\"{view}\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button class=\"primary\" type=\"submit\">Show my code</button></form>\
         <form method=\"post\" action=\"{reject}\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button class=\"quiet\" type=\"submit\">This wasn't me</button></form>",
        name = escape(&details.brand.name),
        email = email(details.email),
        reg = id(details.registration_id),
        expires = time(details.expires_ms, details.now),
        token = escape(token),
        view = Endpoint::ClaimView.path(),
        reject = Endpoint::ClaimReject.path(),
    );
    page(200, details.brand, "Confirm your AI agent", &body)
}

/// The code to read back to the agent. The page has no button: a new code
/// comes from the emailed link's page, whose button retires this one.
pub fn code(brand: impl Into<Brand>, code: &str, expires_ms: UnixMs, now: UnixMs) -> Response {
    let body = format!(
        "<h1>Your code</h1>\
         <p>Read this code back to your agent. It works once.</p>\
         <div class=\"code\" id=\"otp\">{code}</div>\
         <p class=\"muted\">It expires {expires}. For a new code, open the link in the email again and press \
         \u{201c}Show my code\u{201d}; that retires this one.</p>",
        code = escape(code),
        expires = time(expires_ms, now),
    );
    page(200, brand, "Your code", &body)
}

/// "This wasn't me", asked a second time: one stray POST (a mail scanner
/// submitting forms) must not cancel a real claim.
pub fn confirm_reject(brand: impl Into<Brand>, token: &str) -> Response {
    let body = format!(
        "<h1>Cancel this request?</h1>\
         <p>The agent will not be linked to you, and this link stops working.</p>\
         <form method=\"post\" action=\"{reject}\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <input type=\"hidden\" name=\"confirm\" value=\"yes\">\
         <button class=\"danger\" type=\"submit\">Yes, cancel it</button></form>\
         <p class=\"muted after\">Changed your mind? Open the link from the email again.</p>",
        token = escape(token),
        reject = Endpoint::ClaimReject.path(),
    );
    page(200, brand, "Cancel this request?", &body)
}

/// The explanatory pages, each with its status.
pub fn notice(status: u16, brand: impl Into<Brand>, title: &str, text: &str) -> Response {
    let body = format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text));
    page(status, brand, title, &body)
}

/// The sign-in form (SPEC-v0.7 7.1): an address, where to go after, and
/// the pre-session's CSRF token.
pub fn login(status: u16, brand: impl Into<Brand>, email: &str, return_to: &str, csrf: &str, note: &str) -> Response {
    let body = format!(
        "<h1>Sign in</h1>{note}\
         <p>Type your email address. We will send you a six-digit code; no password is needed.</p>\
         <form method=\"post\" action=\"{action}\">\
         <p><label>Email address<br><input type=\"email\" name=\"email\" value=\"{email}\" required autocomplete=\"email\"></label></p>\
         <input type=\"hidden\" name=\"return_to\" value=\"{return_to}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button class=\"primary\" type=\"submit\">Send me a code</button></form>",
        note = if note.is_empty() {
            String::new()
        } else {
            format!("<p class=\"muted\">{}</p>", escape(note))
        },
        action = Endpoint::Login.path(),
        email = escape(email),
        return_to = escape(return_to),
        csrf = escape(csrf),
    );
    page(status, brand, "Sign in", &body)
}

/// After `POST /login`: the same page whether or not the address is known.
pub fn enter_code(status: u16, brand: impl Into<Brand>, csrf: &str, note: &str) -> Response {
    let body = format!(
        "<h1>Check your email</h1>\
         <p>If this address can sign in, a six-digit code is on its way. Type it here.</p>{note}\
         <form method=\"post\" action=\"{action}\">\
         <p><label>Code<br><input name=\"code\" inputmode=\"numeric\" pattern=\"[0-9]{{6}}\" maxlength=\"6\" required autocomplete=\"one-time-code\"></label></p>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button class=\"primary\" type=\"submit\">Sign in</button></form>",
        note = if note.is_empty() {
            String::new()
        } else {
            format!("<p class=\"muted\">{}</p>", escape(note))
        },
        action = Endpoint::LoginVerify.path(),
        csrf = escape(csrf),
    );
    page(status, brand, "Check your email", &body)
}

/// What the v0.7 confirm page names (SPEC-v0.7 6.2).
pub struct IdentityClaim<'a> {
    pub brand: &'a Brand,
    pub agent: &'a str,
    pub scopes: &'a [String],
    pub registration_id: &'a str,
    pub signed_in_as: &'a str,
    pub attempt_token: &'a str,
    pub csrf: &'a str,
    /// Prose above the buttons (SPEC-v0.7 6.2: first time from this
    /// provider, first agent of this account).
    pub advisories: &'a [String],
}

/// The page a claim link opens, signed in as the right person: what the
/// agent will get, "Authorize", and "This wasn't me".
pub fn identity_claim(details: &IdentityClaim<'_>) -> Response {
    let e = escape;
    let hidden = format!(
        "<input type=\"hidden\" name=\"claim_attempt_token\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        e(details.attempt_token),
        e(details.csrf)
    );
    let body = format!(
        "<h1>An AI agent asks to act for you</h1>\
         <p>{agent} registered with {name} and says it acts for you. If you authorize it, it can use {name} \
         with these permissions, and you will get a code to read back to it.</p>\
         <dl><dt>Permissions</dt><dd>{scopes}</dd><dt>Registration</dt><dd>{reg}</dd>\
         <dt>Signed in as</dt><dd>{who}</dd></dl>{advisories}\
         <form method=\"post\" action=\"{confirm}\">{hidden}<button class=\"primary\" type=\"submit\">Authorize</button></form>\
         <form method=\"post\" action=\"{reject}\">{hidden}<button class=\"quiet\" type=\"submit\">This wasn't me</button></form>",
        agent = e(details.agent),
        name = e(&details.brand.name),
        scopes = e(&details.scopes.join(", ")),
        reg = id(details.registration_id),
        who = email(details.signed_in_as),
        advisories = details
            .advisories
            .iter()
            .map(|a| format!("<p class=\"muted\">{}</p>", e(a)))
            .collect::<String>(),
        confirm = Endpoint::ClaimConfirm.path(),
        reject = Endpoint::ClaimRejectPage.path(),
    );
    page(200, details.brand, "Authorize an AI agent", &body)
}

/// After "Authorize": the code to read back, and until when. The page
/// offers nothing else: a new code comes from the agent's link.
pub fn identity_code(brand: impl Into<Brand>, code: &str, expires_ms: UnixMs, now: UnixMs) -> Response {
    let body = format!(
        "<h1>Read this code back to the agent</h1>\
         <div class=\"code\" id=\"user-code\">{code}</div>\
         <p class=\"muted\">It works once, until {expires}. If it runs out, ask the agent for a new link.</p>",
        code = escape(code),
        expires = time(expires_ms, now),
    );
    page(200, brand, "Your code", &body)
}

/// Signed in as someone the link is not for: who is signed in, who the
/// link is for, and the way to switch.
pub fn wrong_account(
    brand: impl Into<Brand>,
    expected: &str,
    signed_in: &str,
    csrf: &str,
    return_to: &str,
) -> Response {
    let body = format!(
        "<h1>This link is for another account</h1>\
         <p>You are signed in as <strong>{signed_in}</strong>, but this link is for <strong>{expected}</strong>.</p>\
         <p>To go on, sign out, then sign in as {expected}. You will come back here.</p>\
         <form method=\"post\" action=\"{logout}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{return_to}\">\
         <button class=\"primary\" type=\"submit\">Sign out and switch account</button></form>",
        expected = email(expected),
        signed_in = email(signed_in),
        logout = Endpoint::Logout.path(),
        csrf = escape(csrf),
        return_to = escape(return_to),
    );
    page(403, brand, "Another account", &body)
}

/// "This wasn't me", asked once more before anything changes.
pub fn confirm_identity_reject(brand: impl Into<Brand>, attempt_token: &str, csrf: &str) -> Response {
    let body = format!(
        "<h1>Turn this agent away?</h1><p>The agent will not be able to act for you with this link.</p>\
         <form method=\"post\" action=\"{reject}\">\
         <input type=\"hidden\" name=\"claim_attempt_token\" value=\"{token}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
         <button class=\"danger\" type=\"submit\">Yes, this wasn't me</button></form>\
         <p class=\"muted after\">Nothing changes until you press it. <a href=\"{back}\">Go back</a></p>",
        reject = Endpoint::ClaimRejectPage.path(),
        back = escape(&crate::site::verification_path(attempt_token)),
        token = escape(attempt_token),
        csrf = escape(csrf),
    );
    page(200, brand, "Turn the agent away", &body)
}

/// Who may be at `GET /`: signed in (with the CSRF token of the sign-out
/// form), signed out, or on a deployment without sign-in (v0.7 off).
pub enum Visitor<'a> {
    SignedIn { email: &'a str, csrf: &'a str },
    SignedOut,
    NoSignIn,
}

/// `GET /`: what this service is, who is signed in with a sign-out form,
/// or a sign-in link where signing in exists.
pub fn home(brand: impl Into<Brand>, visitor: Visitor<'_>) -> Response {
    let brand = brand.into();
    let agents = format!(
        "<p class=\"muted\">AI agents: read <a href=\"{md}\">{md}</a> to learn how to register.</p>",
        md = Endpoint::AuthMd.path()
    );
    let body = match visitor {
        Visitor::SignedIn { email: address, csrf } => format!(
            "<h1>Signed in</h1><p>You are signed in as <strong>{email}</strong>.</p>\
             <p><a href=\"{account}\">Your agents</a>: the AI agents acting for you, and revoking them.</p>\
             <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button class=\"quiet\" type=\"submit\">Sign out</button></form>",
            email = email(address),
            account = Endpoint::AccountAgents.path(),
            action = Endpoint::Logout.path(),
            csrf = escape(csrf),
        ),
        Visitor::SignedOut => format!(
            "<h1>Welcome</h1><p>{name} lets AI agents register on your behalf. \
             Sign in to confirm an agent or see the ones acting for you.</p>\
             <p><a href=\"{login}\">Sign in</a></p>{agents}",
            name = escape(&brand.name),
            login = Endpoint::Login.path(),
        ),
        Visitor::NoSignIn => format!(
            "<h1>Welcome</h1><p>{name} lets AI agents register on your behalf. \
             When an agent asks to be linked to you, you get an email with a link to confirm it.</p>{agents}",
            name = escape(&brand.name),
        ),
    };
    page(200, &brand, "Home", &body)
}

/// What a POST-only address is for, told to a person whose browser opened it.
fn purpose(path: &str) -> &'static str {
    let endpoint = Endpoint::ALL.into_iter().find(|e| e.path() == path);
    match endpoint {
        Some(Endpoint::Claim) => {
            "Here an AI agent asks this service to email you a confirmation link. If an agent gave you this \
             address, let it send the request itself, with your email address; then open the link in the email."
        }
        Some(Endpoint::IdentityClaim) => {
            "Here an AI agent asks for a confirmation link for you. If an agent gave you this address, ask it \
             for the link it got back: that one opens a page where you confirm it."
        }
        Some(Endpoint::ClaimComplete | Endpoint::IdentityClaimComplete) => {
            "Here an AI agent finishes linking itself to you, with the code you read back to it."
        }
        Some(Endpoint::ClaimChallenge) => "Here a program fetches the code of a confirmation link.",
        Some(Endpoint::Register | Endpoint::Identity) => "Here AI agents register with this service.",
        Some(Endpoint::ClaimReject | Endpoint::ClaimConfirm | Endpoint::ClaimRejectPage) => {
            "This is where a button of a confirmation page sends its answer. Open the link you were given \
             again to use the page."
        }
        Some(Endpoint::LoginVerify | Endpoint::Logout) => {
            "This is where a sign-in page's form sends its answer. Open the home page to sign in or out."
        }
        Some(Endpoint::Token | Endpoint::OAuthRevoke | Endpoint::OAuth2Revoke) => {
            "Here AI agents get and give back their access tokens."
        }
        Some(Endpoint::ProviderRevoke | Endpoint::EventNotify) => {
            "Here the services that vouch for AI agents tell this one to revoke them."
        }
        Some(Endpoint::Introspect) => "Here the API behind this service checks the credentials agents present.",
        _ => "This address takes requests from programs, not from a browser.",
    }
}

/// A browser opened an address that takes another method (405, with the
/// `Allow` the caller sets): what it is, that it is for agents, and where
/// agents learn how to use this service.
pub fn method_not_allowed(brand: impl Into<Brand>, path: &str) -> Response {
    let body = format!(
        "<h1>This address is for AI agents</h1><p>{purpose}</p>\
         <p class=\"muted\">There is no page to see here. Agents learn how to use this service from \
         <a href=\"{md}\">{md}</a>. <a href=\"{home}\">Home</a></p>",
        purpose = escape(purpose(path)),
        md = Endpoint::AuthMd.path(),
        home = Endpoint::Home.path(),
    );
    page(405, brand, "For AI agents", &body)
}

/// A browser asked for a path authmd does not serve.
pub fn not_found(brand: impl Into<Brand>) -> Response {
    let body = format!(
        "<h1>Nothing here</h1><p>There is no page at this address. Check the link, or start from the \
         <a href=\"{home}\">home page</a>.</p>\
         <p class=\"muted\">AI agents: read <a href=\"{md}\">{md}</a>.</p>",
        home = Endpoint::Home.path(),
        md = Endpoint::AuthMd.path(),
    );
    page(404, brand, "Not found", &body)
}

/// Over a rate limit (429; the caller sets `Retry-After`): when to try
/// again, in words and as a time.
pub fn rate_limited(brand: impl Into<Brand>, retry_after_secs: u64, now: UnixMs) -> Response {
    let wait = std::time::Duration::from_secs(retry_after_secs);
    let again = if wait < std::time::Duration::from_secs(60) {
        "Please try again in a minute.".to_string()
    } else {
        let text = crate::time::human(now + wait, now);
        let clock = text.split(" (").next().unwrap_or(&text);
        format!(
            "Please try again in about <span class=\"nw\">{span}</span>, after \
             <time datetime=\"{wire}\" class=\"nw\">{clock}</time>.",
            span = escape(&crate::time::span_words(wait)),
            wire = crate::time::rfc3339(now + wait),
            clock = escape(clock),
        )
    };
    let body = format!(
        "<h1>Too many tries</h1><p>Too many of these requests came in a short time, so this one was not \
         carried out. Nothing changed.</p><p>{again}</p>"
    );
    page(429, brand, "Too many tries", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let brand = Brand::from("<script>alert(1)</script>");
        let details = ClaimDetails {
            brand: &brand,
            registration_id: "reg_1",
            email: "a\"@b.c",
            expires_ms: UnixMs::from_millis(0),
            now: UnixMs::from_millis(0),
        };
        let response = claim(&details, "tok\"><x");
        let html = String::from_utf8(response.body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("tok\"><x"));
    }

    /// Issue 15: addresses wrap only before `@` and `.`; times carry
    /// their instant and never wrap inside a part.
    #[test]
    fn addresses_and_times_break_only_between_parts() {
        assert_eq!(
            email("pat.o'neil@mail.example-corp.com"),
            "<span class=\"addr\">pat<wbr>.o&#39;neil<wbr>@mail<wbr>.example-corp<wbr>.com</span>"
        );
        assert_eq!(email("pat@example.com"), "<span class=\"addr\">pat@example.com</span>");
        let now = crate::time::parse_rfc3339("2026-12-03T17:21:00Z").unwrap();
        let at = crate::time::parse_rfc3339("2026-12-03T17:30:00Z").unwrap();
        assert_eq!(
            time(at, now),
            "<time datetime=\"2026-12-03T17:30:00.000Z\"><span class=\"nw\">2026-12-03 17:30 UTC</span> \
             <span class=\"nw\">(in 9 minutes)</span></time>"
        );
    }

    /// Issue 15: while `resource_name` is unset, pages name the host and
    /// tell the operator how to name the service; once set, neither.
    #[test]
    fn an_unnamed_service_is_called_by_its_host_with_a_hint() {
        let body = |config: &Config| String::from_utf8(notice(200, Brand::of(config), "T", "x").body).unwrap();
        let unset = Config::new("https://notes.example.com", crate::settings::Settings::default());
        let html = body(&unset);
        assert!(html.contains("<p class=\"who\">notes.example.com</p>"), "{html}");
        assert!(html.contains("authmd config set resource_name NAME"), "{html}");
        let named = crate::settings::Settings {
            resource_name_set: true,
            ..Default::default()
        };
        let html = body(&Config::new("https://notes.example.com", named));
        assert!(
            html.contains("<p class=\"who\">API</p>") && !html.contains("config set"),
            "{html}"
        );
    }

    /// Issue 15: the 429 page says when, in words, not "3487 s".
    #[test]
    fn a_rate_limit_says_when_in_words() {
        let now = crate::time::parse_rfc3339("2026-12-03T17:21:00Z").unwrap();
        let html = String::from_utf8(rate_limited("API", 3487, now).body).unwrap();
        assert!(
            html.contains("in about <span class=\"nw\">58 minutes</span>, after"),
            "{html}"
        );
        assert!(html.contains(">2026-12-03 18:19 UTC</time>"), "{html}");
        let html = String::from_utf8(rate_limited("API", 20, now).body).unwrap();
        assert!(html.contains("try again in a minute"), "{html}");
    }

    #[test]
    fn pages_forbid_caching_framing_and_scripts() {
        let response = notice(410, "API", "Expired", "This link expired.");
        assert_eq!(response.status, 410);
        assert_eq!(response.header("cache-control"), Some("no-store"));
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
        let csp = response.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"));
        assert!(csp.starts_with("default-src 'none'") && !csp.contains("script-src"));
    }
}
