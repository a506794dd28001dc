//! Exec-approval methods (protocol §7.4): requests, decisions and waits go to the approvals
//! owner ([`crate::approvals`]); grants and the policy file are read and written by the
//! storage thread.

use serde_json::{json, Value};

use super::{str_param, Call, Deferred, Outcome, Reply, Routed};
use crate::{
    approvals::{self, ApprovalOp},
    proto::errors::{code, ErrorShape},
    shard::ctx::ShardCtx,
    store::{Op, OpResult},
};

pub const METHODS: &[&str] = &[
    "exec.approval.request",
    "exec.approval.resolve",
    "exec.approval.waitDecision",
    "exec.approval.get",
    "exec.approval.list",
    "exec.approval.grants.list",
    "exec.approval.grants.revoke",
    "exec.approvals.get",
    "exec.approvals.set",
    "approval.get",
    "approval.resolve",
    "openclaw.approval.list",
];

fn to_owner(op: ApprovalOp) -> Outcome {
    Outcome::routed(Routed::Approval(op))
}

fn from_store(op: Op) -> Outcome {
    Outcome::Deferred(Box::new(Deferred {
        op,
        finish: Box::new(|r: OpResult, _: &ShardCtx| -> Reply {
            match r {
                OpResult::Json(v) => Ok(v),
                OpResult::Invalid(m) => Err(ErrorShape::invalid(m)),
                other => Err(ErrorShape::new(
                    code::UNAVAILABLE,
                    format!("approvals store unavailable: {other:?}"),
                )
                .retry_after(1000)),
            }
        }),
    }))
}

fn id_param(p: &Value, method: &str) -> Result<String, ErrorShape> {
    str_param(p, "id")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ErrorShape::invalid(format!(
                "invalid {method} params: must have required property 'id'"
            ))
        })
}

pub fn handle(ctx: &mut ShardCtx, call: &Call) -> Outcome {
    super::outcome(run(ctx, call))
}

fn run(ctx: &mut ShardCtx, call: &Call) -> Result<Outcome, ErrorShape> {
    let p = call.params;
    let m = call.method;
    Ok(match m {
        "exec.approval.request" => {
            match p.get("command") {
                Some(Value::String(s)) if s.is_empty() => {
                    return Err(ErrorShape::invalid(
                        "invalid exec.approval.request params: at /command: must not have fewer than 1 characters",
                    ))
                }
                Some(Value::String(_)) | None => {}
                Some(_) => {
                    return Err(ErrorShape::invalid(
                        "invalid exec.approval.request params: at /command: must be string",
                    ))
                }
            }
            if str_param(p, "host") == Some("node") && str_param(p, "nodeId").is_none() {
                return Err(ErrorShape::invalid("nodeId is required for host=node"));
            }
            let from = (ctx.id, 0);
            let op = ApprovalOp::Request {
                id: str_param(p, "id")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                request: approvals::request_view(p),
                // Bounded by the schema; clamped as the original clamps its timers.
                timeout_ms: crate::proto::bounds::timer_ms(
                    p.get("timeoutMs")
                        .and_then(Value::as_u64)
                        .unwrap_or(approvals::DEFAULT_TIMEOUT_MS),
                ),
                two_phase: p.get("twoPhase").and_then(Value::as_bool) == Some(true),
                require_route: p.get("requireDeliveryRoute").and_then(Value::as_bool)
                    != Some(false),
                from,
            };
            // `from` (the requesting connection) is filled in by the driver.
            to_owner(op)
        }
        "exec.approval.resolve" | "approval.resolve" => to_owner(ApprovalOp::Resolve {
            id: id_param(p, m)?,
            decision: str_param(p, "decision").unwrap_or_default().to_owned(),
            resolved_by: call
                .session
                .client
                .display_name
                .clone()
                .unwrap_or_else(|| call.session.client.id.clone()),
            generic: m == "approval.resolve",
        }),
        "exec.approval.waitDecision" => to_owner(ApprovalOp::Wait {
            id: id_param(p, m)?,
        }),
        "exec.approval.get" | "approval.get" => to_owner(ApprovalOp::Get {
            id: id_param(p, m)?,
            generic: m == "approval.get",
        }),
        "exec.approval.list" => to_owner(ApprovalOp::List),
        "openclaw.approval.list" => Outcome::Reply(Ok(json!([]))),
        "exec.approval.grants.list" => from_store(Op::ListGrants {
            limit: p
                .get("limit")
                .and_then(Value::as_u64)
                .unwrap_or(100)
                .min(500),
        }),
        "exec.approval.grants.revoke" => from_store(Op::RevokeGrant {
            grant_id: str_param(p, "grantId").unwrap_or_default().to_owned(),
        }),
        "exec.approvals.get" => from_store(Op::GetPolicy),
        "exec.approvals.set" => {
            let file = p.get("file").cloned().unwrap_or(Value::Null);
            if file.get("version") != Some(&json!(1)) {
                return Err(ErrorShape::invalid(
                    "invalid exec.approvals.set params: at /file/version: must be equal to constant",
                ));
            }
            from_store(Op::SetPolicy {
                file,
                base_hash: str_param(p, "baseHash").map(str::to_owned),
            })
        }
        other => return Err(ErrorShape::unknown_method(other)),
    })
}
