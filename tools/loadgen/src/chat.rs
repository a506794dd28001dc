//! Chat scenarios: agent turns through `chat.send` (protocol §7.1) against a gateway whose
//! agent answers quickly (ringgate's `echo` runtime with `chunkDelayMs: 0`), so what is
//! measured is the gateway: routing to the session owner, the durable transcript writes (user
//! turn before the ack, reply before the final) and the event fan-out.
//!
//! * `chat` — turns/s and latency. `--sessions` S sessions (default 1000), `--sessions-per-conn`
//!   K per connection (default 1: one connection per session, as UIs do; K > 1 multiplexes
//!   sessions over fewer sockets, each session still has its own turn in flight). Every
//!   connection advertises the `session-scoped-events` cap and subscribes to its own sessions
//!   (`sessions.messages.subscribe`), so it receives only its own `chat`/`agent` events.
//!   Closed loop per session: `chat.send` → ack `{runId, status:"started"}` → `chat` final of
//!   that runId → next turn. Reports turns/s over the measurement window, ack latency (send →
//!   ack: includes the durable user-turn write) and final latency (send → `chat` final:
//!   includes both durable writes), events received per turn, per-connection `seq` gaps
//!   (dropped events), events of runs that are not the connection's own (scoping leaks), and
//!   turns still unfinished at the end.
//! * `chat-fanout` — `--watchers` W operator connections without the scoped cap (they get every
//!   `chat`/`agent` event) and one sender running turns in one session, closed loop (the next
//!   turn starts when every watcher got the previous final, or after `--turn-timeout`;
//!   `--interval-ms` adds a pause). Per turn: send → `chat` final at the first and at the last
//!   watcher, and the sender's ack; `chat` deltas received per watcher (plus coalesced
//!   `replace:true` deltas and `seq` gaps, i.e. events dropped for slow consumers).
//!
//! Run ids (= idempotency keys) are `<key>-t<n>`; session keys are `<prefix>-s<i>` with
//! `--key-prefix` defaulting to `lg<pid>`, so concurrent or repeated runs never collide.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::proto::{self, Msg, CAP_SCOPED_EVENTS, RUN_ID, STATE};
use crate::stats::{rate, Report, ThreadOut};
use crate::ws::{self, find, Ws, OP_BINARY, OP_CLOSE, OP_TEXT};
use crate::{
    await_response, common_rows, join, raise_nofile, run_workers, setup_limit, share, sleep_ms,
    spawn_paced, wait_until, Common, Shared,
};

#[derive(Args, Clone)]
pub struct ChatArgs {
    #[command(flatten)]
    pub c: Common,
    /// Concurrent sessions, each with one turn in flight (closed loop)
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Sessions driven by one connection (1 = one connection per session)
    #[arg(long, default_value_t = 1)]
    pub sessions_per_conn: usize,
    /// User message length in bytes (the echo agent answers "echo: <message>")
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,
    /// Session key prefix (default: lg<pid>)
    #[arg(long)]
    pub key_prefix: Option<String>,
    /// Seconds to let in-flight turns finish after --duration (not measured)
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Connections per second while setting up
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
}

#[derive(Args, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub c: Common,
    /// Connections receiving every chat event (no session-scoped-events cap)
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Stop after this many turns (0 = run for --duration)
    #[arg(long, default_value_t = 0)]
    pub turns: u64,
    /// Per-turn limit waiting for the final at every watcher (seconds)
    #[arg(long, default_value_t = 5.0)]
    pub turn_timeout: f64,
    /// Pause between turns (ms; 0 = closed loop)
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// User message length in bytes (the echo agent answers "echo: <message>")
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,
    /// Session key prefix (default: lg<pid>)
    #[arg(long)]
    pub key_prefix: Option<String>,
    /// Connections per second while setting up
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
}

fn prefix(p: &Option<String>) -> String {
    p.clone()
        .unwrap_or_else(|| format!("lg{}", std::process::id()))
}

/// A user message of `n` bytes (at least the unique head).
fn message(run_id: &str, n: usize) -> String {
    let mut m = format!("turn {run_id} ");
    while m.len() < n {
        m.push('x');
    }
    m
}

fn chat_send(id: u64, key: &str, message: &str, run_id: &str) -> Vec<u8> {
    serde_json::json!({"type":"req","id":id.to_string(),"method":"chat.send",
        "params":{"sessionKey":key,"message":message,"idempotencyKey":run_id}})
    .to_string()
    .into_bytes()
}

// ---------------------------------------------------------------------------
// per-thread counters (cheap: plain cells, no allocation per frame)

/// Frame kinds counted during the measurement window.
#[derive(Clone, Copy)]
enum K {
    Frames,
    ChatDelta,
    ChatStatus,
    ChatFinal,
    ChatOther,
    Agent,
    SessionMessage,
    OtherEvent,
    Foreign,
    SeqGap,
    Replace,
    StatusNotStarted,
    FinalMismatch,
}

const KS: [(K, &str); 13] = [
    (K::Frames, "frames"),
    (K::ChatDelta, "chat_delta"),
    (K::ChatStatus, "chat_status"),
    (K::ChatFinal, "chat_final"),
    (K::ChatOther, "chat_other_state"),
    (K::Agent, "agent"),
    (K::SessionMessage, "session_message"),
    (K::OtherEvent, "other_events"),
    (K::Foreign, "foreign_run_events"),
    (K::SeqGap, "seq_gap_events"),
    (K::Replace, "replace_deltas"),
    (K::StatusNotStarted, "ack_status_not_started"),
    (K::FinalMismatch, "final_text_mismatch"),
];

#[derive(Default)]
struct Tally([Cell<u64>; KS.len()]);

impl Tally {
    fn add(&self, k: K, n: u64) {
        let c = &self.0[k as usize];
        c.set(c.get() + n);
    }
    fn get(&self, k: K) -> u64 {
        self.0[k as usize].get()
    }
    fn add_to(&self, o: &mut ThreadOut) {
        for (k, name) in KS {
            o.inc(name, self.get(k));
        }
    }
}

/// Per-connection `seq` continuity (a gap = events the gateway dropped for this client).
#[derive(Default)]
struct SeqTrack(u64);

impl SeqTrack {
    fn see(&mut self, p: &[u8]) -> u64 {
        let Some(s) = proto::event_seq(p) else {
            return 0;
        };
        let gap = if self.0 > 0 && s > self.0 + 1 {
            s - self.0 - 1
        } else {
            0
        };
        self.0 = self.0.max(s);
        gap
    }
}

// ---------------------------------------------------------------------------
// chat: closed-loop turns

/// One session driven by a connection.
struct Sess {
    key: String,
    turn: u64,
    /// Request id of the turn in flight (0 = idle).
    req: u64,
    run_id: String,
    reply: Vec<u8>,
    sent: Instant,
    ack: Option<Duration>,
    fin: Option<Duration>,
    /// The last turn failed: pause briefly before the next.
    backoff: bool,
}

impl Sess {
    fn new(key: String) -> Sess {
        Sess {
            key,
            turn: 0,
            req: 0,
            run_id: String::new(),
            reply: Vec::new(),
            sent: Instant::now(),
            ack: None,
            fin: None,
            backoff: false,
        }
    }
}

/// What one worker thread shares between its connection tasks and its coordinator.
struct ChatLocal {
    out: RefCell<ThreadOut>,
    tally: Tally,
    /// Every connection's sessions, for the end-of-run census of unfinished turns.
    conns: RefCell<Vec<Rc<RefCell<Vec<Sess>>>>>,
    /// Connections still running their loop.
    live: Cell<usize>,
}

fn measuring(sh: &Shared) -> bool {
    sh.phase.load(Relaxed) == 1 && !sh.stopped()
}

/// Subscribes to `keys` (ids 2..); returns the next free request id.
async fn subscribe(ws: &mut Ws, keys: &[String], t: Duration) -> Result<u64, String> {
    let first = 2u64;
    for (i, k) in keys.iter().enumerate() {
        let req = serde_json::json!({"type":"req","id":(first + i as u64).to_string(),
            "method":"sessions.messages.subscribe","params":{"key":k}});
        ws.queue_text(req.to_string().as_bytes());
    }
    ws.flush().await.map_err(|e| e.kind())?;
    for i in 0..keys.len() as u64 {
        // Responses come in order on one connection; await_response skips events.
        await_response(ws, first + i, t).await?;
    }
    Ok(first + keys.len() as u64)
}

/// Handles one text frame of a chat connection.
fn chat_frame(p: &[u8], ss: &mut [Sess], seq: &mut SeqTrack, sh: &Shared, l: &ChatLocal) {
    let m = measuring(sh);
    let t = &l.tally;
    if m {
        t.add(K::Frames, 1);
        t.add(K::SeqGap, seq.see(p));
    } else {
        seq.see(p);
    }
    let now = Instant::now();
    let done = |s: &mut Sess| {
        if let (Some(a), Some(f)) = (s.ack, s.fin) {
            if m {
                let mut o = l.out.borrow_mut();
                o.rec("ack", a);
                o.rec("final", f);
                o.inc("turns", 1);
            }
            s.req = 0;
        }
    };
    if let Some(name) = proto::event_name(p) {
        let run = proto::str_after(p, RUN_ID);
        let own = run.and_then(|r| {
            ss.iter()
                .position(|s| s.req != 0 && s.run_id.as_bytes() == r)
        });
        match name {
            b"chat" => {
                let state = proto::str_after(p, STATE).unwrap_or_default();
                if m {
                    t.add(
                        match state {
                            b"delta" => K::ChatDelta,
                            b"status" => K::ChatStatus,
                            b"final" => K::ChatFinal,
                            _ => K::ChatOther,
                        },
                        1,
                    );
                    if own.is_none() {
                        t.add(K::Foreign, 1);
                    }
                }
                let Some(i) = own else { return };
                let s = &mut ss[i];
                match state {
                    b"final" => {
                        if find(p, &s.reply).is_none() && m {
                            t.add(K::FinalMismatch, 1);
                        }
                        s.fin = Some(now - s.sent);
                        done(s);
                    }
                    b"aborted" | b"error" => {
                        l.out
                            .borrow_mut()
                            .err(format!("chat-{}", String::from_utf8_lossy(state)));
                        s.req = 0;
                        s.backoff = true;
                    }
                    _ => {}
                }
            }
            b"agent" => {
                if m {
                    t.add(K::Agent, 1);
                    if own.is_none() {
                        t.add(K::Foreign, 1);
                    }
                }
            }
            b"session.message" => {
                if m {
                    t.add(K::SessionMessage, 1);
                }
            }
            b"tick" => {}
            _ => {
                if m {
                    t.add(K::OtherEvent, 1);
                }
            }
        }
        return;
    }
    if let Msg::Res { id, ok } = proto::classify(p) {
        let Some(s) = ss.iter_mut().find(|s| s.req == id && s.req != 0) else {
            return;
        };
        if !ok {
            l.out
                .borrow_mut()
                .err(format!("res-error:{}", proto::error_code(p)));
            s.req = 0;
            s.backoff = true;
            return;
        }
        if find(p, b"\"status\":\"started\"").is_none() && m {
            t.add(K::StatusNotStarted, 1);
        }
        s.ack = Some(now - s.sent);
        done(s);
    }
}

/// The closed loop of one connection until stop and its turns are finished.
async fn chat_drive(
    ws: &mut Ws,
    sh: &Shared,
    l: &ChatLocal,
    ss: &RefCell<Vec<Sess>>,
    mut next_id: u64,
    msg_bytes: usize,
) -> Result<(), String> {
    let mut seq = SeqTrack::default();
    loop {
        let mut backoff = false;
        {
            let mut ss = ss.borrow_mut();
            loop {
                let f = match ws.next_buffered() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return Err(e.kind()),
                };
                match f.op {
                    OP_TEXT | OP_BINARY => chat_frame(ws.payload(&f), &mut ss, &mut seq, sh, l),
                    OP_CLOSE => {
                        let (c, r) = ws::close_info(ws.payload(&f));
                        return Err(format!("server-close:{c}:{r}"));
                    }
                    _ => {}
                }
            }
            let stop = sh.stopped();
            if stop && ss.iter().all(|s| s.req == 0) {
                return Ok(());
            }
            if !stop {
                for s in ss.iter_mut().filter(|s| s.req == 0) {
                    if s.backoff {
                        s.backoff = false;
                        backoff = true;
                        continue;
                    }
                    s.turn += 1;
                    s.req = next_id;
                    next_id += 1;
                    // The process id keeps run ids (idempotency keys) unique across runs
                    // that reuse session keys (`--key-prefix`).
                    s.run_id = format!("{}-p{}-t{}", s.key, std::process::id(), s.turn);
                    let msg = message(&s.run_id, msg_bytes);
                    s.reply = format!("echo: {msg}").into_bytes();
                    ws.queue_text(&chat_send(s.req, &s.key, &msg, &s.run_id));
                    s.sent = Instant::now();
                    s.ack = None;
                    s.fin = None;
                }
            }
        }
        if ws.pending_write() {
            ws.flush().await.map_err(|e| e.kind())?;
        }
        if backoff {
            // A failed turn: do not hammer an erroring gateway.
            sleep_ms(10).await;
            continue;
        }
        // No timeout here: a cancelled read would lose the read buffer. Turns that never
        // finish are counted at the end instead.
        ws.read_more().await.map_err(|e| e.kind())?;
    }
}

async fn chat_client(sh: Arc<Shared>, l: Rc<ChatLocal>, keys: Vec<String>, msg_bytes: usize) {
    let t0 = Instant::now();
    let mut ws = match proto::open_caps(&sh.cfg, sh.sock(), &[CAP_SCOPED_EVENTS]).await {
        Ok(ws) => ws,
        Err(e) => {
            l.out.borrow_mut().err(format!("connect:{}", e.kind()));
            sh.failed.fetch_add(1, Relaxed);
            return;
        }
    };
    l.out.borrow_mut().rec("connect", t0.elapsed());
    let next_id = match subscribe(&mut ws, &keys, sh.cfg.timeout).await {
        Ok(n) => n,
        Err(e) => {
            l.out.borrow_mut().err(format!("subscribe:{e}"));
            sh.failed.fetch_add(1, Relaxed);
            return;
        }
    };
    let ss = Rc::new(RefCell::new(keys.into_iter().map(Sess::new).collect()));
    l.conns.borrow_mut().push(ss.clone());
    sh.connected.fetch_add(1, Relaxed);
    while sh.phase.load(Acquire) == 0 && !sh.stopped() {
        sleep_ms(1).await;
    }
    l.live.set(l.live.get() + 1);
    let r = chat_drive(&mut ws, &sh, &l, &ss, next_id, msg_bytes).await;
    l.live.set(l.live.get() - 1);
    match r {
        Ok(()) => ws.close(Duration::from_millis(200)).await,
        Err(e) => {
            l.out.borrow_mut().err(e);
            sh.dropped.fetch_add(1, Relaxed);
        }
    }
}

async fn chat_thread(
    sh: Arc<Shared>,
    conns: Vec<Vec<String>>,
    rate: f64,
    msg_bytes: usize,
    drain: Duration,
) -> ThreadOut {
    let l = Rc::new(ChatLocal {
        out: RefCell::new(ThreadOut::default()),
        tally: Tally::default(),
        conns: RefCell::new(Vec::new()),
        live: Cell::new(0),
    });
    let mut conns = conns.into_iter();
    let _hs = spawn_paced(conns.len(), rate, |_| {
        chat_client(
            sh.clone(),
            l.clone(),
            conns.next().unwrap_or_default(),
            msg_bytes,
        )
    })
    .await;
    while !sh.stopped() {
        sleep_ms(20).await;
    }
    let t = Instant::now();
    while l.live.get() > 0 && t.elapsed() < drain {
        sleep_ms(10).await;
    }
    sleep_ms(50).await; // polite closes
    let mut out = std::mem::take(&mut *l.out.borrow_mut());
    // Census of turns that did not finish (connection tasks still blocked are dropped with
    // the runtime).
    let limit = sh.cfg.timeout;
    for c in l.conns.borrow().iter() {
        for s in c.borrow().iter().filter(|s| s.req != 0) {
            out.inc("unfinished_turns", 1);
            if s.sent.elapsed() > limit {
                let what = if s.ack.is_none() { "ack" } else { "final" };
                out.inc(&format!("stuck_turns_no_{what}"), 1);
            }
        }
    }
    l.tally.add_to(&mut out);
    out
}

pub fn run_chat(a: ChatArgs) -> Result<(), String> {
    raise_nofile();
    let sh = Arc::new(Shared::new(&a.c, 4096)?);
    let threads = a.c.threads.max(1);
    let per = a.sessions_per_conn.max(1);
    let nconns = a.sessions.div_ceil(per);
    let pre = prefix(&a.key_prefix);
    // Sessions of global connection g: g*per .. min((g+1)*per, sessions).
    let keys_of = |g: usize| -> Vec<String> {
        (g * per..((g + 1) * per).min(a.sessions))
            .map(|i| format!("{pre}-s{i}"))
            .collect()
    };
    let mut plan: Vec<Vec<Vec<String>>> = vec![Vec::new(); threads];
    let mut g = 0;
    for (tid, p) in plan.iter_mut().enumerate() {
        for _ in 0..share(nconns, threads, tid) {
            p.push(keys_of(g));
            g += 1;
        }
    }
    let plan = Arc::new(plan);
    let (rate_, msg_bytes, drain) = (
        a.rate / threads as f64,
        a.message_bytes,
        Duration::from_secs_f64(a.drain),
    );
    let hs = run_workers(&a.c, sh.clone(), move |tid, sh| {
        chat_thread(sh, plan[tid].clone(), rate_, msg_bytes, drain)
    });
    let all = nconns as u64;
    wait_until(setup_limit(nconns, a.rate, a.c.timeout), || {
        sh.connected.load(Relaxed) + sh.failed.load(Relaxed) >= all
    });
    let (t0, meter) = (
        Instant::now(),
        crate::cpu::Meter::start_all(a.c.server_pids()),
    );
    sh.phase.store(1, Release);
    wait_until(Duration::from_secs_f64(a.c.duration), || {
        let c = sh.connected.load(Relaxed);
        c > 0 && sh.dropped.load(Relaxed) >= c
    });
    sh.stop.store(true, Relaxed);
    let (secs, spent) = (t0.elapsed().as_secs_f64(), meter.stop());
    let out = join(hs);
    let turns = out.count("turns");
    let per_turn = |k: &str| {
        if turns == 0 {
            serde_json::Value::Null
        } else {
            serde_json::json!((out.count(k) as f64 / turns as f64 * 100.0).round() / 100.0)
        }
    };
    let mut r = Report::new("chat");
    common_rows(&mut r, &a.c, &sh);
    r.add("sessions", a.sessions);
    r.add("sessions_per_conn", per);
    r.add("connections", nconns);
    r.add("connected", sh.connected.load(Relaxed));
    r.add("message_bytes", a.message_bytes);
    r.add("elapsed_s", (secs * 100.0).round() / 100.0);
    r.add("turns", turns);
    r.add("turns_per_s", rate(turns, secs));
    r.latency("ack", out.hists.get("ack"));
    r.latency("final", out.hists.get("final"));
    r.latency("connect", out.hists.get("connect"));
    r.add("frames_per_turn", per_turn("frames"));
    r.add("chat_deltas_per_turn", per_turn("chat_delta"));
    r.add("chat_status_per_turn", per_turn("chat_status"));
    r.add("agent_events_per_turn", per_turn("agent"));
    r.add("session_messages_per_turn", per_turn("session_message"));
    for k in [
        "chat_other_state",
        "other_events",
        "foreign_run_events",
        "seq_gap_events",
        "ack_status_not_started",
        "final_text_mismatch",
        "unfinished_turns",
        "stuck_turns_no_ack",
        "stuck_turns_no_final",
    ] {
        r.add(k, out.count(k));
    }
    r.add("dropped_connections", sh.dropped.load(Relaxed));
    spent.report(&mut r, "turn", turns);
    r.errors(&out.errors);
    r.print(a.c.json);
    Ok(())
}

// ---------------------------------------------------------------------------
// chat-fanout: one sender, W watchers

/// Fan-out state shared by all threads (the current turn lives in `Shared::round`).
struct Fan {
    /// Run ids of this run are `<prefix>-t<turn>`; watchers parse the turn from them.
    run_prefix: String,
    /// Per-watcher own-run deltas, summed / min / max at the end.
    deltas_min: AtomicU64,
    deltas_max: AtomicU64,
}

/// Per-thread watcher counters; slot i belongs to watcher i of this thread.
struct FanLocal {
    out: RefCell<ThreadOut>,
    tally: Tally,
    deltas: Vec<Cell<u64>>,
    finals: Vec<Cell<u64>>,
    connected: Vec<Cell<bool>>,
}

async fn watcher(sh: Arc<Shared>, fan: Arc<Fan>, l: Rc<FanLocal>, slot: usize) {
    let mut ws = match proto::open(&sh.cfg, sh.sock()).await {
        Ok(ws) => ws,
        Err(e) => {
            l.out.borrow_mut().err(format!("connect:{}", e.kind()));
            sh.failed.fetch_add(1, Relaxed);
            return;
        }
    };
    l.connected[slot].set(true);
    sh.connected.fetch_add(1, Relaxed);
    let pre = fan.run_prefix.as_bytes();
    let mut seq = SeqTrack::default();
    let why = loop {
        if sh.stopped() {
            return;
        }
        let f = match ws.next().await {
            Ok(f) => f,
            Err(e) => break e.kind(),
        };
        if f.op == OP_CLOSE {
            let (c, r) = ws::close_info(ws.payload(&f));
            break format!("server-close:{c}:{r}");
        }
        let p = ws.payload(&f);
        let m = measuring(&sh);
        let gap = seq.see(p);
        if !m {
            continue;
        }
        let t = &l.tally;
        t.add(K::Frames, 1);
        t.add(K::SeqGap, gap);
        match proto::event_name(p) {
            Some(b"chat") => {}
            Some(b"agent") => {
                t.add(K::Agent, 1);
                continue;
            }
            Some(b"tick") | None => continue,
            Some(_) => {
                t.add(K::OtherEvent, 1);
                continue;
            }
        }
        let turn = proto::str_after(p, RUN_ID)
            .and_then(|r| r.strip_prefix(pre))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u64>().ok());
        let Some(turn) = turn else {
            t.add(K::Foreign, 1);
            continue;
        };
        match proto::str_after(p, STATE).unwrap_or_default() {
            b"delta" => {
                t.add(K::ChatDelta, 1);
                if find(p, b"\"replace\":true").is_some() {
                    t.add(K::Replace, 1);
                }
                let c = &l.deltas[slot];
                c.set(c.get() + 1);
            }
            b"status" => t.add(K::ChatStatus, 1),
            b"final" => {
                t.add(K::ChatFinal, 1);
                let c = &l.finals[slot];
                c.set(c.get() + 1);
                if turn == sh.round.load(Acquire) {
                    let now = sh.now_ns();
                    sh.first_ns.fetch_min(now, AcqRel);
                    sh.last_ns.fetch_max(now, AcqRel);
                    sh.delivered.fetch_add(1, AcqRel);
                } else {
                    l.out.borrow_mut().inc("late_finals", 1);
                }
            }
            _ => t.add(K::ChatOther, 1),
        }
    };
    if !sh.stopped() {
        sh.dropped.fetch_add(1, Relaxed);
        l.out.borrow_mut().err(format!("watcher-dropped:{why}"));
    }
}

fn record_turn(o: &mut ThreadOut, sh: &Shared, got: u64, expected: u64, t_send: u64) {
    o.inc("turns", 1);
    o.inc("deliveries", got);
    o.inc("expected", expected);
    if got > 0 {
        let since = |t: &AtomicU64| t.load(Acquire).saturating_sub(t_send) / 1000;
        o.rec_us("first", since(&sh.first_ns));
        o.rec_us("last", since(&sh.last_ns));
    }
    if got < expected {
        o.inc("incomplete_turns", 1);
    }
}

async fn fan_sender(sh: Arc<Shared>, fan: Arc<Fan>, l: Rc<FanLocal>, a: FanoutArgs, key: String) {
    // Scoped and not subscribed: the sender gets its responses, not the events.
    let mut ws = match proto::open_caps(&sh.cfg, sh.sock(), &[CAP_SCOPED_EVENTS]).await {
        Ok(ws) => ws,
        Err(e) => {
            l.out
                .borrow_mut()
                .err(format!("sender-connect:{}", e.kind()));
            sh.sender_done.store(true, Release);
            return;
        }
    };
    sh.sender_ready.store(true, Release);
    while sh.phase.load(Acquire) == 0 && !sh.stopped() {
        sleep_ms(1).await;
    }
    let turn_timeout = Duration::from_secs_f64(a.turn_timeout);
    let mut t = 0u64;
    while !sh.stopped() && (a.turns == 0 || t < a.turns) {
        t += 1;
        let c = sh.connected.load(Relaxed);
        let expected = c - sh.dropped.load(Relaxed).min(c);
        sh.delivered.store(0, Release);
        sh.first_ns.store(u64::MAX, Release);
        sh.last_ns.store(0, Release);
        sh.round.store(t, Release);
        let run_id = format!("{}{t}", fan.run_prefix);
        let msg = message(&run_id, a.message_bytes);
        let id = t + 1;
        ws.queue_text(&chat_send(id, &key, &msg, &run_id));
        let t_send = sh.now_ns();
        if let Err(e) = ws.flush().await {
            l.out.borrow_mut().err(format!("sender:{}", e.kind()));
            break;
        }
        match await_response(&mut ws, id, turn_timeout).await {
            Ok(_) => l
                .out
                .borrow_mut()
                .rec_us("ack", (sh.now_ns() - t_send) / 1000),
            Err(e) => {
                // After a timeout the connection's read buffer is gone: stop either way.
                l.out.borrow_mut().err(format!("sender:{e}"));
                break;
            }
        }
        let limit = Instant::now() + turn_timeout;
        while sh.delivered.load(Acquire) < expected && Instant::now() < limit && !sh.stopped() {
            sleep_ms(1).await;
        }
        let got = sh.delivered.load(Acquire);
        if sh.stopped() && got < expected {
            break; // cut off by --duration: not a complete turn
        }
        record_turn(&mut l.out.borrow_mut(), &sh, got, expected, t_send);
        if a.interval_ms > 0 {
            sleep_ms(a.interval_ms).await;
        }
    }
    sh.sender_done.store(true, Release);
    ws.close(Duration::from_millis(200)).await;
}

async fn fanout_thread(
    tid: usize,
    sh: Arc<Shared>,
    fan: Arc<Fan>,
    n: usize,
    rate: f64,
    a: FanoutArgs,
) -> ThreadOut {
    let l = Rc::new(FanLocal {
        out: RefCell::new(ThreadOut::default()),
        tally: Tally::default(),
        deltas: (0..n).map(|_| Cell::new(0)).collect(),
        finals: (0..n).map(|_| Cell::new(0)).collect(),
        connected: (0..n).map(|_| Cell::new(false)).collect(),
    });
    if tid == 0 {
        let key = format!("{}-fanout", prefix(&a.key_prefix));
        monoio::spawn(fan_sender(sh.clone(), fan.clone(), l.clone(), a, key));
    }
    let _hs = spawn_paced(n, rate, |i| watcher(sh.clone(), fan.clone(), l.clone(), i)).await;
    while !sh.stopped() {
        sleep_ms(20).await;
    }
    sleep_ms(50).await; // the sender's polite close
    let mut out = std::mem::take(&mut *l.out.borrow_mut());
    for i in (0..n).filter(|&i| l.connected[i].get()) {
        let d = l.deltas[i].get();
        out.inc("watcher_deltas", d);
        out.inc("watcher_finals", l.finals[i].get());
        out.inc("watchers_counted", 1);
        fan.deltas_min.fetch_min(d, AcqRel);
        fan.deltas_max.fetch_max(d, AcqRel);
    }
    l.tally.add_to(&mut out);
    out
}

pub fn run_fanout(a: FanoutArgs) -> Result<(), String> {
    raise_nofile();
    let sh = Arc::new(Shared::new(&a.c, 4096)?);
    let threads = a.c.threads.max(1);
    let fan = Arc::new(Fan {
        run_prefix: format!("{}-fanout-t", prefix(&a.key_prefix)),
        deltas_min: AtomicU64::new(u64::MAX),
        deltas_max: AtomicU64::new(0),
    });
    let (w, rate_) = (a.watchers, a.rate);
    let (a2, fan2) = (a.clone(), fan.clone());
    let hs = run_workers(&a.c, sh.clone(), move |tid, sh| {
        fanout_thread(
            tid,
            sh,
            fan2.clone(),
            share(w, threads, tid),
            rate_ / threads as f64,
            a2.clone(),
        )
    });
    wait_until(setup_limit(w, a.rate, a.c.timeout), || {
        sh.connected.load(Relaxed) + sh.failed.load(Relaxed) >= w as u64
            && (sh.sender_ready.load(Relaxed) || sh.sender_done.load(Relaxed))
    });
    let (t0, meter) = (
        Instant::now(),
        crate::cpu::Meter::start_all(a.c.server_pids()),
    );
    sh.phase.store(1, Release);
    wait_until(Duration::from_secs_f64(a.c.duration), || {
        sh.sender_done.load(Acquire)
    });
    let (secs, spent) = (t0.elapsed().as_secs_f64(), meter.stop());
    sh.stop.store(true, Relaxed);
    let out = join(hs);
    let turns = out.count("turns");
    let counted = out.count("watchers_counted");
    let per_w_turn = |k: &str| {
        if turns == 0 || counted == 0 {
            serde_json::Value::Null
        } else {
            let v = out.count(k) as f64 / counted as f64 / turns as f64;
            serde_json::json!((v * 100.0).round() / 100.0)
        }
    };
    let mut r = Report::new("chat-fanout");
    common_rows(&mut r, &a.c, &sh);
    r.add("watchers", w);
    r.add("connected", sh.connected.load(Relaxed));
    r.add("message_bytes", a.message_bytes);
    r.add("elapsed_s", (secs * 100.0).round() / 100.0);
    r.add("turns", turns);
    r.add("turns_per_s", rate(turns, secs));
    r.add("incomplete_turns", out.count("incomplete_turns"));
    r.add("deliveries", out.count("deliveries"));
    r.add("expected_deliveries", out.count("expected"));
    r.latency("last", out.hists.get("last"));
    r.latency("first", out.hists.get("first"));
    r.latency("ack", out.hists.get("ack"));
    r.add("deltas_per_watcher_per_turn", per_w_turn("chat_delta"));
    r.add("agent_events_per_watcher_per_turn", per_w_turn("agent"));
    r.add("frames_per_watcher_per_turn", per_w_turn("frames"));
    let (dmin, dmax) = (fan.deltas_min.load(Acquire), fan.deltas_max.load(Acquire));
    r.add("watcher_deltas_min", if counted > 0 { dmin } else { 0 });
    r.add("watcher_deltas_max", dmax);
    r.add(
        "watcher_deltas_mean",
        if counted > 0 {
            (out.count("watcher_deltas") as f64 / counted as f64 * 10.0).round() / 10.0
        } else {
            0.0
        },
    );
    r.add("watcher_finals", out.count("watcher_finals"));
    for k in [
        "replace_deltas",
        "seq_gap_events",
        "foreign_run_events",
        "chat_other_state",
        "other_events",
        "late_finals",
    ] {
        r.add(k, out.count(k));
    }
    r.add("dropped_watchers", sh.dropped.load(Relaxed));
    spent.report(&mut r, "delivery", out.count("deliveries"));
    r.errors(&out.errors);
    r.print(a.c.json);
    Ok(())
}
