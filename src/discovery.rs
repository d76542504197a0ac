//! Discovery documents (SPEC.md section 2), built from the live
//! configuration: the protected resource metadata (RFC 9728), the
//! authorization server metadata (RFC 8414) with its `agent_auth` block, and
//! the `/auth.md` recipe for agents. Flows the deployment does not offer are
//! left out of all three.

use crate::site::Endpoint;
use serde_json::{Value, json};

use crate::core::Config;
use crate::proto::v0_1::{ID_JAG_ASSERTION_TYPE, VERIFIED_EMAIL_ASSERTION_TYPE};

pub use crate::jose::REVOKED_EVENT;

pub fn protected_resource(config: &Config) -> Value {
    let (settings, site) = (&config.settings, &config.site);
    let mut doc = json!({
        "resource": site.resource,
        "resource_name": settings.resource_name,
        "authorization_servers": [site.issuer],
        "scopes_supported": settings.scopes_supported,
        "bearer_methods_supported": ["header"],
    });
    if let Some(logo) = &settings.resource_logo_uri {
        doc["resource_logo_uri"] = json!(logo);
    }
    doc
}

pub fn authorization_server(config: &Config) -> Value {
    let (settings, site) = (&config.settings, &config.site);
    let available = config.available();
    let mut identity_types = Vec::new();
    if available.anonymous {
        identity_types.push("anonymous");
    }
    let mut assertion_types = Vec::new();
    if available.id_jag {
        assertion_types.push(ID_JAG_ASSERTION_TYPE);
    }
    if available.verified_email {
        assertion_types.push(VERIFIED_EMAIL_ASSERTION_TYPE);
    }
    if !assertion_types.is_empty() {
        identity_types.push("identity_assertion");
    }
    let mut agent_auth = json!({
        "skill": site.skill_uri,
        "register_uri": site.register_uri,
        "claim_uri": site.claim_uri,
        "revocation_uri": site.revocation_uri,
        "identity_types_supported": identity_types,
        "events_supported": if available.id_jag { vec![REVOKED_EVENT] } else { vec![] },
    });
    if available.anonymous {
        agent_auth["anonymous"] = json!({ "credential_types_supported": ["api_key"] });
    }
    if !assertion_types.is_empty() {
        agent_auth["identity_assertion"] = json!({
            "assertion_types_supported": assertion_types,
            "credential_types_supported": ["access_token", "api_key"],
        });
    }
    let mut doc = json!({
        "issuer": site.issuer,
        "resource": site.resource,
        "authorization_servers": [site.issuer],
        "scopes_supported": settings.scopes_supported,
        "bearer_methods_supported": ["header"],
        // RFC 7009: an agent drops its own credential here.
        "revocation_endpoint": site.url(Endpoint::OAuthRevoke),
        "agent_auth": agent_auth,
    });
    if settings.introspection_secret_hash.is_some() {
        doc["introspection_endpoint"] = json!(site.url(Endpoint::Introspect));
    }
    doc
}

/// The error codes an agent may meet, for the table in `/auth.md`.
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "invalid_request",
        "the request is malformed; the message names the member",
    ),
    (
        "400",
        "unsupported_credential_type",
        "that credential type is not offered for this flow",
    ),
    ("400", "anonymous_not_enabled", "anonymous registration is switched off"),
    (
        "400",
        "verified_email_not_enabled",
        "verified-email registration is switched off",
    ),
    ("400", "issuer_not_enabled", "ID-JAG registration is switched off"),
    (
        "400",
        "invalid_issuer / invalid_signature / expired / replay_detected / invalid_audience / invalid_client_id / missing_verified_email / invalid_scope / user_not_provisioned",
        "the ID-JAG was refused; get a fresh one from your provider",
    ),
    (
        "401",
        "invalid_token",
        "missing, unknown, expired or revoked credential: drop it and rediscover",
    ),
    (
        "403",
        "insufficient_scope",
        "the credential lacks the scope named in the challenge",
    ),
    (
        "401 / 409 / 410",
        "invalid_claim_token / claimed_or_in_flight / claim_expired / claim_superseded / claim_completed / previously_claimed / otp_invalid / otp_expired / otp_not_generated",
        "claim ceremony refusals",
    ),
    ("413", "request_too_large", "the body is over the size limit"),
    ("415", "unsupported_media_type", "send Content-Type: application/json"),
    ("429", "rate_limited", "wait the number of seconds in Retry-After"),
    ("5xx", "server_error", "retry later with backoff"),
];

/// `/auth.md` rendered from the live settings: this deployment's URLs, flows and scopes.
pub fn auth_md(config: &Config) -> String {
    let (settings, site) = (&config.settings, &config.site);
    let available = config.available();
    let name = &settings.resource_name;
    let scopes = |list: &[String]| list.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
    let mut md = String::new();
    md += &format!("# Agent access to {name}\n\n");
    md += &format!(
        "{name} lets AI agents register for scoped, individually revocable credentials \
         (the auth.md protocol). Do not ask your user to paste an API key: follow these steps.\n\n"
    );
    md += "## 1. Discover\n\n";
    md += &format!(
        "- API: `{}` (calls without a credential get `401` with `WWW-Authenticate: Bearer resource_metadata=\"{}\"`)\n\
         - Protected resource metadata: `{}`\n\
         - Authorization server metadata: `{}` (its `agent_auth` block lists the URLs and flows below)\n\
         - Scopes: {}\n\n",
        site.resource,
        site.resource_metadata_uri,
        site.resource_metadata_uri,
        site.authorization_server_metadata_uri,
        scopes(&settings.scopes_supported)
    );
    md += "## 2. Pick a method\n\n";
    if available.id_jag {
        md += "- **ID-JAG** (preferred when your provider signs one): credentials at once, no human step.\n";
    }
    if available.anonymous {
        md += &format!(
            "- **Anonymous**: an API key at once with {}; your user may claim it later for {}.\n",
            scopes(&settings.pre_claim_scopes),
            scopes(&settings.post_claim_scopes)
        );
    }
    if available.verified_email {
        md +=
            "- **Verified email**: give your user's email; they confirm with a code before any credential is issued.\n";
    }
    if !(available.anonymous || available.id_jag || available.verified_email) {
        md += "- No registration method is enabled on this service right now.\n";
    }
    md += "\n## 3. Register\n\n";
    if available.anonymous {
        md += &format!(
            "```\nPOST {}\nContent-Type: application/json\n\n{{\"type\":\"anonymous\",\"requested_credential_type\":\"api_key\"}}\n```\n\n\
             The answer holds `credential` (your API key, shown once), `scopes`, and `claim_url` with `claim_token`. \
             Keep `claim_token` secret. An unclaimed registration stops working after {} unless your user claims it.\n\n",
            site.register_uri,
            human_secs(settings.registration_ttl_secs)
        );
    }
    if available.id_jag {
        md += &format!(
            "```\nPOST {}\nContent-Type: application/json\n\n{{\"type\":\"identity_assertion\",\"assertion_type\":\"{ID_JAG_ASSERTION_TYPE}\",\"assertion\":\"<ID-JAG>\",\"requested_credential_type\":\"access_token\"}}\n```\n\n\
             The ID-JAG's `aud` must be `{}`. Access tokens last {}; present a fresh ID-JAG for a new one.\n\n",
            site.register_uri,
            site.issuer,
            human_secs(settings.access_token_ttl_secs)
        );
    }
    if available.verified_email {
        md += &format!(
            "```\nPOST {}\nContent-Type: application/json\n\n{{\"type\":\"identity_assertion\",\"assertion_type\":\"{VERIFIED_EMAIL_ASSERTION_TYPE}\",\"assertion\":\"user@example.com\",\"requested_credential_type\":\"api_key\"}}\n```\n\n",
            site.register_uri
        );
    }
    if available.claim {
        md += &format!(
            "## 4. Claim\n\n\
             `POST {}` with `{{\"claim_token\":\"...\",\"email\":\"...\"}}` emails your user a link. \
             They open it, press the button and read you a six-digit code; send it with \
             `POST {}/complete` and `{{\"claim_token\":\"...\",\"otp\":\"123456\"}}`.\n\n",
            site.claim_uri, site.claim_uri
        );
    }
    md += &format!(
        "## {}. Use\n\nSend `Authorization: Bearer <credential>` to `{}`. Reads need `{}`, writes need `{}`.\n\n",
        if available.claim { 5 } else { 4 },
        site.resource,
        settings.read_scope,
        settings.write_scope
    );
    md += &format!(
        "## Revocation\n\nEvery credential can be revoked on its own, by the operator{}. \
         A `401` on a credential that used to work means it was revoked or expired: drop it and start again from step 1.\n\n",
        if available.id_jag {
            format!(" or by your provider (`{}`)", site.revocation_uri)
        } else {
            String::new()
        }
    );
    md += "## Errors\n\nEvery error is JSON: `{\"error\": \"<code>\", \"message\": \"...\", \"error_description\": \"...\"}`.\n\n";
    md += "| status | error | meaning |\n|---|---|---|\n";
    for (status, code, meaning) in ERRORS {
        md += &format!("| {status} | `{code}` | {meaning} |\n");
    }
    md += "\nOn 5xx, retry with backoff; on 4xx, do not resend the same request unchanged.\n";
    md
}

fn human_secs(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn metadata_documents_agree_with_each_other() {
        let config = Config::new("https://api.example.com", Settings::default());
        let prm = protected_resource(&config);
        let asm = authorization_server(&config);
        for field in [
            "resource",
            "authorization_servers",
            "scopes_supported",
            "bearer_methods_supported",
        ] {
            assert_eq!(prm[field], asm[field], "{field}");
        }
        assert_eq!(asm["issuer"], "https://api.example.com");
        assert_eq!(asm["agent_auth"]["register_uri"], "https://api.example.com/agent/auth");
        assert_eq!(
            asm["agent_auth"]["identity_types_supported"],
            json!(["anonymous", "identity_assertion"])
        );
        assert_eq!(
            asm["agent_auth"]["identity_assertion"]["assertion_types_supported"],
            json!(["urn:ietf:params:oauth:token-type:id-jag", "verified_email"])
        );
        assert_eq!(asm["agent_auth"]["events_supported"], json!([REVOKED_EVENT]));
    }

    #[test]
    fn a_disabled_flow_leaves_the_documents() {
        let settings = Settings {
            anonymous_enabled: false,
            ..Settings::default()
        };
        let config = Config::new("https://api.example.com", settings);
        let asm = authorization_server(&config);
        assert_eq!(
            asm["agent_auth"]["identity_types_supported"],
            json!(["identity_assertion"])
        );
        assert!(asm["agent_auth"].get("anonymous").is_none());
        assert!(!auth_md(&config).contains("\"type\":\"anonymous\""));
        let settings = Settings {
            anonymous_enabled: false,
            id_jag_enabled: false,
            verified_email_enabled: false,
            ..Settings::default()
        };
        let asm = authorization_server(&Config::new("https://api.example.com", settings));
        assert_eq!(asm["agent_auth"]["identity_types_supported"], json!([]));
        assert!(asm["agent_auth"].get("identity_assertion").is_none());
        assert_eq!(asm["agent_auth"]["events_supported"], json!([]));
    }

    #[test]
    fn auth_md_uses_this_deployments_urls_and_scopes() {
        let settings = Settings {
            resource_name: "Hobby Notes".into(),
            registration_ttl_secs: 7200,
            ..Settings::default()
        };
        let md = auth_md(&Config::new("https://notes.example", settings));
        assert!(md.starts_with("# Agent access to Hobby Notes"));
        assert!(md.contains("POST https://notes.example/agent/auth"));
        assert!(md.contains("https://notes.example/.well-known/oauth-protected-resource/api/"));
        assert!(md.contains("2 hours"));
        assert!(md.contains("`rate_limited`"));
        assert!(!md.contains("example.com/"), "no placeholder URLs");
        assert!(
            md.contains("POST https://notes.example/agent/auth/claim"),
            "the claim step"
        );
    }
}
