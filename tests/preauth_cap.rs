//! Pre-auth socket budget (protocol §1.1): past `maxPreauthPerIp` unauthenticated sockets from
//! one IP, an upgrade gets HTTP 503 "Too many unauthenticated sockets"; authenticating one of
//! them frees its slot.

mod common;

use common::{connect_params, http_raw, open, send_connect, upgrade_request, Incoming, Server};
use serde_json::json;

#[test]
fn fifth_preauth_socket_is_refused_until_one_authenticates() {
    let server = Server::opts().limits(json!({"maxPreauthPerIp": 4})).start();
    let mut held: Vec<_> = (0..4).map(|_| open(&server).0).collect();

    let r = http_raw(server.addr, &upgrade_request(server.addr, &[]));
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body, "Too many unauthenticated sockets");

    // The tungstenite client sees the same refusal.
    match common::try_open(server.addr, &[]) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
        Err(e) => panic!("expected HTTP 503, got {e}"),
        Ok(_) => panic!("expected HTTP 503, got an upgrade"),
    }

    // Authenticate one of the four: its slot is released.
    let first = send_connect(&mut held[0], &connect_params());
    assert!(
        matches!(&first, Incoming::Json(v) if v["ok"] == true),
        "{first:?}"
    );
    let (_ws, ch) = open(&server);
    assert_eq!(ch["event"], "connect.challenge");

    // Now four pre-auth sockets again: the next one is refused.
    let r = http_raw(server.addr, &upgrade_request(server.addr, &[]));
    assert_eq!(r.status, 503, "{r:?}");
}

#[test]
fn closing_a_preauth_socket_frees_its_slot() {
    let server = Server::opts().limits(json!({"maxPreauthPerIp": 2})).start();
    let mut a = open(&server).0;
    let _b = open(&server).0;
    assert_eq!(
        http_raw(server.addr, &upgrade_request(server.addr, &[])).status,
        503
    );
    // A rejected handshake ends the socket and releases the slot.
    common::send_text(&mut a, "not json");
    let (code, _) = common::expect_close(&mut a, common::READ_TIMEOUT);
    assert_eq!(code, 1000);
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match common::try_open(server.addr, &[]) {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "slot never released: {e}"
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}
