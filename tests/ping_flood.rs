//! A client that floods pings (each answered with a pong the server must buffer) and never
//! reads is cut off by the bandwidth gate: server memory stays bounded and other clients keep
//! being served.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use common::{Client, Server};

fn rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A masked ping frame with a 125-byte payload.
fn ping_frame() -> Vec<u8> {
    let mut f = vec![0x89, 0x80 | 125, 1, 2, 3, 4];
    f.extend((0..125).map(|i| (i as u8) ^ [1u8, 2, 3, 4][i % 4]));
    f
}

#[test]
fn ping_flood_without_reading_is_cut_off() {
    let server = Server::start();
    let before = rss_kib(server.pid());
    let mut s = TcpStream::connect(server.addr).unwrap();
    // A tiny receive buffer so the server's pongs back up quickly.
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on our own socket with a valid int.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            4,
        );
    }
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    s.write_all(req.as_bytes()).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let frame = ping_frame();
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 512)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut sent = 0usize;
    while Instant::now() < deadline {
        match s.write(&batch) {
            Ok(n) => sent += n,
            Err(_) => break, // the server stopped reading us, or closed
        }
    }
    assert!(sent > 0);
    // Other clients are still served.
    let mut other = Client::connect(&server);
    assert_eq!(other.call("health", None)["ok"], true);
    // The flooder is gone: its socket reaches EOF or a reset once we drain it.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let end = Instant::now() + Duration::from_secs(8);
    let mut closed = false;
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => continue,
        }
    }
    assert!(closed, "the flooding socket was not closed");
    let after = rss_kib(server.pid());
    assert!(
        after < before + 64 * 1024,
        "server memory grew from {before} KiB to {after} KiB under a ping flood"
    );
}
