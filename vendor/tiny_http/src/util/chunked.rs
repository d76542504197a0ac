//! authmd patch: a strict `chunked` decoder (RFC 9112 section 7.1). Upstream
//! used `chunked_transfer`, which accepts sloppy framing; here a size line
//! is hex digits with optional extensions, every chunk ends in CRLF, the
//! trailer section is bounded, and anything else is an `InvalidData` error
//! (the connection is then closed, as where the next request starts is unknown).

use std::convert::TryFrom;
use std::io::{Error, ErrorKind, Read, Result};

/// A chunk-size line (size and extensions) is at most this long.
const SIZE_LINE_BYTES: usize = 1024;

enum State {
    Size,
    Data(u64),
    DataEnd,
    Done,
}

pub struct ChunkedDecoder<R> {
    inner: R,
    state: State,
    trailer_line_bytes: usize,
    trailer_block_bytes: usize,
    trailer_fields: usize,
}

fn invalid(why: &'static str) -> Error {
    Error::new(ErrorKind::InvalidData, why)
}

impl<R: Read> ChunkedDecoder<R> {
    pub fn new(inner: R, trailer_line_bytes: usize, trailer_block_bytes: usize, trailer_fields: usize) -> Self {
        ChunkedDecoder {
            inner,
            state: State::Size,
            trailer_line_bytes,
            trailer_block_bytes,
            trailer_fields,
        }
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8];
        match self.inner.read(&mut b)? {
            0 => Err(Error::new(ErrorKind::UnexpectedEof, "the chunked body ended early")),
            _ => Ok(b[0]),
        }
    }

    /// One line up to CRLF, without it; a bare CR or LF is an error.
    fn line(&mut self, limit: usize) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            match self.byte()? {
                b'\r' => {
                    return match self.byte()? {
                        b'\n' => Ok(line),
                        _ => Err(invalid("a bare CR in the chunked framing")),
                    };
                }
                b'\n' => return Err(invalid("a bare LF in the chunked framing")),
                b => {
                    if line.len() >= limit {
                        return Err(invalid("a chunk line is too long"));
                    }
                    line.push(b);
                }
            }
        }
    }

    fn size(&mut self) -> Result<u64> {
        let line = self.line(SIZE_LINE_BYTES)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 15 {
            return Err(invalid("a chunk size is not 1 to 15 hex digits"));
        }
        let rest = &line[digits..];
        // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): only its shape matters here.
        let ext_ok = rest.is_empty()
            || (rest.iter().find(|b| **b != b' ' && **b != b'\t') == Some(&b';')
                && rest.iter().all(|b| *b == b'\t' || (0x20..0x7f).contains(b)));
        if !ext_ok {
            return Err(invalid("a chunk size is followed by something other than an extension"));
        }
        let text = std::str::from_utf8(&line[..digits]).map_err(|_| invalid("chunk size"))?;
        u64::from_str_radix(text, 16).map_err(|_| invalid("chunk size"))
    }

    fn trailers(&mut self) -> Result<()> {
        let (mut fields, mut total) = (0usize, 0usize);
        loop {
            let line = self.line(self.trailer_line_bytes)?;
            if line.is_empty() {
                return Ok(());
            }
            fields += 1;
            total += line.len() + 2;
            if fields > self.trailer_fields || total > self.trailer_block_bytes {
                return Err(invalid("the trailer section is too large"));
            }
            if !crate::client::is_field_line(&line) {
                return Err(invalid("a malformed trailer field"));
            }
        }
    }
}

impl<R: Read> Read for ChunkedDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Size => {
                    let size = self.size()?;
                    if size == 0 {
                        self.trailers()?;
                        self.state = State::Done;
                    } else {
                        self.state = State::Data(size);
                    }
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(0);
                    }
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(Error::new(ErrorKind::UnexpectedEof, "the chunked body ended early"));
                    }
                    let left = left - n as u64;
                    self.state = if left == 0 { State::DataEnd } else { State::Data(left) };
                    return Ok(n);
                }
                State::DataEnd => {
                    if !self.line(0)?.is_empty() {
                        return Err(invalid("a chunk is longer than its size"));
                    }
                    self.state = State::Size;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedDecoder;
    use std::io::Read;

    fn decode(input: &[u8]) -> std::io::Result<(Vec<u8>, usize)> {
        let mut cursor = std::io::Cursor::new(input);
        let mut out = Vec::new();
        ChunkedDecoder::new(&mut cursor, 8192, 65536, 100).read_to_end(&mut out)?;
        Ok((out, cursor.position() as usize))
    }

    #[test]
    fn decodes_and_stops_after_the_trailers() {
        let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n";
        let (body, used) = decode(input).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(&input[used..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn refuses_sloppy_framing() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"\r\n",
            b"5\r\nhel",
            b"0\r\nno colon\r\n\r\n",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
