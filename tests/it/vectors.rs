//! `../shared/vectors/jws.json` over HTTP: every case against the real
//! server, in a fresh one per case (the vectors' README asks for an empty
//! replay store per case) whose base URL is the vectors' service, whose clock
//! stands at the case's `now`, and which trusts the vectors' issuer with the
//! vectors' JWKS, served by a real provider on loopback. ID-JAG cases go
//! through both generations' registration; logout tokens through the
//! provider revocation endpoint (SPEC.md 6). The verifier's own unit test
//! (`src/jose/vector_tests.rs`) runs the same file without HTTP.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::common::{Client, InProcess, Reply, identity_assertion};
use authmd::time::UnixMs;
use authmd_dev::{JWKS_PATH, JwksServer};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/jws.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("the vector file is JSON")
}

/// A server as the vectors describe it, at `now`.
fn server_at(file: &Value, provider: &JwksServer, now: i64) -> InProcess {
    let number = |key: &str| file[key].as_u64().unwrap().to_string();
    let (skew, lifetime) = (number("clock_skew_secs"), number("max_assertion_lifetime_secs"));
    let server = InProcess::start_at(
        file["service_issuer"].as_str().unwrap(),
        UnixMs::from_millis(now * 1000),
        &[
            ("resource", file["service_resource"].as_str().unwrap()),
            ("clock_skew_secs", &skew),
            ("max_assertion_lifetime_secs", &lifetime),
        ],
    );
    let jwks_uri = format!("{}{JWKS_PATH}", provider.base_url);
    server.cli_ok(&[
        "provider",
        "add",
        file["issuer"].as_str().unwrap(),
        "--jwks-uri",
        &jwks_uri,
    ]);
    server
}

fn register(server: &InProcess, token: &str) -> Reply {
    let body = json!({
        "type": "identity_assertion",
        "assertion_type": "urn:ietf:params:oauth:token-type:id-jag",
        "assertion": token,
        "requested_credential_type": "access_token",
    });
    server.post_json("/agent/auth", &body.to_string())
}

fn revoke(server: &InProcess, token: &str) -> Reply {
    server.request(
        "POST",
        "/agent/auth/revoke",
        &[("Content-Type", "application/logout+jwt")],
        token.as_bytes(),
    )
}

/// A refusal's code, once its envelope checked out: SPEC.md 10's body with
/// a 400 (the status of every section-4 code).
fn refusal(reply: &Reply) -> Result<String, String> {
    let body: Value = serde_json::from_str(&reply.body).map_err(|_| format!("{}: {}", reply.status, reply.body))?;
    let code = body["error"].as_str().unwrap_or_default().to_string();
    let message = body["message"].as_str().unwrap_or_default();
    if reply.status != 400 || message.is_empty() || body["error_description"] != message {
        return Err(format!("{} {}: not a 400 refusal envelope", reply.status, reply.body));
    }
    Ok(code)
}

/// SPEC-v0.7 4.3: an ID-JAG the verifier accepts but without `auth_time`
/// (no vector has one) is a 401 challenge.
fn login_required(reply: &Reply) -> Result<(), String> {
    let body: Value = serde_json::from_str(&reply.body).map_err(|_| reply.body.clone())?;
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    let fits = reply.status == 401
        && body["error"] == "login_required"
        && body["max_age"] == 3600
        && body["message"].as_str().is_some_and(|m| !m.is_empty())
        && body["message"] == body["error_description"]
        && challenge.starts_with(r#"AgentAuth error="login_required", max_age="3600""#);
    if !fits {
        return Err(format!(
            "{} {} ({challenge:?}): not the login_required challenge",
            reply.status, reply.body
        ));
    }
    Ok(())
}

/// One ID-JAG case through both generations. v0.7 goes first, so that
/// v0.1's answer shows what v0.7 consumed: an accepted token refused there
/// only for its missing `auth_time` must leave its jti unused.
fn id_jag_case(file: &Value, provider: &JwksServer, case: &Value, expect: &[&str]) -> Result<(), String> {
    let server = server_at(file, provider, case["now"].as_i64().unwrap());
    let token = case["token"].as_str().unwrap();
    let v0_7 = identity_assertion(&server, token);
    let v0_1 = register(&server, token);
    if expect.contains(&"ok") {
        login_required(&v0_7).map_err(|e| format!("v0.7: {e}"))?;
        if v0_1.status != 200 {
            return Err(format!("v0.1 after v0.7: {} {}", v0_1.status, v0_1.body));
        }
        let credential = v0_1.json()["credential"].as_str().unwrap_or_default().to_string();
        let api = server.get_with_token("/api/resource", &credential);
        if api.status != 200 {
            return Err(format!("its credential at the API: {} {}", api.status, api.body));
        }
        let again = refusal(&register(&server, token)).map_err(|e| format!("v0.1 again: {e}"))?;
        return match again.as_str() {
            "replay_detected" => Ok(()),
            other => Err(format!("v0.1 again: {other}, not replay_detected")),
        };
    }
    let (new, old) = (
        refusal(&v0_7).map_err(|e| format!("v0.7: {e}"))?,
        refusal(&v0_1).map_err(|e| format!("v0.1: {e}"))?,
    );
    if !expect.contains(&old.as_str()) || new != old {
        return Err(format!("v0.1 {old}, v0.7 {new}"));
    }
    Ok(())
}

/// One logout case. An accepted one revokes what the provider asserted
/// about its `sub`: a v0.1 registration made first from the accepted
/// `es256_ok` vector (same issuer and subject).
fn logout_case(file: &Value, provider: &JwksServer, case: &Value, expect: &[&str]) -> Result<(), String> {
    let server = server_at(file, provider, case["now"].as_i64().unwrap());
    let token = case["token"].as_str().unwrap();
    if !expect.contains(&"ok") {
        let code = refusal(&revoke(&server, token))?;
        return if expect.contains(&code.as_str()) {
            Ok(())
        } else {
            Err(code)
        };
    }
    let es256_ok = file["id_jag"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "es256_ok")
        .expect("the es256_ok vector");
    let made = register(&server, es256_ok["token"].as_str().unwrap());
    if made.status != 200 {
        return Err(format!("registering es256_ok first: {} {}", made.status, made.body));
    }
    let credential = made.json()["credential"].as_str().unwrap_or_default().to_string();
    let revoked = revoke(&server, token);
    if revoked.status != 200 || revoked.json() != json!({ "revoked": 1 }) {
        return Err(format!("{} {}", revoked.status, revoked.body));
    }
    let api = server.get_with_token("/api/resource", &credential);
    if api.status != 401 {
        return Err(format!("the revoked credential at the API: {}", api.status));
    }
    match refusal(&revoke(&server, token))?.as_str() {
        "replay_detected" => Ok(()),
        other => Err(format!("again: {other}, not replay_detected")),
    }
}

#[test]
fn every_shared_jws_vector_gets_its_outcome_over_http() {
    let file = vectors();
    let provider = JwksServer::start("127.0.0.1:0").unwrap();
    provider.put(JWKS_PATH, file["jwks"].clone(), "public, max-age=3600");
    let cases: Vec<(&str, &Value)> = ["id_jag", "logout"]
        .into_iter()
        .flat_map(|set| file[set].as_array().unwrap().iter().map(move |case| (set, case)))
        .collect();
    let ran = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let run = |(set, case): &(&str, &Value)| {
        let expect: Vec<&str> = case["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        let outcome = match *set {
            "id_jag" => id_jag_case(&file, &provider, case, &expect),
            _ => logout_case(&file, &provider, case, &expect),
        };
        ran.fetch_add(1, Ordering::SeqCst);
        if let Err(why) = outcome {
            let failure = format!("{} (expected {expect:?}): {why}", case["name"]);
            failures.lock().unwrap().push(failure);
        }
    };
    // A server per case: four lanes of them at once keep the run short.
    std::thread::scope(|scope| {
        for lane in cases.chunks(cases.len().div_ceil(4)) {
            scope.spawn(|| lane.iter().for_each(run));
        }
    });
    let (ran, mut failures) = (ran.into_inner(), failures.into_inner().unwrap());
    failures.sort();
    assert!(ran == cases.len() && ran >= 77, "{ran} of {} cases ran", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {ran} vectors disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
