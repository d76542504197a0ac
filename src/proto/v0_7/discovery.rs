//! The current generation's fields of discovery (SPEC-v0.7 2.2): its
//! endpoints at the top level and in the `agent_auth` block. The shared
//! shell, and the union with v0.1's members, is `discovery`.

use serde_json::{Map, Value, json};

use super::JWT_BEARER;
use crate::core::Config;
use crate::site::Endpoint;

/// The top-level members v0.7 adds.
pub fn top_level_members(config: &Config, doc: &mut Map<String, Value>) {
    let site = &config.site;
    doc.insert("token_endpoint".into(), json!(site.url(Endpoint::Token)));
    doc.insert("grant_types_supported".into(), json!([JWT_BEARER]));
    // (authmd) the keys that sign service assertions.
    doc.insert("jwks_uri".into(), json!(site.url(Endpoint::Jwks)));
}

/// v0.7's members of the `agent_auth` block: `claim_endpoint` has no
/// trailing slash (the client appends `/complete`).
pub fn agent_auth_members(config: &Config, agent_auth: &mut Map<String, Value>) {
    let site = &config.site;
    agent_auth.insert("identity_endpoint".into(), json!(site.url(Endpoint::Identity)));
    agent_auth.insert("claim_endpoint".into(), json!(site.url(Endpoint::IdentityClaim)));
    agent_auth.insert("events_endpoint".into(), json!(site.url(Endpoint::EventNotify)));
}
