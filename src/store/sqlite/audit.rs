//! The `audit_events` table: an append-only record of every state change,
//! written in the same transaction as the change itself.

use rusqlite::{Connection, Row, params};
use serde_json::{Map, Value};

use crate::model::EventName;
use crate::store::Result;
use crate::store::audit::*;
use crate::store::registrations::Selection;
use crate::time::UnixMs;

fn from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let detail: String = row.get(9)?;
    Ok(Event {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        name: row.get(2)?,
        registration_id: row.get(3)?,
        client_ip: row.get(4)?,
        iss: row.get(5)?,
        sub: row.get(6)?,
        agent_platform: row.get(7)?,
        agent_context_id: row.get(8)?,
        detail: serde_json::from_str(&detail).unwrap_or_default(),
    })
}

/// The statement `events` runs for `filter` (also planned by `index_tests`).
pub(crate) fn list_sql(filter: &Filter) -> String {
    let mut sql = String::from(
        "SELECT id, at_ms, event, registration_id, client_ip, iss, sub, agent_platform, agent_context_id, detail
         FROM audit_events WHERE id > ?1",
    );
    if filter.event.is_some() {
        sql.push_str(" AND event = ?2");
    }
    if filter.since_ms.is_some() {
        sql.push_str(" AND at_ms >= ?3");
    }
    sql.push_str(" ORDER BY id LIMIT ?4");
    sql
}

/// The statement of [`Audit::record_event_for_each`].
pub(crate) const FOR_EACH: &str = "INSERT INTO audit_events (at_ms, event, registration_id, iss, sub, detail)
     SELECT :now, :event, r.id, d.iss, d.sub, :detail
     FROM registrations r LEFT JOIN delegations d ON d.registration_id = r.id
     WHERE {where}";

/// The statement of [`Audit::prune_events`] (planned by `index_tests`: the
/// oldest rows found through `audit_events_by_time`).
pub(crate) const PRUNE: &str = "DELETE FROM audit_events WHERE id IN
       (SELECT id FROM audit_events WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)";

impl Audit for Connection {
    fn record_event(&self, now_ms: UnixMs, name: EventName, event: NewEvent<'_>) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO audit_events
               (at_ms, event, registration_id, client_ip, iss, sub, agent_platform, agent_context_id, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            now_ms,
            name.as_str(),
            event.registration_id,
            event.client_ip,
            event.iss,
            event.sub,
            event.agent_platform,
            event.agent_context_id,
            Value::Object(event.detail).to_string(),
        ])?;
        Ok(())
    }

    /// Events matching `filter`, oldest first. The query is built for the filter
    /// given, so SQLite can serve each form from the rowid, event or time index.
    fn events(&self, filter: &Filter) -> Result<Vec<Event>> {
        let mut stmt = self.prepare_cached(&list_sql(filter))?;
        let limit = filter.limit.map_or(-1, i64::from);
        let event = filter.event.map(EventName::as_str);
        let mut args: Vec<(&str, &dyn rusqlite::ToSql)> = vec![("?1", &filter.after_id), ("?4", &limit)];
        if filter.event.is_some() {
            args.push(("?2", &event));
        }
        if filter.since_ms.is_some() {
            args.push(("?3", &filter.since_ms));
        }
        let rows = stmt.query_map(args.as_slice(), from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn last_event_id(&self) -> Result<i64> {
        Ok(self.query_row("SELECT coalesce(max(id), 0) FROM audit_events", [], |r| r.get(0))?)
    }

    fn prune_events(&self, before_ms: UnixMs, limit: u32) -> Result<usize> {
        Ok(self.prepare_cached(PRUNE)?.execute(params![before_ms, limit])?)
    }

    fn record_event_for_each(
        &self,
        chosen: Selection<'_>,
        now_ms: UnixMs,
        name: EventName,
        detail: &Map<String, Value>,
    ) -> Result<usize> {
        let detail = Value::Object(detail.clone()).to_string();
        Ok(super::registrations::run_for(
            self,
            FOR_EACH,
            chosen,
            now_ms,
            &[(":event", &name.as_str()), (":detail", &detail)],
        )?)
    }
}
