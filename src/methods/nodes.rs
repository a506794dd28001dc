//! Node methods (protocol §7.8): the operator side (`node.list|describe|invoke`,
//! `node.pair.*`, `node.rename`) and the node side (`node.invoke.result`, `node.event`, and the
//! updates the node host sends at start). Node rows come from two replicas: the paired devices
//! (approved and pending capability surfaces, durable) and the registry of connected nodes.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{str_param, Call, Deferred, Outcome, Reply, Routed};
use crate::{
    nodes::{
        invoke,
        registry::NodeInfo,
        surface::{self, approval_state, live_pending, paired_json},
    },
    pairing::PairedDevice,
    proto::{
        errors::{code, ErrorShape},
        scopes::Scope,
    },
    shard::ctx::ShardCtx,
    state::now_ms,
    store::{Op, OpResult},
};

/// Methods of this family.
pub const METHODS: &[&str] = &[
    "node.list",
    "node.describe",
    "node.invoke",
    "node.pair.list",
    "node.pair.approve",
    "node.pair.reject",
    "node.pair.remove",
    "node.rename",
    "node.invoke.result",
    "node.event",
    "node.runnerInventory.update",
    "node.skills.update",
    "node.pluginTools.update",
];

/// Implemented but left out of `hello-ok.features.methods`, as the original hides it.
pub const HIDDEN: &[&str] = &["node.runnerInventory.update"];

fn is_node_device(d: &PairedDevice) -> bool {
    d.roles.iter().any(|r| r == "node")
}

/// A `KnownNode` row (`node.list`, `node.describe`).
fn known(
    d: Option<&PairedDevice>,
    live: Option<&NodeInfo>,
    last_down: Option<u64>,
    now: u64,
) -> Value {
    let node_id = live
        .map(|n| n.node_id.clone())
        .or_else(|| d.map(|d| d.device_id.clone()))
        .unwrap_or_default();
    let approved = d.and_then(|d| d.node_surface.as_ref());
    let pending = d.and_then(|d| live_pending(d, now));
    let mut row = json!({
        "nodeId": node_id,
        "displayName": d.and_then(|d| d.label.clone())
            .or_else(|| live.and_then(|n| n.display_name.clone()))
            .or_else(|| d.and_then(|d| d.display_name.clone())),
        "platform": live.map(|n| n.platform.clone()).or_else(|| d.and_then(|d| d.platform.clone())),
        "version": live.map(|n| n.version.clone()).or_else(|| approved.and_then(|s| s.version.clone())),
        "clientId": live.map(|n| n.client_id.clone()).or_else(|| d.and_then(|d| d.client_id.clone())),
        "clientMode": live.map(|n| n.client_mode.clone()).or_else(|| d.and_then(|d| d.client_mode.clone())),
        "deviceFamily": live.and_then(|n| n.device_family.clone()).or_else(|| d.and_then(|d| d.device_family.clone())),
        "caps": approved.map(|s| s.caps.clone()).unwrap_or_default(),
        "commands": approved.map(|s| s.commands.clone()).unwrap_or_default(),
        "sessionHost": false,
        "approvalState": approval_state(d, now),
        "paired": approved.is_some(),
        "connected": live.is_some(),
    });
    if let Some(n) = live {
        row["nodePluginTools"] = json!([]);
        row["pathEnv"] = json!(n.path_env);
        row["connectedAtMs"] = json!(n.connected_at_ms);
        row["lastConnectedAtMs"] = json!(n.connected_at_ms);
        row["lastSeenAtMs"] = json!(n.connected_at_ms);
        row["lastSeenReason"] = json!("connect");
        if let Some(ip) = &n.remote_ip {
            row["remoteIp"] = json!(ip);
        }
        if let Some(p) = &n.permissions {
            row["permissions"] = p.clone();
        }
        if let Some(h) = &n.host_stats {
            row["hostStats"] = h.clone();
        }
    } else if let Some(at) = last_down {
        row["lastDisconnectedAtMs"] = json!(at);
    }
    if let Some(s) = approved {
        row["approvedAtMs"] = json!(s.approved_at_ms);
    }
    if let Some(p) = pending {
        row["pendingRequestId"] = json!(p.request_id);
        row["pendingDeclaredCaps"] = json!(p.caps);
        row["pendingDeclaredCommands"] = json!(p.commands);
    }
    row
}

/// Every known node: node devices and connected nodes, connected first, then by name.
fn all_nodes(ctx: &ShardCtx, now: u64) -> Vec<Value> {
    let mut ids: Vec<&str> = ctx
        .devices
        .values()
        .filter(|d| is_node_device(d))
        .map(|d| d.device_id.as_str())
        .collect();
    for id in ctx.nodes.live.keys() {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    let mut rows: Vec<Value> = ids
        .into_iter()
        .map(|id| {
            known(
                ctx.devices.get(id).map(|d| &**d),
                ctx.nodes.live.get(id).map(|n| &**n),
                ctx.nodes.last_disconnected.get(id).copied(),
                now,
            )
        })
        .collect();
    rows.sort_by(|a, b| {
        b["connected"]
            .as_bool()
            .cmp(&a["connected"].as_bool())
            .then_with(|| {
                a["displayName"]
                    .as_str()
                    .unwrap_or("")
                    .cmp(b["displayName"].as_str().unwrap_or(""))
            })
    });
    rows
}

pub fn handle(ctx: &mut ShardCtx, call: &Call) -> Outcome {
    super::outcome(run(ctx, call))
}

fn store_reply(r: OpResult, ok: impl FnOnce(Arc<PairedDevice>, Option<String>) -> Value) -> Reply {
    match r {
        OpResult::Node { device, request_id } => Ok(ok(device, request_id)),
        OpResult::Invalid(m) => Err(ErrorShape::invalid(m)),
        other => Err(ErrorShape::new(
            code::UNAVAILABLE,
            format!("node pairing unavailable: {other:?}"),
        )
        .retry_after(1000)),
    }
}

fn deferred(op: Op, finish: impl FnOnce(OpResult, &ShardCtx) -> Reply + 'static) -> Outcome {
    Outcome::Deferred(Box::new(Deferred {
        op,
        finish: Box::new(finish),
    }))
}

fn run(ctx: &mut ShardCtx, call: &Call) -> Result<Outcome, ErrorShape> {
    let p = call.params;
    let now = now_ms();
    Ok(match call.method {
        "node.list" => Outcome::Reply(Ok(json!({"ts": now, "nodes": all_nodes(ctx, now)}))),
        "node.describe" => {
            let Some(id) = str_param(p, "nodeId") else {
                return Err(ErrorShape::invalid(
                    "invalid node.describe params: must have required property 'nodeId'",
                ));
            };
            let d = ctx.devices.get(id).filter(|d| is_node_device(d));
            let live = ctx.nodes.live.get(id);
            if d.is_none() && live.is_none() {
                return Err(ErrorShape::invalid("unknown nodeId"));
            }
            let mut row = known(
                d.map(|d| &**d),
                live.map(|n| &**n),
                ctx.nodes.last_disconnected.get(id).copied(),
                now,
            );
            row["ts"] = json!(now);
            Outcome::Reply(Ok(row))
        }
        "node.pair.list" => {
            let mut pending = Vec::new();
            let mut paired = Vec::new();
            for d in ctx.devices.values() {
                if let Some(p) = live_pending(d, now) {
                    pending.push(serde_json::to_value(p).unwrap_or_default());
                }
                if let Some(s) = &d.node_surface {
                    paired.push(paired_json(d, s));
                }
            }
            Outcome::Reply(Ok(json!({"pending": pending, "paired": paired})))
        }
        "node.pair.approve" | "node.pair.reject" => {
            let approve = call.method == "node.pair.approve";
            let request_id = str_param(p, "requestId").unwrap_or_default().to_owned();
            let pending = ctx
                .devices
                .values()
                .find_map(|d| live_pending(d, now).filter(|p| p.request_id == request_id));
            let Some(pending) = pending else {
                return Err(ErrorShape::invalid("unknown requestId"));
            };
            if approve {
                // The approver must hold what the surface needs (§3.4).
                for s in &pending.required_approve_scopes {
                    let ok = Scope::parse(s).is_some_and(|sc| call.session.scopes.satisfies(sc));
                    if !ok {
                        return Err(ErrorShape::missing_scope(s).with_details(json!({
                            "code": "MISSING_SCOPE", "missingScope": s,
                            "requiredScopes": pending.required_approve_scopes,
                        })));
                    }
                }
            }
            let op = Op::ResolveNodeSurface {
                request_id,
                approve,
            };
            deferred(op, move |r, _| {
                store_reply(r, |d, request_id| {
                    if approve {
                        let s = d.node_surface.clone().expect("approved surface");
                        json!({"requestId": request_id, "node": paired_json(&d, &s)})
                    } else {
                        json!({"requestId": request_id, "nodeId": d.device_id})
                    }
                })
            })
        }
        "node.pair.remove" => {
            let node_id = str_param(p, "nodeId").unwrap_or_default().to_owned();
            deferred(Op::RemoveNode { node_id }, |r, _| {
                store_reply(r, |d, _| json!({"nodeId": d.device_id, "removed": true}))
            })
        }
        "node.rename" => {
            let node_id = str_param(p, "nodeId").unwrap_or_default().to_owned();
            let name = str_param(p, "displayName")
                .unwrap_or_default()
                .trim()
                .to_owned();
            if name.is_empty() {
                return Err(ErrorShape::invalid(
                    "invalid node.rename params: displayName required",
                ));
            }
            deferred(
                Op::RenameNode {
                    node_id,
                    display_name: name.clone(),
                },
                move |r, _| {
                    store_reply(
                        r,
                        |d, _| json!({"nodeId": d.device_id, "displayName": name}),
                    )
                },
            )
        }
        "node.invoke" => invoke_call(ctx, call)?,
        "node.invoke.result" => {
            let node_id = call.session.node_id.clone().unwrap_or_default();
            if str_param(p, "nodeId") != Some(node_id.as_str()) {
                return Err(ErrorShape::invalid("nodeId mismatch"));
            }
            Outcome::routed(Routed::InvokeResult(p.clone()))
        }
        "node.event" => node_event(ctx, call)?,
        "node.runnerInventory.update" => {
            Outcome::Reply(Ok(json!({"nodeId": call.session.node_id})))
        }
        "node.skills.update" => Outcome::Reply(Ok(
            json!({"nodeId": call.session.node_id, "skills": p.get("skills").cloned().unwrap_or(json!([]))}),
        )),
        "node.pluginTools.update" => Outcome::Reply(Ok(
            json!({"nodeId": call.session.node_id, "tools": p.get("tools").cloned().unwrap_or(json!([]))}),
        )),
        other => return Err(ErrorShape::unknown_method(other)),
    })
}

fn invoke_call(ctx: &mut ShardCtx, call: &Call) -> Result<Outcome, ErrorShape> {
    let p = call.params;
    let (Some(node_id), Some(command)) = (str_param(p, "nodeId"), str_param(p, "command")) else {
        return Err(ErrorShape::invalid(
            "invalid node.invoke params: must have required property 'nodeId' and 'command'",
        ));
    };
    let Some(idem) = str_param(p, "idempotencyKey").filter(|k| !k.is_empty()) else {
        return Err(ErrorShape::invalid(
            "invalid node.invoke params: must have required property 'idempotencyKey'",
        ));
    };
    if command.starts_with("system.execApprovals.") {
        return Err(ErrorShape::invalid(
            "node.invoke does not allow system.execApprovals.*; use exec.approvals.node.*",
        )
        .with_details(json!({"command": command})));
    }
    let now = now_ms();
    let surface = ctx
        .devices
        .get(node_id)
        .and_then(|d| d.node_surface.clone());
    let Some(surface) = surface else {
        // Unknown node, or its surface is not approved: the original's answer.
        return Err(ErrorShape::new(
            code::UNAVAILABLE,
            "node pairing changed while invocation was active",
        )
        .retryable(true)
        .with_details(json!({"code": "PAIRING_CHANGED"})));
    };
    let Some(node) = ctx.nodes.live.get(node_id).cloned() else {
        return Err(
            ErrorShape::new(code::UNAVAILABLE, "node not connected").with_details(json!({
                "code": "NOT_CONNECTED",
                "nodeError": {"code": "NOT_CONNECTED", "message": "node not connected"},
                "nodeCommandDispatched": false,
            })),
        );
    };
    let declared = node.commands.iter().any(|c| c == command);
    if !(declared && surface.commands.iter().any(|c| c == command) && surface::allowlisted(command))
    {
        return Err(ErrorShape::invalid(format!(
            "node command not allowed: \"{command}\" is not in the allowlist for platform \"{}\"",
            node.platform
        ))
        .with_details(json!({"reason": "command not allowlisted", "command": command})));
    }
    let _ = now;
    let req = invoke::Request {
        node_id: node_id.to_owned(),
        node_host: node.host.clone(),
        node_shard: node.shard,
        node_conn: node.conn,
        command: command.to_owned(),
        params: p.get("params").filter(|v| !v.is_null()).cloned(),
        // As the original: absent is 30 s, 0 is no deadline (the longest timer), anything
        // else is clamped to the longest timer.
        timeout_ms: match p.get("timeoutMs").and_then(Value::as_u64) {
            None => invoke::DEFAULT_TIMEOUT_MS,
            Some(0) => crate::proto::bounds::MAX_TIMER_TIMEOUT_MS,
            Some(ms) => crate::proto::bounds::timer_ms(ms),
        },
        idempotency_key: idem.to_owned(),
        session_key: str_param(p, "sessionKey").map(str::to_owned),
    };
    Ok(Outcome::routed(Routed::Invoke(req)))
}

fn node_event(ctx: &mut ShardCtx, call: &Call) -> Result<Outcome, ErrorShape> {
    let p = call.params;
    let event = str_param(p, "event").unwrap_or_default().to_owned();
    let payload = match str_param(p, "payloadJSON") {
        Some(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        None => p.get("payload").cloned().unwrap_or(Value::Null),
    };
    let node_id = call.session.node_id.clone().unwrap_or_default();
    Ok(match event.as_str() {
        "node.host.stats" => {
            if !payload.is_object() {
                return Ok(Outcome::Reply(Ok(
                    json!({"ok": true, "event": event, "handled": false, "reason": "invalid_payload"}),
                )));
            }
            let mut stats = payload;
            stats["updatedAtMs"] = json!(now_ms());
            Outcome::routed(Routed::NodeStats { node_id, stats })
        }
        "chat.subscribe" | "chat.unsubscribe" => {
            let key = payload["sessionKey"].as_str().unwrap_or("main");
            let k = crate::chat::key::resolve(key, None, ctx.config.default_agent())
                .map_err(ErrorShape::invalid)?;
            // The connection's subscription list is updated from this answer (`key`).
            Outcome::Reply(Ok(json!({
                "ok": true, "event": event, "handled": true,
                "key": k.canonical, "subscribed": event == "chat.subscribe",
            })))
        }
        _ => Outcome::Reply(Ok(
            json!({"ok": true, "event": event, "handled": false, "reason": "unsupported"}),
        )),
    })
}
