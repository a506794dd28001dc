//! Executes the decisions of [`crate::http::route`] for one plain request: probes from the
//! gateway's own state, the Control UI's bootstrap config, and its files (read on the files
//! thread). The shard only looks things up and awaits; it never touches the disk.

use std::{net::IpAddr, sync::atomic::Ordering, time::Duration};

use serde_json::json;

use super::conn::Shared;
use crate::{
    auth::secret::{secret_eq, AuthMode},
    http::{
        self,
        control_ui::{self, Resolved},
        head::Plain,
        Health, Response, Route,
    },
    state::now_ms,
};

/// Requests one kept-alive connection may carry.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// How long a kept-alive connection may wait for its next request (Node's default).
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(5);
/// How long one response may take to write (the largest UI file over a slow link).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// A shard whose housekeeping is this late is reported not ready (long before the watchdog
/// gives up on it).
const NOT_READY_AFTER_MS: u64 = 2_000;
/// The storage thread is pinged every second; this long without an answer is "not ready".
const STORE_SILENT_MS: u64 = 10_000;

/// Serves one plain request.
pub async fn serve_plain(shared: &Shared, ip: IpAddr, req: &Plain) -> Response {
    let ui = shared.borrow().control_ui.clone();
    // Deciding is request handling: a panic in it ends this request only (panic_policy).
    let Ok(route) = crate::panic_policy::contain(|| http::route(req, &ui)) else {
        shared
            .borrow()
            .globals
            .panics_contained
            .fetch_add(1, Ordering::Relaxed);
        let mut r = Response::text("500 Internal Server Error", "Internal Server Error");
        r.close = true;
        return r;
    };
    let mut resp = match route {
        Route::Done(r) => r,
        Route::Probe(p) => {
            let ctx = shared.borrow();
            let details = ip.is_loopback() || authorized(&ctx, req);
            http::probe_response(p, &health(&ctx), details)
        }
        Route::UiConfig => {
            let ok = authorized_now(shared, req);
            let ctx = shared.borrow();
            if ok {
                ui_config(&ctx, &ui)
            } else {
                http::unauthorized()
            }
        }
        Route::Metrics => match operator_read(shared, req) {
            Access::Granted if !matches!(req.method.as_str(), "GET" | "HEAD") => {
                Response::text("405 Method Not Allowed", "Method Not Allowed")
                    .header("Allow", "GET, HEAD")
            }
            Access::Granted => metrics(shared).await,
            Access::Unauthorized => http::unauthorized(),
            Access::MissingRead => http::missing_scope("operator.read"),
        },
        Route::AuthedImage => {
            if authorized_now(shared, req) {
                Response::json(
                    "404 Not Found",
                    &json!({"ok": false, "error": {"type": "not_found"}}),
                )
                .header("Cache-Control", "no-cache")
            } else {
                http::unauthorized()
            }
        }
        Route::Redirect(location) => Response::text("302 Found", "")
            .header("Location", location)
            .headers(control_ui::security_headers(control_ui::csp(&[]))),
        Route::Ui(Resolved::Unavailable(why)) => Response::text("503 Service Unavailable", why)
            .header("Cache-Control", "no-store")
            .headers(control_ui::security_headers(control_ui::csp(&[]))),
        Route::Ui(Resolved::NotFound) => http::ui_not_found(),
        Route::Ui(Resolved::Index) => match &ui.index {
            Some(index) => {
                let mut r = Response::new("200 OK", "text/html; charset=utf-8", Vec::new())
                    .header("Cache-Control", "no-cache")
                    .headers(control_ui::security_headers(index.csp.clone()));
                r.body = index.body.clone();
                r
            }
            None => http::ui_not_found(),
        },
        Route::Ui(Resolved::File {
            entry,
            content_type,
            immutable,
        }) => {
            let (path, _, encoding) =
                control_ui::representation(entry, content_type, req.accept_encoding.as_deref());
            let files = shared.borrow().files.clone();
            match files
                .read(path.to_path_buf(), control_ui::MAX_FILE_BYTES)
                .await
            {
                Ok(body) => {
                    let mut r = Response::new("200 OK", content_type, Vec::new())
                        .header(
                            "Cache-Control",
                            if immutable {
                                control_ui::IMMUTABLE
                            } else {
                                "no-cache"
                            },
                        )
                        .header("Vary", "Accept-Encoding")
                        .header("Last-Modified", http_date(entry.mtime_s))
                        .headers(control_ui::security_headers(control_ui::csp(&[])));
                    if let Some(e) = encoding {
                        r = r.header("Content-Encoding", e);
                    }
                    r.body = body;
                    r
                }
                Err(e) => {
                    if shared.borrow().globals.log_allowed() {
                        tracing::warn!(path = %path.display(), error = %e, "Control UI file unreadable");
                    }
                    http::ui_not_found()
                }
            }
        }
    };
    resp.head_only = req.method == "HEAD";
    resp
}

/// [`authorized`], after applying the replica deltas already queued for this shard when the
/// first check fails: a device token issued on another shard a moment ago (the dashboard
/// pairs, then fetches its config with the new token) reaches this shard's replica through
/// its inbox, and the storage thread queues that delta before the token is handed out.
fn authorized_now(shared: &super::conn::Shared, req: &Plain) -> bool {
    if authorized(&shared.borrow(), req) {
        return true;
    }
    if http::bearer(req).is_none() {
        return false;
    }
    let mut ctx = shared.borrow_mut();
    let mut queued = Vec::new();
    ctx.sender.bus().inbox(ctx.id).drain_now(&mut queued);
    for m in queued {
        ctx.on_bus(m);
    }
    authorized(&ctx, req)
}

/// Does the request carry the shared secret (or, for a device, its live operator token) as
/// `Authorization: Bearer …`? With `auth: none` everyone is.
fn authorized(ctx: &super::ctx::ShardCtx, req: &Plain) -> bool {
    let given = http::bearer(req);
    match &ctx.config.auth {
        AuthMode::None => return true,
        AuthMode::Token(t) | AuthMode::Password(t) => {
            if given.is_some_and(|g| secret_eq(t, g)) {
                return true;
            }
        }
        // No shared secret to present: a device's operator token still is one.
        AuthMode::TrustedProxy(_) => {}
    }
    let Some(given) = given else {
        return false;
    };
    ctx.devices.values().any(|d| {
        d.live_token("operator")
            .is_some_and(|t| secret_eq(&t.token, given))
    })
}

/// The outcome of the gateway auth check of an operator HTTP route.
enum Access {
    Granted,
    Unauthorized,
    MissingRead,
}

/// The original's rule for its trusted-operator routes: the shared secret (or `auth: none`)
/// is an operator with the CLI's default scopes, which include `operator.read`; a device's
/// operator token carries that device's scopes, which must include (or imply) it.
fn operator_read(shared: &super::conn::Shared, req: &Plain) -> Access {
    use crate::proto::scopes::{Scope, ScopeSet};
    if !authorized_now(shared, req) {
        return Access::Unauthorized;
    }
    let ctx = shared.borrow();
    let given = http::bearer(req).unwrap_or_default();
    let shared_secret = match &ctx.config.auth {
        AuthMode::None => true,
        AuthMode::Token(t) | AuthMode::Password(t) => secret_eq(t, given),
        AuthMode::TrustedProxy(_) => false,
    };
    if shared_secret {
        return Access::Granted;
    }
    let reads = ctx.devices.values().any(|d| {
        d.live_token("operator").is_some_and(|t| {
            secret_eq(&t.token, given)
                && ScopeSet::from_strs(t.scopes.iter().map(String::as_str)).satisfies(Scope::Read)
        })
    });
    if reads {
        Access::Granted
    } else {
        Access::MissingRead
    }
}

/// One scrape: every shard's figures gathered over the bus (a shard that does not answer in
/// time is reported down), with the process, loop and store figures, encoded.
async fn metrics(shared: &super::conn::Shared) -> Response {
    use crate::metrics::{gather, render};
    let (g, shards) = {
        let mut ctx = shared.borrow_mut();
        if !ctx.config.diagnostics_enabled {
            // As the original with diagnostics off: the route answers, with nothing in it.
            return Response::new("200 OK", render::CONTENT_TYPE, Vec::new())
                .header("Cache-Control", "no-store");
        }
        let shards = ctx.sender.bus().shards();
        let g = gather::Gather::new(shards);
        g.offer(ctx.metrics_snapshot());
        ctx.sender.to_others(crate::bus::BusMsg::Metrics(g.clone()));
        (g, shards)
    };
    let mut got = Vec::with_capacity(shards);
    let _ = crate::rt::timeout(gather::GATHER_TIMEOUT, g.collect(shards, &mut got)).await;
    got.sort_by_key(|s| s.shard);
    let scrape = {
        let ctx = shared.borrow();
        let g = &ctx.globals;
        let p = &g.process;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (queue, st) = ctx.store.stats();
        render::Scrape {
            process: render::Process {
                instance_id: g.instance_id.clone(),
                build_id: super::hello::BUILD_ID,
                version: crate::state::VERSION,
                driver: ctx.driver,
                shards,
                uptime_seconds: g.uptime_ms() as f64 / 1e3,
                rss_bytes: load(&p.rss_bytes),
                heap_used_bytes: load(&p.heap_used_bytes),
                heap_total_bytes: load(&p.heap_total_bytes),
                open_fds: load(&p.open_fds),
                max_fds: load(&p.max_fds),
                cpu_cores: load(&p.cpu_ppm) as f64 / 1e6,
                panics_contained: load(&g.panics_contained),
                accept_errors: load(&g.accept_errors),
                slow_closes: load(&g.slow_closes),
                budget_closes: load(&g.budget_closes),
                logs_suppressed: load(&g.logs_suppressed),
            },
            shards: got,
            cluster: ctx.cluster_view.clone(),
            loops: g
                .loops
                .iter()
                .map(|l| {
                    let s = l.read();
                    render::Loop {
                        delay_p99_seconds: s.delay_p99_us as f64 / 1e6,
                        delay_max_seconds: s.delay_max_us as f64 / 1e6,
                        busy_ratio: s.busy_ppm as f64 / 1e6,
                    }
                })
                .collect(),
            store: render::Store {
                queue_depth: queue as u64,
                batch_size: st.batch_size.read(),
                commit_seconds: st.commit_seconds.read(),
                failed_commits: load(&st.failed_commits),
            },
        }
    };
    Response::new("200 OK", render::CONTENT_TYPE, scrape.encode())
        .header("Cache-Control", "no-store")
}

/// What the probes report about this gateway.
fn health(ctx: &super::ctx::ShardCtx) -> Health {
    let now = now_ms();
    let g = &ctx.globals;
    let mut failing: Vec<String> = g
        .unready_shards(now, NOT_READY_AFTER_MS)
        .into_iter()
        .map(|i| format!("shard-{i}"))
        .collect();
    if now.saturating_sub(ctx.store.last_beat_ms()) > STORE_SILENT_MS {
        failing.push("state-database".into());
    }
    if ctx.cluster_view.as_ref().is_some_and(|v| !v.connected) {
        // Clients here would miss every other host's events: a balancer should send them
        // to a host that has its link.
        failing.push("cluster".into());
    }
    let draining = ctx.shutting_down || g.stopping.load(Ordering::Acquire);
    if draining {
        failing.insert(0, "gateway-draining".into());
    }
    Health {
        failing,
        uptime_ms: g.uptime_ms(),
        draining,
    }
}

/// `/control-ui-config.json`: the original's fields, from ringgate's config (the default
/// agent's identity, no avatar: ringgate keeps none).
fn ui_config(ctx: &super::ctx::ShardCtx, ui: &control_ui::ControlUi) -> Response {
    let agent = ctx.config.default_agent();
    Response::json(
        "200 OK",
        &json!({
            "basePath": ui.base_path,
            "assistantName": "Assistant",
            "assistantAvatar": "A",
            "assistantAvatarSource": null,
            "assistantAvatarStatus": null,
            "assistantAvatarReason": null,
            "assistantAgentId": agent,
            "serverVersion": crate::state::VERSION,
            "serverBuildId": ui.build_id,
            "embedSandbox": "scripts",
            "allowExternalEmbedUrls": false,
            "automaticallyFetchFavicons": false,
            "communityInvite": false,
            "terminalEnabled": false,
            "cliAgentsEnabled": false,
            "pluginAssetsRequireAuth": !matches!(ctx.config.auth, AuthMode::None),
            "pluginFrameGrants": [],
        }),
    )
    .header("Cache-Control", "no-cache")
    .headers(control_ui::security_headers(control_ui::csp(&[])))
}

/// An IMF-fixdate (`Last-Modified`).
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = (secs / 86_400) as i64;
    let (y, m, d) = crate::calendar::civil_from_days(day);
    let sod = secs % 86_400;
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[(day.rem_euclid(7)) as usize],
        MONTHS[(m - 1) as usize],
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates() {
        assert_eq!(super::http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            super::http_date(1_796_360_354),
            "Fri, 04 Dec 2026 04:59:14 GMT"
        );
    }
}
