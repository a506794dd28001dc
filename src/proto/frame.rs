//! Frame codec: inbound text → JSON value (simd-json over a reused scratch buffer), outbound
//! `res` frames, and `event` frames encoded once as a template with a `seq` slot so that a
//! broadcast costs one encode however many connections receive it.

use std::{fmt::Write as _, io::Write as _};

use serde::Serialize;
use serde_json::Value;

use super::errors::ErrorShape;

/// The inbound frame parser (one per shard).
///
/// The frame must end up as a `serde_json::Value` (jsonschema validates that type, handlers
/// read it). Measured in `benches/hot_paths.rs`, serde_json builds that value faster than
/// simd-json does (small frames ~0.55 vs ~0.72 µs; 1 MB frames ~0.2 vs ~0.37 ms, through
/// simd-json's serde path or its tape), so the hot path uses serde_json; the simd-json
/// variants stay here for the benches.
#[derive(Default)]
pub struct Parser {
    scratch: Vec<u8>,
}

impl Parser {
    /// Parses one text frame; `None` when it is not JSON.
    pub fn parse(&mut self, text: &[u8]) -> Option<Value> {
        serde_json::from_slice(text).ok()
    }

    /// simd-json's serde deserializer over a reused scratch copy (benchmark alternative).
    pub fn parse_simd(&mut self, text: &[u8]) -> Option<Value> {
        self.scratch.clear();
        self.scratch.extend_from_slice(text);
        let v = simd_json::serde::from_slice::<Value>(&mut self.scratch).ok();
        if self.scratch.capacity() > 1 << 20 {
            self.scratch = Vec::new();
        }
        v
    }
}

/// simd-json's tape, converted straight into a `serde_json::Value` (for comparison in the
/// benches).
pub fn parse_simd_tape(scratch: &mut Vec<u8>, text: &[u8]) -> Option<Value> {
    use simd_json::{BorrowedValue, StaticNode};
    fn conv(v: &BorrowedValue) -> Value {
        match v {
            BorrowedValue::Static(StaticNode::Null) => Value::Null,
            BorrowedValue::Static(StaticNode::Bool(b)) => Value::Bool(*b),
            BorrowedValue::Static(StaticNode::I64(n)) => Value::from(*n),
            BorrowedValue::Static(StaticNode::U64(n)) => Value::from(*n),
            BorrowedValue::Static(StaticNode::F64(f)) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            BorrowedValue::String(s) => Value::String(s.to_string()),
            BorrowedValue::Array(a) => Value::Array(a.iter().map(conv).collect()),
            BorrowedValue::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.to_string(), conv(v))).collect())
            }
        }
    }
    scratch.clear();
    scratch.extend_from_slice(text);
    simd_json::to_borrowed_value(scratch).ok().map(|v| conv(&v))
}

/// Encodes `{"type":"res","id":…,"ok":true,"payload":…}`.
pub fn res_ok(id: &str, payload: &impl Serialize) -> Vec<u8> {
    res(id, b",\"ok\":true,\"payload\":", payload)
}

/// The request id of a response frame this module encoded, and whether it is `ok:true`.
pub fn res_id(frame: &[u8]) -> Option<(String, bool)> {
    let rest = frame.strip_prefix(b"{\"type\":\"res\",\"id\":")?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<String>();
    let id = values.next()?.ok()?;
    let after = &rest[values.byte_offset()..];
    Some((id, after.starts_with(b",\"ok\":true")))
}

/// Encodes `{"type":"res","id":…,"ok":false,"error":…}`.
pub fn res_err(id: &str, error: &ErrorShape) -> Vec<u8> {
    res(id, b",\"ok\":false,\"error\":", error)
}

/// Encodes `{"type":"res","id":…,"ok":false,"payload":…,"error":…}`: a failed terminal result
/// that still describes the run (the original's answer to a retry of a failed run).
pub fn res_err_with_payload(id: &str, payload: &impl Serialize, error: &ErrorShape) -> Vec<u8> {
    let mut out = res(id, b",\"ok\":false,\"payload\":", payload);
    out.pop();
    out.extend_from_slice(b",\"error\":");
    serde_json::to_writer(&mut out, error).expect("error encodes");
    out.push(b'}');
    out
}

fn res(id: &str, middle: &[u8], body: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"type\":\"res\",\"id\":");
    serde_json::to_writer(&mut out, id).expect("string encodes");
    out.extend_from_slice(middle);
    serde_json::to_writer(&mut out, body).expect("body encodes");
    out.push(b'}');
    out
}

/// An event encoded once: `head` is `{"type":"event","event":…,"payload":…`, `tail` is the
/// rest (`,"stateVersion":…}` or `}`); a recipient's frame is `head [,"seq":N] tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTemplate {
    pub name: String,
    head: Vec<u8>,
    tail: Vec<u8>,
    /// Delivery rules beyond the event name.
    pub meta: EventMeta,
}

/// Per-event delivery rules: session-scoped filtering, the drop rule, live-text coalescing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventMeta {
    /// Canonical key of the session the event belongs to (session-scoped delivery, §6.3).
    pub session: Option<std::sync::Arc<str>>,
    /// Overrides the name-based `dropIfSlow` rule (chat deltas drop, chat finals never do).
    pub drop_if_slow: Option<bool>,
    /// Live text of a run: for a slow client only the newest such frame per key is kept.
    pub live: Option<LiveKey>,
    /// This event ends a run's live text: frames still held for it are discarded.
    pub ends_run: Option<std::sync::Arc<str>>,
    /// Also deliver it (without `seq`) to the connection of this node.
    pub node: Option<std::sync::Arc<str>>,
    /// Not to this connection (`(shard, connection)`): the requester of an approval.
    pub exclude: Option<(usize, u64)>,
    /// Structured tool lifecycle: only to connections that declared the `tool-events` cap.
    pub tool_events: bool,
}

/// Identifies a stream of live-text frames that replace each other for slow clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKey {
    pub run_id: std::sync::Arc<str>,
    pub event: &'static str,
    /// The frame to send in place of the held ones (a `replace: true` delta carrying the whole
    /// text); `None` when the event itself carries the whole text.
    pub replace: Option<std::sync::Arc<EventTemplate>>,
}

impl EventTemplate {
    pub fn new(name: &str, payload: &impl Serialize, state_version: Option<(u64, u64)>) -> Self {
        let mut head = Vec::with_capacity(64);
        head.extend_from_slice(b"{\"type\":\"event\",\"event\":");
        serde_json::to_writer(&mut head, name).expect("string encodes");
        head.extend_from_slice(b",\"payload\":");
        serde_json::to_writer(&mut head, payload).expect("payload encodes");
        let mut tail = Vec::new();
        if let Some((presence, health)) = state_version {
            write!(
                tail,
                ",\"stateVersion\":{{\"presence\":{presence},\"health\":{health}}}"
            )
            .expect("vec write");
        }
        tail.push(b'}');
        EventTemplate {
            name: name.to_owned(),
            head,
            tail,
            meta: EventMeta::default(),
        }
    }

    /// The encoded frame's two pieces around the `seq` slot (the cluster link sends them as
    /// they are, so a remote host fans out the same bytes without re-encoding).
    pub fn pieces(&self) -> (&[u8], &[u8]) {
        (&self.head, &self.tail)
    }

    /// Rebuilds a template from [`EventTemplate::pieces`] received from another host. The
    /// pieces must have this module's shape (`{"type":"event","event":` … and a tail ending
    /// in `}`, no line breaks), or `None`: a malformed message from the cluster never reaches
    /// a client.
    pub fn from_pieces(name: &str, head: &[u8], tail: &[u8], meta: EventMeta) -> Option<Self> {
        let mut expect = Vec::with_capacity(32 + name.len());
        expect.extend_from_slice(b"{\"type\":\"event\",\"event\":");
        serde_json::to_writer(&mut expect, name).ok()?;
        expect.extend_from_slice(b",\"payload\":");
        let well_formed = head.starts_with(&expect)
            && head.len() > expect.len()
            && tail.ends_with(b"}")
            && !head.contains(&b'\n')
            && !tail.contains(&b'\n');
        well_formed.then(|| EventTemplate {
            name: name.to_owned(),
            head: head.to_vec(),
            tail: tail.to_vec(),
            meta,
        })
    }

    pub fn with_meta(mut self, meta: EventMeta) -> Self {
        self.meta = meta;
        self
    }

    /// Length of the frame for a given seq (for buffer accounting before writing).
    pub fn len_with_seq(&self, seq: Option<u64>) -> usize {
        self.head.len() + self.tail.len() + seq.map_or(0, |s| 7 + digits(s))
    }

    /// Writes the three pieces.
    pub fn write_to(&self, out: &mut Vec<u8>, seq: Option<u64>) {
        out.extend_from_slice(&self.head);
        if let Some(seq) = seq {
            let mut buf = String::with_capacity(24);
            let _ = write!(buf, ",\"seq\":{seq}");
            out.extend_from_slice(buf.as_bytes());
        }
        out.extend_from_slice(&self.tail);
    }

    /// The frame's three pieces for a vectored write: head, the `seq` field (formatted into
    /// `seq_buf`, empty without a `seq`) and tail. One encoded template serves every recipient.
    pub fn parts<'a>(&'a self, seq: Option<u64>, seq_buf: &'a mut SeqBuf) -> [&'a [u8]; 3] {
        let seq_part = match seq {
            Some(s) => seq_buf.format(s),
            None => &[],
        };
        [&self.head, seq_part, &self.tail]
    }

    pub fn to_vec(&self, seq: Option<u64>) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len_with_seq(seq));
        self.write_to(&mut v, seq);
        v
    }
}

/// Stack room for `,"seq":<u64>`.
#[derive(Default)]
pub struct SeqBuf([u8; 28]);

impl SeqBuf {
    fn format(&mut self, seq: u64) -> &[u8] {
        const PREFIX: &[u8] = b",\"seq\":";
        self.0[..PREFIX.len()].copy_from_slice(PREFIX);
        let n = digits(seq);
        let mut v = seq;
        for i in (0..n).rev() {
            self.0[PREFIX.len() + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        &self.0[..PREFIX.len() + n]
    }
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_response_frame_names_its_request() {
        let ok = res_ok("a\"b", &json!({"x": 1}));
        assert_eq!(res_id(&ok), Some(("a\"b".to_owned(), true)));
        let err = res_err("7", &crate::proto::errors::ErrorShape::invalid("no"));
        assert_eq!(res_id(&err), Some(("7".to_owned(), false)));
        assert_eq!(res_id(b"{\"type\":\"event\"}"), None);
    }

    #[test]
    fn parts_join_to_the_copied_frame() {
        let ev = EventTemplate::new("tick", &json!({"ts": 1}), Some((3, 4)));
        for seq in [None, Some(0), Some(7), Some(10), Some(u64::MAX)] {
            let mut buf = SeqBuf::default();
            let joined: Vec<u8> = ev.parts(seq, &mut buf).concat();
            assert_eq!(joined, ev.to_vec(seq), "seq {seq:?}");
            assert_eq!(joined.len(), ev.len_with_seq(seq));
        }
    }

    #[test]
    fn template_with_and_without_seq() {
        let t = EventTemplate::new("tick", &json!({"ts": 5}), None);
        let with = t.to_vec(Some(12));
        assert_eq!(with.len(), t.len_with_seq(Some(12)));
        let v: Value = serde_json::from_slice(&with).unwrap();
        assert_eq!(
            v,
            json!({"type":"event","event":"tick","payload":{"ts":5},"seq":12})
        );
        let v: Value = serde_json::from_slice(&t.to_vec(None)).unwrap();
        assert_eq!(v, json!({"type":"event","event":"tick","payload":{"ts":5}}));
        let p = EventTemplate::new("presence", &json!({"presence": []}), Some((3, 1)));
        let v: Value = serde_json::from_slice(&p.to_vec(Some(1))).unwrap();
        assert_eq!(v["stateVersion"], json!({"presence":3,"health":1}));
        assert_eq!(p.to_vec(Some(1)).len(), p.len_with_seq(Some(1)));
    }

    #[test]
    fn parser_rejects_garbage_and_reuses_buffer() {
        let mut p = Parser::default();
        assert!(p.parse(b"{not json").is_none());
        assert_eq!(p.parse(br#"{"a":[1,2]}"#), Some(json!({"a":[1,2]})));
        assert_eq!(p.parse(b"  42 "), Some(json!(42)));
    }

    #[test]
    fn responses() {
        let v: Value = serde_json::from_slice(&res_ok("1", &json!({"x": 1}))).unwrap();
        assert_eq!(
            v,
            json!({"type":"res","id":"1","ok":true,"payload":{"x":1}})
        );
        let v: Value =
            serde_json::from_slice(&res_err("a\"b", &ErrorShape::invalid("no"))).unwrap();
        assert_eq!(
            v,
            json!({"type":"res","id":"a\"b","ok":false,"error":{"code":"INVALID_REQUEST","message":"no"}})
        );
    }
}
