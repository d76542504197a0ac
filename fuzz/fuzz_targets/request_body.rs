//! The JSON request bodies: the strict duplicate-refusing reader and the
//! registration request shapes. Must never panic.
#![no_main]

use authmd::flows::registration::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = authmd::jose::json::object(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Err(err) = Request::from_json(&value) {
            let _ = (err.wire(), err.to_string());
        }
    }
});
