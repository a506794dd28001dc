//! An inbound webhook POST: the signature check (timestamp and signature headers) and, for a
//! body that verifies, the body parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::channels::webhook::inbound;

const SECRET: &[u8] = b"fuzz-secret";

fuzz_target!(|data: &[u8]| {
    // Input: "<timestamp>\n<signature>\n<body>".
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(ts), Some(sig), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(ts), Ok(sig)) = (std::str::from_utf8(ts), std::str::from_utf8(sig)) else {
        return;
    };
    let now = 1_800_000_000_000;
    let _ = inbound::verify_signature(SECRET, ts, sig, body, now, 300_000);
    // A correctly signed copy reaches the body parser.
    let good = inbound::sign(SECRET, now, body);
    if inbound::verify_signature(SECRET, &now.to_string(), &good, body, now, 300_000).is_ok() {
        let _ = inbound::parse_inbound(body, "default", "agent:main:main", now);
    }
});
