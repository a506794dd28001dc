//! A JSON5 config file (as written by hand, or sent raw in `config.set`): parse, then build
//! the validated config. Errors are fine; panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = json5::from_str::<serde_json::Value>(text) else {
        return;
    };
    let _ = ringgate::config::Config::from_doc(&doc, None, Default::default());
    let _ = ringgate::config_doc::redact(&doc);
    let _ = ringgate::config_doc::merge_patch(&doc, &doc);
});
