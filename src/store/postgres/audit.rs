//! The `audit_events` table: an append-only record of every state change,
//! written in the same transaction as the change itself.

use postgres::Row;
use serde_json::{Map, Value};

use super::{Columns, Param, PgTx, registrations};
use crate::model::EventName;
use crate::store::Result;
use crate::store::audit::*;
use crate::store::registrations::Selection;
use crate::time::UnixMs;

fn from_row(row: &Row) -> Result<Event> {
    let detail: &str = row.col(9)?;
    Ok(Event {
        id: row.col(0)?,
        at_ms: row.ms(1)?,
        name: row.col(2)?,
        registration_id: row.col(3)?,
        client_ip: row.col(4)?,
        iss: row.col(5)?,
        sub: row.col(6)?,
        agent_platform: row.col(7)?,
        agent_context_id: row.col(8)?,
        detail: serde_json::from_str(detail).unwrap_or_default(),
    })
}

/// The statement of [`Audit::record_event_for_each`] (the casts: a
/// parameter in a SELECT list has no type of its own).
const FOR_EACH: &str = "INSERT INTO audit_events (at_ms, event, registration_id, iss, sub, detail)
     SELECT $1::BIGINT, $2::TEXT, r.id, d.iss, d.sub, $3::TEXT
     FROM registrations r LEFT JOIN delegations d ON d.registration_id = r.id
     WHERE {where}";

impl Audit for PgTx<'_> {
    fn record_event(&self, now_ms: UnixMs, name: EventName, event: NewEvent<'_>) -> Result<()> {
        self.execute(
            "INSERT INTO audit_events
               (at_ms, event, registration_id, client_ip, iss, sub, agent_platform, agent_context_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &now_ms.millis(),
                &name.as_str(),
                &event.registration_id,
                &event.client_ip,
                &event.iss,
                &event.sub,
                &event.agent_platform,
                &event.agent_context_id,
                &Value::Object(event.detail).to_string(),
            ],
        )?;
        Ok(())
    }

    /// Oldest first, by id. Ids come from a sequence: a transaction that
    /// commits later may hold a lower id than one already read, so a
    /// follower reading past `after_id` can miss it (SQLite's one writer
    /// hands ids out in commit order).
    fn events(&self, filter: &Filter) -> Result<Vec<Event>> {
        let event = filter.event.map(EventName::as_str);
        let since = filter.since_ms.map(UnixMs::millis);
        let limit = filter.limit.map(i64::from);
        let mut sql = String::from(
            "SELECT id, at_ms, event, registration_id, client_ip, iss, sub, agent_platform, agent_context_id, detail
             FROM audit_events WHERE id > $1",
        );
        let mut params: Vec<Param<'_>> = vec![&filter.after_id];
        if let Some(event) = &event {
            params.push(event);
            sql.push_str(&format!(" AND event = ${}", params.len()));
        }
        if let Some(since) = &since {
            params.push(since);
            sql.push_str(&format!(" AND at_ms >= ${}", params.len()));
        }
        // LIMIT NULL: no limit.
        params.push(&limit);
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", params.len()));
        self.query(&sql, &params)?.iter().map(from_row).collect()
    }

    fn last_event_id(&self) -> Result<i64> {
        self.one("SELECT coalesce(max(id), 0)::BIGINT FROM audit_events", &[])?
            .col(0)
    }

    /// The oldest first, through `audit_events_by_time`.
    fn prune_events(&self, before_ms: UnixMs, limit: u32) -> Result<usize> {
        self.execute(
            "DELETE FROM audit_events WHERE id IN
               (SELECT id FROM audit_events WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
            &[&before_ms.millis(), &i64::from(limit)],
        )
    }

    fn record_event_for_each(
        &self,
        chosen: Selection<'_>,
        now_ms: UnixMs,
        name: EventName,
        detail: &Map<String, Value>,
    ) -> Result<usize> {
        let detail = Value::Object(detail.clone()).to_string();
        registrations::run_for(self, FOR_EACH, chosen, now_ms, &[&name.as_str(), &detail])
    }
}
