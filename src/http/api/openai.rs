//! `POST /v1/chat/completions`: the request as the original validates it, the agent and
//! session it names, the prompt it becomes, and the shapes of the answer (one
//! `chat.completion`, or `chat.completion.chunk` server-sent events ending in `[DONE]`).

use serde_json::{json, Map, Value};

/// A validated completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The `model` string as sent (echoed in every answer; default `openclaw`).
    pub model: String,
    pub agent: AgentRef,
    pub stream: bool,
    pub include_usage: bool,
    /// `user`, trimmed (names a stable session).
    pub user: Option<String>,
    /// What the agent is sent.
    pub prompt: String,
}

/// Which agent a model names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRef {
    Default,
    Id(String),
}

/// A 400 answer's message.
pub type Invalid = String;

/// `openclaw`, `openclaw/default` → the default agent; `openclaw/<id>`, `openclaw:<id>`,
/// `agent:<id>` → that agent (case-insensitive); anything else is not an agent model.
pub fn agent_of_model(model: &str) -> Option<AgentRef> {
    let m = model.trim().to_ascii_lowercase();
    if m == "openclaw" || m == "openclaw/default" {
        return Some(AgentRef::Default);
    }
    let id = m
        .strip_prefix("openclaw/")
        .or_else(|| m.strip_prefix("openclaw:"))
        .or_else(|| m.strip_prefix("agent:"))?;
    valid_agent_id(id).then(|| AgentRef::Id(id.to_owned()))
}

/// `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn valid_agent_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

fn number_in(
    body: &Map<String, Value>,
    key: &str,
    lo: f64,
    hi: f64,
    msg: &str,
) -> Result<(), Invalid> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| (lo..=hi).contains(&v)) => Ok(()),
        Some(Value::Number(_)) => Err(msg.to_owned()),
        Some(other) => Err(format!(
            "{key}: Invalid input: expected number, received {}",
            type_name(other)
        )),
    }
}

/// A JSON value's type as the original's schema errors name it.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn expected(key: &str, want: &str, got: &Value) -> Invalid {
    format!(
        "{key}: Invalid input: expected {want}, received {}",
        type_name(got)
    )
}

/// Validates the body (the original's schema and checks, first failure wins).
pub fn parse(body: &Value) -> Result<Completion, Invalid> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            ": Invalid input: expected object, received {}",
            type_name(body)
        ));
    };
    let model = match obj.get("model") {
        None => "openclaw".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(expected("model", "string", v)),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(expected("stream", "boolean", v)),
    };
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(expected("stream_options.include_usage", "boolean", v)),
        },
        Some(v) => return Err(expected("stream_options", "object", v)),
    };
    let user = match obj.get("user") {
        None => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Some(v) => return Err(expected("user", "string", v)),
    };
    for key in ["max_tokens", "max_completion_tokens"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {}
            // Zero or negative (as the original's positive-int check words it) …
            Some(Value::Number(n))
                if n.as_i64().is_some() || n.as_f64().is_some_and(|v| v <= 0.0) =>
            {
                return Err(format!("{key}: Too small: expected number to be >0"))
            }
            // … or fractional, or past any integer the original reads exactly.
            Some(Value::Number(_)) => {
                return Err(format!(
                    "{key}: Invalid input: expected int, received number"
                ))
            }
            Some(v) => return Err(expected(key, "number", v)),
        }
    }
    number_in(
        obj,
        "temperature",
        0.0,
        2.0,
        "`temperature` must be between 0 and 2.",
    )?;
    number_in(obj, "top_p", 0.0, 1.0, "`top_p` must be between 0 and 1.")?;
    number_in(
        obj,
        "frequency_penalty",
        -2.0,
        2.0,
        "`frequency_penalty` must be between -2.0 and 2.0.",
    )?;
    number_in(
        obj,
        "presence_penalty",
        -2.0,
        2.0,
        "`presence_penalty` must be between -2.0 and 2.0.",
    )?;
    match obj.get("seed") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        Some(_) => return Err("`seed` must be an integer.".into()),
    }
    match obj.get("stop") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(a)) if a.len() > 4 => {
            return Err("Invalid stop: stop supports at most 4 sequences".into())
        }
        Some(Value::Array(a)) => {
            if !a.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty())) {
                return Err("Invalid stop: stop entries must be non-empty strings".into());
            }
        }
        Some(v) => return Err(expected("stop", "string", v)),
    }
    if let Some(rf) = obj.get("response_format").filter(|v| !v.is_null()) {
        let t = rf.get("type").and_then(Value::as_str);
        if !matches!(t, Some("text" | "json_object" | "json_schema")) {
            return Err("Invalid response_format: response_format.type must be text, json_object, or json_schema".into());
        }
    }
    match obj.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) if tools.is_empty() => {}
        Some(Value::Array(_)) => {
            // Client tools ask the agent to call back into the caller; ringgate's agents
            // run no client tools, so say so rather than ignore them.
            return Err(
                "Invalid tools/tool_choice: client tools are not supported by this gateway".into(),
            );
        }
        Some(_) => return Err("Invalid tools/tool_choice: tools must be an array".into()),
    }
    let messages = match obj.get("messages") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(v) => return Err(expected("messages", "array", v)),
    };
    let prompt = prompt(messages)?;
    let agent = agent_of_model(&model)
        .ok_or_else(|| "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.".to_owned())?;
    Ok(Completion {
        model,
        agent,
        stream,
        include_usage,
        user,
        prompt,
    })
}

/// The text of a message's `content`: a string, or `text`/`input_text` parts joined.
fn text_of(content: &Value) -> Result<String, Invalid> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text" | "input_text") => {
                        if let Some(t) = p.get("text").and_then(Value::as_str) {
                            out.push(t);
                        }
                    }
                    Some("image_url") => {
                        return Err("Invalid image_url content in `messages`.".into())
                    }
                    _ => {}
                }
            }
            Ok(out.join("\n"))
        }
        _ => Ok(String::new()),
    }
}

/// The agent's message: a lone user turn verbatim; with earlier turns, the original's
/// context block and the current message. System and developer messages become a preamble.
pub fn prompt(messages: &[Value]) -> Result<String, Invalid> {
    let mut system = Vec::new();
    let mut turns: Vec<(&str, String)> = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let text = text_of(m.get("content").unwrap_or(&Value::Null))?;
        match role {
            "system" | "developer" if !text.trim().is_empty() => system.push(text),
            "user" => turns.push(("User", text)),
            "assistant" => turns.push(("Assistant", text)),
            "tool" | "function" => turns.push(("Tool", text)),
            _ => {}
        }
    }
    let Some(current) = turns
        .iter()
        .rposition(|(r, t)| matches!(*r, "User" | "Tool") && !t.trim().is_empty())
    else {
        return Err("Missing user message in `messages`.".into());
    };
    let (role, text) = &turns[current];
    let mut out = String::new();
    if !system.is_empty() {
        out.push_str(&system.join("\n\n"));
        out.push_str("\n\n");
    }
    if current == 0 && system.is_empty() {
        return Ok(text.clone());
    }
    if current > 0 {
        out.push_str("[Chat messages since your last reply - for context]\n");
        for (r, t) in &turns[..current] {
            out.push_str(&format!("{r}: {t}\n"));
        }
        out.push_str("\n[Current message - respond to this]\n");
        out.push_str(&format!("{role}: {text}"));
    } else {
        out.push_str(text);
    }
    Ok(out)
}

/// The session a request runs in: the caller's `x-openclaw-session-key`, else one per `user`
/// (`agent:<id>:<prefix>-user:<user>`), else a fresh one per call (`agent:<id>:<prefix>:<uuid>`).
/// The prefix is `openai` for chat completions, `openresponses` for responses.
pub fn session_key(
    agent: &str,
    prefix: &str,
    header: Option<&str>,
    user: Option<&str>,
    fresh: &str,
) -> Result<String, Invalid> {
    if let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) {
        let lower = h.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("agent:")
            .and_then(|r| r.split_once(':').map(|(_, r)| r))
            .unwrap_or(&lower);
        if ["subagent:", "cron:", "acp:"]
            .iter()
            .any(|p| rest.starts_with(p))
        {
            return Err(
                "`x-openclaw-session-key` cannot use reserved internal session namespaces.".into(),
            );
        }
        return Ok(h.to_owned());
    }
    Ok(match user {
        Some(u) => format!("agent:{agent}:{prefix}-user:{}", u.to_ascii_lowercase()),
        None => format!("agent:{agent}:{prefix}:{fresh}"),
    })
}

/// Token counts of a run, when known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.prompt, "completion_tokens": u.completion, "total_tokens": u.prompt + u.completion})
}

/// The non-streamed answer.
pub fn completion_body(
    id: &str,
    created: u64,
    model: &str,
    text: &str,
    finish: &str,
    usage: Usage,
) -> Value {
    let content = if text.is_empty() {
        "No response from OpenClaw."
    } else {
        text
    };
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": usage_json(usage),
    })
}

/// One streamed chunk.
pub fn chunk(id: &str, created: u64, model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
}

/// The usage chunk (`stream_options.include_usage`).
pub fn usage_chunk(id: &str, created: u64, model: &str, usage: Usage) -> Value {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [], "usage": usage_json(usage),
    })
}

/// An SSE frame.
pub fn sse(data: &Value) -> String {
    format!("data: {data}\n\n")
}

pub const SSE_DONE: &str = "data: [DONE]\n\n";

/// How a failed run is answered: status, message and type, as the original maps a provider
/// failure — by the upstream status when there is one, else by the kind of failure; anything
/// else is an internal error.
pub fn failure(
    kind: Option<&str>,
    http_status: Option<u64>,
    message: &str,
) -> (&'static str, String, &'static str) {
    let raw = || message.to_owned();
    match (kind, http_status) {
        (_, Some(400)) => ("400 Bad Request", raw(), "invalid_request_error"),
        (_, Some(401)) => ("401 Unauthorized", raw(), "authentication_error"),
        (_, Some(402)) => ("402 Payment Required", raw(), "insufficient_quota"),
        (_, Some(403)) => ("403 Forbidden", raw(), "permission_error"),
        (_, Some(404)) => ("404 Not Found", raw(), "invalid_request_error"),
        (_, Some(410)) => ("410 Gone", raw(), "invalid_request_error"),
        (_, Some(413)) | (Some("context_length"), _) => {
            ("413 Payload Too Large", raw(), "invalid_request_error")
        }
        (_, Some(429)) | (Some("rate_limit"), _) => {
            ("429 Too Many Requests", raw(), "rate_limit_error")
        }
        (_, Some(503)) => (
            "503 Service Unavailable",
            "upstream provider overloaded".into(),
            "api_error",
        ),
        (Some("timeout"), _) | (_, Some(504)) => (
            "504 Gateway Timeout",
            "upstream provider timeout".into(),
            "api_error",
        ),
        (_, Some(s)) if s >= 500 => (
            "502 Bad Gateway",
            "upstream provider error".into(),
            "api_error",
        ),
        _ => (
            "500 Internal Server Error",
            "internal error".into(),
            "api_error",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Result<Completion, Invalid> {
        parse(&v)
    }

    #[test]
    fn the_originals_checks_in_order() {
        assert_eq!(
            p(json!({})).unwrap_err(),
            "Missing user message in `messages`."
        );
        assert_eq!(
            p(json!([])).unwrap_err(),
            ": Invalid input: expected object, received array"
        );
        assert_eq!(
            p(json!({"model": 4})).unwrap_err(),
            "model: Invalid input: expected string, received number"
        );
        let hi = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(
            p(json!({"messages": hi, "temperature": 3})).unwrap_err(),
            "`temperature` must be between 0 and 2."
        );
        assert_eq!(
            p(json!({"messages": hi, "model": "gpt-4"})).unwrap_err(),
            "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`."
        );
        assert_eq!(
            p(json!({"messages": hi, "stop": ["a", "b", "c", "d", "e"]})).unwrap_err(),
            "Invalid stop: stop supports at most 4 sequences"
        );
        assert!(p(json!({"messages": hi, "seed": 1.5})).is_err());
        assert_eq!(
            p(json!({"messages": hi, "max_tokens": -1})).unwrap_err(),
            "max_tokens: Too small: expected number to be >0"
        );
        for bad in [json!(1.5), json!(1e23)] {
            assert_eq!(
                p(json!({"messages": hi, "max_tokens": bad})).unwrap_err(),
                "max_tokens: Invalid input: expected int, received number"
            );
        }
        let ok = p(
            json!({"messages": hi, "model": "OpenClaw/Main", "stream": true,
            "stream_options": {"include_usage": true}, "user": " Alice "}),
        )
        .unwrap();
        assert_eq!(ok.agent, AgentRef::Id("main".into()));
        assert_eq!(ok.model, "OpenClaw/Main");
        assert!(ok.stream && ok.include_usage);
        assert_eq!(ok.user.as_deref(), Some("Alice"));
        assert_eq!(ok.prompt, "hi");
        assert_eq!(p(json!({"messages": hi})).unwrap().agent, AgentRef::Default);
    }

    #[test]
    fn earlier_turns_become_context() {
        let m = [
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": "one"}),
            json!({"role": "assistant", "content": [{"type": "text", "text": "two"}]}),
            json!({"role": "user", "content": "three"}),
        ];
        assert_eq!(
            prompt(&m).unwrap(),
            "Be brief.\n\n[Chat messages since your last reply - for context]\nUser: one\nAssistant: two\n\n[Current message - respond to this]\nUser: three"
        );
        assert!(prompt(&m[..1]).is_err());
    }

    #[test]
    fn session_keys() {
        assert_eq!(
            session_key("main", "openai", None, Some("Alice"), "u").unwrap(),
            "agent:main:openai-user:alice"
        );
        assert_eq!(
            session_key("main", "openai", None, None, "u1").unwrap(),
            "agent:main:openai:u1"
        );
        assert_eq!(
            session_key("main", "openai", Some(" agent:main:x "), None, "u").unwrap(),
            "agent:main:x"
        );
        assert!(session_key("main", "openai", Some("agent:main:subagent:x"), None, "u").is_err());
        assert!(session_key("main", "openai", Some("cron:x"), None, "u").is_err());
    }

    #[test]
    fn provider_failures_map_like_the_original() {
        assert_eq!(failure(None, Some(401), "bad key").0, "401 Unauthorized");
        assert_eq!(
            failure(None, Some(404), "no model").2,
            "invalid_request_error"
        );
        assert_eq!(
            failure(None, Some(503), "x").1,
            "upstream provider overloaded"
        );
        assert_eq!(failure(None, Some(500), "x").0, "502 Bad Gateway");
        assert_eq!(failure(Some("timeout"), None, "x").0, "504 Gateway Timeout");
        assert_eq!(failure(Some("rate_limit"), None, "slow").1, "slow");
        assert_eq!(failure(None, None, "boom").1, "internal error");
    }

    #[test]
    fn answers_have_the_originals_shape() {
        let b = completion_body("chatcmpl_1", 5, "openclaw", "hi", "stop", Usage::default());
        assert_eq!(
            b.to_string(),
            r#"{"id":"chatcmpl_1","object":"chat.completion","created":5,"model":"openclaw","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}"#
        );
        assert_eq!(
            sse(&chunk("c", 5, "m", json!({"role": "assistant"}), None)),
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n"
        );
    }
}
