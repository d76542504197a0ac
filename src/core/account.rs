//! A signed-in person's own agents (issue 15; DESIGN.md "Signing in": "a
//! page where a person sees the agents acting for them and revokes any one
//! of them"): which registrations are theirs, how each came to act for
//! them, and revoking one ([`revoke`]).
//!
//! An agent is a person's when its registration names them as its user
//! (claimed, or matched to them from an ID-JAG), in either generation. A
//! first link still waiting for its person's confirmation is not theirs yet
//! and is not listed. Revoking is the operator's revocation of one
//! registration (`revoke::revoke_one`) recorded `by: user` with the user's
//! id, and it also kills the registration's refresh tokens and assertions
//! (v0.7), in one transaction. Another person's registration answers as an
//! unknown one, so the page says nothing of who else has which agent.
//!
//! Not here: the session and CSRF checks (the HTTP edge, `http::account`),
//! the page itself, and when a use was last noted (`last_used`).
//!
//! ```text
//!   live (active | claimed | pending_claim | unclaimed) ──revoke──▶ revoked
//!   ended (revoked | expired | rejected | locked): listed, not revocable
//! ```

use super::Ctx;
use super::revoke::{self, RevokedBy};
use crate::error::Error;
use crate::model::{Generation, RegistrationKind, Status, split_scopes};
use crate::settings::Settings;
use crate::store::Tx;
use crate::store::registrations::Registration;
use crate::time::UnixMs;

/// Live agents shown at most, then ended ones (newest first each): a person
/// with more is told the list is cut.
pub const LIVE_SHOWN: u32 = 100;
pub const ENDED_SHOWN: u32 = 25;

/// How an agent came to act for its person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An ID-JAG of a trusted provider: its trust-list name (or its issuer
    /// when it has none) and issuer.
    Provider { name: String, issuer: String },
    /// An ID-JAG whose delegation is not recorded.
    ProviderUnknown,
    /// Registered anonymously, then claimed by the person.
    Anonymous,
    /// Registered for the person's address and confirmed by them (v0.7 `service_auth`).
    ServiceAuth,
    /// A v0.1 verified-email registration, by this address.
    VerifiedEmail(Option<String>),
}

/// One of a person's agents, as the page shows it.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub generation: Generation,
    pub origin: Origin,
    pub scopes: Vec<String>,
    pub created_ms: UnixMs,
    pub last_used_ms: Option<UnixMs>,
    /// As it stands now: an unclaimed registration past its TTL is
    /// `Expired`, even before the sweeper records it.
    pub status: Status,
}

impl Agent {
    pub fn revocable(&self) -> bool {
        self.status.is_live()
    }
}

/// A person's agents: the live ones first, then the ended ones, each
/// newest first; `cut` when there were more than shown.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub agents: Vec<Agent>,
    pub cut: bool,
}

/// Why an agent could not be revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No such registration, or another person's.
    Unknown,
    /// It ended already (revoked, expired, rejected, locked).
    Ended(Status),
}

/// The agents acting for `user_id`.
pub fn list(conn: &dyn Tx, settings: &Settings, user_id: &str, now_ms: UnixMs) -> Result<Listing, Error> {
    let live = conn.registrations_of_user(user_id, true, LIVE_SHOWN + 1)?;
    let ended = conn.registrations_of_user(user_id, false, ENDED_SHOWN + 1)?;
    let cut = live.len() > LIVE_SHOWN as usize || ended.len() > ENDED_SHOWN as usize;
    let chosen = live
        .iter()
        .take(LIVE_SHOWN as usize)
        .chain(ended.iter().take(ENDED_SHOWN as usize));
    let mut agents = chosen
        .map(|r| agent(conn, settings, r, now_ms))
        .collect::<Result<Vec<_>, _>>()?;
    // A lapsed registration (past its TTL, not yet swept) reads as ended:
    // it goes after the live ones, keeping each group's order.
    agents.sort_by_key(|a| !a.revocable());
    Ok(Listing { agents, cut })
}

/// One of `user_id`'s agents, or why it is not one to revoke.
pub fn find(
    conn: &dyn Tx,
    settings: &Settings,
    user_id: &str,
    registration_id: &str,
    now_ms: UnixMs,
) -> Result<Result<Agent, Refused>, Error> {
    let Some(registration) = own(conn, user_id, registration_id)? else {
        return Ok(Err(Refused::Unknown));
    };
    let agent = agent(conn, settings, &registration, now_ms)?;
    Ok(match agent.revocable() {
        true => Ok(agent),
        false => Err(Refused::Ended(agent.status)),
    })
}

/// Revokes `registration_id` for its own person `user_id`: the registration,
/// its credentials, refresh tokens and assertions, and one
/// `registration.revoked` (`by: user`, `user_id`), in one transaction.
/// Returns the credentials revoked, or why nothing was.
pub fn revoke(ctx: &Ctx<'_>, user_id: &str, registration_id: &str) -> Result<Result<usize, Refused>, Error> {
    let (now_ms, client_ip) = (ctx.now_ms, ctx.client_ip);
    ctx.writer.write(|tx| {
        let Some(registration) = own(tx, user_id, registration_id)? else {
            return Ok(Err(Refused::Unknown));
        };
        let status = shown_status(&registration, now_ms);
        if !status.is_live() {
            return Ok(Err(Refused::Ended(status)));
        }
        let family =
            tx.revoke_refresh_tokens_of(registration_id, now_ms)? + tx.revoke_assertions_of(registration_id, now_ms)?;
        let by = RevokedBy::user(user_id, client_ip);
        Ok(match revoke::revoke_one(tx, registration_id, &by, now_ms)? {
            Some(credentials) => Ok(credentials + family),
            None => Err(Refused::Ended(status)),
        })
    })
}

/// The registration, if it is `user_id`'s.
fn own(conn: &dyn Tx, user_id: &str, registration_id: &str) -> Result<Option<Registration>, Error> {
    Ok(conn
        .registration(registration_id)?
        .filter(|r| r.user_id.as_deref() == Some(user_id)))
}

fn shown_status(registration: &Registration, now_ms: UnixMs) -> Status {
    match registration.lapsed(now_ms) {
        true => Status::Expired,
        false => registration.status,
    }
}

fn agent(conn: &dyn Tx, settings: &Settings, registration: &Registration, now_ms: UnixMs) -> Result<Agent, Error> {
    let origin = match registration.kind {
        RegistrationKind::AgentProvider => match conn.delegation_of(&registration.id)? {
            // The provider by its trust-list name, never a value from a token.
            Some((issuer, _)) => Origin::Provider {
                name: conn
                    .provider(&issuer)?
                    .and_then(|p| p.name)
                    .unwrap_or_else(|| issuer.clone()),
                issuer,
            },
            None => Origin::ProviderUnknown,
        },
        RegistrationKind::Anonymous => Origin::Anonymous,
        RegistrationKind::ServiceAuth => Origin::ServiceAuth,
        RegistrationKind::EmailVerification => Origin::VerifiedEmail(registration.email.clone()),
    };
    Ok(Agent {
        id: registration.id.clone(),
        generation: registration.generation,
        origin,
        scopes: scopes(conn, settings, registration, now_ms)?,
        created_ms: registration.created_ms,
        last_used_ms: registration.last_used_ms,
        status: shown_status(registration, now_ms),
    })
}

/// What the agent may do: a v0.7 ID-JAG registration's granted scopes; a
/// live credential's (v0.1 keys and tokens carry theirs); otherwise what
/// the token endpoint would give it now (SPEC-v0.7 8).
fn scopes(
    conn: &dyn Tx,
    settings: &Settings,
    registration: &Registration,
    now_ms: UnixMs,
) -> Result<Vec<String>, Error> {
    if let Some(granted) = &registration.scopes {
        return Ok(split_scopes(granted));
    }
    if let Some(held) = conn.live_scopes_of(&registration.id, now_ms)? {
        return Ok(split_scopes(&held));
    }
    Ok(match (registration.kind, registration.status) {
        (RegistrationKind::Anonymous, Status::Unclaimed | Status::PendingClaim) => settings.pre_claim_scopes.clone(),
        (RegistrationKind::AgentProvider, _) => settings.id_jag_scopes.clone(),
        _ => settings.post_claim_scopes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::registrations::NewRegistration;
    use crate::store::users::User;

    fn at(ms: i64) -> UnixMs {
        UnixMs::from_millis(ms)
    }

    fn add(tx: &dyn Tx, id: &str, user: &str, status: Status, created: i64) {
        tx.insert_registration(&NewRegistration {
            id,
            generation: Generation::V0_7,
            kind: RegistrationKind::ServiceAuth,
            status,
            user_id: Some(user),
            claim_token_hash: None,
            requested_credential_type: None,
            email: None,
            scopes: None,
            created_ms: at(created),
            expires_ms: None,
        })
        .unwrap();
    }

    #[test]
    fn live_agents_come_first_then_ended_ones_newest_first_and_only_the_persons_own() {
        let (_dir, conn) = crate::store::open_temp();
        let tx: &dyn Tx = &conn;
        for user in ["usr_a", "usr_b"] {
            tx.insert_user(&User {
                id: user.into(),
                email: None,
                phone_number: None,
                name: None,
                created_ms: at(0),
            })
            .unwrap();
        }
        add(tx, "reg_old_live", "usr_a", Status::Claimed, 1);
        add(tx, "reg_revoked", "usr_a", Status::Revoked, 3);
        add(tx, "reg_new_live", "usr_a", Status::Claimed, 2);
        add(tx, "reg_other", "usr_b", Status::Claimed, 4);
        let listing = list(tx, &Settings::default(), "usr_a", at(10)).unwrap();
        let ids: Vec<&str> = listing.agents.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["reg_new_live", "reg_old_live", "reg_revoked"]);
        assert!(!listing.cut);
        assert_eq!(
            find(tx, &Settings::default(), "usr_a", "reg_other", at(10))
                .unwrap()
                .unwrap_err(),
            Refused::Unknown
        );
        assert_eq!(
            find(tx, &Settings::default(), "usr_a", "reg_revoked", at(10))
                .unwrap()
                .unwrap_err(),
            Refused::Ended(Status::Revoked)
        );
    }
}
