//! The URLs of one deployment, derived from the base URL and the settings:
//! the single source of every absolute URL authmd writes (SPEC.md section 2:
//! all URLs in discovery are absolute, built from the configured base URL).
//! [`Endpoint`] spells each path authmd answers once; the route table
//! (`http::routes::ROUTES`) serves them, and every URL printed in discovery,
//! pages, mail and responses is built from them here.

use crate::settings::Settings;
use crate::url::HttpUrl;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The authorization server issuer: the base URL without a trailing slash.
    pub issuer: String,
    /// The protected resource (canonical API URL).
    pub resource: String,
    /// The path under which the guarded API lives, such as `/api/`.
    pub resource_path: String,
    /// RFC 9728 metadata at the path-suffixed location for `resource`; the
    /// URL every 401 challenge points to.
    pub resource_metadata_uri: String,
    pub authorization_server_metadata_uri: String,
    pub skill_uri: String,
    pub register_uri: String,
    pub claim_uri: String,
    pub revocation_uri: String,
}

/// Every fixed path authmd answers (the guarded API lives under the
/// resource's path, from the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    /// RFC 9728, here and suffixed with the resource's path.
    ResourceMetadata,
    AuthorizationServerMetadata,
    AuthMd,
    Register,
    ProviderRevoke,
    Claim,
    ClaimView,
    ClaimReject,
    ClaimChallenge,
    ClaimComplete,
    Introspect,
    OAuthRevoke,
    /// The keys that sign authmd's own assertions (SPEC-v0.7 2.4).
    Jwks,
    /// SPEC-v0.7 4: registration of the current generation.
    Identity,
    /// SPEC-v0.7 6.1: its claim ceremony.
    IdentityClaim,
    /// SPEC-v0.7 8: RFC 7523 token endpoint.
    Token,
    /// SPEC-v0.7 10: RFC 7009, the current generation's name for `OAuthRevoke`.
    OAuth2Revoke,
    /// SPEC-v0.7 11: Security Event Tokens pushed by providers (RFC 8935).
    EventNotify,
    /// SPEC-v0.7 6.2: the page a person opens to confirm an agent.
    ClaimPage,
    /// SPEC-v0.7 7.1: signing in, by a mailed code.
    Login,
    LoginVerify,
    Logout,
    /// `GET /`: who is signed in.
    Home,
    /// SPEC-v0.7 6.2: the page's two forms.
    ClaimConfirm,
    ClaimRejectPage,
    /// SPEC-v0.7 6.4.
    IdentityClaimComplete,
    /// A signed-in person's agents (issue 15), and revoking one of them.
    AccountAgents,
    AccountAgentsRevoke,
}

impl Endpoint {
    /// Every endpoint (a test in `http::routes` checks each has its own
    /// path and a route; add a new variant here too).
    #[cfg_attr(not(test), allow(dead_code))]
    pub const ALL: [Endpoint; 31] = [
        Endpoint::Healthz,
        Endpoint::Readyz,
        Endpoint::Metrics,
        Endpoint::ResourceMetadata,
        Endpoint::AuthorizationServerMetadata,
        Endpoint::AuthMd,
        Endpoint::Register,
        Endpoint::ProviderRevoke,
        Endpoint::Claim,
        Endpoint::ClaimView,
        Endpoint::ClaimReject,
        Endpoint::ClaimChallenge,
        Endpoint::ClaimComplete,
        Endpoint::Introspect,
        Endpoint::OAuthRevoke,
        Endpoint::Jwks,
        Endpoint::Identity,
        Endpoint::IdentityClaim,
        Endpoint::Token,
        Endpoint::OAuth2Revoke,
        Endpoint::EventNotify,
        Endpoint::ClaimPage,
        Endpoint::Login,
        Endpoint::LoginVerify,
        Endpoint::Logout,
        Endpoint::Home,
        Endpoint::ClaimConfirm,
        Endpoint::ClaimRejectPage,
        Endpoint::IdentityClaimComplete,
        Endpoint::AccountAgents,
        Endpoint::AccountAgentsRevoke,
    ];

    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::Healthz => "/healthz",
            Endpoint::Readyz => "/readyz",
            Endpoint::Metrics => "/metrics",
            Endpoint::ResourceMetadata => "/.well-known/oauth-protected-resource",
            Endpoint::AuthorizationServerMetadata => "/.well-known/oauth-authorization-server",
            Endpoint::AuthMd => "/auth.md",
            Endpoint::Register => "/agent/auth",
            Endpoint::ProviderRevoke => "/agent/auth/revoke",
            Endpoint::Claim => "/agent/auth/claim",
            Endpoint::ClaimView => "/agent/auth/claim/view",
            Endpoint::ClaimReject => "/agent/auth/claim/reject",
            Endpoint::ClaimChallenge => "/agent/auth/claim/attempt/challenge",
            Endpoint::ClaimComplete => "/agent/auth/claim/complete",
            Endpoint::Introspect => "/oauth/introspect",
            Endpoint::OAuthRevoke => "/oauth/revoke",
            Endpoint::Jwks => "/.well-known/jwks.json",
            Endpoint::Identity => "/agent/identity",
            Endpoint::IdentityClaim => "/agent/identity/claim",
            Endpoint::Token => "/oauth2/token",
            Endpoint::OAuth2Revoke => "/oauth2/revoke",
            Endpoint::EventNotify => "/agent/event/notify",
            Endpoint::ClaimPage => "/claim",
            Endpoint::Login => "/login",
            Endpoint::LoginVerify => "/login/verify",
            Endpoint::Logout => "/logout",
            Endpoint::Home => "/",
            Endpoint::ClaimConfirm => "/claim/confirm",
            Endpoint::ClaimRejectPage => "/claim/reject",
            Endpoint::IdentityClaimComplete => "/agent/identity/claim/complete",
            Endpoint::AccountAgents => "/account/agents",
            Endpoint::AccountAgentsRevoke => "/account/agents/revoke",
        }
    }
}

const PRM_PATH: &str = Endpoint::ResourceMetadata.path();

impl Site {
    /// `base_url` was checked at start (`HttpUrl`, no path); `settings` were checked on load.
    pub fn new(base_url: &str, settings: &Settings) -> Site {
        let issuer = base_url.trim_end_matches('/').to_string();
        let resource = settings.resource.clone().unwrap_or_else(|| format!("{issuer}/api/"));
        let resource_path = HttpUrl::parse(&resource)
            .map(|u| u.path)
            .unwrap_or_else(|_| "/api/".into());
        Site {
            resource_metadata_uri: format!("{issuer}{PRM_PATH}{resource_path}"),
            authorization_server_metadata_uri: format!("{issuer}{}", Endpoint::AuthorizationServerMetadata.path()),
            skill_uri: format!("{issuer}{}", Endpoint::AuthMd.path()),
            register_uri: format!("{issuer}{}", Endpoint::Register.path()),
            claim_uri: format!("{issuer}{}", Endpoint::Claim.path()),
            revocation_uri: format!("{issuer}{}", Endpoint::ProviderRevoke.path()),
            resource,
            resource_path,
            issuer,
        }
    }

    /// The absolute URL of `endpoint`.
    pub fn url(&self, endpoint: Endpoint) -> String {
        format!("{}{}", self.issuer, endpoint.path())
    }

    /// The link a claim email carries (SPEC.md 5.2): the page, with the token.
    pub fn claim_link(&self, token: &str) -> String {
        format!("{}?token={token}", self.url(Endpoint::ClaimView))
    }

    /// The `verification_uri` of a v0.7 claim attempt (SPEC-v0.7 6.2).
    pub fn verification_uri(&self, attempt_token: &str) -> String {
        format!("{}{}", self.issuer, verification_path(attempt_token))
    }

    /// Is `path` (no query) under the guarded API?
    pub fn is_resource_path(&self, path: &str) -> bool {
        let prefix = self.resource_path.trim_end_matches('/');
        path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    }

    /// Is `path` one of the places the protected resource metadata is served?
    pub fn is_resource_metadata_path(&self, path: &str) -> bool {
        path == PRM_PATH
            || path
                .strip_prefix(PRM_PATH)
                .is_some_and(|rest| rest.trim_end_matches('/') == self.resource_path.trim_end_matches('/'))
    }
}

/// The path (and query) of a v0.7 claim attempt's page: its
/// `verification_uri` without the origin.
pub fn verification_path(attempt_token: &str) -> String {
    format!("{}?claim_attempt_token={attempt_token}", Endpoint::ClaimPage.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_every_url_from_the_base() {
        let site = Site::new("http://127.0.0.1:8080", &Settings::default());
        assert_eq!(site.issuer, "http://127.0.0.1:8080");
        assert_eq!(site.resource, "http://127.0.0.1:8080/api/");
        assert_eq!(
            site.resource_metadata_uri,
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/api/"
        );
        assert_eq!(site.claim_uri, "http://127.0.0.1:8080/agent/auth/claim");
        assert!(site.is_resource_path("/api/resource"));
        assert!(site.is_resource_path("/api"));
        assert!(!site.is_resource_path("/apix"));
        assert!(site.is_resource_metadata_path("/.well-known/oauth-protected-resource"));
        assert!(site.is_resource_metadata_path("/.well-known/oauth-protected-resource/api/"));
        assert!(site.is_resource_metadata_path("/.well-known/oauth-protected-resource/api"));
        assert!(!site.is_resource_metadata_path("/.well-known/oauth-protected-resource/other"));
    }
}
