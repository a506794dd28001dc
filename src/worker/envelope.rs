//! The launch envelope `openclaw worker` reads on stdin: where to dial, the admission
//! (credential, environment, owner epoch), and the assignment — one session turn, its prompt,
//! the conversation so far, the transcript base to commit on, and the tools it may run.
//!
//! The worker validates every object against closed schemas (an unknown key anywhere makes
//! the whole envelope invalid), so stored messages are rewritten to exactly the transcript
//! message shapes it accepts ([`worker_message`]).

use serde_json::{json, Map, Value};

use super::{
    channel::{OPENCLAW_VERSION, PROTOCOL_FEATURES, RPC_SET_VERSION},
    credential::Grant,
    inference::API,
};

/// Envelope version of the pinned worker.
pub const LAUNCH_VERSION: u64 = 4;

/// Most earlier messages handed to a worker (the worker's own bound is 1,024).
pub const MAX_INITIAL_MESSAGES: usize = 1024;

/// One launch.
pub struct Launch<'a> {
    /// `ws://host:port/__openclaw__/worker`.
    pub url: &'a str,
    pub grant: &'a Grant,
    pub credential: &'a str,
    pub agent_id: &'a str,
    /// The user's message for this turn (already in the transcript: the worker does not
    /// commit it again).
    pub prompt: &'a str,
    pub workspace: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub system_prompt: Option<&'a str>,
    /// Earlier messages of the session, oldest first, as stored.
    pub history: &'a [Value],
    /// The transcript's last entry (the user's message), the base of the first commit.
    pub base_leaf: Option<&'a str>,
    pub tools: &'a [String],
}

/// The envelope for `launch`.
pub fn build(l: &Launch) -> Value {
    let g = l.grant;
    let mut initial: Vec<Value> = l
        .history
        .iter()
        .filter_map(worker_message)
        .rev()
        .take(MAX_INITIAL_MESSAGES)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    // The history is the newest part of the transcript; it must not start inside a tool
    // exchange (a tool result without its call is refused by OpenAI-compatible providers).
    let first_user = initial
        .iter()
        .position(|m| m["role"] == "user")
        .unwrap_or(initial.len());
    initial.drain(..first_user);
    let mut authority = json!({"allowedToolNames": l.tools});
    if l.tools.iter().any(|t| t == "exec" || t == "process") {
        // The agent's config allowed exec: commands run in the workspace without asking.
        authority["exec"] =
            json!({"host": "gateway", "security": "full", "ask": "off", "safeBins": []});
    }
    let mut assignment = json!({
        "agentId": l.agent_id,
        "operationalRunInstance": {"instanceId": g.environment_id, "runId": g.run_id},
        "agentRuntimeIdentityToken": g.environment_id,
        "runId": g.run_id,
        "turnId": format!("{}:turn", g.run_id),
        "prompt": l.prompt,
        "suppressPromptTranscript": true,
        "workspaceDir": l.workspace,
        "modelRef": {"provider": l.provider, "model": l.model},
        "inferenceOptions": {},
        "initialMessages": initial,
        "transcript": {"baseLeafId": l.base_leaf, "nextSeq": 1},
        "liveEvents": {"ackedSeq": 0, "nextSeq": 1},
        "toolAuthority": authority,
    });
    if let Some(p) = l.system_prompt.filter(|p| !p.is_empty()) {
        assignment["systemPrompt"] = json!(p);
    }
    json!({
        "version": LAUNCH_VERSION,
        "connectionEndpoint": {"kind": "websocket", "url": l.url},
        "admission": {
            "environmentId": g.environment_id,
            "credential": l.credential,
            "ownerEpoch": g.owner_epoch,
            "rpcSetVersion": RPC_SET_VERSION,
            "handshake": {
                "bundleHash": "0".repeat(64),
                "openclawVersion": OPENCLAW_VERSION,
                "protocolFeatures": PROTOCOL_FEATURES,
            },
            "sessionId": g.session_id,
        },
        "assignment": assignment,
    })
}

fn timestamp(m: &Value) -> Value {
    json!(m["timestamp"].as_u64().unwrap_or(0))
}

/// Content blocks of one of the given types, with exactly the keys the worker accepts.
fn blocks(content: &Value, allowed: &[&str]) -> Vec<Value> {
    let list = match content {
        Value::String(s) => return vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a,
        _ => return Vec::new(),
    };
    list.iter()
        .filter_map(|b| {
            let ty = b["type"].as_str().filter(|t| allowed.contains(t))?;
            Some(match ty {
                "text" => json!({"type": "text", "text": b["text"].as_str()?}),
                "thinking" => json!({"type": "thinking", "thinking": b["thinking"].as_str()?}),
                "toolCall" => json!({
                    "type": "toolCall",
                    "id": b["id"].as_str()?,
                    "name": b["name"].as_str()?,
                    "arguments": if b["arguments"].is_object() { b["arguments"].clone() } else { json!({}) },
                }),
                "image" => json!({"type": "image", "data": b["data"].as_str()?,
                                  "mimeType": b["mimeType"].as_str()?}),
                _ => return None,
            })
        })
        .collect()
}

fn usage(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let (input, output) = (n("input"), n("output"));
    json!({
        "input": input, "output": output, "cacheRead": n("cacheRead"), "cacheWrite": n("cacheWrite"),
        "totalTokens": u["totalTokens"].as_u64().unwrap_or(input + output),
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0},
    })
}

/// A stored transcript message as the worker's transcript schema has it, or `None` for
/// messages it has no shape for (injected notes, system entries).
pub fn worker_message(m: &Value) -> Option<Value> {
    match m["role"].as_str()? {
        "user" => {
            let content = blocks(&m["content"], &["text", "image"]);
            (!content.is_empty())
                .then(|| json!({"role": "user", "content": content, "timestamp": timestamp(m)}))
        }
        "assistant" => {
            const STOPS: [&str; 5] = ["stop", "length", "toolUse", "error", "aborted"];
            let stop = m["stopReason"]
                .as_str()
                .filter(|s| STOPS.contains(s))
                .unwrap_or("stop");
            let text = |k: &str, d: &str| {
                m[k].as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or(d)
                    .to_owned()
            };
            let mut out = Map::new();
            out.insert("role".into(), json!("assistant"));
            out.insert(
                "content".into(),
                Value::Array(blocks(&m["content"], &["text", "thinking", "toolCall"])),
            );
            out.insert("api".into(), json!(text("api", API)));
            out.insert("provider".into(), json!(text("provider", "ringgate")));
            out.insert("model".into(), json!(text("model", "unknown")));
            out.insert("usage".into(), usage(&m["usage"]));
            out.insert("stopReason".into(), json!(stop));
            out.insert("timestamp".into(), timestamp(m));
            if let Some(e) = m["errorMessage"].as_str() {
                out.insert("errorMessage".into(), json!(e));
            }
            Some(Value::Object(out))
        }
        "toolResult" => {
            let mut out = json!({
                "role": "toolResult",
                "toolCallId": m["toolCallId"].as_str()?,
                "toolName": m["toolName"].as_str()?,
                "content": blocks(&m["content"], &["text", "image"]),
                "isError": m["isError"].as_bool().unwrap_or(false),
                "timestamp": timestamp(m),
            });
            if m["details"].is_object() {
                out["details"] = m["details"].clone();
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            environment_id: "rg-env-1".into(),
            owner_epoch: 7,
            expires_at_ms: 1,
            ..crate::worker::credential::test_grant()
        }
    }

    /// The envelope of a launch with this history, tools and extra prompt.
    fn envelope(history: &[Value], tools: &[&str], system_prompt: Option<&str>) -> Value {
        let tools: Vec<String> = tools.iter().map(|t| t.to_string()).collect();
        build(&Launch {
            url: "ws://127.0.0.1:1/__openclaw__/worker",
            grant: &grant(),
            credential: "cred",
            agent_id: "main",
            prompt: "Read hello.txt",
            workspace: "/ws",
            provider: "openai",
            model: "m",
            system_prompt,
            history,
            base_leaf: Some("e5"),
            tools: &tools,
        })
    }

    #[test]
    fn the_envelope_names_the_launch_and_suppresses_the_prompt_commit() {
        let history = vec![
            json!({"role": "user", "content": "hi", "timestamp": 1, "idempotencyKey": "x:user"}),
            json!({"role": "assistant", "content": [{"type": "text", "text": "echo: hi"}],
                   "provider": "ringgate", "model": "echo", "usage": {"input": 1, "output": 2, "totalTokens": 3},
                   "stopReason": "stop", "timestamp": 2, "__openclaw": {"seq": 2}}),
            json!({"role": "system", "content": "note"}),
        ];
        let e = envelope(&history, &["read", "exec"], Some("Be brief."));
        assert_eq!(e["version"], 4);
        assert_eq!(e["admission"]["ownerEpoch"], 7);
        assert!(e["admission"].get("runId").is_none());
        let a = &e["assignment"];
        assert_eq!(a["suppressPromptTranscript"], true);
        assert_eq!(a["transcript"], json!({"baseLeafId": "e5", "nextSeq": 1}));
        assert_eq!(a["operationalRunInstance"]["runId"], a["runId"]);
        assert_eq!(a["toolAuthority"]["exec"]["ask"], "off");
        assert_eq!(a["systemPrompt"], "Be brief.");
        // Only the worker's keys survive; the system note is left out.
        let m = a["initialMessages"].as_array().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            json!({"role": "user", "content": [{"type": "text", "text": "hi"}], "timestamp": 1})
        );
        assert!(m[1].get("__openclaw").is_none());
        assert_eq!(m[1]["usage"]["cost"]["total"], 0);
        assert_eq!(m[1]["api"], API);
    }

    #[test]
    fn a_history_cut_inside_a_tool_exchange_starts_at_the_next_user_message() {
        let history = vec![
            json!({"role": "toolResult", "toolCallId": "c0", "toolName": "read",
                   "content": [{"type": "text", "text": "old"}], "isError": false}),
            json!({"role": "assistant", "content": [{"type": "text", "text": "done"}]}),
            json!({"role": "user", "content": "next"}),
            json!({"role": "assistant", "content": [{"type": "toolCall", "id": "c1", "name": "read", "arguments": {}}]}),
            json!({"role": "toolResult", "toolCallId": "c1", "toolName": "read",
                   "content": [{"type": "text", "text": "new"}], "isError": false}),
        ];
        let e = envelope(&history, &[], None);
        let roles: Vec<&str> = e["assignment"]["initialMessages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant", "toolResult"]);
    }

    #[test]
    fn file_tools_only_carry_no_exec_authority() {
        let e = envelope(&[], &["read"], None);
        assert!(e["assignment"]["toolAuthority"].get("exec").is_none());
        assert!(e["assignment"].get("systemPrompt").is_none());
    }
}
