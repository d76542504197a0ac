//! The claim ceremony (SPEC.md 3.3 and 5): a person confirms ownership of
//! a registration by opening an emailed link, pressing a button, and reading
//! a six-digit code back to the agent. Every status change is
//! `lifecycle::next` (the diagram is there).
//!
//! Each link is a claim attempt: at most one is open per registration, a new
//! one supersedes it. A GET of the link mints nothing; the button (or the
//! JSON challenge) mints a code and retires the previous one. Codes are
//! stored as HMAC-SHA-256 under the database's own key, bound to their
//! attempt, and checked in constant time inside the write transaction, so
//! counters cannot be raced. Not here: page HTML (`http::pages`), delivery
//! (`mail`).

use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};

use super::Ctx;
use super::issue::{Confirmed, Grant, Minted, issue};
use super::lifecycle::{self, Event};
use super::users::{Identity, Provision, match_user};
use crate::error::Error;
use crate::mail;
use crate::model::{CredentialType, EventName, Generation, RegistrationKind, Status, join_scopes};
use crate::secrets;
use crate::store::attempts::{self, Attempt, AttemptStatus};
use crate::store::registrations::Registration;
use crate::store::{Tx, audit, outbox};
use crate::time::UnixMs;

const OTP_KEY: &str = "otp_hmac";

/// A uniformly random code from 000000 to 999999.
pub(super) fn new_code() -> String {
    let rng = SystemRandom::new();
    loop {
        let mut bytes = [0u8; 4];
        rng.fill(&mut bytes).expect("the system CSPRNG is available");
        let value = u32::from_be_bytes(bytes);
        // 4_294_000_000 is the largest multiple of 10^6 below 2^32: no bias.
        if value < 4_294_000_000 {
            return format!("{:06}", value % 1_000_000);
        }
    }
}

pub(super) fn otp_key(tx: &dyn Tx, now_ms: UnixMs) -> Result<hmac::Key, Error> {
    super::hmac_key(tx, OTP_KEY, now_ms)
}

pub(super) fn otp_message(attempt_id: &str, code: &str) -> Vec<u8> {
    format!("{attempt_id}:{code}").into_bytes()
}

pub(super) fn event<'a>(registration_id: &'a str, client_ip: Option<&'a str>, detail: Value) -> audit::NewEvent<'a> {
    audit::NewEvent {
        registration_id: Some(registration_id),
        client_ip,
        detail: detail.as_object().cloned().unwrap_or_default(),
        ..Default::default()
    }
}

/// Opens a claim attempt and queues its email; returns the attempt id.
pub(super) fn open_attempt(
    tx: &dyn Tx,
    ctx_values: &ClaimContext<'_>,
    registration_id: &str,
    email: &str,
) -> Result<(String, UnixMs), Error> {
    let attempt_id = secrets::new_id("att_", ctx_values.now_ms);
    let token = format!("cat_{}", secrets::random_secret());
    let expires_ms = ctx_values.now_ms + ctx_values.attempt_ttl;
    tx.open_attempt(&attempts::NewAttempt {
        id: &attempt_id,
        registration_id,
        email,
        token_hash: &secrets::hash(&token),
        created_ms: ctx_values.now_ms,
        expires_ms,
    })?;
    let link = ctx_values.site.claim_link(&token);
    let (subject, text, html) = mail::claim_email(ctx_values.resource_name, &link, expires_ms, registration_id);
    tx.enqueue_mail(&outbox::NewMessage {
        recipient: email,
        subject: &subject,
        body_text: &text,
        body_html: &html,
        registration_id: Some(registration_id),
        created_ms: ctx_values.now_ms,
    })?;
    tx.record_event(
        ctx_values.now_ms,
        EventName::ClaimRequested,
        event(registration_id, ctx_values.client_ip, json!({ "email": email })),
    )?;
    Ok((attempt_id, expires_ms))
}

/// What the transactions need from the context, copied out of it.
pub(super) struct ClaimContext<'a> {
    now_ms: UnixMs,
    attempt_ttl: Duration,
    site: &'a crate::site::Site,
    resource_name: &'a str,
    client_ip: Option<&'a str>,
}

impl<'a> ClaimContext<'a> {
    pub(super) fn of(ctx: &Ctx<'a>) -> ClaimContext<'a> {
        ClaimContext {
            now_ms: ctx.now_ms,
            attempt_ttl: Duration::from_secs(ctx.config.settings.claim_attempt_ttl_secs),
            site: &ctx.config.site,
            resource_name: &ctx.config.shown_name,
            client_ip: ctx.client_ip,
        }
    }
}

/// Refuses registrations that can no longer be claimed.
fn claimable(registration: &Registration, now_ms: UnixMs) -> Result<Status, Error> {
    let next = lifecycle::next(registration.kind, registration.status, Event::ClaimRequested)?;
    unlapsed(registration, now_ms)?;
    Ok(next)
}

/// A registration past its TTL may be `unclaimed` still: the sweeper marks
/// it `expired` within seconds, but it is over now.
fn unlapsed(registration: &Registration, now_ms: UnixMs) -> Result<(), Error> {
    match registration.lapsed(now_ms) {
        true => Err(Error::ClaimExpired("this registration expired unclaimed")),
        false => Ok(()),
    }
}

/// `POST /agent/auth/claim` (SPEC.md 5.1).
/// A claim attempt open and its mail queued (or the same one, asked again).
pub struct Requested {
    pub registration_id: String,
    pub attempt_id: String,
    pub expires_ms: UnixMs,
}

/// The registration a claim token names, under either key it may be
/// stored under ([`secrets::find_stored`]).
pub(super) fn registration_by_claim_token(
    tx: &dyn Tx,
    claim_token: &str,
) -> Result<Option<Registration>, crate::store::Error> {
    Ok(secrets::find_stored(claim_token, secrets::Shape::ClaimToken, |hash| {
        tx.registration_by_claim_token_hash(hash)
    })?
    .map(|(_, registration)| registration))
}

pub fn request(ctx: &Ctx<'_>, claim_token: &str, email: &str) -> Result<Requested, Error> {
    let v = ClaimContext::of(ctx);
    let email = crate::email::normalize(email).map_err(Error::InvalidRequest)?;
    let (registration_id, attempt_id, expires_ms, created) = ctx.writer.write(|tx| {
        let registration = registration_by_claim_token(tx, claim_token)?
            .filter(|r| r.generation == Generation::V0_1)
            .ok_or(Error::InvalidClaimToken)?;
        let pending = claimable(&registration, v.now_ms)?;
        if registration.kind == RegistrationKind::EmailVerification && registration.email.as_deref() != Some(&email) {
            return Err(Error::ClaimedOrInFlight(
                "this registration is waiting for another email address",
            ));
        }
        if let Some(open) = tx.open_attempt_of(&registration.id)?
            && open.email == email
            && open.expires_ms > v.now_ms
        {
            // The same request again while its link is live: same attempt, no second email.
            return Ok((registration.id, open.id, open.expires_ms, false));
        }
        let (attempt_id, expires_ms) = open_attempt(tx, &v, &registration.id, &email)?;
        tx.set_registration_status(&registration.id, pending, v.now_ms)?;
        Ok((registration.id, attempt_id, expires_ms, true))
    })?;
    if created {
        ctx.poke_mail();
    }
    Ok(Requested {
        registration_id,
        attempt_id,
        expires_ms,
    })
}

/// Where a claim link stands, for the page it opens.
pub enum LinkState {
    Unknown,
    Superseded,
    Expired,
    Claimed,
    Cancelled,
    Open {
        attempt: Box<Attempt>,
        registration: Box<Registration>,
    },
}

fn link_state(tx: &dyn Tx, token: &str, now_ms: UnixMs) -> Result<LinkState, Error> {
    let Some(attempt) = tx.attempt_by_token_hash(&secrets::hash(token))? else {
        return Ok(LinkState::Unknown);
    };
    let registration = tx
        .registration(&attempt.registration_id)?
        .ok_or_else(|| Error::Internal("a claim attempt without its registration".into()))?;
    // A v0.7 link is for the v0.7 pages (SPEC-v0.7 1).
    if registration.generation != Generation::V0_1 {
        return Ok(LinkState::Unknown);
    }
    Ok(match attempt.status {
        AttemptStatus::Superseded => LinkState::Superseded,
        AttemptStatus::Cancelled => LinkState::Cancelled,
        AttemptStatus::Completed => LinkState::Claimed,
        _ if registration.status == Status::Claimed => LinkState::Claimed,
        AttemptStatus::Closed => LinkState::Expired,
        AttemptStatus::Open if attempt.expires_ms <= now_ms || claimable(&registration, now_ms).is_err() => {
            LinkState::Expired
        }
        AttemptStatus::Open => LinkState::Open {
            attempt: Box::new(attempt),
            registration: Box::new(registration),
        },
    })
}

/// `GET` on the claim page (`Endpoint::ClaimView`): reads only; never mints or consumes.
pub fn view(ctx: &Ctx<'_>, token: &str) -> Result<LinkState, Error> {
    link_state(ctx.conn, token, ctx.now_ms)
}

/// A fresh code for an open link (the button, or the JSON challenge of
/// SPEC.md 5.4); the previous code stops working.
pub fn mint_code(ctx: &Ctx<'_>, token: &str) -> Result<(String, UnixMs), Error> {
    let v = ClaimContext::of(ctx);
    let otp_ttl = Duration::from_secs(ctx.config.settings.otp_ttl_secs);
    ctx.writer.write(|tx| {
        let (attempt, registration) = match link_state(tx, token, v.now_ms)? {
            LinkState::Open { attempt, registration } => (attempt, registration),
            LinkState::Unknown | LinkState::Superseded => return Err(Error::ClaimSuperseded),
            LinkState::Claimed => return Err(Error::ClaimCompleted),
            LinkState::Expired | LinkState::Cancelled => {
                return Err(Error::ClaimExpired("this claim link expired or was cancelled"));
            }
        };
        let code = new_code();
        let mac = hmac::sign(&otp_key(tx, v.now_ms)?, &otp_message(&attempt.id, &code));
        let expires_ms = v.now_ms + otp_ttl;
        tx.set_attempt_code(&attempt.id, mac.as_ref(), expires_ms)?;
        tx.record_event(
            v.now_ms,
            EventName::OtpGenerated,
            event(&registration.id, v.client_ip, json!({})),
        )?;
        Ok((code, expires_ms))
    })
}

/// What "this wasn't me" did.
pub enum Rejected {
    /// Asked to confirm first.
    NeedsConfirmation,
    Done,
    /// The link was not open: its state instead.
    NotOpen(LinkState),
}

/// `POST /agent/auth/claim/reject`: cancels the attempt only with `confirm=yes`.
pub fn reject(ctx: &Ctx<'_>, token: &str, confirmed: bool) -> Result<Rejected, Error> {
    let v = ClaimContext::of(ctx);
    ctx.writer.write(|tx| {
        let (attempt, registration) = match link_state(tx, token, v.now_ms)? {
            LinkState::Open { attempt, registration } => (attempt, registration),
            other => return Ok(Rejected::NotOpen(other)),
        };
        if !confirmed {
            return Ok(Rejected::NeedsConfirmation);
        }
        tx.set_attempt_status(&attempt.id, AttemptStatus::Cancelled)?;
        let next = lifecycle::next(registration.kind, registration.status, Event::Rejected)?;
        tx.set_registration_status(&registration.id, next, v.now_ms)?;
        let detail = json!({ "email": attempt.email, "registration_status": next.as_str() });
        tx.record_event(
            v.now_ms,
            EventName::ClaimRejected,
            event(&registration.id, v.client_ip, detail),
        )?;
        Ok(Rejected::Done)
    })
}

/// `POST /agent/auth/claim/complete` (SPEC.md 5.5).
/// A claim completed: the registration is the user's; one that had no
/// credential yet gets its first, shown once, with its scopes.
pub struct Completed {
    pub registration_id: String,
    pub credential: Option<(Minted, Vec<String>)>,
}

pub fn complete(ctx: &Ctx<'_>, claim_token: &str, otp: &str) -> Result<Completed, Error> {
    let v = ClaimContext::of(ctx);
    let settings = &ctx.config.settings;
    let (otp_max, claim_max) = (settings.otp_max_failures as i64, settings.claim_max_failures as i64);
    let post_claim = settings.post_claim_scopes.clone();
    let config = ctx.config;
    // Failures must be recorded even though the answer is an error, so the
    // transaction returns the refusal as a value and commits.
    ctx.writer.write(|tx| {
        let registration = registration_by_claim_token(tx, claim_token)?
            .filter(|r| r.generation == Generation::V0_1)
            .ok_or(Error::InvalidClaimToken)?;
        lifecycle::next(registration.kind, registration.status, Event::Confirmed)?;
        unlapsed(&registration, v.now_ms)?;
        let attempt = tx.open_attempt_of(&registration.id)?.ok_or(Error::OtpNotGenerated)?;
        let Some(mac) = &attempt.otp_mac else {
            return Err(if attempt.otp_failures >= otp_max {
                Error::OtpExpired("too many wrong codes: the user must open the link again for a new code")
            } else {
                Error::OtpNotGenerated
            });
        };
        if attempt.otp_expires_ms.is_none_or(|at| at <= v.now_ms) {
            return Err(Error::OtpExpired(
                "the code expired: the user must open the link again for a new one",
            ));
        }
        let key = otp_key(tx, v.now_ms)?;
        if hmac::verify(&key, &otp_message(&attempt.id, otp), mac).is_err() {
            let failures = tx.record_attempt_failure(&attempt.id, otp_max)?;
            let total = tx.add_claim_failure(&registration.id)?;
            let detail = json!({ "failures": failures, "total_failures": total });
            tx.record_event(
                v.now_ms,
                EventName::OtpFailed,
                event(&registration.id, v.client_ip, detail),
            )?;
            if total >= claim_max {
                let locked = lifecycle::next(registration.kind, registration.status, Event::TooManyFailures)?;
                tx.set_registration_status(&registration.id, locked, v.now_ms)?;
                tx.close_attempts(&registration.id)?;
            }
            return Ok(Err(Error::OtpInvalid {
                remaining: (otp_max - failures).max(0),
            }));
        }
        tx.set_attempt_status(&attempt.id, AttemptStatus::Completed)?;
        let confirmed_by = Identity {
            email: Some(attempt.email.clone()),
            ..Identity::default()
        };
        let user_id = match_user(tx, confirmed_by, Provision::Allowed, v.now_ms)?;
        tx.mark_claimed(&registration.id, &user_id, v.now_ms)?;
        let confirmed = json!({ "claimed_by_user_id": user_id, "email": attempt.email });
        tx.record_event(
            v.now_ms,
            EventName::ClaimConfirmed,
            event(&registration.id, v.client_ip, confirmed),
        )?;
        let scopes = join_scopes(&post_claim);
        if registration.kind == RegistrationKind::Anonymous {
            tx.set_live_credential_scopes(&registration.id, &scopes)?;
            return Ok(Ok(Completed {
                registration_id: registration.id,
                credential: None,
            }));
        }
        let requested = registration.requested_credential_type.unwrap_or(CredentialType::ApiKey);
        let credential = Minted::new(requested, &config.settings, v.now_ms);
        let confirmed = Confirmed::new(&registration.id);
        let grant = Grant::claimed(&confirmed, &post_claim, event(&registration.id, v.client_ip, json!({})));
        issue(tx, v.now_ms, &credential, grant)?;
        Ok(Ok(Completed {
            registration_id: registration.id,
            credential: Some((credential, post_claim.clone())),
        }))
    })?
}

/// SPEC-v0.7 4.2: `login_hint`, trimmed, must look like an address
/// (`^[^\s@]+@[^\s@]+\.[^\s@]+$`, at most 254 bytes); lower-cased.
pub fn login_hint(text: &str) -> Result<String, Error> {
    let hint = text.trim();
    let (local, domain) = hint.split_once('@').ok_or(Error::InvalidLoginHint)?;
    let plain = |part: &str| !part.is_empty() && !part.contains('@') && !part.chars().any(char::is_whitespace);
    let dotted = domain
        .split_once('.')
        .is_some_and(|(name, rest)| !name.is_empty() && !rest.is_empty());
    if hint.len() > 254 || !plain(local) || !plain(domain) || !dotted {
        return Err(Error::InvalidLoginHint);
    }
    Ok(hint.to_lowercase())
}

/// A v0.7 claim attempt just opened: the link for the person (shown once)
/// and when it stops working.
pub struct IdentityAttempt {
    pub verification_uri: String,
    pub expires_ms: UnixMs,
}

/// Opens a v0.7 attempt for `login_hint` (SPEC-v0.7 6.1), superseding any
/// open one; no mail is sent: the agent hands the link to the person, who
/// proves the address by signing in. Records `claim.requested`.
pub(super) fn open_identity_attempt(
    tx: &dyn Tx,
    ctx: &Ctx<'_>,
    registration_id: &str,
    login_hint: &str,
) -> Result<IdentityAttempt, Error> {
    let now_ms = ctx.now_ms;
    let token = secrets::new_attempt_token();
    let expires_ms = now_ms + Duration::from_secs(ctx.config.settings.claim_attempt_ttl_secs);
    tx.open_attempt(&attempts::NewAttempt {
        id: &secrets::new_id("att_", now_ms),
        registration_id,
        email: login_hint,
        token_hash: &secrets::hash(&token),
        created_ms: now_ms,
        expires_ms,
    })?;
    tx.record_event(
        now_ms,
        EventName::ClaimRequested,
        event(registration_id, ctx.client_ip, json!({ "login_hint": login_hint })),
    )?;
    Ok(IdentityAttempt {
        verification_uri: ctx.config.site.verification_uri(&token),
        expires_ms,
    })
}

/// `POST /agent/identity/claim` (SPEC-v0.7 6.1): a new attempt for a v0.7
/// registration, the checks in the SPEC's order.
pub fn request_identity(
    ctx: &Ctx<'_>,
    claim_token: &str,
    login_hint: &str,
) -> Result<(String, IdentityAttempt), Error> {
    let hint = self::login_hint(login_hint)?;
    let now_ms = ctx.now_ms;
    ctx.writer.write(|tx| {
        let registration = registration_by_claim_token(tx, claim_token)?
            .filter(|r| r.generation == Generation::V0_7)
            .ok_or(Error::InvalidClaimToken)?;
        match registration.status {
            Status::Claimed | Status::Active => return Err(Error::AlreadyClaimed),
            _ if registration.lapsed(now_ms) => {
                return Err(Error::ClaimExpired("this registration expired unclaimed"));
            }
            _ => {}
        }
        let pending = lifecycle::next(registration.kind, registration.status, Event::ClaimRequested)?;
        // A first link stays pinned to the account it matched (SPEC-v0.7 6.1).
        if let Some(link) = tx.pending_link_of(&registration.id)?
            && tx
                .user(&link.user_id)?
                .and_then(|u| u.email)
                .is_none_or(|pinned| pinned != hint)
        {
            return Err(Error::ClaimedOrInFlight(
                "this link can only be confirmed by the account it matched",
            ));
        }
        let attempt = open_identity_attempt(tx, ctx, &registration.id, &hint)?;
        tx.set_registration_status(&registration.id, pending, now_ms)?;
        Ok((registration.id, attempt))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_spread_over_the_range() {
        let codes: Vec<String> = (0..2000).map(|_| new_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        let first_digits: std::collections::HashSet<u8> = codes.iter().map(|c| c.as_bytes()[0]).collect();
        assert_eq!(first_digits.len(), 10, "leading zeros are as likely as any digit");
    }
}
