//! Outbound HTTP for public documents (JWKS, Client ID Metadata Documents),
//! with the rules of SPEC.md 4.3: HTTPS only, except loopback hosts in
//! development; 2 s to connect, 5 s in all; at most 256 KiB; no redirects.
//!
//! Where authmd connects (issue 10): every address the host resolves to must
//! be public ([`address_allowed`]): no loopback, private, link-local, CGNAT,
//! unspecified, multicast or reserved address, so a signed token's
//! `client_id` cannot point authmd at its own network. One refused address
//! refuses the host. The check runs inside ureq's resolver
//! ([`CheckedResolver`]) and ureq connects to exactly the addresses it
//! returned, so the name is not resolved again between check and connect (no
//! DNS-rebinding window). No proxy is used (a proxy would resolve the name
//! itself, after the check).
//!
//! Loopback (127/8, `::1`) is allowed only when the process says so
//! (`Fetcher::new(true)`: `serve --allow-loopback-fetch`), for development
//! providers on 127.0.0.1. The switch is process-wide because
//! `http::server` builds its key cache itself; it belongs in the server's
//! options once the server rewrite lands.
//!
//! Not here: caching, single-flight and failure memory (`keys`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::url::HttpUrl;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Not https and not a loopback host, or the host resolves to an
    /// address authmd does not connect to.
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

/// May authmd connect to `ip`? Public unicast addresses only; loopback
/// when `allow_loopback`. IPv4-mapped and NAT64 IPv6 addresses are judged
/// by the IPv4 address inside.
pub fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_allowed(v4, allow_loopback);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return v4_allowed(Ipv4Addr::new(a, b, c, d), allow_loopback);
            }
            if v6 == Ipv6Addr::LOCALHOST {
                return allow_loopback;
            }
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // old site-local fec0::/10
                || s[..6] == [0; 6]) // IPv4-compatible and the rest of ::/96
        }
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return allow_loopback;
    }
    !(a == 0 // "this network", 0.0.0.0 included
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16, cloud metadata services
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || a >= 224) // multicast, reserved 240/4, broadcast
}

/// The address refusal, carried through ureq's error as the source of an
/// `io::Error` so [`Fetcher::get`] can tell it from a network failure.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// ureq's resolver, and then [`address_allowed`] on every address.
#[derive(Debug)]
struct CheckedResolver {
    allow_loopback: bool,
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        if let Some(bad) = addrs.iter().find(|a| !address_allowed(a.ip(), self.allow_loopback)) {
            return Err(ureq::Error::Io(std::io::Error::other(Refused(format!(
                "{} resolves to {}, which is not a public address",
                uri.host().unwrap_or(""),
                bad.ip()
            )))));
        }
        Ok(addrs)
    }
}

#[derive(Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
}

impl Default for Fetcher {
    fn default() -> Fetcher {
        Fetcher::new(false)
    }
}

impl Fetcher {
    pub fn new(allow_loopback: bool) -> Fetcher {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(TOTAL_TIMEOUT))
            .max_redirects(0)
            .proxy(None)
            .http_status_as_error(false)
            .user_agent(concat!("authmd/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(config, DefaultConnector::default(), CheckedResolver { allow_loopback });
        Fetcher { agent }
    }

    pub fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        check_url(url)?;
        let mut response = self.agent.get(url).call().map_err(|e| match &e {
            ureq::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<Refused>()) => {
                FetchError::NotAllowed(io.to_string())
            }
            _ => FetchError::Unreachable(e.to_string()),
        })?;
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
    fn only_public_addresses_are_connected_to() {
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "100.63.255.255",
            "172.32.0.1",
        ] {
            assert!(address_allowed(public.parse().unwrap(), false), "{public}");
        }
        for private in [
            "127.0.0.1",
            "127.8.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::10.0.0.1",
        ] {
            assert!(!address_allowed(private.parse().unwrap(), false), "{private}");
        }
        for loopback in ["127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(address_allowed(loopback.parse().unwrap(), true), "{loopback}");
        }
        for still_private in ["10.0.0.1", "169.254.169.254", "fe80::1", "0.0.0.0", "::"] {
            assert!(
                !address_allowed(still_private.parse().unwrap(), true),
                "{still_private}"
            );
        }
    }

    /// Issue 10: a loopback target is refused before any connection unless
    /// loopback fetching was allowed; the served document counts the visits.
    #[test]
    fn loopback_is_refused_without_the_development_switch() {
        let server = authmd_dev::JwksServer::start("127.0.0.1:0").unwrap();
        server.put("/doc", serde_json::json!({"ok": true}), "max-age=60");
        for host in [
            server.base_url.clone(),
            server.base_url.replace("127.0.0.1", "localhost"),
        ] {
            let url = format!("{host}/doc?secret-looking=1");
            match Fetcher::new(false).get(&url) {
                Err(FetchError::NotAllowed(why)) => assert!(why.contains("not a public address"), "{why}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(server.hits("/doc"), 0, "no request reached the server");
        let fetched = Fetcher::new(true).get(&format!("{}/doc", server.base_url)).unwrap();
        assert_eq!(fetched.body, br#"{"ok":true}"#);
        assert_eq!(server.hits("/doc"), 1);
    }

    #[test]
    fn reads_max_age() {
        assert_eq!(max_age("public, max-age=3600"), Some(3600));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
    }
}
