//! The one error type of the request path. How each looks on the wire is
//! each generation's: `proto::v0_1::wire` (SPEC.md section 10) maps every
//! variant to its status and code in one `match`.
//!
//! Variants carry the facts a person needs ("member `type` must be a string",
//! "body is 70000 bytes, the limit is 65536") and never a secret: no
//! credential, token, code or assertion is ever put in an `Error`.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// 400 `invalid_request`: a malformed request; the message names the member.
    InvalidRequest(String),
    /// 400 `unsupported_credential_type`.
    UnsupportedCredentialType(String),
    /// 400: the operator turned the anonymous flow off.
    AnonymousNotEnabled,
    /// 400: the operator turned verified-email registration off.
    VerifiedEmailNotEnabled,
    /// 400: ID-JAG registration is off altogether.
    IssuerNotEnabled,
    /// 400: the JWS verifier refused the assertion; the precise reason is
    /// kept for logs, [`crate::jose::Rejection::code`] folds it for the wire.
    Assertion(crate::jose::Rejection),
    /// 400 `invalid_issuer`: `iss` missing or not on the trust list.
    InvalidIssuer(String),
    /// 400 `invalid_signature`: the issuer's keys could not be fetched. The
    /// detail (URI, network error) is logged, never sent.
    KeysUnavailable(String),
    /// 400 `replay_detected`: this `(iss, jti)` was used before.
    ReplayDetected,
    /// 400 `invalid_client_id`.
    InvalidClientId(String),
    /// 400 `invalid_client_id`: the Client ID Metadata Document could not be
    /// fetched or read. The detail (address, network error) is logged, never sent.
    ClientIdUnverifiable(String),
    /// 400 `invalid_scope`: nothing left after narrowing.
    InvalidScope(String),
    /// 400 `user_not_provisioned`: no such user and JIT provisioning is off.
    UserNotProvisioned,
    /// 400 `expired`: the provider revoked the delegation after this assertion was issued.
    AssertionRevoked,
    /// 401 `invalid_claim_token`.
    InvalidClaimToken,
    /// 409 `claimed_or_in_flight`: claimed already, or pending for another email.
    ClaimedOrInFlight(&'static str),
    /// 410 `claim_expired`: the registration or its link can no longer be claimed.
    ClaimExpired(&'static str),
    /// 410 `claim_superseded`: unknown or replaced claim link.
    ClaimSuperseded,
    /// 409 `claim_completed`: the link's claim is done.
    ClaimCompleted,
    /// 401 `otp_invalid`.
    OtpInvalid { remaining: i64 },
    /// 400 `otp_not_generated`: nobody pressed the button yet.
    OtpNotGenerated,
    /// 410 `otp_expired`: expired, or burned by too many wrong guesses.
    OtpExpired(&'static str),
    /// 409 `previously_claimed`.
    PreviouslyClaimed,
    /// 401 `invalid_token` on the guarded API. `presented` says whether a token
    /// came with the request (RFC 6750: only then does the challenge carry an error).
    InvalidToken { presented: bool, reason: &'static str },
    /// 403 `insufficient_scope`: a valid credential without `scope`.
    InsufficientScope { scope: String },
    /// 404 `not_found`.
    NotFound,
    /// 405 `method_not_allowed`; `allow` is the `Allow` header value.
    MethodNotAllowed { allow: &'static str },
    /// 413 `request_too_large`.
    RequestTooLarge { limit_bytes: usize },
    /// 415 `unsupported_media_type`; carries what was sent (sanitised: no
    /// spaces), for a body that is not JSON followed by a hint in
    /// parentheses naming what to send.
    UnsupportedMediaType(String),
    /// 502 `upstream_unavailable`: the gateway's upstream refused or broke.
    UpstreamUnavailable(String),
    /// 504 `upstream_timeout`.
    UpstreamTimeout,
    /// 401 `unauthorized`: introspection without the right secret.
    Unauthorized,
    /// 400 `unsupported_grant_type` (RFC 6749 5.2): the token endpoint takes
    /// only the jwt-bearer grant (SPEC-v0.7 8).
    UnsupportedGrantType,
    /// 400 `invalid_grant`: the assertion was refused, or its registration
    /// is over or not claimed; the reason is for the log and the message.
    InvalidGrant(&'static str),
    /// 400 `invalid_target` (RFC 8707): `resource` is not this API.
    InvalidTarget,
    /// 400 `service_auth_not_enabled` (SPEC-v0.7 4.5).
    ServiceAuthNotEnabled,
    /// 400 `invalid_login_hint` (SPEC-v0.7 4.2, 6.1).
    InvalidLoginHint,
    /// 409 `already_claimed` (SPEC-v0.7 6.1, 6.4).
    AlreadyClaimed,
    /// 400 `invalid_claim` (SPEC-v0.7 6.4): the claim token is unknown.
    InvalidClaim,
    /// 409 `claim_not_confirmed`: the person has not confirmed on the page yet.
    ClaimNotConfirmed,
    /// 410 `user_code_expired`: the code (or an unconfirmed link) expired or burned.
    UserCodeExpired(&'static str),
    /// 401 `invalid_user_code`: a wrong code; `remaining` tries on it.
    InvalidUserCode { remaining: i64 },
    /// 400 `invalid_refresh_token` (SPEC-v0.7 4.4, 9).
    InvalidRefreshToken,
    /// 401 `login_required` (SPEC-v0.7 4.3): the ID-JAG's `auth_time` is
    /// missing, too old or in the future; the agent re-authenticates the user
    /// at its provider. `max_age_secs` is `id_jag_max_auth_age_secs`.
    LoginRequired { why: &'static str, max_age_secs: u64 },
    /// 429 `rate_limited`, with `Retry-After`.
    RateLimited { retry_after_secs: u64, flow: &'static str },
    /// 400 `invalid_request`, 408, 414, 417, 431: the HTTP edge
    /// refused the request before it was routed (framing, deadlines, sizes).
    Edge(Edge),
    /// 503 `service_unavailable`, with `Retry-After`: the database cannot
    /// take writes (its file was deleted or replaced under the server), or
    /// enough requests already wait for a provider's keys being fetched.
    Unavailable(String),
    /// 503 `temporarily_unavailable` (RFC 6749 4.1.2.1's code), with
    /// `Retry-After`: the database cannot answer now (PostgreSQL unreachable,
    /// restarting, paused, out of connections or past a timeout; a SQLite
    /// file deleted under the server). The detail is logged, never sent.
    DatabaseUnavailable(String),
    /// 500 `server_error`: a bug or a broken database. The detail is logged
    /// with the request id and never sent.
    Internal(String),
}

/// Why the HTTP edge refused a request; the sentence names the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edge {
    Malformed(&'static str),
    Timeout,
    UriTooLong,
    ExpectationFailed,
    HeadersTooLarge(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidRequest(why) => f.write_str(why),
            Error::UnsupportedCredentialType(why) => f.write_str(why),
            Error::AnonymousNotEnabled => f.write_str("anonymous registration is not enabled on this service"),
            Error::VerifiedEmailNotEnabled => f.write_str("verified-email registration is not enabled on this service"),
            Error::IssuerNotEnabled => f.write_str("ID-JAG registration is not enabled on this service"),
            Error::Assertion(rejection) => write!(f, "the assertion was refused: {rejection}"),
            Error::InvalidIssuer(why) => f.write_str(why),
            Error::KeysUnavailable(_) => {
                f.write_str("the signing keys of this issuer could not be fetched; try again later")
            }
            Error::ReplayDetected => {
                f.write_str("this assertion was already used (same iss and jti); get a fresh one from your provider")
            }
            Error::InvalidClientId(why) => f.write_str(why),
            Error::ClientIdUnverifiable(_) => {
                f.write_str("the Client ID Metadata Document named by `client_id` could not be fetched or read")
            }
            Error::InvalidScope(why) => f.write_str(why),
            Error::UserNotProvisioned => {
                f.write_str("the asserted user has no account on this service and just-in-time provisioning is off")
            }
            Error::AssertionRevoked => f.write_str(
                "the provider revoked this delegation after the assertion was issued; get a fresh assertion",
            ),
            Error::InvalidClaimToken => f.write_str("the claim token is not valid"),
            Error::ClaimedOrInFlight(why) => f.write_str(why),
            Error::ClaimExpired(why) => f.write_str(why),
            Error::ClaimSuperseded => f.write_str("this claim link is unknown or was replaced by a newer one"),
            Error::ClaimCompleted => f.write_str("this claim was already completed"),
            Error::OtpInvalid { remaining } => {
                write!(
                    f,
                    "the code is wrong; {remaining} more wrong codes burn it (the user then opens the link again)"
                )
            }
            Error::OtpNotGenerated => {
                f.write_str("no code yet: the user must open the emailed link and press the button")
            }
            Error::OtpExpired(why) => f.write_str(why),
            Error::PreviouslyClaimed => f.write_str("this registration was already claimed"),
            Error::InvalidToken { presented: false, .. } => {
                f.write_str("this API needs a bearer credential: send Authorization: Bearer <credential>")
            }
            Error::InvalidToken { reason, .. } => write!(f, "the bearer credential is not valid: {reason}"),
            Error::InsufficientScope { scope } => write!(f, "the credential lacks the scope `{scope}`"),
            Error::NotFound => f.write_str("no such path"),
            Error::MethodNotAllowed { allow } => write!(f, "this path answers only {allow}"),
            Error::RequestTooLarge { limit_bytes } => {
                write!(f, "the request body is larger than the limit of {limit_bytes} bytes")
            }
            // A body the endpoint takes as something else than JSON (a
            // logout token, a form) carries its own "(send ...)" hint; the
            // sanitised type alone has no space, so the hint is unambiguous.
            // Issue 15: this read "must be application/json, not
            // application/json (send application/logout+jwt)".
            Error::UnsupportedMediaType(sent) if sent.contains(" (") => {
                write!(f, "the body's Content-Type is not accepted here: {sent}")
            }
            Error::UnsupportedMediaType(sent) => {
                write!(f, "the body must be application/json, not {sent}")
            }
            // Which upstream and why stays in the log (`Response::reason`).
            Error::UpstreamUnavailable(_) => f.write_str("the API behind this gateway is unavailable; retry later"),
            Error::UpstreamTimeout => f.write_str("the API behind this gateway did not answer in time; retry later"),
            Error::Unauthorized => f.write_str("introspection needs Authorization: Bearer <introspection secret>"),
            Error::UnsupportedGrantType => {
                f.write_str("`grant_type` must be urn:ietf:params:oauth:grant-type:jwt-bearer")
            }
            Error::InvalidGrant(why) => write!(f, "the assertion was refused: {why}"),
            Error::InvalidTarget => f.write_str("`resource` must be this service's API, given once"),
            Error::ServiceAuthNotEnabled => f.write_str("service_auth registration is not enabled on this service"),
            Error::InvalidLoginHint => {
                f.write_str("login_hint must be a recognizable identifier (e.g. an email address).")
            }
            Error::AlreadyClaimed => f.write_str("this registration was already claimed"),
            Error::InvalidClaim => f.write_str("the claim token is not known here"),
            Error::ClaimNotConfirmed => f.write_str("the person has not confirmed on the page yet; wait and retry"),
            Error::UserCodeExpired(why) => write!(f, "{why}; ask for a new link at the claim URL"),
            Error::InvalidRefreshToken => f.write_str("The refresh token is invalid, expired, or already used."),
            Error::InvalidUserCode { remaining } => {
                write!(f, "the code is wrong; {remaining} tries left on it")
            }
            Error::LoginRequired { why, max_age_secs } => write!(
                f,
                "{why}: the user must sign in at the provider again (at most {max_age_secs} s before the ID-JAG)"
            ),
            Error::RateLimited { retry_after_secs, flow } => {
                write!(f, "too many {flow} requests; try again in {retry_after_secs} s")
            }
            Error::Edge(edge) => f.write_str(match edge {
                Edge::Malformed(why) | Edge::HeadersTooLarge(why) => why,
                Edge::Timeout => "the request did not arrive in time; the connection is closed",
                Edge::UriTooLong => "the request line is longer than 8 KiB",
                Edge::ExpectationFailed => "only `Expect: 100-continue` is supported",
            }),
            // Which file and what happened stays in the log.
            Error::Unavailable(_) => f.write_str("the service cannot answer this right now; retry in a moment"),
            Error::DatabaseUnavailable(_) => {
                f.write_str("the database cannot answer right now; retry after the seconds in Retry-After")
            }
            // The detail stays in the log; the wire gets only the request id.
            Error::Internal(_) => f.write_str("internal error"),
        }
    }
}

/// The one place a store error becomes an answer: unavailable is a 503
/// `temporarily_unavailable` with `Retry-After`, anything else an internal error whose detail stays
/// in the log.
impl From<crate::store::Error> for Error {
    fn from(err: crate::store::Error) -> Error {
        match err {
            crate::store::Error::Unavailable(why) => Error::DatabaseUnavailable(why),
            crate::store::Error::Failed(why) => Error::Internal(format!("database: {why}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod examples {
    use super::*;
    use crate::jose::Rejection;

    /// One value per variant of an enum, each listed with the pattern it
    /// matches. The patterns form a `match` without a wildcard, so a new
    /// variant does not compile until it has an example here (issue 11).
    macro_rules! one_of_each {
        ($ty:ty; $($pattern:pat => $example:expr),* $(,)?) => {{
            fn exhaustive(value: &$ty) {
                match value {
                    $($pattern => {})*
                }
            }
            let examples: Vec<$ty> = vec![$($example),*];
            examples.iter().for_each(exhaustive);
            $(assert!(matches!($example, $pattern), "{:?} is listed under another pattern", $example);)*
            examples
        }};
    }

    /// Every verifier refusal (`proto::v0_1::error` checks their codes).
    pub fn every_rejection() -> Vec<Rejection> {
        use Rejection::*;
        one_of_each![Rejection;
            TooLarge { .. } => TooLarge { bytes: 1 },
            NotCompact => NotCompact,
            BadBase64 { .. } => BadBase64 { part: "header" },
            NotJson { .. } => NotJson { part: "header", why: String::new() },
            DuplicateMember { .. } => DuplicateMember { part: "header", name: String::new() },
            TypMissing => TypMissing,
            TypMismatch { .. } => TypMismatch { expected: "" },
            AlgMissing => AlgMissing,
            AlgNotAllowed(_) => AlgNotAllowed(String::new()),
            ForbiddenHeader(_) => ForbiddenHeader("jku"),
            KidNotString => KidNotString,
            KidTooLong { .. } => KidTooLong { bytes: 1 },
            KidUnknown => KidUnknown,
            KidAmbiguous => KidAmbiguous,
            KidNeeded => KidNeeded,
            NoFittingKey => NoFittingKey,
            KeyUnusable(_) => KeyUnusable(""),
            KeyTypeMismatch { .. } => KeyTypeMismatch { alg: "ES256" },
            KeyAlgMismatch { .. } => KeyAlgMismatch { alg: "ES256" },
            SignatureInvalid => SignatureInvalid,
            JwksInvalid(_) => JwksInvalid(""),
            MissingClaim(_) => MissingClaim("iat"),
            ClaimWrongType(_) => ClaimWrongType("iat"),
            MissingClientId => MissingClientId,
            AudienceMismatch => AudienceMismatch,
            AudienceNotSingle => AudienceNotSingle,
            ExpiredBy { .. } => ExpiredBy { secs: 1 },
            IssuedInFuture { .. } => IssuedInFuture { secs: 1 },
            NotYetValid { .. } => NotYetValid { secs: 1 },
            LifetimeTooLong { .. } => LifetimeTooLong { secs: 1, max: 1 },
            NoVerifiedContact => NoVerifiedContact,
            PhoneNumberNotE164(_) => PhoneNumberNotE164(String::new()),
            ConfirmationClaim => ConfirmationClaim,
            LogoutNonce => LogoutNonce,
            LogoutEventMissing => LogoutEventMissing,
            SetEventsMissing => SetEventsMissing,
        ]
    }

    /// Every error, every refusal of the verifier included.
    pub fn every_error() -> Vec<Error> {
        let mut all = one_of_each![Error;
            Error::InvalidRequest(_) => Error::InvalidRequest(String::new()),
            Error::UnsupportedCredentialType(_) => Error::UnsupportedCredentialType(String::new()),
            Error::AnonymousNotEnabled => Error::AnonymousNotEnabled,
            Error::VerifiedEmailNotEnabled => Error::VerifiedEmailNotEnabled,
            Error::IssuerNotEnabled => Error::IssuerNotEnabled,
            // The other refusals of the verifier are added below.
            Error::Assertion(_) => Error::Assertion(Rejection::NotCompact),
            Error::InvalidIssuer(_) => Error::InvalidIssuer(String::new()),
            Error::KeysUnavailable(_) => Error::KeysUnavailable(String::new()),
            Error::ReplayDetected => Error::ReplayDetected,
            Error::InvalidClientId(_) => Error::InvalidClientId(String::new()),
            Error::ClientIdUnverifiable(_) => Error::ClientIdUnverifiable(String::new()),
            Error::InvalidScope(_) => Error::InvalidScope(String::new()),
            Error::UserNotProvisioned => Error::UserNotProvisioned,
            Error::AssertionRevoked => Error::AssertionRevoked,
            Error::InvalidClaimToken => Error::InvalidClaimToken,
            Error::ClaimedOrInFlight(_) => Error::ClaimedOrInFlight(""),
            Error::ClaimExpired(_) => Error::ClaimExpired(""),
            Error::ClaimSuperseded => Error::ClaimSuperseded,
            Error::ClaimCompleted => Error::ClaimCompleted,
            Error::OtpInvalid { .. } => Error::OtpInvalid { remaining: 1 },
            Error::OtpNotGenerated => Error::OtpNotGenerated,
            Error::OtpExpired(_) => Error::OtpExpired(""),
            Error::PreviouslyClaimed => Error::PreviouslyClaimed,
            Error::InvalidToken { presented: true, .. } => Error::InvalidToken { presented: true, reason: "" },
            Error::InvalidToken { presented: false, .. } => Error::InvalidToken { presented: false, reason: "" },
            Error::InsufficientScope { .. } => Error::InsufficientScope { scope: String::new() },
            Error::NotFound => Error::NotFound,
            Error::MethodNotAllowed { .. } => Error::MethodNotAllowed { allow: "GET" },
            Error::RequestTooLarge { .. } => Error::RequestTooLarge { limit_bytes: 1 },
            Error::UnsupportedMediaType(_) => Error::UnsupportedMediaType(String::new()),
            Error::UpstreamUnavailable(_) => Error::UpstreamUnavailable(String::new()),
            Error::UpstreamTimeout => Error::UpstreamTimeout,
            Error::Unauthorized => Error::Unauthorized,
            Error::UnsupportedGrantType => Error::UnsupportedGrantType,
            Error::InvalidGrant(_) => Error::InvalidGrant(""),
            Error::InvalidTarget => Error::InvalidTarget,
            Error::LoginRequired { .. } => Error::LoginRequired { why: "", max_age_secs: 1 },
            Error::ServiceAuthNotEnabled => Error::ServiceAuthNotEnabled,
            Error::InvalidLoginHint => Error::InvalidLoginHint,
            Error::AlreadyClaimed => Error::AlreadyClaimed,
            Error::InvalidClaim => Error::InvalidClaim,
            Error::ClaimNotConfirmed => Error::ClaimNotConfirmed,
            Error::UserCodeExpired(_) => Error::UserCodeExpired(""),
            Error::InvalidUserCode { .. } => Error::InvalidUserCode { remaining: 1 },
            Error::InvalidRefreshToken => Error::InvalidRefreshToken,
            Error::RateLimited { .. } => Error::RateLimited { retry_after_secs: 1, flow: "claim" },
            Error::Edge(Edge::Malformed(_)) => Error::Edge(Edge::Malformed("")),
            Error::Edge(Edge::Timeout) => Error::Edge(Edge::Timeout),
            Error::Edge(Edge::UriTooLong) => Error::Edge(Edge::UriTooLong),
            Error::Edge(Edge::ExpectationFailed) => Error::Edge(Edge::ExpectationFailed),
            Error::Edge(Edge::HeadersTooLarge(_)) => Error::Edge(Edge::HeadersTooLarge("")),
            Error::Unavailable(_) => Error::Unavailable(String::new()),
            Error::DatabaseUnavailable(_) => Error::DatabaseUnavailable(String::new()),
            Error::Internal(_) => Error::Internal(String::new()),
        ];
        all.extend(every_rejection().into_iter().map(Error::Assertion));
        all
    }

    #[test]
    fn internal_detail_never_reaches_the_message() {
        let err = Error::Internal("database: disk I/O error at /secret/path".into());
        assert_eq!(err.to_string(), "internal error");
    }

    /// Issue 15: a JSON body sent where a logout token or a form belongs
    /// read "must be application/json, not application/json (send ...)".
    #[test]
    fn a_media_type_message_names_what_the_endpoint_takes() {
        let jwt = Error::UnsupportedMediaType("application/json (send application/logout+jwt)".into()).to_string();
        assert!(!jwt.contains("must be application/json"), "{jwt}");
        assert!(jwt.contains("send application/logout+jwt"), "{jwt}");
        let json = Error::UnsupportedMediaType("text/plain".into()).to_string();
        assert_eq!(json, "the body must be application/json, not text/plain");
    }

    /// Issue 10: where authmd fetched from and how it failed stays in the log.
    #[test]
    fn fetch_details_never_reach_the_message() {
        for err in [
            Error::KeysUnavailable("keys of `https://p` from http://10.0.0.1/jwks: unreachable".into()),
            Error::ClientIdUnverifiable("metadata document http://10.0.0.1/?q=1: unreachable".into()),
        ] {
            let message = err.to_string();
            assert!(
                !message.contains("10.0.0.1") && !message.contains("unreachable"),
                "{message}"
            );
        }
    }
}
