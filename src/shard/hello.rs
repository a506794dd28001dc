//! The `hello-ok` payload (protocol §2.6), serialized straight to bytes. Its big parts — the
//! presence and health snapshots, the method and event lists, the policy — are the same for
//! every connect within a second, so each shard keeps them pre-serialized and refreshes them
//! when presence changes or after a second. This keeps a handshake from building and dropping
//! a few hundred JSON nodes.

use serde::Serialize;
use serde_json::{json, value::RawValue};

use super::{client::Session, ctx::ShardCtx};
use crate::{
    methods::{all_methods, CAPABILITIES, EVENTS},
    pairing::DeviceToken,
    proto::{handshake::PROTOCOL_VERSION, scopes::Scope},
    state::{now_ms, VERSION},
};

/// How long cached snapshot parts may be reused.
const SNAPSHOT_MAX_AGE_MS: u64 = 1000;

fn raw(v: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).expect("built-in value serializes")
}

/// Pre-serialized `hello-ok` parts, per shard.
#[derive(Default)]
pub struct HelloCache {
    statics: Option<Statics>,
    presence: Option<(u64, u64, Box<RawValue>)>,
    health: Option<(u64, Box<RawValue>)>,
}

impl HelloCache {
    /// Something in the health snapshot changed: the next `hello-ok` rebuilds it.
    pub fn health_changed(&mut self) {
        self.health = None;
    }
}

struct Statics {
    features: Box<RawValue>,
    session_defaults: Box<RawValue>,
    policy: Box<RawValue>,
    suspension: Box<RawValue>,
    update_schedule: Box<RawValue>,
    empty_list: Box<RawValue>,
    empty_map: Box<RawValue>,
}

/// `server`: ringgate's build and this process's boot. The Control UI it serves comes from
/// an OpenClaw package, not from ringgate's build, so the source is `configured` — which also
/// tells the UI not to demand a reload to match ringgate's build id.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Server<'a> {
    version: &'static str,
    build_id: &'static str,
    boot_id: &'a str,
    control_ui_build_source: &'static str,
    conn_id: &'a str,
}

/// ringgate's build id as `hello-ok` reports it.
pub const BUILD_ID: &str = concat!("ringgate-", env!("CARGO_PKG_VERSION"));

#[derive(Serialize)]
struct StateVersion {
    presence: u64,
    health: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    presence: &'a RawValue,
    health: &'a RawValue,
    state_version: StateVersion,
    uptime_ms: u64,
    /// `null` when no file has been applied (as the original).
    applied_config_hash: Option<&'a str>,
    session_defaults: &'a RawValue,
    /// New connections are accepted (a draining gateway refuses them before `hello-ok`).
    suspension: &'a RawValue,
    update_schedule: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config_path: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Auth<'a> {
    method: &'a str,
    role: &'static str,
    scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    device_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_at_ms: Option<u64>,
}

/// The `hello-ok` payload.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloOk<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    protocol: u64,
    server: Server<'a>,
    features: &'a RawValue,
    snapshot: Snapshot<'a>,
    auth: Auth<'a>,
    policy: &'a RawValue,
    /// ringgate loads no plugins: no link readers, widgets or plugin surfaces.
    control_ui_link_readers: &'a RawValue,
    control_ui_widget_kinds: &'a RawValue,
    plugin_surface_urls: &'a RawValue,
}

/// Serializes the `connect` response carrying `hello-ok`.
pub fn response(
    ctx: &mut ShardCtx,
    id: &str,
    conn_id: &str,
    s: &Session,
    token: Option<&DeviceToken>,
) -> Vec<u8> {
    let now = now_ms();
    let (pv, hv) = ctx.globals.state_version();
    let version = ctx.presence.version();
    let uptime = ctx.globals.uptime_ms();
    let admin = s.scopes.has(Scope::Admin);
    let (state_dir, auth_mode, config_path) = if admin {
        (
            Some(ctx.config.state_dir.display().to_string()),
            Some(ctx.config.auth.name()),
            ctx.config
                .config_path
                .as_ref()
                .map(|p| p.display().to_string()),
        )
    } else {
        (None, None, None)
    };
    refresh(ctx, now, version);
    let cache = &ctx.hello_cache;
    let statics = cache.statics.as_ref().expect("refreshed");
    let hello = HelloOk {
        ty: "hello-ok",
        protocol: PROTOCOL_VERSION,
        server: Server {
            version: VERSION,
            build_id: BUILD_ID,
            boot_id: &ctx.globals.instance_id,
            control_ui_build_source: "configured",
            conn_id,
        },
        features: &statics.features,
        snapshot: Snapshot {
            presence: &cache.presence.as_ref().expect("refreshed").2,
            health: &cache.health.as_ref().expect("refreshed").1,
            state_version: StateVersion {
                presence: pv,
                health: hv,
            },
            uptime_ms: uptime,
            applied_config_hash: ctx.config.applied_hash.as_deref(),
            session_defaults: &statics.session_defaults,
            suspension: &statics.suspension,
            update_schedule: &statics.update_schedule,
            state_dir,
            auth_mode,
            config_path,
        },
        auth: Auth {
            method: s.auth_method,
            role: s.role.as_str(),
            scopes: &s.scope_list,
            device_token: token.map(|t| t.token.as_str()),
            issued_at_ms: token.map(|t| t.rotated_at_ms.unwrap_or(t.created_at_ms)),
        },
        policy: &statics.policy,
        control_ui_link_readers: &statics.empty_list,
        control_ui_widget_kinds: &statics.empty_list,
        plugin_surface_urls: &statics.empty_map,
    };
    crate::proto::frame::res_ok(id, &hello)
}

fn refresh(ctx: &mut ShardCtx, now: u64, presence_version: u64) {
    if ctx.hello_cache.statics.is_none() {
        let l = &ctx.config.limits;
        ctx.hello_cache.statics = Some(Statics {
            features: raw(&json!({
                "methods": all_methods().collect::<Vec<_>>(),
                "events": EVENTS,
                "capabilities": CAPABILITIES,
            })),
            // Every ringgate agent has a runtime (echo or a provider) from its config, so a
            // model is configured: the Control UI opens its chat instead of model setup.
            session_defaults: raw(&json!({
                "defaultAgentId": ctx.config.default_agent(),
                "modelConfigured": !ctx.config.agents.is_empty(),
                "ownership": "sole",
                "selectionRequired": false,
                "mainKey": "main",
                "mainSessionKey": "agent:main:main",
                "scope": "per-sender",
            })),
            // ringgate's agents take text only: attachments are not forwarded, so none are
            // offered. Sessions are shared with the one operator.
            policy: raw(&json!({
                "maxPayload": l.max_payload,
                "maxBufferedBytes": l.max_buffered_bytes,
                "tickIntervalMs": l.tick_interval_ms,
                "attachments": {"maxBytes": 0, "maxImageBytes": 0},
                "allowedSessionVisibilities": ["shared"],
                "hasMultipleSessionSharingIdentities": false,
            })),
            suspension: raw(&json!({"phase": "accepting"})),
            // As `update.status.schedule`.
            update_schedule: raw(&json!({"channel": null, "autoEnabled": false, "install": {}})),
            empty_list: raw(&json!([])),
            empty_map: raw(&json!({})),
        });
    }
    let fresh = |at: u64| now.saturating_sub(at) < SNAPSHOT_MAX_AGE_MS;
    if !matches!(&ctx.hello_cache.presence, Some((v, at, _)) if *v == presence_version && fresh(*at))
    {
        let list = raw(&ctx.presence.list(now));
        ctx.hello_cache.presence = Some((presence_version, now, list));
    }
    if !matches!(&ctx.hello_cache.health, Some((at, _)) if fresh(*at)) {
        let h = raw(&ctx.health_snapshot());
        ctx.hello_cache.health = Some((now, h));
    }
}
