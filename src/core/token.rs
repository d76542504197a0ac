//! The token endpoint's operation (SPEC-v0.7 8): a service assertion authmd
//! signed is exchanged for an access token. The assertion is verified
//! against authmd's own published keys only (ES256, `typ`
//! `oauth-id-jag+jwt`, `iss` = `aud` = this issuer), must be recorded and
//! not revoked, and must speak for a live v0.7 registration; the scopes come
//! from that registration's state, never from the request.

use serde_json::json;

use super::issue::{Exchanged, Grant, Minted, issue};
use super::{Ctx, detail, signing};
use crate::error::Error;
use crate::jose::{self, Claims, Policy, TokenKind};
use crate::model::{CredentialType, EventName, Generation, RegistrationKind, Status};
use crate::store::Tx;
use crate::store::audit::NewEvent;
use crate::store::registrations::Registration;

/// An access token just issued, with the scopes it carries.
pub struct AccessToken {
    pub minted: Minted,
    pub scopes: Vec<String>,
}

/// `grant_type=jwt-bearer&assertion=...[&resource=...]`, parsed by the wire
/// module.
pub fn exchange(ctx: &Ctx<'_>, assertion: &str, resource: Option<&str>) -> Result<AccessToken, Error> {
    let (settings, site) = (&ctx.config.settings, &ctx.config.site);
    if resource.is_some_and(|r| r != site.resource) {
        return Err(Error::InvalidTarget);
    }
    let claims = verified(ctx, assertion)?;
    let now_ms = ctx.now_ms;
    let minted = Minted::new(CredentialType::AccessToken, settings, now_ms);
    let client_ip = ctx.client_ip;
    let scopes = ctx.writer.write(|tx| {
        let exchanged = admit(tx, &claims, now_ms)?;
        let scopes = scopes(ctx, exchanged.registration())?;
        let event = NewEvent {
            client_ip,
            ..Default::default()
        };
        issue(tx, now_ms, &minted, Grant::exchanged(&exchanged, &scopes, event))?;
        let issued = NewEvent {
            registration_id: Some(&exchanged.registration().id),
            client_ip,
            detail: detail(json!({ "scope": scopes.join(" ") })),
            ..Default::default()
        };
        tx.record_event(now_ms, EventName::TokenIssued, issued)?;
        Ok(scopes)
    })?;
    Ok(AccessToken { minted, scopes })
}

/// Signature and claims, against the keys authmd publishes.
fn verified(ctx: &Ctx<'_>, assertion: &str) -> Result<Claims, Error> {
    let (settings, site) = (&ctx.config.settings, &ctx.config.site);
    let refuse = |_| Error::InvalidGrant("it is not an assertion this service signed, or it expired");
    let unverified = jose::parse(assertion, TokenKind::Service).map_err(refuse)?;
    if unverified.issuer() != Some(site.issuer.as_str()) {
        return Err(Error::InvalidGrant("it was not issued by this service"));
    }
    let jwks = signing::published_jwks(ctx.conn, settings, ctx.now_ms)?;
    let policy = Policy {
        audiences: vec![site.issuer.clone()],
        clock_skew_secs: settings.clock_skew_secs,
        max_assertion_lifetime_secs: settings.assertion_ttl_secs,
        logout_lifetime_without_exp_secs: 0,
    };
    let verified = jose::verify(unverified, &jwks, &policy, ctx.now_ms.secs_floor()).map_err(refuse)?;
    Ok(verified.claims().clone())
}

/// Recorded, not revoked, and its registration a live v0.7 one.
fn admit(tx: &dyn Tx, claims: &Claims, now_ms: crate::time::UnixMs) -> Result<Exchanged, Error> {
    let recorded = tx
        .assertion(&claims.jti)?
        .filter(|a| a.registration_id == claims.sub)
        .ok_or(Error::InvalidGrant("it is not an assertion this service signed"))?;
    if recorded.revoked_ms.is_some() {
        return Err(Error::InvalidGrant("it was revoked"));
    }
    let registration = tx
        .registration(&claims.sub)?
        .filter(|r| r.generation == Generation::V0_7)
        .ok_or(Error::InvalidGrant("its registration is unknown"))?;
    if !registration.status.is_live() || registration.lapsed(now_ms) {
        return Err(Error::InvalidGrant("its registration was revoked, expired or locked"));
    }
    Ok(Exchanged::new(registration))
}

/// SPEC-v0.7 8: what the token may do follows from the registration.
fn scopes(ctx: &Ctx<'_>, registration: &Registration) -> Result<Vec<String>, Error> {
    let settings = &ctx.config.settings;
    match (registration.kind, registration.status) {
        (RegistrationKind::Anonymous, Status::Unclaimed | Status::PendingClaim) => {
            Ok(settings.pre_claim_scopes.clone())
        }
        (RegistrationKind::Anonymous | RegistrationKind::ServiceAuth, Status::Claimed) => {
            Ok(settings.post_claim_scopes.clone())
        }
        (RegistrationKind::AgentProvider, Status::Active | Status::Claimed) => Ok(crate::model::split_scopes(
            registration.scopes.as_deref().unwrap_or_default(),
        )),
        _ => Err(Error::InvalidGrant("its registration is not claimed")),
    }
}
