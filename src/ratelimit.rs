//! Rate limits (SPEC.md 9, SPEC-v0.7.md 15): a window per flow, checked
//! per client IP and then globally; `signin` adds a tier per address typed
//! between the two. A limit of 0 means no limit.
//!
//! Where the windows are kept depends on who else counts:
//! - A SQLite node is alone on its file, so its windows live in memory:
//!   sliding windows, a restart forgiving the last hour of attempts (an
//!   acceptable cost for not writing to the database on every request).
//!   Memory is bounded: a window keeps at most `limit` timestamps, idle
//!   keys are pruned by the sweeper, and past `MAX_KEYS` the limiter stops
//!   tracking new IPs and addresses rather than growing (it fails open, like
//!   every error inside it). These windows measure elapsed time on the
//!   monotonic clock (a [`crate::time::Ticker`]'s `elapsed`), never the wall
//!   clock: a wall clock stepped back an hour would otherwise hold every
//!   request in the window for an extra hour, and one stepped forward would
//!   empty every window at once.
//! - Nodes sharing a PostgreSQL database count in it (`store::rate_windows`),
//!   so a client spreading its requests over the nodes meets the same limit
//!   as on one: a fixed window per key, begun by the first request it
//!   counts, in one transaction for all of a request's tiers. These windows
//!   are on the wall clock, the one clock the nodes share; a window whose
//!   start is a whole length ahead of a node's clock begins again, so a
//!   clock stepped back cannot hold a client out for longer than a window.
//!   A fixed window admits up to twice the limit across its end (DESIGN.md
//!   accepts that for shared counters); the database failing refuses the
//!   request as the database being unavailable (503), as every other use of
//!   it would a moment later.
//!
//! The caller passes the instant in ([`Now`]), so tests are exact without
//! sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Error;
use crate::settings::{Limit, RateLimits};
use crate::store::Writer;
use crate::store::rate_windows::Counted;
use crate::time::UnixMs;

/// Tracked (bucket, IP or address) pairs at most; beyond it new ones are not
/// tracked.
pub const MAX_KEYS: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Anonymous,
    IdentityAssertion,
    /// Verified-email registrations and `/agent/auth/claim`: the calls that
    /// send mail to an address the agent chose.
    VerifiedEmail,
    /// `/agent/auth/claim` and the page's reject form.
    Claim,
    /// Minting and checking codes (challenge, the page's button, complete):
    /// apart from `Claim`, so flooding the mail-sending calls cannot stall
    /// ceremonies already under way.
    ClaimCode,
    /// v0.7 `service_auth` registrations.
    ServiceAuth,
    /// v0.7 `POST /login`. Count it with [`Limiter::check_signin`], which
    /// adds the per-address tier that [`Limiter::check`] does not know.
    Signin,
    /// v0.7 `/oauth2/token`, `type: refresh` and `/oauth2/revoke`.
    Token,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Anonymous => "anonymous",
            Bucket::IdentityAssertion => "identity_assertion",
            Bucket::VerifiedEmail => "verified_email",
            Bucket::Claim => "claim",
            Bucket::ClaimCode => "claim_code",
            Bucket::ServiceAuth => "service_auth",
            Bucket::Signin => "signin",
            Bucket::Token => "token",
        }
    }

    fn limit(self, limits: &RateLimits) -> Limit {
        match self {
            Bucket::Anonymous => limits.anonymous,
            Bucket::IdentityAssertion => limits.identity_assertion,
            Bucket::VerifiedEmail => limits.verified_email,
            Bucket::Claim => limits.claim,
            Bucket::ClaimCode => limits.claim_code,
            Bucket::ServiceAuth => limits.service_auth,
            Bucket::Signin => limits.signin,
            Bucket::Token => limits.token,
        }
    }
}

/// The instant of a request, on both clocks: windows in memory use the
/// monotonic one, windows in the database the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub elapsed: Duration,
    pub wall: UnixMs,
}

/// Why a request was not admitted.
#[derive(Debug)]
pub enum Refused {
    /// Over a limit: try again after this many seconds. `global`: the
    /// limit of everyone's requests, not the client's (the answer does not
    /// say which; the tests do).
    Limited {
        retry_after_secs: u64,
        #[cfg_attr(not(test), allow(dead_code))]
        global: bool,
    },
    /// The database keeping the windows did not answer.
    Store(Error),
}

impl Refused {
    /// The error `bucket`'s request is refused with.
    pub fn into_error(self, bucket: Bucket) -> Error {
        match self {
            Refused::Limited { retry_after_secs, .. } => Error::RateLimited {
                retry_after_secs,
                flow: bucket.name(),
            },
            Refused::Store(err) => err,
        }
    }
}

/// One window of a bucket: its global one, or one client's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Tier {
    Global,
    Ip(String),
    /// `signin`'s per-address tier, keyed by the SHA-256 of the address
    /// trimmed and lower-cased: a fixed 32 bytes however long the typed
    /// text, and no address held in memory or stored. Its own variant, so
    /// no typed text can share a window with an IP.
    Email(crate::secrets::SecretHash),
}

impl Tier {
    /// The window's key in the database: the bucket, the tier, the client.
    fn key(&self, bucket: Bucket) -> String {
        match self {
            Tier::Global => format!("{}/global", bucket.name()),
            Tier::Ip(ip) => format!("{}/ip/{ip}", bucket.name()),
            Tier::Email(address) => format!("{}/email/{}", bucket.name(), crate::jose::b64::encode(address)),
        }
    }
}

#[derive(Default)]
struct Windows {
    by_key: HashMap<(Bucket, Tier), VecDeque<Duration>>,
}

enum Kept {
    InMemory(Mutex<Windows>),
    InDatabase(Arc<Writer>),
}

pub struct Limiter {
    kept: Kept,
}

impl Default for Limiter {
    /// Windows in memory: a node alone on its database.
    fn default() -> Limiter {
        Limiter {
            kept: Kept::InMemory(Mutex::default()),
        }
    }
}

/// Drops instants out of the window; returns whether one more fits, and if
/// not, how long until the oldest leaves.
fn admit(window: &mut VecDeque<Duration>, limit: u64, now: Duration, length: Duration) -> Result<(), Duration> {
    while window.front().is_some_and(|&at| now.saturating_sub(at) >= length) {
        window.pop_front();
    }
    if limit == 0 || (window.len() as u64) < limit {
        return Ok(());
    }
    let oldest = window.front().copied().unwrap_or(now);
    Err(length.saturating_sub(now.saturating_sub(oldest)))
}

/// Whole seconds until `wait` has passed, at least 1.
fn retry_after(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

impl Limiter {
    /// Windows in the database `writer` writes, shared by every node on it.
    pub fn in_database(writer: Arc<Writer>) -> Limiter {
        Limiter {
            kept: Kept::InDatabase(writer),
        }
    }

    /// Counts one request of `bucket` from `ip` at `at`, or refuses it. Per
    /// IP first (skipped when the IP is unknown), then global; a request
    /// refused by either counts against neither.
    pub fn check(&self, bucket: Bucket, ip: Option<&str>, at: Now, limits: &RateLimits) -> Result<(), Refused> {
        debug_assert_ne!(bucket, Bucket::Signin, "sign-in is counted by check_signin");
        let limit = bucket.limit(limits);
        let tiers = [
            ip.map(|ip| (Tier::Ip(ip.to_string()), limit.per_ip)),
            Some((Tier::Global, limit.global)),
        ];
        self.count(bucket, tiers, at, limits.window_secs)
    }

    /// Counts one `POST /login` (SPEC-v0.7.md 15): per IP (skipped when the
    /// IP is unknown), then per address typed, then global; a request refused
    /// by any tier counts against none. The address is counted as typed,
    /// trimmed and lower-cased, before anyone looks it up: whether it belongs
    /// to a user changes nothing here, so a refusal reveals nothing about it.
    pub fn check_signin(&self, ip: Option<&str>, email: &str, at: Now, limits: &RateLimits) -> Result<(), Refused> {
        let limit = Bucket::Signin.limit(limits);
        let address = crate::secrets::hash(&email.trim().to_lowercase());
        let tiers = [
            ip.map(|ip| (Tier::Ip(ip.to_string()), limit.per_ip)),
            Some((Tier::Email(address), limits.signin_per_email)),
            Some((Tier::Global, limit.global)),
        ];
        self.count(Bucket::Signin, tiers, at, limits.window_secs)
    }

    /// Admits one request into every tier of `bucket` (in order; a tier of
    /// limit 0 is skipped) and then counts it in each, or refuses it and
    /// counts it nowhere.
    fn count<const N: usize>(
        &self,
        bucket: Bucket,
        tiers: [Option<(Tier, u64)>; N],
        at: Now,
        window_secs: u64,
    ) -> Result<(), Refused> {
        let tiers: Vec<(Tier, u64)> = tiers.into_iter().flatten().filter(|&(_, limit)| limit > 0).collect();
        if tiers.is_empty() {
            return Ok(());
        }
        let length = Duration::from_secs(window_secs);
        match &self.kept {
            Kept::InMemory(windows) => count_in_memory(windows, bucket, tiers, at.elapsed, length),
            Kept::InDatabase(writer) => count_in_database(writer, bucket, &tiers, at.wall, length),
        }
    }

    /// Forgets windows with nothing left in them (the sweeper calls this);
    /// returns how many.
    pub fn prune(&self, at: Now, window_secs: u64) -> Result<usize, Error> {
        let length = Duration::from_secs(window_secs);
        match &self.kept {
            Kept::InMemory(windows) => {
                let Ok(mut windows) = windows.lock() else { return Ok(0) };
                let before = windows.by_key.len();
                windows
                    .by_key
                    .retain(|_, window| window.back().is_some_and(|&t| at.elapsed.saturating_sub(t) < length));
                Ok(before - windows.by_key.len())
            }
            // Windows begun before the last window's length ago have ended;
            // one longer (the setting raised since) only begins again early.
            Kept::InDatabase(writer) => writer.write(|tx| Ok(tx.prune_rate_windows(at.wall - length)?)),
        }
    }
}

fn count_in_memory(
    windows: &Mutex<Windows>,
    bucket: Bucket,
    tiers: Vec<(Tier, u64)>,
    now: Duration,
    length: Duration,
) -> Result<(), Refused> {
    // A poisoned lock means a bug elsewhere: fail open.
    let Ok(mut windows) = windows.lock() else {
        return Ok(());
    };
    let tiers: Vec<((Bucket, Tier), u64)> = tiers.into_iter().map(|(tier, limit)| ((bucket, tier), limit)).collect();
    for (key, limit) in &tiers {
        // No window yet: nothing counted, so one more fits.
        if let Some(window) = windows.by_key.get_mut(key) {
            admit(window, *limit, now, length).map_err(|wait| Refused::Limited {
                retry_after_secs: retry_after(wait),
                global: key.1 == Tier::Global,
            })?;
        }
    }
    for (key, _) in tiers {
        // The global window is always kept; a client's only while the
        // table has room (fail open rather than grow).
        let tracked = key.1 == Tier::Global || windows.by_key.contains_key(&key) || windows.by_key.len() < MAX_KEYS;
        if tracked {
            windows.by_key.entry(key).or_default().push_back(now);
        }
    }
    Ok(())
}

/// Every tier in one transaction: a tier that refuses rolls back what the
/// tiers before it counted.
fn count_in_database(
    writer: &Writer,
    bucket: Bucket,
    tiers: &[(Tier, u64)],
    now: UnixMs,
    length: Duration,
) -> Result<(), Refused> {
    let length_ms = length.as_millis() as i64;
    let mut refused = None;
    let counted = writer.write(|tx| {
        refused = None;
        for (tier, limit) in tiers {
            if let Counted::Full { started } = tx.count_in_window(&tier.key(bucket), now, length_ms, *limit)? {
                let wait = (started + length).saturating_since(now).min(length);
                let limited = Refused::Limited {
                    retry_after_secs: retry_after(wait),
                    global: *tier == Tier::Global,
                };
                refused = Some(limited);
                // Any error rolls the transaction back; `refused` says why.
                return Err(Error::RateLimited {
                    retry_after_secs: 0,
                    flow: bucket.name(),
                });
            }
        }
        Ok(())
    });
    match (counted, refused) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(limited)) => Err(limited),
        (Err(err), None) => Err(Refused::Store(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: u64, global: u64) -> RateLimits {
        let limit = Limit { per_ip, global };
        RateLimits {
            anonymous: limit,
            identity_assertion: limit,
            verified_email: limit,
            claim: limit,
            claim_code: limit,
            service_auth: limit,
            signin: limit,
            signin_per_email: per_ip,
            token: limit,
            window_secs: 60,
        }
    }

    /// `signin` with its three tiers set apart.
    fn signin(per_ip: u64, per_email: u64, global: u64) -> RateLimits {
        RateLimits {
            signin: Limit { per_ip, global },
            signin_per_email: per_email,
            ..limits(0, 0)
        }
    }

    /// A refusal over a limit, as plain data to compare.
    #[derive(Debug, PartialEq)]
    struct Limited {
        retry_after_secs: u64,
        global: bool,
    }

    fn limited(refused: Refused) -> Limited {
        match refused {
            Refused::Limited {
                retry_after_secs,
                global,
            } => Limited {
                retry_after_secs,
                global,
            },
            Refused::Store(err) => panic!("not a limit: {err}"),
        }
    }

    fn at(elapsed: Duration) -> Now {
        Now {
            elapsed,
            wall: UnixMs::from_millis(0),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn per_ip_then_global_sliding_windows() {
        let limiter = Limiter::default();
        let l = limits(2, 3);
        let t = Duration::from_secs(1000);
        assert!(limiter.check(Bucket::Anonymous, Some("a"), at(t), &l).is_ok());
        assert!(
            limiter
                .check(Bucket::Anonymous, Some("a"), at(t + secs(10)), &l)
                .is_ok()
        );
        let refused = limiter
            .check(Bucket::Anonymous, Some("a"), at(t + secs(20)), &l)
            .map_err(limited)
            .unwrap_err();
        assert_eq!(
            refused,
            Limited {
                retry_after_secs: 40,
                global: false
            }
        );
        assert!(
            limiter
                .check(Bucket::Anonymous, Some("b"), at(t + secs(20)), &l)
                .is_ok()
        );
        let refused = limiter
            .check(Bucket::Anonymous, Some("c"), at(t + secs(20)), &l)
            .map_err(limited)
            .unwrap_err();
        assert!(refused.global);
        // Other buckets are separate.
        assert!(limiter.check(Bucket::Claim, Some("a"), at(t + secs(20)), &l).is_ok());
        // The window slides: the first request leaves at t + 60 s.
        assert!(
            limiter
                .check(Bucket::Anonymous, Some("a"), at(t + Duration::from_millis(60_001)), &l)
                .is_ok()
        );
    }

    #[test]
    fn zero_means_no_limit_and_unknown_ips_skip_the_per_ip_tier() {
        let limiter = Limiter::default();
        let t = Duration::from_secs(1000);
        for n in 0..1000 {
            assert!(
                limiter
                    .check(
                        Bucket::VerifiedEmail,
                        Some("a"),
                        at(t + Duration::from_millis(n)),
                        &limits(0, 0)
                    )
                    .is_ok()
            );
        }
        let l = limits(1, 0);
        assert!(limiter.check(Bucket::Claim, None, at(t), &l).is_ok());
        assert!(limiter.check(Bucket::Claim, None, at(t), &l).is_ok());
    }

    #[test]
    fn idle_windows_are_pruned() {
        let limiter = Limiter::default();
        let l = limits(5, 5);
        let t = Duration::from_secs(1000);
        limiter.check(Bucket::Anonymous, Some("a"), at(t), &l).unwrap();
        assert_eq!(limiter.prune(at(t + secs(30)), 60).unwrap(), 0);
        assert_eq!(limiter.prune(at(t + secs(61)), 60).unwrap(), 2);
    }

    /// Regression for issue 10: windows were wall-clock milliseconds, so a
    /// clock stepped back kept requests in the window for longer than its
    /// length, and one stepped forward emptied every window. Instants are
    /// monotonic; an instant older than one already seen (two workers racing
    /// to the lock) neither panics nor extends the window.
    #[test]
    fn windows_follow_elapsed_time_not_the_wall_clock() {
        let limiter = Limiter::default();
        let l = limits(1, 0);
        let t = Duration::from_secs(1000);
        limiter
            .check(Bucket::Anonymous, Some("a"), at(t + secs(5)), &l)
            .unwrap();
        let refused = limiter
            .check(Bucket::Anonymous, Some("a"), at(t), &l)
            .map_err(limited)
            .unwrap_err();
        assert_eq!(refused.retry_after_secs, 60, "never more than the window");
        assert!(
            limiter
                .check(Bucket::Anonymous, Some("a"), at(t + secs(65)), &l)
                .is_ok()
        );
    }

    #[test]
    fn v0_7_buckets_have_their_names_and_their_own_limits() {
        assert_eq!(Bucket::ServiceAuth.name(), "service_auth");
        assert_eq!(Bucket::Signin.name(), "signin");
        assert_eq!(Bucket::Token.name(), "token");
        let limiter = Limiter::default();
        let l = RateLimits {
            service_auth: Limit { per_ip: 1, global: 0 },
            token: Limit { per_ip: 2, global: 0 },
            ..limits(0, 0)
        };
        let t = Duration::from_secs(1000);
        assert!(limiter.check(Bucket::ServiceAuth, Some("a"), at(t), &l).is_ok());
        assert!(limiter.check(Bucket::ServiceAuth, Some("a"), at(t), &l).is_err());
        assert!(limiter.check(Bucket::Token, Some("a"), at(t), &l).is_ok());
        assert!(limiter.check(Bucket::Token, Some("a"), at(t), &l).is_ok());
        assert!(limiter.check(Bucket::Token, Some("a"), at(t), &l).is_err());
        // Anonymous is at 0 here: the v0.7 buckets count apart from it.
        assert!(limiter.check(Bucket::Anonymous, Some("a"), at(t), &l).is_ok());
    }

    /// The default `token` global of 0 (SPEC-v0.7.md 15) means no limit.
    #[test]
    fn token_global_zero_is_no_limit() {
        let limiter = Limiter::default();
        let l = RateLimits {
            token: Limit { per_ip: 600, global: 0 },
            ..limits(0, 0)
        };
        let t = Duration::from_secs(1000);
        for n in 0..2000 {
            let ip = format!("10.0.{}.{}", n / 256, n % 256);
            assert!(limiter.check(Bucket::Token, Some(&ip), at(t), &l).is_ok(), "{n}");
        }
    }

    #[test]
    fn signin_counts_per_address_typed_whatever_the_ip() {
        let limiter = Limiter::default();
        let l = signin(0, 2, 0);
        let t = Duration::from_secs(1000);
        assert!(limiter.check_signin(Some("a"), "alice@example.com", at(t), &l).is_ok());
        // The same address, from another IP, in other case and spacing.
        assert!(
            limiter
                .check_signin(Some("b"), " Alice@Example.COM", at(t + secs(1)), &l)
                .is_ok()
        );
        let refused = limiter
            .check_signin(None, "ALICE@example.com", at(t + secs(2)), &l)
            .map_err(limited)
            .unwrap_err();
        assert_eq!(
            refused,
            Limited {
                retry_after_secs: 58,
                global: false
            }
        );
        // Any other text is its own window, an address or not: nothing is
        // looked up, so known and unknown addresses are counted alike.
        assert!(
            limiter
                .check_signin(Some("c"), "bob@example.com", at(t + secs(2)), &l)
                .is_ok()
        );
        assert!(
            limiter
                .check_signin(Some("c"), "not an address", at(t + secs(2)), &l)
                .is_ok()
        );
        // The window slides.
        assert!(
            limiter
                .check_signin(Some("d"), "alice@example.com", at(t + secs(60)), &l)
                .is_ok()
        );
    }

    #[test]
    fn signin_tiers_go_ip_then_address_then_global_and_a_refusal_counts_nowhere() {
        let limiter = Limiter::default();
        let l = signin(2, 1, 3);
        let t = Duration::from_secs(1000);
        assert!(limiter.check_signin(Some("a"), "x@example.com", at(t), &l).is_ok());
        // Refused by the address tier: the IP's window does not count it ...
        assert!(
            !limiter
                .check_signin(Some("a"), "x@example.com", at(t), &l)
                .map_err(limited)
                .unwrap_err()
                .global
        );
        assert!(limiter.check_signin(Some("a"), "y@example.com", at(t), &l).is_ok());
        // ... so the IP is full only now, and its refusal spares the address.
        assert!(limiter.check_signin(Some("a"), "z@example.com", at(t), &l).is_err());
        assert!(limiter.check_signin(Some("b"), "z@example.com", at(t), &l).is_ok());
        // Three admitted: the global tier refuses the next.
        assert!(
            limiter
                .check_signin(Some("c"), "w@example.com", at(t), &l)
                .map_err(limited)
                .unwrap_err()
                .global
        );
        // Every tier at 0: no limit.
        let off = signin(0, 0, 0);
        for _ in 0..100 {
            assert!(limiter.check_signin(Some("a"), "x@example.com", at(t), &off).is_ok());
        }
    }

    #[test]
    fn address_windows_are_pruned_and_hold_no_address() {
        let limiter = Limiter::default();
        let t = Duration::from_secs(1000);
        limiter
            .check_signin(None, "alice@example.com", at(t), &signin(5, 5, 0))
            .unwrap();
        {
            let Kept::InMemory(windows) = &limiter.kept else {
                unreachable!()
            };
            let windows = windows.lock().unwrap();
            let keys: Vec<_> = windows.by_key.keys().collect();
            assert_eq!(keys.len(), 1, "{keys:?}");
            assert!(!format!("{keys:?}").contains("alice"), "{keys:?}");
        }
        assert_eq!(limiter.prune(at(t + secs(61)), 60).unwrap(), 1);
    }

    /// Windows in the database (nodes sharing it): the same tiers in the
    /// same order, a refusal counted nowhere, on the wall clock, and a
    /// window that begins with its first request and ends a length later.
    #[test]
    fn windows_in_the_database_count_every_tier_or_none() {
        let (_dir, conn) = crate::store::open_temp();
        let writer = Arc::new(Writer::new(conn));
        let limiter = Limiter::in_database(writer.clone());
        let l = signin(2, 1, 3);
        let start = UnixMs::from_millis(1_800_000_000_000);
        let at = |ms: u64| Now {
            // Ignored here: another node's monotonic clock means nothing.
            elapsed: Duration::ZERO,
            wall: start + Duration::from_millis(ms),
        };
        assert!(limiter.check_signin(Some("a"), "x@example.com", at(0), &l).is_ok());
        let refused = limiter
            .check_signin(Some("a"), " X@example.com", at(1_000), &l)
            .map_err(limited)
            .unwrap_err();
        assert_eq!(
            refused,
            Limited {
                retry_after_secs: 59,
                global: false
            }
        );
        // The address's refusal did not count against the IP.
        assert!(limiter.check_signin(Some("a"), "y@example.com", at(1_000), &l).is_ok());
        assert!(limiter.check_signin(Some("a"), "z@example.com", at(1_000), &l).is_err());
        assert!(limiter.check_signin(Some("b"), "z@example.com", at(1_000), &l).is_ok());
        let global = limiter
            .check_signin(Some("c"), "w@example.com", at(2_500), &l)
            .map_err(limited)
            .unwrap_err();
        assert!(global.global);
        assert_eq!(global.retry_after_secs, 58, "57.5 s rounded up");
        // Other buckets and other limits are apart; 0 is no limit and
        // writes nothing.
        let anonymous = limits(1, 0);
        assert!(limiter.check(Bucket::Anonymous, Some("a"), at(0), &anonymous).is_ok());
        assert!(limiter.check(Bucket::Anonymous, Some("a"), at(0), &anonymous).is_err());
        assert!(limiter.check(Bucket::Anonymous, None, at(0), &anonymous).is_ok());
        // The window ends a length after its first request.
        assert!(
            limiter
                .check_signin(Some("a"), "x@example.com", at(59_999), &l)
                .is_err()
        );
        assert!(limiter.check_signin(Some("a"), "x@example.com", at(60_000), &l).is_ok());
        // Windows begun a length ago are pruned (here: those begun before
        // 61 s - 60 s), the ones begun again at 60 s are kept.
        let kept = |writer: &Writer| {
            let mut reader = writer.reader().unwrap();
            reader
                .with(|tx| tx.prune_rate_windows(UnixMs::from_millis(0)))
                .unwrap()
                .unwrap()
        };
        assert_eq!(kept(&writer), 0);
        assert_eq!(limiter.prune(at(61_000), 60).unwrap(), 1, "anonymous/ip/a");
        assert_eq!(limiter.prune(at(120_000), 60).unwrap(), 3, "email y and z, ip b");
        assert!(
            limiter
                .check_signin(Some("a"), "x@example.com", at(61_000), &l)
                .is_err()
        );
    }
}
