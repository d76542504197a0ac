//! What a browser sends the pages: `Cookie` headers, form bodies, the
//! token and revocation forms, and `return_to`. Beyond never panicking,
//! each parser keeps its promise: a cookie value is a non-empty part of the
//! header, and a header built from well-formed pairs gives each name's first
//! value back; a token form the parser accepts names the jwt-bearer grant
//! once; a `return_to` is kept as given only if it is a same-origin path.
#![no_main]

use authmd::internals::{TokenRequest, cookie_value, form_pairs, revocation_token, safe_return_to};
use libfuzzer_sys::fuzz_target;

/// SPEC-v0.7 7.3's rule, written out again.
fn same_origin_path(text: &str) -> bool {
    text.len() <= 2048
        && text.starts_with('/')
        && !text.starts_with("//")
        && !text.contains('\\')
        && !text.chars().any(char::is_control)
}

fn check_return_to(text: &str) {
    let safe = safe_return_to(text);
    assert!(safe == "/" || safe == text, "{text:?} became {safe:?}");
    assert!(same_origin_path(&safe), "{text:?} became {safe:?}");
    assert_eq!(safe == text, same_origin_path(text), "{text:?}");
}

/// RFC 6265 4.1.1's cookie-name (a token) and cookie-value octets.
fn cookie_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn cookie_octets(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() && !b"\",;\\".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    for name in ["authmd_session", "authmd_login", ""] {
        if let Some(value) = cookie_value(text, name) {
            assert!(!value.is_empty() && !value.contains(';') && text.contains(value));
        }
    }

    let form = form_pairs(text);
    let cookies: Vec<&(String, String)> = form
        .iter()
        .filter(|(k, v)| cookie_name(k) && cookie_octets(v))
        .collect();
    let header = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    for (name, _) in &cookies {
        let first = cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(cookie_value(&header, name), first, "{header:?}");
    }

    if let Ok(request) = TokenRequest::from_form(&form) {
        assert!(!request.assertion.is_empty());
        let grants: Vec<_> = form.iter().filter(|(k, _)| k == "grant_type").collect();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].1, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    }
    if let Ok(token) = revocation_token(&form) {
        assert!(!token.is_empty());
    }

    check_return_to(text);
    for (_, value) in &form {
        check_return_to(value);
    }
});
