//! The envelopes of SPEC-v0.7 3 that are not v0.1's body: oauth (RFC 6749
//! 5.2: `{"error", "error_description"}`, plus `retry_after` on a 429; the
//! code and status are the one mapping, `proto::v0_1::wire`) and set (RFC
//! 8935 2.4: `{"err", "description"}`, with the codes of SPEC-v0.7 11).

use serde::Serialize;

use crate::error::Error;
use crate::proto::v0_1::wire;

#[derive(Debug, Serialize)]
pub struct OAuthErrorBody {
    error: &'static str,
    error_description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

impl OAuthErrorBody {
    /// An internal error names only the request id; the detail is logged.
    pub fn of(err: &Error, request_id: &str) -> OAuthErrorBody {
        OAuthErrorBody {
            error: wire(err).1,
            error_description: match err {
                Error::Internal(_) => format!("internal error; request id {request_id}"),
                _ => err.to_string(),
            },
            retry_after: match err {
                Error::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
                _ => None,
            },
        }
    }
}

/// RFC 8935 2.4, with SPEC-v0.7 11's codes.
#[derive(Debug, Serialize)]
pub struct SetErrorBody {
    err: &'static str,
    description: String,
    #[serde(skip)]
    status: u16,
}

impl SetErrorBody {
    pub fn of(err: &Error, request_id: &str) -> SetErrorBody {
        // From the one mapping: v0.1's `invalid_signature` covers both a bad
        // signature and no usable key, which RFC 8935 tells apart.
        let (status, code) = match (err, wire(err)) {
            (Error::Assertion(crate::jose::Rejection::SignatureInvalid), _) | (_, (_, "expired")) => {
                (400, "authentication_failed")
            }
            (_, (_, "invalid_signature")) => (400, "invalid_key"),
            (_, (_, code @ ("invalid_issuer" | "invalid_audience"))) => (400, code),
            (_, (status, code)) if status == 413 || status == 429 || status >= 500 => (status, code),
            _ => (400, "invalid_request"),
        };
        SetErrorBody {
            err: code,
            description: match err {
                Error::Internal(_) => format!("internal error; request id {request_id}"),
                // Which key set and why stays in the log.
                Error::KeysUnavailable(_) => "the provider's keys could not be fetched".into(),
                _ => err.to_string(),
            },
            status,
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn err(&self) -> &'static str {
        self.err
    }
}
