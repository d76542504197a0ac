//! JWKs to keys ring can verify with, and the key-fitness rules of SPEC.md
//! 4.1: a key fits a token when its type and curve fit `alg`, its own `alg`
//! (if stated) is the token's, its `use` (if stated) is `sig`, its `key_ops`
//! (if stated) include `verify`, and an RSA modulus has at least 2048 bits.
//!
//! A JWKS keeps every key it lists, usable or not, so `kid` lookups see
//! exactly what the provider published; an unusable key is skipped (with its
//! reason kept for logs), never a reason to refuse the whole set.

use serde_json::{Map, Value};

use super::{Alg, Rejection, b64, json};

/// The largest JWKS document parsed (the fetcher caps downloads the same way).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// RSA moduli below this are refused (SPEC.md 4.1).
pub const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// Public key material, checked for shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// Uncompressed SEC1 point `04 || x || y`.
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
    /// Big-endian modulus (no leading zeros) and exponent.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl Material {
    fn fits(&self, alg: Alg) -> bool {
        matches!(
            (self, alg),
            (Material::P256(_), Alg::Es256)
                | (Material::P384(_), Alg::Es384)
                | (Material::Ed25519(_), Alg::EdDsa)
                | (Material::Rsa { .. }, Alg::Rs256 | Alg::Ps256)
        )
    }
}

/// One JWK as published.
#[derive(Debug, Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's own `alg`, if stated and known.
    alg: Option<String>,
    /// The key's material, or why it can never verify anything.
    usable: Result<Material, Rejection>,
}

impl Jwk {
    pub fn parse(member: &Value) -> Jwk {
        let object = member.as_object();
        let kid = object
            .and_then(|o| o.get("kid"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let alg = object
            .and_then(|o| o.get("alg"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let usable = match object {
            Some(object) => material(object),
            None => Err(Rejection::KeyUnusable("a JWK must be a JSON object")),
        };
        Jwk { kid, alg, usable }
    }

    pub fn material(&self) -> Result<&Material, Rejection> {
        self.usable.as_ref().map_err(Clone::clone)
    }

    /// The key, if it may verify a token signed with `alg`.
    pub fn for_alg(&self, alg: Alg) -> Result<&Material, Rejection> {
        let material = self.material()?;
        if !material.fits(alg) {
            return Err(Rejection::KeyTypeMismatch { alg: alg.name() });
        }
        if let Some(own) = &self.alg
            && Alg::parse(own) != Some(alg)
        {
            return Err(Rejection::KeyAlgMismatch { alg: alg.name() });
        }
        Ok(material)
    }
}

fn material(jwk: &Map<String, Value>) -> Result<Material, Rejection> {
    if let Some(usage) = jwk.get("use")
        && usage.as_str() != Some("sig")
    {
        return Err(Rejection::KeyUnusable("its `use` is not `sig`"));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err(Rejection::KeyUnusable("its `key_ops` do not include `verify`"));
        }
    }
    // A published set carries public keys only; one with private parts is
    // a provider mistake we refuse to build on.
    if ["d", "p", "q", "dp", "dq", "qi", "k", "oth"]
        .iter()
        .any(|m| jwk.contains_key(*m))
    {
        return Err(Rejection::KeyUnusable("it carries private key members"));
    }
    let field = |name: &'static str| -> Result<Vec<u8>, Rejection> {
        let text = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or(Rejection::KeyUnusable("a required member is missing"))?;
        b64::decode(text).ok_or(Rejection::KeyUnusable("a member is not canonical base64url"))
    };
    let kty = jwk.get("kty").and_then(Value::as_str);
    let crv = jwk.get("crv").and_then(Value::as_str);
    match (kty, crv) {
        (Some("EC"), Some(curve @ ("P-256" | "P-384"))) => {
            let size = if curve == "P-256" { 32 } else { 48 };
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != size || y.len() != size {
                return Err(Rejection::KeyUnusable("EC coordinates are not the curve's size"));
            }
            let point = [&[4u8][..], &x, &y].concat();
            Ok(if size == 32 {
                Material::P256(point)
            } else {
                Material::P384(point)
            })
        }
        (Some("OKP"), Some("Ed25519")) => {
            let x = field("x")?;
            if x.len() != 32 {
                return Err(Rejection::KeyUnusable("an Ed25519 key is 32 bytes"));
            }
            Ok(Material::Ed25519(x))
        }
        (Some("RSA"), _) => {
            let (n, e) = (field("n")?, field("e")?);
            let n: Vec<u8> = n.into_iter().skip_while(|&b| b == 0).collect();
            let bits = n
                .first()
                .map_or(0, |first| n.len() * 8 - first.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(Rejection::KeyUnusable("an RSA modulus under 2048 bits"));
            }
            if bits > MAX_RSA_BITS {
                return Err(Rejection::KeyUnusable("an RSA modulus over 8192 bits"));
            }
            let e: Vec<u8> = e.into_iter().skip_while(|&b| b == 0).collect();
            // ring takes odd exponents from 3 up to 2^33 - 1.
            let odd_and_sane = e.last().is_some_and(|b| b & 1 == 1) && e.len() <= 4 && e != [1];
            if !odd_and_sane {
                return Err(Rejection::KeyUnusable("an unusual RSA exponent"));
            }
            Ok(Material::Rsa { n, e })
        }
        (Some("EC"), _) => Err(Rejection::KeyUnusable("an EC curve other than P-256 or P-384")),
        (Some("OKP"), _) => Err(Rejection::KeyUnusable("an OKP curve other than Ed25519")),
        _ => Err(Rejection::KeyUnusable("a key type other than EC, OKP or RSA")),
    }
}

/// A provider's published key set.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    pub fn parse(document: &[u8]) -> Result<Jwks, Rejection> {
        if document.len() > MAX_JWKS_BYTES {
            return Err(Rejection::JwksInvalid("larger than 256 KiB"));
        }
        let object = json::object(document).map_err(|_| Rejection::JwksInvalid("not a JSON object"))?;
        let keys = object
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(Rejection::JwksInvalid("no `keys` array"))?;
        Ok(Jwks {
            keys: keys.iter().map(Jwk::parse).collect(),
        })
    }

    pub fn from_keys(keys: Vec<Jwk>) -> Jwks {
        Jwks { keys }
    }

    /// Does any published key carry this `kid`?
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Keys skipped as unusable, with why (for logs).
    pub fn skipped(&self) -> Vec<(Option<String>, Rejection)> {
        self.keys
            .iter()
            .filter_map(|k| k.usable.as_ref().err().map(|why| (k.kid.clone(), why.clone())))
            .collect()
    }

    /// The one key that may verify a token with `alg` and `kid` (SPEC.md
    /// 4.1): with a kid, the one key published under it, which must fit;
    /// without, the only fitting key. Never a guess between two.
    pub fn select(&self, alg: Alg, kid: Option<&str>) -> Result<&Material, Rejection> {
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid));
                let key = named.next().ok_or(Rejection::KidUnknown)?;
                if named.next().is_some() {
                    return Err(Rejection::KidAmbiguous);
                }
                key.for_alg(alg)
            }
            None => {
                let mut fitting = self.keys.iter().filter_map(|k| k.for_alg(alg).ok());
                let key = fitting.next().ok_or(Rejection::NoFittingKey)?;
                if fitting.next().is_some() {
                    return Err(Rejection::KidNeeded);
                }
                Ok(key)
            }
        }
    }
}
