//! The hook decisions on arbitrary input: the config parser, templates, and the plan for a
//! sub-path and body under a config with mappings and the Gmail preset — any bytes give an
//! answer or a refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::hooks::{config, plan, template};
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Input: "<sub-path>\n<json body>".
    let (sub, body) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(payload) = serde_json::from_str::<Value>(body) else {
        return;
    };
    // The body as a config too.
    let _ = config::parse(&payload, "hooks");
    let hooks = config::parse(
        &json!({"enabled": true, "token": "t", "presets": ["gmail"], "allowRequestSessionKey": true,
            "allowedSessionKeyPrefixes": ["hook:", "agent:"],
            "mappings": [{"match": {"path": "t"}, "messageTemplate": "{{a}} {{b[0].c}} {{headers.x}}", "sessionKey": "hook:{{k}}", "forEach": "items"},
                         {"match": {"source": "w"}, "action": "wake", "textTemplate": "{{payload.text}}"}]}),
        "hooks",
    )
    .unwrap()
    .unwrap();
    let headers = vec![("x".to_owned(), sub.to_owned())];
    let query = vec![("q".to_owned(), sub.to_owned())];
    let ctx = template::Ctx { payload: &payload, headers: &headers, query: &query, path: sub, now: "n", each: None };
    let _ = template::render(sub, &ctx);
    let env = plan::HookEnv { hooks: &hooks, agents: &["main", "ops"], default_agent: "main", channels: &["webhook"] };
    let req = plan::HookRequest { sub_path: sub, payload: &payload, headers: &headers, query: &query, now_iso: "n", token: "t" };
    let _ = plan::plan(&req, &env, &mut || "id".to_owned());
});
