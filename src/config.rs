//! Configuration: embedded defaults ← JSON5 file ← environment ← flags, validated into a
//! [`Config`]. The file uses OpenClaw's keys where they overlap (`gateway.port`, `gateway.bind`,
//! `gateway.auth.*`, `gateway.controlUi.allowedOrigins`) plus a `ringgate` section. Unknown keys
//! and invalid values are errors naming the key (the binary exits 2 on them).

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

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

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// Which io driver each shard's runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    IoUring,
    Epoll,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            auth: AuthMode::Token(String::new()),
            allowed_origins: Vec::new(),
            shards: 0,
            driver: Driver::Auto,
            state_dir: default_state_dir(),
            limits: Limits::default(),
            config_path: None,
            auto_approve_local: true,
            agents: crate::agent::config::default_agents(),
            agent_workers: 4,
        }
    }
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
        other => Err(invalid(
            key,
            format!("`{other}` is not auto, io_uring or epoll"),
        )),
    }
}

/// Walks an object, rejecting keys not in `allowed`.
fn fields<'a>(
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

fn as_u64(key: &str, v: &Value, min: u64, max: u64) -> Result<u64, ConfigError> {
    let n = v
        .as_u64()
        .ok_or_else(|| invalid(key, "must be a non-negative integer"))?;
    if n < min || n > max {
        return Err(invalid(key, format!("must be between {min} and {max}")));
    }
    Ok(n)
}

fn as_str<'a>(key: &str, v: &'a Value) -> Result<&'a str, ConfigError> {
    v.as_str().ok_or_else(|| invalid(key, "must be a string"))
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

    /// Reads and applies a JSON5 file over `self`.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let v: Value = json5::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        self.apply_value(&v)?;
        self.config_path = Some(path.into());
        Ok(())
    }

    /// Applies a parsed config document.
    pub fn apply_value(&mut self, root: &Value) -> Result<(), ConfigError> {
        let mut auth_mode: Option<String> = None;
        let mut token: Option<String> = None;
        let mut password: Option<String> = None;
        for (k, v, key) in fields(root, "", &["gateway", "ringgate"])? {
            match k {
                "gateway" => {
                    for (k, v, key) in
                        fields(v, &key, &["port", "bind", "auth", "controlUi", "nodes"])?
                    {
                        match k {
                            "port" => self.port = as_u64(&key, v, 0, 65535)? as u16,
                            "bind" => self.bind = parse_bind(&key, as_str(&key, v)?)?,
                            "auth" => {
                                for (k, v, key) in fields(v, &key, &["mode", "token", "password"])?
                                {
                                    let s = as_str(&key, v)?.to_owned();
                                    match k {
                                        "mode" => auth_mode = Some(s),
                                        "token" => token = Some(s),
                                        _ => password = Some(s),
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
                                for (_, v, key) in fields(v, &key, &["allowedOrigins"])? {
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
            other => {
                return Err(invalid(
                    "gateway.auth.mode",
                    format!(
                        "`{other}` is not token, password or none (trusted-proxy is not supported)"
                    ),
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
            ],
        )? {
            match k {
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
