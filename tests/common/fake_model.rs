//! A fake OpenAI-compatible model for agent tests: it asks for the `read` tool on
//! `hello.txt` until the conversation carries a tool result, then answers with what the tool
//! returned. A user message containing `slow` makes it wait 30 s first (for abort and kill).
//! Request bodies are recorded.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use serde_json::{json, Value};

/// What `hello.txt` holds in the agent tests' workspaces.
pub const FILE_TEXT: &str = "WORKER-FILE-77";

// ---------------------------------------------------------------------------------------------

/// Answers `/v1/chat/completions`: with a `read` tool call of `hello.txt` until the request
/// carries a tool result, then with `The file says: <result>`. A user message containing
/// `slow` makes it wait 30 s first (for abort and kill). Request bodies are recorded.
pub struct Provider {
    pub port: u16,
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

/// Reads one HTTP request: its path and JSON body (`null` when the body is not JSON).
pub fn read_request(s: &mut TcpStream) -> Option<(String, Value)> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((path, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn answer(s: &mut TcpStream, body: &Value) {
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    let slow = msgs
        .iter()
        .any(|m| m["role"] == "user" && m["content"].to_string().contains("slow"));
    let tool = msgs.iter().rev().find(|m| m["role"] == "tool");
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
    );
    let mut chunk = |v: Value| out.push_str(&format!("data: {v}\n\n"));
    match tool {
        None => {
            if slow {
                thread::sleep(Duration::from_secs(30));
            }
            chunk(
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1",
                "type": "function", "function": {"name": "read", "arguments": ""}}]}}]}),
            );
            chunk(
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
                "function": {"arguments": "{\"path\":\"hello.txt\"}"}}]}}]}),
            );
            chunk(
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 5}}),
            );
        }
        Some(t) => {
            let text = format!(
                "The file says: {}",
                t["content"].as_str().unwrap_or_default().trim()
            );
            for part in text.as_bytes().chunks(8) {
                let part = String::from_utf8_lossy(part);
                chunk(json!({"choices": [{"index": 0, "delta": {"content": part}}]}));
            }
            chunk(
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 20, "completion_tokens": 7}}),
            );
        }
    }
    out.push_str("data: [DONE]\n\n");
    let _ = s.write_all(out.as_bytes());
}

pub fn provider() -> Provider {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = bodies.clone();
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let b = b.clone();
            thread::spawn(move || {
                if let Some((_, body)) = read_request(&mut s) {
                    b.lock().unwrap().push(body.clone());
                    answer(&mut s, &body);
                }
            });
        }
    });
    Provider { port, bodies }
}
