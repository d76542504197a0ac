//! The nouns of the protocol, shared by flows, store and commands, each with
//! its one database spelling and its one wire spelling.

use std::fmt;

/// The protocol generation a registration belongs to (SPEC-v0.7 1): its
/// claim token, assertions and refresh tokens work only on that
/// generation's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Generation {
    V0_1,
    V0_7,
}

impl Generation {
    pub fn as_db(self) -> &'static str {
        match self {
            Generation::V0_1 => "v0.1",
            Generation::V0_7 => "v0.7",
        }
    }

    pub fn from_db(text: &str) -> Option<Generation> {
        [Generation::V0_1, Generation::V0_7]
            .into_iter()
            .find(|g| g.as_db() == text)
    }
}

/// How a registration came to be (SPEC.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationKind {
    Anonymous,
    AgentProvider,
    EmailVerification,
    /// SPEC-v0.7 4.2: for a person who signs in at the service and confirms.
    ServiceAuth,
}

impl RegistrationKind {
    pub fn as_db(self) -> &'static str {
        match self {
            RegistrationKind::Anonymous => "anonymous",
            RegistrationKind::AgentProvider => "agent_provider",
            RegistrationKind::EmailVerification => "email_verification",
            RegistrationKind::ServiceAuth => "service_auth",
        }
    }

    /// `registration_type` on the wire.
    pub fn as_wire(self) -> &'static str {
        match self {
            RegistrationKind::Anonymous => "anonymous",
            RegistrationKind::AgentProvider => "agent-provider",
            RegistrationKind::EmailVerification => "email-verification",
            RegistrationKind::ServiceAuth => "service_auth",
        }
    }

    pub fn from_db(text: &str) -> Option<RegistrationKind> {
        [
            RegistrationKind::Anonymous,
            RegistrationKind::AgentProvider,
            RegistrationKind::EmailVerification,
            RegistrationKind::ServiceAuth,
        ]
        .into_iter()
        .find(|k| k.as_db() == text)
    }
}

/// Registration status, SPEC.md 5.7.
///
/// ```text
///   anonymous:       unclaimed ──/claim──▶ pending_claim ──/complete──▶ claimed
///                        │  ▲                  │   │
///                        │  └──"wasn't me"─────┘   └──20 wrong codes──▶ locked
///                        └──TTL──▶ expired
///   verified email:  pending_claim ──/complete──▶ claimed   ("wasn't me" ▶ rejected)
///   ID-JAG:          active
///   any live status ──provider or operator──▶ revoked
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Unclaimed,
    PendingClaim,
    Claimed,
    Expired,
    Rejected,
    Locked,
    Revoked,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Active,
        Status::Unclaimed,
        Status::PendingClaim,
        Status::Claimed,
        Status::Expired,
        Status::Rejected,
        Status::Locked,
        Status::Revoked,
    ];

    /// Statuses whose credentials may authenticate (and that can be revoked).
    pub const LIVE: [Status; 4] = [Status::Active, Status::Unclaimed, Status::PendingClaim, Status::Claimed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Unclaimed => "unclaimed",
            Status::PendingClaim => "pending_claim",
            Status::Claimed => "claimed",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::Locked => "locked",
            Status::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_live(self) -> bool {
        Status::LIVE.contains(&self)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SPEC.md section 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialType {
    ApiKey,
    AccessToken,
}

impl CredentialType {
    /// The same spelling on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::ApiKey => "api_key",
            CredentialType::AccessToken => "access_token",
        }
    }

    pub fn parse(text: &str) -> Option<CredentialType> {
        [CredentialType::ApiKey, CredentialType::AccessToken]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// Audit event names, SPEC.md section 8 plus authmd's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    RegistrationCreated,
    CredentialIssued,
    ClaimRequested,
    OtpGenerated,
    OtpFailed,
    ClaimConfirmed,
    ClaimRejected,
    RegistrationExpired,
    RegistrationRevoked,
    CredentialRevoked,
    ProviderAdded,
    ProviderRemoved,
    SettingChanged,
    MailFailed,
    SigningKeyRotated,
    TokenIssued,
    SigninRequested,
    SigninSucceeded,
    SigninFailed,
    ClaimConfirmedOnPage,
    RefreshTokenRotated,
    RefreshTokenReused,
}

impl EventName {
    pub const ALL: [EventName; 22] = [
        EventName::RegistrationCreated,
        EventName::CredentialIssued,
        EventName::ClaimRequested,
        EventName::OtpGenerated,
        EventName::OtpFailed,
        EventName::ClaimConfirmed,
        EventName::ClaimRejected,
        EventName::RegistrationExpired,
        EventName::RegistrationRevoked,
        EventName::CredentialRevoked,
        EventName::ProviderAdded,
        EventName::ProviderRemoved,
        EventName::SettingChanged,
        EventName::MailFailed,
        EventName::SigningKeyRotated,
        EventName::TokenIssued,
        EventName::SigninRequested,
        EventName::SigninSucceeded,
        EventName::SigninFailed,
        EventName::ClaimConfirmedOnPage,
        EventName::RefreshTokenRotated,
        EventName::RefreshTokenReused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventName::RegistrationCreated => "registration.created",
            EventName::CredentialIssued => "credential.issued",
            EventName::ClaimRequested => "claim.requested",
            EventName::OtpGenerated => "otp.generated",
            EventName::OtpFailed => "otp.failed",
            EventName::ClaimConfirmed => "claim.confirmed",
            EventName::ClaimRejected => "claim.rejected",
            EventName::RegistrationExpired => "registration.expired",
            EventName::RegistrationRevoked => "registration.revoked",
            EventName::CredentialRevoked => "credential.revoked",
            EventName::ProviderAdded => "provider.added",
            EventName::ProviderRemoved => "provider.removed",
            EventName::SettingChanged => "setting.changed",
            EventName::MailFailed => "mail.failed",
            EventName::SigningKeyRotated => "signing_key.rotated",
            EventName::TokenIssued => "token.issued",
            EventName::SigninRequested => "signin.requested",
            EventName::SigninSucceeded => "signin.succeeded",
            EventName::SigninFailed => "signin.failed",
            EventName::ClaimConfirmedOnPage => "claim.confirmed_on_page",
            EventName::RefreshTokenRotated => "refresh_token.rotated",
            EventName::RefreshTokenReused => "refresh_token.reused",
        }
    }

    pub fn parse(text: &str) -> Option<EventName> {
        EventName::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// Space-separated scopes, the form they take in the database and in OAuth.
pub fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

pub fn split_scopes(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}
