//! The `audit_events` table: an append-only record of every state change,
//! written in the same transaction as the change itself.

use rusqlite::{Connection, Row, params};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::model::EventName;

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

pub fn record(conn: &Connection, now_ms: i64, name: EventName, event: NewEvent<'_>) -> Result<(), Error> {
    conn.prepare_cached(
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

/// A recorded event, as `authmd audit` shows it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub at_ms: i64,
    pub name: String,
    pub registration_id: Option<String>,
    pub client_ip: Option<String>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub agent_platform: Option<String>,
    pub agent_context_id: Option<String>,
    pub detail: Map<String, Value>,
}

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

#[derive(Debug, Default)]
pub struct Filter {
    pub event: Option<EventName>,
    pub since_ms: Option<i64>,
    /// Only events with an id above this one (for following).
    pub after_id: i64,
    pub limit: Option<u32>,
}

/// Events matching `filter`, oldest first. The query is built for the filter
/// given, so SQLite can serve each form from the rowid, event or time index.
pub fn list(conn: &Connection, filter: &Filter) -> Result<Vec<Event>, Error> {
    let mut stmt = conn.prepare_cached(&list_sql(filter))?;
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
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The statement [`list`] runs for `filter` (also planned by `store::index_tests`).
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
