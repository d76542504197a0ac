//! The `rate_windows` table: rate-limit windows the nodes of one database
//! share (SPEC.md 9, SPEC-v0.7.md 15).

use super::PgTx;
use crate::store::Result;
use crate::store::rate_windows::*;
use crate::time::UnixMs;

impl RateWindows for PgTx<'_> {
    /// One statement on the primary key: of two nodes counting in one
    /// window at once, the second waits on the first's row lock and then
    /// judges the row the first committed, so together they never count
    /// past the limit. `$2` is now, `$3` the window's length, `$4` the
    /// limit; every right-hand side reads the row as it was.
    fn count_in_window(&self, key: &str, now: UnixMs, length_ms: i64, limit: u64) -> Result<Counted> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let counted = self.first(
            "INSERT INTO rate_windows (key, started_ms, requests) VALUES ($1, $2, 1)
             ON CONFLICT (key) DO UPDATE SET
                 started_ms = CASE WHEN $2 >= rate_windows.started_ms + $3 OR $2 <= rate_windows.started_ms - $3
                              THEN $2 ELSE rate_windows.started_ms END,
                 requests = CASE WHEN $2 >= rate_windows.started_ms + $3 OR $2 <= rate_windows.started_ms - $3
                            THEN 1 ELSE rate_windows.requests + 1 END
             WHERE $2 >= rate_windows.started_ms + $3 OR $2 <= rate_windows.started_ms - $3
                OR rate_windows.requests < $4
             RETURNING 1",
            &[&key, &now.millis(), &length_ms, &limit],
        )?;
        if counted.is_some() {
            return Ok(Counted::Admitted);
        }
        let started = self
            .first("SELECT started_ms FROM rate_windows WHERE key = $1", &[&key])?
            .map(|row| UnixMs::from_millis(row.get(0)));
        Ok(Counted::Full {
            started: started.unwrap_or(now),
        })
    }

    /// Idempotent: two nodes' sweepers pruning at once delete each row once.
    fn prune_rate_windows(&self, started_before: UnixMs) -> Result<usize> {
        self.execute(
            "DELETE FROM rate_windows WHERE started_ms < $1",
            &[&started_before.millis()],
        )
    }
}
