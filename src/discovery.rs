//! Discovery documents (SPEC.md section 2), built from the live
//! configuration: the protected resource metadata (RFC 9728), the
//! authorization server metadata (RFC 8414), and `/auth.md` for agents. The
//! shell both generations share is here; each generation's fields (its
//! `agent_auth` block, its steps in `/auth.md`) come from its wire module
//! (`proto::v0_1::discovery`). Flows the deployment does not offer are left
//! out of all three.

use crate::site::Endpoint;
use serde_json::{Map, Value, json};

use crate::core::Config;
use crate::jose::REVOKED_EVENT;
use crate::proto::{v0_1, v0_7};

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
    if settings.v0_7_enabled
        && let Some(members) = doc.as_object_mut()
    {
        v0_7::discovery::top_level_members(config, members);
    }
    if settings.introspection_secret_hash.is_some() {
        doc["introspection_endpoint"] = json!(site.url(Endpoint::Introspect));
    }
    doc
}

/// The `agent_auth` block (SPEC-v0.7 2.2, 2.3): `skill` always, each
/// generation's members while it is on, and the flows on offer in either.
fn agent_auth(config: &Config) -> Value {
    let settings = &config.settings;
    let available = config.available();
    let (v0_1_on, v0_7_on) = (settings.v0_1_enabled, settings.v0_7_enabled);
    let mut agent_auth = Map::new();
    agent_auth.insert("skill".into(), json!(config.site.skill_uri));
    let mut assertion_types = Vec::new();
    if (v0_1_on || v0_7_on) && available.id_jag {
        assertion_types.push(v0_1::ID_JAG_ASSERTION_TYPE);
    }
    if v0_1_on {
        assertion_types.extend(v0_1::discovery::agent_auth_members(config, &mut agent_auth));
    }
    if v0_7_on {
        v0_7::discovery::agent_auth_members(config, &mut agent_auth);
    }
    let mut identity_types = Vec::new();
    if (v0_1_on || v0_7_on) && available.anonymous {
        identity_types.push("anonymous");
    }
    if !assertion_types.is_empty() {
        identity_types.push("identity_assertion");
        let mut object = Map::new();
        object.insert("assertion_types_supported".into(), json!(assertion_types));
        if v0_1_on {
            object.insert(
                "credential_types_supported".into(),
                json!(v0_1::discovery::CREDENTIAL_TYPES),
            );
        }
        agent_auth.insert("identity_assertion".into(), Value::Object(object));
    }
    if v0_7_on && available.service_auth {
        identity_types.push("service_auth");
    }
    agent_auth.insert("identity_types_supported".into(), json!(identity_types));
    // A provider may revoke what it asserted earlier even with ID-JAGs off,
    // where the current generation listens for its pushes.
    if v0_1_on || v0_7_on {
        let events = if available.id_jag || v0_7_on {
            vec![REVOKED_EVENT]
        } else {
            vec![]
        };
        agent_auth.insert("events_supported".into(), json!(events));
    }
    Value::Object(agent_auth)
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
    // The current generation first (SPEC-v0.7 2.5), then the first.
    if settings.v0_7_enabled {
        md += &v0_7::discovery::recipe(config);
    }
    if settings.v0_1_enabled {
        if settings.v0_7_enabled {
            md += "# First generation (v0.1)\n\nAgents written for the first generation of the protocol keep working:\n\n";
        }
        md += &v0_1::discovery::recipe(config);
    }
    md
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
            json!(["anonymous", "identity_assertion", "service_auth"])
        );
        assert_eq!(
            asm["agent_auth"]["identity_assertion"]["assertion_types_supported"],
            json!(["urn:ietf:params:oauth:token-type:id-jag", "verified_email"])
        );
        assert_eq!(asm["agent_auth"]["events_supported"], json!([REVOKED_EVENT]));
    }

    /// SPEC-v0.7 2.2's document, member for member: both generations, every
    /// flow on, default settings, no introspection secret.
    #[test]
    fn both_generations_make_the_documented_metadata() {
        let asm = authorization_server(&Config::new("https://api.example.com", Settings::default()));
        assert_eq!(
            asm,
            json!({
                "issuer": "https://api.example.com",
                "resource": "https://api.example.com/api/",
                "authorization_servers": ["https://api.example.com"],
                "scopes_supported": ["api.read", "api.write"],
                "bearer_methods_supported": ["header"],
                "token_endpoint": "https://api.example.com/oauth2/token",
                "revocation_endpoint": "https://api.example.com/oauth2/revoke",
                "grant_types_supported": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
                "jwks_uri": "https://api.example.com/.well-known/jwks.json",
                "agent_auth": {
                    "skill": "https://api.example.com/auth.md",
                    "register_uri": "https://api.example.com/agent/auth",
                    "claim_uri": "https://api.example.com/agent/auth/claim",
                    "revocation_uri": "https://api.example.com/agent/auth/revoke",
                    "identity_endpoint": "https://api.example.com/agent/identity",
                    "claim_endpoint": "https://api.example.com/agent/identity/claim",
                    "events_endpoint": "https://api.example.com/agent/event/notify",
                    "identity_types_supported": ["anonymous", "identity_assertion", "service_auth"],
                    "anonymous": { "credential_types_supported": ["api_key"] },
                    "identity_assertion": {
                        "assertion_types_supported": [
                            "urn:ietf:params:oauth:token-type:id-jag",
                            "verified_email"
                        ],
                        "credential_types_supported": ["access_token", "api_key"]
                    },
                    "events_supported": [REVOKED_EVENT]
                }
            })
        );
        // v0.7 off: the v0.1 document exactly, as before this generation.
        let settings = Settings {
            v0_7_enabled: false,
            ..Settings::default()
        };
        let v0_1 = authorization_server(&Config::new("https://api.example.com", settings));
        assert_eq!(v0_1["revocation_endpoint"], "https://api.example.com/oauth/revoke");
        for gone in ["token_endpoint", "grant_types_supported", "jwks_uri"] {
            assert!(v0_1.get(gone).is_none(), "{gone}");
        }
        for gone in ["identity_endpoint", "claim_endpoint", "events_endpoint"] {
            assert!(v0_1["agent_auth"].get(gone).is_none(), "{gone}");
        }
        assert_eq!(
            v0_1["agent_auth"]["identity_types_supported"],
            json!(["anonymous", "identity_assertion"])
        );
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
            json!(["identity_assertion", "service_auth"])
        );
        assert!(asm["agent_auth"].get("anonymous").is_none());
        assert!(!auth_md(&config).contains("\"type\":\"anonymous\""));
        let settings = Settings {
            anonymous_enabled: false,
            id_jag_enabled: false,
            verified_email_enabled: false,
            service_auth_enabled: false,
            ..Settings::default()
        };
        let asm = authorization_server(&Config::new("https://api.example.com", settings.clone()));
        assert_eq!(asm["agent_auth"]["identity_types_supported"], json!([]));
        assert!(asm["agent_auth"].get("identity_assertion").is_none());
        assert_eq!(
            asm["agent_auth"]["events_supported"],
            json!([REVOKED_EVENT]),
            "a provider may still revoke what it asserted"
        );
        let only_v0_1 = Settings {
            v0_7_enabled: false,
            ..settings
        };
        let asm = authorization_server(&Config::new("https://api.example.com", only_v0_1));
        assert_eq!(asm["agent_auth"]["events_supported"], json!([]), "v0.1 as before");
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

    /// SPEC-v0.7 2.5: the current generation first, then v0.1's recipe; a
    /// generation that is off is left out.
    #[test]
    fn auth_md_describes_the_current_generation_first() {
        let md = auth_md(&Config::new("https://api.example.com", Settings::default()));
        let v0_7 = md.find("POST https://api.example.com/agent/identity").unwrap();
        let v0_1 = md.find("# First generation (v0.1)").unwrap();
        assert!(v0_7 < v0_1, "{md}");
        assert!(md.contains("user_code") && md.contains("https://api.example.com/oauth2/token"));
        let only_v0_1 = Settings {
            v0_7_enabled: false,
            ..Settings::default()
        };
        let md = auth_md(&Config::new("https://api.example.com", only_v0_1));
        assert!(!md.contains("/agent/identity") && !md.contains("First generation"));
        let only_v0_7 = Settings {
            v0_1_enabled: false,
            ..Settings::default()
        };
        let md = auth_md(&Config::new("https://api.example.com", only_v0_7));
        assert!(!md.contains("POST https://api.example.com/agent/auth\n") && !md.contains("First generation"));
        assert!(md.contains("POST https://api.example.com/agent/identity"));
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
