//! The `registrations` table: one row per agent registration, its kind,
//! status and (once known) its user; and the set-wide statements of a
//! [`Selection`].

use postgres::Row;

use super::{Columns, Param, PgTx};
use crate::model::{CredentialType, Generation, RegistrationKind, Status};
use crate::secrets::SecretHash;
use crate::store::Result;
use crate::store::registrations::*;
use crate::time::UnixMs;

/// The columns [`from_row`] reads, in order, for a table aliased `r`.
pub(super) const COLUMNS: &str = "r.id, r.kind, r.status, r.user_id, r.created_ms, r.expires_ms, r.updated_ms, r.requested_credential_type, r.email, r.claim_failures, r.generation, r.scopes, r.last_used_ms";

pub(super) fn from_row(row: &Row, first: usize) -> Result<Registration> {
    Ok(Registration {
        id: row.col(first)?,
        kind: row.parsed(first + 1, RegistrationKind::from_db)?,
        status: row.parsed(first + 2, Status::parse)?,
        user_id: row.col(first + 3)?,
        created_ms: row.ms(first + 4)?,
        expires_ms: row.ms_opt(first + 5)?,
        updated_ms: row.ms(first + 6)?,
        requested_credential_type: row.col::<Option<&str>>(first + 7)?.and_then(CredentialType::parse),
        email: row.col(first + 8)?,
        claim_failures: row.int(first + 9)?,
        generation: row.parsed(first + 10, Generation::from_db)?,
        scopes: row.col(first + 11)?,
        last_used_ms: row.ms_opt(first + 12)?,
    })
}

fn rows(found: Vec<Row>) -> Result<Vec<Registration>> {
    found.iter().map(|r| from_row(r, 0)).collect()
}

/// SQL for "one of the live statuses".
fn live_statuses() -> String {
    Status::LIVE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The registrations `r` a selection chooses, as a condition; `$1` is the
/// instant of the statement, the selection's own values are `$next`
/// onwards (in the order [`run_for`] binds them).
fn condition(chosen: Selection<'_>, next: usize) -> String {
    let live = format!("r.status IN ({})", live_statuses());
    let (a, b) = (format!("${next}"), format!("${}", next + 1));
    match chosen {
        Selection::All => live,
        Selection::Registration(_) => format!("{live} AND r.id = {a}"),
        Selection::User(_) => format!("{live} AND r.user_id = {a}"),
        Selection::Issuer { sub: None, .. } => format!(
            "{live} AND (r.id IN (SELECT registration_id FROM delegations WHERE iss = {a})
             OR r.id IN (SELECT registration_id FROM pending_links WHERE iss = {a}))"
        ),
        Selection::Issuer { sub: Some(_), .. } => format!(
            "{live} AND (r.id IN (SELECT registration_id FROM delegations WHERE iss = {a} AND sub = {b})
             OR r.id IN (SELECT registration_id FROM pending_links WHERE iss = {a} AND sub = {b}))"
        ),
        Selection::Lapsed => "r.expires_ms <= $1 AND r.status IN ('unclaimed', 'pending_claim')".into(),
    }
}

/// `template` for the chosen registrations: `{where}` becomes the
/// condition on `registrations r`, `{chosen}` a subquery of their ids;
/// `$1` is the instant, `$2..` the `extra` values.
pub(super) fn statement(template: &str, chosen: Selection<'_>, extra: usize) -> String {
    let condition = condition(chosen, 2 + extra);
    template
        .replace(
            "{chosen}",
            &format!("SELECT r.id FROM registrations r WHERE {condition}"),
        )
        .replace("{where}", &condition)
}

/// Runs `template` ([`statement`]) for the chosen registrations at
/// `now_ms`, with `extra` values; returns the rows changed. Each is one
/// statement, so it changes the set as it is when it runs (READ COMMITTED
/// re-checks the condition on a row another transaction changed meanwhile).
pub(super) fn run_for(
    tx: &PgTx<'_>,
    template: &str,
    chosen: Selection<'_>,
    now_ms: UnixMs,
    extra: &[Param<'_>],
) -> Result<usize> {
    let now = now_ms.millis();
    let values: Vec<&str> = match chosen {
        Selection::All | Selection::Lapsed => vec![],
        Selection::Registration(id) => vec![id],
        Selection::User(user) => vec![user],
        Selection::Issuer { iss, sub } => [Some(iss), sub].into_iter().flatten().collect(),
    };
    let mut params: Vec<Param<'_>> = vec![&now];
    params.extend_from_slice(extra);
    params.extend(values.iter().map(|v| v as Param<'_>));
    tx.execute(&statement(template, chosen, extra.len()), &params)
}

/// The statement of [`Registrations::end_registrations`].
pub(super) const END: &str =
    "UPDATE registrations SET status = $2, expires_ms = NULL, updated_ms = $1 WHERE id IN ({chosen})";

impl Registrations for PgTx<'_> {
    fn insert_registration(&self, reg: &NewRegistration<'_>) -> Result<()> {
        self.execute(
            "INSERT INTO registrations
               (id, kind, status, user_id, claim_token_hash, requested_credential_type, created_ms, expires_ms, updated_ms,
                email, generation, scopes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $9, $10, $11)",
            &[
                &reg.id,
                &reg.kind.as_db(),
                &reg.status.as_str(),
                &reg.user_id,
                &reg.claim_token_hash.map(|h| &h[..]),
                &reg.requested_credential_type.map(CredentialType::as_str),
                &reg.created_ms.millis(),
                &reg.expires_ms.map(UnixMs::millis),
                &reg.email,
                &reg.generation.as_db(),
                &reg.scopes,
            ],
        )?;
        Ok(())
    }

    fn registration(&self, id: &str) -> Result<Option<Registration>> {
        self.first(
            &format!("SELECT {COLUMNS} FROM registrations r WHERE r.id = $1"),
            &[&id],
        )?
        .map(|r| from_row(&r, 0))
        .transpose()
    }

    fn registration_by_claim_token_hash(&self, hash: &SecretHash) -> Result<Option<Registration>> {
        self.first(
            &format!("SELECT {COLUMNS} FROM registrations r WHERE r.claim_token_hash = $1"),
            &[&&hash[..]],
        )?
        .map(|r| from_row(&r, 0))
        .transpose()
    }

    fn set_registration_status(&self, id: &str, status: Status, now_ms: UnixMs) -> Result<()> {
        self.execute(
            "UPDATE registrations SET status = $2, updated_ms = $3 WHERE id = $1",
            &[&id, &status.as_str(), &now_ms.millis()],
        )?;
        Ok(())
    }

    fn mark_claimed(&self, id: &str, user_id: &str, now_ms: UnixMs) -> Result<()> {
        self.execute(
            "UPDATE registrations SET status = 'claimed', user_id = $2, expires_ms = NULL, updated_ms = $3 WHERE id = $1",
            &[&id, &user_id, &now_ms.millis()],
        )?;
        Ok(())
    }

    fn replace_claim_token(&self, id: &str, hash: &SecretHash) -> Result<()> {
        self.execute(
            "UPDATE registrations SET claim_token_hash = $2 WHERE id = $1",
            &[&id, &&hash[..]],
        )?;
        Ok(())
    }

    fn user_has_other_agent(&self, user_id: &str, except: &str) -> Result<bool> {
        Ok(self
            .first(
                "SELECT 1 FROM registrations r WHERE r.user_id = $1 AND r.id <> $2
                 AND r.status IN ('claimed', 'active') LIMIT 1",
                &[&user_id, &except],
            )?
            .is_some())
    }

    /// One statement: the row lock orders concurrent increments, so each
    /// node's count is counted and each sees the total after its own.
    fn add_claim_failure(&self, id: &str) -> Result<i64> {
        self.one(
            "UPDATE registrations SET claim_failures = claim_failures + 1 WHERE id = $1 RETURNING claim_failures",
            &[&id],
        )?
        .int(0)
    }

    /// Newest first. SQLite's unfiltered list goes by insertion (rowid);
    /// here there is none, so by creation time, then id, descending.
    fn registrations(&self, status: Option<Status>, limit: u32) -> Result<Vec<Registration>> {
        let limit = i64::from(limit);
        match status {
            Some(status) => rows(self.query(
                &format!(
                    "SELECT {COLUMNS} FROM registrations r WHERE r.status = $1
                     ORDER BY r.created_ms DESC, r.id DESC LIMIT $2"
                ),
                &[&status.as_str(), &limit],
            )?),
            None => rows(self.query(
                &format!("SELECT {COLUMNS} FROM registrations r ORDER BY r.created_ms DESC, r.id DESC LIMIT $1"),
                &[&limit],
            )?),
        }
    }

    fn end_registrations(&self, chosen: Selection<'_>, status: Status, now_ms: UnixMs) -> Result<usize> {
        run_for(self, END, chosen, now_ms, &[&status.as_str()])
    }

    /// Over the user index `(user_id, created_ms)`, newest first.
    fn registrations_of_user(&self, user_id: &str, live: bool, limit: u32) -> Result<Vec<Registration>> {
        let is_live = if live { "IN" } else { "NOT IN" };
        rows(self.query(
            &format!(
                "SELECT {COLUMNS} FROM registrations r WHERE r.user_id = $1 AND r.status {is_live} ({})
                 ORDER BY r.created_ms DESC, r.id DESC LIMIT $2",
                live_statuses()
            ),
            &[&user_id, &i64::from(limit)],
        )?)
    }

    /// One statement per registration, each writing only a later instant
    /// (`GREATEST` by condition), so two nodes' batches agree on the latest
    /// whichever commits last, and an unchanged row is not rewritten.
    fn record_last_used(&self, uses: &[(String, UnixMs)]) -> Result<usize> {
        let mut changed = 0;
        for (id, at) in uses {
            changed += self.execute(
                "UPDATE registrations SET last_used_ms = $2
                 WHERE id = $1 AND (last_used_ms IS NULL OR last_used_ms < $2)",
                &[id, &at.millis()],
            )?;
        }
        Ok(changed)
    }
}
