//! ringgate load generator: thread-per-core monoio workers driving the
//! OpenClaw gateway WebSocket protocol (or a bare echo server).
//!
//! Scenarios: `handshake`, `rpc` (also `--raw` against an echo server), `idle`,
//! `broadcast`, `slow`, and the chat scenarios `chat` (closed-loop `chat.send` turns in N
//! sessions with session-scoped events) and `chat-fanout` (one sender's turns fanned out to W
//! unscoped watchers), documented in [`chat`]. `tools/loadgen/README.md` has the options.

mod chat;
mod cpu;
mod floor;
mod invoke;
mod proto;
mod scale;
mod stats;
mod ws;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use proto::{ConnCfg, Device, EventKind, Msg};
use stats::{merge_all, rate, Report, ThreadOut};
use ws::{SockOpts, Target, Ws, WsError, OP_BINARY, OP_CLOSE, OP_TEXT};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for ringgate / OpenClaw gateway"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// With `wss://` targets: every TLS handshake is a full one (no session resumption). By
    /// default a connection resumes the session of an earlier one, as browsers and Node do.
    #[arg(long, global = true)]
    tls_no_resume: bool,
}

#[derive(Args, Clone)]
struct Common {
    /// Target URL (loopback IPv4 only). Several, comma-separated, are hosts of one cluster:
    /// connections are spread over them round-robin (a scenario's single sender or operator
    /// uses the first), and server CPU is the sum over all of them.
    #[arg(long, default_value = "ws://127.0.0.1:18789/")]
    url: String,
    /// Gateway shared token (auth.token)
    #[arg(long, default_value = "")]
    token: String,
    /// Measurement duration in seconds (upper bound for every scenario)
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Also print one JSON line with the results
    #[arg(long)]
    json: bool,
    /// Worker threads (one pinned monoio runtime each)
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// CPUs to pin worker threads to, e.g. "1" or "2,3" (default: highest-numbered CPUs)
    #[arg(long)]
    cpus: Option<String>,
    /// Do not pin worker threads
    #[arg(long)]
    no_pin: bool,
    /// Do not rotate source addresses over 127.0.0.2..250
    #[arg(long)]
    no_src_rotate: bool,
    /// Requested operator scopes (comma separated)
    #[arg(long, default_value = "operator.admin")]
    scopes: String,
    /// Sign the connect with an ed25519 device identity
    #[arg(long)]
    device: bool,
    /// Per-operation timeout (connect, handshake, response) in seconds
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// io_uring entries per worker
    #[arg(long, default_value_t = 4096)]
    ring_entries: u32,
    /// Server PID whose CPU time (and, for `idle`, VmRSS) is measured (default: the process
    /// listening on the target port)
    #[arg(long)]
    pid: Option<u32>,
}

impl Common {
    /// The server process to measure (the first target's).
    fn server_pid(&self) -> Option<u32> {
        self.pid.or_else(|| {
            Target::parse(self.first_url())
                .ok()
                .and_then(|t| pid_of_port(t.addr.port()))
        })
    }

    /// Every server process to measure: `--pid`, else each target's.
    fn server_pids(&self) -> Vec<u32> {
        if let Some(p) = self.pid {
            return vec![p];
        }
        let mut pids: Vec<u32> = self
            .urls()
            .filter_map(|u| Target::parse(u).ok())
            .filter_map(|t| pid_of_port(t.addr.port()))
            .collect();
        pids.dedup();
        pids
    }

    fn urls(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty())
    }

    fn first_url(&self) -> &str {
        self.urls().next().unwrap_or(&self.url)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Open, complete challenge→connect→hello-ok, close; repeat
    Handshake(HandshakeArgs),
    /// N connected clients each keeping P requests in flight
    Rpc(RpcArgs),
    /// Many idle authenticated connections; server RSS per connection; survivors
    Idle(IdleArgs),
    /// One sender calls system-event; measure presence fan-out to N subscribers
    Broadcast(BroadcastArgs),
    /// Healthy rpc clients with and without K clients that stop reading
    Slow(SlowArgs),
    /// Closed-loop chat.send turns in N sessions (scoped events): turns/s, ack and final latency
    Chat(chat::ChatArgs),
    /// One sender's chat turns fanned out to W unscoped watchers: send → final at the last one
    ChatFanout(chat::FanoutArgs),
    /// node.invoke round trips between an operator and a simulated node (same or cross shard)
    Invoke(invoke::InvokeArgs),
    /// Idle connections stepped up to a peak and back to zero: server RSS and a fresh
    /// client's `health` latency at each step
    Scale(scale::ScaleArgs),
    /// The kernel's own cost of a loopback fan-out: plain send(2) of one frame to N sockets
    Floor(floor::FloorArgs),
}

#[derive(Args, Clone)]
struct HandshakeArgs {
    #[command(flatten)]
    c: Common,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[derive(Args, Clone)]
struct RpcArgs {
    #[command(flatten)]
    c: Common,
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests in flight per client (1 = closed loop)
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    #[arg(long, default_value = "last-heartbeat")]
    method: String,
    /// Request params (JSON)
    #[arg(long, default_value = "{}")]
    params: String,
    /// Bare WebSocket echo mode (no OpenClaw handshake): send a text message, wait for the echo
    #[arg(long)]
    raw: bool,
    /// Message size in bytes for --raw
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Connection rate while setting up clients (per second)
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
}

#[derive(Args, Clone)]
struct IdleArgs {
    #[command(flatten)]
    c: Common,
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Seconds to hold the connections after they are all open
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// New connections per second
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Initial read buffer per connection (bytes)
    #[arg(long, default_value_t = 512)]
    read_buf: usize,
    /// Bare WebSocket connections (no OpenClaw handshake), e.g. against the echo server
    #[arg(long)]
    raw: bool,
}

#[derive(Args, Clone)]
struct BroadcastArgs {
    #[command(flatten)]
    c: Common,
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    #[arg(long, default_value_t = 100)]
    rounds: u64,
    /// Per-round timeout waiting for all deliveries (seconds)
    #[arg(long, default_value_t = 5.0)]
    round_timeout: f64,
    /// Pause between rounds (ms)
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Every round updates one presence entry (constant ~0.5 KB frames). By default each
    /// round adds an entry, so the `presence` list and the frames grow with the rounds (to
    /// ~20 KB at 100 rounds).
    #[arg(long)]
    same_entry: bool,
}

#[derive(Args, Clone)]
struct SlowArgs {
    #[command(flatten)]
    c: Common,
    /// Healthy closed-loop rpc clients
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Clients that connect and then never read
    #[arg(long, default_value_t = 4)]
    slow: usize,
    #[arg(long, default_value = "last-heartbeat")]
    method: String,
    #[arg(long, default_value = "{}")]
    params: String,
    /// Run a closed-loop system-event sender (presence broadcast) during both phases
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    broadcast: bool,
    /// Length of the system-event text
    #[arg(long, default_value_t = 256)]
    text_bytes: usize,
    /// SO_RCVBUF of the slow clients (bytes)
    #[arg(long, default_value_t = 4096)]
    slow_rcvbuf: u32,
    /// Seconds to wait for each slow client's fate at the end
    #[arg(long, default_value_t = 3.0)]
    probe: f64,
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
}

// ---------------------------------------------------------------------------
// shared state and thread runner

/// State shared by all worker threads and the coordinating main thread.
struct Shared {
    cfg: ConnCfg,
    /// Every host's address (one unless `--url` names a cluster).
    addrs: Vec<std::net::SocketAddrV4>,
    addr_ctr: AtomicU32,
    base: Instant,
    rotate_src: bool,
    src_ctr: AtomicU32,
    /// 0 = setting up; scenario specific values after that
    phase: AtomicU32,
    stop: AtomicBool,
    connected: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    slow_connected: AtomicU64,
    slow_failed: AtomicU64,
    sender_ready: AtomicBool,
    sender_done: AtomicBool,
    round: AtomicU64,
    delivered: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

impl Shared {
    fn new(c: &Common, read_buf: usize) -> Result<Shared, String> {
        let target = Target::parse(c.first_url())?;
        let rotate_src = !c.no_src_rotate && target.addr.ip().octets()[0] == 127;
        let addrs = c
            .urls()
            .map(|u| Target::parse(u).map(|t| t.addr))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Shared {
            addrs,
            addr_ctr: AtomicU32::new(0),
            cfg: ConnCfg {
                target,
                token: c.token.clone(),
                scopes: c
                    .scopes
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                device: c.device.then(Device::generate),
                timeout: Duration::from_secs_f64(c.timeout),
                read_buf,
            },
            base: Instant::now(),
            rotate_src,
            src_ctr: AtomicU32::new(0),
            phase: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            slow_connected: AtomicU64::new(0),
            slow_failed: AtomicU64::new(0),
            sender_ready: AtomicBool::new(false),
            sender_done: AtomicBool::new(false),
            round: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
        })
    }

    fn sock(&self) -> SockOpts {
        let src = self.rotate_src.then(|| {
            let n = self.src_ctr.fetch_add(1, Relaxed);
            Ipv4Addr::new(127, 0, 0, 2 + (n % 249) as u8)
        });
        let addr = (self.addrs.len() > 1).then(|| {
            let n = self.addr_ctr.fetch_add(1, Relaxed) as usize;
            self.addrs[n % self.addrs.len()]
        });
        SockOpts {
            src,
            rcvbuf: None,
            addr,
        }
    }

    /// [`Shared::sock`] on host `i` of the cluster (the first for a scenario's single sender).
    fn sock_on(&self, i: usize) -> SockOpts {
        let mut o = self.sock();
        o.addr = self.addrs.get(i).copied();
        o
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }
}

/// Share of `n` for thread `tid` of `threads`.
fn share(n: usize, threads: usize, tid: usize) -> usize {
    n / threads + usize::from(tid < n % threads)
}

pub(crate) fn pin_cpu(cpu: usize) {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("warning: could not pin to cpu {cpu}");
        }
    }
}

fn cpu_list(c: &Common) -> Vec<usize> {
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if let Some(s) = &c.cpus {
        let v: Vec<usize> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        if !v.is_empty() {
            return v;
        }
    }
    // Default: highest-numbered CPUs first (the server pins from CPU 0 up).
    (0..ncpu).rev().collect()
}

/// Start `c.threads` pinned worker threads, each running `f(tid)` on its own
/// monoio runtime; returns the joined results.
fn run_workers<F, Fut>(c: &Common, sh: Arc<Shared>, f: F) -> Vec<std::thread::JoinHandle<ThreadOut>>
where
    F: Fn(usize, Arc<Shared>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ThreadOut> + 'static,
{
    let cpus = cpu_list(c);
    let pin = !c.no_pin;
    let entries = c.ring_entries;
    (0..c.threads.max(1))
        .map(|tid| {
            let sh = sh.clone();
            let f = f.clone();
            let cpu = cpus[tid % cpus.len()];
            std::thread::Builder::new()
                .name(format!("lg-{tid}"))
                .spawn(move || {
                    if pin {
                        pin_cpu(cpu);
                    }
                    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                        .enable_timer()
                        .with_entries(entries)
                        .build()
                        .expect("monoio runtime");
                    rt.block_on(f(tid, sh))
                })
                .expect("spawn worker")
        })
        .collect()
}

fn join(hs: Vec<std::thread::JoinHandle<ThreadOut>>) -> ThreadOut {
    merge_all(
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect(),
    )
}

/// Main-thread wait until `cond` or `limit` elapsed; returns whether cond held.
fn wait_until(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

async fn sleep_ms(ms: u64) {
    monoio::time::sleep(Duration::from_millis(ms)).await
}

/// Spawn `n` tasks at `rate_per_thread`/s; returns their join handles.
async fn spawn_paced<T, F, Fut>(
    n: usize,
    rate_per_thread: f64,
    mut mk: F,
) -> Vec<monoio::task::JoinHandle<T>>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = T> + 'static,
    T: 'static,
{
    let mut hs = Vec::with_capacity(n);
    let t0 = Instant::now();
    let rate = rate_per_thread.max(1.0);
    while hs.len() < n {
        let due = ((t0.elapsed().as_secs_f64() * rate) as usize + 1).min(n);
        while hs.len() < due {
            let i = hs.len();
            hs.push(monoio::spawn(mk(i)));
        }
        if hs.len() < n {
            sleep_ms(1).await;
        }
    }
    hs
}

fn raise_nofile() -> u64 {
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            return r.rlim_cur;
        }
    }
    0
}

fn vm_rss_kib(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// PID listening on the port (via /proc/net/tcp inode → /proc/*/fd).
fn pid_of_port(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = std::fs::read_to_string(f) else {
            continue;
        };
        for l in s.lines().skip(1) {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let p = cols[1].rsplit(':').next().unwrap_or("");
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(l) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| l.to_string_lossy() == *i) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

fn common_rows(r: &mut Report, c: &Common, sh: &Shared) {
    r.add("url", c.url.clone());
    r.add("threads", c.threads);
    r.add("device", c.device);
    r.add("src_rotate", sh.rotate_src);
}

// ---------------------------------------------------------------------------
// handshake

async fn handshake_thread(tid: usize, sh: Arc<Shared>, conc: usize, dur: Duration) -> ThreadOut {
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    let deadline = Instant::now() + dur;
    let mut hs = Vec::new();
    for _ in 0..conc {
        let (sh, out) = (sh.clone(), out.clone());
        hs.push(monoio::spawn(async move {
            while Instant::now() < deadline && !sh.stopped() {
                let t0 = Instant::now();
                match proto::open(&sh.cfg, sh.sock()).await {
                    Ok(ws) => {
                        {
                            let mut o = out.borrow_mut();
                            o.rec("handshake", t0.elapsed());
                            o.inc("ok", 1);
                        }
                        ws.close(Duration::from_millis(500)).await;
                    }
                    Err(e) => {
                        out.borrow_mut().err(e.kind());
                        // avoid a hot loop against a refusing server
                        sleep_ms(5).await;
                    }
                }
            }
        }));
    }
    for h in hs {
        h.await;
    }
    let _ = tid;
    Rc::try_unwrap(out)
        .map(|c| c.into_inner())
        .unwrap_or_default()
}

fn run_handshake(a: HandshakeArgs) -> Result<(), String> {
    let sh = Arc::new(Shared::new(&a.c, 4096)?);
    let dur = Duration::from_secs_f64(a.c.duration);
    let threads = a.c.threads.max(1);
    let conc = a.concurrency;
    let (t0, meter) = (Instant::now(), cpu::Meter::start_all(a.c.server_pids()));
    let hs = run_workers(&a.c, sh.clone(), move |tid, sh| {
        handshake_thread(tid, sh, share(conc, threads, tid), dur)
    });
    let out = join(hs);
    let secs = t0.elapsed().as_secs_f64();
    let spent = meter.stop();
    let mut r = Report::new("handshake");
    common_rows(&mut r, &a.c, &sh);
    r.add("concurrency", a.concurrency);
    r.add("elapsed_s", (secs * 100.0).round() / 100.0);
    r.add("handshakes", out.count("ok"));
    r.add("handshakes_per_s", rate(out.count("ok"), secs));
    r.latency("latency", out.hists.get("handshake"));
    r.errors(&out.errors);
    spent.report(&mut r, "handshake", out.count("ok"));
    r.print(a.c.json);
    Ok(())
}

// ---------------------------------------------------------------------------
// rpc (and raw echo)

/// Builds request frames for one client.
#[derive(Clone)]
enum ReqKind {
    Rpc { suffix: Rc<Vec<u8>> },
    Raw { size: usize },
}

impl ReqKind {
    fn build(&self, id: u64, buf: &mut Vec<u8>) {
        buf.clear();
        match self {
            ReqKind::Rpc { suffix } => {
                buf.extend_from_slice(b"{\"type\":\"req\",\"id\":\"");
                buf.extend_from_slice(id.to_string().as_bytes());
                buf.extend_from_slice(suffix);
            }
            ReqKind::Raw { size } => {
                buf.extend_from_slice(format!("{id:>16}").as_bytes());
                buf.resize((*size).max(16), b'x');
            }
        }
    }
    fn classify(&self, p: &[u8]) -> Msg {
        match self {
            ReqKind::Rpc { .. } => proto::classify(p),
            ReqKind::Raw { .. } => {
                let id = std::str::from_utf8(&p[..p.len().min(16)])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(u64::MAX);
                Msg::Res { id, ok: true }
            }
        }
    }
}

fn rpc_suffix(method: &str, params: &str) -> Result<Vec<u8>, String> {
    let p: serde_json::Value =
        serde_json::from_str(params).map_err(|e| format!("--params is not JSON: {e}"))?;
    Ok(format!(
        "\",\"method\":{},\"params\":{}}}",
        serde_json::Value::String(method.to_string()),
        p
    )
    .into_bytes())
}

/// Which histogram a completion goes to, by phase; None = do not record.
type PhaseMap = fn(u32) -> Option<&'static str>;

/// Closed loop / pipelined request driver on one connection. Runs until
/// `sh.stop`; records latencies for completions while `phase_map(phase)` is Some.
async fn drive(
    ws: &mut Ws,
    sh: &Shared,
    out: &RefCell<ThreadOut>,
    kind: &ReqKind,
    pipeline: usize,
    phase_map: PhaseMap,
) -> Result<(), String> {
    let mut inflight: HashMap<u64, Instant> = HashMap::with_capacity(pipeline * 2);
    let mut next_id: u64 = 2;
    let mut msg = Vec::with_capacity(256);
    let resp_timeout = sh.cfg.timeout;
    loop {
        // Handle everything already buffered.
        loop {
            let f = match ws.next_buffered() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(e.kind()),
            };
            match f.op {
                OP_TEXT | OP_BINARY => match kind.classify(ws.payload(&f)) {
                    Msg::Res { id, ok } => {
                        if let Some(t) = inflight.remove(&id) {
                            let code = (!ok).then(|| proto::error_code(ws.payload(&f)));
                            let mut o = out.borrow_mut();
                            if let Some(name) = phase_map(sh.phase.load(Relaxed)) {
                                if !sh.stopped() {
                                    o.rec(name, t.elapsed());
                                    o.inc(name, 1);
                                }
                            }
                            if let Some(c) = code {
                                o.err(format!("res-error:{c}"));
                            }
                        }
                    }
                    Msg::Event(_) => out.borrow_mut().inc("events", 1),
                    Msg::Other => {}
                },
                OP_CLOSE => {
                    let (c, r) = ws::close_info(ws.payload(&f));
                    return Err(format!("server-close:{c}:{r}"));
                }
                _ => {}
            }
        }
        let stop = sh.stopped();
        if !stop {
            while inflight.len() < pipeline {
                let id = next_id;
                next_id += 1;
                kind.build(id, &mut msg);
                ws.queue_text(&msg);
                inflight.insert(id, Instant::now());
            }
        }
        if ws.pending_write() {
            ws.flush().await.map_err(|e| e.kind())?;
        }
        if stop && inflight.is_empty() {
            return Ok(());
        }
        match monoio::time::timeout(resp_timeout, ws.read_more()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.kind()),
            Err(_) => return Err("response-timeout".into()),
        }
    }
}

/// Opens a client and records the outcome: connect latency and the connected count, or the
/// error and the failed count.
async fn open_counted(sh: &Shared, out: &RefCell<ThreadOut>, raw: bool) -> Option<Ws> {
    let t0 = Instant::now();
    match open_client(sh, raw, sh.sock()).await {
        Ok(ws) => {
            out.borrow_mut().rec("connect", t0.elapsed());
            sh.connected.fetch_add(1, Relaxed);
            Some(ws)
        }
        Err(e) => {
            out.borrow_mut().err(format!("connect:{e}"));
            sh.failed.fetch_add(1, Relaxed);
            None
        }
    }
}

async fn open_client(sh: &Shared, raw: bool, opts: SockOpts) -> Result<Ws, String> {
    if raw {
        Ws::connect(&sh.cfg.target, opts, sh.cfg.read_buf, sh.cfg.timeout)
            .await
            .map_err(|e: WsError| e.kind())
    } else {
        proto::open(&sh.cfg, opts).await.map_err(|e| e.kind())
    }
}

#[allow(clippy::too_many_arguments)]
async fn rpc_thread(
    sh: Arc<Shared>,
    n: usize,
    rate: f64,
    raw: bool,
    kind: ReqKind,
    pipeline: usize,
    phase_map: PhaseMap,
) -> ThreadOut {
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    let hs = spawn_paced(n, rate, |_| {
        let (sh, out, kind) = (sh.clone(), out.clone(), kind.clone());
        async move {
            let Some(mut ws) = open_counted(&sh, &out, raw).await else {
                return;
            };
            while sh.phase.load(Relaxed) == 0 && !sh.stopped() {
                sleep_ms(1).await;
            }
            match drive(&mut ws, &sh, &out, &kind, pipeline, phase_map).await {
                Ok(()) => ws.close(Duration::from_millis(200)).await,
                Err(e) => {
                    out.borrow_mut().err(e);
                    sh.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    })
    .await;
    for h in hs {
        h.await;
    }
    Rc::try_unwrap(out)
        .map(|c| c.into_inner())
        .unwrap_or_default()
}

fn setup_limit(n: usize, rate: f64, timeout: f64) -> Duration {
    Duration::from_secs_f64(n as f64 / rate.max(1.0) + timeout + 5.0)
}

fn run_rpc(a: RpcArgs) -> Result<(), String> {
    let sh = Arc::new(Shared::new(&a.c, 4096)?);
    let threads = a.c.threads.max(1);
    let suffix = rpc_suffix(&a.method, &a.params)?;
    let (raw, size, pipeline, clients, rate_) =
        (a.raw, a.size, a.pipeline.max(1), a.clients, a.rate);
    let hs = run_workers(&a.c, sh.clone(), move |tid, sh| {
        let kind = if raw {
            ReqKind::Raw { size }
        } else {
            ReqKind::Rpc {
                suffix: Rc::new(suffix.clone()),
            }
        };
        rpc_thread(
            sh,
            share(clients, threads, tid),
            rate_ / threads as f64,
            raw,
            kind,
            pipeline,
            |p| (p == 1).then_some("rpc"),
        )
    });
    let all = clients as u64;
    wait_until(setup_limit(clients, a.rate, a.c.timeout), || {
        sh.connected.load(Relaxed) + sh.failed.load(Relaxed) >= all
    });
    let (t0, meter) = (Instant::now(), cpu::Meter::start_all(a.c.server_pids()));
    sh.phase.store(1, Relaxed);
    wait_until(Duration::from_secs_f64(a.c.duration), || {
        sh.dropped.load(Relaxed) >= sh.connected.load(Relaxed)
    });
    sh.stop.store(true, Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let spent = meter.stop();
    let out = join(hs);
    let mut r = Report::new(if raw { "rpc-raw" } else { "rpc" });
    common_rows(&mut r, &a.c, &sh);
    if !raw {
        r.add("method", a.method.clone());
    } else {
        r.add("msg_bytes", a.size.max(16));
    }
    r.add("clients", clients);
    r.add("connected", sh.connected.load(Relaxed));
    r.add("pipeline", pipeline);
    r.add("elapsed_s", (secs * 100.0).round() / 100.0);
    r.add("requests", out.count("rpc"));
    r.add("req_per_s", rate(out.count("rpc"), secs));
    r.latency("latency", out.hists.get("rpc"));
    r.latency("connect", out.hists.get("connect"));
    r.add("events_seen", out.count("events"));
    r.errors(&out.errors);
    spent.report(&mut r, "request", out.count("rpc"));
    r.print(a.c.json);
    Ok(())
}

// ---------------------------------------------------------------------------
// idle

async fn idle_thread(sh: Arc<Shared>, n: usize, rate: f64, raw: bool) -> ThreadOut {
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    let _hs = spawn_paced(n, rate, |_| {
        let (sh, out) = (sh.clone(), out.clone());
        async move {
            let Some(mut ws) = open_counted(&sh, &out, raw).await else {
                return;
            };
            // Read until the peer goes away; this task is dropped with the
            // runtime when the hold period ends.
            let why = loop {
                match ws.next().await {
                    Ok(f) if f.op == OP_CLOSE => {
                        let (c, r) = ws::close_info(ws.payload(&f));
                        break format!("server-close:{c}:{r}");
                    }
                    Ok(f) => {
                        if let Msg::Event(k) = proto::classify(ws.payload(&f)) {
                            let name = if k == EventKind::Tick {
                                "ticks"
                            } else {
                                "events"
                            };
                            out.borrow_mut().inc(name, 1);
                        }
                    }
                    Err(e) => break e.kind(),
                }
            };
            if !sh.stopped() {
                sh.dropped.fetch_add(1, Relaxed);
                out.borrow_mut().err(format!("dropped:{why}"));
            }
        }
    })
    .await;
    while !sh.stopped() {
        sleep_ms(50).await;
    }
    let o = std::mem::take(&mut *out.borrow_mut());
    o
}

fn run_idle(a: IdleArgs) -> Result<(), String> {
    let sh = Arc::new(Shared::new(&a.c, a.read_buf)?);
    let nofile = raise_nofile();
    let pid = a.c.server_pid();
    let pid_s = pid.map(|p| p.to_string());
    let server_rss = || pid_s.as_deref().and_then(vm_rss_kib);
    let self_rss = || vm_rss_kib("self");
    let (srv0, me0) = (server_rss(), self_rss());
    let threads = a.c.threads.max(1);
    let (clients, rate_, raw) = (a.clients, a.rate, a.raw);
    let t0 = Instant::now();
    let hs = run_workers(&a.c, sh.clone(), move |tid, sh| {
        idle_thread(
            sh,
            share(clients, threads, tid),
            rate_ / threads as f64,
            raw,
        )
    });
    let all = clients as u64;
    // The connect phase is bounded by --duration (plus the expected time at --rate).
    let limit = Duration::from_secs_f64(
        a.c.duration
            .max(clients as f64 / a.rate.max(1.0) + a.c.timeout),
    );
    wait_until(limit, || {
        sh.connected.load(Relaxed) + sh.failed.load(Relaxed) >= all
    });
    let setup_s = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let (srv1, me1) = (server_rss(), self_rss());
    let conns = sh.connected.load(Relaxed);
    eprintln!(
        "idle: {conns} connected, {} failed in {setup_s:.1}s; holding {}s",
        sh.failed.load(Relaxed),
        a.hold
    );
    let hold_t = Instant::now();
    let hold = Duration::from_secs_f64(a.hold);
    while hold_t.elapsed() < hold {
        std::thread::sleep(Duration::from_millis(200).min(hold.saturating_sub(hold_t.elapsed())));
    }
    let srv2 = server_rss();
    let alive = conns - sh.dropped.load(Relaxed).min(conns);
    sh.stop.store(true, Relaxed);
    let out = join(hs);
    let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if conns > 0 => {
            serde_json::json!(((b as f64 - a as f64) * 1024.0 / conns as f64).round())
        }
        _ => serde_json::Value::Null,
    };
    let mut r = Report::new("idle");
    common_rows(&mut r, &a.c, &sh);
    r.add("nofile_limit", nofile);
    r.add("clients", clients);
    r.add("connected", conns);
    r.add("failed", sh.failed.load(Relaxed));
    r.add("setup_s", (setup_s * 100.0).round() / 100.0);
    r.add("connect_rate_per_s", rate(conns, setup_s));
    r.add(
        "server_pid",
        pid.map(serde_json::Value::from).unwrap_or_default(),
    );
    r.add(
        "server_rss_before_kib",
        srv0.map(serde_json::Value::from).unwrap_or_default(),
    );
    r.add(
        "server_rss_after_kib",
        srv1.map(serde_json::Value::from).unwrap_or_default(),
    );
    r.add(
        "server_rss_end_kib",
        srv2.map(serde_json::Value::from).unwrap_or_default(),
    );
    r.add("server_bytes_per_conn", per(srv0, srv1));
    r.add("loadgen_bytes_per_conn", per(me0, me1));
    r.add("hold_s", a.hold);
    r.add("alive_at_end", alive);
    r.add("ticks_seen", out.count("ticks"));
    r.add("other_events_seen", out.count("events"));
    r.latency("connect", out.hists.get("connect"));
    r.errors(&out.errors);
    r.print(a.c.json);
    Ok(())
}

// ---------------------------------------------------------------------------
// broadcast

fn system_event_req(id: u64, text: &str) -> Vec<u8> {
    serde_json::json!({"type":"req","id":id.to_string(),"method":"system-event","params":{"text":text}})
        .to_string()
        .into_bytes()
}

/// A `system-event` that always updates the presence entry of host `loadgen`.
fn system_event_same_entry_req(id: u64, text: &str) -> Vec<u8> {
    serde_json::json!({"type":"req","id":id.to_string(),"method":"system-event",
        "params":{"text":text,"host":"loadgen"}})
    .to_string()
    .into_bytes()
}

/// Read own frames until response `id`; returns ok flag (or error kind).
async fn await_response(ws: &mut Ws, id: u64, t: Duration) -> Result<bool, String> {
    let fut = async {
        loop {
            let f = ws.next().await.map_err(|e| e.kind())?;
            match f.op {
                OP_CLOSE => {
                    let (c, r) = ws::close_info(ws.payload(&f));
                    return Err(format!("server-close:{c}:{r}"));
                }
                OP_TEXT | OP_BINARY => {
                    if let Msg::Res { id: rid, ok } = proto::classify(ws.payload(&f)) {
                        if rid == id {
                            if !ok {
                                return Err(format!(
                                    "res-error:{}",
                                    proto::error_code(ws.payload(&f))
                                ));
                            }
                            return Ok(ok);
                        }
                    }
                }
                _ => {}
            }
        }
    };
    monoio::time::timeout(t, fut)
        .await
        .unwrap_or_else(|_| Err("response-timeout".into()))
}

/// Subscriber: count presence events against the current round.
async fn subscriber(sh: Arc<Shared>, out: Rc<RefCell<ThreadOut>>) {
    let mut ws = match proto::open(&sh.cfg, sh.sock()).await {
        Ok(ws) => ws,
        Err(e) => {
            out.borrow_mut().err(format!("connect:{}", e.kind()));
            sh.failed.fetch_add(1, Relaxed);
            return;
        }
    };
    sh.connected.fetch_add(1, Relaxed);
    let mut my_round = 0u64;
    let why = loop {
        if sh.stopped() {
            return;
        }
        match ws.next().await {
            Ok(f) if f.op == OP_CLOSE => {
                let (c, r) = ws::close_info(ws.payload(&f));
                break format!("server-close:{c}:{r}");
            }
            Ok(f) => {
                if proto::classify(ws.payload(&f)) == Msg::Event(EventKind::Presence) {
                    let r = sh.round.load(Acquire);
                    if r > my_round {
                        my_round = r;
                        let t = sh.now_ns();
                        sh.first_ns.fetch_min(t, AcqRel);
                        sh.last_ns.fetch_max(t, AcqRel);
                        sh.delivered.fetch_add(1, AcqRel);
                    }
                }
            }
            Err(e) => break e.kind(),
        }
    };
    if !sh.stopped() {
        sh.dropped.fetch_add(1, Relaxed);
        out.borrow_mut().err(format!("subscriber-dropped:{why}"));
    }
}

async fn broadcaster(
    sh: Arc<Shared>,
    out: Rc<RefCell<ThreadOut>>,
    rounds: u64,
    round_timeout: Duration,
    interval_ms: u64,
    same_entry: bool,
) {
    let mut ws = match proto::open(&sh.cfg, sh.sock_on(0)).await {
        Ok(ws) => ws,
        Err(e) => {
            out.borrow_mut().err(format!("sender-connect:{}", e.kind()));
            sh.sender_done.store(true, Release);
            return;
        }
    };
    sh.sender_ready.store(true, Release);
    while sh.phase.load(Acquire) == 0 && !sh.stopped() {
        sleep_ms(1).await;
    }
    for r in 1..=rounds {
        if sh.stopped() {
            break;
        }
        let expected =
            sh.connected.load(Relaxed) - sh.dropped.load(Relaxed).min(sh.connected.load(Relaxed));
        sh.delivered.store(0, Release);
        sh.first_ns.store(u64::MAX, Release);
        sh.last_ns.store(0, Release);
        sh.round.store(r, Release);
        let id = r + 1;
        let text = format!("loadgen broadcast round {r}");
        ws.queue_text(&if same_entry {
            system_event_same_entry_req(id, &text)
        } else {
            system_event_req(id, &text)
        });
        let t_send = sh.now_ns();
        if let Err(e) = ws.flush().await {
            out.borrow_mut().err(format!("sender:{}", e.kind()));
            break;
        }
        match await_response(&mut ws, id, round_timeout).await {
            Ok(_) => out
                .borrow_mut()
                .rec_us("ack", (sh.now_ns() - t_send) / 1000),
            Err(e) => {
                out.borrow_mut().err(format!("sender:{e}"));
                if e.starts_with("server-close") || e.starts_with("io") || e == "eof" {
                    break;
                }
            }
        }
        let t_limit = Instant::now() + round_timeout;
        while sh.delivered.load(Acquire) < expected && Instant::now() < t_limit && !sh.stopped() {
            sleep_ms(1).await;
        }
        let got = sh.delivered.load(Acquire);
        {
            let mut o = out.borrow_mut();
            o.inc("rounds", 1);
            o.inc("deliveries", got);
            o.inc("expected", expected);
            if got > 0 {
                let first = sh.first_ns.load(Acquire).saturating_sub(t_send);
                let last = sh.last_ns.load(Acquire).saturating_sub(t_send);
                o.rec_us("first", first / 1000);
                o.rec_us("last", last / 1000);
                o.inc("fanout_ns", last);
            }
            if got < expected {
                o.inc("incomplete_rounds", 1);
            }
        }
        if interval_ms > 0 {
            sleep_ms(interval_ms).await;
        }
    }
    sh.sender_done.store(true, Release);
    ws.close(Duration::from_millis(200)).await;
}

async fn broadcast_thread(
    tid: usize,
    sh: Arc<Shared>,
    n: usize,
    rate: f64,
    a: BroadcastArgs,
) -> ThreadOut {
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    if tid == 0 {
        let (sh2, out2) = (sh.clone(), out.clone());
        monoio::spawn(broadcaster(
            sh2,
            out2,
            a.rounds,
            Duration::from_secs_f64(a.round_timeout),
            a.interval_ms,
            a.same_entry,
        ));
    }
    let _hs = spawn_paced(n, rate, |_| subscriber(sh.clone(), out.clone())).await;
    while !sh.stopped() {
        sleep_ms(20).await;
    }
    // give the sender a moment to close politely
    sleep_ms(50).await;
    let o = std::mem::take(&mut *out.borrow_mut());
    o
}

fn run_broadcast(a: BroadcastArgs) -> Result<(), String> {
    raise_nofile();
    let sh = Arc::new(Shared::new(&a.c, 4096)?);
    let threads = a.c.threads.max(1);
    let (subs, rate_) = (a.subscribers, a.rate);
    let a2 = a.clone();
    let hs = run_workers(&a.c, sh.clone(), move |tid, sh| {
        broadcast_thread(
            tid,
            sh,
            share(subs, threads, tid),
            rate_ / threads as f64,
            a2.clone(),
        )
    });
    let all = subs as u64;
    wait_until(setup_limit(subs, a.rate, a.c.timeout), || {
        sh.connected.load(Relaxed) + sh.failed.load(Relaxed) >= all
            && (sh.sender_ready.load(Relaxed) || sh.sender_done.load(Relaxed))
    });
    let (t0, meter) = (Instant::now(), cpu::Meter::start_all(a.c.server_pids()));
    sh.phase.store(1, Release);
    wait_until(Duration::from_secs_f64(a.c.duration), || {
        sh.sender_done.load(Acquire)
    });
    let secs = t0.elapsed().as_secs_f64();
    let spent = meter.stop();
    sh.stop.store(true, Relaxed);
    let out = join(hs);
    let deliveries = out.count("deliveries");
    let fan_s = out.count("fanout_ns") as f64 / 1e9;
    let mut r = Report::new("broadcast");
    common_rows(&mut r, &a.c, &sh);
    r.add("subscribers", subs);
    r.add("same_entry", a.same_entry);
    r.add("connected", sh.connected.load(Relaxed));
    r.add("rounds", out.count("rounds"));
    r.add("incomplete_rounds", out.count("incomplete_rounds"));
    r.add("deliveries", deliveries);
    r.add("expected_deliveries", out.count("expected"));
    r.add("elapsed_s", (secs * 100.0).round() / 100.0);
    r.add("deliveries_per_s", rate(deliveries, secs));
    r.add("deliveries_per_fanout_s", rate(deliveries, fan_s));
    r.latency("first", out.hists.get("first"));
    r.latency("last", out.hists.get("last"));
    r.latency("ack", out.hists.get("ack"));
    r.errors(&out.errors);
    spent.report(&mut r, "delivery", deliveries);
    r.print(a.c.json);
    Ok(())
}

// ---------------------------------------------------------------------------
// slow consumers

/// Phases of the slow scenario.
const SLOW_A: u32 = 1; // measure without slow clients
const SLOW_SETUP: u32 = 2; // slow clients connecting
const SLOW_B: u32 = 3; // measure with slow clients
const SLOW_END: u32 = 4; // probe slow clients

async fn slow_client(sh: Arc<Shared>, out: Rc<RefCell<ThreadOut>>, rcvbuf: u32, probe: Duration) {
    let mut opts = sh.sock();
    opts.rcvbuf = Some(rcvbuf);
    let mut ws = match proto::open(&sh.cfg, opts).await {
        Ok(ws) => ws,
        Err(e) => {
            out.borrow_mut().err(format!("slow-connect:{}", e.kind()));
            sh.slow_failed.fetch_add(1, Relaxed);
            return;
        }
    };
    sh.slow_connected.fetch_add(1, Relaxed);
    // Never read until the end.
    while sh.phase.load(Acquire) < SLOW_END {
        sleep_ms(20).await;
    }
    let state = ws.probe_state(probe).await;
    let mut o = out.borrow_mut();
    o.inc(&format!("slow_state:{state}"), 1);
    o.inc("slow_bytes_drained", ws.bytes_in);
}

async fn slow_sender(sh: Arc<Shared>, out: Rc<RefCell<ThreadOut>>, text: String) {
    let mut ws = match proto::open(&sh.cfg, sh.sock_on(0)).await {
        Ok(ws) => ws,
        Err(e) => {
            out.borrow_mut().err(format!("sender-connect:{}", e.kind()));
            return;
        }
    };
    while sh.phase.load(Acquire) == 0 && !sh.stopped() {
        sleep_ms(1).await;
    }
    let mut id = 2u64;
    while !sh.stopped() {
        ws.queue_text(&system_event_req(id, &text));
        if ws.flush().await.is_err() {
            out.borrow_mut().err("sender:write".into());
            return;
        }
        match await_response(&mut ws, id, sh.cfg.timeout).await {
            Ok(_) => out
                .borrow_mut()
                .inc(&format!("system_events_phase{}", sh.phase.load(Relaxed)), 1),
            Err(e) => {
                out.borrow_mut().err(format!("sender:{e}"));
                if !e.starts_with("res-error") {
                    return;
                }
                sleep_ms(100).await;
            }
        }
        id += 1;
    }
    ws.close(Duration::from_millis(200)).await;
}

async fn slow_thread(tid: usize, sh: Arc<Shared>, a: SlowArgs, kind_suffix: Vec<u8>) -> ThreadOut {
    let threads = a.c.threads.max(1);
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    if tid == 0 && a.broadcast {
        let text: String = "x".repeat(a.text_bytes.max(1));
        monoio::spawn(slow_sender(sh.clone(), out.clone(), text));
    }
    let healthy = {
        let (sh, rate) = (sh.clone(), a.rate / threads as f64);
        let kind = ReqKind::Rpc {
            suffix: Rc::new(kind_suffix),
        };
        monoio::spawn(rpc_thread(
            sh,
            share(a.clients, threads, tid),
            rate,
            false,
            kind,
            1,
            |p| match p {
                SLOW_A => Some("phase_a"),
                SLOW_B => Some("phase_b"),
                _ => None,
            },
        ))
    };
    while sh.phase.load(Acquire) < SLOW_SETUP {
        sleep_ms(5).await;
    }
    let k = share(a.slow, threads, tid);
    let probe = Duration::from_secs_f64(a.probe);
    let slow = spawn_paced(k, a.rate / threads as f64, |_| {
        slow_client(sh.clone(), out.clone(), a.slow_rcvbuf, probe)
    })
    .await;
    let mut res = healthy.await;
    for h in slow {
        h.await;
    }
    res.merge(std::mem::take(&mut *out.borrow_mut()));
    res
}

fn run_slow(a: SlowArgs) -> Result<(), String> {
    raise_nofile();
    let sh = Arc::new(Shared::new(&a.c, 4096)?);
    let suffix = rpc_suffix(&a.method, &a.params)?;
    let a2 = a.clone();
    let hs = run_workers(&a.c, sh.clone(), move |tid, sh| {
        slow_thread(tid, sh, a2.clone(), suffix.clone())
    });
    let half = Duration::from_secs_f64(a.c.duration / 2.0);
    wait_until(setup_limit(a.clients, a.rate, a.c.timeout), || {
        sh.connected.load(Relaxed) + sh.failed.load(Relaxed) >= a.clients as u64
    });
    sh.phase.store(SLOW_A, Release);
    let ta = Instant::now();
    std::thread::sleep(half);
    let secs_a = ta.elapsed().as_secs_f64();
    sh.phase.store(SLOW_SETUP, Release);
    wait_until(setup_limit(a.slow, a.rate, a.c.timeout), || {
        sh.slow_connected.load(Relaxed) + sh.slow_failed.load(Relaxed) >= a.slow as u64
    });
    sh.phase.store(SLOW_B, Release);
    let tb = Instant::now();
    std::thread::sleep(half);
    let secs_b = tb.elapsed().as_secs_f64();
    sh.phase.store(SLOW_END, Release);
    sh.stop.store(true, Relaxed);
    let out = join(hs);
    let mut r = Report::new("slow");
    common_rows(&mut r, &a.c, &sh);
    r.add("healthy_clients", a.clients);
    r.add("healthy_connected", sh.connected.load(Relaxed));
    r.add("slow_clients", a.slow);
    r.add("slow_connected", sh.slow_connected.load(Relaxed));
    r.add("method", a.method.clone());
    r.add("broadcast_sender", a.broadcast);
    r.add("phase_a_s", (secs_a * 100.0).round() / 100.0);
    r.add("phase_a_req_per_s", rate(out.count("phase_a"), secs_a));
    r.latency("phase_a", out.hists.get("phase_a"));
    r.add("phase_b_s", (secs_b * 100.0).round() / 100.0);
    r.add("phase_b_req_per_s", rate(out.count("phase_b"), secs_b));
    r.latency("phase_b", out.hists.get("phase_b"));
    r.add(
        "system_events_a",
        out.count(&format!("system_events_phase{SLOW_A}")),
    );
    r.add(
        "system_events_b",
        out.count(&format!("system_events_phase{SLOW_B}")),
    );
    let states: serde_json::Map<String, serde_json::Value> = out
        .counts
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("slow_state:")
                .map(|s| (s.to_string(), (*v).into()))
        })
        .collect();
    r.add("slow_outcome", serde_json::Value::Object(states));
    r.add("slow_bytes_drained", out.count("slow_bytes_drained"));
    r.add("healthy_dropped", sh.dropped.load(Relaxed));
    r.errors(&out.errors);
    r.print(a.c.json);
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    ws::tls_init(!cli.tls_no_resume);
    let res = match cli.cmd {
        Cmd::Handshake(a) => run_handshake(a),
        Cmd::Rpc(a) => run_rpc(a),
        Cmd::Idle(a) => run_idle(a),
        Cmd::Broadcast(a) => run_broadcast(a),
        Cmd::Slow(a) => run_slow(a),
        Cmd::Chat(a) => chat::run_chat(a),
        Cmd::ChatFanout(a) => chat::run_fanout(a),
        Cmd::Invoke(a) => invoke::run_invoke(a),
        Cmd::Scale(a) => scale::run_scale(a),
        Cmd::Floor(a) => floor::run_floor(a),
    };
    if let Err(e) = res {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}
