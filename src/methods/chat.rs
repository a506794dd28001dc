//! Session, chat and agent methods (protocol §7.1–7.3): params are checked and the session key
//! resolved here, on the caller's shard; everything that touches a session's runs or rows goes
//! to the session's owner ([`crate::chat`]); reads of the durable transcript and session list go
//! straight to the storage thread.

use serde_json::{json, Map, Value};

use super::{str_param, Call, Deferred, Outcome, Reply};
use crate::{
    agent::catalog,
    chat::{
        fingerprint,
        key::{self, SessionKey},
        AbortVia, ChatRequest, SendKind, SendReq, SessionOp,
    },
    proto::errors::ErrorShape,
    shard::ctx::ShardCtx,
    state::now_ms,
    store::{
        sessions::{HistoryQuery, ListQuery, MAX_HISTORY_BYTES},
        Op, OpResult,
    },
};

/// Methods of this family.
pub const METHODS: &[&str] = &[
    "chat.send",
    "chat.abort",
    "chat.history",
    "chat.inject",
    "agent",
    "agent.wait",
    "agents.list",
    "models.list",
    "sessions.list",
    "sessions.describe",
    "sessions.subscribe",
    "sessions.unsubscribe",
    "sessions.messages.subscribe",
    "sessions.messages.unsubscribe",
    "sessions.patch",
    "sessions.reset",
    "sessions.delete",
    "sessions.send",
    "sessions.abort",
    "question.list",
    "plugin.approval.list",
    "taskSuggestions.list",
    "commands.list",
    "chat.startup",
    "chat.metadata",
    "sessions.branches.list",
];

/// Resolves the session key of a request (`key_field` names the param), checking its agent.
pub fn resolve(ctx: &ShardCtx, p: &Value, key_field: &str) -> Result<SessionKey, ErrorShape> {
    let raw = str_param(p, key_field).unwrap_or("main");
    if let Some(a) = str_param(p, "agentId") {
        if ctx.config.agent(&a.to_ascii_lowercase()).is_none() {
            return Err(ErrorShape::invalid(format!("Unknown agent id \"{a}\"")));
        }
    }
    key::resolve(raw, str_param(p, "agentId"), ctx.config.default_agent())
        .map_err(ErrorShape::invalid)
}

fn session(k: SessionKey, op: SessionOp) -> Outcome {
    Outcome::Chat(ChatRequest::Session(k, op))
}

pub fn handle(ctx: &mut ShardCtx, call: &Call) -> Outcome {
    super::outcome(run(ctx, call))
}

fn run(ctx: &mut ShardCtx, call: &Call) -> Result<Outcome, ErrorShape> {
    let p = call.params;
    Ok(match call.method {
        "chat.send" | "sessions.send" | "agent" => {
            let (kind, key_field) = match call.method {
                "chat.send" => (SendKind::Chat, "sessionKey"),
                "sessions.send" => (SendKind::Sessions, "key"),
                _ => (SendKind::Agent, "sessionKey"),
            };
            let run_id = str_param(p, "idempotencyKey")
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let key_given = p.get(key_field).is_some();
            let k = if kind == SendKind::Agent && !key_given {
                // As the original: an `agent` call without a session runs in its own one.
                let mut explicit = p.clone();
                explicit["sessionKey"] = json!(format!("explicit:{run_id}"));
                resolve(ctx, &explicit, key_field)?
            } else {
                resolve(ctx, p, key_field)?
            };
            let message = str_param(p, "message").unwrap_or_default().to_owned();
            if message.trim().is_empty() && p.get("attachments").is_none() {
                return Err(ErrorShape::invalid("message or attachment required"));
            }
            let fp = fingerprint(&[call.method, &k.canonical, &message]);
            session(
                k,
                SessionOp::Send(SendReq {
                    queue: false,
                    kind,
                    message,
                    run_id,
                    fingerprint: fp,
                    key_given,
                    reply_to: None,
                }),
            )
        }
        "chat.abort" => {
            let k = resolve(ctx, p, "sessionKey")?;
            let run_id = str_param(p, "runId").map(str::to_owned);
            session(
                k,
                SessionOp::Abort {
                    run_id,
                    via: AbortVia::Chat,
                },
            )
        }
        "sessions.abort" => {
            let run_id = str_param(p, "runId").map(str::to_owned);
            match (str_param(p, "key"), run_id) {
                (Some(_), run_id) => session(
                    resolve(ctx, p, "key")?,
                    SessionOp::Abort {
                        run_id,
                        via: AbortVia::Sessions,
                    },
                ),
                (None, Some(run_id)) => Outcome::Chat(ChatRequest::AbortRun { run_id }),
                (None, None) => {
                    return Err(ErrorShape::invalid(
                        "invalid sessions.abort params: key or runId required",
                    ))
                }
            }
        }
        "chat.inject" => session(
            resolve(ctx, p, "sessionKey")?,
            SessionOp::Inject {
                message: str_param(p, "message").unwrap_or_default().to_owned(),
                label: str_param(p, "label").map(str::to_owned),
            },
        ),
        "sessions.patch" => {
            let k = resolve(ctx, p, "key")?;
            let mut patch: Map<String, Value> = p
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(f, _)| {
                    !matches!(f.as_str(), "key" | "agentId") && !f.starts_with("expected")
                })
                .map(|(f, v)| (f.clone(), v.clone()))
                .collect();
            // Read state, as the original keeps it: marking read records when; marking
            // unread records when it was marked.
            match patch.get("unread") {
                Some(Value::Bool(false)) => {
                    patch.insert("lastReadAt".into(), json!(call.now_ms));
                    patch.insert("markedUnreadAt".into(), Value::Null);
                }
                Some(Value::Bool(true)) => {
                    patch.insert("markedUnreadAt".into(), json!(call.now_ms));
                }
                _ => {}
            }
            session(k, SessionOp::Patch(patch))
        }
        "sessions.reset" => session(resolve(ctx, p, "key")?, SessionOp::Reset),
        "sessions.delete" => session(
            resolve(ctx, p, "key")?,
            SessionOp::Delete {
                transcript: p
                    .get("deleteTranscript")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            },
        ),
        "agent.wait" => Outcome::Chat(ChatRequest::Wait {
            run_id: str_param(p, "runId").unwrap_or_default().to_owned(),
            timeout_ms: crate::proto::bounds::timer_ms(
                p.get("timeoutMs").and_then(Value::as_u64).unwrap_or(30_000),
            ),
        }),
        "chat.history" => history(ctx, p)?,
        "sessions.list" => list(ctx, p),
        "sessions.describe" => describe(ctx, p)?,
        "sessions.subscribe" => Outcome::Reply(Ok(json!({"subscribed": true}))),
        "sessions.unsubscribe" => Outcome::Reply(Ok(json!({"subscribed": false}))),
        "sessions.messages.subscribe" => {
            let k = resolve(ctx, p, "key")?;
            // Pending exec approvals are not tied to sessions in ringgate: nothing to replay.
            Outcome::Reply(Ok(json!({"subscribed": true, "key": k.canonical,
                "approvalReplay": {"sessionKey": k.canonical, "updatedAtMs": call.now_ms,
                                   "approvals": [], "truncated": false}})))
        }
        "sessions.messages.unsubscribe" => {
            let k = resolve(ctx, p, "key")?;
            Outcome::Reply(Ok(json!({"subscribed": false, "key": k.canonical})))
        }
        "agents.list" => Outcome::Reply(Ok(agents_list(ctx))),
        "models.list" => Outcome::Reply(Ok(catalog::models_list(&ctx.config))),
        "question.list" => Outcome::Reply(Ok(json!({"questions": []}))),
        "plugin.approval.list" => Outcome::Reply(Ok(json!([]))),
        "taskSuggestions.list" => Outcome::Reply(Ok(json!({"suggestions": []}))),
        "commands.list" => Outcome::Reply(Ok(json!({"commands": []}))),
        "chat.startup" => startup(ctx, p)?,
        "chat.metadata" => Outcome::Reply(Ok(catalog::chat_metadata(&ctx.config))),
        "sessions.branches.list" => branches(ctx, p)?,
        other => return Err(ErrorShape::unknown_method(other)),
    })
}

/// `defaults` of history and list results: the default agent's model.
fn defaults(ctx: &ShardCtx, agent_id: &str) -> Value {
    let agent = ctx.config.agent(agent_id).unwrap_or(&ctx.config.agents[0]);
    let (provider, model) = agent.runtime.model();
    let mut d = json!({
        "modelProvider": provider,
        "model": model,
        // ringgate keeps no token budget per model: the last messages are sent as context.
        "contextTokens": null,
        "agentRuntime": agent_runtime(agent),
        "modelSelectionTarget": "session",
    });
    thinking(&mut d);
    d
}

/// An agent's runtime as the original describes it: ringgate runs every agent on the
/// gateway (no cloud or device placement), chosen by its config.
fn agent_runtime(agent: &crate::agent::config::AgentConfig) -> Value {
    json!({"id": agent.runtime.name(), "cloudPlacementSupported": false,
           "devicePlacementSupported": false, "source": "config"})
}

/// ringgate's runtimes take no thinking level: thinking is off and there is nothing to pick.
fn thinking(v: &mut Value) {
    v["thinkingDefault"] = json!("off");
    v["thinkingLevels"] = json!([]);
    v["thinkingOptions"] = json!([]);
}

/// The row of a session that has none stored yet.
fn empty_row(ctx: &ShardCtx, k: &SessionKey) -> Value {
    let row = json!({
        "key": k.canonical,
        "kind": "direct",
        "agentId": k.agent_id,
        "isMain": k.canonical == format!("agent:{}:main", k.agent_id),
        "updatedAt": null,
        "hasActiveRun": false,
        "activeRunIds": [],
    });
    ctx.decorate_row(row)
}

/// Paging of a tail read: `limit` (default 200), `offset` from the newest end, `maxBytes`.
fn page_params(p: &Value) -> (u64, u64, usize) {
    let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(200);
    let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0);
    let max_bytes = p
        .get("maxBytes")
        .and_then(Value::as_u64)
        .map_or(MAX_HISTORY_BYTES, |b| (b as usize).min(MAX_HISTORY_BYTES));
    (limit, offset, max_bytes)
}

/// `chat.history`: the newest page of a transcript, or with `cursor` what came after it.
fn history(ctx: &mut ShardCtx, p: &Value) -> Result<Outcome, ErrorShape> {
    let k = resolve(ctx, p, "sessionKey")?;
    if p.get("messageId").is_some() {
        return Err(ErrorShape::invalid(
            "invalid chat.history params: messageId paging is not supported by ringgate; use limit/offset or cursor",
        ));
    }
    if let Some(c) = p.get("cursor") {
        return Ok(history_delta(k, c.as_str().unwrap_or_default(), p));
    }
    let offset_given = p.get("offset").is_some();
    Ok(tail_read(k, p, move |out, page, _, _| {
        if offset_given {
            out["offset"] = json!(page.offset);
        }
        if page.has_more {
            out["nextOffset"] = json!(page.next_offset);
        }
    }))
}

/// A tail read (`chat.history` without a cursor, `chat.startup`): [`tail_page`] of the
/// newest page, then `extend` adds what the method adds.
fn tail_read(
    k: SessionKey,
    p: &Value,
    extend: impl FnOnce(&mut Value, &crate::store::sessions::HistoryPage, &ShardCtx, &SessionKey)
        + 'static,
) -> Outcome {
    let (limit, offset, max_bytes) = page_params(p);
    let requested = str_param(p, "sessionKey").unwrap_or("main").to_owned();
    let op = Op::History(Box::new(HistoryQuery {
        key: k.canonical.clone(),
        limit,
        offset,
        max_bytes,
    }));
    let finish = move |r: OpResult, ctx: &ShardCtx| -> Reply {
        let OpResult::History(page) = r else {
            return Err(unavailable("history", &r));
        };
        let mut out = tail_page(ctx, &k, &requested, &page);
        extend(&mut out, &page, ctx, &k);
        Ok(out)
    };
    Outcome::Deferred(Box::new(Deferred {
        op,
        finish: Box::new(finish),
    }))
}

fn unavailable(what: &str, r: &OpResult) -> ErrorShape {
    ErrorShape::new(
        crate::proto::errors::code::UNAVAILABLE,
        format!("{what} unavailable: {r:?}"),
    )
    .retry_after(1000)
}

/// The fields of a tail read (`chat.history`, `chat.startup`): the messages, a `deltaCursor`
/// at the newest message, the session row, the run in flight.
fn tail_page(
    ctx: &ShardCtx,
    k: &SessionKey,
    requested: &str,
    page: &crate::store::sessions::HistoryPage,
) -> Value {
    let info = match &page.row {
        Some(row) => ctx.decorate_row(row.clone()),
        None => empty_row(ctx, k),
    };
    let session_id = page
        .row
        .as_ref()
        .and_then(|r| r["sessionId"].as_str())
        .unwrap_or_default()
        .to_owned();
    let mut out = json!({"sessionKey": requested});
    if !session_id.is_empty() {
        out["sessionId"] = json!(session_id);
    }
    out["messages"] = json!(page.messages);
    no_pending_inputs(&mut out);
    out["deltaCursor"] = json!(crate::chat::cursor::Cursor {
        agent_id: k.agent_id.clone(),
        session_id,
        last_seq: page.total,
    }
    .encode());
    out["hasMore"] = json!(page.has_more);
    out["totalMessages"] = json!(page.total);
    out["defaults"] = defaults(ctx, &k.agent_id);
    out["sessionInfo"] = info;
    if let Some(run) = in_flight(ctx, &k.canonical) {
        out["inFlightRun"] = run;
    }
    out
}

/// Inputs are durable turns as soon as `chat.send` is acknowledged: nothing is pending and
/// nothing is receipted separately.
fn no_pending_inputs(out: &mut Value) {
    out["pendingInputs"] = json!({"items": [], "total": 0});
    out["inputReceipts"] = json!([]);
    out["inputConsumptions"] = json!([]);
}

/// `inFlightRun` of a session: its active run (the text streams in `chat` events).
fn in_flight(ctx: &ShardCtx, key: &str) -> Option<Value> {
    ctx.run_index
        .active_in(key)
        .map(|(id, at)| json!({"runId": &*id, "text": "", "startedAt": at}))
}

/// `chat.history {cursor}`: the messages after the cursor, as `session.message` payloads
/// (`kind:"delta"`), or `{kind:"reset"}` when the cursor no longer fits the transcript.
fn history_delta(k: SessionKey, cursor: &str, p: &Value) -> Outcome {
    let Some(c) = crate::chat::cursor::Cursor::decode(cursor).filter(|c| c.agent_id == k.agent_id)
    else {
        return Outcome::Reply(Ok(json!({"kind": "reset"})));
    };
    let (limit, _, max_bytes) = page_params(p);
    let op = Op::HistoryDelta(Box::new(crate::store::sessions::DeltaQuery {
        key: k.canonical.clone(),
        session_id: c.session_id.clone(),
        after_seq: c.last_seq,
        limit,
        max_bytes,
    }));
    let finish = move |r: OpResult, ctx: &ShardCtx| -> Reply {
        let OpResult::Delta(page) = r else {
            return Err(unavailable("history", &r));
        };
        let crate::store::sessions::DeltaPage::Delta {
            row,
            messages,
            last_seq,
        } = *page
        else {
            return Ok(json!({"kind": "reset"}));
        };
        let row = ctx.decorate_row(row);
        let entries: Vec<Value> = messages
            .iter()
            .map(|(seq, id, m)| {
                crate::chat::payload::session_message_payload(
                    &k.canonical,
                    &k.agent_id,
                    m,
                    Some(*seq),
                    Some(id),
                    &row,
                )
            })
            .collect();
        let mut out = json!({
            "kind": "delta",
            "messages": entries,
            "deltaCursor": crate::chat::cursor::Cursor {
                agent_id: k.agent_id.clone(),
                session_id: c.session_id.clone(),
                last_seq,
            }
            .encode(),
            "sessionInfo": row,
        });
        no_pending_inputs(&mut out);
        if let Some(run) = in_flight(ctx, &k.canonical) {
            out["inFlightRun"] = run;
        }
        Ok(out)
    };
    Outcome::Deferred(Box::new(Deferred {
        op,
        finish: Box::new(finish),
    }))
}

/// `chat.startup`: the chat page's first read — the newest page and the chat metadata.
fn startup(ctx: &mut ShardCtx, p: &Value) -> Result<Outcome, ErrorShape> {
    if p.get("shortId").is_some() {
        return Err(ErrorShape::invalid(
            "short chat links are not supported by ringgate; open the session by its key",
        ));
    }
    let k = resolve(ctx, p, "sessionKey")?;
    Ok(tail_read(k, p, |out, _, ctx, _| {
        out["metadata"] = catalog::chat_metadata(&ctx.config);
    }))
}

/// `sessions.branches.list` (read by the storage thread).
fn branches(ctx: &mut ShardCtx, p: &Value) -> Result<Outcome, ErrorShape> {
    let k = resolve(ctx, p, "sessionKey")?;
    Ok(super::json_from_store(Op::Branches { key: k.canonical }))
}

/// `sessions.describe {key}` → `{session: <row> | null}`.
fn describe(ctx: &ShardCtx, p: &Value) -> Result<Outcome, ErrorShape> {
    let k = resolve(ctx, p, "key")?;
    let op = Op::History(Box::new(HistoryQuery {
        key: k.canonical,
        limit: 0,
        offset: 0,
        max_bytes: 0,
    }));
    let finish = move |r: OpResult, ctx: &ShardCtx| -> Reply {
        match r {
            OpResult::History(page) => Ok(json!({
                "session": page.row.map(|row| ctx.decorate_row(row)),
            })),
            other => Err(ErrorShape::new(
                crate::proto::errors::code::UNAVAILABLE,
                format!("session unavailable: {other:?}"),
            )
            .retry_after(1000)),
        }
    };
    Ok(Outcome::Deferred(Box::new(Deferred {
        op,
        finish: Box::new(finish),
    })))
}

fn list(ctx: &ShardCtx, p: &Value) -> Outcome {
    if p.get("spawnedBy").is_some() {
        // ringgate sessions spawn no sub-sessions: a parent's children are none.
        return Outcome::Reply(Ok(json!({
            "ts": now_ms(), "path": ctx.config.state_dir.join("ringgate.sqlite").display().to_string(),
            "count": 0, "totalCount": 0, "limitApplied": p.get("limit").cloned().unwrap_or(json!(100)),
            "nextOffset": null, "hasMore": false, "owners": [],
            "defaults": defaults(ctx, ctx.config.default_agent()), "sessions": [],
        })));
    }
    let limit = p
        .get("limit")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .min(1000);
    let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0);
    let q = ListQuery {
        limit,
        offset,
        agent_id: str_param(p, "agentId").map(str::to_ascii_lowercase),
        search: str_param(p, "search").map(str::to_owned),
        active_minutes: p.get("activeMinutes").and_then(Value::as_u64),
    };
    let path = ctx
        .config
        .state_dir
        .join("ringgate.sqlite")
        .display()
        .to_string();
    let finish = move |r: OpResult, ctx: &ShardCtx| -> Reply {
        let OpResult::Sessions { rows, total } = r else {
            return Err(ErrorShape::new(
                crate::proto::errors::code::UNAVAILABLE,
                format!("sessions unavailable: {r:?}"),
            )
            .retry_after(1000));
        };
        let count = rows.len() as u64;
        let has_more = offset + count < total;
        let sessions: Vec<Value> = rows.into_iter().map(|r| ctx.decorate_row(r)).collect();
        Ok(json!({
            "ts": now_ms(),
            "path": path,
            "count": count,
            "totalCount": total,
            "limitApplied": limit,
            "offset": offset,
            "nextOffset": if has_more { json!(offset + count) } else { Value::Null },
            "hasMore": has_more,
            "owners": [],
            "defaults": defaults(ctx, ctx.config.default_agent()),
            "sessions": sessions,
        }))
    };
    Outcome::Deferred(Box::new(Deferred {
        op: Op::ListSessions(Box::new(q)),
        finish: Box::new(finish),
    }))
}

fn agents_list(ctx: &ShardCtx) -> Value {
    let agents: Vec<Value> = ctx
        .config
        .agents
        .iter()
        .map(|a| {
            let (provider, model) = a.runtime.model();
            let mut v = json!({
                "id": a.id,
                "kind": "agent",
                "agentRuntime": agent_runtime(a),
                "model": {"primary": format!("{provider}/{model}")},
                // No tools, so nothing to permit; no workspace directory.
                "defaultPermissionMode": null,
                "workspace": null,
                "workspaceGit": false,
            });
            thinking(&mut v);
            v
        })
        .collect();
    json!({
        "defaultId": ctx.config.default_agent(),
        "ownership": "sole",
        "selectionRequired": false,
        "mainKey": "main",
        "scope": "per-sender",
        "agents": agents,
    })
}
