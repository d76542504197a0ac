//! The `registrations` table: one row per agent registration, its kind,
//! status and (once known) its user.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Error;
use crate::model::{CredentialType, RegistrationKind, Status};
use crate::secrets::SecretHash;

pub struct NewRegistration<'a> {
    pub id: &'a str,
    pub kind: RegistrationKind,
    pub status: Status,
    pub user_id: Option<&'a str>,
    pub claim_token_hash: Option<&'a SecretHash>,
    pub requested_credential_type: Option<CredentialType>,
    /// Verified-email registrations: the address (lower-cased).
    pub email: Option<&'a str>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
}

pub fn insert(conn: &Connection, reg: &NewRegistration<'_>) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO registrations
           (id, kind, status, user_id, claim_token_hash, requested_credential_type, created_ms, expires_ms, updated_ms,
            email)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?9)",
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
    ])?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub id: String,
    pub kind: RegistrationKind,
    pub status: Status,
    pub user_id: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub updated_ms: i64,
    pub requested_credential_type: Option<CredentialType>,
    pub email: Option<String>,
    pub claim_failures: i64,
}

impl Registration {
    /// Unclaimed (or pending) and past its TTL: as good as expired, even
    /// before the sweeper records it.
    pub fn lapsed(&self, now_ms: i64) -> bool {
        matches!(self.status, Status::Unclaimed | Status::PendingClaim)
            && self.expires_ms.is_some_and(|at| at <= now_ms)
    }
}

/// The columns [`from_row`] reads, in order, for a table aliased `r`.
pub(crate) const COLUMNS: &str = "r.id, r.kind, r.status, r.user_id, r.created_ms, r.expires_ms, r.updated_ms, r.requested_credential_type, r.email, r.claim_failures";

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
    })
}

/// The statements below, shared with `store::index_tests`: what is planned
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

pub fn by_claim_token_hash(conn: &Connection, hash: &SecretHash) -> Result<Option<Registration>, Error> {
    let mut stmt = conn.prepare_cached(&BY_CLAIM_TOKEN_HASH)?;
    Ok(stmt.query_row([&hash[..]], |r| from_row(r, 0)).optional()?)
}

pub fn set_status(conn: &Connection, id: &str, status: Status, now_ms: i64) -> Result<(), Error> {
    conn.prepare_cached("UPDATE registrations SET status = ?2, updated_ms = ?3 WHERE id = ?1")?
        .execute(params![id, status.as_str(), now_ms])?;
    Ok(())
}

/// The claim completed: the registration belongs to `user_id` and no longer expires.
pub fn mark_claimed(conn: &Connection, id: &str, user_id: &str, now_ms: i64) -> Result<(), Error> {
    conn.prepare_cached(
        "UPDATE registrations SET status = 'claimed', user_id = ?2, expires_ms = NULL, updated_ms = ?3 WHERE id = ?1",
    )?
    .execute(params![id, user_id, now_ms])?;
    Ok(())
}

/// Counts one wrong code against the registration; returns the total.
pub fn add_claim_failure(conn: &Connection, id: &str) -> Result<i64, Error> {
    Ok(conn
        .prepare_cached(
            "UPDATE registrations SET claim_failures = claim_failures + 1 WHERE id = ?1 RETURNING claim_failures",
        )?
        .query_row([id], |r| r.get(0))?)
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<Registration>, Error> {
    let mut stmt = conn.prepare_cached(&BY_ID)?;
    Ok(stmt.query_row([id], |r| from_row(r, 0)).optional()?)
}

/// Registrations, newest first, optionally of one status (served by the
/// status index). `limit` bounds the answer.
pub fn list(conn: &Connection, status: Option<Status>, limit: u32) -> Result<Vec<Registration>, Error> {
    let rows = match status {
        Some(status) => {
            let mut stmt = conn.prepare_cached(&LIST_BY_STATUS)?;
            stmt.query_map(params![status.as_str(), limit], |r| from_row(r, 0))?
                .collect::<Result<Vec<_>, _>>()?
        }
        None => {
            let mut stmt = conn.prepare_cached(&LIST_ALL)?;
            stmt.query_map([limit], |r| from_row(r, 0))?
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(rows)
}

/// SQL for "one of the live statuses", written out so the status index serves it.
fn live_statuses() -> String {
    Status::LIVE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who revoked, for the `registration.revoked` event (SPEC.md 8).
#[derive(Debug, Clone, Copy)]
pub struct RevokedBy<'a> {
    /// `provider` or `operator`.
    pub by: &'a str,
    pub iss: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub client_ip: Option<&'a str>,
}

impl RevokedBy<'_> {
    pub const OPERATOR: RevokedBy<'static> = RevokedBy {
        by: "operator",
        iss: None,
        sub: None,
        client_ip: None,
    };
}

/// Revokes one live registration, as [`revoke_selected`] does, recording
/// `registration.revoked` with who revoked and how many credentials.
/// Returns the number of credentials revoked, or `None` if the registration
/// was not live.
pub fn revoke(conn: &Connection, id: &str, who: &RevokedBy<'_>, now_ms: i64) -> Result<Option<usize>, Error> {
    let (registrations, credentials) = end_revoked(conn, Selection::Registration(id), now_ms)?;
    if registrations == 0 {
        return Ok(None);
    }
    let delegation = super::delegations::of_registration(conn, id)?;
    let (iss, sub) = match (&who.iss, &delegation) {
        (Some(_), _) | (_, None) => (who.iss, who.sub),
        (None, Some((iss, sub))) => (Some(iss.as_str()), Some(sub.as_str())),
    };
    super::audit::record(
        conn,
        now_ms,
        crate::model::EventName::RegistrationRevoked,
        super::audit::NewEvent {
            registration_id: Some(id),
            client_ip: who.client_ip,
            iss,
            sub,
            detail: serde_json::json!({ "by": who.by, "credentials_revoked": credentials })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Default::default()
        },
    )?;
    Ok(Some(credentials))
}

/// Which live registrations are revoked at once.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    All,
    /// One registration ([`revoke`]).
    Registration(&'a str),
    User(&'a str),
    /// Every delegation of an issuer, or of one of its subjects.
    Issuer {
        iss: &'a str,
        sub: Option<&'a str>,
    },
}

impl Selection<'_> {
    /// A condition on `registrations r`, with its parameters from `?2` on.
    fn condition(&self) -> (&'static str, Vec<&str>) {
        match *self {
            Selection::All => ("1 = 1", vec![]),
            Selection::Registration(id) => ("r.id = ?2", vec![id]),
            Selection::User(id) => ("r.user_id = ?2", vec![id]),
            Selection::Issuer { iss, sub: None } => (
                "r.id IN (SELECT registration_id FROM delegations WHERE iss = ?2)",
                vec![iss],
            ),
            Selection::Issuer { iss, sub: Some(sub) } => (
                "r.id IN (SELECT registration_id FROM delegations WHERE iss = ?2 AND sub = ?3)",
                vec![iss, sub],
            ),
        }
    }

    /// The live registrations chosen, as SQL, and its parameters (`?1` is `now_ms`).
    fn chosen(&self, now_ms: i64, extra: Option<&str>) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let (condition, args) = self.condition();
        let mut values: Vec<Value> = vec![now_ms.into()];
        values.extend(args.iter().map(|a| Value::from(a.to_string())));
        values.extend(extra.map(|e| Value::from(e.to_string())));
        (format!("r.status IN ({}) AND {condition}", live_statuses()), values)
    }
}

/// Revokes every live registration in `selection` and their credentials in
/// a few set-wide statements (one `registration.revoked` per registration),
/// so even a large database is shut off in one short transaction. Returns
/// (registrations, credentials) revoked.
pub fn revoke_selected(
    conn: &Connection,
    selection: Selection<'_>,
    by: &str,
    now_ms: i64,
) -> Result<(usize, usize), Error> {
    let detail = serde_json::json!({ "by": by }).to_string();
    let (live, values) = selection.chosen(now_ms, Some(&detail));
    let detail_index = values.len();
    conn.execute(
        &format!(
            "INSERT INTO audit_events (at_ms, event, registration_id, iss, sub, detail)
             SELECT ?1, 'registration.revoked', r.id, d.iss, d.sub, ?{detail_index}
             FROM registrations r LEFT JOIN delegations d ON d.registration_id = r.id
             WHERE {live}"
        ),
        rusqlite::params_from_iter(values),
    )?;
    end_revoked(conn, selection, now_ms)
}

/// How every revocation ends, whoever asked (operator, provider, one
/// registration or many): the credentials are revoked, open claim links
/// close and their codes are erased, ID-JAGs issued before now are refused,
/// and the registrations become `revoked`. Returns (registrations,
/// credentials) revoked. The caller records the audit events.
fn end_revoked(conn: &Connection, selection: Selection<'_>, now_ms: i64) -> Result<(usize, usize), Error> {
    let (live, values) = selection.chosen(now_ms, None);
    let [credentials, attempts, marks, registrations] = end_revoked_sql(&live);
    let run = |sql: &str| conn.execute(sql, rusqlite::params_from_iter(values.iter()));
    let credentials = run(&credentials)?;
    run(&attempts)?;
    run(&marks)?;
    let registrations = run(&registrations)?;
    Ok((registrations, credentials))
}

/// The statements of [`end_revoked`] for the registrations `r` where `live`
/// holds (also planned by `store::index_tests`).
pub(crate) fn end_revoked_sql(live: &str) -> [String; 4] {
    let chosen = format!("SELECT r.id FROM registrations r WHERE {live}");
    [
        format!("UPDATE credentials SET revoked_ms = ?1 WHERE revoked_ms IS NULL AND registration_id IN ({chosen})"),
        format!(
            "UPDATE claim_attempts SET status = 'closed', otp_mac = NULL, otp_expires_ms = ?1
             WHERE status = 'open' AND registration_id IN ({chosen})"
        ),
        // ID-JAGs that arrived before this revocation stop working too, on
        // this server's clock (`delegations::RevocationMarks`); a later one
        // from a still-trusted provider registers again.
        format!(
            "INSERT INTO provider_revocations (iss, sub, revoked_ms)
             SELECT iss, sub, ?1 FROM delegations WHERE registration_id IN ({chosen})
             ON CONFLICT (iss, sub) DO UPDATE SET revoked_ms = excluded.revoked_ms
             WHERE provider_revocations.revoked_ms IS NULL OR provider_revocations.revoked_ms < excluded.revoked_ms"
        ),
        format!(
            "UPDATE registrations SET status = 'revoked', expires_ms = NULL, updated_ms = ?1 WHERE id IN ({chosen})"
        ),
    ]
}

/// The statements that revoke one registration ([`revoke`]), for `store::index_tests`.
#[cfg(test)]
pub(crate) fn revoke_one_sql() -> [String; 4] {
    end_revoked_sql(&Selection::Registration("").chosen(0, None).0)
}

/// Unclaimed (or pending) registrations past their TTL become `expired`,
/// each recorded once as `registration.expired`; their open claim links
/// close. Set-wide statements over the expiry index. Returns how many.
pub fn expire_lapsed(conn: &Connection, now_ms: i64) -> Result<usize, Error> {
    let lapsed = "expires_ms <= ?1 AND status IN ('unclaimed', 'pending_claim')";
    conn.execute(
        &format!(
            "INSERT INTO audit_events (at_ms, event, registration_id, detail)
             SELECT ?1, 'registration.expired', id, '{{}}' FROM registrations WHERE {lapsed}"
        ),
        [now_ms],
    )?;
    conn.execute(
        &format!(
            "UPDATE claim_attempts SET status = 'closed', otp_mac = NULL
             WHERE status = 'open' AND registration_id IN (SELECT id FROM registrations WHERE {lapsed})"
        ),
        [now_ms],
    )?;
    // expires_ms is cleared so the expiry index only ever holds live candidates.
    Ok(conn.execute(
        &format!("UPDATE registrations SET status = 'expired', expires_ms = NULL, updated_ms = ?1 WHERE {lapsed}"),
        [now_ms],
    )?)
}
