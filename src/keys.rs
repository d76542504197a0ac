//! Provider keys and metadata documents, fetched and cached (SPEC.md 4.3).
//!
//! A JWKS is fetched on first use and kept both in memory (parsed) and in the
//! database (so a restart does not refetch everything), fresh for the
//! server's `Cache-Control: max-age` clamped to 10 minutes .. 24 hours. A
//! token whose `kid` the cached set lacks may trigger one refetch, at most
//! once per 30 s per URI: that is how provider key rotation reaches authmd.
//! Client ID Metadata Documents are cached the same way.
//!
//! A provider that hangs or fails must not take the server with it (issue 10):
//!
//! - **One fetch per URI at a time** (a [`Slot`] per URI, a mutex and a
//!   condition variable). The first caller that finds no fresh document
//!   fetches it, holding no lock while it does. Callers that arrive meanwhile
//!   use the stale document when there is one; otherwise at most
//!   [`MAX_WAITERS`] of them wait for that one result (at most [`MAX_WAIT`],
//!   longer than a fetch can take), and the rest are refused at once with
//!   [`KeysError::Busy`]. So at most `1 + MAX_WAITERS` workers are ever busy
//!   with one provider's URI.
//! - **A failure is remembered for [`FAILURE_TTL`]** (30 s): meanwhile every
//!   caller gets that error (or the stale document) without a fetch.
//! - **A stale document outlives a failed refetch** by up to [`MAX_STALE`],
//!   7 days past its expiry: a provider outage of a few days does not lock its
//!   users out, while a week bounds how long a key the provider has since
//!   withdrawn can keep verifying tokens when authmd cannot see the withdrawal.
//! - **Intervals use a monotonic [`Ticker`]**, never the wall clock, so a
//!   backward clock jump cannot stretch a freshness or refetch interval. The
//!   database copy carries wall-clock instants (it outlives the process); read
//!   back, its remaining freshness is clamped to [`MAX_FRESH_SECS`].
//!
//! Not here: where authmd may connect and the network limits (`fetch`).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fetch::{FetchError, Fetcher, TOTAL_TIMEOUT};
use crate::jose::Jwks;
use crate::store::Writer;
use crate::store::documents::Document;

/// Where the cache keeps its documents: read on the caller's connection,
/// written through the server's one writer (group commit).
pub struct Store<'a> {
    pub read: &'a dyn crate::store::Tx,
    pub writer: &'a Writer,
}
use crate::time::{SystemTicker, Ticker, UnixMs};

pub const MIN_FRESH_SECS: u64 = 10 * 60;
pub const MAX_FRESH_SECS: u64 = 24 * 3600;
/// At most one refetch per URI this often for an unknown `kid`.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How long a failed fetch is answered from memory.
pub const FAILURE_TTL: Duration = Duration::from_secs(30);
/// How long past its expiry a document stays usable when refetching fails.
pub const MAX_STALE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Callers that may wait for another's fetch of the same URI.
pub const MAX_WAITERS: usize = 2;
/// A waiter gives up after this long; a fetch ends sooner (`TOTAL_TIMEOUT`).
pub const MAX_WAIT: Duration = Duration::from_secs(TOTAL_TIMEOUT.as_secs() + 1);
/// URIs tracked per kind of document; beyond it, idle entries are dropped.
pub const MAX_CACHED_URIS: usize = 1024;

#[derive(Debug, Clone)]
pub enum KeysError {
    Fetch(FetchError),
    /// Fetched, but not a usable document.
    Invalid(String),
    /// Another caller is fetching this URI and enough callers wait for it.
    Busy,
}

impl std::fmt::Display for KeysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeysError::Fetch(err) => write!(f, "{err}"),
            KeysError::Invalid(why) => f.write_str(why),
            KeysError::Busy => f.write_str("a fetch of this document is in progress and others already wait for it"),
        }
    }
}

/// A parsed document and the ticks until which it is fresh, then usable.
struct Cached<T> {
    value: Arc<T>,
    fresh_until: Duration,
    usable_until: Duration,
}

struct State<T> {
    cached: Option<Cached<T>>,
    fetching: bool,
    waiters: usize,
    failure: Option<(KeysError, Duration)>,
    last_refetch: Option<Duration>,
}

impl<T> State<T> {
    fn usable(&self, now: Duration) -> Option<Arc<T>> {
        self.cached
            .as_ref()
            .filter(|c| c.usable_until > now)
            .map(|c| c.value.clone())
    }
}

/// One URI's cache entry and the single flight that refreshes it.
struct Slot<T> {
    state: Mutex<State<T>>,
    fetched: Condvar,
}

impl<T> Default for Slot<T> {
    fn default() -> Slot<T> {
        Slot {
            state: Mutex::new(State {
                cached: None,
                fetching: false,
                waiters: 0,
                failure: None,
                last_refetch: None,
            }),
            fetched: Condvar::new(),
        }
    }
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the fetch in flight to end; `Busy` when enough callers wait
    /// already or it outlasts [`MAX_WAIT`].
    fn wait_for_fetch<'a>(
        &'a self,
        mut state: MutexGuard<'a, State<T>>,
    ) -> Result<MutexGuard<'a, State<T>>, KeysError> {
        if state.waiters >= MAX_WAITERS {
            return Err(KeysError::Busy);
        }
        state.waiters += 1;
        let deadline = Instant::now() + MAX_WAIT;
        while state.fetching {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .fetched
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.waiters -= 1;
        if state.fetching {
            return Err(KeysError::Busy);
        }
        Ok(state)
    }
}

/// The caller's turn to fetch; ending it (also by a panic) wakes the waiters.
struct Turn<'a, T> {
    slot: &'a Slot<T>,
}

impl<T> Turn<'_, T> {
    /// Stores what the fetch brought and answers the fetching caller.
    fn finish(self, loaded: Loaded<T>, now: Duration) -> Result<Arc<T>, KeysError> {
        let mut state = self.slot.lock();
        if state.cached.is_none() {
            state.cached = loaded.stale;
        }
        let answer = match loaded.fetched {
            Ok(cached) => {
                let value = cached.value.clone();
                state.cached = Some(cached);
                state.failure = None;
                Ok(value)
            }
            Err(err) => {
                state.failure = Some((err.clone(), now + FAILURE_TTL));
                state.usable(now).ok_or(err)
            }
        };
        drop(state);
        drop(self); // clears `fetching` and wakes the waiters
        answer
    }
}

impl<T> Drop for Turn<'_, T> {
    fn drop(&mut self) {
        self.slot.lock().fetching = false;
        self.slot.fetched.notify_all();
    }
}

struct Loaded<T> {
    fetched: Result<Cached<T>, KeysError>,
    /// An expired database copy, usable if nothing better is at hand.
    stale: Option<Cached<T>>,
}

/// The slots of one kind of document and how to parse it.
struct Documents<T> {
    slots: Mutex<HashMap<String, Arc<Slot<T>>>>,
    parse: fn(&[u8]) -> Result<T, String>,
}

impl<T> Documents<T> {
    fn new(parse: fn(&[u8]) -> Result<T, String>) -> Documents<T> {
        Documents {
            slots: Mutex::new(HashMap::new()),
            parse,
        }
    }

    fn slot(&self, uri: &str) -> Arc<Slot<T>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(uri) {
            return slot.clone();
        }
        if slots.len() >= MAX_CACHED_URIS {
            // Keep the slots someone is using; the rest refetch when next needed.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots.entry(uri.to_string()).or_default().clone()
    }
}

fn parse_jwks(body: &[u8]) -> Result<Jwks, String> {
    Jwks::parse(body).map_err(|why| format!("not a usable JWKS: {why}"))
}

fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))
}

pub struct KeyCache {
    fetcher: Fetcher,
    ticker: Arc<dyn Ticker>,
    jwks: Documents<Jwks>,
    json: Documents<Value>,
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache::new(Fetcher::default(), Arc::new(SystemTicker::default()))
    }
}

fn fresh_for(max_age_secs: Option<u64>) -> Duration {
    Duration::from_secs(
        max_age_secs
            .unwrap_or(MIN_FRESH_SECS)
            .clamp(MIN_FRESH_SECS, MAX_FRESH_SECS),
    )
}

impl KeyCache {
    pub fn new(fetcher: Fetcher, ticker: Arc<dyn Ticker>) -> KeyCache {
        KeyCache {
            fetcher,
            ticker,
            jwks: Documents::new(parse_jwks),
            json: Documents::new(parse_json),
        }
    }

    /// The key set at `uri`: from memory, else the database, else the network.
    pub fn jwks(&self, db: &Store<'_>, uri: &str, now_ms: UnixMs) -> Result<Arc<Jwks>, KeysError> {
        self.document(&self.jwks, db, uri, now_ms)
    }

    /// A JSON metadata document (a Client ID Metadata Document), cached like a JWKS.
    pub fn json_document(&self, db: &Store<'_>, uri: &str, now_ms: UnixMs) -> Result<Arc<Value>, KeysError> {
        self.document(&self.json, db, uri, now_ms)
    }

    /// Refetches `uri` because a token named a `kid` it lacks; `None` when a
    /// refetch for this URI happened in the last 30 s. A refetch already in
    /// flight is waited for rather than repeated.
    pub fn refetch_for_unknown_kid(
        &self,
        db: &Store<'_>,
        uri: &str,
        now_ms: UnixMs,
    ) -> Result<Option<Arc<Jwks>>, KeysError> {
        let slot = self.jwks.slot(uri);
        let mut state = slot.lock();
        if state.fetching {
            let state = slot.wait_for_fetch(state)?;
            return Ok(state.usable(self.ticker.elapsed()));
        }
        let now = self.ticker.elapsed();
        if state
            .last_refetch
            .is_some_and(|at| now.saturating_sub(at) < REFETCH_INTERVAL)
        {
            return Ok(None);
        }
        state.last_refetch = Some(now);
        state.fetching = true;
        drop(state);
        let turn = Turn { slot: &slot };
        let fetched = self.fetch(&self.jwks, db, uri, now_ms);
        turn.finish(Loaded { fetched, stale: None }, self.ticker.elapsed())
            .map(Some)
    }

    fn document<T>(&self, docs: &Documents<T>, db: &Store<'_>, uri: &str, now_ms: UnixMs) -> Result<Arc<T>, KeysError> {
        let slot = docs.slot(uri);
        let mut state = slot.lock();
        loop {
            let now = self.ticker.elapsed();
            if let Some(cached) = &state.cached
                && cached.fresh_until > now
            {
                return Ok(cached.value.clone());
            }
            if let Some((err, until)) = &state.failure
                && *until > now
            {
                return state.usable(now).ok_or_else(|| err.clone());
            }
            if !state.fetching {
                break;
            }
            if let Some(stale) = state.usable(now) {
                return Ok(stale);
            }
            state = slot.wait_for_fetch(state)?;
        }
        state.fetching = true;
        drop(state);
        let turn = Turn { slot: &slot };
        let loaded = self.load(docs, db, uri, now_ms);
        turn.finish(loaded, self.ticker.elapsed())
    }

    /// The database copy when it is fresh, else the network (keeping an
    /// expired database copy as the fallback).
    fn load<T>(&self, docs: &Documents<T>, db: &Store<'_>, uri: &str, now_ms: UnixMs) -> Loaded<T> {
        let now = self.ticker.elapsed();
        let mut stale = None;
        if let Ok(Some(doc)) = db.read.document(uri)
            && let Ok(value) = (docs.parse)(&doc.body)
        {
            let max_fresh = Duration::from_secs(MAX_FRESH_SECS);
            let fresh = doc.expires_ms.saturating_since(now_ms).min(max_fresh);
            let usable = (doc.expires_ms + MAX_STALE)
                .saturating_since(now_ms)
                .min(max_fresh + MAX_STALE);
            let cached = Cached {
                value: Arc::new(value),
                fresh_until: now + fresh,
                usable_until: now + usable,
            };
            if !fresh.is_zero() {
                return Loaded {
                    fetched: Ok(cached),
                    stale: None,
                };
            }
            stale = Some(cached);
        }
        Loaded {
            fetched: self.fetch(docs, db, uri, now_ms),
            stale,
        }
    }

    fn fetch<T>(&self, docs: &Documents<T>, db: &Store<'_>, uri: &str, now_ms: UnixMs) -> Result<Cached<T>, KeysError> {
        let fetched = self.fetcher.get(uri).map_err(KeysError::Fetch)?;
        let value = (docs.parse)(&fetched.body).map_err(KeysError::Invalid)?;
        let fresh = fresh_for(fetched.max_age_secs);
        // Through the server's one writer (never a second write path);
        // losing this write only costs a refetch after a restart.
        let document = Document {
            body: fetched.body,
            fetched_ms: now_ms,
            expires_ms: now_ms + fresh,
        };
        let _ = db.writer.write(|tx| Ok(tx.put_document(uri, &document)?));
        let fresh_until = self.ticker.elapsed() + fresh;
        Ok(Cached {
            value: Arc::new(value),
            fresh_until,
            usable_until: fresh_until + MAX_STALE,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::time::ManualTicker;
    use authmd_dev::{Alg, JwksServer, SigningKey, StalledServer};

    /// 2026-05-04T13:00:00Z, the wall clock the tests pass in.
    const T0_MS: UnixMs = UnixMs::from_millis(1_777_899_600_000);

    struct Fixture {
        _dir: tempfile::TempDir,
        db: std::path::PathBuf,
        ticker: Arc<ManualTicker>,
        cache: KeyCache,
        writer: Writer,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("authmd.db");
        crate::store::open(&db).unwrap();
        let ticker = Arc::new(ManualTicker::default());
        let cache = KeyCache::new(Fetcher::new(true), ticker.clone());
        Fixture {
            _dir: dir,
            writer: Writer::open(&db).unwrap(),
            db,
            ticker,
            cache,
        }
    }

    impl Fixture {
        fn conn(&self) -> rusqlite::Connection {
            crate::store::connect(&self.db).unwrap()
        }

        fn store<'a>(&'a self, read: &'a rusqlite::Connection) -> Store<'a> {
            Store {
                read,
                writer: &self.writer,
            }
        }
    }

    fn wait_until(mut done: impl FnMut() -> bool) {
        while !done() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Issue 10 item 6: a JWKS that hangs is fetched once, however many
    /// requests want it; beyond `MAX_WAITERS` they are refused without
    /// waiting, and the failure is answered from memory for 30 s.
    #[test]
    fn a_hanging_jwks_is_fetched_once_and_its_failure_remembered() {
        let f = fixture();
        let stalled = StalledServer::start().unwrap();
        let uri = format!("{}{}", stalled.base_url, authmd_dev::JWKS_PATH);
        let callers = 10;
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..callers {
                let (tx, f, uri) = (tx.clone(), &f, &uri);
                scope.spawn(move || {
                    tx.send(f.cache.jwks(&f.store(&f.conn()), uri, T0_MS).map(|_| ()))
                        .unwrap()
                });
            }
            // Refused at once while the one fetch still hangs.
            let refused: Vec<_> = (0..callers - 1 - MAX_WAITERS).map(|_| rx.recv().unwrap()).collect();
            assert!(refused.iter().all(|r| matches!(r, Err(KeysError::Busy))), "{refused:?}");
            wait_until(|| stalled.connections() >= 1);
            stalled.release();
            // The fetching caller and the waiters share the one failure.
            let rest: Vec<_> = (0..1 + MAX_WAITERS).map(|_| rx.recv().unwrap()).collect();
            assert!(rest.iter().all(|r| matches!(r, Err(KeysError::Fetch(_)))), "{rest:?}");
        });
        assert_eq!(stalled.connections(), 1, "one fetch for {callers} callers");

        // Remembered: no fetch for the next 30 s.
        f.ticker.advance(FAILURE_TTL - Duration::from_secs(1));
        assert!(matches!(
            f.cache.jwks(&f.store(&f.conn()), &uri, T0_MS),
            Err(KeysError::Fetch(_))
        ));
        assert_eq!(stalled.connections(), 1);

        // Then tried again.
        f.ticker.advance(Duration::from_secs(2));
        std::thread::scope(|scope| {
            let again = scope.spawn(|| f.cache.jwks(&f.store(&f.conn()), &uri, T0_MS).map(|_| ()));
            wait_until(|| stalled.connections() == 2);
            stalled.release();
            assert!(matches!(again.join().unwrap(), Err(KeysError::Fetch(_))));
        });
    }

    /// Issue 10 item 6: an expired key set whose refetch fails stays in use
    /// for up to `MAX_STALE` past its expiry, then is refused.
    #[test]
    fn a_stale_key_set_outlives_a_failed_refetch_up_to_its_maximum_age() {
        let f = fixture();
        let provider = JwksServer::start("127.0.0.1:0").unwrap();
        let key = SigningKey::generate(Alg::Es256, "k1");
        provider.publish(&[&key], "max-age=600");
        let uri = format!("{}{}", provider.base_url, authmd_dev::JWKS_PATH);
        assert!(f.cache.jwks(&f.store(&f.conn()), &uri, T0_MS).unwrap().has_kid("k1"));

        provider.documents.write().unwrap().by_path.clear(); // now 404
        let mut now_ms = T0_MS;
        let mut advance = |by: Duration| {
            f.ticker.advance(by);
            now_ms = now_ms + by;
            now_ms
        };
        let at = advance(Duration::from_secs(601));
        assert!(
            f.cache.jwks(&f.store(&f.conn()), &uri, at).unwrap().has_kid("k1"),
            "stale, still used"
        );
        assert_eq!(provider.hits(authmd_dev::JWKS_PATH), 2, "the refetch was tried");
        let at = advance(MAX_STALE - Duration::from_secs(10));
        assert!(
            f.cache.jwks(&f.store(&f.conn()), &uri, at).unwrap().has_kid("k1"),
            "a week minus 9 s past expiry"
        );
        let at = advance(Duration::from_secs(20));
        assert!(matches!(
            f.cache.jwks(&f.store(&f.conn()), &uri, at),
            Err(KeysError::Fetch(FetchError::Status(404)))
        ));

        // A fresh fetch that succeeds replaces it.
        provider.publish(&[&key], "max-age=600");
        let at = advance(FAILURE_TTL);
        assert!(f.cache.jwks(&f.store(&f.conn()), &uri, at).is_ok());
    }

    /// Issue 10 item 9: the refetch interval is measured on the monotonic
    /// ticker, so a wall clock set back an hour does not block rotation.
    #[test]
    fn a_wall_clock_set_back_does_not_block_key_rotation() {
        let f = fixture();
        let provider = JwksServer::start("127.0.0.1:0").unwrap();
        provider.publish(&[&SigningKey::generate(Alg::Es256, "k1")], "max-age=3600");
        let uri = format!("{}{}", provider.base_url, authmd_dev::JWKS_PATH);
        f.cache.jwks(&f.store(&f.conn()), &uri, T0_MS).unwrap();
        assert!(
            f.cache
                .refetch_for_unknown_kid(&f.store(&f.conn()), &uri, T0_MS)
                .unwrap()
                .is_some()
        );
        assert!(
            f.cache
                .refetch_for_unknown_kid(&f.store(&f.conn()), &uri, T0_MS)
                .unwrap()
                .is_none(),
            "once per 30 s"
        );
        assert_eq!(provider.hits(authmd_dev::JWKS_PATH), 2);

        let an_hour_earlier_ms = T0_MS - Duration::from_secs(3600);
        f.ticker.advance(REFETCH_INTERVAL + Duration::from_secs(1));
        assert!(
            f.cache
                .refetch_for_unknown_kid(&f.store(&f.conn()), &uri, an_hour_earlier_ms)
                .unwrap()
                .is_some()
        );
        assert_eq!(provider.hits(authmd_dev::JWKS_PATH), 3);
        // The in-memory freshness does not care about the wall clock either.
        f.cache
            .jwks(&f.store(&f.conn()), &uri, T0_MS + Duration::from_secs(2 * 3600))
            .unwrap();
        assert_eq!(provider.hits(authmd_dev::JWKS_PATH), 3);
    }

    #[test]
    fn freshness_is_clamped_between_ten_minutes_and_a_day() {
        assert_eq!(fresh_for(None), Duration::from_secs(600));
        assert_eq!(fresh_for(Some(0)), Duration::from_secs(600));
        assert_eq!(fresh_for(Some(3600)), Duration::from_secs(3600));
        assert_eq!(fresh_for(Some(10 * 86_400)), Duration::from_secs(86_400));
    }
}
