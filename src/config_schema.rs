//! The JSON schema of ringgate's own config file (`config.schema`), its UI hints (which keys
//! are secrets, which need a restart) and the path lookup of `config.schema.lookup`. A unit test
//! keeps it in step with the parser: the embedded defaults validate against it, and every key
//! it describes is accepted by [`crate::config::Config::apply_value`].

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::config::needs_restart;

fn int(min: u64, max: u64, doc: &str) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max, "description": doc})
}

fn object(props: Value, doc: &str) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": props, "description": doc})
}

fn strings(doc: &str) -> Value {
    json!({"type": "array", "items": {"type": "string"}, "description": doc})
}

fn agent_schema() -> Value {
    object(
        json!({
            "runtime": {"type": "string", "enum": ["echo", "openai", "openclaw-worker"], "description": "What answers this agent's turns."},
            "chunkDelayMs": int(0, 60_000, "echo: delay between reply chunks."),
            "chunkChars": int(1, 65_536, "echo: characters per reply chunk."),
            "baseUrl": {"type": "string", "description": "openai: base URL up to /v1."},
            "apiKey": {"type": "string", "description": "openai: API key (secret)."},
            "apiKeyEnv": {"type": "string", "description": "openai: environment variable holding the API key."},
            "model": {"type": "string", "description": "openai: model id."},
            "timeoutMs": int(1_000, 3_600_000, "openai: deadline of a whole turn."),
            "systemPrompt": {"type": "string", "description": "openai: system prompt sent first; openclaw-worker: added to the agent loop's own prompt."},
            "workspace": {"type": "string", "description": "openclaw-worker: absolute path of the agent's workspace (the tools' working directory; its AGENTS.md joins the prompt)."},
            "tools": strings("openclaw-worker: tools the worker may run (read, write, edit, apply_patch, exec, process); default the file tools, no exec."),
            "command": {"type": "string", "description": "openclaw-worker: path of the openclaw launcher (default: RINGGATE_OPENCLAW_BIN, the pinned client beside ringgate's build, else openclaw on PATH)."},
            "maxConcurrent": int(1, 64, "openclaw-worker: workers of this agent at once; further turns wait."),
            "maxMemoryMb": int(256, 65_536, "openclaw-worker: a worker resident above this is killed and its turn fails."),
            "startTimeoutMs": int(1_000, 600_000, "openclaw-worker: launch to first call on the worker channel."),
            "prewarm": int(0, 8, "openclaw-worker: worker processes started ahead of the next turn (default 1)."),
        }),
        "One agent and its runtime.",
    )
}

fn webhook_account_props() -> Value {
    json!({
        "name": {"type": "string", "description": "Display name."},
        "enabled": {"type": "boolean", "description": "Accept and deliver messages."},
        "url": {"type": "string", "description": "Where outbound messages are POSTed (http:// or https://)."},
        "secret": {"type": "string", "description": "HMAC-SHA256 key, 16+ characters (secret)."},
        "secretEnv": {"type": "string", "description": "Environment variable holding the secret."},
        "maxAttempts": int(1, 100, "Delivery attempts before a message is reported failed."),
        "backoffMs": int(1, 3_600_000, "First retry delay (doubles per attempt)."),
        "maxBackoffMs": int(1, 86_400_000, "Longest retry delay."),
        "timeoutMs": int(100, 600_000, "Deadline of one delivery attempt."),
        "sessionKey": {"type": "string", "description": "Session inbound messages go to."},
        "replayWindowMs": int(1_000, 86_400_000, "How far an inbound timestamp may be off."),
        "maxInboundBytes": int(1024, 16 << 20, "Largest inbound body."),
    })
}

fn webhook_schema() -> Value {
    let mut props = webhook_account_props();
    props["queueSize"] = int(1, 1_000_000, "Deliveries queued before send is refused.");
    props["workers"] = int(1, 64, "Delivery threads.");
    props["accounts"] = json!({"type": "object",
        "additionalProperties": object(webhook_account_props(), "One account; unset keys inherit the channel's."),
        "description": "Accounts by id (URL path /channels/webhook/<id>)."});
    object(props, "The built-in webhook channel.")
}

/// The schema of the whole config file.
pub fn schema() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = object(
            json!({
                "gateway": object(json!({
                    "port": int(0, 65_535, "TCP port (restart)."),
                    "bind": {"type": "string", "description": "loopback, lan, or an IP address (restart)."},
                    "auth": object(json!({
                        "mode": {"type": "string", "enum": ["token", "password", "none", "trusted-proxy"]},
                        "token": {"type": "string", "description": "Shared token (secret)."},
                        "password": {"type": "string", "description": "Shared password (secret); in trusted-proxy mode, what a local client connecting directly may use."},
                        "trustedProxy": object(json!({
                            "userHeader": {"type": "string", "description": "Header the proxy names the authenticated user in (required), e.g. x-forwarded-user."},
                            "requiredHeaders": strings("Headers every proxied request must carry (non-blank)."),
                            "allowUsers": strings("Users let in (exact match); empty = every user the proxy names."),
                            "allowLoopback": {"type": "boolean", "description": "Accept a proxy on loopback (it must be in gateway.trustedProxies too)."},
                        }), "trusted-proxy mode: an identity-aware proxy in gateway.trustedProxies authenticates users."),
                        "identityScopes": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                            "description": "Operator scopes granted per proxy user (trusted-proxy mode)."},
                    }), "Gateway authentication. Changing it closes connections that used the old secret (4001)."),
                    "controlUi": object(json!({
                        "enabled": {"type": "boolean", "description": "Serve the Control UI (dashboard) on the gateway port (restart)."},
                        "basePath": {"type": "string", "description": "URL path the Control UI is served under, e.g. \"/ui\" (restart)."},
                        "root": {"type": "string", "description": "Directory of the Control UI build (index.html, assets/); default: the installed OpenClaw package's (restart)."},
                        "allowedOrigins": strings("Browser origins allowed to connect."),
                    }), "Browser clients and the Control UI."),
                    "tls": object(json!({
                        "enabled": {"type": "boolean", "description": "Serve HTTPS and WSS (TLS 1.3) instead of HTTP and WS on the gateway port (restart)."},
                        "autoGenerate": {"type": "boolean", "description": "Generate a self-signed certificate and key when both files are missing (restart)."},
                        "certPath": {"type": "string", "description": "PEM certificate chain; default <stateDir>/gateway/tls/gateway-cert.pem. Replacing the file renews the certificate without a restart."},
                        "keyPath": {"type": "string", "description": "PEM private key; default <stateDir>/gateway/tls/gateway-key.pem."},
                        "caPath": {"type": "string", "description": "PEM CA bundle served after the certificate to complete its chain."},
                    }), "TLS on the gateway port (restart)."),
                    "trustedProxies": strings("Reverse proxies (IPs or CIDR blocks) whose X-Forwarded-For names the client; forwarded headers from any other peer are refused (403)."),
                    "allowRealIpFallback": {"type": "boolean", "description": "Read X-Real-IP from a trusted proxy when X-Forwarded-For names no client."},
                    "http": object(json!({
                        "endpoints": object(json!({
                            "chatCompletions": object(json!({
                                "enabled": {"type": "boolean", "description": "Serve POST /v1/chat/completions (and GET /v1/models)."},
                            }), "The OpenAI Chat Completions API."),
                            "responses": object(json!({
                                "enabled": {"type": "boolean", "description": "Serve POST /v1/responses (and GET /v1/models)."},
                            }), "The OpenResponses API."),
                        }), "Opt-in HTTP APIs on the gateway port."),
                    }), "HTTP APIs."),
                    "nodes": object(json!({
                        "pairing": object(json!({
                            "autoApproveLocal": {"type": "boolean", "description": "Approve pairing of loopback devices silently."},
                        }), "Device pairing."),
                    }), "Nodes."),
                }), "OpenClaw gateway keys."),
                "hooks": object(json!({
                    "enabled": {"type": "boolean", "description": "Serve inbound webhooks under hooks.path."},
                    "token": {"type": "string", "description": "The hook token, sent as Authorization: Bearer or X-OpenClaw-Token (secret; required when enabled)."},
                    "path": {"type": "string", "description": "Base path of the hook routes (default /hooks; never /)."},
                    "allowedAgentIds": strings("Agents hooks may target; omitted or \"*\" = all, [] = none."),
                    "defaultSessionKey": {"type": "string", "description": "Session for hook runs that name none (default: a fresh hook:<uuid>)."},
                    "allowRequestSessionKey": {"type": "boolean", "description": "Let a request's sessionKey (or a templated mapping key) choose the session."},
                    "allowedSessionKeyPrefixes": strings("Prefixes every hook session key must start with (case-insensitive)."),
                    "presets": strings("Built-in mappings: gmail."),
                    "mappings": {"type": "array", "description": "Routes for other sub-paths: match {path, source}, action agent|wake, messageTemplate/textTemplate with {{…}} expressions, forEach, sessionKey, sessionMode, name, agentId, channel, to, deliver, allowUnsafeExternalContent, timeoutSeconds, wakeMode, model, thinking. JavaScript transforms are refused.",
                        "items": {"type": "object"}},
                    "transformsDir": {"type": "string", "description": "Accepted for compatibility; ringgate runs no transform modules."},
                    "gmail": object(json!({
                        "allowUnsafeExternalContent": {"type": "boolean", "description": "Give the Gmail preset's messages to the agent without the untrusted-content boundary."},
                        "maxBytes": int(1, 1 << 30, "Per-message size the Gmail preset's body limit is computed from."),
                    }), "The Gmail preset (ringgate runs no Gmail watcher)."),
                    "internal": {"type": "object", "description": "Accepted for compatibility; ringgate runs no internal event hooks."},
                }), "Inbound webhooks (the original's hooks.*)."),
                "diagnostics": object(json!({
                    "enabled": {"type": "boolean", "description": "Record metrics (GET /api/diagnostics/prometheus, /metrics); off: the route answers with an empty body and the shards record nothing."},
                }), "Diagnostics (the original's key)."),
                "ringgate": object(json!({
                    "shards": int(0, 1024, "Shard threads; 0 = one per CPU (restart)."),
                    "driver": {"type": "string", "enum": ["auto", "io_uring", "epoll", "glommio"], "description": "io driver (restart): auto (monoio on io_uring, else epoll), io_uring, epoll or glommio."},
                    "stateDir": {"type": "string", "description": "State directory (restart)."},
                    "limits": object(json!({
                        "maxPreauthPayload": int(1024, 1 << 30, "Largest frame before hello-ok."),
                        "maxPayload": int(1024, 4 << 30, "Largest frame after hello-ok (new connections)."),
                        "maxBufferedBytes": int(4096, 64 << 30, "Unsent bytes one connection may hold."),
                        "shardBufferedBudget": int(4096, 1024 << 30, "Unsent bytes one shard may hold."),
                        "tickIntervalMs": int(100, 3_600_000, "tick event cadence."),
                        "healthIntervalMs": int(100, 3_600_000, "health event cadence."),
                        "handshakeTimeoutMs": int(100, 600_000, "Socket open to hello-ok."),
                        "pingIntervalMs": int(100, 3_600_000, "WebSocket ping cadence."),
                        "maxPreauthPerIp": int(1, 1_000_000, "Unauthenticated sockets per IP."),
                    }), "The bandwidth gate."),
                    "agents": {"type": "object", "additionalProperties": agent_schema(), "description": "Agents by id; the first is the default."},
                    "agentWorkers": int(1, 256, "Threads running provider calls (restart)."),
                    "skills": object(json!({
                        "dirs": strings("Extra directories of <skill>/SKILL.md."),
                        "disabled": strings("Skill names reported as disabled."),
                    }), "Skills."),
                    "cron": object(json!({
                        "enabled": {"type": "boolean", "description": "Run scheduled jobs."},
                    }), "The cron scheduler."),
                    "channels": object(json!({"webhook": webhook_schema()}), "Channels."),
                    "cluster": object(json!({
                        "nats": {"type": "string", "description": "NATS server URL(s), comma-separated, e.g. \"nats://127.0.0.1:4222\" (JetStream must be enabled; restart)."},
                        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "This host's name, unique in the cluster (default: the machine's host name; restart)."},
                        "subjectPrefix": {"type": "string", "description": "NATS subject prefix; clusters sharing one NATS need different ones (default \"ringgate\"; restart)."},
                        "replicas": int(1, 5, "JetStream replicas of the durable records: 1 for one NATS server, 3 for a NATS cluster (restart)."),
                        "connectTimeoutMs": int(100, 120_000, "How long the first connection to NATS may take before start-up fails (restart)."),
                        "deadAfterMs": int(1_000, 600_000, "A host silent this long is declared dead and its clients disconnected (restart)."),
                    }), "Run as one host of a cluster over NATS JetStream (absent: run alone)."),
                    "pricing": {"type": "object", "additionalProperties": object(json!({
                        "input": {"type": "number", "minimum": 0, "description": "USD per million input tokens."},
                        "output": {"type": "number", "minimum": 0, "description": "USD per million output tokens."},
                    }), "Prices of one provider/model."), "description": "Prices by provider/model, for usage.cost."},
                }), "ringgate's own settings."),
            }),
            "ringgate configuration (JSON5).",
        );
        s["$schema"] = json!("http://json-schema.org/draft-07/schema#");
        s["title"] = json!("ringgate config");
        with_defaults(&mut s, &crate::config::defaults_doc());
        s
    })
}

/// Gives every leaf key the embedded default as its schema `default`, so a form built from the
/// schema (the Control UI's Advanced page) shows what an unset key means. Maps keyed by the
/// user (agents, pricing) get none: their default entries are examples, not values of a key.
fn with_defaults(schema: &mut Value, defaults: &Value) {
    let (Some(props), Some(defaults)) = (
        schema.get_mut("properties").and_then(Value::as_object_mut),
        defaults.as_object(),
    ) else {
        return;
    };
    for (key, sub) in props.iter_mut() {
        match defaults.get(key) {
            Some(d @ Value::Object(_)) => with_defaults(sub, d),
            Some(d) => {
                sub["default"] = d.clone();
            }
            None => {}
        }
    }
}

/// Hints per dotted path: secrets are `sensitive`; restart-only keys say so.
pub fn ui_hints() -> Value {
    let mut h = Map::new();
    for p in [
        "gateway.auth.token",
        "gateway.auth.password",
        "ringgate.agents.*.apiKey",
        "ringgate.channels.webhook.secret",
        "hooks.token",
    ] {
        h.insert(p.into(), json!({"sensitive": true}));
    }
    for p in crate::config::RESTART_KEYS {
        h.insert((*p).into(), json!({"restartRequired": true}));
    }
    Value::Object(h)
}

/// The `config.schema` answer.
pub fn response() -> Value {
    json!({
        "schema": schema(),
        "uiHints": ui_hints(),
        "version": env!("CARGO_PKG_VERSION"),
        "generatedAt": "build",
    })
}

fn reload_kind(path: &str) -> &'static str {
    if needs_restart(path) {
        "restart"
    } else {
        "hot"
    }
}

fn child_schema<'a>(s: &'a Value, seg: &str) -> Option<&'a Value> {
    if let Some(c) = s.get("properties").and_then(|p| p.get(seg)) {
        return Some(c);
    }
    s.get("additionalProperties").filter(|a| a.is_object())
}

fn has_children(s: &Value) -> bool {
    s.get("properties").is_some() || s.get("additionalProperties").is_some_and(Value::is_object)
}

/// `config.schema.lookup {path}`: the node at a dotted path (`.` for the root), its children
/// and whether changing it needs a restart; `None` when the path is not in the schema.
pub fn lookup(path: &str) -> Option<Value> {
    let root = path.trim() == ".";
    let norm = path.trim().trim_matches('.');
    let parts: Vec<&str> = if root || norm.is_empty() {
        Vec::new()
    } else {
        norm.split('.').collect()
    };
    if !root && parts.is_empty() {
        return None;
    }
    let mut cur = schema();
    for seg in &parts {
        cur = child_schema(cur, seg)?;
    }
    let mut children = Vec::new();
    let prefix = |k: &str| {
        if parts.is_empty() {
            k.to_owned()
        } else {
            format!("{norm}.{k}")
        }
    };
    if let Some(props) = cur.get("properties").and_then(Value::as_object) {
        for (k, c) in props {
            let p = prefix(k);
            children.push(
                json!({"key": k, "path": p, "type": c["type"], "required": false,
                "hasChildren": has_children(c), "reloadKind": reload_kind(&p)}),
            );
        }
    }
    if let Some(c) = cur.get("additionalProperties").filter(|a| a.is_object()) {
        let p = prefix("*");
        children.push(
            json!({"key": "*", "path": p, "type": c["type"], "required": false,
            "hasChildren": has_children(c), "reloadKind": reload_kind(&p)}),
        );
    }
    let mut node = cur.clone();
    if let Some(m) = node.as_object_mut() {
        m.remove("properties");
        m.remove("additionalProperties");
    }
    Some(json!({
        "path": if root { "." } else { norm },
        "schema": node,
        "reloadKind": reload_kind(norm),
        "children": children,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{defaults_doc, Config};

    #[test]
    fn defaults_validate_and_parse() {
        let v = jsonschema::validator_for(schema()).unwrap();
        let d = defaults_doc();
        assert!(v.is_valid(&d), "{:?}", v.iter_errors(&d).next());
        let mut c = Config::default();
        c.apply_value(&d).unwrap();
        let def = Config::default();
        assert_eq!(
            (c.port, c.limits.clone(), c.agents.clone()),
            (def.port, def.limits, def.agents)
        );
        // Unknown keys fail both the schema and the parser.
        let bad = json!({"gateway": {"prot": 1}});
        assert!(!v.is_valid(&bad));
        assert!(Config::default().apply_value(&bad).is_err());
    }

    /// Unset keys show their real default in a schema-built form; user-keyed maps get none.
    #[test]
    fn leaves_carry_the_embedded_defaults() {
        let s = schema();
        let at = |p: &str| s.pointer(p).cloned().unwrap_or(Value::Null);
        let r = "/properties/ringgate/properties";
        assert_eq!(at(&format!("{r}/agentWorkers/default")), json!(4));
        assert_eq!(
            at(&format!("{r}/cron/properties/enabled/default")),
            json!(true)
        );
        assert_eq!(at(&format!("{r}/driver/default")), json!("auto"));
        assert_eq!(
            at(&format!("{r}/limits/properties/maxPayload/default")),
            json!(crate::config::Limits::default().max_payload)
        );
        assert_eq!(
            at(&format!("{r}/skills/properties/dirs/default")),
            json!([])
        );
        assert_eq!(at(&format!("{r}/agents/default")), Value::Null);
        assert_eq!(at(&format!("{r}/pricing/default")), Value::Null);
        assert_eq!(
            at("/properties/gateway/properties/port/default"),
            json!(crate::config::DEFAULT_PORT)
        );
    }

    /// Every leaf the schema describes is a key the parser accepts.
    #[test]
    fn every_schema_key_is_parsed() {
        fn sample(s: &Value) -> Value {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                return Value::Object(props.iter().map(|(k, c)| (k.clone(), sample(c))).collect());
            }
            if let Some(e) = s.get("enum").and_then(|e| e.get(0)) {
                return e.clone();
            }
            match s["type"].as_str() {
                Some("integer") => s["minimum"].clone(),
                Some("number") => json!(1.5),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!("x"),
            }
        }
        let mut doc = sample(schema());
        // Sample one agent and one price so those shapes are exercised too.
        doc["ringgate"]["agents"] = json!({"a": {"runtime": "openai", "model": "m", "baseUrl": "http://x/v1",
            "apiKey": "k", "apiKeyEnv": "E", "timeoutMs": 1000, "systemPrompt": "s"}});
        doc["ringgate"]["pricing"] = json!({"openai/m": {"input": 1.0, "output": 2.0}});
        doc["gateway"]["bind"] = json!("loopback");
        doc["ringgate"]["stateDir"] = json!("/tmp/x");
        let wh = &mut doc["ringgate"]["channels"]["webhook"];
        wh["url"] = json!("http://127.0.0.1:9/hook");
        wh["secret"] = json!("0123456789abcdef");
        // `secretEnv` names a variable that must exist: PATH always does (and is long enough).
        wh["secretEnv"] = json!("PATH");
        wh["maxBackoffMs"] = json!(1000);
        wh["accounts"] = json!({"ops": {"url": "https://example.com/x"}});
        let v = jsonschema::validator_for(schema()).unwrap();
        assert!(v.is_valid(&doc), "{:?}", v.iter_errors(&doc).next());
        Config::default().apply_value(&doc).unwrap();
    }

    #[test]
    fn lookup_walks_paths() {
        let r = lookup("gateway.auth").unwrap();
        assert_eq!(r["path"], "gateway.auth");
        let keys: Vec<&str> = r["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "mode",
                "token",
                "password",
                "trustedProxy",
                "identityScopes"
            ]
        );
        assert_eq!(lookup("gateway.port").unwrap()["reloadKind"], "restart");
        assert_eq!(
            lookup("ringgate.limits.maxPayload").unwrap()["reloadKind"],
            "hot"
        );
        assert_eq!(
            lookup("ringgate.agents.main.model").unwrap()["schema"]["type"],
            "string"
        );
        assert_eq!(lookup(".").unwrap()["path"], ".");
        assert!(lookup("gateway.nope").is_none());
        assert!(lookup("").is_none());
    }
}
