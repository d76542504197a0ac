//! `POST /agent/auth` (SPEC.md section 3): dispatch on `type`, then one flow.
//!
//! Built here: anonymous registration (3.1). An anonymous registration starts
//! `unclaimed` with an API key scoped to `pre_claim_scopes` and a claim token;
//! until it is claimed it stops working after `registration_ttl_secs`
//! (`guard::authenticate` checks `expires_ms`).
//!
//! ID-JAG registration is `id_jag`. Not here: the claim ceremony, rate limits.

use serde_json::json;

use super::Ctx;
use crate::core::issue::{Grant, Minted, issue};
use crate::error::Error;
use crate::model::{CredentialType, EventName, RegistrationKind, Status};
use crate::secrets;
use crate::store::{audit, registrations};

pub use crate::proto::v0_1::{Registered, Request};

pub fn register(ctx: &mut Ctx<'_>, request: Request) -> Result<Registered, Error> {
    let available = ctx.config.available();
    match request {
        Request::Anonymous { .. } if !available.anonymous => Err(Error::AnonymousNotEnabled),
        Request::Anonymous { .. } => register_anonymous(ctx),
        Request::IdJag { .. } if !available.id_jag => Err(Error::IssuerNotEnabled),
        Request::IdJag { assertion, requested } => super::id_jag::register(ctx, ctx.keys, &assertion, requested),
        Request::VerifiedEmail { .. } if !available.verified_email => Err(Error::VerifiedEmailNotEnabled),
        Request::VerifiedEmail { email, requested } => super::claim::register_verified_email(ctx, &email, requested),
    }
}

/// SPEC.md 3.1: registration, key, claim token and audit event in one transaction.
fn register_anonymous(ctx: &mut Ctx<'_>) -> Result<Registered, Error> {
    let settings = &ctx.config.settings;
    let now_ms = ctx.now_ms;
    let expires_ms = now_ms + (settings.registration_ttl_secs as i64) * 1000;
    let registration_id = secrets::new_id("reg_", now_ms);
    let key = Minted::new(CredentialType::ApiKey, settings, now_ms);
    let claim_token = secrets::new_claim_token();
    let client_ip = ctx.client_ip;

    ctx.writer.write(|tx| {
        tx.insert_registration(&registrations::NewRegistration {
            id: &registration_id,
            kind: RegistrationKind::Anonymous,
            status: Status::Unclaimed,
            user_id: None,
            claim_token_hash: Some(&secrets::hash(&claim_token)),
            requested_credential_type: Some(CredentialType::ApiKey),
            email: None,
            created_ms: now_ms,
            expires_ms: Some(expires_ms),
        })?;
        tx.record_event(
            now_ms,
            EventName::RegistrationCreated,
            audit::NewEvent {
                registration_id: Some(&registration_id),
                client_ip,
                detail: json!({"registration_type": "anonymous"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                ..Default::default()
            },
        )?;
        let grant = Grant {
            registration_id: &registration_id,
            scopes: &settings.pre_claim_scopes,
            event: audit::NewEvent {
                client_ip,
                ..Default::default()
            },
        };
        issue(tx, now_ms, &key, grant)?;
        Ok(())
    })?;

    Ok(Registered::new(&registration_id, RegistrationKind::Anonymous)
        .with_credential(&key, &settings.pre_claim_scopes)
        .with_claim(
            &ctx.config.site.claim_uri,
            &claim_token,
            expires_ms,
            &settings.post_claim_scopes,
        ))
}
