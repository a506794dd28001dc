//! The original's HTTP APIs on the gateway port: the OpenAI-compatible `POST
//! /v1/chat/completions` and `GET /v1/models[/{id}]` ([`openai`], [`models`]), and the
//! always-on `POST /tools/invoke`, `GET /sessions/<key>/history` and `POST
//! /sessions/<key>/kill`. Everything here decides (pure, no IO): which endpoint a request is,
//! the order of the original's checks (path → method → auth → scope → body), and every answer's
//! exact body. `shard::api` reads bodies, runs turns and writes.

pub mod models;
pub mod openai;
pub mod responses;

use serde_json::{json, Value};

use super::{control_ui::percent_decode, Response};
use crate::config::HttpEndpoints;

/// The request head fields these routes read.
#[derive(Debug, Default, Clone)]
pub struct ApiHead {
    pub method: String,
    /// The path without the query (percent-encoded as sent).
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub content_length: Option<usize>,
    /// The body is `Transfer-Encoding`-framed (refused: 411).
    pub chunked: bool,
    /// `Expect: 100-continue` (answered before the body is read); another expectation is 417.
    pub expect: Option<String>,
    pub accept: Option<String>,
    pub origin: Option<String>,
    pub host: Option<String>,
    /// `x-openclaw-agent-id` (or `x-openclaw-agent`).
    pub agent: Option<String>,
    /// `x-openclaw-session-key`.
    pub session_key: Option<String>,
    /// `x-openclaw-scopes` (honoured with `auth: none` only).
    pub scopes: Option<String>,
    /// Forwarded-client headers (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`).
    pub forwarded: super::proxy::Forwarded,
    pub close: bool,
    /// An HTTP/1.0 request: no chunked answers (a stream is sent unframed, then closed).
    pub http10: bool,
    /// Every header (lowercased names, repeats joined with `, `), kept for hooks (mapping
    /// templates read them) and in trusted-proxy mode (the identity headers); else empty.
    pub headers: Vec<(String, String)>,
}

impl ApiHead {
    /// A kept header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Paths these routes own (whether or not they are enabled): the rest is the Control UI's.
pub fn owns(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/") || path == "/tools/invoke" || session_route(path)
}

fn session_route(path: &str) -> bool {
    path.strip_prefix("/sessions/").is_some_and(|rest| {
        rest.split_once('/')
            .is_some_and(|(k, a)| !k.is_empty() && matches!(a, "history" | "kill"))
    })
}

/// What an API request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Responses,
    Models,
    /// `/v1/models/{id}`, decoded.
    Model(String),
    ToolsInvoke,
    History(String),
    Kill(String),
}

impl Endpoint {
    /// The scope the original requires (of the method the route stands for).
    pub fn scope(&self) -> &'static str {
        match self {
            Endpoint::ChatCompletions | Endpoint::Responses | Endpoint::ToolsInvoke => {
                "operator.write"
            }
            Endpoint::Models | Endpoint::Model(_) | Endpoint::History(_) => "operator.read",
            Endpoint::Kill(_) => "operator.admin",
        }
    }

    /// Largest body read (the original's limits).
    pub fn max_body(&self) -> usize {
        match self {
            Endpoint::ChatCompletions | Endpoint::Responses => 20 * 1024 * 1024,
            Endpoint::ToolsInvoke => 2 * 1024 * 1024,
            _ => 0,
        }
    }
}

/// The routing decision: an endpoint to serve, or a finished answer (404, 405, 400).
#[derive(Debug)]
pub enum ApiRoute {
    Serve(Endpoint),
    Done(Response),
}

/// Path, then method — before auth, as the original (an unauthenticated `GET
/// /v1/chat/completions` is 405; a disabled endpoint is 404 for everyone).
pub fn route(head: &ApiHead, on: HttpEndpoints) -> ApiRoute {
    let path = head.path.as_str();
    let (endpoint, allow) = if path == "/v1/chat/completions" && on.chat_completions {
        (Endpoint::ChatCompletions, "POST")
    } else if path == "/v1/responses" && on.responses {
        (Endpoint::Responses, "POST")
    } else if path == "/v1/models" && on.models() {
        (Endpoint::Models, "GET")
    } else if let Some(id) = path.strip_prefix("/v1/models/").filter(|_| on.models()) {
        let endpoint = match percent_decode(id) {
            None => return ApiRoute::Done(invalid_request("Invalid model id encoding.")),
            Some(id) if id.trim().is_empty() => {
                return ApiRoute::Done(invalid_request("Missing model id."))
            }
            Some(id) => Endpoint::Model(id.trim().to_owned()),
        };
        (endpoint, "GET")
    } else if path == "/tools/invoke" {
        (Endpoint::ToolsInvoke, "POST")
    } else if session_route(path) {
        let rest = &path["/sessions/".len()..];
        let (raw, action) = rest.split_once('/').unwrap_or_default();
        // The key is checked before the method, as the original does.
        let Some(key) = percent_decode(raw)
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
        else {
            return ApiRoute::Done(invalid_request("invalid session key"));
        };
        if action == "history" {
            (Endpoint::History(key), "GET")
        } else {
            (Endpoint::Kill(key), "POST")
        }
    } else {
        return ApiRoute::Done(with_common(super::not_found()));
    };
    if head.method != allow {
        return ApiRoute::Done(with_common(
            Response::text("405 Method Not Allowed", "Method Not Allowed").header("Allow", allow),
        ));
    }
    ApiRoute::Serve(endpoint)
}

/// The original's headers on every API answer.
pub fn with_common(r: Response) -> Response {
    r.header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
        .header(
            "Permissions-Policy",
            "camera=(), microphone=(self), geolocation=()",
        )
}

/// `{"error":{"message","type"}}` with a status.
pub fn error(status: &'static str, message: &str, kind: &str) -> Response {
    with_common(Response::json(
        status,
        &json!({"error": {"message": message, "type": kind}}),
    ))
}

/// 400 `invalid_request_error`.
pub fn invalid_request(message: &str) -> Response {
    error("400 Bad Request", message, "invalid_request_error")
}

/// 401, the same body for every auth failure.
pub fn unauthorized() -> Response {
    error("401 Unauthorized", "Unauthorized", "unauthorized")
}

/// 429 while the caller's address is locked out after failed attempts.
pub fn rate_limited(retry_after_ms: u64) -> Response {
    error(
        "429 Too Many Requests",
        "Too many failed authentication attempts. Please try again later.",
        "rate_limited",
    )
    .header(
        "Retry-After",
        retry_after_ms.div_ceil(1000).max(1).to_string(),
    )
}

/// 403 for forwarded-client headers from a peer that is not a configured proxy.
pub fn proxy_attribution_required() -> Response {
    error(
        "403 Forbidden",
        "Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy overwrite or safely rebuild forwarded client headers.",
        "proxy_attribution_required",
    )
}

/// 403 in the `{ok:false}` envelope, as the original's scope check answers.
pub fn missing_scope(scope: &str) -> Response {
    with_common(Response::json(
        "403 Forbidden",
        &json!({"ok": false, "error": {"type": "forbidden", "message": format!("missing scope: {scope}"),
            "details": {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}}}),
    ))
}

/// `{ok:false, error:{type, message}}` with a status (tools and sessions routes).
pub fn ok_false(status: &'static str, kind: &str, message: &str) -> Response {
    with_common(Response::json(
        status,
        &json!({"ok": false, "error": {"type": kind, "message": message}}),
    ))
}

pub fn json_ok(v: &Value) -> Response {
    with_common(Response::json("200 OK", v))
}

/// What the caller may do: the shared secret (or `auth: none` without a narrowing header) is
/// the CLI's operator with the default scopes.
pub fn scopes_allow(granted: &[String], need: &str) -> bool {
    use crate::proto::scopes::{Scope, ScopeSet};
    let set = ScopeSet::from_strs(granted.iter().map(String::as_str));
    match need {
        "operator.read" => set.satisfies(Scope::Read),
        "operator.write" => set.satisfies(Scope::Write),
        _ => set.satisfies(Scope::Admin),
    }
}

/// The CLI's default operator scopes (the original's `CLI_DEFAULT_OPERATOR_SCOPES`).
pub const DEFAULT_SCOPES: [&str; 7] = [
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
    "operator.talk.secrets",
];

/// `x-openclaw-scopes: a, b` as a list (absent: the default set).
pub fn header_scopes(h: Option<&str>) -> Vec<String> {
    match h {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// `limit` and `cursor` of a history request, as the original bounds them.
pub fn history_query(query: &str) -> Result<(usize, Option<u64>), &'static str> {
    let mut limit = None;
    let mut cursor = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).unwrap_or_default();
        match k {
            "limit" => {
                let n = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("limit must be a positive integer")?;
                limit = Some(n.min(1000) as usize);
            }
            "cursor" => {
                let n = v
                    .strip_prefix("seq:")
                    .unwrap_or(&v)
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("cursor must be a positive integer")?;
                cursor = Some(n);
            }
            _ => {}
        }
    }
    Ok((limit.unwrap_or(200), cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, path: &str) -> ApiHead {
        ApiHead {
            method: method.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    fn status(r: ApiRoute) -> String {
        match r {
            ApiRoute::Done(r) => r.status.to_owned(),
            ApiRoute::Serve(e) => format!("serve {e:?}"),
        }
    }

    #[test]
    fn disabled_endpoints_are_not_found_and_the_method_comes_before_auth() {
        let off = HttpEndpoints::default();
        let on = HttpEndpoints {
            chat_completions: true,
            responses: false,
        };
        assert_eq!(
            status(route(&head("POST", "/v1/chat/completions"), off)),
            "404 Not Found"
        );
        assert_eq!(
            status(route(&head("GET", "/v1/models"), off)),
            "404 Not Found"
        );
        assert_eq!(
            status(route(&head("GET", "/v1/chat/completions"), on)),
            "405 Method Not Allowed"
        );
        assert_eq!(
            status(route(&head("POST", "/v1/chat/completions"), on)),
            "serve ChatCompletions"
        );
        assert_eq!(
            status(route(&head("GET", "/v1/models/openclaw%2Fmain"), on)),
            "serve Model(\"openclaw/main\")"
        );
        assert_eq!(
            status(route(&head("GET", "/v1/models/%zz"), on)),
            "400 Bad Request"
        );
        assert_eq!(
            status(route(&head("POST", "/v1/responses"), on)),
            "404 Not Found"
        );
        assert_eq!(
            status(route(&head("POST", "/v1/chat/completions/"), on)),
            "404 Not Found"
        );
        // Always on, whatever the endpoints.
        assert_eq!(
            status(route(&head("GET", "/tools/invoke"), off)),
            "405 Method Not Allowed"
        );
        assert_eq!(
            status(route(&head("POST", "/sessions/%ff/kill"), off)),
            "400 Bad Request"
        );
        assert_eq!(
            status(route(&head("GET", "/sessions/main/history"), off)),
            "serve History(\"main\")"
        );
        assert_eq!(
            status(route(&head("GET", "/sessions/main/kill"), off)),
            "405 Method Not Allowed"
        );
        assert!(!owns("/sessions/main") && !owns("/chat/main") && owns("/v1/x"));
    }

    #[test]
    fn history_queries_are_bounded() {
        assert_eq!(history_query(""), Ok((200, None)));
        assert_eq!(
            history_query("limit=5000&cursor=seq:7"),
            Ok((1000, Some(7)))
        );
        assert!(history_query("limit=-1").is_err());
        assert!(history_query("limit=0").is_err());
        assert!(history_query("cursor=abc").is_err());
        assert!(history_query("limit=99999999999999999999999").is_err());
    }
}
