//! ringgate behind a real reverse proxy (Debian's nginx, started by the test): WebSocket and
//! HTTP through it, and who the gateway believes a request is from.
//!
//! * Without `gateway.trustedProxies`, forwarded requests are refused (403
//!   `proxy_attribution_required`): their client cannot be known, and counting them all as the
//!   proxy would put every client behind it under one address's limits.
//! * With the proxy trusted, the address `X-Forwarded-For` names (read right to left, past
//!   loopback and proxy hops) is the client's: presence shows it, and the auth limiter locks
//!   out that address alone, over WebSocket and HTTP.
//!
//! * In `trusted-proxy` auth mode, nginx is an identity-aware proxy (HTTP basic auth, the user
//!   in `X-Forwarded-User`): its users reach the APIs and a device-less Control UI with their
//!   identity scopes; users it does not vouch for, forged identity headers and other peers do
//!   not; a local client connecting directly may use the password.
//!
//! Skips without nginx unless `RINGGATE_REQUIRE_NGINX=1` (as `make test` sets).

mod common;

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{http_raw, recv, send_connect, try_open, Client, Incoming, Server, TempDir, TOKEN};
use serde_json::{json, Value};

/// An nginx proxying everything (upgrades included) to one upstream, adding the peer to
/// `X-Forwarded-For` as a proxy does.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_bin() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Option<Nginx> {
        Nginx::start_with(upstream, &|_| String::new())
    }

    /// An nginx whose proxying location also holds `extra(dir)` (its files live in `dir`).
    fn start_with(
        upstream: SocketAddr,
        extra: &dyn Fn(&std::path::Path) -> String,
    ) -> Option<Nginx> {
        let Some(bin) = nginx_bin() else {
            if std::env::var("RINGGATE_REQUIRE_NGINX").is_ok_and(|v| v == "1") {
                panic!("RINGGATE_REQUIRE_NGINX=1 but nginx is not installed (make nginx-deps)");
            }
            println!("skipping: no nginx (make nginx-deps)");
            return None;
        };
        let dir = TempDir::new("nginx");
        // A free port (nginx cannot report one it picked).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let extra = extra(dir.path());
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_read_timeout 300s;
      {extra}
    }}
  }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Nginx { child, addr, dir })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

const API: &str = r#"http: {endpoints: {chatCompletions: {enabled: true}}}"#;

fn models(addr: SocketAddr, token: &str, client: Option<&str>) -> common::HttpResponse {
    let xff = client
        .map(|c| format!("X-Forwarded-For: {c}\r\n"))
        .unwrap_or_default();
    http_raw(
        addr,
        &format!("GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n{xff}Connection: close\r\n\r\n"),
    )
}

/// A `connect` through the proxy as `client` (sent as the client's own `X-Forwarded-For`, which
/// nginx extends with its peer, loopback here).
fn connect_as(addr: SocketAddr, client: &str, token: &str) -> Value {
    connect_kept(addr, client, token).1
}

/// [`connect_as`], keeping the connection.
fn connect_kept(addr: SocketAddr, client: &str, token: &str) -> (common::Ws, Value) {
    let mut ws = try_open(addr, &[("X-Forwarded-For", client)]).expect("upgrade through nginx");
    let _challenge = recv(&mut ws, Duration::from_secs(5));
    // A desktop app's connect (tracked in presence, unlike the CLI's).
    let mut p = common::params_for("openclaw-linux", "ui", &["operator.admin"]);
    p["auth"]["token"] = json!(token);
    match send_connect(&mut ws, &p) {
        Incoming::Json(v) => (ws, v),
        other => panic!("no connect answer: {other:?}"),
    }
}

#[test]
fn without_trusted_proxies_forwarded_requests_are_refused() {
    let server = Server::opts()
        .config(&format!("{{gateway: {{{API}}}}}"))
        .start();
    let Some(nginx) = Nginx::start(server.addr) else {
        return;
    };
    // The upgrade through nginx carries X-Forwarded-For from an untrusted peer.
    match try_open(nginx.addr, &[]) {
        Err(tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 403);
            let body =
                String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("proxy_attribution_required"), "{body}");
        }
        other => panic!(
            "expected 403 through an untrusted proxy: {other:?}\n{}",
            nginx.log()
        ),
    }
    let r = models(nginx.addr, TOKEN, None);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.body.contains("Configure gateway.trustedProxies"),
        "{}",
        r.body
    );
    // Direct, the same requests are served.
    assert_eq!(models(server.addr, TOKEN, None).status, 200);
    Client::connect(&server);
}

#[test]
fn behind_a_trusted_nginx_the_forwarded_client_is_the_client() {
    let config = format!(r#"{{gateway: {{trustedProxies: ["127.0.0.1"], {API}}}}}"#);
    let server = Server::opts().config(&config).start();
    let Some(nginx) = Nginx::start(server.addr) else {
        return;
    };
    // Over WebSocket: a client's connect goes through, and presence shows its address.
    let (_kept, ok) = connect_kept(nginx.addr, "203.0.113.9", TOKEN);
    assert_eq!(ok["ok"], true, "{ok}\n{}", nginx.log());
    let mut me = Client::connect(&server);
    let presence = me.call("system-presence", None).to_string();
    assert!(presence.contains("203.0.113.9"), "{presence}");

    // Ten wrong tokens lock out that client's address, not the proxy's (which is loopback,
    // never locked) and not another client behind the same proxy.
    // (The other shard hears of each failure over the bus: the lockout may come one late.)
    let rate_limited = |r: &Value| {
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too many failed authentication attempts")
    };
    let mut failures = 0;
    loop {
        let r = connect_as(nginx.addr, "203.0.113.7", "wrong");
        assert_eq!(r["ok"], false, "attempt {failures}: {r}");
        if rate_limited(&r) {
            break;
        }
        failures += 1;
        assert!(failures <= 11, "not locked after {failures} failures");
    }
    assert!(failures >= 10, "locked after {failures} failures");
    let locked = connect_as(nginx.addr, "203.0.113.7", TOKEN);
    assert!(
        locked["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too many failed authentication attempts"),
        "{locked}"
    );
    let other = connect_as(nginx.addr, "203.0.113.8", TOKEN);
    assert_eq!(other["ok"], true, "{other}");

    // Over HTTP: the same limiter, per forwarded client. Each shard tells the others of its
    // failures over the bus, so a request may overtake the latest note (at most one per other
    // shard): the lockout comes after 10 failures, or one more.
    let mut failures = 0;
    while models(nginx.addr, "wrong", Some("198.51.100.1")).status == 401 {
        failures += 1;
        assert!(failures <= 11, "not locked after {failures} failures");
    }
    assert!(failures >= 10, "locked after {failures} failures");
    let r = models(nginx.addr, TOKEN, Some("198.51.100.1"));
    assert_eq!(r.status, 429, "{r:?}");
    assert!(r.head.contains("retry-after:"), "{}", r.head);
    assert_eq!(models(nginx.addr, TOKEN, Some("198.51.100.2")).status, 200);
    // A request that names no client but the proxy's own loopback hop is unattributable.
    let r = models(nginx.addr, TOKEN, None);
    assert_eq!(r.status, 403, "{r:?}");
    // Straight from loopback, with nothing forwarded, a local client is itself.
    assert_eq!(models(server.addr, TOKEN, None).status, 200);
    // Junk in the chain names no client either.
    let r = models(nginx.addr, TOKEN, Some("not-an-ip"));
    assert_eq!(r.status, 403, "{r:?}");
}

/// Sends one request on an open connection and returns its `res` frame.
fn rpc(ws: &mut common::Ws, id: &str, method: &str) -> Value {
    common::send_json(
        ws,
        &json!({"type": "req", "id": id, "method": method, "params": {}}),
    );
    loop {
        match recv(ws, Duration::from_secs(10)) {
            Incoming::Json(v) if v["type"] == "res" && v["id"] == id => return v,
            Incoming::Json(_) => continue,
            other => panic!("no answer to {method}: {other:?}"),
        }
    }
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

#[test]
fn trusted_proxy_auth_believes_the_proxys_user_and_nobody_else() {
    let config = format!(
        r#"{{gateway: {{trustedProxies: ["127.0.0.1"], {API},
            controlUi: {{allowedOrigins: ["https://gw.example.com"]}},
            auth: {{mode: "trusted-proxy", password: "local-pw",
              trustedProxy: {{userHeader: "x-forwarded-user", requiredHeaders: ["x-auth-proof"], allowUsers: ["ann", "bob"], allowLoopback: true}},
              identityScopes: {{ann: ["operator.read", "operator.write"]}}}}}}}}"#
    );
    let server = Server::opts().config(&config).without_token_flag().start();
    // nginx authenticates users (basic auth) and names them; a client's own header is replaced.
    let Some(nginx) = Nginx::start_with(server.addr, &|dir| {
        std::fs::write(
            dir.join("htpasswd"),
            "ann:{PLAIN}ann-pw\nbob:{PLAIN}bob-pw\ncarol:{PLAIN}carol-pw\n",
        )
        .unwrap();
        format!(
            "auth_basic \"gw\"; auth_basic_user_file {}/htpasswd; proxy_set_header X-Forwarded-User $remote_user; proxy_set_header X-Auth-Proof nginx; proxy_set_header Authorization \"\";",
            dir.display()
        )
    }) else {
        return;
    };
    let models_as = |addr: SocketAddr, auth: &str, extra: &str| {
        http_raw(
            addr,
            &format!("GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\nX-Forwarded-For: 203.0.113.20\r\n{extra}Connection: close\r\n\r\n"),
        )
    };
    // Over HTTP: the proxy's users are served; one it does not allow is not; nginx itself
    // refuses a wrong password before ringgate sees it.
    let r = models_as(nginx.addr, &basic("ann", "ann-pw"), "");
    assert_eq!(r.status, 200, "{r:?}\n{}", nginx.log());
    assert!(r.body.contains("openclaw/main"), "{}", r.body);
    let r = models_as(nginx.addr, &basic("carol", "carol-pw"), "");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("\"type\":\"unauthorized\""), "{}", r.body);
    assert_eq!(
        models_as(nginx.addr, &basic("ann", "wrong"), "").status,
        401
    );
    // A forged identity header is overwritten by the proxy with the real user.
    let r = models_as(
        nginx.addr,
        &basic("carol", "carol-pw"),
        "X-Forwarded-User: ann\r\n",
    );
    assert_eq!(r.status, 401, "a forged user got through: {r:?}");
    // Straight to ringgate: no identity; a local client may use the password instead.
    let direct = |auth: &str| {
        http_raw(
            server.addr,
            &format!("GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"),
        )
    };
    assert_eq!(direct("Bearer local-pw").status, 200);
    assert_eq!(direct("Bearer nope").status, 401);
    // A direct request claiming a user, without the proof header nginx adds, is refused.
    let r = models_as(server.addr, "Bearer x", "X-Forwarded-User: ann\r\n");
    assert_eq!(r.status, 401, "{r:?}");

    // Over WebSocket: a device-less Control UI as ann gets ann's identity scopes.
    let ann = basic("ann", "ann-pw");
    let headers = [
        ("Authorization", ann.as_str()),
        ("X-Forwarded-For", "203.0.113.21"),
        ("Origin", "https://gw.example.com"),
    ];
    let mut ws = try_open(nginx.addr, &headers).expect("upgrade through nginx");
    let _challenge = recv(&mut ws, Duration::from_secs(5));
    let mut p = common::params_for("openclaw-control-ui", "webchat", &["operator.admin"]);
    p["auth"] = json!({});
    let hello = match send_connect(&mut ws, &p) {
        Incoming::Json(v) => v,
        other => panic!("no connect answer: {other:?}"),
    };
    assert_eq!(hello["ok"], true, "{hello}\n{}", nginx.log());
    assert_eq!(
        hello["payload"]["auth"]["method"], "trusted-proxy",
        "{hello}"
    );
    let scopes = hello["payload"]["auth"]["scopes"].clone();
    assert_eq!(
        scopes,
        json!(["operator.read", "operator.write"]),
        "{hello}"
    );
    assert_eq!(rpc(&mut ws, "2", "sessions.list")["ok"], true);
    let admin = rpc(&mut ws, "3", "config.apply");
    assert_eq!(
        admin["ok"], false,
        "an admin method with read/write scopes: {admin}"
    );
    assert!(
        admin["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("missing scope: operator.admin"),
        "{admin}"
    );

    // bob is let in but has no identity scopes: a device-less UI gets none.
    let bob = basic("bob", "bob-pw");
    let headers = [
        ("Authorization", bob.as_str()),
        ("X-Forwarded-For", "203.0.113.22"),
        ("Origin", "https://gw.example.com"),
    ];
    let mut ws = try_open(nginx.addr, &headers).expect("upgrade through nginx");
    let _challenge = recv(&mut ws, Duration::from_secs(5));
    let hello = match send_connect(&mut ws, &p) {
        Incoming::Json(v) => v,
        other => panic!("no connect answer: {other:?}"),
    };
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]), "{hello}");

    // carol is refused with the original's message and reason.
    let carol = basic("carol", "carol-pw");
    let headers = [
        ("Authorization", carol.as_str()),
        ("X-Forwarded-For", "203.0.113.23"),
        ("Origin", "https://gw.example.com"),
    ];
    let mut ws = try_open(nginx.addr, &headers).expect("upgrade through nginx");
    let _challenge = recv(&mut ws, Duration::from_secs(5));
    let refused = match send_connect(&mut ws, &p) {
        Incoming::Json(v) => v,
        other => panic!("no connect answer: {other:?}"),
    };
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["message"], "unauthorized");
    assert_eq!(
        refused["error"]["details"]["authReason"],
        "trusted_proxy_user_not_allowed"
    );
    assert_eq!(refused["error"]["details"]["code"], "AUTH_UNAUTHORIZED");

    // A direct connect names no proxy user: refused, unless the local client has the password.
    let mut ws = try_open(server.addr, &[]).expect("direct upgrade");
    let _challenge = recv(&mut ws, Duration::from_secs(5));
    let mut cli = common::connect_params();
    cli["auth"] = json!({"password": "local-pw"});
    match send_connect(&mut ws, &cli) {
        Incoming::Json(v) => {
            assert_eq!(v["ok"], true, "{v}");
            assert_eq!(v["payload"]["auth"]["method"], "password", "{v}");
        }
        other => panic!("no connect answer: {other:?}"),
    }
    let mut ws = try_open(server.addr, &[]).expect("direct upgrade");
    let _challenge = recv(&mut ws, Duration::from_secs(5));
    cli["auth"] = json!({});
    match send_connect(&mut ws, &cli) {
        Incoming::Json(v) => {
            assert_eq!(v["ok"], false, "{v}");
            assert_eq!(
                v["error"]["details"]["authReason"], "trusted_proxy_missing_header_x-auth-proof",
                "{v}"
            );
            assert_eq!(
                v["error"]["details"]["code"], "AUTH_IDENTITY_HEADER_REQUIRED",
                "{v}"
            );
        }
        other => panic!("no connect answer: {other:?}"),
    }
}
