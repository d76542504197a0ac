//! Routing: one table ([`ROUTES`]) from (path, method) to a plain handler,
//! with each row's rate-limit buckets, metric label and caching. `Allow`,
//! the metric labels and the no-store rule come from the table; paths are
//! spelled once, in [`Endpoint::path`]. Handlers read the request, call one
//! flow or document builder, and shape the response.

use crate::store::Tx;
use serde_json::{Value, json};

use super::{Body, CACHE_PUBLIC, MAX_BODY_BYTES, NO_STORE, Request, Response, error_response};
use crate::core::{Config, Ctx, claim, guard, revoke, signin};
use crate::discovery;
use crate::error::Error;
use crate::http::gateway;
use crate::http::pages;
use crate::keys::KeyCache;
use crate::metrics::{MailGauges, Metrics};
use crate::proto::v0_1::{self, Registered, Request as Registration};
use crate::proto::v0_1::{json_object, required_str};
use crate::proto::v0_7;
use crate::ratelimit::{Bucket, Limiter, Refused};
use crate::site::Endpoint;
use crate::store;
use crate::time::UnixMs;

// The person's own page (issue 15), in its own file; a child of this
// module, so its handlers use the sign-in helpers here as the others do.
#[path = "account.rs"]
mod account;

/// Where a row answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Fixed(Endpoint),
    /// The guarded API: the resource's path and everything under it.
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Methods {
    /// `GET` and `HEAD`.
    Read,
    Post,
    /// Anything but `GET` and `HEAD`: only with an upstream behind the gateway.
    Write,
}

impl Methods {
    fn admit(self, method: &str, upstream: bool) -> bool {
        let reading = matches!(method, "GET" | "HEAD");
        match self {
            Methods::Read => reading,
            Methods::Post => method == "POST",
            Methods::Write => upstream && !reading,
        }
    }
}

/// How the answer may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// It carries a secret, or changes with every call: `no-store`.
    NoStore,
    /// Discovery documents.
    Public,
    /// As the handler (or the upstream) answered.
    AsAnswered,
}

/// Which protocol generation a row belongs to: a generation switched off
/// (`v0_1_enabled`, `v0_7_enabled`) answers `404 not_found` at its places
/// (SPEC-v0.7 1). Discovery, introspection, revocation and the guarded API
/// are shared and always served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generation {
    Shared,
    V0_1,
    V0_7,
}

impl Generation {
    fn on(self, settings: &crate::settings::Settings) -> bool {
        match self {
            Generation::Shared => true,
            Generation::V0_1 => settings.v0_1_enabled,
            Generation::V0_7 => settings.v0_7_enabled,
        }
    }
}

/// The body a refusal takes (SPEC-v0.7 3): v0.1's `{error, message,
/// error_description}`, or RFC 6749's `{error, error_description}` on the
/// OAuth endpoints, whose every answer also carries `Pragma: no-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Envelope {
    Profile,
    OAuth,
    /// RFC 8935 2.4: `{err, description}`.
    Set,
    /// A page a person reads: refusals are pages too.
    Page,
}

type Handler = fn(&dyn Tx, &Deps<'_>, &Request) -> Result<Response, Error>;

struct Route {
    generation: Generation,
    at: At,
    methods: Methods,
    /// Counted, in order, before the handler runs (SPEC.md 9). Registration
    /// picks its bucket by the request's type, so it counts in its handler.
    limits: &'static [Bucket],
    /// For metrics: a fixed set of names, whatever the path.
    label: &'static str,
    cache: Cache,
    envelope: Envelope,
    handler: Handler,
}

#[allow(clippy::too_many_arguments)] // a table row: one argument per column
const fn row(
    generation: Generation,
    at: At,
    methods: Methods,
    limits: &'static [Bucket],
    label: &'static str,
    cache: Cache,
    envelope: Envelope,
    handler: Handler,
) -> Route {
    Route {
        generation,
        at,
        methods,
        limits,
        label,
        cache,
        envelope,
        handler,
    }
}

use At::{Api, Fixed};
use Bucket::{Claim, ClaimCode, IdentityAssertion, Token, VerifiedEmail};
use Cache::{AsAnswered, NoStore, Public};
use Envelope::{OAuth, Page, Profile, Set};
use Generation::{Shared, V0_1, V0_7};
use Methods::{Post, Read, Write};

/// Every place authmd answers.
#[rustfmt::skip]
const ROUTES: &[Route] = &[
    row(Shared, Fixed(Endpoint::Healthz), Read, &[], "healthz", NoStore, Profile, healthz),
    row(Shared, Fixed(Endpoint::Readyz), Read, &[], "readyz", NoStore, Profile, readyz),
    row(Shared, Fixed(Endpoint::Metrics), Read, &[], "metrics", NoStore, Profile, metrics),
    row(Shared, Fixed(Endpoint::ResourceMetadata), Read, &[], "resource_metadata", Public, Profile, resource_metadata),
    row(Shared, Fixed(Endpoint::AuthorizationServerMetadata), Read, &[], "authorization_server_metadata", Public, Profile, authorization_server_metadata),
    row(Shared, Fixed(Endpoint::AuthMd), Read, &[], "auth_md", Public, Profile, auth_md),
    row(V0_7, Fixed(Endpoint::Jwks), Read, &[], "jwks", Public, Profile, jwks),
    row(V0_7, Fixed(Endpoint::Identity), Post, &[], "identity", NoStore, Profile, identity),
    row(V0_7, Fixed(Endpoint::IdentityClaim), Post, &[Claim], "identity_claim", NoStore, Profile, identity_claim),
    row(V0_7, Fixed(Endpoint::IdentityClaimComplete), Post, &[Claim], "identity_claim_complete", NoStore, Profile, identity_claim_complete),
    row(V0_7, Fixed(Endpoint::ClaimPage), Read, &[], "claim_page", NoStore, Page, identity_claim_page),
    row(V0_7, Fixed(Endpoint::ClaimConfirm), Post, &[Claim], "claim_confirm", NoStore, Page, identity_claim_confirm),
    row(V0_7, Fixed(Endpoint::ClaimRejectPage), Post, &[Claim], "claim_reject_page", NoStore, Page, identity_claim_reject),
    row(V0_7, Fixed(Endpoint::Home), Read, &[], "home", NoStore, Page, home),
    row(V0_7, Fixed(Endpoint::Login), Read, &[], "login", NoStore, Page, login_page),
    row(V0_7, Fixed(Endpoint::Login), Post, &[], "login", NoStore, Page, login),
    row(V0_7, Fixed(Endpoint::LoginVerify), Post, &[Claim], "login_verify", NoStore, Page, login_verify),
    row(V0_7, Fixed(Endpoint::Logout), Post, &[Claim], "logout", NoStore, Page, logout),
    row(V0_7, Fixed(Endpoint::AccountAgents), Read, &[], "account_agents", NoStore, Page, account::agents),
    row(V0_7, Fixed(Endpoint::AccountAgentsRevoke), Post, &[Claim], "account_agents_revoke", NoStore, Page, account::revoke),
    row(V0_7, Fixed(Endpoint::Token), Post, &[Token], "token", NoStore, OAuth, token),
    row(V0_7, Fixed(Endpoint::EventNotify), Post, &[IdentityAssertion], "event_notify", NoStore, Set, event_notify),
    row(V0_1, Fixed(Endpoint::Register), Post, &[], "register", NoStore, Profile, register),
    row(V0_1, Fixed(Endpoint::ProviderRevoke), Post, &[IdentityAssertion], "provider_revoke", NoStore, Profile, provider_revoke),
    // It sends mail to an address the agent chose, like a verified-email registration.
    row(V0_1, Fixed(Endpoint::Claim), Post, &[VerifiedEmail, Claim], "claim", NoStore, Profile, claim_request),
    row(V0_1, Fixed(Endpoint::ClaimView), Read, &[], "claim_view", NoStore, Profile, claim_page),
    row(V0_1, Fixed(Endpoint::ClaimView), Post, &[ClaimCode], "claim_view", NoStore, Profile, claim_page_code),
    row(V0_1, Fixed(Endpoint::ClaimReject), Post, &[Claim], "claim_reject", NoStore, Profile, claim_reject),
    row(V0_1, Fixed(Endpoint::ClaimChallenge), Post, &[ClaimCode], "claim_challenge", NoStore, Profile, claim_challenge),
    row(V0_1, Fixed(Endpoint::ClaimComplete), Post, &[ClaimCode], "claim_complete", NoStore, Profile, claim_complete),
    row(Shared, Fixed(Endpoint::Introspect), Post, &[], "introspect", NoStore, Profile, introspect),
    // SPEC-v0.7 10: one handler under both names, counted as `token`.
    row(Shared, Fixed(Endpoint::OAuth2Revoke), Post, &[Token], "oauth_revoke", NoStore, OAuth, oauth_revoke),
    row(Shared, Fixed(Endpoint::OAuthRevoke), Post, &[Token], "oauth_revoke", NoStore, OAuth, oauth_revoke),
    row(Shared, Api, Read, &[], "api", AsAnswered, Profile, api),
    row(Shared, Api, Write, &[], "api", AsAnswered, Profile, api),
];

impl At {
    fn matches(self, path: &str, config: &Config) -> bool {
        match self {
            At::Fixed(Endpoint::ResourceMetadata) => config.site.is_resource_metadata_path(path),
            At::Fixed(endpoint) => path == endpoint.path(),
            At::Api => config.site.is_resource_path(path),
        }
    }
}

/// The `Allow` header for the rows at one place.
fn allow(at: At) -> &'static str {
    let has = |m: Methods| ROUTES.iter().any(|r| r.at == at && r.methods == m);
    match (has(Read), has(Post)) {
        (true, true) => "GET, HEAD, POST",
        (false, true) => "POST",
        _ => "GET, HEAD",
    }
}

/// The row for `req`: `NotFound` for no such place, `MethodNotAllowed` for
/// a place that does not take the method.
fn find(req: &Request, deps: &Deps<'_>) -> Result<&'static Route, (Error, &'static str)> {
    // Fixed endpoints first: the resource's path could be configured over them.
    let at = ROUTES
        .iter()
        .filter(|r| r.at != At::Api)
        .find(|r| r.at.matches(&req.path, deps.config))
        .map(|r| r.at)
        .or_else(|| At::Api.matches(&req.path, deps.config).then_some(At::Api));
    let Some(at) = at else {
        return Err((Error::NotFound, "other"));
    };
    let mut rows = ROUTES.iter().filter(|r| r.at == at);
    let upstream = deps.upstream.is_some();
    let first = rows.clone().next().expect("a place has a row");
    if !first.generation.on(&deps.config.settings) {
        return Err((Error::NotFound, "other"));
    }
    if let Some(row) = rows.find(|r| r.methods.admit(&req.method, upstream)) {
        return Ok(row);
    }
    Err((Error::MethodNotAllowed { allow: allow(at) }, first.label))
}

/// What a request is answered with, besides its own connection.
pub struct Deps<'a> {
    pub config: &'a Config,
    pub keys: &'a KeyCache,
    pub limiter: &'a Limiter,
    /// The API behind the gateway (`serve --upstream`), if any.
    pub upstream: Option<&'a str>,
    pub upstream_client: &'a crate::upstream::Client,
    pub writer: &'a crate::store::Writer,
    /// Where a use of a credential at the guarded API is noted.
    pub last_used: &'a crate::last_used::LastUsed,
    pub metrics: &'a Metrics,
    /// The instant of the request.
    pub now_ms: UnixMs,
    /// The same instant on the monotonic clock (rate-limit windows).
    pub elapsed: std::time::Duration,
    pub mail_wake: Option<&'a std::sync::mpsc::SyncSender<()>>,
    /// The database file the server opened, for `/readyz` to check.
    pub db_file: Option<&'a store::FileIdentity>,
}

impl<'a> Deps<'a> {
    /// Counts the request against its flow's limits (SPEC.md 9), or refuses it.
    fn limit(&self, bucket: Bucket, req: &Request) -> Result<(), Error> {
        let ip = req.client_ip.map(|ip| ip.to_string());
        self.limiter
            .check(bucket, ip.as_deref(), self.at(), &self.config.settings.rate_limits)
            .map_err(|refused| self.refused(refused, bucket))
    }

    /// The request's instant, as the rate limiter takes it.
    fn at(&self) -> crate::ratelimit::Now {
        crate::ratelimit::Now {
            elapsed: self.elapsed,
            wall: self.now_ms,
        }
    }

    /// The error a refusal answers with, counted in the metrics when it is a
    /// limit.
    fn refused(&self, refused: Refused, bucket: Bucket) -> Error {
        if let Refused::Limited { .. } = refused {
            self.metrics.rate_limited(bucket.name());
        }
        refused.into_error(bucket)
    }

    fn ctx<'c>(&'c self, conn: &'c dyn Tx, client_ip: Option<&'c str>) -> Ctx<'c> {
        Ctx {
            conn,
            config: self.config,
            now_ms: self.now_ms,
            client_ip,
            keys: self.keys,
            writer: self.writer,
            mail_wake: self.mail_wake,
        }
    }

    /// Runs a flow in the context of `req` (its client IP, for audit).
    fn run<T>(&self, conn: &dyn Tx, req: &Request, flow: impl FnOnce(&mut Ctx<'_>) -> T) -> T {
        let client_ip = req.client_ip.map(|ip| ip.to_string());
        flow(&mut self.ctx(conn, client_ip.as_deref()))
    }
}

pub fn handle(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Response {
    // Issue 15: a person's browser is refused with a page wherever an agent
    // is refused with v0.1's JSON body; the guarded API and the OAuth and
    // SET endpoints keep their envelopes, which their clients parse.
    let person = super::wants_html(req);
    let (mut response, label) = match find(req, deps) {
        Ok(row) => {
            let answer = row
                .limits
                .iter()
                .try_for_each(|bucket| deps.limit(*bucket, req))
                .and_then(|()| (row.handler)(conn, deps, req));
            let envelope = match row.envelope {
                Profile if person && row.at != At::Api => Page,
                other => other,
            };
            let mut response = answer.unwrap_or_else(|err| match envelope {
                Profile => error_response(&err, deps.config, &req.id),
                OAuth => super::oauth_error_response(&err, &req.id),
                Set => super::set_error_response(&err, &req.id),
                Page => page_refusal(&err, deps, req),
            });
            if row.envelope == OAuth {
                response = response.with_header("Pragma", "no-cache");
            }
            let cache = match row.cache {
                NoStore => Some(NO_STORE),
                Public if response.status < 400 => Some(CACHE_PUBLIC),
                _ => None,
            };
            if let Some(cache) = cache.filter(|_| response.header("cache-control").is_none()) {
                response = response.with_header("Cache-Control", cache);
            }
            (response, row.label)
        }
        // `/` is a page for people whichever generations are on; without
        // v0.7 there is no sign-in to offer.
        Err((Error::NotFound, _))
            if person && req.path == Endpoint::Home.path() && Methods::Read.admit(&req.method, false) =>
        {
            (
                pages::home(pages::Brand::of(deps.config), pages::Visitor::NoSignIn),
                "home",
            )
        }
        Err((err, label)) if person => (page_refusal(&err, deps, req), label),
        Err((err, label)) => (error_response(&err, deps.config, &req.id), label),
    };
    response.headers.push(("X-Content-Type-Options", "nosniff".into()));
    response.route = label;
    response
}

fn healthz(_: &dyn Tx, _: &Deps<'_>, _: &Request) -> Result<Response, Error> {
    Ok(Response::json(200, &json!({ "status": "ok" })))
}

fn readyz(conn: &dyn Tx, deps: &Deps<'_>, _: &Request) -> Result<Response, Error> {
    let ready = conn
        .ping()
        .map_err(|e| e.to_string())
        .and_then(|()| match deps.db_file {
            Some(file) => file.check(),
            None => Ok(()),
        });
    Ok(match ready {
        Ok(()) => Response::json(200, &json!({ "status": "ready" })),
        Err(_) => Response::json(503, &json!({ "status": "database unavailable" })),
    })
}

fn metrics(conn: &dyn Tx, deps: &Deps<'_>, _: &Request) -> Result<Response, Error> {
    let mail = MailGauges {
        outbox_pending: conn.pending_mail_count().unwrap_or(-1),
        failed: conn.failed_mail_count().unwrap_or(-1),
    };
    Ok(Response::text(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        deps.metrics.render(&mail),
    ))
}

fn resource_metadata(_: &dyn Tx, deps: &Deps<'_>, _: &Request) -> Result<Response, Error> {
    Ok(Response::json(200, &discovery::protected_resource(deps.config)))
}

fn authorization_server_metadata(_: &dyn Tx, deps: &Deps<'_>, _: &Request) -> Result<Response, Error> {
    Ok(Response::json(200, &discovery::authorization_server(deps.config)))
}

/// SPEC-v0.7 2.4: the current signing key first, then the retired ones
/// whose assertions may still be live; public members only.
fn jwks(conn: &dyn Tx, deps: &Deps<'_>, _: &Request) -> Result<Response, Error> {
    let keys = crate::core::signing::published(conn, &deps.config.settings, deps.now_ms)?;
    let keys: Vec<serde_json::Value> = keys.iter().map(|k| k.public_jwk()).collect();
    Ok(Response::json(200, &serde_json::json!({ "keys": keys })))
}

/// `POST /agent/identity` (SPEC-v0.7 4): the rate-limit bucket follows the shape.
fn identity(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let body = json_body(req)?;
    let request = v0_7::IdentityRequest::from_json(&body)?;
    deps.limit(
        match request {
            v0_7::IdentityRequest::Anonymous => Bucket::Anonymous,
            v0_7::IdentityRequest::IdentityAssertion { .. } => Bucket::IdentityAssertion,
            v0_7::IdentityRequest::ServiceAuth { .. } => Bucket::ServiceAuth,
            v0_7::IdentityRequest::Refresh { .. } => Bucket::Token,
        },
        req,
    )?;
    let refresh = matches!(request, v0_7::IdentityRequest::Refresh { .. });
    let is_id_jag = matches!(request, v0_7::IdentityRequest::IdentityAssertion { .. });
    let answer = id_jag_counted(deps, is_id_jag, deps.run(conn, req, |ctx| v0_7::identity(ctx, request)))?;
    if !refresh {
        // A refresh registers nothing.
        deps.metrics.registration(crate::model::Generation::V0_7, answer.kind());
    }
    let response = Response::json(answer.status(), &answer);
    Ok(match answer.challenge() {
        Some(challenge) => response.with_header("WWW-Authenticate", challenge),
        None => response,
    })
}

/// `POST /agent/identity/claim` (SPEC-v0.7 6.1): a new attempt.
fn identity_claim(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let body = json_body(req)?;
    let answer = deps.run(conn, req, |ctx| v0_7::claim(ctx, &body))?;
    Ok(Response::json(200, &answer))
}

/// `POST /oauth2/token` (SPEC-v0.7 8): a form body only; any other body is
/// `invalid_request`, not 415 (the OAuth envelope knows no such code).
fn token(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let form = oauth_form(req)?;
    let request = v0_7::TokenRequest::from_form(&form)?;
    let answer = deps.run(conn, req, |ctx| v0_7::token(ctx, &request))?;
    Ok(Response::json(200, &answer))
}

/// A refusal met on a page, as a page (`http::error_page`).
fn page_refusal(err: &Error, deps: &Deps<'_>, req: &Request) -> Response {
    super::error_page(err, &pages::Brand::of(deps.config), deps.now_ms, req)
}

/// The value of cookie `name`, if the request carries it: the first of
/// its `Cookie` headers that does ([`super::cookie_value`]).
fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .find_map(|(_, v)| super::cookie_value(v, name))
        .map(str::to_string)
}

/// `Set-Cookie` for `name` (SPEC-v0.7 7.2): `Secure` exactly when the base
/// URL is https; `max_age_secs` 0 clears it.
fn set_cookie(deps: &Deps<'_>, name: &str, value: &str, max_age_secs: u64) -> String {
    let secure = if deps.config.site.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}")
}

/// A 303 to `location`, a path of this origin. A header carries visible
/// ASCII only (the edge drops any other, which left a `return_to` such as
/// `/café` with a 303 to nowhere, issue 12), so every other byte is
/// percent-encoded, as a browser encodes a path it sends.
fn see_other(location: &str) -> Response {
    let location: String = location
        .bytes()
        .map(|b| match b {
            0x21..=0x7e => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    Response::text(303, "text/plain; charset=utf-8", String::new()).with_header("Location", location)
}

/// The signed-in user and the hash of their session cookie, if any.
fn signed_in(
    conn: &dyn Tx,
    deps: &Deps<'_>,
    req: &Request,
) -> Result<Option<(crate::store::users::User, crate::secrets::SecretHash)>, Error> {
    let Some(value) = cookie(req, signin::SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(signin::session_user(conn, &value, deps.now_ms)?.map(|user| (user, crate::secrets::hash(&value))))
}

/// Whether a form's CSRF token matches the cookie it is bound to (SPEC-v0.7 7.3).
fn csrf_matches(
    conn: &dyn Tx,
    deps: &Deps<'_>,
    binding: Option<&crate::secrets::SecretHash>,
    form: &[(String, String)],
) -> bool {
    binding
        .is_some_and(|binding| signin::csrf_ok(conn, binding, &form_value(form, "csrf"), deps.now_ms).unwrap_or(false))
}

/// The 403 page of a form whose CSRF token does not match (changes nothing).
fn form_expired(deps: &Deps<'_>) -> Response {
    pages::notice(
        403,
        pages::Brand::of(deps.config),
        "This form expired",
        "The page was open too long, or you signed out meanwhile, so nothing was done. \
         Open the link again and retry.",
    )
}

/// `GET /` (SPEC-v0.7 7.1).
fn home(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let name = &pages::Brand::of(deps.config);
    Ok(match signed_in(conn, deps, req)? {
        Some((user, binding)) => {
            let csrf = signin::csrf_token(conn, &binding, deps.now_ms)?;
            let email = user.email.as_deref().unwrap_or(&user.id);
            pages::home(name, pages::Visitor::SignedIn { email, csrf: &csrf })
        }
        None => pages::home(name, pages::Visitor::SignedOut),
    })
}

/// `GET /login?return_to=...`: signed in already, straight on; otherwise the
/// form, with a new pre-session cookie it is bound to.
fn login_page(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let return_to = signin::safe_return_to(&query_param(req, "return_to").unwrap_or_else(|| "/".into()));
    if signed_in(conn, deps, req)?.is_some() {
        return Ok(see_other(&return_to));
    }
    let presession = signin::new_cookie_value();
    let csrf = signin::csrf_token(conn, &crate::secrets::hash(&presession), deps.now_ms)?;
    let email = login_hint_of(conn, &return_to)?.unwrap_or_default();
    let ttl = deps.config.settings.signin_code_ttl_secs;
    Ok(
        pages::login(200, pages::Brand::of(deps.config), &email, &return_to, &csrf, "").with_header(
            "Set-Cookie",
            set_cookie(deps, signin::PRESESSION_COOKIE, &presession, ttl),
        ),
    )
}

/// The address a `/claim` link is for, to fill in the form (SPEC-v0.7 7.1).
fn login_hint_of(conn: &dyn Tx, return_to: &str) -> Result<Option<String>, Error> {
    let Some(query) = return_to.strip_prefix(&format!("{}?", Endpoint::ClaimPage.path())) else {
        return Ok(None);
    };
    let Some((_, token)) = super::form_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "claim_attempt_token")
    else {
        return Ok(None);
    };
    Ok(conn
        .attempt_by_token_hash(&crate::secrets::hash(&token))?
        .filter(|a| a.status == crate::store::attempts::AttemptStatus::Open)
        .map(|a| a.email))
}

/// A form's fields, in order.
type Form = Vec<(String, String)>;

/// A sign-in form's fields and the pre-session it is bound to, or the 403
/// page when the CSRF token does not match it.
fn presession_form(
    conn: &dyn Tx,
    deps: &Deps<'_>,
    req: &Request,
) -> Result<Result<(Form, crate::secrets::SecretHash), Response>, Error> {
    let form = form_body(req)?;
    let presession = cookie(req, signin::PRESESSION_COOKIE).map(|v| crate::secrets::hash(&v));
    Ok(match presession {
        Some(presession) if csrf_matches(conn, deps, Some(&presession), &form) => Ok((form, presession)),
        _ => Err(form_expired(deps)),
    })
}

/// `POST /login`: the same page whether or not the address can sign in.
fn login(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let (form, presession) = match presession_form(conn, deps, req)? {
        Ok(checked) => checked,
        Err(refused) => return Ok(refused),
    };
    let email = form_value(&form, "email");
    let ip = req.client_ip.map(|ip| ip.to_string());
    deps.limiter
        .check_signin(ip.as_deref(), &email, deps.at(), &deps.config.settings.rate_limits)
        .map_err(|refused| deps.refused(refused, Bucket::Signin))?;
    let name = &pages::Brand::of(deps.config);
    let csrf = signin::csrf_token(conn, &presession, deps.now_ms)?;
    match deps.run(conn, req, |ctx| {
        signin::request_code(ctx, &presession, &email, &form_value(&form, "return_to"))
    }) {
        Ok(()) => Ok(pages::enter_code(200, name, &csrf, "")),
        Err(Error::InvalidRequest(why)) => Ok(pages::login(
            400,
            name,
            &email,
            &form_value(&form, "return_to"),
            &csrf,
            &why,
        )),
        Err(other) => Err(other),
    }
}

/// `POST /login/verify`: the right code starts a session.
fn login_verify(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let (form, presession) = match presession_form(conn, deps, req)? {
        Ok(checked) => checked,
        Err(refused) => return Ok(refused),
    };
    let name = &pages::Brand::of(deps.config);
    let code = form_value(&form, "code");
    Ok(
        match deps.run(conn, req, |ctx| signin::verify_code(ctx, &presession, code.trim()))? {
            signin::Verified::SignedIn { session, return_to } => see_other(&return_to)
                .with_header(
                    "Set-Cookie",
                    set_cookie(
                        deps,
                        signin::SESSION_COOKIE,
                        &session,
                        deps.config.settings.session_ttl_secs,
                    ),
                )
                .with_header("Set-Cookie", set_cookie(deps, signin::PRESESSION_COOKIE, "", 0)),
            signin::Verified::WrongCode => {
                let csrf = signin::csrf_token(conn, &presession, deps.now_ms)?;
                pages::enter_code(
                    401,
                    name,
                    &csrf,
                    "That code is not right. Check the email and try again.",
                )
            }
            signin::Verified::Gone { return_to } => {
                let again = format!(
                    "{}?return_to={}",
                    Endpoint::Login.path(),
                    crate::url::percent_encode(&return_to)
                );
                let body = format!(
                    "<h1>This code has expired</h1><p>Codes work for a few minutes and a few tries. \
                 <a href=\"{}\">Ask for a new one</a>.</p>",
                    pages::escape(&again)
                );
                pages::page(410, name, "This code has expired", &body)
            }
        },
    )
}

/// `POST /logout`: the session ends, on to sign-in.
fn logout(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let form = form_body(req)?;
    let session = cookie(req, signin::SESSION_COOKIE);
    let binding = session.as_deref().map(crate::secrets::hash);
    if !csrf_matches(conn, deps, binding.as_ref(), &form) {
        return Ok(form_expired(deps));
    }
    if let Some(session) = &session {
        deps.run(conn, req, |ctx| signin::sign_out(ctx, session))?;
    }
    let return_to = form_value(&form, "return_to");
    let location = match return_to.as_str() {
        "" => Endpoint::Login.path().to_string(),
        given => format!(
            "{}?return_to={}",
            Endpoint::Login.path(),
            crate::url::percent_encode(&signin::safe_return_to(given))
        ),
    };
    Ok(see_other(&location).with_header("Set-Cookie", set_cookie(deps, signin::SESSION_COOKIE, "", 0)))
}

/// `POST /agent/identity/claim/complete` (SPEC-v0.7 6.4).
fn identity_claim_complete(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let body = json_body(req)?;
    let answer = deps.run(conn, req, |ctx| v0_7::complete(ctx, &body))?;
    Ok(Response::json(200, &answer))
}

/// The page a v0.7 claim link opens, and the answer to a link not open.
fn identity_link_page(deps: &Deps<'_>, token: &str, closed: crate::core::ceremony::Closed, csrf: &str) -> Response {
    use crate::core::ceremony::Closed as Link;
    let name = &pages::Brand::of(deps.config);
    match closed {
        Link::Unknown => pages::notice(404, name, "This link is not valid", "Ask the agent for a new link."),
        Link::Replaced => pages::notice(
            410,
            name,
            "This link was replaced",
            "The agent asked for a newer link. Use the newest one.",
        ),
        Link::Cancelled => pages::notice(
            410,
            name,
            "You turned this agent away",
            "You said this wasn't you, so the agent cannot act for you with this link. Nothing more to do.",
        ),
        Link::Expired => pages::notice(410, name, "This link has expired", "Ask the agent for a new link."),
        Link::Claimed => pages::notice(
            200,
            name,
            "Already confirmed",
            "This agent was already confirmed. Nothing more to do.",
        ),
        // Back to the link itself, also from a press of one of its forms.
        Link::WrongAccount { expected, signed_in } => pages::wrong_account(
            name,
            &expected,
            &signed_in,
            csrf,
            &crate::site::verification_path(token),
        ),
    }
}

/// `GET /claim?claim_attempt_token=...` (SPEC-v0.7 6.2): signed out, to
/// sign-in first; then the gates; then the confirm page. Reads only.
fn identity_claim_page(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let Some((user, binding)) = signed_in(conn, deps, req)? else {
        let here = format!("{}?{}", req.path, req.query.as_deref().unwrap_or_default());
        return Ok(see_other(&format!(
            "{}?return_to={}",
            Endpoint::Login.path(),
            crate::url::percent_encode(&here)
        )));
    };
    let token = query_param(req, "claim_attempt_token").unwrap_or_default();
    let csrf = signin::csrf_token(conn, &binding, deps.now_ms)?;
    Ok(match crate::core::ceremony::link(conn, &token, &user, deps.now_ms)? {
        Ok((_, registration)) => {
            let settings = &deps.config.settings;
            // The provider by its trust-list name, never a value from a token.
            let provider = match conn.pending_link_of(&registration.id)? {
                Some(link) => {
                    let name = conn
                        .provider(&link.iss)?
                        .and_then(|p| p.name)
                        .unwrap_or_else(|| link.iss.clone());
                    Some((link.iss, name))
                }
                None => None,
            };
            let agent = match (&registration.kind, &provider) {
                (_, Some((_, name))) => format!("An AI agent from {name}"),
                (crate::model::RegistrationKind::ServiceAuth, _) => "An AI agent you sent here".to_string(),
                _ => "An AI agent".to_string(),
            };
            let mut advisories = Vec::new();
            if let Some((iss, name)) = &provider
                && !conn.user_has_delegation_from(&user.id, iss)?
            {
                advisories.push(format!("This is the first time {name} asks to act for you here."));
            }
            if !conn.user_has_other_agent(&user.id, &registration.id)? {
                advisories.push("This would be the first agent acting for you here.".to_string());
            }
            pages::identity_claim(&pages::IdentityClaim {
                brand: &pages::Brand::of(deps.config),
                agent: &agent,
                advisories: &advisories,
                scopes: &registration
                    .scopes
                    .as_deref()
                    .map_or_else(|| settings.post_claim_scopes.clone(), crate::model::split_scopes),
                registration_id: &registration.id,
                signed_in_as: user.email.as_deref().unwrap_or(&user.id),
                attempt_token: &token,
                csrf: &csrf,
            })
        }
        Err(closed) => identity_link_page(deps, &token, closed, &csrf),
    })
}

/// A form of the claim page: the signed-in person, their CSRF token checked,
/// and the attempt token; `Err` is the page that answers otherwise.
fn claim_form(
    conn: &dyn Tx,
    deps: &Deps<'_>,
    req: &Request,
) -> Result<Result<(Form, crate::store::users::User, String), Response>, Error> {
    let form = form_body(req)?;
    let Some((user, binding)) = signed_in(conn, deps, req)? else {
        return Ok(Err(form_expired(deps)));
    };
    if !csrf_matches(conn, deps, Some(&binding), &form) {
        return Ok(Err(form_expired(deps)));
    }
    let csrf = signin::csrf_token(conn, &binding, deps.now_ms)?;
    Ok(Ok((form, user, csrf)))
}

/// `POST /claim/confirm`: the code, shown once.
fn identity_claim_confirm(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let (form, user, csrf) = match claim_form(conn, deps, req)? {
        Ok(checked) => checked,
        Err(refused) => return Ok(refused),
    };
    let token = form_value(&form, "claim_attempt_token");
    Ok(
        match deps.run(conn, req, |ctx| crate::core::ceremony::confirm(ctx, &token, &user))? {
            Ok((code, expires_ms)) => {
                pages::identity_code(pages::Brand::of(deps.config), &code, expires_ms, deps.now_ms)
            }
            Err(crate::core::ceremony::Closed::Claimed) => pages::notice(
                409,
                pages::Brand::of(deps.config),
                "Already confirmed",
                "This agent was already confirmed.",
            ),
            Err(other) => identity_link_page(deps, &token, other, &csrf),
        },
    )
}

/// `POST /claim/reject`: asks once more; only `confirm=yes` cancels.
fn identity_claim_reject(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let (form, user, csrf) = match claim_form(conn, deps, req)? {
        Ok(checked) => checked,
        Err(refused) => return Ok(refused),
    };
    let token = form_value(&form, "claim_attempt_token");
    let name = &pages::Brand::of(deps.config);
    if form_value(&form, "confirm") != "yes" {
        return Ok(match crate::core::ceremony::link(conn, &token, &user, deps.now_ms)? {
            Ok(_) => pages::confirm_identity_reject(name, &token, &csrf),
            Err(closed) => identity_link_page(deps, &token, closed, &csrf),
        });
    }
    Ok(
        match deps.run(conn, req, |ctx| crate::core::ceremony::reject(ctx, &token, &user))? {
            Ok(()) => pages::notice(
                200,
                name,
                "The agent was turned away",
                "It cannot act for you with this link.",
            ),
            Err(other) => identity_link_page(deps, &token, other, &csrf),
        },
    )
}

fn register(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let body = json_body(req)?;
    let request = Registration::from_json(&body)?;
    let is_id_jag = matches!(request, Registration::IdJag { .. });
    deps.limit(
        match request {
            Registration::Anonymous { .. } => Bucket::Anonymous,
            Registration::IdJag { .. } => Bucket::IdentityAssertion,
            Registration::VerifiedEmail { .. } => Bucket::VerifiedEmail,
        },
        req,
    )?;
    let answer: Registered = id_jag_counted(deps, is_id_jag, deps.run(conn, req, |ctx| v0_1::register(ctx, request)))?;
    deps.metrics
        .registration(crate::model::Generation::V0_1, answer.registration_type());
    Ok(Response::json(200, &answer))
}

/// `result` of a registration, an ID-JAG's refusal counted by its code
/// (`authmd_id_jag_refusals_total`), in either generation.
fn id_jag_counted<T>(deps: &Deps<'_>, is_id_jag: bool, result: Result<T, Error>) -> Result<T, Error> {
    if let (true, Err(err)) = (is_id_jag, &result) {
        deps.metrics.id_jag_refusal(crate::proto::v0_1::wire(err).1);
    }
    result
}

fn provider_revoke(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let token = jwt_body(req, "application/logout+jwt")?;
    let revoked = deps
        .run(conn, req, |ctx| {
            revoke::by_provider(ctx, &token, crate::jose::TokenKind::Logout)
        })
        .inspect_err(|err| deps.metrics.id_jag_refusal(crate::proto::v0_1::wire(err).1))?;
    Ok(Response::json(200, &json!({ "revoked": revoked })))
}

/// `POST /agent/event/notify` (SPEC-v0.7 11): a Security Event Token push;
/// 202 with an empty body whether or not it revoked anything.
fn event_notify(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let token = jwt_body(req, "application/secevent+jwt").map_err(|err| match err {
        Error::UnsupportedMediaType(why) => Error::InvalidRequest(why),
        other => other,
    })?;
    deps.run(conn, req, |ctx| {
        revoke::by_provider(ctx, &token, crate::jose::TokenKind::SecEvent)
    })
    .inspect_err(|err| deps.metrics.id_jag_refusal(crate::proto::v0_1::wire(err).1))?;
    Ok(Response::text(202, "text/plain; charset=utf-8", String::new()))
}

fn claim_request(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let body = json_body(req)?;
    let object = json_object(&body)?;
    let (token, email) = (required_str(object, "claim_token")?, required_str(object, "email")?);
    let answer = deps.run(conn, req, |ctx| v0_1::request_claim(ctx, token, email))?;
    Ok(Response::json(200, &answer))
}

fn claim_challenge(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let body = json_body(req)?;
    let token = required_str(json_object(&body)?, "claim_attempt_token")?;
    let (code, expires_ms) = deps.run(conn, req, |ctx| claim::mint_code(ctx, token))?;
    Ok(Response::json(
        200,
        &crate::proto::v0_1::Challenge::otp(&code, expires_ms),
    ))
}

fn claim_complete(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let body = json_body(req)?;
    let object = json_object(&body)?;
    let (token, otp) = (required_str(object, "claim_token")?, required_str(object, "otp")?);
    let answer = deps.run(conn, req, |ctx| v0_1::complete_claim(ctx, token, otp))?;
    Ok(Response::json(200, &answer))
}

/// The page the emailed link opens; showing it mints nothing.
fn claim_page(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let token = query_param(req, "token").unwrap_or_default();
    let state = claim::view(&deps.ctx(conn, None), &token)?;
    Ok(link_page(deps.config, state, &token, deps.now_ms))
}

/// The page's button: a code to read back to the agent.
fn claim_page_code(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let config = deps.config;
    let form = form_body(req)?;
    let token = form_value(&form, "token");
    deps.run(conn, req, |ctx| match claim::mint_code(ctx, &token) {
        Ok((code, expires_ms)) => Ok(pages::code(pages::Brand::of(config), &code, expires_ms, deps.now_ms)),
        Err(Error::ClaimSuperseded | Error::ClaimCompleted | Error::ClaimExpired(_)) => {
            let state = claim::view(ctx, &token)?;
            Ok(link_page(config, state, &token, deps.now_ms))
        }
        Err(other) => Err(other),
    })
}

fn claim_reject(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let config = deps.config;
    let form = form_body(req)?;
    let token = form_value(&form, "token");
    let confirmed = form_value(&form, "confirm") == "yes";
    let name = &pages::Brand::of(config);
    Ok(
        match deps.run(conn, req, |ctx| claim::reject(ctx, &token, confirmed))? {
            claim::Rejected::NeedsConfirmation => pages::confirm_reject(name, &token),
            claim::Rejected::Done => pages::notice(
                200,
                name,
                "Request cancelled",
                "The agent was not linked to you and this link no longer works. Nothing else is needed.",
            ),
            claim::Rejected::NotOpen(state) => link_page(config, state, &token, deps.now_ms),
        },
    )
}

/// The guarded API: who the caller is, or (with an upstream) the gateway.
fn api(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let caller = guard::authenticate(conn, deps.now_ms, req.header("authorization"))?;
    deps.last_used.record(caller.registration_id(), deps.now_ms);
    match deps.upstream {
        None => {
            caller.require_scope(&deps.config.settings.read_scope)?;
            Ok(Response::json(200, &caller.to_json()).with_header("Cache-Control", NO_STORE))
        }
        Some(upstream) => forward(deps, req, &caller, upstream),
    }
}

fn introspect(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let Some(expected) = &deps.config.settings.introspection_secret_hash else {
        return Err(Error::NotFound);
    };
    let presented = guard::bearer_token(req.header("authorization")).unwrap_or("");
    let presented_hash: String = crate::secrets::hash(presented)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if presented.is_empty() || presented_hash != *expected {
        return Err(Error::Unauthorized);
    }
    let token = form_value(&form_body(req)?, "token");
    Ok(Response::json(200, &guard::introspect(conn, deps.now_ms, &token)?))
}

/// RFC 7009 (SPEC-v0.7 10): `token` is required; the answer is an empty
/// 200 whether or not anything was revoked, so it reveals nothing.
fn oauth_revoke(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Result<Response, Error> {
    let form = oauth_form(req)?;
    let token = v0_7::revocation_token(&form)?;
    deps.run(conn, req, |ctx| revoke::self_revoke(ctx, token))?;
    Ok(Response::text(200, "text/plain; charset=utf-8", String::new()))
}

/// The form of an OAuth endpoint: any other body is `invalid_request`, not
/// 415 (RFC 6749's envelope knows no such code).
fn oauth_form(req: &Request) -> Result<Vec<(String, String)>, Error> {
    form_body(req).map_err(|err| match err {
        Error::UnsupportedMediaType(why) => Error::InvalidRequest(format!("the body must be a form: {why}")),
        other => other,
    })
}

/// A gateway request whose body was too large to be read before it reached
/// a worker ([`Body::Unread`]): a worker waits for the rest of it only for a
/// caller whose credential may send it, so slow anonymous uploads cannot
/// hold the workers. `Some` is the refusal; the body stays unread and the
/// connection closes after it.
pub fn refuse_upload(conn: &dyn Tx, deps: &Deps<'_>, req: &Request) -> Option<Response> {
    let settings = &deps.config.settings;
    let err = guard::authenticate(conn, deps.now_ms, req.header("authorization"))
        .and_then(|caller| caller.require_scope(gateway::required_scope(&req.method, settings)))
        .err()?;
    let mut response = error_response(&err, deps.config, &req.id);
    response.headers.push(("X-Content-Type-Options", "nosniff".into()));
    response.route = "api";
    Some(response)
}

/// The gateway: scope check, then the request goes upstream and the answer
/// streams back.
fn forward(deps: &Deps<'_>, req: &Request, caller: &guard::Caller, upstream: &str) -> Result<Response, Error> {
    let settings = &deps.config.settings;
    caller.require_scope(gateway::required_scope(&req.method, settings))?;
    let body = body_within(req, settings.gateway_max_body_bytes as usize)?.to_vec();
    let headers = gateway::upstream_request_headers(&req.headers, caller)?;
    let query = req.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("{}{}{query}", upstream.trim_end_matches('/'), req.path);
    let timeout = std::time::Duration::from_secs(settings.upstream_timeout_secs);
    let answer = deps.upstream_client.send(&url, &req.method, &headers, body, timeout)?;
    let mut response = Response::text(answer.status, "", String::new());
    response.headers.clear();
    response.forwarded_headers = gateway::client_response_headers(&answer.headers);
    response.stream = Some(answer.body);
    Ok(response)
}

/// The page a claim link shows in each state (SPEC.md 5.3).
fn link_page(config: &Config, state: claim::LinkState, token: &str, now: UnixMs) -> Response {
    let name = &pages::Brand::of(config);
    match state {
        claim::LinkState::Open { attempt, registration } => pages::claim(
            &pages::ClaimDetails {
                brand: name,
                registration_id: &registration.id,
                email: &attempt.email,
                expires_ms: attempt.expires_ms,
                now,
            },
            token,
        ),
        claim::LinkState::Unknown => pages::notice(
            404,
            name,
            "This link is not valid",
            "Check that the whole link from the email was opened.",
        ),
        claim::LinkState::Superseded => pages::notice(
            410,
            name,
            "This link was replaced",
            "A newer email was sent for this request. Use the link in the most recent email.",
        ),
        claim::LinkState::Expired => pages::notice(
            410,
            name,
            "This link expired",
            "Ask your agent to start the confirmation again; it will send a new email.",
        ),
        claim::LinkState::Claimed => pages::notice(
            200,
            name,
            "Already confirmed",
            "This agent is already linked to your account. Nothing else is needed.",
        ),
        claim::LinkState::Cancelled => pages::notice(
            200,
            name,
            "Request cancelled",
            "This request was cancelled. The agent was not linked to you.",
        ),
    }
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    let query = req.query.as_deref()?;
    super::form_pairs(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// An `application/x-www-form-urlencoded` body, as the claim page's forms send.
fn form_body(req: &Request) -> Result<Vec<(String, String)>, Error> {
    let essence = req
        .header("content-type")
        .map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if essence.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(Error::UnsupportedMediaType(format!(
            "{} (this form takes application/x-www-form-urlencoded)",
            essence.unwrap_or_else(|| "no type".into())
        )));
    }
    let text =
        std::str::from_utf8(body_bytes(req)?).map_err(|_| Error::InvalidRequest("the form is not UTF-8".into()))?;
    Ok(super::form_pairs(text))
}

fn form_value(form: &[(String, String)], name: &str) -> String {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn auth_md(_: &dyn Tx, deps: &Deps<'_>, _: &Request) -> Result<Response, Error> {
    let config = deps.config;
    let text = match &config.settings.auth_md_path {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| Error::Internal(format!("auth_md_path {path}: {e}")))?
        }
        None => discovery::auth_md(config),
    };
    Ok(Response::text(200, "text/markdown; charset=utf-8", text))
}

fn body_bytes(req: &Request) -> Result<&[u8], Error> {
    body_within(req, MAX_BODY_BYTES)
}

fn body_within(req: &Request, limit_bytes: usize) -> Result<&[u8], Error> {
    match &req.body {
        Body::Complete(bytes) => Ok(bytes),
        Body::TooLarge | Body::Unread => Err(Error::RequestTooLarge { limit_bytes }),
        Body::Unreadable => Err(Error::InvalidRequest("the request body could not be read".into())),
        Body::TimedOut => Err(Error::Edge(crate::error::Edge::Timeout)),
    }
}

/// The body of `POST /agent/auth/revoke` (SPEC.md 6): a compact JWS sent
/// as `application/logout+jwt`.
/// A compact JWS sent as the whole body with Content-Type `media`
/// (parameters allowed), surrounding whitespace trimmed.
fn jwt_body(req: &Request, media: &str) -> Result<String, Error> {
    let essence = req
        .header("content-type")
        .map(|t| t.split(';').next().unwrap_or("").trim());
    if !essence.is_some_and(|t| t.eq_ignore_ascii_case(media)) {
        let shown: String = essence
            .unwrap_or("no type")
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(80)
            .collect();
        return Err(Error::UnsupportedMediaType(format!("{shown} (send {media})")));
    }
    let bytes = body_bytes(req)?;
    let text = std::str::from_utf8(bytes).map_err(|_| Error::InvalidRequest("the token is not valid UTF-8".into()))?;
    Ok(text.trim().to_string())
}

/// The JSON body of a protocol request (SPEC.md section 3): a missing
/// Content-Type is read as JSON, parameters such as `charset` are allowed,
/// any other type is refused; the body must be UTF-8 and valid JSON.
fn json_body(req: &Request) -> Result<Value, Error> {
    if let Some(content_type) = req.header("content-type") {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            let shown: String = essence.chars().filter(|c| c.is_ascii_graphic()).take(80).collect();
            return Err(Error::UnsupportedMediaType(if shown.is_empty() {
                "an empty type".into()
            } else {
                shown
            }));
        }
    }
    let bytes = body_bytes(req)?;
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::InvalidRequest(format!("the body is not valid UTF-8 (at byte {})", e.valid_up_to())))?;
    if text.trim().is_empty() {
        return Err(Error::InvalidRequest(
            "the body is empty; expected a JSON object".into(),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::InvalidRequest(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        Request {
            id: "test".into(),
            method: method.into(),
            path: path.into(),
            query: None,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: Body::Complete(body.to_vec()),
            client_ip: None,
        }
    }

    fn send(req: Request) -> (Response, Value) {
        let (dir, conn) = store::open_temp();
        let config = Config::new("http://127.0.0.1:1", Settings::default());
        let keys = KeyCache::default();
        let deps = Deps {
            config: &config,
            keys: &keys,
            limiter: &Limiter::default(),
            upstream: None,
            upstream_client: &crate::upstream::Client::default(),
            writer: &crate::store::Writer::new(store::connect(&dir.path().join("test.db")).unwrap()),
            last_used: &Default::default(),
            metrics: &Metrics::default(),
            now_ms: UnixMs::from_millis(1_800_000_000_000),
            elapsed: std::time::Duration::ZERO,
            mail_wake: None,
            db_file: None,
        };
        let response = handle(&conn, &deps, &req);
        let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response, body)
    }

    #[test]
    fn every_endpoint_has_a_row_and_its_own_path() {
        let endpoints = Endpoint::ALL;
        for endpoint in &endpoints {
            assert!(
                ROUTES.iter().any(|r| r.at == At::Fixed(*endpoint)),
                "{endpoint:?} has no row"
            );
        }
        let mut paths: Vec<&str> = endpoints.iter().map(|e| e.path()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), endpoints.len(), "two endpoints share a path");
        // One place, one label.
        for r in ROUTES {
            assert!(ROUTES.iter().filter(|o| o.at == r.at).all(|o| o.label == r.label));
        }
    }

    #[test]
    fn content_types_other_than_json_are_refused() {
        let (resp, body) = send(request("POST", "/agent/auth", &[("content-type", "text/plain")], b"{}"));
        assert_eq!(
            (resp.status, body["error"].as_str()),
            (415, Some("unsupported_media_type"))
        );
        let (resp, _) = send(request(
            "POST",
            "/agent/auth",
            &[("content-type", "Application/JSON; charset=utf-8")],
            br#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
        ));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("cache-control"), Some("no-store"));
    }

    #[test]
    fn wrong_methods_get_405_with_allow() {
        let (resp, body) = send(request("GET", "/agent/auth", &[], b""));
        assert_eq!((resp.status, body["error"].as_str()), (405, Some("method_not_allowed")));
        assert_eq!(resp.header("allow"), Some("POST"));
        let (resp, _) = send(request("DELETE", "/api/resource", &[], b""));
        assert_eq!((resp.status, resp.header("allow")), (405, Some("GET, HEAD")));
    }

    #[test]
    fn errors_have_the_spec_body() {
        let (resp, body) = send(request("GET", "/nowhere", &[], b""));
        assert_eq!(resp.status, 404);
        assert_eq!(body["error"], "not_found");
        assert_eq!(body["message"], body["error_description"]);
    }
}

#[cfg(test)]
mod failure_tests {
    use super::*;
    use crate::settings::Settings;

    /// A broken database is a 500 that names only the request id; the
    /// detail goes to the log through `Response::reason`.
    #[test]
    fn a_database_failure_is_a_500_with_nothing_but_a_request_id() {
        let (dir, conn) = store::open_temp();
        conn.execute_batch("DROP TABLE audit_events").unwrap();
        let config = Config::new("http://127.0.0.1:1", Settings::default());
        let req = Request {
            id: "req123".into(),
            method: "POST".into(),
            path: "/agent/auth".into(),
            query: None,
            headers: vec![],
            body: Body::Complete(br#"{"type":"anonymous","requested_credential_type":"api_key"}"#.to_vec()),
            client_ip: None,
        };
        let keys = KeyCache::default();
        let deps = Deps {
            config: &config,
            keys: &keys,
            limiter: &Limiter::default(),
            upstream: None,
            upstream_client: &crate::upstream::Client::default(),
            writer: &crate::store::Writer::new(store::connect(&dir.path().join("test.db")).unwrap()),
            last_used: &Default::default(),
            metrics: &Metrics::default(),
            now_ms: UnixMs::from_millis(1_800_000_000_000),
            elapsed: std::time::Duration::ZERO,
            mail_wake: None,
            db_file: None,
        };
        let response = handle(&conn, &deps, &req);
        assert_eq!(response.status, 500);
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"], "server_error");
        assert_eq!(body["message"], "internal error; request id req123");
        assert!(
            response.reason.unwrap().contains("audit_events"),
            "the detail is kept for the log"
        );
        // The transaction rolled back: no half-made registration remains.
        let count: i64 = conn
            .query_row("SELECT count(*) FROM registrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0);
    }
}
