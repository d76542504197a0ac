//! Replay protection for ID-JAGs and logout tokens (SPEC.md 4.2): of two
//! concurrent transactions recording the same `(iss, jti)`, exactly one
//! succeeds.

use std::time::Duration;

use super::Result;
use crate::time::UnixMs;

/// How long past its expiry a seen jti is kept. A row is needed only while
/// its token could still pass the expiry check, and that is judged by the
/// wall clock. If the clock jumps forward (a bad NTP step, a VM restored
/// from a snapshot, an operator's typo) and the sweeper prunes before it is
/// corrected, every live jti would be forgotten and each token replayable
/// once the clock is back. The margin has nothing to do with token lifetimes
/// (a row already lives until its token's `exp` plus the skew): it is how
/// large a clock error, corrected, the replay store survives. A day covers
/// the errors that happen in practice for the cost of a day's extra rows.
pub const PRUNE_MARGIN: Duration = Duration::from_secs(24 * 3600);

pub trait Replay {
    /// Records `(iss, jti)` as used until `expires_ms`. Returns false when it
    /// was already recorded and still live (a replay). A stale row for the
    /// same pair is taken over, so an old jti cannot block forever.
    fn first_use(&self, iss: &str, jti: &str, expires_ms: UnixMs, now_ms: UnixMs) -> Result<bool>;
    /// Drops rows that can no longer matter, [`PRUNE_MARGIN`] after their
    /// expiry; returns how many.
    fn prune_replay(&self, now_ms: UnixMs) -> Result<usize>;
}
