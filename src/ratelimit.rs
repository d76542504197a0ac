//! Rate limits (SPEC.md 9, SPEC-v0.7.md 15): a sliding window per flow,
//! checked per client IP and then globally; `signin` adds a tier per address
//! typed between the two. A limit of 0 means no limit.
//!
//! Windows live in memory: one server process owns the database, and a
//! restart forgiving the last hour of attempts is an acceptable cost for not
//! writing to the database on every request. Memory is bounded: a window
//! keeps at most `limit` timestamps, and idle keys are pruned by the sweeper
//! (and, past `MAX_KEYS`, the limiter stops tracking new IPs and addresses
//! rather than growing: it fails open, like every error inside it).
//!
//! Windows measure elapsed time on the monotonic clock (a
//! [`crate::time::Ticker`]'s `elapsed`, passed in as a `Duration`), never
//! the wall clock: a wall clock stepped back an hour would otherwise hold
//! every request in the window for an extra hour, and one stepped forward
//! would empty every window at once. The caller passes the instant in, so
//! tests are exact without sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::settings::{Limit, RateLimits};

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
    // Unused until the v0.7 routes land (SPEC-v0.7.md 15).
    #[cfg_attr(not(test), allow(dead_code))]
    ServiceAuth,
    /// v0.7 `POST /login`. Count it with [`Limiter::check_signin`], which
    /// adds the per-address tier that [`Limiter::check`] does not know.
    Signin,
    /// v0.7 `/oauth2/token`, `type: refresh` and `/oauth2/revoke`.
    // Unused until the v0.7 routes land (SPEC-v0.7.md 15).
    #[cfg_attr(not(test), allow(dead_code))]
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

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after_secs: u64,
    pub global: bool,
}

/// One window of a bucket: its global one, or one client's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Tier {
    Global,
    Ip(String),
    /// `signin`'s per-address tier, keyed by the SHA-256 of the address
    /// trimmed and lower-cased: a fixed 32 bytes however long the typed
    /// text, and no address held in memory. Its own variant, so no typed
    /// text can share a window with an IP.
    // Unused until the v0.7 routes land (SPEC-v0.7.md 15).
    #[cfg_attr(not(test), allow(dead_code))]
    Email(crate::secrets::SecretHash),
}

#[derive(Default)]
struct Windows {
    by_key: HashMap<(Bucket, Tier), VecDeque<Duration>>,
}

#[derive(Default)]
pub struct Limiter {
    windows: Mutex<Windows>,
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

impl Limiter {
    /// Counts one request of `bucket` from `ip` at `now` (monotonic), or
    /// refuses it. Per IP first (skipped when the IP is unknown), then
    /// global; a request refused by either counts against neither.
    pub fn check(&self, bucket: Bucket, ip: Option<&str>, now: Duration, limits: &RateLimits) -> Result<(), Refused> {
        debug_assert_ne!(bucket, Bucket::Signin, "sign-in is counted by check_signin");
        let limit = bucket.limit(limits);
        let tiers = [
            ip.map(|ip| (Tier::Ip(ip.to_string()), limit.per_ip)),
            Some((Tier::Global, limit.global)),
        ];
        self.count(bucket, tiers, now, limits.window_secs)
    }

    /// Counts one `POST /login` (SPEC-v0.7.md 15): per IP (skipped when the
    /// IP is unknown), then per address typed, then global; a request refused
    /// by any tier counts against none. The address is counted as typed,
    /// trimmed and lower-cased, before anyone looks it up: whether it belongs
    /// to a user changes nothing here, so a refusal reveals nothing about it.
    // Unused until the v0.7 routes land (SPEC-v0.7.md 15).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn check_signin(
        &self,
        ip: Option<&str>,
        email: &str,
        now: Duration,
        limits: &RateLimits,
    ) -> Result<(), Refused> {
        let limit = Bucket::Signin.limit(limits);
        let address = crate::secrets::hash(&email.trim().to_lowercase());
        let tiers = [
            ip.map(|ip| (Tier::Ip(ip.to_string()), limit.per_ip)),
            Some((Tier::Email(address), limits.signin_per_email)),
            Some((Tier::Global, limit.global)),
        ];
        self.count(Bucket::Signin, tiers, now, limits.window_secs)
    }

    /// Admits one request into every tier of `bucket` (in order; a tier of
    /// limit 0 is skipped) and then counts it in each, or refuses it and
    /// counts it nowhere.
    fn count<const N: usize>(
        &self,
        bucket: Bucket,
        tiers: [Option<(Tier, u64)>; N],
        now: Duration,
        window_secs: u64,
    ) -> Result<(), Refused> {
        let tiers = tiers.map(|tier| {
            tier.filter(|&(_, limit)| limit > 0)
                .map(|(tier, limit)| ((bucket, tier), limit))
        });
        if tiers.iter().all(Option::is_none) {
            return Ok(());
        }
        let length = Duration::from_secs(window_secs);
        // A poisoned lock means a bug elsewhere: fail open.
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        for (key, limit) in tiers.iter().flatten() {
            // No window yet: nothing counted, so one more fits.
            if let Some(window) = windows.by_key.get_mut(key) {
                admit(window, *limit, now, length).map_err(|wait| Refused {
                    retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
                    global: key.1 == Tier::Global,
                })?;
            }
        }
        for (key, _) in tiers.into_iter().flatten() {
            // The global window is always kept; a client's only while the
            // table has room (fail open rather than grow).
            let tracked = key.1 == Tier::Global || windows.by_key.contains_key(&key) || windows.by_key.len() < MAX_KEYS;
            if tracked {
                windows.by_key.entry(key).or_default().push_back(now);
            }
        }
        Ok(())
    }

    /// Forgets windows with nothing left in them (the sweeper calls this).
    pub fn prune(&self, now: Duration, window_secs: u64) -> usize {
        let Ok(mut windows) = self.windows.lock() else { return 0 };
        let length = Duration::from_secs(window_secs);
        let before = windows.by_key.len();
        windows
            .by_key
            .retain(|_, window| window.back().is_some_and(|&at| now.saturating_sub(at) < length));
        before - windows.by_key.len()
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

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn per_ip_then_global_sliding_windows() {
        let limiter = Limiter::default();
        let l = limits(2, 3);
        let t = Duration::from_secs(1000);
        assert!(limiter.check(Bucket::Anonymous, Some("a"), t, &l).is_ok());
        assert!(limiter.check(Bucket::Anonymous, Some("a"), t + secs(10), &l).is_ok());
        let refused = limiter
            .check(Bucket::Anonymous, Some("a"), t + secs(20), &l)
            .unwrap_err();
        assert_eq!(
            refused,
            Refused {
                retry_after_secs: 40,
                global: false
            }
        );
        assert!(limiter.check(Bucket::Anonymous, Some("b"), t + secs(20), &l).is_ok());
        let refused = limiter
            .check(Bucket::Anonymous, Some("c"), t + secs(20), &l)
            .unwrap_err();
        assert!(refused.global);
        // Other buckets are separate.
        assert!(limiter.check(Bucket::Claim, Some("a"), t + secs(20), &l).is_ok());
        // The window slides: the first request leaves at t + 60 s.
        assert!(
            limiter
                .check(Bucket::Anonymous, Some("a"), t + Duration::from_millis(60_001), &l)
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
                        t + Duration::from_millis(n),
                        &limits(0, 0)
                    )
                    .is_ok()
            );
        }
        let l = limits(1, 0);
        assert!(limiter.check(Bucket::Claim, None, t, &l).is_ok());
        assert!(limiter.check(Bucket::Claim, None, t, &l).is_ok());
    }

    #[test]
    fn idle_windows_are_pruned() {
        let limiter = Limiter::default();
        let l = limits(5, 5);
        let t = Duration::from_secs(1000);
        limiter.check(Bucket::Anonymous, Some("a"), t, &l).unwrap();
        assert_eq!(limiter.prune(t + secs(30), 60), 0);
        assert_eq!(limiter.prune(t + secs(61), 60), 2);
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
        limiter.check(Bucket::Anonymous, Some("a"), t + secs(5), &l).unwrap();
        let refused = limiter.check(Bucket::Anonymous, Some("a"), t, &l).unwrap_err();
        assert_eq!(refused.retry_after_secs, 60, "never more than the window");
        assert!(limiter.check(Bucket::Anonymous, Some("a"), t + secs(65), &l).is_ok());
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
        assert!(limiter.check(Bucket::ServiceAuth, Some("a"), t, &l).is_ok());
        assert!(limiter.check(Bucket::ServiceAuth, Some("a"), t, &l).is_err());
        assert!(limiter.check(Bucket::Token, Some("a"), t, &l).is_ok());
        assert!(limiter.check(Bucket::Token, Some("a"), t, &l).is_ok());
        assert!(limiter.check(Bucket::Token, Some("a"), t, &l).is_err());
        // Anonymous is at 0 here: the v0.7 buckets count apart from it.
        assert!(limiter.check(Bucket::Anonymous, Some("a"), t, &l).is_ok());
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
            assert!(limiter.check(Bucket::Token, Some(&ip), t, &l).is_ok(), "{n}");
        }
    }

    #[test]
    fn signin_counts_per_address_typed_whatever_the_ip() {
        let limiter = Limiter::default();
        let l = signin(0, 2, 0);
        let t = Duration::from_secs(1000);
        assert!(limiter.check_signin(Some("a"), "alice@example.com", t, &l).is_ok());
        // The same address, from another IP, in other case and spacing.
        assert!(
            limiter
                .check_signin(Some("b"), " Alice@Example.COM", t + secs(1), &l)
                .is_ok()
        );
        let refused = limiter
            .check_signin(None, "ALICE@example.com", t + secs(2), &l)
            .unwrap_err();
        assert_eq!(
            refused,
            Refused {
                retry_after_secs: 58,
                global: false
            }
        );
        // Any other text is its own window, an address or not: nothing is
        // looked up, so known and unknown addresses are counted alike.
        assert!(
            limiter
                .check_signin(Some("c"), "bob@example.com", t + secs(2), &l)
                .is_ok()
        );
        assert!(
            limiter
                .check_signin(Some("c"), "not an address", t + secs(2), &l)
                .is_ok()
        );
        // The window slides.
        assert!(
            limiter
                .check_signin(Some("d"), "alice@example.com", t + secs(60), &l)
                .is_ok()
        );
    }

    #[test]
    fn signin_tiers_go_ip_then_address_then_global_and_a_refusal_counts_nowhere() {
        let limiter = Limiter::default();
        let l = signin(2, 1, 3);
        let t = Duration::from_secs(1000);
        assert!(limiter.check_signin(Some("a"), "x@example.com", t, &l).is_ok());
        // Refused by the address tier: the IP's window does not count it ...
        assert!(
            !limiter
                .check_signin(Some("a"), "x@example.com", t, &l)
                .unwrap_err()
                .global
        );
        assert!(limiter.check_signin(Some("a"), "y@example.com", t, &l).is_ok());
        // ... so the IP is full only now, and its refusal spares the address.
        assert!(limiter.check_signin(Some("a"), "z@example.com", t, &l).is_err());
        assert!(limiter.check_signin(Some("b"), "z@example.com", t, &l).is_ok());
        // Three admitted: the global tier refuses the next.
        assert!(
            limiter
                .check_signin(Some("c"), "w@example.com", t, &l)
                .unwrap_err()
                .global
        );
        // Every tier at 0: no limit.
        let off = signin(0, 0, 0);
        for _ in 0..100 {
            assert!(limiter.check_signin(Some("a"), "x@example.com", t, &off).is_ok());
        }
    }

    #[test]
    fn address_windows_are_pruned_and_hold_no_address() {
        let limiter = Limiter::default();
        let t = Duration::from_secs(1000);
        limiter
            .check_signin(None, "alice@example.com", t, &signin(5, 5, 0))
            .unwrap();
        {
            let windows = limiter.windows.lock().unwrap();
            let keys: Vec<_> = windows.by_key.keys().collect();
            assert_eq!(keys.len(), 1, "{keys:?}");
            assert!(!format!("{keys:?}").contains("alice"), "{keys:?}");
        }
        assert_eq!(limiter.prune(t + secs(61), 60), 1);
    }
}
