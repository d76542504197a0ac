//! The `delegations`, `pending_links` and `provider_revocations` tables:
//! which user and registration stand behind a provider's `(iss, sub)`, and
//! what has been revoked of it (SPEC.md 3.2, 4.4, 6).

use postgres::Row;

use super::{Columns, LockClass, PgTx, registrations};
use crate::model::Generation;
use crate::store::Result;
use crate::store::delegations::*;
use crate::store::registrations::Selection;
use crate::time::{UnixMs, UnixSecs};

/// The statement of [`Delegations::mark_revoked_here`]: never lowers a
/// mark. DISTINCT: one `(iss, sub)` may stand behind several chosen
/// registrations (one per generation), and PostgreSQL refuses to change
/// one row twice in a statement. `ON CONFLICT` makes two nodes marking the
/// same pair at once one insert and one raise.
const MARK_HERE: &str = "INSERT INTO provider_revocations (iss, sub, revoked_ms)
     SELECT DISTINCT iss, sub, $1::BIGINT FROM delegations WHERE registration_id IN ({chosen})
     ON CONFLICT (iss, sub) DO UPDATE SET revoked_ms = excluded.revoked_ms
     WHERE provider_revocations.revoked_ms IS NULL OR provider_revocations.revoked_ms < excluded.revoked_ms";

fn pending(row: &Row) -> Result<PendingLink> {
    Ok(PendingLink {
        registration_id: row.col(0)?,
        iss: row.col(1)?,
        sub: row.col(2)?,
        user_id: row.col(3)?,
    })
}

/// The advisory lock key of a delegation `(iss, sub)`: a unit separator
/// between them (neither an issuer URL nor a `sub` holds one in practice,
/// and a clash only makes two delegations wait for each other).
fn key(iss: &str, sub: &str) -> String {
    format!("{iss}\u{1f}{sub}")
}

impl Delegations for PgTx<'_> {
    /// In a write, first locks `(iss, sub)` until the transaction ends:
    /// core reads the delegations first and decides from them what to make
    /// (a registration per generation, a user, a pending link). On SQLite
    /// the one writer keeps a second request's read after the first's
    /// commit; here two requests under READ COMMITTED would both find none
    /// and both make one. With the lock, the second waits here, and its
    /// statements after the lock see what the first committed.
    fn delegations(&self, iss: &str, sub: &str) -> Result<Vec<Delegation>> {
        self.lock_key(LockClass::Delegation, &key(iss, sub))?;
        self.query(
            "SELECT iss, sub, generation, user_id, registration_id FROM delegations
             WHERE iss = $1 AND sub = $2 AND ended_ms IS NULL ORDER BY generation COLLATE \"C\"",
            &[&iss, &sub],
        )?
        .iter()
        .map(|r| {
            Ok(Delegation {
                iss: r.col(0)?,
                sub: r.col(1)?,
                generation: r.parsed(2, Generation::from_db)?,
                user_id: r.col(3)?,
                registration_id: r.col(4)?,
            })
        })
        .collect()
    }

    /// One delegation per `(iss, sub, generation)` by the primary key: of
    /// two nodes putting the same one at once, one inserts and the other,
    /// waiting on it, updates the row it committed.
    fn put_delegation(&self, delegation: &Delegation, now_ms: UnixMs) -> Result<()> {
        self.execute(
            "INSERT INTO delegations (iss, sub, generation, user_id, registration_id, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (iss, sub, generation) DO UPDATE SET registration_id = excluded.registration_id,
                 user_id = excluded.user_id, created_ms = excluded.created_ms, ended_ms = NULL",
            &[
                &delegation.iss,
                &delegation.sub,
                &delegation.generation.as_db(),
                &delegation.user_id,
                &delegation.registration_id,
                &now_ms.millis(),
            ],
        )?;
        Ok(())
    }

    fn delegation_of(&self, registration_id: &str) -> Result<Option<(String, String)>> {
        self.first(
            "SELECT iss, sub FROM delegations WHERE registration_id = $1 LIMIT 1",
            &[&registration_id],
        )?
        .map(|r| Ok((r.col(0)?, r.col(1)?)))
        .transpose()
    }

    fn revocation_marks(&self, iss: &str, sub: &str) -> Result<RevocationMarks> {
        let Some(r) = self.first(
            "SELECT revoked_iat, revoked_ms FROM provider_revocations WHERE iss = $1 AND sub = $2",
            &[&iss, &sub],
        )?
        else {
            return Ok(RevocationMarks::default());
        };
        Ok(RevocationMarks {
            revoked_iat: r.secs_opt(0)?,
            revoked_ms: r.ms_opt(1)?,
        })
    }

    /// One statement: the condition that never lowers the mark is checked
    /// on the row as the other node committed it.
    fn mark_revoked_by_provider(&self, iss: &str, sub: &str, iat: UnixSecs) -> Result<()> {
        self.execute(
            "INSERT INTO provider_revocations (iss, sub, revoked_iat) VALUES ($1, $2, $3)
             ON CONFLICT (iss, sub) DO UPDATE SET revoked_iat = excluded.revoked_iat
             WHERE provider_revocations.revoked_iat IS NULL OR provider_revocations.revoked_iat < excluded.revoked_iat",
            &[&iss, &sub, &iat.secs()],
        )?;
        Ok(())
    }

    fn user_has_delegation_from(&self, user_id: &str, iss: &str) -> Result<bool> {
        Ok(self
            .first(
                "SELECT 1 FROM delegations WHERE user_id = $1 AND iss = $2 LIMIT 1",
                &[&user_id, &iss],
            )?
            .is_some())
    }

    /// Locks `(iss, sub)` in a write, as [`Delegations::delegations`].
    fn pending_link(&self, iss: &str, sub: &str) -> Result<Option<PendingLink>> {
        self.lock_key(LockClass::Delegation, &key(iss, sub))?;
        self.first(
            "SELECT registration_id, iss, sub, user_id FROM pending_links WHERE iss = $1 AND sub = $2",
            &[&iss, &sub],
        )?
        .map(|r| pending(&r))
        .transpose()
    }

    /// In a write, locks the link's `(iss, sub)` as [`Delegations::delegations`]
    /// does, and reads the link again under the lock: the person confirming
    /// a first link binds its delegation (`core::ceremony`) while an ID-JAG
    /// for the same `(iss, sub)` may be matching on another node. Under the
    /// lock one of the two goes first, and the other sees what it did: the
    /// ID-JAG finds the delegation bound, or the confirmation finds the link
    /// as the ID-JAG left it.
    fn pending_link_of(&self, registration_id: &str) -> Result<Option<PendingLink>> {
        let read = || {
            self.first(
                "SELECT registration_id, iss, sub, user_id FROM pending_links WHERE registration_id = $1",
                &[&registration_id],
            )?
            .map(|r| pending(&r))
            .transpose()
        };
        let Some(link) = read()? else { return Ok(None) };
        if !self.writing {
            return Ok(Some(link));
        }
        self.lock_key(LockClass::Delegation, &key(&link.iss, &link.sub))?;
        read()
    }

    /// One pending link per `(iss, sub)` by its unique constraint.
    fn put_pending_link(&self, link: &PendingLink, now_ms: UnixMs) -> Result<()> {
        self.execute(
            "INSERT INTO pending_links (registration_id, iss, sub, user_id, created_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (iss, sub) DO UPDATE SET registration_id = excluded.registration_id,
                 user_id = excluded.user_id, created_ms = excluded.created_ms",
            &[
                &link.registration_id,
                &link.iss,
                &link.sub,
                &link.user_id,
                &now_ms.millis(),
            ],
        )?;
        Ok(())
    }

    fn delete_pending_link(&self, registration_id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM pending_links WHERE registration_id = $1",
            &[&registration_id],
        )?;
        Ok(())
    }

    fn end_delegations(&self, iss: &str, sub: &str, now_ms: UnixMs) -> Result<()> {
        self.execute(
            "UPDATE delegations SET ended_ms = $3 WHERE iss = $1 AND sub = $2 AND ended_ms IS NULL",
            &[&iss, &sub, &now_ms.millis()],
        )?;
        Ok(())
    }

    fn mark_revoked_here(&self, chosen: Selection<'_>, now_ms: UnixMs) -> Result<()> {
        registrations::run_for(self, MARK_HERE, chosen, now_ms, &[])?;
        Ok(())
    }
}
