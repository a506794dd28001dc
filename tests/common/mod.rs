//! Shared harness for the ringgate integration tests: spawn the real binary on port 0 with a
//! temporary state dir, and drive it with a small blocking client (std `TcpStream` +
//! tungstenite). Every read is bounded by a deadline, so a misbehaving server fails a test
//! instead of hanging it.

#![allow(dead_code)]

pub mod fake_model;
pub mod nats;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};
use tungstenite::{
    client::IntoClientRequest,
    http::{HeaderName, HeaderValue},
    protocol::WebSocket,
    Message,
};

/// The shared token every spawned server is configured with.
pub const TOKEN: &str = "T";
/// Upper bound for the server to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Default upper bound for one expected frame.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Socket read timeout used for polling (the overall deadline is enforced above it).
const POLL: Duration = Duration::from_millis(50);

pub type Ws = WebSocket<TcpStream>;

// ---------------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------------

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "ringgate-it-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOpts {
    pub shards: usize,
    /// Extra command-line arguments (after the defaults).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// JSON5 text written to `<state>/config.json5` and passed with `--config`.
    pub config: Option<String>,
    /// Use this state dir (kept) instead of a fresh temporary one.
    pub state_dir: Option<PathBuf>,
    /// Pass `--token TOKEN` (a flag pins the secret; tests of secret rotation set it in the
    /// config file instead).
    pub token_flag: bool,
    /// `--bind` (default `127.0.0.1`).
    pub bind: String,
    /// The server's open-files limit (`RLIMIT_NOFILE`), to exhaust descriptors.
    pub nofile: Option<u64>,
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            shards: 2,
            args: Vec::new(),
            env: Vec::new(),
            config: None,
            state_dir: None,
            token_flag: true,
            bind: "127.0.0.1".into(),
            nofile: None,
        }
    }
}

impl ServerOpts {
    pub fn config(mut self, json5: &str) -> Self {
        self.config = Some(json5.to_owned());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    pub fn bind(mut self, addr: &str) -> Self {
        self.bind = addr.to_owned();
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }

    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_owned());
        self
    }

    /// No `--token` flag: the secret comes from the config file.
    pub fn without_token_flag(mut self) -> Self {
        self.token_flag = false;
        self
    }

    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    /// A config with only a `ringgate.limits` section.
    pub fn limits(self, limits: Value) -> Self {
        self.config(&json!({"ringgate": {"limits": limits}}).to_string())
    }

    pub fn start(self) -> Server {
        Server::start_with(self)
    }
}

/// A running `ringgate run`; killed (SIGKILL) on drop if still running.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// `ws`, or `wss` on a TLS port.
    scheme: String,
    tls_fingerprint: Option<String>,
    stderr: Arc<Mutex<String>>,
    exited: Option<ExitStatus>,
    _dir: Option<TempDir>,
}

/// The path of the binary under test: this build's, or `RINGGATE_TEST_BIN` (to run a test
/// against another build, e.g. to show a regression test fails on the code before its fix).
pub fn bin() -> String {
    std::env::var("RINGGATE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ringgate").to_owned())
}

fn drain_stderr(mut r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut s = b.lock().unwrap();
                    if s.len() < 1 << 20 {
                        s.push_str(&String::from_utf8_lossy(&chunk[..n]));
                    }
                }
            }
        }
    });
    buf
}

impl Server {
    /// `ringgate run --shards 2 --port 0 --bind 127.0.0.1 --token T --state-dir <tmp>`.
    pub fn start() -> Server {
        ServerOpts::default().start()
    }

    pub fn opts() -> ServerOpts {
        ServerOpts::default()
    }

    pub fn start_with(opts: ServerOpts) -> Server {
        let dir = match &opts.state_dir {
            Some(_) => None,
            None => Some(TempDir::new("state")),
        };
        let state: PathBuf = match (&opts.state_dir, &dir) {
            (Some(p), _) => p.clone(),
            (None, Some(d)) => d.path().to_owned(),
            (None, None) => unreachable!(),
        };
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .args(["--shards", &opts.shards.to_string()])
            .args(["--port", "0", "--bind", &opts.bind])
            .arg("--state-dir")
            .arg(&state);
        if opts.token_flag {
            cmd.args(["--token", TOKEN]);
        }
        if let Some(cfg) = &opts.config {
            let path = state.join("config.json5");
            std::fs::write(&path, cfg).expect("write config");
            cmd.arg("--config").arg(&path);
        }
        cmd.args(&opts.args);
        // `RINGGATE_TEST_DRIVER=glommio cargo test` runs every black-box suite on that driver
        // (a test that names its own driver keeps it).
        if let Ok(driver) = std::env::var("RINGGATE_TEST_DRIVER") {
            if !opts.args.iter().any(|a| a == "--driver") {
                cmd.args(["--driver", &driver]);
            }
        }
        cmd.env_remove("RINGGATE_TOKEN")
            .env_remove("OPENCLAW_GATEWAY_TOKEN")
            .env("RINGGATE_LOG", "info");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = opts.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn ringgate");
        let stderr = drain_stderr(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    let _ = tx.send(rest.trim().to_owned());
                } else if let Some(fp) = line.strip_prefix("tls: sha256 ") {
                    let _ = tx.send(format!("fingerprint {}", fp.trim()));
                }
            }
        });
        let (scheme, addr) = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(a) => {
                let (scheme, addr) = a.split_once("://").expect("listening URL");
                (scheme.to_owned(), addr.parse().expect("listening address"))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ringgate did not print its listening line; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        // A TLS port prints its certificate's fingerprint next.
        let tls_fingerprint = (scheme == "wss").then(|| {
            rx.recv_timeout(Duration::from_secs(5))
                .ok()
                .and_then(|l| l.strip_prefix("fingerprint ").map(str::to_owned))
                .expect("a TLS gateway prints `tls: sha256 <fingerprint>`")
        });
        Server {
            child,
            addr,
            scheme,
            tls_fingerprint,
            stderr,
            exited: None,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// `ws`, or `wss` when the gateway serves TLS.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The certificate fingerprint a TLS gateway printed at start.
    pub fn tls_fingerprint(&self) -> Option<String> {
        self.tls_fingerprint.clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// CPU time (user + system) the server has used so far, from `/proc`.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz.max(1))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Kills the process with SIGKILL and waits for it (a crash, for durability tests).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn sigterm(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        assert_eq!(r, 0, "kill(SIGTERM) failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Frames in
// ---------------------------------------------------------------------------------------------

/// One thing read from a socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A text (or binary) frame holding JSON.
    Json(Value),
    /// A text frame that is not JSON.
    Text(String),
    /// A close frame (code, reason); code 1005 when it carried none.
    Close(u16, String),
    /// The connection ended without a close frame (EOF or reset).
    Gone(String),
    /// Nothing arrived before the deadline.
    Timeout,
}

/// Reads the next frame, waiting at most `timeout` (pings are answered and skipped).
pub fn recv(ws: &mut Ws, timeout: Duration) -> Incoming {
    let deadline = Instant::now() + timeout;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                return match serde_json::from_str::<Value>(t.as_str()) {
                    Ok(v) => Incoming::Json(v),
                    Err(_) => Incoming::Text(t.as_str().to_owned()),
                }
            }
            Ok(Message::Binary(b)) => {
                return match serde_json::from_slice::<Value>(&b) {
                    Ok(v) => Incoming::Json(v),
                    Err(_) => Incoming::Text(String::from_utf8_lossy(&b).into_owned()),
                }
            }
            Ok(Message::Close(Some(cf))) => {
                return Incoming::Close(u16::from(cf.code), cf.reason.as_str().to_owned())
            }
            Ok(Message::Close(None)) => return Incoming::Close(1005, String::new()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if is_read_timeout(&e) => {
                if Instant::now() >= deadline {
                    return Incoming::Timeout;
                }
            }
            Err(e) => return Incoming::Gone(e.to_string()),
        }
    }
}

/// Reads until a close frame or the end of the connection; every JSON frame seen on the way
/// is returned too. Panics when neither arrives within `timeout`.
pub fn recv_until_close(ws: &mut Ws, timeout: Duration) -> (Vec<Value>, Incoming) {
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match recv(ws, left) {
            Incoming::Json(v) => frames.push(v),
            Incoming::Text(t) => panic!("unexpected non-JSON text frame: {t}"),
            Incoming::Timeout => panic!("no close within {timeout:?}; frames so far: {frames:?}"),
            end => return (frames, end),
        }
    }
}

/// Reads until a close frame and returns `(code, reason)`; panics on anything else than
/// events before it (or when the connection ends without a close frame).
pub fn expect_close(ws: &mut Ws, timeout: Duration) -> (u16, String) {
    let (frames, end) = recv_until_close(ws, timeout);
    for f in &frames {
        assert_eq!(f["type"], "event", "unexpected frame before close: {f}");
    }
    match end {
        Incoming::Close(code, reason) => (code, reason),
        other => panic!("expected a close frame, got {other:?} (frames {frames:?})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

/// Opens a WebSocket to the server with extra request headers; `Err` carries the handshake
/// error (e.g. an HTTP refusal).
pub fn try_open(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, tungstenite::Error> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("tcp connect");
    open_on(stream, addr, headers)
}

/// Completes the WebSocket upgrade on an already-connected stream.
pub fn open_on(
    stream: TcpStream,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> Result<Ws, tungstenite::Error> {
    open_path(stream, addr, "/", headers)
}

/// Opens a WebSocket on `path` (e.g. the worker channel), reading nothing.
#[allow(dead_code)]
pub fn open_at(addr: SocketAddr, path: &str) -> Result<Ws, tungstenite::Error> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("tcp connect");
    open_path(stream, addr, path, &[])
}

fn open_path(
    stream: TcpStream,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tungstenite::Error> {
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let (ws, _resp) = tungstenite::client::client(req, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => {
            tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into())
        }
    })?;
    ws.get_ref().set_read_timeout(Some(POLL)).unwrap();
    Ok(ws)
}

/// Opens a WebSocket and reads `connect.challenge`.
pub fn open(server: &Server) -> (Ws, Value) {
    open_with_headers(server, &[])
}

pub fn open_with_headers(server: &Server, headers: &[(&str, &str)]) -> (Ws, Value) {
    let mut ws = try_open(server.addr, headers).expect("websocket upgrade");
    let challenge = match recv(&mut ws, READ_TIMEOUT) {
        Incoming::Json(v) => v,
        other => panic!("expected connect.challenge, got {other:?}"),
    };
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    (ws, challenge)
}

/// Default `connect` params: local CLI operator with `operator.admin` and the shared token.
pub fn connect_params() -> Value {
    json!({
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": "cli", "version": "t", "platform": "linux", "mode": "cli"},
        "role": "operator",
        "scopes": ["operator.admin"],
        "caps": [],
        "auth": {"token": TOKEN},
    })
}

/// `connect` params for a client id/mode with these scopes and the shared token.
pub fn params_for(client_id: &str, mode: &str, scopes: &[&str]) -> Value {
    let mut p = connect_params();
    p["client"]["id"] = json!(client_id);
    p["client"]["mode"] = json!(mode);
    p["scopes"] = json!(scopes);
    p
}

pub fn send_json(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).expect("send frame");
}

pub fn send_text(ws: &mut Ws, s: &str) {
    ws.send(Message::text(s.to_owned())).expect("send frame");
}

/// Sends `connect` (id "1") with these params and returns the first frame that follows (the
/// response, or whatever ended the connection).
pub fn send_connect(ws: &mut Ws, params: &Value) -> Incoming {
    send_json(
        ws,
        &json!({"type": "req", "id": "1", "method": "connect", "params": params}),
    );
    // Rejections of auth failures are delayed (loopback backoff, up to 5 s).
    recv(ws, Duration::from_secs(10))
}

/// Asserts a handshake rejection: a `res ok:false` with this error followed by this close.
/// Returns the error object.
pub fn expect_rejection(ws: &mut Ws, first: Incoming, close_code: u16, reason: &str) -> Value {
    expect_rejection_with_id(ws, first, "1", close_code, reason)
}

/// [`expect_rejection`] for a request whose id is not "1".
pub fn expect_rejection_with_id(
    ws: &mut Ws,
    first: Incoming,
    id: &str,
    close_code: u16,
    reason: &str,
) -> Value {
    let res = match first {
        Incoming::Json(v) => v,
        other => panic!("expected an error response, got {other:?}"),
    };
    assert_eq!(res["type"], "res", "{res}");
    assert_eq!(res["id"], id, "{res}");
    assert_eq!(res["ok"], false, "{res}");
    let (code, r) = expect_close(ws, READ_TIMEOUT);
    assert_eq!(
        (code, r.as_str()),
        (close_code, reason),
        "close after {res}"
    );
    res["error"].clone()
}

// ---------------------------------------------------------------------------------------------
// An authenticated client
// ---------------------------------------------------------------------------------------------

/// An authenticated connection.
pub struct Client {
    pub ws: Ws,
    pub challenge: Value,
    /// The `hello-ok` payload.
    pub hello: Value,
    /// Events read while waiting for responses, oldest first.
    pub events: Vec<Value>,
    /// When false, events are skipped unparsed while waiting for responses (cheap floods).
    pub keep_events: bool,
    next_id: u64,
}

impl Client {
    /// Local CLI operator with `operator.admin`.
    pub fn connect(server: &Server) -> Client {
        Client::connect_with(server, &connect_params())
    }

    /// Connects with these params; panics unless `hello-ok` comes back.
    pub fn connect_with(server: &Server, params: &Value) -> Client {
        let (ws, challenge) = open(server);
        Client::handshake(ws, challenge, params)
    }

    /// Upgrades an already-connected stream (e.g. one with custom socket options), then
    /// connects with these params.
    pub fn connect_on(stream: TcpStream, server: &Server, params: &Value) -> Client {
        let mut ws = open_on(stream, server.addr, &[]).expect("websocket upgrade");
        let challenge = match recv(&mut ws, READ_TIMEOUT) {
            Incoming::Json(v) => v,
            other => panic!("expected connect.challenge, got {other:?}"),
        };
        Client::handshake(ws, challenge, params)
    }

    fn handshake(mut ws: Ws, challenge: Value, params: &Value) -> Client {
        let res = match send_connect(&mut ws, params) {
            Incoming::Json(v) => v,
            other => panic!("expected hello-ok, got {other:?}"),
        };
        assert_eq!(res["ok"], true, "connect failed: {res}");
        assert_eq!(res["payload"]["type"], "hello-ok", "{res}");
        Client {
            ws,
            challenge,
            hello: res["payload"].clone(),
            events: Vec::new(),
            keep_events: true,
            next_id: 100,
        }
    }

    pub fn send_json(&mut self, v: &Value) {
        send_json(&mut self.ws, v);
    }

    pub fn send_text(&mut self, s: &str) {
        send_text(&mut self.ws, s);
    }

    /// The shard this connection lives on (the `s<N>-` prefix of `hello-ok.server.connId`).
    pub fn shard(&self) -> usize {
        let id = self.hello["server"]["connId"].as_str().expect("connId");
        id.strip_prefix('s')
            .and_then(|r| r.split('-').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("connId without shard prefix: {id}"))
    }

    /// Connects with params built from the challenge (e.g. to sign a device proof).
    pub fn connect_with_challenge(server: &Server, params: impl Fn(&Value) -> Value) -> Client {
        let (ws, challenge) = open(server);
        let p = params(&challenge);
        Client::handshake(ws, challenge, &p)
    }

    /// A node (`node-host`, role node) with a device identity from `seed`, declaring
    /// `commands`, on `shard`.
    pub fn connect_node(server: &Server, seed: u8, commands: &[&str], shard: usize) -> Client {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        for _ in 0..200 {
            let c = Client::connect_with_challenge(server, |ch| {
                let mut p = json!({
                    "minProtocol": 3,
                    "maxProtocol": 4,
                    "client": {"id": "node-host", "displayName": format!("node-{seed}"),
                               "version": "t", "platform": "linux", "mode": "node"},
                    "role": "node",
                    "scopes": [],
                    "caps": ["system"],
                    "commands": commands,
                    "auth": {"token": TOKEN},
                });
                let nonce = ch["payload"]["nonce"].as_str().unwrap();
                let ts = ch["payload"]["ts"].as_u64().unwrap();
                add_device(&mut p, &key, nonce, ts);
                p
            });
            if c.shard() == shard {
                return c;
            }
            c.close();
        }
        panic!("no node connection landed on shard {shard}");
    }

    /// Connects until a connection lands on `shard` (the kernel spreads accepts).
    pub fn connect_to_shard(server: &Server, params: &Value, shard: usize) -> Client {
        for _ in 0..200 {
            let c = Client::connect_with(server, params);
            if c.shard() == shard {
                return c;
            }
            c.close();
        }
        panic!("no connection landed on shard {shard}");
    }

    /// Sends a request with a fresh id; returns the id.
    pub fn send_request(&mut self, method: &str, params: Option<Value>) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let mut frame = json!({"type": "req", "id": id, "method": method});
        if let Some(p) = params {
            frame["params"] = p;
        }
        self.send_json(&frame);
        id
    }

    /// Reads until the response with this id (events are kept or skipped); panics on close or
    /// timeout.
    pub fn wait_response(&mut self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.keep_events {
                if let Some(v) = self.read_res_cheaply(left) {
                    if v["id"] == id {
                        return v;
                    }
                    panic!("response for another id while waiting for {id}: {v}");
                }
                continue;
            }
            match recv(&mut self.ws, left) {
                Incoming::Json(v) if v["type"] == "event" => self.events.push(v),
                Incoming::Json(v) if v["type"] == "res" && v["id"] == id => return v,
                other => panic!("while waiting for response {id}: {other:?}"),
            }
        }
    }

    /// Reads one frame, parsing it only when it is a response.
    fn read_res_cheaply(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    if t.as_str().starts_with("{\"type\":\"event\"") {
                        return None;
                    }
                    return Some(serde_json::from_str(t.as_str()).expect("JSON response"));
                }
                Ok(Message::Close(cf)) => panic!("closed while waiting for a response: {cf:?}"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if is_read_timeout(&e) => {
                    if Instant::now() >= deadline {
                        panic!("timed out waiting for a response");
                    }
                }
                Err(e) => panic!("connection failed while waiting for a response: {e}"),
            }
        }
    }

    /// Sends a request and returns the whole `res` frame.
    pub fn request(&mut self, method: &str, params: Option<Value>) -> Value {
        let id = self.send_request(method, params);
        self.wait_response(&id, READ_TIMEOUT)
    }

    /// Sends a request and returns its payload; panics unless `ok:true`.
    pub fn call(&mut self, method: &str, params: Option<Value>) -> Value {
        let res = self.request(method, params);
        assert_eq!(res["ok"], true, "{method} failed: {res}");
        res["payload"].clone()
    }

    /// Sends a request and returns its error; panics unless `ok:false`.
    pub fn call_err(&mut self, method: &str, params: Option<Value>) -> Value {
        let res = self.request(method, params);
        assert_eq!(res["ok"], false, "{method} unexpectedly succeeded: {res}");
        res["error"].clone()
    }

    /// Returns the first event (already buffered or arriving within `timeout`) named `name`
    /// and matching `pred`, removing it (and nothing else) from the buffer.
    pub fn wait_event_where(
        &mut self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self
            .events
            .iter()
            .position(|e| e["event"] == name && pred(e))
        {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match recv(&mut self.ws, left) {
                Incoming::Json(v) if v["type"] == "event" => {
                    if v["event"] == name && pred(&v) {
                        return v;
                    }
                    self.events.push(v);
                }
                Incoming::Timeout => panic!("no `{name}` event within {timeout:?}"),
                other => panic!("while waiting for `{name}`: {other:?}"),
            }
        }
    }

    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Value {
        self.wait_event_where(name, timeout, |_| true)
    }

    /// Reads until the close frame; returns `(code, reason)`.
    pub fn expect_close(&mut self, timeout: Duration) -> (u16, String) {
        expect_close(&mut self.ws, timeout)
    }

    /// Sends a close frame and waits briefly for the reply.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if is_read_timeout(&e) => {}
                Err(_) => break,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Device identity
// ---------------------------------------------------------------------------------------------

/// A timed read that found nothing yet (timeout, or interrupted): retry until the deadline.
pub fn is_read_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// Lowercase hex SHA-256 of the raw public key (the device id).
pub fn device_id(raw: &[u8; 32]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Adds a `device` proof to connect params, signing the v3 payload
/// `v3|deviceId|clientId|mode|role|scopesCsv|signedAt|token|nonce|platform|deviceFamily`.
pub fn add_device(
    params: &mut Value,
    key: &ed25519_dalek::SigningKey,
    nonce: &str,
    signed_at: u64,
) {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use ed25519_dalek::Signer;
    let raw = key.verifying_key().to_bytes();
    let id = device_id(&raw);
    let c = &params["client"];
    let scopes: Vec<&str> = params["scopes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // The signed token: `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`.
    let auth = &params["auth"];
    let token = ["token", "deviceToken", "bootstrapToken"]
        .iter()
        .find_map(|k| auth[*k].as_str())
        .unwrap_or("");
    let lower = |v: &Value| v.as_str().unwrap_or("").trim().to_ascii_lowercase();
    let payload = format!(
        "v3|{id}|{}|{}|{}|{}|{signed_at}|{token}|{nonce}|{}|{}",
        c["id"].as_str().unwrap_or(""),
        c["mode"].as_str().unwrap_or(""),
        params["role"].as_str().unwrap_or("operator"),
        scopes.join(","),
        lower(&c["platform"]),
        lower(&c["deviceFamily"]),
    );
    let sig = key.sign(payload.as_bytes());
    params["device"] = json!({
        "id": id,
        "publicKey": URL_SAFE_NO_PAD.encode(raw),
        "signature": URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        "signedAt": signed_at,
        "nonce": nonce,
    });
}

/// A TCP connection whose receive buffer is tiny, so the kernel holds little of what the
/// server sends and the server's own outbox fills quickly.
pub fn small_rcvbuf_stream(addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(a) = addr else {
        panic!("IPv4 expected")
    };
    // SAFETY: plain socket syscalls on a descriptor we own; it is handed to TcpStream (which
    // closes it) only after a successful connect, and closed by hand otherwise.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket()");
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if r != 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            panic!("connect: {e}");
        }
        std::os::fd::FromRawFd::from_raw_fd(fd)
    }
}

/// Floods presence (via `system-event`) until `status` counts a slow-consumer close: a client
/// that stopped reading (see [`small_rcvbuf_stream`]) falls behind and is closed. The same
/// presence key each time keeps every event well under the limits; "Node:" texts are not
/// queued as system events, so `status` stays small too. Panics after 20 s.
pub fn flood_until_slow_close(driver: &mut Client, host: &str) {
    let big = "x".repeat(8000);
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 1u64.. {
        driver.call(
            "system-event",
            Some(json!({"text": format!("Node: {big} {i}"), "host": host})),
        );
        driver.call(
            "system-event",
            Some(json!({"text": format!("Node: small {i}"), "host": host})),
        );
        if i % 10 == 0 && driver.call("status", None)["gateway"]["slowConsumerCloses"] != 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no slow-consumer close after {i} rounds; status {}",
            driver.call("status", None)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP
// ---------------------------------------------------------------------------------------------

/// A raw HTTP response: status code, head (lowercase), body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends a raw request and reads the response until the server closes (bounded).
pub fn http_raw(addr: SocketAddr, request: &str) -> HttpResponse {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("tcp connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(request.as_bytes()).expect("write request");
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_read_timeout(&e) => {
                if parse_http(&buf).is_some_and(|r| r.complete) || Instant::now() >= deadline {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let r = parse_http(&buf).unwrap_or_else(|| {
        panic!(
            "no HTTP response: {:?}",
            String::from_utf8_lossy(&buf).into_owned()
        )
    });
    r.response
}

struct Parsed {
    response: HttpResponse,
    complete: bool,
}

fn parse_http(buf: &[u8]) -> Option<Parsed> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let head_l = head.to_ascii_lowercase();
    let len = head_l
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    Some(Parsed {
        complete: len.is_some_and(|n| body.len() >= n),
        response: HttpResponse {
            status,
            head: head_l,
            body: body.to_owned(),
        },
    })
}

/// A WebSocket upgrade request head for `addr` with extra header lines.
pub fn upgrade_request(addr: SocketAddr, extra: &[&str]) -> String {
    let mut r = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// io_uring may be unavailable (old kernel, seccomp); the test then checks nothing. The probe
/// runs on a thread of its own: the ring's teardown work is queued to the creating thread and
/// would interrupt that thread's next blocking socket read (EINTR under SO_RCVTIMEO).
pub fn io_uring_available() -> bool {
    std::thread::spawn(|| {
        // SAFETY: io_uring_setup with a zeroed params struct; the fd is closed right away.
        unsafe {
            let mut params = [0u8; 120];
            let fd = libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr());
            if fd < 0 {
                return false;
            }
            libc::close(fd as i32);
            true
        }
    })
    .join()
    .unwrap_or(false)
}
