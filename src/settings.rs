//! Every operator setting, defined once in [`DEFS`]: key, kind, default and
//! meaning. That one table drives `config list`, validation of `config set`,
//! the "valid keys are" message, and the typed [`Settings`] the flows read.
//!
//! Settings live in the database (`store::settings`), so the one file is the
//! whole state; a running server reloads them every second
//! (`http::server`'s settings thread, `reload_settings`).

use std::collections::BTreeMap;

use crate::url::HttpUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// An RFC 5322 mailbox such as `authmd <no-reply@example.com>`.
    Mailbox,
    /// An absolute http(s) URL; with `optional`, may be unset.
    Url {
        optional: bool,
    },
    Bool,
    Number {
        min: u64,
        max: u64,
    },
    /// Space-separated scope names.
    Scopes,
    /// One scope name.
    Scope,
    /// A credential prefix such as `authmd_sk_`.
    Prefix,
    /// A file path; may be unset.
    Path,
    /// A shared secret, stored as its SHA-256 and never shown again.
    Secret,
}

pub struct Def {
    pub key: &'static str,
    pub kind: Kind,
    /// `None`: unset, or derived from another value (see `doc`).
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const SECS: Kind = Kind::Number {
    min: 1,
    max: 10 * 365 * 86_400,
};
const COUNT: Kind = Kind::Number { min: 1, max: 1_000_000 };
const LIMIT: Kind = Kind::Number {
    min: 0,
    max: 1_000_000_000,
};

/// Every setting's key, in the order of [`DEFS`].
pub fn keys() -> impl Iterator<Item = &'static str> {
    DEFS.iter().map(|d| d.key)
}

pub const DEFS: &[Def] = &[
    Def {
        key: "resource_name",
        kind: Kind::Text,
        default: Some("API"),
        doc: "name of the API, shown to agents and users",
    },
    Def {
        key: "resource_logo_uri",
        kind: Kind::Url { optional: true },
        default: None,
        doc: "logo URL for the protected resource metadata",
    },
    Def {
        key: "resource",
        kind: Kind::Url { optional: true },
        default: None,
        doc: "canonical API URL; unset: <base-url>/api/",
    },
    Def {
        key: "scopes_supported",
        kind: Kind::Scopes,
        default: Some("api.read api.write"),
        doc: "every scope this API knows",
    },
    Def {
        key: "pre_claim_scopes",
        kind: Kind::Scopes,
        default: Some("api.read"),
        doc: "scopes of an unclaimed anonymous key",
    },
    Def {
        key: "post_claim_scopes",
        kind: Kind::Scopes,
        default: Some("api.read api.write"),
        doc: "scopes after the user claims",
    },
    Def {
        key: "id_jag_scopes",
        kind: Kind::Scopes,
        default: None,
        doc: "scopes granted to ID-JAG credentials; unset: scopes_supported",
    },
    Def {
        key: "read_scope",
        kind: Kind::Scope,
        default: Some("api.read"),
        doc: "scope needed for GET, HEAD and OPTIONS on the API",
    },
    Def {
        key: "write_scope",
        kind: Kind::Scope,
        default: Some("api.write"),
        doc: "scope needed for other methods on the API",
    },
    Def {
        key: "access_token_ttl_secs",
        kind: SECS,
        default: Some("3600"),
        doc: "lifetime of access tokens",
    },
    Def {
        key: "registration_ttl_secs",
        kind: SECS,
        default: Some("86400"),
        doc: "how long an unclaimed registration lives",
    },
    Def {
        key: "claim_attempt_ttl_secs",
        kind: SECS,
        default: Some("600"),
        doc: "lifetime of a claim link",
    },
    Def {
        key: "otp_ttl_secs",
        kind: SECS,
        default: Some("600"),
        doc: "lifetime of a one-time code",
    },
    Def {
        key: "assertion_ttl_secs",
        kind: SECS,
        default: Some("3600"),
        doc: "lifetime of the identity assertions authmd signs (v0.7)",
    },
    Def {
        key: "refresh_token_ttl_secs",
        kind: SECS,
        default: Some("2592000"),
        doc: "lifetime of a refresh token (v0.7)",
    },
    Def {
        key: "session_ttl_secs",
        kind: SECS,
        default: Some("86400"),
        doc: "lifetime of a sign-in session; use does not extend it (v0.7)",
    },
    Def {
        key: "signin_code_ttl_secs",
        kind: SECS,
        default: Some("600"),
        doc: "lifetime of a sign-in code (v0.7)",
    },
    Def {
        key: "clock_skew_secs",
        kind: Kind::Number { min: 0, max: 3600 },
        default: Some("60"),
        doc: "tolerated clock difference with providers",
    },
    Def {
        key: "otp_max_failures",
        kind: COUNT,
        default: Some("5"),
        doc: "wrong codes before a code is burned",
    },
    Def {
        key: "claim_max_failures",
        kind: COUNT,
        default: Some("20"),
        doc: "wrong codes before a registration is locked",
    },
    Def {
        key: "signin_max_failures",
        kind: COUNT,
        default: Some("5"),
        doc: "wrong codes before a sign-in code is burned (v0.7)",
    },
    Def {
        key: "v0_1_enabled",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "serve the first generation (SPEC.md: /agent/auth...)",
    },
    Def {
        key: "v0_7_enabled",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "serve the current generation (SPEC-v0.7.md: /agent/identity, /oauth2/token...)",
    },
    Def {
        key: "anonymous_enabled",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "allow anonymous registration",
    },
    Def {
        key: "id_jag_enabled",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "allow ID-JAG registration",
    },
    Def {
        key: "verified_email_enabled",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "allow verified-email registration",
    },
    Def {
        key: "service_auth_enabled",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "allow service_auth registration (v0.7)",
    },
    Def {
        key: "jit_provisioning",
        kind: Kind::Bool,
        default: Some("true"),
        doc: "create unknown users on first ID-JAG",
    },
    Def {
        key: "api_key_prefix",
        kind: Kind::Prefix,
        default: Some("authmd_sk_"),
        doc: "prefix of new API keys",
    },
    Def {
        key: "access_token_prefix",
        kind: Kind::Prefix,
        default: Some("authmd_at_"),
        doc: "prefix of new access tokens",
    },
    Def {
        key: "refresh_token_prefix",
        kind: Kind::Prefix,
        default: Some("authmd_rt_"),
        doc: "prefix of new refresh tokens (v0.7)",
    },
    Def {
        key: "max_assertion_lifetime_secs",
        kind: SECS,
        default: Some("3600"),
        doc: "longest exp - iat accepted in an ID-JAG",
    },
    Def {
        key: "id_jag_max_auth_age_secs",
        kind: SECS,
        default: Some("3600"),
        doc: "longest now - auth_time accepted in an ID-JAG (v0.7)",
    },
    Def {
        key: "mail_from",
        kind: Kind::Mailbox,
        default: Some("authmd <no-reply@localhost>"),
        doc: "sender of claim emails",
    },
    Def {
        key: "mail_max_attempts",
        kind: COUNT,
        default: Some("8"),
        doc: "delivery attempts before a message is abandoned",
    },
    Def {
        key: "mail_retry_base_secs",
        kind: SECS,
        default: Some("5"),
        doc: "first retry delay; doubles each time",
    },
    Def {
        key: "gateway_max_body_bytes",
        kind: Kind::Number { min: 1, max: 1 << 30 },
        default: Some("10485760"),
        doc: "largest request body the gateway forwards",
    },
    Def {
        key: "upstream_timeout_secs",
        kind: Kind::Number { min: 1, max: 3600 },
        default: Some("30"),
        doc: "gateway upstream timeout",
    },
    Def {
        key: "rate_limit.anonymous.per_ip",
        kind: LIMIT,
        default: Some("5"),
        doc: "anonymous registrations per IP per window (0: no limit)",
    },
    Def {
        key: "rate_limit.anonymous.global",
        kind: LIMIT,
        default: Some("100"),
        doc: "anonymous registrations per window",
    },
    Def {
        key: "rate_limit.identity_assertion.per_ip",
        kind: LIMIT,
        default: Some("60"),
        doc: "ID-JAG requests per IP per window",
    },
    Def {
        key: "rate_limit.identity_assertion.global",
        kind: LIMIT,
        default: Some("1000"),
        doc: "ID-JAG requests per window",
    },
    Def {
        key: "rate_limit.verified_email.per_ip",
        kind: LIMIT,
        default: Some("5"),
        doc: "calls that send mail (verified-email registrations, /agent/auth/claim) per IP per window",
    },
    Def {
        key: "rate_limit.verified_email.global",
        kind: LIMIT,
        default: Some("100"),
        doc: "calls that send mail (verified-email registrations, /agent/auth/claim) per window",
    },
    Def {
        key: "rate_limit.claim.per_ip",
        kind: LIMIT,
        default: Some("30"),
        doc: "claim requests (/agent/auth/claim, the page's reject form) per IP per window",
    },
    Def {
        key: "rate_limit.claim.global",
        kind: LIMIT,
        default: Some("1000"),
        doc: "claim requests (/agent/auth/claim, the page's reject form) per window",
    },
    Def {
        key: "rate_limit.claim_code.per_ip",
        kind: LIMIT,
        default: Some("30"),
        doc: "code requests (challenge, the page's button, /complete) per IP per window",
    },
    Def {
        key: "rate_limit.claim_code.global",
        kind: LIMIT,
        default: Some("1000"),
        doc: "code requests (challenge, the page's button, /complete) per window",
    },
    Def {
        key: "rate_limit.service_auth.per_ip",
        kind: LIMIT,
        default: Some("5"),
        doc: "service_auth registrations per IP per window",
    },
    Def {
        key: "rate_limit.service_auth.global",
        kind: LIMIT,
        default: Some("100"),
        doc: "service_auth registrations per window",
    },
    Def {
        key: "rate_limit.signin.per_ip",
        kind: LIMIT,
        default: Some("5"),
        doc: "sign-in requests (POST /login) per IP per window",
    },
    Def {
        key: "rate_limit.signin.per_email",
        kind: LIMIT,
        default: Some("5"),
        doc: "sign-in requests (POST /login) per address typed, known or not, per window",
    },
    Def {
        key: "rate_limit.signin.global",
        kind: LIMIT,
        default: Some("100"),
        doc: "sign-in requests (POST /login) per window",
    },
    Def {
        key: "rate_limit.token.per_ip",
        kind: LIMIT,
        default: Some("600"),
        doc: "token requests (/oauth2/token, type refresh, /oauth2/revoke) per IP per window",
    },
    Def {
        key: "rate_limit.token.global",
        kind: LIMIT,
        default: Some("0"),
        doc: "token requests (/oauth2/token, type refresh, /oauth2/revoke) per window (default 0: no limit)",
    },
    Def {
        key: "rate_limit.window_secs",
        kind: SECS,
        default: Some("3600"),
        doc: "length of the rate-limit window (sliding on SQLite; on PostgreSQL fixed, begun by a client's first request)",
    },
    Def {
        key: "audit_retention_days",
        kind: Kind::Number { min: 0, max: 100 * 365 },
        default: None,
        doc: "audit events older than this many days are deleted by the sweeper; unset or 0: kept forever",
    },
    Def {
        key: "auth_md_path",
        kind: Kind::Path,
        default: None,
        doc: "serve this file as /auth.md; unset: render from settings",
    },
    Def {
        key: "introspection_secret",
        kind: Kind::Secret,
        default: None,
        doc: "bearer secret for /oauth/introspect; unset: disabled",
    },
];

pub fn def(key: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.key == key)
}

fn unknown_key(key: &str) -> String {
    let keys: Vec<&str> = DEFS.iter().map(|d| d.key).collect();
    format!("unknown setting `{key}`; valid keys are: {}", keys.join(", "))
}

/// Checks one value against its key's kind and returns the form to store
/// (secrets are hashed here, so plaintext never reaches the database). An
/// empty value means "back to the default".
pub fn normalize(key: &str, value: &str) -> Result<Option<String>, String> {
    let def = def(key).ok_or_else(|| unknown_key(key))?;
    if value.is_empty() {
        return Ok(None);
    }
    let bad = |expected: &str| format!("`{key}` must be {expected}");
    let stored = match def.kind {
        Kind::Text => {
            if value.chars().any(char::is_control) || value.chars().count() > 200 {
                return Err(bad("text of at most 200 characters without control characters"));
            }
            value.to_string()
        }
        Kind::Mailbox => {
            value
                .parse::<lettre::message::Mailbox>()
                .map_err(|_| bad("a mailbox such as `Example <no-reply@example.com>`"))?;
            value.to_string()
        }
        Kind::Url { .. } => {
            HttpUrl::parse(value).map_err(|why| format!("`{key}`: {why}"))?;
            value.to_string()
        }
        Kind::Bool => match value {
            "true" | "yes" | "on" | "1" => "true".into(),
            "false" | "no" | "off" | "0" => "false".into(),
            _ => return Err(bad("true or false")),
        },
        Kind::Number { min, max } => match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n.to_string(),
            _ => return Err(bad(&format!("a whole number from {min} to {max}"))),
        },
        Kind::Scopes => {
            let scopes: Vec<&str> = value.split_whitespace().collect();
            if let Some(scope) = scopes.iter().find(|s| !is_scope_name(s)) {
                return Err(format!(
                    "`{key}`: `{scope}` is not a scope name (letters, digits and . _ : / - only)"
                ));
            }
            scopes.join(" ")
        }
        Kind::Scope => {
            if !is_scope_name(value) {
                return Err(bad("one scope name (letters, digits and . _ : / - only)"));
            }
            value.to_string()
        }
        Kind::Prefix => {
            let ok = (2..=32).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && value.bytes().any(|b| b.is_ascii_lowercase());
            if !ok {
                return Err(bad("2 to 32 of a-z, 0-9 and _, such as `myapi_sk_`"));
            }
            value.to_string()
        }
        Kind::Path => {
            if value.chars().any(char::is_control) {
                return Err(bad("a file path"));
            }
            value.to_string()
        }
        Kind::Secret => {
            if value.len() < 16 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad("at least 16 characters without spaces"));
            }
            hex(&crate::secrets::hash(value))
        }
    };
    Ok(Some(stored))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_scope_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_/-".contains(&b))
}

/// How a stored value is shown by `config list` and `config get`.
pub fn display(key: &str, stored: &str) -> String {
    match def(key).map(|d| d.kind) {
        Some(Kind::Secret) => "(set; stored hashed)".into(),
        _ => stored.to_string(),
    }
}

/// `audit_retention_days` straight from the stored rows, for the sweeper,
/// which reads it in its own transaction rather than the server's loaded
/// settings; `None`: unset, 0 or unreadable (keep everything).
pub fn audit_retention_days(stored: &BTreeMap<String, String>) -> Option<u64> {
    stored
        .get("audit_retention_days")
        .and_then(|days| days.parse::<u64>().ok())
        .filter(|&days| days > 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_ip: u64,
    pub global: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub anonymous: Limit,
    pub identity_assertion: Limit,
    pub verified_email: Limit,
    pub claim: Limit,
    pub claim_code: Limit,
    pub service_auth: Limit,
    pub signin: Limit,
    /// `signin`'s third tier, per address typed. A field beside `signin`
    /// rather than a third member of [`Limit`]: only this bucket has it, so
    /// every other bucket keeps the two tiers it really has, and the
    /// per-address count has its own entry point (`Limiter::check_signin`).
    pub signin_per_email: u64,
    pub token: Limit,
    pub window_secs: u64,
}

/// The typed settings of one moment. Build with [`Settings::from_stored`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub resource_name: String,
    /// Whether the operator set `resource_name`: its default ("API") names
    /// no service a person would recognise, so pages show the base URL's
    /// host instead while it is unset (`http::pages::Brand`).
    pub resource_name_set: bool,
    pub resource_logo_uri: Option<String>,
    /// The configured resource URL; see `Site::resource` for the effective one.
    pub resource: Option<String>,
    pub scopes_supported: Vec<String>,
    pub pre_claim_scopes: Vec<String>,
    pub post_claim_scopes: Vec<String>,
    pub id_jag_scopes: Vec<String>,
    pub read_scope: String,
    pub write_scope: String,
    pub access_token_ttl_secs: u64,
    pub registration_ttl_secs: u64,
    pub claim_attempt_ttl_secs: u64,
    pub otp_ttl_secs: u64,
    pub assertion_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub session_ttl_secs: u64,
    pub signin_code_ttl_secs: u64,
    pub clock_skew_secs: u64,
    pub otp_max_failures: u64,
    pub claim_max_failures: u64,
    pub signin_max_failures: u64,
    pub v0_1_enabled: bool,
    pub v0_7_enabled: bool,
    pub anonymous_enabled: bool,
    pub id_jag_enabled: bool,
    pub verified_email_enabled: bool,
    pub service_auth_enabled: bool,
    pub jit_provisioning: bool,
    pub api_key_prefix: String,
    pub access_token_prefix: String,
    pub refresh_token_prefix: String,
    pub max_assertion_lifetime_secs: u64,
    pub id_jag_max_auth_age_secs: u64,
    pub mail_from: String,
    pub mail_max_attempts: u64,
    pub mail_retry_base_secs: u64,
    pub gateway_max_body_bytes: u64,
    pub upstream_timeout_secs: u64,
    pub rate_limits: RateLimits,
    /// Days audit events are kept; `None` (unset or 0): forever.
    pub audit_retention_days: Option<u64>,
    pub auth_md_path: Option<String>,
    /// Hex SHA-256 of the introspection secret.
    pub introspection_secret_hash: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::from_stored(&BTreeMap::new()).expect("the defaults are valid")
    }
}

impl Settings {
    /// Builds the typed settings from the stored key/value rows (missing keys
    /// take their defaults), checking every value and their consistency.
    pub fn from_stored(stored: &BTreeMap<String, String>) -> Result<Settings, String> {
        if let Some(key) = stored.keys().find(|k| def(k).is_none()) {
            return Err(unknown_key(key));
        }
        let raw = |key: &str| -> Result<Option<String>, String> {
            match stored.get(key) {
                // Stored values were normalised on the way in; checking again
                // catches a hand-edited database instead of misreading it.
                Some(value) if def(key).map(|d| d.kind) == Some(Kind::Secret) => Ok(Some(value.clone())),
                Some(value) => normalize(key, value),
                None => Ok(def(key).and_then(|d| d.default).map(str::to_string)),
            }
        };
        let text = |key: &str| -> Result<String, String> { Ok(raw(key)?.unwrap_or_default()) };
        let number =
            |key: &str| -> Result<u64, String> { text(key)?.parse().map_err(|_| format!("`{key}` is not a number")) };
        let flag = |key: &str| -> Result<bool, String> { Ok(text(key)? == "true") };
        let scopes = |key: &str| -> Result<Vec<String>, String> {
            Ok(text(key)?.split_whitespace().map(str::to_string).collect())
        };
        let limit = |flow: &str| -> Result<Limit, String> {
            Ok(Limit {
                per_ip: number(&format!("rate_limit.{flow}.per_ip"))?,
                global: number(&format!("rate_limit.{flow}.global"))?,
            })
        };
        let scopes_supported = scopes("scopes_supported")?;
        let id_jag_scopes = match raw("id_jag_scopes")? {
            Some(_) => scopes("id_jag_scopes")?,
            None => scopes_supported.clone(),
        };
        let settings = Settings {
            resource_name: text("resource_name")?,
            resource_name_set: stored.contains_key("resource_name"),
            resource_logo_uri: raw("resource_logo_uri")?,
            resource: raw("resource")?,
            scopes_supported,
            pre_claim_scopes: scopes("pre_claim_scopes")?,
            post_claim_scopes: scopes("post_claim_scopes")?,
            id_jag_scopes,
            read_scope: text("read_scope")?,
            write_scope: text("write_scope")?,
            access_token_ttl_secs: number("access_token_ttl_secs")?,
            registration_ttl_secs: number("registration_ttl_secs")?,
            claim_attempt_ttl_secs: number("claim_attempt_ttl_secs")?,
            otp_ttl_secs: number("otp_ttl_secs")?,
            assertion_ttl_secs: number("assertion_ttl_secs")?,
            refresh_token_ttl_secs: number("refresh_token_ttl_secs")?,
            session_ttl_secs: number("session_ttl_secs")?,
            signin_code_ttl_secs: number("signin_code_ttl_secs")?,
            clock_skew_secs: number("clock_skew_secs")?,
            otp_max_failures: number("otp_max_failures")?,
            claim_max_failures: number("claim_max_failures")?,
            signin_max_failures: number("signin_max_failures")?,
            v0_1_enabled: flag("v0_1_enabled")?,
            v0_7_enabled: flag("v0_7_enabled")?,
            anonymous_enabled: flag("anonymous_enabled")?,
            id_jag_enabled: flag("id_jag_enabled")?,
            verified_email_enabled: flag("verified_email_enabled")?,
            service_auth_enabled: flag("service_auth_enabled")?,
            jit_provisioning: flag("jit_provisioning")?,
            api_key_prefix: text("api_key_prefix")?,
            access_token_prefix: text("access_token_prefix")?,
            refresh_token_prefix: text("refresh_token_prefix")?,
            max_assertion_lifetime_secs: number("max_assertion_lifetime_secs")?,
            id_jag_max_auth_age_secs: number("id_jag_max_auth_age_secs")?,
            mail_from: text("mail_from")?,
            mail_max_attempts: number("mail_max_attempts")?,
            mail_retry_base_secs: number("mail_retry_base_secs")?,
            gateway_max_body_bytes: number("gateway_max_body_bytes")?,
            upstream_timeout_secs: number("upstream_timeout_secs")?,
            rate_limits: RateLimits {
                anonymous: limit("anonymous")?,
                identity_assertion: limit("identity_assertion")?,
                verified_email: limit("verified_email")?,
                claim: limit("claim")?,
                claim_code: limit("claim_code")?,
                service_auth: limit("service_auth")?,
                signin: limit("signin")?,
                signin_per_email: number("rate_limit.signin.per_email")?,
                token: limit("token")?,
                window_secs: number("rate_limit.window_secs")?,
            },
            // Checked like every value, then read as the sweeper reads it.
            audit_retention_days: raw("audit_retention_days").map(|_| audit_retention_days(stored))?,
            auth_md_path: raw("auth_md_path")?,
            introspection_secret_hash: raw("introspection_secret")?,
        };
        settings.check_consistency()?;
        Ok(settings)
    }

    /// Rules between settings: every scope handed out must be a supported
    /// one, and the three credential prefixes must tell the types apart.
    fn check_consistency(&self) -> Result<(), String> {
        if self.scopes_supported.is_empty() {
            return Err("`scopes_supported` must name at least one scope".into());
        }
        let supported = |scope: &String| self.scopes_supported.contains(scope);
        for (key, list) in [
            ("pre_claim_scopes", &self.pre_claim_scopes),
            ("post_claim_scopes", &self.post_claim_scopes),
            ("id_jag_scopes", &self.id_jag_scopes),
        ] {
            if let Some(scope) = list.iter().find(|s| !supported(s)) {
                return Err(format!(
                    "`{key}` names `{scope}`, which is not in `scopes_supported` ({})",
                    self.scopes_supported.join(" ")
                ));
            }
        }
        for (key, scope) in [("read_scope", &self.read_scope), ("write_scope", &self.write_scope)] {
            if !supported(scope) {
                return Err(format!(
                    "`{key}` is `{scope}`, which is not in `scopes_supported` ({})",
                    self.scopes_supported.join(" ")
                ));
            }
        }
        let prefixes = [
            ("api_key_prefix", &self.api_key_prefix),
            ("access_token_prefix", &self.access_token_prefix),
            ("refresh_token_prefix", &self.refresh_token_prefix),
        ];
        for (i, (key, prefix)) in prefixes.iter().enumerate() {
            for (other_key, other) in &prefixes[i + 1..] {
                if prefix.starts_with(other.as_str()) || other.starts_with(prefix.as_str()) {
                    return Err(format!(
                        "`{key}` and `{other_key}` must differ, and neither may start with the other"
                    ));
                }
            }
        }
        if let Some(resource) = &self.resource {
            let url = HttpUrl::parse(resource)?;
            if url.path == "/" || url.path.contains('?') {
                return Err(
                    "`resource` must have a path such as /api/ and no query: the whole site cannot be the guarded API"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let mut stored = BTreeMap::new();
        for (key, value) in pairs {
            if let Some(v) = normalize(key, value)? {
                stored.insert(key.to_string(), v);
            }
        }
        Settings::from_stored(&stored)
    }

    /// Issue 15: "API" set by the operator is their choice; the default is not.
    #[test]
    fn an_unset_resource_name_is_told_from_one_set_to_its_default() {
        let unset = Settings::default();
        assert_eq!((unset.resource_name.as_str(), unset.resource_name_set), ("API", false));
        let set = with(&[("resource_name", "API")]).unwrap();
        assert_eq!((set.resource_name.as_str(), set.resource_name_set), ("API", true));
        assert!(with(&[("resource_name", "Hobby Notes")]).unwrap().resource_name_set);
        assert!(
            !with(&[("resource_name", "")]).unwrap().resource_name_set,
            "empty resets"
        );
    }

    #[test]
    fn defaults_match_the_design_table() {
        let s = Settings::default();
        assert_eq!(s.resource_name, "API");
        assert_eq!(s.scopes_supported, ["api.read", "api.write"]);
        assert_eq!(s.pre_claim_scopes, ["api.read"]);
        assert_eq!(s.id_jag_scopes, s.scopes_supported);
        assert_eq!(s.registration_ttl_secs, 86_400);
        assert_eq!(s.rate_limits.anonymous, Limit { per_ip: 5, global: 100 });
        assert_eq!(
            s.rate_limits.claim,
            Limit {
                per_ip: 30,
                global: 1000
            }
        );
        assert_eq!(s.rate_limits.claim_code, s.rate_limits.claim);
        assert_eq!(s.api_key_prefix, "authmd_sk_");
        assert!(s.anonymous_enabled && s.jit_provisioning);
        assert_eq!(s.introspection_secret_hash, None);
    }

    /// Issue 15: audit retention is off unless set; 0 is off too.
    #[test]
    fn audit_retention_is_off_by_default_and_checked() {
        assert_eq!(Settings::default().audit_retention_days, None);
        assert_eq!(
            with(&[("audit_retention_days", "0")]).unwrap().audit_retention_days,
            None
        );
        assert_eq!(
            with(&[("audit_retention_days", "90")]).unwrap().audit_retention_days,
            Some(90)
        );
        for bad in ["-1", "ninety", "36501", "1.5"] {
            let err = normalize("audit_retention_days", bad).unwrap_err();
            assert!(err.contains("whole number from 0 to 36500"), "{bad}: {err}");
        }
    }

    #[test]
    fn v0_7_defaults_match_the_spec_table() {
        let s = Settings::default();
        assert!(s.v0_1_enabled && s.v0_7_enabled && s.service_auth_enabled);
        assert_eq!(s.id_jag_max_auth_age_secs, 3600);
        assert_eq!(s.assertion_ttl_secs, 3600);
        assert_eq!(s.refresh_token_ttl_secs, 2_592_000);
        assert_eq!(s.refresh_token_prefix, "authmd_rt_");
        assert_eq!(s.session_ttl_secs, 86_400);
        assert_eq!(s.signin_code_ttl_secs, 600);
        assert_eq!(s.signin_max_failures, 5);
        let limits = &s.rate_limits;
        assert_eq!(limits.service_auth, Limit { per_ip: 5, global: 100 });
        assert_eq!(limits.signin, Limit { per_ip: 5, global: 100 });
        assert_eq!(limits.signin_per_email, 5);
        assert_eq!(limits.token, Limit { per_ip: 600, global: 0 });
        let s = with(&[
            ("v0_1_enabled", "off"),
            ("rate_limit.signin.per_email", "0"),
            ("rate_limit.token.global", "7"),
        ])
        .unwrap();
        assert!(!s.v0_1_enabled && s.v0_7_enabled);
        assert_eq!(s.rate_limits.signin_per_email, 0);
        assert_eq!(s.rate_limits.token.global, 7);
        assert!(normalize("signin_max_failures", "0").is_err(), "a count, not a limit");
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let err = normalize("registration_ttl", "5").unwrap_err();
        assert!(err.contains("unknown setting `registration_ttl`"), "{err}");
        assert!(err.contains("registration_ttl_secs"), "{err}");
    }

    #[test]
    fn ill_typed_values_say_what_is_valid() {
        assert!(
            normalize("registration_ttl_secs", "soon")
                .unwrap_err()
                .contains("whole number from 1")
        );
        assert!(normalize("registration_ttl_secs", "0").is_err());
        for key in [
            "anonymous_enabled",
            "v0_1_enabled",
            "v0_7_enabled",
            "service_auth_enabled",
        ] {
            assert!(normalize(key, "maybe").unwrap_err().contains("true or false"), "{key}");
        }
        assert!(normalize("refresh_token_prefix", "authmd-rt").is_err());
        assert!(normalize("resource", "api.example.com").is_err());
        assert!(normalize("api_key_prefix", "Bad-Prefix").is_err());
        assert!(normalize("scopes_supported", "api.read a\"b").is_err());
        assert!(normalize("mail_from", "not a mailbox").is_err());
        assert_eq!(normalize("anonymous_enabled", "off").unwrap().as_deref(), Some("false"));
        assert_eq!(normalize("scopes_supported", " a  b ").unwrap().as_deref(), Some("a b"));
    }

    #[test]
    fn scopes_handed_out_must_be_supported() {
        let err = with(&[("scopes_supported", "api.read")]).unwrap_err();
        assert!(err.contains("post_claim_scopes"), "{err}");
        assert!(with(&[("pre_claim_scopes", "admin")]).is_err());
        assert!(with(&[("read_scope", "admin")]).is_err());
        let s = with(&[
            ("scopes_supported", "a b c"),
            ("id_jag_scopes", "c"),
            ("pre_claim_scopes", "a"),
            ("post_claim_scopes", "a b"),
            ("read_scope", "a"),
            ("write_scope", "b"),
        ])
        .unwrap();
        assert_eq!(s.id_jag_scopes, ["c"]);
    }

    #[test]
    fn prefixes_must_tell_credential_types_apart() {
        assert!(with(&[("api_key_prefix", "authmd_at_")]).is_err());
        assert!(with(&[("api_key_prefix", "authmd_")]).is_err());
        assert!(with(&[("api_key_prefix", "hobby_sk_")]).is_ok());
        // All three pairwise, the refresh token's included.
        for (key, value, other) in [
            ("refresh_token_prefix", "authmd_sk_", "api_key_prefix"),
            ("refresh_token_prefix", "authmd_at_", "access_token_prefix"),
            ("refresh_token_prefix", "authmd_at_x", "access_token_prefix"),
            ("refresh_token_prefix", "authmd_", "api_key_prefix"),
            ("access_token_prefix", "authmd_rt_", "refresh_token_prefix"),
        ] {
            let err = with(&[(key, value)]).unwrap_err();
            assert!(err.contains("must differ"), "{key}={value}: {err}");
            assert!(err.contains(&format!("`{other}`")), "{key}={value}: {err}");
        }
        assert!(with(&[("refresh_token_prefix", "hobby_rt_")]).is_ok());
    }

    #[test]
    fn secrets_are_stored_hashed() {
        let stored = normalize("introspection_secret", "correct horse battery").unwrap_err();
        assert!(stored.contains("without spaces"));
        let stored = normalize("introspection_secret", "0123456789abcdefXYZ")
            .unwrap()
            .unwrap();
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains("0123456789abcdef"));
        assert_eq!(display("introspection_secret", &stored), "(set; stored hashed)");
    }

    #[test]
    fn empty_value_means_default_and_whole_site_resource_is_refused() {
        assert_eq!(normalize("resource_name", "").unwrap(), None);
        assert!(with(&[("resource", "https://x.example/")]).is_err());
        assert!(with(&[("resource", "https://x.example/v1/")]).is_ok());
    }
}
