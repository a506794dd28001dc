//! The model catalog as clients see it: `models.list`, `chat.metadata` and the Control UI's
//! `models.snapshot`. It is a function of the configured agents only — every agent's runtime
//! names one model — so a config reload is the only thing that changes it.

use serde_json::{json, Value};

use crate::config::Config;

/// `models.list`: each configured agent's model once, and the default agent's as the utility
/// model (ringgate has no separate one). Every listed model is `available`: its runtime is
/// configured in the file (the dashboard's Models page counts available models by this flag).
pub fn models_list(config: &Config) -> Value {
    let mut models: Vec<Value> = Vec::new();
    for a in &config.agents {
        let (provider, model) = a.runtime.model();
        let entry = json!({"id": model, "name": model, "provider": provider, "available": true});
        if !models.contains(&entry) {
            models.push(entry);
        }
    }
    let default = config.agent(config.default_agent()).map(|a| {
        let (provider, model) = a.runtime.model();
        format!("{provider}/{model}")
    });
    json!({
        "models": models,
        "defaultModels": {"automaticUtilityModel": default},
        "accountSelection": {"kind": "automatic", "label": "Automatic account selection"},
    })
}

/// `chat.metadata`: the configured models (every agent may use any of them) and the slash
/// commands ringgate runs (none: the runtimes take every message as a turn).
pub fn chat_metadata(config: &Config) -> Value {
    json!({
        "models": models_list(config)["models"],
        "commands": [],
        "swarmEnabled": false,
        "accountSelection": {"kind": "automatic", "label": "Automatic account selection"},
        "runtimeSelectionLocked": false,
    })
}

/// The `models.snapshot` payload a Control UI asked for at connect with `modelCatalog`
/// (`target`): the scope it resolves to and the catalog `models.list` would answer. As the
/// original: a `sessionKey` scope is kept as asked, an `agentId` falls back to the default
/// agent when it is not configured. `None` for a short chat link (`shortId`), which ringgate
/// does not resolve — the original sends nothing when the link does not resolve either.
pub fn snapshot(config: &Config, target: &Value) -> Option<Value> {
    if target.get("shortId").is_some() {
        return None;
    }
    let scope = if target.get("sessionKey").is_some() {
        target.clone()
    } else {
        let asked = target
            .get("agentId")
            .and_then(Value::as_str)
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| config.agent(a).is_some());
        json!({"agentId": asked.as_deref().unwrap_or(config.default_agent())})
    };
    Some(json!({"target": target, "scope": scope, "catalog": models_list(config)}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::config::{AgentConfig, OpenAiConfig, RuntimeConfig};

    fn with_agents(ids: &[&str]) -> Config {
        Config {
            agents: ids
                .iter()
                .map(|id| AgentConfig {
                    id: (*id).into(),
                    ..crate::agent::config::default_agents().remove(0)
                })
                .collect(),
            ..Config::default()
        }
    }

    #[test]
    fn a_snapshot_keeps_a_session_scope_and_falls_back_to_the_default_agent() {
        let c = with_agents(&["main", "ops"]);
        let s = snapshot(&c, &json!({"sessionKey": "main"})).unwrap();
        assert_eq!(s["scope"], json!({"sessionKey": "main"}));
        let s = snapshot(&c, &json!({"agentId": "OPS"})).unwrap();
        assert_eq!(s["scope"], json!({"agentId": "ops"}));
        let s = snapshot(&c, &json!({"agentId": "nobody"})).unwrap();
        assert_eq!(s["scope"], json!({"agentId": "main"}));
        assert_eq!(s["target"], json!({"agentId": "nobody"}));
        assert!(snapshot(&c, &json!({"shortId": "x"})).is_none());
    }

    #[test]
    fn the_catalog_lists_each_model_once() {
        let mut c = with_agents(&["main", "ops"]);
        assert_eq!(models_list(&c)["models"].as_array().unwrap().len(), 1);
        c.agents[1].runtime = RuntimeConfig::OpenAi(OpenAiConfig {
            base_url: "http://127.0.0.1:1/v1".into(),
            api_key: None,
            model: "gpt-x".into(),
            timeout_ms: 1000,
            system_prompt: None,
        });
        let m = models_list(&c);
        assert_eq!(m["models"].as_array().unwrap().len(), 2, "{m}");
        assert_eq!(m["defaultModels"]["automaticUtilityModel"], "ringgate/echo");
        assert_eq!(m["models"][1]["available"], true);
        assert_ne!(chat_metadata(&c), chat_metadata(&with_agents(&["main"])));
    }
}
