//! Provider keys and metadata documents, fetched and cached (SPEC.md 4.3).
//!
//! A JWKS is fetched on first use and kept both in memory (parsed) and in the
//! database (so a restart does not refetch everything), fresh for the
//! server's `Cache-Control: max-age` clamped to 10 minutes .. 24 hours. A
//! token whose `kid` the cached set lacks may trigger one refetch, at most
//! once per 30 s per URI: that is how provider key rotation reaches authmd.
//! No lock is held while fetching, so a provider that is down slows only its
//! own requests, each by at most the fetch timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::fetch::{FetchError, Fetcher};
use crate::jose::Jwks;
use crate::store::documents::{self, Document};

pub const MIN_FRESH_SECS: u64 = 10 * 60;
pub const MAX_FRESH_SECS: u64 = 24 * 3600;
pub const REFETCH_INTERVAL_MS: i64 = 30 * 1000;

#[derive(Debug, Clone)]
pub enum KeysError {
    Fetch(FetchError),
    /// Fetched, but not a usable document.
    Invalid(String),
}

impl std::fmt::Display for KeysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeysError::Fetch(err) => write!(f, "{err}"),
            KeysError::Invalid(why) => f.write_str(why),
        }
    }
}

struct Entry {
    jwks: Arc<Jwks>,
    expires_ms: i64,
}

#[derive(Default)]
pub struct KeyCache {
    fetcher: Fetcher,
    jwks: Mutex<HashMap<String, Entry>>,
    last_refetch_ms: Mutex<HashMap<String, i64>>,
}

fn fresh_for_ms(max_age_secs: Option<u64>) -> i64 {
    (max_age_secs
        .unwrap_or(MIN_FRESH_SECS)
        .clamp(MIN_FRESH_SECS, MAX_FRESH_SECS)
        * 1000) as i64
}

impl KeyCache {
    pub fn new(fetcher: Fetcher) -> KeyCache {
        KeyCache {
            fetcher,
            ..KeyCache::default()
        }
    }

    /// The key set at `uri`: from memory, else the database, else the network.
    pub fn jwks(&self, conn: &Connection, uri: &str, now_ms: i64) -> Result<Arc<Jwks>, KeysError> {
        if let Some(entry) = self.jwks.lock().unwrap_or_else(|e| e.into_inner()).get(uri)
            && entry.expires_ms > now_ms
        {
            return Ok(entry.jwks.clone());
        }
        if let Ok(Some(doc)) = documents::get(conn, uri)
            && doc.expires_ms > now_ms
            && let Ok(jwks) = Jwks::parse(&doc.body)
        {
            return Ok(self.remember(uri, jwks, doc.expires_ms));
        }
        self.fetch_jwks(conn, uri, now_ms)
    }

    /// Refetches `uri` because a token named a `kid` it lacks; `None` when a
    /// refetch for this URI happened in the last 30 s.
    pub fn refetch_for_unknown_kid(
        &self,
        conn: &Connection,
        uri: &str,
        now_ms: i64,
    ) -> Result<Option<Arc<Jwks>>, KeysError> {
        {
            let mut last = self.last_refetch_ms.lock().unwrap_or_else(|e| e.into_inner());
            if last.get(uri).is_some_and(|at| now_ms - at < REFETCH_INTERVAL_MS) {
                return Ok(None);
            }
            last.insert(uri.to_string(), now_ms);
        }
        self.fetch_jwks(conn, uri, now_ms).map(Some)
    }

    fn fetch_jwks(&self, conn: &Connection, uri: &str, now_ms: i64) -> Result<Arc<Jwks>, KeysError> {
        let fetched = self.fetcher.get(uri).map_err(KeysError::Fetch)?;
        let jwks = Jwks::parse(&fetched.body).map_err(|why| KeysError::Invalid(format!("not a usable JWKS: {why}")))?;
        let expires_ms = now_ms + fresh_for_ms(fetched.max_age_secs);
        // Losing this write only costs a refetch after a restart.
        let _ = documents::put(
            conn,
            uri,
            &Document {
                body: fetched.body,
                fetched_ms: now_ms,
                expires_ms,
            },
        );
        Ok(self.remember(uri, jwks, expires_ms))
    }

    fn remember(&self, uri: &str, jwks: Jwks, expires_ms: i64) -> Arc<Jwks> {
        let jwks = Arc::new(jwks);
        self.jwks.lock().unwrap_or_else(|e| e.into_inner()).insert(
            uri.to_string(),
            Entry {
                jwks: jwks.clone(),
                expires_ms,
            },
        );
        jwks
    }

    /// A JSON metadata document (a Client ID Metadata Document), cached like a JWKS.
    pub fn json_document(&self, conn: &Connection, uri: &str, now_ms: i64) -> Result<serde_json::Value, KeysError> {
        let body = match documents::get(conn, uri) {
            Ok(Some(doc)) if doc.expires_ms > now_ms => doc.body,
            _ => {
                let fetched = self.fetcher.get(uri).map_err(KeysError::Fetch)?;
                let expires_ms = now_ms + fresh_for_ms(fetched.max_age_secs);
                let _ = documents::put(
                    conn,
                    uri,
                    &Document {
                        body: fetched.body.clone(),
                        fetched_ms: now_ms,
                        expires_ms,
                    },
                );
                fetched.body
            }
        };
        serde_json::from_slice(&body).map_err(|e| KeysError::Invalid(format!("not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_is_clamped_between_ten_minutes_and_a_day() {
        assert_eq!(fresh_for_ms(None), 600_000);
        assert_eq!(fresh_for_ms(Some(0)), 600_000);
        assert_eq!(fresh_for_ms(Some(3600)), 3_600_000);
        assert_eq!(fresh_for_ms(Some(10 * 86_400)), 86_400_000);
    }
}
