//! The HTTP request head on the gateway port (upgrade, probes, inbound webhook): any bytes
//! give a request or a refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((_req, used)) = ringgate::http::head::parse(data) {
        assert!(used <= data.len());
    }
});
