//! Metrics, scraped the way users scrape them: a real Prometheus (Debian's `prometheus`,
//! installed by `make test-deps`) reads `/api/diagnostics/prometheus` with the gateway token
//! from a credentials file, as the original's docs configure it, while the test drives
//! handshakes, requests, a refused token and a stalled reader; the series are then checked
//! through Prometheus's query API. `promtool check metrics` passes on a raw scrape, every query
//! of the Grafana dashboard in `tools/grafana/` is valid PromQL with data behind it, and the
//! route's auth answers as the original's (401 without or with a wrong credential, 403 for a
//! device token without `operator.read`).

mod common;

use std::{
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    add_device, connect_params, http_raw, open, params_for, send_connect, small_rcvbuf_stream,
    Client, Incoming, Server, TempDir, TOKEN,
};
use serde_json::{json, Value};

const METRICS: &str = "/api/diagnostics/prometheus";

fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> common::HttpResponse {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    http_raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus server scraping the gateway every second; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let token = dir.path().join("gateway-token");
        std::fs::write(&token, TOKEN).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n\
             \x20 - job_name: openclaw\n    metrics_path: {METRICS}\n    authorization:\n\
             \x20     credentials_file: {token}\n    static_configs:\n      - targets: [\"{target}\"]\n\
             \x20 - job_name: alias\n    metrics_path: /metrics\n    authorization:\n\
             \x20     credentials_file: {token}\n    static_configs:\n      - targets: [\"{target}\"]\n",
            token = token.display()
        );
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let bin = which("promtool")
            .map(|_| "prometheus")
            .unwrap_or("prometheus");
        let mut last_err = String::new();
        // The port is free when picked; another process could take it before Prometheus binds,
        // so a failed start is retried on a new one.
        for _ in 0..3 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut child = Command::new(bin)
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run prometheus (installed by `make test-deps`)");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(addr).is_ok() {
                    let r = http_raw(
                        addr,
                        &format!(
                            "GET /-/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                        ),
                    );
                    if r.status == 200 {
                        return Prometheus {
                            child,
                            addr,
                            _dir: dir,
                        };
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            last_err = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        panic!("prometheus did not become ready: {last_err}");
    }

    /// Runs an instant query; the `result` array.
    fn query(&self, q: &str) -> Vec<Value> {
        let v = self.query_raw(q);
        assert_eq!(v["status"], "success", "query {q}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn query_raw(&self, q: &str) -> Value {
        let r = http_raw(
            self.addr,
            &format!(
                "GET /api/v1/query?query={} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                urlencode(q),
                self.addr
            ),
        );
        let body = if r.head.contains("transfer-encoding: chunked") {
            dechunk(&r.body)
        } else {
            r.body
        };
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {q}: {e}: {body}"))
    }

    /// The value of a query that returns one sample.
    fn scalar(&self, q: &str) -> Option<f64> {
        let r = self.query(q);
        r.first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until `q` is at least `want` (Prometheus scrapes every second).
    fn wait_at_least(&self, q: &str, want: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.scalar(q);
            if v.is_some_and(|v| v >= want) {
                return v.unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "{q} stayed at {v:?}, wanted at least {want}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until `q` is exactly `want`.
    fn wait_equal(&self, q: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.scalar(q);
            if v == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{q} stayed at {v:?}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(bin: &str) -> Option<String> {
    std::env::var("PATH").ok()?.split(':').find_map(|d| {
        let p = std::path::Path::new(d).join(bin);
        p.is_file().then(|| p.display().to_string())
    })
}

/// A chunked body's data (Prometheus streams its API answers).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Connects with the wrong token: refused with `AUTH_TOKEN_MISMATCH`.
fn refused_connect(server: &Server) {
    let (mut ws, _) = open(server);
    let mut p = connect_params();
    p["auth"] = json!({"token": "not-the-token"});
    match send_connect(&mut ws, &p) {
        Incoming::Json(v) => assert_eq!(v["ok"], false, "{v}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A connection that stops reading while broadcasts pile up: closed 1008 "slow consumer".
fn stall_a_reader(server: &Server, driver: &mut Client) {
    let slow = Client::connect_on(small_rcvbuf_stream(server.addr), server, &connect_params());
    common::flood_until_slow_close(driver, "metrics-test");
    drop(slow);
}

#[test]
fn a_real_prometheus_scrapes_the_original_and_ringgate_families() {
    let server = Server::opts()
        .limits(json!({"maxBufferedBytes": 65536, "tickIntervalMs": 200}))
        .start();
    let prom = Prometheus::start(server.addr);

    // Both scrape paths are up, and every shard answers.
    prom.wait_equal(r#"sum(up{job=~"openclaw|alias"})"#, 2.0);
    prom.wait_equal(r#"sum(ringgate_shard_up{job="openclaw"})"#, 2.0);
    let info = prom.query("openclaw_gateway_build_info");
    assert_eq!(info.len(), 2, "one build_info per job: {info:?}");

    // Load: 20 handshakes held open, 300 requests, one refused token, one stalled reader.
    let mut driver = Client::connect(&server);
    driver.keep_events = false;
    let sys = driver.call("system.info", None);
    assert_eq!(
        info[0]["metric"]["process_instance_id"], sys["processInstanceId"],
        "build_info names the process system.info describes"
    );
    // Scope-less: they get ticks only, so not reading them does not make them slow consumers
    // while the test floods presence to stall its reader.
    let held: Vec<Client> = (0..20)
        .map(|_| Client::connect_with(&server, &params_for("cli", "probe", &[])))
        .collect();
    for _ in 0..150 {
        driver.call("health", None);
        driver.call("status", None);
    }
    refused_connect(&server);
    // One agent turn (the echo agent): a run and its tokens.
    let ack = driver.call(
        "chat.send",
        Some(json!({"sessionKey": "metrics", "message": "count me", "idempotencyKey": "m-1"})),
    );
    assert_eq!(ack["runId"], "m-1", "{ack}");
    stall_a_reader(&server, &mut driver);

    // Handshakes and the open connections, per shard and in total.
    let accepted = prom.wait_at_least(
        r#"sum(ringgate_handshakes_total{job="openclaw",outcome="accepted"})"#,
        22.0,
    );
    assert!(accepted < 40.0, "accepted handshakes {accepted}");
    prom.wait_at_least(
        r#"sum(ringgate_handshake_refusals_total{job="openclaw",reason="AUTH_TOKEN_MISMATCH"})"#,
        1.0,
    );
    prom.wait_at_least(
        r#"sum(ringgate_connections{job="openclaw",role="operator",phase="open"})"#,
        21.0,
    );
    let per_shard =
        prom.query(r#"sum by (shard) (ringgate_connections{job="openclaw",phase="open"})"#);
    assert_eq!(
        per_shard.len(),
        2,
        "connections on both shards: {per_shard:?}"
    );

    // RPC: counts by method, latency histograms with buckets, outcomes.
    prom.wait_at_least(
        r#"sum(openclaw_gateway_rpc_requests_total{job="openclaw",method="health"})"#,
        150.0,
    );
    prom.wait_at_least(
        r#"sum(openclaw_gateway_rpc_requests_total{job="openclaw",method="status"})"#,
        150.0,
    );
    let buckets = prom.query(
        r#"openclaw_gateway_rpc_first_response_seconds_bucket{job="openclaw",method="health"}"#,
    );
    assert!(
        buckets.len() >= 10,
        "first-response buckets: {}",
        buckets.len()
    );
    let p99 = prom
        .scalar(r#"histogram_quantile(0.99, sum by (le) (openclaw_gateway_rpc_handler_seconds_bucket{job="openclaw",method="health"}))"#)
        .expect("a p99 of health's handler time");
    assert!(p99 > 0.0 && p99 < 1.0, "p99 handler seconds {p99}");
    prom.wait_at_least(
        r#"sum(openclaw_gateway_rpc_outcomes_total{job="openclaw",phase="response",outcome="ok"})"#,
        300.0,
    );

    // Frames and bytes moved both ways; broadcasts fanned out and were delivered.
    for q in [
        "ringgate_frames_received_total",
        "ringgate_frames_sent_total",
        "ringgate_received_bytes_total",
        "ringgate_sent_bytes_total",
    ] {
        prom.wait_at_least(&format!(r#"sum({q}{{job="openclaw"}})"#), 300.0);
    }
    prom.wait_at_least(
        r#"sum(ringgate_event_deliveries_total{job="openclaw"})"#,
        20.0,
    );

    // The stalled reader: closed 1008, counted as a slow consumer; presence events were
    // dropped for it before that.
    prom.wait_at_least(
        r#"sum(ringgate_closes_total{job="openclaw",code="1008"})"#,
        2.0,
    );
    prom.wait_at_least(
        r#"sum(ringgate_slow_consumer_closes_total{job="openclaw"})"#,
        1.0,
    );

    // The turn: a completed run with its duration, and the echo agent's token estimate.
    prom.wait_at_least(
        r#"sum(openclaw_run_completed_total{job="openclaw",outcome="ok",trigger="user",channel="webchat"})"#,
        1.0,
    );
    prom.wait_at_least(
        r#"sum(openclaw_model_tokens_total{job="openclaw",agent="main",token_type="output"})"#,
        1.0,
    );
    prom.wait_equal(r#"sum(openclaw_session_queue_depth{job="openclaw"})"#, 0.0);
    // chat.send is answered by the session's owner (maybe on the other shard): its first
    // response is timed when the ack reaches the connection; its handler time is the hand-off.
    prom.wait_at_least(
        r#"sum(openclaw_gateway_rpc_first_response_seconds_count{job="openclaw",method="chat.send"})"#,
        1.0,
    );
    prom.wait_at_least(
        r#"sum(openclaw_gateway_rpc_outcomes_total{job="openclaw",phase="handler",outcome="deferred"})"#,
        1.0,
    );

    // The loops report their windows; the process its memory and descriptors.
    prom.wait_at_least(
        r#"count(openclaw_gateway_event_loop_delay_max_seconds_count{job="openclaw"} > 0)"#,
        2.0,
    );
    prom.wait_at_least(r#"openclaw_memory_bytes{job="openclaw",kind="rss"}"#, 1e6);
    prom.wait_at_least(r#"ringgate_open_fds{job="openclaw"}"#, 20.0);

    // Closing the held connections shows in the gauge.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = prom
            .scalar(r#"sum(ringgate_connections{job="openclaw",role="operator",phase="open"})"#)
            .unwrap_or(0.0);
        if open <= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} connections still open");
        std::thread::sleep(Duration::from_millis(300));
    }

    // A raw scrape passes promtool's lint.
    let raw = get(server.addr, METRICS, Some(TOKEN));
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    use std::io::Write;
    lint.stdin
        .take()
        .unwrap()
        .write_all(raw.body.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every panel of the Grafana dashboard asks valid PromQL that finds data.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/grafana/ringgate.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "dashboard queries: {}", exprs.len());
    // Families whose subject this test does not drive (no node, no store write).
    let undriven = ["ringgate_node_invokes_total"];
    let mut empty = Vec::new();
    for e in &exprs {
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$job", "openclaw");
        // `query` asserts the expression is valid PromQL.
        if prom.query(&q).is_empty() && !undriven.iter().any(|u| e.contains(u)) {
            empty.push(q);
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data after the load: {empty:#?}"
    );
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(e)) = m.get("expr") {
                out.push(e.clone());
            }
            m.values().for_each(|x| collect_exprs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

/// A device's operator token: its scopes decide (`operator.read` or a scope implying it).
fn device_token(server: &Server, seed: u8, scopes: &[&str]) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let (mut ws, ch) = open(server);
    let mut p = connect_params();
    p["scopes"] = json!(scopes);
    let nonce = ch["payload"]["nonce"].as_str().unwrap().to_owned();
    let ts = ch["payload"]["ts"].as_u64().unwrap();
    add_device(&mut p, &key, &nonce, ts);
    match send_connect(&mut ws, &p) {
        Incoming::Json(v) if v["ok"] == true => v["payload"]["auth"]["deviceToken"]
            .as_str()
            .expect("deviceToken")
            .to_owned(),
        other => panic!("expected hello-ok, got {other:?}"),
    }
}

#[test]
fn the_route_answers_with_the_originals_auth_rule() {
    let server = Server::start();
    for path in [METRICS, "/metrics"] {
        let none = get(server.addr, path, None);
        assert_eq!(none.status, 401, "{path}: {none:?}");
        let body: Value = serde_json::from_str(&none.body).unwrap();
        assert_eq!(
            body,
            json!({"error": {"message": "Unauthorized", "type": "unauthorized"}})
        );
        assert_eq!(get(server.addr, path, Some("wrong")).status, 401);
        let ok = get(server.addr, path, Some(TOKEN));
        assert_eq!(ok.status, 200, "{path}: {ok:?}");
        assert!(
            ok.head
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{}",
            ok.head
        );
        assert!(ok
            .body
            .contains("# TYPE openclaw_gateway_rpc_requests_total counter"));
        assert!(ok.body.contains("ringgate_shard_up{shard=\"1\"} 1"));
    }
    let post = http_raw(
        server.addr,
        &format!(
            "POST {METRICS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(post.status, 405);
    assert!(post.head.contains("allow: get, head"), "{}", post.head);
    // The method is checked only for a caller that may read the metrics.
    let anonymous_post = http_raw(
        server.addr,
        &format!(
            "POST {METRICS} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(anonymous_post.status, 401);
    // HEAD: the headers of the exposition, no body.
    let head = http_raw(
        server.addr,
        &format!("HEAD {METRICS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");

    // Device tokens: their own scopes decide.
    let reader = device_token(&server, 41, &["operator.read"]);
    assert_eq!(get(server.addr, METRICS, Some(&reader)).status, 200);
    let writer = device_token(&server, 42, &["operator.write"]);
    assert_eq!(
        get(server.addr, METRICS, Some(&writer)).status,
        200,
        "write implies read"
    );
    let approver = device_token(&server, 43, &["operator.approvals"]);
    let denied = get(server.addr, METRICS, Some(&approver));
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.body, "missing scope: operator.read");
    assert!(
        denied
            .head
            .contains("content-type: text/plain; charset=utf-8"),
        "{}",
        denied.head
    );
    assert!(
        denied.head.contains("cache-control: no-store"),
        "{}",
        denied.head
    );
}

#[test]
fn diagnostics_off_records_nothing_and_the_route_is_empty() {
    let server = Server::opts()
        .config(r#"{diagnostics: {enabled: false}}"#)
        .start();
    let mut c = Client::connect(&server);
    c.call("health", None);
    let r = get(server.addr, METRICS, Some(TOKEN));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "", "diagnostics off: an empty exposition");
    // Turned on by a reload: recording starts from there.
    let base = c.call("config.get", None)["hash"].clone();
    c.call(
        "config.patch",
        Some(json!({"raw": "{diagnostics: {enabled: true}}", "baseHash": base})),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.call("health", None);
        let r = get(server.addr, METRICS, Some(TOKEN));
        if r.body
            .contains("openclaw_gateway_rpc_requests_total{method=\"health\"}")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recording never started: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ringgate_top_shows_every_shard_and_the_busiest_methods() {
    let server = Server::start();
    let mut c = Client::connect(&server);
    let url = format!("http://{}", server.addr);
    let top = Command::new(common::bin())
        .args([
            "top",
            "--url",
            &url,
            "--token",
            TOKEN,
            "--once",
            "--interval",
            "1.5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringgate top");
    // Inside its interval: requests to show as a rate.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..200 {
        c.call("health", None);
    }
    let out = top.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{screen}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(screen.starts_with("ringgate 0.1.0 on "), "{screen}");
    for row in ["0 ", "1 ", "all "] {
        let line = screen
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no shard row {row:?}:\n{screen}"));
        assert!(
            line.contains("yes") || line.contains("2/2"),
            "shard up: {line}"
        );
    }
    let health = screen
        .lines()
        .find(|l| l.starts_with("health "))
        .unwrap_or_else(|| panic!("no health row:\n{screen}"));
    let rate: f64 = health.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(rate > 10.0, "health req/s {rate}: {health}");

    // A wrong token: exit 1 with the reason, no view.
    let out = Command::new(common::bin())
        .args(["top", "--url", &url, "--token", "wrong", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401 unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
