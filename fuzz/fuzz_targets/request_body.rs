//! The JSON request bodies: the strict duplicate-refusing reader and the
//! registration request shapes. Must never panic.
#![no_main]

use authmd::proto::v0_1::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = authmd::jose::json::object(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Err(err) = Request::from_json(&value) {
            let _ = (authmd::proto::v0_1::wire(&err), err.to_string());
        }
    }
});
