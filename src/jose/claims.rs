//! Tokens as a whole: [`parse`] (everything checkable without a key) and
//! [`verify`] (key, signature, then the claim rules of SPEC.md 4.2 for
//! ID-JAGs and 6 for logout tokens), with `now` passed in.

use serde_json::{Map, Value};

use super::jws::{self, Compact};
use super::{Alg, Jwks, Rejection, TokenKind};

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
    pub iat: i64,
    /// For a logout token without `exp`: `iat` + the policy's lifetime.
    pub exp: i64,
    pub nbf: Option<i64>,
    pub scope: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub phone_number: Option<String>,
    pub phone_number_verified: bool,
    pub name: Option<String>,
    pub agent_platform: Option<String>,
    pub agent_context_id: Option<String>,
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
pub fn verify(token: Unverified, jwks: &Jwks, policy: &Policy, now_secs: i64) -> Result<Verified, Rejection> {
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
fn time(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        {
            Some(secs) if secs >= 0 && n.as_f64().is_some_and(|f| f >= 0.0) => Ok(Some(secs)),
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

fn check_claims(claims: &Map<String, Value>, kind: TokenKind, policy: &Policy, now: i64) -> Result<Claims, Rejection> {
    let iss = required_string(claims, "iss")?;
    let sub = required_string(claims, "sub")?;
    let jti = required_string(claims, "jti")?;
    let aud = check_audience(claims, policy)?;
    let client_id = match (kind, claims.get("client_id")) {
        (_, Some(Value::String(id))) if !id.is_empty() => Some(id.clone()),
        (TokenKind::IdJag, _) => return Err(Rejection::MissingClientId),
        (TokenKind::Logout, _) => None,
    };
    let iat = time(claims, "iat")?.ok_or(Rejection::MissingClaim("iat"))?;
    let exp = match (time(claims, "exp")?, kind) {
        (Some(exp), _) => exp,
        (None, TokenKind::Logout) => iat.saturating_add(policy.logout_lifetime_without_exp_secs as i64),
        (None, TokenKind::IdJag) => return Err(Rejection::MissingClaim("exp")),
    };
    let nbf = time(claims, "nbf")?;
    let skew = policy.clock_skew_secs as i64;
    if exp < now - skew {
        return Err(Rejection::ExpiredBy { secs: now - exp });
    }
    if iat > now + skew {
        return Err(Rejection::IssuedInFuture { secs: iat - now });
    }
    if let Some(nbf) = nbf
        && nbf > now + skew
    {
        return Err(Rejection::NotYetValid { secs: nbf - now });
    }
    if exp - iat > policy.max_assertion_lifetime_secs as i64 {
        return Err(Rejection::LifetimeTooLong {
            secs: exp - iat,
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
    match kind {
        TokenKind::IdJag if !email_verified && !phone_number_verified => return Err(Rejection::NoVerifiedContact),
        TokenKind::IdJag => {}
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
        phone_number: optional_string(claims, "phone_number"),
        phone_number_verified,
        name: optional_string(claims, "name"),
        agent_platform: optional_string(claims, "agent_platform"),
        agent_context_id: optional_string(claims, "agent_context_id"),
    })
}
