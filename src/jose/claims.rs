//! Tokens as a whole: [`parse`] (everything checkable without a key) and
//! [`verify`] (key, signature, then the claim rules of SPEC.md 4.2 for
//! ID-JAGs and 6 for logout tokens), with `now` passed in.

use std::time::Duration;

use serde_json::{Map, Value};

use super::jws::{self, Compact};
use super::{Alg, Jwks, Rejection, TokenKind};
use crate::time::UnixSecs;

/// Tokens over this size are refused before any decoding work.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

pub const REVOKED_EVENT: &str = "https://schemas.workos.com/events/agent/auth/identity/assertion/revoked";

/// What this service accepts, from its settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// This service's names: its issuer URL and its resource URL.
    pub audiences: Vec<String>,
    pub clock_skew_secs: u64,
    pub max_assertion_lifetime_secs: u64,
    pub logout_lifetime_without_exp_secs: u64,
}

/// A token whose shape and header passed; nothing in it is trusted yet.
#[derive(Debug, Clone)]
pub struct Unverified {
    kind: TokenKind,
    alg: Alg,
    kid: Option<String>,
    compact: Compact,
    claims: Map<String, Value>,
}

impl Unverified {
    /// The unverified `iss`, so the caller can check its trust list before
    /// any network request.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }
}

/// The claims authmd uses, read from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    /// Required in ID-JAGs; logout tokens need none.
    pub client_id: Option<String>,
    pub jti: String,
    pub iat: UnixSecs,
    /// For a logout token without `exp`: `iat` + the policy's lifetime.
    pub exp: UnixSecs,
    pub nbf: Option<UnixSecs>,
    pub scope: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    /// In E.164 whenever `phone_number_verified` (`phone::normalize`).
    pub phone_number: Option<String>,
    /// Verified by the provider and in E.164: usable to match a user.
    pub phone_number_verified: bool,
    pub name: Option<String>,
    pub agent_platform: Option<String>,
    pub agent_context_id: Option<String>,
    /// A logout token or a Security Event Token that carries the
    /// assertion-revoked event (`REVOKED_EVENT`).
    pub revokes_delegation: bool,
    /// When the user last logged in at the provider, if the token says so
    /// as a JSON number (SPEC-v0.7 4.3 checks its freshness; v0.1 ignores it).
    pub auth_time: Option<UnixSecs>,
}

/// A token whose signature and claims were verified. Only this module can
/// make one, so code that takes a `Verified` cannot skip a check.
#[derive(Debug, Clone)]
pub struct Verified {
    claims: Claims,
    alg: Alg,
}

impl Verified {
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }
}

/// Size, shape, base64url, JSON without duplicates, `typ`, `alg`, forbidden
/// headers, `kid`; the claims must be a JSON object. No key is needed.
pub fn parse(token: &str, kind: TokenKind) -> Result<Unverified, Rejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::TooLarge { bytes: token.len() });
    }
    let compact = jws::split(token)?;
    let (alg, kid) = jws::check_header(&compact.header)?;
    check_typ(&compact.header, kind)?;
    let claims = jws::json_object("payload", &compact.payload)?;
    Ok(Unverified {
        kind,
        alg,
        kid,
        compact,
        claims,
    })
}

/// `typ` names the token's kind: compared case-insensitively, with the
/// `application/` prefix allowed (RFC 7515 section 4.1.9).
fn check_typ(header: &Map<String, Value>, kind: TokenKind) -> Result<(), Rejection> {
    let typ = header.get("typ").ok_or(Rejection::TypMissing)?;
    let typ = typ
        .as_str()
        .ok_or(Rejection::TypMismatch { expected: kind.typ() })?
        .to_ascii_lowercase();
    let bare = typ.strip_prefix("application/").unwrap_or(&typ);
    if bare != kind.typ() {
        return Err(Rejection::TypMismatch { expected: kind.typ() });
    }
    Ok(())
}

/// Key selection and signature, then the claim rules, at `now_secs`.
pub fn verify(token: Unverified, jwks: &Jwks, policy: &Policy, now_secs: UnixSecs) -> Result<Verified, Rejection> {
    let key = jwks.select(token.alg, token.kid.as_deref())?;
    jws::verify_signature(
        token.alg,
        key,
        token.compact.signing_input.as_bytes(),
        &token.compact.signature,
    )?;
    let claims = check_claims(&token.claims, token.kind, policy, now_secs)?;
    Ok(Verified { claims, alg: token.alg })
}

fn required_string(claims: &Map<String, Value>, name: &'static str) -> Result<String, Rejection> {
    match claims.get(name) {
        None => Err(Rejection::MissingClaim(name)),
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(_) => Err(Rejection::ClaimWrongType(name)),
    }
}

fn optional_string(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_string)
}

/// A NumericDate: a non-negative JSON number (fractions are truncated).
fn time(claims: &Map<String, Value>, name: &'static str) -> Result<Option<UnixSecs>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        {
            Some(secs) if secs >= 0 && n.as_f64().is_some_and(|f| f >= 0.0) => Ok(Some(UnixSecs::new(secs))),
            _ => Err(Rejection::ClaimWrongType(name)),
        },
        Some(_) => Err(Rejection::ClaimWrongType(name)),
    }
}

fn strip_slash(text: &str) -> &str {
    text.strip_suffix('/').unwrap_or(text)
}

fn check_audience(claims: &Map<String, Value>, policy: &Policy) -> Result<Vec<String>, Rejection> {
    let names: Vec<String> = match claims.get("aud") {
        None => return Err(Rejection::MissingClaim("aud")),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => {
            let names: Option<Vec<String>> = many.iter().map(|v| v.as_str().map(str::to_string)).collect();
            names.ok_or(Rejection::ClaimWrongType("aud"))?
        }
        Some(_) => return Err(Rejection::ClaimWrongType("aud")),
    };
    // A token naming other audiences too could be redeemed at each of them.
    let [name] = &names[..] else {
        return Err(Rejection::AudienceNotSingle);
    };
    if !policy
        .audiences
        .iter()
        .any(|ours| strip_slash(ours) == strip_slash(name))
    {
        return Err(Rejection::AudienceMismatch);
    }
    Ok(names)
}

fn check_claims(
    claims: &Map<String, Value>,
    kind: TokenKind,
    policy: &Policy,
    now: UnixSecs,
) -> Result<Claims, Rejection> {
    let iss = required_string(claims, "iss")?;
    let sub = required_string(claims, "sub")?;
    let jti = required_string(claims, "jti")?;
    let aud = check_audience(claims, policy)?;
    let client_id = match (kind, claims.get("client_id")) {
        (_, Some(Value::String(id))) if !id.is_empty() => Some(id.clone()),
        (TokenKind::IdJag, _) => return Err(Rejection::MissingClientId),
        (TokenKind::Logout | TokenKind::Service | TokenKind::SecEvent, _) => None,
    };
    let iat = time(claims, "iat")?.ok_or(Rejection::MissingClaim("iat"))?;
    let exp = match (time(claims, "exp")?, kind) {
        (Some(exp), _) => exp,
        (None, TokenKind::Logout | TokenKind::SecEvent) => {
            iat + Duration::from_secs(policy.logout_lifetime_without_exp_secs)
        }
        (None, TokenKind::IdJag | TokenKind::Service) => return Err(Rejection::MissingClaim("exp")),
    };
    let nbf = time(claims, "nbf")?;
    let skew = Duration::from_secs(policy.clock_skew_secs);
    if exp < now - skew {
        return Err(Rejection::ExpiredBy {
            secs: now.saturating_since(exp).as_secs(),
        });
    }
    if iat > now + skew {
        return Err(Rejection::IssuedInFuture {
            secs: iat.saturating_since(now).as_secs(),
        });
    }
    if let Some(nbf) = nbf
        && nbf > now + skew
    {
        return Err(Rejection::NotYetValid {
            secs: nbf.saturating_since(now).as_secs(),
        });
    }
    let lifetime = exp.saturating_since(iat);
    if lifetime > Duration::from_secs(policy.max_assertion_lifetime_secs) {
        return Err(Rejection::LifetimeTooLong {
            secs: lifetime.as_secs(),
            max: policy.max_assertion_lifetime_secs,
        });
    }
    if claims.contains_key("cnf") {
        return Err(Rejection::ConfirmationClaim);
    }
    let scope = match claims.get("scope") {
        None => None,
        Some(Value::String(scope)) => Some(scope.clone()),
        Some(_) => return Err(Rejection::ClaimWrongType("scope")),
    };
    let email_verified = claims.get("email_verified") == Some(&Value::Bool(true));
    let phone_number_verified = claims.get("phone_number_verified") == Some(&Value::Bool(true));
    // Users are matched on the E.164 spelling (SPEC.md 4.4): a verified number
    // that has none identifies nobody, so it counts as no verified number.
    let (phone_number, phone_usable) = match (phone_number_verified, optional_string(claims, "phone_number")) {
        (true, Some(number)) => match crate::phone::normalize(&number) {
            Ok(e164) => (Some(e164), true),
            Err(why) if !email_verified && matches!(kind, TokenKind::IdJag) => {
                return Err(Rejection::PhoneNumberNotE164(why));
            }
            Err(_) => (Some(number), false),
        },
        (verified, number) => (number, verified),
    };
    match kind {
        TokenKind::IdJag if !email_verified && !phone_number_verified => return Err(Rejection::NoVerifiedContact),
        TokenKind::IdJag | TokenKind::Service => {}
        TokenKind::SecEvent => {
            if claims
                .get("events")
                .and_then(Value::as_object)
                .is_none_or(serde_json::Map::is_empty)
            {
                return Err(Rejection::SetEventsMissing);
            }
        }
        TokenKind::Logout => {
            // OpenID back-channel logout: a nonce marks an ID token, not a logout token.
            if claims.contains_key("nonce") {
                return Err(Rejection::LogoutNonce);
            }
            let revoked = claims
                .get("events")
                .and_then(Value::as_object)
                .and_then(|e| e.get(REVOKED_EVENT));
            if !revoked.is_some_and(Value::is_object) {
                return Err(Rejection::LogoutEventMissing);
            }
        }
    }
    Ok(Claims {
        iss,
        sub,
        aud,
        client_id,
        jti,
        iat,
        exp,
        nbf,
        scope,
        email: optional_string(claims, "email"),
        email_verified,
        phone_number,
        phone_number_verified: phone_usable,
        name: optional_string(claims, "name"),
        agent_platform: optional_string(claims, "agent_platform"),
        agent_context_id: optional_string(claims, "agent_context_id"),
        auth_time: claims.get("auth_time").and_then(Value::as_i64).map(UnixSecs::new),
        revokes_delegation: claims
            .get("events")
            .and_then(Value::as_object)
            .is_some_and(|events| events.contains_key(REVOKED_EVENT)),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use authmd_dev::{Alg as SigningAlg, SigningKey};

    const NOW: UnixSecs = UnixSecs::new(1_800_000_000);

    fn policy() -> Policy {
        Policy {
            audiences: vec!["https://svc.example".into(), "https://svc.example/api/".into()],
            clock_skew_secs: 60,
            max_assertion_lifetime_secs: 3600,
            logout_lifetime_without_exp_secs: 300,
        }
    }

    fn signed(key: &SigningKey, header: serde_json::Value, claims: serde_json::Value) -> String {
        key.sign(&header, &claims)
    }

    fn check(key: &SigningKey, header: serde_json::Value, claims: serde_json::Value) -> Result<Verified, Rejection> {
        let jwks = Jwks::parse(json!({ "keys": [key.public_jwk()] }).to_string().as_bytes()).unwrap();
        let token = signed(key, header, claims);
        verify(parse(&token, TokenKind::IdJag)?, &jwks, &policy(), NOW)
    }

    fn claims() -> serde_json::Value {
        authmd_dev::id_jag_claims("https://p.example", "alice", "https://svc.example", NOW.secs())
    }

    #[test]
    fn typ_is_explicit_case_insensitive_and_may_carry_application() {
        let key = SigningKey::generate(SigningAlg::Es256, "k");
        for typ in ["oauth-id-jag+jwt", "OAuth-ID-JAG+JWT", "application/oauth-id-jag+jwt"] {
            assert!(check(&key, json!({ "typ": typ }), claims()).is_ok(), "{typ}");
        }
        for typ in [json!("JWT"), json!("logout+jwt"), json!(1), json!("application/jwt")] {
            let err = check(&key, json!({ "typ": typ }), claims()).unwrap_err();
            assert!(matches!(err, Rejection::TypMismatch { .. }), "{typ}: {err:?}");
        }
        assert_eq!(check(&key, json!({}), claims()).unwrap_err(), Rejection::TypMissing);
    }

    #[test]
    fn every_forbidden_header_is_refused_even_when_the_signature_is_good() {
        let key = SigningKey::generate(SigningAlg::Es256, "k");
        for name in ["crit", "cty", "zip", "b64", "jwk", "jku", "x5u", "x5c"] {
            let mut header = authmd_dev::id_jag_header();
            header[name] = json!(if name == "crit" { json!(["exp"]) } else { json!("x") });
            let err = check(&key, header, claims()).unwrap_err();
            assert_eq!(err, Rejection::ForbiddenHeader(name));
            assert_eq!(err.code(), "invalid_request");
        }
    }

    #[test]
    fn an_rsa_key_never_verifies_an_ecdsa_token_and_a_kid_is_never_guessed() {
        let ec = SigningKey::generate(SigningAlg::Es256, "shared");
        let mut rsa_jwk = ec.public_jwk();
        rsa_jwk["kty"] = json!("RSA");
        let jwks = Jwks::parse(json!({ "keys": [rsa_jwk] }).to_string().as_bytes()).unwrap();
        let token = signed(&ec, authmd_dev::id_jag_header(), claims());
        let err = verify(parse(&token, TokenKind::IdJag).unwrap(), &jwks, &policy(), NOW).unwrap_err();
        assert_eq!(err.code(), "invalid_signature");

        let other = SigningKey::generate(SigningAlg::Es256, "shared");
        let jwks = Jwks::parse(
            json!({ "keys": [ec.public_jwk(), other.public_jwk()] })
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let err = verify(parse(&token, TokenKind::IdJag).unwrap(), &jwks, &policy(), NOW).unwrap_err();
        assert_eq!(err, Rejection::KidAmbiguous);
    }

    #[test]
    fn time_rules_use_the_injected_clock_and_skew() {
        let key = SigningKey::generate(SigningAlg::EdDsa, "k");
        let header = authmd_dev::id_jag_header();
        // The claims as the provider writes them: raw NumericDates.
        let now = NOW.secs();
        let with = |iat: i64, exp: i64| {
            let mut c = claims();
            c["iat"] = json!(iat);
            c["exp"] = json!(exp);
            check(&key, header.clone(), c)
        };
        assert!(with(now - 100, now - 59).is_ok(), "exp within skew");
        assert_eq!(
            with(now - 100, now - 61).unwrap_err(),
            Rejection::ExpiredBy { secs: 61 }
        );
        assert!(with(now + 60, now + 300).is_ok(), "iat within skew");
        assert_eq!(
            with(now + 61, now + 300).unwrap_err(),
            Rejection::IssuedInFuture { secs: 61 }
        );
        assert!(matches!(
            with(now, now + 3601).unwrap_err(),
            Rejection::LifetimeTooLong { .. }
        ));
        let mut c = claims();
        c["nbf"] = json!(now + 120);
        assert!(matches!(
            check(&key, header.clone(), c).unwrap_err(),
            Rejection::NotYetValid { .. }
        ));
        let mut c = claims();
        c["iat"] = json!(-5);
        assert_eq!(check(&key, header, c).unwrap_err(), Rejection::ClaimWrongType("iat"));
    }

    #[test]
    fn oversized_tokens_are_refused_before_decoding() {
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            parse(&huge, TokenKind::IdJag).unwrap_err(),
            Rejection::TooLarge {
                bytes: MAX_TOKEN_BYTES + 1
            }
        );
    }

    #[test]
    fn logout_tokens_need_the_revoked_event_and_no_nonce() {
        let key = SigningKey::generate(SigningAlg::Es256, "k");
        let jwks = Jwks::parse(json!({ "keys": [key.public_jwk()] }).to_string().as_bytes()).unwrap();
        let run = |claims: serde_json::Value| {
            let token = key.sign(&authmd_dev::logout_header(), &claims);
            verify(parse(&token, TokenKind::Logout)?, &jwks, &policy(), NOW)
        };
        let good = authmd_dev::logout_claims("https://p.example", "alice", "https://svc.example/api", NOW.secs());
        let verified = run(good.clone()).unwrap();
        assert_eq!(
            verified.claims().exp,
            NOW + Duration::from_secs(300),
            "no exp: iat + 300"
        );
        let mut c = good.clone();
        c["nonce"] = json!("n");
        assert_eq!(run(c).unwrap_err(), Rejection::LogoutNonce);
        let mut c = good.clone();
        c["events"] = json!({ REVOKED_EVENT: "yes" });
        assert_eq!(run(c).unwrap_err(), Rejection::LogoutEventMissing);
        let mut c = good;
        c["iat"] = json!(NOW.secs() - 400);
        assert!(matches!(run(c).unwrap_err(), Rejection::ExpiredBy { .. }));
    }
}
