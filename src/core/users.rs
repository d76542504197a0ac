//! Which user an agent acts for (SPEC.md 4.4): the one matching function.
//! A delegation `(iss, sub)` already names its user (the caller looks that
//! up first); otherwise a verified email, then a verified phone number
//! (E.164), finds an existing user; otherwise, when provisioning is allowed,
//! a new user is made with what was verified. The claim ceremony matches by
//! the confirmed email and always provisions.

use crate::store::Tx;

use crate::error::Error;
use crate::secrets;
use crate::store::users;
use crate::time::UnixMs;

/// What is known, and verified, of the person.
#[derive(Debug, Default)]
pub struct Identity<'a> {
    /// Normalised (`email::normalize`).
    pub email: Option<String>,
    /// E.164.
    pub phone_number: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// May a user that does not exist yet be made?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provision {
    /// Just-in-time provisioning (`jit_provisioning`), or a confirmed claim.
    Allowed,
    /// Refused with `user_not_provisioned`.
    Refused,
}

/// The existing user `identity` is: by verified email, then verified phone.
pub fn find_user(tx: &dyn Tx, identity: &Identity<'_>) -> Result<Option<String>, Error> {
    if let Some(email) = &identity.email
        && let Some(user) = tx.user_by_email(email)?
    {
        return Ok(Some(user.id));
    }
    if let Some(phone) = identity.phone_number
        && let Some(user) = tx.user_by_phone(phone)?
    {
        return Ok(Some(user.id));
    }
    Ok(None)
}

/// The id of the user `identity` is, made now if `provision` allows.
pub fn match_user(tx: &dyn Tx, identity: Identity<'_>, provision: Provision, now_ms: UnixMs) -> Result<String, Error> {
    if let Some(id) = find_user(tx, &identity)? {
        return Ok(id);
    }
    if provision == Provision::Refused {
        return Err(Error::UserNotProvisioned);
    }
    let user = users::User {
        id: secrets::new_id("usr_", now_ms),
        email: identity.email,
        phone_number: identity.phone_number.map(str::to_string),
        name: identity.name.map(str::to_string),
        created_ms: now_ms,
    };
    tx.insert_user(&user)?;
    Ok(user.id)
}
