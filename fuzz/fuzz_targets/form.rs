//! Form bodies and query strings, percent-decoding, and the other small
//! parsers that see raw input (email addresses, URLs, RFC 3339 times).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = authmd::http::form_pairs(text);
    let _ = authmd::url::percent_decode(text);
    let _ = authmd::url::HttpUrl::parse(text);
    let _ = authmd::email::normalize(text);
    let _ = authmd::time::parse_rfc3339(text);
});
