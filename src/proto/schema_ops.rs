//! Params schemas of the operator methods (config, usage, update, cron, skills, channels,
//! send): closed objects like the original's, with the fields ringgate acts on typed.

use serde_json::{json, Map, Value};

use super::schema::{closed, non_empty};

/// A closed object: `typed` fields with schemas, `loose` fields of any type.
pub(super) fn obj(typed: Value, loose: &[&str], required: &[&str]) -> Value {
    let mut props: Map<String, Value> = typed.as_object().cloned().unwrap_or_default();
    for k in loose {
        props.entry(k.to_string()).or_insert(json!({}));
    }
    closed(Value::Object(props), required)
}

pub fn schemas() -> Vec<(&'static str, Value)> {
    let s = json!({"type": "string"});
    let b = json!({"type": "boolean"});
    let ne = non_empty();
    let write = |extra: Value| {
        let mut typed = json!({"raw": s, "baseHash": ne});
        if let (Some(t), Some(e)) = (typed.as_object_mut(), extra.as_object()) {
            t.extend(e.clone());
        }
        obj(
            typed,
            &[
                "sessionKey",
                "deliveryContext",
                "threadId",
                "note",
                "restartDelayMs",
            ],
            &["raw"],
        )
    };
    vec![
        ("config.get", closed(json!({}), &[])),
        ("config.schema", closed(json!({}), &[])),
        (
            "config.schema.lookup",
            closed(
                json!({"path": {"type": "string", "minLength": 1, "maxLength": 1024}}),
                &["path"],
            ),
        ),
        (
            "config.set",
            closed(json!({"raw": s, "baseHash": ne}), &["raw"]),
        ),
        ("config.apply", write(json!({}))),
        (
            "config.patch",
            write(json!({"replacePaths": {"type": "array", "maxItems": 256, "items": ne}})),
        ),
        (
            "update.status",
            obj(json!({"refreshCheckout": {"type": "boolean"}}), &[], &[]),
        ),
        (
            "update.run",
            obj(
                json!({}),
                &[
                    "sessionKey",
                    "deliveryContext",
                    "threadId",
                    "note",
                    "restartDelayMs",
                    "timeoutMs",
                    "channel",
                    "tag",
                ],
                &[],
            ),
        ),
        ("usage.status", obj(json!({}), &[], &[])),
        (
            "skills.status",
            obj(json!({"agentId": ne}), &["sessionKey"], &[]),
        ),
        ("skills.bins", obj(json!({}), &[], &[])),
        (
            "channels.status",
            obj(
                json!({"probe": {"type": "boolean"}, "timeoutMs": super::bounds::duration_ms(0), "channel": ne}),
                &[],
                &[],
            ),
        ),
        (
            "channels.start",
            obj(json!({"channel": ne, "accountId": s}), &[], &["channel"]),
        ),
        (
            "channels.stop",
            obj(json!({"channel": ne, "accountId": s}), &[], &["channel"]),
        ),
        (
            "send",
            obj(
                json!({"to": ne, "message": s, "channel": ne, "accountId": s, "sessionKey": s,
                       "idempotencyKey": ne}),
                &[
                    "mediaUrl",
                    "mediaUrls",
                    "buffer",
                    "filename",
                    "contentType",
                    "asVoice",
                    "gifPlayback",
                    "agentId",
                    "replyToId",
                    "threadId",
                    "forceDocument",
                    "silent",
                    "parseMode",
                ],
                &["to", "idempotencyKey"],
            ),
        ),
        (
            "node.invoke",
            obj(
                json!({"nodeId": ne, "command": ne, "timeoutMs": super::bounds::duration_ms(0),
                       "idempotencyKey": ne, "sessionKey": ne, "turnSourceChannel": s,
                       "turnSourceTo": s, "turnSourceAccountId": s,
                       "turnSourceThreadId": {"type": ["string", "number"]}}),
                &["params"],
                &["nodeId", "command", "idempotencyKey"],
            ),
        ),
        (
            "exec.approval.request",
            obj(
                json!({"id": ne, "command": ne, "timeoutMs": super::bounds::duration_ms(1),
                       "twoPhase": b, "requireDeliveryRoute": b, "suppressDelivery": b,
                       "deliverToApprovalClientsOnly": b}),
                &[
                    "commandArgv",
                    "systemRunPlan",
                    "env",
                    "cwd",
                    "nodeId",
                    "host",
                    "security",
                    "ask",
                    "warningText",
                    "scope",
                    "unavailableDecisions",
                    "commandSpans",
                    "agentId",
                    "resolvedPath",
                    "sessionKey",
                    "sessionId",
                    "runId",
                    "toolCallId",
                    "turnSourceChannel",
                    "turnSourceTo",
                    "turnSourceAccountId",
                    "turnSourceThreadId",
                    "approvalReviewerDeviceIds",
                ],
                &[],
            ),
        ),
        (
            "exec.approval.resolve",
            obj(
                json!({"id": ne, "decision": ne,
                       "grantExpiresInDays": {"type": "integer", "minimum": 1, "maximum": 3650}}),
                &["reviewer"],
                &["id", "decision"],
            ),
        ),
        (
            "exec.approval.grants.list",
            obj(
                json!({"limit": {"type": "integer", "minimum": 1, "maximum": 500}}),
                &[],
                &[],
            ),
        ),
        (
            "usage.cost",
            obj(
                json!({"startDate": ne, "endDate": ne, "days": {"type": "integer", "minimum": 1, "maximum": 3650},
                       "agentId": ne, "agentScope": {"enum": ["all"]}}),
                &["mode", "timeZone", "utcOffset"],
                &[],
            ),
        ),
        (
            "sessions.usage",
            obj(
                json!({
                    "key": ne, "agentId": ne, "agentScope": {"enum": ["all"]}, "creatorKey": ne,
                    "startDate": {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"},
                    "endDate": {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"},
                    "mode": {"enum": ["utc", "gateway", "specific"]},
                    "range": {"enum": ["7d", "30d", "90d", "1y", "all"]},
                    "groupBy": {"enum": ["instance", "family"]},
                    "includeHistorical": b,
                    "utcOffset": {"type": "string", "pattern": "^UTC[+-]\\d{1,2}(?::[0-5]\\d)?$"},
                    "timeZone": {"type": "string", "minLength": 1, "maxLength": 64},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100_000},
                    "includeContextWeight": b,
                }),
                &[],
                &[],
            ),
        ),
        (
            "approval.history",
            obj(
                json!({
                    "cursor": {"type": "string", "minLength": 1, "maxLength": 512},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    "kind": {"enum": ["exec", "plugin", "system-agent"]},
                }),
                &[],
                &[],
            ),
        ),
        ("diagnostics.lanes", closed(json!({}), &[])),
        ("environments.list", obj(json!({"runtimeId": ne}), &[], &[])),
        (
            "plugins.list",
            obj(json!({}), &["includeDisabled", "scope"], &[]),
        ),
        (
            "channels.pairing.list",
            obj(json!({"channel": ne, "accountId": ne}), &[], &[]),
        ),
        (
            "skills.library.list",
            obj(json!({"scope": ne, "agentId": ne}), &[], &[]),
        ),
        (
            "controlUi.linkPreview",
            obj(
                json!({"url": {"type": "string", "minLength": 1, "maxLength": 8192}}),
                &[],
                &["url"],
            ),
        ),
        (
            "artifacts.list",
            obj(
                json!({"sessionKey": ne, "agentId": ne, "type": ne, "runId": ne,
                       "limit": {"type": "integer", "minimum": 1, "maximum": 1_000}}),
                &["cursor"],
                &[],
            ),
        ),
    ]
}
