//! Session keys: the canonical form `agent:<agentId>:<rest>` (its owner shard is in
//! [`crate::placement`]).
//! Aliases resolve as in the original: a bare key (`main`, `work`) belongs to the requested or
//! default agent (`main` → `agent:main:main`); `global` is the one shared session; keys are
//! case-insensitive (stored lowercase).

use crate::agent::config::valid_agent_id;

/// Longest session key accepted (`chat.send` schema).
pub const MAX_KEY_LEN: usize = 512;

/// A resolved session key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    /// `agent:<agentId>:<rest>` (or `global`).
    pub canonical: String,
    pub agent_id: String,
}

/// Resolves a client-supplied key (`agent_param` is the request's `agentId`, if any).
pub fn resolve(
    raw: &str,
    agent_param: Option<&str>,
    default_agent: &str,
) -> Result<SessionKey, String> {
    let key = raw.trim().to_ascii_lowercase();
    if key.is_empty() {
        return Err("sessionKey is required".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("sessionKey exceeds {MAX_KEY_LEN} characters"));
    }
    let param = agent_param.map(str::to_ascii_lowercase);
    if let Some(a) = &param {
        if !valid_agent_id(a) {
            return Err(format!("Unknown agent id \"{a}\""));
        }
    }
    if key == "global" {
        return Ok(SessionKey {
            canonical: key,
            agent_id: param.unwrap_or_else(|| default_agent.to_owned()),
        });
    }
    if let Some(rest) = key.strip_prefix("agent:") {
        let (agent, tail) = rest
            .split_once(':')
            .ok_or_else(|| format!("malformed session key \"{raw}\""))?;
        if !valid_agent_id(agent) || tail.is_empty() || tail.starts_with(':') {
            return Err(format!("malformed session key \"{raw}\""));
        }
        if let Some(p) = &param {
            if p != agent {
                return Err(format!(
                    "agent \"{p}\" does not match session key agent \"{agent}\""
                ));
            }
        }
        return Ok(SessionKey {
            agent_id: agent.to_owned(),
            canonical: key,
        });
    }
    // A bare key becomes `agent:<agent>:<key>`, which must itself be a valid key: clients
    // address the session by that canonical key afterwards (found by fuzzing: `:x` became
    // the unaddressable `agent:main::x`, and a 512-character key a 523-character one).
    if key.starts_with(':') {
        return Err(format!("malformed session key \"{raw}\""));
    }
    let agent = param.unwrap_or_else(|| default_agent.to_owned());
    let canonical = format!("agent:{agent}:{key}");
    if canonical.len() > MAX_KEY_LEN {
        return Err(format!("sessionKey exceeds {MAX_KEY_LEN} characters"));
    }
    Ok(SessionKey {
        canonical,
        agent_id: agent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_canonical_keys() {
        let r = |k, a| resolve(k, a, "main").map(|s| s.canonical);
        assert_eq!(r("main", None).unwrap(), "agent:main:main");
        assert_eq!(r("Agent:Main:Main", None).unwrap(), "agent:main:main");
        assert_eq!(r("work", Some("ops")).unwrap(), "agent:ops:work");
        assert_eq!(r("global", None).unwrap(), "global");
        assert_eq!(r("agent:ops:x", None).unwrap(), "agent:ops:x");
        assert!(r("agent:ops:x", Some("main")).is_err());
        assert!(r("agent:ops", None).is_err());
        assert!(r("  ", None).is_err());
        assert!(r(&"k".repeat(513), None).is_err());
    }

    #[test]
    fn every_resolved_key_resolves_to_itself() {
        for raw in [
            ":tele\u{f}\0egr",
            ":x",
            &"k".repeat(512),
            &"k".repeat(497),
            "a:b",
            "x",
        ] {
            if let Ok(k) = resolve(raw, None, "main") {
                assert_eq!(
                    resolve(&k.canonical, None, "main").map(|k| k.canonical),
                    Ok(k.canonical.clone()),
                    "{raw:?}"
                );
            }
        }
        assert!(resolve(":x", None, "main").is_err());
        assert!(resolve(&"k".repeat(512), None, "main").is_err());
        assert!(resolve(&"k".repeat(497), None, "main").is_ok());
    }
}
