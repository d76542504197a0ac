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
use crate::secrets;
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
            claim_token_hash: Some(&secrets::hash(self.claim_token)),
            requested_credential_type: requested,
            email: None,
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
    let claim_token = secrets::new_claim_token();
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
    let claim_token = secrets::new_claim_token();
    let client_ip = ctx.client_ip;
    let assertion = ctx.writer.write(|tx| {
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
        issue_assertion(tx, site, settings, &registration_id, None, event, now_ms)
    })?;
    Ok(AnonymousIdentity {
        registration_id,
        assertion,
        claim: ClaimOffer::new(claim_token, expires_ms, settings),
        pre_claim_scopes: settings.pre_claim_scopes.clone(),
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
    let claim_token = secrets::new_claim_token();
    let mail = super::claim::ClaimContext::of(ctx);
    ctx.writer.write(|tx| {
        tx.insert_registration(&NewRegistration {
            id: &registration_id,
            generation: Generation::V0_1,
            kind: RegistrationKind::EmailVerification,
            status: Status::PendingClaim,
            user_id: None,
            claim_token_hash: Some(&secrets::hash(&claim_token)),
            requested_credential_type: Some(requested),
            email: Some(&email),
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
    if !ctx.config.available().id_jag {
        return Err(Error::IssuerNotEnabled);
    }
    let settings = &ctx.config.settings;
    let signed = verify::signed(ctx, assertion, TokenKind::IdJag)?;
    let scopes = granted_scopes(&settings.id_jag_scopes, signed.claims().scope.as_deref())?;
    let checked = signed.check_client_id(ctx)?;
    let now_ms = ctx.now_ms;
    let jit = settings.jit_provisioning;
    let credential = Minted::new(requested, settings, now_ms);
    let client_ip = ctx.client_ip;

    let registration_id = ctx.writer.write(|tx| {
        let admitted = checked.admit(tx, now_ms, settings.clock_skew_secs)?;
        let claims = admitted.claims();
        let event = |detail: Value| NewEvent {
            client_ip,
            iss: Some(&claims.iss),
            sub: Some(&claims.sub),
            agent_platform: claims.agent_platform.as_deref(),
            agent_context_id: claims.agent_context_id.as_deref(),
            detail: super::detail(detail),
            registration_id: None,
        };
        let existing = tx.delegation(&claims.iss, &claims.sub)?;
        let live_registration = match &existing {
            Some(d) => tx.registration(&d.registration_id)?.filter(|r| r.status.is_live()),
            None => None,
        };
        let registration_id = match live_registration {
            Some(registration) => registration.id,
            None => {
                let user_id = match existing {
                    Some(d) => d.user_id,
                    None => match_asserted_user(tx, claims, jit, now_ms)?,
                };
                let id = secrets::new_id("reg_", now_ms);
                tx.insert_registration(&NewRegistration {
                    id: &id,
                    generation: Generation::V0_1,
                    kind: RegistrationKind::AgentProvider,
                    status: Status::Active,
                    user_id: Some(&user_id),
                    claim_token_hash: None,
                    requested_credential_type: Some(requested),
                    email: None,
                    created_ms: now_ms,
                    expires_ms: None,
                })?;
                let delegation = Delegation {
                    iss: claims.iss.clone(),
                    sub: claims.sub.clone(),
                    user_id,
                    registration_id: id.clone(),
                };
                tx.put_delegation(&delegation, now_ms)?;
                let mut created = event(json!({ "registration_type": RegistrationKind::AgentProvider.as_wire() }));
                created.registration_id = Some(&id);
                tx.record_event(now_ms, EventName::RegistrationCreated, created)?;
                id
            }
        };
        let grant = Grant::asserted(&admitted, &registration_id, &scopes, event(json!({})));
        issue(tx, now_ms, &credential, grant)?;
        Ok(registration_id)
    })?;
    Ok(Outcome {
        registration_id,
        kind: RegistrationKind::AgentProvider,
        credential: Some((credential, scopes)),
        claim: None,
    })
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

/// SPEC.md 4.4 steps 2 to 4 from what the provider verified (step 1, the
/// delegation, is the caller's).
fn match_asserted_user(tx: &dyn Tx, claims: &Claims, jit: bool, now_ms: UnixMs) -> Result<String, Error> {
    let identity = Identity {
        email: claims
            .email
            .as_deref()
            .filter(|_| claims.email_verified)
            .and_then(|e| crate::email::normalize(e).ok()),
        phone_number: claims.phone_number.as_deref().filter(|_| claims.phone_number_verified),
        name: claims.name.as_deref(),
    };
    let provision = if jit { Provision::Allowed } else { Provision::Refused };
    users::match_user(tx, identity, provision, now_ms)
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
