//! Signing in at the service (SPEC-v0.7 7), passwordless: a person types an
//! address, gets a six-digit code through the durable outbox, types it
//! back, and holds a session. The cookie values (the session's, the
//! pre-session's) are 256 random bits kept only as their SHA-256; codes are
//! HMACs under this database's own key, bound to the pending sign-in, with
//! `signin_max_failures` tries counted in the write transaction that checks
//! them; every form's CSRF token is an HMAC over the session's (or
//! pre-session's) hash. Whether an address is known is never revealed:
//! every request gets the same answer.

use std::time::Duration;

use ring::hmac;
use serde_json::json;

use super::{Ctx, detail, hmac_key};
use crate::error::Error;
use crate::model::EventName;
use crate::secrets::{self, SecretHash};
use crate::store::Tx;
use crate::store::audit::NewEvent;
use crate::store::outbox::NewMessage;
use crate::store::sessions::{Session, Signin};
use crate::store::users::User;
use crate::time::UnixMs;

pub const SESSION_COOKIE: &str = "authmd_session";
pub const PRESESSION_COOKIE: &str = "authmd_login";
const SIGNIN_KEY: &str = "signin_hmac";
const CSRF_KEY: &str = "csrf_hmac";

/// A fresh cookie value: 256 random bits, base64url.
pub fn new_cookie_value() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system CSPRNG is available");
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Makes the keys pages need before any page is read (at start), so a read
/// never has to write one.
pub fn ensure_keys(tx: &dyn Tx, now_ms: UnixMs) -> Result<(), Error> {
    hmac_key(tx, SIGNIN_KEY, now_ms)?;
    hmac_key(tx, CSRF_KEY, now_ms)?;
    Ok(())
}

/// SPEC-v0.7 7.3: a same-origin absolute path, or `/`.
pub fn safe_return_to(text: &str) -> String {
    let ok = text.len() <= 2048
        && text.starts_with('/')
        && !text.starts_with("//")
        && !text.contains('\\')
        && !text.chars().any(char::is_control);
    if ok { text.to_string() } else { "/".to_string() }
}

/// The CSRF token of a form shown to the holder of `binding` (the hash of
/// their session or pre-session cookie).
pub fn csrf_token(read: &dyn Tx, binding: &SecretHash, now_ms: UnixMs) -> Result<String, Error> {
    let key = hmac_key(read, CSRF_KEY, now_ms)?;
    use base64::Engine;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hmac::sign(&key, binding).as_ref()))
}

/// Whether `token` is the CSRF token for `binding`, compared in constant time.
pub fn csrf_ok(read: &dyn Tx, binding: &SecretHash, token: &str, now_ms: UnixMs) -> Result<bool, Error> {
    use base64::Engine;
    let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) else {
        return Ok(false);
    };
    let key = hmac_key(read, CSRF_KEY, now_ms)?;
    Ok(hmac::verify(&key, binding, &tag).is_ok())
}

/// `POST /login`: for a plausible address, starts (or replaces) the
/// pre-session's pending sign-in and mails a code when the address belongs
/// to a user or `jit_provisioning` is on. The caller answers the same page
/// either way. Records `signin.requested`.
pub fn request_code(ctx: &Ctx<'_>, presession: &SecretHash, email: &str, return_to: &str) -> Result<(), Error> {
    let email = crate::email::normalize(email).map_err(Error::InvalidRequest)?;
    let settings = &ctx.config.settings;
    let now_ms = ctx.now_ms;
    let expires_ms = now_ms + Duration::from_secs(settings.signin_code_ttl_secs);
    let code = super::claim::new_code();
    let return_to = safe_return_to(return_to);
    let mailed = ctx.writer.write(|tx| {
        let known = tx.user_by_email(&email)?.is_some();
        let mail = known || settings.jit_provisioning;
        let key = hmac_key(tx, SIGNIN_KEY, now_ms)?;
        let signin = Signin {
            email: email.clone(),
            return_to: return_to.clone(),
            code_mac: mail.then(|| hmac::sign(&key, &code_message(presession, &code)).as_ref().to_vec()),
            code_expires_ms: mail.then_some(expires_ms),
            failures: 0,
        };
        tx.put_signin(presession, &signin, now_ms)?;
        if mail {
            let (subject, text, html) = crate::mail::signin_email(&ctx.config.shown_name, &code, expires_ms);
            tx.enqueue_mail(&NewMessage {
                recipient: &email,
                subject: &subject,
                body_text: &text,
                body_html: &html,
                registration_id: None,
                created_ms: now_ms,
            })?;
        }
        let event = NewEvent {
            client_ip: ctx.client_ip,
            detail: detail(json!({ "email": email })),
            ..Default::default()
        };
        tx.record_event(now_ms, EventName::SigninRequested, event)?;
        Ok(mail)
    })?;
    if mailed {
        ctx.poke_mail();
    }
    Ok(())
}

/// How `POST /login/verify` went.
pub enum Verified {
    /// A session began: its cookie value (shown once) and where to go.
    SignedIn { session: String, return_to: String },
    /// A wrong code: the form again.
    WrongCode,
    /// Expired, burned, or no pending sign-in: start again.
    Gone { return_to: String },
}

/// `POST /login/verify`: the code against the pre-session's pending
/// sign-in. The right code makes the user if new (only with
/// `jit_provisioning`, the address verified by the code), starts a session
/// and ends the pre-session. Records `signin.succeeded` or `signin.failed`.
pub fn verify_code(ctx: &Ctx<'_>, presession: &SecretHash, code: &str) -> Result<Verified, Error> {
    let settings = &ctx.config.settings;
    let now_ms = ctx.now_ms;
    let session = new_cookie_value();
    let session_hash = secrets::hash(&session);
    ctx.writer.write(|tx| {
        let Some(pending) = tx.signin(presession)? else {
            return Ok(Verified::Gone { return_to: "/".into() });
        };
        let failed = |reason: &str| {
            let event = NewEvent {
                client_ip: ctx.client_ip,
                detail: detail(json!({ "email": pending.email, "reason": reason })),
                ..Default::default()
            };
            tx.record_event(now_ms, EventName::SigninFailed, event)
        };
        let live = pending
            .code_mac
            .as_ref()
            .filter(|_| pending.code_expires_ms.is_some_and(|at| at > now_ms));
        let Some(mac) = live else {
            failed("expired")?;
            return Ok(Verified::Gone {
                return_to: pending.return_to,
            });
        };
        let key = hmac_key(tx, SIGNIN_KEY, now_ms)?;
        let wellformed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        if !wellformed || hmac::verify(&key, &code_message(presession, code), mac).is_err() {
            let failures = tx.record_signin_failure(presession, settings.signin_max_failures as i64)?;
            failed(if failures >= settings.signin_max_failures as i64 {
                "burned"
            } else {
                "wrong_code"
            })?;
            return Ok(Verified::WrongCode);
        }
        let (user_id, created) = match tx.user_by_email(&pending.email)? {
            Some(user) => (user.id, false),
            None if settings.jit_provisioning => {
                let user = User {
                    id: secrets::new_id("usr_", now_ms),
                    email: Some(pending.email.clone()),
                    phone_number: None,
                    name: None,
                    created_ms: now_ms,
                };
                tx.insert_user(&user)?;
                (user.id, true)
            }
            // No code is mailed for such an address; a matching guess cannot happen.
            None => {
                return Err(Error::Internal(
                    "a sign-in code for an address that cannot sign in".into(),
                ));
            }
        };
        tx.delete_signin(presession)?;
        tx.insert_session(
            &session_hash,
            &Session {
                user_id: user_id.clone(),
                created_ms: now_ms,
                expires_ms: now_ms + Duration::from_secs(settings.session_ttl_secs),
            },
        )?;
        let event = NewEvent {
            client_ip: ctx.client_ip,
            detail: detail(json!({ "user_id": user_id, "created": created })),
            ..Default::default()
        };
        tx.record_event(now_ms, EventName::SigninSucceeded, event)?;
        Ok(Verified::SignedIn {
            session: session.clone(),
            return_to: pending.return_to,
        })
    })
}

/// The user a session cookie value belongs to, while the session lasts.
pub fn session_user(read: &dyn Tx, session: &str, now_ms: UnixMs) -> Result<Option<User>, Error> {
    match read.session(&secrets::hash(session))? {
        Some(s) if s.expires_ms > now_ms => Ok(read.user(&s.user_id)?),
        _ => Ok(None),
    }
}

/// `POST /logout`: the session ends.
pub fn sign_out(ctx: &Ctx<'_>, session: &str) -> Result<(), Error> {
    let hash = secrets::hash(session);
    ctx.writer.write(|tx| Ok(tx.delete_session(&hash)?))
}

/// What a code's HMAC covers: the pending sign-in it was mailed for.
fn code_message(presession: &SecretHash, code: &str) -> Vec<u8> {
    let mut message = b"signin:".to_vec();
    message.extend_from_slice(presession);
    message.push(b':');
    message.extend_from_slice(code.as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_is_a_same_origin_path_or_the_root() {
        for good in ["/", "/claim?claim_attempt_token=cvt_x", "/account/agents#top", "/a:b"] {
            assert_eq!(safe_return_to(good), good, "{good}");
        }
        let long = format!("/{}", "a".repeat(2048));
        for bad in [
            "",
            "claim",
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\nSet-Cookie: x",
            long.as_str(),
        ] {
            assert_eq!(safe_return_to(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn csrf_tokens_bind_to_their_cookie() {
        let (_dir, conn) = crate::store::open_temp();
        let now = UnixMs::from_millis(1_800_000_000_000);
        ensure_keys(&conn, now).unwrap();
        let (a, b) = (secrets::hash(&new_cookie_value()), secrets::hash(&new_cookie_value()));
        let token = csrf_token(&conn, &a, now).unwrap();
        assert!(csrf_ok(&conn, &a, &token, now).unwrap());
        assert!(!csrf_ok(&conn, &b, &token, now).unwrap(), "another cookie's token");
        assert!(!csrf_ok(&conn, &a, "", now).unwrap());
        assert!(!csrf_ok(&conn, &a, "not base64!", now).unwrap());
        assert_ne!(new_cookie_value(), new_cookie_value());
        assert_eq!(new_cookie_value().len(), 43, "256 bits");
    }
}
