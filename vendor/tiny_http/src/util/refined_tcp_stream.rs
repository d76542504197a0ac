use std::io::Result as IoResult;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connection::Connection;

/// authmd patch: the read and the write half of one connection share the
/// socket through an `Arc` instead of `try_clone`, so a connection costs one
/// file descriptor and splitting it cannot fail (upstream unwrapped
/// `try_clone`, which panicked the accept thread on EMFILE and left the
/// listener dead). The TLS variant is gone: authmd has no TLS listener.
pub(crate) type Stream = Arc<Connection>;

/// authmd patch: the instant by which the current read must be done, shared
/// by the connection (which sets it: head, body, idle) and its read half
/// (which honours it on every `read`).
#[derive(Default)]
pub struct Deadline {
    at: Mutex<Option<Instant>>,
}

impl Deadline {
    pub fn set(&self, at: Option<Instant>) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    fn get(&self) -> Option<Instant> {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    deadline: Arc<Deadline>,
    /// The socket's read timeout as last set, so it is set only when it changes.
    timeout_set: Option<Duration>,
}

impl RefinedTcpStream {
    pub(crate) fn new(stream: Connection, deadline: Arc<Deadline>) -> (RefinedTcpStream, RefinedTcpStream) {
        let stream = Arc::new(stream);
        let read = RefinedTcpStream {
            stream: stream.clone(),
            close_read: true,
            close_write: false,
            deadline: deadline.clone(),
            timeout_set: None,
        };
        let write = RefinedTcpStream {
            stream,
            close_read: false,
            close_write: true,
            deadline,
            timeout_set: None,
        };
        (read, write)
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        false
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    /// The socket itself, to shut it down or time its writes.
    pub(crate) fn socket(&self) -> Stream {
        self.stream.clone()
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let timeout = match self.deadline.get() {
            None => None,
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(ErrorKind::TimedOut.into()),
            },
        };
        // Re-arm the socket only when the time left differs by more than
        // a few milliseconds from what it was last armed with.
        let stale = match (timeout, self.timeout_set) {
            (Some(new), Some(old)) => new.abs_diff(old) > Duration::from_millis(5),
            (new, old) => new.is_some() != old.is_some(),
        };
        if stale {
            self.stream.set_read_timeout(timeout)?;
            self.timeout_set = timeout;
        }
        match (&*self.stream).read(buf) {
            // A socket read timeout is EAGAIN on Unix.
            Err(e) if e.kind() == ErrorKind::WouldBlock => Err(ErrorKind::TimedOut.into()),
            other => other,
        }
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match (&*self.stream).write(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => Err(ErrorKind::TimedOut.into()),
            other => other,
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        (&*self.stream).flush()
    }
}
