//! A development agent provider: signing keys, a JWKS served over HTTP on
//! loopback, and minted ID-JAGs and logout tokens. `examples/provider.rs` is
//! its command line; the integration tests use it as the real provider they
//! talk to. A crate of its own (a dev-dependency), so it is no part of
//! authmd's library: authmd only verifies. It signs independently of
//! authmd's verifier (its own JWS encoding on `ring`).
//!
//! Beside it, [`postgres`]: a real PostgreSQL server in a temp dir, shared
//! by the tests of the PostgreSQL store and the benchmark tool.

pub mod postgres;

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

/// SPEC.md 6: the event a provider's logout token carries.
pub const REVOKED_EVENT: &str = "https://schemas.workos.com/events/agent/auth/identity/assertion/revoked";

/// A fresh token id.
fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).expect("randomness");
    format!("jti_{}", B64.encode(bytes))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Es384,
    EdDsa,
    Rs256,
    Ps256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private key with its `kid` and algorithm.
pub struct SigningKey {
    pub alg: Alg,
    pub kid: String,
    pair: Pair,
    pkcs8: Vec<u8>,
}

impl SigningKey {
    /// A fresh EC or Ed25519 key (ring cannot generate RSA keys: use [`SigningKey::from_pkcs8`]).
    pub fn generate(alg: Alg, kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Alg::Es256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
            Alg::Es384 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng),
            Alg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
            Alg::Rs256 | Alg::Ps256 => panic!("ring cannot generate RSA keys; load one with from_pkcs8"),
        }
        .expect("key generation");
        SigningKey::from_pkcs8(alg, kid, pkcs8.as_ref()).expect("a key ring just made")
    }

    pub fn from_pkcs8(alg: Alg, kid: &str, der: &[u8]) -> Result<SigningKey, String> {
        let rng = SystemRandom::new();
        let pair = match alg {
            Alg::Es256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                    .map_err(|e| e.to_string())?,
            ),
            Alg::Es384 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng)
                    .map_err(|e| e.to_string())?,
            ),
            Alg::EdDsa => Pair::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(|e| e.to_string())?),
            Alg::Rs256 | Alg::Ps256 => Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| e.to_string())?),
        };
        Ok(SigningKey {
            alg,
            kid: kid.to_string(),
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// The PKCS#8 document, to keep the key in a file.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.pair {
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                let crv = if self.alg == Alg::Es256 { "P-256" } else { "P-384" };
                json!({ "kty": "EC", "crv": crv, "x": B64.encode(&point[1..1 + half]), "y": B64.encode(&point[1 + half..]) })
            }
            Pair::Ed(pair) => json!({ "kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref()) }),
            Pair::Rsa(pair) => {
                let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({ "kty": "RSA", "n": B64.encode(&parts.n), "e": B64.encode(&parts.e) })
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg.name());
        jwk["use"] = json!("sig");
        jwk
    }

    /// A compact JWS over `claims` with this key (`alg` and `kid` are added to `header`).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let mut header = header.clone();
        header["alg"] = json!(self.alg.name());
        header["kid"] = json!(self.kid);
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Ec(pair) => pair.sign(&rng, input.as_bytes()).expect("sign").as_ref().to_vec(),
            Pair::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Pair::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = if self.alg == Alg::Rs256 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, input.as_bytes(), &mut out).expect("sign");
                out
            }
        };
        format!("{input}.{}", B64.encode(signature))
    }
}

/// What goes into an ID-JAG; `claims` starts from sensible defaults that
/// tests change one at a time.
pub fn id_jag_claims(issuer: &str, sub: &str, audience: &str, now_secs: i64) -> Value {
    json!({
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "client_id": issuer,
        "jti": new_jti(),
        "iat": now_secs,
        "exp": now_secs + 300,
        // The user's login at the provider: just now (SPEC-v0.7 4.3).
        "auth_time": now_secs,
        "email": format!("{sub}@example.com"),
        "email_verified": true,
        "agent_platform": "authmd-devprovider",
        "agent_context_id": "ctx_dev",
    })
}

pub fn id_jag_header() -> Value {
    json!({ "typ": "oauth-id-jag+jwt" })
}

/// A logout token revoking what `iss` asserted about `sub` (SPEC.md 6).
pub fn logout_claims(issuer: &str, sub: &str, audience: &str, now_secs: i64) -> Value {
    json!({
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "jti": new_jti(),
        "iat": now_secs,
        "events": { REVOKED_EVENT: {} },
    })
}

pub fn logout_header() -> Value {
    json!({ "typ": "logout+jwt" })
}

/// A Security Event Token (RFC 8417) carrying `events` about `sub`
/// (SPEC-v0.7 11); `REVOKED_EVENT` revokes the delegation.
pub fn secevent_claims(issuer: &str, sub: &str, audience: &str, now_secs: i64, events: Value) -> Value {
    json!({
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "jti": new_jti(),
        "iat": now_secs,
        "events": events,
    })
}

pub fn secevent_header() -> Value {
    json!({ "typ": "secevent+jwt" })
}

/// Documents a [`JwksServer`] serves, changeable while it runs.
#[derive(Default)]
pub struct Documents {
    /// path -> (JSON body, Cache-Control value)
    pub by_path: HashMap<String, (Value, String)>,
}

/// A loopback HTTP server publishing a provider's JWKS (and any other
/// document, such as a Client ID Metadata Document).
pub struct JwksServer {
    pub base_url: String,
    pub documents: Arc<RwLock<Documents>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Requests answered, by path.
    pub hits: Arc<RwLock<HashMap<String, usize>>>,
}

pub const JWKS_PATH: &str = "/.well-known/jwks.json";

impl JwksServer {
    /// Serves on `addr` (such as `127.0.0.1:0`).
    pub fn start(addr: &str) -> std::io::Result<JwksServer> {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("not an IP address"))?;
        let documents = Arc::new(RwLock::new(Documents::default()));
        let hits = Arc::new(RwLock::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (docs, counts, stopping) = (documents.clone(), hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let path = request.url().split('?').next().unwrap_or("").to_string();
                *counts.write().unwrap().entry(path.clone()).or_insert(0) += 1;
                let found = docs.read().unwrap().by_path.get(&path).cloned();
                let response = match found {
                    Some((body, cache_control)) => tiny_http::Response::from_string(body.to_string())
                        .with_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap())
                        .with_header(tiny_http::Header::from_bytes("Cache-Control", cache_control).unwrap()),
                    None => tiny_http::Response::from_string("not found").with_status_code(404),
                };
                let _ = request.respond(response);
            }
        });
        Ok(JwksServer {
            base_url: format!("http://{local}"),
            documents,
            stop,
            thread: Some(thread),
            hits,
        })
    }

    /// Publishes the public halves of `keys` as the JWKS.
    pub fn publish(&self, keys: &[&SigningKey], cache_control: &str) {
        let jwks = json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() });
        self.put(JWKS_PATH, jwks, cache_control);
    }

    pub fn put(&self, path: &str, body: Value, cache_control: &str) {
        self.documents
            .write()
            .unwrap()
            .by_path
            .insert(path.to_string(), (body, cache_control.to_string()));
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.read().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A provider whose server hangs: a loopback listener that accepts
/// connections, counts them, and never answers until [`StalledServer::release`]
/// closes them.
pub struct StalledServer {
    pub base_url: String,
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StalledServer {
    pub fn start() -> std::io::Result<StalledServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        listener.set_nonblocking(true)?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, keep, stopping) = (accepted.clone(), held.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        keep.lock().unwrap().push(stream);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(StalledServer {
            base_url,
            accepted,
            held,
            stop,
            thread: Some(thread),
        })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every held connection (the clients see the connection end).
    pub fn release(&self) {
        self.held.lock().unwrap().clear();
    }
}

impl Drop for StalledServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
