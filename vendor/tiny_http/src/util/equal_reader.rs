use std::convert::TryFrom;
use std::io::Read;
use std::io::Result as IoResult;

/// Reads at most `size` bytes of `reader`: a body framed by `Content-Length`.
///
/// authmd patch: dropping it no longer drains the rest. A body that was not
/// read whole before the request was handed over closes its connection
/// after the answer (see `client.rs`), so nothing left on the socket is ever
/// parsed as a request, and no declared size is ever allocated or waited for
/// (tiny-http/tiny-http#290).
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: u64,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(reader: R, size: u64) -> EqualReader<R> {
        EqualReader { reader, size }
    }

    /// True when every declared byte was read.
    pub fn is_done(&self) -> bool {
        self.size == 0
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.size).unwrap_or(usize::MAX));
        let len = self.reader.read(&mut buf[..want])?;
        if len == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed before the whole body arrived",
            ));
        }
        self.size -= len as u64;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use std::io::Read;

    #[test]
    fn reads_exactly_its_size() {
        let mut org_reader = std::io::Cursor::new(b"hello world".to_vec());
        let mut string = String::new();
        EqualReader::new(org_reader.by_ref(), 5).read_to_string(&mut string).unwrap();
        assert_eq!(string, "hello");
        let mut rest = String::new();
        org_reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, " world");
    }

    #[test]
    fn an_early_end_is_an_error() {
        let mut short = std::io::Cursor::new(b"hel".to_vec());
        assert!(EqualReader::new(&mut short, 5).read_to_end(&mut Vec::new()).is_err());
    }
}
