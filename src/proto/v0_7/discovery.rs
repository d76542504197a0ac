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

/// The error codes a v0.7 agent may meet, for the table in `/auth.md`.
pub(crate) const ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "invalid_request",
        "the body is malformed; the message names the member",
    ),
    (
        "400",
        "anonymous_not_enabled / service_auth_not_enabled / issuer_not_enabled",
        "that method is switched off",
    ),
    ("400", "invalid_login_hint", "`login_hint` must be an email address"),
    (
        "400",
        "invalid_issuer / invalid_signature / expired / replay_detected / invalid_audience / invalid_client_id / missing_verified_email / invalid_scope / user_not_provisioned",
        "the ID-JAG was refused; get a fresh one from your provider",
    ),
    (
        "401",
        "login_required",
        "the user's login at the provider is too old: re-authenticate them there (max_age) and mint a fresh ID-JAG",
    ),
    (
        "401",
        "interaction_required",
        "the ID-JAG matches an existing account: run the claim with the block in the answer",
    ),
    (
        "400",
        "invalid_refresh_token",
        "register again (or present a fresh ID-JAG)",
    ),
    (
        "401 / 400 / 409 / 410",
        "invalid_claim_token / invalid_claim / already_claimed / claim_expired",
        "claim refusals; `claim_expired`: register again",
    ),
    (
        "409",
        "claim_not_confirmed",
        "the user has not confirmed yet: wait and retry",
    ),
    ("410", "user_code_expired", "ask for a new link at the claim endpoint"),
    ("401", "invalid_user_code", "ask the user to read the code again"),
    (
        "400",
        "unsupported_grant_type / invalid_grant / invalid_target",
        "token endpoint refusals (RFC 6749 envelope)",
    ),
    (
        "401",
        "invalid_token",
        "on the API: exchange your assertion again, or start over",
    ),
    ("429", "rate_limited", "wait the number of seconds in Retry-After"),
    (
        "503",
        "temporarily_unavailable",
        "the database is briefly unreachable: wait the seconds in Retry-After, then retry",
    ),
];

/// The steps of `/auth.md` for the current generation (SPEC-v0.7 2.5):
/// pick a method, register, claim, exchange, use, refresh, revoke, errors.
pub fn recipe(config: &Config) -> String {
    let (settings, site) = (&config.settings, &config.site);
    let available = config.available();
    let identity = site.url(Endpoint::Identity);
    let claim = site.url(Endpoint::IdentityClaim);
    let token = site.url(Endpoint::Token);
    let mut md = String::new();
    md += "## 2. Pick a method\n\n";
    if available.id_jag {
        md += "- **ID-JAG** (preferred when your provider signs one): an identity at once for a person your provider knows.\n";
    }
    if available.service_auth {
        md +=
            "- **service_auth**: give your user's email address; they sign in here and confirm, and read you a code.\n";
    }
    if available.anonymous {
        md += "- **Anonymous**: an identity at once with the pre-claim scopes; your user may claim it later.\n";
    }
    if !(available.id_jag || available.service_auth || available.anonymous) {
        md += "- No registration method is enabled on this service right now.\n";
    }
    md += &format!("\n## 3. Register\n\n`POST {identity}` with one of:\n\n");
    if available.id_jag {
        md += &format!(
            "- `{{\"type\":\"identity_assertion\",\"assertion_type\":\"{}\",\"assertion\":\"<ID-JAG>\"}}` (its `aud` is `{}`; `auth_time` must be within {} s)\n",
            crate::proto::v0_1::ID_JAG_ASSERTION_TYPE,
            site.issuer,
            settings.id_jag_max_auth_age_secs
        );
    }
    if available.service_auth {
        md += "- `{\"type\":\"service_auth\",\"login_hint\":\"user@example.com\"}`\n";
    }
    if available.anonymous {
        md += "- `{\"type\":\"anonymous\"}`\n";
    }
    md += "\nThe answer holds `identity.assertion` (a signed JWT, opaque to you) or, until your user confirms, a `claim` block. Keep `claim.token` secret.\n\n";
    md += &format!(
        "## 4. Claim\n\nHand your user `claim.attempt.verification_uri` (for an anonymous registration, first `POST {claim}` with \
         `{{\"type\":\"service_auth\",\"claim_token\":\"...\",\"login_hint\":\"their email\"}}` to get one). They sign in, confirm, \
         and read you a six-digit code. Then `POST {claim}/complete` with `{{\"claim_token\":\"...\",\"user_code\":\"123456\"}}`: \
         the answer holds a fresh `identity.assertion` and a `refresh_token`.\n\n"
    );
    md += &format!(
        "## 5. Exchange\n\n`POST {token}` as a form: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<assertion>` \
         gives an `access_token` for {} s; exchange again whenever it runs out.\n\n",
        settings.access_token_ttl_secs
    );
    md += &format!(
        "## 6. Use\n\nSend `Authorization: Bearer <access_token>` to `{}`. Reads need `{}`, writes need `{}`.\n\n",
        site.resource, settings.read_scope, settings.write_scope
    );
    md += &format!(
        "## 7. Refresh and revoke\n\n`POST {identity}` with `{{\"type\":\"refresh\",\"refresh_token\":\"...\"}}` gives a new assertion and a \
         new refresh token; each refresh token works once (using one twice ends them all). `POST {}` with `token=...` revokes an \
         access token, or a refresh token with everything issued with it.\n\n",
        site.url(Endpoint::OAuth2Revoke)
    );
    md += "## Errors\n\nRegistration errors are JSON `{\"error\", \"message\", \"error_description\"}`; the token endpoint's are RFC 6749's.\n\n";
    md += "| status | error | meaning |\n|---|---|---|\n";
    for (status, code, meaning) in ERRORS {
        md += &format!("| {status} | `{code}` | {meaning} |\n");
    }
    md += "\n";
    md
}
