//! The v0.1 fields of discovery (SPEC.md 2): the `agent_auth` block of the
//! authorization server metadata and the v0.1 steps of `/auth.md`, from the
//! live configuration. The shared shell is `discovery`.

use serde_json::{Map, Value, json};

use super::{ID_JAG_ASSERTION_TYPE, VERIFIED_EMAIL_ASSERTION_TYPE};
use crate::core::Config;
use crate::words::count;

/// v0.1's members of the `agent_auth` block (SPEC-v0.7 2.2, 2.3): its
/// URLs and the `anonymous` object; `identity_assertion` gets
/// `credential_types_supported`. Returns the assertion types only v0.1
/// takes (`verified_email`, while it is on).
pub fn agent_auth_members(config: &Config, agent_auth: &mut Map<String, Value>) -> Vec<&'static str> {
    let site = &config.site;
    let available = config.available();
    agent_auth.insert("register_uri".into(), json!(site.register_uri));
    agent_auth.insert("claim_uri".into(), json!(site.claim_uri));
    agent_auth.insert("revocation_uri".into(), json!(site.revocation_uri));
    if available.anonymous {
        agent_auth.insert("anonymous".into(), json!({ "credential_types_supported": ["api_key"] }));
    }
    if available.verified_email {
        vec![VERIFIED_EMAIL_ASSERTION_TYPE]
    } else {
        vec![]
    }
}

/// `identity_assertion.credential_types_supported`, a v0.1 member.
pub const CREDENTIAL_TYPES: [&str; 2] = ["access_token", "api_key"];

/// The error codes an agent may meet, for the table in `/auth.md`.
pub(crate) const ERRORS: &[(&str, &str, &str)] = &[
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
    (
        "503",
        "temporarily_unavailable",
        "the database is briefly unreachable: wait the seconds in Retry-After, then retry",
    ),
    ("5xx", "server_error", "retry later with backoff"),
];

/// The steps of `/auth.md` from picking a method on: how to register,
/// claim, use and lose a credential in this generation, and its errors.
pub fn recipe(config: &Config) -> String {
    let (settings, site) = (&config.settings, &config.site);
    let available = config.available();
    let scopes = code_list;
    let mut md = String::new();
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

/// `a`, `b` as Markdown code, comma-separated.
pub fn code_list(list: &[String]) -> String {
    list.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

fn human_secs(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => count(s / 86_400, "day"),
        s if s % 3600 == 0 => count(s / 3600, "hour"),
        s if s % 60 == 0 => count(s / 60, "minute"),
        s => count(s, "second"),
    }
}
