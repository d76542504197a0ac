//! The keys that sign authmd's own assertions (SPEC-v0.7 5.3): one current
//! key signs; `authmd keys rotate` makes a new one current and retires the
//! old, which stays published (and accepted) until its last assertion has
//! expired: `retired + assertion_ttl_secs + clock_skew_secs`. The first key
//! is made on first start. Keys live only in the database.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::detail;
use crate::error::Error;
use crate::jose::Jwks;
use crate::jose::sign::{self, SigningKey};
use crate::model::EventName;
use crate::settings::Settings;
use crate::store::Tx;
use crate::store::audit::NewEvent;
use crate::store::signing_keys::StoredSigningKey;
use crate::time::UnixMs;

/// A key as `authmd keys list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub created_ms: UnixMs,
    /// `None` for the current key.
    pub retired_ms: Option<UnixMs>,
}

/// Makes the first key if there is none (first start); returns the current
/// key's `kid`.
pub fn ensure_current(tx: &dyn Tx, now_ms: UnixMs) -> Result<String, Error> {
    if let Some(current) = tx.signing_keys()?.into_iter().find(|k| k.retired_ms.is_none()) {
        return Ok(current.kid);
    }
    let (kid, pkcs8) = fresh()?;
    tx.rotate_signing_key(&kid, &pkcs8, now_ms)?;
    Ok(kid)
}

/// A new current key; the previous one retires. Keys whose last assertion
/// has expired are dropped. Records `signing_key.rotated`. Returns the new
/// `kid` and the retired one.
pub fn rotate(tx: &dyn Tx, settings: &Settings, now_ms: UnixMs) -> Result<(String, Option<String>), Error> {
    tx.drop_signing_keys_retired_before(now_ms - accepted_after_retirement(settings))?;
    let (kid, pkcs8) = fresh()?;
    let retired = tx.rotate_signing_key(&kid, &pkcs8, now_ms)?;
    let event = NewEvent {
        detail: detail(json!({ "kid": kid, "retired_kid": retired })),
        ..Default::default()
    };
    tx.record_event(now_ms, EventName::SigningKeyRotated, event)?;
    Ok((kid, retired))
}

/// The key that signs now.
pub fn current(tx: &dyn Tx) -> Result<Arc<SigningKey>, Error> {
    let keys = tx.signing_keys()?;
    let current = keys
        .iter()
        .find(|k| k.retired_ms.is_none())
        .ok_or_else(|| Error::Internal("no current signing key (the server makes one at start)".into()))?;
    load(current)
}

/// Every key kept, the current one first.
pub fn list(tx: &dyn Tx) -> Result<Vec<KeyInfo>, Error> {
    Ok(tx
        .signing_keys()?
        .into_iter()
        .map(|k| KeyInfo {
            kid: k.kid,
            created_ms: k.created_ms,
            retired_ms: k.retired_ms,
        })
        .collect())
}

/// The keys `/.well-known/jwks.json` lists and the token endpoint accepts:
/// the current one first, then each retired key whose assertions may still
/// be live at `now_ms`.
pub fn published(tx: &dyn Tx, settings: &Settings, now_ms: UnixMs) -> Result<Vec<Arc<SigningKey>>, Error> {
    let window = accepted_after_retirement(settings);
    tx.signing_keys()?
        .into_iter()
        .filter(|k| k.retired_ms.is_none_or(|retired| retired + window > now_ms))
        .map(|k| load(&k))
        .collect()
}

/// The published keys as a key set to verify against, parsed once per set
/// of keys (a `kid` names its key material): the token endpoint checks every
/// exchange against it.
pub fn published_jwks(tx: &dyn Tx, settings: &Settings, now_ms: UnixMs) -> Result<Arc<Jwks>, Error> {
    static PARSED_SET: Mutex<Option<(Vec<String>, Arc<Jwks>)>> = Mutex::new(None);
    let keys = published(tx, settings, now_ms)?;
    let kids: Vec<String> = keys.iter().map(|k| k.kid().to_string()).collect();
    let mut parsed = PARSED_SET.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((known, jwks)) = parsed.as_ref()
        && *known == kids
    {
        return Ok(jwks.clone());
    }
    let set = json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() });
    let jwks = Arc::new(
        Jwks::parse(set.to_string().as_bytes())
            .map_err(|_| Error::Internal("the published keys do not parse".into()))?,
    );
    *parsed = Some((kids, jwks.clone()));
    Ok(jwks)
}

/// How long a retired key's assertions can still be valid.
fn accepted_after_retirement(settings: &Settings) -> Duration {
    Duration::from_secs(settings.assertion_ttl_secs + settings.clock_skew_secs)
}

fn fresh() -> Result<(String, Vec<u8>), Error> {
    let pkcs8 = sign::generate_pkcs8();
    let key = SigningKey::from_pkcs8(&pkcs8).map_err(Error::Internal)?;
    Ok((key.kid().to_string(), pkcs8))
}

/// Keys parsed from their PKCS#8, by `kid` (which names the key material):
/// parsing validates the key, far dearer than the row read, and would
/// otherwise run for every assertion signed or checked. A handful of entries,
/// pruned to the keys still kept.
static PARSED: Mutex<BTreeMap<String, Arc<SigningKey>>> = Mutex::new(BTreeMap::new());

fn load(stored: &StoredSigningKey) -> Result<Arc<SigningKey>, Error> {
    let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(key) = parsed.get(&stored.kid) {
        return Ok(key.clone());
    }
    let key = SigningKey::from_pkcs8(&stored.pkcs8)
        .map_err(|why| Error::Internal(format!("signing key {}: {why}", stored.kid)))?;
    if key.kid() != stored.kid {
        return Err(Error::Internal(format!(
            "signing key {}: its kid does not match its key",
            stored.kid
        )));
    }
    if parsed.len() >= 16 {
        parsed.clear();
    }
    let key = Arc::new(key);
    parsed.insert(stored.kid.clone(), key.clone());
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_is_made_once_and_a_retired_key_is_published_until_its_assertions_expire() {
        let (_dir, conn) = crate::store::open_temp();
        let tx: &dyn Tx = &conn;
        let settings = Settings::default();
        let t0 = UnixMs::from_millis(1_800_000_000_000);
        assert!(list(tx).unwrap().is_empty());
        let first = ensure_current(tx, t0).unwrap();
        assert_eq!(ensure_current(tx, t0).unwrap(), first, "made once");
        let (second, retired) = rotate(tx, &settings, t0).unwrap();
        assert_eq!(retired.as_deref(), Some(first.as_str()));
        let kids = |at| {
            published(tx, &settings, at)
                .unwrap()
                .iter()
                .map(|k| k.kid().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(t0), [second.clone(), first.clone()], "current first");
        let window = accepted_after_retirement(&settings);
        assert_eq!(
            kids(t0 + window - Duration::from_millis(1)),
            [second.clone(), first.clone()]
        );
        assert_eq!(
            kids(t0 + window),
            std::slice::from_ref(&second),
            "its last assertion has expired"
        );
        let (third, _) = rotate(tx, &settings, t0 + window).unwrap();
        let listed: Vec<String> = list(tx).unwrap().into_iter().map(|k| k.kid).collect();
        assert_eq!(listed, [third, second], "the expired key was dropped");
    }
}
