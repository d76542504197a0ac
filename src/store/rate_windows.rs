//! Rate-limit windows in the database (SPEC.md 9, SPEC-v0.7.md 15), for
//! nodes that share it: a fixed-window counter per key (a bucket and one of
//! its tiers), the window begun by the first request it counts. Of two
//! transactions counting in one window at once, each sees the other's
//! count once it has committed, so the nodes never together admit more
//! than the limit.

use super::Result;
use crate::time::UnixMs;

/// What [`RateWindows::count_in_window`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted: the window had room (or had ended, and a new one begun now).
    Admitted,
    /// Not counted: the window begun at `started` already holds the limit.
    Full { started: UnixMs },
}

pub trait RateWindows {
    /// Counts one request in `key`'s window, or refuses it when the window
    /// holds `limit` already. A window lasts `length_ms` from its start; a
    /// request after that (or one at least `length_ms` before the start: a
    /// clock that went back, or another node's ahead) begins a new one at
    /// `now`.
    fn count_in_window(&self, key: &str, now: UnixMs, length_ms: i64, limit: u64) -> Result<Counted>;
    /// Forgets windows begun before `started_before` (ended, for every
    /// window at most `now - started_before` long); returns how many.
    fn prune_rate_windows(&self, started_before: UnixMs) -> Result<usize>;
}
