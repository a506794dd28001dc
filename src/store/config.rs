//! `config.*` on the storage thread: the one place that reads and writes the config file, so
//! writes are serialized and checked against the file's current revision (`baseHash`). A
//! successful write is applied to the live config, which the storage thread then hands to every
//! shard over the bus ([`ConfigUpdate`]).

use std::sync::Arc;

use serde_json::{json, Value};

use crate::{
    agent::catalog,
    auth::secret::AuthMode,
    channels::hub::ChannelHub,
    config::{self, Config},
    config_doc::{self as doc, Snapshot},
    proto::frame::EventTemplate,
    state::now_ms,
};

/// Which write method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `config.set`: replace the file with `raw`.
    Set,
    /// `config.patch`: merge-patch the file with `raw`.
    Patch,
    /// `config.apply`: replace the file with `raw` and apply it.
    Apply,
}

impl WriteMode {
    fn name(self) -> &'static str {
        match self {
            WriteMode::Set => "config.set",
            WriteMode::Patch => "config.patch",
            WriteMode::Apply => "config.apply",
        }
    }
}

/// A config request for the storage thread.
#[derive(Debug, Clone)]
pub enum ConfigOp {
    Get,
    Write {
        mode: WriteMode,
        raw: String,
        base_hash: Option<String>,
        replace_paths: Vec<String>,
    },
    /// Re-read the file after an outside edit (SIGHUP).
    Reload,
}

/// A new live config for every shard.
#[derive(Debug)]
pub struct ConfigUpdate {
    pub config: Arc<Config>,
    /// The shared secret changed: connections that authenticated with the old one are closed.
    pub auth_changed: bool,
    /// `config.changed`.
    pub event: Arc<EventTemplate>,
    /// `chat.metadata.changed`, when the model catalog the chat page shows changed with it
    /// (the UI then re-reads `chat.metadata`).
    pub chat_metadata: Option<Arc<EventTemplate>>,
    /// New channels, when `ringgate.channels` changed.
    pub channels: Option<Arc<ChannelHub>>,
}

/// The storage thread's view of the config file and the live config.
pub struct ConfigKeeper {
    live: Arc<Config>,
    /// Revision of the file the live config was built from.
    applied_hash: Option<String>,
    /// The running channels (rebuilt when their section changes).
    hub: Arc<ChannelHub>,
}

/// The result of a write: the answer and, unless it changed nothing, the update to publish.
pub type Written = (Value, Option<ConfigUpdate>);

impl ConfigKeeper {
    pub fn new(live: Arc<Config>, hub: Arc<ChannelHub>) -> Self {
        let applied_hash = live
            .applied_hash
            .clone()
            .or_else(|| doc::read(&live.file_path()).hash);
        ConfigKeeper {
            live,
            applied_hash,
            hub,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = doc::read(&self.live.file_path());
        if s.valid() {
            if let Err(e) = self.build(&s.parsed) {
                s.issues.push(e);
            }
        }
        s
    }

    /// A config from a document, keeping the start-only settings of the running one (they
    /// are reported as needing a restart instead).
    fn build(&self, d: &Value) -> Result<Config, String> {
        let mut c = Config::from_doc(d, Some(self.live.file_path()), self.live.overrides.clone())
            .map_err(|e| e.to_string())?;
        let l = &self.live;
        c.bind = l.bind;
        c.port = l.port;
        c.shards = l.shards;
        c.driver = l.driver;
        c.state_dir = l.state_dir.clone();
        c.agent_workers = l.agent_workers;
        c.config_path = l.config_path.clone();
        // An empty shared secret would lock every shared-secret client out of a running
        // gateway (startup generates one; a reload cannot).
        match &c.auth {
            AuthMode::Token(t) if t.is_empty() => {
                return Err("gateway.auth.token is empty: with auth mode token the gateway would accept no shared-secret client; set a token (or mode \"none\")".into())
            }
            AuthMode::Password(p) if p.is_empty() => {
                return Err("gateway.auth.password is empty: set a password (or mode \"none\")".into())
            }
            _ => {}
        }
        Ok(c)
    }

    /// `config.get`: the redacted file snapshot, its revision and the effective config.
    pub fn get(&self) -> Value {
        let s = self.snapshot();
        let parsed = doc::redact(&s.parsed);
        let effective = doc::redact(&config::effective_doc(&s.parsed));
        json!({
            "path": s.path.display().to_string(),
            "includedPaths": [],
            "exists": s.exists,
            "raw": s.raw.as_deref().map(|r| doc::redact_raw(r, &s.parsed)),
            "parsed": parsed,
            "sourceConfig": parsed,
            "resolved": parsed,
            "valid": s.valid(),
            "runtimeConfig": effective,
            "config": effective,
            "hash": s.hash,
            "issues": s.issues.iter().map(|m| json!({"path": "", "message": m})).collect::<Vec<_>>(),
            "warnings": [],
            "legacyIssues": [],
            "configRevisionHash": s.hash,
            "appliedConfigHash": self.applied_hash,
            "pinnedPaths": self.live.overrides.pinned(),
        })
    }

    /// `config.set|patch|apply`. `Err` is the `INVALID_REQUEST` message.
    pub fn write(
        &mut self,
        mode: WriteMode,
        raw: &str,
        base_hash: Option<&str>,
        replace_paths: &[String],
    ) -> Result<Written, String> {
        let snap = self.snapshot();
        check_base_hash(&snap, base_hash)?;
        let submitted: Value =
            json5::from_str(raw).map_err(|e| format!("JSON5 parse failed: {e}"))?;
        let next = match mode {
            WriteMode::Patch => {
                if !snap.valid() {
                    return Err(format!(
                        "{}; fix the config file before patching",
                        snap.issues.join("; ")
                    ));
                }
                if !submitted.is_object() {
                    return Err("config.patch raw must be an object".into());
                }
                let guarded: Vec<String> = doc::destructive_array_paths(&snap.parsed, &submitted)
                    .into_iter()
                    .filter(|p| !replace_paths.contains(p))
                    .collect();
                if !guarded.is_empty() {
                    return Err(format!(
                        "config.patch would remove entries from array path(s): {}. Pass replacePaths with the exact path(s) when this is intentional, or use config.apply for full-config replacement.",
                        guarded.join(", ")
                    ));
                }
                doc::merge_patch(&snap.parsed, &submitted)
            }
            _ => {
                if !submitted.is_object() {
                    return Err(format!("{} raw must be an object", mode.name()));
                }
                submitted
            }
        };
        let next = doc::restore_redacted(&next, &snap.parsed)?;
        if mode == WriteMode::Set {
            reject_dropped_agents(&snap.parsed, &next)?;
        }
        let changed = doc::changed_paths(&snap.parsed, &next);
        if mode == WriteMode::Patch && changed.is_empty() {
            return Ok((
                json!({"ok": true, "noop": true, "changedPaths": [],
                       "path": snap.path.display().to_string(), "config": doc::redact(&next)}),
                None,
            ));
        }
        let config = self
            .build(&next)
            .map_err(|e| format!("invalid config: {e}"))?;
        let text = doc::render(&next);
        doc::write_atomic(&snap.path, &text)
            .map_err(|e| format!("cannot write {}: {e}", snap.path.display()))?;
        let hash = doc::hash(&text);
        tracing::info!(method = mode.name(), changed = ?changed, path = %snap.path.display(), "config written");
        let update = self.install(config, &snap.path, &hash);
        let restart: Vec<&String> = changed
            .iter()
            .filter(|p| config::needs_restart(p))
            .collect();
        let mut answer = json!({
            "ok": true,
            "path": snap.path.display().to_string(),
            "hash": hash,
            "config": doc::redact(&next),
            "requiresRestart": !restart.is_empty(),
            "restartPaths": restart,
            "pinnedPaths": self.live.overrides.pinned(),
        });
        if mode == WriteMode::Patch {
            answer["changedPaths"] = json!(changed);
        }
        Ok((answer, Some(update)))
    }

    /// Re-reads the file after an outside edit; an invalid file leaves the live config as is.
    pub fn reload(&mut self) -> Result<Option<ConfigUpdate>, String> {
        let snap = self.snapshot();
        if !snap.exists && self.applied_hash.is_some() {
            // Deleted or mid-save: not a request to fall back to the defaults.
            return Err(format!("{} is missing", snap.path.display()));
        }
        if !snap.valid() {
            return Err(snap.issues.join("; "));
        }
        if snap.hash == self.applied_hash {
            return Ok(None);
        }
        let config = self.build(&snap.parsed)?;
        let hash = snap.hash.clone().unwrap_or_default();
        Ok(Some(self.install(config, &snap.path, &hash)))
    }

    fn install(&mut self, mut config: Config, path: &std::path::Path, hash: &str) -> ConfigUpdate {
        config.applied_hash = Some(hash.to_owned());
        // Who a trusted proxy may vouch for changes with the proxies too.
        let auth_changed = config.auth != self.live.auth
            || (matches!(config.auth, crate::auth::secret::AuthMode::TrustedProxy(_))
                && config.proxies != self.live.proxies);
        let chat_metadata = (catalog::chat_metadata(&config) != catalog::chat_metadata(&self.live))
            .then(|| {
                Arc::new(EventTemplate::new(
                    "chat.metadata.changed",
                    &json!({}),
                    None,
                ))
            });
        let channels = match self.hub.rebuild(&config) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the reconfigured channels; the old ones keep running");
                None
            }
        };
        if let Some(h) = &channels {
            self.hub = h.clone();
        }
        let config = Arc::new(config);
        self.live = config.clone();
        self.applied_hash = Some(hash.to_owned());
        let event = EventTemplate::new(
            "config.changed",
            &json!({"path": path.display().to_string(), "hash": hash, "ts": now_ms()}),
            None,
        );
        ConfigUpdate {
            config,
            auth_changed,
            event: Arc::new(event),
            chat_metadata,
            channels,
        }
    }
}

fn check_base_hash(snap: &Snapshot, base_hash: Option<&str>) -> Result<(), String> {
    if !snap.exists {
        // Creating the file: no hash needed; one read before must be the missing file's.
        return match base_hash.map(str::trim).filter(|h| !h.is_empty()) {
            Some(h) if h != doc::missing_hash() => {
                Err("config changed since last load; re-run config.get and retry".into())
            }
            _ => Ok(()),
        };
    }
    let Some(current) = &snap.hash else {
        return Err("config base hash unavailable; re-run config.get and retry".into());
    };
    match base_hash.map(str::trim).filter(|h| !h.is_empty()) {
        None => Err("config base hash required; re-run config.get and retry".into()),
        Some(h) if h != current => {
            Err("config changed since last load; re-run config.get and retry".into())
        }
        Some(_) => Ok(()),
    }
}

/// `config.set` may not silently drop agents (the original's guard).
fn reject_dropped_agents(prev: &Value, next: &Value) -> Result<(), String> {
    let ids = |v: &Value| -> Vec<String> {
        v.pointer("/ringgate/agents")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let kept = ids(next);
    let mut dropped: Vec<String> = ids(prev)
        .into_iter()
        .filter(|a| !kept.contains(a))
        .collect();
    if dropped.is_empty() {
        return Ok(());
    }
    dropped.sort();
    Err(format!(
        "config.set would remove existing agent entries: {}. Use config.apply to replace the agent list intentionally.",
        dropped.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeper(dir: &std::path::Path, text: Option<&str>) -> ConfigKeeper {
        let path = dir.join("ringgate.json5");
        if let Some(t) = text {
            doc::write_atomic(&path, t).unwrap();
        }
        // As at startup: a generated token stands in when the file names none.
        let overrides = crate::config::Overrides {
            fallback_token: Some("generated".into()),
            ..Default::default()
        };
        let c = Config {
            config_path: Some(path),
            state_dir: dir.into(),
            overrides: Arc::new(overrides),
            ..Config::default()
        };
        ConfigKeeper::new(Arc::new(c), ChannelHub::empty())
    }

    fn tmp() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rg-keeper-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn base_hash_is_required_and_checked() {
        let d = tmp();
        let mut k = keeper(&d, Some("{gateway: {auth: {token: \"old\"}}}"));
        let got = k.get();
        assert_eq!(got["exists"], true);
        assert_eq!(got["parsed"]["gateway"]["auth"]["token"], doc::REDACTED);
        assert!(!got["raw"].as_str().unwrap().contains("old"));
        let patch = r#"{gateway: {auth: {token: "new"}}}"#;
        let e = k.write(WriteMode::Patch, patch, None, &[]).unwrap_err();
        assert_eq!(e, "config base hash required; re-run config.get and retry");
        let e = k
            .write(WriteMode::Patch, patch, Some("sha256:nope"), &[])
            .unwrap_err();
        assert_eq!(
            e,
            "config changed since last load; re-run config.get and retry"
        );
        let h = got["hash"].as_str().unwrap();
        let (ans, upd) = k.write(WriteMode::Patch, patch, Some(h), &[]).unwrap();
        assert_eq!(ans["changedPaths"], json!(["gateway.auth.token"]));
        assert_eq!(ans["requiresRestart"], false);
        let upd = upd.unwrap();
        assert!(upd.auth_changed);
        assert_eq!(
            upd.config.auth,
            crate::auth::secret::AuthMode::Token("new".into())
        );
        // The old hash is stale now.
        let e = k.write(WriteMode::Patch, "{}", Some(h), &[]).unwrap_err();
        assert!(e.starts_with("config changed since last load"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn invalid_and_restart_and_noop() {
        let d = tmp();
        let mut k = keeper(&d, None);
        // No file yet: no hash needed. An invalid document is refused and nothing is written.
        let e = k
            .write(WriteMode::Set, "{gateway: {prot: 1}}", None, &[])
            .unwrap_err();
        assert_eq!(e, "invalid config: unknown config key `gateway.prot`");
        assert!(!d.join("ringgate.json5").exists());
        let (ans, upd) = k
            .write(
                WriteMode::Set,
                "{gateway: {port: 1234}, ringgate: {limits: {maxPayload: 4096}}}",
                None,
                &[],
            )
            .unwrap();
        assert_eq!(ans["requiresRestart"], true);
        assert_eq!(ans["restartPaths"], json!(["gateway.port"]));
        let c = upd.unwrap().config;
        // The port is start-only: the live config keeps the running one; limits apply.
        assert_eq!(c.port, Config::default().port);
        assert_eq!(c.limits.max_payload, 4096);
        let h = k.get()["hash"].as_str().unwrap().to_owned();
        let (ans, upd) = k
            .write(WriteMode::Patch, "{gateway: {port: 1234}}", Some(&h), &[])
            .unwrap();
        assert_eq!(ans["noop"], true);
        assert!(upd.is_none());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_write_may_not_empty_the_shared_secret() {
        // Started with the token from the file (nothing generated to fall back on).
        let d = tmp();
        let path = d.join("ringgate.json5");
        doc::write_atomic(&path, "{gateway: {auth: {token: 'from-file'}}}").unwrap();
        let c = Config::from_doc(
            &json!({"gateway": {"auth": {"token": "from-file"}}}),
            Some(path),
            Default::default(),
        )
        .unwrap();
        let mut k = ConfigKeeper::new(Arc::new(c), ChannelHub::empty());
        let h = k.get()["hash"].as_str().unwrap().to_owned();
        let e = k
            .write(
                WriteMode::Set,
                "{gateway: {auth: {mode: 'token'}}}",
                Some(&h),
                &[],
            )
            .unwrap_err();
        assert!(
            e.starts_with("invalid config: gateway.auth.token is empty"),
            "{e}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn patch_guards_arrays_and_set_guards_agents() {
        let d = tmp();
        let mut k = keeper(
            &d,
            Some(
                r#"{gateway: {controlUi: {allowedOrigins: ["https://a", "https://b"]}}, ringgate: {agents: {main: {}, other: {}}}}"#,
            ),
        );
        let h = k.get()["hash"].as_str().unwrap().to_owned();
        let p = r#"{gateway: {controlUi: {allowedOrigins: ["https://a"]}}}"#;
        let e = k.write(WriteMode::Patch, p, Some(&h), &[]).unwrap_err();
        assert!(e.starts_with("config.patch would remove entries from array path(s): gateway.controlUi.allowedOrigins."), "{e}");
        let e = k
            .write(
                WriteMode::Set,
                r#"{ringgate: {agents: {main: {}}}}"#,
                Some(&h),
                &[],
            )
            .unwrap_err();
        assert!(
            e.starts_with("config.set would remove existing agent entries: other."),
            "{e}"
        );
        let (_, upd) = k
            .write(
                WriteMode::Patch,
                p,
                Some(&h),
                &["gateway.controlUi.allowedOrigins".into()],
            )
            .unwrap();
        assert_eq!(upd.unwrap().config.allowed_origins, vec!["https://a"]);
        std::fs::remove_dir_all(d).unwrap();
    }
}
