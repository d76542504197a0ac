//! Ending registrations: every form of revocation (one registration, a
//! user's, an issuer's or one of its subjects', all: [`revoke`] and
//! [`revoke_one`]; a provider's logout token: [`by_provider`]; an agent
//! dropping one credential: [`self_revoke`]) and expiry ([`expire`]). What each does is
//! decided here; the store runs it as a few set-wide statements, so even a
//! large database is shut off in one short transaction.

use serde_json::{Map, json};

use super::lifecycle::{self, Event};
use super::verify::{self, Checked};
use super::{Ctx, detail};
use crate::error::Error;
use crate::jose::TokenKind;
use crate::model::{EventName, Status};
use crate::secrets;
use crate::store::Tx;
use crate::store::audit::NewEvent;
use crate::store::registrations::Selection;
use crate::time::UnixMs;

/// Who revoked, for the `registration.revoked` event (SPEC.md 8).
#[derive(Debug, Clone, Copy)]
pub struct RevokedBy<'a> {
    /// `provider`, `operator` or `user`.
    pub by: &'a str,
    pub iss: Option<&'a str>,
    pub sub: Option<&'a str>,
    /// The person who revoked their own agent (`by: user`), recorded as
    /// the event's `user_id`.
    pub user_id: Option<&'a str>,
    pub client_ip: Option<&'a str>,
}

impl<'a> RevokedBy<'a> {
    pub const OPERATOR: RevokedBy<'static> = RevokedBy {
        by: "operator",
        iss: None,
        sub: None,
        user_id: None,
        client_ip: None,
    };

    /// A signed-in person, on their own page (`core::account`).
    pub fn user(user_id: &'a str, client_ip: Option<&'a str>) -> RevokedBy<'a> {
        RevokedBy {
            by: "user",
            iss: None,
            sub: None,
            user_id: Some(user_id),
            client_ip,
        }
    }
}

/// What a revocation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    pub registrations: usize,
    pub credentials: usize,
}

/// Revokes one live registration, recording `registration.revoked` with who
/// revoked, the delegation behind it (unless the revoker names its own
/// `iss`/`sub`) and how many credentials. `None` if it was not live.
pub fn revoke_one(tx: &dyn Tx, id: &str, who: &RevokedBy<'_>, now_ms: UnixMs) -> Result<Option<usize>, Error> {
    let chosen = Selection::Registration(id);
    match tx.registration(id)? {
        Some(r) if lifecycle::next(r.kind, r.status, Event::Revoked).is_ok() => {}
        _ => return Ok(None),
    }
    let credentials = tx.revoke_credentials_of(chosen, now_ms)?;
    let delegation = tx.delegation_of(id)?;
    let mut fields = json!({ "by": who.by, "credentials_revoked": credentials });
    if let Some(user_id) = who.user_id {
        fields["user_id"] = json!(user_id);
    }
    let (iss, sub) = match (&who.iss, &delegation) {
        (Some(_), _) | (_, None) => (who.iss, who.sub),
        (None, Some((iss, sub))) => (Some(iss.as_str()), Some(sub.as_str())),
    };
    tx.record_event(
        now_ms,
        EventName::RegistrationRevoked,
        NewEvent {
            registration_id: Some(id),
            client_ip: who.client_ip,
            iss,
            sub,
            detail: detail(fields),
            ..Default::default()
        },
    )?;
    end(tx, chosen, Status::Revoked, now_ms)?;
    Ok(Some(credentials))
}

/// Revokes every live registration chosen, one `registration.revoked` each.
pub fn revoke(tx: &dyn Tx, chosen: Selection<'_>, by: &str, now_ms: UnixMs) -> Result<Revoked, Error> {
    tx.record_event_for_each(
        chosen,
        now_ms,
        EventName::RegistrationRevoked,
        &detail(json!({ "by": by })),
    )?;
    let credentials = tx.revoke_credentials_of(chosen, now_ms)?;
    let registrations = end(tx, chosen, Status::Revoked, now_ms)?;
    Ok(Revoked {
        registrations,
        credentials,
    })
}

/// SPEC.md 6 (a logout token, `TokenKind::Logout`) and SPEC-v0.7 11 (a
/// Security Event Token, `TokenKind::SecEvent`): a verified token that
/// carries the assertion-revoked event revokes the live registrations of
/// its delegation `(iss, sub)` in either generation (and a pending first
/// link), whichever audience alias it named, ends the delegation and raises
/// the provider's mark so ID-JAGs it issued up to then are refused. A
/// provider revokes a delegation, not one protocol: a logout token ends it
/// as a SET does. A SET with other events only spends its `jti`. Returns
/// the number of credentials revoked.
pub fn by_provider(ctx: &Ctx<'_>, token: &str, kind: TokenKind) -> Result<usize, Error> {
    let checked: Checked = verify::signed(ctx, token, kind)?.check_client_id(ctx)?;
    let (now_ms, skew_secs, client_ip) = (ctx.now_ms, ctx.config.settings.clock_skew_secs, ctx.client_ip);
    ctx.writer.write(|tx| {
        let admitted = checked.admit(tx, now_ms, skew_secs)?;
        let claims = admitted.claims();
        if !claims.revokes_delegation {
            return Ok(0);
        }
        tx.mark_revoked_by_provider(&claims.iss, &claims.sub, claims.iat)?;
        let by = RevokedBy {
            by: "provider",
            iss: Some(&claims.iss),
            sub: Some(&claims.sub),
            user_id: None,
            client_ip,
        };
        // Every registration of the delegation, in either generation, and
        // a first link still waiting for its person; then the delegation
        // ends, so a fresh ID-JAG matches again (SPEC-v0.7 11, 4.3).
        let mut credentials = 0;
        for delegation in tx.delegations(&claims.iss, &claims.sub)? {
            credentials += revoke_one(tx, &delegation.registration_id, &by, now_ms)?.unwrap_or(0);
        }
        if let Some(link) = tx.pending_link(&claims.iss, &claims.sub)? {
            credentials += revoke_one(tx, &link.registration_id, &by, now_ms)?.unwrap_or(0);
            tx.delete_pending_link(&link.registration_id)?;
        }
        tx.end_delegations(&claims.iss, &claims.sub, now_ms)?;
        Ok(credentials)
    })
}

/// RFC 7009 (`POST /oauth/revoke`): an agent drops one of its own
/// credentials. Nothing is said of whether the token was known.
pub fn self_revoke(ctx: &Ctx<'_>, token: &str) -> Result<(), Error> {
    if token.is_empty() || !secrets::credential_checksum_ok(token) {
        return Ok(());
    }
    let (now_ms, client_ip) = (ctx.now_ms, ctx.client_ip);
    let refresh = token.starts_with(&ctx.config.settings.refresh_token_prefix);
    let shape = secrets::Shape::Checksummed;
    ctx.writer.write(|tx| {
        if refresh {
            // RFC 7009 2.1 (SPEC-v0.7 10): a refresh token takes its family
            // with it, without the reuse alarm.
            let stored = secrets::find_stored(token, shape, |hash| tx.refresh_token(hash))?;
            let Some((_, stored)) = stored.filter(|(_, t)| t.revoked_ms.is_none()) else {
                return Ok(());
            };
            super::refresh::revoke_family(tx, &stored.registration_id, now_ms)?;
            tx.record_event(
                now_ms,
                EventName::CredentialRevoked,
                NewEvent {
                    registration_id: Some(&stored.registration_id),
                    client_ip,
                    detail: detail(json!({ "by": "agent", "credential_type": "refresh_token" })),
                    ..Default::default()
                },
            )?;
            return Ok(());
        }
        let Some((_, found)) = secrets::find_stored(token, shape, |hash| tx.credential_by_hash(hash))? else {
            return Ok(());
        };
        if found.revoked_ms.is_some() || !tx.revoke_credential(&found.id, now_ms)? {
            return Ok(());
        }
        tx.record_event(
            now_ms,
            EventName::CredentialRevoked,
            NewEvent {
                registration_id: Some(&found.registration.id),
                client_ip,
                detail: detail(json!({ "by": "agent", "credential_type": found.kind.as_str() })),
                ..Default::default()
            },
        )?;
        Ok(())
    })
}

/// Unclaimed (or pending) registrations past their TTL become `expired`,
/// each recorded once as `registration.expired`. Their credentials are left
/// as they are: an anonymous key keeps its pre-claim scopes (SPEC.md 5.7).
/// Returns how many.
pub fn expire(tx: &dyn Tx, now_ms: UnixMs) -> Result<usize, Error> {
    tx.record_event_for_each(Selection::Lapsed, now_ms, EventName::RegistrationExpired, &Map::new())?;
    end(tx, Selection::Lapsed, Status::Expired, now_ms)
}

/// How every ending finishes, whoever asked: open claim links close and
/// their codes are erased; on revocation, ID-JAGs issued before now are
/// refused (this server's mark, `RevocationMarks`), so a later one from a
/// still-trusted provider registers again; and the registrations take
/// their final status. That last step comes last: it is what takes them out
/// of the selection.
fn end(tx: &dyn Tx, chosen: Selection<'_>, status: Status, now_ms: UnixMs) -> Result<usize, Error> {
    tx.close_attempts_of(chosen, now_ms)?;
    if status == Status::Revoked {
        tx.mark_revoked_here(chosen, now_ms)?;
    }
    Ok(tx.end_registrations(chosen, status, now_ms)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CredentialType, Generation, RegistrationKind};
    use crate::secrets;
    use crate::store::audit::Filter;
    use crate::store::credentials::NewCredential;
    use crate::store::registrations::NewRegistration;

    fn at(ms: i64) -> UnixMs {
        UnixMs::from_millis(ms)
    }

    fn add(tx: &dyn Tx, id: &str, user: Option<&str>, status: Status, expires_ms: Option<UnixMs>) {
        tx.insert_registration(&NewRegistration {
            id,
            generation: Generation::V0_1,
            kind: RegistrationKind::Anonymous,
            status,
            user_id: user,
            claim_token_hash: None,
            requested_credential_type: None,
            email: None,
            scopes: None,
            created_ms: at(0),
            expires_ms,
        })
        .unwrap();
        tx.insert_credential(&NewCredential {
            id: &format!("cred_{id}"),
            registration_id: id,
            kind: CredentialType::ApiKey,
            token_hash: &secrets::hash(id),
            scopes: "api.read",
            created_ms: at(0),
            expires_ms: None,
        })
        .unwrap();
    }

    fn events(tx: &dyn Tx, name: EventName) -> Vec<String> {
        let filter = Filter {
            event: Some(name),
            ..Default::default()
        };
        let found = tx.events(&filter).unwrap();
        found.into_iter().filter_map(|e| e.registration_id).collect()
    }

    #[test]
    fn a_set_is_revoked_once_and_only_its_live_members() {
        let (_dir, conn) = crate::store::open_temp();
        let tx: &dyn Tx = &conn;
        tx.insert_user(&crate::store::users::User {
            id: "usr_1".into(),
            email: None,
            phone_number: None,
            name: None,
            created_ms: at(0),
        })
        .unwrap();
        add(tx, "reg_a", Some("usr_1"), Status::Claimed, None);
        add(tx, "reg_b", Some("usr_1"), Status::Expired, None);
        add(tx, "reg_c", None, Status::Unclaimed, Some(at(10)));
        let revoked = revoke(tx, Selection::User("usr_1"), "operator", at(5)).unwrap();
        assert_eq!(
            revoked,
            Revoked {
                registrations: 1,
                credentials: 1
            }
        );
        assert_eq!(events(tx, EventName::RegistrationRevoked), ["reg_a"]);
        assert_eq!(
            revoke(tx, Selection::User("usr_1"), "operator", at(6)).unwrap(),
            Revoked::default()
        );
        assert_eq!(
            revoke_one(tx, "reg_a", &RevokedBy::OPERATOR, at(7)).unwrap(),
            None,
            "not live any more"
        );
        assert_eq!(tx.registration("reg_c").unwrap().unwrap().status, Status::Unclaimed);
    }

    #[test]
    fn expiry_takes_only_lapsed_unclaimed_registrations_once() {
        let (_dir, conn) = crate::store::open_temp();
        let tx: &dyn Tx = &conn;
        add(tx, "reg_old", None, Status::Unclaimed, Some(at(10)));
        add(tx, "reg_new", None, Status::PendingClaim, Some(at(1_000)));
        assert_eq!(expire(tx, at(10)).unwrap(), 1);
        assert_eq!(expire(tx, at(11)).unwrap(), 0, "recorded once");
        assert_eq!(events(tx, EventName::RegistrationExpired), ["reg_old"]);
        assert_eq!(tx.registration("reg_old").unwrap().unwrap().status, Status::Expired);
        assert_eq!(
            tx.registration("reg_new").unwrap().unwrap().status,
            Status::PendingClaim
        );
        let key = tx.credential_by_hash(&secrets::hash("reg_old")).unwrap().unwrap();
        assert_eq!(key.revoked_ms, None, "expiry leaves an anonymous key as it is");
    }
}
