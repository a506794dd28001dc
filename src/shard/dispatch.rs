//! What happens to one inbound text frame: the pre-auth rules and the connect gate before
//! `hello-ok`, then frame check → permission gate → method → response after it.

use std::sync::{atomic::Ordering, Arc};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use serde_json::{json, Map, Value};

use super::{
    client::{Client, Phase, Session},
    ctx::ShardCtx,
};
use crate::{
    auth::device::VerifiedDevice,
    auth::ratelimit::Gate,
    methods::{self, Call, Deferred, Effect, Outcome},
    metrics::rpc::Rpc,
    pairing::{self, Ask, DeviceToken, Locality, PairedDevice, PendingRequest, Reason},
    proto::{
        errors::{close, truncate_reason, ErrorShape},
        frame::{res_err, res_ok},
        handshake::{self, Accepted, ConnectInput, Peer},
        schema::Schemas,
        scopes::{authorize_spec, Denied, Role, ScopeSet},
    },
    state::now_ms,
    store::{Op, OpResult},
};

/// More consecutive `unauthorized role` errors than this close the connection.
const MAX_UNAUTHORIZED_STRIKES: u32 = 10;

pub use crate::http::head::UpgradeInfo;

/// A connect waiting for the storage thread (pairing or a device token).
pub struct PendingConnect {
    pub id: String,
    pub acc: Accepted,
    pub op: Op,
    /// Why pairing was needed (`None`: only a token is being issued).
    pub reason: Option<Reason>,
    pub existing: Option<Arc<PairedDevice>>,
    /// The shared-secret generation the credentials were checked under.
    pub auth_gen: u64,
}

/// What the connection task must do after a frame was handled.
#[derive(Default)]
pub struct After {
    pub effects: Vec<Effect>,
    /// Finish the connect once the store answered.
    pub connect: Option<PendingConnect>,
    /// Replies (request id, work, when the request was received) that wait for the store.
    pub deferred: Vec<(String, Box<Deferred>, Option<crate::metrics::rpc::Pending>)>,
    /// Delay the queued rejection by this long (loopback auth-failure backoff).
    pub reject_delay_ms: u64,
    pub rejection: Option<(Vec<u8>, u16, String)>,
}

/// Handles one complete text message.
pub fn on_text(ctx: &mut ShardCtx, c: &mut Client, up: &UpgradeInfo, text: &[u8]) -> After {
    let mut after = After::default();
    match &c.phase {
        Phase::AwaitingConnect { .. } => on_preauth(ctx, c, up, text, &mut after),
        Phase::Open => on_request(ctx, c, text, &mut after),
        Phase::Worker(_) => super::worker::on_request(ctx, c, text, &mut after),
        Phase::Rejecting | Phase::Pairing | Phase::Closing => {}
    }
    after
}

fn on_preauth(
    ctx: &mut ShardCtx,
    c: &mut Client,
    up: &UpgradeInfo,
    text: &[u8],
    after: &mut After,
) {
    let Some(frame) = ctx.parser.parse(text) else {
        crate::metrics::record(|m| m.refused("invalid_frame"));
        c.close(close::NORMAL, "");
        return;
    };
    if up.worker {
        return super::worker::on_connect(ctx, c, &frame);
    }
    if let Some(params) = frame.get("params") {
        if handshake::claims_worker(params) {
            c.close(close::POLICY, "invalid-handshake");
            return;
        }
    }
    let schemas = Schemas::get();
    if schemas.check_request(&frame).is_err() {
        crate::metrics::record(|m| m.refused("invalid_frame"));
        c.close(close::POLICY, "invalid request frame");
        return;
    }
    let id = frame["id"].as_str().unwrap_or_default().to_owned();
    let fail = |c: &mut Client, error: ErrorShape| {
        let code = error
            .details
            .as_ref()
            .and_then(|d| d["code"].as_str())
            .or(Some(error.code));
        let reason = crate::metrics::labels::refusal(code);
        crate::metrics::record(|m| m.refused(reason));
        let reason = truncate_reason(&error.message);
        c.push_text(&res_err(&id, &error));
        c.close(close::POLICY, &reason);
    };
    if frame["method"] != "connect" {
        fail(
            c,
            ErrorShape::invalid("invalid handshake: first request must be connect"),
        );
        return;
    }
    let empty = Value::Object(Map::new());
    let params = frame.get("params").unwrap_or(&empty);
    if let Err(e) = schemas.check_connect(params) {
        fail(
            c,
            ErrorShape::invalid(format!("invalid connect params: {e}")),
        );
        return;
    }
    let now = now_ms();
    let Phase::AwaitingConnect { nonce, .. } = &c.phase else {
        return;
    };
    if let Gate::Locked { retry_after_ms } = ctx.limiter.gate(c.ip, now) {
        let message = "unauthorized: too many failed authentication attempts (retry later)";
        let error = ErrorShape::invalid(message)
            .retry_after(retry_after_ms)
            .with_details(crate::auth::messages::failure_details(
                "rate_limited",
                false,
            ));
        fail(c, error);
        return;
    }
    let input = ConnectInput {
        params,
        challenge_nonce: nonce,
        now_ms: now,
        peer: Peer {
            ip: c.ip,
            origin: up.origin.as_deref(),
            host: up.host.as_deref(),
            scopes_header: up.scopes_header.as_deref(),
            proxy_identity: up.proxy_identity.as_ref(),
            direct_local: up.direct_local,
        },
        auth: &ctx.config.auth,
        allowed_origins: &ctx.config.allowed_origins,
        paired: params
            .get("device")
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .and_then(|id| ctx.devices.get(id))
            .map(|d| &**d),
    };
    match handshake::evaluate(&input) {
        Ok(acc) => {
            if !matches!(ctx.config.auth, crate::auth::secret::AuthMode::None)
                && ctx.limiter.record_success(c.ip)
            {
                ctx.sender.to_others(crate::bus::BusMsg::AuthSuccess {
                    ip: c.ip,
                    scope: crate::auth::ratelimit::Scope::Gateway,
                });
            }
            match acc.device.clone() {
                None => open(ctx, c, &id, acc, None, ctx.auth_gen, after),
                Some(dev) => pair_or_open(ctx, c, up, id, acc, dev, after),
            }
        }
        Err(rej) => {
            let code = rej
                .error
                .details
                .as_ref()
                .and_then(|d| d["code"].as_str())
                .or(Some(rej.error.code));
            let reason = crate::metrics::labels::refusal(code);
            crate::metrics::record(|m| m.refused(reason));
            if ctx.globals.log_allowed() {
                tracing::info!(conn = %c.conn_id, ip = %c.ip, reason = %rej.close_reason, "connect rejected");
            }
            let frame = res_err(&id, &rej.error);
            let delay = if rej.auth_failure {
                ctx.sender.to_others(crate::bus::BusMsg::AuthFailure {
                    ip: c.ip,
                    at_ms: now,
                    scope: crate::auth::ratelimit::Scope::Gateway,
                });
                ctx.limiter.record_failure(c.ip, now)
            } else {
                0
            };
            if delay > 0 {
                c.phase = Phase::Rejecting;
                after.reject_delay_ms = delay;
                after.rejection = Some((frame, rej.close_code, rej.close_reason));
            } else {
                c.push_text(&frame);
                c.close(rej.close_code, &rej.close_reason);
            }
        }
    }
}

/// Step 10 of the connect gate: a device with a valid proof is either paired as asked (issue or
/// reuse its token), or needs pairing (silently approved when local, else a pending request
/// and `NOT_PAIRED`). Anything that writes goes to the storage thread.
fn pair_or_open(
    ctx: &mut ShardCtx,
    c: &mut Client,
    up: &UpgradeInfo,
    id: String,
    acc: Accepted,
    dev: VerifiedDevice,
    after: &mut After,
) {
    let pk = URL_SAFE_NO_PAD.encode(dev.public_key);
    let existing = ctx.devices.get(&dev.device_id).cloned();
    let role = acc.role.as_str();
    let ask = Ask {
        public_key: &pk,
        role,
        scopes: &acc.scopes,
        platform: Some(&acc.client.platform),
        device_family: acc.client.device_family.as_deref(),
    };
    let reason = pairing::requirement(existing.as_deref(), &ask);
    let op = match reason {
        None => {
            let reusable = existing
                .as_deref()
                .and_then(|p| pairing::reusable_token(p, role, &acc.scopes))
                .cloned();
            if let Some(token) = reusable {
                open(ctx, c, &id, acc, Some(token), ctx.auth_gen, after);
                return;
            }
            Op::EnsureToken {
                device_id: dev.device_id.clone(),
                role: role.to_owned(),
                scopes: acc.scopes.clone(),
            }
        }
        Some(reason) => {
            let browser_ui = acc.client.id == "openclaw-control-ui" || acc.client.mode == "webchat";
            let loc = Locality {
                local: c.ip.is_loopback(),
                has_origin: up.origin.is_some(),
                browser_ui,
            };
            let silent = pairing::silent_allowed(
                reason,
                loc,
                role,
                existing.as_deref(),
                acc.auth_method,
                ctx.config.auto_approve_local,
            );
            let ci = &acc.client;
            let pending = PendingRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                device_id: dev.device_id.clone(),
                public_key: pk,
                display_name: ci.display_name.clone(),
                platform: Some(ci.platform.clone()),
                device_family: ci.device_family.clone(),
                client_id: Some(ci.id.clone()),
                client_mode: Some(ci.mode.clone()),
                role: role.to_owned(),
                roles: vec![role.to_owned()],
                scopes: acc.scopes.clone(),
                remote_ip: (!c.ip.is_loopback()).then(|| c.ip.to_string()),
                silent,
                is_repair: false,
                ts: now_ms(),
            };
            Op::RequestPairing {
                pending: Box::new(pending),
                silent,
            }
        }
    };
    c.phase = Phase::Pairing;
    after.connect = Some(PendingConnect {
        id,
        acc,
        op,
        reason,
        existing,
        auth_gen: ctx.auth_gen,
    });
}

/// Did a change that voids `token` reach this shard while the connect waited for the store?
/// (Changes that arrive later close the opened connection as usual.)
fn voided_meanwhile(ctx: &ShardCtx, pc: &PendingConnect, token: &DeviceToken) -> bool {
    let Some(dev) = pc.acc.device.as_ref() else {
        return false;
    };
    if ctx.removed_devices.contains_key(&dev.device_id) {
        return true;
    }
    let issued = |t: &DeviceToken| t.rotated_at_ms.unwrap_or(t.created_at_ms);
    // The replica may still show the device as it was before this token was issued, so only
    // a view that is newer than the token counts.
    ctx.devices
        .get(&dev.device_id)
        .and_then(|d| d.tokens.get(&token.role))
        .is_some_and(|t| {
            if t.token == token.token {
                t.revoked_at_ms.is_some()
            } else {
                issued(t) > issued(token)
            }
        })
}

/// Did the client authenticate with the gateway-wide setting (a shared token or password, a
/// trusted proxy's user, or no auth at all)? Those sessions end when that setting changes.
pub fn uses_shared_secret(auth_method: &str) -> bool {
    matches!(auth_method, "token" | "password" | "none" | "trusted-proxy")
}

/// Finishes a connect with the storage thread's answer.
pub fn finish_connect(
    ctx: &mut ShardCtx,
    c: &mut Client,
    pc: PendingConnect,
    r: OpResult,
) -> Vec<Effect> {
    let mut after = After::default();
    if c.end.is_some() {
        return after.effects;
    }
    c.phase = Phase::AwaitingConnect {
        nonce: String::new(),
        opened_ms: now_ms(),
    };
    if pc.auth_gen < ctx.auth_gen && uses_shared_secret(pc.acc.auth_method) {
        // The shared secret changed while this connect waited for the store: what it was
        // checked against no longer holds.
        let error = ErrorShape::invalid(
            "unauthorized: gateway auth changed; reconnect with the current credentials",
        );
        crate::metrics::record(|m| m.refused("AUTH_CHANGED"));
        c.push_text(&res_err(&pc.id, &error));
        c.close(close::AUTH_CHANGED, "gateway auth changed");
        return after.effects;
    }
    match r {
        OpResult::Approved {
            token: Some(token), ..
        }
        | OpResult::Token(token)
            if voided_meanwhile(ctx, &pc, &token) =>
        {
            // A revoke, rotation or removal committed after this token was issued and already
            // reached this shard: the connect must not open with it.
            let error = ErrorShape::invalid(
                "unauthorized: device token mismatch (rotate/reissue device token)",
            )
            .with_details(crate::auth::messages::failure_details(
                "device_token_mismatch",
                false,
            ));
            crate::metrics::record(|m| m.refused("AUTH_DEVICE_TOKEN_MISMATCH"));
            c.push_text(&res_err(&pc.id, &error));
            c.close(
                close::POLICY,
                "unauthorized: device token mismatch (rotate/reissue device token)",
            );
        }
        OpResult::Approved { device, token, .. } => {
            tracing::info!(conn = %c.conn_id, device = %device.device_id, "device pairing approved silently");
            // The replica's upsert may still be in this shard's inbox: the connection must see
            // its own device now (a node's capability request is recorded from it). A newer
            // version that already arrived is kept.
            ctx.devices
                .entry(device.device_id.clone())
                .or_insert_with(|| device.clone());
            open(ctx, c, &pc.id, pc.acc, token, pc.auth_gen, &mut after);
        }
        OpResult::Token(token) => {
            open(ctx, c, &pc.id, pc.acc, Some(token), pc.auth_gen, &mut after)
        }
        OpResult::Pending { request_id } => {
            let reason = pc.reason.unwrap_or(Reason::NotPaired);
            let dev = pc
                .acc
                .device
                .as_ref()
                .map(|d| d.device_id.as_str())
                .unwrap_or_default();
            let details = reason.details(
                Some(&request_id),
                dev,
                pc.acc.role.as_str(),
                &pc.acc.scopes,
                pc.existing.as_deref(),
            );
            let error = ErrorShape::new(crate::proto::errors::code::NOT_PAIRED, reason.message())
                .with_details(details);
            crate::metrics::record(|m| m.refused("NOT_PAIRED"));
            c.push_text(&res_err(&pc.id, &error));
            c.close(
                close::POLICY,
                &truncate_reason(&reason.close_reason(Some(&request_id))),
            );
        }
        OpResult::Failed(m) | OpResult::Invalid(m) => {
            tracing::error!(conn = %c.conn_id, error = %m, "pairing store failure during connect");
            let error = ErrorShape::new(
                crate::proto::errors::code::UNAVAILABLE,
                "device pairing unavailable; retry shortly",
            )
            .retry_after(1000);
            crate::metrics::record(|m| m.refused("UNAVAILABLE"));
            c.push_text(&res_err(&pc.id, &error));
            c.close(close::TRY_AGAIN, "device pairing unavailable");
        }
        other => {
            tracing::error!(conn = %c.conn_id, result = ?other, "unexpected store result during connect");
            c.close(close::INTERNAL, "internal error");
        }
    }
    after.effects
}

/// Registers an accepted client and sends `hello-ok`.
fn open(
    ctx: &mut ShardCtx,
    c: &mut Client,
    id: &str,
    mut acc: Accepted,
    token: Option<DeviceToken>,
    auth_gen: u64,
    after: &mut After,
) {
    let tracked = !matches!(acc.client.mode.as_str(), "cli" | "backend" | "probe");
    let presence_key = tracked.then(|| match acc.role {
        Role::Node => acc
            .device
            .as_ref()
            .map(|d| d.device_id.clone())
            .or(acc.client.instance_id.clone())
            .unwrap_or_else(|| c.conn_id.clone()),
        Role::Operator => c.conn_id.clone(),
    });
    let scoped_events = acc.caps.iter().any(|c| c == "session-scoped-events");
    let tool_events = acc.caps.iter().any(|c| c == "tool-events");
    let model_catalog = acc.model_catalog.take().filter(|_| {
        acc.client.id == "openclaw-control-ui"
            && acc.caps.iter().any(|c| c == "model-catalog-snapshot")
    });
    let node = (acc.role == Role::Node).then(|| crate::nodes::registry::NodeInfo {
        node_id: acc
            .device
            .as_ref()
            .map(|d| d.device_id.clone())
            .unwrap_or_else(|| acc.client.id.clone()),
        host: None,
        shard: ctx.id,
        conn: c.id,
        conn_id: c.conn_id.clone(),
        client_id: acc.client.id.clone(),
        client_mode: acc.client.mode.clone(),
        display_name: acc.client.display_name.clone(),
        platform: acc.client.platform.clone(),
        version: acc.client.version.clone(),
        device_family: acc.client.device_family.clone(),
        model_identifier: acc.client.model_identifier.clone(),
        remote_ip: (!c.ip.is_loopback()).then(|| c.ip.to_string()),
        caps: acc.caps.clone(),
        commands: acc.commands.clone(),
        permissions: acc.permissions.clone(),
        path_env: acc.path_env.clone(),
        connected_at_ms: now_ms(),
        host_stats: None,
    });
    let session = Session {
        role: acc.role,
        scopes: ScopeSet::from_strs(acc.scopes.iter().map(String::as_str)),
        scope_list: acc.scopes,
        client: acc.client,
        caps: acc.caps,
        presence_key,
        device_id: acc.device.map(|d| d.device_id),
        auth_method: acc.auth_method,
        sessions_subscribed: false,
        scoped_events,
        tool_events,
        message_subs: Vec::new(),
        node_id: node.as_ref().map(|n| n.node_id.clone()),
        approval_client: false,
        auth_gen,
    };
    let mut session = session;
    session.approval_client = crate::approvals::is_approval_client(
        session.role,
        &session.scopes,
        &session.client.id,
        &session.caps,
    );
    if session.approval_client {
        ctx.globals.approval_clients.fetch_add(1, Ordering::AcqRel);
    }
    // Presence first (§2.5 step 17), so the snapshot includes this client.
    let presence = session.presence_key.clone().map(|key| {
        let fields = presence_fields(c, &session);
        ctx.presence_apply(key, fields)
    });
    let hello = super::hello::response(ctx, id, &c.conn_id, &session, token.as_ref());
    c.push_text(&hello);
    crate::metrics::record(|m| m.handshakes_accepted += 1);
    // The Control UI's first model catalog, pushed (without `seq`, as the original) so its
    // model picker does not wait for a `models.list` round trip.
    if let Some(snapshot) = model_catalog
        .filter(|_| {
            crate::proto::scopes::authorize("models.list", session.role, &session.scopes, None)
                .is_ok()
        })
        .and_then(|target| crate::agent::catalog::snapshot(&ctx.config, &target))
    {
        c.push_event(
            &crate::proto::frame::EventTemplate::new("models.snapshot", &snapshot, None),
            false,
        );
    }
    if session.role == Role::Node {
        // The snapshots the original pushes to a node after hello (no `seq`).
        for (name, payload) in [
            (
                "voicewake.changed",
                json!({"triggers": ["openclaw", "claude", "computer"]}),
            ),
            (
                "voicewake.routing.changed",
                json!({"config": {"version": 1, "defaultTarget": {"mode": "current"}, "routes": [], "updatedAtMs": 0}}),
            ),
        ] {
            c.push_event(
                &crate::proto::frame::EventTemplate::new(name, &payload, None),
                false,
            );
        }
    }
    // Raise the frame limit to the post-auth maximum.
    let max = ctx.config.limits.max_payload;
    c.limit = max;
    if c.holds_preauth {
        ctx.globals.release_preauth(c.ip);
        c.holds_preauth = false;
    }
    ctx.globals.connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn = %c.conn_id, client = %session.client.id, mode = %session.client.mode, "connected");
    if let Some((delta, version)) = presence {
        after
            .effects
            .push(Effect::PresencePublish { delta, version });
    }
    if let Some(n) = node {
        after.effects.push(Effect::NodeUp(Box::new(n)));
    }
    c.session = Some(Box::new(session));
    c.phase = Phase::Open;
    ctx.subs.invalidate_broad();
}

fn presence_fields(c: &Client, s: &Session) -> Map<String, Value> {
    let ci = &s.client;
    let mut m = Map::new();
    m.insert(
        "host".into(),
        json!(ci.display_name.clone().unwrap_or_else(|| ci.id.clone())),
    );
    m.insert("clientId".into(), json!(ci.id));
    if !c.ip.is_loopback() {
        m.insert("ip".into(), json!(c.ip.to_string()));
    }
    m.insert("version".into(), json!(ci.version));
    m.insert("platform".into(), json!(ci.platform));
    for (k, v) in [
        ("deviceFamily", &ci.device_family),
        ("modelIdentifier", &ci.model_identifier),
        ("timeZone", &ci.time_zone),
        ("instanceId", &ci.instance_id),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    m.insert("mode".into(), json!(ci.mode));
    if let Some(d) = &s.device_id {
        m.insert("deviceId".into(), json!(d));
    }
    m.insert("roles".into(), json!([s.role.as_str()]));
    m.insert("scopes".into(), json!(s.scope_list));
    m.insert("onlineSince".into(), json!(now_ms()));
    m.insert("reason".into(), json!("connect"));
    m
}

/// The presence fields written when a tracked client disconnects.
pub fn presence_disconnect() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("reason".into(), json!("disconnect"));
    m
}

fn on_request(ctx: &mut ShardCtx, c: &mut Client, text: &[u8], after: &mut After) {
    // Non-JSON after auth: ignored, the socket stays open.
    let Some(frame) = ctx.parser.parse(text) else {
        tracing::debug!(conn = %c.conn_id, "ignoring non-JSON frame");
        return;
    };
    if frame.get("type").and_then(Value::as_str) == Some("cancel") {
        return;
    }
    if let Err(e) = Schemas::get().check_request(&frame) {
        let id = frame.get("id").and_then(Value::as_str).unwrap_or("invalid");
        c.push_text(&res_err(
            id,
            &ErrorShape::invalid(format!("invalid request frame: {e}")),
        ));
        c.strikes = 0;
        return;
    }
    let id = frame["id"].as_str().unwrap_or_default();
    let method = frame["method"].as_str().unwrap_or_default();
    let null = Value::Null;
    let raw_params = frame.get("params").unwrap_or(&null);
    let Some(session) = c.session() else { return };
    // Receipt: the frame passed validation (the original's starting point for RPC timings).
    let spec = crate::proto::scopes::spec(method);
    let mut rpc = Rpc::received(spec);
    let reply = match authorize_spec(
        method,
        spec,
        session.role,
        &session.scopes,
        Some(raw_params),
    ) {
        Err(Denied::Role(role)) => {
            rpc.denied();
            c.push_text(&res_err(id, &ErrorShape::unauthorized_role(role.as_str())));
            rpc.responded();
            c.strikes += 1;
            if c.strikes > MAX_UNAUTHORIZED_STRIKES {
                c.close(close::POLICY, "repeated unauthorized calls");
            }
            return;
        }
        Err(Denied::MissingScope(scope)) => {
            rpc.denied();
            Err(ErrorShape::missing_scope(scope))
        }
        Ok(()) => {
            let empty = Value::Object(Map::new());
            let params = if raw_params.is_null() {
                &empty
            } else {
                raw_params
            };
            let call = Call {
                method,
                params,
                session,
                now_ms: now_ms(),
            };
            let outcome = methods::dispatch(ctx, &call, &mut after.effects);
            rpc.handled(&outcome);
            match outcome {
                None => Err(ErrorShape::unknown_method(method)),
                Some(Outcome::Reply(r)) => r,
                Some(Outcome::Deferred(d)) => {
                    c.strikes = 0;
                    after.deferred.push((id.to_owned(), d, rpc.pending()));
                    return;
                }
                Some(Outcome::Routed(routed)) => {
                    c.strikes = 0;
                    ctx.await_reply(c.id, id, rpc.pending());
                    after.effects.push(Effect::Routed {
                        conn: c.id,
                        req_id: id.to_owned(),
                        routed,
                    });
                    return;
                }
                Some(Outcome::Chat(req)) => {
                    c.strikes = 0;
                    ctx.await_reply(c.id, id, rpc.pending());
                    after.effects.push(Effect::Chat {
                        conn: c.id,
                        req_id: id.to_owned(),
                        req,
                    });
                    return;
                }
            }
        }
    };
    c.strikes = 0;
    let reply = match (reply, c.session.as_mut()) {
        (Ok(payload), Some(s)) => {
            subscriptions(&mut ctx.subs, c.id, s, method, &payload).map(|()| payload)
        }
        (r, _) => r,
    };
    let bytes = match reply {
        Ok(payload) => res_ok(id, &payload),
        Err(e) => {
            rpc.failed();
            res_err(id, &e)
        }
    };
    if c.over(ctx.config.limits.max_buffered_bytes) {
        ctx.globals.slow_closes.fetch_add(1, Ordering::Relaxed);
        c.close(close::POLICY, "slow consumer");
        return;
    }
    c.push_text(&bytes);
    rpc.responded();
}

/// A node opened: register it everywhere and ask for approval of its capability surface
/// unless the approved one covers it (the connect itself has already succeeded).
fn node_up(ctx: &mut ShardCtx, n: crate::nodes::registry::NodeInfo) {
    use crate::nodes::surface::{admissible, required_scopes, PendingSurface};
    let device = ctx.devices.get(&n.node_id).cloned();
    let commands = admissible(&n.commands);
    let pending = PendingSurface {
        request_id: uuid::Uuid::new_v4().to_string(),
        node_id: n.node_id.clone(),
        client_id: Some(n.client_id.clone()),
        client_mode: Some(n.client_mode.clone()),
        display_name: n.display_name.clone(),
        platform: Some(n.platform.clone()),
        version: Some(n.version.clone()),
        device_family: n.device_family.clone(),
        caps: n.caps.clone(),
        required_approve_scopes: required_scopes(&commands),
        commands,
        remote_ip: n.remote_ip.clone(),
        silent: device
            .as_ref()
            .and_then(|d| d.approved_via.as_deref())
            .filter(|v| *v == "silent")
            .map(|_| true),
        ts: now_ms(),
    };
    let node_id = n.node_id.clone();
    ctx.node_change(crate::nodes::registry::NodeDelta::Up(std::sync::Arc::new(
        n,
    )));
    if device.is_some() {
        ctx.spawn_store(
            crate::store::Op::RequestNodeSurface(Box::new(pending)),
            move |_, r| {
                if let crate::store::OpResult::Failed(e) | crate::store::OpResult::Invalid(e) = r {
                    tracing::warn!(node = %node_id, error = %e, "could not record the node's capability request");
                }
            },
        );
    }
}

/// Session subscriptions one connection may hold (`sessions.messages.subscribe`, a node's
/// `chat.subscribe`): keys are client-chosen, so without a bound one connection could grow its
/// list and the shard's index without end.
pub const MAX_SESSION_SUBSCRIPTIONS: usize = 1024;

/// Records the connection's event subscriptions after a successful (un)subscribe; refuses a
/// new one past [`MAX_SESSION_SUBSCRIPTIONS`].
fn subscriptions(
    index: &mut super::subs::SessionSubs,
    conn: u64,
    s: &mut Session,
    method: &str,
    payload: &Value,
) -> Result<(), ErrorShape> {
    match method {
        "sessions.subscribe" | "sessions.unsubscribe" => {
            s.sessions_subscribed = method == "sessions.subscribe";
            index.invalidate_broad();
        }
        "sessions.messages.subscribe" | "sessions.messages.unsubscribe" | "node.event" => {
            // `node.event chat.subscribe|chat.unsubscribe` answers with the resolved key.
            let Some(key) = payload.get("key").and_then(Value::as_str) else {
                return Ok(());
            };
            let add = payload
                .get("subscribed")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if add && s.message_subs.len() >= MAX_SESSION_SUBSCRIPTIONS && !s.subscribed_to(key) {
                return Err(ErrorShape::invalid(format!(
                    "too many session subscriptions: at most {MAX_SESSION_SUBSCRIPTIONS} per \
                     connection; unsubscribe from one first"
                )));
            }
            s.message_subs.retain(|k| &**k != key);
            index.unsubscribe(key, conn);
            if add {
                let key: std::sync::Arc<str> = std::sync::Arc::from(key);
                index.subscribe(&key, conn);
                s.message_subs.push(key);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Applies handler effects once no connection is borrowed.
pub fn apply(ctx: &mut ShardCtx, effects: Vec<Effect>) {
    for e in effects {
        match e {
            Effect::Presence { key, fields } => ctx.presence_change(key, fields),
            Effect::PresencePublish { delta, version } => ctx.presence_publish(delta, version),
            Effect::SystemEvent(text) => {
                ctx.record_system_event(text.clone());
                ctx.sender.to_others(crate::bus::BusMsg::SystemEvent(text));
            }
            Effect::Chat { conn, req_id, req } => {
                super::drive::chat_request(ctx, conn, req_id, req)
            }
            Effect::Routed {
                conn,
                req_id,
                routed,
            } => {
                let caller = crate::effects::Caller::conn(ctx.id, conn, req_id);
                super::drive::routed(ctx, caller, *routed)
            }
            Effect::NodeUp(n) => node_up(ctx, *n),
        }
    }
}
