//! Crash safety: registrations from several threads, SIGKILL of the server
//! mid-way, restart on the same file. Every registration that was answered
//! 200 still works, the database passes `PRAGMA integrity_check`, and the
//! replay store still refuses the jtis it accepted.

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{Client, TestServer};
use authmd_dev::{Alg, JwksServer, SigningKey};
use serde_json::json;

#[test]
fn acknowledged_registrations_survive_sigkill() {
    let mut server = TestServer::start();
    let provider = JwksServer::start("127.0.0.1:0").unwrap();
    let key = SigningKey::generate(Alg::Es256, "k");
    provider.publish(&[&key], "max-age=3600");
    server.cli_ok(&["provider", "add", &provider.base_url]);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;

    let acknowledged: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..6 {
            let (server, acknowledged, stop, provider, key) = (&server, &acknowledged, &stop, &provider, &key);
            scope.spawn(move || {
                for n in 0..400 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    // Half anonymous, half ID-JAG (whose jti must stay used).
                    let (body, assertion) = if n % 2 == 0 {
                        (json!({"type":"anonymous","requested_credential_type":"api_key"}), None)
                    } else {
                        let claims = authmd_dev::id_jag_claims(&provider.base_url, &format!("u{worker}-{n}"), &server.base, now);
                        let token = key.sign(&authmd_dev::id_jag_header(), &claims);
                        (json!({"type":"identity_assertion","assertion_type":"urn:ietf:params:oauth:token-type:id-jag","assertion":token,"requested_credential_type":"api_key"}), Some(token))
                    };
                    // A connection cut by the kill panics inside the helper; that
                    // request was never acknowledged.
                    let reply = std::panic::catch_unwind(|| server.post_json("/agent/auth", &body.to_string()));
                    match reply {
                        Ok(reply) if reply.status == 200 => {
                            let credential = reply.json()["credential"].as_str().unwrap().to_string();
                            acknowledged.lock().unwrap().push((credential, assertion));
                        }
                        _ => return,
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(700));
        Command::new("kill")
            .args(["-KILL", &server.pid().to_string()])
            .status()
            .unwrap();
        stop.store(true, Ordering::SeqCst);
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() > 20,
        "the load barely ran ({} acknowledged)",
        acknowledged.len()
    );

    server.stop_after_signal();
    let conn = rusqlite::Connection::open(server.db()).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    server.restart_after_crash();
    for (credential, _) in &acknowledged {
        let reply = server.get_with_token("/api/resource", credential);
        assert_eq!(
            reply.status, 200,
            "an acknowledged registration was lost: {}",
            reply.body
        );
    }
    let replayed = acknowledged
        .iter()
        .filter_map(|(_, assertion)| assertion.as_ref())
        .take(20);
    for token in replayed {
        let body = json!({"type":"identity_assertion","assertion_type":"urn:ietf:params:oauth:token-type:id-jag","assertion":token,"requested_credential_type":"api_key"});
        server
            .post_json("/agent/auth", &body.to_string())
            .assert_error(400, "replay_detected");
    }
}
