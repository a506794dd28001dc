//! The methods behind the Control UI's pages beyond chat (Usage, Channels, Skills, Approvals,
//! Devices, Debug, Activity), in the original's shapes.
//!
//! Where ringgate has the data, it answers with it: `sessions.usage` from the run records and
//! transcripts, `approval.history` from the resolved-approval ledger, `diagnostics.lanes`
//! from each shard's loop. Where it has no such feature — plugins, channel DM pairing, a
//! skills library, link previews, artifacts — it answers the original's empty shape, which the
//! UI shows as an empty list, never invented entries.

use serde_json::{json, Value};

use super::{str_param, Call, Outcome};
use crate::{
    proto::errors::ErrorShape,
    shard::ctx::ShardCtx,
    store::{usage_sessions::SessionsUsageQuery, Op},
};

pub const METHODS: &[&str] = &[
    "sessions.usage",
    "approval.history",
    "diagnostics.lanes",
    "environments.list",
    "plugins.list",
    "channels.pairing.list",
    "skills.library.list",
    "controlUi.linkPreview",
    "artifacts.list",
];

pub fn handle(ctx: &mut ShardCtx, call: &Call) -> Outcome {
    super::outcome(run(ctx, call))
}

fn run(ctx: &mut ShardCtx, call: &Call) -> Result<Outcome, ErrorShape> {
    let p = call.params;
    let reply = |v: Value| Ok(Outcome::Reply(Ok(v)));
    match call.method {
        "sessions.usage" => {
            let q = usage_query(ctx, call)?;
            Ok(super::json_from_store(Op::SessionsUsage(Box::new(q))))
        }
        "approval.history" => Ok(super::json_from_store(Op::ApprovalHistory {
            cursor: str_param(p, "cursor").map(str::to_owned),
            limit: p.get("limit").and_then(Value::as_u64).unwrap_or(50),
            kind: str_param(p, "kind").map(str::to_owned),
        })),
        "diagnostics.lanes" => {
            let g = &ctx.globals;
            let bus = ctx.sender.bus();
            let draining = g.stopping.load(std::sync::atomic::Ordering::Acquire);
            let lanes: Vec<Value> = g
                .loops
                .iter()
                .enumerate()
                .map(|(i, l)| crate::state::vitals::lane(i, l, bus.inbox(i).len(), draining))
                .collect();
            reply(json!({"ts": call.now_ms, "lanes": lanes, "dynamic": null}))
        }
        // The gateway itself is the one place ringgate runs agents (no remote environments).
        "environments.list" => reply(json!({"environments": [{
            "id": "gateway",
            "type": "local",
            "label": "Gateway local",
            "status": "available",
            "platform": std::env::consts::OS,
            "sessionHost": true,
            "trust": "persistent",
            "capabilities": ["agent.run", "sessions"],
        }]})),
        // ringgate loads no plugins.
        "plugins.list" => reply(json!({
            "plugins": [], "diagnostics": [], "mutationAllowed": false, "generation": 0,
        })),
        // ringgate's channels have no DM pairing; the limits are the original's.
        "channels.pairing.list" => reply(json!({
            "accounts": [], "requests": [], "commandOwnerConfigured": false,
            "limits": {"pendingPerAccount": 3, "ttlMs": 3_600_000},
        })),
        // No skills library (ringgate reads skills from its configured directories only).
        "skills.library.list" => reply(json!({
            "entries": [], "profileId": "gateway-owner", "multipleProfiles": false,
            "defaultTarget": "workspace", "canManageWorkspace": false,
            "defaultSelectionLimit": 64,
        })),
        // ringgate does not fetch remote pages for previews.
        "controlUi.linkPreview" => reply(json!({})),
        // ringgate's agents produce no artifacts.
        "artifacts.list" => reply(json!({"artifacts": []})),
        _ => Err(ErrorShape::invalid(format!(
            "unknown method: {}",
            call.method
        ))),
    }
}

const DAY_MS: i64 = 86_400_000;

/// The longest range one `sessions.usage` reads (the UI's longest preset is a year).
const MAX_RANGE_DAYS: i64 = 3_660;

/// `sessions.usage` params → the query: the date range (explicit dates, or a preset, default
/// the last 30 days) in UTC, the gateway's zone (UTC) or a given offset; the agent scope.
fn usage_query(ctx: &ShardCtx, call: &Call) -> Result<SessionsUsageQuery, ErrorShape> {
    let p = call.params;
    let offset_min = match str_param(p, "mode") {
        Some("specific") => specific_offset(p)?,
        _ => 0,
    };
    let local_now = call.now_ms as i64 + offset_min * 60_000;
    let today = local_now.div_euclid(DAY_MS);
    let preset = match str_param(p, "range") {
        Some("7d") => 7,
        Some("90d") => 90,
        Some("1y") => 365,
        Some("all") => MAX_RANGE_DAYS,
        _ => 30,
    };
    let end = super::date_param(p, "endDate")?.unwrap_or(today);
    let start = super::date_param(p, "startDate")?.unwrap_or(end - preset + 1);
    if start > end {
        return Err(ErrorShape::invalid("startDate must not be after endDate"));
    }
    // Nothing is recorded before 1970: an earlier start reads from then (like `usage.cost`),
    // so the dates answered stay in `YYYY-MM-DD`.
    let (start, end) = (start.max(0), end.max(0));
    if end - start + 1 > MAX_RANGE_DAYS {
        return Err(ErrorShape::invalid(format!(
            "date range longer than {MAX_RANGE_DAYS} days"
        )));
    }
    let agent = str_param(p, "agentId");
    let key = str_param(p, "key");
    let all = str_param(p, "agentScope") == Some("all");
    if all && (agent.is_some() || key.is_some()) {
        return Err(ErrorShape::invalid(
            "agentScope=all cannot be combined with key or agentId",
        ));
    }
    let agent_id = match (all, key, agent) {
        (true, _, _) | (false, Some(_), None) => None,
        (false, _, Some(a)) if ctx.config.agent(a).is_none() => {
            return Err(ErrorShape::invalid(format!("Unknown agent id \"{a}\"")))
        }
        (false, _, Some(a)) => Some(a.to_owned()),
        (false, None, None) => Some(ctx.config.default_agent().to_owned()),
    };
    let key = key
        .map(|k| crate::chat::key::resolve(k, None, ctx.config.default_agent()))
        .transpose()
        .map_err(ErrorShape::invalid)?
        .map(|k| k.canonical);
    Ok(SessionsUsageQuery {
        start_ms: start * DAY_MS - offset_min * 60_000,
        end_ms: (end + 1) * DAY_MS - offset_min * 60_000,
        offset_min,
        agent_id,
        key,
        limit: p
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .min(1_000) as usize,
        pricing: ctx.config.pricing.clone(),
    })
}

/// The offset of `mode: "specific"`: `timeZone` when it is UTC (ringgate carries no zone
/// database), otherwise `utcOffset` (`UTC+5:30`); an unknown zone without an offset is the
/// caller's error rather than a silently wrong day boundary.
fn specific_offset(p: &Value) -> Result<i64, ErrorShape> {
    if let Some(o) = str_param(p, "utcOffset") {
        return parse_offset(o).ok_or_else(|| ErrorShape::invalid("invalid utcOffset"));
    }
    match str_param(p, "timeZone") {
        None | Some("UTC" | "Etc/UTC" | "GMT" | "Etc/GMT") => Ok(0),
        Some(z) => Err(ErrorShape::invalid(format!(
            "timeZone {z} needs utcOffset (ringgate has no time zone database)"
        ))),
    }
}

/// `UTC±H[:MM]` → minutes east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    let rest = s.strip_prefix("UTC")?;
    let (sign, rest) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_and_stay_in_range() {
        assert_eq!(parse_offset("UTC+0"), Some(0));
        assert_eq!(parse_offset("UTC+5:30"), Some(330));
        assert_eq!(parse_offset("UTC-4"), Some(-240));
        assert_eq!(parse_offset("UTC+15"), None);
        assert_eq!(parse_offset("UTC5"), None);
        assert_eq!(parse_offset("UTC+99999999999999999999"), None);
        assert!(specific_offset(&json!({"timeZone": "Europe/Paris"})).is_err());
        assert_eq!(
            specific_offset(&json!({"timeZone": "Europe/Paris", "utcOffset": "UTC+1"})).unwrap(),
            60
        );
    }
}
