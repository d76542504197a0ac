//! JOSE for authmd, on `ring` alone: compact JWS parsing, the header and key
//! rules of SPEC.md 4.1, signature verification, and the claim rules of 4.2
//! (ID-JAGs) and 6 (logout tokens), with time passed in.
//!
//! ```text
//!  parse(token, kind)  ─▶ Unverified   size, shape, base64url, JSON without
//!                                      duplicates, typ, alg allowlist,
//!                                      forbidden headers; nothing trusted
//!  verify(u, jwks, policy, now) ─▶ Verified   key selection, signature,
//!                                      then claims
//! ```
//!
//! Not here: the trust list, fetching keys, replay protection, provider
//! revocations, scope narrowing, client-id metadata documents: the caller
//! (`core::verify`) does those with the database and the network. Refusals
//! are precise ([`Rejection`]) and fold into SPEC.md codes in one place,
//! [`Rejection::code`].

pub(crate) mod b64;
mod claims;
pub mod json;
mod jwk;
mod jws;
pub mod sign;
#[cfg(test)]
mod vector_tests;

pub use claims::{Claims, Policy, REVOKED_EVENT, Verified, parse, verify};
pub use jwk::{Jwks, Material};

use std::fmt;

/// The algorithms authmd accepts (SPEC.md 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Es384,
    Rs256,
    Ps256,
    /// `EdDSA`, or its RFC 9864 name `Ed25519`: Ed25519 signatures.
    EdDsa,
}

impl Alg {
    /// Exact, case-sensitive names (RFC 7515: `alg` is case-sensitive).
    pub fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "RS256" => Alg::Rs256,
            "PS256" => Alg::Ps256,
            "EdDSA" | "Ed25519" => Alg::EdDsa,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// What the token claims to be; `typ` must say so explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `typ: oauth-id-jag+jwt`
    IdJag,
    /// `typ: logout+jwt`
    Logout,
    /// An assertion authmd signed itself (SPEC-v0.7 5): `typ` as an ID-JAG,
    /// but no `client_id` and no verified contact required (an unclaimed
    /// registration has no person yet).
    Service,
    /// `typ: secevent+jwt`: a Security Event Token pushed by a provider
    /// (RFC 8417, SPEC-v0.7 11); `exp` optional, `events` a non-empty object.
    SecEvent,
}

impl TokenKind {
    fn typ(self) -> &'static str {
        match self {
            TokenKind::IdJag | TokenKind::Service => "oauth-id-jag+jwt",
            TokenKind::Logout => "logout+jwt",
            TokenKind::SecEvent => "secevent+jwt",
        }
    }
}

/// Why a token was refused, precisely. Never carries token bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    TooLarge {
        bytes: usize,
    },
    /// Not three dot-separated parts.
    NotCompact,
    BadBase64 {
        part: &'static str,
    },
    NotJson {
        part: &'static str,
        why: String,
    },
    DuplicateMember {
        part: &'static str,
        name: String,
    },
    TypMissing,
    TypMismatch {
        expected: &'static str,
    },
    AlgMissing,
    AlgNotAllowed(String),
    ForbiddenHeader(&'static str),
    KidNotString,
    KidTooLong {
        bytes: usize,
    },
    /// No published key has the token's `kid`.
    KidUnknown,
    /// Two published keys share the token's `kid`.
    KidAmbiguous,
    /// No `kid`, and more than one published key fits.
    KidNeeded,
    /// No `kid`, and no published key fits.
    NoFittingKey,
    KeyUnusable(&'static str),
    KeyTypeMismatch {
        alg: &'static str,
    },
    KeyAlgMismatch {
        alg: &'static str,
    },
    SignatureInvalid,
    JwksInvalid(&'static str),
    MissingClaim(&'static str),
    ClaimWrongType(&'static str),
    MissingClientId,
    AudienceMismatch,
    AudienceNotSingle,
    ExpiredBy {
        secs: u64,
    },
    IssuedInFuture {
        secs: u64,
    },
    NotYetValid {
        secs: u64,
    },
    LifetimeTooLong {
        secs: u64,
        max: u64,
    },
    NoVerifiedContact,
    /// The only verified contact is a phone number not in E.164 (the reason).
    PhoneNumberNotE164(String),
    ConfirmationClaim,
    LogoutNonce,
    LogoutEventMissing,
    /// A Security Event Token whose `events` is missing, empty or not an object.
    SetEventsMissing,
}

impl Rejection {
    /// The SPEC.md section 4 code this refusal answers with: the one fold
    /// from precise reasons to the wire.
    pub fn code(&self) -> &'static str {
        use Rejection::*;
        match self {
            KidUnknown
            | KidAmbiguous
            | KidNeeded
            | NoFittingKey
            | KeyUnusable(_)
            | KeyTypeMismatch { .. }
            | KeyAlgMismatch { .. }
            | SignatureInvalid
            | JwksInvalid(_) => "invalid_signature",
            MissingClientId => "invalid_client_id",
            AudienceMismatch | AudienceNotSingle => "invalid_audience",
            ExpiredBy { .. } => "expired",
            NoVerifiedContact => "missing_verified_email",
            TooLarge { .. }
            | NotCompact
            | BadBase64 { .. }
            | NotJson { .. }
            | DuplicateMember { .. }
            | TypMissing
            | TypMismatch { .. }
            | AlgMissing
            | AlgNotAllowed(_)
            | ForbiddenHeader(_)
            | KidNotString
            | KidTooLong { .. }
            | MissingClaim(_)
            | ClaimWrongType(_)
            | IssuedInFuture { .. }
            | NotYetValid { .. }
            | LifetimeTooLong { .. }
            | PhoneNumberNotE164(_)
            | ConfirmationClaim
            | LogoutNonce
            | LogoutEventMissing
            | SetEventsMissing => "invalid_request",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Rejection::*;
        match self {
            TooLarge { bytes } => write!(
                f,
                "the token is {bytes} bytes; the limit is {}",
                claims::MAX_TOKEN_BYTES
            ),
            NotCompact => f.write_str("not a compact JWS (three base64url parts separated by dots)"),
            BadBase64 { part } => write!(f, "the {part} is not canonical unpadded base64url"),
            NotJson { part, why } => write!(f, "the {part} is not a JSON object ({why})"),
            DuplicateMember { part, name } => write!(f, "the {part} repeats the member {name}"),
            TypMissing => f.write_str("the header has no `typ`"),
            TypMismatch { expected } => write!(f, "the header `typ` must be `{expected}`"),
            AlgMissing => f.write_str("the header has no `alg`"),
            AlgNotAllowed(alg) => {
                let shown: String = alg.chars().filter(|c| !c.is_control()).take(20).collect();
                write!(
                    f,
                    "`alg` {shown:?} is not accepted (ES256, ES384, RS256, PS256, EdDSA, Ed25519)"
                )
            }
            ForbiddenHeader(name) => write!(f, "the header member `{name}` is not accepted"),
            KidNotString => f.write_str("the header `kid` must be a string"),
            KidTooLong { bytes } => write!(f, "the header `kid` is {bytes} bytes; the limit is 256"),
            KidUnknown => f.write_str("no published key has the token's `kid`"),
            KidAmbiguous => f.write_str("two published keys share the token's `kid`"),
            KidNeeded => f.write_str("the token has no `kid` and several published keys fit"),
            NoFittingKey => f.write_str("no published key fits the token's `alg`"),
            KeyUnusable(why) => write!(f, "the key named by `kid` is unusable: {why}"),
            KeyTypeMismatch { alg } => write!(f, "the key named by `kid` cannot verify {alg}"),
            KeyAlgMismatch { alg } => write!(f, "the key named by `kid` states another `alg` than {alg}"),
            SignatureInvalid => f.write_str("the signature does not verify"),
            JwksInvalid(why) => write!(f, "the provider's JWKS is unusable: {why}"),
            MissingClaim(name) => write!(f, "the claim `{name}` is missing"),
            ClaimWrongType(name) => write!(f, "the claim `{name}` has the wrong JSON type or value"),
            MissingClientId => f.write_str("the claim `client_id` is missing"),
            AudienceMismatch => f.write_str("`aud` does not name this service"),
            AudienceNotSingle => f.write_str("`aud` must name exactly one audience, this service"),
            ExpiredBy { secs } => write!(f, "the token expired {secs} s ago"),
            IssuedInFuture { secs } => write!(f, "`iat` is {secs} s in the future"),
            NotYetValid { secs } => write!(f, "`nbf` is {secs} s in the future"),
            LifetimeTooLong { secs, max } => write!(f, "`exp` - `iat` is {secs} s; the maximum is {max} s"),
            NoVerifiedContact => f.write_str("neither `email_verified` nor `phone_number_verified` is true"),
            PhoneNumberNotE164(why) => write!(f, "{why}; the verified phone number cannot identify a user"),
            ConfirmationClaim => {
                f.write_str("a `cnf` claim asks for proof of possession, which this service does not do")
            }
            LogoutNonce => f.write_str("a logout token must not carry `nonce`"),
            LogoutEventMissing => write!(
                f,
                "`events` must hold the member `{}` with an object value",
                claims::REVOKED_EVENT
            ),
            SetEventsMissing => f.write_str("`events` must be a non-empty JSON object"),
        }
    }
}
