//! Payloads of the run events (`chat`, `agent`, `session.message`, `sessions.changed`) and of
//! stored transcript messages, in the original's shapes (protocol §6.5, §7.1).

use std::sync::Arc;

use serde_json::{json, Value};

use crate::{
    agent::{Failure, Usage},
    proto::frame::{EventMeta, EventTemplate, LiveKey},
};

/// An assistant display message as stored in the transcript and carried by `chat` events.
pub fn message(role: &str, text: &str, ts: u64) -> Value {
    json!({"role": role, "content": [{"type": "text", "text": text}], "timestamp": ts})
}

/// The user turn as the original stores it: plain-string content, keyed `<runId>:user`.
pub fn user_message(text: &str, ts: u64, run_id: &str) -> Value {
    json!({"role": "user", "content": text, "timestamp": ts, "idempotencyKey": format!("{run_id}:user")})
}

/// A stored assistant reply, with its model and usage.
pub fn assistant_record(
    text: &str,
    ts: u64,
    provider: &str,
    model: &str,
    usage: &Usage,
    stop: &str,
) -> Value {
    let mut m = message("assistant", text, ts);
    m["provider"] = json!(provider);
    m["model"] = json!(model);
    m["usage"] = usage_json(usage);
    m["stopReason"] = json!(stop);
    m
}

pub fn usage_json(u: &Usage) -> Value {
    json!({"input": u.input, "output": u.output, "totalTokens": u.input + u.output})
}

/// Identity of a run for event building.
pub struct RunRef<'a> {
    pub run_id: &'a Arc<str>,
    pub key: &'a Arc<str>,
    pub agent_id: &'a str,
}

fn meta(r: &RunRef) -> EventMeta {
    EventMeta {
        session: Some(r.key.clone()),
        ..Default::default()
    }
}

fn chat(r: &RunRef, seq: u64, state: &str, mut extra: Value) -> Value {
    let mut p = json!({
        "runId": &**r.run_id,
        "sessionKey": &**r.key,
        "agentId": r.agent_id,
        "seq": seq,
        "state": state,
    });
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object_mut()) {
        p.append(extra);
    }
    p
}

/// A streamed delta (`deltaText` = the new suffix, `message` = the whole text so far), plus its
/// whole-text replacement for slow clients. Droppable.
pub fn chat_delta(r: &RunRef, seq: u64, delta: &str, text: &str, ts: u64) -> EventTemplate {
    let replace = EventTemplate::new(
        "chat",
        &chat(
            r,
            seq,
            "delta",
            json!({"deltaText": text, "replace": true, "message": message("assistant", text, ts)}),
        ),
        None,
    )
    .with_meta(EventMeta {
        drop_if_slow: Some(true),
        ..meta(r)
    });
    EventTemplate::new(
        "chat",
        &chat(
            r,
            seq,
            "delta",
            json!({"deltaText": delta, "message": message("assistant", text, ts)}),
        ),
        None,
    )
    .with_meta(EventMeta {
        drop_if_slow: Some(true),
        live: Some(LiveKey {
            run_id: r.run_id.clone(),
            event: "chat",
            replace: Some(Arc::new(replace)),
        }),
        ..meta(r)
    })
}

fn terminal(r: &RunRef) -> EventMeta {
    EventMeta {
        drop_if_slow: Some(false),
        ends_run: Some(r.run_id.clone()),
        ..meta(r)
    }
}

/// `chat` status (`phase`), droppable; only for `chat.send`/`sessions.send` runs.
pub fn chat_status(r: &RunRef, seq: u64, phase: &str) -> EventTemplate {
    EventTemplate::new(
        "chat",
        &chat(r, seq, "status", json!({"phase": phase})),
        None,
    )
    .with_meta(EventMeta {
        drop_if_slow: Some(true),
        ..meta(r)
    })
}

/// A transcript message's `__openclaw` record metadata, as the original attaches it — the
/// same in history reads, history deltas and live events: its id and
/// position, when it was recorded, and for the operator's turns that the owner sent them.
/// (ringgate has no user profiles, so no sender identity or avatar; it does not record
/// which client sent a message.)
pub fn record_meta(m: &Value, id: &str, seq: u64, session_id: &str) -> Value {
    let mut meta = json!({
        "id": id,
        "seq": seq,
        "recordTimestampMs": m["timestamp"],
        "transcriptPosition": {"source": session_id, "rawSeq": seq},
    });
    if m["role"] == "user" {
        meta["senderIsOwner"] = json!(true);
        meta["senderId"] = json!(super::row::OWNER_ID);
        if let Some(k) = m["idempotencyKey"].as_str() {
            meta["idempotencyKey"] = json!(k);
        }
    }
    if let Some(r) = m["runId"].as_str() {
        meta["runId"] = json!(r);
    }
    meta
}

/// The final reply (never dropped). `message` is omitted for an empty reply (clients then
/// reload the history); `stored` is where the reply was recorded `(seq, id, session id)`, which
/// lets the Control UI place it as persisted at once.
pub fn chat_final(
    r: &RunRef,
    seq: u64,
    text: &str,
    ts: u64,
    stop_reason: &str,
    stored: Option<(u64, &str, &str)>,
) -> EventTemplate {
    let mut extra = json!({"stopReason": stop_reason});
    if !text.is_empty() {
        let mut m = message("assistant", text, ts);
        if let Some((message_seq, id, session_id)) = stored {
            m["__openclaw"] = record_meta(&m, id, message_seq, session_id);
            extra["messageId"] = json!(id);
            extra["messageSeq"] = json!(message_seq);
        }
        extra["message"] = m;
    }
    EventTemplate::new("chat", &chat(r, seq, "final", extra), None).with_meta(terminal(r))
}

/// `chat.inject`'s message, announced as a final of run `inject-<messageId>` with `seq` 0.
pub fn chat_injected(
    key: &Arc<str>,
    agent_id: &str,
    message_id: &str,
    message: &Value,
) -> EventTemplate {
    let run_id: Arc<str> = Arc::from(format!("inject-{message_id}").as_str());
    let r = RunRef {
        run_id: &run_id,
        key,
        agent_id,
    };
    EventTemplate::new(
        "chat",
        &chat(&r, 0, "final", json!({"message": message})),
        None,
    )
    .with_meta(terminal(&r))
}

/// Why a run was aborted, as the original reports an abort requested over RPC.
pub const ABORT_STOP_REASON: &str = "rpc";

pub fn chat_aborted(r: &RunRef, seq: u64, text: &str, ts: u64) -> EventTemplate {
    let mut extra = json!({"stopReason": ABORT_STOP_REASON});
    if !text.is_empty() {
        extra["message"] = message("assistant", text, ts);
    }
    EventTemplate::new("chat", &chat(r, seq, "aborted", extra), None).with_meta(terminal(r))
}

pub fn chat_error(r: &RunRef, seq: u64, f: &Failure) -> EventTemplate {
    let mut extra = json!({"errorMessage": f.message});
    if let Some(kind) = f.kind {
        extra["errorKind"] = json!(kind);
    }
    if let Some(d) = &f.detail {
        extra["errorDetail"] = d.clone();
    }
    EventTemplate::new("chat", &chat(r, seq, "error", extra), None).with_meta(terminal(r))
}

fn agent(r: &RunRef, seq: u64, stream: &str, ts: u64, data: Value) -> Value {
    json!({
        "runId": &**r.run_id,
        "seq": seq,
        "stream": stream,
        "ts": ts,
        "data": data,
        "sessionKey": &**r.key,
        "agentId": r.agent_id,
    })
}

/// `agent` lifecycle start/end (never dropped).
pub fn agent_lifecycle(r: &RunRef, seq: u64, ts: u64, data: Value) -> EventTemplate {
    let ends = data["phase"] != "start";
    EventTemplate::new("agent", &agent(r, seq, "lifecycle", ts, data), None).with_meta(EventMeta {
        drop_if_slow: Some(false),
        ends_run: ends.then(|| r.run_id.clone()),
        ..meta(r)
    })
}

/// `agent` tool lifecycle (`data.phase` `start` / `update` / `result`, the tool's name, call
/// id, arguments or result), for connections that declared the `tool-events` cap.
pub fn agent_tool(r: &RunRef, seq: u64, ts: u64, data: Value) -> EventTemplate {
    EventTemplate::new("agent", &agent(r, seq, "tool", ts, data), None).with_meta(EventMeta {
        drop_if_slow: Some(false),
        tool_events: true,
        ..meta(r)
    })
}

/// `agent` assistant text (`text` whole so far, `delta` the new part); coalesced for slow
/// clients (the newest frame carries the whole text).
pub fn agent_assistant(r: &RunRef, seq: u64, ts: u64, delta: &str, text: &str) -> EventTemplate {
    EventTemplate::new(
        "agent",
        &agent(
            r,
            seq,
            "assistant",
            ts,
            json!({"text": text, "delta": delta, "itemId": format!("{}:0", r.run_id)}),
        ),
        None,
    )
    .with_meta(EventMeta {
        drop_if_slow: Some(false),
        live: Some(LiveKey {
            run_id: r.run_id.clone(),
            event: "agent",
            replace: None,
        }),
        ..meta(r)
    })
}

/// `session.message` to the session's message subscribers (and `sessions.subscribe`
/// subscribers, as the original delivers it).
pub fn session_message(
    key: &Arc<str>,
    agent_id: &str,
    message: &Value,
    seq: Option<u64>,
    id: Option<&str>,
    row: &Value,
) -> EventTemplate {
    EventTemplate::new(
        "session.message",
        &SessionMessage::new(key, agent_id, message, seq, id, row),
        None,
    )
    .with_meta(EventMeta {
        session: Some(key.clone()),
        drop_if_slow: Some(false),
        ..Default::default()
    })
}

/// The payload of `session.message`, also an entry of a `chat.history` delta.
pub fn session_message_payload(
    key: &str,
    agent_id: &str,
    message: &Value,
    seq: Option<u64>,
    id: Option<&str>,
    row: &Value,
) -> Value {
    serde_json::to_value(SessionMessage::new(key, agent_id, message, seq, id, row))
        .expect("a JSON value re-encodes")
}

/// `session.message`, serialised from borrowed parts: a turn sends it for both messages and
/// the session row is large, so nothing is cloned to build it.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionMessage<'a> {
    session_key: &'a str,
    agent_id: &'a str,
    message: Tagged<'a>,
    message_id: Option<&'a str>,
    message_seq: Option<u64>,
    session: &'a Value,
}

impl<'a> SessionMessage<'a> {
    fn new(
        key: &'a str,
        agent_id: &'a str,
        message: &'a Value,
        seq: Option<u64>,
        id: Option<&'a str>,
        row: &'a Value,
    ) -> Self {
        SessionMessage {
            session_key: key,
            agent_id,
            message: Tagged {
                message,
                position: seq.zip(id),
                session_id: row["sessionId"].as_str().unwrap_or_default(),
            },
            message_id: id,
            message_seq: seq,
            session: row,
        }
    }
}

/// A transcript message with its record metadata ([`record_meta`]) when it has a position.
struct Tagged<'a> {
    message: &'a Value,
    position: Option<(u64, &'a str)>,
    session_id: &'a str,
}

impl serde::Serialize for Tagged<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (Value::Object(fields), Some((seq, id))) = (self.message, self.position) else {
            return self.message.serialize(s);
        };
        let mut map = s.serialize_map(None)?;
        for (k, v) in fields.iter().filter(|(k, _)| *k != "__openclaw") {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry(
            "__openclaw",
            &record_meta(self.message, id, seq, self.session_id),
        )?;
        map.end()
    }
}

/// `sessions.changed` to `sessions.subscribe` subscribers (droppable).
pub fn sessions_changed(
    key: &Arc<str>,
    reason: &str,
    row: Option<&Value>,
    ts: u64,
) -> EventTemplate {
    let row = row.filter(|r| r.is_object());
    let field = |name: &str| row.map(|r| &r[name]);
    let p = SessionsChanged {
        session_key: key,
        reason,
        ts,
        agent_id: field("agentId"),
        session_id: field("sessionId"),
        has_active_run: field("hasActiveRun"),
        active_run_ids: field("activeRunIds"),
        session: row,
    };
    EventTemplate::new("sessions.changed", &p, None).with_meta(EventMeta {
        session: Some(key.clone()),
        ..Default::default()
    })
}

/// The payload of `sessions.changed`, borrowing the row's fields.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionsChanged<'a> {
    session_key: &'a str,
    reason: &'a str,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    has_active_run: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_run_ids: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a Value>,
}
