//! Presence across shards (protocol §2.6, §6.5): with 2 shards, tracked clients (device-less
//! `openclaw-linux`/`ui`, scopes cleared) appear in `system-presence` as seen from watchers on
//! every shard; `presence` events reach watchers on connect and disconnect (the entry stays,
//! with `reason: "disconnect"`), and `stateVersion.presence` increases.

mod common;

use std::time::{Duration, Instant};

use common::{params_for, Client, Server, READ_TIMEOUT};
use serde_json::{json, Value};

fn tracked(server: &Server, instance: &str) -> Client {
    let mut p = params_for("openclaw-linux", "ui", &["operator.admin"]);
    p["client"]["instanceId"] = json!(instance);
    p["client"]["displayName"] = json!(format!("host-{instance}"));
    let c = Client::connect_with(server, &p);
    assert_eq!(c.hello["auth"]["scopes"], json!([]), "scopes are cleared");
    c
}

fn entry<'a>(list: &'a Value, instance: &str) -> Option<&'a Value> {
    list.as_array()
        .unwrap_or_else(|| panic!("presence list: {list}"))
        .iter()
        .find(|e| e["instanceId"] == instance)
}

fn pv(v: &Value) -> u64 {
    v["stateVersion"]["presence"]
        .as_u64()
        .unwrap_or_else(|| panic!("no stateVersion.presence in {v}"))
}

/// Polls `system-presence` on `w` until `ok` holds (replicas converge over the bus).
fn eventually(w: &mut Client, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = w.call("system-presence", None);
        if ok(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "{what}: last list {list}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn presence_is_consistent_across_shards() {
    let server = Server::opts().shards(2).start();
    // Watchers: admin CLIs (not tracked themselves). With 4 of them, both shards are covered
    // unless the kernel put all 4 on one (probability 1/8 per run; the 8 tracked clients below
    // spread over both shards with probability 1 - 1/128, which is what the cross-shard check
    // relies on).
    let mut watchers: Vec<Client> = (0..4).map(|_| Client::connect(&server)).collect();
    let v0 = pv(&watchers[0].hello["snapshot"]);

    let instances: Vec<String> = (0..8).map(|i| format!("inst-{i}")).collect();
    let mut clients = Vec::new();
    let mut last_pv = v0;
    for inst in &instances {
        let c = tracked(&server, inst);
        let hv = pv(&c.hello["snapshot"]);
        assert!(
            hv >= last_pv,
            "hello stateVersion went back: {hv} < {last_pv}"
        );
        // Every watcher gets the same presence event naming the new client, with a higher
        // version than the previous change.
        let mut versions = Vec::new();
        for w in &mut watchers {
            let ev = w.wait_event_where("presence", READ_TIMEOUT, |e| {
                entry(&e["payload"]["presence"], inst).is_some()
            });
            let e = entry(&ev["payload"]["presence"], inst).unwrap();
            assert_eq!(e["reason"], "connect", "{e}");
            assert_eq!(e["mode"], "ui", "{e}");
            assert_eq!(e["clientId"], "openclaw-linux", "{e}");
            assert_eq!(e["host"], format!("host-{inst}"), "{e}");
            assert_eq!(e["roles"], json!(["operator"]), "{e}");
            versions.push(pv(&ev));
        }
        assert!(
            versions.iter().all(|v| *v == versions[0]),
            "watchers saw different versions for one change: {versions:?}"
        );
        assert!(
            versions[0] > last_pv,
            "presence version did not increase: {versions:?} after {last_pv}"
        );
        last_pv = versions[0];
        clients.push(c);
    }

    // Every watcher (whatever its shard) sees every tracked client, and the gateway itself.
    for w in &mut watchers {
        let list = eventually(w, "all tracked clients visible", |l| {
            instances.iter().all(|i| entry(l, i).is_some())
        });
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .any(|e| e["mode"] == "gateway"),
            "{list}"
        );
    }
    // All replicas agree on the set of instance ids.
    let sets: Vec<Vec<String>> = watchers
        .iter_mut()
        .map(|w| {
            let list = w.call("system-presence", None);
            let mut ids: Vec<String> = list
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["instanceId"].as_str().map(str::to_owned))
                .filter(|i| i.starts_with("inst-"))
                .collect();
            ids.sort();
            ids
        })
        .collect();
    for s in &sets {
        assert_eq!(s, &sets[0]);
    }

    // The snapshot of a new connection agrees with the state version watchers last saw.
    let late = Client::connect(&server);
    let late_pv = pv(&late.hello["snapshot"]);
    assert!(late_pv >= v0 + instances.len() as u64, "{late_pv} vs {v0}");
    let snap = &late.hello["snapshot"]["presence"];
    for i in &instances {
        assert!(
            entry(snap, i).is_some(),
            "{i} missing from a new snapshot: {snap}"
        );
    }

    // Disconnect: watchers get a presence event in which the entry is kept with reason
    // "disconnect", and the version goes up.
    let gone = clients.remove(3);
    gone.close();
    for w in &mut watchers {
        let ev = w.wait_event_where("presence", READ_TIMEOUT, |e| {
            entry(&e["payload"]["presence"], "inst-3").is_some_and(|x| x["reason"] == "disconnect")
        });
        assert!(
            pv(&ev) > last_pv,
            "version did not increase on disconnect: {ev}"
        );
        let e = entry(&ev["payload"]["presence"], "inst-3").unwrap();
        assert_eq!(e["host"], "host-inst-3", "fields kept: {e}");
    }
    for w in &mut watchers {
        eventually(w, "disconnect visible on every shard", |l| {
            entry(l, "inst-3").is_some_and(|x| x["reason"] == "disconnect")
                && entry(l, "inst-2").is_some_and(|x| x["reason"] == "connect")
        });
    }
}

#[test]
fn scopeless_clients_get_no_presence_events() {
    // `presence` requires operator.read: a tracked, scope-less ui client gets ticks only.
    let server = Server::opts()
        .limits(json!({"tickIntervalMs": 100}))
        .start();
    let mut ui = tracked(&server, "quiet");
    let _other = tracked(&server, "noisy");
    let tick = ui.wait_event("tick", READ_TIMEOUT);
    assert!(tick["payload"]["ts"].is_u64(), "{tick}");
    let deadline = Instant::now() + Duration::from_millis(400);
    while Instant::now() < deadline {
        ui.wait_event("tick", READ_TIMEOUT);
    }
    assert!(
        ui.events.iter().all(|e| e["event"] != "presence"),
        "{:?}",
        ui.events
    );
}
