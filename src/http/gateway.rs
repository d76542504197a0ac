//! The gateway's decisions (DESIGN.md "Guarding the API"): which scope a
//! request needs, which headers go to the upstream and which come back. The
//! forwarding itself is `upstream`; this module touches no socket.

use crate::core::guard::Caller;
use crate::error::Error;
use crate::settings::Settings;

/// Safe methods need `read_scope`, everything else `write_scope`.
pub fn required_scope<'s>(method: &str, settings: &'s Settings) -> &'s str {
    match method {
        "GET" | "HEAD" | "OPTIONS" => &settings.read_scope,
        _ => &settings.write_scope,
    }
}

/// Hop-by-hop headers (RFC 9110 7.6.1) and the ones the HTTP libraries set
/// themselves: never copied across the gateway in either direction.
const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

fn is_hop_by_hop(name: &str, connection_listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || connection_listed.iter().any(|listed| listed == name)
}

/// Names listed in a `Connection` header are hop-by-hop too.
fn connection_listed(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect()
}

/// A header value authmd adds: visible ASCII only, so nothing can smuggle a
/// line break into the upstream request.
fn checked(value: &str) -> Result<String, Error> {
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(value.to_string())
    } else {
        Err(Error::Internal("a gateway header value is not plain ASCII".into()))
    }
}

/// The headers sent upstream: the client's, less hop-by-hop ones,
/// `Authorization` and every `X-Authmd-*`, plus who the caller is.
pub fn upstream_request_headers(client: &[(String, String)], caller: &Caller) -> Result<Vec<(String, String)>, Error> {
    let listed = connection_listed(client);
    let mut headers: Vec<(String, String)> = client
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !is_hop_by_hop(&name, &listed) && name != "authorization" && !name.starts_with("x-authmd-")
        })
        .cloned()
        .collect();
    if let Some(user) = caller.user_id() {
        headers.push(("X-Authmd-User-Id".into(), checked(user)?));
    }
    headers.push(("X-Authmd-Registration-Id".into(), checked(caller.registration_id())?));
    headers.push(("X-Authmd-Scopes".into(), checked(&caller.scopes().join(" "))?));
    headers.push((
        "X-Authmd-Credential-Type".into(),
        checked(caller.credential_type().as_str())?,
    ));
    Ok(headers)
}

/// The upstream's response headers that go back to the client.
pub fn client_response_headers(upstream: &[(String, String)]) -> Vec<(String, String)> {
    let listed = connection_listed(upstream);
    upstream
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(&name.to_ascii_lowercase(), &listed))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller::for_tests("usr_1", "reg_1", &["api.read", "api.write"])
    }

    #[test]
    fn authorization_hop_by_hop_and_spoofed_authmd_headers_are_dropped() {
        let client: Vec<(String, String)> = [
            ("authorization", "Bearer secret"),
            ("x-authmd-user-id", "usr_admin"),
            ("X-Authmd-Scopes", "admin"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("accept", "application/json"),
            ("x-request-id", "abc"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let out = upstream_request_headers(&client, &caller()).unwrap();
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "accept",
                "x-request-id",
                "X-Authmd-User-Id",
                "X-Authmd-Registration-Id",
                "X-Authmd-Scopes",
                "X-Authmd-Credential-Type"
            ]
        );
        assert!(out.contains(&("X-Authmd-User-Id".to_string(), "usr_1".to_string())));
        assert!(out.contains(&("X-Authmd-Scopes".to_string(), "api.read api.write".to_string())));
    }

    #[test]
    fn safe_methods_need_the_read_scope() {
        let settings = Settings::default();
        assert_eq!(required_scope("GET", &settings), "api.read");
        assert_eq!(required_scope("OPTIONS", &settings), "api.read");
        assert_eq!(required_scope("DELETE", &settings), "api.write");
        assert_eq!(required_scope("PATCH", &settings), "api.write");
    }
}
