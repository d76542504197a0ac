//! Changing a setting (`authmd config set`, `authmd::configure`): the value
//! is normalised, and the whole resulting set is checked inside the
//! transaction, so two concurrent changes cannot combine into an
//! inconsistent one; each change is audited as `setting.changed` (a secret
//! value shown only as set).

use serde_json::json;

use super::detail;
use crate::error::Error;
use crate::model::EventName;
use crate::settings::{self, Settings};
use crate::store::Tx;
use crate::store::audit::NewEvent;
use crate::time::UnixMs;

/// Sets `key` to `value` (`""` returns it to its default). The inner
/// `Err` says why the value, or the set it would make, is refused; nothing
/// is written then. `Ok` carries the value as stored (`None`: the default).
pub fn set(tx: &dyn Tx, key: &str, value: &str, now_ms: UnixMs) -> Result<Result<Option<String>, String>, Error> {
    let normalized = match settings::normalize(key, value) {
        Ok(normalized) => normalized,
        Err(why) => return Ok(Err(why)),
    };
    if settings::def(key).map(|d| d.kind) == Some(settings::Kind::Path)
        && !value.is_empty()
        && let Err(e) = std::fs::read_to_string(value)
    {
        return Ok(Err(format!("`{key}`: cannot read {value}: {e}")));
    }
    let mut stored = tx.stored_settings()?;
    match &normalized {
        Some(v) => stored.insert(key.to_string(), v.clone()),
        None => stored.remove(key),
    };
    if let Err(why) = Settings::from_stored(&stored) {
        return Ok(Err(why));
    }
    tx.put_setting(key, normalized.as_deref(), now_ms)?;
    let shown = normalized.as_deref().map(|v| settings::display(key, v));
    let event = NewEvent {
        detail: detail(json!({ "key": key, "value": shown })),
        ..Default::default()
    };
    tx.record_event(now_ms, EventName::SettingChanged, event)?;
    Ok(Ok(normalized))
}
