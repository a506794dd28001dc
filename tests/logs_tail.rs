//! `logs.tail` (protocol §7.6): the gateway's own log file, paged with byte cursors.

mod common;

use common::{Client, Server};
use serde_json::json;

#[test]
fn tail_reads_the_gateway_log_file_with_cursors() {
    let server = Server::opts().shards(2).start();
    let mut c = Client::connect(&server);
    // The start-up lines are in the file (written by a background thread).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let t = loop {
        let t = c.call("logs.tail", Some(json!({"limit": 50})));
        if t["lines"].as_array().is_some_and(|l| !l.is_empty()) {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "no log lines: {t}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(t["file"].as_str().unwrap().contains("ringgate.log"), "{t}");
    let lines = t["lines"].as_array().unwrap();
    let first: serde_json::Value = serde_json::from_str(lines[0].as_str().unwrap()).unwrap();
    assert_eq!(first["level"], "INFO", "JSON lines: {first}");
    assert!(lines
        .iter()
        .any(|l| l.as_str().unwrap().contains("shard started")));
    // From the end: nothing new; past the end: reset.
    let end = t["cursor"].as_u64().unwrap();
    let t = c.call("logs.tail", Some(json!({"cursor": end})));
    assert_eq!(
        t["cursor"].as_u64().unwrap(),
        end.max(t["cursor"].as_u64().unwrap())
    );
    let t = c.call("logs.tail", Some(json!({"cursor": 1u64 << 40})));
    assert_eq!(t["reset"], true, "{t}");
    let t = c.call("logs.tail", Some(json!({"maxBytes": 1, "limit": 1})));
    assert_eq!(t["truncated"], true, "{t}");
    let e = c.call_err("logs.tail", Some(json!({"limit": 0})));
    assert!(e["message"].as_str().unwrap().contains("/limit"), "{e}");
}
