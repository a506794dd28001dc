//! `health`, `status`, `system-presence`, `system-event`, `last-heartbeat`, `set-heartbeats`,
//! `wake` (protocol §7.6).

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value};

use super::{Call, Effect, Reply};
use crate::{proto::errors::ErrorShape, shard::ctx::ShardCtx, state::VERSION};

pub fn handle(ctx: &mut ShardCtx, call: &Call, effects: &mut Vec<Effect>) -> Reply {
    match call.method {
        "health" => Ok(ctx.health_snapshot()),
        "status" => Ok(status(ctx, call)),
        "system-presence" => Ok(Value::Array(ctx.presence.list(call.now_ms))),
        // ringgate runs no heartbeat turns: the last one is always "skipped", as the
        // original reports a heartbeat that had nowhere to go.
        "last-heartbeat" => Ok(json!({
            "ts": ctx.globals.started_ms,
            "status": "skipped",
            "reason": "disabled",
            "durationMs": 0,
            "message": "Heartbeat turns are not run by this gateway.",
        })),
        "set-heartbeats" => match call.params.get("enabled").and_then(Value::as_bool) {
            Some(enabled) => {
                ctx.heartbeats_enabled = enabled;
                Ok(json!({"ok": true, "enabled": enabled}))
            }
            None => Err(ErrorShape::invalid(
                "invalid set-heartbeats params: enabled (boolean) required",
            )),
        },
        "wake" => {
            let text = call.params["text"].as_str().unwrap_or("").trim().to_owned();
            if text.is_empty() {
                return Ok(json!({"ok": false}));
            }
            effects.push(Effect::SystemEvent(text));
            Ok(json!({"ok": true}))
        }
        "system-event" => system_event(call, effects),
        _ => unreachable!("dispatch only routes implemented methods"),
    }
}

fn status(ctx: &ShardCtx, call: &Call) -> Value {
    let admin = call.session.scopes.has(crate::proto::scopes::Scope::Admin);
    let g = &ctx.globals;
    let mut gateway = json!({
        "implementation": "ringgate",
        "shards": ctx.sender.bus().shards(),
        "driver": ctx.driver,
        "connections": g.connections.load(Ordering::Relaxed),
        "uptimeMs": g.uptime_ms(),
        "slowConsumerCloses": g.slow_closes.load(Ordering::Relaxed),
            "budgetCloses": g.budget_closes.load(Ordering::Relaxed),
            "panicsContained": g.panics_contained.load(Ordering::Relaxed),
            "acceptErrors": g.accept_errors.load(Ordering::Relaxed),
        "droppedEvents": g.dropped_events.load(Ordering::Relaxed),
        "logsSuppressed": g.logs_suppressed.load(Ordering::Relaxed),
    });
    if admin {
        gateway["stateDir"] = json!(ctx.config.state_dir.display().to_string());
        gateway["authMode"] = json!(ctx.config.auth.name());
    }
    let channels = ctx.channels.status(None, call.now_ms);
    // Text lines, as the original's `buildChannelSummary`.
    let mut channel_summary: Vec<String> = Vec::new();
    for id in ctx.channels.ids() {
        let label = channels["channelLabels"][id].as_str().unwrap_or(id);
        for a in channels["channelAccounts"][id]
            .as_array()
            .into_iter()
            .flatten()
        {
            let flag = |k: &str, yes: &'static str, no: &'static str| {
                if a[k] == true {
                    yes
                } else {
                    no
                }
            };
            channel_summary.push(format!(
                "{label} {}: {}, {}, {}",
                a["accountId"].as_str().unwrap_or("default"),
                flag("enabled", "enabled", "disabled"),
                flag("configured", "configured", "not configured"),
                flag("running", "running", "stopped"),
            ));
        }
    }
    let mut ringgate = json!({
        "config": {
            "path": ctx.config.file_path().display().to_string(),
            "pinnedPaths": ctx.config.overrides.pinned(),
        },
        "cron": {
            "enabled": ctx.config.cron_enabled,
            "owner": ctx.placement().cron(),
        },
        "skills": {
            "dirs": ctx.config.skills.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        },
        "agents": ctx.config.agents.iter().map(|a| json!({"id": a.id, "runtime": a.runtime.name()})).collect::<Vec<_>>(),
        "pricedModels": ctx.config.pricing.len(),
    });
    if !admin {
        ringgate["config"]["path"] = Value::Null;
        ringgate["skills"]["dirs"] = json!([]);
    }
    json!({
        "runtimeVersion": VERSION,
        // ringgate runs no heartbeat turns: every agent's is disabled.
        "heartbeat": {
            "defaultAgentId": ctx.config.default_agent(),
            "agents": ctx.config.agents.iter().map(|a| json!({
                "agentId": a.id, "enabled": false, "every": "disabled", "everyMs": null,
                "waitingForRoute": false,
            })).collect::<Vec<_>>(),
        },
        "channelSummary": channel_summary,
        "queuedSystemEvents": ctx.queued_system_events,
        "sessions": status_sessions(ctx, call.now_ms),
        "eventLoop": g.event_loop(),
        "pid": std::process::id(),
        "processMemory": g.process.memory_json(),
        // No model runtime to load, no plugins, no secret providers, no host desktop.
        "modelRuntime": {"degraded": false, "pendingAgents": []},
        "degradedPlugins": [],
        "degradedSecretOwners": [],
        "hostDesktop": {"enabled": false, "state": "disabled", "port": null},
        "gateway": gateway,
        "ringgate": ringgate,
    })
}

/// Upserts a presence entry from the params (keyed like the original: deviceId, instanceId,
/// host, then the first 64 chars of the text) and broadcasts `presence`.
fn system_event(call: &Call, effects: &mut Vec<Effect>) -> Reply {
    let p = call.params;
    let text = p["text"].as_str().unwrap_or("").trim();
    if text.is_empty() {
        return Err(ErrorShape::invalid("text required"));
    }
    let s = |k: &str| p.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let key = s("deviceId")
        .or(s("instanceId"))
        .or(s("host"))
        .map(str::to_lowercase)
        .unwrap_or_else(|| text.chars().take(64).collect());
    let mut fields = Map::new();
    for k in [
        "deviceId",
        "instanceId",
        "host",
        "ip",
        "mode",
        "version",
        "platform",
        "deviceFamily",
        "modelIdentifier",
        "reason",
    ] {
        if let Some(v) = s(k) {
            fields.insert(k.into(), json!(v));
        }
    }
    for k in ["roles", "scopes"] {
        if let Some(arr) = p.get(k).and_then(Value::as_array) {
            fields.insert(k.into(), Value::Array(arr.clone()));
        }
    }
    if let Some(n) = p.get("lastInputSeconds").filter(|v| v.is_number()) {
        fields.insert("lastInputSeconds".into(), n.clone());
    }
    fields.insert("text".into(), json!(text));
    effects.push(Effect::Presence {
        key: format!("event:{key}"),
        fields,
    });
    if !text.starts_with("Node:") {
        effects.push(Effect::SystemEvent(text.to_owned()));
    }
    Ok(json!({"ok": true}))
}

/// `logs.tail {cursor?, limit?, maxBytes?}`: pages through the newest log file (read by the
/// storage thread, never on a shard).
pub fn logs_tail(ctx: &ShardCtx, call: &Call) -> super::Outcome {
    use crate::{logs, store::Op};
    let p = call.params;
    let op = Op::LogTail {
        dir: logs::dir(&ctx.config.state_dir),
        cursor: p.get("cursor").and_then(Value::as_u64),
        limit: p
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(logs::DEFAULT_LIMIT),
        max_bytes: p
            .get("maxBytes")
            .and_then(Value::as_u64)
            .unwrap_or(logs::DEFAULT_MAX_BYTES),
    };
    super::json_from_store(op)
}

/// `status.sessions`: counts and the newest sessions, overall and per configured agent. The
/// model is the agent's configured one; ringgate does not know a model's context window, so
/// the context figures are `null`.
fn status_sessions(ctx: &ShardCtx, now: u64) -> Value {
    let s = &ctx.sessions;
    let path = ctx.config.store_path().display().to_string();
    let row = |r: &crate::store::sessions_summary::Recent| {
        let agent = ctx.config.agent(&r.agent_id);
        let (provider, model) = agent.map_or(("", ""), |a| a.runtime.model());
        json!({
            "agentId": r.agent_id,
            "key": r.key,
            "kind": "direct",
            "sessionId": r.session_id,
            "updatedAt": r.updated_at_ms,
            "age": now.saturating_sub(r.updated_at_ms),
            "inputTokens": r.input_tokens,
            "outputTokens": r.output_tokens,
            "totalTokens": r.input_tokens + r.output_tokens,
            "totalTokensFresh": true,
            "remainingTokens": null,
            "percentUsed": null,
            "contextTokens": null,
            "model": agent.map(|_| model),
            "configuredModel": agent.map(|_| format!("{provider}/{model}")),
            "selectedModel": agent.map(|_| format!("{provider}/{model}")),
            "modelSelectionReason": null,
            "runtime": agent.map(|a| a.runtime.name()),
            "flags": [format!("id:{}", r.session_id)],
        })
    };
    let default_model = ctx
        .config
        .agent(ctx.config.default_agent())
        .map(|a| a.runtime.model().1);
    json!({
        "paths": [path],
        "count": s.count(),
        "defaults": {"model": default_model, "contextTokens": null},
        "recent": s.recent_of(None).map(row).collect::<Vec<_>>(),
        "byAgent": ctx.config.agents.iter().map(|a| json!({
            "agentId": a.id,
            "path": path,
            "count": s.count_of(&a.id),
            "recent": s.recent_of(Some(&a.id)).map(row).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
