//! Control UI request paths: whatever the path (percent-encoded dots, backslashes, NULs, deep
//! `assets/` segments), it resolves to the index, a file of the build, or 404 — never to a
//! file outside the UI's root.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use ringgate::http::control_ui::{percent_decode, safe_relative, ControlUi, Resolved};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    let root = PathBuf::from("/srv/ui");
    let ui = ControlUi::with_files(
        root.clone(),
        &["index.html", "assets/app-x.js", "favicon.svg", "sw.js"],
        Some("b"),
    );
    for html in [true, false] {
        if let Resolved::File { entry, .. } = ui.resolve(path, query, html) {
            assert!(entry.path.starts_with(&root), "{path:?} -> {:?}", entry.path);
        }
    }
    if let Some(decoded) = percent_decode(path) {
        if safe_relative(&decoded) {
            assert!(!decoded.split('/').any(|s| s == ".."), "{decoded:?}");
        }
    }
});
