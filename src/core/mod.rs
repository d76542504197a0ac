//! The protocol operations both generations use, below the wire (DESIGN.md
//! "Layout"): plain functions over a [`Ctx`] (the store, settings, URLs, the
//! instant of the request, the client's address) or over one transaction of
//! the store (`&dyn Tx`). Nothing here parses or shapes the wire, touches a
//! socket, or reads a clock: the instant is passed in.
//!
//! ```text
//!  register ── anonymous ──────────────────────────────┐
//!           ├─ verified email ─▶ claim (ceremony) ─────┤
//!           └─ assertion ─▶ verify: Checked ─▶ Admitted ┤
//!                                                      ▼
//!                                     issue(tx, Grant) ─▶ credential
//!  guard: authenticate, introspect     revoke: one, a set, provider, self; expire
//!  lifecycle::next: every status change of SPEC.md 5.7
//!  users::match_user: which person an identity is (SPEC.md 4.4)
//! ```
//!
//! Each file is one operation: [`register`], [`verify`], [`claim`],
//! [`issue`] (the only place a credential is minted, and only from a proof:
//! a new anonymous registration, a confirmed claim, an admitted assertion),
//! [`revoke`], [`guard`], [`lifecycle`], [`users`]. The wire modules
//! (`proto::v0_1`, later `proto::v0_7`) call these and shape their answers.

pub mod account;
pub mod ceremony;
pub mod claim;
pub mod configure;
pub mod guard;
pub mod issue;
pub mod lifecycle;
pub mod refresh;
pub mod register;
pub mod revoke;
pub mod signin;
pub mod signing;
pub mod token;
pub mod users;
pub mod verify;

use serde_json::{Map, Value};

use crate::keys::KeyCache;
use crate::settings::Settings;
use crate::site::Site;
use crate::time::UnixMs;

/// One consistent view of the configuration: settings and the URLs built from them.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub site: Site,
    /// The service's name as people read it, on pages and in mail:
    /// `resource_name`, or while it is unset the base URL's host (its
    /// default, "API", names no service a person would recognise; issue 15).
    pub shown_name: String,
}

impl Config {
    pub fn new(base_url: &str, settings: Settings) -> Config {
        let site = Site::new(base_url, &settings);
        let shown_name = if settings.resource_name_set {
            settings.resource_name.clone()
        } else {
            crate::url::HttpUrl::parse(&site.issuer).map_or_else(|_| site.issuer.clone(), |url| url.authority)
        };
        Config {
            settings,
            site,
            shown_name,
        }
    }

    /// The flows this deployment offers: enabled by the operator and built in
    /// this version. Discovery advertises exactly these.
    pub fn available(&self) -> Available {
        Available {
            anonymous: self.settings.anonymous_enabled,
            service_auth: self.settings.service_auth_enabled,
            id_jag: self.settings.id_jag_enabled,
            verified_email: self.settings.verified_email_enabled,
            claim: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Available {
    pub anonymous: bool,
    /// SPEC-v0.7 4.2 (v0.7 only).
    pub service_auth: bool,
    pub id_jag: bool,
    pub verified_email: bool,
    /// The claim endpoints (`/agent/auth/claim` and the ceremony).
    pub claim: bool,
}

/// What every flow runs against.
pub struct Ctx<'a> {
    /// Reads outside a write transaction (the worker's own connection).
    pub conn: &'a dyn crate::store::Tx,
    pub config: &'a Config,
    /// The instant of the request, from the server's clock.
    pub now_ms: UnixMs,
    pub client_ip: Option<&'a str>,
    /// Provider keys and metadata documents.
    pub keys: &'a KeyCache,
    /// The one writer connection (group commit); `conn` is for reads.
    pub writer: &'a crate::store::Writer,
    /// Tells the mail sender a message was committed to the outbox.
    pub mail_wake: Option<&'a std::sync::mpsc::SyncSender<()>>,
}

impl Ctx<'_> {
    /// Where the key cache reads and writes its documents.
    pub fn key_store(&self) -> crate::keys::Store<'_> {
        crate::keys::Store {
            read: self.conn,
            writer: self.writer,
        }
    }

    /// Wakes the mail sender; harmless when it is busy or absent.
    pub fn poke_mail(&self) {
        if let Some(wake) = self.mail_wake {
            let _ = wake.try_send(());
        }
    }
}

/// An HMAC-SHA-256 key this database made for itself, called `name`
/// (made on first use; `local_keys`).
fn hmac_key(
    tx: &dyn crate::store::Tx,
    name: &str,
    now_ms: crate::time::UnixMs,
) -> Result<ring::hmac::Key, crate::error::Error> {
    use ring::rand::SecureRandom;
    let mut fresh = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut fresh)
        .expect("the system CSPRNG is available");
    let bytes = tx.local_key(name, &fresh, now_ms)?;
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes))
}

/// An audit event's `detail` from a `json!` object.
fn detail(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
