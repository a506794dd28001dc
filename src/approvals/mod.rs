//! Exec approvals (protocol §7.4): a command waiting for a human's decision. Shard 0 owns every
//! pending approval (requests, resolutions and waits from other shards are forwarded to it and
//! answered back on the caller's connection); `exec.approval.requested|resolved` fan out to
//! the approval clients on every shard. `allow-always` grants are durable in the state store.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::{
    bus::BusMsg,
    chat::Caller,
    proto::{
        errors::ErrorShape,
        frame::{EventMeta, EventTemplate},
    },
    shard::ctx::ShardCtx,
    state::now_ms,
    store::{Op, OpResult},
};

/// Default time a request waits for a decision (`timeoutMs`).
pub const DEFAULT_TIMEOUT_MS: u64 = 30 * 60_000;
/// How long a resolved approval still answers `resolve`/`waitDecision`.
pub const RESOLVED_GRACE_MS: u64 = 15_000;
pub const DECISIONS: &[&str] = &["allow-once", "allow-always", "deny"];

/// A request for the approvals owner.
#[derive(Debug, Clone)]
pub enum ApprovalOp {
    Request {
        id: Option<String>,
        request: Value,
        timeout_ms: u64,
        two_phase: bool,
        require_route: bool,
        /// The requester (excluded from the `requested` event).
        from: (usize, u64),
    },
    Resolve {
        id: String,
        decision: String,
        resolved_by: String,
        /// `approval.resolve` (generic shape) instead of `exec.approval.resolve`.
        generic: bool,
    },
    Wait {
        id: String,
    },
    Get {
        id: String,
        generic: bool,
    },
    List,
}

#[derive(Debug, Clone)]
pub struct ApprovalCall {
    pub caller: Caller,
    pub op: ApprovalOp,
}

struct Approval {
    /// Which request this is: an id may be reused once resolved, and a timer armed for an
    /// earlier request with the same id must not expire this one.
    generation: u64,
    request: Value,
    created_at: u64,
    expires_at: u64,
    decision: Option<Option<String>>,
    resolved_at: u64,
    resolved_by: Option<String>,
    terminal_reason: &'static str,
    /// Callers waiting for the decision (the requester's final response, `waitDecision`s).
    waiters: Vec<Caller>,
}

impl Approval {
    fn result(&self, id: &str) -> Value {
        let decision = self.decision.clone().flatten();
        json!({"id": id, "decision": decision, "createdAtMs": self.created_at, "expiresAtMs": self.expires_at})
    }
}

/// The owner's table (only used on the owner shard, see [`crate::placement`]).
#[derive(Default)]
pub struct Approvals {
    map: HashMap<String, Approval>,
    next_generation: u64,
}

/// Is this connection an approval client (receives `exec.approval.*` events)?
pub fn is_approval_client(s: &crate::shard::client::Session) -> bool {
    use crate::proto::scopes::{Role, Scope};
    s.role == Role::Operator
        && (s.scopes.has(Scope::Admin) || s.scopes.has(Scope::Approvals))
        && (matches!(
            s.client.id.as_str(),
            "openclaw-control-ui" | "openclaw-macos" | "openclaw-ios" | "openclaw-android"
        ) || s
            .caps
            .iter()
            .any(|c| c == "approvals" || c == "exec-approvals"))
}

/// Sends an approval call to the owner (or runs it here).
pub fn route(ctx: &mut ShardCtx, call: ApprovalCall) {
    let owner = ctx.placement().approvals();
    ctx.route(owner, call, handle, BusMsg::Approval);
}

fn not_found() -> ErrorShape {
    ErrorShape::invalid("unknown or expired approval id").with_details(json!({
        "reason": "APPROVAL_NOT_FOUND",
        "remediation": "Re-request the action; pending approvals are cleared after expiry or restart.",
    }))
}

fn event(name: &str, payload: &Value, exclude: Option<(usize, u64)>) -> EventTemplate {
    EventTemplate::new(name, payload, None).with_meta(EventMeta {
        exclude,
        ..Default::default()
    })
}

fn sweep(a: &mut Approvals, now: u64) {
    a.map.retain(|_, r| {
        r.decision.is_none() || now.saturating_sub(r.resolved_at) < RESOLVED_GRACE_MS
    });
}

/// Handles an approval call on the owner shard.
pub fn handle(ctx: &mut ShardCtx, call: ApprovalCall) {
    let now = now_ms();
    sweep(&mut ctx.approvals, now);
    let caller = call.caller;
    match call.op {
        ApprovalOp::Request {
            id,
            request,
            timeout_ms,
            two_phase,
            require_route,
            from,
        } => {
            let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if ctx
                .approvals
                .map
                .get(&id)
                .is_some_and(|r| r.decision.is_none())
            {
                caller.err(ctx, &ErrorShape::invalid("approval id already pending"));
                return;
            }
            let created_at = now;
            let expires_at = now.saturating_add(timeout_ms);
            let routed = ctx.globals.approval_clients() > 0;
            let route = if routed { "approval-client" } else { "none" };
            if !routed && require_route {
                // Nobody can approve: it expires at once (`no-approval-route`).
                caller.ok(
                    ctx,
                    &json!({"id": id, "decision": null, "createdAtMs": created_at, "expiresAtMs": expires_at}),
                );
                return;
            }
            ctx.approvals.next_generation += 1;
            let generation = ctx.approvals.next_generation;
            ctx.approvals.map.insert(
                id.clone(),
                Approval {
                    generation,
                    request: request.clone(),
                    created_at,
                    expires_at,
                    decision: None,
                    resolved_at: 0,
                    resolved_by: None,
                    terminal_reason: "user",
                    waiters: vec![caller.clone()],
                },
            );
            if two_phase {
                caller.ok(
                    ctx,
                    &json!({"status": "accepted", "id": id, "deliveryRoute": route,
                            "createdAtMs": created_at, "expiresAtMs": expires_at}),
                );
            }
            ctx.broadcast(event(
                "exec.approval.requested",
                &json!({"approvalKind": "exec", "id": id, "request": request,
                        "createdAtMs": created_at, "expiresAtMs": expires_at}),
                Some(from),
            ));
            let me = ctx.me.clone();
            monoio::spawn(async move {
                crate::shard::timer::sleep_ms(timeout_ms).await;
                if let Some(ctx) = me.upgrade() {
                    let ctx = &mut *ctx.borrow_mut();
                    let current = ctx
                        .approvals
                        .map
                        .get(&id)
                        .is_some_and(|r| r.generation == generation);
                    if current {
                        decide(ctx, &id, None, None, "expired");
                    }
                }
            });
        }
        ApprovalOp::Resolve {
            id,
            decision,
            resolved_by,
            generic,
        } => {
            if !DECISIONS.contains(&decision.as_str()) {
                caller.err(ctx, &ErrorShape::invalid("invalid decision"));
                return;
            }
            let Some(r) = ctx.approvals.map.get(&id) else {
                caller.err(ctx, &not_found());
                return;
            };
            match &r.decision {
                Some(Some(d)) if *d == decision => {
                    caller.ok(ctx, &json!({"ok": true}));
                    return;
                }
                Some(_) => {
                    caller.err(
                        ctx,
                        &ErrorShape::invalid("approval already resolved")
                            .with_details(json!({"reason": "APPROVAL_ALREADY_RESOLVED"})),
                    );
                    return;
                }
                None => {}
            }
            if decision == "allow-always" {
                // The grant is durable before the decision is announced.
                let op = Op::AddGrant {
                    approval_id: id.clone(),
                    request: r.request.clone(),
                };
                ctx.spawn_store(op, move |ctx, r| match r {
                    OpResult::Json(_) => {
                        apply_resolution(ctx, caller, &id, decision, resolved_by, generic)
                    }
                    other => caller.err(
                        ctx,
                        &ErrorShape::new(
                            crate::proto::errors::code::UNAVAILABLE,
                            format!("allow-always grant not saved: {other:?}"),
                        )
                        .retry_after(1000),
                    ),
                });
                return;
            }
            apply_resolution(ctx, caller, &id, decision, resolved_by, generic);
        }
        ApprovalOp::Wait { id } => match ctx.approvals.map.get_mut(&id) {
            None => caller.err(ctx, &ErrorShape::invalid("approval expired or not found")),
            Some(r) if r.decision.is_some() => {
                let mut v = r.result(&id);
                v["terminalReason"] = json!(r.terminal_reason);
                caller.ok(ctx, &v);
            }
            Some(r) => r.waiters.push(caller),
        },
        ApprovalOp::Get { id, generic } => {
            match ctx.approvals.map.get(&id).filter(|r| r.decision.is_none()) {
                None => caller.err(ctx, &not_found()),
                Some(r) if generic => {
                    let v = json!({"approval": generic_view(&id, r)});
                    caller.ok(ctx, &v);
                }
                Some(r) => {
                    let q = &r.request;
                    let v = json!({
                        "id": id, "commandText": q["command"], "commandPreview": q["commandPreview"],
                        "allowedDecisions": DECISIONS, "host": q["host"], "nodeId": q["nodeId"],
                        "agentId": q["agentId"], "expiresAtMs": r.expires_at,
                    });
                    caller.ok(ctx, &v);
                }
            }
        }
        ApprovalOp::List => {
            let mut list: Vec<(&String, &Approval)> = ctx
                .approvals
                .map
                .iter()
                .filter(|(_, r)| r.decision.is_none())
                .collect();
            list.sort_by_key(|(_, r)| r.created_at);
            let v: Vec<Value> = list
                .into_iter()
                .map(|(id, r)| {
                    json!({"id": id, "request": r.request, "createdAtMs": r.created_at,
                           "expiresAtMs": r.expires_at, "approvalKind": "exec"})
                })
                .collect();
            caller.ok(ctx, &Value::Array(v));
        }
    }
}

/// Records a resolution (if the approval is still pending) and answers the resolver.
fn apply_resolution(
    ctx: &mut ShardCtx,
    caller: Caller,
    id: &str,
    decision: String,
    resolved_by: String,
    generic: bool,
) {
    let Some(r) = ctx.approvals.map.get(id) else {
        caller.err(ctx, &not_found());
        return;
    };
    if let Some(done) = &r.decision {
        if done.as_deref() == Some(decision.as_str()) {
            caller.ok(ctx, &json!({"ok": true}));
        } else {
            caller.err(
                ctx,
                &ErrorShape::invalid("approval already resolved")
                    .with_details(json!({"reason": "APPROVAL_ALREADY_RESOLVED"})),
            );
        }
        return;
    }
    let answer = if generic {
        let mut v = generic_view(id, r);
        v["status"] = json!(if decision == "deny" {
            "denied"
        } else {
            "allowed"
        });
        v["decision"] = json!(decision);
        v["resolvedAtMs"] = json!(now_ms());
        v["reason"] = json!("user");
        v["resolver"] = json!({"kind": "runtime", "id": resolved_by});
        json!({"applied": true, "approval": v})
    } else {
        json!({"ok": true})
    };
    decide(ctx, id, Some(decision), Some(resolved_by), "user");
    caller.ok(ctx, &answer);
}

/// The generic `approval.get` view of a pending approval.
fn generic_view(id: &str, r: &Approval) -> Value {
    let q = &r.request;
    json!({
        "id": id,
        "status": "pending",
        "presentation": {"kind": "exec", "commandText": q["command"], "commandPreview": q["commandPreview"],
                         "warningText": q["warningText"], "host": q["host"], "nodeId": q["nodeId"],
                         "agentId": q["agentId"], "allowedDecisions": DECISIONS},
        // The id is the requester's: encoded so the link names this approval and nothing else.
        "urlPath": format!("/approve/{}", crate::http::control_ui::percent_encode(id)),
        "createdAtMs": r.created_at,
        "expiresAtMs": r.expires_at,
    })
}

/// The original's terminal snapshot of a resolved approval (`approval.history` items).
fn terminal_snapshot(id: &str, r: &Approval) -> Value {
    let mut v = generic_view(id, r);
    let (status, decision) = match r.decision.as_ref().and_then(|d| d.as_deref()) {
        Some(d @ ("allow-once" | "allow-always")) => ("allowed", Some(d)),
        Some(_) => ("denied", Some("deny")),
        None => ("expired", None),
    };
    v["status"] = json!(status);
    v["resolvedAtMs"] = json!(r.resolved_at);
    v["reason"] = json!(r.terminal_reason);
    if let Some(d) = decision {
        v["decision"] = json!(d);
    }
    let q = &r.request;
    let mut source = serde_json::Map::new();
    for (k, from) in [("agentId", "agentId"), ("sessionKey", "sessionKey")] {
        if let Some(x) = q[from].as_str() {
            source.insert(k.into(), json!(x));
        }
    }
    v["source"] = Value::Object(source);
    if let Some(by) = &r.resolved_by {
        v["resolver"] = json!({"kind": "runtime", "id": by});
    }
    v
}

/// Records a decision (`None` = expired) once: answers every waiter and announces it.
fn decide(
    ctx: &mut ShardCtx,
    id: &str,
    decision: Option<String>,
    resolved_by: Option<String>,
    reason: &'static str,
) {
    let now = now_ms();
    let Some(r) = ctx.approvals.map.get_mut(id) else {
        return;
    };
    if r.decision.is_some() {
        return;
    }
    r.decision = Some(decision.clone());
    r.resolved_at = now;
    r.resolved_by = resolved_by.clone();
    r.terminal_reason = reason;
    let waiters = std::mem::take(&mut r.waiters);
    let snapshot = terminal_snapshot(id, r);
    ctx.store.submit(crate::store::Op::RecordApproval {
        kind: "exec".into(),
        snapshot,
    });
    let r = ctx.approvals.map.get_mut(id).expect("looked up above");
    let mut result = r.result(id);
    result["terminalReason"] = json!(reason);
    let request = r.request.clone();
    let plain = r.result(id);
    for (i, w) in waiters.into_iter().enumerate() {
        // The requester's own final response has no terminalReason.
        w.ok(ctx, if i == 0 { &plain } else { &result });
    }
    ctx.broadcast(event(
        "exec.approval.resolved",
        &json!({"id": id, "decision": decision.unwrap_or_else(|| "deny".into()),
                "resolvedBy": resolved_by, "ts": now, "request": request}),
        None,
    ));
}

/// Normalizes the request object of `exec.approval.request` (the fields the original echoes).
pub fn request_view(p: &Value) -> Value {
    let f = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "command": f("command"),
        "commandPreview": f("commandPreview"),
        "commandArgv": f("commandArgv"),
        "systemRunBinding": null,
        "systemRunPlan": f("systemRunPlan"),
        "cwd": f("cwd"),
        "nodeId": f("nodeId"),
        "host": f("host"),
        "security": f("security"),
        "ask": f("ask"),
        "warningText": f("warningText"),
        "scope": f("scope"),
        "allowedDecisions": DECISIONS,
        "agentId": f("agentId"),
        "resolvedPath": f("resolvedPath"),
        "sessionKey": f("sessionKey"),
        "sessionId": f("sessionId"),
        "runId": f("runId"),
        "toolCallId": f("toolCallId"),
        "turnSourceChannel": f("turnSourceChannel"),
        "turnSourceTo": f("turnSourceTo"),
        "turnSourceAccountId": f("turnSourceAccountId"),
        "turnSourceThreadId": f("turnSourceThreadId"),
    })
}
