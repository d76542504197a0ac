//! authmd patch: what one connection may cost, and how a request that breaks
//! the rules is refused. Upstream had no deadline, no header bound, no
//! connection cap and lenient framing; see vendor/README.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::Header;

/// Bounds on connections and on reading one request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// The request line (method, target, version).
    pub request_line_bytes: usize,
    /// One header line, name and value.
    pub header_line_bytes: usize,
    /// All header lines of one request (or one trailer section) together.
    pub header_block_bytes: usize,
    pub header_fields: usize,
    /// From the first byte of a request (or the accept) to its last header.
    pub head_timeout: Duration,
    /// From the last header to the last byte of the body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request started is closed after this.
    pub idle_timeout: Duration,
    /// A response must be taken by the client within this (per write).
    pub write_timeout: Duration,
    /// Bodies up to this size are read whole before the request is handed
    /// to the application; a larger one is handed over partly read, and its
    /// connection is closed after the answer.
    pub buffered_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            request_line_bytes: 8 * 1024,
            header_line_bytes: 8 * 1024,
            header_block_bytes: 64 * 1024,
            header_fields: 100,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            buffered_body_bytes: 64 * 1024,
        }
    }
}

/// Why a request was refused before the application saw it. Always a 4xx:
/// an unsupported version or transfer coding is the client's to fix. The connection
/// is always closed after the answer: where the next request would start is
/// unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the message is malformed or its framing ambiguous.
    BadRequest(&'static str),
    /// 408: the head or the body did not arrive in time.
    Timeout,
    /// 414: the request line is over its limit.
    UriTooLong,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
    /// 431: a header line, the header block or the field count is over its limit.
    HeadersTooLarge(&'static str),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Timeout => 408,
            Refusal::UriTooLong => 414,
            Refusal::ExpectationFailed => 417,
            Refusal::HeadersTooLarge(_) => 431,
        }
    }

    /// A sentence for a person; names the rule, never echoes the request.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BadRequest(why) | Refusal::HeadersTooLarge(why) => why,
            Refusal::Timeout => "the request did not arrive in time",
            Refusal::UriTooLong => "the request line is longer than 8 KiB",
            Refusal::ExpectationFailed => "only `Expect: 100-continue` is supported",
        }
    }
}

/// What the application learns of the edge, and how it shapes refusals.
pub trait Hooks: Send + Sync {
    /// The headers and body answering a refused request (status from the refusal).
    fn refusal(&self, refusal: &Refusal, peer: Option<SocketAddr>) -> (Vec<Header>, Vec<u8>) {
        let _ = (refusal, peer);
        (Vec::new(), Vec::new())
    }

    /// `accept` failed (EMFILE, say); the server backs off and goes on.
    fn accept_failed(&self, error: &std::io::Error) {
        let _ = error;
    }
}

/// Hooks that answer refusals with an empty body and report nothing.
pub struct NoHooks;

impl Hooks for NoHooks {}

pub type SharedHooks = Arc<dyn Hooks>;
