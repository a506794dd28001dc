//! Fan-out writes an event straight to each socket when nothing is queued ahead of it, and
//! queues the rest when the socket is full. Either way every subscriber gets every broadcast
//! exactly once, in order, as whole frames, with `seq` counting up by one — on both io
//! drivers, across two shards, and for a subscriber that stops reading during the burst (its
//! socket fills, so its frames are partly written straight and partly queued).

mod common;

use std::{os::fd::AsRawFd, time::Duration};

use common::{Client, Incoming, Server};
use serde_json::{json, Value};

const SUBSCRIBERS: usize = 8;
const ROUNDS: usize = 30;

/// The newest `fan-<i>` presence entry of a `presence` event: which broadcast round it is.
fn round_of(ev: &Value) -> Option<usize> {
    ev["payload"]["presence"]
        .as_array()?
        .iter()
        .filter_map(|e| e["host"].as_str()?.strip_prefix("fan-")?.parse().ok())
        .max()
}

/// Reads `c` until it has seen round `ROUNDS`; checks `seq` and the rounds it saw.
fn check_subscriber(c: &mut Client, who: &str) {
    let mut events = std::mem::take(&mut c.events);
    while events.last().and_then(round_of) != Some(ROUNDS) {
        match common::recv(&mut c.ws, Duration::from_secs(20)) {
            Incoming::Json(v) if v["type"] == "event" => events.push(v),
            other => panic!("{who}: expected an event, got {other:?}"),
        }
    }
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["seq"].as_u64(),
            Some(i as u64 + 1),
            "{who}: event #{i} out of sequence: {e}"
        );
    }
    let rounds: Vec<usize> = events
        .iter()
        .filter(|e| e["event"] == "presence")
        .filter_map(round_of)
        .collect();
    assert_eq!(
        rounds,
        (1..=ROUNDS).collect::<Vec<_>>(),
        "{who}: every round once, in order"
    );
}

fn exercise(driver: &str) {
    let server = Server::opts().arg("--driver").arg(driver).shards(2).start();
    let mut subs: Vec<Client> = (0..SUBSCRIBERS).map(|_| Client::connect(&server)).collect();
    // One subscriber stops reading; its small receive buffer fills during the burst.
    let mut stalled = Client::connect(&server);
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on the test's own socket with a valid int.
    unsafe {
        libc::setsockopt(
            stalled.ws.get_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            4,
        );
    }
    let mut sender = Client::connect(&server);
    sender.keep_events = false;
    // Rounds grow (each adds a presence entry with 3 KB of text): later frames do not
    // fit the stalled socket at once.
    for i in 1..=ROUNDS {
        let text = format!("round {i} {}", "x".repeat(3000));
        let r = sender.call(
            "system-event",
            Some(json!({"text": text, "host": format!("fan-{i}")})),
        );
        assert_eq!(r["ok"], true, "{r}");
    }
    for (n, c) in subs.iter_mut().enumerate() {
        check_subscriber(c, &format!("{driver} subscriber {n}"));
    }
    check_subscriber(&mut stalled, &format!("{driver} stalled subscriber"));
    // Still served afterwards.
    assert_eq!(sender.call("health", None)["ok"], true);
}

#[test]
fn epoll_delivers_every_broadcast_once_in_order() {
    exercise("epoll");
}

#[test]
fn io_uring_delivers_every_broadcast_once_in_order() {
    if !common::io_uring_available() {
        eprintln!("skipping: io_uring is not available on this machine");
        return;
    }
    exercise("io_uring");
}

#[test]
fn glommio_delivers_every_broadcast_once_in_order() {
    if !common::io_uring_available() {
        eprintln!("skipping: io_uring (which glommio needs) is not available on this machine");
        return;
    }
    exercise("glommio");
}
