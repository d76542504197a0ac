//! The `rate_windows` table: rate-limit windows in the database (a SQLite
//! node counts in memory instead, `ratelimit`; this is the same contract as
//! on PostgreSQL, for a node configured to keep them here).

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::Result;
use crate::store::rate_windows::*;
use crate::time::UnixMs;

/// The statement of `count_in_window`, planned by `index_tests`: one row per
/// key, its window restarted when it has ended (`?2` is now, `?3` the
/// window's length, `?4` the limit). Every right-hand side reads the row as
/// it was, so both columns test the same old start.
pub(crate) const COUNT: &str = "INSERT INTO rate_windows (key, started_ms, requests) VALUES (?1, ?2, 1)
     ON CONFLICT (key) DO UPDATE SET
         started_ms = CASE WHEN ?2 >= rate_windows.started_ms + ?3 OR ?2 <= rate_windows.started_ms - ?3
                      THEN ?2 ELSE rate_windows.started_ms END,
         requests = CASE WHEN ?2 >= rate_windows.started_ms + ?3 OR ?2 <= rate_windows.started_ms - ?3
                    THEN 1 ELSE rate_windows.requests + 1 END
     WHERE ?2 >= rate_windows.started_ms + ?3 OR ?2 <= rate_windows.started_ms - ?3
        OR rate_windows.requests < ?4";

pub(crate) const PRUNE: &str = "DELETE FROM rate_windows WHERE started_ms < ?1";

impl RateWindows for Connection {
    fn count_in_window(&self, key: &str, now: UnixMs, length_ms: i64, limit: u64) -> Result<Counted> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if self
            .prepare_cached(COUNT)?
            .execute(params![key, now, length_ms, limit])?
            == 1
        {
            return Ok(Counted::Admitted);
        }
        let started: Option<UnixMs> = self
            .prepare_cached("SELECT started_ms FROM rate_windows WHERE key = ?1")?
            .query_row([key], |row| row.get(0))
            .optional()?;
        Ok(Counted::Full {
            started: started.unwrap_or(now),
        })
    }

    fn prune_rate_windows(&self, started_before: UnixMs) -> Result<usize> {
        Ok(self.prepare_cached(PRUNE)?.execute([started_before])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> UnixMs {
        UnixMs::from_millis(ms)
    }

    #[test]
    fn a_window_holds_its_limit_until_it_ends() {
        let (_dir, conn) = crate::store::open_temp();
        let start = at(1_000_000);
        assert_eq!(conn.count_in_window("k", start, 60_000, 2).unwrap(), Counted::Admitted);
        assert_eq!(
            conn.count_in_window("k", at(1_030_000), 60_000, 2).unwrap(),
            Counted::Admitted
        );
        assert_eq!(
            conn.count_in_window("k", at(1_059_999), 60_000, 2).unwrap(),
            Counted::Full { started: start }
        );
        assert_eq!(
            conn.count_in_window("other", at(1_059_999), 60_000, 2).unwrap(),
            Counted::Admitted
        );
        // Ended: a new window begins with this request.
        assert_eq!(
            conn.count_in_window("k", at(1_060_000), 60_000, 2).unwrap(),
            Counted::Admitted
        );
        assert_eq!(
            conn.count_in_window("k", at(1_060_001), 60_000, 2).unwrap(),
            Counted::Admitted
        );
        assert_eq!(
            conn.count_in_window("k", at(1_060_002), 60_000, 2).unwrap(),
            Counted::Full { started: at(1_060_000) }
        );
        // A clock a whole window behind the start begins a new one too.
        assert_eq!(
            conn.count_in_window("k", at(1_000_000), 60_000, 2).unwrap(),
            Counted::Admitted
        );
        assert_eq!(conn.prune_rate_windows(at(1_000_000)).unwrap(), 0);
        assert_eq!(
            conn.prune_rate_windows(at(1_000_001)).unwrap(),
            1,
            "k, begun again at 1,000,000"
        );
        assert_eq!(conn.prune_rate_windows(at(1_060_000)).unwrap(), 1, "other");
    }
}
