//! `node.invoke` across shards. The caller's shard owns the pending invoke (caller, deadline);
//! the node's shard delivers `node.invoke.request` to the node (no `seq`) and remembers which
//! invokes its node owes, so a `node.invoke.result` — or the node going away — is routed back.
//! A caller that goes away cancels the invoke (`node.invoke.cancel` to the node).
//!
//! Sans-IO: both sides are [`Invokes`], whose steps push effects (messages for the other
//! shard as [`Effect::Route`], the request and cancel events to the node's connection, the
//! deadline as a timer) for the shard's driver.
//!
//! In a cluster the node may be connected to another host: its [`Place`] names that host, and
//! messages for it leave as [`Effect::Do`]`(`[`Remote`]`)`, which the driver hands to the
//! cluster link. The protocol between the two sides is the same messages either way; a host
//! that dies fails the invokes waiting on its nodes ([`Invokes::host_gone`]).

use std::{collections::HashMap, sync::Arc};

use serde_json::{json, Value};

use crate::{
    effects::{Caller, Effect, Effects},
    proto::{
        errors::{code, ErrorShape},
        frame::EventTemplate,
    },
};

/// Default invoke deadline (`node.invoke` without `timeoutMs`).
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Where one side of an invoke lives: a shard of this host (`host: None`) or of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub host: Option<Arc<str>>,
    pub shard: usize,
}

impl Place {
    pub fn here(shard: usize) -> Place {
        Place { host: None, shard }
    }
}

/// A message for the same owner on another host.
#[derive(Debug, Clone)]
pub struct Remote {
    pub host: Arc<str>,
    pub shard: usize,
    pub msg: InvokeMsg,
}

/// An invoke waiting on this (the caller's) shard.
pub struct Pending {
    caller: Caller,
    node_id: String,
    command: String,
    node: Place,
}

/// An invoke this (the node's) shard delivered and its node has not answered.
pub struct Forwarded {
    origin: Place,
    node_conn: u64,
}

#[derive(Default)]
pub struct Invokes {
    pending: HashMap<String, Pending>,
    forwarded: HashMap<String, Forwarded>,
}

/// How an invoke ended, reported to the caller's shard (and across hosts as JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Ok {
        payload: Value,
        payload_json: Option<String>,
    },
    /// The node answered `ok:false`, or the invoke could not reach it.
    Failed {
        code: String,
        message: String,
        dispatched: bool,
    },
}

/// Messages between the caller's and the node's shard, and the caller's deadline.
#[derive(Debug, Clone)]
pub enum InvokeMsg {
    /// The deadline of invoke `id` passed (on the caller's shard). Ids are fresh per invoke,
    /// so the timer of an answered invoke finds nothing.
    Timeout {
        id: String,
    },
    Request {
        id: String,
        origin: Place,
        node_conn: u64,
        node_id: String,
        event: Arc<EventTemplate>,
    },
    Cancel {
        id: String,
        node_id: String,
    },
    Done {
        id: String,
        outcome: Outcome,
    },
}

/// What a step needs of the shard.
pub struct Env<'a> {
    /// This shard.
    pub shard: usize,
    /// Whether a connection on this shard is open and authenticated.
    pub conn_live: &'a dyn Fn(u64) -> bool,
}

pub type Fx = Effects<InvokeMsg, Remote>;

/// Sends `msg` to the invokes of `to`: over the bus, or to another host.
fn route(to: &Place, msg: InvokeMsg, fx: &mut Fx) {
    match &to.host {
        None => fx.push(Effect::Route(to.shard, msg)),
        Some(host) => fx.push(Effect::Do(Remote {
            host: host.clone(),
            shard: to.shard,
            msg,
        })),
    }
}

/// What an invoke asks of a node.
#[derive(Debug)]
pub struct Request {
    pub node_id: String,
    /// The node's host (`None`: this one) and shard.
    pub node_host: Option<Arc<str>>,
    pub node_shard: usize,
    pub node_conn: u64,
    pub command: String,
    pub params: Option<Value>,
    pub timeout_ms: u64,
    pub idempotency_key: String,
    pub session_key: Option<String>,
}

impl Invokes {
    /// Invokes started on this shard and not yet answered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Starts an invoke for `caller` (a connection on this shard).
    pub fn start(&mut self, env: &Env, caller: Caller, req: Request, fx: &mut Fx) {
        let id = uuid::Uuid::new_v4().to_string();
        let mut payload = json!({
            "id": id,
            "nodeId": req.node_id,
            "command": req.command,
            "paramsJSON": req.params.as_ref().map(Value::to_string),
            "timeoutMs": req.timeout_ms,
            "idempotencyKey": req.idempotency_key,
        });
        if let Some(k) = &req.session_key {
            payload["sessionKey"] = json!(k);
        }
        let event = Arc::new(EventTemplate::new("node.invoke.request", &payload, None));
        let node = Place {
            host: req.node_host,
            shard: req.node_shard,
        };
        self.pending.insert(
            id.clone(),
            Pending {
                caller,
                node_id: req.node_id.clone(),
                command: req.command,
                node: node.clone(),
            },
        );
        fx.push(Effect::Timer(
            req.timeout_ms,
            InvokeMsg::Timeout { id: id.clone() },
        ));
        route(
            &node,
            InvokeMsg::Request {
                id,
                origin: Place::here(env.shard),
                node_conn: req.node_conn,
                node_id: req.node_id,
                event,
            },
            fx,
        );
    }

    /// Answers the caller of a finished invoke.
    fn finish(&mut self, id: &str, outcome: Outcome, fx: &mut Fx) {
        let Some(p) = self.pending.remove(id) else {
            return;
        };
        let label = match &outcome {
            Outcome::Ok { .. } => "ok",
            Outcome::Failed { code, .. } => match code.as_str() {
                "TIMEOUT" => "timeout",
                "NOT_CONNECTED" => "not_connected",
                "DISCONNECTED" => "disconnected",
                // The node's own error codes are its to choose: not a label.
                _ => "error",
            },
        };
        crate::metrics::record(|m| m.invoke_ended(label));
        match outcome {
            Outcome::Ok {
                payload,
                payload_json,
            } => fx.ok(
                &p.caller,
                json!({"ok": true, "nodeId": p.node_id, "command": p.command,
                        "payload": payload, "payloadJSON": payload_json}),
            ),
            Outcome::Failed {
                code: c,
                message,
                dispatched,
            } => {
                let (msg, top) = if c == "NOT_CONNECTED" {
                    ("node not connected".to_owned(), Some("NOT_CONNECTED"))
                } else {
                    (format!("{c}: {message}"), None)
                };
                let mut details = json!({
                    "nodeError": {"code": c, "message": message},
                    "nodeCommandDispatched": dispatched,
                });
                if let Some(t) = top {
                    details["code"] = json!(t);
                }
                fx.err(
                    &p.caller,
                    ErrorShape::new(code::UNAVAILABLE, msg).with_details(details),
                );
            }
        }
    }

    /// An invoke message from another shard (or this one), or a deadline.
    pub fn resume(&mut self, env: &Env, msg: InvokeMsg, fx: &mut Fx) {
        match msg {
            InvokeMsg::Request {
                id,
                origin,
                node_conn,
                node_id,
                event,
            } => {
                if (env.conn_live)(node_conn) {
                    fx.push(Effect::Event(node_conn, event));
                    self.forwarded.insert(id, Forwarded { origin, node_conn });
                } else {
                    let outcome = Outcome::Failed {
                        code: "NOT_CONNECTED".into(),
                        message: format!("node {node_id} is not connected"),
                        dispatched: false,
                    };
                    route(&origin, InvokeMsg::Done { id, outcome }, fx);
                }
            }
            InvokeMsg::Cancel { id, node_id } => {
                if let Some(f) = self.forwarded.remove(&id) {
                    let ev = EventTemplate::new(
                        "node.invoke.cancel",
                        &json!({"invokeId": id, "nodeId": node_id}),
                        None,
                    );
                    fx.push(Effect::Event(f.node_conn, Arc::new(ev)));
                }
            }
            InvokeMsg::Done { id, outcome } => self.finish(&id, outcome, fx),
            InvokeMsg::Timeout { id } => {
                let Some(p) = self.pending.get(&id) else {
                    return;
                };
                let (node, node_id) = (p.node.clone(), p.node_id.clone());
                let outcome = Outcome::Failed {
                    code: "TIMEOUT".into(),
                    message: "node invoke timed out".into(),
                    dispatched: true,
                };
                self.finish(&id, outcome, fx);
                route(&node, InvokeMsg::Cancel { id, node_id }, fx);
            }
        }
    }

    /// `node.invoke.result` from the node on connection `node_conn`; returns the answer for
    /// the node (`ignored` for an invoke it does not owe).
    pub fn result(&mut self, node_conn: u64, p: &Value, fx: &mut Fx) -> Value {
        let id = p["id"].as_str().unwrap_or_default();
        let Some(f) = self.forwarded.get(id).filter(|f| f.node_conn == node_conn) else {
            return json!({"ok": true, "ignored": true});
        };
        let origin = f.origin.clone();
        self.forwarded.remove(id);
        let outcome = if p["ok"].as_bool() == Some(true) {
            let payload_json = p["payloadJSON"].as_str().map(str::to_owned);
            let payload = match &payload_json {
                Some(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                None => p.get("payload").cloned().unwrap_or(Value::Null),
            };
            Outcome::Ok {
                payload,
                payload_json,
            }
        } else {
            Outcome::Failed {
                code: p["error"]["code"]
                    .as_str()
                    .unwrap_or("UNAVAILABLE")
                    .to_owned(),
                message: p["error"]["message"]
                    .as_str()
                    .unwrap_or("node invoke failed")
                    .to_owned(),
                dispatched: true,
            }
        };
        let id = id.to_owned();
        route(&origin, InvokeMsg::Done { id, outcome }, fx);
        json!({"ok": true})
    }

    /// A connection on this shard closed: fail the invokes its node owed, cancel the ones it
    /// was waiting for.
    pub fn closed(&mut self, env: &Env, conn: u64, fx: &mut Fx) {
        let owed: Vec<String> = self
            .forwarded
            .iter()
            .filter(|(_, f)| f.node_conn == conn)
            .map(|(id, _)| id.clone())
            .collect();
        for id in owed {
            let Some(f) = self.forwarded.remove(&id) else {
                continue;
            };
            let outcome = Outcome::Failed {
                code: "DISCONNECTED".into(),
                message: "node disconnected".into(),
                dispatched: true,
            };
            route(&f.origin, InvokeMsg::Done { id, outcome }, fx);
        }
        let waiting: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.caller.is_conn(env.shard, conn))
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            if let Some(p) = self.pending.remove(&id) {
                let cancel = InvokeMsg::Cancel {
                    id,
                    node_id: p.node_id,
                };
                route(&p.node, cancel, fx);
            }
        }
    }

    /// Host `host` left the cluster: invokes waiting on its nodes fail now (as when a node
    /// disconnects), and requests its callers sent here are forgotten — nobody would hear
    /// the answers.
    pub fn host_gone(&mut self, host: &str, fx: &mut Fx) {
        let waiting: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.node.host.as_deref() == Some(host))
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            let outcome = Outcome::Failed {
                code: "DISCONNECTED".into(),
                message: format!("node host {host} left the cluster"),
                dispatched: true,
            };
            self.finish(&id, outcome, fx);
        }
        self.forwarded
            .retain(|_, f| f.origin.host.as_deref() != Some(host));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_CONN: u64 = 7;

    fn env(shard: usize) -> Env<'static> {
        Env {
            shard,
            conn_live: &|c| c == NODE_CONN,
        }
    }

    fn request(timeout_ms: u64) -> Request {
        Request {
            node_id: "n1".into(),
            node_host: None,
            node_shard: 1,
            node_conn: NODE_CONN,
            command: "system.run".into(),
            params: Some(json!({"cmd": "ls"})),
            timeout_ms,
            idempotency_key: "k".into(),
            session_key: None,
        }
    }

    fn caller() -> Caller {
        Caller::conn(0, 3, "r1")
    }

    /// Starts an invoke on shard 0 and delivers it on shard 1; returns the timer's resume
    /// and the invoke id.
    fn started(a: &mut Invokes, b: &mut Invokes) -> (InvokeMsg, String) {
        let mut fx = Fx::default();
        a.start(&env(0), caller(), request(5_000), &mut fx);
        let mut it = fx.0.into_iter();
        let Some(Effect::Timer(5_000, timer)) = it.next() else {
            panic!("deadline first")
        };
        let Some(Effect::Route(1, req)) = it.next() else {
            panic!("request to the node's shard")
        };
        let InvokeMsg::Request { id, .. } = &req else {
            panic!()
        };
        let id = id.clone();
        let mut fx = Fx::default();
        b.resume(&env(1), req, &mut fx);
        let [Effect::Event(NODE_CONN, ev)] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(ev.name, "node.invoke.request");
        (timer, id)
    }

    fn only_route(fx: Fx) -> (usize, InvokeMsg) {
        let mut v = fx.0;
        assert_eq!(v.len(), 1, "{v:?}");
        match v.pop() {
            Some(Effect::Route(s, m)) => (s, m),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_result_reaches_the_caller_and_the_deadline_then_does_nothing() {
        let (mut a, mut b) = (Invokes::default(), Invokes::default());
        let (timer, id) = started(&mut a, &mut b);
        let mut fx = Fx::default();
        // Another connection cannot answer for the node.
        let ans = b.result(99, &json!({"id": id, "ok": true}), &mut fx);
        assert_eq!(ans["ignored"], true);
        assert!(fx.is_empty());
        let ans = b.result(
            NODE_CONN,
            &json!({"id": id, "ok": true, "payloadJSON": "{\"x\":1}"}),
            &mut fx,
        );
        assert_eq!(ans, json!({"ok": true}));
        let (to, done) = only_route(fx);
        assert_eq!(to, 0);
        let mut fx = Fx::default();
        a.resume(&env(0), done, &mut fx);
        let [Effect::Reply(c, Ok(v))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(c, &caller());
        assert_eq!(v["payload"], json!({"x": 1}));
        let mut fx = Fx::default();
        a.resume(&env(0), timer, &mut fx);
        assert!(fx.is_empty(), "a stale deadline does nothing: {fx:?}");
    }

    #[test]
    fn the_deadline_fails_the_caller_and_cancels_on_the_node() {
        let (mut a, mut b) = (Invokes::default(), Invokes::default());
        let (timer, id) = started(&mut a, &mut b);
        let mut fx = Fx::default();
        a.resume(&env(0), timer, &mut fx);
        let mut it = fx.0.into_iter();
        let Some(Effect::Reply(_, Err(e))) = it.next() else {
            panic!()
        };
        assert!(e.message.starts_with("TIMEOUT"), "{}", e.message);
        let Some(Effect::Route(1, cancel)) = it.next() else {
            panic!()
        };
        let mut fx = Fx::default();
        b.resume(&env(1), cancel, &mut fx);
        let [Effect::Event(NODE_CONN, ev)] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(ev.name, "node.invoke.cancel");
        // A late result is ignored.
        let mut fx = Fx::default();
        let ans = b.result(NODE_CONN, &json!({"id": id, "ok": true}), &mut fx);
        assert_eq!(ans["ignored"], true);
    }

    #[test]
    fn a_node_that_is_gone_or_goes_fails_the_invoke() {
        let mut a = Invokes::default();
        let mut fx = Fx::default();
        let mut req = request(1_000);
        req.node_conn = 8; // not live
        a.start(&env(0), caller(), req, &mut fx);
        let Some(Effect::Route(_, msg)) = fx.0.pop() else {
            panic!()
        };
        let mut b = Invokes::default();
        let mut fx = Fx::default();
        b.resume(&env(1), msg, &mut fx);
        let (_, done) = only_route(fx);
        let mut fx = Fx::default();
        a.resume(&env(0), done, &mut fx);
        let [Effect::Reply(_, Err(e))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(e.message, "node not connected");
        assert_eq!(e.details.as_ref().unwrap()["code"], "NOT_CONNECTED");

        let (mut a, mut b) = (Invokes::default(), Invokes::default());
        let (_, _) = started(&mut a, &mut b);
        let mut fx = Fx::default();
        b.closed(&env(1), NODE_CONN, &mut fx);
        let (_, done) = only_route(fx);
        let mut fx = Fx::default();
        a.resume(&env(0), done, &mut fx);
        let [Effect::Reply(_, Err(e))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert!(e.message.starts_with("DISCONNECTED"), "{}", e.message);
    }

    #[test]
    fn a_caller_that_goes_away_cancels_on_the_node() {
        let (mut a, mut b) = (Invokes::default(), Invokes::default());
        let (_, _) = started(&mut a, &mut b);
        let mut fx = Fx::default();
        a.closed(&env(0), 3, &mut fx);
        let (to, cancel) = only_route(fx);
        assert_eq!(to, 1);
        let mut fx = Fx::default();
        b.resume(&env(1), cancel, &mut fx);
        assert!(
            matches!(&fx.0[..], [Effect::Event(NODE_CONN, ev)] if ev.name == "node.invoke.cancel")
        );
        // The same connection id on another shard is another caller.
        let (mut a, mut b) = (Invokes::default(), Invokes::default());
        let (_, _) = started(&mut a, &mut b);
        let mut fx = Fx::default();
        a.closed(&env(1), 3, &mut fx);
        assert!(fx.is_empty());
    }

    fn only_remote(fx: Fx) -> Remote {
        let mut v = fx.0;
        assert_eq!(v.len(), 1, "{v:?}");
        match v.pop() {
            Some(Effect::Do(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_node_on_another_host_is_reached_through_the_link_both_ways() {
        let (mut a, mut b) = (Invokes::default(), Invokes::default());
        let mut req = request(5_000);
        req.node_host = Some("host-c".into());
        let mut fx = Fx::default();
        a.start(&env(0), caller(), req, &mut fx);
        let out = fx.0.pop();
        let Some(Effect::Do(Remote {
            host,
            shard: 1,
            msg,
        })) = out
        else {
            panic!("{out:?}")
        };
        assert_eq!(&*host, "host-c");
        // The link on host-c delivers it with the origin seen from there.
        let InvokeMsg::Request {
            id,
            node_conn,
            node_id,
            event,
            ..
        } = msg
        else {
            panic!()
        };
        let arrived = InvokeMsg::Request {
            id: id.clone(),
            origin: Place {
                host: Some("host-a".into()),
                shard: 0,
            },
            node_conn,
            node_id,
            event,
        };
        let mut fx = Fx::default();
        b.resume(&env(1), arrived, &mut fx);
        assert!(matches!(&fx.0[..], [Effect::Event(NODE_CONN, _)]), "{fx:?}");
        let mut fx = Fx::default();
        b.result(
            NODE_CONN,
            &json!({"id": id, "ok": true, "payload": 5}),
            &mut fx,
        );
        let back = only_remote(fx);
        assert_eq!((&*back.host, back.shard), ("host-a", 0));
        let mut fx = Fx::default();
        a.resume(&env(0), back.msg, &mut fx);
        let [Effect::Reply(_, Ok(v))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(v["payload"], 5);
    }

    #[test]
    fn a_lost_host_fails_what_waits_on_its_nodes_and_forgets_its_callers() {
        let mut a = Invokes::default();
        let mut req = request(5_000);
        req.node_host = Some("host-c".into());
        let mut fx = Fx::default();
        a.start(&env(0), caller(), req, &mut fx);
        // An invoke on a local node is untouched.
        a.start(
            &env(0),
            Caller::conn(0, 4, "r2"),
            request(5_000),
            &mut Fx::default(),
        );
        let mut fx = Fx::default();
        a.host_gone("host-c", &mut fx);
        let [Effect::Reply(c, Err(e))] = &fx.0[..] else {
            panic!("{fx:?}")
        };
        assert_eq!(c, &caller());
        assert!(e.message.starts_with("DISCONNECTED"), "{}", e.message);
        assert_eq!(a.pending(), 1);

        let mut b = Invokes::default();
        let mut fx = Fx::default();
        b.resume(
            &env(1),
            InvokeMsg::Request {
                id: "x".into(),
                origin: Place {
                    host: Some("host-a".into()),
                    shard: 0,
                },
                node_conn: NODE_CONN,
                node_id: "n1".into(),
                event: Arc::new(EventTemplate::new("node.invoke.request", &json!({}), None)),
            },
            &mut fx,
        );
        b.host_gone("host-a", &mut Fx::default());
        let mut fx = Fx::default();
        let ans = b.result(NODE_CONN, &json!({"id": "x", "ok": true}), &mut fx);
        assert_eq!(ans["ignored"], true, "nobody is waiting any more");
        assert!(fx.is_empty());
    }
}
