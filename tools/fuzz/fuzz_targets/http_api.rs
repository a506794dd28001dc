//! The HTTP API decisions on arbitrary input: routing of a method and path, the chat
//! completions and responses request bodies, the history query, and every answer they shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::{
    config::HttpEndpoints,
    http::api::{self, openai, responses, ApiHead},
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Input: "<method> <path>?<query>\n<json body>".
    let (line, body) = text.split_once('\n').unwrap_or((text, ""));
    let (method, target) = line.split_once(' ').unwrap_or(("POST", line));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let head = ApiHead {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        ..Default::default()
    };
    let on = HttpEndpoints {
        chat_completions: true,
        responses: true,
    };
    let _ = api::route(&head, on);
    let _ = api::history_query(query);
    let _ = api::header_scopes(Some(query));
    let _ = api::models::detail(path, &["main", "ops"], "main");
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Ok(c) = openai::parse(&v) {
            let _ = openai::session_key("main", "openai", Some(path), c.user.as_deref(), "u");
            let _ = openai::sse(&openai::chunk("c", 1, &c.model, serde_json::json!({}), None));
        }
        let _ = responses::parse(&v);
    }
});
