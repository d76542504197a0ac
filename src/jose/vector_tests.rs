//! `../shared/vectors/jws.json`: tokens signed by an independent
//! implementation (pyca/cryptography). Every case's outcome must be one of
//! its `expect` codes. The trust list, replay store and audiences are
//! emulated exactly as the vectors' README says.

use serde_json::Value;

use super::{Jwks, Policy, TokenKind, parse, verify};
use crate::time::UnixSecs;

pub(crate) fn shared(path: &str) -> Value {
    let full = format!("{}/../shared/vectors/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
    serde_json::from_str(&text).expect("vector file is JSON")
}

/// The outcome the verifier gives a case: `ok` or a SPEC.md code.
fn outcome(file: &Value, jwks: &Jwks, token: &str, now: UnixSecs, kind: TokenKind) -> (String, String) {
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
            let (code, detail) = outcome(&file, &jwks, token, UnixSecs::new(case["now"].as_i64().unwrap()), kind);
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

/// Project Wycheproof, by the rule of `../shared/vectors/README.md`: a
/// `valid` case with an algorithm authmd accepts must verify, every
/// `invalid` case must fail, anything `none` or `HS*` must fail whatever its
/// label. `acceptable` cases: see [`ACCEPTABLE_IS_REFUSED`].
mod wycheproof {
    use serde_json::Value;

    use super::shared;
    use crate::jose::jwk::Jwk;
    use crate::jose::jws::verify_signature;
    use crate::jose::jws::{check_header, split};
    use crate::jose::{Alg, Jwks};

    /// Our deliberate choice for `acceptable` cases (legacy encodings that
    /// some libraries tolerate, such as PKCS#1 v1.5 padding without the NULL
    /// parameter): refused. ring is strict and a provider has no reason to
    /// produce them.
    const ACCEPTABLE_IS_REFUSED: bool = true;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The group's key as a JWK. A few ECDSA groups publish none (their
    /// coordinates have leading zeros); their uncompressed point becomes one.
    fn group_jwk(group: &Value, member: &str) -> Value {
        if let Some(jwk) = group.get(member) {
            return jwk.clone();
        }
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let point = hex(group["publicKey"]["uncompressed"]
            .as_str()
            .expect("an uncompressed point"));
        let half = (point.len() - 1) / 2;
        let crv = if half == 32 { "P-256" } else { "P-384" };
        serde_json::json!({ "kty": "EC", "crv": crv, "x": b64(&point[1..1 + half]), "y": b64(&point[1 + half..]) })
    }

    /// Runs a primitive-level file: each group's JWK, each test's msg and sig.
    fn primitive(file: &str, alg: Alg, jwk_member: &str) -> usize {
        let data = shared(&format!("wycheproof/{file}"));
        let mut failures = Vec::new();
        let mut count = 0;
        for group in data["testGroups"].as_array().unwrap() {
            let jwk = Jwk::parse(&group_jwk(group, jwk_member));
            for test in group["tests"].as_array().unwrap() {
                count += 1;
                let verified = jwk.for_alg(alg).and_then(|key| {
                    verify_signature(
                        alg,
                        key,
                        &hex(test["msg"].as_str().unwrap()),
                        &hex(test["sig"].as_str().unwrap()),
                    )
                });
                let want_ok = match test["result"].as_str().unwrap() {
                    "valid" => true,
                    "invalid" => false,
                    _ => !ACCEPTABLE_IS_REFUSED,
                };
                if verified.is_ok() != want_ok {
                    failures.push(format!(
                        "{file} tcId {} ({}, {:?}): got {verified:?}",
                        test["tcId"], test["result"], test["flags"]
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {count} disagree:\n{}",
            failures.len(),
            failures.join("\n")
        );
        count
    }

    #[test]
    fn ecdsa_p256_p1363() {
        assert!(primitive("ecdsa_secp256r1_sha256_p1363_test.json", Alg::Es256, "publicKeyJwk") > 100);
    }

    #[test]
    fn ecdsa_p384_p1363() {
        assert!(primitive("ecdsa_secp384r1_sha384_p1363_test.json", Alg::Es384, "publicKeyJwk") > 100);
    }

    #[test]
    fn ed25519() {
        assert!(primitive("ed25519_test.json", Alg::EdDsa, "publicKeyJwk") > 100);
    }

    #[test]
    fn rsa_pkcs1_2048_sha256() {
        assert!(primitive("rsa_signature_2048_sha256_test.json", Alg::Rs256, "keyJwk") > 100);
    }

    #[test]
    fn rsa_pss_2048_sha256_32() {
        assert!(primitive("rsa_pss_2048_sha256_mgf1_32_test.json", Alg::Ps256, "publicKeyJwk") > 50);
    }

    /// The JOSE layer without the ID-JAG rules: split, header rules, key
    /// selection from the group's key set, signature.
    fn jose_outcome(token: &str, keys: Vec<Jwk>) -> Result<(), String> {
        let compact = split(token).map_err(|e| e.to_string())?;
        let (alg, kid) = check_header(&compact.header).map_err(|e| e.to_string())?;
        let jwks = Jwks::from_keys(keys);
        let key = jwks.select(alg, kid.as_deref()).map_err(|e| e.to_string())?;
        verify_signature(alg, key, compact.signing_input.as_bytes(), &compact.signature).map_err(|e| e.to_string())
    }

    fn accepted_alg(token: &str) -> bool {
        split(token).ok().and_then(|c| check_header(&c.header).ok()).is_some()
    }

    fn keys_of(group: &Value) -> Vec<Jwk> {
        let set = group
            .get("public")
            .or_else(|| group.get("private"))
            .cloned()
            .unwrap_or(Value::Null);
        match set.get("keys").and_then(Value::as_array) {
            Some(keys) => keys.iter().map(Jwk::parse).collect(),
            None => vec![Jwk::parse(&set)],
        }
    }

    /// Cases whose label we deliberately do not follow, with why.
    fn exempt(file: &str, tc_id: i64) -> Option<&'static str> {
        match (file, tc_id) {
            // The vectors README: a ROCA-weak key that passes every SPEC.md rule; authmd does not fingerprint ROCA.
            ("json_web_key_test.json", 7) => Some("ROCA key"),
            _ => None,
        }
    }

    fn jose_file(file: &str) -> (usize, usize) {
        let data = shared(&format!("wycheproof/{file}"));
        let (mut count, mut verified_count) = (0, 0);
        let mut failures = Vec::new();
        for group in data["testGroups"].as_array().unwrap() {
            for test in group["tests"].as_array().unwrap() {
                count += 1;
                let tc_id = test["tcId"].as_i64().unwrap();
                if exempt(file, tc_id).is_some() {
                    continue;
                }
                let token = test["jws"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| test["jws"].to_string());
                let outcome = jose_outcome(&token, keys_of(group));
                let header_alg = split(&token).ok().and_then(|c| c.header.get("alg").cloned());
                let forbidden_alg = header_alg
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.eq_ignore_ascii_case("none") || a.starts_with("HS"));
                let must_verify = test["result"] == "valid" && accepted_alg(&token) && !forbidden_alg;
                if outcome.is_ok() {
                    verified_count += 1;
                }
                if outcome.is_ok() != must_verify {
                    failures.push(format!(
                        "{file} tcId {tc_id} ({}, {}): got {outcome:?}",
                        test["result"], group["comment"]
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {count} disagree:\n{}",
            failures.len(),
            failures.join("\n")
        );
        (count, verified_count)
    }

    #[test]
    fn json_web_signature() {
        let (count, verified) = jose_file("json_web_signature_test.json");
        assert!(count > 300 && verified > 10, "{count} cases, {verified} verified");
    }

    #[test]
    fn json_web_key() {
        let (count, verified) = jose_file("json_web_key_test.json");
        assert!(count > 20 && verified >= 1, "{count} cases, {verified} verified");
    }
}
