//! Conformance tests: the real OpenClaw clients (npm package `openclaw@2026.9.6`) against ringgate.
//!
//! Every test starts its own `ringgate run --port 0 --bind 127.0.0.1 --token T --shards 2
//! --state-dir <tmp>` and drives it with the installed client found in `OPENCLAW_CLIENT_DIR`
//! (`bin/openclaw`, the CLI, and `bin/node`, Node 24 for the scripts in `tests/conformance/`).
//! See `tests/conformance/README.md`.
//!
//! Without `OPENCLAW_CLIENT_DIR` the tests are skipped, unless `RINGGATE_REQUIRE_CONFORMANCE=1`
//! (set by `make test`), in which case they fail.
//!
//! For validating the assertions against the original gateway, set `RINGGATE_CONFORMANCE_URL`
//! (e.g. `ws://127.0.0.1:18998`) and `RINGGATE_CONFORMANCE_TOKEN`: the tests then use that
//! already-running gateway instead of spawning ringgate.

use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Shared token the spawned ringgate is configured with.
const TOKEN: &str = "conformance-token-5d1e9b";
/// Upper bound for every client subprocess; a hung client fails the test instead of hanging CI.
const SUBPROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// `gateway probe --timeout`: the default 3000 ms budget is tight on a loaded CI machine.
const PROBE_BUDGET_MS: &str = "10000";
/// Upper bound for ringgate to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Expected values, copied from the original gateway (openclaw 2026.9.6) — see
// shared/protocol/vectors/openclaw-transcript.jsonl and tests/conformance/README.md.
// ---------------------------------------------------------------------------------------------

const MSG_TOKEN_MISMATCH: &str =
    "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)";
const MSG_FIRST_REQUEST: &str = "invalid handshake: first request must be connect";
const MSG_PROTOCOL_MISMATCH: &str = "protocol mismatch";
const MSG_UNKNOWN_CLIENT_ID: &str =
    "invalid connect params: at /client/id: must be equal to one of the allowed values";
const MSG_MISSING_READ_SCOPE: &str = "missing scope: operator.read";
const MSG_UNKNOWN_METHOD: &str = "unknown method: no.such.method";
const MSG_CONTROL_UI_DEVICE: &str =
    "control ui requires device identity (use HTTPS or localhost secure context)";

// ---------------------------------------------------------------------------------------------
// Environment: the installed OpenClaw client
// ---------------------------------------------------------------------------------------------

struct OpenClaw {
    dir: PathBuf,
}

impl OpenClaw {
    fn openclaw_bin(&self) -> PathBuf {
        self.dir.join("bin/openclaw")
    }

    fn node_bin(&self) -> PathBuf {
        self.dir.join("bin/node")
    }
}

/// The installed client, or `None` when the test should be skipped.
fn openclaw_client() -> Option<OpenClaw> {
    let required = std::env::var("RINGGATE_REQUIRE_CONFORMANCE").is_ok_and(|v| v == "1");
    let dir = match std::env::var_os("OPENCLAW_CLIENT_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            if required {
                panic!(
                    "RINGGATE_REQUIRE_CONFORMANCE=1 but OPENCLAW_CLIENT_DIR is not set: install the \
                     OpenClaw client (install-openclaw.sh DIR, as `make test` does) and export \
                     OPENCLAW_CLIENT_DIR=DIR"
                );
            }
            println!("skipping: OPENCLAW_CLIENT_DIR not set (run make test)");
            return None;
        }
    };
    let dir = dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("OPENCLAW_CLIENT_DIR={} is not usable: {e}", dir.display()));
    let client = OpenClaw { dir };
    for bin in [client.openclaw_bin(), client.node_bin()] {
        assert!(
            bin.is_file(),
            "OPENCLAW_CLIENT_DIR={} has no {} (install it with install-openclaw.sh)",
            client.dir.display(),
            bin.display()
        );
    }
    Some(client)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(name)
}

// ---------------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "ringgate-conformance-{tag}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A unique marker so presence assertions cannot match leftovers of other runs.
fn unique(tag: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

// ---------------------------------------------------------------------------------------------
// Process helpers (every child runs in its own process group so it can be killed as a whole)
// ---------------------------------------------------------------------------------------------

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain syscall; the child leads its own process group (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Collects a pipe in the background; usable even if a grandchild keeps the pipe open.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    done: Receiver<()>,
}

impl Capture {
    fn start<R: Read + Send + 'static>(mut pipe: R) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let sink = Arc::clone(&buf);
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
            let _ = tx.send(());
        });
        Capture { buf, done }
    }

    fn finish(self, wait: Duration) -> String {
        let _ = self.done.recv_timeout(wait);
        let bytes = self.buf.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            truncate(&self.stdout, 6000),
            truncate(&self.stderr, 6000)
        )
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes total]", &s[..end], s.len())
}

/// Environment variables that would redirect the CLI to another gateway.
const SCRUBBED_ENV: &[&str] = &[
    "OPENCLAW_GATEWAY_URL",
    "OPENCLAW_GATEWAY_TOKEN",
    "OPENCLAW_GATEWAY_PASSWORD",
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_STATE_DIR",
];

fn scrub(cmd: &mut Command) {
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
}

/// Runs `cmd` to completion, killing it (and its process group) after [`SUBPROCESS_TIMEOUT`].
fn run_bounded(mut cmd: Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let out = Capture::start(child.stdout.take().unwrap());
    let err = Capture::start(child.stderr.take().unwrap());
    let deadline = Instant::now() + SUBPROCESS_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(25)),
            Err(e) => panic!("wait for {what}: {e}"),
        }
    };
    match status {
        Some(status) => Output {
            code: status.code(),
            stdout: out.finish(Duration::from_secs(5)),
            stderr: err.finish(Duration::from_secs(5)),
        },
        None => {
            kill_group(&mut child);
            let output = Output {
                code: None,
                stdout: out.finish(Duration::from_secs(2)),
                stderr: err.finish(Duration::from_secs(2)),
            };
            panic!(
                "{what} did not finish within {SUBPROCESS_TIMEOUT:?} and was killed\n{}",
                output.describe()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway under test
// ---------------------------------------------------------------------------------------------

struct Gateway {
    url: String,
    token: String,
    child: Option<Child>,
    stderr_log: Option<PathBuf>,
    _dir: Option<TempDir>,
}

impl Gateway {
    /// Starts ringgate on an ephemeral port (or uses `RINGGATE_CONFORMANCE_URL`).
    fn start() -> Gateway {
        if let Ok(url) = std::env::var("RINGGATE_CONFORMANCE_URL") {
            let token = std::env::var("RINGGATE_CONFORMANCE_TOKEN")
                .expect("RINGGATE_CONFORMANCE_URL needs RINGGATE_CONFORMANCE_TOKEN");
            return Gateway {
                url,
                token,
                child: None,
                stderr_log: None,
                _dir: None,
            };
        }
        let dir = TempDir::new("gateway");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let stderr_log = dir.path().join("ringgate.stderr");
        let stderr = File::create(&stderr_log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate"))
            .arg("run")
            .args(["--port", "0", "--bind", "127.0.0.1", "--token", TOKEN])
            .args(["--shards", "2", "--state-dir"])
            .arg(&state_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", env!("CARGO_BIN_EXE_ringgate")));

        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = parse_listening_line(&line) {
                        let _ = tx.send(url);
                        sent = true;
                    }
                }
                // keep draining so ringgate never blocks on a full stdout pipe
            }
        });
        let url = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(url) => url,
            Err(e) => {
                thread::sleep(Duration::from_millis(100));
                let exited = match child.try_wait() {
                    Ok(Some(status)) => format!("ringgate exited: {status}"),
                    _ => "ringgate still running".to_string(),
                };
                kill_group(&mut child);
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                let why = match e {
                    RecvTimeoutError::Timeout => {
                        format!("no listening line within {STARTUP_TIMEOUT:?}")
                    }
                    RecvTimeoutError::Disconnected => format!("stdout closed ({exited})"),
                };
                panic!(
                    "ringgate did not start: {why}\n--- ringgate stderr ---\n{}",
                    truncate(&log, 8000)
                );
            }
        };
        Gateway {
            url,
            token: TOKEN.to_string(),
            child: Some(child),
            stderr_log: Some(stderr_log),
            _dir: Some(dir),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            kill_group(child);
        }
        if thread::panicking() {
            if let Some(log) = &self.stderr_log {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                eprintln!(
                    "--- ringgate stderr ({}) ---\n{}",
                    self.url,
                    truncate(&text, 8000)
                );
            }
        }
    }
}

/// `listening on ws://127.0.0.1:PORT` → `ws://127.0.0.1:PORT`.
fn parse_listening_line(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let url = rest.split_whitespace().next()?.trim_end_matches('/');
    let port = url.strip_prefix("ws://")?.rsplit(':').next()?;
    (port.parse::<u16>().ok()? != 0).then(|| url.to_string())
}

// ---------------------------------------------------------------------------------------------
// Client drivers
// ---------------------------------------------------------------------------------------------

/// One test's client-side context: the install, the gateway and a private client HOME.
struct Harness {
    oc: OpenClaw,
    gw: Gateway,
    home: TempDir,
}

impl Harness {
    fn start() -> Option<Harness> {
        let oc = openclaw_client()?;
        let gw = Gateway::start();
        Some(Harness {
            oc,
            gw,
            home: TempDir::new("client-home"),
        })
    }

    /// `openclaw <args…> --url <gateway> --token <token>`
    fn openclaw(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.oc.openclaw_bin());
        cmd.args(args)
            .args(["--url", &self.gw.url, "--token", &self.gw.token])
            .env("OPENCLAW_CLIENT_HOME", self.home.path())
            .env("NO_COLOR", "1");
        scrub(&mut cmd);
        run_bounded(cmd, &format!("openclaw {}", args.join(" ")))
    }

    fn node_script(&self, name: &str, args: &[String]) -> Output {
        let mut cmd = Command::new(self.oc.node_bin());
        cmd.arg(script(name))
            .args(args)
            .env("HOME", self.home.path());
        scrub(&mut cmd);
        run_bounded(cmd, &format!("node {name}"))
    }

    /// Runs tests/conformance/gateway-client.mjs to completion and returns its result line.
    fn gateway_client(&self, mut config: Value) -> Value {
        config["url"] = json!(self.gw.url);
        config["token"] = json!(self.gw.token);
        let out = self.node_script("gateway-client.mjs", &[config.to_string()]);
        let lines = json_lines(&out.stdout);
        let result = lines
            .iter()
            .find(|l| l["kind"] == "result")
            .unwrap_or_else(|| panic!("gateway-client.mjs printed no result\n{}", out.describe()));
        assert_eq!(
            out.code,
            Some(0),
            "gateway-client.mjs failed\n{}",
            out.describe()
        );
        result.clone()
    }

    /// Starts gateway-client.mjs in hold mode; it stays connected until the handle is dropped.
    fn hold_client(&self, mut config: Value) -> HeldClient {
        config["url"] = json!(self.gw.url);
        config["token"] = json!(self.gw.token);
        config["hold"] = json!(true);
        let mut cmd = Command::new(self.oc.node_bin());
        cmd.arg(script("gateway-client.mjs"))
            .arg(config.to_string())
            .env("HOME", self.home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        scrub(&mut cmd);
        let mut child = cmd.spawn().expect("spawn gateway-client.mjs");
        let stdin = child.stdin.take();
        let stderr = Capture::start(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + SUBPROCESS_TIMEOUT;
        let mut seen = Vec::new();
        let ready = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    seen.push(line);
                    if parsed["kind"] == "ready" {
                        break parsed;
                    }
                    if parsed["kind"] == "error" {
                        kill_group(&mut child);
                        panic!(
                            "held gateway client failed to connect: {}\n--- stderr ---\n{}",
                            seen.join("\n"),
                            stderr.finish(Duration::from_secs(2))
                        );
                    }
                }
                Err(_) => {
                    kill_group(&mut child);
                    panic!(
                        "held gateway client not ready within {SUBPROCESS_TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        seen.join("\n"),
                        stderr.finish(Duration::from_secs(2))
                    );
                }
            }
        };
        HeldClient {
            child,
            stdin,
            ready,
        }
    }

    /// Runs tests/conformance/raw-frames.mjs with `config` (url filled in) and returns every
    /// JSON line it printed.
    fn raw_session(&self, mut config: Value) -> Vec<Value> {
        config["url"] = json!(self.gw.url);
        let out = self.node_script("raw-frames.mjs", &[config.to_string()]);
        assert_eq!(
            out.code,
            Some(0),
            "raw-frames.mjs failed\n{}",
            out.describe()
        );
        let lines = json_lines(&out.stdout);
        assert!(
            lines.iter().any(|l| l["kind"] == "close"),
            "raw-frames.mjs printed no close event\n{}",
            out.describe()
        );
        lines
    }
}

struct HeldClient {
    child: Child,
    stdin: Option<ChildStdin>,
    ready: Value,
}

impl Drop for HeldClient {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF on stdin: the script stop()s the client and exits
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(25));
        }
        kill_group(&mut self.child);
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect()
}

/// Parses a CLI's `--json` output: the whole of stdout, or from the first `{`/`[` on.
fn parse_cli_json(out: &Output) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(out.stdout.trim()) {
        return v;
    }
    out.stdout
        .find(['{', '['])
        .and_then(|i| serde_json::from_str::<Value>(out.stdout[i..].trim()).ok())
        .unwrap_or_else(|| panic!("CLI output is not JSON\n{}", out.describe()))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn is_gateway_self(entry: &Value) -> bool {
    entry["mode"] == "gateway" && entry["reason"] == "self"
}

// ---------------------------------------------------------------------------------------------
// Raw frame helpers
// ---------------------------------------------------------------------------------------------

fn connect_frame(
    id: &str,
    min: u64,
    max: u64,
    client_id: &str,
    mode: &str,
    scope: &str,
    token: &str,
) -> Value {
    json!({
        "type": "req",
        "id": id,
        "method": "connect",
        "params": {
            "minProtocol": min,
            "maxProtocol": max,
            "client": {"id": client_id, "version": "2026.9.6", "platform": "linux", "mode": mode},
            "role": "operator",
            "scopes": [scope],
            "caps": [],
            "auth": {"token": token}
        }
    })
}

fn req(id: &str, method: &str) -> Value {
    json!({"type": "req", "id": id, "method": method, "params": {}})
}

fn received(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["kind"] == "frame")
        .map(|l| &l["frame"])
        .collect()
}

/// The first frame the server sends is `connect.challenge {nonce, ts, capabilities}` without seq.
fn assert_challenge(lines: &[Value]) {
    let frames = received(lines);
    let first = frames
        .first()
        .unwrap_or_else(|| panic!("no frame received: {lines:#?}"));
    assert_eq!(first["type"], "event", "first frame: {first}");
    assert_eq!(first["event"], "connect.challenge", "first frame: {first}");
    let payload = &first["payload"];
    assert!(
        payload["nonce"].as_str().is_some_and(|n| !n.is_empty()),
        "challenge nonce: {first}"
    );
    assert!(
        payload["ts"].is_u64(),
        "challenge ts must be a non-negative integer: {first}"
    );
    assert!(
        first.get("seq").is_none(),
        "connect.challenge carries no seq: {first}"
    );
}

fn response<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    received(lines)
        .into_iter()
        .find(|f| f["type"] == "res" && f["id"] == id)
        .unwrap_or_else(|| panic!("no response with id {id:?} in {lines:#?}"))
}

fn close_event(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|l| l["kind"] == "close")
        .unwrap_or_else(|| panic!("no close event in {lines:#?}"))
}

/// Asserts an `ok:false` response with the given `code` and `message`; returns `error.details`.
fn assert_error<'a>(res: &'a Value, code: &str, message: &str) -> &'a Value {
    assert_eq!(res["ok"], false, "expected an error response: {res}");
    assert_eq!(res["error"]["code"], code, "error.code: {res}");
    assert_eq!(res["error"]["message"], message, "error.message: {res}");
    &res["error"]["details"]
}

/// Asserts the server closed the socket with `code` and `reason`.
fn assert_server_close(lines: &[Value], code: u64, reason: &str) {
    let close = close_event(lines);
    assert_eq!(
        close["by"], "server",
        "the server must close the socket: {close}"
    );
    assert_eq!(close["code"], code, "close code: {close}");
    assert_eq!(close["reason"], reason, "close reason: {close}");
}

/// Asserts the connection stayed open until the client closed it.
fn assert_client_close(lines: &[Value]) {
    let close = close_event(lines);
    assert_eq!(
        close["by"], "client",
        "the server must keep the socket open: {close}"
    );
    assert_eq!(close["code"], 1000, "close: {close}");
}

fn assert_hello_ok(res: &Value) -> &Value {
    assert_eq!(res["ok"], true, "connect must succeed: {res}");
    let hello = &res["payload"];
    assert_eq!(hello["type"], "hello-ok", "hello: {hello}");
    assert_eq!(hello["protocol"], 4, "hello.protocol");
    hello
}

// ---------------------------------------------------------------------------------------------
// 1–5: the OpenClaw CLI
// ---------------------------------------------------------------------------------------------

#[test]
fn cli_gateway_call_health() {
    let Some(h) = Harness::start() else { return };
    let out = h.openclaw(&["gateway", "call", "health", "--json"]);
    assert_eq!(out.code, Some(0), "gateway call health\n{}", out.describe());
    let health = parse_cli_json(&out);
    assert_eq!(health["ok"], true, "health.ok: {health}");
    assert!(
        health["ts"].is_number(),
        "health.ts must be a number: {health}"
    );
    assert!(
        health["defaultAgentId"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "health.defaultAgentId: {health}"
    );
}

#[test]
fn cli_gateway_call_status() {
    let Some(h) = Harness::start() else { return };
    let out = h.openclaw(&["gateway", "call", "status", "--json"]);
    assert_eq!(out.code, Some(0), "gateway call status\n{}", out.describe());
    let status = parse_cli_json(&out);
    assert!(
        status["runtimeVersion"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "status.runtimeVersion must be a string: {status}"
    );
}

#[test]
fn cli_gateway_call_system_presence_lists_self_and_connected_client() {
    let Some(h) = Harness::start() else { return };
    // A device-less, presence-tracked operator client (mode "ui"). `openclaw-tui` cannot be used
    // here: the original gateway rejects it without a device identity (see
    // raw_control_ui_client_without_device_is_rejected).
    let instance_id = unique("conf-instance");
    let display_name = unique("conf-display");
    let held = h.hold_client(json!({
        "clientName": "openclaw-linux",
        "mode": "ui",
        "scopes": ["operator.admin"],
        "instanceId": instance_id,
        "displayName": display_name,
    }));
    assert_eq!(
        held.ready["hello"]["protocol"], 4,
        "held client hello: {}",
        held.ready
    );

    let out = h.openclaw(&["gateway", "call", "system-presence", "--json"]);
    assert_eq!(
        out.code,
        Some(0),
        "gateway call system-presence\n{}",
        out.describe()
    );
    let presence = parse_cli_json(&out);
    let entries = presence
        .as_array()
        .unwrap_or_else(|| panic!("system-presence must return a list: {presence}"));

    let gateway = entries.iter().find(|e| is_gateway_self(e));
    let gateway = gateway.unwrap_or_else(|| panic!("no gateway self entry: {presence:#}"));
    assert!(gateway["ts"].is_number(), "self entry ts: {gateway}");

    let mine = entries
        .iter()
        .find(|e| e["instanceId"] == instance_id.as_str())
        .unwrap_or_else(|| panic!("no entry with instanceId {instance_id}: {presence:#}"));
    assert_eq!(mine["mode"], "ui", "client entry: {mine}");
    assert_eq!(mine["clientId"], "openclaw-linux", "client entry: {mine}");
    assert_eq!(
        mine["host"],
        display_name.as_str(),
        "host = displayName: {mine}"
    );
    assert!(mine["ts"].is_number(), "client entry ts: {mine}");
    drop(held);
}

#[test]
fn cli_system_presence() {
    let Some(h) = Harness::start() else { return };
    let out = h.openclaw(&["system", "presence"]);
    assert_eq!(out.code, Some(0), "system presence\n{}", out.describe());
    let text = strip_ansi(&out.stdout);
    assert!(
        text.contains("gateway"),
        "output must mention the gateway\n{}",
        out.describe()
    );
    // openclaw 2026.9.6 prints the presence list as JSON even without --json.
    let presence = parse_cli_json(&out);
    let entries = presence.as_array().expect("presence list");
    assert!(
        entries.iter().any(is_gateway_self),
        "no gateway self entry (mode gateway, reason self): {presence:#}"
    );
}

#[test]
fn cli_gateway_probe() {
    let Some(h) = Harness::start() else { return };
    let out = h.openclaw(&["gateway", "probe", "--timeout", PROBE_BUDGET_MS]);
    assert_eq!(out.code, Some(0), "gateway probe\n{}", out.describe());
    let text = strip_ansi(&out.stdout);
    assert!(
        text.contains("Reachable: yes"),
        "probe must report reachable\n{}",
        out.describe()
    );
    // The explicit target's summary line follows its header `URL (explicit) <url>`.
    let lines: Vec<&str> = text.lines().collect();
    let header = format!("URL (explicit) {}", h.gw.url);
    let pos = lines
        .iter()
        .position(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("no `{header}` section\n{}", out.describe()));
    let summary = lines.get(pos + 1).copied().unwrap_or_default();
    assert!(
        summary.contains("Connect: ok"),
        "explicit target: {summary:?}\n{}",
        out.describe()
    );
    // The probe is device-less (fresh HOME), so the gateway clears its scopes: connect works,
    // the read RPCs are refused with `missing scope: operator.read` (same as the original).
    assert!(
        summary.contains("Read probe: limited - missing scope: operator.read"),
        "explicit target: {summary:?}\n{}",
        out.describe()
    );
}

#[test]
fn cli_gateway_probe_json() {
    let Some(h) = Harness::start() else { return };
    let out = h.openclaw(&["gateway", "probe", "--json", "--timeout", PROBE_BUDGET_MS]);
    assert_eq!(
        out.code,
        Some(0),
        "gateway probe --json\n{}",
        out.describe()
    );
    let report = parse_cli_json(&out);
    assert_eq!(report["ok"], true, "probe report: {report:#}");
    let target = report["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == "explicit"))
        .unwrap_or_else(|| panic!("no explicit target: {report:#}"));
    assert_eq!(target["url"], h.gw.url.as_str(), "target: {target:#}");
    let connect = &target["connect"];
    assert_eq!(connect["ok"], true, "connect: {target:#}");
    assert_eq!(connect["scopeLimited"], true, "connect: {target:#}");
    assert_eq!(
        connect["error"], MSG_MISSING_READ_SCOPE,
        "connect: {target:#}"
    );
    assert!(connect["close"].is_null(), "no close expected: {target:#}");
    assert_eq!(target["auth"]["role"], "operator", "auth: {target:#}");
    assert_eq!(
        target["auth"]["scopes"],
        json!([]),
        "probe scopes are cleared: {target:#}"
    );
    assert_eq!(
        target["auth"]["capability"], "connected_no_operator_scope",
        "auth: {target:#}"
    );
    assert!(
        target["server"]["version"].is_string(),
        "server.version: {target:#}"
    );
    assert!(
        target["server"]["connId"].is_string(),
        "server.connId: {target:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6: the real GatewayClient class
// ---------------------------------------------------------------------------------------------

#[test]
fn gateway_client_hello_and_core_rpcs() {
    let Some(h) = Harness::start() else { return };
    let result = h.gateway_client(json!({
        "clientName": "cli",
        "mode": "cli",
        "scopes": ["operator.admin"],
        "calls": [
            {"method": "health"},
            {"method": "status"},
            {"method": "system-presence"},
            {"method": "last-heartbeat"},
            {"method": "wake", "params": {"mode": "now", "text": "x"}},
        ],
    }));

    let hello = &result["hello"];
    assert_eq!(hello["type"], "hello-ok", "hello: {hello}");
    assert_eq!(hello["protocol"], 4, "hello.protocol");
    assert!(
        hello["server"]["version"].is_string(),
        "hello.server.version"
    );
    assert!(hello["server"]["connId"].is_string(), "hello.server.connId");
    assert!(
        hello["policy"]["maxPayload"].is_u64(),
        "hello.policy.maxPayload: {}",
        hello["policy"]
    );
    assert!(
        hello["policy"]["maxBufferedBytes"].is_u64(),
        "hello.policy.maxBufferedBytes"
    );
    assert!(
        hello["policy"]["tickIntervalMs"].is_u64(),
        "hello.policy.tickIntervalMs"
    );
    let methods = hello["features"]["methods"]
        .as_array()
        .expect("features.methods");
    assert!(
        methods.iter().any(|m| m == "health"),
        "features.methods lacks health"
    );
    assert!(hello["features"]["events"].is_array(), "features.events");
    assert!(hello["snapshot"].is_object(), "hello.snapshot");
    assert_eq!(
        hello["auth"]["role"], "operator",
        "hello.auth: {}",
        hello["auth"]
    );
    let scopes = hello["auth"]["scopes"].as_array().expect("auth.scopes");
    assert!(
        scopes.iter().any(|s| s == "operator.admin"),
        "a local cli/cli client with the shared token keeps operator.admin: {}",
        hello["auth"]
    );

    let results = result["results"].as_array().expect("results");
    let get = |method: &str| -> &Value {
        let r = results
            .iter()
            .find(|r| r["method"] == method)
            .unwrap_or_else(|| panic!("no result for {method}: {result}"));
        assert_eq!(r["ok"], true, "{method} failed: {r}");
        &r["payload"]
    };
    let health = get("health");
    assert_eq!(health["ok"], true, "health: {health}");
    assert!(health["ts"].is_number(), "health.ts: {health}");
    let status = get("status");
    assert!(
        status["runtimeVersion"].is_string(),
        "status.runtimeVersion: {status}"
    );
    let presence = get("system-presence");
    assert!(
        presence
            .as_array()
            .is_some_and(|p| p.iter().any(is_gateway_self)),
        "system-presence lacks the gateway self entry: {presence}"
    );
    let heartbeat = get("last-heartbeat");
    assert!(
        heartbeat.is_null() || heartbeat.is_object(),
        "last-heartbeat is null or an event: {heartbeat}"
    );
    let wake = get("wake");
    assert_eq!(wake["ok"], true, "wake: {wake}");
}

// ---------------------------------------------------------------------------------------------
// 7: negative cases replayed with raw frames (expected values from the original gateway)
// ---------------------------------------------------------------------------------------------

#[test]
fn raw_bad_token_is_rejected() {
    let Some(h) = Harness::start() else { return };
    let lines = h.raw_session(json!({
        "frames": [connect_frame("1:bad-token", 4, 4, "cli", "cli", "operator.admin", "wrongtoken")],
    }));
    assert_challenge(&lines);
    let details = assert_error(
        response(&lines, "1:bad-token"),
        "INVALID_REQUEST",
        MSG_TOKEN_MISMATCH,
    );
    assert_eq!(
        *details,
        json!({
            "code": "AUTH_TOKEN_MISMATCH",
            "authReason": "token_mismatch",
            "canRetryWithDeviceToken": false,
            "recommendedNextStep": "update_auth_credentials"
        })
    );
    assert_server_close(&lines, 1008, MSG_TOKEN_MISMATCH);
}

#[test]
fn raw_request_before_connect_is_rejected() {
    let Some(h) = Harness::start() else { return };
    // `health` goes out as soon as the socket opens, before the challenge; the connect after it
    // must not rescue the connection.
    let lines = h.raw_session(json!({
        "preChallenge": [req("1:early", "health")],
        "frames": [connect_frame("2:connect", 4, 4, "cli", "cli", "operator.admin", &h.gw.token)],
    }));
    assert_challenge(&lines);
    let details = assert_error(
        response(&lines, "1:early"),
        "INVALID_REQUEST",
        MSG_FIRST_REQUEST,
    );
    assert!(details.is_null(), "no details expected: {details}");
    assert!(
        !received(&lines)
            .iter()
            .any(|f| f["payload"]["type"] == "hello-ok"),
        "no hello-ok after a rejected first request: {lines:#?}"
    );
    assert_server_close(&lines, 1008, MSG_FIRST_REQUEST);
}

#[test]
fn raw_protocol_mismatch_is_rejected() {
    let Some(h) = Harness::start() else { return };
    let lines = h.raw_session(json!({
        "frames": [connect_frame("1:proto", 5, 6, "cli", "cli", "operator.admin", &h.gw.token)],
    }));
    assert_challenge(&lines);
    let details = assert_error(
        response(&lines, "1:proto"),
        "INVALID_REQUEST",
        MSG_PROTOCOL_MISMATCH,
    );
    assert_eq!(
        *details,
        json!({
            "code": "PROTOCOL_MISMATCH",
            "clientMinProtocol": 5,
            "clientMaxProtocol": 6,
            "expectedProtocol": 4,
            "minimumProbeProtocol": 3
        })
    );
    assert_server_close(&lines, 1002, "protocol mismatch");
}

#[test]
fn raw_unknown_client_id_is_rejected() {
    let Some(h) = Harness::start() else { return };
    let lines = h.raw_session(json!({
        "frames": [connect_frame("1:client", 4, 4, "my-rust-client", "cli", "operator.admin", &h.gw.token)],
    }));
    assert_challenge(&lines);
    let details = assert_error(
        response(&lines, "1:client"),
        "INVALID_REQUEST",
        MSG_UNKNOWN_CLIENT_ID,
    );
    assert!(details.is_null(), "no details expected: {details}");
    assert_server_close(&lines, 1008, MSG_UNKNOWN_CLIENT_ID);
}

#[test]
fn raw_probe_mode_scopes_are_cleared() {
    let Some(h) = Harness::start() else { return };
    // Device-less cli/probe with the right token: connect succeeds with no scopes, `health`
    // needs none, `status` needs operator.read.
    let lines = h.raw_session(json!({
        "frames": [
            connect_frame("1:probe", 3, 4, "cli", "probe", "operator.read", &h.gw.token),
            req("2:health", "health"),
            req("3:status", "status"),
        ],
    }));
    assert_challenge(&lines);
    let hello = assert_hello_ok(response(&lines, "1:probe"));
    assert_eq!(
        hello["auth"]["role"], "operator",
        "hello.auth: {}",
        hello["auth"]
    );
    assert_eq!(
        hello["auth"]["scopes"],
        json!([]),
        "probe scopes must be cleared: {}",
        hello["auth"]
    );
    let health = response(&lines, "2:health");
    assert_eq!(health["ok"], true, "health needs no scope: {health}");
    assert_eq!(health["payload"]["ok"], true, "health: {health}");
    let details = assert_error(
        response(&lines, "3:status"),
        "FORBIDDEN",
        MSG_MISSING_READ_SCOPE,
    );
    assert_eq!(
        *details,
        json!({
            "code": "MISSING_SCOPE",
            "missingScope": "operator.read",
            "requiredScopes": ["operator.read"]
        })
    );
    assert_client_close(&lines);
}

#[test]
fn raw_unknown_method_after_connect() {
    let Some(h) = Harness::start() else { return };
    let lines = h.raw_session(json!({
        "frames": [
            connect_frame("1:cli", 4, 4, "cli", "cli", "operator.admin", &h.gw.token),
            req("2:unknown", "no.such.method"),
        ],
    }));
    assert_challenge(&lines);
    let hello = assert_hello_ok(response(&lines, "1:cli"));
    let scopes = hello["auth"]["scopes"].as_array().expect("auth.scopes");
    assert!(
        scopes.iter().any(|s| s == "operator.admin"),
        "hello.auth: {}",
        hello["auth"]
    );
    let details = assert_error(
        response(&lines, "2:unknown"),
        "INVALID_REQUEST",
        MSG_UNKNOWN_METHOD,
    );
    assert!(details.is_null(), "no details expected: {details}");
    assert_client_close(&lines);
}

#[test]
fn raw_control_ui_client_without_device_is_rejected() {
    let Some(h) = Harness::start() else { return };
    // openclaw-tui is an operator UI client: without a device identity the original gateway
    // refuses it even with the right token.
    let lines = h.raw_session(json!({
        "frames": [connect_frame("1:tui", 4, 4, "openclaw-tui", "ui", "operator.admin", &h.gw.token)],
    }));
    assert_challenge(&lines);
    let details = assert_error(
        response(&lines, "1:tui"),
        "INVALID_REQUEST",
        MSG_CONTROL_UI_DEVICE,
    );
    assert_eq!(
        *details,
        json!({"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"})
    );
    assert_server_close(&lines, 1008, MSG_CONTROL_UI_DEVICE);
}

#[test]
fn listening_line_parser() {
    assert_eq!(
        parse_listening_line("listening on ws://127.0.0.1:40123").as_deref(),
        Some("ws://127.0.0.1:40123")
    );
    assert_eq!(
        parse_listening_line("INFO ringgate: listening on ws://127.0.0.1:5 (2 shards)").as_deref(),
        Some("ws://127.0.0.1:5")
    );
    assert_eq!(parse_listening_line("listening on ws://127.0.0.1:0"), None);
    assert_eq!(parse_listening_line("starting"), None);
}
