//! `POST /agent/auth` (SPEC.md section 3): dispatch on `type`, then one flow.
//!
//! Built here: anonymous registration (3.1). An anonymous registration starts
//! `unclaimed` with an API key scoped to `pre_claim_scopes` and a claim token;
//! until it is claimed it stops working after `registration_ttl_secs`
//! (`guard::authenticate` checks `expires_ms`).
//!
//! ID-JAG registration is `id_jag`. Not here: the claim ceremony, rate limits.

use serde_json::{Value, json};

use super::{Ctx, required_str};
use crate::core::issue::{Grant, Minted, issue};
use crate::error::Error;
use crate::model::{CredentialType, EventName, RegistrationKind, Status};
use crate::secrets;
use crate::store::{audit, registrations};

pub const ID_JAG_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
pub const VERIFIED_EMAIL_ASSERTION_TYPE: &str = "verified_email";

/// A registration request whose shape has been checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Anonymous {
        requested: CredentialType,
    },
    IdJag {
        assertion: String,
        requested: CredentialType,
    },
    VerifiedEmail {
        email: String,
        requested: CredentialType,
    },
}

impl Request {
    /// Checks the shape of a request body (SPEC.md section 3): an object,
    /// dispatched on `type`, with `requested_credential_type` in every shape.
    /// Members this document does not name are ignored.
    pub fn from_json(body: &Value) -> Result<Request, Error> {
        let object = body.as_object().ok_or_else(|| {
            Error::InvalidRequest(format!(
                "the body must be a JSON object, not {}",
                super::json_type(body)
            ))
        })?;
        let kind = required_str(object, "type")?;
        let requested_text = |object| required_str(object, "requested_credential_type");
        match kind {
            "anonymous" => {
                let requested = credential_type(requested_text(object)?)?;
                if requested != CredentialType::ApiKey {
                    return Err(Error::UnsupportedCredentialType(
                        "anonymous registration issues only `api_key` credentials".into(),
                    ));
                }
                Ok(Request::Anonymous { requested })
            }
            "identity_assertion" => {
                let assertion_type = required_str(object, "assertion_type")?;
                let assertion = required_str(object, "assertion")?.to_string();
                let requested = credential_type(requested_text(object)?)?;
                match assertion_type {
                    ID_JAG_ASSERTION_TYPE => Ok(Request::IdJag { assertion, requested }),
                    VERIFIED_EMAIL_ASSERTION_TYPE => Ok(Request::VerifiedEmail {
                        email: assertion,
                        requested,
                    }),
                    _ => Err(Error::InvalidRequest(format!(
                        "unknown `assertion_type`; expected \"{ID_JAG_ASSERTION_TYPE}\" or \"{VERIFIED_EMAIL_ASSERTION_TYPE}\""
                    ))),
                }
            }
            _ => Err(Error::InvalidRequest(
                "unknown `type`; expected \"anonymous\" or \"identity_assertion\"".into(),
            )),
        }
    }
}

fn credential_type(text: &str) -> Result<CredentialType, Error> {
    CredentialType::parse(text).ok_or_else(|| {
        Error::UnsupportedCredentialType("`requested_credential_type` must be \"api_key\" or \"access_token\"".into())
    })
}

pub use crate::proto::v0_1::Registered;

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
    let registration_id = secrets::new_id("reg_");
    let key = Minted::new(CredentialType::ApiKey, settings, now_ms);
    let claim_token = secrets::new_claim_token();
    let client_ip = ctx.client_ip;

    ctx.writer.write(|tx| {
        registrations::insert(
            tx,
            &registrations::NewRegistration {
                id: &registration_id,
                kind: RegistrationKind::Anonymous,
                status: Status::Unclaimed,
                user_id: None,
                claim_token_hash: Some(&secrets::hash(&claim_token)),
                requested_credential_type: Some(CredentialType::ApiKey),
                email: None,
                created_ms: now_ms,
                expires_ms: Some(expires_ms),
            },
        )?;
        audit::record(
            tx,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Request, Error> {
        Request::from_json(&serde_json::from_str(body).unwrap())
    }

    fn message(body: &str) -> (&'static str, String) {
        let err = parse(body).unwrap_err();
        (crate::proto::v0_1::wire(&err).1, err.to_string())
    }

    #[test]
    fn shapes_are_dispatched_on_type() {
        assert_eq!(
            parse(r#"{"type":"anonymous","requested_credential_type":"api_key","extra":1}"#).unwrap(),
            Request::Anonymous {
                requested: CredentialType::ApiKey
            }
        );
        assert_eq!(
            parse(r#"{"type":"identity_assertion","assertion_type":"verified_email","assertion":"a@b.c","requested_credential_type":"access_token"}"#).unwrap(),
            Request::VerifiedEmail { email: "a@b.c".into(), requested: CredentialType::AccessToken }
        );
    }

    #[test]
    fn bad_shapes_name_the_offending_member() {
        assert_eq!(
            message("[]"),
            ("invalid_request", "the body must be a JSON object, not an array".into())
        );
        assert_eq!(message("{}"), ("invalid_request", "missing member `type`".into()));
        assert_eq!(
            message(r#"{"type":7}"#),
            ("invalid_request", "member `type` must be a string, not a number".into())
        );
        assert!(message(r#"{"type":"magic"}"#).1.contains("unknown `type`"));
        assert_eq!(
            message(r#"{"type":"anonymous"}"#),
            ("invalid_request", "missing member `requested_credential_type`".into())
        );
        assert_eq!(
            message(r#"{"type":"anonymous","requested_credential_type":"access_token"}"#).0,
            "unsupported_credential_type"
        );
        assert_eq!(
            message(r#"{"type":"anonymous","requested_credential_type":"cookie"}"#).0,
            "unsupported_credential_type"
        );
        assert!(message(r#"{"type":"identity_assertion","assertion_type":"saml","assertion":"x","requested_credential_type":"api_key"}"#).1.contains("assertion_type"));
    }
}
