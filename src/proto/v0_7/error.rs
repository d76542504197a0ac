//! The oauth envelope of SPEC-v0.7 3 (RFC 6749 5.2): `{"error",
//! "error_description"}`, plus `retry_after` on a 429. The code and status
//! are the one mapping (`proto::v0_1::wire`); only the body differs.

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
