//! `floor`: what the kernel alone charges for a fan-out on this machine. One thread pinned to
//! the server's CPU writes a frame of `--bytes` to each of `--subscribers` loopback TCP sockets
//! with one plain `send(2)` each (no runtime, no WebSocket, no JSON), while a reader thread on
//! the loadgen CPU drains the other ends. Its time per delivery is the floor under any server's
//! broadcast on loopback: a server can only add to it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

#[derive(Args, Clone)]
pub struct FloorArgs {
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Frame size (bytes)
    #[arg(long, default_value_t = 512)]
    bytes: usize,
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// CPU of the sending thread (the server's CPU in the other scenarios)
    #[arg(long, default_value_t = 0)]
    send_cpu: usize,
    /// CPU of the reading thread
    #[arg(long, default_value_t = 1)]
    read_cpu: usize,
    #[arg(long)]
    json: bool,
}

fn thread_cpu_s() -> f64 {
    // SAFETY: clock_gettime fills the zeroed timespec it is given.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

pub fn run_floor(a: FloorArgs) -> Result<(), String> {
    crate::raise_nofile();
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut readers = Vec::with_capacity(a.subscribers);
    let mut writers = Vec::with_capacity(a.subscribers);
    for _ in 0..a.subscribers {
        let r = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let (w, _) = listener.accept().map_err(|e| e.to_string())?;
        w.set_nodelay(true).map_err(|e| e.to_string())?;
        r.set_nonblocking(true).map_err(|e| e.to_string())?;
        readers.push(r);
        writers.push(w);
    }
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (rx, stop, read_cpu) = (received.clone(), done.clone(), a.read_cpu);
    let reader = std::thread::spawn(move || {
        crate::pin_cpu(read_cpu);
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Acquire) {
            for r in readers.iter_mut() {
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    rx.fetch_add(n as u64, Release);
                }
            }
        }
    });
    crate::pin_cpu(a.send_cpu);
    let frame = vec![b'x'; a.bytes];
    let total = (a.subscribers * a.rounds * a.bytes) as u64;
    let mut round_us = Vec::with_capacity(a.rounds);
    let (t0, mut send_cpu) = (Instant::now(), 0.0);
    for r in 0..a.rounds {
        let (t, c) = (Instant::now(), thread_cpu_s());
        for w in writers.iter_mut() {
            w.write_all(&frame).map_err(|e| e.to_string())?;
        }
        send_cpu += thread_cpu_s() - c;
        // Wait for the round to land before the next, as the broadcast scenario does.
        let want = ((r + 1) * a.subscribers * a.bytes) as u64;
        while received.load(Acquire) < want {
            std::hint::spin_loop();
        }
        round_us.push(t.elapsed().as_micros() as u64);
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), send_cpu);
    done.store(true, Release);
    let _ = reader.join();
    round_us.sort_unstable();
    let deliveries = (a.subscribers * a.rounds) as f64;
    let mut r = crate::stats::Report::new("floor");
    r.add("subscribers", a.subscribers);
    r.add("bytes", a.bytes);
    r.add("rounds", a.rounds);
    r.add("bytes_moved", total);
    r.add("round_p50_us", round_us[round_us.len() / 2]);
    r.add("deliveries_per_s", (deliveries / wall).round());
    r.add(
        "sender_cpu_us_per_delivery",
        (cpu * 1e6 / deliveries * 100.0).round() / 100.0,
    );
    r.print(a.json);
    Ok(())
}
