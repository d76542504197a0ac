//! SPEC.md section 10 on the wire: the one mapping from an [`Error`] to its
//! HTTP status and code ([`wire`]), and the error body ([`ErrorBody`]).
//! Which headers go with a refusal (`WWW-Authenticate`, `Allow`,
//! `Retry-After`) is the HTTP edge's (`http::error_response`).

use serde::Serialize;

use crate::error::{Edge, Error};

/// Codes authmd adds to SPEC.md section 10's, for refusals the protocol
/// leaves to HTTP; the README lists them under "Error codes".
#[cfg(test)]
const AUTHMD_CODES: [&str; 6] = [
    "request_timeout",
    "uri_too_long",
    "expectation_failed",
    "headers_too_large",
    "service_unavailable",
    // RFC 6749 4.1.2.1's code, for a database that cannot answer.
    "temporarily_unavailable",
];

/// `(HTTP status, error code)`: the only mapping there is.
pub fn wire(err: &Error) -> (u16, &'static str) {
    match err {
        Error::InvalidRequest(_) => (400, "invalid_request"),
        Error::UnsupportedCredentialType(_) => (400, "unsupported_credential_type"),
        Error::AnonymousNotEnabled => (400, "anonymous_not_enabled"),
        Error::VerifiedEmailNotEnabled => (400, "verified_email_not_enabled"),
        Error::IssuerNotEnabled => (400, "issuer_not_enabled"),
        Error::Assertion(rejection) => (400, rejection.code()),
        Error::InvalidIssuer(_) => (400, "invalid_issuer"),
        Error::KeysUnavailable(_) => (400, "invalid_signature"),
        Error::ReplayDetected => (400, "replay_detected"),
        Error::InvalidClientId(_) | Error::ClientIdUnverifiable(_) => (400, "invalid_client_id"),
        Error::InvalidScope(_) => (400, "invalid_scope"),
        Error::UserNotProvisioned => (400, "user_not_provisioned"),
        Error::AssertionRevoked => (400, "expired"),
        Error::InvalidClaimToken => (401, "invalid_claim_token"),
        Error::ClaimedOrInFlight(_) => (409, "claimed_or_in_flight"),
        Error::ClaimExpired(_) => (410, "claim_expired"),
        Error::ClaimSuperseded => (410, "claim_superseded"),
        Error::ClaimCompleted => (409, "claim_completed"),
        Error::OtpInvalid { .. } => (401, "otp_invalid"),
        Error::OtpNotGenerated => (400, "otp_not_generated"),
        Error::OtpExpired(_) => (410, "otp_expired"),
        Error::PreviouslyClaimed => (409, "previously_claimed"),
        Error::InvalidToken { .. } => (401, "invalid_token"),
        Error::InsufficientScope { .. } => (403, "insufficient_scope"),
        Error::NotFound => (404, "not_found"),
        Error::MethodNotAllowed { .. } => (405, "method_not_allowed"),
        Error::RequestTooLarge { .. } => (413, "request_too_large"),
        Error::UnsupportedMediaType(_) => (415, "unsupported_media_type"),
        Error::RateLimited { .. } => (429, "rate_limited"),
        Error::UpstreamUnavailable(_) => (502, "upstream_unavailable"),
        Error::UpstreamTimeout => (504, "upstream_timeout"),
        Error::Unauthorized => (401, "unauthorized"),
        // The token endpoint's (SPEC-v0.7 8), met on no v0.1 route.
        Error::UnsupportedGrantType => (400, "unsupported_grant_type"),
        Error::InvalidGrant(_) => (400, "invalid_grant"),
        Error::InvalidTarget => (400, "invalid_target"),
        Error::LoginRequired { .. } => (401, "login_required"),
        Error::ServiceAuthNotEnabled => (400, "service_auth_not_enabled"),
        Error::InvalidLoginHint => (400, "invalid_login_hint"),
        Error::AlreadyClaimed => (409, "already_claimed"),
        Error::InvalidClaim => (400, "invalid_claim"),
        Error::ClaimNotConfirmed => (409, "claim_not_confirmed"),
        Error::UserCodeExpired(_) => (410, "user_code_expired"),
        Error::InvalidUserCode { .. } => (401, "invalid_user_code"),
        Error::InvalidRefreshToken => (400, "invalid_refresh_token"),
        Error::Edge(Edge::Malformed(_)) => (400, "invalid_request"),
        Error::Edge(Edge::Timeout) => (408, "request_timeout"),
        Error::Edge(Edge::UriTooLong) => (414, "uri_too_long"),
        Error::Edge(Edge::ExpectationFailed) => (417, "expectation_failed"),
        Error::Edge(Edge::HeadersTooLarge(_)) => (431, "headers_too_large"),
        Error::Unavailable(_) => (503, "service_unavailable"),
        Error::DatabaseUnavailable(_) => (503, "temporarily_unavailable"),
        Error::Internal(_) => (500, "server_error"),
    }
}

/// `{"error", "error_description", "message"}`: `message` for auth.md
/// agents, `error_description` for OAuth clients, the same sentence.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    error: &'static str,
    error_description: String,
    /// SPEC-v0.7 4.3's `login_required` challenge: the oldest login accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<u64>,
    message: String,
}

impl ErrorBody {
    /// An internal error names only the request id; the detail is logged.
    pub fn of(err: &Error, request_id: &str) -> ErrorBody {
        let message = match err {
            Error::Internal(_) => format!("internal error; request id {request_id}"),
            _ => err.to_string(),
        };
        ErrorBody {
            error: wire(err).1,
            error_description: message.clone(),
            max_age: match err {
                Error::LoginRequired { max_age_secs, .. } => Some(*max_age_secs),
                _ => None,
            },
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code an `Error` can produce, every verifier refusal's included,
    /// must be one SPEC.md (or SPEC-v0.7.md, for the variants only its
    /// endpoints meet) defines or one authmd adds and the README lists.
    #[test]
    fn every_variant_maps_to_a_spec_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/SPEC.md");
        let spec = std::fs::read_to_string(path).expect("../shared/SPEC.md is readable")
            + &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/SPEC-v0.7.md")).unwrap();
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for err in crate::error::examples::every_error() {
            let (status, code) = wire(&err);
            let named = spec.contains(&format!("`{code}`")) || spec.contains(&format!(" {code}`"));
            let added = AUTHMD_CODES.contains(&code) && readme.contains(&format!("| {status} | `{code}` |"));
            assert!(
                named || added,
                "{err:?}: {code} is neither in SPEC.md nor among AUTHMD_CODES in the README"
            );
            assert!((400..600).contains(&status), "{err:?}: status {status}");
        }
    }
}
