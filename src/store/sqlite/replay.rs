//! The `seen_jtis` table: replay protection for ID-JAGs and logout tokens
//! (SPEC.md 4.2). The primary key makes "first one wins" atomic: of two
//! concurrent transactions inserting the same `(iss, jti)`, one inserts and
//! the other sees the conflict.

use rusqlite::{Connection, params};

use crate::store::Result;
use crate::store::replay::*;
use crate::time::UnixMs;

/// The statement of `first_use`, planned by `index_tests`.
pub(crate) const FIRST_USE: &str = "INSERT INTO seen_jtis (iss, jti, expires_ms) VALUES (?1, ?2, ?3)
     ON CONFLICT (iss, jti) DO UPDATE SET expires_ms = excluded.expires_ms
     WHERE seen_jtis.expires_ms <= ?4";

impl Replay for Connection {
    /// Records `(iss, jti)` as used until `expires_ms`. Returns false when it was
    /// already recorded and still live (a replay). A stale row for the same pair
    /// is taken over, so an old jti cannot block forever.
    fn first_use(&self, iss: &str, jti: &str, expires_ms: UnixMs, now_ms: UnixMs) -> Result<bool> {
        let changed = self
            .prepare_cached(FIRST_USE)?
            .execute(params![iss, jti, expires_ms, now_ms])?;
        Ok(changed == 1)
    }

    /// Drops rows that can no longer matter, [`PRUNE_MARGIN`] after their
    /// expiry; returns how many.
    fn prune_replay(&self, now_ms: UnixMs) -> Result<usize> {
        Ok(self
            .prepare_cached("DELETE FROM seen_jtis WHERE expires_ms <= ?1")?
            .execute([now_ms - PRUNE_MARGIN])?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(ms: i64) -> UnixMs {
        UnixMs::from_millis(ms)
    }

    #[test]
    fn a_jti_is_accepted_once_per_issuer_until_it_expires() {
        let (_dir, conn) = crate::store::open_temp();
        assert!(conn.first_use("https://p", "j1", at(2_000), at(1_000)).unwrap());
        assert!(!conn.first_use("https://p", "j1", at(2_000), at(1_500)).unwrap());
        assert!(conn.first_use("https://other", "j1", at(2_000), at(1_500)).unwrap());
        assert!(
            conn.first_use("https://p", "j1", at(3_000), at(2_000)).unwrap(),
            "stale row taken over"
        );
        assert_eq!(conn.prune_replay(at(10_000)).unwrap(), 0, "kept for the margin");
        assert_eq!(conn.prune_replay(at(10_000) + PRUNE_MARGIN).unwrap(), 2);
    }

    /// Regression for issue 10: the sweeper pruned jtis the moment their
    /// expiry passed by the wall clock, so a clock stepped forward for one
    /// sweep and then corrected reopened every live token to replay.
    #[test]
    fn a_clock_jump_forward_and_back_does_not_reopen_replay() {
        let (_dir, conn) = crate::store::open_temp();
        let now = at(1_800_000_000_000);
        let hour = Duration::from_secs(3600);
        assert!(conn.first_use("https://p", "j1", now + hour, now).unwrap());
        // The clock jumps six hours ahead; the sweeper runs.
        conn.prune_replay(now + 6 * hour).unwrap();
        // Corrected: the token is live again, and must not be accepted twice.
        assert!(
            !conn
                .first_use("https://p", "j1", now + hour, now + Duration::from_secs(60))
                .unwrap()
        );
    }
}
