//! Form bodies and query strings, percent-decoding, and the other small
//! parsers that see raw input (email addresses, URLs, RFC 3339 times).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = authmd::internals::form_pairs(text);
    let _ = authmd::internals::percent_decode(text);
    let _ = authmd::internals::HttpUrl::parse(text);
    let _ = authmd::internals::normalize_email(text);
    let _ = authmd::internals::parse_rfc3339(text);
});
