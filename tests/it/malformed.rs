//! Thousands of generated malformed bodies to every POST endpoint: each gets
//! a 4xx (or a 200 where the input happens to be acceptable), never a 5xx,
//! and the server keeps serving. Deterministic: a fixed-seed generator, so a
//! failure names a case that can be replayed.

use crate::common::{Client, TestServer};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"{"type":"anonymous","requested_credential_type":"api_key"}"#,
    r#"{"type":"identity_assertion","assertion_type":"verified_email","assertion":"a@example.com","requested_credential_type":"api_key"}"#,
    r#"{"type":"identity_assertion","assertion_type":"urn:ietf:params:oauth:token-type:id-jag","assertion":"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln","requested_credential_type":"access_token"}"#,
    r#"{"claim_token":"clm_abc","email":"a@example.com"}"#,
    r#"{"claim_attempt_token":"cat_abc"}"#,
    r#"{"claim_token":"clm_abc","otp":"123456"}"#,
    "token=cat_abc&confirm=yes",
    "eyJhbGciOiJFUzI1NiIsInR5cCI6ImxvZ291dCtqd3QifQ.eyJpc3MiOiJ4In0.c2ln",
];

const SPLICES: &[&str] = &[
    "null",
    "true",
    "[]",
    "{}",
    "-1",
    "1e999",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\u{202e}",
    "%",
    "%zz",
    "&&&",
    "=",
    "\\",
    "\"",
    "{\"a\":",
    "[[[[[[[[[[[[[[[[",
    "\u{1F600}",
    "\r\n",
    "\0",
];

fn mutate(rng: &mut Rng, seed: &str) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
            1 => bytes.truncate(rng.below(bytes.len() + 1)),
            2 => {
                let at = rng.below(bytes.len() + 1);
                let splice = SPLICES[rng.below(SPLICES.len())].as_bytes();
                bytes.splice(at..at, splice.iter().copied());
            }
            3 => bytes = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            4 => {
                let depth = 1 + rng.below(3000);
                bytes = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
            }
            5 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                let copy = bytes[at..].to_vec();
                bytes.extend_from_slice(&copy);
            }
            _ => bytes.reverse(),
        }
    }
    bytes
}

#[test]
fn generated_malformed_bodies_never_get_a_5xx() {
    let server = TestServer::start();
    let endpoints: &[(&str, &str)] = &[
        ("/agent/auth", "application/json"),
        ("/agent/auth/claim", "application/json"),
        ("/agent/auth/claim/attempt/challenge", "application/json"),
        ("/agent/auth/claim/complete", "application/json"),
        ("/agent/auth/claim/view", "application/x-www-form-urlencoded"),
        ("/agent/auth/claim/reject", "application/x-www-form-urlencoded"),
        ("/agent/auth/revoke", "application/logout+jwt"),
        ("/oauth/revoke", "application/x-www-form-urlencoded"),
        ("/oauth2/revoke", "application/x-www-form-urlencoded"),
        ("/oauth2/token", "application/x-www-form-urlencoded"),
        ("/agent/identity", "application/json"),
        ("/oauth/introspect", "application/x-www-form-urlencoded"),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut sent = 0;
    for case in 0..3000 {
        let (path, content_type) = endpoints[case % endpoints.len()];
        let seed = SEEDS[rng.below(SEEDS.len())];
        let body = mutate(&mut rng, seed);
        let reply = server.request("POST", path, &[("Content-Type", content_type)], &body);
        sent += 1;
        assert!(
            reply.status < 500,
            "case {case}: POST {path} with {:?} got {}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)]),
            reply.status,
            reply.body
        );
        if reply.status >= 400 {
            let error: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::Null);
            let page = reply.header("content-type").is_some_and(|t| t.starts_with("text/html"));
            assert!(
                page || error["error"].is_string(),
                "case {case}: a 4xx without a JSON error: {}",
                reply.body
            );
        }
    }
    assert_eq!(sent, 3000);
    assert_eq!(server.get("/healthz").status, 200);
    assert!(!server.stderr().contains("panic"), "a handler panicked");
}
