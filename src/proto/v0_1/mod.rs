//! SPEC.md (v0.1) on the wire.

use serde::Serialize;

use crate::core::issue::Minted;
use crate::model::RegistrationKind;
use crate::time::rfc3339;

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

    /// The credential just issued, shown this once, with its scopes.
    pub fn with_credential(mut self, minted: &Minted, scopes: &[String]) -> Registered {
        self.credential = Some(Credential {
            credential: minted.secret().to_string(),
            credential_expires: minted.expires_ms().map(rfc3339),
            credential_type: minted.kind().as_str(),
        });
        self.scopes = Some(scopes.to_vec());
        self
    }

    /// How the user can claim it (SPEC.md 5), and what claiming grants.
    pub fn with_claim(mut self, url: &str, token: &str, expires_ms: i64, post_claim_scopes: &[String]) -> Registered {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CredentialType;
    use crate::settings::Settings;

    /// The members and their order are what agents got before the typed
    /// answer (serde_json's sorted `Value` maps).
    #[test]
    fn an_anonymous_answer_has_every_member_in_order() {
        let minted = Minted::new(CredentialType::ApiKey, &Settings::default(), 0);
        let answer = Registered::new("reg_1", RegistrationKind::Anonymous)
            .with_credential(&minted, &["api.read".into()])
            .with_claim("https://s/claim", "clm_x", 0, &["api.read".into(), "api.write".into()]);
        let text = serde_json::to_string(&answer).unwrap();
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys.len(), 10, "{text}");
        assert!(text.contains("\"credential_expires\":null"), "{text}");
        let positions: Vec<usize> = sorted.iter().map(|k| text.find(&format!("\"{k}\"")).unwrap()).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "members in sorted order: {text}"
        );
    }
}
