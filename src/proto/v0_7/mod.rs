//! SPEC-v0.7.md (the current generation) on the wire.
//!
//! ```text
//!  mod.rs   POST /agent/identity (the body's four shapes, the nested
//!           answers), POST /oauth2/token (the form, the RFC 6749 answer)
//!           and the form of POST /oauth2/revoke, over core's operations
//!  discovery.rs  its members of the authorization server metadata
//!  error.rs the oauth envelope (RFC 6749 5.2); the profile envelope is
//!           v0.1's body (SPEC-v0.7 3)
//! ```
//!
//! Every shape of `POST /agent/identity` is served (anonymous,
//! `service_auth`, ID-JAG clean match, first link and `login_required`,
//! refresh), with the claim ceremony (its pages in `http`) and the token
//! exchange; `discovery.rs` adds this generation's members to the one
//! authorization server metadata both generations share.

pub mod discovery;
pub mod error;

use serde::Serialize;
use serde_json::Value;

use crate::core::{Ctx, register, token};
use crate::error::Error;
use crate::proto::v0_1::{ID_JAG_ASSERTION_TYPE, required_str};
use crate::time::rfc3339;

/// The body of `POST /agent/identity`, by `type` (SPEC-v0.7 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRequest {
    Anonymous,
    /// An ID-JAG (SPEC-v0.7 4.3).
    IdentityAssertion {
        assertion: String,
    },
    /// SPEC-v0.7 4.2: for the person `login_hint` names.
    ServiceAuth {
        login_hint: String,
    },
    /// SPEC-v0.7 4.4: a new assertion for a refresh token, which rotates.
    Refresh {
        refresh_token: String,
    },
}

impl IdentityRequest {
    pub fn from_json(body: &Value) -> Result<IdentityRequest, Error> {
        let object = body
            .as_object()
            .ok_or_else(|| Error::InvalidRequest("the body must be a JSON object".into()))?;
        match object.get("type").and_then(Value::as_str) {
            Some("anonymous") => Ok(IdentityRequest::Anonymous),
            Some("identity_assertion") => {
                let assertion_type = required_str(object, "assertion_type")?;
                if assertion_type != ID_JAG_ASSERTION_TYPE {
                    // `verified_email` is v0.1's; its counterpart here is `service_auth` (4.6).
                    return Err(Error::InvalidRequest(format!(
                        "`assertion_type` must be {ID_JAG_ASSERTION_TYPE}"
                    )));
                }
                let assertion = required_str(object, "assertion")?.to_string();
                Ok(IdentityRequest::IdentityAssertion { assertion })
            }
            Some("service_auth") => Ok(IdentityRequest::ServiceAuth {
                login_hint: required_str(object, "login_hint")?.to_string(),
            }),
            Some("refresh") => Ok(IdentityRequest::Refresh {
                refresh_token: required_str(object, "refresh_token")?.to_string(),
            }),
            Some(_) | None => Err(Error::InvalidRequest(
                "`type` must be one of `anonymous`, `service_auth`, `identity_assertion`, `refresh`".into(),
            )),
        }
    }
}

/// `POST /agent/identity`.
pub fn identity(ctx: &Ctx<'_>, request: IdentityRequest) -> Result<IdentityAnswer, Error> {
    match request {
        IdentityRequest::Anonymous => {
            let made = register::anonymous_identity(ctx)?;
            Ok(IdentityAnswer::Ok(Identified {
                id: made.registration_id,
                kind: "anonymous",
                identity: Some(Identity {
                    assertion: made.assertion.token().to_string(),
                    expires_at: rfc3339(made.assertion.expires_ms()),
                    refresh_token: None,
                }),
                scopes: ScopesAnswer::Claim(Scopes {
                    pre_claim: Some(made.pre_claim_scopes),
                    post_claim: made.claim.post_claim_scopes,
                }),
                claim: Some(Claim {
                    token: made.claim.token,
                    expires_at: rfc3339(made.claim.expires_ms),
                    url: ctx.config.site.url(crate::site::Endpoint::IdentityClaim),
                    attempt: None,
                }),
            }))
        }
        IdentityRequest::ServiceAuth { login_hint } => {
            let made = register::service_auth(ctx, &login_hint)?;
            Ok(IdentityAnswer::Ok(Identified {
                id: made.registration_id,
                kind: "service_auth",
                identity: None,
                scopes: ScopesAnswer::Claim(Scopes {
                    pre_claim: None,
                    post_claim: made.claim.post_claim_scopes,
                }),
                claim: Some(Claim {
                    token: made.claim.token,
                    expires_at: rfc3339(made.claim.expires_ms),
                    url: ctx.config.site.url(crate::site::Endpoint::IdentityClaim),
                    attempt: Some(AttemptAnswer::of(&made.attempt)),
                }),
            }))
        }
        IdentityRequest::Refresh { refresh_token } => {
            let done = crate::core::refresh::refresh(ctx, &refresh_token)?;
            Ok(IdentityAnswer::Ok(Identified {
                id: done.registration_id,
                kind: "refresh",
                identity: Some(Identity {
                    assertion: done.assertion.token().to_string(),
                    expires_at: rfc3339(done.assertion.expires_ms()),
                    refresh_token: Some(RefreshToken {
                        value: done.refresh.secret().to_string(),
                        expires_at: rfc3339(done.refresh.expires_ms()),
                    }),
                }),
                scopes: ScopesAnswer::None,
                claim: None,
            }))
        }
        IdentityRequest::IdentityAssertion { assertion } => {
            Ok(match register::identity_from_assertion(ctx, &assertion)? {
                register::Asserted::Linked(made) => IdentityAnswer::Ok(Identified {
                    id: made.registration_id,
                    kind: "identity_assertion",
                    identity: Some(Identity {
                        assertion: made.assertion.token().to_string(),
                        expires_at: rfc3339(made.assertion.expires_ms()),
                        refresh_token: None,
                    }),
                    scopes: ScopesAnswer::Granted(made.scopes),
                    claim: None,
                }),
                register::Asserted::FirstLink(link) => IdentityAnswer::FirstLink(FirstLinkAnswer::of(ctx, link)),
            })
        }
    }
}

/// What `POST /agent/identity` answers: 200, or a first link's 401
/// `interaction_required` challenge with the claim block (SPEC-v0.7 4.3).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum IdentityAnswer {
    Ok(Identified),
    FirstLink(FirstLinkAnswer),
}

/// The first link's message, in the body and the challenge.
pub const FIRST_LINK: &str = "ID-JAG matches existing account; user confirmation required to bind delegation";

impl IdentityAnswer {
    pub fn status(&self) -> u16 {
        match self {
            IdentityAnswer::Ok(_) => 200,
            IdentityAnswer::FirstLink(_) => 401,
        }
    }

    /// `WWW-Authenticate` of the challenge envelope, if it is one.
    pub fn challenge(&self) -> Option<String> {
        match self {
            IdentityAnswer::Ok(_) => None,
            IdentityAnswer::FirstLink(_) => Some(format!(
                "AgentAuth error=\"interaction_required\", error_description=\"{FIRST_LINK}\""
            )),
        }
    }

    /// For metrics: the kind of registration answered.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentityAnswer::Ok(made) => made.kind,
            IdentityAnswer::FirstLink(_) => "identity_assertion",
        }
    }
}

/// SPEC-v0.7 4.3's 401 body: the challenge's members and the claim block.
#[derive(Debug, Serialize)]
pub struct FirstLinkAnswer {
    error: &'static str,
    error_description: &'static str,
    message: &'static str,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    scopes: Scopes,
    claim: Claim,
}

impl FirstLinkAnswer {
    fn of(ctx: &Ctx<'_>, link: register::FirstLink) -> FirstLinkAnswer {
        FirstLinkAnswer {
            error: "interaction_required",
            error_description: FIRST_LINK,
            message: FIRST_LINK,
            id: link.registration_id,
            kind: "identity_assertion",
            scopes: Scopes {
                pre_claim: None,
                post_claim: link.claim.post_claim_scopes,
            },
            claim: Claim {
                token: link.claim.token,
                expires_at: rfc3339(link.claim.expires_ms),
                url: ctx.config.site.url(crate::site::Endpoint::IdentityClaim),
                attempt: Some(AttemptAnswer::of(&link.attempt)),
            },
        }
    }
}

/// The 200 answer of `POST /agent/identity` (SPEC-v0.7 4.1). It carries
/// secrets; its route is `no-store`.
#[derive(Debug, Serialize)]
pub struct Identified {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<Identity>,
    #[serde(skip_serializing_if = "ScopesAnswer::is_none")]
    scopes: ScopesAnswer,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim: Option<Claim>,
}

#[derive(Debug, Serialize)]
struct Identity {
    assertion: String,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<RefreshToken>,
}

/// Before a claim, what it grants; for an ID-JAG, a flat array of what was
/// granted (SPEC-v0.7 4.1, 4.3).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ScopesAnswer {
    Claim(Scopes),
    Granted(Vec<String>),
    /// A refresh answer has no `scopes` (SPEC-v0.7 4.4).
    None,
}

impl ScopesAnswer {
    fn is_none(&self) -> bool {
        matches!(self, ScopesAnswer::None)
    }
}

#[derive(Debug, Serialize)]
struct Scopes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pre_claim: Option<Vec<String>>,
    post_claim: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Claim {
    token: String,
    expires_at: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<AttemptAnswer>,
}

/// A claim attempt's link for the person, and its end.
#[derive(Debug, Serialize)]
pub struct AttemptAnswer {
    verification_uri: String,
    expires_at: String,
}

impl AttemptAnswer {
    fn of(attempt: &crate::core::claim::IdentityAttempt) -> AttemptAnswer {
        AttemptAnswer {
            verification_uri: attempt.verification_uri.clone(),
            expires_at: rfc3339(attempt.expires_ms),
        }
    }
}

/// `POST /agent/identity/claim` (SPEC-v0.7 6.1):
/// `{"type":"service_auth","claim_token","login_hint"}`.
pub fn claim(ctx: &Ctx<'_>, body: &Value) -> Result<ClaimStarted, Error> {
    let object = body
        .as_object()
        .ok_or_else(|| Error::InvalidRequest("the body must be a JSON object".into()))?;
    if object.get("type").and_then(Value::as_str) != Some("service_auth") {
        return Err(Error::InvalidRequest("`type` must be `service_auth`".into()));
    }
    let token = required_str(object, "claim_token")?;
    let hint = required_str(object, "login_hint")?;
    let (id, attempt) = crate::core::claim::request_identity(ctx, token, hint)?;
    Ok(ClaimStarted {
        id,
        kind: "service_auth",
        attempt: AttemptAnswer::of(&attempt),
    })
}

/// The 200 answer of `POST /agent/identity/claim`; it carries a link.
#[derive(Debug, Serialize)]
pub struct ClaimStarted {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    attempt: AttemptAnswer,
}

/// `POST /agent/identity/claim/complete` (SPEC-v0.7 6.4):
/// `{"claim_token","user_code"}`, the code six digits.
pub fn complete(ctx: &Ctx<'_>, body: &Value) -> Result<ClaimCompleted, Error> {
    let object = body
        .as_object()
        .ok_or_else(|| Error::InvalidRequest("the body must be a JSON object".into()))?;
    let token = required_str(object, "claim_token")?;
    let code = required_str(object, "user_code")?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidRequest("`user_code` must be six digits".into()));
    }
    let done = crate::core::ceremony::complete(ctx, token, code)?;
    Ok(ClaimCompleted {
        id: done.registration_id,
        status: "claimed",
        identity: ClaimedIdentity {
            assertion: done.assertion.token().to_string(),
            expires_at: rfc3339(done.assertion.expires_ms()),
            refresh_token: RefreshToken {
                value: done.refresh_token,
                expires_at: rfc3339(done.refresh_expires_ms),
            },
        },
    })
}

/// The one-shot 200 of `/complete`; it carries secrets.
#[derive(Debug, Serialize)]
pub struct ClaimCompleted {
    id: String,
    status: &'static str,
    identity: ClaimedIdentity,
}

#[derive(Debug, Serialize)]
struct ClaimedIdentity {
    assertion: String,
    expires_at: String,
    refresh_token: RefreshToken,
}

#[derive(Debug, Serialize)]
struct RefreshToken {
    value: String,
    expires_at: String,
}

/// RFC 7523's grant type, the only one the token endpoint takes.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The form of `POST /oauth2/token` (SPEC-v0.7 8), each parameter at most
/// once (RFC 6749 3.2); others, `scope` included, are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    pub assertion: &'a str,
    pub resource: Option<&'a str>,
}

impl<'a> TokenRequest<'a> {
    pub fn from_form(form: &'a [(String, String)]) -> Result<TokenRequest<'a>, Error> {
        let one = |name: &str| match once(form, name) {
            Err(_) if name == "resource" => Err(Error::InvalidTarget),
            other => other,
        };
        if one("grant_type")? != Some(JWT_BEARER) {
            return Err(Error::UnsupportedGrantType);
        }
        let assertion = one("assertion")?
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::InvalidRequest("`assertion` is required".into()))?;
        Ok(TokenRequest {
            assertion,
            resource: one("resource")?,
        })
    }
}

/// `POST /oauth2/token` (SPEC-v0.7 8).
pub fn token(ctx: &Ctx<'_>, request: &TokenRequest<'_>) -> Result<TokenAnswer, Error> {
    let issued = token::exchange(ctx, request.assertion, request.resource)?;
    Ok(TokenAnswer {
        access_token: issued.minted.secret().to_string(),
        token_type: "Bearer",
        expires_in: ctx.config.settings.access_token_ttl_secs,
        scope: issued.scopes.join(" "),
    })
}

/// The token of a `POST /oauth2/revoke` form (RFC 7009 2.1, SPEC-v0.7 10):
/// required, once; `token_type_hint` and anything else are ignored, as the
/// token is known by its prefix.
pub fn revocation_token(form: &[(String, String)]) -> Result<&str, Error> {
    once(form, "token")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::InvalidRequest("`token` is required".into()))
}

/// The value of form parameter `name`, if given: RFC 6749 3.1 (which RFC
/// 7009 follows) forbids giving a parameter more than once.
fn once<'a>(form: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, Error> {
    let mut values = form.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match (values.next(), values.next()) {
        (_, Some(_)) => Err(Error::InvalidRequest(format!("`{name}` is given more than once"))),
        (value, None) => Ok(value),
    }
}

/// RFC 6749 5.1.
#[derive(Debug, Serialize)]
pub struct TokenAnswer {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}
