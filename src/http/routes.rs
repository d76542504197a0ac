//! Routing: one `match` from (path, method) to a handler. Handlers read the
//! request, call one flow or document builder, and shape the response.

use rusqlite::Connection;
use serde_json::{Value, json};

use super::{Body, CACHE_PUBLIC, MAX_BODY_BYTES, NO_STORE, Request, Response, error_response};
use crate::discovery;
use crate::error::Error;
use crate::flows::registration::{self, Registered};
use crate::flows::{Config, Ctx, guard, id_jag};
use crate::keys::KeyCache;
use crate::site::AS_METADATA_PATH;
use crate::store;

/// The places authmd answers, besides the guarded API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Healthz,
    Readyz,
    ResourceMetadata,
    AuthorizationServerMetadata,
    AuthMd,
    Register,
    ProviderRevoke,
    Api,
}

impl Route {
    fn of(path: &str, config: &Config) -> Option<Route> {
        Some(match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            AS_METADATA_PATH => Route::AuthorizationServerMetadata,
            "/auth.md" => Route::AuthMd,
            "/agent/auth" => Route::Register,
            "/agent/auth/revoke" => Route::ProviderRevoke,
            _ if config.site.is_resource_metadata_path(path) => Route::ResourceMetadata,
            _ if config.site.is_resource_path(path) => Route::Api,
            _ => return None,
        })
    }

    fn allow(self) -> &'static str {
        match self {
            Route::Register | Route::ProviderRevoke => "POST",
            _ => "GET, HEAD",
        }
    }
}

/// What a request is answered with, besides its own connection.
pub struct Deps<'a> {
    pub config: &'a Config,
    pub keys: &'a KeyCache,
    /// The instant of the request.
    pub now_ms: i64,
}

pub fn handle(conn: &mut Connection, deps: &Deps<'_>, req: &Request) -> Response {
    let mut response = route(conn, deps, req).unwrap_or_else(|err| error_response(&err, deps.config, &req.id));
    response.headers.push(("X-Content-Type-Options", "nosniff".into()));
    response
}

fn route(conn: &mut Connection, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let (config, now_ms) = (deps.config, deps.now_ms);
    let route = Route::of(&req.path, config).ok_or(Error::NotFound)?;
    let reading = matches!(req.method.as_str(), "GET" | "HEAD");
    let allowed = match route {
        Route::Register | Route::ProviderRevoke => req.method == "POST",
        _ => reading,
    };
    if !allowed {
        return Err(Error::MethodNotAllowed { allow: route.allow() });
    }
    match route {
        Route::Healthz => Ok(Response::json(200, &json!({ "status": "ok" })).with_header("Cache-Control", NO_STORE)),
        Route::Readyz => Ok(match store::ping(conn) {
            Ok(()) => Response::json(200, &json!({ "status": "ready" })),
            Err(_) => Response::json(503, &json!({ "status": "database unavailable" })),
        }
        .with_header("Cache-Control", NO_STORE)),
        Route::ResourceMetadata => Ok(discovery_json(&discovery::protected_resource(config))),
        Route::AuthorizationServerMetadata => Ok(discovery_json(&discovery::authorization_server(config))),
        Route::AuthMd => auth_md(config),
        Route::Register => {
            let body = json_body(req)?;
            let request = registration::Request::from_json(&body)?;
            let client_ip = req.client_ip.map(|ip| ip.to_string());
            let mut ctx = Ctx {
                conn,
                config,
                now_ms,
                client_ip: client_ip.as_deref(),
                keys: deps.keys,
            };
            let Registered(answer) = registration::register(&mut ctx, request)?;
            Ok(Response::json(200, &answer).with_header("Cache-Control", NO_STORE))
        }
        Route::ProviderRevoke => {
            let token = logout_token_body(req)?;
            let client_ip = req.client_ip.map(|ip| ip.to_string());
            let mut ctx = Ctx {
                conn,
                config,
                now_ms,
                client_ip: client_ip.as_deref(),
                keys: deps.keys,
            };
            let revoked = id_jag::provider_revoke(&mut ctx, deps.keys, &token)?;
            Ok(Response::json(200, &json!({ "revoked": revoked })).with_header("Cache-Control", NO_STORE))
        }
        Route::Api => {
            let caller = guard::authenticate(conn, now_ms, req.header("authorization"))?;
            caller.require_scope(&config.settings.read_scope)?;
            Ok(Response::json(200, &caller.to_json()).with_header("Cache-Control", NO_STORE))
        }
    }
}

fn discovery_json(doc: &Value) -> Response {
    Response::json(200, doc).with_header("Cache-Control", CACHE_PUBLIC)
}

fn auth_md(config: &Config) -> Result<Response, Error> {
    let text = match &config.settings.auth_md_path {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| Error::Internal(format!("auth_md_path {path}: {e}")))?
        }
        None => discovery::auth_md(config),
    };
    Ok(Response::text(200, "text/markdown; charset=utf-8", text).with_header("Cache-Control", CACHE_PUBLIC))
}

fn body_bytes(req: &Request) -> Result<&[u8], Error> {
    match &req.body {
        Body::Complete(bytes) => Ok(bytes),
        Body::TooLarge => Err(Error::RequestTooLarge {
            limit_bytes: MAX_BODY_BYTES,
        }),
        Body::Unreadable => Err(Error::InvalidRequest("the request body could not be read".into())),
    }
}

/// The body of `POST /agent/auth/revoke` (SPEC.md 6): a compact JWS sent
/// as `application/logout+jwt`.
fn logout_token_body(req: &Request) -> Result<String, Error> {
    let essence = req
        .header("content-type")
        .map(|t| t.split(';').next().unwrap_or("").trim());
    if !essence.is_some_and(|t| t.eq_ignore_ascii_case("application/logout+jwt")) {
        let shown: String = essence
            .unwrap_or("no type")
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(80)
            .collect();
        return Err(Error::UnsupportedMediaType(format!(
            "{shown} (send application/logout+jwt)"
        )));
    }
    let bytes = body_bytes(req)?;
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::InvalidRequest("the logout token is not valid UTF-8".into()))?;
    Ok(text.trim().to_string())
}

/// The JSON body of a protocol request (SPEC.md section 3): a missing
/// Content-Type is read as JSON, parameters such as `charset` are allowed,
/// any other type is refused; the body must be UTF-8 and valid JSON.
fn json_body(req: &Request) -> Result<Value, Error> {
    if let Some(content_type) = req.header("content-type") {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            let shown: String = essence.chars().filter(|c| c.is_ascii_graphic()).take(80).collect();
            return Err(Error::UnsupportedMediaType(if shown.is_empty() {
                "an empty type".into()
            } else {
                shown
            }));
        }
    }
    let bytes = body_bytes(req)?;
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::InvalidRequest(format!("the body is not valid UTF-8 (at byte {})", e.valid_up_to())))?;
    if text.trim().is_empty() {
        return Err(Error::InvalidRequest(
            "the body is empty; expected a JSON object".into(),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::InvalidRequest(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        Request {
            id: "test".into(),
            method: method.into(),
            path: path.into(),
            query: None,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: Body::Complete(body.to_vec()),
            client_ip: None,
        }
    }

    fn send(req: Request) -> (Response, Value) {
        let (_dir, mut conn) = store::open_temp();
        let config = Config::new("http://127.0.0.1:1", Settings::default());
        let keys = KeyCache::default();
        let deps = Deps {
            config: &config,
            keys: &keys,
            now_ms: 1_800_000_000_000,
        };
        let response = handle(&mut conn, &deps, &req);
        let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response, body)
    }

    #[test]
    fn content_types_other_than_json_are_refused() {
        let (resp, body) = send(request("POST", "/agent/auth", &[("content-type", "text/plain")], b"{}"));
        assert_eq!(
            (resp.status, body["error"].as_str()),
            (415, Some("unsupported_media_type"))
        );
        let (resp, _) = send(request(
            "POST",
            "/agent/auth",
            &[("content-type", "Application/JSON; charset=utf-8")],
            br#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        ));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("cache-control"), Some("no-store"));
    }

    #[test]
    fn wrong_methods_get_405_with_allow() {
        let (resp, body) = send(request("GET", "/agent/auth", &[], b""));
        assert_eq!((resp.status, body["error"].as_str()), (405, Some("method_not_allowed")));
        assert_eq!(resp.header("allow"), Some("POST"));
        let (resp, _) = send(request("DELETE", "/api/resource", &[], b""));
        assert_eq!((resp.status, resp.header("allow")), (405, Some("GET, HEAD")));
    }

    #[test]
    fn errors_have_the_spec_body() {
        let (resp, body) = send(request("GET", "/nowhere", &[], b""));
        assert_eq!(resp.status, 404);
        assert_eq!(body["error"], "not_found");
        assert_eq!(body["message"], body["error_description"]);
    }
}

#[cfg(test)]
mod failure_tests {
    use super::*;
    use crate::settings::Settings;

    /// A broken database is a 500 that names only the request id; the
    /// detail goes to the log through `Response::reason`.
    #[test]
    fn a_database_failure_is_a_500_with_nothing_but_a_request_id() {
        let (_dir, mut conn) = store::open_temp();
        conn.execute_batch("DROP TABLE audit_events").unwrap();
        let config = Config::new("http://127.0.0.1:1", Settings::default());
        let req = Request {
            id: "req123".into(),
            method: "POST".into(),
            path: "/agent/auth".into(),
            query: None,
            headers: vec![],
            body: Body::Complete(br#"{"type":"anonymous","requested_credential_type":"api_key"}"#.to_vec()),
            client_ip: None,
        };
        let keys = KeyCache::default();
        let deps = Deps {
            config: &config,
            keys: &keys,
            now_ms: 1_800_000_000_000,
        };
        let response = handle(&mut conn, &deps, &req);
        assert_eq!(response.status, 500);
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"], "server_error");
        assert_eq!(body["message"], "internal error; request id req123");
        assert!(
            response.reason.unwrap().contains("audit_events"),
            "the detail is kept for the log"
        );
        // The transaction rolled back: no half-made registration remains.
        let count: i64 = conn
            .query_row("SELECT count(*) FROM registrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0);
    }
}
