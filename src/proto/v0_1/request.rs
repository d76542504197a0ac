//! SPEC.md section 3 requests, parsed: the shape of a `POST /agent/auth`
//! body, and the helpers that read members and name what is wrong.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::model::CredentialType;

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
        let object = body
            .as_object()
            .ok_or_else(|| Error::InvalidRequest(format!("the body must be a JSON object, not {}", json_type(body))))?;
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

/// Reads member `name` of a JSON object as a string: `400 invalid_request`
/// naming the member when it is missing or of another JSON type.
pub fn required_str<'v>(object: &'v Map<String, Value>, name: &str) -> Result<&'v str, Error> {
    match object.get(name) {
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(Error::InvalidRequest(format!(
            "member `{name}` must be a string, not {}",
            json_type(other)
        ))),
        None => Err(Error::InvalidRequest(format!("missing member `{name}`"))),
    }
}

pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The body as a JSON object, or `400 invalid_request` saying what it is.
pub fn json_object(body: &Value) -> Result<&Map<String, Value>, Error> {
    body.as_object()
        .ok_or_else(|| Error::InvalidRequest(format!("the body must be a JSON object, not {}", json_type(body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Request, Error> {
        Request::from_json(&serde_json::from_str(body).unwrap())
    }

    fn message(body: &str) -> (&'static str, String) {
        let err = parse(body).unwrap_err();
        (super::super::wire(&err).1, err.to_string())
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
