//! ID-JAG registration (SPEC.md 3.2, 4) and revocation by the provider (6).
//!
//! ```text
//!  token ─▶ jose::parse (shape, header rules; nothing trusted yet)
//!        ─▶ trust list: is `iss` a provider we trust?     (before any network)
//!        ─▶ keys: the provider's JWKS (cached; one refetch on an unknown kid)
//!        ─▶ jose::verify (signature, then claims)        ─▶ Verified
//!        ─▶ client_id: pinned, equal to iss, or a metadata document
//!           (the jti is recorded before that document is fetched)
//!        ─▶ one transaction: replay store, provider revocations, user
//!           matching (4.4), registration per (iss, sub), credential, audit
//! ```
//!
//! The types prove only the signature and claim checks: a [`Verified`] is
//! built by `jose::verify` alone, and the transaction reads its claims from
//! one. The trust list, the `client_id` rule, replay and the revocation marks
//! are checked in order by [`register`] itself, not proven by a type, and
//! `core::issue` (the one place a credential is minted) takes no proof yet;
//! keep every check on the path above.
//! A token can make authmd fetch at most once
//! on its behalf: its jti goes into the replay store before the `client_id`
//! document is fetched, so a replay is refused before any network request
//! (issue 10). Fetch failures reach the log, not the wire: the refusal says
//! what failed, the response's `reason` says where and why. Not here: rate
//! limits (`http`), the JOSE rules themselves (`jose`), where authmd may
//! connect (`fetch`).

use serde_json::{Value, json};

use super::Ctx;
use crate::core::issue::{Grant, Minted, issue};
use crate::core::revoke::{self, RevokedBy};
use crate::core::users::{self, Identity, Provision};
use crate::error::Error;
use crate::jose::{self, Claims, Policy, TokenKind, Verified};
use crate::keys::{KeyCache, KeysError};
use crate::model::{CredentialType, EventName, RegistrationKind, Status};
use crate::proto::v0_1::Registered;
use crate::secrets;
use crate::store::{Tx, audit, delegations, providers, registrations};

/// A logout token without `exp` counts as expiring this long after `iat` (SPEC.md 6).
pub const LOGOUT_LIFETIME_WITHOUT_EXP_SECS: u64 = 300;

pub fn register(
    ctx: &mut Ctx<'_>,
    keys: &KeyCache,
    assertion: &str,
    requested: CredentialType,
) -> Result<Registered, Error> {
    let (verified, provider) = verify(ctx, keys, assertion, TokenKind::IdJag)?;
    let claims = verified.claims();
    let settings = &ctx.config.settings;
    let scopes = granted_scopes(&settings.id_jag_scopes, claims.scope.as_deref())?;
    let (now_ms, skew_secs) = (ctx.now_ms, settings.clock_skew_secs as i64);
    let jti_expires_ms = (claims.exp + skew_secs) * 1000;
    let jti_recorded = match client_id_document(&provider, claims)? {
        Some(document_url) => {
            if !ctx
                .writer
                .write(|tx| Ok(tx.first_use(&claims.iss, &claims.jti, jti_expires_ms, now_ms)?))?
            {
                return Err(Error::ReplayDetected);
            }
            check_client_id_document(ctx, keys, document_url, &provider.jwks_uri())?;
            true
        }
        None => false,
    };
    let jit = settings.jit_provisioning;
    let credential = Minted::new(requested, settings, now_ms);
    let client_ip = ctx.client_ip;

    let registration_id = ctx.writer.write(|tx| {
        if !jti_recorded && !tx.first_use(&claims.iss, &claims.jti, jti_expires_ms, now_ms)? {
            return Err(Error::ReplayDetected);
        }
        // The provider's mark is on its clock; this server's is compared
        // with the provider's `iat` only beyond the allowed skew.
        if tx
            .revocation_marks(&claims.iss, &claims.sub)?
            .refuse(claims.iat, skew_secs as u64)
        {
            return Err(Error::AssertionRevoked);
        }
        let event = |detail: Value| audit::NewEvent {
            client_ip,
            iss: Some(&claims.iss),
            sub: Some(&claims.sub),
            agent_platform: claims.agent_platform.as_deref(),
            agent_context_id: claims.agent_context_id.as_deref(),
            detail: detail.as_object().cloned().unwrap_or_default(),
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
                    None => match_user(tx, claims, jit, now_ms)?,
                };
                let id = secrets::new_id("reg_", now_ms);
                tx.insert_registration(&registrations::NewRegistration {
                    id: &id,
                    kind: RegistrationKind::AgentProvider,
                    status: Status::Active,
                    user_id: Some(&user_id),
                    claim_token_hash: None,
                    requested_credential_type: Some(requested),
                    email: None,
                    created_ms: now_ms,
                    expires_ms: None,
                })?;
                let delegation = delegations::Delegation {
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
        let grant = Grant {
            registration_id: &registration_id,
            scopes: &scopes,
            event: event(json!({})),
        };
        issue(tx, now_ms, &credential, grant)?;
        Ok(registration_id)
    })?;

    Ok(Registered::new(&registration_id, RegistrationKind::AgentProvider).with_credential(&credential, &scopes))
}

/// `POST /agent/auth/revoke`: a verified logout token revokes every live
/// credential of its delegation `(iss, sub)`, whichever audience alias it
/// named. Returns the number of credentials revoked.
pub fn provider_revoke(ctx: &mut Ctx<'_>, keys: &KeyCache, token: &str) -> Result<usize, Error> {
    let (verified, _) = verify(ctx, keys, token, TokenKind::Logout)?;
    let claims = verified.claims();
    let (now_ms, skew_secs) = (ctx.now_ms, ctx.config.settings.clock_skew_secs as i64);
    let client_ip = ctx.client_ip;
    ctx.writer.write(|tx| {
        if !tx.first_use(&claims.iss, &claims.jti, (claims.exp + skew_secs) * 1000, now_ms)? {
            return Err(Error::ReplayDetected);
        }
        tx.mark_revoked_by_provider(&claims.iss, &claims.sub, claims.iat)?;
        let Some(delegation) = tx.delegation(&claims.iss, &claims.sub)? else {
            return Ok(0);
        };
        let by = RevokedBy {
            by: "provider",
            iss: Some(&claims.iss),
            sub: Some(&claims.sub),
            client_ip,
        };
        Ok(revoke::revoke_one(tx, &delegation.registration_id, &by, now_ms)?.unwrap_or(0))
    })
}

/// Parse, trust, keys, signature and claims: everything that can be
/// checked before touching state. Returns the trust entry too.
fn verify(
    ctx: &Ctx<'_>,
    keys: &KeyCache,
    token: &str,
    kind: TokenKind,
) -> Result<(Verified, providers::Provider), Error> {
    let settings = &ctx.config.settings;
    let unverified = jose::parse(token, kind).map_err(Error::Assertion)?;
    let issuer = unverified
        .issuer()
        .ok_or_else(|| Error::InvalidIssuer("the assertion has no `iss` claim".into()))?
        .to_string();
    let provider = ctx.conn.provider(&issuer)?.ok_or_else(|| {
        Error::InvalidIssuer(format!(
            "the issuer `{}` is not trusted by this service",
            shorten(&issuer)
        ))
    })?;
    let jwks_uri = provider.jwks_uri();
    // Busy is a moment's congestion, not a bad token: a 503 the agent retries.
    let unavailable = |err: KeysError| match err {
        KeysError::Busy => Error::Unavailable(format!("keys of `{issuer}` from {jwks_uri}: {err}")),
        err => Error::KeysUnavailable(format!("keys of `{issuer}` from {jwks_uri}: {err}")),
    };
    let policy = Policy {
        audiences: vec![ctx.config.site.issuer.clone(), ctx.config.site.resource.clone()],
        clock_skew_secs: settings.clock_skew_secs,
        max_assertion_lifetime_secs: settings.max_assertion_lifetime_secs,
        logout_lifetime_without_exp_secs: LOGOUT_LIFETIME_WITHOUT_EXP_SECS,
    };
    let now_secs = ctx.now_ms.div_euclid(1000);
    let mut jwks = keys
        .jwks(&ctx.key_store(), &jwks_uri, ctx.now_ms)
        .map_err(unavailable)?;
    if let Some(kid) = unverified.kid()
        && !jwks.has_kid(kid)
        && let Some(refetched) = keys
            .refetch_for_unknown_kid(&ctx.key_store(), &jwks_uri, ctx.now_ms)
            .map_err(unavailable)?
    {
        jwks = refetched;
    }
    let verified = jose::verify(unverified, &jwks, &policy, now_secs).map_err(Error::Assertion)?;
    Ok((verified, provider))
}

/// SPEC.md 4.3: a pinned `client_id` must match; one equal to `iss` needs
/// nothing more (`None`); any other must be a Client ID Metadata Document
/// URL, returned for [`check_client_id_document`].
fn client_id_document<'c>(provider: &providers::Provider, claims: &'c Claims) -> Result<Option<&'c str>, Error> {
    let client_id = claims
        .client_id
        .as_deref()
        .ok_or_else(|| Error::InvalidClientId("the assertion has no `client_id` claim".into()))?;
    if let Some(pinned) = &provider.client_id {
        if client_id != pinned {
            return Err(Error::InvalidClientId(format!(
                "`client_id` must be `{}` for this provider",
                shorten(pinned)
            )));
        }
        return Ok(None);
    }
    if client_id == claims.iss {
        return Ok(None);
    }
    crate::fetch::check_url(client_id).map_err(|_| {
        Error::InvalidClientId(format!(
            "`client_id` {}: is neither the issuer nor an https Client ID Metadata Document URL",
            shorten(client_id)
        ))
    })?;
    Ok(Some(client_id))
}

/// The Client ID Metadata Document at `client_id` must name itself and the
/// JWKS that verified the token. Fetched only after the signature verified
/// and the jti was recorded.
fn check_client_id_document(ctx: &Ctx<'_>, keys: &KeyCache, client_id: &str, jwks_uri: &str) -> Result<(), Error> {
    let refuse = |why: String| Error::InvalidClientId(format!("`client_id` {}: {why}", shorten(client_id)));
    let doc = keys
        .json_document(&ctx.key_store(), client_id, ctx.now_ms)
        .map_err(|e| Error::ClientIdUnverifiable(format!("metadata document {}: {e}", shorten(client_id))))?;
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(refuse(
            "its metadata document does not name itself as `client_id`".into(),
        ));
    }
    if doc.get("jwks_uri").and_then(Value::as_str) != Some(jwks_uri) {
        return Err(refuse(
            "its metadata document's `jwks_uri` is not the one that verified the token".into(),
        ));
    }
    Ok(())
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

/// SPEC.md 4.4 steps 2 to 4 (step 1, the delegation, is the caller's).
/// SPEC.md 4.4, from what the provider verified.
fn match_user(tx: &dyn Tx, claims: &Claims, jit: bool, now_ms: i64) -> Result<String, Error> {
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

fn shorten(text: &str) -> String {
    let short: String = text.chars().filter(|c| !c.is_control()).take(100).collect();
    if short.len() < text.len() { short + "…" } else { short }
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
