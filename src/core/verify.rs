//! Verifying an identity assertion or a logout token (SPEC.md 4, 6) into a
//! proof that the rest of core can act on.
//!
//! ```text
//!  token ─▶ jose::parse (shape, header rules; nothing trusted yet)
//!        ─▶ trust list: is `iss` a provider we trust?     (before any network)
//!        ─▶ keys: the provider's JWKS (cached; one refetch on an unknown kid)
//!        ─▶ jose::verify (signature, then claims)        ─▶ Verified
//!        ─▶ client_id: pinned, equal to iss, or a metadata document
//!           (the jti is recorded before that document is fetched)
//!                                                         ─▶ Checked
//!        ─▶ in the write transaction: replay store, then (assertions)
//!           the revocation marks                          ─▶ Admitted
//! ```
//!
//! Each step is proven by a type: a `Verified` is built by `jose::verify`
//! alone, a [`Signed`] only by [`signed`] (trust list, signature, claims),
//! a [`Checked`] only by [`Signed::check_client_id`], and an [`Admitted`] only by [`Checked::admit`] inside the
//! transaction that acts on it (replay, revocation marks). `core::issue`
//! mints a credential for an asserted identity only from an `Admitted`.
//! A token can make authmd fetch at most once on its behalf: its jti goes
//! into the replay store before the `client_id` document is fetched, so a
//! replay is refused before any network request (issue 10). Fetch failures
//! reach the log, not the wire: the refusal says what failed, the
//! response's `reason` says where and why. Not here: rate limits (`http`),
//! the JOSE rules themselves (`jose`), where authmd may connect (`fetch`).

use std::time::Duration;

use serde_json::Value;

use super::Ctx;
use crate::error::Error;
use crate::jose::{self, Claims, Policy, TokenKind, Verified};
use crate::keys::{KeyCache, KeysError};
use crate::store::Tx;
use crate::store::providers::Provider;
use crate::time::UnixMs;

/// A logout token without `exp` counts as expiring this long after `iat` (SPEC.md 6).
pub const LOGOUT_LIFETIME_WITHOUT_EXP_SECS: u64 = 300;

/// A token whose issuer is trusted, whose signature and claims verified and
/// whose `client_id` checked out; not yet checked against replay and
/// revocation, which only the transaction acting on it can do.
pub struct Checked {
    verified: Verified,
    kind: TokenKind,
    /// The jti was recorded already (before a metadata document was fetched).
    jti_recorded: bool,
}

/// A token admitted in this transaction: first use of its jti, and (an
/// assertion) not refused by a revocation mark. The only way to act on an
/// asserted identity.
pub struct Admitted<'a> {
    verified: &'a Verified,
}

impl Admitted<'_> {
    pub fn claims(&self) -> &Claims {
        self.verified.claims()
    }
}

/// A token whose issuer is trusted and whose signature and claims verified;
/// its `client_id` is not checked yet ([`Signed::check_client_id`]).
pub struct Signed {
    verified: Verified,
    provider: Provider,
    kind: TokenKind,
}

/// Parse, trust list, keys, signature and claims: for an ID-JAG or a logout
/// token, touching no state.
pub fn signed(ctx: &Ctx<'_>, token: &str, kind: TokenKind) -> Result<Signed, Error> {
    let (verified, provider) = verify(ctx, ctx.keys, token, kind)?;
    Ok(Signed {
        verified,
        provider,
        kind,
    })
}

impl Signed {
    pub fn claims(&self) -> &Claims {
        self.verified.claims()
    }

    /// The `client_id` rules that need no fetch (present, the pinned one,
    /// the issuer or a document URL): a caller may refuse on them before
    /// rules of its own, as no fresh login could mend them.
    pub fn check_client_id_shape(&self) -> Result<(), Error> {
        if self.kind == TokenKind::IdJag {
            client_id_document(&self.provider, self.verified.claims())?;
        }
        Ok(())
    }

    /// SPEC.md 4.3 for an ID-JAG (a logout token names no client): a
    /// `client_id` that is a metadata document is fetched only after its
    /// jti is recorded, so a replay never makes authmd fetch.
    pub fn check_client_id(self, ctx: &Ctx<'_>) -> Result<Checked, Error> {
        let mut jti_recorded = false;
        if self.kind == TokenKind::IdJag
            && let Some(document_url) = client_id_document(&self.provider, self.verified.claims())?
        {
            let claims = self.verified.claims();
            let expires_ms = jti_expires_ms(claims, ctx.config.settings.clock_skew_secs);
            let now_ms = ctx.now_ms;
            if !ctx
                .writer
                .write(|tx| Ok(tx.first_use(&claims.iss, &claims.jti, expires_ms, now_ms)?))?
            {
                return Err(Error::ReplayDetected);
            }
            jti_recorded = true;
            check_client_id_document(ctx, ctx.keys, document_url, &self.provider.jwks_uri())?;
        }
        Ok(Checked {
            verified: self.verified,
            kind: self.kind,
            jti_recorded,
        })
    }
}

impl Checked {
    /// The claims, verified; replay and revocation not yet checked.
    pub fn claims(&self) -> &Claims {
        self.verified.claims()
    }

    /// Replay and revocation, in the transaction that acts on the token.
    /// The provider's mark is on its clock; this server's is compared with
    /// the provider's `iat` only beyond the allowed skew.
    /// By reference: a transaction the writer runs again (its batch rolled
    /// back for another's failure) admits the same token again.
    pub fn admit(&self, tx: &dyn Tx, now_ms: UnixMs, clock_skew_secs: u64) -> Result<Admitted<'_>, Error> {
        let claims = self.verified.claims();
        if !self.jti_recorded
            && !tx.first_use(
                &claims.iss,
                &claims.jti,
                jti_expires_ms(claims, clock_skew_secs),
                now_ms,
            )?
        {
            return Err(Error::ReplayDetected);
        }
        if self.kind == TokenKind::IdJag
            && tx
                .revocation_marks(&claims.iss, &claims.sub)?
                .refuse(claims.iat, clock_skew_secs)
        {
            return Err(Error::AssertionRevoked);
        }
        Ok(Admitted {
            verified: &self.verified,
        })
    }
}

/// Until when a jti is remembered: its token's `exp` plus the skew.
fn jti_expires_ms(claims: &Claims, clock_skew_secs: u64) -> UnixMs {
    UnixMs::from(claims.exp) + Duration::from_secs(clock_skew_secs)
}

/// Parse, trust, keys, signature and claims: everything that can be
/// checked before touching state. Returns the trust entry too.
fn verify(ctx: &Ctx<'_>, keys: &KeyCache, token: &str, kind: TokenKind) -> Result<(Verified, Provider), Error> {
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
    let now_secs = ctx.now_ms.secs_floor();
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
fn client_id_document<'c>(provider: &Provider, claims: &'c Claims) -> Result<Option<&'c str>, Error> {
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

pub(crate) fn shorten(text: &str) -> String {
    let short: String = text.chars().filter(|c| !c.is_control()).take(100).collect();
    if short.len() < text.len() { short + "…" } else { short }
}
