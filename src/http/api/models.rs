//! `GET /v1/models` and `GET /v1/models/{id}`: the original's agent-first model list. A
//! "model" names an agent target: `openclaw` and `openclaw/default` are the default agent,
//! `openclaw/<agentId>` each configured agent.

use serde_json::{json, Value};

use super::{error, json_ok};
use crate::http::Response;

fn model(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "openclaw", "permission": []})
}

/// The ids listed, in the original's order: `openclaw`, `openclaw/default`, the default agent,
/// then every other configured agent.
pub fn ids(agents: &[&str], default_agent: &str) -> Vec<String> {
    let mut out = vec!["openclaw".to_owned(), "openclaw/default".to_owned()];
    for a in std::iter::once(default_agent).chain(agents.iter().copied()) {
        let id = format!("openclaw/{a}");
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

pub fn list(agents: &[&str], default_agent: &str) -> Response {
    let data: Vec<Value> = ids(agents, default_agent)
        .iter()
        .map(|i| model(i))
        .collect();
    json_ok(&json!({"object": "list", "data": data}))
}

/// One model: listed ids only (exact string), as the original.
pub fn detail(id: &str, agents: &[&str], default_agent: &str) -> Response {
    if super::openai::agent_of_model(id).is_none() {
        return super::invalid_request("Invalid model id.");
    }
    if ids(agents, default_agent).iter().any(|i| i == id) {
        json_ok(&model(id))
    } else {
        error(
            "404 Not Found",
            &format!("Model '{id}' not found."),
            "invalid_request_error",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_every_agent_once() {
        assert_eq!(
            ids(&["main", "ops"], "main"),
            [
                "openclaw",
                "openclaw/default",
                "openclaw/main",
                "openclaw/ops"
            ]
        );
        let body = |r: Response| String::from_utf8(r.body.to_vec()).unwrap();
        assert_eq!(
            body(list(&["main"], "main")),
            r#"{"object":"list","data":[{"id":"openclaw","object":"model","created":0,"owned_by":"openclaw","permission":[]},{"id":"openclaw/default","object":"model","created":0,"owned_by":"openclaw","permission":[]},{"id":"openclaw/main","object":"model","created":0,"owned_by":"openclaw","permission":[]}]}"#
        );
        assert_eq!(detail("openclaw/main", &["main"], "main").status, "200 OK");
        assert_eq!(detail("gpt-4", &["main"], "main").status, "400 Bad Request");
        let missing = detail("openclaw/nope", &["main"], "main");
        assert_eq!(missing.status, "404 Not Found");
        assert_eq!(
            body(missing),
            r#"{"error":{"message":"Model 'openclaw/nope' not found.","type":"invalid_request_error"}}"#
        );
        // A valid alias that is not listed is not found (exact membership).
        assert_eq!(
            detail("agent:main", &["main"], "main").status,
            "404 Not Found"
        );
    }
}
