//! Issuing a credential: the only code that makes one (SPEC.md 7). The
//! secret is made and hashed before the write transaction ([`Minted::new`]),
//! so the writer spends no time on randomness or hashing; [`issue`] stores
//! its hash with the scopes and records `credential.issued`, in the caller's
//! transaction. The secret itself is returned to the agent once and never
//! stored. The service assertions of the current generation are signed
//! here too ([`SignedAssertion::sign`], before the transaction), their
//! `jti` recorded inside it ([`issue_assertion`]).

use std::time::Duration;

use serde_json::json;

use super::verify::Admitted;
use crate::error::Error;
use crate::model::{CredentialType, EventName, join_scopes};
use crate::secrets::{self, SecretHash, Shape};
use crate::settings::Settings;
use crate::store::assertions::NewAssertion;
use crate::store::{Tx, audit, credentials};
use crate::time::UnixMs;

/// A credential made and not yet stored.
pub struct Minted {
    id: String,
    secret: String,
    hash: SecretHash,
    kind: CredentialType,
    expires_ms: Option<UnixMs>,
}

impl Minted {
    /// An API key (no expiry) or an access token (`access_token_ttl_secs`
    /// from `now_ms`), with the configured prefix.
    pub fn new(kind: CredentialType, settings: &Settings, now_ms: UnixMs) -> Minted {
        let (prefix, expires_ms) = match kind {
            CredentialType::ApiKey => (&settings.api_key_prefix, None),
            CredentialType::AccessToken => (
                &settings.access_token_prefix,
                Some(now_ms + Duration::from_secs(settings.access_token_ttl_secs)),
            ),
        };
        let secret = secrets::new_credential(prefix, now_ms);
        Minted {
            id: secrets::new_id("cred_", now_ms),
            hash: secrets::stored_hash(&secret, Shape::Checksummed),
            secret,
            kind,
            expires_ms,
        }
    }

    /// For the agent's answer, once.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn kind(&self) -> CredentialType {
        self.kind
    }

    pub fn expires_ms(&self) -> Option<UnixMs> {
        self.expires_ms
    }
}

/// A claim the user confirmed: the code matched in this transaction
/// (`core::claim::complete`, the one maker).
pub struct Confirmed {
    registration_id: String,
}

impl Confirmed {
    pub(in crate::core) fn new(registration_id: &str) -> Confirmed {
        Confirmed {
            registration_id: registration_id.to_string(),
        }
    }

    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }
}

/// A service assertion that verified and speaks for a live registration, in
/// the transaction that acts on it (`core::token::exchange`, the one maker).
pub struct Exchanged {
    registration: crate::store::registrations::Registration,
}

impl Exchanged {
    pub(in crate::core) fn new(registration: crate::store::registrations::Registration) -> Exchanged {
        Exchanged { registration }
    }

    pub fn registration(&self) -> &crate::store::registrations::Registration {
        &self.registration
    }
}

/// To whom, with what, and the audit event's who and where (its
/// `registration_id` and `credential_type` are filled in here). Built only
/// from a proof of why the credential is deserved, one constructor each.
pub struct Grant<'a> {
    registration_id: &'a str,
    scopes: &'a [String],
    event: audit::NewEvent<'a>,
}

impl<'a> Grant<'a> {
    /// An anonymous registration made in this same transaction
    /// (`core::register`): no identity is asserted, the scopes are the
    /// pre-claim ones.
    pub(in crate::core) fn anonymous(
        registration_id: &'a str,
        scopes: &'a [String],
        event: audit::NewEvent<'a>,
    ) -> Grant<'a> {
        Grant {
            registration_id,
            scopes,
            event,
        }
    }

    /// A claim the user confirmed with the code (`core::claim`).
    pub fn claimed(claim: &'a Confirmed, scopes: &'a [String], event: audit::NewEvent<'a>) -> Grant<'a> {
        Grant {
            registration_id: claim.registration_id(),
            scopes,
            event,
        }
    }

    /// A service assertion exchanged at the token endpoint (`core::token`),
    /// for the registration it speaks for.
    pub fn exchanged(exchanged: &'a Exchanged, scopes: &'a [String], event: audit::NewEvent<'a>) -> Grant<'a> {
        Grant {
            registration_id: &exchanged.registration().id,
            scopes,
            event,
        }
    }

    /// An identity assertion admitted in this transaction, for the
    /// registration of its delegation `(iss, sub)`.
    pub fn asserted(
        _admitted: &'a Admitted<'_>,
        registration_id: &'a str,
        scopes: &'a [String],
        event: audit::NewEvent<'a>,
    ) -> Grant<'a> {
        Grant {
            registration_id,
            scopes,
            event,
        }
    }
}

/// A service assertion signed and not yet recorded (SPEC-v0.7 5). Like a
/// [`Minted`] credential it is made before the write transaction, so the
/// writer spends no time loading a key or signing; [`issue_assertion`]
/// records its `jti` inside. The token itself is shown to the agent once.
#[derive(Clone)]
pub struct SignedAssertion {
    token: String,
    jti: String,
    kid: String,
    registration_id: String,
    expires_ms: UnixMs,
}

impl SignedAssertion {
    /// Signs an assertion for `registration_id` with the current key (read
    /// from `read`, outside any write transaction: a key rotated in between
    /// stays accepted). `email` is the bound user's, once there is one.
    pub fn sign(
        read: &dyn Tx,
        site: &crate::site::Site,
        settings: &Settings,
        registration_id: &str,
        email: Option<&str>,
        now_ms: UnixMs,
    ) -> Result<SignedAssertion, Error> {
        let key = super::signing::current(read)?;
        let iat = now_ms.secs_floor();
        let exp = iat + Duration::from_secs(settings.assertion_ttl_secs);
        let jti = format!("jti_{}", secrets::new_uuid_v4());
        let mut claims = json!({
            "iss": site.issuer,
            "aud": site.issuer,
            "sub": registration_id,
            "jti": jti,
            "iat": iat.secs(),
            "exp": exp.secs(),
        });
        if let Some(email) = email {
            claims["email"] = json!(email);
            claims["email_verified"] = json!(true);
        }
        Ok(SignedAssertion {
            token: key.sign("oauth-id-jag+jwt", &claims),
            jti,
            kid: key.kid().to_string(),
            registration_id: registration_id.to_string(),
            expires_ms: UnixMs::from(exp),
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn expires_ms(&self) -> UnixMs {
        self.expires_ms
    }
}

/// Records `signed`'s `jti` and `credential.issued` (`credential_type:
/// assertion`), in the caller's transaction.
pub fn issue_assertion(
    tx: &dyn Tx,
    signed: &SignedAssertion,
    event: audit::NewEvent<'_>,
    now_ms: UnixMs,
) -> Result<(), Error> {
    tx.record_assertion(&NewAssertion {
        jti: &signed.jti,
        registration_id: &signed.registration_id,
        kid: &signed.kid,
        created_ms: now_ms,
        expires_ms: signed.expires_ms,
    })?;
    let mut event = event;
    event.registration_id = Some(&signed.registration_id);
    event.detail.insert("credential_type".into(), json!("assertion"));
    Ok(tx.record_event(now_ms, EventName::CredentialIssued, event)?)
}

/// A refresh token made and not yet stored (SPEC-v0.7 9): `authmd_rt_...`,
/// shown to the agent once, kept only as its hash.
pub struct MintedRefresh {
    secret: String,
    expires_ms: UnixMs,
}

impl MintedRefresh {
    pub fn new(settings: &Settings, now_ms: UnixMs) -> MintedRefresh {
        MintedRefresh {
            secret: secrets::new_credential(&settings.refresh_token_prefix, now_ms),
            expires_ms: now_ms + Duration::from_secs(settings.refresh_token_ttl_secs),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn expires_ms(&self) -> UnixMs {
        self.expires_ms
    }
}

/// Stores `minted` for `registration_id` and records `credential.issued`
/// (`credential_type: refresh_token`), in the caller's transaction.
pub fn issue_refresh(
    tx: &dyn Tx,
    minted: &MintedRefresh,
    registration_id: &str,
    event: audit::NewEvent<'_>,
    now_ms: UnixMs,
) -> Result<(), Error> {
    tx.insert_refresh_token(
        &secrets::stored_hash(&minted.secret, Shape::Checksummed),
        registration_id,
        now_ms,
        minted.expires_ms,
    )?;
    let mut event = event;
    event.registration_id = Some(registration_id);
    event.detail.insert("credential_type".into(), json!("refresh_token"));
    Ok(tx.record_event(now_ms, EventName::CredentialIssued, event)?)
}

/// Stores `minted` for `grant.registration_id` and records `credential.issued`.
pub fn issue(tx: &dyn Tx, now_ms: UnixMs, minted: &Minted, grant: Grant<'_>) -> Result<(), Error> {
    tx.insert_credential(&credentials::NewCredential {
        id: &minted.id,
        registration_id: grant.registration_id,
        kind: minted.kind,
        token_hash: &minted.hash,
        scopes: &join_scopes(grant.scopes),
        created_ms: now_ms,
        expires_ms: minted.expires_ms,
    })?;
    let mut event = grant.event;
    event.registration_id = Some(grant.registration_id);
    event
        .detail
        .insert("credential_type".into(), json!(minted.kind.as_str()));
    Ok(tx.record_event(now_ms, EventName::CredentialIssued, event)?)
}
