//! The HTTP edge: an owned [`Request`] value, a [`Response`] value, and the
//! one function that turns an [`Error`] into a response.
//!
//! ```text
//!  server.rs   the only code that touches tiny_http: workers, limits, the
//!              accept loop's hooks, settings reload, the database watch
//!  routes.rs   the route table (path, methods, rate-limit bucket, metric
//!              label, no-store, handler) and the handlers
//!  pages.rs    the pages people see (no script, CSP, escaped)
//!  gateway.rs  which scope a proxied request needs, which headers pass
//! ```
//!
//! Nothing here decides protocol questions: a handler reads the body and
//! headers, calls the wire module of its generation (`proto::v0_1`) or
//! `core`, and writes what came back. Whether a refusal is written as JSON
//! or as a page is decided here too, once: [`wants_html`].

pub mod gateway;
pub mod pages;
pub mod routes;
pub mod server;

use std::net::IpAddr;

use crate::core::Config;
use crate::error::Error;
use crate::proto::v0_1::{ErrorBody, wire};

/// Bodies of protocol requests are read up to this many bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Complete(Vec<u8>),
    /// Over [`MAX_BODY_BYTES`]; only the declared or first bytes were seen.
    TooLarge,
    /// The connection broke while the body was read.
    Unreadable,
    /// The body did not arrive within its deadline.
    TimedOut,
    /// A gateway body too large to be read before the request reached a
    /// worker: read only once `routes::refuse_upload` lets the caller send it.
    Unread,
}

/// One request, owned, with nothing left to read from a socket.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub query: Option<String>,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub client_ip: Option<IpAddr>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A body read while it is sent (the gateway's upstream response).
pub struct Stream {
    pub reader: Box<dyn std::io::Read + Send>,
    /// Known length, or `None` to send it chunked.
    pub length: Option<usize>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stream({:?} bytes)", self.length)
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Names are `&'static str` for authmd's own headers; the gateway's
    /// upstream headers go in `forwarded_headers`.
    pub headers: Vec<(&'static str, String)>,
    pub forwarded_headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When set, sent instead of `body`.
    pub stream: Option<Stream>,
    /// For the access log: the precise reason of a refusal.
    pub reason: Option<String>,
    /// For metrics: which route answered (bounded set of names).
    pub route: &'static str,
}

pub const CACHE_PUBLIC: &str = "public, max-age=300";
pub const NO_STORE: &str = "no-store";

impl Response {
    /// A JSON body: a `Value`, or a typed answer (`proto`).
    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            forwarded_headers: Vec::new(),
            // Serializing a map with string keys or a derived struct cannot fail.
            body: serde_json::to_vec(value).unwrap_or_default(),
            stream: None,
            reason: None,
            route: "",
        }
    }

    pub fn text(status: u16, content_type: &str, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.into())],
            forwarded_headers: Vec::new(),
            body: body.into_bytes(),
            stream: None,
            reason: None,
            route: "",
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The one translation of an error into a response: SPEC.md section 10's
/// body, and the headers that belong with each kind of refusal.
/// A refusal in the OAuth envelope (SPEC-v0.7 3): the same status, code and
/// log reason as [`error_response`], RFC 6749's body, `Retry-After` on a 429.
pub fn oauth_error_response(err: &Error, request_id: &str) -> Response {
    let (status, code) = wire(err);
    let body = crate::proto::v0_7::error::OAuthErrorBody::of(err, request_id);
    refusal(Response::json(status, &body), err, code)
}

/// A refusal in the Security Event Token envelope (RFC 8935 2.4, SPEC-v0.7 11).
pub fn set_error_response(err: &Error, request_id: &str) -> Response {
    let body = crate::proto::v0_7::error::SetErrorBody::of(err, request_id);
    refusal(Response::json(body.status(), &body), err, body.err())
}

/// What every refusal carries whatever its envelope: `no-store`,
/// `Retry-After` when retrying later helps, and the log's reason (`code`
/// with the detail the wire does not get).
fn refusal(response: Response, err: &Error, code: &str) -> Response {
    let mut response = response;
    if response.header("cache-control").is_none() {
        response = response.with_header("Cache-Control", NO_STORE);
    }
    match err {
        Error::RateLimited { retry_after_secs, .. } => {
            response = response.with_header("Retry-After", retry_after_secs.to_string())
        }
        Error::Unavailable(_) | Error::DatabaseUnavailable(_) => response = response.with_header("Retry-After", "1"),
        _ => {}
    }
    response.reason = match err {
        Error::InvalidToken { reason, .. } => Some((*reason).to_string()),
        Error::Internal(detail)
        | Error::UpstreamUnavailable(detail)
        | Error::KeysUnavailable(detail)
        | Error::ClientIdUnverifiable(detail)
        | Error::Unavailable(detail)
        | Error::DatabaseUnavailable(detail) => Some(format!("{code}: {detail}")),
        // Messages name fields and rules, never secrets: the precise reason
        // (which JWS rule failed, say) is kept in the log.
        _ if response.status >= 400 => Some(format!("{code}: {err}")),
        _ => None,
    };
    response
}

pub fn error_response(err: &Error, config: &Config, request_id: &str) -> Response {
    let (status, code) = wire(err);
    let body = ErrorBody::of(err, request_id);
    let mut response = Response::json(status, &body);
    let metadata = &config.site.resource_metadata_uri;
    match err {
        Error::InvalidToken { presented: false, .. } => {
            response = response.with_header("WWW-Authenticate", format!("Bearer resource_metadata=\"{metadata}\""));
        }
        Error::InvalidToken { presented: true, .. } => {
            response = response.with_header(
                "WWW-Authenticate",
                format!("Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\""),
            );
        }
        Error::InsufficientScope { scope } => {
            // `scope` comes from validated settings: no quote can break out.
            response = response.with_header(
                "WWW-Authenticate",
                format!("Bearer resource_metadata=\"{metadata}\", error=\"insufficient_scope\", scope=\"{scope}\""),
            );
        }
        Error::MethodNotAllowed { allow } => response = response.with_header("Allow", *allow),
        Error::Unauthorized => response = response.with_header("WWW-Authenticate", "Bearer"),
        Error::LoginRequired { max_age_secs, .. } => {
            // SPEC-v0.7 4.3: quoted values escape `"` and `\`.
            let description = err.to_string().replace('\\', "\\\\").replace('"', "\\\"");
            response = response.with_header(
                "WWW-Authenticate",
                format!("AgentAuth error=\"login_required\", max_age=\"{max_age_secs}\", error_description=\"{description}\""),
            );
        }
        _ => {}
    }
    refusal(response, err, code)
}

/// Whether the request comes from a person's browser, which names
/// `text/html` in `Accept` when it opens a page or submits a form (issue
/// 15): such a request is refused with a page, any other with JSON. A
/// `text/html` ranked below `application/json` (or `application/*`), or at
/// `q=0`, is an agent's; `*/*` alone names nothing, and agents keep JSON.
pub fn wants_html(req: &Request) -> bool {
    let (mut html, mut json) = (0.0_f32, 0.0_f32);
    let ranges = req
        .headers
        .iter()
        .filter(|(n, _)| n == "accept")
        .flat_map(|(_, v)| v.split(','));
    for range in ranges {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "application/json" | "application/*" => json = json.max(q),
            _ => {}
        }
    }
    html > 0.0 && html > json
}

/// A refusal made before a route is known (the database gone, a failed
/// read, a panic): a page for a person's browser, except on the guarded
/// API, whose clients parse JSON; v0.1's JSON for everyone else.
pub fn refusal_for(err: &Error, config: &Config, req: &Request, now: crate::time::UnixMs) -> Response {
    if wants_html(req) && !config.site.is_resource_path(&req.path) {
        return error_page(err, &pages::Brand::of(config), now, req);
    }
    error_response(err, config, &req.id)
}

/// The one translation of an error into a page, for a person
/// ([`wants_html`], or a route whose every answer is a page): the same
/// status, `Retry-After`, `Allow`, no-store and log reason as the JSON
/// refusal, in words a person can act on. `path` is the request's, for a
/// 405 to say what the address is for.
pub fn error_page(err: &Error, brand: &pages::Brand, now: crate::time::UnixMs, req: &Request) -> Response {
    let (status, code) = wire(err);
    let page = match err {
        Error::NotFound => pages::not_found(brand),
        Error::MethodNotAllowed { allow } => pages::method_not_allowed(brand, &req.path).with_header("Allow", *allow),
        Error::RateLimited { retry_after_secs, .. } => pages::rate_limited(brand, *retry_after_secs, now),
        Error::Internal(_) => pages::notice(
            status,
            brand,
            "Something went wrong",
            &format!(
                "This is not your fault. Try again in a moment; if it keeps happening, tell the operator \
                 this request id: {}.",
                req.id
            ),
        ),
        Error::Unavailable(_) | Error::DatabaseUnavailable(_) => pages::notice(
            status,
            brand,
            "Try again in a moment",
            "This service cannot answer right now. Nothing changed.",
        ),
        _ => pages::notice(status, brand, "This did not work", &err.to_string()),
    };
    refusal(page, err, code)
}

/// `application/x-www-form-urlencoded` pairs (a form body or a query
/// string), decoded; malformed escapes decode to nothing rather than fail.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| crate::url::percent_decode(&s.replace('+', " ")).unwrap_or_default();
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The value of cookie `name` in one `Cookie` header value (RFC 6265 5.4:
/// `name=value` pairs separated by `;`): the first such pair with a
/// non-empty value, whitespace around name and value trimmed and one pair
/// of surrounding double quotes dropped (the quoted `cookie-value` of RFC
/// 6265 4.1.1). Names are case-sensitive; a pair without `=` names nothing.
/// A duplicate later in the header is ignored, as a browser sends the most
/// specific cookie first.
pub fn cookie_value<'a>(header_value: &'a str, name: &str) -> Option<&'a str> {
    header_value
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(n, _)| n.trim() == name)
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
        })
        .find(|v| !v.is_empty())
}

#[cfg(test)]
mod negotiation_tests {
    use super::{Body, Request, wants_html};

    fn accepting(values: &[&str]) -> Request {
        Request {
            id: "t".into(),
            method: "GET".into(),
            path: "/".into(),
            query: None,
            headers: values.iter().map(|v| ("accept".to_string(), v.to_string())).collect(),
            body: Body::Complete(Vec::new()),
            client_ip: None,
        }
    }

    /// Issue 15: browsers get pages, agents keep JSON.
    #[test]
    fn a_browser_names_html_and_an_agent_does_not() {
        let chromium = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        for browser in [chromium, firefox, "TEXT/HTML", "text/html;level=1"] {
            assert!(wants_html(&accepting(&[browser])), "{browser}");
        }
        assert!(wants_html(&accepting(&["image/webp", "text/html"])), "over two headers");
        for agent in [
            "",
            "*/*",
            "application/json",
            "application/json, text/html",
            "text/html;q=0.5, application/json",
            "text/html;q=0",
            "text/*",
            "application/*, text/html;q=0.9",
        ] {
            assert!(!wants_html(&accepting(&[agent])), "{agent:?}");
        }
        assert!(!wants_html(&accepting(&[])), "no Accept");
    }
}

#[cfg(test)]
mod tests {
    use super::cookie_value;

    #[test]
    fn a_cookie_is_found_by_its_exact_name() {
        let header = "theme=dark; authmd_session=abc; authmd_login=def";
        assert_eq!(cookie_value(header, "authmd_session"), Some("abc"));
        assert_eq!(cookie_value(header, "authmd_login"), Some("def"));
        assert_eq!(cookie_value(header, "theme"), Some("dark"));
        assert_eq!(cookie_value(header, "missing"), None);
        assert_eq!(cookie_value(header, "AUTHMD_SESSION"), None, "names are case-sensitive");
        assert_eq!(cookie_value(header, "authmd"), None, "no prefix match");
        assert_eq!(cookie_value("xauthmd_session=abc", "authmd_session"), None);
    }

    #[test]
    fn spaces_around_names_and_values_are_trimmed() {
        assert_eq!(cookie_value("  authmd_session = abc  ", "authmd_session"), Some("abc"));
        assert_eq!(
            cookie_value("a=1;authmd_session=abc;b=2", "authmd_session"),
            Some("abc")
        );
        assert_eq!(
            cookie_value("a=1 ;\tauthmd_session=abc\t; b=2", "authmd_session"),
            Some("abc")
        );
        assert_eq!(
            cookie_value("authmd_session=a b", "authmd_session"),
            Some("a b"),
            "inner space kept"
        );
    }

    #[test]
    fn one_pair_of_double_quotes_is_dropped() {
        assert_eq!(cookie_value(r#"authmd_session="abc""#, "authmd_session"), Some("abc"));
        assert_eq!(
            cookie_value(r#"authmd_session=""abc"""#, "authmd_session"),
            Some(r#""abc""#)
        );
        assert_eq!(
            cookie_value(r#"authmd_session="abc"#, "authmd_session"),
            Some(r#""abc"#),
            "unbalanced: as sent"
        );
        assert_eq!(
            cookie_value(r#"authmd_session="""#, "authmd_session"),
            None,
            "quoted empty is empty"
        );
        assert_eq!(cookie_value(r#"authmd_session="; b=1"#, "authmd_session"), Some("\""));
    }

    #[test]
    fn the_first_non_empty_duplicate_wins() {
        assert_eq!(
            cookie_value("authmd_session=one; authmd_session=two", "authmd_session"),
            Some("one")
        );
        assert_eq!(
            cookie_value("authmd_session=; authmd_session=two", "authmd_session"),
            Some("two")
        );
        assert_eq!(
            cookie_value("authmd_session=\"\"; authmd_session=two", "authmd_session"),
            Some("two")
        );
    }

    #[test]
    fn empty_and_nameless_pairs_name_nothing() {
        for header in [
            "",
            ";",
            ";;;",
            " ",
            "=",
            "==",
            "=abc",
            "authmd_session",
            "authmd_session;",
            "authmd_session=",
        ] {
            assert_eq!(cookie_value(header, "authmd_session"), None, "{header:?}");
        }
        assert_eq!(
            cookie_value("authmd_session; authmd_session=abc", "authmd_session"),
            Some("abc")
        );
        assert_eq!(
            cookie_value("authmd_session==abc=", "authmd_session"),
            Some("=abc="),
            "split at the first `=`"
        );
    }
}
