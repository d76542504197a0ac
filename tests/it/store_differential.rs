//! The PostgreSQL store against the SQLite one (issue 14): the same
//! sequence of calls through `&dyn Tx` on a fresh database of each kind
//! gives the same answers, call by call. Every method of every table's
//! trait is called at least once, the set-wide `Selection` statements with
//! each kind of selection.

use authmd::internals::hash;
use authmd::internals::model::{CredentialType, EventName, Generation, RegistrationKind, Status};
use authmd::internals::store::assertions::NewAssertion;
use authmd::internals::store::attempts::{AttemptStatus, NewAttempt};
use authmd::internals::store::audit::Filter;
use authmd::internals::store::delegations::{Delegation, PendingLink};
use authmd::internals::store::documents::Document;
use authmd::internals::store::outbox::NewMessage;
use authmd::internals::store::providers::Provider;
use authmd::internals::store::registrations::Selection;
use authmd::internals::store::sessions::{Session, Signin};
use authmd::internals::store::users::User;
use authmd::internals::store::{self as store, NewCredential, NewEvent, NewRegistration, Tx};
use authmd::time::{UnixMs, UnixSecs};
use serde_json::json;

use crate::common::postgres;

fn at(ms: i64) -> UnixMs {
    UnixMs::from_millis(ms)
}

/// Each call's answer, as text, labelled with the call.
struct Log(Vec<String>);

macro_rules! call {
    ($log:expr, $e:expr) => {{
        let answer = $e;
        $log.0.push(format!("{}\n  => {:?}", stringify!($e), answer));
    }};
}

fn user(id: &str, email: Option<&str>, phone: Option<&str>, created: i64) -> User {
    User {
        id: id.into(),
        email: email.map(Into::into),
        phone_number: phone.map(Into::into),
        name: Some(format!("name of {id}")),
        created_ms: at(created),
    }
}

#[allow(clippy::too_many_arguments)] // reason: one row's columns, named at each call
fn registration<'a>(
    id: &'a str,
    generation: Generation,
    kind: RegistrationKind,
    status: Status,
    user_id: Option<&'a str>,
    claim: Option<&'a [u8; 32]>,
    created: i64,
    expires: Option<i64>,
) -> NewRegistration<'a> {
    NewRegistration {
        id,
        generation,
        kind,
        status,
        user_id,
        claim_token_hash: claim,
        requested_credential_type: Some(CredentialType::ApiKey),
        email: Some("agent@example.com"),
        scopes: Some("api.read"),
        created_ms: at(created),
        expires_ms: expires.map(at),
    }
}

/// The script: every trait method, in an order that builds on itself.
fn script(tx: &dyn Tx) -> Vec<String> {
    let mut log = Log(Vec::new());
    let l = &mut log;
    call!(l, tx.ping());

    // users
    call!(
        l,
        tx.insert_user(&user("usr_1", Some("One@Example.COM"), Some("+15550001"), 10))
    );
    call!(l, tx.insert_user(&user("usr_2", Some("two@example.com"), None, 20)));
    call!(l, tx.insert_user(&user("usr_3", None, Some("+15550003"), 30)));
    call!(l, tx.user("usr_1"));
    call!(l, tx.user("nobody"));
    call!(l, tx.user_by_email("ONE@example.com"));
    call!(l, tx.user_by_phone("+15550003"));
    call!(l, tx.users(2));
    call!(l, tx.users(10));

    // registrations
    let (c1, c2, c3) = (hash("claim-1"), hash("claim-2"), hash("claim-3"));
    use Generation::{V0_1, V0_7};
    use RegistrationKind::*;
    let regs = [
        registration(
            "reg_1",
            V0_1,
            Anonymous,
            Status::Unclaimed,
            None,
            Some(&c1),
            100,
            Some(5_000),
        ),
        registration(
            "reg_2",
            V0_1,
            AgentProvider,
            Status::Active,
            Some("usr_1"),
            None,
            200,
            None,
        ),
        registration(
            "reg_3",
            V0_1,
            EmailVerification,
            Status::PendingClaim,
            None,
            Some(&c2),
            300,
            Some(1_500),
        ),
        registration(
            "reg_4",
            V0_7,
            Anonymous,
            Status::Unclaimed,
            Some("usr_2"),
            None,
            400,
            Some(9_000),
        ),
        registration(
            "reg_5",
            V0_7,
            ServiceAuth,
            Status::Claimed,
            Some("usr_1"),
            None,
            500,
            None,
        ),
        registration(
            "reg_6",
            V0_7,
            AgentProvider,
            Status::Active,
            Some("usr_3"),
            None,
            600,
            None,
        ),
    ];
    for reg in &regs {
        call!(l, tx.insert_registration(reg));
    }
    call!(l, tx.registration("reg_3"));
    call!(l, tx.registration("none"));
    call!(l, tx.registration_by_claim_token_hash(&c1));
    call!(l, tx.set_registration_status("reg_1", Status::PendingClaim, at(110)));
    call!(l, tx.mark_claimed("reg_4", "usr_2", at(410)));
    call!(l, tx.replace_claim_token("reg_1", &c3));
    call!(l, tx.registration_by_claim_token_hash(&c1));
    call!(l, tx.registration_by_claim_token_hash(&c3));
    call!(l, tx.user_has_other_agent("usr_1", "reg_2"));
    call!(l, tx.user_has_other_agent("usr_3", "reg_6"));
    call!(l, tx.add_claim_failure("reg_1"));
    call!(l, tx.add_claim_failure("reg_1"));
    call!(l, tx.registrations(None, 4));
    call!(l, tx.registrations(Some(Status::Active), 10));

    // credentials
    let (k1, k2, k3) = (hash("key-1"), hash("token-2"), hash("token-3"));
    for (id, reg, kind, token_hash, expires) in [
        ("crd_1", "reg_1", CredentialType::ApiKey, &k1, None),
        ("crd_2", "reg_2", CredentialType::AccessToken, &k2, Some(1_000)),
        ("crd_3", "reg_6", CredentialType::AccessToken, &k3, Some(9_000)),
    ] {
        call!(
            l,
            tx.insert_credential(&NewCredential {
                id,
                registration_id: reg,
                kind,
                token_hash,
                scopes: "api.read",
                created_ms: at(150),
                expires_ms: expires.map(at),
            })
        );
    }
    call!(l, tx.credential_by_hash(&k1));
    call!(l, tx.credential_by_hash(&hash("unknown")));
    call!(l, tx.set_live_credential_scopes("reg_1", "api.read api.write"));
    call!(l, tx.credential_by_hash(&k1));
    call!(l, tx.revoke_credential("crd_3", at(160)));
    call!(l, tx.revoke_credential("crd_3", at(170)));
    call!(l, tx.prune_expired_credentials(at(1_000)));
    call!(l, tx.credential_by_hash(&k2));

    // attempts
    let (t1, t2, t3) = (hash("attempt-1"), hash("attempt-2"), hash("attempt-3"));
    let attempt = |id, registration_id, token_hash, created| NewAttempt {
        id,
        registration_id,
        email: "agent@example.com",
        token_hash,
        created_ms: at(created),
        expires_ms: at(created + 600),
    };
    call!(l, tx.open_attempt(&attempt("att_1", "reg_3", &t1, 310)));
    call!(l, tx.set_attempt_code("att_1", b"mac-1", at(900)));
    call!(l, tx.open_attempt(&attempt("att_2", "reg_3", &t2, 320)));
    call!(l, tx.attempt_by_token_hash(&t1));
    call!(l, tx.open_attempt_of("reg_3"));
    call!(l, tx.open_attempt_of("reg_2"));
    call!(l, tx.set_attempt_code("att_2", b"mac-2", at(920)));
    call!(l, tx.record_attempt_failure("att_2", 3));
    call!(l, tx.record_attempt_failure("att_2", 3));
    call!(l, tx.attempt_by_token_hash(&t2));
    call!(l, tx.record_attempt_failure("att_2", 3));
    call!(l, tx.attempt_by_token_hash(&t2));
    call!(l, tx.confirm_attempt("att_2", "usr_3", b"mac-3", at(950), at(330)));
    call!(l, tx.attempt_by_token_hash(&t2));
    call!(l, tx.set_attempt_status("att_2", AttemptStatus::Cancelled));
    call!(l, tx.open_attempt(&attempt("att_3", "reg_3", &t3, 340)));
    call!(l, tx.close_attempts("reg_3"));
    call!(l, tx.open_attempt_of("reg_3"));
    call!(l, tx.open_attempt(&attempt("att_4", "reg_1", &hash("attempt-4"), 350)));
    call!(l, tx.set_attempt_code("att_4", b"mac-4", at(950)));

    // delegations
    let delegation = |generation, user_id: &str, registration_id: &str| Delegation {
        iss: "https://p".into(),
        sub: "s1".into(),
        generation,
        user_id: user_id.into(),
        registration_id: registration_id.into(),
    };
    call!(l, tx.put_delegation(&delegation(V0_1, "usr_1", "reg_2"), at(210)));
    call!(l, tx.put_delegation(&delegation(V0_7, "usr_1", "reg_5"), at(510)));
    call!(l, tx.delegations("https://p", "s1"));
    call!(l, tx.delegation_of("reg_5"));
    call!(l, tx.delegation_of("reg_1"));
    call!(l, tx.revocation_marks("https://p", "s1"));
    call!(l, tx.mark_revoked_by_provider("https://p", "s1", UnixSecs::new(42)));
    call!(l, tx.mark_revoked_by_provider("https://p", "s1", UnixSecs::new(40)));
    call!(l, tx.revocation_marks("https://p", "s1"));
    call!(l, tx.user_has_delegation_from("usr_1", "https://p"));
    call!(l, tx.user_has_delegation_from("usr_2", "https://p"));
    let link = PendingLink {
        registration_id: "reg_6".into(),
        iss: "https://q".into(),
        sub: "s2".into(),
        user_id: "usr_3".into(),
    };
    call!(l, tx.put_pending_link(&link, at(610)));
    call!(l, tx.pending_link("https://q", "s2"));
    call!(l, tx.pending_link_of("reg_6"));
    call!(l, tx.pending_link_of("reg_1"));
    call!(l, tx.end_delegations("https://p", "s1", at(700)));
    call!(l, tx.delegations("https://p", "s1"));
    call!(l, tx.delegation_of("reg_2"));
    call!(l, tx.put_delegation(&delegation(V0_7, "usr_1", "reg_5"), at(710)));
    call!(l, tx.delegations("https://p", "s1"));

    // assertions and refresh tokens
    for (jti, reg) in [("jti_1", "reg_5"), ("jti_2", "reg_5"), ("jti_3", "reg_6")] {
        call!(
            l,
            tx.record_assertion(&NewAssertion {
                jti,
                registration_id: reg,
                kid: "kid_1",
                created_ms: at(800),
                expires_ms: at(4_000),
            })
        );
    }
    call!(l, tx.assertion("jti_1"));
    call!(l, tx.revoke_assertions_of("reg_5", at(810)));
    call!(l, tx.revoke_assertions_of("reg_5", at(820)));
    call!(l, tx.assertion("jti_2"));
    call!(l, tx.assertion("jti_3"));
    let (r1, r2) = (hash("refresh-1"), hash("refresh-2"));
    call!(l, tx.insert_refresh_token(&r1, "reg_5", at(830), at(5_000)));
    call!(l, tx.insert_refresh_token(&r2, "reg_5", at(840), at(5_000)));
    call!(l, tx.refresh_token(&r1));
    call!(l, tx.spend_refresh_token(&r1, at(850)));
    call!(l, tx.spend_refresh_token(&r1, at(860)));
    call!(l, tx.refresh_token(&r1));
    call!(l, tx.revoke_refresh_tokens_of("reg_5", at(870)));
    call!(l, tx.spend_refresh_token(&r2, at(880)));
    call!(l, tx.refresh_token(&r2));
    call!(l, tx.refresh_token(&hash("none")));

    // documents, local keys, settings
    let doc = |body: &[u8], fetched| Document {
        body: body.to_vec(),
        fetched_ms: at(fetched),
        expires_ms: at(fetched + 300),
    };
    call!(l, tx.document("https://p/jwks"));
    call!(l, tx.put_document("https://p/jwks", &doc(b"{\"keys\":[]}", 100)));
    call!(l, tx.put_document("https://p/jwks", &doc(b"{\"keys\":[1]}", 200)));
    call!(l, tx.document("https://p/jwks"));
    call!(l, tx.local_key("otp", b"first", at(100)));
    call!(l, tx.local_key("otp", b"second", at(200)));
    call!(l, tx.put_setting("resource_name", Some("API"), at(100)));
    call!(l, tx.put_setting("resource_name", Some("Other"), at(110)));
    call!(l, tx.put_setting("scopes_supported", Some("a b"), at(120)));
    call!(l, tx.stored_settings());
    call!(l, tx.put_setting("scopes_supported", None, at(130)));
    call!(l, tx.stored_settings());

    // providers
    let provider = |issuer: &str, name: &str| Provider {
        issuer: issuer.into(),
        pinned_jwks_uri: Some(format!("{issuer}/keys")),
        client_id: None,
        name: Some(name.into()),
        created_ms: at(100),
    };
    call!(l, tx.upsert_provider(&provider("https://b", "B")));
    call!(l, tx.upsert_provider(&provider("https://a", "A")));
    call!(l, tx.upsert_provider(&provider("https://B", "upper")));
    call!(l, tx.upsert_provider(&provider("https://b", "B again")));
    call!(l, tx.provider("https://b"));
    call!(l, tx.provider("https://none"));
    call!(l, tx.providers());
    call!(l, tx.remove_provider("https://a"));
    call!(l, tx.remove_provider("https://a"));
    call!(l, tx.providers());

    // replay
    call!(l, tx.first_use("https://p", "j1", at(2_000), at(1_000)));
    call!(l, tx.first_use("https://p", "j1", at(2_000), at(1_500)));
    call!(l, tx.first_use("https://other", "j1", at(2_000), at(1_500)));
    call!(l, tx.first_use("https://p", "j1", at(3_000), at(2_000)));
    call!(l, tx.prune_replay(at(10_000)));
    call!(l, tx.prune_replay(at(10_000) + store::replay::PRUNE_MARGIN));

    // rate_windows: a window fills, ends, begins again; a clock a window
    // behind begins one too; pruning by start.
    call!(l, tx.count_in_window("anonymous/ip/a", at(1_000_000), 60_000, 2));
    call!(l, tx.count_in_window("anonymous/ip/a", at(1_030_000), 60_000, 2));
    call!(l, tx.count_in_window("anonymous/ip/a", at(1_059_999), 60_000, 2));
    call!(l, tx.count_in_window("anonymous/global", at(1_059_999), 60_000, 1));
    call!(l, tx.count_in_window("anonymous/global", at(1_059_999), 60_000, 1));
    call!(l, tx.count_in_window("anonymous/ip/a", at(1_060_000), 60_000, 2));
    call!(l, tx.count_in_window("anonymous/ip/a", at(1_000_000), 60_000, 2));
    call!(l, tx.count_in_window("anonymous/ip/a", at(1_000_001), 60_000, u64::MAX));
    call!(l, tx.prune_rate_windows(at(1_000_000)));
    call!(l, tx.prune_rate_windows(at(1_060_000)));

    // sessions and sign-ins
    let (s1, s2, s3) = (hash("session-1"), hash("session-2"), hash("session-3"));
    for (id, user_id, created) in [(&s1, "usr_1", 100), (&s2, "usr_2", 200), (&s3, "usr_1", 300)] {
        call!(
            l,
            tx.insert_session(
                id,
                &Session {
                    user_id: user_id.into(),
                    created_ms: at(created),
                    expires_ms: at(created + 1_000),
                }
            )
        );
    }
    call!(l, tx.session(&s1));
    call!(l, tx.list_sessions(None, at(1_150)));
    call!(l, tx.list_sessions(Some("usr_1"), at(0)));
    call!(l, tx.delete_session(&s1));
    call!(l, tx.session(&s1));
    call!(l, tx.delete_sessions(Some("usr_1")));
    call!(l, tx.delete_sessions(None));
    let presession = hash("presession");
    let signin = Signin {
        email: "one@example.com".into(),
        return_to: "/".into(),
        code_mac: Some(b"code".to_vec()),
        code_expires_ms: Some(at(900)),
        failures: 0,
    };
    call!(l, tx.put_signin(&presession, &signin, at(100)));
    call!(l, tx.record_signin_failure(&presession, 2));
    call!(l, tx.signin(&presession));
    call!(l, tx.record_signin_failure(&presession, 2));
    call!(l, tx.signin(&presession));
    call!(l, tx.put_signin(&presession, &signin, at(200)));
    call!(l, tx.signin(&presession));
    call!(l, tx.delete_signin(&presession));
    call!(l, tx.signin(&presession));

    // signing keys (no Debug: the key is never printed)
    let keys = |tx: &dyn Tx| {
        tx.signing_keys().map(|keys| {
            keys.into_iter()
                .map(|k| (k.kid, k.pkcs8, k.created_ms, k.retired_ms))
                .collect::<Vec<_>>()
        })
    };
    call!(l, keys(tx));
    call!(l, tx.rotate_signing_key("kid_1", b"pkcs8-1", at(100)));
    call!(l, tx.rotate_signing_key("kid_2", b"pkcs8-2", at(200)));
    call!(l, tx.rotate_signing_key("kid_3", b"pkcs8-3", at(300)));
    call!(l, keys(tx));
    call!(l, tx.drop_signing_keys_retired_before(at(200)));
    call!(l, keys(tx));

    // outbox
    for (n, created) in [(1, 100), (2, 50), (3, 300)] {
        call!(
            l,
            tx.enqueue_mail(&NewMessage {
                recipient: &format!("to{n}@example.com"),
                subject: "Claim",
                body_text: "text",
                body_html: "<p>html</p>",
                registration_id: (n == 1).then_some("reg_3"),
                created_ms: at(created),
            })
        );
    }
    call!(l, tx.due_mail(at(200), 5));
    call!(l, tx.due_mail(at(400), 2));
    call!(l, tx.pending_mail_count());
    let due = tx.due_mail(at(400), 5).unwrap();
    call!(l, tx.mark_mail_sent(due[0].id, at(410)));
    call!(l, tx.mark_mail_retry(due[1].id, "451 try later", at(1_000)));
    call!(l, tx.mark_mail_failed(due[2].id, "550 no such user", at(420)));
    call!(l, tx.due_mail(at(500), 5));
    call!(l, tx.due_mail(at(1_000), 5));
    call!(l, tx.pending_mail_count());
    call!(l, tx.failed_mail_count());

    // audit
    for (at_ms, name, reg) in [
        (100, EventName::RegistrationCreated, Some("reg_1")),
        (200, EventName::CredentialIssued, Some("reg_1")),
        (300, EventName::RegistrationCreated, None),
    ] {
        call!(
            l,
            tx.record_event(
                at(at_ms),
                name,
                NewEvent {
                    registration_id: reg,
                    client_ip: Some("192.0.2.1"),
                    iss: Some("https://p"),
                    sub: Some("s1"),
                    agent_platform: Some("platform"),
                    agent_context_id: None,
                    detail: json!({"b": 1, "a": "x"}).as_object().unwrap().clone(),
                }
            )
        );
    }

    // the set-wide statements, each kind of selection, with its events
    let detail = json!({"reason": "test"}).as_object().unwrap().clone();
    let set_wide = |l: &mut Log, chosen: Selection<'_>, now: i64, status: Status| {
        let now = at(now);
        call!(
            l,
            tx.record_event_for_each(chosen, now, EventName::RegistrationRevoked, &detail)
        );
        call!(l, tx.mark_revoked_here(chosen, now));
        call!(l, tx.revoke_credentials_of(chosen, now));
        call!(l, tx.close_attempts_of(chosen, now));
        call!(l, tx.end_registrations(chosen, status, now));
    };
    set_wide(l, Selection::Lapsed, 1_600, Status::Expired);
    call!(l, tx.registration("reg_3"));
    set_wide(l, Selection::Registration("reg_1"), 1_700, Status::Revoked);
    call!(l, tx.attempt_by_token_hash(&hash("attempt-4")));
    call!(l, tx.credential_by_hash(&k1));
    set_wide(
        l,
        Selection::Issuer {
            iss: "https://p",
            sub: Some("s1"),
        },
        1_800,
        Status::Revoked,
    );
    call!(l, tx.revocation_marks("https://p", "s1"));
    set_wide(
        l,
        Selection::Issuer {
            iss: "https://q",
            sub: None,
        },
        1_900,
        Status::Revoked,
    );
    set_wide(l, Selection::User("usr_2"), 2_000, Status::Revoked);
    set_wide(l, Selection::All, 2_100, Status::Revoked);
    call!(l, tx.registrations(None, 10));
    call!(l, tx.revocation_marks("https://p", "s1"));

    // audit listing, with each filter
    call!(l, tx.events(&Filter::default()));
    call!(
        l,
        tx.events(&Filter {
            event: Some(EventName::RegistrationCreated),
            ..Default::default()
        })
    );
    call!(
        l,
        tx.events(&Filter {
            since_ms: Some(at(200)),
            limit: Some(3),
            ..Default::default()
        })
    );
    call!(
        l,
        tx.events(&Filter {
            after_id: 2,
            limit: Some(2),
            ..Default::default()
        })
    );
    call!(
        l,
        tx.events(&Filter {
            event: Some(EventName::RegistrationRevoked),
            since_ms: Some(at(1_800)),
            after_id: 1,
            limit: None,
        })
    );
    // audit retention (issue 15): the oldest first, a batch at a time
    call!(l, tx.last_event_id());
    call!(l, tx.prune_events(at(250), 1));
    call!(
        l,
        tx.events(&Filter {
            limit: Some(2),
            ..Default::default()
        })
    );
    call!(l, tx.prune_events(at(250), 10));
    call!(l, tx.prune_events(at(250), 10));
    call!(l, tx.prune_events(at(1_750), 1000));
    call!(l, tx.events(&Filter::default()));
    call!(l, tx.last_event_id());
    log.0
}

#[test]
fn postgres_answers_every_call_as_sqlite_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = store::open(&dir.path().join("diff.db")).unwrap();
    let expected = store::write(&mut sqlite, |tx| Ok(script(tx))).unwrap();
    let pool = store::postgres::open(&postgres::database()).unwrap();
    // The answers are compared before the commit's outcome, so a failed
    // statement shows as the first answer that differs.
    let mut got = Vec::new();
    let committed = pool.write(|tx| {
        got = script(tx);
        Ok(())
    });
    for (sqlite, postgres) in expected.iter().zip(&got) {
        assert_eq!(sqlite, postgres, "SQLite, then PostgreSQL");
    }
    assert_eq!(expected.len(), got.len());
    committed.unwrap();
    // What was written reads back the same in a read-only transaction.
    let reread = |tx: &dyn Tx| {
        Ok(format!(
            "{:?}{:?}{:?}",
            tx.registrations(None, 10),
            tx.users(10),
            tx.events(&Filter::default())
        ))
    };
    assert_eq!(store::write(&mut sqlite, reread).unwrap(), pool.read(reread).unwrap());
}
