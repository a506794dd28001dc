//! `scale`: steps the number of held (authenticated, idle) connections up to a peak and back
//! down to zero. At each step it waits for the count to settle, then records the server's RSS
//! and what a fresh client sees meanwhile: its handshake time and the latency of sequential
//! `health` calls. The last step (zero connections) shows whether the server gives memory back.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::stats::{Report, ThreadOut};
use crate::ws::Ws;
use crate::{
    await_response, join, open_counted, proto, raise_nofile, run_workers, sleep_ms, vm_rss_kib,
    wait_until, Common, Shared,
};

#[derive(Args, Clone)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub c: Common,
    /// Connection counts on the way up; the way down visits them in reverse, then zero
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000,19500")]
    pub steps: Vec<usize>,
    /// New connections per second while stepping up
    #[arg(long, default_value_t = 4000.0)]
    pub rate: f64,
    /// Seconds to wait at each step before measuring
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Sequential `health` calls per probe
    #[arg(long, default_value_t = 200)]
    pub probes: usize,
}

/// What one fresh client saw at one step.
#[derive(Default, Clone)]
struct Probe {
    handshake_us: u64,
    health_us: Vec<u64>,
    error: Option<String>,
}

/// The main thread's handles on the worker.
struct Control {
    target: AtomicUsize,
    held: AtomicUsize,
    inflight: AtomicUsize,
    probe_asked: AtomicBool,
    probe: Mutex<Option<Probe>>,
}

async fn probe(sh: &Shared, n: usize) -> Probe {
    let mut p = Probe::default();
    let t0 = Instant::now();
    let mut ws = match proto::open(&sh.cfg, sh.sock()).await {
        Ok(ws) => ws,
        Err(e) => {
            p.error = Some(format!("connect:{}", e.kind()));
            return p;
        }
    };
    p.handshake_us = t0.elapsed().as_micros() as u64;
    for i in 0..n as u64 {
        let id = 1000 + i;
        let req = serde_json::json!({"type": "req", "id": id.to_string(), "method": "health"});
        ws.queue_text(req.to_string().as_bytes());
        let t = Instant::now();
        if ws.flush().await.is_err() {
            p.error = Some("write".into());
            break;
        }
        match await_response(&mut ws, id, sh.cfg.timeout).await {
            Ok(_) => p.health_us.push(t.elapsed().as_micros() as u64),
            Err(e) => {
                p.error = Some(e);
                break;
            }
        }
    }
    p
}

async fn scale_thread(sh: Arc<Shared>, ctl: Arc<Control>, rate: f64, probes: usize) -> ThreadOut {
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    let conns: Rc<RefCell<Vec<Ws>>> = Rc::default();
    let inflight = Rc::new(Cell::new(0usize));
    const TICK_MS: u64 = 10;
    let per_tick = ((rate * TICK_MS as f64 / 1000.0).ceil() as usize).max(1);
    while !sh.stopped() {
        let want = ctl.target.load(Acquire);
        let have = conns.borrow().len() + inflight.get();
        if have < want {
            for _ in 0..(want - have).min(per_tick) {
                inflight.set(inflight.get() + 1);
                let (sh, out, conns, inflight) =
                    (sh.clone(), out.clone(), conns.clone(), inflight.clone());
                monoio::spawn(async move {
                    if let Some(ws) = open_counted(&sh, &out, false).await {
                        conns.borrow_mut().push(ws);
                    }
                    inflight.set(inflight.get() - 1);
                });
            }
        } else if conns.borrow().len() > want {
            // Dropping a connection closes its socket; the server sees the end of stream.
            conns.borrow_mut().truncate(want);
        }
        ctl.held.store(conns.borrow().len(), Release);
        ctl.inflight.store(inflight.get(), Release);
        if ctl.probe_asked.swap(false, AcqRel) {
            let p = probe(&sh, probes).await;
            *ctl.probe.lock().unwrap() = Some(p);
        }
        sleep_ms(TICK_MS).await;
    }
    conns.borrow_mut().clear();
    let o = std::mem::take(&mut *out.borrow_mut());
    o
}

fn pct(v: &mut [u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

pub fn run_scale(a: ScaleArgs) -> Result<(), String> {
    let nofile = raise_nofile();
    let mut c = a.c.clone();
    c.threads = 1;
    let sh = Arc::new(Shared::new(&c, 512)?);
    let pid = c.server_pid();
    let pid_s = pid.map(|p| p.to_string());
    let rss = || pid_s.as_deref().and_then(vm_rss_kib);
    let ctl = Arc::new(Control {
        target: AtomicUsize::new(0),
        held: AtomicUsize::new(0),
        inflight: AtomicUsize::new(0),
        probe_asked: AtomicBool::new(false),
        probe: Mutex::new(None),
    });
    let rss0 = rss();
    let (ctl2, rate, probes) = (ctl.clone(), a.rate, a.probes);
    let hs = run_workers(&c, sh.clone(), move |_, sh| {
        scale_thread(sh, ctl2.clone(), rate, probes)
    });
    let mut plan = a.steps.clone();
    plan.extend(a.steps.iter().rev().skip(1));
    plan.push(0);
    let mut rows = Vec::new();
    for &step in &plan {
        ctl.target.store(step, Release);
        let t0 = Instant::now();
        let limit = Duration::from_secs_f64(step as f64 / a.rate.max(1.0) + c.timeout + 5.0);
        let reached = wait_until(limit, || {
            ctl.inflight.load(Acquire) == 0
                && (ctl.held.load(Acquire) == step
                    || (ctl.held.load(Acquire) < step && sh.failed.load(Relaxed) > 0))
        });
        let took = t0.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs_f64(a.settle));
        let held = ctl.held.load(Acquire);
        let rss_now = rss();
        ctl.probe_asked.store(true, Release);
        wait_until(Duration::from_secs_f64(c.timeout + 30.0), || {
            ctl.probe.lock().unwrap().is_some()
        });
        let mut p = ctl.probe.lock().unwrap().take().unwrap_or_default();
        let growth = match (rss0, rss_now) {
            (Some(a), Some(b)) => Some(b as i64 - a as i64),
            _ => None,
        };
        let row = serde_json::json!({
            "target": step,
            "held": held,
            "reached": reached,
            "step_s": (took * 100.0).round() / 100.0,
            "server_rss_kib": rss_now,
            "server_rss_growth_kib": growth,
            "server_bytes_per_conn": growth.filter(|_| held > 0)
                .map(|g| (g as f64 * 1024.0 / held as f64).round()),
            "probe_handshake_us": p.handshake_us,
            "probe_health_count": p.health_us.len(),
            "probe_health_p50_us": pct(&mut p.health_us, 0.50),
            "probe_health_p99_us": pct(&mut p.health_us, 0.99),
            "probe_health_max_us": p.health_us.iter().max().copied().unwrap_or(0),
            "probe_error": p.error,
        });
        eprintln!("scale: {row}");
        rows.push(row);
    }
    sh.stop.store(true, Relaxed);
    let out = join(hs);
    let mut r = Report::new("scale");
    crate::common_rows(&mut r, &c, &sh);
    r.add("nofile_limit", nofile);
    r.add(
        "server_pid",
        pid.map(serde_json::Value::from).unwrap_or_default(),
    );
    r.add(
        "server_rss_start_kib",
        rss0.map(serde_json::Value::from).unwrap_or_default(),
    );
    r.add("connected_total", sh.connected.load(Relaxed));
    r.add("failed_total", sh.failed.load(Relaxed));
    r.add("steps", serde_json::Value::Array(rows));
    r.latency("connect", out.hists.get("connect"));
    r.errors(&out.errors);
    r.print(c.json);
    Ok(())
}
