//! The `delegations` and `provider_revocations` tables: which user and
//! registration stand behind a provider's `(iss, sub)`, and what the provider
//! has revoked (SPEC.md 3.2, 4.4, 6).

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::Generation;
use crate::store::Result;
use crate::store::delegations::*;
use crate::store::registrations::Selection;
use crate::time::{UnixMs, UnixSecs};

/// The lookups below, planned by `index_tests`.
pub(crate) const GET: &str = "SELECT iss, sub, generation, user_id, registration_id FROM delegations WHERE iss = ?1 AND sub = ?2 AND ended_ms IS NULL";
pub(crate) const OF_REGISTRATION: &str = "SELECT iss, sub FROM delegations WHERE registration_id = ?1";
pub(crate) const REVOCATION_MARKS: &str =
    "SELECT revoked_iat, revoked_ms FROM provider_revocations WHERE iss = ?1 AND sub = ?2";

/// The statement of [`Delegations::mark_revoked_here`]: never lowers a mark.
pub(crate) const MARK_HERE: &str = "INSERT INTO provider_revocations (iss, sub, revoked_ms)
     SELECT iss, sub, :now FROM delegations WHERE registration_id IN ({chosen})
     ON CONFLICT (iss, sub) DO UPDATE SET revoked_ms = excluded.revoked_ms
     WHERE provider_revocations.revoked_ms IS NULL OR provider_revocations.revoked_ms < excluded.revoked_ms";

pub(crate) const OF_USER_FROM: &str = "SELECT 1 FROM delegations WHERE user_id = ?1 AND iss = ?2 LIMIT 1";
pub(crate) const PENDING: &str =
    "SELECT registration_id, iss, sub, user_id FROM pending_links WHERE iss = ?1 AND sub = ?2";
pub(crate) const PENDING_OF: &str =
    "SELECT registration_id, iss, sub, user_id FROM pending_links WHERE registration_id = ?1";

fn pending(row: &rusqlite::Row<'_>) -> rusqlite::Result<PendingLink> {
    Ok(PendingLink {
        registration_id: row.get(0)?,
        iss: row.get(1)?,
        sub: row.get(2)?,
        user_id: row.get(3)?,
    })
}

impl Delegations for Connection {
    fn user_has_delegation_from(&self, user_id: &str, iss: &str) -> Result<bool> {
        Ok(self
            .prepare_cached(OF_USER_FROM)?
            .query_row([user_id, iss], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn pending_link(&self, iss: &str, sub: &str) -> Result<Option<PendingLink>> {
        Ok(self
            .prepare_cached(PENDING)?
            .query_row([iss, sub], pending)
            .optional()?)
    }

    fn pending_link_of(&self, registration_id: &str) -> Result<Option<PendingLink>> {
        Ok(self
            .prepare_cached(PENDING_OF)?
            .query_row([registration_id], pending)
            .optional()?)
    }

    fn put_pending_link(&self, link: &PendingLink, now_ms: UnixMs) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO pending_links (registration_id, iss, sub, user_id, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (iss, sub) DO UPDATE SET registration_id = excluded.registration_id,
                 user_id = excluded.user_id, created_ms = excluded.created_ms",
        )?
        .execute(params![link.registration_id, link.iss, link.sub, link.user_id, now_ms])?;
        Ok(())
    }

    fn end_delegations(&self, iss: &str, sub: &str, now_ms: UnixMs) -> Result<()> {
        self.prepare_cached("UPDATE delegations SET ended_ms = ?3 WHERE iss = ?1 AND sub = ?2 AND ended_ms IS NULL")?
            .execute(params![iss, sub, now_ms])?;
        Ok(())
    }

    fn delete_pending_link(&self, registration_id: &str) -> Result<()> {
        self.prepare_cached("DELETE FROM pending_links WHERE registration_id = ?1")?
            .execute([registration_id])?;
        Ok(())
    }

    fn delegations(&self, iss: &str, sub: &str) -> Result<Vec<Delegation>> {
        let mut stmt = self.prepare_cached(GET)?;
        let rows = stmt.query_map([iss, sub], |r| {
            Ok(Delegation {
                iss: r.get(0)?,
                sub: r.get(1)?,
                generation: super::text_enum(r, 2, Generation::from_db)?,
                user_id: r.get(3)?,
                registration_id: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put_delegation(&self, delegation: &Delegation, now_ms: UnixMs) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO delegations (iss, sub, generation, user_id, registration_id, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (iss, sub, generation) DO UPDATE SET registration_id = excluded.registration_id,
                 user_id = excluded.user_id, created_ms = excluded.created_ms, ended_ms = NULL",
        )?
        .execute(params![
            delegation.iss,
            delegation.sub,
            delegation.generation.as_db(),
            delegation.user_id,
            delegation.registration_id,
            now_ms
        ])?;
        Ok(())
    }

    /// The `(iss, sub)` behind a registration, if it came from an ID-JAG.
    fn delegation_of(&self, registration_id: &str) -> Result<Option<(String, String)>> {
        let mut stmt = self.prepare_cached(OF_REGISTRATION)?;
        Ok(stmt
            .query_row([registration_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn revocation_marks(&self, iss: &str, sub: &str) -> Result<RevocationMarks> {
        let mut stmt = self.prepare_cached(REVOCATION_MARKS)?;
        let marks = stmt
            .query_row([iss, sub], |r| {
                Ok(RevocationMarks {
                    revoked_iat: r.get(0)?,
                    revoked_ms: r.get(1)?,
                })
            })
            .optional()?;
        Ok(marks.unwrap_or_default())
    }

    /// Raises the provider-clock mark of `(iss, sub)` to a logout token's `iat`
    /// (never lowers it).
    fn mark_revoked_by_provider(&self, iss: &str, sub: &str, iat: UnixSecs) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO provider_revocations (iss, sub, revoked_iat) VALUES (?1, ?2, ?3)
             ON CONFLICT (iss, sub) DO UPDATE SET revoked_iat = excluded.revoked_iat
             WHERE provider_revocations.revoked_iat IS NULL OR provider_revocations.revoked_iat < excluded.revoked_iat",
        )?
        .execute(params![iss, sub, iat])?;
        Ok(())
    }

    fn mark_revoked_here(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<()> {
        super::registrations::run_for(self, MARK_HERE, chosen, now_ms, &[])?;
        Ok(())
    }
}
