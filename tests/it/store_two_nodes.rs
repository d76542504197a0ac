//! Two authmd nodes on one PostgreSQL database (issue 14): two pools, as
//! two nodes would hold, racing on the rules SQLite's single writer made
//! race-free. Each test fails with its guard (the constraint or the
//! condition in the statement) taken out.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use authmd::internals::hash;
use authmd::internals::model::{CredentialType, Generation, RegistrationKind, Status};
use authmd::internals::store::attempts::NewAttempt;
use authmd::internals::store::delegations::{Delegation, PendingLink};
use authmd::internals::store::outbox::NewMessage;
use authmd::internals::store::postgres::{self as pg, Pool};
use authmd::internals::store::users::User;
use authmd::internals::store::{NewRegistration, Tx};
use authmd::time::UnixMs;

use crate::common::postgres;

fn at(ms: i64) -> UnixMs {
    UnixMs::from_millis(ms)
}

/// Two nodes' pools on one fresh database.
fn two_nodes() -> (Pool, Pool) {
    let url = postgres::database();
    (pg::open(&url).unwrap(), pg::open(&url).unwrap())
}

/// Runs `work(node)` on `threads` threads at once, spread over the two
/// pools, and answers what each returned.
fn race<T: Send + 'static>(
    nodes: &(Pool, Pool),
    threads: usize,
    work: impl Fn(&Pool, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let pool = if i % 2 == 0 { nodes.0.clone() } else { nodes.1.clone() };
            let (work, start) = (work.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                work(&pool, i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn registration(tx: &dyn Tx, id: &str) -> Result<(), authmd::Error> {
    tx.insert_registration(&NewRegistration {
        id,
        generation: Generation::V0_7,
        kind: RegistrationKind::Anonymous,
        status: Status::Unclaimed,
        user_id: None,
        claim_token_hash: None,
        requested_credential_type: Some(CredentialType::ApiKey),
        email: None,
        scopes: None,
        created_ms: at(0),
        expires_ms: None,
    })?;
    Ok(())
}

/// SPEC.md 4.2: the same jti at two nodes at once is accepted by one.
#[test]
fn one_jti_at_two_nodes_is_first_used_once() {
    let nodes = two_nodes();
    for round in 0..300 {
        let jti = format!("jti-{round}");
        let won = race(&nodes, 2, move |pool, _| {
            pool.write(|tx| Ok(tx.first_use("https://p", &jti, at(10_000), at(1_000))?))
                .unwrap()
        });
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "round {round}: {won:?}");
    }
}

/// SPEC.md 5: wrong codes tried at both nodes at once, each checked
/// against the code it read: exactly the limit is counted against it.
#[test]
fn wrong_codes_at_two_nodes_count_exactly_the_limit() {
    const LIMIT: i64 = 5;
    let nodes = two_nodes();
    let token = hash("attempt");
    nodes
        .0
        .write(|tx| {
            registration(tx, "reg_1")?;
            tx.open_attempt(&NewAttempt {
                id: "att_1",
                registration_id: "reg_1",
                email: "a@example.com",
                token_hash: &token,
                created_ms: at(0),
                expires_ms: at(10_000),
            })?;
            tx.set_attempt_code("att_1", b"mac", at(10_000))?;
            Ok(())
        })
        .unwrap();
    // 50 attempts from 10 threads, 5 each.
    let counted = race(&nodes, 10, move |pool, _| {
        (0..5)
            .filter_map(|_| {
                pool.write(|tx| {
                    let attempt = tx.attempt_by_token_hash(&token)?.unwrap();
                    if attempt.otp_mac.is_none() {
                        return Ok(None);
                    }
                    // Checking the code takes a moment: long enough for
                    // the other node to read it too.
                    std::thread::sleep(Duration::from_millis(5));
                    Ok(Some(tx.record_attempt_failure(&attempt.id, LIMIT)?))
                })
                .unwrap()
            })
            .collect::<Vec<i64>>()
    });
    // A failure that finds the code burned by the other node counts
    // nothing and answers the count as it stands (the limit).
    let mut below: Vec<i64> = counted.iter().flatten().copied().filter(|n| *n < LIMIT).collect();
    below.sort();
    assert_eq!(
        below,
        (1..LIMIT).collect::<Vec<_>>(),
        "each count below the limit answered once"
    );
    assert!(counted.iter().flatten().all(|n| *n <= LIMIT), "{counted:?}");
    let attempt = nodes
        .1
        .read(|tx| Ok(tx.attempt_by_token_hash(&token)?))
        .unwrap()
        .unwrap();
    assert_eq!(attempt.otp_failures, LIMIT, "counted against the code");
    assert_eq!(attempt.otp_mac, None, "burned");
}

/// SPEC-v0.7 9: one refresh token spent at two nodes at once: one spend.
#[test]
fn one_refresh_token_at_two_nodes_is_spent_once() {
    let nodes = two_nodes();
    nodes.0.write(|tx| registration(tx, "reg_1")).unwrap();
    for round in 0..200 {
        let token = hash(&format!("refresh-{round}"));
        nodes
            .0
            .write(|tx| Ok(tx.insert_refresh_token(&token, "reg_1", at(0), at(10_000))?))
            .unwrap();
        let spent = race(&nodes, 2, move |pool, _| {
            pool.write(|tx| Ok(tx.spend_refresh_token(&token, at(1_000))?)).unwrap()
        });
        assert_eq!(spent.iter().filter(|s| **s).count(), 1, "round {round}: {spent:?}");
    }
}

/// Two senders taking due mail at once: each message is taken (sent and
/// marked in the transaction that took it) by one of them.
#[test]
fn two_senders_take_each_message_once() {
    const MESSAGES: usize = 60;
    let nodes = two_nodes();
    nodes
        .0
        .write(|tx| {
            for n in 0..MESSAGES {
                tx.enqueue_mail(&NewMessage {
                    recipient: &format!("to{n}@example.com"),
                    subject: "s",
                    body_text: "t",
                    body_html: "h",
                    registration_id: None,
                    created_ms: at(n as i64),
                })?;
            }
            Ok(())
        })
        .unwrap();
    let taken = race(&nodes, 2, |pool, _| {
        let mut mine = Vec::new();
        loop {
            let batch = pool
                .write(|tx| {
                    let due = tx.due_mail(at(1_000), 4)?;
                    for message in &due {
                        // Sending takes a moment.
                        std::thread::sleep(Duration::from_millis(2));
                        tx.mark_mail_sent(message.id, at(1_000))?;
                    }
                    Ok(due.into_iter().map(|m| m.id).collect::<Vec<_>>())
                })
                .unwrap();
            if batch.is_empty() {
                return mine;
            }
            mine.extend(batch);
        }
    });
    let all: Vec<i64> = taken.iter().flatten().copied().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a message was taken twice");
    assert_eq!(distinct.len(), MESSAGES);
    assert!(taken.iter().all(|t| !t.is_empty()), "both senders took some");
    assert_eq!(nodes.1.read(|tx| Ok(tx.pending_mail_count()?)).unwrap(), 0);
}

/// What core's ID-JAG write does for a delegation (`core::register`): reads
/// the delegations of `(iss, sub)` and, finding none of its generation,
/// matches or provisions the user by email and makes a registration and its
/// delegation; answers the registration it made, if any.
fn delegated(tx: &dyn Tx, sub: &str, email: &str, id: &str) -> Result<Option<String>, authmd::Error> {
    let found = tx.delegations("https://p", sub)?;
    if found.iter().any(|d| d.generation == Generation::V0_7) {
        return Ok(None);
    }
    // Matching and provisioning take a moment: long enough for the other
    // node to read too.
    std::thread::sleep(Duration::from_millis(5));
    let user_id = match found.first() {
        Some(d) => d.user_id.clone(),
        None => provisioned(tx, email, &format!("usr_{id}"))?,
    };
    registration(tx, id)?;
    tx.put_delegation(
        &Delegation {
            iss: "https://p".into(),
            sub: sub.into(),
            generation: Generation::V0_7,
            user_id,
            registration_id: id.into(),
        },
        at(0),
    )?;
    Ok(Some(id.to_string()))
}

/// What core's `users::match_user` does: the user of `email`, or a new one.
fn provisioned(tx: &dyn Tx, email: &str, id: &str) -> Result<String, authmd::Error> {
    if let Some(user) = tx.user_by_email(email)? {
        return Ok(user.id);
    }
    std::thread::sleep(Duration::from_millis(5));
    tx.insert_user(&User {
        id: id.into(),
        email: Some(email.into()),
        phone_number: None,
        name: None,
        created_ms: at(0),
    })?;
    Ok(id.to_string())
}

/// SPEC-v0.7 4.3: ID-JAGs of one `(iss, sub)` at two nodes at once make one
/// registration of the delegation (issue 14: the delegation lookup in a
/// write waits for the other node's; without it every node found none).
#[test]
fn one_new_delegation_at_two_nodes_makes_one_registration() {
    let nodes = two_nodes();
    for round in 0..10 {
        let made = race(&nodes, 6, move |pool, i| {
            let (sub, email, id) = (
                format!("sub-{round}"),
                format!("u{round}@example.com"),
                format!("reg_{round}_{i}"),
            );
            pool.write(|tx| delegated(tx, &sub, &email, &id))
        });
        let made: Vec<String> = made
            .into_iter()
            .filter_map(|m| m.unwrap_or_else(|e| panic!("round {round}: {e}")))
            .collect();
        assert_eq!(made.len(), 1, "round {round}: {made:?}");
        let sub = format!("sub-{round}");
        let delegations = nodes.1.read(|tx| Ok(tx.delegations("https://p", &sub)?)).unwrap();
        assert_eq!(delegations.len(), 1);
        assert_eq!(delegations[0].registration_id, made[0]);
    }
}

/// SPEC.md 4.4: two first registrations of one new address at once (two
/// delegations) make one user, and both are bound to it (the lookup by
/// email in a write waits for the other node's; without it the second
/// insert broke the unique index, a 500).
#[test]
fn one_new_address_at_two_nodes_makes_one_user() {
    let nodes = two_nodes();
    for round in 0..10 {
        let users = race(&nodes, 6, move |pool, i| {
            let (sub, id) = (format!("sub-{round}-{i}"), format!("reg_{round}_{i}"));
            let email = format!("New{round}@Example.com");
            pool.write(|tx| {
                delegated(tx, &sub, &email, &id)?;
                Ok(tx.delegations("https://p", &sub)?[0].user_id.clone())
            })
        });
        let users: BTreeSet<String> = users
            .into_iter()
            .map(|u| u.unwrap_or_else(|e| panic!("round {round}: {e}")))
            .collect();
        assert_eq!(users.len(), 1, "round {round}: {users:?}");
    }
}

/// SPEC-v0.7 4.3: ID-JAGs of one `(iss, sub)` whose address is already an
/// account, at two nodes at once: one pending link, one registration for it.
#[test]
fn one_first_link_at_two_nodes_makes_one_pending_registration() {
    let nodes = two_nodes();
    nodes
        .0
        .write(|tx| provisioned(tx, "known@example.com", "usr_known"))
        .unwrap();
    for round in 0..10 {
        let made = race(&nodes, 6, move |pool, i| {
            let (sub, id) = (format!("sub-{round}"), format!("reg_{round}_{i}"));
            pool.write(|tx| {
                if !tx.delegations("https://p", &sub)?.is_empty() || tx.pending_link("https://p", &sub)?.is_some() {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(5));
                registration(tx, &id)?;
                let link = PendingLink {
                    registration_id: id.clone(),
                    iss: "https://p".into(),
                    sub: sub.clone(),
                    user_id: "usr_known".into(),
                };
                tx.put_pending_link(&link, at(0))?;
                Ok(Some(id.clone()))
            })
        });
        let made: Vec<String> = made
            .into_iter()
            .filter_map(|m| m.unwrap_or_else(|e| panic!("round {round}: {e}")))
            .collect();
        assert_eq!(made.len(), 1, "round {round}: {made:?}");
    }
}

/// SPEC-v0.7 4.3: a person confirms a first link on one node (the link read
/// by its registration, then bound as a delegation) while an ID-JAG for the
/// same `(iss, sub)` matches on the other. The ID-JAG's transaction begins
/// once the confirmation has read the link, and must see the delegation the
/// confirmation then binds, not the link it replaces (which would make the
/// ID-JAG a first link again, and its registration wait on a person who has
/// already confirmed).
#[test]
fn an_id_jag_during_a_first_link_confirmation_sees_the_bound_delegation() {
    let nodes = two_nodes();
    nodes
        .0
        .write(|tx| {
            provisioned(tx, "known@example.com", "usr_known")?;
            registration(tx, "reg_link")?;
            let link = PendingLink {
                registration_id: "reg_link".into(),
                iss: "https://p".into(),
                sub: "s".into(),
                user_id: "usr_known".into(),
            };
            tx.put_pending_link(&link, at(0))?;
            Ok(())
        })
        .unwrap();
    let (read, reading) = std::sync::mpsc::channel();
    let confirming = {
        let pool = nodes.0.clone();
        std::thread::spawn(move || {
            pool.write(|tx| {
                let link = tx.pending_link_of("reg_link")?.expect("the pending link");
                let _ = read.send(());
                // The rest of the confirmation, slower than the other node.
                std::thread::sleep(Duration::from_millis(300));
                let delegation = Delegation {
                    iss: link.iss,
                    sub: link.sub,
                    generation: Generation::V0_7,
                    user_id: link.user_id,
                    registration_id: link.registration_id,
                };
                tx.put_delegation(&delegation, at(1))?;
                tx.delete_pending_link("reg_link")?;
                Ok(())
            })
        })
    };
    reading.recv().unwrap();
    let seen = nodes
        .1
        .write(|tx| Ok((tx.delegations("https://p", "s")?, tx.pending_link("https://p", "s")?)))
        .unwrap();
    confirming.join().unwrap().unwrap();
    let (delegations, pending) = seen;
    assert_eq!(delegations.len(), 1, "{delegations:?}");
    assert_eq!(delegations[0].registration_id, "reg_link");
    assert!(pending.is_none(), "{pending:?}");
}
