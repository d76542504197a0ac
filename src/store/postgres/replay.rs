//! The `seen_jtis` table: replay protection for ID-JAGs and logout tokens
//! (SPEC.md 4.2).

use super::PgTx;
use crate::store::Result;
use crate::store::replay::*;
use crate::time::UnixMs;

impl Replay for PgTx<'_> {
    /// One statement on the primary key: of two nodes inserting the same
    /// `(iss, jti)` at once, one inserts; the other waits for it, and
    /// `ON CONFLICT` then evaluates the takeover condition on the row the
    /// first committed (live: nothing changes, no row comes back). If the
    /// first rolls back, the second inserts. A stale row is taken over
    /// only by the one statement that finds it stale under its row lock.
    fn first_use(&self, iss: &str, jti: &str, expires_ms: UnixMs, now_ms: UnixMs) -> Result<bool> {
        Ok(self
            .first(
                "INSERT INTO seen_jtis (iss, jti, expires_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (iss, jti) DO UPDATE SET expires_ms = excluded.expires_ms
                 WHERE seen_jtis.expires_ms <= $4
                 RETURNING 1",
                &[&iss, &jti, &expires_ms.millis(), &now_ms.millis()],
            )?
            .is_some())
    }

    /// Idempotent: two nodes' sweepers pruning at once delete each row once.
    fn prune_replay(&self, now_ms: UnixMs) -> Result<usize> {
        self.execute(
            "DELETE FROM seen_jtis WHERE expires_ms <= $1",
            &[&(now_ms - PRUNE_MARGIN).millis()],
        )
    }
}
