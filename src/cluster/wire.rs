//! What hosts say to each other on NATS, and how it is encoded. Pure functions: the link
//! thread publishes what these produce and hands what they decode to the shards.
//!
//! An event travels as `<meta JSON>\n<head>\n<tail>`: the template's two encoded pieces go as
//! they are (JSON never holds a raw line break), so the receiving host fans out the very bytes
//! the origin encoded and parses nothing but the small meta line. Everything else is JSON.
//! Whatever arrives is checked before a shard sees it; a malformed message is dropped and
//! counted, never delivered half-understood.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    nodes::{
        invoke::{InvokeMsg, Outcome, Place, Remote},
        registry::{NodeDelta, NodeInfo},
    },
    proto::frame::{EventMeta, EventTemplate, LiveKey},
    state::presence::{Delta, Entry},
};

/// The subjects of one cluster (`<prefix>.…`).
#[derive(Debug, Clone)]
pub struct Subjects {
    pub events: String,
    pub presence: String,
    pub beats: String,
    pub nodes: String,
    pub runs: String,
    /// The session record's subjects start with this (`.<token>` follows).
    pub sessions: String,
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Subjects {
            events: format!("{prefix}.events"),
            presence: format!("{prefix}.presence"),
            beats: format!("{prefix}.beats"),
            nodes: format!("{prefix}.nodes"),
            runs: format!("{prefix}.runs"),
            sessions: format!("{prefix}.sess"),
            prefix: prefix.to_owned(),
        }
    }

    /// The subject only `host` listens on (messages addressed to it: invoke traffic).
    pub fn host(&self, host: &str) -> String {
        format!("{}.host.{host}", self.prefix)
    }
}

/// A session's token in subjects and key-value keys: the FNV-1a hash of its key in hex. Keys
/// may hold characters subjects cannot; two keys sharing a token share an owner host and a
/// subject, which is harmless.
pub fn session_token(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[derive(Debug, Serialize, Deserialize)]
struct EventHead {
    /// Origin host.
    o: String,
    /// Event name.
    n: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<Live>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nd: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    t: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Live {
    r: String,
    e: String,
    /// The replacement frame's pieces (`head`, `tail`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<(String, String)>,
}

/// Encodes an event for the other hosts. `None` for an event whose pieces are not UTF-8
/// (never produced by this crate's encoder).
pub fn encode_event(origin: &str, ev: &EventTemplate) -> Option<Vec<u8>> {
    let m = &ev.meta;
    let live = match &m.live {
        Some(l) => Some(Live {
            r: l.run_id.to_string(),
            e: l.event.to_owned(),
            p: match &l.replace {
                Some(r) => {
                    let (h, t) = r.pieces();
                    Some((
                        std::str::from_utf8(h).ok()?.to_owned(),
                        std::str::from_utf8(t).ok()?.to_owned(),
                    ))
                }
                None => None,
            },
        }),
        None => None,
    };
    let head = EventHead {
        o: origin.to_owned(),
        n: ev.name.clone(),
        s: m.session.as_deref().map(str::to_owned),
        d: m.drop_if_slow,
        l: live,
        e: m.ends_run.as_deref().map(str::to_owned),
        nd: m.node.as_deref().map(str::to_owned),
        t: m.tool_events,
    };
    let (h, t) = ev.pieces();
    let mut out = serde_json::to_vec(&head).ok()?;
    out.reserve(h.len() + t.len() + 2);
    out.push(b'\n');
    out.extend_from_slice(h);
    out.push(b'\n');
    out.extend_from_slice(t);
    Some(out)
}

/// Decodes an event from another host: its origin and the template (the `exclude` rule names
/// a connection of the origin host, so it does not travel).
pub fn decode_event(bytes: &[u8]) -> Option<(String, EventTemplate)> {
    let mut parts = bytes.splitn(3, |&b| b == b'\n');
    let (meta, head, tail) = (parts.next()?, parts.next()?, parts.next()?);
    let m: EventHead = serde_json::from_slice(meta).ok()?;
    let live = match m.l {
        Some(l) => {
            // Coalescing keys name the event as a `&'static str`; only the two kinds the
            // chat owner emits exist.
            let event = match l.e.as_str() {
                "chat" => "chat",
                "agent" => "agent",
                _ => return None,
            };
            let replace = match l.p {
                Some((h, t)) => Some(Arc::new(EventTemplate::from_pieces(
                    &m.n,
                    h.as_bytes(),
                    t.as_bytes(),
                    EventMeta::default(),
                )?)),
                None => None,
            };
            Some(LiveKey {
                run_id: l.r.into(),
                event,
                replace,
            })
        }
        None => None,
    };
    let meta = EventMeta {
        session: m.s.map(Into::into),
        drop_if_slow: m.d,
        live,
        ends_run: m.e.map(Into::into),
        node: m.nd.map(Into::into),
        exclude: None,
        tool_events: m.t,
    };
    let ev = EventTemplate::from_pieces(&m.n, head, tail, meta)?;
    Some((m.o, ev))
}

/// Presence changes of one host: one delta, or its whole table (a snapshot for a peer that
/// joined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceMsg {
    pub o: String,
    pub entries: Vec<PresenceEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub key: String,
    pub fields: Entry,
    pub ts: u64,
}

/// Longest presence key accepted from another host (a connection id or device id is far
/// shorter).
pub const MAX_PRESENCE_KEY: usize = 256;

impl PresenceMsg {
    /// One delta of `origin`.
    pub fn delta(origin: &str, d: &Delta) -> Self {
        let Delta::Upsert {
            key,
            fields,
            now_ms,
        } = d;
        PresenceMsg {
            o: origin.to_owned(),
            entries: vec![PresenceEntry {
                key: key.clone(),
                fields: fields.clone(),
                ts: *now_ms,
            }],
        }
    }

    /// The deltas that apply it; entries with an oversized key are left out.
    pub fn deltas(self) -> impl Iterator<Item = Delta> {
        self.entries
            .into_iter()
            .filter(|e| !e.key.is_empty() && e.key.len() <= MAX_PRESENCE_KEY)
            .map(|e| Delta::Upsert {
                key: e.key,
                fields: e.fields,
                now_ms: e.ts,
            })
    }
}

/// One device in the shared record (a JetStream key-value entry keyed by device id): the
/// device as paired, or a tombstone; `o` names the host that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub o: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::pairing::PairedDevice>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl DeviceRecord {
    /// The key and record for a change of `origin`.
    pub fn of(origin: &str, d: &crate::store::DeviceDelta) -> (String, DeviceRecord) {
        use crate::store::DeviceDelta;
        match d {
            DeviceDelta::Upsert(dev) => (
                dev.device_id.clone(),
                DeviceRecord {
                    o: origin.to_owned(),
                    device: Some((**dev).clone()),
                    removed: false,
                },
            ),
            DeviceDelta::Removed(id) => (
                id.clone(),
                DeviceRecord {
                    o: origin.to_owned(),
                    device: None,
                    removed: true,
                },
            ),
        }
    }

    /// The change to apply for key `key`; `None` when the record contradicts its key.
    pub fn into_delta(self, key: &str) -> Option<crate::store::DeviceDelta> {
        use crate::store::DeviceDelta;
        match (self.removed, self.device) {
            (true, _) => Some(DeviceDelta::Removed(key.to_owned())),
            (false, Some(d)) if d.device_id == key => Some(DeviceDelta::Upsert(Arc::new(d))),
            _ => None,
        }
    }
}

/// Node registry changes of one host (one change, or all its nodes for a peer that joined).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeMsg {
    pub o: String,
    #[serde(default)]
    pub up: Vec<NodeInfo>,
    /// `(node id, connection id, at ms)`.
    #[serde(default)]
    pub down: Vec<(String, String, u64)>,
}

impl NodeMsg {
    pub fn delta(origin: &str, d: &NodeDelta) -> Self {
        let mut m = NodeMsg {
            o: origin.to_owned(),
            up: Vec::new(),
            down: Vec::new(),
        };
        match d {
            NodeDelta::Up(n) => m.up.push((**n).clone()),
            NodeDelta::Down {
                node_id,
                conn_id,
                at_ms,
            } => m.down.push((node_id.clone(), conn_id.clone(), *at_ms)),
        }
        m
    }

    /// The deltas to apply on this host: every node marked as living on the origin host.
    pub fn deltas(self) -> Vec<NodeDelta> {
        let host: Arc<str> = self.o.into();
        let mut out: Vec<NodeDelta> = self
            .up
            .into_iter()
            .map(|mut n| {
                n.host = Some(host.clone());
                NodeDelta::Up(Arc::new(n))
            })
            .collect();
        out.extend(
            self.down
                .into_iter()
                .map(|(node_id, conn_id, at_ms)| NodeDelta::Down {
                    node_id,
                    conn_id,
                    at_ms,
                }),
        );
        out
    }
}

/// A run-index change of a session owner on some host (`<prefix>.runs`), so `agent.wait`
/// and `sessions.abort {runId}` find a run on any host.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
enum NoteWire {
    Started {
        o: String,
        run: String,
        key: String,
        at: u64,
    },
    Ended {
        o: String,
        run: String,
        status: String,
        started: u64,
        ended: u64,
        error: Option<String>,
        stop: String,
    },
}

/// Longest error text and stop reason a run note carries (longer ones are cut).
/// (A run id is as long as the idempotency key its origin accepted — the protocol bounds it
/// only by the frame — and NATS's payload limit bounds the note.)
const MAX_RUN_ERROR: usize = 4096;
const MAX_STOP_REASON: usize = 64;

/// `s` cut to at most `max` bytes on a character boundary.
fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

pub fn encode_note(origin: &str, note: &crate::chat::runs::RunNote) -> Option<Vec<u8>> {
    use crate::chat::runs::RunNote;
    let o = origin.to_owned();
    let w = match note {
        RunNote::Started {
            run_id,
            key,
            started_at,
        } => NoteWire::Started {
            o,
            run: run_id.to_string(),
            key: key.to_string(),
            at: *started_at,
        },
        RunNote::Ended(s) => NoteWire::Ended {
            o,
            run: s.run_id.to_string(),
            status: s.status.to_owned(),
            started: s.started_at,
            ended: s.ended_at,
            error: s.error.clone(),
            stop: s.stop_reason.clone(),
        },
    };
    serde_json::to_vec(&w).ok()
}

/// Decodes a run note: its origin host and the note; `None` for anything malformed or over
/// the bounds.
pub fn decode_note(bytes: &[u8]) -> Option<(String, crate::chat::runs::RunNote)> {
    use crate::chat::runs::{RunNote, RunSummary};
    let w: NoteWire = serde_json::from_slice(bytes).ok()?;
    match w {
        NoteWire::Started { o, run, key, at } => {
            (key.len() <= crate::chat::key::MAX_KEY_LEN).then(|| {
                (
                    o,
                    RunNote::Started {
                        run_id: run.into(),
                        key: key.into(),
                        started_at: at,
                    },
                )
            })
        }
        NoteWire::Ended {
            o,
            run,
            status,
            started,
            ended,
            error,
            stop,
        } => Some((
            o,
            RunNote::Ended(Arc::new(RunSummary {
                run_id: run.into(),
                status: crate::chat::runs::status_named(&status),
                started_at: started,
                ended_at: ended,
                error: error.map(|e| clip(e, MAX_RUN_ERROR)),
                stop_reason: clip(stop, MAX_STOP_REASON),
            })),
        )),
    }
}

/// Messages addressed to one host: `node.invoke` traffic (`Timeout` never travels: deadlines
/// are the caller's own), response frames for its connections, and approval calls for the
/// host holding the approvals table.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
enum DirectWire {
    Request {
        o: String,
        to: usize,
        from: usize,
        id: String,
        conn: u64,
        node: String,
        head: String,
        tail: String,
    },
    Cancel {
        o: String,
        to: usize,
        id: String,
        node: String,
    },
    Done {
        o: String,
        to: usize,
        id: String,
        outcome: Outcome,
    },
    Reply {
        to: usize,
        conn: u64,
        frame: String,
    },
    Approval {
        o: String,
        from: usize,
        conn: u64,
        req: String,
        op: crate::approvals::ApprovalOp,
    },
    Session {
        o: String,
        from: usize,
        conn: u64,
        req: String,
        key: String,
        agent: String,
        op: crate::chat::SessionOp,
    },
    Cron {
        o: String,
        from: usize,
        conn: u64,
        req: String,
        method: String,
        params: serde_json::Value,
    },
}

/// A message addressed to this host, decoded.
#[derive(Debug)]
pub enum Direct {
    /// For the invokes of shard `.0`.
    Invoke(usize, InvokeMsg),
    /// A response frame for connection `conn` of shard `shard`.
    Reply {
        shard: usize,
        conn: u64,
        frame: Vec<u8>,
    },
    /// For this host's approvals owner; the caller is a connection of the sending host.
    Approval(crate::approvals::ApprovalCall),
    /// For the owner of a session this host owns; the caller is a connection of the sender.
    Session(crate::chat::SessionCall),
    /// For this host's cron service (it runs cron for the cluster).
    Cron(crate::cron::service::CronCall),
}

/// Encodes a response frame for connection `conn` of `shard` on another host.
pub fn encode_reply(shard: usize, conn: u64, frame: &[u8]) -> Option<Vec<u8>> {
    serde_json::to_vec(&DirectWire::Reply {
        to: shard,
        conn,
        frame: std::str::from_utf8(frame).ok()?.to_owned(),
    })
    .ok()
}

/// Encodes an approval call of a connection of `origin` for the approvals host. Only a
/// connection's call can travel (an in-process waiter has no address on another host).
pub fn encode_approval(origin: &str, call: &crate::approvals::ApprovalCall) -> Option<Vec<u8>> {
    let (from, conn, req) = conn_address(&call.caller)?;
    serde_json::to_vec(&DirectWire::Approval {
        o: origin.to_owned(),
        from,
        conn,
        req,
        op: call.op.clone(),
    })
    .ok()
}

/// A connection caller's address (shard, connection, request id); other callers have none
/// on another host.
fn conn_address(caller: &crate::effects::Caller) -> Option<(usize, u64, String)> {
    match caller {
        crate::effects::Caller::Conn {
            shard,
            conn,
            req_id,
        } => Some((*shard, *conn, req_id.clone())),
        _ => None,
    }
}

/// Encodes a session call of a connection of `origin` for the session's owner host (as
/// approvals: an in-process waiter or a worker's call cannot travel).
pub fn encode_session(origin: &str, call: &crate::chat::SessionCall) -> Option<Vec<u8>> {
    let (from, conn, req) = conn_address(&call.caller)?;
    if matches!(call.op, crate::chat::SessionOp::Worker(_)) {
        return None;
    }
    serde_json::to_vec(&DirectWire::Session {
        o: origin.to_owned(),
        from,
        conn,
        req,
        key: call.key.canonical.clone(),
        agent: call.key.agent_id.clone(),
        op: call.op.clone(),
    })
    .ok()
}

/// Encodes a `cron.*` call of a connection of `origin` for the host that runs cron.
pub fn encode_cron(origin: &str, call: &crate::cron::service::CronCall) -> Option<Vec<u8>> {
    let (from, conn, req) = conn_address(&call.caller)?;
    serde_json::to_vec(&DirectWire::Cron {
        o: origin.to_owned(),
        from,
        conn,
        req,
        method: call.method.clone(),
        params: call.params.clone(),
    })
    .ok()
}

/// Encodes an invoke message of `origin` for its destination host; returns that host too.
pub fn encode_invoke(origin: &str, r: &Remote) -> Option<(Arc<str>, Vec<u8>)> {
    let (o, to) = (origin.to_owned(), r.shard);
    let w = match &r.msg {
        InvokeMsg::Request {
            id,
            origin: from,
            node_conn,
            node_id,
            event,
        } => {
            let (h, t) = event.pieces();
            DirectWire::Request {
                o,
                to,
                from: from.shard,
                id: id.clone(),
                conn: *node_conn,
                node: node_id.clone(),
                head: std::str::from_utf8(h).ok()?.to_owned(),
                tail: std::str::from_utf8(t).ok()?.to_owned(),
            }
        }
        InvokeMsg::Cancel { id, node_id } => DirectWire::Cancel {
            o,
            to,
            id: id.clone(),
            node: node_id.clone(),
        },
        InvokeMsg::Done { id, outcome } => DirectWire::Done {
            o,
            to,
            id: id.clone(),
            outcome: outcome.clone(),
        },
        InvokeMsg::Timeout { .. } => return None,
    };
    Some((r.host.clone(), serde_json::to_vec(&w).ok()?))
}

/// Decodes a message addressed to this host, for one of its `shards`; `None` for anything
/// malformed or out of range.
pub fn decode_direct(bytes: &[u8], shards: usize) -> Option<Direct> {
    let w: DirectWire = serde_json::from_slice(bytes).ok()?;
    let (to, msg) = match w {
        DirectWire::Request {
            o,
            to,
            from,
            id,
            conn,
            node,
            head,
            tail,
        } => {
            let event = EventTemplate::from_pieces(
                "node.invoke.request",
                head.as_bytes(),
                tail.as_bytes(),
                EventMeta::default(),
            )?;
            (
                to,
                InvokeMsg::Request {
                    id,
                    origin: Place {
                        host: Some(o.into()),
                        shard: from,
                    },
                    node_conn: conn,
                    node_id: node,
                    event: Arc::new(event),
                },
            )
        }
        DirectWire::Cancel { to, id, node, .. } => (to, InvokeMsg::Cancel { id, node_id: node }),
        DirectWire::Done {
            to, id, outcome, ..
        } => (to, InvokeMsg::Done { id, outcome }),
        DirectWire::Reply { to, conn, frame } => {
            let ok = to < shards && frame.starts_with("{\"type\":\"res\",");
            return ok.then(|| Direct::Reply {
                shard: to,
                conn,
                frame: frame.into_bytes(),
            });
        }
        DirectWire::Approval {
            o,
            from,
            conn,
            req,
            mut op,
        } => {
            if let crate::approvals::ApprovalOp::Request {
                from: requester, ..
            } = &mut op
            {
                // The requester is not a connection of this host: exclude nobody here.
                *requester = (usize::MAX, u64::MAX);
            }
            return Some(Direct::Approval(crate::approvals::ApprovalCall {
                caller: remote(o, from, conn, req),
                op,
            }));
        }
        DirectWire::Session {
            o,
            from,
            conn,
            req,
            key,
            agent,
            op,
        } => {
            // The key as its sender parsed it; parsed again here, so a forged one is refused
            // as it would be from a client of this host.
            let parsed = crate::chat::key::resolve(&key, Some(&agent), &agent).ok()?;
            if parsed.canonical != key || parsed.agent_id != agent {
                return None;
            }
            return Some(Direct::Session(crate::chat::SessionCall {
                caller: remote(o, from, conn, req),
                key: parsed,
                op,
            }));
        }
        DirectWire::Cron {
            o,
            from,
            conn,
            req,
            method,
            params,
        } => {
            // Only the methods the cron service serves (their params were checked by the
            // sender's schema, as a client's of this host would be).
            let known = crate::methods::cron::METHODS.contains(&method.as_str());
            return known.then(|| {
                Direct::Cron(crate::cron::service::CronCall {
                    caller: remote(o, from, conn, req),
                    method,
                    params,
                })
            });
        }
    };
    (to < shards).then_some(Direct::Invoke(to, msg))
}

/// A connection `conn` of shard `shard` of host `host`, asking with request `req`.
fn remote(host: String, shard: usize, conn: u64, req: String) -> crate::effects::Caller {
    crate::effects::Caller::Remote(Box::new(crate::effects::RemoteCaller {
        host: host.into(),
        shard,
        conn,
        req_id: req,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_crosses_byte_for_byte_with_its_rules() {
        let replace = EventTemplate::new("chat", &json!({"replace": true}), None);
        let ev = EventTemplate::new("chat", &json!({"text": "a\nb", "n": 1}), Some((3, 4)))
            .with_meta(EventMeta {
                session: Some("agent:main:main".into()),
                drop_if_slow: Some(true),
                live: Some(LiveKey {
                    run_id: "r1".into(),
                    event: "chat",
                    replace: Some(Arc::new(replace.clone())),
                }),
                ends_run: None,
                node: Some("n1".into()),
                exclude: Some((1, 7)),
                tool_events: true,
            });
        let bytes = encode_event("host-a", &ev).unwrap();
        let (origin, back) = decode_event(&bytes).unwrap();
        assert_eq!(origin, "host-a");
        assert_eq!(back.to_vec(Some(9)), ev.to_vec(Some(9)));
        assert_eq!(back.meta.exclude, None, "a connection of the origin host");
        let mut expected = ev.meta.clone();
        expected.exclude = None;
        assert_eq!(back.meta, expected);
        assert_eq!(
            back.meta.live.unwrap().replace.unwrap().to_vec(None),
            replace.to_vec(None)
        );
    }

    #[test]
    fn malformed_events_are_refused() {
        let ev = EventTemplate::new("tick", &json!({}), None);
        let good = encode_event("h", &ev).unwrap();
        assert!(decode_event(&good).is_some());
        for bad in [
            &b""[..],
            b"{}\n{\"type\":\"event\",\"event\":\"tick\",\"payload\":{}\n}",
            b"{\"o\":\"h\",\"n\":\"tock\"}\n{\"type\":\"event\",\"event\":\"tick\",\"payload\":{}\n}",
            b"{\"o\":\"h\",\"n\":\"tick\"}\n{\"type\":\"res\",\"id\":\"1\"}\n}",
            b"{\"o\":\"h\",\"n\":\"tick\"}\n{\"type\":\"event\",\"event\":\"tick\",\"payload\":{}\n",
            b"{\"o\":\"h\",\"n\":\"tick\",\"l\":{\"r\":\"x\",\"e\":\"other\"}}\n{\"type\":\"event\",\"event\":\"tick\",\"payload\":{}\n}",
            b"not json\nx\ny",
        ] {
            assert!(decode_event(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_session_call_travels_with_its_asker_and_a_forged_key_is_refused() {
        use crate::chat::{key::resolve, SendKind, SendReq, SessionCall, SessionOp};
        let call = SessionCall {
            caller: crate::effects::Caller::conn(1, 42, "req-7"),
            key: resolve("work", None, "main").unwrap(),
            op: SessionOp::Send(SendReq {
                queue: false,
                kind: SendKind::Agent,
                message: "hi".into(),
                run_id: "r1".into(),
                fingerprint: 99,
                key_given: true,
                reply_to: None,
            }),
        };
        let bytes = encode_session("host-b", &call).unwrap();
        let Some(Direct::Session(back)) = decode_direct(&bytes, 1) else {
            panic!("{}", String::from_utf8_lossy(&bytes))
        };
        assert_eq!(back.key, call.key);
        let crate::effects::Caller::Remote(r) = &back.caller else {
            panic!("{:?}", back.caller)
        };
        assert_eq!(
            (&*r.host, r.shard, r.conn, r.req_id.as_str()),
            ("host-b", 1, 42, "req-7")
        );
        let SessionOp::Send(s) = back.op else {
            panic!()
        };
        assert_eq!(
            (s.kind, s.run_id.as_str(), s.fingerprint),
            (SendKind::Agent, "r1", 99)
        );
        // An in-process caller has no address on another host.
        let internal = SessionCall {
            caller: crate::effects::Caller::Internal {
                shard: 0,
                waiter: crate::effects::Waiter::Cron(1),
            },
            ..call
        };
        assert!(encode_session("host-b", &internal).is_none());
        for key in [
            "AGENT:main:work",
            "agent:main:",
            "agent:other:work",
            "x".repeat(600).as_str(),
        ] {
            let forged = format!(
                r#"{{"k":"session","o":"h","from":0,"conn":1,"req":"r","key":"{key}","agent":"main","op":"Reset"}}"#
            );
            assert!(decode_direct(forged.as_bytes(), 1).is_none(), "{key}");
        }
    }

    #[test]
    fn run_notes_round_trip_and_are_bounded() {
        use crate::chat::runs::{RunNote, RunSummary};
        let ended = RunNote::Ended(Arc::new(RunSummary {
            run_id: "r1".into(),
            status: "interrupted",
            started_at: 1,
            ended_at: 2,
            error: Some("cut".into()),
            stop_reason: "error".into(),
        }));
        let (o, back) = decode_note(&encode_note("host-a", &ended).unwrap()).unwrap();
        assert_eq!(o, "host-a");
        let (RunNote::Ended(a), RunNote::Ended(b)) = (&ended, &back) else {
            panic!()
        };
        assert_eq!(a, b);
        let odd = br#"{"k":"ended","o":"h","run":"r","status":"weird","started":1,"ended":2,"error":null,"stop":"x"}"#;
        let Some((_, RunNote::Ended(s))) = decode_note(odd) else {
            panic!()
        };
        assert_eq!(s.status, "error", "an unknown status is an error");
        // A run id as long as a host accepts as an idempotency key crosses whole; a session
        // key over the protocol's bound does not cross at all.
        let long_run = "r".repeat(5_000);
        let started = format!(r#"{{"k":"started","o":"h","run":"{long_run}","key":"k","at":1}}"#);
        let Some((_, RunNote::Started { run_id, .. })) = decode_note(started.as_bytes()) else {
            panic!()
        };
        assert_eq!(&*run_id, long_run);
        let long_key = format!(
            r#"{{"k":"started","o":"h","run":"r","key":"{}","at":1}}"#,
            "k".repeat(crate::chat::key::MAX_KEY_LEN + 1)
        );
        assert!(decode_note(long_key.as_bytes()).is_none());
        // An error text over the bound is cut (on a character boundary), not refused.
        let long_error = format!(
            r#"{{"k":"ended","o":"h","run":"r","status":"error","started":1,"ended":2,"error":"{}","stop":"{}"}}"#,
            "é".repeat(MAX_RUN_ERROR),
            "s".repeat(1_000)
        );
        let Some((_, RunNote::Ended(s))) = decode_note(long_error.as_bytes()) else {
            panic!()
        };
        assert!(s.error.as_ref().unwrap().len() <= MAX_RUN_ERROR);
        assert_eq!(s.stop_reason.len(), MAX_STOP_REASON);
        assert!(decode_note(b"[]").is_none());
        let negative = br#"{"k":"started","o":"h","run":"r","key":"k","at":-1}"#;
        assert!(
            decode_note(negative).is_none(),
            "a negative time is malformed"
        );
    }

    #[test]
    fn session_tokens_are_stable_and_subject_safe() {
        assert_eq!(
            session_token("agent:main:main"),
            session_token("agent:main:main")
        );
        assert_ne!(session_token("agent:main:a"), session_token("agent:main:b"));
        let t = session_token("agent:main:with.dots *and> spaces");
        assert_eq!(t.len(), 16);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn presence_messages_round_trip_and_bound_keys() {
        let d = Delta::Upsert {
            key: "conn-1".into(),
            fields: json!({"mode": "ui"}).as_object().unwrap().clone(),
            now_ms: 5,
        };
        let m = PresenceMsg::delta("a", &d);
        let back: PresenceMsg = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(back.clone().deltas().collect::<Vec<_>>(), vec![d]);
        let mut long = back;
        long.entries[0].key = "k".repeat(MAX_PRESENCE_KEY + 1);
        assert_eq!(long.deltas().count(), 0);
    }

    #[test]
    fn invoke_traffic_names_its_origin_and_stays_in_range() {
        let ev = EventTemplate::new("node.invoke.request", &json!({"id": "i1"}), None);
        let r = Remote {
            host: "host-c".into(),
            shard: 1,
            msg: InvokeMsg::Request {
                id: "i1".into(),
                origin: Place::here(0),
                node_conn: 9,
                node_id: "n".into(),
                event: Arc::new(ev.clone()),
            },
        };
        let (to_host, bytes) = encode_invoke("host-a", &r).unwrap();
        assert_eq!(&*to_host, "host-c");
        let Some(Direct::Invoke(shard, msg)) = decode_direct(&bytes, 2) else {
            panic!()
        };
        assert_eq!(shard, 1);
        let InvokeMsg::Request {
            origin,
            node_conn,
            event,
            ..
        } = msg
        else {
            panic!()
        };
        assert_eq!(
            origin,
            Place {
                host: Some("host-a".into()),
                shard: 0
            }
        );
        assert_eq!(node_conn, 9);
        assert_eq!(event.to_vec(None), ev.to_vec(None));
        assert!(
            decode_direct(&bytes, 1).is_none(),
            "no shard 1 on a one-shard host"
        );
        let done = Remote {
            host: "host-a".into(),
            shard: 0,
            msg: InvokeMsg::Done {
                id: "i1".into(),
                outcome: Outcome::Failed {
                    code: "X".into(),
                    message: "m".into(),
                    dispatched: true,
                },
            },
        };
        let (_, bytes) = encode_invoke("host-c", &done).unwrap();
        assert!(matches!(
            decode_direct(&bytes, 2),
            Some(Direct::Invoke(0, InvokeMsg::Done { .. }))
        ));
        assert!(decode_direct(b"{\"k\":\"request\"}", 2).is_none());
        // Replies must be response frames, for a shard that exists.
        let reply = encode_reply(1, 7, b"{\"type\":\"res\",\"id\":\"1\",\"ok\":true}").unwrap();
        assert!(matches!(
            decode_direct(&reply, 2),
            Some(Direct::Reply {
                shard: 1,
                conn: 7,
                ..
            })
        ));
        assert!(decode_direct(&reply, 1).is_none());
        let junk = encode_reply(0, 7, b"{\"type\":\"event\"}").unwrap();
        assert!(decode_direct(&junk, 2).is_none());
    }
}
