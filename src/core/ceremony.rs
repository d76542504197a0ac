//! The current generation's claim ceremony (SPEC-v0.7 6): the person opens
//! the link the agent handed them, signs in (`signin`), confirms on the
//! page, which then shows a six-digit code, and reads it back to the agent,
//! which completes the claim with it. Codes are HMACs under the database's
//! key, bound to the attempt, living `otp_ttl_secs` from the confirmation;
//! 5 wrong guesses burn a code and 20 lock the registration, counted in the
//! write transaction that checks them. Every status change is
//! `lifecycle::next`. The v0.1 ceremony (mailed links) is `claim`.

use std::time::Duration;

use ring::hmac;
use serde_json::json;

use super::Ctx;
use super::claim::{event, new_code, otp_key, otp_message};
use super::issue::{MintedRefresh, SignedAssertion, issue_assertion, issue_refresh};
use super::lifecycle::{self, Event};
use crate::error::Error;
use crate::model::{EventName, Generation, RegistrationKind, Status};
use crate::secrets;
use crate::store::Tx;
use crate::store::attempts::{Attempt, AttemptStatus};
use crate::store::audit::NewEvent;
use crate::store::registrations::{Registration, Selection};
use crate::store::users::User;
use crate::time::UnixMs;

/// Why a v0.7 claim link is not open for the person who opened it (SPEC-v0.7 6.2).
pub enum Closed {
    Unknown,
    /// Superseded by a newer link.
    Replaced,
    /// Turned away by the person ("This wasn't me").
    Cancelled,
    Expired,
    Claimed,
    /// Signed in as another account than the one the link is for.
    WrongAccount {
        expected: String,
        signed_in: String,
    },
}

/// An open link: its attempt and registration.
pub type Open = (Box<Attempt>, Box<Registration>);

/// The gates of the page, in the SPEC's order (the session is the caller's
/// first gate). A GET never mints or consumes anything.
pub fn link(read: &dyn Tx, token: &str, user: &User, now_ms: UnixMs) -> Result<Result<Open, Closed>, Error> {
    let Some(attempt) = read.attempt_by_token_hash(&secrets::hash(token))? else {
        return Ok(Err(Closed::Unknown));
    };
    let Some(registration) = read
        .registration(&attempt.registration_id)?
        .filter(|r| r.generation == Generation::V0_7)
    else {
        return Ok(Err(Closed::Unknown));
    };
    let unconfirmed_and_late = attempt.confirmed_ms.is_none() && attempt.expires_ms <= now_ms;
    let over = matches!(
        registration.status,
        Status::Expired | Status::Locked | Status::Rejected | Status::Revoked
    ) || registration.lapsed(now_ms);
    Ok(match attempt.status {
        AttemptStatus::Superseded => Err(Closed::Replaced),
        AttemptStatus::Cancelled => Err(Closed::Cancelled),
        AttemptStatus::Completed => Err(Closed::Claimed),
        _ if registration.status == Status::Claimed => Err(Closed::Claimed),
        AttemptStatus::Closed => Err(Closed::Expired),
        AttemptStatus::Open if unconfirmed_and_late || over => Err(Closed::Expired),
        AttemptStatus::Open
            if !user
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(&attempt.email)) =>
        {
            Err(Closed::WrongAccount {
                expected: attempt.email.clone(),
                signed_in: user.email.clone().unwrap_or_else(|| user.id.clone()),
            })
        }
        AttemptStatus::Open => Ok((Box::new(attempt), Box::new(registration))),
    })
}

/// `POST /claim/confirm`: the person confirms; the code is minted (a
/// repeat confirm mints a fresh one, the previous dies). Returns the code
/// and its end, or the link's state when it is not open.
pub fn confirm(ctx: &Ctx<'_>, token: &str, user: &User) -> Result<Result<(String, UnixMs), Closed>, Error> {
    let now_ms = ctx.now_ms;
    let code_ttl = Duration::from_secs(ctx.config.settings.otp_ttl_secs);
    ctx.writer.write(|tx| {
        let (attempt, registration) = match link(tx, token, user, now_ms)? {
            Ok(open) => open,
            Err(closed) => return Ok(Err(closed)),
        };
        let code = new_code();
        let mac = hmac::sign(&otp_key(tx, now_ms)?, &otp_message(&attempt.id, &code));
        let expires_ms = now_ms + code_ttl;
        tx.confirm_attempt(&attempt.id, &user.id, mac.as_ref(), expires_ms, now_ms)?;
        let confirmed = json!({ "user_id": user.id });
        tx.record_event(
            now_ms,
            EventName::ClaimConfirmedOnPage,
            event(&registration.id, ctx.client_ip, confirmed),
        )?;
        tx.record_event(
            now_ms,
            EventName::OtpGenerated,
            event(&registration.id, ctx.client_ip, json!({})),
        )?;
        Ok(Ok((code, expires_ms)))
    })
}

/// `POST /claim/reject` with `confirm=yes`: "this wasn't me" (SPEC-v0.7
/// 6.2): the attempt is cancelled; an anonymous registration returns to
/// `unclaimed`, a `service_auth` one is `rejected`.
pub fn reject(ctx: &Ctx<'_>, token: &str, user: &User) -> Result<Result<(), Closed>, Error> {
    let now_ms = ctx.now_ms;
    ctx.writer.write(|tx| {
        let (attempt, registration) = match link(tx, token, user, now_ms)? {
            Ok(open) => open,
            Err(closed) => return Ok(Err(closed)),
        };
        tx.set_attempt_status(&attempt.id, AttemptStatus::Cancelled)?;
        let next = lifecycle::next(registration.kind, registration.status, Event::Rejected)?;
        tx.set_registration_status(&registration.id, next, now_ms)?;
        let detail = json!({ "user_id": user.id, "registration_status": next.as_str() });
        tx.record_event(
            now_ms,
            EventName::ClaimRejected,
            event(&registration.id, ctx.client_ip, detail),
        )?;
        Ok(Ok(()))
    })
}

/// A claim completed (SPEC-v0.7 6.4): a fresh assertion with the person's
/// address and a refresh token, both shown once.
pub struct Completed {
    pub registration_id: String,
    pub assertion: SignedAssertion,
    pub refresh_token: String,
    pub refresh_expires_ms: UnixMs,
}

/// `POST /agent/identity/claim/complete`, the checks in the SPEC's order.
/// Wrong codes are counted even though the answer is an error, so the
/// transaction returns the refusal as a value and commits.
pub fn complete(ctx: &Ctx<'_>, claim_token: &str, user_code: &str) -> Result<Completed, Error> {
    let (settings, site, now_ms) = (&ctx.config.settings, &ctx.config.site, ctx.now_ms);
    let (otp_max, claim_max) = (settings.otp_max_failures as i64, settings.claim_max_failures as i64);
    let refresh = MintedRefresh::new(settings, now_ms);
    ctx.writer.write(|tx| {
        let registration = super::claim::registration_by_claim_token(tx, claim_token)?
            .filter(|r| r.generation == Generation::V0_7)
            .ok_or(Error::InvalidClaim)?;
        if registration.status == Status::Claimed {
            return Ok(Err(Error::AlreadyClaimed));
        }
        if !matches!(registration.status, Status::Unclaimed | Status::PendingClaim) || registration.lapsed(now_ms) {
            return Ok(Err(Error::ClaimExpired("this registration can no longer be claimed")));
        }
        let Some(attempt) = tx.open_attempt_of(&registration.id)? else {
            return Ok(Err(Error::ClaimExpired(
                "there is no open claim link: ask for one at the claim URL",
            )));
        };
        let (Some(user_id), Some(mac)) = (attempt.confirmed_user_id.clone(), attempt.otp_mac.clone()) else {
            return Ok(Err(
                match (attempt.confirmed_user_id.is_some(), attempt.expires_ms > now_ms) {
                    (false, true) => Error::ClaimNotConfirmed,
                    (false, false) => Error::UserCodeExpired("the link expired before the person confirmed"),
                    (true, _) => Error::UserCodeExpired("the code was burned by wrong guesses"),
                },
            ));
        };
        if attempt.otp_expires_ms.is_none_or(|at| at <= now_ms) {
            return Ok(Err(Error::UserCodeExpired("the code expired")));
        }
        let wellformed = user_code.len() == 6 && user_code.bytes().all(|b| b.is_ascii_digit());
        if !wellformed || hmac::verify(&otp_key(tx, now_ms)?, &otp_message(&attempt.id, user_code), &mac).is_err() {
            let failures = tx.record_attempt_failure(&attempt.id, otp_max)?;
            let total = tx.add_claim_failure(&registration.id)?;
            let detail = json!({ "failures": failures, "total_failures": total });
            tx.record_event(
                now_ms,
                EventName::OtpFailed,
                event(&registration.id, ctx.client_ip, detail),
            )?;
            if total >= claim_max {
                let locked = lifecycle::next(registration.kind, registration.status, Event::TooManyFailures)?;
                tx.set_registration_status(&registration.id, locked, now_ms)?;
                tx.close_attempts(&registration.id)?;
                return Ok(Err(Error::ClaimExpired(
                    "too many wrong codes: the registration is locked",
                )));
            }
            return Ok(Err(Error::InvalidUserCode {
                remaining: (otp_max - failures).max(0),
            }));
        }
        lifecycle::next(registration.kind, registration.status, Event::Confirmed)?;
        // The pre-claim identity of an anonymous registration ends here.
        if registration.kind == RegistrationKind::Anonymous {
            tx.revoke_credentials_of(Selection::Registration(&registration.id), now_ms)?;
            tx.revoke_assertions_of(&registration.id, now_ms)?;
        }
        tx.set_attempt_status(&attempt.id, AttemptStatus::Completed)?;
        tx.mark_claimed(&registration.id, &user_id, now_ms)?;
        // A first link is bound now, to the person who confirmed it.
        if let Some(link) = tx.pending_link_of(&registration.id)? {
            let delegation = crate::store::delegations::Delegation {
                iss: link.iss,
                sub: link.sub,
                generation: Generation::V0_7,
                user_id: user_id.clone(),
                registration_id: registration.id.clone(),
            };
            tx.put_delegation(&delegation, now_ms)?;
            tx.delete_pending_link(&registration.id)?;
        }
        let confirmed = json!({ "claimed_by_user_id": user_id });
        tx.record_event(
            now_ms,
            EventName::ClaimConfirmed,
            event(&registration.id, ctx.client_ip, confirmed),
        )?;
        let email = tx.user(&user_id)?.and_then(|u| u.email);
        let assertion = SignedAssertion::sign(tx, site, settings, &registration.id, email.as_deref(), now_ms)?;
        let issued = || NewEvent {
            client_ip: ctx.client_ip,
            ..Default::default()
        };
        issue_assertion(tx, &assertion, issued(), now_ms)?;
        issue_refresh(tx, &refresh, &registration.id, issued(), now_ms)?;
        Ok(Ok(Completed {
            registration_id: registration.id.clone(),
            assertion,
            refresh_token: refresh.secret().to_string(),
            refresh_expires_ms: refresh.expires_ms(),
        }))
    })?
}
