//! The rest of the operator group: `usage.*` (from the run records, on the storage thread) and
//! `update.*` (ringgate does not replace its own binary: it says which version runs and how to
//! upgrade).

use serde_json::{json, Value};

use super::{str_param, Call, Outcome};
use crate::{
    proto::errors::{code, ErrorShape},
    shard::ctx::ShardCtx,
    store::{usage, Op},
};

pub const METHODS: &[&str] = &["usage.status", "usage.cost", "update.status", "update.run"];

/// How to upgrade, for `update.*` answers.
const UPGRADE_HINT: &str = "ringgate does not update itself: install the new release (or `git pull && cargo build --release`) and restart the service";

const DAY_MS: u64 = 86_400_000;

pub fn handle(ctx: &mut ShardCtx, call: &Call) -> Outcome {
    match call.method {
        // The original's shape: no update sentinel, no known update, no release channel, no
        // automatic updates, an install of unknown kind (`install: {}`) — ringgate is not
        // installed by the OpenClaw updater.
        "update.status" => Outcome::Reply(Ok(json!({
            "sentinel": null,
            "updateAvailable": null,
            "effectiveChannel": null,
            "schedule": {"channel": null, "autoEnabled": false, "install": {}},
            "currentVersion": env!("CARGO_PKG_VERSION"),
            "runtime": "ringgate",
            "selfUpdate": false,
            "message": UPGRADE_HINT,
        }))),
        "update.run" => Outcome::Reply(Err(ErrorShape::new(code::UNAVAILABLE, UPGRADE_HINT))),
        "usage.status" => super::json_from_store(Op::UsageStatus),
        _ => match cost_query(ctx, call) {
            Ok(q) => super::json_from_store(Op::UsageCost(Box::new(q))),
            Err(e) => Outcome::Reply(Err(e)),
        },
    }
}

/// `usage.cost {startDate?, endDate?, days?, agentId?, agentScope?}`: UTC days, inclusive; the
/// default is the last 30 days; without `agentScope:"all"` one agent (the default one).
fn cost_query(ctx: &ShardCtx, call: &Call) -> Result<usage::CostQuery, ErrorShape> {
    let p = call.params;
    let today = (call.now_ms / DAY_MS) as i64;
    let end = super::date_param(p, "endDate")?.unwrap_or(today);
    let days = p.get("days").and_then(Value::as_i64).unwrap_or(30);
    let start = super::date_param(p, "startDate")?.unwrap_or(end - days + 1);
    if start > end {
        return Err(ErrorShape::invalid("startDate must not be after endDate"));
    }
    let agent = str_param(p, "agentId");
    let all = str_param(p, "agentScope") == Some("all");
    if all && agent.is_some() {
        return Err(ErrorShape::invalid(
            "agentScope=all cannot be combined with agentId",
        ));
    }
    let agent_id = match (all, agent) {
        (true, _) => None,
        (false, Some(a)) if ctx.config.agent(a).is_none() => {
            return Err(ErrorShape::invalid(format!("Unknown agent id \"{a}\"")))
        }
        (false, Some(a)) => Some(a.to_owned()),
        (false, None) => Some(ctx.config.default_agent().to_owned()),
    };
    Ok(usage::CostQuery {
        start_ms: (start.max(0) as u64) * DAY_MS,
        end_ms: (end.max(0) as u64 + 1) * DAY_MS,
        agent_id,
        pricing: ctx.config.pricing.clone(),
    })
}
