//! Signing the assertions authmd issues itself (SPEC-v0.7 section 5): ES256
//! on P-256, the one signing algorithm, with `kid` the RFC 7638 thumbprint
//! of the public key. The private key exists only as PKCS#8 bytes kept in
//! the database (`store::signing_keys`) and in memory here; nothing prints it,
//! and [`SigningKey`]'s `Debug` shows the `kid` alone.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use super::b64;

/// A P-256 key that signs.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    x: String,
    y: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A new P-256 private key from the system CSPRNG, as PKCS#8 v1 bytes.
pub fn generate_pkcs8() -> Vec<u8> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("the system CSPRNG is available")
        .as_ref()
        .to_vec()
}

impl SigningKey {
    /// The key in `pkcs8` (as [`generate_pkcs8`] made it); `Err` says why
    /// the bytes are not a P-256 key, without showing them.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
            .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))?;
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = (b64::encode(&point[1..33]), b64::encode(&point[33..65]));
        Ok(SigningKey {
            kid: thumbprint(&x, &y),
            pair,
            x,
            y,
        })
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK, as `/.well-known/jwks.json` lists it: no
    /// private member.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// A compact JWS of `claims` with header `{"alg":"ES256","kid","typ"}`.
    #[cfg_attr(not(test), allow(dead_code))] // the v0.7 registration signs with it (issue 12, next step)
    pub fn sign(&self, typ: &str, claims: &Value) -> String {
        let header = json!({ "alg": "ES256", "kid": self.kid, "typ": typ });
        let signing_input = format!(
            "{}.{}",
            b64::encode(header.to_string().as_bytes()),
            b64::encode(claims.to_string().as_bytes())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("ECDSA signing with the system CSPRNG does not fail");
        format!("{signing_input}.{}", b64::encode(signature.as_ref()))
    }
}

/// RFC 7638 section 3.2: SHA-256 over the required members in lexical order,
/// no whitespace.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    b64::encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{Jwks, Policy, TokenKind, parse, verify};
    use crate::time::UnixSecs;

    /// RFC 7638's own example is an RSA key; this is the P-256 key of RFC
    /// 7517 appendix A.1, its thumbprint computed independently (Python's
    /// `json.dumps(sort_keys=True, separators=(",", ":"))`, SHA-256, base64url).
    #[test]
    fn the_thumbprint_is_rfc_7638() {
        let x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
        let y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
        assert_eq!(thumbprint(x, y), "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
    }

    #[test]
    fn what_it_signs_the_verifier_accepts_with_its_published_key() {
        let key = SigningKey::from_pkcs8(&generate_pkcs8()).unwrap();
        let claims = json!({
            "iss": "https://api.example.com", "aud": "https://api.example.com", "sub": "reg_x",
            "jti": "jti_1", "iat": 1_800_000_000, "exp": 1_800_003_600,
            "client_id": "https://api.example.com", "email": "a@example.com", "email_verified": true,
        });
        let token = key.sign("oauth-id-jag+jwt", &claims);
        let jwks = Jwks::parse(json!({ "keys": [key.public_jwk()] }).to_string().as_bytes()).unwrap();
        let policy = Policy {
            audiences: vec!["https://api.example.com".into()],
            clock_skew_secs: 60,
            max_assertion_lifetime_secs: 3600,
            logout_lifetime_without_exp_secs: 300,
        };
        let unverified = parse(&token, TokenKind::IdJag).unwrap();
        let verified = verify(unverified, &jwks, &policy, UnixSecs::new(1_800_000_010)).unwrap();
        assert_eq!(verified.claims().sub, "reg_x");
        let jwk = key.public_jwk();
        assert_eq!(jwk["kid"], key.kid());
        assert!(jwk.get("d").is_none(), "never a private member");
        assert!(!format!("{key:?}").contains(&b64::encode(&generate_pkcs8())));
    }

    #[test]
    fn bytes_that_are_not_a_key_are_refused() {
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
        let a = SigningKey::from_pkcs8(&generate_pkcs8()).unwrap();
        let b = SigningKey::from_pkcs8(&generate_pkcs8()).unwrap();
        assert_ne!(a.kid(), b.kid(), "a fresh key each time");
    }
}
