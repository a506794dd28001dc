//! What an authenticated hook request asks for, decided as the original's
//! `createHooksRequestHandler` does after its token check: `/wake` queues a system event,
//! `/agent` runs an agent turn, any other sub-path goes through the mappings. Every refusal
//! carries the original's message. Nothing here runs anything: the shard executes the plan.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{
    config::{HooksConfig, Mapping},
    template::{self, Ctx},
    wrap,
};
use crate::{
    chat::key::{self, SessionKey},
    http::js_trim,
};

/// Most items a `forEach` mapping dispatches (the rest are dropped, as the original).
pub const MAX_FAN_OUT: usize = 200;
/// Most message bytes one request's actions may render in all: 200 items, each rendering a
/// large part of the payload, would otherwise multiply a 256 KiB body into gigabytes.
pub const MAX_RENDERED_TOTAL: usize = 8 * 1024 * 1024;
/// Longest idempotency key honoured.
const MAX_IDEMPOTENCY_KEY: usize = 256;

/// The request, after auth and the body read.
pub struct HookRequest<'a> {
    /// The path after the hooks base, without its leading `/` (`wake`, `agent`, `gmail`).
    pub sub_path: &'a str,
    /// The JSON body (a non-object body counts as `{}`).
    pub payload: &'a Value,
    /// Lowercased names; repeats joined with `, `.
    pub headers: &'a [(String, String)],
    pub query: &'a [(String, String)],
    /// ISO-8601 arrival time (`{{now}}`, the prompt's `Received:`).
    pub now_iso: &'a str,
    /// The hook token (keys idempotent replays to their caller).
    pub token: &'a str,
}

/// What the gateway knows that a plan depends on.
pub struct HookEnv<'a> {
    pub hooks: &'a HooksConfig,
    /// Configured agent ids.
    pub agents: &'a [&'a str],
    pub default_agent: &'a str,
    /// Channels a run's reply can be delivered to.
    pub channels: &'a [&'static str],
}

/// A system event to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub text: String,
    pub next_heartbeat: bool,
}

impl Wake {
    pub fn mode(&self) -> &'static str {
        if self.next_heartbeat {
            "next-heartbeat"
        } else {
            "now"
        }
    }
}

/// Where a run's reply is delivered besides its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: &'static str,
    pub to: String,
    pub account_id: Option<String>,
}

/// An agent turn to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRun {
    pub session: SessionKey,
    /// The message as the agent gets it (inside the external-content boundary by default).
    pub prompt: String,
    pub name: String,
    pub run_id: String,
    /// The chat layer's idempotency fingerprint: the same for a replay of the same request.
    pub fingerprint: u64,
    pub delivery: Option<Delivery>,
    /// `timeoutSeconds`: the run is aborted past it.
    pub timeout_secs: Option<u64>,
    pub next_heartbeat: bool,
}

/// The decision.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// `/wake`: queue the event, answer `{ok, mode, eventOutcome}`.
    Wake(Wake),
    /// `/agent`: start the run, answer `{ok, runId}` (with `completion` when waited for).
    Agent { run: Box<AgentRun>, wait: bool },
    /// A mapping matched: its wakes, then its runs (`fan_out`: one per `forEach` item).
    Mapped {
        wakes: Vec<Wake>,
        runs: Vec<AgentRun>,
        fan_out: bool,
        dropped: usize,
    },
    /// A mapping matched with nothing to do: 204.
    NoContent,
    /// No route and no mapping: 404.
    NotFound,
}

/// Decides a request. `Err` is the 400 message.
pub fn plan(
    req: &HookRequest,
    env: &HookEnv,
    fresh_id: &mut dyn FnMut() -> String,
) -> Result<Plan, String> {
    let empty = Value::Object(Map::new());
    let payload = if req.payload.is_object() {
        req.payload
    } else {
        &empty
    };
    match req.sub_path {
        "wake" => wake(payload, env).map(Plan::Wake),
        "agent" => agent(req, payload, env, fresh_id),
        _ => mapped(req, payload, env, fresh_id),
    }
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str()
        .map(js_trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A hook name as logs and system events show it: control characters become spaces, runs
/// of white space one space, at most 500 characters (the original's `sanitizeHookConsoleValue`).
fn console_safe(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = spaced.split_whitespace().collect();
    words.join(" ").chars().take(500).collect()
}

/// A payload `agentId`: absent, or a non-empty string.
fn payload_agent(p: &Value) -> Result<Option<String>, String> {
    match p.get("agentId") {
        None => Ok(None),
        Some(v) => opt_str(v)
            .map(Some)
            .ok_or_else(|| "agentId must be a non-empty string".to_owned()),
    }
}

/// Where the request's or mapping's agent choice lands; refused when unknown (request only)
/// or not allowed.
fn target_agent(env: &HookEnv, wanted: Option<&str>, from_request: bool) -> Result<String, String> {
    let known = |id: &str| env.agents.contains(&id);
    let chosen = match wanted {
        None => env.default_agent.to_owned(),
        Some(raw) => {
            let id = raw.trim().to_ascii_lowercase();
            if known(&id) {
                id
            } else if from_request {
                return Err(format!("unknown agentId \"{id}\""));
            } else {
                // A mapping naming an agent that is gone falls back to the default.
                env.default_agent.to_owned()
            }
        }
    };
    match &env.hooks.allowed_agent_ids {
        Some(allowed) if !allowed.contains(&chosen) => {
            Err("agentId is not allowed by hooks.allowedAgentIds".into())
        }
        _ => Ok(chosen),
    }
}

/// Where a session-key choice comes from (request and templated mapping keys need
/// `allowRequestSessionKey`; a static mapping key does not).
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeySource {
    Request,
    MappingStatic,
    MappingTemplated,
}

/// The session key a run uses: requested, else `defaultSessionKey`, else `hook:<id>`; an
/// `agent:<x>:…` key is re-scoped to the target agent; the prefixes are checked throughout.
fn session_key(
    env: &HookEnv,
    requested: Option<&str>,
    source: KeySource,
    agent: &str,
    generated: &str,
) -> Result<SessionKey, String> {
    let h = env.hooks;
    let prefix_error = || {
        format!(
            "sessionKey must start with one of: {}",
            h.allowed_prefixes.as_deref().unwrap_or_default().join(", ")
        )
    };
    let chosen = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(k) => {
            if source != KeySource::MappingStatic && !h.allow_request_session_key {
                return Err("sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable".into());
            }
            if !h.prefix_allows(k) {
                return Err(prefix_error());
            }
            k.to_owned()
        }
        None => match &h.default_session_key {
            Some(d) => d.clone(),
            None => {
                let g = format!("hook:{generated}");
                if !h.prefix_allows(&g) {
                    return Err(prefix_error());
                }
                g
            }
        },
    };
    let dispatch = match chosen
        .strip_prefix("agent:")
        .and_then(|r| r.split_once(':'))
    {
        Some((_, rest)) if !rest.is_empty() => format!("agent:{agent}:{rest}"),
        _ => chosen,
    };
    if !h.prefix_allows(&dispatch) {
        return Err(prefix_error());
    }
    key::resolve(&dispatch, Some(agent), env.default_agent)
}

fn wake(p: &Value, env: &HookEnv) -> Result<Wake, String> {
    let text = p.get("text").and_then(opt_str).ok_or("text required")?;
    let next_heartbeat = p.get("mode").and_then(Value::as_str) == Some("next-heartbeat");
    let agent = payload_agent(p)?;
    let session = p.get("sessionKey").map(opt_str);
    if let Some(None) = session {
        return Err("sessionKey must be a non-empty string".into());
    }
    let session = session.flatten();
    if next_heartbeat && session.is_some() {
        return Err("sessionKey requires mode=now".into());
    }
    let target = target_agent(env, agent.as_deref(), true)?;
    if let Some(k) = &session {
        session_key(env, Some(k), KeySource::Request, &target, "")?;
    }
    Ok(Wake {
        text,
        next_heartbeat,
    })
}

/// The delivery a request asks for (`deliver`, `channel`, `to`, `accountId`).
fn delivery(p: &Value, env: &HookEnv) -> Result<Option<Delivery>, String> {
    if p.get("deliver") == Some(&Value::Bool(false)) {
        return Ok(None);
    }
    let channel = channel(p.get("channel"), env)?;
    let (has_channel, has_to, has_account) = (
        p.get("channel").is_some(),
        p.get("to").is_some(),
        p.get("accountId").is_some(),
    );
    if !has_channel && !has_to && !has_account {
        return Ok(None);
    }
    let to = p.get("to").and_then(opt_str);
    let account = p.get("accountId").and_then(opt_str);
    if has_to && to.is_none() {
        return Err("to must be a non-empty string for hook delivery".into());
    }
    if has_account && account.is_none() {
        return Err("accountId must be a non-empty string for hook delivery".into());
    }
    if has_account && (!has_channel || to.is_none()) {
        return Err("accountId requires channel and to for hook delivery".into());
    }
    let (Some(to), true) = (to, has_channel) else {
        return Err("channel and to must be set together for hook delivery".into());
    };
    let Some(channel) = channel else {
        return Err("channel must name a concrete channel for hook delivery".into());
    };
    Ok(Some(Delivery {
        channel,
        to,
        account_id: account,
    }))
}

/// A `channel` value: `None` for `last` (or omitted), a configured channel, else refused.
fn channel(v: Option<&Value>, env: &HookEnv) -> Result<Option<&'static str>, String> {
    let error = || {
        let mut names = vec!["last"];
        names.extend(env.channels.iter().copied());
        format!("channel must be {}", names.join("|"))
    };
    match v {
        None => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim().to_ascii_lowercase();
            if s == "last" {
                return Ok(None);
            }
            env.channels
                .iter()
                .find(|c| **c == s)
                .map(|c| Some(*c))
                .ok_or_else(error)
        }
        Some(_) => Err(error()),
    }
}

fn timeout_secs(v: Option<&Value>) -> Option<u64> {
    let n = v?.as_f64()?;
    (n.is_finite() && n >= 1.0).then(|| n.min(86_400.0).floor() as u64)
}

/// The idempotency key: `Idempotency-Key`, `X-OpenClaw-Idempotency-Key`, then the payload's.
fn idempotency_key<'a>(req: &'a HookRequest, p: &'a Value) -> Option<&'a str> {
    let ok = |s: &'a str| {
        Some(js_trim(s)).filter(|s| !s.is_empty() && s.chars().count() <= MAX_IDEMPOTENCY_KEY)
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| ok(v))
    };
    header("idempotency-key")
        .or_else(|| header("x-openclaw-idempotency-key"))
        .or_else(|| p.get("idempotencyKey").and_then(Value::as_str).and_then(ok))
}

/// A replay's run id (and generated session id): the same caller, path, request and key give
/// the same id on every shard, so the session owner answers a replay with the first run.
fn replay_id(token: &str, path_key: &str, scope: &Value, idem: &str) -> String {
    let mut h = Sha256::new();
    for part in [token, path_key, &scope.to_string(), idem] {
        h.update(Sha256::digest(part.as_bytes()));
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn agent(
    req: &HookRequest,
    p: &Value,
    env: &HookEnv,
    fresh_id: &mut dyn FnMut() -> String,
) -> Result<Plan, String> {
    let wait = match p.get("waitForCompletion") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("waitForCompletion must be boolean".into()),
    };
    let message = p
        .get("message")
        .and_then(opt_str)
        .ok_or("message required")?;
    let name = console_safe(
        &p.get("name")
            .and_then(opt_str)
            .unwrap_or_else(|| "Hook".into()),
    );
    let agent = payload_agent(p)?;
    let persistent = match p.get("sessionMode") {
        None => false,
        Some(v) if v == "isolated" => false,
        Some(v) if v == "persistent" => true,
        Some(_) => return Err("sessionMode must be isolated or persistent".into()),
    };
    let delivery = delivery(p, env)?;
    if p.get("model").is_some() && p.get("model").and_then(opt_str).is_none() {
        return Err("model required".into());
    }
    let next_heartbeat = p.get("wakeMode").and_then(Value::as_str) == Some("next-heartbeat");
    let timeout = timeout_secs(p.get("timeoutSeconds"));
    let target = target_agent(env, agent.as_deref(), true)?;
    let requested = p.get("sessionKey").and_then(opt_str);
    if persistent && requested.is_none() {
        return Err("sessionKey is required when sessionMode is persistent".into());
    }
    if persistent && env.hooks.allowed_prefixes.is_none() {
        return Err(
            "hooks.allowedSessionKeyPrefixes is required when direct hook sessionMode is persistent"
                .into(),
        );
    }
    let scope = json!({
        "agentId": target, "sessionKey": requested.as_deref().or(env.hooks.default_session_key.as_deref()),
        "message": message, "name": name, "wakeMode": next_heartbeat, "sessionMode": persistent,
        "delivery": delivery.as_ref().map(|d| json!([d.channel, d.to, d.account_id])),
        "model": p.get("model"), "thinking": p.get("thinking"), "timeoutSeconds": timeout,
    });
    let id = match idempotency_key(req, p) {
        Some(idem) => replay_id(req.token, "agent", &scope, idem),
        None => fresh_id(),
    };
    let session = session_key(env, requested.as_deref(), KeySource::Request, &target, &id)?;
    let run = AgentRun {
        session,
        prompt: wrap::safe_prompt(&message, wrap::Source::Webhook, &name, req.now_iso),
        name,
        fingerprint: crate::fingerprint::fingerprint(&["hook", &id, &scope.to_string()]),
        run_id: id,
        delivery,
        timeout_secs: timeout,
        next_heartbeat,
    };
    Ok(Plan::Agent {
        run: Box::new(run),
        wait,
    })
}

fn matches(m: &Mapping, req: &HookRequest, p: &Value) -> bool {
    let path_ok = m
        .match_path
        .as_deref()
        .is_none_or(|mp| mp == req.sub_path.trim_matches('/'));
    let source_ok = m
        .match_source
        .as_deref()
        .is_none_or(|s| p.get("source").and_then(Value::as_str) == Some(s));
    path_ok && source_ok
}

fn mapped(
    req: &HookRequest,
    p: &Value,
    env: &HookEnv,
    fresh_id: &mut dyn FnMut() -> String,
) -> Result<Plan, String> {
    let Some(m) = env.hooks.mappings.iter().find(|m| matches(m, req, p)) else {
        return Ok(Plan::NotFound);
    };
    // One context per action: a fan-out sees `payload[forEach] = [item]` (read through, not
    // copied: a copy of the payload per item would multiply a large body by 200).
    let none: &[Value] = &[];
    let (items, fan_out, dropped): (Vec<Option<&Value>>, bool, usize) = match &m.for_each {
        None => (vec![None], false, 0),
        Some(k) => {
            let all = p
                .get(k)
                .and_then(Value::as_array)
                .map_or(none, Vec::as_slice);
            let dropped = all.len().saturating_sub(MAX_FAN_OUT);
            (
                all.iter().take(MAX_FAN_OUT).map(Some).collect(),
                true,
                dropped,
            )
        }
    };
    let (mut wakes, mut runs) = (Vec::new(), Vec::new());
    let mut seen_scopes: Vec<String> = Vec::new();
    let mut rendered = 0usize;
    let idem = idempotency_key(req, p).map(str::to_owned);
    for item in items {
        let ctx = Ctx {
            payload: p,
            headers: req.headers,
            query: req.query,
            path: req.sub_path,
            now: req.now_iso,
            each: item.zip(m.for_each.as_deref()).map(|(i, k)| (k, i)),
        };
        let session = template::render_optional(m.session_key.as_deref(), &ctx);
        let source = if m
            .session_key
            .as_deref()
            .is_some_and(template::has_expressions)
        {
            KeySource::MappingTemplated
        } else {
            KeySource::MappingStatic
        };
        if source == KeySource::MappingTemplated && session.is_none() {
            return Err("hook mapping sessionKey template rendered empty".into());
        }
        let target = target_agent(env, m.agent_id.as_deref(), false)?;
        if m.wake {
            let text = template::render(m.text_template.as_deref().unwrap_or(""), &ctx);
            if text.trim().is_empty() {
                return Err("hook mapping requires text".into());
            }
            if m.next_heartbeat && session.is_some() {
                return Err("hook mapping sessionKey requires wakeMode=now".into());
            }
            if let Some(k) = &session {
                session_key(env, Some(k), source, &target, "")?;
            }
            wakes.push(Wake {
                text,
                next_heartbeat: m.next_heartbeat,
            });
            continue;
        }
        let message = template::render(m.message_template.as_deref().unwrap_or(""), &ctx);
        if message.trim().is_empty() {
            return Err("hook mapping requires message".into());
        }
        let persistent = m.session_mode.as_deref() == Some("persistent");
        if persistent && session.is_none() && env.hooks.default_session_key.is_none() {
            return Err("sessionKey or hooks.defaultSessionKey is required when mapped hook sessionMode is persistent".into());
        }
        let name = console_safe(
            &template::render_optional(m.name.as_deref(), &ctx).unwrap_or_else(|| "Hook".into()),
        );
        let to = template::render_optional(m.to.as_deref(), &ctx);
        let channel = channel(
            m.channel
                .as_ref()
                .map(|c| Value::String(c.clone()))
                .as_ref(),
            env,
        )?;
        let delivery = match (m.deliver != Some(false), channel, to.clone()) {
            (true, Some(channel), Some(to)) => Some(Delivery {
                channel,
                to,
                account_id: None,
            }),
            _ => None,
        };
        let mut scope = json!({
            "agentId": target, "sessionKey": session.as_deref().or(env.hooks.default_session_key.as_deref()),
            "message": message, "name": name, "sessionMode": persistent, "channel": channel, "to": to,
        });
        if fan_out {
            let fp = scope.to_string();
            scope["occurrence"] = json!(seen_scopes.iter().filter(|s| **s == fp).count());
            seen_scopes.push(fp);
        }
        // A fan-out is idempotent per item even without a key (the original derives one).
        let id = match (&idem, fan_out) {
            (Some(k), _) => replay_id(req.token, req.sub_path, &scope, k),
            (None, true) => replay_id(req.token, req.sub_path, &scope, "fan-out"),
            (None, false) => fresh_id(),
        };
        let session = session_key(env, session.as_deref(), source, &target, &id)?;
        let unsafe_ok = m.allow_unsafe_external_content == Some(true);
        let prompt = if unsafe_ok {
            message
        } else {
            let src = if req.sub_path.trim_matches('/') == "gmail" {
                wrap::Source::Email
            } else {
                wrap::Source::Webhook
            };
            wrap::safe_prompt(&message, src, &name, req.now_iso)
        };
        rendered += prompt.len();
        if rendered > MAX_RENDERED_TOTAL {
            return Err(format!(
                "hook mapping renders more than {} MiB of messages; send fewer or smaller items",
                MAX_RENDERED_TOTAL >> 20
            ));
        }
        runs.push(AgentRun {
            session,
            prompt,
            name,
            fingerprint: crate::fingerprint::fingerprint(&["hook", &id, &scope.to_string()]),
            run_id: id,
            delivery,
            timeout_secs: m.timeout_seconds,
            next_heartbeat: m.next_heartbeat,
        });
    }
    if wakes.is_empty() && runs.is_empty() {
        return Ok(Plan::NoContent);
    }
    Ok(Plan::Mapped {
        wakes,
        runs,
        fan_out,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::config;

    fn hooks(extra: Value) -> HooksConfig {
        let mut v = json!({"enabled": true, "token": "t"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        config::parse(&v, "hooks").unwrap().unwrap()
    }

    fn run(h: &HooksConfig, sub: &str, body: Value) -> Result<Plan, String> {
        run_with(h, sub, body, &[])
    }

    fn run_with(
        h: &HooksConfig,
        sub: &str,
        body: Value,
        headers: &[(String, String)],
    ) -> Result<Plan, String> {
        let env = HookEnv {
            hooks: h,
            agents: &["main", "ops"],
            default_agent: "main",
            channels: &["webhook"],
        };
        let req = HookRequest {
            sub_path: sub,
            payload: &body,
            headers,
            query: &[],
            now_iso: "2026-01-01T00:00:00.000Z",
            token: "t",
        };
        let mut n = 0;
        plan(&req, &env, &mut || {
            n += 1;
            format!("id{n}")
        })
    }

    fn agent_run(p: Result<Plan, String>) -> AgentRun {
        match p.unwrap() {
            Plan::Agent { run, .. } => *run,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wake_checks_as_the_original() {
        let h = hooks(json!({}));
        assert_eq!(
            run(&h, "wake", json!({"text": " hi "})),
            Ok(Plan::Wake(Wake {
                text: "hi".into(),
                next_heartbeat: false
            }))
        );
        assert_eq!(
            run(&h, "wake", json!({"text": "x", "mode": "next-heartbeat"})).unwrap(),
            Plan::Wake(Wake {
                text: "x".into(),
                next_heartbeat: true
            })
        );
        assert_eq!(run(&h, "wake", json!({})).unwrap_err(), "text required");
        assert_eq!(
            run(&h, "wake", json!({"text": "\u{feff} "})).unwrap_err(),
            "text required"
        );
        let r = agent_run(run(
            &h,
            "agent",
            json!({"message": "m", "name": "a\nFORGED\tline  x"}),
        ));
        assert_eq!(r.name, "a FORGED line x");
        assert_eq!(run(&h, "wake", json!([1, 2])).unwrap_err(), "text required");
        assert_eq!(
            run(&h, "wake", json!({"text": "x", "agentId": 5})).unwrap_err(),
            "agentId must be a non-empty string"
        );
        assert_eq!(
            run(&h, "wake", json!({"text": "x", "agentId": "nope"})).unwrap_err(),
            "unknown agentId \"nope\""
        );
        assert_eq!(
            run(&h, "wake", json!({"text": "x", "sessionKey": ""})).unwrap_err(),
            "sessionKey must be a non-empty string"
        );
        assert_eq!(
            run(
                &h,
                "wake",
                json!({"text": "x", "sessionKey": "k", "mode": "next-heartbeat"})
            )
            .unwrap_err(),
            "sessionKey requires mode=now"
        );
        assert!(run(&h, "wake", json!({"text": "x", "sessionKey": "k"}))
            .unwrap_err()
            .starts_with("sessionKey is disabled"));
        let h = hooks(json!({"allowedAgentIds": ["ops"]}));
        assert_eq!(
            run(&h, "wake", json!({"text": "x"})).unwrap_err(),
            "agentId is not allowed by hooks.allowedAgentIds"
        );
    }

    #[test]
    fn agent_runs_in_an_isolated_hook_session_with_a_wrapped_prompt() {
        let h = hooks(json!({}));
        let r = agent_run(run(
            &h,
            "agent",
            json!({"message": "deploy done", "agentId": "OPS"}),
        ));
        assert_eq!(r.session.canonical, "agent:ops:hook:id1");
        assert_eq!(r.run_id, "id1");
        assert_eq!(r.name, "Hook");
        assert!(
            r.prompt
                .contains("Source: Webhook\nTask: Hook\n---\ndeploy done\n"),
            "{}",
            r.prompt
        );
        assert_eq!(r.delivery, None);
        for (body, err) in [
            (json!({}), "message required"),
            (json!({"message": "m", "waitForCompletion": "yes"}), "waitForCompletion must be boolean"),
            (json!({"message": "m", "sessionMode": "x"}), "sessionMode must be isolated or persistent"),
            (json!({"message": "m", "sessionMode": "persistent"}), "sessionKey is required when sessionMode is persistent"),
            (json!({"message": "m", "model": " "}), "model required"),
            (json!({"message": "m", "channel": "sms"}), "channel must be last|webhook"),
            (json!({"message": "m", "channel": "webhook"}), "channel and to must be set together for hook delivery"),
            (json!({"message": "m", "to": ""}), "to must be a non-empty string for hook delivery"),
            (json!({"message": "m", "accountId": "a", "to": "x"}), "accountId requires channel and to for hook delivery"),
            (json!({"message": "m", "channel": "last", "to": "x"}), "channel must name a concrete channel for hook delivery"),
            (json!({"message": "m", "sessionKey": "hook:x"}), "sessionKey is disabled for externally supplied hook payload values; set hooks.allowRequestSessionKey=true to enable"),
        ] {
            assert_eq!(run(&h, "agent", body.clone()).unwrap_err(), err, "{body}");
        }
        let r = agent_run(run(
            &h,
            "agent",
            json!({"message": "m", "channel": "webhook", "to": "u1", "timeoutSeconds": 2.9, "waitForCompletion": true}),
        ));
        assert_eq!(
            r.delivery,
            Some(Delivery {
                channel: "webhook",
                to: "u1".into(),
                account_id: None
            })
        );
        assert_eq!(r.timeout_secs, Some(2));
        let r = agent_run(run(
            &h,
            "agent",
            json!({"message": "m", "timeoutSeconds": -1, "deliver": false, "channel": "bogus"}),
        ));
        assert_eq!((r.timeout_secs, r.delivery), (None, None));
    }

    #[test]
    fn requested_session_keys_follow_the_policy_and_rescope() {
        let h = hooks(
            json!({"allowRequestSessionKey": true, "allowedSessionKeyPrefixes": ["hook:", "agent:"]}),
        );
        let r = agent_run(run(
            &h,
            "agent",
            json!({"message": "m", "sessionKey": "agent:main:hook:a", "agentId": "ops"}),
        ));
        assert_eq!(r.session.canonical, "agent:ops:hook:a");
        assert_eq!(
            run(&h, "agent", json!({"message": "m", "sessionKey": "x:1"})).unwrap_err(),
            "sessionKey must start with one of: hook:, agent:"
        );
        let h = hooks(json!({"defaultSessionKey": "hook:inbox"}));
        assert_eq!(
            agent_run(run(&h, "agent", json!({"message": "m"})))
                .session
                .canonical,
            "agent:main:hook:inbox"
        );
    }

    #[test]
    fn an_idempotency_key_gives_a_replay_the_same_run() {
        let h = hooks(json!({}));
        let key = vec![("idempotency-key".to_owned(), "k1".to_owned())];
        let a = agent_run(run_with(&h, "agent", json!({"message": "m"}), &key));
        let b = agent_run(run_with(&h, "agent", json!({"message": "m"}), &key));
        assert_eq!(
            (&a.run_id, &a.session, a.fingerprint),
            (&b.run_id, &b.session, b.fingerprint)
        );
        assert_eq!(a.session.canonical, format!("agent:main:hook:{}", a.run_id));
        let c = agent_run(run_with(&h, "agent", json!({"message": "other"}), &key));
        assert_ne!(a.run_id, c.run_id);
        let d = agent_run(run(
            &h,
            "agent",
            json!({"message": "m", "idempotencyKey": "k1"}),
        ));
        assert_eq!(a.run_id, d.run_id);
        let e = agent_run(run(
            &h,
            "agent",
            json!({"message": "m", "idempotencyKey": "k".repeat(300)}),
        ));
        assert_eq!(e.run_id, "id1");
    }

    #[test]
    fn mappings_match_render_and_fan_out() {
        let h = hooks(
            json!({"presets": ["gmail"], "allowRequestSessionKey": true, "allowedSessionKeyPrefixes": ["hook:"], "mappings": [
                {"match": {"path": "github", "source": "gh"}, "action": "wake", "textTemplate": "push to {{repo.name}} by {{headers.x-user}}"},
                {"match": {"path": "deploy"}, "name": "Deploy {{env}}", "messageTemplate": "deployed {{ env }}", "channel": "webhook", "to": "{{who}}", "allowUnsafeExternalContent": true},
                {"match": {"path": "empty"}, "messageTemplate": "{{nothing}}"},
            ]}),
        );
        let hd = vec![("x-user".to_owned(), "ann".to_owned())];
        match run_with(
            &h,
            "github",
            json!({"source": "gh", "repo": {"name": "r"}}),
            &hd,
        )
        .unwrap()
        {
            Plan::Mapped {
                wakes,
                runs,
                fan_out: false,
                ..
            } => {
                assert_eq!(
                    wakes,
                    vec![Wake {
                        text: "push to r by ann".into(),
                        next_heartbeat: false
                    }]
                );
                assert!(runs.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            run(&h, "github", json!({"source": "gl"})),
            Ok(Plan::NotFound)
        );
        assert_eq!(
            run(&h, "empty", json!({})).unwrap_err(),
            "hook mapping requires message"
        );
        match run(&h, "deploy", json!({"env": "prod", "who": "u9"})).unwrap() {
            Plan::Mapped { runs, .. } => {
                assert_eq!(runs[0].prompt, "deployed prod");
                assert_eq!(runs[0].name, "Deploy prod");
                assert_eq!(runs[0].delivery.as_ref().map(|d| d.to.as_str()), Some("u9"));
            }
            other => panic!("{other:?}"),
        }
        let msgs: Vec<Value> = (0..205)
            .map(|i| json!({"id": format!("m{i}"), "from": "a@b", "subject": "s"}))
            .collect();
        match run(&h, "gmail", json!({"messages": msgs})).unwrap() {
            Plan::Mapped {
                runs,
                fan_out: true,
                dropped: 5,
                ..
            } => {
                assert_eq!(runs.len(), MAX_FAN_OUT);
                assert_eq!(runs[3].session.canonical, "agent:main:hook:gmail:m3");
                assert!(
                    runs[3].prompt.contains(
                        "Source: Email\nTask: Gmail\n---\nNew email from a@b\nSubject: s\n"
                    ),
                    "{}",
                    runs[3].prompt
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            run(&h, "gmail", json!({"messages": []})),
            Ok(Plan::NoContent)
        );
        // Items that each render a large shared field are bounded in all.
        let big = "x".repeat(60_000);
        let many: Vec<Value> = (0..200)
            .map(|i| json!({"id": format!("b{i}"), "from": big}))
            .collect();
        let e = run(&h, "gmail", json!({ "messages": many })).unwrap_err();
        assert!(e.starts_with("hook mapping renders more than 8 MiB"), "{e}");
        // A template that renders only its static part is not empty (as the original).
        match run(&h, "gmail", json!({"messages": [{}]})).unwrap() {
            Plan::Mapped { runs, .. } => {
                assert_eq!(runs[0].session.canonical, "agent:main:hook:gmail:")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            run(&hooks(json!({})), "other", json!({})),
            Ok(Plan::NotFound)
        );
    }
}
