//! Exec approvals (protocol §7.4): a command waiting for a human's decision. One shard owns
//! every pending approval ([`crate::placement`]); requests, resolutions and waits from other
//! shards are forwarded to it and answered back on the caller's connection, and
//! `exec.approval.requested|resolved` fan out to the approval clients on every shard.
//! `allow-always` grants are durable in the state store before the decision is announced.
//!
//! [`Approvals`] is a state machine: [`Approvals::handle`] and [`Approvals::resume`] change the
//! table and push [`Effect`]s (answers, events, store ops, timers) that the shard's driver
//! applies. A request's expiry timer is a [`Resume::Expire`] carrying the generation of the
//! request that armed it, so a timer left over from an earlier request with a reused id
//! cannot expire a newer one.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::{
    effects::{Caller, Effect, Effects},
    proto::{
        errors::ErrorShape,
        frame::{EventMeta, EventTemplate},
        scopes::{Role, Scope, ScopeSet},
    },
    store::{Op, OpResult},
};

/// Default time a request waits for a decision (`timeoutMs`).
pub const DEFAULT_TIMEOUT_MS: u64 = 30 * 60_000;
/// How long a resolved approval still answers `resolve`/`waitDecision`.
pub const RESOLVED_GRACE_MS: u64 = 15_000;
pub const DECISIONS: &[&str] = &["allow-once", "allow-always", "deny"];

/// A request for the approvals owner.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// What the owner needs to know of the gateway for one step.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    pub now_ms: u64,
    /// An approval client is connected somewhere (else a request has no route).
    pub routed: bool,
}

/// Work that comes back to the owner.
#[derive(Debug)]
pub enum Resume {
    /// The expiry timer of request `generation` of `id` fired.
    Expire { id: String, generation: u64 },
    /// The store answered the `allow-always` grant of this resolution.
    GrantSaved {
        caller: Caller,
        id: String,
        decision: String,
        resolved_by: String,
        generic: bool,
    },
}

type Fx = Effects<Resume>;

struct Approval {
    /// Which request this is: an id may be reused once resolved.
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

/// The owner's table.
#[derive(Default)]
pub struct Approvals {
    map: HashMap<String, Approval>,
    next_generation: u64,
}

/// Is a connection with this role, scopes, client id and caps an approval client (receives
/// `exec.approval.*` events, and makes requests routable)?
pub fn is_approval_client(role: Role, scopes: &ScopeSet, client_id: &str, caps: &[String]) -> bool {
    role == Role::Operator
        && (scopes.has(Scope::Admin) || scopes.has(Scope::Approvals))
        && (matches!(
            client_id,
            "openclaw-control-ui" | "openclaw-macos" | "openclaw-ios" | "openclaw-android"
        ) || caps
            .iter()
            .any(|c| c == "approvals" || c == "exec-approvals"))
}

fn not_found() -> ErrorShape {
    ErrorShape::invalid("unknown or expired approval id").with_details(json!({
        "reason": "APPROVAL_NOT_FOUND",
        "remediation": "Re-request the action; pending approvals are cleared after expiry or restart.",
    }))
}

fn already_resolved() -> ErrorShape {
    ErrorShape::invalid("approval already resolved")
        .with_details(json!({"reason": "APPROVAL_ALREADY_RESOLVED"}))
}

fn event(name: &str, payload: &Value, exclude: Option<(usize, u64)>) -> Effect<Resume> {
    Effect::Broadcast(
        EventTemplate::new(name, payload, None).with_meta(EventMeta {
            exclude,
            ..Default::default()
        }),
    )
}

impl Approvals {
    fn sweep(&mut self, now: u64) {
        self.map.retain(|_, r| {
            r.decision.is_none() || now.saturating_sub(r.resolved_at) < RESOLVED_GRACE_MS
        });
    }

    /// Serves one approval call.
    pub fn handle(&mut self, env: &Env, call: ApprovalCall, fx: &mut Fx) {
        self.sweep(env.now_ms);
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
                let p = Pending {
                    request,
                    timeout_ms,
                    two_phase,
                    require_route,
                    from,
                };
                self.request(env, caller, id, p, fx);
            }
            ApprovalOp::Resolve {
                id,
                decision,
                resolved_by,
                generic,
            } => self.resolve(env, caller, id, decision, resolved_by, generic, fx),
            ApprovalOp::Wait { id } => match self.map.get_mut(&id) {
                None => fx.err(
                    &caller,
                    ErrorShape::invalid("approval expired or not found"),
                ),
                Some(r) if r.decision.is_some() => {
                    let mut v = r.result(&id);
                    v["terminalReason"] = json!(r.terminal_reason);
                    fx.ok(&caller, v);
                }
                Some(r) => r.waiters.push(caller),
            },
            ApprovalOp::Get { id, generic } => {
                match self.map.get(&id).filter(|r| r.decision.is_none()) {
                    None => fx.err(&caller, not_found()),
                    Some(r) if generic => fx.ok(&caller, json!({"approval": generic_view(&id, r)})),
                    Some(r) => {
                        let q = &r.request;
                        fx.ok(
                            &caller,
                            json!({
                                "id": id, "commandText": q["command"], "commandPreview": q["commandPreview"],
                                "allowedDecisions": DECISIONS, "host": q["host"], "nodeId": q["nodeId"],
                                "agentId": q["agentId"], "expiresAtMs": r.expires_at,
                            }),
                        );
                    }
                }
            }
            ApprovalOp::List => {
                let mut list: Vec<(&String, &Approval)> = self
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
                fx.ok(&caller, Value::Array(v));
            }
        }
    }

    /// Continues after a timer or a store op.
    pub fn resume(&mut self, env: &Env, r: Resume, store: Option<OpResult>, fx: &mut Fx) {
        match r {
            Resume::Expire { id, generation } => {
                if self
                    .map
                    .get(&id)
                    .is_some_and(|r| r.generation == generation)
                {
                    self.decide(env, &id, None, None, "expired", fx);
                }
            }
            Resume::GrantSaved {
                caller,
                id,
                decision,
                resolved_by,
                generic,
            } => match store {
                Some(OpResult::Json(_)) => {
                    self.apply_resolution(env, caller, &id, decision, resolved_by, generic, fx)
                }
                other => fx.err(
                    &caller,
                    ErrorShape::new(
                        crate::proto::errors::code::UNAVAILABLE,
                        format!("allow-always grant not saved: {other:?}"),
                    )
                    .retry_after(1000),
                ),
            },
        }
    }

    fn request(&mut self, env: &Env, caller: Caller, id: String, p: Pending, fx: &mut Fx) {
        if self.map.get(&id).is_some_and(|r| r.decision.is_none()) {
            fx.err(&caller, ErrorShape::invalid("approval id already pending"));
            return;
        }
        let created_at = env.now_ms;
        let expires_at = created_at.saturating_add(p.timeout_ms);
        if !env.routed && p.require_route {
            // Nobody can approve: it expires at once (`no-approval-route`).
            fx.ok(
                &caller,
                json!({"id": id, "decision": null, "createdAtMs": created_at, "expiresAtMs": expires_at}),
            );
            return;
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        if p.two_phase {
            let route = if env.routed {
                "approval-client"
            } else {
                "none"
            };
            fx.ok(
                &caller,
                json!({"status": "accepted", "id": id, "deliveryRoute": route,
                        "createdAtMs": created_at, "expiresAtMs": expires_at}),
            );
        }
        fx.push(event(
            "exec.approval.requested",
            &json!({"approvalKind": "exec", "id": id, "request": p.request,
                    "createdAtMs": created_at, "expiresAtMs": expires_at}),
            Some(p.from),
        ));
        fx.push(Effect::Timer(
            p.timeout_ms,
            Resume::Expire {
                id: id.clone(),
                generation,
            },
        ));
        self.map.insert(
            id,
            Approval {
                generation,
                request: p.request,
                created_at,
                expires_at,
                decision: None,
                resolved_at: 0,
                resolved_by: None,
                terminal_reason: "user",
                waiters: vec![caller],
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        env: &Env,
        caller: Caller,
        id: String,
        decision: String,
        resolved_by: String,
        generic: bool,
        fx: &mut Fx,
    ) {
        if !DECISIONS.contains(&decision.as_str()) {
            fx.err(&caller, ErrorShape::invalid("invalid decision"));
            return;
        }
        let Some(r) = self.map.get(&id) else {
            fx.err(&caller, not_found());
            return;
        };
        match &r.decision {
            Some(Some(d)) if *d == decision => return fx.ok(&caller, json!({"ok": true})),
            Some(_) => return fx.err(&caller, already_resolved()),
            None => {}
        }
        if decision == "allow-always" {
            // The grant is durable before the decision is announced.
            let op = Op::AddGrant {
                approval_id: id.clone(),
                request: r.request.clone(),
            };
            fx.push(Effect::Store(
                op,
                Resume::GrantSaved {
                    caller,
                    id,
                    decision,
                    resolved_by,
                    generic,
                },
            ));
            return;
        }
        self.apply_resolution(env, caller, &id, decision, resolved_by, generic, fx);
    }

    /// Records a resolution (if the approval is still pending) and answers the resolver.
    #[allow(clippy::too_many_arguments)]
    fn apply_resolution(
        &mut self,
        env: &Env,
        caller: Caller,
        id: &str,
        decision: String,
        resolved_by: String,
        generic: bool,
        fx: &mut Fx,
    ) {
        let Some(r) = self.map.get(id) else {
            fx.err(&caller, not_found());
            return;
        };
        if let Some(done) = &r.decision {
            if done.as_deref() == Some(decision.as_str()) {
                fx.ok(&caller, json!({"ok": true}));
            } else {
                fx.err(&caller, already_resolved());
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
            v["resolvedAtMs"] = json!(env.now_ms);
            v["reason"] = json!("user");
            v["resolver"] = json!({"kind": "runtime", "id": resolved_by});
            json!({"applied": true, "approval": v})
        } else {
            json!({"ok": true})
        };
        self.decide(env, id, Some(decision), Some(resolved_by), "user", fx);
        fx.ok(&caller, answer);
    }

    /// Records a decision (`None` = expired) once: answers every waiter, keeps the terminal
    /// snapshot in the history and announces it.
    fn decide(
        &mut self,
        env: &Env,
        id: &str,
        decision: Option<String>,
        resolved_by: Option<String>,
        reason: &'static str,
        fx: &mut Fx,
    ) {
        let Some(r) = self.map.get_mut(id) else {
            return;
        };
        if r.decision.is_some() {
            return;
        }
        r.decision = Some(decision.clone());
        r.resolved_at = env.now_ms;
        r.resolved_by = resolved_by.clone();
        r.terminal_reason = reason;
        fx.push(Effect::Submit(Op::RecordApproval {
            kind: "exec".into(),
            snapshot: terminal_snapshot(id, r),
        }));
        let plain = r.result(id);
        let mut result = plain.clone();
        result["terminalReason"] = json!(reason);
        for (i, w) in std::mem::take(&mut r.waiters).iter().enumerate() {
            // The requester's own final response has no terminalReason.
            fx.ok(
                w,
                if i == 0 {
                    plain.clone()
                } else {
                    result.clone()
                },
            );
        }
        fx.push(event(
            "exec.approval.resolved",
            &json!({"id": id, "decision": decision.unwrap_or_else(|| "deny".into()),
                    "resolvedBy": resolved_by, "ts": env.now_ms, "request": r.request}),
            None,
        ));
    }
}

/// A request's parameters, between `handle` and `request`.
struct Pending {
    request: Value,
    timeout_ms: u64,
    two_phase: bool,
    require_route: bool,
    from: (usize, u64),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(n: u64) -> Caller {
        Caller::conn(1, n, format!("r{n}"))
    }

    fn env(now_ms: u64) -> Env {
        Env {
            now_ms,
            routed: true,
        }
    }

    fn step(a: &mut Approvals, now: u64, c: u64, op: ApprovalOp) -> Vec<Effect<Resume>> {
        let mut fx = Effects::default();
        a.handle(
            &env(now),
            ApprovalCall {
                caller: caller(c),
                op,
            },
            &mut fx,
        );
        fx.0
    }

    fn resume(
        a: &mut Approvals,
        now: u64,
        r: Resume,
        res: Option<OpResult>,
    ) -> Vec<Effect<Resume>> {
        let mut fx = Effects::default();
        a.resume(&env(now), r, res, &mut fx);
        fx.0
    }

    fn request(id: &str, timeout_ms: u64) -> ApprovalOp {
        ApprovalOp::Request {
            id: Some(id.into()),
            request: json!({"command": "ls"}),
            timeout_ms,
            two_phase: false,
            require_route: false,
            from: (1, 1),
        }
    }

    fn resolve(id: &str, decision: &str) -> ApprovalOp {
        ApprovalOp::Resolve {
            id: id.into(),
            decision: decision.into(),
            resolved_by: "op".into(),
            generic: false,
        }
    }

    /// The effects as short names, in order ([`Effect::short`]).
    fn names(fx: &[Effect<Resume>]) -> Vec<String> {
        fx.iter().map(Effect::short).collect()
    }

    fn take_timer(fx: Vec<Effect<Resume>>) -> Resume {
        fx.into_iter()
            .find_map(|e| match e {
                Effect::Timer(_, r) => Some(r),
                _ => None,
            })
            .expect("a timer")
    }

    fn reply(fx: &[Effect<Resume>], conn: u64) -> &Result<Value, ErrorShape> {
        fx.iter()
            .find_map(|e| match e {
                Effect::Reply(c, r) if c.conn_id() == Some(conn) => Some(r),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no reply to {conn}"))
    }

    #[test]
    fn a_request_is_announced_and_armed_then_a_decision_answers_everyone() {
        let mut a = Approvals::default();
        let fx = step(&mut a, 1_000, 1, request("x", 5_000));
        assert_eq!(names(&fx), ["event:exec.approval.requested", "timer:5000"]);
        // A waiter parks; nothing is answered yet.
        assert!(step(&mut a, 1_100, 2, ApprovalOp::Wait { id: "x".into() }).is_empty());
        let fx = step(&mut a, 1_200, 3, resolve("x", "allow-once"));
        assert_eq!(
            names(&fx),
            [
                "submit",
                "reply:1:ok",
                "reply:2:ok",
                "event:exec.approval.resolved",
                "reply:3:ok"
            ]
        );
        let requester = reply(&fx, 1).as_ref().unwrap();
        assert_eq!(requester["decision"], "allow-once");
        assert!(requester.get("terminalReason").is_none(), "{requester}");
        assert_eq!(reply(&fx, 2).as_ref().unwrap()["terminalReason"], "user");
        // The same decision again is fine; another is refused.
        assert_eq!(
            names(&step(&mut a, 1_300, 4, resolve("x", "allow-once"))),
            ["reply:4:ok"]
        );
        let fx = step(&mut a, 1_300, 5, resolve("x", "deny"));
        assert_eq!(
            reply(&fx, 5).as_ref().unwrap_err().message,
            "approval already resolved"
        );
    }

    #[test]
    fn expiry_answers_the_requester_with_no_decision() {
        let mut a = Approvals::default();
        let timer = take_timer(step(&mut a, 0, 1, request("x", 10)));
        let fx = resume(&mut a, 10, timer, None);
        assert_eq!(
            names(&fx),
            ["submit", "reply:1:ok", "event:exec.approval.resolved"]
        );
        assert_eq!(reply(&fx, 1).as_ref().unwrap()["decision"], Value::Null);
        let fx = step(&mut a, 20, 2, ApprovalOp::Wait { id: "x".into() });
        assert_eq!(reply(&fx, 2).as_ref().unwrap()["terminalReason"], "expired");
    }

    /// An id may be reused once resolved; the first request's timer then finds a newer
    /// generation and does nothing.
    #[test]
    fn a_stale_timer_cannot_expire_a_reused_id() {
        let mut a = Approvals::default();
        let first = take_timer(step(&mut a, 0, 1, request("x", 100)));
        step(&mut a, 10, 2, resolve("x", "deny"));
        // Past the grace period the resolved entry is swept and the id is free again.
        let again = step(&mut a, 10 + RESOLVED_GRACE_MS, 3, request("x", 60_000));
        assert_eq!(
            names(&again),
            ["event:exec.approval.requested", "timer:60000"]
        );
        assert!(resume(&mut a, 20 + RESOLVED_GRACE_MS, first, None).is_empty());
        let fx = step(&mut a, 30 + RESOLVED_GRACE_MS, 4, ApprovalOp::List);
        assert_eq!(reply(&fx, 4).as_ref().unwrap().as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_pending_id_cannot_be_requested_twice() {
        let mut a = Approvals::default();
        step(&mut a, 0, 1, request("x", 100));
        let fx = step(&mut a, 1, 2, request("x", 100));
        assert_eq!(
            reply(&fx, 2).as_ref().unwrap_err().message,
            "approval id already pending"
        );
    }

    /// `allow-always` writes the grant first and decides only when the store has it; a
    /// failed write leaves the approval pending and says so, retryable.
    #[test]
    fn allow_always_waits_for_the_durable_grant() {
        let mut a = Approvals::default();
        step(&mut a, 0, 1, request("x", 100));
        let mut fx = step(&mut a, 1, 2, resolve("x", "allow-always"));
        assert_eq!(names(&fx), ["store"]);
        let Some(Effect::Store(Op::AddGrant { approval_id, .. }, r)) = fx.pop() else {
            panic!("a grant write")
        };
        assert_eq!(approval_id, "x");
        let fx = resume(&mut a, 2, r, Some(OpResult::Failed("disk full".into())));
        assert_eq!(names(&fx), ["reply:2:err"]);
        assert_eq!(
            reply(&fx, 2).as_ref().unwrap_err().retry_after_ms,
            Some(1000)
        );
        let mut fx = step(&mut a, 3, 3, resolve("x", "allow-always"));
        let Some(Effect::Store(_, r)) = fx.pop() else {
            panic!("a grant write")
        };
        let fx = resume(&mut a, 4, r, Some(OpResult::Json(json!({}))));
        assert_eq!(
            names(&fx),
            [
                "submit",
                "reply:1:ok",
                "event:exec.approval.resolved",
                "reply:3:ok"
            ]
        );
    }

    #[test]
    fn without_a_route_a_required_route_expires_at_once() {
        let mut a = Approvals::default();
        let mut fx = Effects::default();
        let op = ApprovalOp::Request {
            id: Some("x".into()),
            request: json!({}),
            timeout_ms: 100,
            two_phase: true,
            require_route: true,
            from: (0, 1),
        };
        a.handle(
            &Env {
                now_ms: 0,
                routed: false,
            },
            ApprovalCall {
                caller: caller(1),
                op,
            },
            &mut fx,
        );
        assert_eq!(names(&fx.0), ["reply:1:ok"]);
        assert_eq!(reply(&fx.0, 1).as_ref().unwrap()["decision"], Value::Null);
        assert!(step(&mut a, 1, 2, ApprovalOp::List)
            .iter()
            .all(|e| !matches!(e, Effect::Timer(..))));
    }
}
