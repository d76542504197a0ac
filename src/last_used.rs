//! When each registration's credentials were last used at the guarded API
//! (issue 15: the person's page shows it), without a write per request.
//!
//! A use is noted in memory ([`LastUsed::record`]: a map insert under a
//! mutex, on the request's path). The sweeper writes what was noted every
//! few seconds, in one transaction ([`LastUsed::flush`]), and the server
//! once more as it stops. A registration is noted at most once per minute:
//! a use in the minute already written is not noted again, so the write
//! cost is at most one row update per registration in use and minute,
//! however many requests it makes; the time kept is exact to the minute.
//! The store raises `last_used_ms` and never lowers it, so several nodes
//! writing their own uses to one database agree on the latest.
//!
//! Not here: whether the credential was good (only a caller the guard let
//! in is noted), and library users' own `Guard` checks, which have no
//! writer to flush to.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Error;
use crate::store::Writer;
use crate::time::UnixMs;

/// Registrations noted and not yet written, at most: beyond it a use is
/// dropped (and counted in the next flush's log line) until the next flush.
pub const MAX_PENDING: usize = 64 * 1024;
/// Registrations whose written minute is remembered, at most: beyond it the
/// memory is cleared, which costs at most one extra write each.
const MAX_REMEMBERED: usize = 256 * 1024;
const MINUTE_MS: i64 = 60 * 1000;

#[derive(Default)]
pub struct LastUsed {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Registration id → the latest use noted since the last flush.
    pending: HashMap<String, UnixMs>,
    /// Registration id → the minute of the use last taken for writing.
    written_minute: HashMap<String, i64>,
    /// Uses dropped since the last flush, `pending` being full.
    dropped: u64,
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Registrations whose uses were written.
    pub registrations: usize,
    /// Uses dropped since the flush before, the memory being full.
    pub dropped: u64,
}

fn minute(at: UnixMs) -> i64 {
    at.millis().div_euclid(MINUTE_MS)
}

impl LastUsed {
    /// Notes that `registration_id`'s credential was used at `at`.
    pub fn record(&self, registration_id: &str, at: UnixMs) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.written_minute.get(registration_id) == Some(&minute(at)) {
            return;
        }
        let full = inner.pending.len() >= MAX_PENDING;
        match inner.pending.get_mut(registration_id) {
            Some(noted) => *noted = (*noted).max(at),
            None if full => inner.dropped += 1,
            None => {
                inner.pending.insert(registration_id.to_string(), at);
            }
        }
    }

    /// Takes what was noted, to be written, remembering each minute taken.
    fn take(&self) -> (Vec<(String, UnixMs)>, u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let taken: Vec<(String, UnixMs)> = inner.pending.drain().collect();
        if inner.written_minute.len() + taken.len() > MAX_REMEMBERED {
            inner.written_minute.clear();
        }
        for (id, at) in &taken {
            inner.written_minute.insert(id.clone(), minute(*at));
        }
        (taken, std::mem::take(&mut inner.dropped))
    }

    /// Puts back uses a failed flush did not write, to try again next time.
    fn put_back(&self, uses: Vec<(String, UnixMs)>, dropped: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.dropped += dropped;
        for (id, at) in uses {
            inner.written_minute.remove(&id);
            let noted = inner.pending.entry(id).or_insert(at);
            *noted = (*noted).max(at);
        }
    }

    /// Writes what was noted in one transaction. On failure the uses are
    /// kept for the next flush.
    pub fn flush(&self, writer: &Writer) -> Result<Flushed, Error> {
        let (uses, dropped) = self.take();
        if uses.is_empty() {
            return Ok(Flushed {
                registrations: 0,
                dropped,
            });
        }
        match writer.write(|tx| Ok(tx.record_last_used(&uses)?)) {
            Ok(_) => Ok(Flushed {
                registrations: uses.len(),
                dropped,
            }),
            Err(err) => {
                self.put_back(uses, dropped);
                Err(err)
            }
        }
    }

    #[cfg(test)]
    fn pending(&self) -> Vec<(String, UnixMs)> {
        let inner = self.inner.lock().unwrap();
        let mut noted: Vec<_> = inner.pending.iter().map(|(k, v)| (k.clone(), *v)).collect();
        noted.sort();
        noted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;
    use crate::store::registrations::NewRegistration;

    fn at(ms: i64) -> UnixMs {
        UnixMs::from_millis(ms)
    }

    #[test]
    fn a_registration_is_noted_once_a_minute_and_keeps_its_latest_use() {
        let uses = LastUsed::default();
        uses.record("reg_a", at(1_000));
        uses.record("reg_a", at(5_000));
        uses.record("reg_a", at(2_000));
        assert_eq!(uses.pending(), [("reg_a".to_string(), at(5_000))]);
        let (taken, _) = uses.take();
        assert_eq!(taken, [("reg_a".to_string(), at(5_000))]);
        uses.record("reg_a", at(59_999));
        assert!(uses.pending().is_empty(), "the minute written already");
        uses.record("reg_a", at(60_000));
        assert_eq!(uses.pending(), [("reg_a".to_string(), at(60_000))]);
    }

    #[test]
    fn beyond_the_cap_uses_are_dropped_and_counted() {
        let uses = LastUsed::default();
        for n in 0..MAX_PENDING + 3 {
            uses.record(&format!("reg_{n}"), at(0));
        }
        let (taken, dropped) = uses.take();
        assert_eq!((taken.len(), dropped), (MAX_PENDING, 3));
    }

    #[test]
    fn a_flush_writes_the_later_instant_only() {
        let (dir, mut conn) = crate::store::open_temp();
        let path = dir.path().join("test.db");
        crate::store::write(&mut conn, |tx| {
            tx.insert_registration(&NewRegistration {
                id: "reg_a",
                generation: crate::model::Generation::V0_7,
                kind: crate::model::RegistrationKind::Anonymous,
                status: crate::model::Status::Unclaimed,
                user_id: None,
                claim_token_hash: None,
                requested_credential_type: None,
                email: None,
                scopes: None,
                created_ms: at(0),
                expires_ms: None,
            })?;
            Ok(())
        })
        .unwrap();
        let writer = Writer::open(&path).unwrap();
        let uses = LastUsed::default();
        uses.record("reg_a", at(120_000));
        uses.record("reg_gone", at(120_000));
        assert_eq!(uses.flush(&writer).unwrap().registrations, 2);
        let stored = |conn: &rusqlite::Connection| conn.registration("reg_a").unwrap().unwrap().last_used_ms;
        assert_eq!(stored(&conn), Some(at(120_000)));
        // Another node's older use does not move it back.
        let other = LastUsed::default();
        other.record("reg_a", at(60_000));
        other.flush(&writer).unwrap();
        assert_eq!(stored(&conn), Some(at(120_000)));
        other.record("reg_a", at(180_000));
        other.flush(&writer).unwrap();
        assert_eq!(stored(&conn), Some(at(180_000)));
        assert_eq!(uses.flush(&writer).unwrap(), Flushed::default(), "nothing noted");
    }
}
