//! One connection: reads requests off the socket and hands them over.
//!
//! authmd patch: this file is rewritten (see vendor/README.md). A request's
//! head must arrive within `Limits::head_timeout` and stay within its size
//! bounds; its framing is checked as RFC 9112 section 6 says (one
//! `Content-Length`, or `Transfer-Encoding` ending in `chunked`, one `Host`);
//! a body up to `Limits::buffered_body_bytes` is read whole, within
//! `Limits::body_timeout`, before the request is handed over, so a slow
//! upload holds this connection's thread and never an application worker.
//! Whatever leaves part of a body unread closes the connection after the
//! answer, so bytes that follow on the socket are never read as a request.
//! At most one request per connection is with the application at a time.

use std::convert::TryFrom;
use std::io::{BufReader, BufWriter, Cursor, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Header, Method};
use crate::connection::Connection;
use crate::limits::{Limits, Refusal, SharedHooks};
use crate::util::refined_tcp_stream::Stream;
use crate::util::{ChunkedDecoder, Deadline, EqualReader, RefinedTcpStream};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Request, Response, StatusCode};

/// After a refusal or an abandoned body, what the client still sends is
/// read and dropped for this long (or this much) before the socket closes,
/// so the answer is not lost to a reset (a "lingering close").
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Empty lines tolerated before a request line (RFC 9112 section 2.2).
const LEADING_EMPTY_LINES: usize = 4;

type Source = SequentialReader<BufReader<RefinedTcpStream>>;

pub struct ClientConnection {
    remote_addr: Option<SocketAddr>,
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,
    next_header_source: Source,
    /// The previous request was the last one.
    no_more_requests: bool,
    /// Input may remain unread: drain it before closing.
    linger: bool,
    /// No request has been read yet.
    first: bool,
    socket: Stream,
    deadline: Arc<Deadline>,
    limits: Arc<Limits>,
    hooks: SharedHooks,
    /// Requests being read on all connections (a first byte arrived, and
    /// they are not handed over or refused yet): a server that stops waits
    /// for them.
    reading: Arc<AtomicUsize>,
    /// This connection counts in `reading` now.
    counted: bool,
}

enum ReadError {
    /// Answer with this and close.
    Refused(Refusal),
    /// The client went away, or stayed idle too long: close without a word.
    Closed,
}

impl From<Refusal> for ReadError {
    fn from(refusal: Refusal) -> ReadError {
        ReadError::Refused(refusal)
    }
}

/// The request head, parsed.
struct Head {
    method: Method,
    target: String,
    version: HTTPVersion,
    headers: Vec<Header>,
}

/// How the body is delimited (RFC 9112 section 6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `field-name ":" OWS field-value OWS` with a token name and a value of
/// visible ASCII, spaces and tabs (no control bytes, no obs-fold).
pub(crate) fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    colon > 0
        && line[..colon].iter().all(|b| is_tchar(*b))
        && line[colon + 1..].iter().all(|b| *b == b'\t' || (0x20..0x7f).contains(b))
}

fn timed_out(err: &std::io::Error) -> bool {
    matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock)
}

impl ClientConnection {
    pub fn new(
        connection: Connection,
        limits: Arc<Limits>,
        hooks: SharedHooks,
        reading: Arc<AtomicUsize>,
    ) -> ClientConnection {
        let deadline = Arc::new(Deadline::default());
        deadline.set(Some(Instant::now() + limits.head_timeout));
        let (mut read_socket, write_socket) = RefinedTcpStream::new(connection, deadline.clone());
        let remote_addr = read_socket.peer_addr().ok().flatten();
        let socket = read_socket.socket();
        socket.set_write_timeout(Some(limits.write_timeout)).ok();
        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next_reader();
        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            linger: false,
            first: true,
            socket,
            deadline,
            limits,
            hooks,
            reading,
            counted: false,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        false
    }

    /// One line up to CRLF, without it. `started` says whether a byte of
    /// this request has arrived; the first one starts the head deadline.
    fn read_line(&mut self, limit: usize, too_long: Refusal, started: &mut bool) -> Result<Vec<u8>, ReadError> {
        let mut line = Vec::new();
        let mut byte = [0u8];
        loop {
            match self.next_header_source.read(&mut byte) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) if timed_out(&e) && *started => return Err(Refusal::Timeout.into()),
                Err(_) => return Err(ReadError::Closed),
            }
            if !*started {
                *started = true;
                self.reading.fetch_add(1, Ordering::AcqRel);
                self.counted = true;
                if !self.first {
                    self.deadline.set(Some(Instant::now() + self.limits.head_timeout));
                }
            }
            match byte[0] {
                b'\n' if line.last() == Some(&b'\r') => {
                    line.pop();
                    return Ok(line);
                }
                b'\n' => return Err(Refusal::BadRequest("a line ends in a bare LF; lines end in CRLF").into()),
                _ if line.last() == Some(&b'\r') => {
                    return Err(Refusal::BadRequest("a bare CR inside a line").into());
                }
                b => {
                    // The CR of the CRLF may take the line one byte past its limit.
                    if line.len() >= limit + usize::from(b == b'\r') {
                        return Err(too_long.into());
                    }
                    line.push(b);
                }
            }
        }
    }

    fn read_head(&mut self) -> Result<Head, ReadError> {
        let mut started = false;
        let limits = self.limits.clone();
        let mut line = Vec::new();
        for _ in 0..=LEADING_EMPTY_LINES {
            line = self.read_line(limits.request_line_bytes, Refusal::UriTooLong, &mut started)?;
            if !line.is_empty() {
                break;
            }
        }
        let (method, target, version) = parse_request_line(&line)?;
        let (mut headers, mut total) = (Vec::new(), 0usize);
        loop {
            let too_long = Refusal::HeadersTooLarge("a header line is longer than 8 KiB");
            let line = self.read_line(limits.header_line_bytes, too_long, &mut started)?;
            if line.is_empty() {
                break;
            }
            total += line.len() + 2;
            if total > limits.header_block_bytes {
                return Err(Refusal::HeadersTooLarge("the headers are larger than 64 KiB together").into());
            }
            if headers.len() >= limits.header_fields {
                return Err(Refusal::HeadersTooLarge("there are more than 100 header fields").into());
            }
            headers.push(parse_field(&line)?);
        }
        Ok(Head {
            method,
            target,
            version,
            headers,
        })
    }

    /// Reads the next request: its head, then its body as far as it is
    /// buffered.
    fn read(&mut self) -> Result<Request, ReadError> {
        // The idle deadline runs from when the previous request was handed
        // over (its answer is still written if it comes later).
        let mut writer = self.sink.next_writer();
        if !self.first {
            self.deadline.set(Some(Instant::now() + self.limits.idle_timeout));
        }
        let head = self.read_head()?;
        self.first = false;
        let framing = framing(&head)?;
        let keep_alive = keep_alive(&head);
        let expects_continue = match header(&head.headers, "Expect") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            Some(_) => return Err(Refusal::ExpectationFailed.into()),
        };
        let both_framings = header(&head.headers, "Transfer-Encoding").is_some()
            && header(&head.headers, "Content-Length").is_some();
        if !keep_alive || both_framings {
            self.no_more_requests = true;
        }

        self.deadline.set(Some(Instant::now() + self.limits.body_timeout));
        let limit = self.limits.buffered_body_bytes;
        let too_large_to_buffer = matches!(framing, Framing::Length(n) if n > limit as u64);
        // A client that waits for `100 Continue` before a body too large to
        // buffer gets it only if the application reads; for anything smaller
        // it is sent now, and the body read here.
        let mut must_send_continue = false;
        if expects_continue && framing != Framing::None {
            if too_large_to_buffer {
                must_send_continue = true;
            } else {
                writer
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .and_then(|()| writer.flush())
                    .map_err(|_| ReadError::Closed)?;
            }
        }

        let (body, body_complete, body_length): (Box<dyn Read + Send>, bool, Option<usize>) = match framing {
            Framing::None | Framing::Length(0) => (Box::new(std::io::empty()), true, Some(0)),
            Framing::Length(n) => {
                let source = self.take_body_source();
                let mut reader = EqualReader::new(source, n);
                // A body declared too large to buffer is handed over unread,
                // so the application can refuse it without waiting for it.
                let mut buffered = Vec::new();
                if !too_large_to_buffer {
                    read_buffered(&mut reader, limit, &mut buffered)?;
                }
                let length = usize::try_from(n).ok();
                if reader.is_done() {
                    (Box::new(Cursor::new(buffered)), true, length)
                } else {
                    (Box::new(Cursor::new(buffered).chain(reader)), false, length)
                }
            }
            Framing::Chunked => {
                let source = self.take_body_source();
                let limits = &self.limits;
                let mut reader = ChunkedDecoder::new(
                    source,
                    limits.header_line_bytes,
                    limits.header_block_bytes,
                    limits.header_fields,
                );
                let mut buffered = Vec::new();
                let done = read_buffered(&mut reader, limit, &mut buffered)?;
                if done {
                    let length = buffered.len();
                    (Box::new(Cursor::new(buffered)), true, Some(length))
                } else {
                    (Box::new(Cursor::new(buffered).chain(reader)), false, None)
                }
            }
        };
        if !body_complete {
            self.no_more_requests = true;
            self.linger = true;
        }
        // One request at a time with the application: this one is handed
        // over once the previous answer is written (by then it almost always
        // is, so this rarely waits; waiting before reading cost a context
        // switch per request).
        writer.flush().map_err(|_| ReadError::Closed)?;
        Ok(crate::request::new_request(crate::request::Parts {
            method: head.method,
            path: head.target,
            version: head.version,
            headers: head.headers,
            remote_addr: self.remote_addr,
            body,
            body_complete,
            body_length,
            must_send_continue,
            close_after: self.no_more_requests,
            writer,
        }))
    }

    /// The reader at the body's first byte; the next head is read from
    /// what it leaves once the request that owns it is dropped.
    fn take_body_source(&mut self) -> Source {
        let mut data_source = self.source.next_reader();
        std::mem::swap(&mut self.next_header_source, &mut data_source);
        data_source
    }

    /// The request last read is queued (or refused): it no longer counts.
    pub fn handed_over(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.reading.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Answers a refused request and closes.
    fn refuse(&mut self, refusal: Refusal) {
        let (headers, body) = self.hooks.refusal(&refusal, self.remote_addr);
        let mut response = Response::from_data(body).with_status_code(StatusCode(refusal.status()));
        for header in headers {
            response.add_header(header);
        }
        response.close_connection();
        let mut writer = self.sink.next_writer();
        if response.raw_print(&mut writer, HTTPVersion(1, 1), &[], false, None).is_ok() {
            writer.flush().ok();
        }
        drop(writer);
        self.linger = true;
    }

    /// Waits for every answer on this connection to be written, stops
    /// writing, and reads what the client still sends for a while, so the
    /// last answer reaches it before the socket closes.
    fn linger(&mut self) {
        self.sink.next_writer().flush().ok();
        self.socket.shutdown(Shutdown::Write).ok();
        self.deadline.set(Some(Instant::now() + LINGER));
        let mut buf = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match self.next_header_source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }
}

/// Reads `reader` to its end, or to just past `limit`. True when it ended.
fn read_buffered(reader: &mut impl Read, limit: usize, into: &mut Vec<u8>) -> Result<bool, ReadError> {
    match reader.take(limit as u64 + 1).read_to_end(into) {
        Ok(_) if into.len() > limit => Ok(false),
        Ok(_) => Ok(true),
        Err(e) if timed_out(&e) => Err(Refusal::Timeout.into()),
        Err(e) if e.kind() == ErrorKind::InvalidData => {
            Err(Refusal::BadRequest("the chunked body is malformed").into())
        }
        Err(_) => Err(ReadError::Closed),
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    ///
    /// A request returned still counts in `reading`: whoever takes it calls
    /// [`ClientConnection::handed_over`] once it is queued.
    fn next(&mut self) -> Option<Request> {
        if !self.no_more_requests {
            match self.read() {
                Ok(rq) => return Some(rq),
                Err(ReadError::Refused(refusal)) => self.refuse(refusal),
                Err(ReadError::Closed) => {}
            }
            self.handed_over();
            self.no_more_requests = true;
        }
        if std::mem::take(&mut self.linger) {
            self.linger();
        }
        None
    }
}

fn header<'h>(headers: &'h [Header], name: &'static str) -> Option<&'h str> {
    headers.iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str())
}

/// `Connection: close`, or HTTP/1.0 without `keep-alive`, ends the connection
/// after this request; so does an upgrade, which is not supported.
fn keep_alive(head: &Head) -> bool {
    let tokens: Vec<String> = head
        .headers
        .iter()
        .filter(|h| h.field.equiv("Connection"))
        .flat_map(|h| h.value.as_str().split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    if tokens.iter().any(|t| t == "close" || t == "upgrade") {
        return false;
    }
    head.version != HTTPVersion(1, 0) || tokens.iter().any(|t| t == "keep-alive")
}

/// RFC 9112 sections 3.2 and 6: one `Host` (required in HTTP/1.1); a
/// `Transfer-Encoding` whose codings are exactly `chunked` (it wins over a
/// `Content-Length`, and the connection closes after); otherwise one
/// `Content-Length` of digits, repeated only with the same value.
fn framing(head: &Head) -> Result<Framing, Refusal> {
    let hosts = head.headers.iter().filter(|h| h.field.equiv("Host")).count();
    if hosts > 1 {
        return Err(Refusal::BadRequest("the request has more than one Host header"));
    }
    if hosts == 0 && head.version == HTTPVersion(1, 1) {
        return Err(Refusal::BadRequest("an HTTP/1.1 request needs a Host header"));
    }
    let codings: Vec<String> = head
        .headers
        .iter()
        .filter(|h| h.field.equiv("Transfer-Encoding"))
        .flat_map(|h| h.value.as_str().split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    if !codings.is_empty() {
        if head.version == HTTPVersion(1, 0) {
            return Err(Refusal::BadRequest("Transfer-Encoding is not allowed in HTTP/1.0"));
        }
        return match codings.last().map(String::as_str) {
            Some("chunked") if codings.len() == 1 => Ok(Framing::Chunked),
            Some("chunked") => Err(Refusal::BadRequest("only the chunked transfer coding is supported")),
            _ => Err(Refusal::BadRequest("Transfer-Encoding must end in chunked")),
        };
    }
    let mut length = None;
    for h in head.headers.iter().filter(|h| h.field.equiv("Content-Length")) {
        let text = h.value.as_str();
        let value = match text.bytes().all(|b| b.is_ascii_digit()) && (1..=18).contains(&text.len()) {
            true => text.parse::<u64>().ok(),
            false => None,
        };
        let Some(value) = value else {
            return Err(Refusal::BadRequest("Content-Length must be a decimal number"));
        };
        if length.is_some_and(|seen| seen != value) {
            return Err(Refusal::BadRequest("the request has Content-Length headers that differ"));
        }
        length = Some(value);
    }
    Ok(length.map_or(Framing::None, Framing::Length))
}

/// `method SP request-target SP HTTP-version`, single spaces, a token
/// method and a target of visible ASCII.
fn parse_request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), Refusal> {
    let malformed = Refusal::BadRequest("the request line is malformed");
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    if method.is_empty() || !method.iter().all(|b| is_tchar(*b)) {
        return Err(malformed);
    }
    if target.is_empty() || !target.iter().all(|b| (0x21..0x7f).contains(b)) {
        return Err(Refusal::BadRequest(
            "the request target must be visible ASCII, without control bytes or spaces",
        ));
    }
    let version = match version {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            return Err(Refusal::BadRequest("only HTTP/1.0 and HTTP/1.1 are supported"));
        }
        _ => return Err(malformed),
    };
    // Every byte was checked to be ASCII above.
    let method = std::str::from_utf8(method).ok().and_then(|m| m.parse().ok()).ok_or(malformed.clone())?;
    let target = String::from_utf8(target.to_vec()).map_err(|_| malformed)?;
    Ok((method, target, version))
}

fn parse_field(line: &[u8]) -> Result<Header, Refusal> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(Refusal::BadRequest("folded header lines are not accepted"));
    }
    if !is_field_line(line) {
        return Err(Refusal::BadRequest(
            "a header line is malformed (a token name, a colon right after it, a value of visible ASCII)",
        ));
    }
    let colon = line.iter().position(|b| *b == b':').unwrap_or(0);
    let value = String::from_utf8_lossy(&line[colon + 1..]);
    Header::from_bytes(&line[..colon], value.trim_matches([' ', '\t']).as_bytes())
        .map_err(|()| Refusal::BadRequest("a header line is malformed"))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn request_lines() {
        let (method, path, ver) = parse_request_line(b"GET /hello HTTP/1.1").unwrap();
        assert!(method == Method::Get);
        assert_eq!(path, "/hello");
        assert!(ver == HTTPVersion(1, 1));
        for bad in [&b"GET /hello"[..], b"qsd qsd qsd", b"GET  / HTTP/1.1", b"GET /\x01 HTTP/1.1", b"G(T / HTTP/1.1"] {
            assert!(parse_request_line(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse_request_line(b"GET / HTTP/2.0").is_err());
    }

    fn head(version: HTTPVersion, headers: &[(&str, &str)]) -> Head {
        Head {
            method: Method::Post,
            target: "/".into(),
            version,
            headers: headers.iter().map(|(n, v)| Header::from_bytes(n.as_bytes(), v.as_bytes()).unwrap()).collect(),
        }
    }

    #[test]
    fn framing_is_strict() {
        let v11 = HTTPVersion(1, 1);
        let with = |extra: &[(&str, &str)]| {
            let mut all = vec![("Host", "x")];
            all.extend_from_slice(extra);
            framing(&head(v11.clone(), &all))
        };
        assert_eq!(with(&[("Content-Length", "37")]), Ok(Framing::Length(37)));
        assert_eq!(with(&[("Content-Length", "5"), ("content-length", "5")]), Ok(Framing::Length(5)));
        assert_eq!(with(&[("Transfer-Encoding", "Chunked")]), Ok(Framing::Chunked));
        assert_eq!(with(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]), Ok(Framing::Chunked));
        for bad in ["abc", "5, 5", "-1", "+37", "", " 1", "0x10", "99999999999999999999"] {
            assert!(with(&[("Content-Length", bad)]).is_err(), "{}", bad);
        }
        assert!(with(&[("Content-Length", "0"), ("Content-Length", "37")]).is_err());
        for bad in ["gzip", "identity", "xchunked", "chunked, identity", "gzip, chunked", "chunked, chunked"] {
            assert!(with(&[("Transfer-Encoding", bad)]).is_err(), "{}", bad);
        }
        assert!(framing(&head(v11.clone(), &[])).is_err(), "no Host");
        assert!(framing(&head(v11, &[("Host", "a"), ("Host", "b")])).is_err(), "two Hosts");
        assert_eq!(framing(&head(HTTPVersion(1, 0), &[])), Ok(Framing::None));
    }

    #[test]
    fn field_lines() {
        assert!(parse_field(b"Name: value").is_ok());
        for bad in [&b" folded"[..], b"Name : v", b"Na me: v", b"Name: v\x00", b": v", b"Name: v\x1b[31m"] {
            assert!(parse_field(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

/// For the fuzz target `http_head`: the head parsers and the framing rules
/// over lines split at CRLF, as a connection reads them.
pub(crate) fn parse_head_for_fuzzing(data: &[u8]) -> Result<bool, Refusal> {
    let mut lines = data.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let (method, target, version) = parse_request_line(lines.next().unwrap_or_default())?;
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        headers.push(parse_field(line)?);
    }
    let head = Head {
        method,
        target,
        version,
        headers,
    };
    Ok(framing(&head)? == Framing::Chunked && keep_alive(&head))
}
