//! Configuration: embedded defaults ← JSON5 file ← environment ← flags, validated into a
//! [`Config`]. The file uses OpenClaw's keys where they overlap (`gateway.port`, `gateway.bind`,
//! `gateway.auth.*`, `gateway.controlUi.allowedOrigins`) plus a `ringgate` section. Unknown keys
//! and invalid values are errors naming the key (the binary exits 2 on them).

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use crate::auth::trusted_proxy::{self, TrustedProxyAuth};
use serde_json::Value;
use thiserror::Error;

use crate::auth::secret::AuthMode;

pub const DEFAULT_PORT: u16 = 18789;
pub const DEFAULT_MAX_PREAUTH_PAYLOAD: usize = 64 * 1024;
pub const DEFAULT_MAX_PAYLOAD: usize = 25 * 1024 * 1024;
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
pub const DEFAULT_SHARD_BUFFERED_BUDGET: usize = 1024 * 1024 * 1024;
pub const DEFAULT_TICK_INTERVAL_MS: u64 = 30_000;
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 60_000;
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 15_000;
pub const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;
pub const DEFAULT_MAX_PREAUTH_PER_IP: u32 = 32;
pub const MAX_PENDING_HANDSHAKE_FRAMES: usize = 15;

/// The database file in the state dir (sessions, transcripts, devices, approvals, cron).
pub const STORE_FILE: &str = "ringgate.sqlite";

/// The config file looked for in the state directory when no `--config` is given.
pub const DEFAULT_FILE_NAME: &str = "ringgate.json5";

/// A configuration problem; the message names the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read: fix the path or permissions.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid JSON5.
    #[error("config file {path} is not valid JSON5: {message}")]
    Parse { path: PathBuf, message: String },
    /// A key ringgate does not know: remove it or fix its spelling.
    #[error("unknown config key `{0}`")]
    UnknownKey(String),
    /// A key with a value of the wrong type or out of range.
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Which io driver each shard's runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// monoio on io_uring when the kernel allows it, else monoio on epoll (never glommio).
    Auto,
    /// monoio on io_uring.
    IoUring,
    /// monoio on epoll.
    Epoll,
    /// glommio (io_uring; start-up fails with the reason where it cannot run).
    Glommio,
}

/// The bandwidth gate. Every limit is per connection or per shard, and each trades memory for
/// tolerance of large or slow clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted before `hello-ok` (1009 "preauth payload too large" past it).
    /// Keeps unauthenticated sockets from making the server buffer much.
    pub max_preauth_payload: usize,
    /// Largest frame accepted after `hello-ok` (`policy.maxPayload`; 1009 past it).
    pub max_payload: usize,
    /// Unsent bytes a connection may hold (`policy.maxBufferedBytes`): past it droppable events
    /// are skipped and anything else closes it 1008 "slow consumer".
    pub max_buffered_bytes: usize,
    /// Unsent bytes one shard may hold across all its connections: past it new upgrades on
    /// that shard get HTTP 503 while existing connections carry on.
    pub shard_buffered_budget: usize,
    /// `tick` cadence (`policy.tickIntervalMs`); clients drop after 2× without traffic.
    pub tick_interval_ms: u64,
    /// `health` event cadence.
    pub health_interval_ms: u64,
    /// Time allowed from socket open to `hello-ok` (then close 1000).
    pub handshake_timeout_ms: u64,
    /// WebSocket ping cadence; a peer that has not ponged by the next ping is dropped.
    pub ping_interval_ms: u64,
    /// Unauthenticated sockets one IP may hold (HTTP 503 past it).
    pub max_preauth_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_preauth_payload: DEFAULT_MAX_PREAUTH_PAYLOAD,
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            shard_buffered_budget: DEFAULT_SHARD_BUFFERED_BUDGET,
            tick_interval_ms: DEFAULT_TICK_INTERVAL_MS,
            health_interval_ms: DEFAULT_HEALTH_INTERVAL_MS,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            ping_interval_ms: DEFAULT_PING_INTERVAL_MS,
            max_preauth_per_ip: DEFAULT_MAX_PREAUTH_PER_IP,
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub auth: AuthMode,
    pub allowed_origins: Vec<String>,
    /// The Control UI served on the gateway port (`gateway.controlUi.*`).
    pub control_ui: ControlUiConfig,
    /// HTTPS and WSS on the gateway port (`gateway.tls.*`).
    pub tls: crate::tls::TlsConfig,
    /// The OpenAI-compatible HTTP endpoints (`gateway.http.endpoints.*`).
    pub http: HttpEndpoints,
    /// Reverse proxies whose forwarded-client headers are believed (`gateway.trustedProxies`,
    /// `gateway.allowRealIpFallback`).
    pub proxies: crate::http::proxy::TrustedProxies,
    /// Inbound webhooks (`hooks.*`); `None` when off.
    pub hooks: Option<crate::hooks::HooksConfig>,
    /// Shards (threads); 0 = one per online CPU.
    pub shards: usize,
    pub driver: Driver,
    pub state_dir: PathBuf,
    pub limits: Limits,
    /// The file the config came from, if any.
    pub config_path: Option<PathBuf>,
    /// Silently approve pairing of local (loopback) devices (`gateway.nodes.pairing.autoApproveLocal`).
    pub auto_approve_local: bool,
    /// Agents and the runtime answering each (`ringgate.agents`); the first is the default.
    pub agents: Vec<crate::agent::config::AgentConfig>,
    /// Threads that run provider HTTP calls off the shards (`ringgate.agentWorkers`).
    pub agent_workers: usize,
    /// Skill directories and disabled skills (`ringgate.skills`).
    pub skills: SkillsConfig,
    /// Run scheduled cron jobs (`ringgate.cron.enabled`; jobs live in the store).
    pub cron_enabled: bool,
    /// Record and export metrics (`diagnostics.enabled`, default true).
    pub diagnostics_enabled: bool,
    /// Join a cluster of hosts over NATS (`ringgate.cluster`); `None` runs alone.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `ringgate.channels` as written (a reload rebuilds the channels only when it changed).
    pub channels: Value,
    /// `ringgate.channels.webhook`, parsed.
    pub webhook: Option<crate::channels::webhook::WebhookConfig>,
    /// Prices per million tokens by `provider/model` (`ringgate.pricing`), for `usage.cost`.
    pub pricing: Vec<(String, Price)>,
    /// Values set by flags and environment, which win over the file on every reload.
    pub overrides: std::sync::Arc<Overrides>,
    /// Revision hash of the file this config was built from (`hello-ok.snapshot.appliedConfigHash`,
    /// equal to `config.get`'s `appliedConfigHash`); set when the gateway starts and on reload.
    pub applied_hash: Option<String>,
}

/// `ringgate.skills`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkillsConfig {
    /// Extra directories holding `<skill>/SKILL.md` (besides `<stateDir>/skills`).
    pub dirs: Vec<PathBuf>,
    /// Skill names reported as disabled.
    pub disabled: Vec<String>,
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// What flags and environment variables set. Kept with the config so a reload of the file
/// (`config.*`, SIGHUP) rebuilds the same layering: defaults ← file ← environment ← flags.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    /// `--token`, `--password` or `--auth none`.
    pub auth: Option<AuthMode>,
    /// `RINGGATE_TOKEN` / `OPENCLAW_GATEWAY_TOKEN` (used when the mode is token).
    pub env_token: Option<String>,
    pub shards: Option<usize>,
    pub state_dir: Option<PathBuf>,
    pub driver: Option<Driver>,
    /// `--cluster-nats`: join a cluster through this NATS server.
    pub cluster_nats: Option<String>,
    /// `--cluster-name`: this host's name in the cluster.
    pub cluster_name: Option<String>,
    /// The token generated into `<stateDir>/gateway-token` when none is configured.
    pub fallback_token: Option<String>,
}

impl Overrides {
    /// Applies them over a config read from the file.
    pub fn apply(&self, c: &mut Config) {
        if let Some(t) = &self.env_token {
            if matches!(c.auth, AuthMode::Token(_)) {
                c.auth = AuthMode::Token(t.clone());
            }
        }
        if let Some(b) = self.bind {
            c.bind = b;
        }
        if let Some(p) = self.port {
            c.port = p;
        }
        if let Some(a) = &self.auth {
            c.auth = a.clone();
        }
        if let Some(n) = self.shards {
            c.shards = n;
        }
        if let Some(d) = &self.state_dir {
            c.state_dir = d.clone();
        }
        if let Some(d) = self.driver {
            c.driver = d;
        }
        if self.cluster_nats.is_some() || self.cluster_name.is_some() {
            let mut cl = c.cluster.take().unwrap_or_else(|| {
                crate::cluster::ClusterConfig::new(String::new(), String::new())
            });
            if let Some(n) = &self.cluster_nats {
                cl.nats = n.clone();
            }
            if let Some(n) = &self.cluster_name {
                cl.name = n.clone();
            }
            c.cluster = Some(cl);
        }
        if let (AuthMode::Token(t), Some(f)) = (&c.auth, &self.fallback_token) {
            if t.is_empty() {
                c.auth = AuthMode::Token(f.clone());
            }
        }
    }

    /// Config keys a flag or the environment pins (file changes to them have no effect).
    pub fn pinned(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.bind.is_some() {
            out.push("gateway.bind");
        }
        if self.port.is_some() {
            out.push("gateway.port");
        }
        if self.auth.is_some() || self.env_token.is_some() {
            out.push("gateway.auth");
        }
        if self.shards.is_some() {
            out.push("ringgate.shards");
        }
        if self.state_dir.is_some() {
            out.push("ringgate.stateDir");
        }
        if self.driver.is_some() {
            out.push("ringgate.driver");
        }
        out
    }
}

/// `gateway.http.endpoints.*`: the original's opt-in HTTP APIs (both off by default). Either
/// one also serves `GET /v1/models` and `/v1/models/{id}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpEndpoints {
    /// `POST /v1/chat/completions` (`chatCompletions.enabled`).
    pub chat_completions: bool,
    /// `POST /v1/responses` (`responses.enabled`).
    pub responses: bool,
}

impl HttpEndpoints {
    /// `/v1/models` answers when either API is on.
    pub fn models(&self) -> bool {
        self.chat_completions || self.responses
    }

    /// Reads `gateway.http`. The original's media keys beside `enabled` (`images`, `files`,
    /// `maxUrlParts`) are accepted so its config files load; ringgate takes no media input.
    fn parse(v: &Value, key: &str) -> Result<HttpEndpoints, ConfigError> {
        let mut out = HttpEndpoints::default();
        for (_, v, key) in fields(v, key, &["endpoints", "securityHeaders"])? {
            if key.ends_with("securityHeaders") {
                continue;
            }
            for (k, v, key) in fields(v, &key, &["chatCompletions", "responses"])? {
                for (f, v, key) in fields(
                    v,
                    &key,
                    &["enabled", "images", "files", "maxUrlParts", "maxBodyBytes"],
                )? {
                    if f != "enabled" {
                        continue;
                    }
                    let on = v
                        .as_bool()
                        .ok_or_else(|| invalid(&key, "must be true or false"))?;
                    if k == "chatCompletions" {
                        out.chat_completions = on;
                    } else {
                        out.responses = on;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `gateway.controlUi.*` (the original's keys) besides `allowedOrigins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlUiConfig {
    /// Serve the dashboard on the gateway port (`enabled`, default true).
    pub enabled: bool,
    /// Path prefix it is served under (`basePath`: "" or "/ui" …, normalised like the
    /// original: leading slash, no trailing slash).
    pub base_path: String,
    /// Directory holding its `index.html` and `assets/` (`root`); when unset, ringgate finds
    /// the UI of an installed OpenClaw package.
    pub root: Option<PathBuf>,
}

impl Default for ControlUiConfig {
    fn default() -> Self {
        ControlUiConfig {
            enabled: true,
            base_path: String::new(),
            root: None,
        }
    }
}

/// The original's `normalizeControlUiBasePath`: "" for none or "/", else "/x" without a
/// trailing slash.
pub fn normalize_base_path(raw: &str) -> String {
    let v = raw.trim();
    if v.is_empty() || v == "/" {
        return String::new();
    }
    let with_slash = if v.starts_with('/') {
        v.to_owned()
    } else {
        format!("/{v}")
    };
    with_slash
        .strip_suffix('/')
        .map(str::to_owned)
        .unwrap_or(with_slash)
}

/// Config keys read only at start: changing them in the file needs a restart.
pub const RESTART_KEYS: &[&str] = &[
    "gateway.port",
    "gateway.bind",
    "gateway.controlUi.enabled",
    "gateway.controlUi.basePath",
    "gateway.controlUi.root",
    "gateway.tls",
    "ringgate.shards",
    "ringgate.driver",
    "ringgate.stateDir",
    "ringgate.agentWorkers",
    "ringgate.cluster",
];

/// Does a change at `path` need a restart to take effect?
pub fn needs_restart(path: &str) -> bool {
    RESTART_KEYS.iter().any(|k| {
        path == *k || path.starts_with(&format!("{k}.")) || k.starts_with(&format!("{path}."))
    })
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            auth: AuthMode::Token(String::new()),
            allowed_origins: Vec::new(),
            control_ui: ControlUiConfig::default(),
            tls: crate::tls::TlsConfig::default(),
            http: HttpEndpoints::default(),
            proxies: Default::default(),
            hooks: None,
            shards: 0,
            driver: Driver::Auto,
            state_dir: default_state_dir(),
            limits: Limits::default(),
            config_path: None,
            auto_approve_local: true,
            agents: crate::agent::config::default_agents(),
            agent_workers: 4,
            skills: SkillsConfig::default(),
            cron_enabled: true,
            diagnostics_enabled: true,
            cluster: None,
            channels: Value::Object(Default::default()),
            webhook: None,
            pricing: Vec::new(),
            overrides: Default::default(),
            applied_hash: None,
        }
    }
}

/// Reads and parses a JSON5 config file.
pub fn read_doc(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    json5::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

/// `~/.ringgate`, or `./.ringgate` without a HOME.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".ringgate")
}

/// `loopback`, `lan`, `localhost` or an IP literal.
pub fn parse_bind(key: &str, s: &str) -> Result<IpAddr, ConfigError> {
    match s {
        "loopback" | "localhost" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "lan" | "all" => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        other => other.parse().map_err(|_| {
            invalid(
                key,
                format!("`{other}` is not loopback, lan or an IP address"),
            )
        }),
    }
}

pub fn parse_driver(key: &str, s: &str) -> Result<Driver, ConfigError> {
    match s {
        "auto" => Ok(Driver::Auto),
        "io_uring" | "iouring" | "uring" => Ok(Driver::IoUring),
        "epoll" | "legacy" => Ok(Driver::Epoll),
        "glommio" => Ok(Driver::Glommio),
        other => Err(invalid(
            key,
            format!("`{other}` is not auto, io_uring, epoll or glommio"),
        )),
    }
}

/// Walks an object, rejecting keys not in `allowed`.
pub(crate) fn fields<'a>(
    v: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a Value, String)>, ConfigError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "must be an object"))?;
    let mut out = Vec::new();
    for (k, val) in obj {
        let full = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        if !allowed.contains(&k.as_str()) {
            return Err(ConfigError::UnknownKey(full));
        }
        out.push((k.as_str(), val, full));
    }
    Ok(out)
}

pub(crate) fn as_u64(key: &str, v: &Value, min: u64, max: u64) -> Result<u64, ConfigError> {
    let n = v
        .as_u64()
        .ok_or_else(|| invalid(key, "must be a non-negative integer"))?;
    if n < min || n > max {
        return Err(invalid(key, format!("must be between {min} and {max}")));
    }
    Ok(n)
}

pub(crate) fn as_str<'a>(key: &str, v: &'a Value) -> Result<&'a str, ConfigError> {
    v.as_str().ok_or_else(|| invalid(key, "must be a string"))
}

pub(crate) fn as_bool(key: &str, v: &Value) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| invalid(key, "must be true or false"))
}

pub(crate) fn strings(key: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
    v.as_array()
        .ok_or_else(|| invalid(key, "must be an array of strings"))?
        .iter()
        .map(|s| as_str(key, s).map(str::to_owned))
        .collect()
}

/// `ringgate.pricing`: `{ "<provider>/<model>": { input: USD/Mtok, output: USD/Mtok } }`.
fn parse_pricing(v: &Value, path: &str) -> Result<Vec<(String, Price)>, ConfigError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "must be an object keyed by provider/model"))?;
    let mut out = Vec::new();
    for (model, p) in obj {
        let key = format!("{path}.{model}");
        let mut price = Price {
            input: 0.0,
            output: 0.0,
        };
        for (k, v, key) in fields(p, &key, &["input", "output"])? {
            let n = v.as_f64().filter(|n| *n >= 0.0).ok_or_else(|| {
                invalid(
                    &key,
                    "must be a non-negative number (USD per million tokens)",
                )
            })?;
            if k == "input" {
                price.input = n;
            } else {
                price.output = n;
            }
        }
        out.push((model.clone(), price));
    }
    Ok(out)
}

/// The embedded defaults as a config document (what `config.get` shows under the file's
/// values, and what the schema describes).
pub fn defaults_doc() -> Value {
    let l = Limits::default();
    serde_json::json!({
        "gateway": {
            "port": DEFAULT_PORT,
            "bind": "loopback",
            "auth": {"mode": "token"},
            "controlUi": {"enabled": true, "basePath": "", "allowedOrigins": []},
            "tls": {"enabled": false, "autoGenerate": true},
            "http": {"endpoints": {"chatCompletions": {"enabled": false}, "responses": {"enabled": false}}},
            "trustedProxies": [],
            "allowRealIpFallback": false,
            "nodes": {"pairing": {"autoApproveLocal": true}},
        },
        "ringgate": {
            "shards": 0,
            "driver": "auto",
            "limits": {
                "maxPreauthPayload": l.max_preauth_payload,
                "maxPayload": l.max_payload,
                "maxBufferedBytes": l.max_buffered_bytes,
                "shardBufferedBudget": l.shard_buffered_budget,
                "tickIntervalMs": l.tick_interval_ms,
                "healthIntervalMs": l.health_interval_ms,
                "handshakeTimeoutMs": l.handshake_timeout_ms,
                "pingIntervalMs": l.ping_interval_ms,
                "maxPreauthPerIp": l.max_preauth_per_ip,
            },
            "agents": {"main": {
                "runtime": "echo",
                "chunkDelayMs": crate::agent::config::DEFAULT_ECHO_DELAY_MS,
                "chunkChars": crate::agent::config::DEFAULT_ECHO_CHUNK,
            }},
            "agentWorkers": 4,
            "skills": {"dirs": [], "disabled": []},
            "cron": {"enabled": true},
            "channels": {},
            "pricing": {},
        }
    })
}

/// The effective document: the file's values over [`defaults_doc`] (a file that names agents
/// replaces the default agent rather than adding to it).
pub fn effective_doc(file: &Value) -> Value {
    let mut out = crate::config_doc::merge_patch(&defaults_doc(), file);
    if let Some(agents) = file.pointer("/ringgate/agents") {
        out["ringgate"]["agents"] = agents.clone();
    }
    out
}

impl Config {
    /// The agent answering `id`, if configured.
    pub fn agent(&self, id: &str) -> Option<&crate::agent::config::AgentConfig> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The default agent's id (the first configured).
    pub fn default_agent(&self) -> &str {
        &self.agents[0].id
    }

    /// Builds the config from a parsed file document: defaults ← document ← overrides.
    pub fn from_doc(
        doc: &Value,
        path: Option<PathBuf>,
        overrides: std::sync::Arc<Overrides>,
    ) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.apply_value(doc)?;
        overrides.apply(&mut c);
        c.config_path = path;
        c.overrides = overrides;
        Ok(c)
    }

    /// The state store's database file (sessions, transcripts, devices, approvals, cron).
    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join(STORE_FILE)
    }

    /// The file `config.*` reads and writes: the one given with `--config`, else
    /// `<stateDir>/ringgate.json5`.
    pub fn file_path(&self) -> PathBuf {
        self.config_path
            .clone()
            .unwrap_or_else(|| self.state_dir.join(DEFAULT_FILE_NAME))
    }

    /// Reads and applies a JSON5 file over `self`.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        self.apply_value(&read_doc(path)?)?;
        self.config_path = Some(path.into());
        Ok(())
    }

    /// Applies a parsed config document.
    pub fn apply_value(&mut self, root: &Value) -> Result<(), ConfigError> {
        let mut auth_mode: Option<String> = None;
        let mut token: Option<String> = None;
        let mut password: Option<String> = None;
        let mut trusted_proxy: Option<TrustedProxyAuth> = None;
        let mut identity_scopes = std::collections::HashMap::new();
        for (k, v, key) in fields(root, "", &["gateway", "ringgate", "diagnostics", "hooks"])? {
            match k {
                "hooks" => self.hooks = crate::hooks::config::parse(v, &key)?,
                "diagnostics" => {
                    for (_, v, key) in fields(v, &key, &["enabled"])? {
                        self.diagnostics_enabled = as_bool(&key, v)?;
                    }
                }
                "gateway" => {
                    for (k, v, key) in fields(
                        v,
                        &key,
                        &[
                            "port",
                            "bind",
                            "auth",
                            "controlUi",
                            "nodes",
                            "tls",
                            "http",
                            "trustedProxies",
                            "allowRealIpFallback",
                        ],
                    )? {
                        match k {
                            "trustedProxies" => {
                                let arr = v.as_array().ok_or_else(|| {
                                    invalid(&key, "must be an array of IP addresses or CIDR blocks")
                                })?;
                                self.proxies.nets = arr
                                    .iter()
                                    .map(|e| {
                                        let s = as_str(&key, e)?;
                                        crate::http::proxy::Cidr::parse(s).ok_or_else(|| {
                                            invalid(
                                                &key,
                                                format!("`{s}` is not an IP address or CIDR block"),
                                            )
                                        })
                                    })
                                    .collect::<Result<_, _>>()?;
                            }
                            "allowRealIpFallback" => {
                                self.proxies.real_ip_fallback = v
                                    .as_bool()
                                    .ok_or_else(|| invalid(&key, "must be true or false"))?
                            }
                            "http" => self.http = HttpEndpoints::parse(v, &key)?,
                            "tls" => self.tls = crate::tls::TlsConfig::parse(v, &key)?,
                            "port" => self.port = as_u64(&key, v, 0, 65535)? as u16,
                            "bind" => self.bind = parse_bind(&key, as_str(&key, v)?)?,
                            "auth" => {
                                let keys = [
                                    "mode",
                                    "token",
                                    "password",
                                    "trustedProxy",
                                    "identityScopes",
                                ];
                                for (k, v, key) in fields(v, &key, &keys)? {
                                    match k {
                                        "trustedProxy" => {
                                            trusted_proxy = Some(TrustedProxyAuth::parse(v, &key)?)
                                        }
                                        "identityScopes" => {
                                            identity_scopes =
                                                trusted_proxy::parse_identity_scopes(v, &key)?
                                        }
                                        _ => {
                                            let s = as_str(&key, v)?.to_owned();
                                            match k {
                                                "mode" => auth_mode = Some(s),
                                                "token" => token = Some(s),
                                                _ => password = Some(s),
                                            }
                                        }
                                    }
                                }
                            }
                            "nodes" => {
                                for (_, v, key) in fields(v, &key, &["pairing"])? {
                                    for (_, v, key) in fields(v, &key, &["autoApproveLocal"])? {
                                        self.auto_approve_local = v.as_bool().ok_or_else(|| {
                                            invalid(&key, "must be true or false")
                                        })?;
                                    }
                                }
                            }
                            _ => {
                                for (k, v, key) in fields(
                                    v,
                                    &key,
                                    &["allowedOrigins", "enabled", "basePath", "root"],
                                )? {
                                    match k {
                                        "enabled" => {
                                            self.control_ui.enabled =
                                                v.as_bool().ok_or_else(|| {
                                                    invalid(&key, "must be true or false")
                                                })?
                                        }
                                        "basePath" => {
                                            let raw = as_str(&key, v)?;
                                            if raw.len() > 256
                                                || raw.contains(['?', '#', '\\', '\0', ' '])
                                                || raw.split('/').any(|s| s == "..")
                                            {
                                                return Err(invalid(
                                                    &key,
                                                    "must be a URL path like \"/ui\"",
                                                ));
                                            }
                                            self.control_ui.base_path = normalize_base_path(raw);
                                        }
                                        "root" => {
                                            let raw = as_str(&key, v)?;
                                            self.control_ui.root = (!raw.trim().is_empty())
                                                .then(|| PathBuf::from(raw.trim()));
                                        }
                                        _ => {
                                            let arr = v.as_array().ok_or_else(|| {
                                                invalid(&key, "must be an array of strings")
                                            })?;
                                            self.allowed_origins = arr
                                                .iter()
                                                .map(|o| as_str(&key, o).map(str::to_owned))
                                                .collect::<Result<_, _>>()?;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                _ => self.apply_ringgate(v, &key)?,
            }
        }
        let mode = auth_mode.unwrap_or_else(|| {
            if password.is_some() && token.is_none() {
                "password"
            } else {
                self.auth.name()
            }
            .to_owned()
        });
        self.auth = match mode.as_str() {
            "token" => AuthMode::Token(token.unwrap_or_else(|| match &self.auth {
                AuthMode::Token(t) => t.clone(),
                _ => String::new(),
            })),
            "password" => AuthMode::Password(password.unwrap_or_default()),
            "none" => AuthMode::None,
            "trusted-proxy" => {
                let mut tp = trusted_proxy.ok_or_else(|| {
                    invalid(
                        "gateway.auth",
                        "gateway auth mode is trusted-proxy, but no trustedProxy config was provided (set gateway.auth.trustedProxy)",
                    )
                })?;
                if token.as_deref().is_some_and(|t| !t.trim().is_empty()) {
                    return Err(invalid(
                        "gateway.auth",
                        "gateway auth mode is trusted-proxy, but a shared token is also configured; remove gateway.auth.token / OPENCLAW_GATEWAY_TOKEN because trusted-proxy and token auth are mutually exclusive",
                    ));
                }
                if self.proxies.nets.is_empty() {
                    return Err(invalid(
                        "gateway.trustedProxies",
                        "gateway auth mode=trusted-proxy requires gateway.trustedProxies to be configured with at least one proxy IP",
                    ));
                }
                tp.password = password.filter(|p| !p.is_empty());
                tp.identity_scopes = identity_scopes;
                tp.local_addrs = crate::sysinfo::local_addresses();
                AuthMode::TrustedProxy(Box::new(tp))
            }
            other => {
                return Err(invalid(
                    "gateway.auth.mode",
                    format!("`{other}` is not token, password, none or trusted-proxy"),
                ))
            }
        };
        Ok(())
    }

    fn apply_ringgate(&mut self, v: &Value, path: &str) -> Result<(), ConfigError> {
        for (k, v, key) in fields(
            v,
            path,
            &[
                "shards",
                "driver",
                "stateDir",
                "limits",
                "agents",
                "agentWorkers",
                "skills",
                "cron",
                "channels",
                "pricing",
                "cluster",
            ],
        )? {
            match k {
                "cluster" => {
                    self.cluster = Some(crate::cluster::ClusterConfig::parse(v, &key)?);
                }
                "skills" => self.apply_skills(v, &key)?,
                "cron" => {
                    for (_, v, key) in fields(v, &key, &["enabled"])? {
                        self.cron_enabled = as_bool(&key, v)?;
                    }
                }
                "channels" => {
                    self.webhook = None;
                    for (_, v, key) in fields(v, &key, &["webhook"])? {
                        self.webhook = Some(crate::channels::webhook::parse_config(v, &key)?);
                    }
                    self.channels = v.clone();
                }
                "pricing" => self.pricing = parse_pricing(v, &key)?,
                "shards" => self.shards = as_u64(&key, v, 0, 1024)? as usize,
                "agents" => self.agents = crate::agent::config::parse_agents(v, &key)?,
                "agentWorkers" => self.agent_workers = as_u64(&key, v, 1, 256)? as usize,
                "driver" => self.driver = parse_driver(&key, as_str(&key, v)?)?,
                "stateDir" => self.state_dir = PathBuf::from(as_str(&key, v)?),
                _ => self.apply_limits(v, &key)?,
            }
        }
        Ok(())
    }

    fn apply_skills(&mut self, v: &Value, path: &str) -> Result<(), ConfigError> {
        for (k, v, key) in fields(v, path, &["dirs", "disabled"])? {
            let list = strings(&key, v)?;
            match k {
                "dirs" => self.skills.dirs = list.into_iter().map(PathBuf::from).collect(),
                _ => self.skills.disabled = list,
            }
        }
        Ok(())
    }

    fn apply_limits(&mut self, v: &Value, path: &str) -> Result<(), ConfigError> {
        const GIB: u64 = 1 << 30;
        let l = &mut self.limits;
        let allowed = [
            "maxPreauthPayload",
            "maxPayload",
            "maxBufferedBytes",
            "shardBufferedBudget",
            "tickIntervalMs",
            "healthIntervalMs",
            "handshakeTimeoutMs",
            "pingIntervalMs",
            "maxPreauthPerIp",
        ];
        for (k, v, key) in fields(v, path, &allowed)? {
            match k {
                "maxPreauthPayload" => l.max_preauth_payload = as_u64(&key, v, 1024, GIB)? as usize,
                "maxPayload" => l.max_payload = as_u64(&key, v, 1024, 4 * GIB)? as usize,
                "maxBufferedBytes" => {
                    l.max_buffered_bytes = as_u64(&key, v, 4096, 64 * GIB)? as usize
                }
                "shardBufferedBudget" => {
                    l.shard_buffered_budget = as_u64(&key, v, 4096, 1024 * GIB)? as usize
                }
                "tickIntervalMs" => l.tick_interval_ms = as_u64(&key, v, 100, 3_600_000)?,
                "healthIntervalMs" => l.health_interval_ms = as_u64(&key, v, 100, 3_600_000)?,
                "handshakeTimeoutMs" => l.handshake_timeout_ms = as_u64(&key, v, 100, 600_000)?,
                "pingIntervalMs" => l.ping_interval_ms = as_u64(&key, v, 100, 3_600_000)?,
                _ => l.max_preauth_per_ip = as_u64(&key, v, 1, 1_000_000)? as u32,
            }
        }
        Ok(())
    }

    /// Number of shards to start: the configured count, else one per online CPU.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn openclaw_keys_and_ringgate_section() {
        let mut c = Config::default();
        let doc: Value = json5::from_str(
            r#"{ // comments are fine
                gateway: { port: 1234, bind: "lan", auth: { mode: "token", token: "t" },
                           controlUi: { allowedOrigins: ["https://x"] } },
                ringgate: { shards: 2, driver: "epoll", limits: { maxPayload: 2048, tickIntervalMs: 1000 } },
            }"#,
        )
        .unwrap();
        c.apply_value(&doc).unwrap();
        assert_eq!(c.port, 1234);
        assert_eq!(c.bind.to_string(), "0.0.0.0");
        assert_eq!(c.auth, AuthMode::Token("t".into()));
        assert_eq!(c.allowed_origins, vec!["https://x"]);
        assert_eq!((c.shards, c.driver), (2, Driver::Epoll));
        assert_eq!(
            (c.limits.max_payload, c.limits.tick_interval_ms),
            (2048, 1000)
        );
    }

    #[test]
    fn unknown_and_invalid_keys_are_named() {
        let mut c = Config::default();
        let e = c.apply_value(&json!({"gateway": {"prot": 1}})).unwrap_err();
        assert_eq!(e.to_string(), "unknown config key `gateway.prot`");
        let e = c
            .apply_value(&json!({"ringgate": {"limits": {"maxPayload": "big"}}}))
            .unwrap_err();
        assert!(
            e.to_string().contains("`ringgate.limits.maxPayload`"),
            "{e}"
        );
        let e = c
            .apply_value(&json!({"gateway": {"auth": {"mode": "magic"}}}))
            .unwrap_err();
        assert!(e.to_string().contains("gateway.auth.mode"), "{e}");
        let e = c
            .apply_value(&json!({"gateway": {"port": 70000}}))
            .unwrap_err();
        assert!(e.to_string().contains("gateway.port"), "{e}");
    }

    #[test]
    fn password_only_file_selects_password_mode() {
        let mut c = Config::default();
        c.apply_value(&json!({"gateway": {"auth": {"password": "pw"}}}))
            .unwrap();
        assert_eq!(c.auth, AuthMode::Password("pw".into()));
    }
}
