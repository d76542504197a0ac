//! JWS parsing and verification: any input, either token kind, against a
//! key set with every key type. Must never panic.
#![no_main]

use std::sync::OnceLock;

use authmd::internals::jose::{self, Jwks, Policy, TokenKind};
use authmd::time::UnixSecs;
use libfuzzer_sys::fuzz_target;

fn jwks() -> &'static Jwks {
    static JWKS: OnceLock<Jwks> = OnceLock::new();
    JWKS.get_or_init(|| {
        let vectors = include_str!("../../../shared/vectors/jws.json");
        let file: serde_json::Value = serde_json::from_str(vectors).unwrap();
        Jwks::parse(file["jwks"].to_string().as_bytes()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let policy = Policy {
        audiences: vec!["https://auth.service.example".into()],
        clock_skew_secs: 60,
        max_assertion_lifetime_secs: 3600,
        logout_lifetime_without_exp_secs: 300,
    };
    for kind in [TokenKind::IdJag, TokenKind::Logout, TokenKind::Service, TokenKind::SecEvent] {
        if let Ok(unverified) = jose::parse(token, kind) {
            let _ = unverified.issuer();
            if let Err(rejection) = jose::verify(unverified, jwks(), &policy, UnixSecs::new(1_800_000_000)) {
                let _ = (rejection.code(), rejection.to_string());
            }
        }
    }
    let _ = Jwks::parse(data);
});
