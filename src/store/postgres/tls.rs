//! TLS to PostgreSQL (issue 14): what a URL's `sslmode` and `sslrootcert`
//! ask for, and the rustls connector (the ring provider) that does it. Not
//! here: client certificates (`sslcert`, `sslkey`), CRLs, direct TLS
//! (`sslnegotiation=direct`, which needs ALPN this connector does not set).
//!
//! The driver knows only `disable`, `prefer` and `require`, and no
//! `sslrootcert` at all, so [`split`] takes both out of the URL before the
//! driver parses the rest, and [`Wanted::tls`] tells the driver `disable`,
//! `prefer` or `require` and hands it a connector whose certificate check
//! is the mode's:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (none given), `allow` | when the server offers it, else in clear | not checked |
//! | `require` | always | chain to the roots, and the host name |
//! | `verify-ca` | always | chain to `sslrootcert`'s CAs only, not the host name |
//! | `verify-full` | always | chain to the roots, and the host name |
//!
//! The roots: `sslrootcert=PATH`, every certificate in that PEM file, read
//! once at opening; none or `sslrootcert=system`, Mozilla's (webpki-roots).
//!
//! Where this departs from libpq, and why:
//! - `require` checks the certificate, as `verify-full` (libpq's checks
//!   nothing unless a root file is given): TLS that proves nothing about
//!   the server stops only someone who listens, which `prefer` already
//!   does, while someone on the path answers with a certificate of their
//!   own. A URL that demands TLS gets a server that is who it names.
//!   authmd has always done this; a private CA is given with `sslrootcert`.
//! - `prefer` tries TLS without checking the certificate (as libpq, which
//!   has no roots by default): whoever is on the path can answer "no TLS"
//!   and prefer goes on in clear, so a check would stop no attacker, only
//!   servers with certificates of their own making (Debian's default one).
//!   A server that offers TLS and then fails the handshake fails the
//!   connection (libpq would try again in clear; the driver cannot).
//! - An `sslrootcert` beside `disable` or `prefer` is refused, not ignored:
//!   a CA given is a CA the operator expects to be checked.
//! - `verify-ca` needs `sslrootcert=PATH`: against the public roots, every
//!   certificate they ever signed, for any name, would pass (libpq refuses
//!   modes weaker than `verify-full` with `sslrootcert=system` likewise).
//! - `verify-ca` and `verify-full` without `sslrootcert` use the public
//!   roots, not `~/.postgresql/root.crt`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postgres::Config;
use postgres::config::{Host, SslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A URL's `sslmode`, libpq's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    /// Also `allow` (libpq's tries in clear first, which the driver
    /// cannot): prefer connects wherever allow would, and encrypts.
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode, String> {
        Ok(match value {
            "disable" => Mode::Disable,
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is none of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trust anchors come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Roots {
    /// Mozilla's (webpki-roots): `sslrootcert=system`, or none given.
    Public,
    /// `sslrootcert=PATH`: every certificate in the PEM file.
    File(PathBuf),
}

impl Roots {
    fn describe(&self) -> String {
        match self {
            Roots::Public => "the public roots (webpki-roots; sslrootcert=PATH names a CA of your own)".into(),
            Roots::File(path) => format!("sslrootcert {}", path.display()),
        }
    }
}

/// The TLS a URL asks for: the values [`split`] took out of it, each
/// percent-decoded, read by [`Wanted::tls`] (whose errors name the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

/// `url` without its `sslmode` and `sslrootcert` (what the driver is to
/// parse: it would refuse both), and what they ask for. Only the URL form:
/// `--db` takes nothing else (`store::Target`), and one form means one
/// place where these are read. Errors quote no part of the URL but these
/// two values.
pub(super) fn split(url: &str) -> Result<(String, Wanted), String> {
    let rest = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| {
            url.get(..scheme.len())
                .filter(|given| given.eq_ignore_ascii_case(scheme))
                .map(|_| &url[scheme.len()..])
        })
        .ok_or("it must start with postgres:// or postgresql://")?;
    // As the driver reads it: the user information up to the first `@`,
    // the parameters from the first `?` after that, `key=value` joined by
    // `&`, each key and value percent-decoded.
    let after_user = rest.find('@').map_or(0, |at| at + 1);
    let (head, query) = match rest[after_user..].find('?') {
        Some(at) => (&rest[..after_user + at], Some(&rest[after_user + at + 1..])),
        None => (rest, None),
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|query| query.split('&')) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key)?;
        let slot = match key.as_str() {
            "sslmode" => &mut mode,
            "sslrootcert" => &mut root,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        if slot.replace(decode(value)?).is_some() {
            return Err(format!("{key} is given twice"));
        }
    }
    let url = match kept.is_empty() {
        true => format!("postgres://{head}"),
        false => format!("postgres://{head}?{}", kept.join("&")),
    };
    Ok((
        url,
        Wanted {
            sslmode: mode,
            sslrootcert: root,
        },
    ))
}

/// Percent-decoding as the driver does it (a `%` not followed by two hex
/// digits stays as it is), into UTF-8.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match (bytes[at], hex(at + 1), hex(at + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                at += 3;
            }
            (byte, ..) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "a parameter is not UTF-8 once percent-decoded".into())
}

/// What the driver is told: its mode, and the connector when TLS may be used.
pub(super) struct Tls {
    pub(super) ssl_mode: SslMode,
    pub(super) connector: Option<MakeRustlsConnect>,
    /// The connector's configuration and roots, for [`Tls::why_refused`].
    client: Option<(Arc<ClientConfig>, Roots)>,
}

impl Wanted {
    fn mode(&self) -> Result<Mode, String> {
        match &self.sslmode {
            Some(value) => Mode::parse(value),
            // The driver's default, and libpq's.
            None => Ok(Mode::Prefer),
        }
    }

    /// `None`: no `sslrootcert` given.
    fn roots(&self) -> Result<Option<Roots>, String> {
        Ok(match self.sslrootcert.as_deref() {
            None => None,
            Some("") => return Err("sslrootcert= names no file".into()),
            Some("system") => Some(Roots::Public),
            Some(path) => Some(Roots::File(path.into())),
        })
    }

    /// The driver's mode and a connector checking what the mode asks; the
    /// `sslrootcert` file read here. Errors say what to write instead.
    pub(super) fn tls(&self) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (ssl_mode, check) = match (self.mode()?, self.roots()?) {
            (Mode::Disable, None) => {
                return Ok(Tls {
                    ssl_mode: SslMode::Disable,
                    connector: None,
                    client: None,
                });
            }
            (mode @ (Mode::Disable | Mode::Prefer), Some(_)) => {
                let default = if self.sslmode.is_none() {
                    " (no sslmode given)"
                } else {
                    ""
                };
                return Err(format!(
                    "sslrootcert is given, but sslmode={}{default} checks no certificate: use sslmode=verify-full",
                    mode.name()
                ));
            }
            (Mode::VerifyCa, None | Some(Roots::Public)) => {
                return Err(
                    "sslmode=verify-ca checks the chain but not the host name, so against the \
                     public roots any certificate they signed would pass: give sslrootcert=PATH (your CA), \
                     or use sslmode=verify-full"
                        .into(),
                );
            }
            (Mode::Prefer, None) => (SslMode::Prefer, Check::Nothing),
            (Mode::VerifyCa, Some(roots)) => (SslMode::Require, Check::Chain(roots)),
            (Mode::Require | Mode::VerifyFull, roots) => {
                (SslMode::Require, Check::Full(roots.unwrap_or(Roots::Public)))
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let (config, roots) = match check {
            Check::Nothing | Check::Chain(_) => {
                let (anchors, roots) = match check {
                    Check::Chain(roots) => (Some(Arc::new(trust_anchors(&roots)?)), roots),
                    _ => (None, Roots::Public),
                };
                let verifier = ChainOrNothing {
                    roots: anchors,
                    provider,
                };
                let config = builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier));
                (config, roots)
            }
            Check::Full(roots) => (builder.with_root_certificates(trust_anchors(&roots)?), roots),
        };
        let config = config.with_no_client_auth();
        Ok(Tls {
            ssl_mode,
            connector: Some(MakeRustlsConnect::new(config.clone())),
            client: Some((Arc::new(config), roots)),
        })
    }
}

/// What a connector checks of the server's certificate.
enum Check {
    /// `prefer`: nothing ([`ChainOrNothing`] without roots).
    Nothing,
    /// `verify-ca`: the chain ([`ChainOrNothing`] with them).
    Chain(Roots),
    /// `require`, `verify-full`: the chain and the host name (rustls' own).
    Full(Roots),
}

fn trust_anchors(roots: &Roots) -> Result<RootCertStore, String> {
    let path = match roots {
        Roots::Public => {
            return Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            });
        }
        Roots::File(path) => path,
    };
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read sslrootcert {shown}: {e}"))?;
    let mut store = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| format!("sslrootcert {shown} is not PEM: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("sslrootcert {shown}: certificate {} cannot be a CA: {e}", n + 1))?;
    }
    if store.is_empty() {
        return Err(format!(
            "sslrootcert {shown} holds no certificate (no PEM \"BEGIN CERTIFICATE\" section)"
        ));
    }
    Ok(store)
}

impl Tls {
    /// `said`, the pool's message for a first connection that failed; or,
    /// when the driver's words say only that TLS failed ("error performing
    /// TLS handshake": its cause is not in its message, and the pool keeps
    /// only the message), why it did.
    pub(super) fn explain(&self, said: String, target: &str, config: &Config, limit: Duration) -> String {
        match said.contains("TLS").then(|| self.why_refused(config, limit)).flatten() {
            Some(why) => format!("{target}: TLS: {why}"),
            None => said,
        }
    }

    /// Why the TLS part of connecting to `config`'s first host fails,
    /// found by doing it once more here. `None` when this attempt gets
    /// through, or cannot tell. Each step waits at most `limit`.
    fn why_refused(&self, config: &Config, limit: Duration) -> Option<String> {
        let (client, roots) = self.client.as_ref()?;
        let Some(Host::Tcp(name)) = config.get_hosts().first() else {
            return None;
        };
        let address = config.get_hostaddrs().first().map_or(name.clone(), |ip| ip.to_string());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let mut tcp = (address.as_str(), port)
            .to_socket_addrs()
            .ok()?
            .find_map(|address| TcpStream::connect_timeout(&address, limit).ok())?;
        tcp.set_read_timeout(Some(limit)).ok()?;
        tcp.set_write_timeout(Some(limit)).ok()?;
        // SSLRequest: its length (8), then the code 80877103.
        tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).ok()?;
        let mut answer = [0u8];
        tcp.read_exact(&mut answer).ok()?;
        if answer[0] != b'S' {
            return (self.ssl_mode == SslMode::Require)
                .then(|| "the server does not offer TLS (is its `ssl` setting on?)".to_string());
        }
        let server_name = ServerName::try_from(name.clone()).ok()?;
        let mut tls = rustls::ClientConnection::new(client.clone(), server_name).ok()?;
        // A handshake is a few round trips; the bound only stops a loop.
        for _ in 0..64 {
            if !tls.is_handshaking() {
                return None;
            }
            if let Err(e) = tls.complete_io(&mut tcp) {
                return Some(self.describe(name, roots, &e));
            }
        }
        None
    }

    fn describe(&self, name: &str, roots: &Roots, error: &std::io::Error) -> String {
        let hint = match self.ssl_mode {
            SslMode::Prefer => " (sslmode=disable connects in clear)",
            _ => "",
        };
        let tls = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        match tls {
            Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                format!("the server's certificate is not signed by a CA in {}", roots.describe())
            }
            Some(rustls::Error::InvalidCertificate(
                why @ (CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }),
            )) => {
                format!("the server's certificate is not for the host name {name} ({why}): connect by a name it holds")
            }
            Some(rustls::Error::InvalidCertificate(why)) => format!("the server's certificate is refused: {why}"),
            Some(why) => format!("the TLS handshake failed: {why}{hint}"),
            None => format!("the TLS handshake failed: {error}{hint}"),
        }
    }
}

/// The certificate check of `prefer` (`roots: None`: none of the
/// certificate, see the module's notes) and of `verify-ca` (the chain up to
/// one of `roots`: validity, key usage for a server; not the host name).
/// Either way the handshake's signature is checked against the
/// certificate, so what SCRAM's channel binding binds to is the key of the
/// one who answered.
#[derive(Debug)]
struct ChainOrNothing {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOrNothing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            let algorithms = self.provider.signature_verification_algorithms.all;
            verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, algorithms)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn wanted(url: &str) -> (String, Wanted) {
        split(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn mode(url: &str) -> Mode {
        wanted(url).1.mode().unwrap()
    }

    fn roots(url: &str) -> Option<Roots> {
        wanted(url).1.roots().unwrap()
    }

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_and_the_rest_kept_as_written() {
        let url = "postgres://u:p%3Fw@h:5433/db?application_name=a%20b&sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3";
        let (rest, tls) = wanted(url);
        assert_eq!(
            rest,
            "postgres://u:p%3Fw@h:5433/db?application_name=a%20b&connect_timeout=3"
        );
        assert_eq!(tls.mode(), Ok(Mode::VerifyFull));
        assert_eq!(tls.roots(), Ok(Some(Roots::File("/etc/ca.pem".into()))));

        assert_eq!(wanted("postgresql://h/db?sslmode=require").0, "postgres://h/db");
        assert_eq!(mode("postgresql://h/db?sslmode=require"), Mode::Require);
        assert_eq!(roots("postgresql://h/db?sslmode=require"), None);
        // The scheme in any case, as `store::Target` takes it.
        assert_eq!(wanted("PostgreSQL://h/db").0, "postgres://h/db");
        // Keys and values percent-decoded, as the driver decodes them.
        let url = "postgres://h/db?ssl%6dode=verify%2Dca&sslrootcert=/a%20dir/ca.pem";
        assert_eq!(mode(url), Mode::VerifyCa);
        assert_eq!(roots(url), Some(Roots::File("/a dir/ca.pem".into())));
        // A `?` in the password is not where the parameters start.
        let url = "postgres://u:pa?ss@h/db?sslmode=disable";
        assert_eq!(
            (wanted(url).0.as_str(), mode(url)),
            ("postgres://u:pa?ss@h/db", Mode::Disable)
        );
        assert_eq!(
            roots("postgres://h/db?sslrootcert=system&sslmode=verify-full"),
            Some(Roots::Public)
        );
    }

    #[test]
    fn no_sslmode_is_prefer_and_allow_is_prefer() {
        assert_eq!(mode("postgres://h/db"), Mode::Prefer);
        assert_eq!(mode("postgres://h/db?sslmode=allow"), Mode::Prefer);
        assert_eq!(mode("postgres://h/db?sslmode=prefer"), Mode::Prefer);
    }

    #[test]
    fn unknown_twice_given_and_empty_values_are_refused() {
        let refused = |url: &str| split(url).expect_err(url);
        assert!(refused("postgres://h/db?sslmode=require&sslmode=disable").contains("sslmode is given twice"));
        assert!(refused("host=h dbname=db sslmode=require").contains("postgres://"));
        let (_, unknown) = wanted("postgres://h/db?sslmode=verify_full");
        assert!(unknown.tls().err().unwrap().contains("sslmode=verify_full is none of"));
        let (_, empty) = wanted("postgres://h/db?sslmode=verify-full&sslrootcert=");
        assert!(empty.tls().err().unwrap().contains("names no file"));
    }

    #[test]
    fn a_mode_that_checks_nothing_refuses_a_root_and_verify_ca_needs_a_file() {
        let refused = |url: &str| wanted(url).1.tls().err().unwrap_or_else(|| panic!("{url} accepted"));
        for mode in ["disable", "prefer", "allow"] {
            let said = refused(&format!("postgres://h/db?sslmode={mode}&sslrootcert=/ca.pem"));
            assert!(said.contains("checks no certificate"), "{said}");
        }
        let said = refused("postgres://h/db?sslrootcert=system");
        assert!(
            said.contains("sslmode=prefer (no sslmode given) checks no certificate"),
            "{said}"
        );
        for url in [
            "postgres://h/db?sslmode=verify-ca",
            "postgres://h/db?sslmode=verify-ca&sslrootcert=system",
        ] {
            assert!(refused(url).contains("give sslrootcert=PATH"), "{url}");
        }
    }

    #[test]
    fn each_mode_tells_the_driver_what_it_can_do() {
        let told = |url: &str| {
            wanted(url)
                .1
                .tls()
                .map(|tls| (tls.ssl_mode, tls.connector.is_some()))
                .unwrap()
        };
        assert_eq!(told("postgres://h/db?sslmode=disable"), (SslMode::Disable, false));
        assert_eq!(told("postgres://h/db"), (SslMode::Prefer, true));
        assert_eq!(told("postgres://h/db?sslmode=require"), (SslMode::Require, true));
        assert_eq!(told("postgres://h/db?sslmode=verify-full"), (SslMode::Require, true));
    }

    #[test]
    fn a_root_file_that_cannot_be_used_says_why_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |path: &Path| {
            let url = format!("postgres://h/db?sslmode=verify-full&sslrootcert={}", path.display());
            wanted(&url)
                .1
                .tls()
                .err()
                .unwrap_or_else(|| panic!("{} accepted", path.display()))
        };
        let missing = dir.path().join("missing.pem");
        let said = refused(&missing);
        assert!(
            said.starts_with(&format!("cannot read sslrootcert {}: ", missing.display())),
            "{said}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(refused(&empty).contains("holds no certificate"));

        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        assert!(refused(&broken).contains("is not PEM"), "{}", refused(&broken));

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(
            refused(&garbage).contains("certificate 1 cannot be a CA"),
            "{}",
            refused(&garbage)
        );
    }
}
