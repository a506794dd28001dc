//! Session keys as clients send them (`sessionKey`, `key`): resolution to the canonical key
//! and the owner shard.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::chat::key;
use ringgate::placement::Placement;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (raw, agent) = match text.split_once('\n') {
        Some((r, a)) => (r, Some(a)),
        None => (text, None),
    };
    if let Ok(k) = key::resolve(raw, agent, "main") {
        assert!(Placement::new(4).session(&k.canonical) < 4);
        // Resolving the canonical key again is stable.
        let again = key::resolve(&k.canonical, None, "main").expect("canonical keys resolve");
        assert_eq!(again.canonical, k.canonical);
    }
});
