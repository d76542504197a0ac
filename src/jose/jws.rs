//! The signature layer: compact serialization, the header rules of SPEC.md
//! 4.1 that hold for every token (the `typ` rule is the caller's), and ring
//! verification.

use ring::signature::{self, UnparsedPublicKey};
use serde_json::{Map, Value};

use super::json::{self, JsonError};
use super::{Alg, Material, Rejection, b64};

pub const MAX_KID_BYTES: usize = 256;

/// Header members refused outright: extensions this verifier does not
/// understand (`crit`), nested or transformed content (`cty`, `zip`, `b64`),
/// and keys carried by the token itself, which are never used or fetched.
const FORBIDDEN_HEADERS: [&str; 8] = ["crit", "cty", "zip", "b64", "jwk", "jku", "x5u", "x5c"];

/// A compact JWS taken apart; nothing verified.
#[derive(Debug, Clone)]
pub struct Compact {
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
    /// `header.payload`, as signed.
    pub signing_input: String,
    pub signature: Vec<u8>,
}

pub fn split(token: &str) -> Result<Compact, Rejection> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(Rejection::NotCompact);
    };
    if header.is_empty() || signature.is_empty() {
        return Err(Rejection::NotCompact);
    }
    let header_bytes = b64::decode(header).ok_or(Rejection::BadBase64 { part: "header" })?;
    let payload_bytes = b64::decode(payload).ok_or(Rejection::BadBase64 { part: "payload" })?;
    let signature_bytes = b64::decode(signature).ok_or(Rejection::BadBase64 { part: "signature" })?;
    Ok(Compact {
        header: json_object("header", &header_bytes)?,
        payload: payload_bytes,
        signing_input: format!("{header}.{payload}"),
        signature: signature_bytes,
    })
}

pub fn json_object(part: &'static str, bytes: &[u8]) -> Result<Map<String, Value>, Rejection> {
    json::object(bytes).map_err(|e| match e {
        JsonError::Duplicate(name) => Rejection::DuplicateMember { part, name },
        JsonError::NotUtf8 => Rejection::NotJson {
            part,
            why: "not UTF-8".into(),
        },
        JsonError::NotAnObject => Rejection::NotJson {
            part,
            why: "not an object".into(),
        },
        JsonError::Syntax(why) => Rejection::NotJson { part, why },
    })
}

/// `alg` on the allowlist, no forbidden member, a sane `kid`. Returns the
/// algorithm and the `kid`.
pub fn check_header(header: &Map<String, Value>) -> Result<(Alg, Option<String>), Rejection> {
    let alg = match header.get("alg") {
        None => return Err(Rejection::AlgMissing),
        Some(Value::String(name)) => Alg::parse(name).ok_or_else(|| Rejection::AlgNotAllowed(name.clone()))?,
        Some(other) => return Err(Rejection::AlgNotAllowed(other.to_string())),
    };
    if let Some(name) = FORBIDDEN_HEADERS.iter().find(|name| header.contains_key(**name)) {
        return Err(Rejection::ForbiddenHeader(name));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if kid.len() > MAX_KID_BYTES => {
            return Err(Rejection::KidTooLong { bytes: kid.len() });
        }
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(Rejection::KidNotString),
    };
    Ok((alg, kid))
}

/// Does `signature` over `message` verify with `key` under `alg`? ECDSA
/// signatures are the raw `r || s` of JWS, never DER.
pub fn verify_signature(alg: Alg, key: &Material, message: &[u8], signature: &[u8]) -> Result<(), Rejection> {
    let result = match (alg, key) {
        (Alg::Es256, Material::P256(point)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
        }
        (Alg::Es384, Material::P384(point)) => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point).verify(message, signature)
        }
        (Alg::EdDsa, Material::Ed25519(x)) => UnparsedPublicKey::new(&signature::ED25519, x).verify(message, signature),
        (Alg::Rs256, Material::Rsa { n, e }) => signature::RsaPublicKeyComponents { n, e }.verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            message,
            signature,
        ),
        (Alg::Ps256, Material::Rsa { n, e }) => {
            signature::RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PSS_2048_8192_SHA256, message, signature)
        }
        _ => return Err(Rejection::KeyTypeMismatch { alg: alg.name() }),
    };
    result.map_err(|_| Rejection::SignatureInvalid)
}
