//! Params schemas of the session, chat and agent methods (closed objects, as the original's
//! TypeBox schemas): the fields ringgate acts on are typed; the others the original accepts
//! are allowed with any value so real clients' requests pass.

use serde_json::{json, Map, Value};

use super::{
    bounds,
    schema::{closed, non_empty},
};

/// A closed object: `typed` fields with schemas, `loose` fields of any type.
fn obj(typed: Value, loose: &[&str], required: &[&str]) -> Value {
    let mut props: Map<String, Value> = typed.as_object().cloned().unwrap_or_default();
    for k in loose {
        props.entry(k.to_string()).or_insert(json!({}));
    }
    closed(Value::Object(props), required)
}

/// An integer in `[min, max]`; without `max`, up to `MAX_SAFE_INTEGER` (see [`bounds`]).
fn int(min: u64, max: Option<u64>) -> Value {
    bounds::int(min, max.unwrap_or(bounds::MAX_SAFE_INTEGER))
}

/// `ChatHistoryParamsSchema` (and `chat.startup`, which adds short-link fields).
fn history_params(key: &Value, extra: &[&str]) -> Value {
    let ne = non_empty();
    let mut loose = vec!["messageId", "sessionId"];
    loose.extend_from_slice(extra);
    obj(
        json!({"sessionKey": key, "agentId": ne, "limit": int(1, Some(1000)),
               "maxBytes": int(1024, None), "offset": int(0, None),
               "maxChars": int(1, Some(500_000)), "pendingBefore": int(1, None),
               "cursor": {"type": "string", "maxLength": 4096},
               "inputRunIds": {"type": "array", "minItems": 1, "maxItems": 50,
                               "items": {"type": "string", "minLength": 1, "maxLength": 256}}}),
        &loose,
        &["sessionKey"],
    )
}

pub fn schemas() -> Vec<(&'static str, Value)> {
    let ne = non_empty();
    let s = json!({"type": "string"});
    let b = json!({"type": "boolean"});
    let key = json!({"type": "string", "minLength": 1, "maxLength": 512});
    vec![
        (
            "logs.tail",
            obj(
                json!({"cursor": int(0, None), "limit": int(1, Some(5000)),
                       "maxBytes": int(1, Some(1_000_000))}),
                &[],
                &[],
            ),
        ),
        (
            "chat.send",
            obj(
                json!({"sessionKey": key, "message": s, "idempotencyKey": ne, "agentId": ne,
                       "timeoutMs": bounds::duration_ms(0)}),
                &[
                    "sessionId",
                    "mentions",
                    "workContext",
                    "intent",
                    "thinking",
                    "fastMode",
                    "fastAutoOnSeconds",
                    "queueMode",
                    "deliver",
                    "originatingChannel",
                    "originatingTo",
                    "originatingAccountId",
                    "originatingThreadId",
                    "replyToId",
                    "attachments",
                    "toolBindings",
                    "systemInputProvenance",
                    "systemProvenanceReceipt",
                    "suppressCommandInterpretation",
                    "expectedLeafEntryId",
                    "expectedSessionRoutingContract",
                    "expectedPermissionMode",
                    "expectedToolOverrides",
                ],
                &["sessionKey", "message", "idempotencyKey"],
            ),
        ),
        (
            "chat.abort",
            obj(
                json!({"sessionKey": key, "agentId": ne, "runId": ne, "preserveSideRuns": b}),
                &[],
                &["sessionKey"],
            ),
        ),
        ("chat.history", history_params(&key, &[])),
        (
            "chat.startup",
            history_params(&key, &["shortId", "slugHint"]),
        ),
        (
            "chat.metadata",
            obj(
                json!({"agentId": ne, "sessionKey": ne,
                       "authProfileId": {"type": "string", "minLength": 1, "maxLength": 256}}),
                &[],
                &[],
            ),
        ),
        (
            "sessions.branches.list",
            obj(
                json!({"sessionKey": key, "agentId": ne}),
                &[],
                &["sessionKey"],
            ),
        ),
        (
            "chat.inject",
            obj(
                json!({"sessionKey": key, "agentId": ne, "message": ne,
                       "label": {"type": "string", "maxLength": 100}}),
                &[],
                &["sessionKey", "message"],
            ),
        ),
        (
            "agent",
            obj(
                json!({"message": ne, "idempotencyKey": ne, "agentId": ne, "sessionKey": key,
                       "timeout": bounds::duration_ms(0)}),
                &[
                    "provider",
                    "model",
                    "to",
                    "replyTo",
                    "sessionId",
                    "expectedExistingSessionId",
                    "thinking",
                    "deliver",
                    "attachments",
                    "channel",
                    "replyChannel",
                    "accountId",
                    "replyAccountId",
                    "threadId",
                    "groupId",
                    "groupChannel",
                    "groupSpace",
                    "bestEffortDeliver",
                    "lane",
                    "cwd",
                    "cleanupBundleMcpOnRunEnd",
                    "modelRun",
                    "promptMode",
                    "extraSystemPrompt",
                    "bootstrapContextMode",
                    "bootstrapContextRunKind",
                    "acpTurnSource",
                    "inputProvenance",
                    "suppressPromptPersistence",
                    "sessionEffects",
                    "sourceReplyDeliveryMode",
                    "disableMessageTool",
                    "swarmCollector",
                    "swarmOutputSchema",
                    "forceRestartSafeTools",
                    "forceCodeModeTools",
                    "voiceWakeTrigger",
                    "label",
                    "internalEvents",
                    "internalRuntimeContext",
                ],
                &["message", "idempotencyKey"],
            ),
        ),
        (
            "agent.wait",
            obj(
                json!({"runId": ne, "timeoutMs": bounds::duration_ms(0)}),
                &[],
                &["runId"],
            ),
        ),
        (
            "sessions.list",
            obj(
                json!({"limit": int(1, None), "offset": int(0, None), "activeMinutes": int(1, None),
                       "agentId": ne, "search": s}),
                &[
                    "activeOnly",
                    "requireLastInteraction",
                    "sortBy",
                    "includeGlobal",
                    "includeUnknown",
                    "excludeSubagents",
                    "excludeCron",
                    "excludeSystem",
                    "configuredAgentsOnly",
                    "includeDerivedTitles",
                    "includeLastMessage",
                    "includeActivitySummary",
                    "label",
                    "projectId",
                    "workspaceDir",
                    "group",
                    "pinned",
                    "boardFace",
                    "hasBoard",
                    "creatorId",
                    "ownerId",
                    "ownerFirst",
                    "involvingMe",
                    "profileRelation",
                    "involvingProfileId",
                    "includePeople",
                    "spawnedBy",
                    "archived",
                ],
                &[],
            ),
        ),
        (
            "sessions.describe",
            obj(json!({"key": key, "agentId": ne}), &[], &["key"]),
        ),
        (
            "sessions.messages.subscribe",
            obj(
                json!({"key": key, "agentId": ne, "includeApprovals": b}),
                &[],
                &["key"],
            ),
        ),
        (
            "sessions.messages.unsubscribe",
            obj(json!({"key": key, "agentId": ne}), &[], &["key"]),
        ),
        (
            "sessions.reset",
            obj(
                json!({"key": key, "agentId": ne,
                       "reason": {"anyOf": [{"const": "new"}, {"const": "reset"}]}}),
                &["expectedSessionId"],
                &["key"],
            ),
        ),
        (
            "sessions.delete",
            obj(
                json!({"key": key, "agentId": ne, "deleteTranscript": b}),
                &[
                    "expectedSessionId",
                    "expectedLifecycleRevision",
                    "expectedSessionUpdatedAt",
                    "emitLifecycleHooks",
                    "archivedOnly",
                ],
                &["key"],
            ),
        ),
        (
            "sessions.send",
            obj(
                json!({"key": key, "agentId": ne, "message": s, "idempotencyKey": ne,
                       "timeoutMs": bounds::duration_ms(0)}),
                &["mentions", "thinking", "attachments"],
                &["key", "message"],
            ),
        ),
        (
            "sessions.abort",
            obj(
                json!({"key": key, "runId": ne, "agentId": ne, "clearQueued": b}),
                &[],
                &[],
            ),
        ),
        (
            "sessions.patch",
            obj(
                json!({"key": key, "agentId": ne,
                       "label": {"type": ["string", "null"], "maxLength": 200}}),
                &[
                    "autoLabel",
                    "icon",
                    "color",
                    "category",
                    "boardFace",
                    "boardPresentation",
                    "statusNote",
                    "attention",
                    "ttlMinutes",
                    "archived",
                    "pinned",
                    "unread",
                    "contextWindow",
                    "thinkingLevel",
                    "fastMode",
                    "toolOverrides",
                    "verboseLevel",
                    "traceLevel",
                    "reasoningLevel",
                    "responseUsage",
                    "elevatedLevel",
                    "execHost",
                    "execSecurity",
                    "execAsk",
                    "execNode",
                    "permissionMode",
                    "sandboxMode",
                    "nativeRuntimeConsent",
                    "model",
                    "agentRuntime",
                    "completionOwnerSessionKey",
                    "sendPolicy",
                    "groupActivation",
                    "expectedSessionId",
                    "expectedLifecycleRevision",
                    "expectedSessionUpdatedAt",
                    "expectedPermissionMode",
                    "expectedSandboxMode",
                    "expectedNativeRuntimeConsent",
                    "expectedToolOverrides",
                    "expectedMarkedUnreadAt",
                    "inheritedToolPolicyVersion",
                    "inheritedToolAllow",
                    "inheritedToolDeny",
                ],
                &["key"],
            ),
        ),
    ]
}
