//! The OpenAI-compatible runtime: `POST {baseUrl}/chat/completions` with `stream: true`
//! (OpenAI, Ollama, vLLM, llama.cpp server, …). Calls run on a small pool of worker threads so
//! no shard ever blocks on the network; each server-sent `data:` chunk's text goes back to the
//! session's owner shard as a delta through its inbox. Provider failures become the original's
//! `chat` error kinds: HTTP 429 → `rate_limit`, timeouts → `timeout`, context overflow →
//! `context_length`, refusals → `refusal`, anything else → `unknown`, with an `errorDetail`.

use std::{
    io::{BufRead, BufReader},
    time::{Duration, Instant},
};

use crossbeam::channel::{self, Receiver, Sender};
use serde_json::{json, Value};

use super::{config::OpenAiConfig, estimate_tokens, Failure, Output, Sink, Turn, Usage};
use crate::worker::inference::{self, InferenceOut};

/// The pool that runs provider calls, and the supervisor of agent-worker processes.
#[derive(Clone)]
pub struct Workers {
    tx: Sender<Job>,
    /// `openclaw worker` processes (`runtime: "openclaw-worker"`).
    pub processes: super::worker_pool::WorkerPool,
}

enum Job {
    Turn {
        config: OpenAiConfig,
        turn: Turn,
        sink: Sink,
    },
    Infer(Box<InferJob>),
}

/// A model call on a worker's behalf.
pub struct InferJob {
    pub config: OpenAiConfig,
    /// The worker's `{systemPrompt, messages, tools}`.
    pub context: Value,
    /// The worker's inference options (`temperature`, `maxTokens`, …).
    pub options: Value,
    /// Polled between stream reads: the call was cancelled or its run ended.
    pub cancelled: Box<dyn Fn() -> bool + Send>,
    /// Where the events and the terminal go (the owner shard's inbox).
    pub report: Box<dyn Fn(InferenceOut) + Send>,
}

impl Workers {
    /// Starts `n` worker threads (they exit when every handle is dropped).
    pub fn start(n: usize) -> Workers {
        let (tx, rx) = channel::unbounded::<Job>();
        for i in 0..n.max(1) {
            let rx: Receiver<Job> = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringgate-agent-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        match job {
                            Job::Turn { config, turn, sink } => run(config, turn, sink),
                            Job::Infer(j) => infer(*j),
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start agent worker thread");
            }
        }
        Workers {
            tx,
            processes: super::worker_pool::WorkerPool::start(),
        }
    }

    /// Queues a model call for a worker.
    pub fn infer(&self, job: InferJob) {
        if let Err(e) = self.tx.send(Job::Infer(Box::new(job))) {
            let Job::Infer(job) = e.into_inner() else {
                return;
            };
            (job.report)(InferenceOut::Failed {
                reason: "provider-error",
                message: "agent workers are not running".into(),
            });
        }
    }
}

pub struct OpenAi {
    pub config: OpenAiConfig,
    pub workers: Workers,
}

impl OpenAi {
    /// Queues the turn for a worker thread, which reports through `sink`.
    pub fn start(&self, turn: Turn, sink: Sink) {
        let job = Job::Turn {
            config: self.config.clone(),
            turn,
            sink,
        };
        if let Err(e) = self.workers.tx.send(job) {
            let Job::Turn { turn, sink, .. } = e.into_inner() else {
                return;
            };
            sink.send(
                &turn.run_id,
                Output::Failed(Failure {
                    kind: None,
                    message: "agent workers are not running".into(),
                    detail: None,
                }),
            );
        }
    }
}

fn detail(
    cfg: &OpenAiConfig,
    failover: &str,
    status: Option<u16>,
    ty: Option<&str>,
    msg: &str,
) -> Value {
    let mut d = json!({"provider": "openai", "model": cfg.model, "failoverReason": failover});
    if let Some(s) = status {
        d["httpStatus"] = json!(s);
    }
    if let Some(t) = ty {
        d["providerErrorType"] = json!(truncate(t, 300));
    }
    if !msg.is_empty() {
        d["providerErrorMessagePreview"] = json!(truncate(msg, 300));
    }
    d
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Maps an HTTP error status and body to `(errorKind, failoverReason)` as the original does:
/// only rate limits, timeouts, context overflow and refusals have an error kind.
pub fn classify(status: u16, body: &Value) -> (Option<&'static str>, &'static str) {
    let err = &body["error"];
    let code = err["code"].as_str().or(err["type"].as_str()).unwrap_or("");
    let msg = err["message"].as_str().unwrap_or("");
    if status == 429 || code.contains("rate_limit") {
        (Some("rate_limit"), "rate_limit")
    } else if status == 408 || status == 504 {
        (Some("timeout"), "timeout")
    } else if code.contains("context_length") || msg.contains("maximum context length") {
        (Some("context_length"), "context_overflow")
    } else if status == 401 || status == 403 {
        (None, "auth")
    } else if status >= 500 {
        (None, "server_error")
    } else {
        (None, "format")
    }
}

fn request_body(cfg: &OpenAiConfig, turn: &Turn) -> Value {
    let mut messages = Vec::new();
    if let Some(p) = &cfg.system_prompt {
        messages.push(json!({"role": "system", "content": p}));
    }
    // Tool results of earlier worker turns are not conversation text for a bare model.
    for m in turn
        .context
        .iter()
        .filter(|m| m.role != "toolResult" && !m.text.is_empty())
    {
        messages.push(json!({"role": m.role, "content": m.text}));
    }
    json!({
        "model": cfg.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

fn run(config: OpenAiConfig, turn: Turn, sink: Sink) {
    if turn.cancelled() {
        return;
    }
    let out = stream(&config, &turn, &sink);
    if !turn.cancelled() {
        sink.send(&turn.run_id, out);
    }
}

/// Sends a streamed `/chat/completions` request; the response, or the failure.
fn open(cfg: &OpenAiConfig, body: Value) -> Result<ureq::Response, Failure> {
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout.min(Duration::from_secs(10)))
        .timeout_read(timeout)
        .build();
    let url = format!("{}/chat/completions", cfg.base_url);
    let mut req = agent.post(&url).set("accept", "text/event-stream");
    if let Some(key) = &cfg.api_key {
        req = req.set("authorization", &format!("Bearer {key}"));
    }
    match req.send_json(body) {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(status, resp)) => {
            let body: Value = resp.into_json().unwrap_or(Value::Null);
            let (kind, failover) = classify(status, &body);
            let ty = body["error"]["type"].as_str().map(str::to_owned);
            let message = body["error"]["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("provider returned HTTP {status}"));
            Err(Failure {
                kind,
                detail: Some(detail(cfg, failover, Some(status), ty.as_deref(), &message)),
                message,
            })
        }
        Err(e) => match transport_failure(cfg, &e.to_string()) {
            Output::Failed(f) => Err(f),
            _ => unreachable!("a transport failure is a failure"),
        },
    }
}

/// A model call for a worker: the provider's stream as the worker's inference events, then
/// the terminal. Cancellation ends it with reason `cancelled`.
fn infer(job: InferJob) {
    let cfg = &job.config;
    if (job.cancelled)() {
        return;
    }
    let fail = |reason: &'static str, message: String| {
        (job.report)(InferenceOut::Failed { reason, message })
    };
    let started = Instant::now();
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let body = inference::request_body(&cfg.model, &job.context, &job.options);
    let resp = match open(cfg, body) {
        Ok(r) => r,
        Err(f) => return fail("provider-error", f.message),
    };
    let mut asm = inference::Assembler::default();
    let mut events = Vec::new();
    for line in BufReader::new(resp.into_reader()).lines() {
        if (job.cancelled)() {
            return fail("cancelled", "the model call was cancelled".into());
        }
        if started.elapsed() > timeout {
            return fail(
                "provider-error",
                format!("provider did not finish within {} ms", cfg.timeout_ms),
            );
        }
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail("provider-error", format!("provider stream failed: {e}")),
        };
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(err) = chunk.get("error") {
            let msg = err["message"].as_str().unwrap_or("provider error");
            return fail("provider-error", msg.to_owned());
        }
        asm.on_chunk(&chunk, &mut events);
        if !events.is_empty() {
            (job.report)(InferenceOut::Events(std::mem::take(&mut events)));
        }
    }
    let now = crate::state::now_ms();
    let message = asm.finish("openai", &cfg.model, now, &mut events);
    if !events.is_empty() {
        (job.report)(InferenceOut::Events(events));
    }
    (job.report)(InferenceOut::Done(message));
}

/// Performs the call, sending deltas as they arrive; returns the terminal output.
fn stream(cfg: &OpenAiConfig, turn: &Turn, sink: &Sink) -> Output {
    let started = Instant::now();
    let timeout = Duration::from_millis(cfg.timeout_ms);
    let failed = |(kind, failover): (Option<&'static str>, &str),
                  status,
                  ty: Option<&str>,
                  message: String| {
        Output::Failed(Failure {
            kind,
            detail: Some(detail(cfg, failover, status, ty, &message)),
            message,
        })
    };
    let resp = match open(cfg, request_body(cfg, turn)) {
        Ok(r) => r,
        Err(f) => return Output::Failed(f),
    };
    let mut text_len = 0usize;
    let mut usage = None;
    let mut stop_reason = "stop".to_owned();
    let reader = BufReader::new(resp.into_reader());
    for line in reader.lines() {
        if turn.cancelled() {
            return Output::Done {
                usage: Usage::default(),
                stop_reason: "aborted".into(),
            };
        }
        if started.elapsed() > timeout {
            return failed(
                (Some("timeout"), "timeout"),
                None,
                None,
                format!("provider did not finish within {} ms", cfg.timeout_ms),
            );
        }
        let line = match line {
            Ok(l) => l,
            Err(e) => return transport_failure(cfg, &e.to_string()),
        };
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            break;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(err) = chunk.get("error") {
            let msg = err["message"]
                .as_str()
                .unwrap_or("provider error")
                .to_owned();
            let kind = classify(0, &chunk);
            return failed(kind, None, err["type"].as_str(), msg);
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            usage = Some(Usage {
                input: u["prompt_tokens"].as_u64().unwrap_or(0),
                output: u["completion_tokens"].as_u64().unwrap_or(0),
            });
        }
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(refusal) = choice["delta"]["refusal"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            return failed(
                (Some("refusal"), "refusal"),
                None,
                Some("refusal"),
                refusal.to_owned(),
            );
        }
        if let Some(t) = choice["delta"]["content"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            text_len += t.len();
            sink.send(&turn.run_id, Output::Delta(t.to_owned()));
        }
        if let Some(r) = choice["finish_reason"].as_str() {
            stop_reason = r.to_owned();
        }
    }
    if stop_reason == "content_filter" && text_len == 0 {
        return failed(
            (Some("refusal"), "refusal"),
            None,
            Some("content_filter"),
            "the provider refused to answer".into(),
        );
    }
    let usage = usage.unwrap_or_else(|| Usage {
        input: turn.context.iter().map(|m| estimate_tokens(&m.text)).sum(),
        output: (text_len as u64).div_ceil(4),
    });
    Output::Done { usage, stop_reason }
}

fn transport_failure(cfg: &OpenAiConfig, msg: &str) -> Output {
    let lower = msg.to_ascii_lowercase();
    let (kind, failover) = if lower.contains("timed out") || lower.contains("timeout") {
        (Some("timeout"), "timeout")
    } else {
        (None, "network")
    };
    let message = format!("provider request failed: {msg}");
    Output::Failed(Failure {
        kind,
        detail: Some(detail(cfg, failover, None, None, &message)),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_map_to_error_kinds() {
        assert_eq!(
            classify(429, &Value::Null),
            (Some("rate_limit"), "rate_limit")
        );
        assert_eq!(classify(504, &Value::Null).0, Some("timeout"));
        let body = json!({"error": {"code": "context_length_exceeded", "message": "too long"}});
        assert_eq!(classify(400, &body).0, Some("context_length"));
        let boom = json!({"error": {"message": "boom"}});
        assert_eq!(classify(500, &boom), (None, "server_error"));
        assert_eq!(classify(401, &Value::Null), (None, "auth"));
    }
}
