//! Registering an agent (SPEC.md 3), in three ways:
//!
//! - [`anonymous`] (3.1): `unclaimed`, an API key scoped to
//!   `pre_claim_scopes` and a claim token; until it is claimed it stops
//!   working after `registration_ttl_secs` (`guard` checks `expires_ms`).
//! - [`verified_email`] (3.3): `pending_claim`, no credential until the user
//!   confirms the mailed claim (`claim`).
//! - [`from_assertion`] (3.2, 4): an ID-JAG verified and admitted
//!   (`verify`), the user matched (4.4), one registration per delegation
//!   `(iss, sub)`, and a credential.
//!
//! Each writes its registration, credential, audit events and mail in one
//! transaction, and answers an [`Outcome`] that each wire module shapes.

use std::time::Duration;

use serde_json::{Value, json};

use super::issue::{Grant, Minted, SignedAssertion, issue, issue_assertion};
use super::users::{self, Identity, Provision};
use super::verify;
use super::{Ctx, detail};
use crate::error::Error;
use crate::jose::{Claims, TokenKind};
use crate::model::{CredentialType, EventName, Generation, RegistrationKind, Status};
use crate::secrets::{self, Shape};
use crate::settings::Settings;
use crate::store::Tx;
use crate::store::audit::NewEvent;
use crate::store::delegations::Delegation;
use crate::store::registrations::NewRegistration;
use crate::time::UnixMs;

/// A registration just made (or, for an assertion, found live again).
pub struct Outcome {
    pub registration_id: String,
    pub kind: RegistrationKind,
    /// The credential issued now and its scopes: shown to the agent once.
    pub credential: Option<(Minted, Vec<String>)>,
    /// How the user can claim it.
    pub claim: Option<ClaimOffer>,
}

/// The claim token (shown once) and what claiming grants.
pub struct ClaimOffer {
    pub token: String,
    pub expires_ms: UnixMs,
    pub post_claim_scopes: Vec<String>,
}

impl ClaimOffer {
    fn new(token: String, expires_ms: UnixMs, settings: &Settings) -> ClaimOffer {
        ClaimOffer {
            token,
            expires_ms,
            post_claim_scopes: settings.post_claim_scopes.clone(),
        }
    }
}

/// An anonymous registration about to be made, in either generation:
/// `unclaimed`, no user, claimable with `claim_token` until `expires_ms`.
struct NewAnonymous<'a> {
    id: &'a str,
    claim_token: &'a str,
    expires_ms: UnixMs,
}

impl NewAnonymous<'_> {
    fn insert(
        &self,
        tx: &dyn Tx,
        generation: Generation,
        requested: Option<CredentialType>,
        now_ms: UnixMs,
        client_ip: Option<&str>,
    ) -> Result<(), Error> {
        tx.insert_registration(&NewRegistration {
            id: self.id,
            generation,
            kind: RegistrationKind::Anonymous,
            status: Status::Unclaimed,
            user_id: None,
            claim_token_hash: Some(&secrets::stored_hash(self.claim_token, Shape::ClaimToken)),
            requested_credential_type: requested,
            email: None,
            scopes: None,
            created_ms: now_ms,
            expires_ms: Some(self.expires_ms),
        })?;
        record_created(
            tx,
            now_ms,
            self.id,
            (generation, RegistrationKind::Anonymous),
            client_ip,
        )
    }
}

/// `registration.created` for a registration no provider vouched for; a
/// v0.7 one says so (SPEC-v0.7 14).
fn record_created(
    tx: &dyn Tx,
    now_ms: UnixMs,
    registration_id: &str,
    (generation, kind): (Generation, RegistrationKind),
    client_ip: Option<&str>,
) -> Result<(), Error> {
    let mut detail = detail(json!({ "registration_type": kind.as_wire() }));
    if generation == Generation::V0_7 {
        detail.insert("generation".into(), json!(generation.as_db()));
    }
    let event = NewEvent {
        registration_id: Some(registration_id),
        client_ip,
        detail,
        ..Default::default()
    };
    Ok(tx.record_event(now_ms, EventName::RegistrationCreated, event)?)
}

/// SPEC.md 3.1: registration, key, claim token and audit event in one transaction.
pub fn anonymous(ctx: &Ctx<'_>) -> Result<Outcome, Error> {
    if !ctx.config.available().anonymous {
        return Err(Error::AnonymousNotEnabled);
    }
    let settings = &ctx.config.settings;
    let now_ms = ctx.now_ms;
    let expires_ms = now_ms + Duration::from_secs(settings.registration_ttl_secs);
    let registration_id = secrets::new_id("reg_", now_ms);
    let key = Minted::new(CredentialType::ApiKey, settings, now_ms);
    let claim_token = secrets::new_claim_token(now_ms);
    let client_ip = ctx.client_ip;

    ctx.writer.write(|tx| {
        let new = NewAnonymous {
            id: &registration_id,
            claim_token: &claim_token,
            expires_ms,
        };
        new.insert(tx, Generation::V0_1, Some(CredentialType::ApiKey), now_ms, client_ip)?;
        let event = NewEvent {
            client_ip,
            ..Default::default()
        };
        issue(
            tx,
            now_ms,
            &key,
            Grant::anonymous(&registration_id, &settings.pre_claim_scopes, event),
        )
    })?;
    Ok(Outcome {
        registration_id,
        kind: RegistrationKind::Anonymous,
        credential: Some((key, settings.pre_claim_scopes.clone())),
        claim: Some(ClaimOffer::new(claim_token, expires_ms, settings)),
    })
}

/// A v0.7 anonymous registration (SPEC-v0.7 4.1): `unclaimed`, a service
/// assertion (exchanged at the token endpoint for pre-claim scopes) and a
/// claim token, in one transaction.
pub struct AnonymousIdentity {
    pub registration_id: String,
    pub assertion: SignedAssertion,
    pub claim: ClaimOffer,
    pub pre_claim_scopes: Vec<String>,
}

pub fn anonymous_identity(ctx: &Ctx<'_>) -> Result<AnonymousIdentity, Error> {
    if !ctx.config.available().anonymous {
        return Err(Error::AnonymousNotEnabled);
    }
    let (settings, site) = (&ctx.config.settings, &ctx.config.site);
    let now_ms = ctx.now_ms;
    let expires_ms = now_ms + Duration::from_secs(settings.registration_ttl_secs);
    let registration_id = secrets::new_id("reg_", now_ms);
    let claim_token = secrets::new_claim_token(now_ms);
    let client_ip = ctx.client_ip;
    let assertion = SignedAssertion::sign(ctx.conn, site, settings, &registration_id, None, now_ms)?;
    ctx.writer.write(|tx| {
        let new = NewAnonymous {
            id: &registration_id,
            claim_token: &claim_token,
            expires_ms,
        };
        new.insert(tx, Generation::V0_7, None, now_ms, client_ip)?;
        let event = NewEvent {
            client_ip,
            ..Default::default()
        };
        issue_assertion(tx, &assertion, event, now_ms)
    })?;
    Ok(AnonymousIdentity {
        registration_id,
        assertion,
        claim: ClaimOffer::new(claim_token, expires_ms, settings),
        pre_claim_scopes: settings.pre_claim_scopes.clone(),
    })
}

/// A `service_auth` registration (SPEC-v0.7 4.2): `pending_claim`, no
/// user, a claim token and an open attempt for the person the hint names.
pub struct ServiceAuth {
    pub registration_id: String,
    pub claim: ClaimOffer,
    pub attempt: super::claim::IdentityAttempt,
}

/// SPEC-v0.7 4.2. The answer is the same whether or not the address
/// belongs to a user: nothing is looked up.
pub fn service_auth(ctx: &Ctx<'_>, login_hint: &str) -> Result<ServiceAuth, Error> {
    if !ctx.config.available().service_auth {
        return Err(Error::ServiceAuthNotEnabled);
    }
    let hint = super::claim::login_hint(login_hint)?;
    let settings = &ctx.config.settings;
    let now_ms = ctx.now_ms;
    let expires_ms = now_ms + Duration::from_secs(settings.registration_ttl_secs);
    let registration_id = secrets::new_id("reg_", now_ms);
    let claim_token = secrets::new_claim_token(now_ms);
    let attempt = ctx.writer.write(|tx| {
        tx.insert_registration(&NewRegistration {
            id: &registration_id,
            generation: Generation::V0_7,
            kind: RegistrationKind::ServiceAuth,
            status: Status::PendingClaim,
            user_id: None,
            claim_token_hash: Some(&secrets::stored_hash(&claim_token, Shape::ClaimToken)),
            requested_credential_type: None,
            email: None,
            scopes: None,
            created_ms: now_ms,
            expires_ms: Some(expires_ms),
        })?;
        let kind = (Generation::V0_7, RegistrationKind::ServiceAuth);
        record_created(tx, now_ms, &registration_id, kind, ctx.client_ip)?;
        super::claim::open_identity_attempt(tx, ctx, &registration_id, &hint)
    })?;
    Ok(ServiceAuth {
        registration_id,
        claim: ClaimOffer::new(claim_token, expires_ms, settings),
        attempt,
    })
}

/// SPEC.md 3.3: a registration that gets nothing until the user confirms.
/// `email` is normalised here; the wire module says which field was wrong.
pub fn verified_email(ctx: &Ctx<'_>, email: &str, requested: CredentialType) -> Result<Outcome, Error> {
    if !ctx.config.available().verified_email {
        return Err(Error::VerifiedEmailNotEnabled);
    }
    let email =
        crate::email::normalize(email).map_err(|why| Error::InvalidRequest(why.replace("`email`", "`assertion`")))?;
    let settings = &ctx.config.settings;
    let now_ms = ctx.now_ms;
    let expires_ms = now_ms + Duration::from_secs(settings.registration_ttl_secs);
    let registration_id = secrets::new_id("reg_", now_ms);
    let claim_token = secrets::new_claim_token(now_ms);
    let mail = super::claim::ClaimContext::of(ctx);
    ctx.writer.write(|tx| {
        tx.insert_registration(&NewRegistration {
            id: &registration_id,
            generation: Generation::V0_1,
            kind: RegistrationKind::EmailVerification,
            status: Status::PendingClaim,
            user_id: None,
            claim_token_hash: Some(&secrets::stored_hash(&claim_token, Shape::ClaimToken)),
            requested_credential_type: Some(requested),
            email: Some(&email),
            scopes: None,
            created_ms: now_ms,
            expires_ms: Some(expires_ms),
        })?;
        record_created(
            tx,
            now_ms,
            &registration_id,
            (Generation::V0_1, RegistrationKind::EmailVerification),
            ctx.client_ip,
        )?;
        super::claim::open_attempt(tx, &mail, &registration_id, &email)
    })?;
    ctx.poke_mail();
    Ok(Outcome {
        registration_id,
        kind: RegistrationKind::EmailVerification,
        credential: None,
        claim: Some(ClaimOffer::new(claim_token, expires_ms, settings)),
    })
}

/// SPEC.md 3.2: an ID-JAG, verified and admitted, registers (or finds the
/// live registration of) its delegation and gets a credential.
pub fn from_assertion(ctx: &Ctx<'_>, assertion: &str, requested: CredentialType) -> Result<Outcome, Error> {
    let (checked, scopes) = checked_assertion(ctx, assertion, None)?;
    let now_ms = ctx.now_ms;
    let credential = Minted::new(requested, &ctx.config.settings, now_ms);
    let registration_id = ctx.writer.write(|tx| {
        let admitted = checked.admit(tx, now_ms, ctx.config.settings.clock_skew_secs)?;
        let delegated = delegated_registration(
            ctx,
            tx,
            admitted.claims(),
            (Generation::V0_1, None),
            Some(requested),
            &scopes,
        )?;
        let event = asserted_event(ctx, admitted.claims(), None);
        let grant = Grant::asserted(&admitted, &delegated.registration_id, &scopes, event);
        issue(tx, now_ms, &credential, grant)?;
        Ok(delegated.registration_id)
    })?;
    Ok(Outcome {
        registration_id,
        kind: RegistrationKind::AgentProvider,
        credential: Some((credential, scopes)),
        claim: None,
    })
}

/// A v0.7 ID-JAG registration (SPEC-v0.7 4.3), a clean match: its own
/// registration of the delegation, `active`, and a service assertion with
/// the bound user's email.
pub struct AssertedIdentity {
    pub registration_id: String,
    pub assertion: SignedAssertion,
    pub scopes: Vec<String>,
}

/// SPEC-v0.7 4.3: v0.1's verification plus `auth_time` freshness, checked
/// before anything is consumed; matching as v0.1's, except that an
/// existing account without this delegation needs the user's confirmation
/// (a first link).
pub fn identity_from_assertion(ctx: &Ctx<'_>, assertion: &str) -> Result<Asserted, Error> {
    let (checked, scopes) = checked_assertion(ctx, assertion, Some(ctx.config.settings.id_jag_max_auth_age_secs))?;
    let (settings, site, now_ms) = (&ctx.config.settings, &ctx.config.site, ctx.now_ms);
    // Signed before the transaction, for the registration and address a
    // read finds now; signed again inside only if a concurrent request
    // changed either in between.
    let planned = planned_identity(ctx, checked.claims(), Generation::V0_7)?;
    let signed = SignedAssertion::sign(
        ctx.conn,
        site,
        settings,
        &planned.registration_id,
        planned.email.as_deref(),
        now_ms,
    )?;
    ctx.writer.write(|tx| {
        let admitted = checked.admit(tx, now_ms, settings.clock_skew_secs)?;
        let claims = admitted.claims();
        if tx.delegations(&claims.iss, &claims.sub)?.is_empty()
            && let Some(user_id) = users::find_user(tx, &asserted_identity(claims))?
        {
            return Ok(Asserted::FirstLink(first_link(ctx, tx, claims, &user_id, &scopes)?));
        }
        let delegated = delegated_registration(
            ctx,
            tx,
            claims,
            (Generation::V0_7, Some(&planned.registration_id)),
            None,
            &scopes,
        )?;
        let email = tx.user(&delegated.user_id)?.and_then(|u| u.email);
        let assertion = if delegated.registration_id == planned.registration_id && email == planned.email {
            signed.clone()
        } else {
            SignedAssertion::sign(tx, site, settings, &delegated.registration_id, email.as_deref(), now_ms)?
        };
        issue_assertion(tx, &assertion, asserted_event(ctx, claims, None), now_ms)?;
        Ok(Asserted::Linked(AssertedIdentity {
            registration_id: delegated.registration_id,
            assertion,
            scopes: scopes.clone(),
        }))
    })
}

/// How a v0.7 ID-JAG was answered (SPEC-v0.7 4.3).
pub enum Asserted {
    /// A clean match.
    Linked(AssertedIdentity),
    /// An existing account, no delegation: the person confirms first.
    FirstLink(FirstLink),
}

/// A first link waiting for the person's confirmation: its registration, a
/// new claim token, and a link pinned to the matched account.
pub struct FirstLink {
    pub registration_id: String,
    pub claim: ClaimOffer,
    pub attempt: super::claim::IdentityAttempt,
}

/// The registration of a pending `(iss, sub)` (made, or the pending one
/// again with a new claim token: the old token, link and code stop
/// working), and a new attempt for the matched account. A revoked or
/// expired registration is never revived: a new one is made.
fn first_link(
    ctx: &Ctx<'_>,
    tx: &dyn Tx,
    claims: &Claims,
    user_id: &str,
    scopes: &[String],
) -> Result<FirstLink, Error> {
    let (settings, now_ms) = (&ctx.config.settings, ctx.now_ms);
    let claim_token = secrets::new_claim_token(now_ms);
    let token_hash = secrets::stored_hash(&claim_token, Shape::ClaimToken);
    let waiting = match tx.pending_link(&claims.iss, &claims.sub)? {
        Some(link) => tx
            .registration(&link.registration_id)?
            .filter(|r| matches!(r.status, Status::Unclaimed | Status::PendingClaim) && !r.lapsed(now_ms)),
        None => None,
    };
    let (registration_id, expires_ms) = match waiting {
        Some(registration) => {
            tx.replace_claim_token(&registration.id, &token_hash)?;
            let expires = registration.expires_ms.unwrap_or(now_ms);
            (registration.id, expires)
        }
        None => {
            let id = secrets::new_id("reg_", now_ms);
            let expires_ms = now_ms + Duration::from_secs(settings.registration_ttl_secs);
            let granted = crate::model::join_scopes(scopes);
            tx.insert_registration(&NewRegistration {
                id: &id,
                generation: Generation::V0_7,
                kind: RegistrationKind::AgentProvider,
                status: Status::PendingClaim,
                user_id: None,
                claim_token_hash: Some(&token_hash),
                requested_credential_type: None,
                email: None,
                scopes: Some(&granted),
                created_ms: now_ms,
                expires_ms: Some(expires_ms),
            })?;
            let created = json!({
                "registration_type": RegistrationKind::AgentProvider.as_wire(),
                "generation": Generation::V0_7.as_db(),
            });
            tx.record_event(
                now_ms,
                EventName::RegistrationCreated,
                asserted_event(ctx, claims, Some((&id, created))),
            )?;
            let link = crate::store::delegations::PendingLink {
                registration_id: id.clone(),
                iss: claims.iss.clone(),
                sub: claims.sub.clone(),
                user_id: user_id.to_string(),
            };
            tx.put_pending_link(&link, now_ms)?;
            (id, expires_ms)
        }
    };
    tx.set_registration_status(&registration_id, Status::PendingClaim, now_ms)?;
    let pinned = tx
        .user(user_id)?
        .and_then(|u| u.email)
        .unwrap_or_else(|| user_id.to_string());
    let attempt = super::claim::open_identity_attempt(tx, ctx, &registration_id, &pinned)?;
    Ok(FirstLink {
        registration_id,
        claim: ClaimOffer {
            token: claim_token,
            expires_ms,
            post_claim_scopes: scopes.to_vec(),
        },
        attempt,
    })
}

/// Signature, claims, scope narrowing, `client_id`, `auth_time` (when
/// `max_auth_age_secs` is given) and a `client_id` metadata document:
/// everything an ID-JAG is checked against before its transaction, in that
/// order. A stale login is `login_required` only for a token a fresh login
/// would make acceptable, and is told before a document is fetched (which
/// records the jti).
fn checked_assertion(
    ctx: &Ctx<'_>,
    assertion: &str,
    max_auth_age_secs: Option<u64>,
) -> Result<(verify::Checked, Vec<String>), Error> {
    if !ctx.config.available().id_jag {
        return Err(Error::IssuerNotEnabled);
    }
    let settings = &ctx.config.settings;
    let signed = verify::signed(ctx, assertion, TokenKind::IdJag)?;
    let scopes = granted_scopes(&settings.id_jag_scopes, signed.claims().scope.as_deref())?;
    signed.check_client_id_shape()?;
    if let Some(max_age_secs) = max_auth_age_secs {
        fresh_login(signed.claims(), ctx.now_ms, max_age_secs, settings.clock_skew_secs)?;
    }
    Ok((signed.check_client_id(ctx)?, scopes))
}

/// SPEC-v0.7 4.3: `now - auth_time <= max_age + skew`, and `auth_time <= now + skew`.
fn fresh_login(claims: &Claims, now_ms: UnixMs, max_age_secs: u64, skew_secs: u64) -> Result<(), Error> {
    let now = now_ms.secs_floor();
    let skew = Duration::from_secs(skew_secs);
    let why = match claims.auth_time {
        None => "the ID-JAG has no numeric `auth_time`",
        Some(at) if at > now + skew => "the ID-JAG's `auth_time` is in the future",
        Some(at) if now.saturating_since(at) > Duration::from_secs(max_age_secs) + skew => {
            "the user's login at the provider is too old"
        }
        Some(_) => return Ok(()),
    };
    Err(Error::LoginRequired { why, max_age_secs })
}

/// The registration of `generation` for the delegation of `claims`: its
/// live one, or a new one (SPEC.md 4.4, SPEC-v0.7 4.3): a delegation of
/// either generation names the user; otherwise the user is matched by
/// verified email or phone, or provisioned.
struct Delegated {
    registration_id: String,
    user_id: String,
}

/// `new_id` names the registration if one is made (else a fresh id).
fn delegated_registration(
    ctx: &Ctx<'_>,
    tx: &dyn Tx,
    claims: &Claims,
    (generation, new_id): (Generation, Option<&str>),
    requested: Option<CredentialType>,
    scopes: &[String],
) -> Result<Delegated, Error> {
    let now_ms = ctx.now_ms;
    let delegations = tx.delegations(&claims.iss, &claims.sub)?;
    if let Some(mine) = delegations.iter().find(|d| d.generation == generation)
        && tx
            .registration(&mine.registration_id)?
            .is_some_and(|r| r.status.is_live())
    {
        return Ok(Delegated {
            registration_id: mine.registration_id.clone(),
            user_id: mine.user_id.clone(),
        });
    }
    let user_id = match delegations.first() {
        Some(d) => d.user_id.clone(),
        None => {
            let provision = if ctx.config.settings.jit_provisioning {
                Provision::Allowed
            } else {
                Provision::Refused
            };
            users::match_user(tx, asserted_identity(claims), provision, now_ms)?
        }
    };
    let id = new_id.map_or_else(|| secrets::new_id("reg_", now_ms), str::to_string);
    let granted = crate::model::join_scopes(scopes);
    tx.insert_registration(&NewRegistration {
        id: &id,
        generation,
        kind: RegistrationKind::AgentProvider,
        status: Status::Active,
        user_id: Some(&user_id),
        claim_token_hash: None,
        requested_credential_type: requested,
        email: None,
        scopes: (generation == Generation::V0_7).then_some(granted.as_str()),
        created_ms: now_ms,
        expires_ms: None,
    })?;
    let delegation = Delegation {
        iss: claims.iss.clone(),
        sub: claims.sub.clone(),
        generation,
        user_id: user_id.clone(),
        registration_id: id.clone(),
    };
    tx.put_delegation(&delegation, now_ms)?;
    let mut created = json!({ "registration_type": RegistrationKind::AgentProvider.as_wire() });
    if generation == Generation::V0_7 {
        created["generation"] = json!(generation.as_db());
    }
    tx.record_event(
        now_ms,
        EventName::RegistrationCreated,
        asserted_event(ctx, claims, Some((&id, created))),
    )?;
    Ok(Delegated {
        registration_id: id,
        user_id,
    })
}

/// What [`delegated_registration`] will most likely answer, read outside
/// the transaction: the live registration of `generation` for the
/// delegation (or a fresh id for one to be made) and the bound address.
struct Planned {
    registration_id: String,
    email: Option<String>,
}

fn planned_identity(ctx: &Ctx<'_>, claims: &Claims, generation: Generation) -> Result<Planned, Error> {
    let read = ctx.conn;
    let delegations = read.delegations(&claims.iss, &claims.sub)?;
    let live = match delegations.iter().find(|d| d.generation == generation) {
        Some(d) => read.registration(&d.registration_id)?.filter(|r| r.status.is_live()),
        None => None,
    };
    let email = match delegations.first() {
        Some(d) => read.user(&d.user_id)?.and_then(|u| u.email),
        None => asserted_identity(claims).email,
    };
    Ok(Planned {
        registration_id: live.map_or_else(|| secrets::new_id("reg_", ctx.now_ms), |r| r.id),
        email,
    })
}

/// An audit event about an ID-JAG: who asserted what, from where.
fn asserted_event<'a>(ctx: &Ctx<'a>, claims: &'a Claims, registration: Option<(&'a str, Value)>) -> NewEvent<'a> {
    let (registration_id, detail) = match registration {
        Some((id, detail)) => (Some(id), super::detail(detail)),
        None => (None, Default::default()),
    };
    NewEvent {
        client_ip: ctx.client_ip,
        iss: Some(&claims.iss),
        sub: Some(&claims.sub),
        agent_platform: claims.agent_platform.as_deref(),
        agent_context_id: claims.agent_context_id.as_deref(),
        detail,
        registration_id,
    }
}

/// `id_jag_scopes`, narrowed by the token's `scope` claim when it has one.
fn granted_scopes(allowed: &[String], requested: Option<&str>) -> Result<Vec<String>, Error> {
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    let requested: Vec<&str> = requested.split_whitespace().collect();
    let granted: Vec<String> = allowed
        .iter()
        .filter(|s| requested.contains(&s.as_str()))
        .cloned()
        .collect();
    if granted.is_empty() {
        return Err(Error::InvalidScope(format!(
            "none of the scopes in the `scope` claim are granted to ID-JAG credentials here ({})",
            allowed.join(" ")
        )));
    }
    Ok(granted)
}

/// What the provider verified of the person (SPEC.md 4.4).
fn asserted_identity(claims: &Claims) -> Identity<'_> {
    Identity {
        email: claims
            .email
            .as_deref()
            .filter(|_| claims.email_verified)
            .and_then(|e| crate::email::normalize(e).ok()),
        phone_number: claims.phone_number.as_deref().filter(|_| claims.phone_number_verified),
        name: claims.name.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_claim_narrows_and_an_empty_result_is_refused() {
        let allowed = vec!["api.read".to_string(), "api.write".to_string()];
        assert_eq!(granted_scopes(&allowed, None).unwrap(), allowed);
        assert_eq!(
            granted_scopes(&allowed, Some("api.write other")).unwrap(),
            ["api.write"]
        );
        assert!(matches!(
            granted_scopes(&allowed, Some("admin")),
            Err(Error::InvalidScope(_))
        ));
        assert!(matches!(
            granted_scopes(&allowed, Some("")),
            Err(Error::InvalidScope(_))
        ));
    }
}
