//! `invoke` — `node.invoke` round trips (protocol §7.8). One simulated node (role `node`,
//! `node-host`, its own ed25519 device identity, declaring `system.which`) and one operator.
//! Setup: the node connects (the gateway pairs its device silently on loopback and records a
//! pending capability request), the operator approves that request (`node.pair.approve`).
//! Then, closed loop for `--duration`: the operator sends `node.invoke`, the node answers the
//! `node.invoke.request` event with `node.invoke.result`, the operator gets the result. The
//! round trip (operator send → operator result) is recorded.
//!
//! `--placement same|cross` picks connections until the operator is on the node's shard (or
//! on another one), read from the `s<shard>-` prefix of `hello-ok.server.connId` (ringgate's
//! connection ids), so both routing paths can be measured on a multi-shard gateway.
//!
//! With several `--url`s (hosts of a cluster) the node connects to the second and the
//! operator to the first, so every invoke crosses hosts; the capability request is approved
//! on the node's host, and the measurement starts once the operator's host knows the node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Args;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::stats::{rate, Report, ThreadOut};
use crate::ws::{close_info, Ws, OP_BINARY, OP_CLOSE, OP_TEXT};
use crate::{common_rows, join, run_workers, Common, Shared};

#[derive(Args, Clone)]
pub struct InvokeArgs {
    #[command(flatten)]
    pub c: Common,
    /// Operator placement relative to the node's shard: `same`, `cross` or `any`
    #[arg(long, default_value = "any")]
    pub placement: String,
    /// Attempts to land a connection on the wanted shard
    #[arg(long, default_value_t = 64)]
    pub attempts: usize,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads frames until a text frame satisfies `want`; returns its JSON.
async fn next_json(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> Result<Value, String> {
    loop {
        let f = ws.next().await.map_err(|e| e.kind())?;
        match f.op {
            OP_CLOSE => {
                let (c, r) = close_info(ws.payload(&f));
                return Err(format!("closed:{c}:{r}"));
            }
            OP_TEXT | OP_BINARY => {
                let v: Value = serde_json::from_slice(ws.payload(&f)).map_err(|e| e.to_string())?;
                if want(&v) {
                    return Ok(v);
                }
            }
            _ => {}
        }
    }
}

async fn send(ws: &mut Ws, v: &Value) -> Result<(), String> {
    ws.queue_text(v.to_string().as_bytes());
    ws.flush().await.map_err(|e| e.kind())
}

/// The shard of a connection, from `hello-ok.server.connId` (`s<N>-…`).
fn shard_of(hello: &Value) -> Option<usize> {
    hello["payload"]["server"]["connId"]
        .as_str()?
        .strip_prefix('s')?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Opens a connection and completes the handshake with `params(nonce, ts)`; returns the
/// socket and the hello-ok response.
async fn connect(
    sh: &Shared,
    opts: crate::ws::SockOpts,
    params: impl Fn(&str, u64) -> Value,
) -> Result<(Ws, Value), String> {
    let cfg = &sh.cfg;
    let opts = crate::ws::SockOpts { src: None, ..opts };
    let mut ws = Ws::connect(&cfg.target, opts, 4096, cfg.timeout)
        .await
        .map_err(|e| e.kind())?;
    let ch = next_json(&mut ws, |v| v["event"] == "connect.challenge").await?;
    let nonce = ch["payload"]["nonce"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ts = ch["payload"]["ts"].as_u64().unwrap_or_default();
    send(
        &mut ws,
        &json!({"type": "req", "id": "1", "method": "connect", "params": params(&nonce, ts)}),
    )
    .await?;
    let hello = next_json(&mut ws, |v| v["type"] == "res" && v["id"] == "1").await?;
    if hello["ok"] != true {
        return Err(format!("connect rejected: {}", hello["error"]));
    }
    Ok((ws, hello))
}

struct Node {
    key: SigningKey,
    id: String,
    public_key: String,
}

impl Node {
    fn new() -> Node {
        let key = SigningKey::from_bytes(&rand::random());
        let raw = key.verifying_key().to_bytes();
        Node {
            id: hex(&Sha256::digest(raw)),
            public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
            key,
        }
    }

    fn params(&self, token: &str, nonce: &str, ts: u64) -> Value {
        let payload = format!(
            "v3|{}|node-host|node|node||{ts}|{token}|{nonce}|linux|",
            self.id
        );
        let sig = self.key.sign(payload.as_bytes());
        json!({
            "minProtocol": 3, "maxProtocol": 4,
            "client": {"id": "node-host", "version": "loadgen", "platform": "linux", "mode": "node"},
            "role": "node", "scopes": [], "caps": ["system"], "commands": ["system.which"],
            "auth": {"token": token},
            "device": {"id": self.id, "publicKey": self.public_key,
                       "signature": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes()),
                       "signedAt": ts, "nonce": nonce},
        })
    }
}

async fn operator(sh: &Shared, host: usize) -> Result<(Ws, Option<usize>), String> {
    let token = sh.cfg.token.clone();
    let (ws, hello) = connect(sh, sh.sock_on(host), |_, _| {
        json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "version": "loadgen", "platform": "linux", "mode": "cli"},
            "role": "operator", "scopes": ["operator.admin"], "caps": [],
            "auth": {"token": token},
        })
    })
    .await?;
    Ok((ws, shard_of(&hello)))
}

async fn request(ws: &mut Ws, id: u64, method: &str, params: Value) -> Result<Value, String> {
    let rid = id.to_string();
    send(
        ws,
        &json!({"type": "req", "id": rid, "method": method, "params": params}),
    )
    .await?;
    let res = next_json(ws, |v| v["type"] == "res" && v["id"] == rid.as_str()).await?;
    if res["ok"] != true {
        return Err(format!("{method} failed: {}", res["error"]));
    }
    Ok(res["payload"].clone())
}

async fn invoke_thread(sh: Arc<Shared>, a: InvokeArgs) -> ThreadOut {
    let mut out = ThreadOut::default();
    if let Err(e) = run(&sh, &a, &mut out).await {
        out.err(e);
    }
    out
}

async fn run(sh: &Shared, a: &InvokeArgs, out: &mut ThreadOut) -> Result<(), String> {
    let node = Node::new();
    let token = sh.cfg.token.clone();
    let (mut nws, hello) = connect(sh, sh.sock_on(1), |nonce, ts| {
        node.params(&token, nonce, ts)
    })
    .await?;
    let node_shard = shard_of(&hello);
    // An operator placed as asked.
    let mut found = None;
    for _ in 0..a.attempts.max(1) {
        let (ws, shard) = operator(sh, 0).await?;
        let ok = match (a.placement.as_str(), shard, node_shard) {
            ("same", Some(s), Some(n)) => s == n,
            ("cross", Some(s), Some(n)) => s != n,
            ("any", ..) => true,
            _ => false,
        };
        if ok {
            found = Some((ws, shard));
            break;
        }
        ws.close(Duration::from_millis(100)).await;
    }
    let Some((mut ows, op_shard)) = found else {
        return Err(format!(
            "no operator connection with placement {}",
            a.placement
        ));
    };
    out.inc("node_shard", node_shard.map_or(u64::MAX, |s| s as u64));
    out.inc("operator_shard", op_shard.map_or(u64::MAX, |s| s as u64));
    // Approve the node's capability request (it is recorded right after the node's hello) on
    // the node's host.
    let (mut aws, _) = operator(sh, 1).await?;
    let mut next_id = 10u64;
    let deadline = Instant::now() + sh.cfg.timeout;
    let request_id = loop {
        next_id += 1;
        let list = request(&mut aws, next_id, "node.pair.list", json!({})).await?;
        let hit = list["pending"]
            .as_array()
            .and_then(|p| p.iter().find(|r| r["nodeId"] == node.id.as_str()))
            .and_then(|r| r["requestId"].as_str().map(str::to_owned));
        if let Some(r) = hit {
            break r;
        }
        if Instant::now() > deadline {
            return Err("node capability request never appeared".into());
        }
        monoio::time::sleep(Duration::from_millis(10)).await;
    };
    next_id += 1;
    request(
        &mut aws,
        next_id,
        "node.pair.approve",
        json!({"requestId": request_id}),
    )
    .await?;
    aws.close(Duration::from_millis(100)).await;
    // The operator's host learns of the approval (at once on one host; through the cluster's
    // shared record on another).
    let deadline = Instant::now() + sh.cfg.timeout;
    loop {
        next_id += 1;
        let list = request(&mut ows, next_id, "node.list", json!({})).await?;
        let ready = list["nodes"].as_array().is_some_and(|l| {
            l.iter().any(|n| {
                n["nodeId"] == node.id.as_str() && n["connected"] == true && n["paired"] == true
            })
        });
        if ready {
            break;
        }
        if Instant::now() > deadline {
            return Err("the operator's host never listed the approved node".into());
        }
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let start = Instant::now();
    let dur = Duration::from_secs_f64(a.c.duration);
    while start.elapsed() < dur {
        next_id += 1;
        let rid = next_id.to_string();
        let t0 = Instant::now();
        send(
            &mut ows,
            &json!({"type": "req", "id": rid, "method": "node.invoke", "params": {
                "nodeId": node.id, "command": "system.which", "params": {"bins": ["sh"]},
                "idempotencyKey": format!("lg-{rid}"), "timeoutMs": 10_000}}),
        )
        .await?;
        let ev = next_json(&mut nws, |v| v["event"] == "node.invoke.request").await?;
        let inv = &ev["payload"];
        send(
            &mut nws,
            &json!({"type": "req", "id": format!("n{rid}"), "method": "node.invoke.result", "params": {
                "id": inv["id"], "nodeId": node.id, "ok": true,
                "payloadJSON": "{\"bins\":{\"sh\":\"/usr/bin/sh\"}}"}}),
        )
        .await?;
        let res = next_json(&mut ows, |v| v["type"] == "res" && v["id"] == rid.as_str()).await?;
        if res["ok"] != true {
            out.err(format!("invoke:{}", res["error"]["message"]));
            continue;
        }
        out.rec("invoke", t0.elapsed());
        out.inc("invokes", 1);
    }
    out.rec_us("elapsed_us", start.elapsed().as_micros() as u64);
    Ok(())
}

pub fn run_invoke(a: InvokeArgs) -> Result<(), String> {
    let mut c = a.c.clone();
    c.threads = 1;
    let sh = Arc::new(Shared::new(&c, 4096)?);
    let args = a.clone();
    let hs = run_workers(&c, sh.clone(), move |_, sh| invoke_thread(sh, args.clone()));
    let out = join(hs);
    let secs = out
        .hists
        .get("elapsed_us")
        .map_or(0.0, |h| h.max() as f64 / 1e6);
    let mut r = Report::new("invoke");
    common_rows(&mut r, &c, &sh);
    r.add("placement", a.placement.clone());
    r.add("node_shard", out.count("node_shard"));
    r.add("operator_shard", out.count("operator_shard"));
    r.add("invokes", out.count("invokes"));
    r.add("invokes_per_s", rate(out.count("invokes"), secs));
    r.latency("latency", out.hists.get("invoke"));
    r.errors(&out.errors);
    r.print(c.json);
    Ok(())
}
