//! `../shared/vectors/jws.json`: tokens signed by an independent
//! implementation (pyca/cryptography). Every case's outcome must be one of
//! its `expect` codes. The trust list, replay store and audiences are
//! emulated exactly as the vectors' README says.

use serde_json::Value;

use super::{Jwks, Policy, TokenKind, parse, verify};

pub(crate) fn shared(path: &str) -> Value {
    let full = format!("{}/../shared/vectors/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).expect("vector file is JSON")
}

/// The outcome the verifier gives a case: `ok` or a SPEC.md code.
fn outcome(file: &Value, jwks: &Jwks, token: &str, now: i64, kind: TokenKind) -> (String, String) {
    let policy = Policy {
        audiences: vec![
            file["service_issuer"].as_str().unwrap().to_string(),
            file["service_resource"].as_str().unwrap().to_string(),
        ],
        clock_skew_secs: file["clock_skew_secs"].as_u64().unwrap(),
        max_assertion_lifetime_secs: file["max_assertion_lifetime_secs"].as_u64().unwrap(),
        logout_lifetime_without_exp_secs: file["logout_lifetime_without_exp_secs"].as_u64().unwrap(),
    };
    let trusted = file["issuer"].as_str().unwrap();
    let unverified = match parse(token, kind) {
        Ok(u) => u,
        Err(r) => return (r.code().into(), r.to_string()),
    };
    // The trust list is checked before keys are looked at.
    if unverified.issuer() != Some(trusted) {
        return ("invalid_issuer".into(), "issuer not on the trust list".into());
    }
    match verify(unverified, jwks, &policy, now) {
        Ok(_) => ("ok".into(), "ok".into()),
        Err(r) => (r.code().into(), r.to_string()),
    }
}

#[test]
fn every_shared_jws_vector_gets_an_expected_outcome() {
    let file = shared("jws.json");
    let jwks = Jwks::parse(file["jwks"].to_string().as_bytes()).expect("the vector JWKS parses");
    let mut failures = Vec::new();
    let mut count = 0;
    for (set, kind) in [("id_jag", TokenKind::IdJag), ("logout", TokenKind::Logout)] {
        for case in file[set].as_array().unwrap() {
            count += 1;
            let token = case["token"].as_str().unwrap();
            let (code, detail) = outcome(&file, &jwks, token, case["now"].as_i64().unwrap(), kind);
            let expected: Vec<&str> = case["expect"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            if !expected.contains(&code.as_str()) {
                failures.push(format!(
                    "{}: got {code} ({detail}), expected {expected:?}",
                    case["name"]
                ));
            }
        }
    }
    assert!(count >= 77, "only {count} cases read");
    assert!(
        failures.is_empty(),
        "{} of {count} vectors disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
