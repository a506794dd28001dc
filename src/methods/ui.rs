//! The methods the Control UI calls on load and on its chat page that are not about a
//! session's transcript (those are in [`super::chat`]). Each answers in the original's shape.
//!
//! Honesty rule: where ringgate has no such feature — talk/voice providers, background tasks,
//! progress cards, boards, projects, GitHub, session groups, mentions, companions, native
//! session catalogs, plugin UIs and surfaces — the answer is the original's empty or disabled
//! shape, never invented data. What ringgate has is real: the agent's identity, host facts
//! (`system.info`), the owner's UI preferences (persisted), setup state.

use serde_json::{json, Value};

use super::{str_param, Call, Outcome, Routed};
use crate::{
    chat::row::{owner_actor, OWNER_ID},
    proto::errors::ErrorShape,
    shard::ctx::ShardCtx,
    store::Op,
};

pub const METHODS: &[&str] = &[
    "agent.identity.get",
    "talk.catalog",
    "tasks.list",
    "progressCard.get",
    "sessions.companion.state",
    "session.discussion.info",
    "models.authStatus",
    "sessions.viewers.set",
    "sessions.groups.list",
    "sessions.groups.defaults",
    "mentions.list",
    "board.get",
    "projects.list",
    "sessions.catalog.list",
    "system.info",
    "controlUi.sessionPullRequests.subscribe",
    "sessions.github.options",
    "session.members.listEvidence",
    "sessions.observer.visibility",
    "users.prefs.get",
    "users.prefs.set",
    "plugin.surface.refresh",
    "plugins.controlUi.list",
    "openclaw.setup.detect",
];

pub fn handle(ctx: &mut ShardCtx, call: &Call) -> Outcome {
    super::outcome(run(ctx, call))
}

/// Keys and session keys in lists are bounded like the original's schemas.
const MAX_LIST: usize = 64;

fn string_list(p: &Value, k: &str) -> Result<Vec<String>, ErrorShape> {
    let Some(v) = p.get(k) else {
        return Ok(Vec::new());
    };
    let arr = v
        .as_array()
        .ok_or_else(|| ErrorShape::invalid(format!("at /{k}: must be array")))?;
    if arr.len() > MAX_LIST {
        return Err(ErrorShape::invalid(format!(
            "at /{k}: must NOT have more than {MAX_LIST} items"
        )));
    }
    arr.iter()
        .map(|x| {
            x.as_str()
                .filter(|s| !s.is_empty() && s.len() <= 512)
                .map(str::to_owned)
                .ok_or_else(|| ErrorShape::invalid(format!("at /{k}: must be non-empty strings")))
        })
        .collect()
}

fn agent_of(ctx: &ShardCtx, p: &Value) -> Result<String, ErrorShape> {
    match str_param(p, "agentId") {
        Some(a) if ctx.config.agent(&a.to_ascii_lowercase()).is_none() => {
            Err(ErrorShape::invalid(format!("Unknown agent id \"{a}\"")))
        }
        Some(a) => Ok(a.to_ascii_lowercase()),
        None => Ok(ctx.config.default_agent().to_owned()),
    }
}

fn run(ctx: &mut ShardCtx, call: &Call) -> Result<Outcome, ErrorShape> {
    let p = call.params;
    let reply = |v: Value| Ok(Outcome::Reply(Ok(v)));
    match call.method {
        // ringgate agents have no configured names or avatars: the original's defaults.
        "agent.identity.get" => reply(json!({
            "agentId": agent_of(ctx, p)?, "name": "Assistant", "nameSource": "default",
            "avatar": "A",
        })),
        "talk.catalog" => reply(json!({
            "modes": [], "transports": [], "brains": [],
            "speech": {"providers": []},
            "transcription": {"ready": false, "providers": []},
            "realtime": {"ready": false, "providers": []},
        })),
        "tasks.list" => reply(json!({"tasks": []})),
        "progressCard.get" => reply(json!({"card": null})),
        "sessions.companion.state" => reply(json!({"exchanges": []})),
        "session.discussion.info" => reply(json!({"state": "none"})),
        // No provider accounts to sign in to: ringgate's runtimes are configured in its file.
        "models.authStatus" => reply(json!({
            "ts": call.now_ms, "providers": [], "providerCapabilities": [],
        })),
        "sessions.viewers.set" => reply(json!({"sessionKeys": string_list(p, "sessionKeys")?})),
        "sessions.groups.list" => reply(json!({"groups": [], "sectionOrder": []})),
        "sessions.groups.defaults" => reply(json!({"defaults": []})),
        "mentions.list" => reply(json!({
            "gatewayInstanceId": ctx.globals.instance_id, "revision": 0, "items": [],
        })),
        "board.get" => reply(json!({
            "sessionKey": str_param(p, "sessionKey").unwrap_or("main"),
            "revision": 0, "tabs": [], "widgets": [],
        })),
        "projects.list" => reply(json!({"projects": [], "recents": []})),
        "sessions.catalog.list" => reply(json!({"catalogs": []})),
        "controlUi.sessionPullRequests.subscribe" => {
            string_list(p, "sessionKeys")?;
            reply(json!({"subscribed": false}))
        }
        "sessions.github.options" => reply(json!({
            "personal": {"state": "disconnected", "generation": null, "account": null,
                         "accessExpiresAtMs": null, "refreshState": "not_applicable",
                         "pending": null},
            "shared": null, "pendingPersonal": null, "latestShared": null,
        })),
        "session.members.listEvidence" => reply(json!({
            "sessionKey": str_param(p, "sessionKey").unwrap_or("main"),
            "owner": owner_actor(),
            "members": [],
            "identities": [{"type": "human", "id": OWNER_ID, "label": "Owner"}],
            "role": "admin",
            "allowedVisibilities": ["shared"],
        })),
        "sessions.observer.visibility" => reply(json!({"ok": true})),
        "plugin.surface.refresh" => reply(json!({
            "surface": str_param(p, "surface").unwrap_or_default(),
            "pluginSurfaceUrls": {}, "expiresAtMs": null,
        })),
        "plugins.controlUi.list" => {
            reply(json!({"revision": "0", "plugins": [], "diagnostics": []}))
        }
        "openclaw.setup.detect" => {
            let agent = agent_of(ctx, p)?;
            let configured = ctx.config.agent(&agent).is_some();
            reply(json!({
                "manualProviders": [], "authOptions": [], "prepareOptions": [],
                "nativeSessionCatalogs": [], "nativeSessionCatalogPreferenceRequired": false,
                "workspace": ctx.config.state_dir.display().to_string(),
                "setupComplete": configured,
                "candidates": [], "unavailableCandidates": [], "recommendedInstalls": [],
            }))
        }
        // Host facts come from the scan thread; the loops and memory from the gauges.
        "system.info" => Ok(Outcome::Deferred(Box::new(super::Deferred {
            op: Op::SystemInfo {
                state_dir: ctx.config.state_dir.clone(),
                port: ctx.globals.port.load(std::sync::atomic::Ordering::Relaxed),
                uptime_ms: ctx.globals.uptime_ms(),
                instance_id: ctx.globals.instance_id.clone(),
            },
            finish: Box::new(|r, ctx| match r {
                crate::store::OpResult::Json(mut v) => {
                    v["eventLoop"] = ctx.globals.event_loop();
                    v["processMemory"] = ctx.globals.process.memory_json();
                    Ok(v)
                }
                other => Err(ErrorShape::new(
                    crate::proto::errors::code::UNAVAILABLE,
                    format!("unexpected storage answer: {other:?}"),
                )),
            }),
        }))),
        "users.prefs.get" => {
            let keys = p.get("keys").map(|_| string_list(p, "keys")).transpose()?;
            Ok(super::json_from_store(Op::PrefsGet { keys }))
        }
        "users.prefs.set" => prefs_set(p),
        other => Err(ErrorShape::unknown_method(other)),
    }
}

/// `users.prefs.set {entries, expectedEntries?}`: durable before the answer; then
/// `users.prefs.changed {profileId, keys}` to every client.
fn prefs_set(p: &Value) -> Result<Outcome, ErrorShape> {
    let entries = p
        .get("entries")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| {
            ErrorShape::invalid(
                "invalid users.prefs.set params: must have required property 'entries'",
            )
        })?;
    let expected = p.get("expectedEntries").and_then(Value::as_object).cloned();
    for m in std::iter::once(&entries).chain(expected.iter()) {
        if m.len() > 32 || m.keys().any(|k| k.is_empty() || k.chars().count() > 256) {
            return Err(ErrorShape::invalid(
                "invalid users.prefs.set params: at most 32 entries with keys of 1-256 characters",
            ));
        }
    }
    let keys: Vec<String> = entries.keys().cloned().collect();
    let op = Op::PrefsSet { entries, expected };
    Ok(Outcome::routed(Routed::PrefsSet { op, keys }))
}
