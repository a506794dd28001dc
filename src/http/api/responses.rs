//! `POST /v1/responses` (OpenResponses): the request as the original's strict schema takes
//! it, the prompt it becomes, and the response resource and its streamed events.

use serde_json::{json, Value};

use super::openai::{agent_of_model, type_name, AgentRef, Invalid};

const KEYS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "text",
    "stream",
    "max_output_tokens",
    "max_tool_calls",
    "user",
    "temperature",
    "top_p",
    "metadata",
    "store",
    "previous_response_id",
    "reasoning",
    "truncation",
];

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub model: String,
    pub agent: AgentRef,
    pub stream: bool,
    pub user: Option<String>,
    pub prompt: String,
}

/// The text of an item's `content`: a string, or its text parts.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| {
                matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("input_text" | "output_text")
                )
            })
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub fn parse(body: &Value) -> Result<Request, Invalid> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            ": Invalid input: expected object, received {}",
            type_name(body)
        ));
    };
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!(": Unrecognized key: \"{k}\""));
    }
    let model = match obj.get("model") {
        Some(Value::String(s)) => s.clone(),
        None => return Err("model: Invalid input: expected string, received undefined".into()),
        Some(v) => {
            return Err(format!(
                "model: Invalid input: expected string, received {}",
                type_name(v)
            ))
        }
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(format!(
                "stream: Invalid input: expected boolean, received {}",
                type_name(v)
            ))
        }
    };
    for (key, hi) in [("temperature", 2.0), ("top_p", 1.0)] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|v| (0.0..=hi).contains(&v)) => {}
            Some(_) => return Err(format!("{key}: must be between 0 and {hi}")),
        }
    }
    if obj
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null())
    {
        // The original keeps a response→session map in one process; ringgate has no such
        // map. Continuing a conversation is done with `user` or x-openclaw-session-key.
        return Err("previous_response_id is not supported by this gateway: name the conversation with `user` or the x-openclaw-session-key header".into());
    }
    if obj
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        return Err(
            "invalid tool configuration: client tools are not supported by this gateway".into(),
        );
    }
    let user = obj
        .get("user")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let mut system: Vec<String> = obj
        .get("instructions")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(|s| vec![s.to_owned()])
        .unwrap_or_default();
    let mut turns: Vec<(&str, String)> = Vec::new();
    match obj.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => turns.push(("User", s.clone())),
        Some(Value::Array(items)) => {
            for it in items {
                let kind = it.get("type").and_then(Value::as_str).unwrap_or("message");
                match kind {
                    "message" => {
                        let text = text_of(it.get("content"));
                        match it.get("role").and_then(Value::as_str) {
                            Some("system" | "developer") if !text.trim().is_empty() => {
                                system.push(text)
                            }
                            Some("user") => turns.push(("User", text)),
                            Some("assistant") => turns.push(("Assistant", text)),
                            _ => {}
                        }
                    }
                    "function_call_output" => {
                        let out = it.get("output").and_then(Value::as_str).unwrap_or_default();
                        turns.push(("Tool", out.to_owned()));
                    }
                    _ => {}
                }
            }
        }
        Some(v) => {
            return Err(format!(
                "input: Invalid input: expected string, received {}",
                type_name(v)
            ))
        }
    }
    let messages: Vec<Value> = system
        .iter()
        .map(|s| json!({"role": "system", "content": s}))
        .chain(turns.iter().map(|(r, t)| {
            let role = match *r {
                "User" => "user",
                "Assistant" => "assistant",
                _ => "tool",
            };
            json!({"role": role, "content": t})
        }))
        .collect();
    let prompt = super::openai::prompt(&messages)
        .map_err(|_| "Missing user message in `input`.".to_owned())?;
    let agent = agent_of_model(&model)
        .ok_or_else(|| "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.".to_owned())?;
    Ok(Request {
        model,
        agent,
        stream,
        user,
        prompt,
    })
}

fn usage() -> Value {
    json!({"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0})
}

/// The assistant message item.
pub fn message_item(msg_id: &str, text: &str, done: bool) -> Value {
    if done {
        json!({"type": "message", "id": msg_id, "role": "assistant",
            "content": [{"type": "output_text", "text": text}], "phase": "final_answer", "status": "completed"})
    } else {
        json!({"type": "message", "id": msg_id, "role": "assistant", "content": [], "status": "in_progress"})
    }
}

/// The response resource: `in_progress` (no output yet), `completed`/`incomplete` with the
/// message, or `failed` with its error.
pub fn resource(
    id: &str,
    created: u64,
    model: &str,
    status: &str,
    output: Vec<Value>,
    error: Option<Value>,
) -> Value {
    let mut r = json!({"id": id, "object": "response", "created_at": created, "status": status,
        "model": model, "output": output, "usage": usage()});
    if let Some(e) = error {
        r["error"] = e;
    }
    if status == "incomplete" {
        r["incomplete_details"] = json!({"reason": "max_output_tokens"});
    }
    r
}

/// One streamed event: `event: <type>` and the data with its `type`.
pub fn event(kind: &str, data: Value) -> String {
    let mut ordered = serde_json::Map::new();
    ordered.insert("type".into(), json!(kind));
    if let Value::Object(o) = data {
        for (k, v) in o {
            if k != "type" {
                ordered.insert(k, v);
            }
        }
    }
    format!("event: {kind}\ndata: {}\n\n", Value::Object(ordered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strict_schema() {
        assert_eq!(
            parse(&json!({})).unwrap_err(),
            "model: Invalid input: expected string, received undefined"
        );
        assert_eq!(
            parse(&json!({"model": "openclaw", "foo": 1})).unwrap_err(),
            ": Unrecognized key: \"foo\""
        );
        assert_eq!(
            parse(&json!({"model": "openclaw"})).unwrap_err(),
            "Missing user message in `input`."
        );
        let r = parse(&json!({"model": "openclaw/main", "input": "hi", "instructions": "short"}))
            .unwrap();
        assert_eq!(r.prompt, "short\n\nhi");
        assert_eq!(r.agent, AgentRef::Id("main".into()));
        let r = parse(&json!({"model": "openclaw", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "a"}]},
            {"type": "message", "role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}]}))
        .unwrap();
        assert!(r.prompt.ends_with("User: c") && r.prompt.contains("Assistant: b"));
        assert!(parse(
            &json!({"model": "openclaw", "input": "x", "previous_response_id": "resp_1"})
        )
        .is_err());
    }

    #[test]
    fn events_lead_with_their_type() {
        assert_eq!(
            event("response.output_text.delta", json!({"item_id": "m", "delta": "x"})),
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"delta\":\"x\"}\n\n"
        );
    }
}
