//! The `seen_jtis` table: replay protection for ID-JAGs and logout tokens
//! (SPEC.md 4.2). The primary key makes "first one wins" atomic: of two
//! concurrent transactions inserting the same `(iss, jti)`, one inserts and
//! the other sees the conflict.

use rusqlite::{Connection, params};

use crate::error::Error;

/// Records `(iss, jti)` as used until `expires_ms`. Returns false when it was
/// already recorded and still live (a replay). A stale row for the same pair
/// is taken over, so an old jti cannot block forever.
pub fn first_use(conn: &Connection, iss: &str, jti: &str, expires_ms: i64, now_ms: i64) -> Result<bool, Error> {
    let changed = conn
        .prepare_cached(
            "INSERT INTO seen_jtis (iss, jti, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (iss, jti) DO UPDATE SET expires_ms = excluded.expires_ms
             WHERE seen_jtis.expires_ms <= ?4",
        )?
        .execute(params![iss, jti, expires_ms, now_ms])?;
    Ok(changed == 1)
}

/// Drops rows that can no longer matter; returns how many.
pub fn prune(conn: &Connection, now_ms: i64) -> Result<usize, Error> {
    Ok(conn
        .prepare_cached("DELETE FROM seen_jtis WHERE expires_ms <= ?1")?
        .execute([now_ms])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_per_issuer_until_it_expires() {
        let (_dir, conn) = crate::store::open_temp();
        assert!(first_use(&conn, "https://p", "j1", 2_000, 1_000).unwrap());
        assert!(!first_use(&conn, "https://p", "j1", 2_000, 1_500).unwrap());
        assert!(first_use(&conn, "https://other", "j1", 2_000, 1_500).unwrap());
        assert!(
            first_use(&conn, "https://p", "j1", 3_000, 2_000).unwrap(),
            "stale row taken over"
        );
        assert_eq!(prune(&conn, 10_000).unwrap(), 2);
    }
}
