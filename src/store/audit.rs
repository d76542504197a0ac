//! The audit log: an append-only record of every state change, written in
//! the same transaction as the change itself.

use serde_json::{Map, Value};

use super::Result;
use super::registrations::Selection;
use crate::model::EventName;
use crate::time::UnixMs;

/// One event to record. Never put a secret in any field.
#[derive(Debug, Default)]
pub struct NewEvent<'a> {
    pub registration_id: Option<&'a str>,
    pub client_ip: Option<&'a str>,
    pub iss: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub agent_platform: Option<&'a str>,
    pub agent_context_id: Option<&'a str>,
    /// The event's other fields (SPEC.md section 8).
    pub detail: Map<String, Value>,
}

/// A recorded event, as `authmd audit` shows it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub at_ms: UnixMs,
    pub name: String,
    pub registration_id: Option<String>,
    pub client_ip: Option<String>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub agent_platform: Option<String>,
    pub agent_context_id: Option<String>,
    pub detail: Map<String, Value>,
}

#[derive(Debug, Default)]
pub struct Filter {
    pub event: Option<EventName>,
    pub since_ms: Option<UnixMs>,
    /// Only events with an id above this one (for following).
    pub after_id: i64,
    pub limit: Option<u32>,
}

pub trait Audit {
    fn record_event(&self, now_ms: UnixMs, name: EventName, event: NewEvent<'_>) -> Result<()>;
    /// Events matching `filter`, oldest first.
    fn events(&self, filter: &Filter) -> Result<Vec<Event>>;
    /// The highest event id so far (0: none): where `audit --follow` starts.
    fn last_event_id(&self) -> Result<i64>;
    /// Deletes up to `limit` of the oldest events recorded before
    /// `before_ms` (audit retention, by the sweeper, through the time
    /// index); returns how many. The caller loops, one transaction a batch.
    fn prune_events(&self, before_ms: UnixMs, limit: u32) -> Result<usize>;
    /// Records `name` once for each chosen registration, with the `iss` and
    /// `sub` of its delegation if it has one; returns how many.
    fn record_event_for_each(
        &self,
        chosen: Selection<'_>,
        now_ms: UnixMs,
        name: EventName,
        detail: &Map<String, Value>,
    ) -> Result<usize>;
}
