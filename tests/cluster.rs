//! Several ringgate hosts as one gateway over a real NATS server (JetStream on): each test
//! starts `nats-server` and three `ringgate run` processes on loopback ports, and talks to
//! them as clients do.

mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{nats::Nats, params_for, Client, Server, TempDir};
use serde_json::{json, Value};

/// A peer is declared dead after this long without a heartbeat (the default is 5 s).
const DEAD_AFTER_MS: u64 = 2_000;

/// One host of the cluster, named `name`.
fn host(nats: &Nats, name: &str) -> Server {
    host_in(nats, name, None)
}

fn host_in(nats: &Nats, name: &str, state: Option<&std::path::Path>) -> Server {
    host_configured(nats, name, state, "")
}

/// A host with more of `ringgate`'s config (`extra`: keys of the `ringgate` object, each
/// followed by a comma).
fn host_with(nats: &Nats, name: &str, extra: &str) -> Server {
    host_configured(nats, name, None, extra)
}

fn host_configured(
    nats: &Nats,
    name: &str,
    state: Option<&std::path::Path>,
    extra: &str,
) -> Server {
    let mut opts = Server::opts().config(&format!(
        "{{ ringgate: {{ {extra} cluster: {{ nats: \"{}\", name: \"{name}\", deadAfterMs: {DEAD_AFTER_MS} }} }} }}",
        nats.url()
    ));
    if let Some(dir) = state {
        opts = opts.state_dir(dir);
    }
    opts.start()
}

fn three(nats: &Nats) -> [Server; 3] {
    [
        host(nats, "host-a"),
        host(nats, "host-b"),
        host(nats, "host-c"),
    ]
}

/// NATS and three hosts, with a client of the first that has seen all three alive.
fn three_alive() -> (Nats, [Server; 3], Client) {
    let nats = Nats::start();
    let hosts = three(&nats);
    let mut ask = asker(&hosts[0]);
    wait_alive(&mut ask, 3, Duration::from_secs(10));
    (nats, hosts, ask)
}

/// A presence-tracked operator client (mode `ui`) with this instance id. Without a device
/// identity it holds no scopes (as on the original), so it receives no events.
fn ui_client(server: &Server, instance: &str) -> Client {
    let mut p = params_for("openclaw-linux", "ui", &["operator.admin"]);
    p["client"]["instanceId"] = json!(instance);
    Client::connect_with(server, &p)
}

/// An untracked operator client (mode `cli`) with the shared token: it asks, and watches.
fn asker(server: &Server) -> Client {
    Client::connect(server)
}

fn presence_entry(c: &mut Client, instance: &str) -> Option<Value> {
    let list = c.call("system-presence", None);
    list.as_array()?
        .iter()
        .find(|e| e["instanceId"] == instance)
        .cloned()
}

/// Polls `system-presence` on `c` until `pred` holds for the entry of `instance` (or there
/// is none and `pred(None)` holds).
fn wait_presence(
    c: &mut Client,
    instance: &str,
    within: Duration,
    pred: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let e = presence_entry(c, instance);
        if pred(e.as_ref()) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "presence of {instance} never matched; last: {e:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cluster_of(c: &mut Client) -> Value {
    c.call("health", None)["gateway"]["cluster"].clone()
}

/// Waits until `c`'s host sees `n` live hosts (itself included).
fn wait_alive(c: &mut Client, n: u64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = cluster_of(c);
        if v["alive"] == n {
            return v;
        }
        assert!(Instant::now() < deadline, "never {n} alive: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn member<'a>(cluster: &'a Value, name: &str) -> &'a Value {
    cluster["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("no member {name}: {cluster}"))
}

#[test]
fn without_nats_or_jetstream_the_host_does_not_start() {
    let dir = TempDir::new("cluster-nonats");
    // Nothing listens on a port we just closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = |url: &str| {
        let out = Command::new(common::bin())
            .args(["run", "--port", "0", "--token", "T", "--state-dir"])
            .arg(dir.path())
            .args(["--cluster-nats", url, "--cluster-name", "lonely"])
            .stdin(Stdio::null())
            .output()
            .expect("run ringgate");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, err, out) = run(&format!("nats://127.0.0.1:{port}"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ringgate: cannot join the cluster: NATS at nats://127.0.0.1:")
            && err.contains("unreachable"),
        "{err}"
    );
    assert!(!out.contains("listening"), "it must not serve alone: {out}");

    let (code, err, _) = run("http://127.0.0.1:1");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not a NATS URL"), "{err}");

    let plain = Nats::without_jetstream();
    let (code, err, _) = run(&plain.url());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("JetStream is not enabled"), "{err}");
    assert!(err.contains("-js"), "the error says how to fix it: {err}");

    // A bad host name is a configuration error, before any connection.
    let out = Command::new(common::bin())
        .args(["run", "--port", "0", "--token", "T", "--state-dir"])
        .arg(dir.path())
        .args(["--cluster-nats", &plain.url(), "--cluster-name", "a.b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ringgate.cluster.name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// NATS with a password: a host without it is refused at start (exit 2, saying so); a host
/// with it in the URL joins, and the password shows in neither `health` nor the logs.
#[test]
fn a_nats_login_in_the_url_is_used_and_never_shown() {
    let nats = Nats::with_login("rg", "s3cret-pw");
    let dir = TempDir::new("cluster-login");
    let out = Command::new(common::bin())
        .args(["run", "--port", "0", "--token", "T", "--state-dir"])
        .arg(dir.path())
        .args(["--cluster-nats", &nats.url(), "--cluster-name", "nologin"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused this host"), "{err}");
    let url = format!("nats://rg:s3cret-pw@127.0.0.1:{}", nats.port);
    let server = Server::opts()
        .config(&format!(
            "{{ ringgate: {{ cluster: {{ nats: \"{url}\", name: \"with-login\" }} }} }}"
        ))
        .start();
    let mut c = asker(&server);
    let cluster = wait_alive(&mut c, 1, Duration::from_secs(10));
    assert_eq!(cluster["connected"], true, "{cluster}");
    assert_eq!(
        cluster["nats"],
        format!("nats://127.0.0.1:{}", nats.port),
        "{cluster}"
    );
    turn(&mut c, "with-login", "hi", "l-1");
    assert!(
        !server.stderr().contains("s3cret-pw"),
        "{}",
        server.stderr()
    );
    let config = c.call("config.get", None).to_string();
    assert!(
        !config.contains("s3cret-pw"),
        "config.get redacts it: {config}"
    );
}

#[test]
fn presence_and_broadcasts_reach_every_host_with_gap_free_seq() {
    let (_nats, [a, b, c], mut ask_a) = three_alive();
    // A watcher on A: every event it gets carries the next seq, whichever host it came from.
    let mut watcher = asker(&a);
    let mut seen: Vec<u64> = Vec::new();

    // A client on B appears in A's and C's presence.
    let on_b = ui_client(&b, "inst-b");
    let mut ask_c = asker(&c);
    for ask in [&mut ask_a, &mut ask_c] {
        let e = wait_presence(ask, "inst-b", Duration::from_secs(5), |e| {
            e.is_some_and(|e| e["reason"] == "connect")
        })
        .unwrap();
        assert_eq!(e["mode"], "ui");
        assert_eq!(e["clientId"], "openclaw-linux");
    }
    // ... and the watcher was told with a `presence` event listing it.
    let ev = watcher.wait_event_where("presence", Duration::from_secs(5), |ev| {
        ev["payload"]["presence"]
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["instanceId"] == "inst-b"))
    });
    seen.extend(ev["seq"].as_u64());

    // A node on C: `node.presence` (an ordinary broadcast) reaches operators on A and B.
    let mut on_b2 = asker(&b);
    let node = Client::connect_node(&c, 7, &["system.run"], 0);
    for (i, w) in [&mut watcher, &mut on_b2].into_iter().enumerate() {
        let ev = w.wait_event("node.presence", Duration::from_secs(5));
        assert_eq!(ev["payload"]["connected"], true, "{ev}");
        if i == 0 {
            seen.extend(ev["seq"].as_u64());
        }
    }
    node.close();
    for (i, w) in [&mut watcher, &mut on_b2].into_iter().enumerate() {
        let ev = w.wait_event_where("node.presence", Duration::from_secs(5), |ev| {
            ev["payload"]["connected"] == false
        });
        if i == 0 {
            seen.extend(ev["seq"].as_u64());
        }
    }

    // B's client leaves: A sees it disconnected.
    on_b.close();
    wait_presence(&mut ask_a, "inst-b", Duration::from_secs(5), |e| {
        e.is_some_and(|e| e["reason"] == "disconnect")
    });
    let ev = watcher.wait_event_where("presence", Duration::from_secs(5), |ev| {
        ev["payload"]["presence"].as_array().is_some_and(|l| {
            l.iter()
                .any(|e| e["instanceId"] == "inst-b" && e["reason"] == "disconnect")
        })
    });
    seen.extend(ev["seq"].as_u64());

    // Every sequenced event the watcher received, local or remote, in one gap-free run.
    let mut seqs: Vec<u64> = watcher
        .events
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .chain(seen)
        .collect();
    seqs.sort_unstable();
    assert!(seqs.len() >= 4, "{seqs:?}");
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap in seq: {seqs:?}");
    }
}

#[test]
fn health_lists_members_and_a_lost_host_takes_its_clients_with_it() {
    let nats = Nats::start();
    let [a, mut b, mut c] = three(&nats);
    let mut ask_a = asker(&a);
    let cluster = wait_alive(&mut ask_a, 3, Duration::from_secs(10));
    assert_eq!(cluster["host"], "host-a");
    assert_eq!(cluster["connected"], true);
    let mb = member(&cluster, "host-b");
    assert_eq!(mb["alive"], true);
    assert_eq!(mb["url"], format!("ws://{}", b.addr));
    // The same in the Prometheus exposition.
    let scrape = common::http_raw(
        a.addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer T\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    for line in [
        "ringgate_cluster_link_up 1",
        "ringgate_cluster_members{state=\"alive\"} 3",
        "ringgate_cluster_members{state=\"dead\"} 0",
    ] {
        assert!(
            scrape.body.lines().any(|l| l == line),
            "no `{line}` in:\n{}",
            scrape.body
        );
    }

    // kill -9: no goodbye; A notices the silence after deadAfterMs and marks C's client gone.
    let _on_c = ui_client(&c, "inst-c");
    wait_presence(&mut ask_a, "inst-c", Duration::from_secs(5), |e| {
        e.is_some_and(|e| e["reason"] == "connect")
    });
    let killed = Instant::now();
    c.kill9();
    wait_presence(&mut ask_a, "inst-c", Duration::from_secs(10), |e| {
        e.is_some_and(|e| e["reason"] == "disconnect")
    });
    let noticed = killed.elapsed();
    assert!(
        noticed >= Duration::from_millis(DEAD_AFTER_MS),
        "declared dead before deadAfterMs: {noticed:?}"
    );
    let cluster = wait_alive(&mut ask_a, 2, Duration::from_secs(5));
    assert_eq!(member(&cluster, "host-c")["alive"], false);

    // A graceful stop says goodbye: B's client is gone on A well before deadAfterMs.
    let _on_b = ui_client(&b, "inst-b2");
    wait_presence(&mut ask_a, "inst-b2", Duration::from_secs(5), |e| {
        e.is_some_and(|e| e["reason"] == "connect")
    });
    b.sigterm();
    let stopped = Instant::now();
    wait_presence(&mut ask_a, "inst-b2", Duration::from_secs(10), |e| {
        e.is_some_and(|e| e["reason"] == "disconnect")
    });
    b.wait_exit(Duration::from_secs(10));
    assert!(
        stopped.elapsed() < Duration::from_millis(DEAD_AFTER_MS),
        "a leaving host should not wait for the timeout: {:?}",
        stopped.elapsed()
    );
    wait_alive(&mut ask_a, 1, Duration::from_secs(5));
}

#[test]
fn nats_restart_is_survived_and_presence_resyncs() {
    let mut nats = Nats::start();
    let a = host(&nats, "host-a");
    let b = host(&nats, "host-b");
    let mut ask_a = asker(&a);
    wait_alive(&mut ask_a, 2, Duration::from_secs(10));
    let ready = |s: &Server| {
        common::http_raw(
            s.addr,
            "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(&a).status != 200 {
        assert!(Instant::now() < deadline, "not ready: {}", ready(&a).body);
        std::thread::sleep(Duration::from_millis(100));
    }

    nats.kill();
    // A notices: /readyz fails with `cluster`, health says disconnected.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = ready(&a);
        if r.status == 503 {
            assert!(r.body.contains("cluster"), "{}", r.body);
            break;
        }
        assert!(Instant::now() < deadline, "readyz stayed {}", r.status);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cluster_of(&mut ask_a)["connected"], false);
    // Still serving its own clients meanwhile; a client arrives on B while NATS is away.
    let _on_b = ui_client(&b, "inst-during-outage");

    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready(&a).status != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cluster_of(&mut ask_a)["connected"], true);
    // The change A missed arrives with B's snapshot after the reconnect.
    wait_presence(
        &mut ask_a,
        "inst-during-outage",
        Duration::from_secs(10),
        |e| e.is_some_and(|e| e["reason"] == "connect"),
    );
    // Both processes are still the ones started.
    wait_alive(&mut ask_a, 2, Duration::from_secs(10));
    drop(b);
}

#[test]
fn the_real_cli_sees_the_whole_cluster_from_any_host() {
    let Some(oc) = openclaw() else { return };
    let nats = Nats::start();
    let [a, b, _c] = three(&nats);
    let mut ask_b = asker(&b);
    wait_alive(&mut ask_b, 3, Duration::from_secs(10));
    let _on_a = ui_client(&a, "inst-cli-a");
    wait_presence(&mut ask_b, "inst-cli-a", Duration::from_secs(5), |e| {
        e.is_some()
    });
    let home = TempDir::new("cli-home");
    for server in [&a, &b] {
        let (code, list, all) = cli_json(
            &oc,
            home.path(),
            server,
            &["gateway", "call", "system-presence"],
        );
        assert_eq!(code, Some(0), "{all}");
        assert!(list.is_array(), "a JSON list: {all}");
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["instanceId"] == "inst-cli-a")
            .unwrap_or_else(|| panic!("no inst-cli-a via {}: {list:#}", server.url()));
        assert_eq!(entry["mode"], "ui");
    }
}

/// The pinned OpenClaw CLI, or `None` when the test should be skipped.
fn openclaw() -> Option<std::path::PathBuf> {
    let required = std::env::var("RINGGATE_REQUIRE_CONFORMANCE").is_ok_and(|v| v == "1");
    match std::env::var_os("OPENCLAW_CLIENT_DIR").filter(|d| !d.is_empty()) {
        Some(d) => Some(std::path::PathBuf::from(d).join("bin/openclaw")),
        None if required => {
            panic!("RINGGATE_REQUIRE_CONFORMANCE=1 but OPENCLAW_CLIENT_DIR is not set")
        }
        None => {
            println!("skipping: OPENCLAW_CLIENT_DIR not set (run make test)");
            None
        }
    }
}

/// Connects with a device identity from `seed`; `auth` replaces the connect params' `auth`.
fn connect_device(server: &Server, seed: u8, auth: Value) -> (common::Ws, common::Incoming) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let (mut ws, ch) = common::open(server);
    let nonce = ch["payload"]["nonce"].as_str().unwrap().to_owned();
    let ts = ch["payload"]["ts"].as_u64().unwrap();
    let mut p = common::connect_params();
    p["auth"] = auth;
    common::add_device(&mut p, &key, &nonce, ts);
    let first = common::send_connect(&mut ws, &p);
    (ws, first)
}

fn hello_of(first: common::Incoming) -> Value {
    match first {
        common::Incoming::Json(v) if v["ok"] == true => v["payload"].clone(),
        other => panic!("expected hello-ok, got {other:?}"),
    }
}

/// Connects with the device token until `server` knows the device (the shared record reaches
/// it within moments), returning the open connection.
fn connect_with_token_eventually(server: &Server, seed: u8, token: &str) -> common::Ws {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ws, first) = connect_device(server, seed, json!({"deviceToken": token}));
        match first {
            common::Incoming::Json(v) if v["ok"] == true => {
                assert_eq!(v["payload"]["auth"]["method"], "device-token", "{v}");
                return ws;
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "never accepted on {}: {other:?}",
                    server.url()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn a_device_paired_on_one_host_is_known_to_all_and_revoked_everywhere() {
    let (_nats, [a, b, c], _) = three_alive();
    // Paired on A (silently: a loopback device), with a device token.
    let (_on_a, first) = connect_device(&a, 21, json!({"token": common::TOKEN}));
    let token = hello_of(first)["auth"]["deviceToken"]
        .as_str()
        .expect("deviceToken")
        .to_owned();
    let device_id = common::device_id(
        &ed25519_dalek::SigningKey::from_bytes(&[21; 32])
            .verifying_key()
            .to_bytes(),
    );
    // B and C accept the device token alone, and list the device.
    let mut on_b = connect_with_token_eventually(&b, 21, &token);
    let mut on_c = connect_with_token_eventually(&c, 21, &token);
    let listed = asker(&b).call("device.pair.list", None);
    assert!(
        listed["paired"]
            .as_array()
            .is_some_and(|l| l.iter().any(|d| d["deviceId"] == device_id.as_str())),
        "{listed}"
    );

    // Revoked on A: the connections on B and C close with 4001, and the token is refused there.
    let r = asker(&a).call(
        "device.token.revoke",
        Some(json!({"deviceId": device_id, "role": "operator"})),
    );
    assert!(r["revokedAtMs"].is_u64(), "{r}");
    for ws in [&mut on_b, &mut on_c] {
        assert_eq!(
            common::expect_close(ws, Duration::from_secs(10)),
            (4001, "device removed".to_owned())
        );
    }
    let (_ws, first) = connect_device(&b, 21, json!({"deviceToken": token}));
    match first {
        common::Incoming::Json(v) => assert_eq!(
            v["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
            "{v}"
        ),
        other => panic!("{other:?}"),
    }

    // Removed on B (the other direction): gone from A's list too.
    asker(&b).call("device.pair.remove", Some(json!({"deviceId": device_id})));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ask_a = asker(&a);
    loop {
        let list = ask_a.call("device.pair.list", None);
        if !list["paired"]
            .as_array()
            .is_some_and(|l| l.iter().any(|d| d["deviceId"] == device_id.as_str()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "still paired on A: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `openclaw <args> --url <server> --token T --json`, parsed (bounded by the CLI's own
/// timeouts).
fn cli_json(
    oc: &std::path::Path,
    home: &std::path::Path,
    server: &Server,
    args: &[&str],
) -> (Option<i32>, Value, String) {
    let out = Command::new(oc)
        .args(args)
        .args(["--json", "--url"])
        .arg(server.url())
        .args(["--token", common::TOKEN])
        .env("HOME", home)
        .env("OPENCLAW_CLIENT_HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = text.find(['{', '[']).unwrap_or(text.len());
    let v = serde_json::from_str(text[start..].trim()).unwrap_or(Value::Null);
    let all = format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), v, all)
}

#[test]
fn node_invoke_from_one_host_reaches_a_real_node_host_on_another() {
    let Some(oc) = openclaw() else { return };
    let (_nats, [a, b, c], _) = three_alive();
    let home = TempDir::new("node-cli");
    let node_home = TempDir::new("node-host");
    let port = c.addr.port().to_string();
    let mut node = Command::new(&oc)
        .args(["node", "run", "--host", "127.0.0.1", "--port", &port])
        .env("HOME", node_home.path())
        .env("OPENCLAW_CLIENT_HOME", node_home.path())
        .env("OPENCLAW_GATEWAY_TOKEN", common::TOKEN)
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openclaw node run");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _node = Kill(&mut node);

    // The node host asks C for its capabilities; an operator approves there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pending = loop {
        let (_, list, _) = cli_json(&oc, home.path(), &c, &["nodes", "pending"]);
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break list;
        }
        assert!(Instant::now() < deadline, "no pending node request on C");
        std::thread::sleep(Duration::from_millis(500));
    };
    let request_id = pending[0]["requestId"].as_str().unwrap().to_owned();
    let node_id = pending[0]["nodeId"].as_str().unwrap().to_owned();
    let (code, _, all) = cli_json(&oc, home.path(), &c, &["nodes", "approve", &request_id]);
    assert_eq!(code, Some(0), "{all}");

    // A and B list it as connected, and invoke it through C.
    for server in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, list, _) = cli_json(&oc, home.path(), server, &["nodes", "list"]);
            let connected = list["paired"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|n| n["nodeId"] == node_id.as_str() && n["connected"] == true)
            });
            if connected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node not connected via {}: {list}",
                server.url()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        let (code, res, all) = cli_json(
            &oc,
            home.path(),
            server,
            &[
                "nodes",
                "invoke",
                "--node",
                &node_id,
                "--command",
                "system.which",
                "--params",
                r#"{"bins":["sh"]}"#,
            ],
        );
        assert_eq!(code, Some(0), "{all}");
        assert_eq!(res["ok"], true, "{res}");
        assert!(
            res["payload"]["bins"]["sh"]
                .as_str()
                .is_some_and(|p| p.ends_with("/sh")),
            "the node's real answer through another host: {res}"
        );
    }

    // C goes away: A no longer lists the node, and an invoke says it is not connected.
    let mut c = c;
    c.kill9();
    let mut ask = asker(&a);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = ask.call("node.list", None);
        let live = list["nodes"].as_array().is_some_and(|l| {
            l.iter()
                .any(|n| n["nodeId"] == node_id.as_str() && n["connected"] == true)
        });
        if !live {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node still listed after its host died: {list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let err = ask.call_err(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": "system.which", "params": {"bins": ["sh"]}, "idempotencyKey": "k-after"})),
    );
    assert_eq!(err["details"]["code"], "NOT_CONNECTED", "{err}");
}

#[test]
fn an_exec_approval_requested_on_one_host_is_resolved_from_another() {
    let (_nats, [_a, b, c], mut on_a) = three_alive();
    // The approver is on B; the requester on C; the table lives on A (the smallest name).
    let mut p = common::connect_params();
    p["caps"] = json!(["exec-approvals"]);
    let mut approver = Client::connect_with(&b, &p);
    // C learns of B's approver from B's heartbeat.
    std::thread::sleep(Duration::from_millis(1500));
    let mut req = asker(&c);
    let id = req.send_request(
        "exec.approval.request",
        Some(json!({"id": "ap-x", "command": "rm -rf /tmp/x", "cwd": "/tmp", "twoPhase": true})),
    );
    let accepted = req.wait_response(&id, Duration::from_secs(10));
    assert_eq!(accepted["payload"]["status"], "accepted", "{accepted}");
    assert_eq!(accepted["payload"]["deliveryRoute"], "approval-client");
    let ev = approver.wait_event("exec.approval.requested", Duration::from_secs(10));
    assert_eq!(ev["payload"]["id"], "ap-x");
    // Listed from every host (they all ask A).
    for asker_ in [&mut on_a, &mut approver] {
        let list = asker_.call("exec.approval.list", Some(json!({})));
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    }
    let ok = approver.call(
        "exec.approval.resolve",
        Some(json!({"id": "ap-x", "decision": "allow-once"})),
    );
    assert_eq!(ok, json!({"ok": true}));
    let fin = req.wait_response(&id, Duration::from_secs(10));
    assert_eq!(fin["payload"]["decision"], "allow-once", "{fin}");
    let again = approver.call_err(
        "exec.approval.resolve",
        Some(json!({"id": "ap-x", "decision": "deny"})),
    );
    assert_eq!(
        again["details"]["reason"], "APPROVAL_ALREADY_RESOLVED",
        "one table: {again}"
    );
}

/// Publishes raw messages to NATS (the text protocol), as a misbehaving or hostile peer would.
fn nats_publish(nats: &Nats, msgs: &[(&str, Vec<u8>)]) {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", nats.port)).unwrap();
    let mut info = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_line(&mut info)
        .unwrap();
    assert!(info.starts_with("INFO"), "{info}");
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
        .unwrap();
    for (subject, payload) in msgs {
        s.write_all(format!("PUB {subject} {}\r\n", payload.len()).as_bytes())
            .unwrap();
        s.write_all(payload).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"PING\r\n").unwrap();
    let mut pong = String::new();
    BufReader::new(s).read_line(&mut pong).unwrap();
}

#[test]
fn garbage_on_the_cluster_subjects_is_counted_and_changes_nothing() {
    let (nats, [_a, b, _c], mut ask_a) = three_alive();
    let mut msgs: Vec<(&str, Vec<u8>)> = vec![
        ("ringgate.events", b"not json".to_vec()),
        ("ringgate.events", b"{\"o\":\"x\",\"n\":\"chat\"}\n{\"type\":\"res\"}\n}".to_vec()),
        ("ringgate.events", vec![0xff; 4096]),
        ("ringgate.presence", b"{\"o\":\"x\",\"entries\":7}".to_vec()),
        ("ringgate.beats", b"{\"host\":5}".to_vec()),
        ("ringgate.nodes", b"[1,2,3]".to_vec()),
        ("ringgate.host.host-a", b"{\"k\":\"reply\",\"to\":99,\"conn\":1,\"frame\":\"x\"}".to_vec()),
        ("ringgate.host.host-a", b"{\"k\":\"done\",\"o\":\"x\",\"to\":0,\"id\":\"nope\",\"outcome\":{\"Ok\":{\"payload\":1,\"payload_json\":null}}}".to_vec()),
        ("$KV.ringgate_devices.abc", b"{\"o\":\"x\",\"device\":{\"deviceId\":\"other\"}}".to_vec()),
        ("ringgate.runs", b"{\"k\":\"ended\",\"o\":\"x\"}".to_vec()),
        ("ringgate.runs", format!("{{\"k\":\"started\",\"o\":\"x\",\"run\":\"r\",\"key\":\"{}\",\"at\":1}}", "k".repeat(5_000)).into_bytes()),
        // A session call whose key is not in canonical form.
        ("ringgate.host.host-a", b"{\"k\":\"session\",\"o\":\"x\",\"from\":0,\"conn\":1,\"req\":\"r\",\"key\":\"AGENT:Main:X\",\"agent\":\"main\",\"op\":\"Reset\"}".to_vec()),
        // The session record: not rows, and rows of a table that is not a session table.
        ("ringgate.sess.0000", b"not rows".to_vec()),
        ("ringgate.sess.0001", b"[[\"devices\",0,{\"device_id\":\"x\",\"row\":\"{}\",\"updated_at_ms\":1}]]".to_vec()),
    ];
    // A presence entry with an oversized key, and a flood of beats from made-up hosts.
    let long_key = format!(
        "{{\"o\":\"x\",\"entries\":[{{\"key\":\"{}\",\"fields\":{{}},\"ts\":1}}]}}",
        "k".repeat(10_000)
    );
    msgs.push(("ringgate.presence", long_key.into_bytes()));
    let beats: Vec<String> = (0..2_000)
        .map(|i| format!("{{\"host\":\"fake-{i}\",\"startedMs\":1,\"started_ms\":1}}"))
        .collect();
    for b in &beats {
        msgs.push(("ringgate.beats", b.clone().into_bytes()));
    }
    nats_publish(&nats, &msgs);

    // Every host is up, counted what it refused, and still works as a cluster.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cluster = loop {
        let v = cluster_of(&mut ask_a);
        if v["malformed"].as_u64().unwrap_or(0) >= 11 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "malformed messages not counted: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let members = cluster["members"].as_array().unwrap().len();
    assert!(members <= 1024, "the member table is bounded: {members}");
    let _on_b = ui_client(&b, "after-garbage");
    wait_presence(&mut ask_a, "after-garbage", Duration::from_secs(5), |e| {
        e.is_some_and(|e| e["reason"] == "connect")
    });
    let list = ask_a.call("system-presence", None);
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("kkkkkkkkkk")),
        "the oversized key was refused"
    );
    let _ = ask_a.call("device.pair.list", None);
    assert_eq!(ask_a.call("health", None)["ok"], true);
    // Sessions still work across hosts after the junk in their record.
    turn(&mut ask_a, "after-garbage", "still here", "g-1");
    wait_history(
        &mut asker(&b),
        "after-garbage",
        &["still here", "echo: still here"],
        Duration::from_secs(10),
    );
    let devices = ask_a.call("device.pair.list", None).to_string();
    assert!(
        !devices.contains("\"deviceId\":\"x\""),
        "rows of another table in the session record were refused: {devices}"
    );
}

#[test]
fn devices_paired_before_joining_are_added_to_the_shared_record() {
    let nats = Nats::start();
    let state = TempDir::new("joining-host");
    // Paired while the host ran alone.
    let mut alone = Server::opts().state_dir(state.path()).start();
    let (_ws, first) = connect_device(&alone, 33, json!({"token": common::TOKEN}));
    let token = hello_of(first)["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(_ws);
    alone.sigterm();
    alone.wait_exit(Duration::from_secs(10));
    // The same state joins a cluster: the other host accepts the device's token.
    let _a = host_in(&nats, "host-a", Some(state.path()));
    let b = host(&nats, "host-b");
    let _ws = connect_with_token_eventually(&b, 33, &token);
}

/// While sessions are per host, a session's events stay on the host serving it: a client of
/// another host watching the same key sees none of them (its host's session of that key is a
/// different transcript).
fn texts(h: &Value) -> Vec<String> {
    h["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| match &m["content"] {
                    Value::String(s) => s.clone(),
                    v => v[0]["text"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `chat.history` of `key` on `c` until its texts are `want` (another host's writes
/// reach this host's cache a moment after their acknowledgement).
fn wait_history(c: &mut Client, key: &str, want: &[&str], within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let h = c.call("chat.history", Some(json!({"sessionKey": key})));
        if texts(&h) == want {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "history of {key} never became {want:?}: {h}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a chat turn and waits for its final event; returns the ack. The ack may take a few
/// seconds on a host that has just started (it settles its view of the cluster first).
fn turn(c: &mut Client, key: &str, message: &str, run: &str) -> Value {
    let id = c.send_request(
        "chat.send",
        Some(json!({"sessionKey": key, "message": message, "idempotencyKey": run})),
    );
    let res = c.wait_response(&id, Duration::from_secs(20));
    assert_eq!(res["ok"], true, "chat.send failed: {res}");
    let ack = res["payload"].clone();
    c.wait_event_where("chat", Duration::from_secs(15), |e| {
        e["payload"]["runId"] == run && e["payload"]["state"] == "final"
    });
    ack
}

/// A session is owned by the first host that serves it; a client of another host chats in
/// it through that owner (its ack and the run's events come back across), and every host
/// reads the same transcript, the real CLI included.
#[test]
fn a_chat_turn_through_one_host_runs_on_the_sessions_owner() {
    let (nats, hosts, mut on_a) = three_alive();
    turn(&mut on_a, "shared", "hello from a", "run-a");
    let mut on_b = asker(&hosts[1]);
    let ack = turn(&mut on_b, "shared", "hello from b", "run-b");
    assert_eq!(ack["runId"], "run-b", "{ack}");
    // B's client saw the run stream from A: the deltas and final carry A's reply.
    let want = [
        "hello from a",
        "echo: hello from a",
        "hello from b",
        "echo: hello from b",
    ];
    let h = wait_history(&mut on_b, "shared", &want, Duration::from_secs(10));
    assert_eq!(h["sessionInfo"]["key"], "agent:main:shared", "{h}");
    let mut on_c = asker(&hosts[2]);
    wait_history(&mut on_c, "shared", &want, Duration::from_secs(10));
    // Watchers on A see B's turn too (the events are the owner's, wherever asked).
    on_a.wait_event_where("chat", Duration::from_secs(5), |e| {
        e["payload"]["runId"] == "run-b" && e["payload"]["state"] == "final"
    });
    // Any host's run index knows the owner's runs.
    let w = on_c.call(
        "agent.wait",
        Some(json!({"runId": "run-b", "timeoutMs": 2_000})),
    );
    assert_eq!(w["status"], "ok", "{w}");
    // The same idempotency key through a third host is the same run, not a second turn.
    let again = on_c.call(
        "chat.send",
        Some(json!({"sessionKey": "shared", "message": "hello from b", "idempotencyKey": "run-b"})),
    );
    assert_eq!(again["runId"], "run-b", "{again}");
    wait_history(&mut on_c, "shared", &want, Duration::from_secs(5));
    let listed = on_c.call("sessions.list", None);
    assert!(
        listed["sessions"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["key"] == "agent:main:shared")),
        "{listed}"
    );
    // A host that has just started has not heard every heartbeat yet: it must not take a
    // live owner's session over, only send it its calls.
    let d = host(&nats, "host-d");
    let mut on_d = asker(&d);
    turn(&mut on_d, "shared", "hello from d", "run-d");
    assert!(
        !d.stderr().contains("took over"),
        "a new host stole a live owner's session: {}",
        d.stderr()
    );
    let mut want_d = want.to_vec();
    want_d.extend(["hello from d", "echo: hello from d"]);
    wait_history(&mut on_a, "shared", &want_d, Duration::from_secs(10));
    if let Some(oc) = openclaw() {
        let home = TempDir::new("cluster-cli-chat");
        let params = json!({"sessionKey": "shared"}).to_string();
        for server in [&hosts[0], &hosts[1]] {
            let (code, v, all) = cli_json(
                &oc,
                home.path(),
                server,
                &["gateway", "call", "chat.history", "--params", &params],
            );
            assert_eq!(code, Some(0), "{all}");
            assert_eq!(texts(&v), want_d, "{all}");
        }
    }
}

/// The owner host dies with a turn in flight: after the cluster declares it dead, the
/// session continues on a survivor, whose transcript holds every acknowledged message (the
/// cut-off reply was never acknowledged) and whose run record says the turn was interrupted.
#[test]
fn the_session_of_a_killed_owner_continues_on_a_survivor_with_every_acknowledged_message() {
    let nats = Nats::start();
    let slow = "agents: { main: { runtime: 'echo', chunkDelayMs: 150, chunkChars: 1 } },";
    let mut a = host_with(&nats, "host-a", slow);
    let b = host_with(&nats, "host-b", slow);
    let mut on_b = asker(&b);
    wait_alive(&mut on_b, 2, Duration::from_secs(10));
    let mut on_a = asker(&a);
    turn(&mut on_a, "k", "one", "t-1");
    // Through B, owned by A: acknowledged, then A is killed while the reply streams.
    on_b.call(
        "chat.send",
        Some(
            json!({"sessionKey": "k", "message": "two is a long message", "idempotencyKey": "t-2"}),
        ),
    );
    on_b.wait_event_where("chat", Duration::from_secs(10), |e| {
        e["payload"]["runId"] == "t-2" && e["payload"]["state"] == "delta"
    });
    a.kill9();
    // A request sent to the dead owner before the cluster notices is answered when it does.
    let lost = on_b.send_request(
        "chat.send",
        Some(json!({"sessionKey": "k", "message": "lost", "idempotencyKey": "t-lost"})),
    );
    let res = on_b.wait_response(&lost, Duration::from_secs(10));
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
    assert!(
        res["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("host-a") && m.contains("lost")),
        "{res}"
    );
    let cluster = wait_alive(&mut on_b, 1, Duration::from_secs(10));
    assert_eq!(member(&cluster, "host-a")["alive"], false, "{cluster}");
    // B takes the session over on the next call: the acknowledged turns are all there, the
    // cut-off reply (never acknowledged) is not, and the session goes on.
    let id = on_b.send_request(
        "chat.send",
        Some(json!({"sessionKey": "k", "message": "three", "idempotencyKey": "t-3"})),
    );
    let res = on_b.wait_response(&id, Duration::from_secs(20));
    assert_eq!(res["ok"], true, "{res}\n{}", b.stderr());
    on_b.wait_event_where("chat", Duration::from_secs(15), |e| {
        e["payload"]["runId"] == "t-3" && e["payload"]["state"] == "final"
    });
    let h = wait_history(
        &mut on_b,
        "k",
        &[
            "one",
            "echo: one",
            "two is a long message",
            "three",
            "echo: three",
        ],
        Duration::from_secs(5),
    );
    assert_eq!(h["sessionInfo"]["hasActiveRun"], false, "{h}");
    // The cut-off run ended as interrupted, on every host's run index.
    let w = on_b.call(
        "agent.wait",
        Some(json!({"runId": "t-2", "timeoutMs": 2_000})),
    );
    assert_eq!(w["status"], "error", "{w}");
    assert!(
        w["error"]
            .as_str()
            .is_some_and(|e| e.contains("interrupted")),
        "{w}"
    );
    // A retry does not run it again.
    let retry = on_b.request(
        "chat.send",
        Some(
            json!({"sessionKey": "k", "message": "two is a long message", "idempotencyKey": "t-2"}),
        ),
    );
    assert_eq!(retry["ok"], false, "{retry}");
    assert!(
        retry["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("interrupted")),
        "{retry}"
    );
    let mut logs = b.stderr();
    logs.retain(|c| c != '\r');
    assert!(
        logs.contains("took over a session of a lost host"),
        "B says it took the session over: {logs}"
    );
}

/// NATS restarts while two hosts take chat turns: acknowledgements wait for the record
/// (or a turn is refused), and afterwards every acknowledged turn is in the transcript on
/// both hosts.
#[test]
fn a_nats_restart_under_chat_load_loses_no_acknowledged_turn() {
    let mut nats = Nats::start();
    let a = host(&nats, "host-a");
    let b = host(&nats, "host-b");
    let mut on_a = asker(&a);
    wait_alive(&mut on_a, 2, Duration::from_secs(10));
    let mut on_b = asker(&b);
    let mut acked: Vec<(&str, String)> = Vec::new();
    let started = Instant::now();
    let keys = ["load-a", "load-b"];
    let send = |c: &mut Client, key: &'static str, i: usize| {
        let msg = format!("m{i}");
        let id = c.send_request(
            "chat.send",
            Some(
                json!({"sessionKey": key, "message": msg, "idempotencyKey": format!("{key}-{i}")}),
            ),
        );
        (id, key, msg)
    };
    let settle = |c: &mut Client,
                  (id, key, msg): (String, &'static str, String),
                  acked: &mut Vec<(&str, String)>| {
        let res = c.wait_response(&id, Duration::from_secs(40));
        if res["ok"] == true {
            acked.push((key, msg));
        } else {
            assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
        }
    };
    for i in 0..30 {
        if i == 10 {
            // Turns sent while NATS is down wait for the record, then are acknowledged.
            nats.kill();
            let sa = send(&mut on_a, keys[0], i);
            let sb = send(&mut on_b, keys[1], i);
            std::thread::sleep(Duration::from_millis(1500));
            nats.restart();
            settle(&mut on_a, sa, &mut acked);
            settle(&mut on_b, sb, &mut acked);
            continue;
        }
        let sa = send(&mut on_a, keys[0], i);
        let sb = send(&mut on_b, keys[1], i);
        settle(&mut on_a, sa, &mut acked);
        settle(&mut on_b, sb, &mut acked);
    }
    assert!(
        acked.len() >= 40,
        "most turns were acknowledged: {}",
        acked.len()
    );
    assert!(
        acked.iter().any(|(_, m)| m == "m10"),
        "a turn sent while NATS was down was acknowledged once it was back: {acked:?}"
    );
    for c in [&mut on_a, &mut on_b] {
        for key in ["load-a", "load-b"] {
            let want: Vec<&str> = acked
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, m)| m.as_str())
                .collect();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let h = c.call(
                    "chat.history",
                    Some(json!({"sessionKey": key, "limit": 1000})),
                );
                let users: Vec<String> = texts(&h)
                    .into_iter()
                    .filter(|t| !t.starts_with("echo: "))
                    .collect();
                if want.iter().all(|m| users.iter().any(|u| u == m)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "acknowledged turns of {key} missing after {:?}: want {want:?}, have {users:?}",
                    started.elapsed()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `started` events of cron job `id` that reach `c` within `window`.
fn cron_starts(c: &mut Client, id: &str, window: Duration) -> usize {
    c.events.clear();
    std::thread::sleep(window);
    c.call("health", None);
    c.events
        .iter()
        .filter(|e| {
            e["event"] == "cron"
                && e["payload"]["jobId"] == id
                && e["payload"]["action"] == "started"
        })
        .count()
}

/// Cron is one book for the cluster: a job added through any host is listed from every host
/// and runs on one host only (the live host with the smallest name); when that host dies, the
/// next one runs the job from the shared record.
#[test]
fn cron_jobs_are_shared_and_each_run_happens_once() {
    let (_nats, [mut a, b, c], _ask) = three_alive();
    let mut on_b = asker(&b);
    let mut on_c = asker(&c);
    let add = json!({"name": "tick", "schedule": {"kind": "every", "everyMs": 1000},
        "sessionTarget": "main", "wakeMode": "now",
        "payload": {"kind": "systemEvent", "text": "tick-from-cron"}});
    // Until the cluster view has settled, the cron host is not chosen yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    let job = loop {
        let res = on_b.request("cron.add", Some(add.clone()));
        if res["ok"] == true {
            break res["payload"].clone();
        }
        assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
        assert!(
            Instant::now() < deadline,
            "cron never became available: {res}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let id = job["id"].as_str().unwrap().to_owned();
    let listed = on_c.call("cron.list", None);
    assert!(listed.to_string().contains(&id), "{listed}");
    // Once a second, by one host: three hosts running it would start it about three times
    // as often.
    let n = cron_starts(&mut on_c, &id, Duration::from_secs(4));
    assert!((2..=6).contains(&n), "{n} starts in 4 s");
    assert!(a
        .stderr()
        .contains("this host runs the cluster's cron jobs now"));
    assert!(!b
        .stderr()
        .contains("this host runs the cluster's cron jobs now"));
    // The cron host dies: the next host by name runs the job from the shared record.
    a.kill9();
    wait_alive(&mut on_b, 2, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b
        .stderr()
        .contains("this host runs the cluster's cron jobs now")
    {
        assert!(Instant::now() < deadline, "B never took cron over");
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = cron_starts(&mut on_c, &id, Duration::from_secs(4));
    assert!((2..=6).contains(&n), "{n} starts in 4 s after the failover");
    let listed = on_c.call("cron.list", None);
    assert!(listed.to_string().contains(&id), "{listed}");
    let runs = on_c.call("cron.runs", Some(json!({"id": id})));
    assert!(
        runs["total"].as_u64().unwrap_or(0) >= 4,
        "the run log is shared and holds both hosts' runs: {runs}"
    );
}
