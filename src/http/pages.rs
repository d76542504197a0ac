//! The claim pages (SPEC.md 5.3): self-contained HTML and CSS, no script,
//! every value escaped, readable on a phone. The HTTP headers that go with
//! them (no-store, no framing, the CSP) are set by [`page`].

use crate::site::Endpoint;
use ring::digest::{SHA256, digest};

use super::Response;

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

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;padding:24px;\
background:#f4f6f9;color:#1c2430;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{width:100%;max-width:440px;background:#fff;border:1px solid #e2e6ec;border-radius:14px;padding:32px 28px;\
box-shadow:0 1px 3px rgba(20,30,50,.06)}\
.who{margin:0 0 20px;font-size:13px;letter-spacing:.04em;text-transform:uppercase;color:#5b6573}\
h1{margin:0 0 12px;font-size:22px;line-height:1.3}\
p{margin:0 0 14px}\
.muted{color:#5b6573;font-size:14px}\
dl{margin:0 0 20px;font-size:14px;display:grid;grid-template-columns:auto 1fr;gap:4px 12px}\
dt{color:#5b6573}dd{margin:0;overflow-wrap:anywhere}\
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
@media (max-width:400px){body{padding:12px}main{padding:24px 20px}dl{grid-template-columns:1fr;gap:0}dd{margin-bottom:8px}}\
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

/// A whole page with the headers SPEC.md 5.3 asks for.
pub fn page(status: u16, resource_name: &str, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · {name}</title><style>{STYLE}</style></head>\
         <body><main><p class=\"who\">{name}</p>{body}</main></body></html>\n",
        title = escape(title),
        name = escape(resource_name),
    );
    Response::text(status, "text/html; charset=utf-8", html)
        .with_header("Cache-Control", "no-store")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("X-Frame-Options", "DENY")
        .with_header("Content-Security-Policy", csp())
}

pub struct ClaimDetails<'a> {
    pub resource_name: &'a str,
    pub registration_id: &'a str,
    pub email: &'a str,
    pub expires: &'a str,
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
        name = escape(details.resource_name),
        email = escape(details.email),
        reg = escape(details.registration_id),
        expires = escape(details.expires),
        token = escape(token),
        view = Endpoint::ClaimView.path(),
        reject = Endpoint::ClaimReject.path(),
    );
    page(200, details.resource_name, "Confirm your AI agent", &body)
}

/// The code to read back to the agent.
pub fn code(resource_name: &str, code: &str, expires: &str) -> Response {
    let body = format!(
        "<h1>Your code</h1>\
         <p>Read this code back to your agent. It works once.</p>\
         <div class=\"code\" id=\"otp\">{code}</div>\
         <p class=\"muted\">It expires at {expires}. Pressing the button again makes a new code and retires this one.</p>",
        code = escape(code),
        expires = escape(expires),
    );
    page(200, resource_name, "Your code", &body)
}

/// "This wasn't me", asked a second time: one stray POST (a mail scanner
/// submitting forms) must not cancel a real claim.
pub fn confirm_reject(resource_name: &str, token: &str) -> Response {
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
    page(200, resource_name, "Cancel this request?", &body)
}

/// The explanatory pages, each with its status.
pub fn notice(status: u16, resource_name: &str, title: &str, text: &str) -> Response {
    let body = format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text));
    page(status, resource_name, title, &body)
}

/// The sign-in form (SPEC-v0.7 7.1): an address, where to go after, and
/// the pre-session's CSRF token.
pub fn login(status: u16, resource_name: &str, email: &str, return_to: &str, csrf: &str, note: &str) -> Response {
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
    page(status, resource_name, "Sign in", &body)
}

/// After `POST /login`: the same page whether or not the address is known.
pub fn enter_code(status: u16, resource_name: &str, csrf: &str, note: &str) -> Response {
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
    page(status, resource_name, "Check your email", &body)
}

/// What the v0.7 confirm page names (SPEC-v0.7 6.2).
pub struct IdentityClaim<'a> {
    pub resource_name: &'a str,
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
        name = e(details.resource_name),
        scopes = e(&details.scopes.join(", ")),
        reg = e(details.registration_id),
        who = e(details.signed_in_as),
        advisories = details
            .advisories
            .iter()
            .map(|a| format!("<p class=\"muted\">{}</p>", e(a)))
            .collect::<String>(),
        confirm = Endpoint::ClaimConfirm.path(),
        reject = Endpoint::ClaimRejectPage.path(),
    );
    page(200, details.resource_name, "Authorize an AI agent", &body)
}

/// After "Authorize": the code to read back, and until when.
pub fn identity_code(resource_name: &str, code: &str, expires: &str) -> Response {
    let body = format!(
        "<h1>Read this code back to the agent</h1>\
         <div class=\"code\" id=\"user-code\">{code}</div>\
         <p class=\"muted\">It works until {expires}. If it runs out, ask the agent for a new link.</p>",
        code = escape(code),
        expires = escape(expires),
    );
    page(200, resource_name, "Your code", &body)
}

/// Signed in as someone the link is not for: who is signed in, who the
/// link is for, and the way to switch.
pub fn wrong_account(resource_name: &str, expected: &str, signed_in: &str, csrf: &str, return_to: &str) -> Response {
    let body = format!(
        "<h1>This link is for another account</h1>\
         <p>You are signed in as <strong>{signed_in}</strong>, but this link is for <strong>{expected}</strong>.</p>\
         <p>To go on, sign out, then sign in as {expected}. You will come back here.</p>\
         <form method=\"post\" action=\"{logout}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{return_to}\">\
         <button class=\"primary\" type=\"submit\">Sign out and switch account</button></form>",
        expected = escape(expected),
        signed_in = escape(signed_in),
        logout = Endpoint::Logout.path(),
        csrf = escape(csrf),
        return_to = escape(return_to),
    );
    page(403, resource_name, "Another account", &body)
}

/// "This wasn't me", asked once more before anything changes.
pub fn confirm_identity_reject(resource_name: &str, attempt_token: &str, csrf: &str) -> Response {
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
    page(200, resource_name, "Turn the agent away", &body)
}

/// `GET /`: who is signed in, with a sign-out form, or a sign-in link.
pub fn home(resource_name: &str, signed_in: Option<(&str, &str)>) -> Response {
    let body = match signed_in {
        Some((email, csrf)) => format!(
            "<h1>Signed in</h1><p>You are signed in as <strong>{email}</strong>.</p>\
             <p><a href=\"{agents}\">Your agents</a>: the AI agents acting for you, and revoking them.</p>\
             <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button class=\"quiet\" type=\"submit\">Sign out</button></form>",
            email = escape(email),
            agents = Endpoint::AccountAgents.path(),
            action = Endpoint::Logout.path(),
            csrf = escape(csrf),
        ),
        None => format!(
            "<h1>{name}</h1><p>This service lets AI agents register on your behalf. \
             Sign in to confirm an agent or see the ones acting for you.</p>\
             <p><a href=\"{login}\">Sign in</a></p>",
            name = escape(resource_name),
            login = Endpoint::Login.path(),
        ),
    };
    page(200, resource_name, "Home", &body)
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
        let details = ClaimDetails {
            resource_name: "<script>alert(1)</script>",
            registration_id: "reg_1",
            email: "a\"@b.c",
            expires: "soon",
        };
        let response = claim(&details, "tok\"><x");
        let html = String::from_utf8(response.body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("tok\"><x"));
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
