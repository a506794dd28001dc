//! `hooks.*`: the original's inbound webhook config (`docs/automation/cron-jobs/webhooks.md`),
//! parsed and checked the way its `resolveHooksConfig` does, so a file the original refuses is
//! refused here with the same message.

use serde_json::Value;

use super::template;
use crate::config::{as_bool, as_str, as_u64, fields, invalid, strings, ConfigError};

/// The original's body limit for hook requests (`DEFAULT_HOOKS_MAX_BODY_BYTES`).
pub const MAX_BODY: usize = 256 * 1024;
/// The Gmail preset's body limit ceiling (`GMAIL_HOOK_MAX_BODY_BYTES_CEILING`).
const GMAIL_MAX_BODY_CEILING: usize = 32 * 1024 * 1024;
/// `hooks.gmail.maxBytes` when unset (the original's Gmail watcher default).
const GMAIL_DEFAULT_MAX_BYTES: u64 = 20_000;

/// `hooks.mappings[]` (and the presets): which requests it takes and how it renders them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    pub id: String,
    /// `match.path` without leading or trailing slashes (`gmail` for `/hooks/gmail`).
    pub match_path: Option<String>,
    /// `match.source`: must equal the payload's `source`.
    pub match_source: Option<String>,
    /// `action: "wake"` (queue a system event), else an agent run.
    pub wake: bool,
    /// `wakeMode: "next-heartbeat"` (else `now`).
    pub next_heartbeat: bool,
    /// `forEach`: a top-level payload array; one action per item (at most 200).
    pub for_each: Option<String>,
    pub name: Option<String>,
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
    pub session_mode: Option<String>,
    pub message_template: Option<String>,
    pub text_template: Option<String>,
    pub deliver: Option<bool>,
    pub allow_unsafe_external_content: Option<bool>,
    pub channel: Option<String>,
    pub to: Option<String>,
    pub model: Option<String>,
    pub thinking: Option<String>,
    pub timeout_seconds: Option<u64>,
    /// The largest body this mapping's path takes (the Gmail preset takes more).
    pub max_body: Option<usize>,
}

/// `hooks.*` once enabled and checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HooksConfig {
    /// `/hooks` by default; a leading `/`, no trailing one, never `/` itself.
    pub base_path: String,
    pub token: String,
    /// Custom mappings, then the presets' (in `presets` order).
    pub mappings: Vec<Mapping>,
    /// `allowedAgentIds`, lowercased; `None` = every agent (omitted, or containing `*`).
    pub allowed_agent_ids: Option<Vec<String>>,
    pub default_session_key: Option<String>,
    pub allow_request_session_key: bool,
    /// `allowedSessionKeyPrefixes`, lowercased; `None` = no restriction.
    pub allowed_prefixes: Option<Vec<String>>,
}

impl HooksConfig {
    /// The body limit for one sub-path: the default, or more for a mapping that asks for it.
    pub fn max_body(&self, sub_path: &str) -> usize {
        let sub = sub_path.trim_matches('/');
        self.mappings
            .iter()
            .filter(|m| m.match_path.as_deref() == Some(sub))
            .filter_map(|m| m.max_body)
            .fold(MAX_BODY, usize::max)
    }

    /// Does `key` start with one of the allowed prefixes (case-insensitive)?
    pub fn prefix_allows(&self, key: &str) -> bool {
        match &self.allowed_prefixes {
            None => true,
            Some(p) => {
                let k = key.trim().to_lowercase();
                !k.is_empty() && p.iter().any(|p| k.starts_with(p.as_str()))
            }
        }
    }

    /// Is the request path one of these hooks' (`<base>` or under `<base>/`)?
    pub fn owns(&self, path: &str) -> bool {
        path == self.base_path
            || path
                .strip_prefix(self.base_path.as_str())
                .is_some_and(|r| r.starts_with('/'))
    }
}

fn trimmed(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The Gmail preset (the original's `hookPresetMappings.gmail`).
fn gmail_preset(allow_unsafe: Option<bool>, max_bytes: u64) -> Mapping {
    let per_message = (max_bytes as usize).saturating_mul(3).saturating_add(8192);
    Mapping {
        id: "gmail".into(),
        match_path: Some("gmail".into()),
        name: Some("Gmail".into()),
        for_each: Some("messages".into()),
        session_key: Some("hook:gmail:{{messages[0].id}}".into()),
        message_template: Some(
            "New email from {{messages[0].from}}\nSubject: {{messages[0].subject}}\n{{messages[0].snippet}}\n{{messages[0].body}}"
                .into(),
        ),
        allow_unsafe_external_content: allow_unsafe,
        max_body: Some(per_message.saturating_mul(100).min(GMAIL_MAX_BODY_CEILING)),
        ..Default::default()
    }
}

fn opt_str(key: &str, v: &Value) -> Result<Option<String>, ConfigError> {
    Ok(Some(as_str(key, v)?.to_owned()))
}

fn parse_mapping(v: &Value, key: &str, index: usize) -> Result<Mapping, ConfigError> {
    let allowed = [
        "id",
        "match",
        "action",
        "wakeMode",
        "name",
        "agentId",
        "sessionKey",
        "sessionMode",
        "messageTemplate",
        "textTemplate",
        "forEach",
        "deliver",
        "allowUnsafeExternalContent",
        "channel",
        "to",
        "model",
        "thinking",
        "timeoutSeconds",
        "transform",
    ];
    let mut m = Mapping::default();
    let mut id = None;
    for (k, v, key) in fields(v, key, &allowed)? {
        match k {
            "id" => id = trimmed(Some(as_str(&key, v)?)),
            "match" => {
                for (k, v, key) in fields(v, &key, &["path", "source"])? {
                    let s = as_str(&key, v)?;
                    if k == "path" {
                        m.match_path = trimmed(Some(s.trim().trim_matches('/')));
                    } else {
                        m.match_source = trimmed(Some(s));
                    }
                }
            }
            "action" => {
                m.wake = match as_str(&key, v)? {
                    "agent" => false,
                    "wake" => true,
                    _ => return Err(invalid(&key, "must be \"agent\" or \"wake\"")),
                }
            }
            "wakeMode" => {
                m.next_heartbeat = match as_str(&key, v)? {
                    "now" => false,
                    "next-heartbeat" => true,
                    _ => return Err(invalid(&key, "must be \"now\" or \"next-heartbeat\"")),
                }
            }
            "sessionMode" => {
                let s = as_str(&key, v)?;
                if s != "isolated" && s != "persistent" {
                    return Err(invalid(&key, "must be \"isolated\" or \"persistent\""));
                }
                m.session_mode = Some(s.to_owned());
            }
            "forEach" => {
                let s = as_str(&key, v)?.trim();
                if s.contains(['.', '[', ']']) || template::BLOCKED_KEYS.contains(&s) {
                    return Err(invalid(
                        &key,
                        format!("Hook mapping forEach must be a top-level payload key: {s}"),
                    ));
                }
                m.for_each = trimmed(Some(s));
            }
            "deliver" => m.deliver = Some(as_bool(&key, v)?),
            "allowUnsafeExternalContent" => {
                m.allow_unsafe_external_content = Some(as_bool(&key, v)?)
            }
            "timeoutSeconds" => m.timeout_seconds = Some(as_u64(&key, v, 1, 86_400)?),
            "transform" => {
                return Err(invalid(
                    &key,
                    "JavaScript transform modules are not run by ringgate; use templates (messageTemplate, textTemplate, sessionKey)",
                ))
            }
            "name" => m.name = opt_str(&key, v)?,
            "agentId" => m.agent_id = trimmed(Some(as_str(&key, v)?)),
            "sessionKey" => m.session_key = opt_str(&key, v)?,
            "messageTemplate" => m.message_template = opt_str(&key, v)?,
            "textTemplate" => m.text_template = opt_str(&key, v)?,
            "channel" => m.channel = opt_str(&key, v)?,
            "to" => m.to = opt_str(&key, v)?,
            "model" => m.model = opt_str(&key, v)?,
            _ => m.thinking = opt_str(&key, v)?,
        }
    }
    m.id = id.unwrap_or_else(|| format!("mapping-{}", index + 1));
    Ok(m)
}

/// A mapping's `sessionKey` holds `{{…}}` expressions.
fn templated(key: Option<&str>) -> bool {
    key.is_some_and(template::has_expressions)
}

/// Parses `hooks`; `Ok(None)` when hooks are off (`enabled` is not `true`).
pub fn parse(v: &Value, path: &str) -> Result<Option<HooksConfig>, ConfigError> {
    let allowed = [
        "enabled",
        "token",
        "path",
        "maxBodyBytes",
        "allowedAgentIds",
        "defaultSessionKey",
        "allowRequestSessionKey",
        "allowedSessionKeyPrefixes",
        "presets",
        "mappings",
        "transformsDir",
        "gmail",
        "internal",
    ];
    let mut enabled = false;
    let mut token = None;
    let mut raw_path = None;
    let mut c = HooksConfig::default();
    let mut presets = Vec::new();
    let mut gmail_unsafe = None;
    let mut gmail_max = GMAIL_DEFAULT_MAX_BYTES;
    for (k, v, key) in fields(v, path, &allowed)? {
        match k {
            "enabled" => enabled = as_bool(&key, v)?,
            "token" => token = trimmed(Some(as_str(&key, v)?)),
            "path" => raw_path = trimmed(Some(as_str(&key, v)?)),
            // The original has no such key; its limit is fixed (256 KiB).
            "maxBodyBytes" => return Err(crate::config::ConfigError::UnknownKey(key)),
            "allowedAgentIds" => {
                let ids: Vec<String> = strings(&key, v)?
                    .iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect();
                c.allowed_agent_ids = (!ids.iter().any(|s| s == "*")).then_some(ids);
            }
            "defaultSessionKey" => c.default_session_key = trimmed(Some(as_str(&key, v)?)),
            "allowRequestSessionKey" => c.allow_request_session_key = as_bool(&key, v)?,
            "allowedSessionKeyPrefixes" => {
                let mut p: Vec<String> = Vec::new();
                for s in strings(&key, v)? {
                    let s = s.trim().to_lowercase();
                    if !s.is_empty() && !p.contains(&s) {
                        p.push(s);
                    }
                }
                c.allowed_prefixes = (!p.is_empty()).then_some(p);
            }
            "presets" => presets = strings(&key, v)?,
            "mappings" => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| invalid(&key, "must be an array of mappings"))?;
                for (i, m) in arr.iter().enumerate() {
                    c.mappings
                        .push(parse_mapping(m, &format!("{key}[{i}]"), i)?);
                }
            }
            "transformsDir" => {
                as_str(&key, v)?;
            }
            "gmail" => {
                let obj = v
                    .as_object()
                    .ok_or_else(|| invalid(&key, "must be an object"))?;
                if let Some(b) = obj.get("allowUnsafeExternalContent") {
                    gmail_unsafe = Some(as_bool(&format!("{key}.allowUnsafeExternalContent"), b)?);
                }
                if let Some(n) = obj.get("maxBytes") {
                    gmail_max = as_u64(&format!("{key}.maxBytes"), n, 1, 1 << 30)?;
                }
            }
            // Internal (event) hooks are a separate system the original runs in-process.
            _ => {}
        }
    }
    if !enabled {
        return Ok(None);
    }
    for p in &presets {
        if p == "gmail" {
            c.mappings.push(gmail_preset(gmail_unsafe, gmail_max));
        }
    }
    c.token = token.ok_or_else(|| invalid(path, "hooks.enabled requires hooks.token"))?;
    let raw = raw_path.unwrap_or_else(|| "/hooks".into());
    let with_slash = if raw.starts_with('/') {
        raw
    } else {
        format!("/{raw}")
    };
    let base = if with_slash.len() > 1 {
        with_slash.trim_end_matches('/').to_owned()
    } else {
        with_slash
    };
    if base.is_empty() || base == "/" {
        return Err(invalid(
            &format!("{path}.path"),
            "hooks.path may not be '/'",
        ));
    }
    if base.len() > 256 || base.contains(['?', '#', ' ', '\\', '\0']) {
        return Err(invalid(
            &format!("{path}.path"),
            "must be a URL path like \"/hooks\"",
        ));
    }
    c.base_path = base;
    if let Some(d) = &c.default_session_key {
        if !c.prefix_allows(d) {
            return Err(invalid(
                path,
                "hooks.defaultSessionKey must match hooks.allowedSessionKeyPrefixes",
            ));
        }
    } else if c.allowed_prefixes.is_some() && !c.prefix_allows("hook:example") {
        return Err(invalid(
            path,
            "hooks.allowedSessionKeyPrefixes must include 'hook:' when hooks.defaultSessionKey is unset",
        ));
    }
    if effective_templated_session_key(&c.mappings) && c.allowed_prefixes.is_none() {
        return Err(invalid(
            path,
            "hooks.allowedSessionKeyPrefixes is required when a hook mapping sessionKey uses templates, even if hooks.allowRequestSessionKey=true",
        ));
    }
    Ok(Some(c))
}

/// Does a mapping that can ever match (not shadowed by an earlier catch-all) template its
/// session key? (The original's `hasEffectiveTemplatedHookSessionKeyMapping`.)
fn effective_templated_session_key(mappings: &[Mapping]) -> bool {
    let mut seen: Vec<&Mapping> = Vec::new();
    for m in mappings {
        let shadowed = seen.iter().any(|e| {
            (e.match_path.is_none() || e.match_path == m.match_path)
                && (e.match_source.is_none() || e.match_source == m.match_source)
        });
        if shadowed {
            continue;
        }
        seen.push(m);
        if templated(m.session_key.as_deref()) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<Option<HooksConfig>, String> {
        parse(&v, "hooks").map_err(|e| e.to_string())
    }

    #[test]
    fn off_unless_enabled_and_a_token_is_required() {
        assert_eq!(p(json!({"token": "t"})).unwrap(), None);
        assert_eq!(p(json!({"enabled": false, "token": "t"})).unwrap(), None);
        let e = p(json!({"enabled": true})).unwrap_err();
        assert!(e.contains("hooks.enabled requires hooks.token"), "{e}");
        let e = p(json!({"enabled": true, "token": "  "})).unwrap_err();
        assert!(e.contains("hooks.enabled requires hooks.token"), "{e}");
    }

    #[test]
    fn the_path_is_normalised_and_never_root() {
        let c = p(json!({"enabled": true, "token": "t"})).unwrap().unwrap();
        assert_eq!(c.base_path, "/hooks");
        let c = p(json!({"enabled": true, "token": "t", "path": "in//"}))
            .unwrap()
            .unwrap();
        assert_eq!(c.base_path, "/in");
        assert!(c.owns("/in") && c.owns("/in/wake") && !c.owns("/inbox"));
        let e = p(json!({"enabled": true, "token": "t", "path": "/"})).unwrap_err();
        assert!(e.contains("hooks.path may not be '/'"), "{e}");
    }

    #[test]
    fn session_key_policy_is_checked_at_load() {
        let e = p(
            json!({"enabled": true, "token": "t", "defaultSessionKey": "x:1",
            "allowedSessionKeyPrefixes": ["hook:"]}),
        )
        .unwrap_err();
        assert!(e.contains("defaultSessionKey must match"), "{e}");
        let e = p(json!({"enabled": true, "token": "t", "allowedSessionKeyPrefixes": ["x:"]}))
            .unwrap_err();
        assert!(e.contains("must include 'hook:'"), "{e}");
        let e = p(json!({"enabled": true, "token": "t",
            "mappings": [{"match": {"path": "a"}, "sessionKey": "hook:{{id}}", "messageTemplate": "m"}]}))
        .unwrap_err();
        assert!(e.contains("allowedSessionKeyPrefixes is required"), "{e}");
        let c =
            p(json!({"enabled": true, "token": "t", "allowedSessionKeyPrefixes": ["HOOK:", " "]}))
                .unwrap()
                .unwrap();
        assert_eq!(c.allowed_prefixes, Some(vec!["hook:".to_owned()]));
        assert!(c.prefix_allows("Hook:abc") && !c.prefix_allows("agent:main:x"));
    }

    #[test]
    fn mappings_presets_and_refusals() {
        let c = p(
            json!({"enabled": true, "token": "t", "presets": ["gmail", "nope"],
            "allowedSessionKeyPrefixes": ["hook:"], "allowedAgentIds": ["Main", "*"],
            "mappings": [{"match": {"path": "/github/"}, "action": "wake", "textTemplate": "x"}]}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.mappings.len(), 2);
        assert_eq!(c.mappings[0].id, "mapping-1");
        assert_eq!(c.mappings[0].match_path.as_deref(), Some("github"));
        assert!(c.mappings[0].wake);
        assert_eq!(c.mappings[1].id, "gmail");
        assert_eq!(c.allowed_agent_ids, None);
        assert_eq!(c.max_body("gmail"), 100 * (20_000 * 3 + 8192));
        assert_eq!(c.max_body("github"), MAX_BODY);
        for bad in [
            json!({"transform": {"module": "x.js"}}),
            json!({"forEach": "a.b"}),
            json!({"forEach": "__proto__"}),
            json!({"action": "run"}),
            json!({"timeoutSeconds": 0}),
            json!({"bogus": 1}),
        ] {
            let e = p(json!({"enabled": true, "token": "t", "mappings": [bad]}));
            assert!(e.is_err(), "{e:?}");
        }
        let e = p(json!({"enabled": true, "token": "t", "maxBodyBytes": 5})).unwrap_err();
        assert!(e.contains("unknown config key"), "{e}");
    }
}
