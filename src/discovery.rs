//! Discovery documents (SPEC.md section 2), built from the live
//! configuration: the protected resource metadata (RFC 9728), the
//! authorization server metadata (RFC 8414), and `/auth.md` for agents. The
//! shell both generations share is here; each generation's fields (its
//! `agent_auth` block, its steps in `/auth.md`) come from its wire module
//! (`proto::v0_1::discovery`). Flows the deployment does not offer are left
//! out of all three.

use crate::site::Endpoint;
use serde_json::{Value, json};

use crate::core::Config;
use crate::proto::v0_1;

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
    let mut doc = json!({
        "issuer": site.issuer,
        "resource": site.resource,
        "authorization_servers": [site.issuer],
        "scopes_supported": settings.scopes_supported,
        "bearer_methods_supported": ["header"],
        // RFC 7009: an agent drops its own credential here; v0.1's name
        // while the current generation is off (SPEC-v0.7 2.3).
        "revocation_endpoint": site.url(if settings.v0_7_enabled { Endpoint::OAuth2Revoke } else { Endpoint::OAuthRevoke }),
        "agent_auth": agent_auth(config),
    });
    if settings.v0_7_enabled {
        // SPEC-v0.7 2.2 (authmd): the keys that sign service assertions.
        doc["jwks_uri"] = json!(site.url(Endpoint::Jwks));
    }
    if settings.introspection_secret_hash.is_some() {
        doc["introspection_endpoint"] = json!(site.url(Endpoint::Introspect));
    }
    doc
}

/// The `agent_auth` block: `skill` always, each generation's members while
/// it is on (SPEC-v0.7 2.3).
fn agent_auth(config: &Config) -> Value {
    if config.settings.v0_1_enabled {
        return v0_1::discovery::agent_auth(config);
    }
    json!({ "skill": config.site.skill_uri, "identity_types_supported": [] })
}

/// `/auth.md` rendered from the live settings: this deployment's URLs, flows and scopes.
pub fn auth_md(config: &Config) -> String {
    let (settings, site) = (&config.settings, &config.site);
    let name = &settings.resource_name;
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
        v0_1::discovery::code_list(&settings.scopes_supported)
    );
    if settings.v0_1_enabled {
        md += &v0_1::discovery::recipe(config);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::REVOKED_EVENT;
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

    /// SPEC-v0.7 2.3: a generation switched off leaves the document.
    #[test]
    fn a_generation_switched_off_leaves_the_documents() {
        let asm = authorization_server(&Config::new("https://api.example.com", Settings::default()));
        assert_eq!(asm["jwks_uri"], "https://api.example.com/.well-known/jwks.json");
        let settings = Settings {
            v0_1_enabled: false,
            v0_7_enabled: false,
            ..Settings::default()
        };
        let config = Config::new("https://api.example.com", settings);
        let asm = authorization_server(&config);
        assert_eq!(
            asm["agent_auth"],
            json!({ "skill": "https://api.example.com/auth.md", "identity_types_supported": [] })
        );
        assert!(asm.get("jwks_uri").is_none());
        assert_eq!(
            asm["issuer"], "https://api.example.com",
            "the PRM fields and issuer stay"
        );
        assert!(!auth_md(&config).contains("POST https://api.example.com/agent/auth"));
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
