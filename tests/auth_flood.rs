//! Floods of bad credentials: many connects with forged device signatures and wrong tokens
//! at once. Each gets its precise refusal, and legitimate clients connecting meanwhile are
//! all served. Bounded: a fixed number of attempts from a few threads.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use common::{add_device, connect_params, open, send_connect, Client, Incoming, Server};
use ed25519_dalek::SigningKey;
use serde_json::json;

/// One connect with a forged signature (a valid key, a signature over other bytes).
fn forged(server: &Server, seed: u8) -> Incoming {
    let (mut ws, ch) = open(server);
    let mut p = connect_params();
    let key = SigningKey::from_bytes(&[seed; 32]);
    add_device(
        &mut p,
        &key,
        ch["payload"]["nonce"].as_str().unwrap(),
        ch["payload"]["ts"].as_u64().unwrap(),
    );
    p["device"]["signature"] = json!("A".repeat(86));
    send_connect(&mut ws, &p)
}

#[test]
fn legitimate_clients_are_served_during_a_forged_signature_flood() {
    let server = Arc::new(Server::opts().shards(2).start());
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut flooders = Vec::new();
    for t in 0..3u8 {
        let (server, stop, refused) = (server.clone(), stop.clone(), refused.clone());
        flooders.push(thread::spawn(move || {
            for i in 0..400u32 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                match forged(&server, t.wrapping_mul(97).wrapping_add(i as u8)) {
                    Incoming::Json(v) => {
                        assert_eq!(v["ok"], false, "a forged signature was accepted: {v}");
                        assert_eq!(
                            v["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_INVALID",
                            "{v}"
                        );
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("forged connect: {other:?}"),
                }
            }
        }));
    }
    // Meanwhile, legitimate clients connect and call, on every shard.
    let mut served = 0;
    for _ in 0..40 {
        let mut c = Client::connect(&server);
        assert_eq!(c.call("health", None)["ok"], true);
        c.close();
        served += 1;
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Release);
    for f in flooders {
        f.join().expect("flooder");
    }
    assert_eq!(served, 40);
    let refused = refused.load(Ordering::Relaxed);
    assert!(refused > 100, "the flood ran");
    eprintln!("forged-signature flood: {refused} refused, {served}/40 legitimate clients served");
}
