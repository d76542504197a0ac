//! The `registrations` table: one row per agent registration, its kind,
//! status and (once known) its user.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::model::{CredentialType, Generation, RegistrationKind, Status};
use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::registrations::*;
use crate::time::UnixMs;

/// The columns [`from_row`] reads, in order, for a table aliased `r`.
pub(crate) const COLUMNS: &str = "r.id, r.kind, r.status, r.user_id, r.created_ms, r.expires_ms, r.updated_ms, r.requested_credential_type, r.email, r.claim_failures, r.generation, r.scopes, r.last_used_ms";

pub(crate) fn from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Registration> {
    Ok(Registration {
        id: row.get(first)?,
        kind: super::text_enum(row, first + 1, RegistrationKind::from_db)?,
        status: super::text_enum(row, first + 2, Status::parse)?,
        user_id: row.get(first + 3)?,
        created_ms: row.get(first + 4)?,
        expires_ms: row.get(first + 5)?,
        updated_ms: row.get(first + 6)?,
        requested_credential_type: row
            .get::<_, Option<String>>(first + 7)?
            .and_then(|t| CredentialType::parse(&t)),
        email: row.get(first + 8)?,
        claim_failures: row.get(first + 9)?,
        generation: super::text_enum(row, first + 10, Generation::from_db)?,
        scopes: row.get(first + 11)?,
        last_used_ms: row.get(first + 12)?,
    })
}

/// The statements below, planned by `index_tests`: what is planned
/// there is what runs here.
pub(crate) static BY_CLAIM_TOKEN_HASH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM registrations r WHERE r.claim_token_hash = ?1"));
pub(crate) static BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM registrations r WHERE r.id = ?1"));
pub(crate) static LIST_BY_STATUS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM registrations r WHERE r.status = ?1 ORDER BY r.created_ms DESC LIMIT ?2")
});
pub(crate) static LIST_ALL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM registrations r ORDER BY r.rowid DESC LIMIT ?1"));

/// A user's live registrations, newest first (`registrations_of_user`),
/// over the user index `(user_id, created_ms)`: planned by `index_tests`.
/// `+r.status` keeps the status index out of it (it would scan every
/// registration of a status, whoever's).
pub(crate) static OF_USER_LIVE: LazyLock<String> = LazyLock::new(|| of_user("IN"));
/// A user's ended registrations, newest first.
pub(crate) static OF_USER_ENDED: LazyLock<String> = LazyLock::new(|| of_user("NOT IN"));

fn of_user(is_live: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM registrations r
         WHERE r.user_id = ?1 AND +r.status {is_live} ({}) ORDER BY r.created_ms DESC LIMIT ?2",
        live_statuses()
    )
}

/// The statement of `record_last_used`, one per registration: it writes
/// only a later instant, so a row already as late is left unwritten.
pub(crate) const RECORD_LAST_USED: &str =
    "UPDATE registrations SET last_used_ms = ?2 WHERE id = ?1 AND (last_used_ms IS NULL OR last_used_ms < ?2)";

/// SQL for "one of the live statuses", written out so the status index serves it.
fn live_statuses() -> String {
    Status::LIVE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The registrations `r` a selection chooses, as a condition with named
/// parameters (`:now` is the instant of the statement).
fn condition(chosen: Selection<'_>) -> String {
    let live = format!("r.status IN ({})", live_statuses());
    match chosen {
        Selection::All => live,
        Selection::Registration(_) => format!("{live} AND r.id = :id"),
        Selection::User(_) => format!("{live} AND r.user_id = :user"),
        Selection::Issuer { sub: None, .. } => {
            format!(
                "{live} AND (r.id IN (SELECT registration_id FROM delegations WHERE iss = :iss)
                 OR r.id IN (SELECT registration_id FROM pending_links WHERE iss = :iss))"
            )
        }
        Selection::Issuer { sub: Some(_), .. } => format!(
            "{live} AND (r.id IN (SELECT registration_id FROM delegations WHERE iss = :iss AND sub = :sub)
             OR r.id IN (SELECT registration_id FROM pending_links WHERE iss = :iss AND sub = :sub))"
        ),
        Selection::Lapsed => "r.expires_ms <= :now AND r.status IN ('unclaimed', 'pending_claim')".into(),
    }
}

/// `template` for the chosen registrations: `{where}` becomes the condition
/// on `registrations r`, `{chosen}` a subquery of their ids.
pub(crate) fn statement(template: &str, chosen: Selection<'_>) -> String {
    let condition = condition(chosen);
    template
        .replace(
            "{chosen}",
            &format!("SELECT r.id FROM registrations r WHERE {condition}"),
        )
        .replace("{where}", &condition)
}

/// Runs `template` ([`statement`]) for the chosen registrations at `now_ms`,
/// with `extra` named parameters; returns the rows changed.
pub(super) fn run_for(
    conn: &Connection,
    template: &str,
    chosen: Selection<'_>,
    now_ms: UnixMs,
    extra: &[(&str, &dyn rusqlite::ToSql)],
) -> rusqlite::Result<usize> {
    let mut args: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":now", &now_ms)];
    match &chosen {
        Selection::All | Selection::Lapsed => {}
        Selection::Registration(id) => args.push((":id", id)),
        Selection::User(user) => args.push((":user", user)),
        Selection::Issuer { iss, sub } => {
            args.push((":iss", iss));
            if let Some(sub) = sub {
                args.push((":sub", sub));
            }
        }
    }
    args.extend_from_slice(extra);
    conn.execute(&statement(template, chosen), args.as_slice())
}

/// The lookup of `user_has_other_agent`, planned by `index_tests`.
pub(crate) const OTHER_AGENT: &str = "SELECT 1 FROM registrations r WHERE r.user_id = ?1 AND r.id != ?2
     AND r.status IN ('claimed', 'active') LIMIT 1";

/// The statement of [`Registrations::end_registrations`].
pub(crate) const END: &str =
    "UPDATE registrations SET status = :status, expires_ms = NULL, updated_ms = :now WHERE id IN ({chosen})";

impl Registrations for Connection {
    fn insert_registration(&self, reg: &NewRegistration<'_>) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO registrations
               (id, kind, status, user_id, claim_token_hash, requested_credential_type, created_ms, expires_ms, updated_ms,
                email, generation, scopes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?9, ?10, ?11)",
        )?
        .execute(params![
            reg.id,
            reg.kind.as_db(),
            reg.status.as_str(),
            reg.user_id,
            reg.claim_token_hash.map(|h| &h[..]),
            reg.requested_credential_type.map(CredentialType::as_str),
            reg.created_ms,
            reg.expires_ms,
            reg.email,
            reg.generation.as_db(),
            reg.scopes,
        ])?;
        Ok(())
    }

    fn registration_by_claim_token_hash(&self, hash: &SecretHash) -> Result<Option<Registration>> {
        let mut stmt = self.prepare_cached(&BY_CLAIM_TOKEN_HASH)?;
        Ok(stmt.query_row([&hash[..]], |r| from_row(r, 0)).optional()?)
    }

    fn set_registration_status(&self, id: &str, status: Status, now_ms: UnixMs) -> Result<()> {
        self.prepare_cached("UPDATE registrations SET status = ?2, updated_ms = ?3 WHERE id = ?1")?
            .execute(params![id, status.as_str(), now_ms])?;
        Ok(())
    }

    /// The claim completed: the registration belongs to `user_id` and no longer expires.
    fn mark_claimed(&self, id: &str, user_id: &str, now_ms: UnixMs) -> Result<()> {
        self.prepare_cached(
            "UPDATE registrations SET status = 'claimed', user_id = ?2, expires_ms = NULL, updated_ms = ?3 WHERE id = ?1",
        )?
        .execute(params![id, user_id, now_ms])?;
        Ok(())
    }

    /// Counts one wrong code against the registration; returns the total.
    fn add_claim_failure(&self, id: &str) -> Result<i64> {
        Ok(self
            .prepare_cached(
                "UPDATE registrations SET claim_failures = claim_failures + 1 WHERE id = ?1 RETURNING claim_failures",
            )?
            .query_row([id], |r| r.get(0))?)
    }

    fn user_has_other_agent(&self, user_id: &str, except: &str) -> Result<bool> {
        Ok(self
            .prepare_cached(OTHER_AGENT)?
            .query_row([user_id, except], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn replace_claim_token(&self, id: &str, hash: &SecretHash) -> Result<()> {
        self.prepare_cached("UPDATE registrations SET claim_token_hash = ?2 WHERE id = ?1")?
            .execute(params![id, &hash[..]])?;
        Ok(())
    }

    fn registration(&self, id: &str) -> Result<Option<Registration>> {
        let mut stmt = self.prepare_cached(&BY_ID)?;
        Ok(stmt.query_row([id], |r| from_row(r, 0)).optional()?)
    }

    /// Registrations, newest first, optionally of one status (served by the
    /// status index). `limit` bounds the answer.
    fn registrations(&self, status: Option<Status>, limit: u32) -> Result<Vec<Registration>> {
        let rows = match status {
            Some(status) => {
                let mut stmt = self.prepare_cached(&LIST_BY_STATUS)?;
                stmt.query_map(params![status.as_str(), limit], |r| from_row(r, 0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            }
            None => {
                let mut stmt = self.prepare_cached(&LIST_ALL)?;
                stmt.query_map([limit], |r| from_row(r, 0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            }
        };
        Ok(rows)
    }

    fn end_registrations(&self, chosen: Selection<'_>, status: Status, now_ms: UnixMs) -> Result<usize> {
        // expires_ms is cleared so the expiry index only holds live candidates.
        Ok(run_for(self, END, chosen, now_ms, &[(":status", &status.as_str())])?)
    }

    fn registrations_of_user(&self, user_id: &str, live: bool, limit: u32) -> Result<Vec<Registration>> {
        let sql = if live { &OF_USER_LIVE } else { &OF_USER_ENDED };
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt
            .query_map(params![user_id, limit], |r| from_row(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn record_last_used(&self, uses: &[(String, UnixMs)]) -> Result<usize> {
        let mut stmt = self.prepare_cached(RECORD_LAST_USED)?;
        let mut changed = 0;
        for (id, at) in uses {
            changed += stmt.execute(params![id, at])?;
        }
        Ok(changed)
    }
}
