//! The watchdog on pooled connections (issue 14): no round trip on a
//! pooled connection (a statement, BEGIN, COMMIT, ROLLBACK) waits longer
//! than [`Limits::round_trip_timeout`], whatever the server does.
//!
//! Why: a server that is stopped whole (SIGSTOP, a frozen VM, storage that
//! hangs every process) keeps its sockets, and its kernel acknowledges what
//! is sent, so neither `tcp_user_timeout` nor keepalives ever fire; the
//! server cannot run its `statement_timeout`; and the driver (`postgres`
//! 0.19) has no read timeout and does not expose its socket. A call on
//! such a connection would wait for ever.
//!
//! How:
//! 1. [`watch`], right after a connection is made, asks the server which
//!    endpoints it sees (`inet_client_addr()`, `inet_client_port()`,
//!    `inet_server_addr()`, `inet_server_port()`), finds this process's
//!    socket with exactly that pair ([`find_socket`]: `/proc/self/net/tcp`
//!    and `tcp6` map the pair to a socket inode, `/proc/self/fd` the inode
//!    to a descriptor) and keeps a duplicate of it in a [`Slot`], which
//!    stays with the connection in the pool.
//! 2. Each round trip writes its deadline in the slot, and clears it when
//!    it returns ([`Watch::round_trip`]).
//! 3. One thread per process ([`patrol`]) looks at every slot each
//!    [`TICK`] and shuts down (`SHUT_RDWR`) the socket of a round trip past
//!    its deadline. The blocked driver call then sees the connection
//!    closed and fails `Unavailable` (503); the slot stays cut, so the pool
//!    drops the connection, never hands it out again.
//!
//! The duplicate is what makes the shutdown safe: it is a descriptor of
//! our own on the connection's socket, so however late the watchdog acts,
//! and whatever the driver has closed meanwhile, it can only ever shut
//! down that socket, never one that reused the driver's descriptor number.
//! The cost: the socket is closed when both the driver's descriptor and the
//! slot are, so the slot is dropped with its client (`pool.rs` keeps them
//! together), and the watchdog holds slots only weakly.
//!
//! Not watched (a [`Watch`] of none, each round trip unbounded as before):
//! - a unix-socket connection (`host=/path`): the server sees no inet
//!   endpoints (the functions answer NULL), and nothing the server can say
//!   tells which of our unix sockets is its backend's;
//! - a connection whose addresses something rewrites (NAT, Docker's port
//!   mapping, a pooler such as PgBouncer): the server's view of the pair
//!   names none of our sockets, so none is found (never a wrong one: the
//!   whole pair must match, then the duplicate's own addresses);
//! - anything but Linux (no `/proc`);
//! - making a connection, this module's own query included: the pool's
//!   `connect_timeout` bounds the caller's wait for that;
//! - statements run on a `Conn`'s client directly rather than through the
//!   pool and `PgTx`: the schema steps when a pool opens (at a node's
//!   start; a step may run for `SCHEMA_STATEMENT_TIMEOUT`) and `authmd
//!   migrate`'s copy (which lifts `statement_timeout`, as one large table
//!   may take long; an operator's, at the terminal);
//! - dropping a whole pool's idle connections (the driver waits there for
//!   its queued statement Closes); a pool drops the connections it gives
//!   up after a cut with their sockets shut first (`pool.rs`, `discard`).
//!
//! The bound is per round trip, never per transaction: a transaction of
//! many statements (a command's long write) takes as long as it needs.

use std::fs;
use std::io::{self, BufRead};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use postgres::Client;

#[cfg(any(doc, test))]
use super::Limits;

/// How often the watchdog looks at the slots: how late past its deadline a
/// round trip may be cut.
pub const TICK: Duration = Duration::from_millis(250);

/// A slot's state: no round trip running.
const IDLE: u64 = 0;
/// A slot's state for good: the watchdog shut the socket down.
const CUT: u64 = u64::MAX;

/// What the watchdog sees of one connection.
pub(super) struct Slot {
    /// [`IDLE`], [`CUT`], or the deadline of the round trip running, in
    /// [`now_ms`]'s milliseconds.
    state: AtomicU64,
    /// How long one round trip may take.
    bound: Duration,
    /// Our own descriptor on the connection's socket (see the module's map).
    socket: TcpStream,
    /// `host:port/database`, for the log line.
    target: String,
}

/// A pooled connection's watch: none when its socket could not be told
/// (see the module's map), then round trips are run unbounded.
#[derive(Clone, Default)]
pub(super) struct Watch(Option<Arc<Slot>>);

/// One round trip running on a watched connection, until dropped.
pub(super) struct RoundTrip<'w> {
    slot: &'w Slot,
    deadline: u64,
}

impl Watch {
    /// Marks one round trip as running until the answer is dropped: for a
    /// call whose result borrows the connection (`BEGIN`).
    pub(super) fn begin(&self) -> Option<RoundTrip<'_>> {
        self.0.as_deref().and_then(Slot::begin)
    }

    /// `call`, one round trip, bounded.
    pub(super) fn round_trip<T>(&self, call: impl FnOnce() -> T) -> T {
        let _trip = self.begin();
        call()
    }

    /// Whether the watchdog cut the connection: it must not be used again.
    pub(super) fn was_cut(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|slot| slot.state.load(Ordering::SeqCst) == CUT)
    }

    /// Shuts the socket down now, the connection to be dropped unused: it
    /// counts as cut.
    pub(super) fn shut(&self) {
        if let Some(slot) = &self.0 {
            slot.state.store(CUT, Ordering::SeqCst);
            let _ = slot.socket.shutdown(Shutdown::Both);
        }
    }

    pub(super) fn is_watched(&self) -> bool {
        self.0.is_some()
    }
}

impl Slot {
    fn new(socket: TcpStream, bound: Duration, target: &str) -> Slot {
        Slot {
            state: AtomicU64::new(IDLE),
            bound,
            socket,
            target: target.to_string(),
        }
    }

    /// `None` when the slot is cut already: the call then fails on the
    /// shut socket at once.
    fn begin(&self) -> Option<RoundTrip<'_>> {
        let deadline = now_ms().saturating_add(self.bound.as_millis() as u64).min(CUT - 1);
        self.state
            .compare_exchange(IDLE, deadline, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| RoundTrip { slot: self, deadline })
    }

    /// Cuts the connection when the round trip running is past its
    /// deadline at `now`; whether it did.
    ///
    /// The race with the round trip returning: the state goes from this
    /// deadline to [`CUT`] only while that round trip (or a later one with
    /// the same deadline, as overdue) is still running, as its end swaps
    /// the deadline back to [`IDLE`] the same way. So an idle connection,
    /// or one whose round trip answered in time, is never cut. A round
    /// trip answering between the swap and the shutdown finds the state
    /// [`CUT`] and leaves it so: its answer stands, but its connection is
    /// dropped, never reused with a socket about to be shut.
    fn cut_if_overdue(&self, now: u64) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        if state == IDLE || state == CUT || state > now {
            return false;
        }
        if self
            .state
            .compare_exchange(state, CUT, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        let _ = self.socket.shutdown(Shutdown::Both);
        crate::log::warn(&format!(
            "postgres {}: a round trip went unanswered for {:?}; its connection is cut",
            self.target, self.bound
        ));
        true
    }
}

impl Drop for RoundTrip<'_> {
    fn drop(&mut self) {
        // Fails only when the watchdog cut it meanwhile: then it stays cut.
        let _ = self
            .slot
            .state
            .compare_exchange(self.deadline, IDLE, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Milliseconds on the monotonic clock since the process first asked,
/// from 1 (0 is [`IDLE`]).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Every slot made, held weakly: a slot goes with its connection.
static SLOTS: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());

/// Whether the watchdog thread runs, starting it on first use.
fn patrolling() -> bool {
    static STARTED: OnceLock<bool> = OnceLock::new();
    *STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("postgres-watchdog".into())
            .spawn(patrol)
            .is_ok()
    })
}

/// The watchdog thread: each [`TICK`], cuts every round trip past its deadline.
fn patrol() {
    loop {
        std::thread::sleep(TICK);
        let live: Vec<Arc<Slot>> = {
            let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
            slots.retain(|slot| slot.strong_count() > 0);
            slots.iter().filter_map(Weak::upgrade).collect()
        };
        let now = now_ms();
        for slot in &live {
            slot.cut_if_overdue(now);
        }
    }
}

/// The watch of `client`, a connection just made to `target` and not yet
/// used: each round trip bounded by `bound`. A watch of none when its
/// socket cannot be told (see the module's map); `Err` when the
/// connection failed asking.
pub(super) fn watch(client: &mut Client, bound: Duration, target: &str) -> Result<Watch, String> {
    let endpoints = client.query_one(
        "SELECT inet_client_addr(), inet_client_port(), inet_server_addr(), inet_server_port()",
        &[],
    );
    let row = match endpoints {
        Ok(row) => row,
        Err(e) if client.is_closed() => return Err(e.to_string()),
        // A server without these functions: the connection is fine.
        Err(_) => return Ok(Watch::default()),
    };
    let endpoint = |addr: usize, port: usize| -> Option<SocketAddr> {
        let ip: IpAddr = row.try_get::<_, Option<IpAddr>>(addr).ok()??;
        let port: i32 = row.try_get::<_, Option<i32>>(port).ok()??;
        Some(SocketAddr::new(ip, u16::try_from(port).ok()?))
    };
    // NULL over a unix socket.
    let (Some(local), Some(peer)) = (endpoint(0, 1), endpoint(2, 3)) else {
        return Ok(Watch::default());
    };
    // The client is ours and idle: the socket stays open meanwhile.
    let Some(socket) = find_socket(local, peer) else {
        return Ok(Watch::default());
    };
    if !patrolling() {
        return Ok(Watch::default());
    }
    let slot = Arc::new(Slot::new(socket, bound, target));
    SLOTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::downgrade(&slot));
    Ok(Watch(Some(slot)))
}

/// Our own duplicate of this process's TCP socket from `local` to `peer`,
/// if it has one. The socket must stay open while this runs: its owner
/// holds it and does not close it meanwhile.
pub(super) fn find_socket(local: SocketAddr, peer: SocketAddr) -> Option<TcpStream> {
    let inode = ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .into_iter()
        .find_map(|table| socket_inode(table, local, peer))?;
    let link = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == link.as_str()) {
            let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
                continue;
            };
            let Ok(socket) = duplicate(fd).map(TcpStream::from) else {
                continue;
            };
            let names = |s: &TcpStream| Some((s.local_addr().ok()?, s.peer_addr().ok()?));
            if names(&socket).is_some_and(|(l, p)| same(l, local) && same(p, peer)) {
                return Some(socket);
            }
        }
    }
    None
}

/// A new descriptor of our own on what `fd` names.
#[allow(unsafe_code)] // the one unsafe call of the library: see the SAFETY note
fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: `find_socket` only passes a descriptor that `/proc/self/fd`
    // showed naming the socket of the connection being watched, whose
    // owner (the caller of `watch`, holding the driver's client, idle)
    // keeps it open until this returns: the driver runs its connection
    // only inside the owner's calls, and nothing else closes a descriptor
    // it does not own. Should that ever fail, the duplicate names whatever
    // the number names by then, and its addresses are checked before use.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned()
}

/// The inode of the socket from `local` to `peer` in the kernel's table
/// at `path` (`/proc/net/tcp` or `tcp6`), if it lists one.
fn socket_inode(path: &str, local: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let table = io::BufReader::new(fs::File::open(path).ok()?);
    table
        .lines()
        .map_while(Result::ok)
        .skip(1)
        .filter_map(|line| parse_tcp_line(&line))
        .find(|(l, p, _)| same(*l, local) && same(*p, peer))
        .map(|(_, _, inode)| inode)
}

/// One row of `/proc/net/tcp` or `tcp6`: the local and remote address and
/// the socket's inode (`sl local rem st queues tr retrnsmt uid timeout inode ...`).
fn parse_tcp_line(line: &str) -> Option<(SocketAddr, SocketAddr, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
    Some((parse_endpoint(local)?, parse_endpoint(remote)?, inode.parse().ok()?))
}

/// `0100007F:1538` (IPv4) or 32 hex digits `:port` (IPv6): the kernel
/// prints each 32-bit word of the address as a native integer, in hex.
fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(8 * i..8 * (i + 1))?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0; 16];
            for i in 0..4 {
                bytes[4 * i..4 * (i + 1)].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The same endpoint, an IPv4 address and its IPv4-mapped IPv6 form alike
/// (a server listening on `::` sees an IPv4 client so).
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip().to_canonical() == b.ip().to_canonical() && a.port() == b.port()
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;

    use super::*;

    /// Loopback connections: each client end and the server end accepted.
    fn pairs(n: usize) -> (TcpListener, Vec<(TcpStream, TcpStream)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pairs = (0..n)
            .map(|_| {
                let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (server, _) = listener.accept().unwrap();
                (client, server)
            })
            .collect();
        (listener, pairs)
    }

    #[test]
    fn the_finder_finds_the_one_socket_among_several() {
        let (_listener, pairs) = pairs(4);
        let (client, server) = &pairs[2];
        let (local, peer) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
        let found = find_socket(local, peer).expect("the socket is found");
        assert_eq!(found.local_addr().unwrap(), local);
        assert_eq!(found.peer_addr().unwrap(), peer);

        // Shutting the duplicate down shuts that connection down, no other.
        found.shutdown(Shutdown::Both).unwrap();
        let mut byte = [0];
        assert_eq!((&*server).read(&mut byte).unwrap(), 0, "the peer sees the end");
        for (i, (_, other)) in pairs.iter().enumerate().filter(|(i, _)| *i != 2) {
            other.set_nonblocking(true).unwrap();
            let still = (&*other).read(&mut byte).unwrap_err();
            assert_eq!(still.kind(), io::ErrorKind::WouldBlock, "connection {i} was touched");
        }
    }

    #[test]
    fn the_finder_finds_nothing_for_a_pair_it_does_not_hold() {
        let (_listener, pairs) = pairs(2);
        let (client, server) = &pairs[0];
        let (local, peer) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
        // The reverse pair is the server end's: a socket of this process too.
        let reversed = find_socket(peer, local).expect("the server end");
        assert_eq!(reversed.local_addr().unwrap(), server.local_addr().unwrap());
        let elsewhere = SocketAddr::new(peer.ip(), peer.port().wrapping_add(1));
        assert!(find_socket(local, elsewhere).is_none());
        // NAT: the server's view of the client's port is not ours.
        let unused = SocketAddr::new(local.ip(), 1);
        assert!(find_socket(unused, peer).is_none());
    }

    #[test]
    fn by_default_the_server_cancels_a_slow_statement_before_the_watchdog_cuts() {
        let limits = Limits::default();
        assert!(limits.round_trip_timeout >= limits.statement_timeout + Duration::from_secs(1));
    }

    /// Rows as an x86 or arm64 kernel prints them (native words, little-endian).
    #[test]
    #[cfg(target_endian = "little")]
    fn kernel_table_rows_parse() {
        let v4 = "   0: 0100007F:0CEA 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000   108        0 21488 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_tcp_line(v4),
            Some((
                "127.0.0.1:3306".parse().unwrap(),
                "127.0.0.1:53924".parse().unwrap(),
                21488
            ))
        );
        let v6 = "   1: 0000000000000000FFFF00000100007F:1538 00000000000000000000000001000000:E2C6 01 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 20 4 30 10 -1";
        let (local, remote, inode) = parse_tcp_line(v6).unwrap();
        assert_eq!(local, "[::ffff:127.0.0.1]:5432".parse().unwrap());
        assert_eq!(remote, "[::1]:58054".parse().unwrap());
        assert_eq!(inode, 99);
        assert!(same(local, "127.0.0.1:5432".parse().unwrap()));
        assert!(parse_tcp_line("  sl  local_address rem_address   st").is_none());
    }

    fn slot(bound: Duration) -> (Slot, TcpStream) {
        let (_listener, mut pairs) = pairs(1);
        let (client, server) = pairs.pop().unwrap();
        (Slot::new(client, bound, "test"), server)
    }

    #[test]
    fn only_a_round_trip_past_its_deadline_is_cut() {
        let (slot, server) = slot(Duration::from_secs(10));
        assert!(!slot.cut_if_overdue(u64::MAX - 1), "idle is never cut");
        let trip = slot.begin().unwrap();
        let deadline = trip.deadline;
        assert!(!slot.cut_if_overdue(deadline - 1));
        drop(trip);
        assert!(!slot.cut_if_overdue(deadline + 1), "it answered in time");

        let trip = slot.begin().unwrap();
        assert!(slot.cut_if_overdue(trip.deadline));
        let mut byte = [0];
        assert_eq!((&server).read(&mut byte).unwrap(), 0, "the socket is shut");
        drop(trip);
        let watch = Watch(Some(Arc::new(slot)));
        assert!(watch.was_cut(), "answering after the cut leaves it cut");
        assert!(watch.begin().is_none(), "a cut connection is never watched again");
    }

    /// The watchdog thread itself: a round trip hanging on a socket nobody
    /// answers returns once the slot's bound is up.
    #[test]
    fn the_watchdog_ends_a_call_hanging_past_its_bound() {
        let (_listener, mut pairs) = pairs(1);
        let (client, _server) = pairs.pop().unwrap();
        let found = find_socket(client.local_addr().unwrap(), client.peer_addr().unwrap()).unwrap();
        assert!(patrolling());
        let slot = Arc::new(Slot::new(found, Duration::from_millis(300), "test"));
        SLOTS.lock().unwrap().push(Arc::downgrade(&slot));
        let watch = Watch(Some(slot));
        let started = Instant::now();
        let read = watch.round_trip(|| (&client).read(&mut [0]));
        let took = started.elapsed();
        assert_eq!(read.unwrap(), 0, "the read ends as the connection's end");
        assert!(watch.was_cut());
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
}
