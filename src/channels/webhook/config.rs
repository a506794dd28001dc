//! `ringgate.channels.webhook`: accounts and delivery settings, with errors naming the key.

use std::fmt;

use serde_json::Value;

use super::{
    DEFAULT_ACCOUNT_ID, DEFAULT_BACKOFF_MS, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF_MS,
    DEFAULT_MAX_INBOUND_BYTES, DEFAULT_QUEUE_SIZE, DEFAULT_REPLAY_WINDOW_MS, DEFAULT_SESSION_KEY,
    DEFAULT_TIMEOUT_MS, DEFAULT_WORKERS, MIN_SECRET_LEN,
};
use crate::config::{as_str, as_u64, fields, invalid, ConfigError};

/// A signing secret; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One webhook account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAccountConfig {
    pub account_id: String,
    pub name: Option<String>,
    pub enabled: bool,
    /// Where deliveries are POSTed; an account without one only receives.
    pub url: Option<String>,
    /// Signs deliveries and verifies inbound requests; required for both.
    pub secret: Option<Secret>,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles for each further one.
    pub backoff_ms: u64,
    /// Cap on any one retry delay.
    pub max_backoff_ms: u64,
    /// Per-attempt HTTP timeout (connect to end of response).
    pub timeout_ms: u64,
    /// Session inbound messages go to when they name none.
    pub session_key: String,
    /// How far an inbound timestamp may be from the gateway clock, either way.
    pub replay_window_ms: u64,
    /// Largest inbound body accepted (HTTP 413 past it).
    pub max_inbound_bytes: usize,
}

impl WebhookAccountConfig {
    pub fn new(account_id: impl Into<String>) -> Self {
        WebhookAccountConfig {
            account_id: account_id.into(),
            name: None,
            enabled: true,
            url: None,
            secret: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_ms: DEFAULT_BACKOFF_MS,
            max_backoff_ms: DEFAULT_MAX_BACKOFF_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            session_key: DEFAULT_SESSION_KEY.into(),
            replay_window_ms: DEFAULT_REPLAY_WINDOW_MS,
            max_inbound_bytes: DEFAULT_MAX_INBOUND_BYTES,
        }
    }

    /// Can send: has both a URL and a secret.
    pub fn configured(&self) -> bool {
        self.url.is_some() && self.secret.is_some()
    }
}

/// The whole `ringgate.channels.webhook` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub accounts: Vec<WebhookAccountConfig>,
    /// Deliveries waiting for a worker, across accounts, before sends are refused.
    pub queue_size: usize,
    /// Delivery threads.
    pub workers: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            accounts: Vec::new(),
            queue_size: DEFAULT_QUEUE_SIZE,
            workers: DEFAULT_WORKERS,
        }
    }
}

const ACCOUNT_KEYS: &[&str] = &[
    "name",
    "enabled",
    "url",
    "secret",
    "secretEnv",
    "maxAttempts",
    "backoffMs",
    "maxBackoffMs",
    "timeoutMs",
    "sessionKey",
    "replayWindowMs",
    "maxInboundBytes",
];
const CHANNEL_KEYS: &[&str] = &["accounts", "queueSize", "workers"];

/// Parses `ringgate.channels.webhook` (`path` is that key, used in error messages).
pub fn parse_config(v: &Value, path: &str) -> Result<WebhookConfig, ConfigError> {
    let allowed: Vec<&str> = ACCOUNT_KEYS.iter().chain(CHANNEL_KEYS).copied().collect();
    let mut config = WebhookConfig::default();
    let mut base = WebhookAccountConfig::new(DEFAULT_ACCOUNT_ID);
    let mut accounts = None;
    for (k, v, key) in fields(v, path, &allowed)? {
        match k {
            "accounts" => accounts = Some((v, key)),
            "queueSize" => config.queue_size = as_u64(&key, v, 1, 1_000_000)? as usize,
            "workers" => config.workers = as_u64(&key, v, 1, 64)? as usize,
            _ => apply_account_key(&mut base, k, v, &key)?,
        }
    }
    let named = match &accounts {
        Some((v, key)) => parse_accounts(v, key, &base)?,
        None => Vec::new(),
    };
    let default_named = named.iter().any(|a| a.account_id == DEFAULT_ACCOUNT_ID);
    if !default_named && (accounts.is_none() || base.url.is_some()) {
        check_account(&base, path)?;
        config.accounts.push(base);
    }
    config.accounts.extend(named);
    Ok(config)
}

/// `accounts: { <id>: { …account keys… } }`, each starting from the top-level values.
fn parse_accounts(
    v: &Value,
    path: &str,
    base: &WebhookAccountConfig,
) -> Result<Vec<WebhookAccountConfig>, ConfigError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "must be an object of account ids"))?;
    let mut out = Vec::new();
    for (id, spec) in obj {
        let key = format!("{path}.{id}");
        if !valid_account_id(id) {
            return Err(invalid(
                &key,
                "account ids are 1-64 letters, digits, '-' or '_'",
            ));
        }
        let mut acc = base.clone();
        acc.account_id = id.clone();
        for (k, v, key) in fields(spec, &key, ACCOUNT_KEYS)? {
            apply_account_key(&mut acc, k, v, &key)?;
        }
        check_account(&acc, &key)?;
        out.push(acc);
    }
    Ok(out)
}

fn apply_account_key(
    acc: &mut WebhookAccountConfig,
    k: &str,
    v: &Value,
    key: &str,
) -> Result<(), ConfigError> {
    match k {
        "name" => acc.name = Some(as_str(key, v)?.to_owned()),
        "enabled" => {
            acc.enabled = v
                .as_bool()
                .ok_or_else(|| invalid(key, "must be true or false"))?
        }
        "url" => acc.url = Some(parse_url(key, as_str(key, v)?)?),
        "secret" => acc.secret = Some(parse_secret(key, as_str(key, v)?)?),
        "secretEnv" => {
            let var = as_str(key, v)?;
            let s = std::env::var(var)
                .map_err(|_| invalid(key, format!("environment variable {var} is not set")))?;
            acc.secret = Some(parse_secret(key, &s)?);
        }
        "maxAttempts" => acc.max_attempts = as_u64(key, v, 1, 100)? as u32,
        "backoffMs" => acc.backoff_ms = as_u64(key, v, 1, 3_600_000)?,
        "maxBackoffMs" => acc.max_backoff_ms = as_u64(key, v, 1, 86_400_000)?,
        "timeoutMs" => acc.timeout_ms = as_u64(key, v, 100, 600_000)?,
        "sessionKey" => acc.session_key = parse_session_key(key, as_str(key, v)?)?,
        "replayWindowMs" => acc.replay_window_ms = as_u64(key, v, 1_000, 86_400_000)?,
        _ => acc.max_inbound_bytes = as_u64(key, v, 1024, 16 << 20)? as usize,
    }
    Ok(())
}

/// Checks that need several keys at once.
fn check_account(acc: &WebhookAccountConfig, path: &str) -> Result<(), ConfigError> {
    if acc.max_backoff_ms < acc.backoff_ms {
        return Err(invalid(
            &format!("{path}.maxBackoffMs"),
            format!("must be at least backoffMs ({})", acc.backoff_ms),
        ));
    }
    Ok(())
}

fn parse_url(key: &str, s: &str) -> Result<String, ConfigError> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| invalid(key, "must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(key, "must name a host"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(key, "must not contain whitespace"));
    }
    Ok(s.to_owned())
}

fn parse_secret(key: &str, s: &str) -> Result<Secret, ConfigError> {
    if s.len() < MIN_SECRET_LEN {
        return Err(invalid(
            key,
            format!("must be at least {MIN_SECRET_LEN} characters"),
        ));
    }
    Ok(Secret::new(s))
}

fn parse_session_key(key: &str, s: &str) -> Result<String, ConfigError> {
    if s.trim().is_empty() || s.len() > crate::chat::key::MAX_KEY_LEN {
        return Err(invalid(
            key,
            format!("must be 1-{} characters", crate::chat::key::MAX_KEY_LEN),
        ));
    }
    Ok(s.to_owned())
}

/// Account ids appear in URL paths (`/channels/webhook/<accountId>`), so keep them plain.
pub fn valid_account_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
