//! Plain HTTP on the gateway port, as the original answers it: the probes (`/health`,
//! `/healthz`, `/ready`, `/readyz`, `/startup`, `/startupz`), the Control UI
//! ([`control_ui`]) with its bootstrap config (`/control-ui-config.json` and aliases) and the
//! image routes it requests, and 404 for the rest. WebSocket upgrades and inbound channel
//! POSTs are told apart in [`head`] and served elsewhere.
//!
//! [`route`] decides (pure, no IO); the connection task executes the decision, reading files
//! through [`files`] so a shard never blocks on disk.

pub mod api;
pub mod control_ui;
pub mod files;
pub mod head;
pub mod proxy;

use std::sync::Arc;

use serde_json::{json, Value};

use self::{
    control_ui::{ControlUi, Resolved},
    head::Plain,
};

/// JavaScript's `String.prototype.trim()`: the original trims header values and payload
/// strings with it (Unicode white space without U+0085, plus the byte-order mark).
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}')
}

/// A response: status line, headers and body (the body is left out for `HEAD`).
#[derive(Debug)]
pub struct Response {
    pub status: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Arc<Vec<u8>>,
    /// Answer to a `HEAD`: the headers (with the full `Content-Length`), no body.
    pub head_only: bool,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    pub fn new(status: &'static str, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: Arc::new(body.into()),
            head_only: false,
            close: false,
        }
    }

    pub fn json(status: &'static str, v: &Value) -> Response {
        Response::new(status, "application/json; charset=utf-8", v.to_string())
    }

    pub fn text(status: &'static str, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn headers(mut self, extra: Vec<(&'static str, String)>) -> Response {
        self.headers.extend(extra);
        self
    }

    /// The status line and headers (with `Content-Length` and `Connection`).
    pub fn encode_head(&self) -> Vec<u8> {
        let mut h = format!("HTTP/1.1 {}\r\n", self.status);
        for (k, v) in &self.headers {
            // Header values come from us, but never let one break the framing.
            let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        h.push_str(if self.close {
            "Connection: close\r\n\r\n"
        } else {
            "Connection: keep-alive\r\n\r\n"
        });
        h.into_bytes()
    }

    /// The bytes of the body to send (none for `HEAD`).
    pub fn body_bytes(&self) -> &[u8] {
        if self.head_only {
            &[]
        } else {
            &self.body
        }
    }
}

/// Which probe a path is (`classifyGatewayProbePath`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
    Startup,
}

impl Probe {
    pub fn of(path: &str) -> Option<Probe> {
        match path {
            "/health" | "/healthz" => Some(Probe::Live),
            "/ready" | "/readyz" => Some(Probe::Ready),
            "/startup" | "/startupz" => Some(Probe::Startup),
            _ => None,
        }
    }
}

/// What a plain request asks for.
#[derive(Debug)]
pub enum Route<'a> {
    Probe(Probe),
    /// `/control-ui-config.json` and its aliases (Bearer auth).
    UiConfig,
    /// Authenticated image routes the UI requests (`/api/users/<id>/avatar`, `/avatar/<id>`,
    /// `/__openclaw__/{workspace,catalog,…}-icon/…`): 401 without credentials, else 404 —
    /// ringgate keeps no avatars or icons.
    AuthedImage,
    /// The Control UI: the prepared index or a file.
    Ui(Resolved<'a>),
    Redirect(String),
    /// The Prometheus exposition (`/api/diagnostics/prometheus`, alias `/metrics`): gateway
    /// auth with `operator.read`, then `GET`/`HEAD` only.
    Metrics,
    /// A finished answer (405, 404, 400).
    Done(Response),
}

/// The original's metrics path, and the alias scrapers assume.
pub const METRICS_PATHS: [&str; 2] = ["/api/diagnostics/prometheus", "/metrics"];

/// Decides what a plain request gets (no IO).
pub fn route<'a>(req: &Plain, ui: &'a ControlUi) -> Route<'a> {
    let read = matches!(req.method.as_str(), "GET" | "HEAD");
    if req.other_upgrade {
        return Route::Done(Response::text("400 Bad Request", "Bad Request"));
    }
    if METRICS_PATHS.contains(&req.path.as_str()) {
        // Auth first, then the method (the original's plugin answers 405 only to a caller
        // that may read the metrics).
        return Route::Metrics;
    }
    if let Some(p) = Probe::of(&req.path) {
        if !read {
            return Route::Done(
                Response::text("405 Method Not Allowed", "Method Not Allowed")
                    .header("Allow", "GET, HEAD"),
            );
        }
        return Route::Probe(p);
    }
    let base = ui.base_path.as_str();
    if ui.enabled
        && read
        && (req.path == format!("{base}/control-ui-config.json")
            || req.path == format!("{base}/__openclaw/control-ui-config.json")
            || (base.is_empty() && req.path == "/__openclaw__/control-ui-config.json"))
    {
        return Route::UiConfig;
    }
    if read && authed_image(&req.path, base) {
        return Route::AuthedImage;
    }
    if !ui.mounted(&req.path) || reserved(&req.path, base) {
        return Route::Done(not_found());
    }
    if base.is_empty() && (req.path == "/ui" || req.path.starts_with("/ui/")) {
        return Route::Done(ui_not_found());
    }
    if !read {
        return Route::Done(not_found());
    }
    if !base.is_empty() && req.path == base {
        let q = if req.query.is_empty() {
            String::new()
        } else {
            format!("?{}", req.query)
        };
        return Route::Redirect(format!("{base}/{q}"));
    }
    let html = accepts_html(req.accept.as_deref());
    Route::Ui(ui.resolve(
        &req.path,
        &req.query,
        html || is_settings_plugins(&req.path, base),
    ))
}

/// Does the client take an HTML page here (`acceptsControlUiHtmlResponse`)? No `Accept` at
/// all counts as yes; otherwise `text/html`, `text/*`, `*/*` or XHTML with a non-zero q.
pub fn accepts_html(accept: Option<&str>) -> bool {
    let Some(a) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return true;
    };
    a.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let zero = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !zero
            && matches!(
                media.as_str(),
                "text/html" | "text/*" | "*/*" | "application/xhtml+xml"
            )
    })
}

fn is_settings_plugins(path: &str, base: &str) -> bool {
    path == format!("{base}/settings/plugins") || path == format!("{base}/settings/plugins/")
}

/// Namespaces the original keeps from the UI (`/api`, `/v1`, `/j`, worker paths): 404.
fn reserved(path: &str, base: &str) -> bool {
    let rest = path.strip_prefix(base).unwrap_or(path);
    [
        "/api",
        "/v1",
        "/j",
        "/__openclaw__/worker",
        "/tools",
        "/hooks",
    ]
    .iter()
    .any(|p| rest == *p || rest.starts_with(&format!("{p}/")))
}

fn authed_image(path: &str, base: &str) -> bool {
    let rest = path.strip_prefix(base).unwrap_or(path);
    (rest.starts_with("/api/users/") && rest.ends_with("/avatar"))
        || rest.starts_with("/avatar/")
        || [
            "/__openclaw__/workspace-icon/",
            "/__openclaw__/catalog-icon/",
            "/__openclaw__/plugin-icon/",
            "/__openclaw__/plugin-activity-icon/",
            "/__openclaw__/link-favicon/",
            "/__openclaw__/channel-avatar/",
            "/__openclaw__/plugin-theme-art/",
        ]
        .iter()
        .any(|p| rest.starts_with(p))
}

pub fn not_found() -> Response {
    Response::text("404 Not Found", "Not Found")
}

/// A 404 from the Control UI namespace (with its security headers).
pub fn ui_not_found() -> Response {
    not_found().headers(control_ui::security_headers(control_ui::csp(&[])))
}

/// `401 {"error":{"message":"Unauthorized","type":"unauthorized"}}`.
pub fn unauthorized() -> Response {
    Response::json(
        "401 Unauthorized",
        &json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}),
    )
    .header("Cache-Control", "no-store")
}

/// `403 missing scope: X` in plain text, as the original's metrics route answers it.
pub fn missing_scope(scope: &str) -> Response {
    Response::text("403 Forbidden", &format!("missing scope: {scope}"))
        .header("Cache-Control", "no-store")
}

/// The Bearer credential of a request, if any.
pub fn bearer(req: &Plain) -> Option<&str> {
    bearer_value(req.authorization.as_deref())
}

/// The credential of an `Authorization: Bearer …` value (scheme case-insensitive, trimmed).
pub fn bearer_value(authorization: Option<&str>) -> Option<&str> {
    let (scheme, cred) = authorization?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| cred.trim())
        .filter(|c| !c.is_empty())
}

/// A probe's answer. `state` says what the gateway knows about itself; `details` whether the
/// caller may see more than the verdict (loopback or authenticated, as the original).
pub fn probe_response(p: Probe, state: &Health, details: bool) -> Response {
    let (status, body) = match p {
        Probe::Live => ("200 OK", json!({"ok": true, "status": "live"})),
        Probe::Ready => {
            let ready = state.failing.is_empty();
            let body = if details {
                json!({"ready": ready, "failing": state.failing, "uptimeMs": state.uptime_ms})
            } else {
                json!({"ready": ready})
            };
            (
                if ready {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                },
                body,
            )
        }
        Probe::Startup => {
            let (ok, status) = if state.draining {
                (false, "draining")
            } else {
                (true, "started")
            };
            let body = if details {
                json!({"ok": ok, "status": status, "version": crate::state::VERSION,
                       "uptimeMs": state.uptime_ms})
            } else {
                json!({"ok": ok, "status": status})
            };
            (
                if ok {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                },
                body,
            )
        }
    };
    Response::json(status, &body).header("Cache-Control", "no-store")
}

/// What the probes report.
#[derive(Debug, Default)]
pub struct Health {
    /// Parts that are not ready: `shard-<n>` (not started or stalled), `state-database`
    /// (the storage thread is not answering), `gateway-draining` (shutting down).
    pub failing: Vec<String>,
    pub uptime_ms: u64,
    pub draining: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Plain {
        Plain {
            method: method.into(),
            path: path.into(),
            accept: Some("text/html,application/xhtml+xml,*/*;q=0.8".into()),
            ..Default::default()
        }
    }

    #[test]
    fn probes_and_methods() {
        let ui = ControlUi::disabled();
        assert!(matches!(
            route(&req("GET", "/ready"), &ui),
            Route::Probe(Probe::Ready)
        ));
        assert!(matches!(
            route(&req("HEAD", "/health"), &ui),
            Route::Probe(Probe::Live)
        ));
        match route(&req("POST", "/healthz"), &ui) {
            Route::Done(r) => assert!(r.status.starts_with("405")),
            other => panic!("{other:?}"),
        }
        // Sub-paths are not probes.
        match route(&req("GET", "/healthz/x"), &ui) {
            Route::Done(r) => assert!(r.status.starts_with("404")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn disabled_ui_is_404_and_images_need_auth() {
        let ui = ControlUi::disabled();
        match route(&req("GET", "/"), &ui) {
            Route::Done(r) => assert!(r.status.starts_with("404")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            route(&req("GET", "/api/users/gateway-owner/avatar"), &ui),
            Route::AuthedImage
        ));
        let mut up = req("GET", "/");
        up.other_upgrade = true;
        match route(&up, &ui) {
            Route::Done(r) => assert!(r.status.starts_with("400")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn html_acceptance() {
        assert!(accepts_html(None));
        assert!(accepts_html(Some("text/html,application/xhtml+xml")));
        assert!(accepts_html(Some("*/*")));
        assert!(!accepts_html(Some("application/javascript")));
        assert!(!accepts_html(Some("text/html;q=0")));
    }

    #[test]
    fn head_answers_carry_no_body() {
        let mut r = probe_response(Probe::Live, &Health::default(), false);
        r.head_only = true;
        let head = String::from_utf8(r.encode_head()).unwrap();
        assert!(head.contains("Content-Length: 27\r\n"), "{head}");
        assert!(r.body_bytes().is_empty());
    }

    #[test]
    fn readiness_lists_what_fails() {
        let h = Health {
            failing: vec!["shard-1".into()],
            uptime_ms: 5,
            draining: false,
        };
        let r = probe_response(Probe::Ready, &h, true);
        assert!(r.status.starts_with("503"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"ready": false, "failing": ["shard-1"], "uptimeMs": 5})
        );
        let v: Value =
            serde_json::from_slice(&probe_response(Probe::Ready, &h, false).body).unwrap();
        assert_eq!(v, json!({"ready": false}));
    }
}
