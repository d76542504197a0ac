#![no_main]

use libfuzzer_sys::fuzz_target;

// The HTTP edge's request-head parsers, framing rules and chunked decoder
// (vendor/tiny_http, issue 10): any bytes are refused or accepted, never a panic.
fuzz_target!(|data: &[u8]| {
    tiny_http::fuzzing::head_and_chunked_body(data);
});
