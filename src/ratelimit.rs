//! Rate limits (SPEC.md 9): a sliding window per flow, checked per client IP
//! and then globally. A limit of 0 means no limit.
//!
//! Windows live in memory: one server process owns the database, and a
//! restart forgiving the last hour of attempts is an acceptable cost for not
//! writing to the database on every request. Memory is bounded: a window
//! keeps at most `limit` timestamps, and idle keys are pruned by the sweeper
//! (and, past `MAX_KEYS`, the limiter stops tracking new IPs rather than
//! growing: it fails open, like every error inside it).
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

/// Tracked (bucket, IP) pairs at most; beyond it new IPs are not tracked.
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
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Anonymous => "anonymous",
            Bucket::IdentityAssertion => "identity_assertion",
            Bucket::VerifiedEmail => "verified_email",
            Bucket::Claim => "claim",
            Bucket::ClaimCode => "claim_code",
        }
    }

    fn limit(self, limits: &RateLimits) -> Limit {
        match self {
            Bucket::Anonymous => limits.anonymous,
            Bucket::IdentityAssertion => limits.identity_assertion,
            Bucket::VerifiedEmail => limits.verified_email,
            Bucket::Claim => limits.claim,
            Bucket::ClaimCode => limits.claim_code,
        }
    }
}

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after_secs: u64,
    pub global: bool,
}

#[derive(Default)]
struct Windows {
    /// `None` key: the global window of the bucket.
    by_key: HashMap<(Bucket, Option<String>), VecDeque<Duration>>,
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
        let limit = bucket.limit(limits);
        if limit.per_ip == 0 && limit.global == 0 {
            return Ok(());
        }
        let length = Duration::from_secs(limits.window_secs);
        // A poisoned lock means a bug elsewhere: fail open.
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        let refused = |wait: Duration, global: bool| Refused {
            retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
            global,
        };
        let ip_key = ip.filter(|_| limit.per_ip > 0).map(|ip| (bucket, Some(ip.to_string())));
        if let Some(key) = &ip_key {
            let tracked = windows.by_key.contains_key(key) || windows.by_key.len() < MAX_KEYS;
            if tracked {
                let window = windows.by_key.entry(key.clone()).or_default();
                admit(window, limit.per_ip, now, length).map_err(|wait| refused(wait, false))?;
            }
        }
        if limit.global > 0 {
            let window = windows.by_key.entry((bucket, None)).or_default();
            admit(window, limit.global, now, length).map_err(|wait| refused(wait, true))?;
            window.push_back(now);
        }
        if let Some(key) = ip_key
            && let Some(window) = windows.by_key.get_mut(&key)
        {
            window.push_back(now);
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
            window_secs: 60,
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
}
