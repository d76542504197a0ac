//! Outbound HTTP for public documents (JWKS, Client ID Metadata Documents),
//! with the rules of SPEC.md 4.3: HTTPS only, except loopback hosts in
//! development; 2 s to connect, 5 s in all; at most 256 KiB; no redirects.

use std::net::IpAddr;
use std::time::Duration;

use crate::url::HttpUrl;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Not https, and not a loopback host.
    NotAllowed(String),
    /// Connection refused, DNS, TLS, timeout...
    Unreachable(String),
    Status(u16),
    TooLarge,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotAllowed(why) => f.write_str(why),
            FetchError::Unreachable(why) => write!(f, "unreachable ({why})"),
            FetchError::Status(status) => write!(f, "answered HTTP {status}"),
            FetchError::TooLarge => write!(f, "the document is larger than {MAX_DOCUMENT_BYTES} bytes"),
        }
    }
}

/// A fetched document and how long its server says it stays fresh.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub max_age_secs: Option<u64>,
}

/// Is `url` one authmd may fetch: https, or http to a loopback host?
pub fn check_url(url: &str) -> Result<(), FetchError> {
    let parsed = HttpUrl::parse(url).map_err(FetchError::NotAllowed)?;
    if parsed.scheme == "https" || is_loopback(&parsed.authority) {
        Ok(())
    } else {
        Err(FetchError::NotAllowed(format!(
            "{url} is neither https nor a loopback address"
        )))
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[derive(Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
}

impl Default for Fetcher {
    fn default() -> Fetcher {
        Fetcher::new()
    }
}

impl Fetcher {
    pub fn new() -> Fetcher {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(TOTAL_TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("authmd/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Fetcher { agent }
    }

    pub fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        check_url(url)?;
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        let max_age_secs = response
            .headers()
            .get_all("cache-control")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT_BYTES)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge,
                other => FetchError::Unreachable(other.to_string()),
            })?;
        Ok(Fetched { body, max_age_secs })
    }
}

/// The `max-age` of a Cache-Control value (`no-store`/`no-cache` count as 0).
fn max_age(value: &str) -> Option<u64> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(0);
        }
        lower
            .strip_prefix("max-age=")
            .and_then(|n| n.trim_matches('"').parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_may_be_fetched() {
        for ok in [
            "https://p.example/jwks",
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://[::1]:80/x",
            "http://127.8.0.1/",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://p.example/jwks",
            "http://10.0.0.1/x",
            "ftp://x/",
            "http://localhost.evil.example/",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_max_age() {
        assert_eq!(max_age("public, max-age=3600"), Some(3600));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
    }
}
