//! SPEC.md (v0.1) on the wire.
//!
//! ```text
//!  request.rs    the body of POST /agent/auth parsed into a [`Request`]
//!  mod.rs        the operations as v0.1 calls them (register, request_claim,
//!                complete_claim: core's outcomes shaped) and the answers,
//!                serde structs whose members are declared in the order they
//!                go out (alphabetical, as the hand-built values they
//!                replaced sorted them)
//!  error.rs      every `Error` to its (status, code) and the JSON body
//!  discovery.rs  the `agent_auth` block and the v0.1 steps of /auth.md
//! ```

pub mod discovery;
mod error;
mod request;

pub use error::{ErrorBody, wire};
pub use request::{ID_JAG_ASSERTION_TYPE, Request, VERIFIED_EMAIL_ASSERTION_TYPE, json_object, required_str};

use serde::Serialize;

use crate::core::issue::Minted;
use crate::core::{Ctx, claim, register};
use crate::error::Error;
use crate::model::RegistrationKind;
use crate::time::{UnixMs, rfc3339};

/// `POST /agent/auth` (SPEC.md 3): one of three registrations, by `type`.
pub fn register(ctx: &Ctx<'_>, request: Request) -> Result<Registered, Error> {
    let outcome = match request {
        Request::Anonymous { .. } => register::anonymous(ctx)?,
        Request::IdJag { assertion, requested } => register::from_assertion(ctx, &assertion, requested)?,
        Request::VerifiedEmail { email, requested } => register::verified_email(ctx, &email, requested)?,
    };
    Ok(Registered::of(&outcome, &ctx.config.site.claim_uri))
}

/// `POST /agent/auth/claim` (SPEC.md 5.1).
pub fn request_claim(ctx: &Ctx<'_>, claim_token: &str, email: &str) -> Result<ClaimInitiated, Error> {
    let requested = claim::request(ctx, claim_token, email)?;
    Ok(ClaimInitiated::new(
        &requested.registration_id,
        &requested.attempt_id,
        requested.expires_ms,
    ))
}

/// `POST /agent/auth/claim/complete` (SPEC.md 5.5).
pub fn complete_claim(ctx: &Ctx<'_>, claim_token: &str, otp: &str) -> Result<Claimed, Error> {
    let completed = claim::complete(ctx, claim_token, otp)?;
    let claimed = Claimed::new(&completed.registration_id);
    Ok(match &completed.credential {
        Some((minted, scopes)) => claimed.with_credential(minted, scopes),
        None => claimed,
    })
}

/// The 200 answer to `POST /agent/auth` (SPEC.md 3): a credential, a claim
/// offer, or both. It carries secrets; its route is `no-store`. Members are
/// declared in the order they go on the wire (alphabetical, as before).
#[derive(Debug, Serialize)]
pub struct Registered {
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    claim: Option<ClaimOffer>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    credential: Option<Credential>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_claim_scopes: Option<Vec<String>>,
    registration_id: String,
    registration_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct ClaimOffer {
    claim_token: String,
    claim_token_expires: String,
    claim_url: String,
}

#[derive(Debug, Serialize)]
struct Credential {
    credential: String,
    /// `null` for API keys, which do not expire.
    credential_expires: Option<String>,
    credential_type: &'static str,
}

impl Registered {
    pub fn new(registration_id: &str, kind: RegistrationKind) -> Registered {
        Registered {
            claim: None,
            credential: None,
            post_claim_scopes: None,
            registration_id: registration_id.to_string(),
            registration_type: kind.as_wire(),
            scopes: None,
        }
    }

    /// What registering made, with the claim URL of this server.
    pub fn of(outcome: &register::Outcome, claim_url: &str) -> Registered {
        let mut registered = Registered::new(&outcome.registration_id, outcome.kind);
        if let Some((minted, scopes)) = &outcome.credential {
            registered = registered.with_credential(minted, scopes);
        }
        if let Some(claim) = &outcome.claim {
            registered = registered.with_claim(claim_url, &claim.token, claim.expires_ms, &claim.post_claim_scopes);
        }
        registered
    }

    /// The credential just issued, shown this once, with its scopes.
    pub fn with_credential(mut self, minted: &Minted, scopes: &[String]) -> Registered {
        self.credential = Some(Credential::of(minted));
        self.scopes = Some(scopes.to_vec());
        self
    }

    /// How the user can claim it (SPEC.md 5), and what claiming grants.
    pub fn with_claim(
        mut self,
        url: &str,
        token: &str,
        expires_ms: UnixMs,
        post_claim_scopes: &[String],
    ) -> Registered {
        self.claim = Some(ClaimOffer {
            claim_token: token.to_string(),
            claim_token_expires: rfc3339(expires_ms),
            claim_url: url.to_string(),
        });
        self.post_claim_scopes = Some(post_claim_scopes.to_vec());
        self
    }

    /// For metrics: the registration's type.
    pub fn registration_type(&self) -> &'static str {
        self.registration_type
    }
}

/// `POST /agent/auth/claim` (SPEC.md 5.1): the mail is on its way.
#[derive(Debug, Serialize)]
pub struct ClaimInitiated {
    claim_attempt_id: String,
    expires_at: String,
    registration_id: String,
    status: &'static str,
}

impl ClaimInitiated {
    pub fn new(registration_id: &str, attempt_id: &str, expires_ms: UnixMs) -> ClaimInitiated {
        ClaimInitiated {
            claim_attempt_id: attempt_id.to_string(),
            expires_at: rfc3339(expires_ms),
            registration_id: registration_id.to_string(),
            status: "initiated",
        }
    }
}

/// `POST /agent/auth/claim/attempt/challenge` (SPEC.md 5.4).
#[derive(Debug, Serialize)]
pub struct Challenge {
    challenge: String,
    expires_at: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl Challenge {
    pub fn otp(code: &str, expires_ms: UnixMs) -> Challenge {
        Challenge {
            challenge: code.to_string(),
            expires_at: rfc3339(expires_ms),
            kind: "otp",
        }
    }
}

/// `POST /agent/auth/claim/complete` (SPEC.md 5.5): claimed; a registration
/// that had no credential yet gets its first here.
#[derive(Debug, Serialize)]
pub struct Claimed {
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    credential: Option<Credential>,
    registration_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    status: &'static str,
}

impl Claimed {
    /// An anonymous registration: its key keeps working, with more scopes.
    pub fn new(registration_id: &str) -> Claimed {
        Claimed {
            credential: None,
            registration_id: registration_id.to_string(),
            scopes: None,
            status: "claimed",
        }
    }

    pub fn with_credential(mut self, minted: &Minted, scopes: &[String]) -> Claimed {
        self.credential = Some(Credential::of(minted));
        self.scopes = Some(scopes.to_vec());
        self
    }
}

impl Credential {
    fn of(minted: &Minted) -> Credential {
        Credential {
            credential: minted.secret().to_string(),
            credential_expires: minted.expires_ms().map(rfc3339),
            credential_type: minted.kind().as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CredentialType;
    use crate::settings::Settings;

    const EPOCH: UnixMs = UnixMs::from_millis(0);

    /// The members and their order are what agents got before the typed
    /// answer (serde_json's sorted `Value` maps).
    #[test]
    fn an_anonymous_answer_has_every_member_in_order() {
        let minted = Minted::new(CredentialType::ApiKey, &Settings::default(), EPOCH);
        let answer = Registered::new("reg_1", RegistrationKind::Anonymous)
            .with_credential(&minted, &["api.read".into()])
            .with_claim(
                "https://s/claim",
                "clm_x",
                EPOCH,
                &["api.read".into(), "api.write".into()],
            );
        let text = serde_json::to_string(&answer).unwrap();
        assert_sorted(&text, 10);
        assert!(text.contains("\"credential_expires\":null"), "{text}");
    }

    #[test]
    fn the_claim_answers_keep_their_members_in_order() {
        let minted = Minted::new(CredentialType::AccessToken, &Settings::default(), EPOCH);
        let claimed = Claimed::new("reg_1").with_credential(&minted, &["api.read".into()]);
        assert_sorted(&serde_json::to_string(&claimed).unwrap(), 6);
        assert_sorted(&serde_json::to_string(&Claimed::new("reg_1")).unwrap(), 2);
        assert_sorted(
            &serde_json::to_string(&ClaimInitiated::new("reg_1", "att_1", EPOCH)).unwrap(),
            4,
        );
        let challenge = serde_json::to_string(&Challenge::otp("123456", EPOCH)).unwrap();
        assert_sorted(&challenge, 3);
        assert!(challenge.contains("\"type\":\"otp\""), "{challenge}");
    }

    /// `count` members, in sorted order (a parsed `Map` sorts its keys).
    fn assert_sorted(text: &str, count: usize) {
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.len(), count, "{text}");
        let positions: Vec<usize> = keys.iter().map(|k| text.find(&format!("\"{k}\"")).unwrap()).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "members in sorted order: {text}"
        );
    }
}
