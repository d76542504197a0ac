//! The JSON request bodies: the strict duplicate-refusing reader and the
//! registration request shapes. Must never panic.
#![no_main]

use authmd::internals::V0_1Request as Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = authmd::internals::jose::json_object(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
        && let Err(err) = Request::from_json(&value)
    {
        let _ = (authmd::internals::v0_1_wire(&err), err.to_string());
    }
});
