//! Every io driver (monoio on epoll and io_uring, glommio) serves the protocol: handshake, `health`, `system-presence`, a broadcast.

mod common;

use common::{params_for, Client, Server};
use serde_json::json;

fn exercise(driver: &str) {
    let server = Server::opts().arg("--driver").arg(driver).start();
    let mut a = Client::connect(&server);
    let mut b = Client::connect(&server);
    assert_eq!(a.hello["protocol"], 4);
    let h = a.call("health", None);
    assert_eq!(h["ok"], true, "{h}");
    let status = a.call("status", None);
    assert_eq!(status["gateway"]["driver"], driver, "{status}");
    let list = b.call("system-presence", None);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["mode"] == "gateway"),
        "{list}"
    );
    // A broadcast reaches the other connection.
    let mut p = params_for("openclaw-linux", "ui", &[]);
    p["client"]["instanceId"] = json!(format!("drv-{driver}"));
    let _ui = Client::connect_with(&server, &p);
    b.wait_event_where("presence", common::READ_TIMEOUT, |e| {
        e["payload"]["presence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["instanceId"] == format!("drv-{driver}"))
    });
    // Larger frames cross the driver in several reads.
    let id = a.send_request("health", Some(json!({"pad": "y".repeat(300_000)})));
    let res = a.wait_response(&id, common::READ_TIMEOUT);
    assert_eq!(res["ok"], true);
}

#[test]
fn epoll() {
    exercise("epoll");
}

#[test]
fn io_uring() {
    if !common::io_uring_available() {
        eprintln!("skipping: io_uring is not available on this machine");
        return;
    }
    exercise("io_uring");
}

#[test]
fn glommio() {
    if !common::io_uring_available() {
        eprintln!("skipping: io_uring (which glommio needs) is not available on this machine");
        return;
    }
    exercise("glommio");
}
