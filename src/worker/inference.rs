//! Inference on a worker's behalf: the worker sends its model context in the agent loop's own
//! message format (`user`, `assistant` with `text` / `thinking` / `toolCall` blocks,
//! `toolResult`) and gets the answer back as a stream of `worker.inference.event`s and one
//! `worker.inference.terminal` carrying the whole assistant message. ringgate asks an
//! OpenAI-compatible `/chat/completions` endpoint (the agent's `baseUrl` / `model`) with
//! `stream: true`.
//!
//! Sans-IO: [`request_body`] turns the worker's context into the provider request, and
//! [`Assembler`] turns the provider's streamed chunks into the worker's events and, at the end,
//! the assistant message. The HTTP itself is `crate::agent::openai`'s.

use serde_json::{json, Map, Value};

/// `api` of every message ringgate's inference produces (the worker records it).
pub const API: &str = "openai-completions";

/// What a model call made for a worker reports, in order: events, then one terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum InferenceOut {
    /// `worker.inference.event` bodies (`start`, `text_delta`, `toolcall_start`, …).
    Events(Vec<Value>),
    /// The whole assistant message (`stopReason` `stop`, `length` or `toolUse`).
    Done(Value),
    /// The call failed; `reason` is the worker's inference error reason (`provider-error`,
    /// `cancelled`, …).
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// The provider request for a worker's `context` (`{systemPrompt, messages, tools}`) and
/// `options` (`temperature`, `maxTokens`; the others have no chat-completions equivalent).
pub fn request_body(model: &str, context: &Value, options: &Value) -> Value {
    let mut messages = Vec::new();
    if let Some(p) = context["systemPrompt"].as_str().filter(|p| !p.is_empty()) {
        messages.push(json!({"role": "system", "content": p}));
    }
    for m in context["messages"].as_array().into_iter().flatten() {
        match m["role"].as_str() {
            Some("user") => messages.push(json!({"role": "user", "content": user_content(m)})),
            Some("assistant") => {
                if let Some(a) = assistant_message(m) {
                    messages.push(a);
                }
            }
            Some("toolResult") => messages.push(json!({
                "role": "tool",
                "tool_call_id": m["toolCallId"].as_str().unwrap_or_default(),
                "content": text_of(&m["content"]),
            })),
            _ => {}
        }
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let tools: Vec<Value> = context["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t["name"].as_str()?;
            Some(json!({"type": "function", "function": {
                "name": name,
                "description": t["description"].as_str().unwrap_or_default(),
                "parameters": if t["parameters"].is_object() { t["parameters"].clone() } else { json!({"type": "object"}) },
            }}))
        })
        .collect();
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    if let Some(t) = options["temperature"]
        .as_f64()
        .filter(|t| (0.0..=2.0).contains(t))
    {
        body["temperature"] = json!(t);
    }
    if let Some(n) = options["maxTokens"]
        .as_u64()
        .filter(|n| (1..=1_000_000).contains(n))
    {
        body["max_tokens"] = json!(n);
    }
    body
}

/// A user message's content: plain text when it is text only, else OpenAI content parts
/// (images as data URLs).
fn user_content(m: &Value) -> Value {
    let Some(blocks) = m["content"].as_array() else {
        return json!(m["content"].as_str().unwrap_or_default());
    };
    if blocks.iter().all(|b| b["type"] == "text") {
        return json!(text_of(&m["content"]));
    }
    let parts: Vec<Value> = blocks
        .iter()
        .filter_map(|b| match b["type"].as_str()? {
            "text" => Some(json!({"type": "text", "text": b["text"]})),
            "image" => {
                let url = format!(
                    "data:{};base64,{}",
                    b["mimeType"].as_str().unwrap_or("image/png"),
                    b["data"].as_str().unwrap_or_default()
                );
                Some(json!({"type": "image_url", "image_url": {"url": url}}))
            }
            _ => None,
        })
        .collect();
    Value::Array(parts)
}

fn assistant_message(m: &Value) -> Option<Value> {
    let blocks = m["content"].as_array()?;
    let text: String = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "toolCall")
        .map(|b| {
            let args = match &b["arguments"] {
                Value::String(s) => s.clone(),
                Value::Null => "{}".to_owned(),
                v => v.to_string(),
            };
            json!({"id": b["id"], "type": "function",
                   "function": {"name": b["name"], "arguments": args}})
        })
        .collect();
    if text.is_empty() && calls.is_empty() {
        return None;
    }
    let mut out = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        out["tool_calls"] = Value::Array(calls);
    }
    Some(out)
}

/// The text blocks of a content value, joined (a string content is its own text).
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    ToolCall,
}

/// One content block of the message being assembled.
#[derive(Debug)]
struct Block {
    kind: Kind,
    text: String,
    /// Tool calls: the call id, the tool name and the provider's index for the call.
    id: String,
    name: String,
    index: Option<u64>,
}

/// Turns a provider's streamed chunks into the worker's inference events and the final
/// assistant message. Blocks open and close in order: a chunk of another kind (or another
/// tool call) ends the open block first, as the agent loop's own providers do.
#[derive(Debug, Default)]
pub struct Assembler {
    blocks: Vec<Block>,
    open: bool,
    input_tokens: u64,
    output_tokens: u64,
    cache_read: u64,
    finish: Option<String>,
}

impl Assembler {
    /// Feeds one parsed `data:` chunk; pushes the events it produces onto `out`.
    pub fn on_chunk(&mut self, chunk: &Value, out: &mut Vec<Value>) {
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.input_tokens = u["prompt_tokens"].as_u64().unwrap_or(self.input_tokens);
            self.output_tokens = u["completion_tokens"]
                .as_u64()
                .unwrap_or(self.output_tokens);
            self.cache_read = u["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(self.cache_read);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return;
        };
        let delta = &choice["delta"];
        for key in ["reasoning_content", "reasoning"] {
            if let Some(t) = delta[key].as_str().filter(|t| !t.is_empty()) {
                self.push_text(Kind::Thinking, t, out);
            }
        }
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.push_text(Kind::Text, t, out);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.push_tool(call, out);
        }
        if let Some(r) = choice["finish_reason"].as_str() {
            self.finish = Some(r.to_owned());
        }
    }

    fn current(&self, kind: Kind) -> Option<usize> {
        let last = self.blocks.len().checked_sub(1)?;
        (self.open && self.blocks[last].kind == kind).then_some(last)
    }

    fn close(&mut self, out: &mut Vec<Value>) {
        if !self.open {
            return;
        }
        self.open = false;
        let i = self.blocks.len() - 1;
        let name = match self.blocks[i].kind {
            Kind::Text => "text_end",
            Kind::Thinking => "thinking_end",
            Kind::ToolCall => "toolcall_end",
        };
        out.push(json!({"type": name, "contentIndex": i}));
    }

    fn push_text(&mut self, kind: Kind, t: &str, out: &mut Vec<Value>) {
        let i = match self.current(kind) {
            Some(i) => i,
            None => {
                self.close(out);
                self.blocks.push(Block {
                    kind,
                    text: String::new(),
                    id: String::new(),
                    name: String::new(),
                    index: None,
                });
                self.open = true;
                let i = self.blocks.len() - 1;
                let start = if kind == Kind::Text {
                    "text_start"
                } else {
                    "thinking_start"
                };
                out.push(json!({"type": start, "contentIndex": i}));
                i
            }
        };
        self.blocks[i].text.push_str(t);
        let name = if kind == Kind::Text {
            "text_delta"
        } else {
            "thinking_delta"
        };
        out.push(json!({"type": name, "contentIndex": i, "delta": t}));
    }

    fn push_tool(&mut self, call: &Value, out: &mut Vec<Value>) {
        let index = call["index"].as_u64();
        let id = call["id"].as_str().filter(|s| !s.is_empty());
        let same = self.current(Kind::ToolCall).is_some_and(|i| {
            let b = &self.blocks[i];
            match (id, index) {
                (Some(id), _) => b.id == id,
                (None, Some(ix)) => b.index == Some(ix) || b.index.is_none(),
                (None, None) => true,
            }
        });
        if !same {
            self.close(out);
            let n = self.blocks.len();
            let id = id.map(str::to_owned).unwrap_or_else(|| format!("call_{n}"));
            let name = call["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            out.push(
                json!({"type": "toolcall_start", "contentIndex": n, "id": id, "toolName": name}),
            );
            self.blocks.push(Block {
                kind: Kind::ToolCall,
                text: String::new(),
                id,
                name,
                index,
            });
            self.open = true;
        }
        let i = self.blocks.len() - 1;
        if let Some(name) = call["function"]["name"].as_str() {
            if self.blocks[i].name.is_empty() {
                self.blocks[i].name = name.to_owned();
            }
        }
        if let Some(args) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        {
            self.blocks[i].text.push_str(args);
            out.push(json!({"type": "toolcall_delta", "contentIndex": i, "delta": args}));
        }
    }

    /// Whether the provider has produced any content yet.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The text produced so far (all text blocks).
    pub fn text(&self) -> String {
        self.blocks
            .iter()
            .filter(|b| b.kind == Kind::Text)
            .map(|b| b.text.as_str())
            .collect()
    }

    /// Ends the stream: closes the open block (its end event onto `out`) and returns the
    /// assistant message. `stopReason` follows the agent loop's vocabulary: `toolUse` when the
    /// message calls tools, `length` when the provider ran out of tokens, else `stop`.
    pub fn finish(
        &mut self,
        provider: &str,
        model: &str,
        now_ms: u64,
        out: &mut Vec<Value>,
    ) -> Value {
        self.close(out);
        let content: Vec<Value> = self
            .blocks
            .iter()
            .map(|b| match b.kind {
                Kind::Text => json!({"type": "text", "text": b.text}),
                Kind::Thinking => json!({"type": "thinking", "thinking": b.text}),
                Kind::ToolCall => {
                    let args = serde_json::from_str::<Value>(&b.text)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| Value::Object(Map::new()));
                    json!({"type": "toolCall", "id": b.id, "name": b.name, "arguments": args})
                }
            })
            .collect();
        let calls = self.blocks.iter().any(|b| b.kind == Kind::ToolCall);
        let stop = match self.finish.as_deref() {
            _ if calls => "toolUse",
            Some("length") => "length",
            _ => "stop",
        };
        let total = self.input_tokens + self.output_tokens;
        json!({
            "role": "assistant",
            "api": API,
            "provider": provider,
            "model": model,
            "usage": {
                "input": self.input_tokens, "output": self.output_tokens,
                "cacheRead": self.cache_read, "cacheWrite": 0, "totalTokens": total,
                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0},
            },
            "timestamp": now_ms,
            "content": content,
            "stopReason": stop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value) -> Value {
        json!({"choices": [{"index": 0, "delta": delta}]})
    }

    #[test]
    fn context_becomes_an_openai_request() {
        let ctx = json!({
            "systemPrompt": "SYS",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Read hello.txt"}]},
                {"role": "assistant", "content": [{"type": "toolCall", "id": "call_1", "name": "read",
                    "arguments": {"path": "hello.txt"}}], "stopReason": "toolUse"},
                {"role": "toolResult", "toolCallId": "call_1", "toolName": "read",
                    "content": [{"type": "text", "text": "WORKER-FILE-77\n"}], "isError": false},
            ],
            "tools": [{"name": "read", "description": "Read a file",
                       "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}],
        });
        let b = request_body(
            "m1",
            &ctx,
            &json!({"temperature": 0.5, "maxTokens": 99, "reasoning": "high"}),
        );
        assert_eq!(b["model"], "m1");
        assert_eq!(b["stream"], true);
        let m = b["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "SYS"}));
        assert_eq!(m[1], json!({"role": "user", "content": "Read hello.txt"}));
        assert_eq!(m[2]["content"], Value::Null);
        assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "read");
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"path":"hello.txt"}"#
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "WORKER-FILE-77\n"})
        );
        assert_eq!(b["tools"][0]["type"], "function");
        assert_eq!(b["tools"][0]["function"]["name"], "read");
        assert_eq!(b["temperature"], 0.5);
        assert_eq!(b["max_tokens"], 99);
    }

    #[test]
    fn a_streamed_tool_call_becomes_events_and_a_tool_use_message() {
        let mut a = Assembler::default();
        let mut ev = Vec::new();
        a.on_chunk(
            &chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "read", "arguments": ""}}]}),
            ),
            &mut ev,
        );
        a.on_chunk(
            &chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\":"}}]})),
            &mut ev,
        );
        a.on_chunk(
            &chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"hello.txt\"}"}}]}),
            ),
            &mut ev,
        );
        a.on_chunk(
            &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3}}),
            &mut ev,
        );
        let m = a.finish("openai", "m1", 5, &mut ev);
        let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "toolcall_start",
                "toolcall_delta",
                "toolcall_delta",
                "toolcall_end"
            ]
        );
        assert_eq!(ev[0]["id"], "call_1");
        assert_eq!(ev[0]["toolName"], "read");
        assert_eq!(m["stopReason"], "toolUse");
        assert_eq!(
            m["content"][0],
            json!({"type": "toolCall", "id": "call_1", "name": "read", "arguments": {"path": "hello.txt"}})
        );
        assert_eq!(m["usage"]["totalTokens"], 10);
        assert_eq!(m["api"], API);
    }

    #[test]
    fn text_thinking_and_two_calls_open_and_close_blocks_in_order() {
        let mut a = Assembler::default();
        let mut ev = Vec::new();
        a.on_chunk(&chunk(json!({"reasoning_content": "hmm"})), &mut ev);
        a.on_chunk(&chunk(json!({"content": "File "})), &mut ev);
        a.on_chunk(&chunk(json!({"content": "was read."})), &mut ev);
        a.on_chunk(
            &chunk(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "read", "arguments": "{}"}}]})),
            &mut ev,
        );
        a.on_chunk(
            &chunk(json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "write", "arguments": "not json"}}]})),
            &mut ev,
        );
        let m = a.finish("openai", "m1", 5, &mut ev);
        let types: Vec<String> = ev
            .iter()
            .map(|e| format!("{}@{}", e["type"].as_str().unwrap(), e["contentIndex"]))
            .collect();
        assert_eq!(
            types,
            [
                "thinking_start@0",
                "thinking_delta@0",
                "thinking_end@0",
                "text_start@1",
                "text_delta@1",
                "text_delta@1",
                "text_end@1",
                "toolcall_start@2",
                "toolcall_delta@2",
                "toolcall_end@2",
                "toolcall_start@3",
                "toolcall_delta@3",
                "toolcall_end@3",
            ]
        );
        assert_eq!(m["content"][1]["text"], "File was read.");
        assert_eq!(m["content"][0]["thinking"], "hmm");
        // Arguments that are not a JSON object become an empty object, not a failure.
        assert_eq!(m["content"][3]["arguments"], json!({}));
        assert_eq!(a.text(), "File was read.");
    }

    #[test]
    fn plain_text_stops_with_stop_or_length() {
        let mut a = Assembler::default();
        let mut ev = Vec::new();
        a.on_chunk(
            &json!({"choices": [{"delta": {"content": "hi"}, "finish_reason": "length"}]}),
            &mut ev,
        );
        assert_eq!(a.finish("p", "m", 1, &mut ev)["stopReason"], "length");
        let mut b = Assembler::default();
        b.on_chunk(&chunk(json!({"content": "hi"})), &mut ev);
        assert_eq!(b.finish("p", "m", 1, &mut ev)["stopReason"], "stop");
    }
}
