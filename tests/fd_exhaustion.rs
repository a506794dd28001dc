//! Out of file descriptors: when `accept(2)` fails (`EMFILE`), the shard backs off instead of
//! spinning, logs a sample of the failures instead of one line each, keeps serving the
//! connections it has, and accepts again as soon as descriptors free up.

mod common;

use std::{
    net::TcpStream,
    thread,
    time::{Duration, Instant},
};

use common::{Client, Server};
use serde_json::json;

#[test]
fn exhausted_descriptors_are_survived_without_spinning() {
    let server = Server::opts()
        .shards(1)
        .nofile(96)
        .limits(json!({"maxPreauthPerIp": 100_000, "handshakeTimeoutMs": 600_000}))
        .start();
    let mut admin = Client::connect(&server);
    // Fill every descriptor with sockets that never send a request head; the rest wait in
    // the listen backlog.
    let mut hoard: Vec<TcpStream> = Vec::new();
    for _ in 0..300 {
        hoard.push(TcpStream::connect(server.addr).expect("tcp connect"));
    }
    thread::sleep(Duration::from_millis(500));
    // While exhausted: the existing connection is served, and the shard does not spin.
    let cpu0 = server.cpu_time();
    let t0 = Instant::now();
    for _ in 0..10 {
        assert_eq!(admin.call("health", None)["ok"], true);
        thread::sleep(Duration::from_millis(200));
    }
    let busy = server.cpu_time().saturating_sub(cpu0);
    let wall = t0.elapsed();
    assert!(
        busy < wall / 2,
        "the server used {busy:?} of CPU in {wall:?} while out of descriptors (a spin?)"
    );
    let s = admin.call("status", None);
    let errors = s["gateway"]["acceptErrors"].as_u64().unwrap();
    assert!(errors > 0, "accept failures are counted: {s}");
    let logged = server.stderr().matches("accept failed").count() as u64;
    let secs = t0.elapsed().as_secs() + 2;
    eprintln!(
        "descriptor exhaustion: {errors} failed accepts, {logged} log lines, server CPU {busy:?} in {wall:?}"
    );
    assert!(
        logged <= secs,
        "failures are logged at most once a second ({logged} lines for {errors} failures)"
    );
    // Descriptors free up: new connections are served again.
    drop(hoard);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = std::panic::catch_unwind(|| {
            let mut c = Client::connect(&server);
            c.call("health", None)["ok"] == true
        });
        if ok.unwrap_or(false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new connection served after the hoard closed"
        );
        thread::sleep(Duration::from_millis(200));
    }
}
