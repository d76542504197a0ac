//! Rate limits (SPEC.md 9): a sliding window per flow, checked per client IP
//! and then globally. A limit of 0 means no limit.
//!
//! Windows live in memory: one server process owns the database, and a
//! restart forgiving the last hour of attempts is an acceptable cost for not
//! writing to the database on every request. Memory is bounded: a window
//! keeps at most `limit` timestamps, and idle keys are pruned by the sweeper
//! (and, past `MAX_KEYS`, the limiter stops tracking new IPs rather than
//! growing: it fails open, like every error inside it).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::settings::{Limit, RateLimits};

/// Tracked (bucket, IP) pairs at most; beyond it new IPs are not tracked.
pub const MAX_KEYS: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Anonymous,
    IdentityAssertion,
    VerifiedEmail,
    Claim,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Anonymous => "anonymous",
            Bucket::IdentityAssertion => "identity_assertion",
            Bucket::VerifiedEmail => "verified_email",
            Bucket::Claim => "claim",
        }
    }

    fn limit(self, limits: &RateLimits) -> Limit {
        match self {
            Bucket::Anonymous => limits.anonymous,
            Bucket::IdentityAssertion => limits.identity_assertion,
            Bucket::VerifiedEmail => limits.verified_email,
            Bucket::Claim => limits.claim,
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
    by_key: HashMap<(Bucket, Option<String>), VecDeque<i64>>,
}

#[derive(Default)]
pub struct Limiter {
    windows: Mutex<Windows>,
}

/// Drops timestamps out of the window; returns whether one more fits, and if
/// not, when the oldest leaves.
fn admit(window: &mut VecDeque<i64>, limit: u64, now_ms: i64, window_ms: i64) -> Result<(), i64> {
    while window.front().is_some_and(|&at| at <= now_ms - window_ms) {
        window.pop_front();
    }
    if limit == 0 || (window.len() as u64) < limit {
        return Ok(());
    }
    Err(window.front().copied().unwrap_or(now_ms) + window_ms - now_ms)
}

impl Limiter {
    /// Counts one request of `bucket` from `ip` at `now_ms`, or refuses it.
    /// Per IP first (skipped when the IP is unknown), then global; a request
    /// refused by either counts against neither.
    pub fn check(&self, bucket: Bucket, ip: Option<&str>, now_ms: i64, limits: &RateLimits) -> Result<(), Refused> {
        let limit = bucket.limit(limits);
        if limit.per_ip == 0 && limit.global == 0 {
            return Ok(());
        }
        let window_ms = limits.window_secs as i64 * 1000;
        // A poisoned lock means a bug elsewhere: fail open.
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        let refused = |wait_ms: i64, global: bool| Refused {
            retry_after_secs: ((wait_ms.max(1) + 999) / 1000) as u64,
            global,
        };
        let ip_key = ip.filter(|_| limit.per_ip > 0).map(|ip| (bucket, Some(ip.to_string())));
        if let Some(key) = &ip_key {
            let tracked = windows.by_key.contains_key(key) || windows.by_key.len() < MAX_KEYS;
            if tracked {
                let window = windows.by_key.entry(key.clone()).or_default();
                admit(window, limit.per_ip, now_ms, window_ms).map_err(|wait| refused(wait, false))?;
            }
        }
        if limit.global > 0 {
            let window = windows.by_key.entry((bucket, None)).or_default();
            admit(window, limit.global, now_ms, window_ms).map_err(|wait| refused(wait, true))?;
            window.push_back(now_ms);
        }
        if let Some(key) = ip_key
            && let Some(window) = windows.by_key.get_mut(&key)
        {
            window.push_back(now_ms);
        }
        Ok(())
    }

    /// Forgets windows with nothing left in them (the sweeper calls this).
    pub fn prune(&self, now_ms: i64, window_secs: u64) -> usize {
        let Ok(mut windows) = self.windows.lock() else { return 0 };
        let horizon = now_ms - window_secs as i64 * 1000;
        let before = windows.by_key.len();
        windows
            .by_key
            .retain(|_, window| window.back().is_some_and(|&at| at > horizon));
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
            window_secs: 60,
        }
    }

    #[test]
    fn per_ip_then_global_sliding_windows() {
        let limiter = Limiter::default();
        let l = limits(2, 3);
        let t = 1_000_000;
        assert!(limiter.check(Bucket::Anonymous, Some("a"), t, &l).is_ok());
        assert!(limiter.check(Bucket::Anonymous, Some("a"), t + 10_000, &l).is_ok());
        let refused = limiter.check(Bucket::Anonymous, Some("a"), t + 20_000, &l).unwrap_err();
        assert_eq!(
            refused,
            Refused {
                retry_after_secs: 40,
                global: false
            }
        );
        assert!(limiter.check(Bucket::Anonymous, Some("b"), t + 20_000, &l).is_ok());
        let refused = limiter.check(Bucket::Anonymous, Some("c"), t + 20_000, &l).unwrap_err();
        assert!(refused.global);
        // Other buckets are separate.
        assert!(limiter.check(Bucket::Claim, Some("a"), t + 20_000, &l).is_ok());
        // The window slides: the first request leaves at t + 60 s.
        assert!(limiter.check(Bucket::Anonymous, Some("a"), t + 60_001, &l).is_ok());
    }

    #[test]
    fn zero_means_no_limit_and_unknown_ips_skip_the_per_ip_tier() {
        let limiter = Limiter::default();
        for n in 0..1000 {
            assert!(
                limiter
                    .check(Bucket::VerifiedEmail, Some("a"), n, &limits(0, 0))
                    .is_ok()
            );
        }
        let l = limits(1, 0);
        assert!(limiter.check(Bucket::Claim, None, 0, &l).is_ok());
        assert!(limiter.check(Bucket::Claim, None, 1, &l).is_ok());
    }

    #[test]
    fn idle_windows_are_pruned() {
        let limiter = Limiter::default();
        let l = limits(5, 5);
        limiter.check(Bucket::Anonymous, Some("a"), 0, &l).unwrap();
        assert_eq!(limiter.prune(30_000, 60), 0);
        assert_eq!(limiter.prune(61_000, 60), 2);
    }
}
