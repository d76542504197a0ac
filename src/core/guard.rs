//! Bearer authentication of the guarded API (SPEC.md section 7).
//!
//! A credential authenticates when: its checksum holds (checked before any
//! database work), its hash is stored, it is neither revoked nor past its
//! expiry, its registration is live, and, while the registration is
//! unclaimed, the registration's TTL has not passed. The TTL is checked here,
//! at authentication time, so an expired registration stops working at once
//! even before the sweeper records it.

use serde_json::{Value, json};

use crate::error::Error;
use crate::model::{CredentialType, RegistrationKind, Status, split_scopes};
use crate::secrets;
use crate::store::Tx;
use crate::time::{UnixMs, rfc3339};

/// Who is calling: proof that a credential was checked. The fields are
/// private and only [`authenticate_token`] (through [`authenticate`]) builds
/// one, so code that takes a `Caller` cannot skip the check.
#[derive(Debug, Clone)]
pub struct Caller {
    credential_id: String,
    credential_type: CredentialType,
    credential_expires_ms: Option<UnixMs>,
    issued_ms: UnixMs,
    scopes: Vec<String>,
    registration_id: String,
    registration_kind: RegistrationKind,
    status: Status,
    user_id: Option<String>,
}

impl Caller {
    pub fn credential_id(&self) -> &str {
        &self.credential_id
    }

    pub fn credential_type(&self) -> CredentialType {
        self.credential_type
    }

    pub fn credential_expires_ms(&self) -> Option<UnixMs> {
        self.credential_expires_ms
    }

    pub fn issued_ms(&self) -> UnixMs {
        self.issued_ms
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }

    pub fn registration_kind(&self) -> RegistrationKind {
        self.registration_kind
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// A caller for unit tests of code that takes one (`http::gateway`).
    #[cfg(test)]
    pub(crate) fn for_tests(user_id: &str, registration_id: &str, scopes: &[&str]) -> Caller {
        Caller {
            credential_id: "cred_test".into(),
            credential_type: CredentialType::ApiKey,
            credential_expires_ms: None,
            issued_ms: UnixMs::from_millis(0),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            registration_id: registration_id.into(),
            registration_kind: RegistrationKind::Anonymous,
            status: Status::Claimed,
            user_id: Some(user_id.into()),
        }
    }

    pub fn require_scope(&self, scope: &str) -> Result<(), Error> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(Error::InsufficientScope {
                scope: scope.to_string(),
            })
        }
    }

    /// The built-in endpoint's answer: who the caller is.
    pub fn to_json(&self) -> Value {
        json!({
            "registration_id": self.registration_id,
            "registration_type": self.registration_kind.as_wire(),
            "status": self.status.as_str(),
            "user_id": self.user_id,
            "credential_type": self.credential_type.as_str(),
            "credential_expires": self.credential_expires_ms.map(rfc3339),
            "scopes": self.scopes,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, if any (RFC 6750
/// 2.1; the scheme is case-insensitive). Another scheme counts as no token.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub fn authenticate(conn: &dyn Tx, now_ms: UnixMs, authorization: Option<&str>) -> Result<Caller, Error> {
    let token = bearer_token(authorization).ok_or(Error::InvalidToken {
        presented: false,
        reason: "no bearer credential",
    })?;
    authenticate_token(conn, now_ms, token)
}

/// The credential `token`, if it is live (SPEC.md 7): for the guarded API,
/// introspection and self-revocation alike.
pub fn authenticate_token(conn: &dyn Tx, now_ms: UnixMs, token: &str) -> Result<Caller, Error> {
    let invalid = |reason| Error::InvalidToken {
        presented: true,
        reason,
    };
    if !secrets::credential_checksum_ok(token) {
        return Err(invalid("not a credential issued here (malformed or mistyped)"));
    }
    let (_, found) = secrets::find_stored(token, secrets::Shape::Checksummed, |hash| conn.credential_by_hash(hash))?
        .ok_or(invalid("unknown credential"))?;
    let registration = &found.registration;
    if found.revoked_ms.is_some() || registration.status == Status::Revoked {
        return Err(invalid("the credential was revoked"));
    }
    if found.expires_ms.is_some_and(|at| at <= now_ms) {
        return Err(invalid("the credential expired"));
    }
    let unclaimed_past_ttl = matches!(registration.status, Status::Unclaimed | Status::PendingClaim)
        && registration.expires_ms.is_some_and(|at| at <= now_ms);
    if !registration.status.is_live() || unclaimed_past_ttl {
        return Err(invalid("the registration is no longer active"));
    }
    Ok(Caller {
        credential_id: found.id,
        credential_type: found.kind,
        credential_expires_ms: found.expires_ms,
        issued_ms: found.created_ms,
        scopes: split_scopes(&found.scopes),
        registration_id: registration.id.clone(),
        registration_kind: registration.kind,
        status: registration.status,
        user_id: registration.user_id.clone(),
    })
}

/// RFC 7662 introspection of `token`: `{"active": false}` for anything not live.
pub fn introspect(conn: &dyn Tx, now_ms: UnixMs, token: &str) -> Result<Value, Error> {
    let caller = match authenticate_token(conn, now_ms, token) {
        Ok(caller) => caller,
        Err(Error::InvalidToken { .. }) => return Ok(json!({ "active": false })),
        Err(other) => return Err(other),
    };
    let mut answer = json!({
        "active": true,
        "scope": caller.scopes.join(" "),
        "token_type": "Bearer",
        "credential_type": caller.credential_type.as_str(),
        "iat": caller.issued_ms.secs_floor().secs(),
        "sub": caller.user_id.as_deref().unwrap_or(&caller.registration_id),
        "registration_id": caller.registration_id,
    });
    if let Some(exp) = caller.credential_expires_ms {
        answer["exp"] = json!(exp.secs_floor().secs());
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::{Config, Ctx};
    use crate::proto::v0_1::{Request, register};
    use crate::settings::Settings;
    use crate::store;

    fn register_at(conn: &rusqlite::Connection, dir: &std::path::Path, config: &Config, now_ms: UnixMs) -> Value {
        let writer = crate::store::Writer::open(&dir.join("test.db")).unwrap();
        let ctx = Ctx {
            conn,
            config,
            now_ms,
            client_ip: Some("127.0.0.1"),
            keys: &crate::keys::KeyCache::default(),
            writer: &writer,
            mail_wake: None,
        };
        register(
            &ctx,
            Request::Anonymous {
                requested: CredentialType::ApiKey,
            },
        )
        .map(|answer| serde_json::to_value(answer).unwrap())
        .unwrap()
    }

    fn reason(result: Result<Caller, Error>) -> &'static str {
        match result {
            Err(Error::InvalidToken { reason, .. }) => reason,
            other => panic!("expected invalid_token, got {other:?}"),
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_others_are_no_token() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn an_anonymous_key_works_until_its_registration_ttl() {
        let (dir, conn) = store::open_temp();
        let settings = Settings {
            registration_ttl_secs: 60,
            ..Settings::default()
        };
        let config = Config::new("http://127.0.0.1:1", settings);
        let t0 = UnixMs::from_millis(1_800_000_000_000);
        let body = register_at(&conn, dir.path(), &config, t0);
        let header = format!("Bearer {}", body["credential"].as_str().unwrap());

        let caller = authenticate(&conn, t0 + Duration::from_millis(59_999), Some(&header)).unwrap();
        assert_eq!(caller.scopes, ["api.read"]);
        assert_eq!(caller.status, Status::Unclaimed);
        assert!(caller.require_scope("api.read").is_ok());
        assert!(matches!(
            caller.require_scope("api.write"),
            Err(Error::InsufficientScope { .. })
        ));

        assert_eq!(
            reason(authenticate(&conn, t0 + Duration::from_secs(60), Some(&header))),
            "the registration is no longer active"
        );
    }

    #[test]
    fn revoked_unknown_and_mistyped_keys_are_refused() {
        let (dir, mut conn) = store::open_temp();
        let config = Config::new("http://127.0.0.1:1", Settings::default());
        let t0 = UnixMs::from_millis(1_800_000_000_000);
        let body = register_at(&conn, dir.path(), &config, t0);
        let key = body["credential"].as_str().unwrap().to_string();

        let unknown = secrets::new_credential("authmd_sk_", UnixMs::from_millis(0));
        assert_eq!(
            reason(authenticate(&conn, t0, Some(&format!("Bearer {unknown}")))),
            "unknown credential"
        );
        let last = if key.ends_with('x') { 'y' } else { 'x' };
        let mistyped = format!("{}{last}", &key[..key.len() - 1]);
        assert!(reason(authenticate(&conn, t0, Some(&format!("Bearer {mistyped}")))).contains("malformed"));
        assert!(matches!(
            authenticate(&conn, t0, None),
            Err(Error::InvalidToken { presented: false, .. })
        ));

        let id = body["registration_id"].as_str().unwrap();
        store::write(&mut conn, |tx| {
            crate::core::revoke::revoke_one(tx, id, &crate::core::revoke::RevokedBy::OPERATOR, t0)
        })
        .unwrap();
        assert_eq!(
            reason(authenticate(&conn, t0, Some(&format!("Bearer {key}")))),
            "the credential was revoked"
        );
    }
}
