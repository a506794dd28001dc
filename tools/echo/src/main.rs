//! Bare WebSocket echo server: monoio, one pinned thread per core, each with
//! its own SO_REUSEPORT listener on the same port. No JSON, no auth: accepts
//! the HTTP upgrade and echoes every text/binary frame back. Serves as the
//! transport ceiling for ringgate (compare with `loadgen rpc --raw`).

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

#[derive(Parser, Clone)]
#[command(
    name = "echo",
    about = "Bare WebSocket echo server (monoio, thread per core)"
)]
struct Cli {
    /// Port to listen on (0 = pick a free one)
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// Address to bind
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Worker threads (default: number of CPUs)
    #[arg(long)]
    threads: Option<usize>,
    /// Do not pin threads to CPUs
    #[arg(long)]
    no_pin: bool,
    /// Largest accepted frame payload (bytes)
    #[arg(long, default_value_t = 16 << 20)]
    max_frame: usize,
}

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CONT: u8 = 0x0;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

fn pin_cpu(cpu: usize) {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() {
    let cli = Cli::parse();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = cli.threads.unwrap_or(ncpu).max(1);
    let addr: SocketAddr = match format!("{}:{}", cli.bind, cli.port).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo: bad address: {e}");
            std::process::exit(2);
        }
    };
    // Thread 0 binds first (possibly port 0) and reports the real port; the
    // others then bind the same port with SO_REUSEPORT.
    let (tx, rx) = mpsc::channel::<io::Result<u16>>();
    let mut handles = Vec::new();
    let mut port = addr.port();
    for tid in 0..threads {
        let tx = tx.clone();
        let cli2 = cli.clone();
        let bind_addr = SocketAddr::new(addr.ip(), port);
        handles.push(std::thread::spawn(move || {
            if !cli2.no_pin {
                pin_cpu(tid % ncpu);
            }
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .with_entries(4096)
                .build()
                .expect("monoio runtime");
            rt.block_on(async move {
                let opts = ListenerOpts::new().reuse_port(true).backlog(4096);
                let listener = match TcpListener::bind_with_config(bind_addr, &opts) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let p = listener.local_addr().map(|a| a.port());
                let _ = tx.send(p);
                drop(tx);
                serve(listener, cli2.max_frame).await;
            })
        }));
        match rx.recv() {
            Ok(Ok(p)) => port = p,
            Ok(Err(e)) => {
                eprintln!("echo: bind {bind_addr}: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("echo: worker {tid} died");
                std::process::exit(1);
            }
        }
    }
    println!("listening on ws://{}:{}", addr.ip(), port);
    eprintln!("echo: {threads} thread(s)");
    for h in handles {
        let _ = h.join();
    }
}

async fn serve(listener: TcpListener, max_frame: usize) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(async move {
                    let _ = conn(stream, max_frame).await;
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                eprintln!("echo: accept: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Read more bytes into `buf` (appending); Ok(false) on EOF.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, min: usize) -> io::Result<bool> {
    let len = buf.len();
    if buf.capacity() - len < min {
        buf.reserve(min);
    }
    let cap = buf.capacity();
    let b = std::mem::take(buf);
    let (res, slice) = stream.read(b.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    Ok(res? > 0)
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn conn(mut stream: TcpStream, max_frame: usize) -> io::Result<()> {
    let mut rbuf: Vec<u8> = Vec::with_capacity(4096);
    // HTTP upgrade
    let head_end = loop {
        if let Some(i) = find(&rbuf, b"\r\n\r\n") {
            break i + 4;
        }
        if rbuf.len() > 16 * 1024 || !fill(&mut stream, &mut rbuf, 1024).await? {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&rbuf[..head_end]).into_owned();
    let upgrade_ok = head.starts_with("GET ")
        && header_value(&head, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = header_value(&head, "sec-websocket-key");
    let (true, Some(key)) = (upgrade_ok, key) else {
        let resp = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let _ = stream.write_all(resp.to_vec()).await;
        return Ok(());
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    let (r, _) = stream.write_all(resp.into_bytes()).await;
    r?;
    rbuf.drain(..head_end);

    let mut wbuf: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    loop {
        // Parse every complete frame in the buffer, queue the echoes.
        let mut close = false;
        loop {
            let b = &rbuf[pos..];
            if b.len() < 2 {
                break;
            }
            let b0 = b[0];
            let op = b0 & 0x0f;
            let masked = b[1] & 0x80 != 0;
            let mut len = (b[1] & 0x7f) as usize;
            let mut hdr = 2;
            if len == 126 {
                if b.len() < 4 {
                    break;
                }
                len = u16::from_be_bytes([b[2], b[3]]) as usize;
                hdr = 4;
            } else if len == 127 {
                if b.len() < 10 {
                    break;
                }
                len = u64::from_be_bytes(b[2..10].try_into().unwrap()).min(usize::MAX as u64)
                    as usize;
                hdr = 10;
            }
            if len > max_frame || !masked {
                // Clients must mask (RFC 6455 §5.1); oversize → 1009.
                let code: u16 = if masked { 1009 } else { 1002 };
                push_frame(&mut wbuf, 0x80 | OP_CLOSE, &code.to_be_bytes());
                close = true;
                break;
            }
            if b.len() < hdr + 4 + len {
                let need = hdr + 4 + len - b.len();
                if rbuf.capacity() - rbuf.len() < need {
                    rbuf.reserve(need);
                }
                break;
            }
            let mask: [u8; 4] = [b[hdr], b[hdr + 1], b[hdr + 2], b[hdr + 3]];
            let start = pos + hdr + 4;
            let payload = &mut rbuf[start..start + len];
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= mask[i & 3];
            }
            pos = start + len;
            match op {
                OP_TEXT | OP_BINARY | OP_CONT => push_frame(&mut wbuf, b0, &rbuf[start..pos]),
                OP_PING => push_frame(&mut wbuf, 0x80 | OP_PONG, &rbuf[start..pos]),
                OP_PONG => {}
                OP_CLOSE => {
                    let p = &rbuf[start..pos];
                    let code = if p.len() >= 2 {
                        &p[..2]
                    } else {
                        &[0x03, 0xe8][..]
                    };
                    push_frame(&mut wbuf, 0x80 | OP_CLOSE, code);
                    close = true;
                    break;
                }
                _ => {
                    push_frame(&mut wbuf, 0x80 | OP_CLOSE, &1002u16.to_be_bytes());
                    close = true;
                    break;
                }
            }
        }
        if !wbuf.is_empty() {
            let (r, mut b) = stream.write_all(std::mem::take(&mut wbuf)).await;
            b.clear();
            if b.capacity() > 1 << 20 {
                b = Vec::with_capacity(4096);
            }
            wbuf = b;
            r?;
        }
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
        // Compact consumed bytes.
        if pos == rbuf.len() {
            rbuf.clear();
            if rbuf.capacity() > 1 << 20 {
                rbuf = Vec::with_capacity(4096);
            }
        } else if pos > 0 {
            rbuf.drain(..pos);
        }
        pos = 0;
        if !fill(&mut stream, &mut rbuf, 4096).await? {
            return Ok(());
        }
    }
}

/// Unmasked server frame with the given first byte (FIN|opcode).
fn push_frame(w: &mut Vec<u8>, b0: u8, payload: &[u8]) {
    w.push(b0);
    let n = payload.len();
    if n < 126 {
        w.push(n as u8);
    } else if n <= 0xffff {
        w.push(126);
        w.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        w.push(127);
        w.extend_from_slice(&(n as u64).to_be_bytes());
    }
    w.extend_from_slice(payload);
}
