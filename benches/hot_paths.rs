//! Criterion benches of the per-message hot paths: envelope parse (simd-json with a reused
//! buffer vs serde_json), params schema validation, connect verification (ed25519), the scope
//! check, and event encoding with a `seq` slot.
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
        b.iter(|| p.parse(black_box(SMALL)))
    });
    c.bench_function("parse/small/serde_json", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(SMALL)).ok())
    });
    c.bench_function("parse/1MB/simd-json", |b| {
        b.iter(|| p.parse(black_box(&big)))
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

criterion_group!(benches, parse, schema, verify, scope, encode);
criterion_main!(benches);
