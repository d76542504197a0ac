//! Refresh tokens (SPEC-v0.7 4.4, 9): `type: refresh` spends the token
//! presented and issues a new assertion and a new refresh token, in one
//! transaction; of two concurrent refreshes with one token exactly one
//! wins. A spent token presented again is a reuse: the whole family of the
//! registration (refresh tokens, assertions, access tokens) is revoked and
//! `refresh_token.reused` recorded; the registration keeps its status with
//! nothing live. A revoked or expired registration refreshes nothing.

use serde_json::json;

use super::issue::{MintedRefresh, SignedAssertion, issue_assertion, issue_refresh};
use super::{Ctx, detail};
use crate::error::Error;
use crate::model::{EventName, Generation};
use crate::secrets;
use crate::store::Tx;
use crate::store::audit::NewEvent;
use crate::store::registrations::Selection;
use crate::time::UnixMs;

/// A refresh done: the new assertion and refresh token, shown once.
pub struct Refreshed {
    pub registration_id: String,
    pub assertion: SignedAssertion,
    pub refresh: MintedRefresh,
}

pub fn refresh(ctx: &Ctx<'_>, token: &str) -> Result<Refreshed, Error> {
    let (settings, site, now_ms) = (&ctx.config.settings, &ctx.config.site, ctx.now_ms);
    if !token.starts_with(&settings.refresh_token_prefix) || !secrets::credential_checksum_ok(token) {
        return Err(Error::InvalidRefreshToken);
    }
    let minted = MintedRefresh::new(settings, now_ms);
    ctx.writer
        .write(|tx| {
            let found = secrets::find_stored(token, secrets::Shape::Checksummed, |hash| tx.refresh_token(hash))?;
            let Some((hash, stored)) = found else {
                return Ok(Err(Error::InvalidRefreshToken));
            };
            let Some(registration) = tx
                .registration(&stored.registration_id)?
                .filter(|r| r.generation == Generation::V0_7 && r.status.is_live() && !r.lapsed(now_ms))
            else {
                return Ok(Err(Error::InvalidRefreshToken));
            };
            if stored.revoked_ms.is_some() || stored.expires_ms <= now_ms {
                return Ok(Err(Error::InvalidRefreshToken));
            }
            if stored.spent_ms.is_some() || !tx.spend_refresh_token(&hash, now_ms)? {
                let revoked = revoke_family(tx, &registration.id, now_ms)?;
                let event = NewEvent {
                    registration_id: Some(&registration.id),
                    client_ip: ctx.client_ip,
                    detail: detail(json!({ "revoked": revoked })),
                    ..Default::default()
                };
                tx.record_event(now_ms, EventName::RefreshTokenReused, event)?;
                return Ok(Err(Error::InvalidRefreshToken));
            }
            let email = match &registration.user_id {
                Some(user) => tx.user(user)?.and_then(|u| u.email),
                None => None,
            };
            let assertion = SignedAssertion::sign(tx, site, settings, &registration.id, email.as_deref(), now_ms)?;
            let event = || NewEvent {
                client_ip: ctx.client_ip,
                ..Default::default()
            };
            issue_assertion(tx, &assertion, event(), now_ms)?;
            issue_refresh(tx, &minted, &registration.id, event(), now_ms)?;
            let mut rotated = event();
            rotated.registration_id = Some(&registration.id);
            tx.record_event(now_ms, EventName::RefreshTokenRotated, rotated)?;
            Ok(Ok((registration.id, assertion)))
        })?
        .map(|(registration_id, assertion)| Refreshed {
            registration_id,
            assertion,
            refresh: minted,
        })
}

/// Revokes every refresh token, assertion and access token of a
/// registration (SPEC-v0.7 9, 10); returns how many in all.
pub fn revoke_family(tx: &dyn Tx, registration_id: &str, now_ms: UnixMs) -> Result<usize, Error> {
    let tokens = tx.revoke_refresh_tokens_of(registration_id, now_ms)?;
    let assertions = tx.revoke_assertions_of(registration_id, now_ms)?;
    let credentials = tx.revoke_credentials_of(Selection::Registration(registration_id), now_ms)?;
    Ok(tokens + assertions + credentials)
}
