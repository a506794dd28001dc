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
//! The same suite runs again with every gateway on the glommio driver and on monoio's epoll
//! driver, as `tests/conformance_glommio.rs` and `tests/conformance_epoll.rs` (which include
//! this file as a module); here the gateways run on `auto` (io_uring on this kind of host).
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
    /// Starts ringgate on an ephemeral port (or uses `RINGGATE_CONFORMANCE_URL`), with
    /// `--config FILE` holding `config` (JSON5) if given. With
    /// `RINGGATE_CONFORMANCE_URL` set, a configured gateway is taken from
    /// `RINGGATE_CONFORMANCE_MANUAL_URL` (an already-running gateway started with that
    /// configuration); `None` when there is none (the test is skipped).
    fn start_with_config(config: Option<&str>) -> Option<Gateway> {
        if let Ok(url) = std::env::var("RINGGATE_CONFORMANCE_URL") {
            let token = std::env::var("RINGGATE_CONFORMANCE_TOKEN")
                .expect("RINGGATE_CONFORMANCE_URL needs RINGGATE_CONFORMANCE_TOKEN");
            let url = match config {
                None => url,
                Some(config) => match std::env::var("RINGGATE_CONFORMANCE_MANUAL_URL") {
                    Ok(url) => url,
                    Err(_) => {
                        println!(
                            "skipping: needs a gateway configured with {config} \
                             (set RINGGATE_CONFORMANCE_MANUAL_URL)"
                        );
                        return None;
                    }
                },
            };
            return Some(Gateway {
                url,
                token,
                child: None,
                stderr_log: None,
                _dir: None,
            });
        }
        let dir = TempDir::new("gateway");
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let stderr_log = dir.path().join("ringgate.stderr");
        let stderr = File::create(&stderr_log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringgate"));
        cmd.arg("run")
            .args(["--port", "0", "--bind", "127.0.0.1", "--token", TOKEN])
            .args(["--shards", "2", "--state-dir"])
            .arg(&state_dir);
        if let Some(driver) = suite_driver() {
            cmd.args(["--driver", driver]);
        }
        if let Some(config) = config {
            let file = dir.path().join("ringgate.json5");
            std::fs::write(&file, config).unwrap();
            cmd.arg("--config").arg(&file);
        }
        let mut child = cmd
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
        Some(Gateway {
            url,
            token: TOKEN.to_string(),
            child: Some(child),
            stderr_log: Some(stderr_log),
            _dir: Some(dir),
        })
    }
}

/// The io driver this suite's gateways run on: the default (`auto`), or the one named by the
/// test target that includes this file as its suite (`tests/conformance_<driver>.rs`).
fn suite_driver() -> Option<&'static str> {
    let crate_name = module_path!().split("::").next().unwrap_or_default();
    ["glommio", "epoll"]
        .into_iter()
        .find(|d| crate_name == format!("conformance_{d}"))
}

impl Gateway {
    /// The state directory of a gateway this suite started.
    fn state_dir(&self) -> PathBuf {
        self._dir
            .as_ref()
            .expect("a gateway started by the suite")
            .path()
            .join("state")
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

/// `listening on ws://127.0.0.1:PORT` → `ws://127.0.0.1:PORT` (or `wss://` on a TLS port).
fn parse_listening_line(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let url = rest.split_whitespace().next()?.trim_end_matches('/');
    let port = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))?
        .rsplit(':')
        .next()?;
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
        Harness::start_with_config(None)
    }

    /// Like [`Harness::start`], ringgate started with `--config` (see
    /// [`Gateway::start_with_config`]).
    fn start_with_config(config: Option<&str>) -> Option<Harness> {
        let oc = openclaw_client()?;
        let gw = Gateway::start_with_config(config)?;
        Some(Harness {
            oc,
            gw,
            home: TempDir::new("client-home"),
        })
    }

    /// `openclaw <args…> --url <gateway> --token <token>`
    fn openclaw(&self, args: &[&str]) -> Output {
        self.openclaw_with(args, &[])
    }

    /// [`Harness::openclaw`] with extra environment variables.
    fn openclaw_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(self.oc.openclaw_bin());
        cmd.args(args)
            .args(["--url", &self.gw.url, "--token", &self.gw.token])
            .env("OPENCLAW_CLIENT_HOME", self.home.path())
            .env("NO_COLOR", "1");
        scrub(&mut cmd);
        cmd.envs(env.iter().copied());
        run_bounded(cmd, &format!("openclaw {}", args.join(" ")))
    }

    /// `openclaw <args…>` with the gateway given through `OPENCLAW_GATEWAY_URL|TOKEN` (commands
    /// such as `channels status` and `skills list` take no `--url`).
    fn openclaw_env(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.oc.openclaw_bin());
        cmd.args(args)
            .env("OPENCLAW_CLIENT_HOME", self.home.path())
            .env("NO_COLOR", "1");
        scrub(&mut cmd);
        cmd.env("OPENCLAW_GATEWAY_URL", &self.gw.url)
            .env("OPENCLAW_GATEWAY_TOKEN", &self.gw.token);
        run_bounded(cmd, &format!("openclaw {}", args.join(" ")))
    }

    fn node_script(&self, name: &str, args: &[String]) -> Output {
        self.node_script_in(self.home.path(), name, args)
    }

    /// Runs a script with `HOME=home` (where the client library keeps its device identity and
    /// device tokens).
    fn node_script_in(&self, home: &Path, name: &str, args: &[String]) -> Output {
        let mut cmd = Command::new(self.oc.node_bin());
        cmd.arg(script(name)).args(args).env("HOME", home);
        scrub(&mut cmd);
        run_bounded(cmd, &format!("node {name}"))
    }

    /// Runs gateway-client.mjs with a real device identity kept in `home` (`device: true`) and
    /// returns the output and its final `result` or `error` line. `config["sharedToken"] =
    /// false` leaves the shared token out.
    fn device_client(&self, home: &Path, mut config: Value) -> (Output, Value) {
        config["url"] = json!(self.gw.url);
        config["token"] = json!(self.gw.token);
        config["device"] = json!(true);
        let out = self.node_script_in(home, "gateway-client.mjs", &[config.to_string()]);
        let last = json_lines(&out.stdout)
            .into_iter()
            .rev()
            .find(|l| l["kind"] == "result" || l["kind"] == "error")
            .unwrap_or_else(|| {
                panic!(
                    "gateway-client.mjs printed no result or error\n{}",
                    out.describe()
                )
            });
        (out, last)
    }

    /// A device connect that must succeed: returns the result line.
    fn device_connects(&self, home: &Path, config: Value) -> Value {
        let (out, result) = self.device_client(home, config);
        assert!(
            result["kind"] == "result" && out.code == Some(0),
            "the device connect must succeed\n{}",
            out.describe()
        );
        result
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
            lines: rx,
            seen: Vec::new(),
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
    /// Lines printed after `ready` (`{"kind":"event",…}`), not yet consumed.
    lines: Receiver<String>,
    /// Every event line read so far.
    seen: Vec<Value>,
}

impl HeldClient {
    /// Waits up to `timeout` for an event named `event` whose payload satisfies `pred`.
    fn wait_event(
        &mut self,
        event: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let matches =
            |l: &Value| l["kind"] == "event" && l["event"] == event && pred(&l["payload"]);
        if let Some(hit) = self.seen.iter().find(|l| matches(l)) {
            return hit["payload"].clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let parsed: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    self.seen.push(parsed.clone());
                    if matches(&parsed) {
                        return parsed["payload"].clone();
                    }
                }
                Err(_) => panic!(
                    "no {event} event within {timeout:?}; events seen: {:#?}",
                    self.seen
                ),
            }
        }
    }
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
    // The suite really runs on the driver it names (ringgate's own field; not the original's).
    if let (Some(driver), false) = (
        suite_driver(),
        std::env::var("RINGGATE_CONFORMANCE_URL").is_ok(),
    ) {
        assert_eq!(status["gateway"]["driver"], driver, "{status}");
    }
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

#[test]
fn gateway_client_chat_send_streams_reply() {
    let Some(h) = Harness::start() else { return };
    let result = h.gateway_client(json!({
        "clientName": "cli",
        "mode": "cli",
        "scopes": ["operator.admin"],
        "calls": [
            {"method": "chat.send", "params": {
                "sessionKey": "main", "message": "hi from GatewayClient", "idempotencyKey": "gc-run-1"}},
        ],
        "untilEvent": {"event": "chat", "state": "final"},
    }));
    let results = result["results"].as_array().expect("results");
    assert_eq!(results[0]["ok"], true, "chat.send: {result}");
    assert_eq!(results[0]["payload"]["runId"], "gc-run-1");
    assert_eq!(results[0]["payload"]["status"], "started");
    let events = result["events"].as_array().expect("events");
    let chat: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "chat" && e["payload"]["runId"] == "gc-run-1")
        .collect();
    assert!(
        chat.iter().any(|e| e["payload"]["state"] == "delta"),
        "streamed deltas: {events:?}"
    );
    let fin = chat
        .iter()
        .find(|e| e["payload"]["state"] == "final")
        .unwrap_or_else(|| panic!("no final: {events:?}"));
    assert_eq!(
        fin["payload"]["message"]["content"][0]["text"],
        "echo: hi from GatewayClient"
    );
    assert_eq!(fin["payload"]["sessionKey"], "agent:main:main");
}

#[test]
fn cli_gateway_call_agent_expect_final() {
    let Some(h) = Harness::start() else { return };
    let out = h.openclaw(&[
        "gateway",
        "call",
        "agent",
        "--params",
        r#"{"message":"hi","idempotencyKey":"k1"}"#,
        "--expect-final",
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "gateway call agent\n{}", out.describe());
    let fin = parse_cli_json(&out);
    assert_eq!(fin["runId"], "k1", "{fin}");
    assert_eq!(fin["status"], "ok", "{fin}");
    assert_eq!(fin["result"]["payloads"][0]["text"], "echo: hi", "{fin}");
}

/// The real node host (`openclaw node run`), killed (with its process group) on drop.
struct NodeHost {
    child: Child,
    home: TempDir,
}

impl NodeHost {
    fn start(h: &Harness) -> NodeHost {
        NodeHost::start_with(h, &[])
    }

    /// [`NodeHost::start`] with extra flags (`--tls-fingerprint …`).
    fn start_with(h: &Harness, extra: &[&str]) -> NodeHost {
        let home = TempDir::new("node-host");
        let port =
            h.gw.url
                .rsplit(':')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_owned();
        let log = File::create(home.path().join("node.log")).expect("node log");
        let mut cmd = Command::new(h.oc.openclaw_bin());
        scrub(&mut cmd);
        cmd.args(["node", "run", "--host", "127.0.0.1", "--port", &port])
            .args(extra)
            .env("OPENCLAW_CLIENT_HOME", home.path())
            .env("OPENCLAW_GATEWAY_TOKEN", &h.gw.token)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("node log"))
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().expect("spawn openclaw node run");
        NodeHost { child, home }
    }

    /// What the node host printed so far (for failure messages).
    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("node.log")).unwrap_or_default()
    }
}

impl Drop for NodeHost {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

#[test]
fn node_host_pairs_and_is_invoked() {
    let Some(h) = Harness::start() else { return };
    let node = NodeHost::start(&h);
    // `nodes pending` shows the node host's capability request once it connected.
    let pending = wait_pending_node(&h, &[], &node);
    let request_id = pending[0]["requestId"]
        .as_str()
        .expect("requestId")
        .to_owned();
    let node_id = pending[0]["nodeId"].as_str().expect("nodeId").to_owned();
    assert_eq!(pending[0]["clientId"], "node-host", "{pending}");
    assert!(
        pending[0]["commands"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "system.which")),
        "{pending}"
    );

    let out = h.openclaw(&["nodes", "approve", &request_id]);
    assert_eq!(out.code, Some(0), "nodes approve\n{}", out.describe());
    let approved = parse_cli_json(&out);
    assert_eq!(approved["node"]["nodeId"], node_id.as_str(), "{approved}");

    let out = h.openclaw(&["nodes", "list", "--json"]);
    assert_eq!(out.code, Some(0), "nodes list\n{}", out.describe());
    let list = parse_cli_json(&out);
    let row = list["paired"]
        .as_array()
        .and_then(|p| p.iter().find(|n| n["nodeId"] == node_id.as_str()))
        .unwrap_or_else(|| panic!("node not listed: {list}"));
    assert_eq!(row["connected"], true, "{row}");
    assert_eq!(row["approvalState"], "approved", "{row}");

    let out = h.openclaw(&["nodes", "describe", "--node", &node_id]);
    assert_eq!(out.code, Some(0), "nodes describe\n{}", out.describe());
    assert!(
        out.stdout.contains("paired · connected"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("system.which"), "{}", out.describe());

    let out = h.openclaw(&[
        "nodes",
        "invoke",
        "--node",
        &node_id,
        "--command",
        "system.which",
        "--params",
        r#"{"bins":["sh"]}"#,
    ]);
    assert_eq!(out.code, Some(0), "nodes invoke\n{}", out.describe());
    let res = parse_cli_json(&out);
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["command"], "system.which");
    assert!(
        res["payload"]["bins"]["sh"]
            .as_str()
            .is_some_and(|p| p.ends_with("/sh")),
        "the node's real answer: {res}"
    );
    drop(node);
}

#[test]
fn cli_exec_approval_request_pending_and_resolve() {
    let Some(h) = Harness::start() else { return };
    let out_dir = TempDir::new("approval-call");
    let out_path = out_dir.path().join("final.json");
    // A two-phase request (kept pending without an approval client) waits for its final.
    let mut cmd = Command::new(h.oc.openclaw_bin());
    scrub(&mut cmd);
    cmd.args(["gateway", "call", "exec.approval.request"])
        .args(["--url", &h.gw.url, "--token", &h.gw.token])
        .args([
            "--params",
            r#"{"id":"cli-appr-1","command":"echo hello","twoPhase":true,"requireDeliveryRoute":false,"timeoutMs":60000}"#,
            "--expect-final",
            "--json",
        ])
        .env("OPENCLAW_CLIENT_HOME", h.home.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn gateway call");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = h.openclaw(&["approvals", "pending", "--json"]);
        if out.code == Some(0) && out.stdout.contains("cli-appr-1") {
            let v = parse_cli_json(&out);
            assert_eq!(v["approvals"][0]["summary"], "echo hello", "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "approval never pending\n{}",
            out.describe()
        );
        thread::sleep(Duration::from_millis(300));
    }
    let out = h.openclaw(&["approvals", "resolve", "cli-appr-1", "allow-once"]);
    assert_eq!(out.code, Some(0), "approvals resolve\n{}", out.describe());
    assert!(
        out.stdout.contains("resolved allow-once"),
        "{}",
        out.describe()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            kill_group(&mut child);
            panic!("gateway call --expect-final did not finish");
        }
        thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let fin: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("final is not JSON ({e}): {text}"));
    assert_eq!(fin["id"], "cli-appr-1", "{fin}");
    assert_eq!(fin["decision"], "allow-once", "{fin}");
}

#[test]
fn cli_logs_tails_the_gateway_log() {
    let Some(h) = Harness::start() else { return };
    let out = h.openclaw(&["logs", "--limit", "20"]);
    assert_eq!(out.code, Some(0), "openclaw logs\n{}", out.describe());
    assert!(out.stdout.contains("ringgate.log"), "{}", out.describe());
    assert!(
        out.stdout.contains("shard started"),
        "log messages are shown\n{}",
        out.describe()
    );
}

#[test]
fn cli_cron_add_list_run_runs() {
    let Some(h) = Harness::start() else { return };
    let out = h.openclaw(&[
        "cron",
        "add",
        "--name",
        "nightly-digest",
        "--every",
        "1h",
        "--session",
        "isolated",
        "--message",
        "hello from cron",
    ]);
    assert_eq!(out.code, Some(0), "cron add\n{}", out.describe());
    let job = parse_cli_json(&out);
    let id = job["id"].as_str().expect("job id").to_owned();
    assert_eq!(job["schedule"]["everyMs"], 3_600_000, "{job}");

    let out = h.openclaw(&["cron", "list"]);
    assert_eq!(out.code, Some(0), "cron list\n{}", out.describe());
    assert!(
        out.stdout.contains("nightly-digest") && out.stdout.contains(&id),
        "{}",
        out.describe()
    );

    let out = h.openclaw(&["cron", "run", &id]);
    assert_eq!(out.code, Some(0), "cron run\n{}", out.describe());
    assert_eq!(parse_cli_json(&out)["enqueued"], true, "{}", out.describe());

    // The echo agent answers at once; the run shows up in the history as succeeded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = h.openclaw(&["cron", "runs", "--id", &id]);
        assert_eq!(out.code, Some(0), "cron runs\n{}", out.describe());
        let runs = parse_cli_json(&out);
        if let Some(e) = runs["entries"].as_array().and_then(|a| a.first()) {
            assert_eq!(e["status"], "ok", "{runs}");
            assert_eq!(e["jobName"], "nightly-digest", "{runs}");
            break;
        }
        assert!(Instant::now() < deadline, "no run recorded: {runs}");
        thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn cli_channels_status_shows_the_webhook_channel() {
    let config = r#"{ringgate: {channels: {webhook: {url: "http://127.0.0.1:9/hook", secret: "0123456789abcdef0"}}}}"#;
    let Some(h) = Harness::start_with_config(Some(config)) else {
        return;
    };
    let out = h.openclaw_env(&["channels", "status"]);
    assert_eq!(out.code, Some(0), "channels status\n{}", out.describe());
    assert!(
        out.stdout
            .contains("Webhook default: enabled, configured, running"),
        "{}",
        out.describe()
    );
}

#[test]
fn cli_skills_list_shows_configured_skills() {
    let skills = TempDir::new("skills");
    let dir = skills.path().join("conformance-demo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("SKILL.md"),
        "---\nname: conformance-demo\ndescription: A skill the CLI should list.\nmetadata: {\"openclaw\": {\"requires\": {\"bins\": [\"sh\"]}}}\n---\n# demo\n",
    )
    .unwrap();
    let config = format!(
        r#"{{ringgate: {{skills: {{dirs: ["{}"]}}}}}}"#,
        skills.path().display()
    );
    let Some(h) = Harness::start_with_config(Some(&config)) else {
        return;
    };
    let out = h.openclaw_env(&["skills", "list"]);
    assert_eq!(out.code, Some(0), "skills list\n{}", out.describe());
    assert!(
        out.stdout.contains("conformance-demo"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("A skill the CLI should list."),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("ready"), "{}", out.describe());
}

#[test]
fn cli_gateway_call_config_get_and_patch() {
    let Some(h) = Harness::start_with_config(Some("{ringgate: {limits: {maxPayload: 1048576}}}"))
    else {
        return;
    };
    let out = h.openclaw(&["gateway", "call", "config.get", "--json"]);
    assert_eq!(out.code, Some(0), "config.get\n{}", out.describe());
    let got = parse_cli_json(&out);
    assert_eq!(
        got["parsed"]["ringgate"]["limits"]["maxPayload"], 1_048_576,
        "{got}"
    );
    let hash = got["hash"].as_str().expect("hash").to_owned();
    let params = json!({"raw": "{ringgate: {limits: {maxPayload: 2097152}}}", "baseHash": hash});
    let out = h.openclaw(&[
        "gateway",
        "call",
        "config.patch",
        "--json",
        "--params",
        &params.to_string(),
    ]);
    assert_eq!(out.code, Some(0), "config.patch\n{}", out.describe());
    let r = parse_cli_json(&out);
    assert_eq!(
        r["changedPaths"],
        json!(["ringgate.limits.maxPayload"]),
        "{r}"
    );
    // A stale hash is refused with the original's message.
    let out = h.openclaw(&[
        "gateway",
        "call",
        "config.patch",
        "--json",
        "--params",
        &params.to_string(),
    ]);
    assert_ne!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout
            .contains("config changed since last load; re-run config.get and retry")
            || out
                .stderr
                .contains("config changed since last load; re-run config.get and retry"),
        "{}",
        out.describe()
    );
    let out = h.openclaw(&["gateway", "call", "config.get", "--json"]);
    assert_eq!(
        parse_cli_json(&out)["parsed"]["ringgate"]["limits"]["maxPayload"],
        2_097_152
    );
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

// ---------------------------------------------------------------------------------------------
// 8: device pairing with the client library's own device identity
// ---------------------------------------------------------------------------------------------

/// ringgate configuration that turns off silent approval of local devices.
const MANUAL_APPROVAL_CONFIG: &str = "{gateway: {nodes: {pairing: {autoApproveLocal: false}}}}";
/// How long to wait for a pairing event on a held operator connection.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn device_id_of(result: &Value) -> String {
    result["device"]["deviceId"]
        .as_str()
        .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("the script must report the device id (64 hex): {result}"))
        .to_string()
}

/// The single connect request of a script run: `{hasToken, hasDeviceToken, deviceId, …}`.
fn only_connect(result: &Value) -> &Value {
    let connects = result["connects"].as_array().expect("connects");
    assert_eq!(connects.len(), 1, "one connect request expected: {result}");
    &connects[0]
}

/// `hello-ok.auth` of a device that the gateway paired: a device token and its issue time.
fn assert_device_token(hello: &Value) -> String {
    let auth = &hello["auth"];
    assert_eq!(auth["role"], "operator", "hello.auth: {auth}");
    assert!(
        auth["issuedAtMs"].is_u64(),
        "hello.auth.issuedAtMs must be an integer: {auth}"
    );
    auth["deviceToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("hello.auth.deviceToken must be a non-empty string: {auth}"))
        .to_string()
}

/// `device.pair.list` through `openclaw gateway call … --json` (device-less CLI, shared token).
fn cli_pair_list(h: &Harness) -> Value {
    let out = h.openclaw(&["gateway", "call", "device.pair.list", "--json"]);
    assert_eq!(
        out.code,
        Some(0),
        "gateway call device.pair.list\n{}",
        out.describe()
    );
    let list = parse_cli_json(&out);
    assert!(
        list["pending"].is_array() && list["paired"].is_array(),
        "device.pair.list returns {{pending: [], paired: []}}: {list:#}"
    );
    list
}

/// `openclaw devices list --json`.
fn cli_devices_list_json(h: &Harness) -> Value {
    let out = h.openclaw(&["devices", "list", "--json"]);
    assert_eq!(out.code, Some(0), "devices list --json\n{}", out.describe());
    let list = parse_cli_json(&out);
    assert!(
        list["pending"].is_array() && list["paired"].is_array(),
        "devices list --json prints {{pending: [], paired: []}}: {list:#}"
    );
    list
}

fn find_by<'a>(list: &'a Value, section: &str, key: &str, value: &str) -> Option<&'a Value> {
    list[section]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e[key] == value))
}

/// A device connect refused with `NOT_PAIRED` (pairing required, request pending): returns the
/// request id.
fn assert_not_paired(out: &Output, line: &Value, device_id: &str) -> String {
    assert_eq!(
        line["kind"],
        "error",
        "the connect must be refused until approved\n{}",
        out.describe()
    );
    assert_eq!(line["code"], "NOT_PAIRED", "connect error: {line:#}");
    let details = &line["details"];
    assert_eq!(details["code"], "PAIRING_REQUIRED", "details: {line:#}");
    assert_eq!(details["reason"], "not-paired", "details: {line:#}");
    assert_eq!(details["deviceId"], device_id, "details: {line:#}");
    assert_eq!(details["requestedRole"], "operator", "details: {line:#}");
    let request_id = details["requestId"]
        .as_str()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("details.requestId: {line:#}"))
        .to_string();
    assert_eq!(
        details["remediationHint"], "Approve this device from the pending pairing requests.",
        "details: {line:#}"
    );
    assert_eq!(
        line["message"],
        format!("device pairing required (requestId: {request_id})"),
        "message: {line:#}"
    );
    request_id
}

#[test]
fn gateway_client_device_is_paired_and_reconnects_with_device_token() {
    let Some(h) = Harness::start() else { return };
    let device_home = TempDir::new("device-home");

    // First run: shared token plus a device identity created by the client library itself. A
    // local device with a valid proof is paired silently and gets a device token.
    let first = h.device_connects(device_home.path(), json!({"scopes": ["operator.admin"]}));
    let device_id = device_id_of(&first);
    let connect = only_connect(&first);
    assert_eq!(connect["hasToken"], true, "first connect: {connect}");
    assert_eq!(
        connect["deviceId"],
        device_id.as_str(),
        "first connect: {connect}"
    );
    let token = assert_device_token(&first["hello"]);
    let scopes = first["hello"]["auth"]["scopes"]
        .as_array()
        .expect("hello.auth.scopes");
    assert!(
        scopes.iter().any(|s| s == "operator.admin"),
        "hello.auth: {}",
        first["hello"]["auth"]
    );

    // Second run, same HOME, no shared token: GatewayClient authenticates with the device
    // token it stored from the first hello-ok.
    let second = h.device_connects(
        device_home.path(),
        json!({"sharedToken": false, "scopes": ["operator.admin"], "calls": [{"method": "health"}]}),
    );
    assert_eq!(
        device_id_of(&second),
        device_id,
        "same identity on the second run"
    );
    let connect = only_connect(&second);
    assert_eq!(
        connect["hasToken"], false,
        "second connect carries no shared token: {connect}"
    );
    assert_eq!(
        connect["hasDeviceToken"], true,
        "second connect uses the stored device token: {connect}"
    );
    assert_eq!(
        connect["deviceId"],
        device_id.as_str(),
        "second connect: {connect}"
    );
    // The original returns the same (still valid) token again.
    assert_eq!(
        assert_device_token(&second["hello"]),
        token,
        "a reconnect with the device token gets the same device token back"
    );
    let health = &second["results"][0];
    assert_eq!(
        health["ok"], true,
        "health over the device-token connection: {health}"
    );
    assert_eq!(health["payload"]["ok"], true, "health: {health}");

    // The gateway lists the device, with the identity the client used.
    let list = cli_pair_list(&h);
    let paired = find_by(&list, "paired", "deviceId", &device_id)
        .unwrap_or_else(|| panic!("device {device_id} not paired: {list:#}"));
    assert_eq!(
        paired["publicKey"], first["device"]["publicKey"],
        "paired: {paired:#}"
    );
    assert_eq!(paired["clientId"], "cli", "paired: {paired:#}");
    assert_eq!(paired["clientMode"], "cli", "paired: {paired:#}");
    assert_eq!(paired["approvedVia"], "silent", "paired: {paired:#}");
    assert!(
        paired["roles"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == "operator")),
        "paired.roles: {paired:#}"
    );
    let tokens = paired["tokens"].as_array().expect("paired.tokens");
    assert!(
        tokens.iter().any(|t| t["role"] == "operator"),
        "paired.tokens has the operator token: {paired:#}"
    );
    assert!(
        tokens.iter().all(|t| t.get("token").is_none()),
        "device.pair.list must not reveal tokens: {paired:#}"
    );
    assert!(
        !list.to_string().contains(&token),
        "device.pair.list must not reveal the device token: {list:#}"
    );
    assert!(
        find_by(&list, "pending", "deviceId", &device_id).is_none(),
        "no pending request left for a paired device: {list:#}"
    );
}

#[test]
fn cli_devices_list_shows_paired_device() {
    let Some(h) = Harness::start() else { return };
    let device_home = TempDir::new("device-home");
    let display_name = unique("conf-dev");
    let paired_run = h.device_connects(
        device_home.path(),
        json!({"scopes": ["operator.admin"], "displayName": display_name}),
    );
    let device_id = device_id_of(&paired_run);

    let list = cli_devices_list_json(&h);
    let paired = find_by(&list, "paired", "deviceId", &device_id)
        .unwrap_or_else(|| panic!("device {device_id} not in devices list --json: {list:#}"));
    assert_eq!(
        paired["displayName"],
        display_name.as_str(),
        "paired: {paired:#}"
    );
    assert_eq!(
        paired["publicKey"], paired_run["device"]["publicKey"],
        "paired: {paired:#}"
    );
    assert_eq!(paired["platform"], "linux", "paired: {paired:#}");

    // The table: a `Paired (N)` header, the display name, and the full id under
    // `Full device IDs` (the table column wraps it).
    let out = h.openclaw(&["devices", "list"]);
    assert_eq!(out.code, Some(0), "devices list\n{}", out.describe());
    let text = strip_ansi(&out.stdout);
    assert!(
        text.contains("Paired ("),
        "no Paired section\n{}",
        out.describe()
    );
    assert!(
        text.contains(&display_name),
        "the table must show the device name\n{}",
        out.describe()
    );
    let full_ids = text
        .split("Full device IDs")
        .nth(1)
        .unwrap_or_else(|| panic!("no `Full device IDs` section\n{}", out.describe()));
    assert!(
        full_ids
            .lines()
            .any(|l| l.contains(&device_id) && l.contains(&display_name)),
        "`Full device IDs` must list {device_id} {display_name}\n{}",
        out.describe()
    );
}

#[test]
fn cli_devices_approve_and_reject_pending_requests() {
    let Some(h) = Harness::start_with_config(Some(MANUAL_APPROVAL_CONFIG)) else {
        return;
    };
    // An operator that holds operator.pairing (admin) sees the pairing events.
    let mut operator =
        h.hold_client(json!({"clientName": "cli", "mode": "cli", "scopes": ["operator.admin"]}));

    // Device A: refused with a pending request, approved with the CLI, then connects.
    let home_a = TempDir::new("device-a");
    let name_a = unique("conf-dev-a");
    let (out, line) = h.device_client(
        home_a.path(),
        json!({"scopes": ["operator.admin"], "displayName": name_a}),
    );
    let device_a = device_id_of(&line);
    let request_a = assert_not_paired(&out, &line, &device_a);
    let requested = operator.wait_event(
        "device.pair.requested",
        |p| p["requestId"] == request_a.as_str(),
        EVENT_TIMEOUT,
    );
    assert_eq!(
        requested["deviceId"],
        device_a.as_str(),
        "requested: {requested:#}"
    );

    let list = cli_devices_list_json(&h);
    let pending = find_by(&list, "pending", "requestId", &request_a)
        .unwrap_or_else(|| panic!("request {request_a} not pending: {list:#}"));
    assert_eq!(
        pending["deviceId"],
        device_a.as_str(),
        "pending: {pending:#}"
    );
    assert_eq!(
        pending["displayName"],
        name_a.as_str(),
        "pending: {pending:#}"
    );
    assert_eq!(pending["role"], "operator", "pending: {pending:#}");
    assert!(
        find_by(&list, "paired", "deviceId", &device_a).is_none(),
        "not paired before approval: {list:#}"
    );
    let out = h.openclaw(&["devices", "list"]);
    assert_eq!(out.code, Some(0), "devices list\n{}", out.describe());
    let text = strip_ansi(&out.stdout);
    assert!(
        text.contains("Pending (") && text.contains(&request_a),
        "the table must show the pending request\n{}",
        out.describe()
    );

    let out = h.openclaw(&["devices", "approve", &request_a]);
    assert_eq!(out.code, Some(0), "devices approve\n{}", out.describe());
    let text = strip_ansi(&out.stdout);
    assert!(
        text.contains(&format!("Approved {device_a} ({request_a})")),
        "approve output\n{}",
        out.describe()
    );
    let resolved = operator.wait_event(
        "device.pair.resolved",
        |p| p["requestId"] == request_a.as_str(),
        EVENT_TIMEOUT,
    );
    assert_eq!(resolved["decision"], "approved", "resolved: {resolved:#}");
    assert_eq!(
        resolved["deviceId"],
        device_a.as_str(),
        "resolved: {resolved:#}"
    );

    let approved = h.device_connects(
        home_a.path(),
        json!({"scopes": ["operator.admin"], "displayName": name_a}),
    );
    assert_eq!(
        device_id_of(&approved),
        device_a,
        "same identity after approval"
    );
    assert_device_token(&approved["hello"]);
    let list = cli_devices_list_json(&h);
    let paired = find_by(&list, "paired", "deviceId", &device_a)
        .unwrap_or_else(|| panic!("device {device_a} not paired after approval: {list:#}"));
    assert_eq!(paired["displayName"], name_a.as_str(), "paired: {paired:#}");
    assert!(
        find_by(&list, "pending", "requestId", &request_a).is_none(),
        "approved request still pending: {list:#}"
    );

    // Device B: refused, rejected with the CLI; stays unpaired and is refused again.
    let home_b = TempDir::new("device-b");
    let (out, line) = h.device_client(home_b.path(), json!({"scopes": ["operator.admin"]}));
    let device_b = device_id_of(&line);
    let request_b = assert_not_paired(&out, &line, &device_b);
    let out = h.openclaw(&["devices", "reject", &request_b]);
    assert_eq!(out.code, Some(0), "devices reject\n{}", out.describe());
    assert!(
        strip_ansi(&out.stdout).contains(&format!("Rejected {device_b}")),
        "reject output\n{}",
        out.describe()
    );
    let resolved = operator.wait_event(
        "device.pair.resolved",
        |p| p["requestId"] == request_b.as_str(),
        EVENT_TIMEOUT,
    );
    assert_eq!(resolved["decision"], "rejected", "resolved: {resolved:#}");
    // The request is gone: rejecting it again fails (the original: `unknown requestId`, exit 1).
    let out = h.openclaw(&["devices", "reject", &request_b]);
    assert_ne!(
        out.code,
        Some(0),
        "rejecting twice must fail\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("unknown requestId") || out.stdout.contains("unknown requestId"),
        "second reject\n{}",
        out.describe()
    );
    let list = cli_devices_list_json(&h);
    assert!(
        find_by(&list, "pending", "requestId", &request_b).is_none()
            && find_by(&list, "paired", "deviceId", &device_b).is_none(),
        "a rejected device is neither pending nor paired: {list:#}"
    );
    let (out, line) = h.device_client(home_b.path(), json!({"scopes": ["operator.admin"]}));
    assert_not_paired(&out, &line, &device_b);
    drop(operator);
}

// ---------------------------------------------------------------------------------------------
// 9: the interactive TUI, driven in tmux
// ---------------------------------------------------------------------------------------------

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A private tmux server (own socket); killed on drop.
struct Tmux {
    bin: PathBuf,
    socket: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-S").arg(&self.socket).args(args);
        run_bounded(cmd, &format!("tmux {}", args.join(" ")))
    }

    fn capture(&self, target: &str) -> String {
        strip_ansi(&self.cmd(&["capture-pane", "-p", "-t", target]).stdout)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = cmd.status();
    }
}

#[test]
fn tui_connects_in_tmux() {
    let Some(tmux_bin) = on_path("tmux") else {
        println!("skipping: tmux is not on PATH (install it, e.g. apt-get install -y tmux)");
        return;
    };
    let Some(h) = Harness::start() else { return };
    let dir = TempDir::new("tmux");
    let tmux = Tmux {
        bin: tmux_bin,
        socket: dir.path().join("tmux.sock"),
    };
    let unset: String = SCRUBBED_ENV.iter().map(|v| format!("-u {v} ")).collect();
    // `; sleep` keeps the pane (and its last screen) if the TUI exits.
    let command = format!(
        "env {unset}OPENCLAW_CLIENT_HOME={home} NO_COLOR=1 {bin} tui --url {url} --token {token}; \
         echo \"[tui exited: $?]\"; sleep 60",
        home = shell_quote(&h.home.path().to_string_lossy()),
        bin = shell_quote(&h.oc.openclaw_bin().to_string_lossy()),
        url = shell_quote(&h.gw.url),
        token = shell_quote(&h.gw.token),
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "160",
        "-y",
        "45",
        &command,
    ]);
    assert_eq!(out.code, Some(0), "tmux new-session\n{}", out.describe());

    // The status line (`<connection status> | <activity>`) starts as `connecting`; on hello-ok the
    // TUI switches to `subscribing to session events`, calls `sessions.subscribe` and then loads
    // agents, the session and its history before it shows `gateway connected` (after 4 s just
    // `connected`). A refused connect shows `gateway disconnected: <reason>`.
    let status_after_hello = |screen: &str| -> Option<String> {
        screen
            .lines()
            .map(str::trim)
            .find(|l| {
                [
                    "gateway connected |",
                    "gateway reconnected |",
                    "connected |",
                ]
                .iter()
                .any(|s| l.starts_with(s))
            })
            .map(str::to_string)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let screen = loop {
        let screen = tmux.capture("tui");
        if status_after_hello(&screen).is_some()
            || screen.contains("gateway disconnected")
            || Instant::now() >= deadline
        {
            break screen;
        }
        thread::sleep(Duration::from_millis(500));
    };
    println!("--- TUI screen ---\n{}", screen.trim_end());
    let status = status_after_hello(&screen).unwrap_or_else(|| {
        panic!("the TUI must reach a connected status within 20 s\n--- screen ---\n{screen}")
    });
    println!("TUI status line: {status}");
    assert!(
        screen.contains(&format!("openclaw tui - {}", h.gw.url)),
        "the TUI header names the gateway URL\n--- screen ---\n{screen}"
    );
    assert!(
        !screen.contains("gateway disconnected") && !screen.contains("pairing required"),
        "--- screen ---\n{screen}"
    );

    // The TUI connected as openclaw-tui with a device identity that the gateway paired
    // silently (loopback).
    let list = cli_pair_list(&h);
    let tui_device = list["paired"]
        .as_array()
        .and_then(|p| p.iter().find(|d| d["clientId"] == "openclaw-tui"))
        .unwrap_or_else(|| panic!("no paired openclaw-tui device: {list:#}"));
    assert_eq!(tui_device["clientMode"], "ui", "tui device: {tui_device:#}");
    assert_eq!(
        tui_device["approvedVia"], "silent",
        "tui device: {tui_device:#}"
    );

    // A typed message gets the echo agent's streamed reply on screen.
    tmux.cmd(&["send-keys", "-t", "tui", "hello from the tui", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let screen = loop {
        let screen = tmux.capture("tui");
        if screen.contains("echo: hello from the tui") || Instant::now() >= deadline {
            break screen;
        }
        thread::sleep(Duration::from_millis(300));
    };
    assert!(
        screen.contains("echo: hello from the tui"),
        "the agent's reply is shown\n--- screen ---\n{screen}"
    );
    assert!(
        !screen.contains("unknown method"),
        "--- screen ---\n{screen}"
    );
    drop(tmux);
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

/// The certificate's SHA-256 fingerprint as the original's clients pin it (64 lowercase hex).
fn cert_fingerprint(pem: &Path) -> String {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let der = CertificateDer::from_pem_file(pem).expect("certificate PEM");
    ringgate::tls::material::fingerprint(&der)
}

/// Waits until `openclaw nodes pending` (through `h`) lists a request, or panics with `why`.
fn wait_pending_node(h: &Harness, env: &[(&str, &str)], node: &NodeHost) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let out = h.openclaw_with(&["nodes", "pending", "--json"], env);
        if out.code == Some(0) {
            let list = parse_cli_json(&out);
            if list.as_array().is_some_and(|a| !a.is_empty()) {
                return list;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no pending node request within 40 s\n{}\n--- node host ---\n{}",
            out.describe(),
            node.log()
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// `gateway.tls`: the real CLI over `wss://` (verifying the generated certificate, and pinning
/// it the original's way from the local certificate file), and the real node host pinning the
/// fingerprint ringgate printed; a wrong pin is refused by the node host.
#[test]
fn real_clients_speak_wss_to_a_tls_gateway() {
    // Once, on the default driver (the Rust-side TLS tests cover every driver).
    if suite_driver().is_some() {
        return;
    }
    let Some(h) = Harness::start_with_config(Some("{gateway: {tls: {enabled: true}}}")) else {
        return;
    };
    assert!(h.gw.url.starts_with("wss://"), "{}", h.gw.url);
    let cert = h.gw.state_dir().join("gateway/tls/gateway-cert.pem");
    let cert_s = cert.to_str().unwrap().to_owned();
    let fp = cert_fingerprint(&cert);

    // A client that does not trust the self-signed certificate is refused by Node's TLS.
    let out = h.openclaw(&["gateway", "call", "health", "--json"]);
    assert_ne!(
        out.code,
        Some(0),
        "an untrusted certificate was accepted\n{}",
        out.describe()
    );
    let text = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("self-signed"),
        "{}",
        out.describe()
    );

    // Trusting it (its names include 127.0.0.1), the same call works.
    let trust = [("NODE_EXTRA_CA_CERTS", cert_s.as_str())];
    let out = h.openclaw_with(&["gateway", "call", "health", "--json"], &trust);
    assert_eq!(out.code, Some(0), "health over wss\n{}", out.describe());
    assert_eq!(parse_cli_json(&out)["ok"], true, "{}", out.describe());

    // The original's own pin: a local config with gateway.tls makes the CLI pin the
    // certificate file's fingerprint for its loopback target.
    let port = h.gw.url.rsplit(':').next().unwrap().to_owned();
    let state = TempDir::new("pin-state");
    std::fs::write(
        state.path().join("openclaw.json"),
        json!({"gateway": {"port": port.parse::<u16>().unwrap(),
                           "tls": {"enabled": true, "certPath": cert_s}}})
        .to_string(),
    )
    .unwrap();
    let mut cmd = Command::new(h.oc.openclaw_bin());
    cmd.args([
        "gateway",
        "call",
        "health",
        "--json",
        "--token",
        &h.gw.token,
    ]);
    scrub(&mut cmd);
    cmd.env("OPENCLAW_STATE_DIR", state.path())
        .env("OPENCLAW_CLIENT_HOME", h.home.path())
        .env("NO_COLOR", "1");
    let out = run_bounded(cmd, "openclaw gateway call health (local pin)");
    assert_eq!(
        out.code,
        Some(0),
        "health with the local pin\n{}",
        out.describe()
    );

    // The node host pins the fingerprint ringgate printed and pairs over wss.
    let node = NodeHost::start_with(&h, &["--tls-fingerprint", &fp]);
    let pending = wait_pending_node(&h, &trust, &node);
    assert_eq!(pending[0]["clientId"], "node-host", "{pending}");
    drop(node);

    // A node host given another fingerprint refuses the gateway before it upgrades.
    let wrong: String = fp.chars().rev().collect();
    let bad = NodeHost::start_with(&h, &["--tls-fingerprint", &wrong]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bad.log().contains("fingerprint mismatch") {
        assert!(
            Instant::now() < deadline,
            "the node host did not refuse a wrong pin\n{}",
            bad.log()
        );
        thread::sleep(Duration::from_millis(300));
    }
}
