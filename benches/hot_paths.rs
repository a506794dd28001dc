//! Criterion benches of the per-message hot paths: envelope parse (simd-json with a reused
//! buffer vs serde_json), params schema validation, connect verification (ed25519), the scope
//! check, event encoding with a `seq` slot, one bus hop, and local fan-out to 1k connections.
//!
//! `make bench`; for the AVX-512 ed25519 backend:
//! `RUSTFLAGS='--cfg curve25519_dalek_backend="avx512"' make bench`.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ed25519_dalek::{Signer, SigningKey};
use ringgate::{
    auth::device::{self, DeviceProof, SignedFields},
    proto::{
        frame::{EventTemplate, Parser},
        schema::Schemas,
        scopes::{authorize, Role, ScopeSet},
    },
};
use serde_json::{json, Value};

const SMALL: &[u8] = br#"{"type":"req","id":"42:7b279400-937e-4764-a716-1717fe999ba5","method":"last-heartbeat","params":{}}"#;

fn big_frame() -> Vec<u8> {
    let text = "x".repeat(1 << 20);
    serde_json::to_vec(&json!({"type":"req","id":"1","method":"chat.send","params":{"sessionKey":"main","message":text,"idempotencyKey":"k"}})).unwrap()
}

fn parse(c: &mut Criterion) {
    let mut p = Parser::default();
    let big = big_frame();
    c.bench_function("parse/small/simd-json", |b| {
        b.iter(|| p.parse_simd(black_box(SMALL)))
    });
    c.bench_function("parse/small/serde_json", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(SMALL)).ok())
    });
    c.bench_function("parse/1MB/simd-json", |b| {
        b.iter(|| p.parse_simd(black_box(&big)))
    });
    let mut scratch = Vec::new();
    c.bench_function("parse/small/simd-tape", |b| {
        b.iter(|| ringgate::proto::frame::parse_simd_tape(&mut scratch, black_box(SMALL)))
    });
    c.bench_function("parse/1MB/simd-tape", |b| {
        b.iter(|| ringgate::proto::frame::parse_simd_tape(&mut scratch, black_box(&big)))
    });
    c.bench_function("parse/1MB/serde_json", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&big)).ok())
    });
}

fn schema(c: &mut Criterion) {
    let s = Schemas::get();
    let frame: Value = serde_json::from_slice(SMALL).unwrap();
    let connect = json!({"minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"2026.9.6","platform":"linux","mode":"cli"},
        "role":"operator","scopes":["operator.admin"],"caps":[],"auth":{"token":"t"}});
    c.bench_function("schema/request-frame", |b| {
        b.iter(|| s.check_request(black_box(&frame)))
    });
    c.bench_function("schema/connect-params", |b| {
        b.iter(|| s.check_connect(black_box(&connect)))
    });
}

fn verify(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[9u8; 32]);
    let raw = key.verifying_key().to_bytes();
    let id = device::device_id(&raw);
    let pk = URL_SAFE_NO_PAD.encode(raw);
    let scopes = ["operator.admin"];
    let fields = SignedFields {
        client_id: "cli",
        client_mode: "cli",
        role: "operator",
        scopes: &scopes,
        token: "t",
        platform: Some("linux"),
        device_family: None,
    };
    let unsigned = DeviceProof {
        id: &id,
        public_key: &pk,
        signature: "",
        signed_at: 1000,
        nonce: "n",
    };
    let sig = URL_SAFE_NO_PAD.encode(
        key.sign(device::payload(3, &unsigned, &fields).as_bytes())
            .to_bytes(),
    );
    let proof = DeviceProof {
        signature: &sig,
        ..unsigned
    };
    c.bench_function("connect/device-proof-v3", |b| {
        b.iter(|| device::verify(black_box(&proof), &fields, "n", 1000).unwrap())
    });
}

fn scope(c: &mut Criterion) {
    let scopes = ScopeSet::from_strs(["operator.read", "operator.write"]);
    c.bench_function("scope/authorize", |b| {
        b.iter(|| authorize(black_box("last-heartbeat"), Role::Operator, &scopes, None))
    });
}

fn encode(c: &mut Criterion) {
    let presence = json!({"presence": [{"host":"vm","mode":"gateway","reason":"self","ts":1}]});
    let t = EventTemplate::new("presence", &presence, Some((3, 1)));
    let mut out = Vec::with_capacity(4096);
    c.bench_function("event/encode-once", |b| {
        b.iter(|| EventTemplate::new("presence", black_box(&presence), Some((3, 1))))
    });
    c.bench_function("event/stamp-seq", |b| {
        b.iter(|| {
            out.clear();
            t.write_to(&mut out, Some(black_box(12345)));
        })
    });
    c.bench_function("event/fanout-1k-stamps", |b| {
        b.iter(|| {
            out.clear();
            for seq in 0..1000u64 {
                t.write_to(&mut out, Some(seq));
            }
        })
    });
}

/// One cross-thread bus hop: push to another thread's inbox and get the echo back (the
/// figure is a round trip, two hops).
fn bus_hop(c: &mut Criterion) {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    use ringgate::bus::{Bus, BusMsg};
    let bus = Bus::new(2);
    let stop = Arc::new(AtomicBool::new(false));
    let (b2, s2) = (bus.clone(), stop.clone());
    let echo = std::thread::spawn(move || {
        let mut batch = Vec::new();
        while !s2.load(Ordering::Relaxed) {
            b2.inbox(1).drain_now(&mut batch);
            for m in batch.drain(..) {
                while b2.inbox(0).push(m.clone()).is_err() {}
            }
        }
    });
    let mut got = Vec::new();
    c.bench_function("bus/round-trip", |b| {
        b.iter(|| {
            let _ = bus.inbox(1).push(BusMsg::SystemEvent(String::new()));
            loop {
                bus.inbox(0).drain_now(&mut got);
                if !got.is_empty() {
                    got.clear();
                    break;
                }
                std::hint::spin_loop();
            }
        })
    });
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
}

/// Local fan-out of one encoded event to 1,000 authenticated connections (scope check, seq
/// stamp, frame into each outbox).
fn fanout(c: &mut Criterion) {
    use std::{cell::RefCell, net::IpAddr, rc::Rc, sync::Arc};

    use ringgate::{
        bus::{Bus, Sender},
        config::Config,
        proto::{handshake::ClientInfo, scopes::Role},
        shard::{
            client::{Client, Phase, Session},
            ctx::ShardCtx,
        },
        state::Globals,
        store::Store,
    };
    let dir = std::env::temp_dir().join(format!("ringgate-bench-{}", std::process::id()));
    let bus = Bus::new(1);
    let cfg = Config {
        state_dir: dir.clone(),
        ..Config::default()
    };
    let (store, _) = Store::open(
        Arc::new(cfg),
        ringgate::channels::hub::ChannelHub::empty(),
        bus.clone(),
    )
    .expect("store");
    let mut ctx = ShardCtx::new(
        0,
        Arc::new(Config::default()),
        Arc::new(Globals::new()),
        Sender::new(bus, 0),
        "bench",
        store,
        &[],
        ringgate::agent::openai::Workers::start(1),
        ringgate::http::control_ui::ControlUi::disabled(),
        ringgate::http::files::Files::start().expect("files"),
    );
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    for i in 0..1000u64 {
        let mut cl = Client::new(i, -1, ip, String::new(), 0, 65536, Vec::new());
        cl.session = Some(Box::new(Session {
            role: Role::Operator,
            scopes: ScopeSet::from_strs(["operator.read"]),
            scope_list: vec!["operator.read".into()],
            client: ClientInfo::default(),
            caps: Vec::new(),
            presence_key: None,
            device_id: None,
            auth_method: "token",
            sessions_subscribed: false,
            scoped_events: false,
            tool_events: false,
            message_subs: Vec::new(),
            node_id: None,
            approval_client: false,
            auth_gen: 0,
        }));
        cl.phase = Phase::Open;
        ctx.clients.insert(i, Rc::new(RefCell::new(cl)));
    }
    let ev = Arc::new(EventTemplate::new(
        "presence",
        &json!({"presence": [{"host": "vm", "mode": "gateway", "ts": 1}]}),
        Some((2, 1)),
    ));
    c.bench_function("fanout/1k-connections", |b| {
        b.iter(|| {
            ctx.fanout(black_box(&ev));
            for cl in ctx.clients.values() {
                let mut cl = cl.borrow_mut();
                cl.out.clear();
                cl.out_pos = 0;
            }
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, parse, schema, verify, scope, encode, bus_hop, fanout);
criterion_main!(benches);
