//! OpenClaw gateway protocol bits: challenge → connect → hello-ok, optional
//! ed25519 device proof, and cheap classification of inbound frames.

use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::ws::{close_info, find, SockOpts, Target, Ws, WsError, OP_BINARY, OP_CLOSE, OP_TEXT};

pub const CLIENT_ID: &str = "cli";
pub const CLIENT_MODE: &str = "cli";
pub const PLATFORM: &str = "linux";
pub const ROLE: &str = "operator";

/// Per-process device identity (one key shared by all connections).
pub struct Device {
    key: SigningKey,
    pub id: String,
    pub public_key: String,
}

impl Device {
    pub fn generate() -> Device {
        let seed: [u8; 32] = rand::random();
        let key = SigningKey::from_bytes(&seed);
        let raw = key.verifying_key().to_bytes();
        let id = hex(&Sha256::digest(raw));
        let public_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        Device {
            key,
            id,
            public_key,
        }
    }

    /// v3 payload: v3|deviceId|clientId|clientMode|role|scopesCsv|signedAtMs|token|nonce|platform|deviceFamily
    pub fn sign(&self, scopes: &[String], signed_at: u64, token: &str, nonce: &str) -> String {
        let payload = format!(
            "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.id,
            CLIENT_ID,
            CLIENT_MODE,
            ROLE,
            scopes.join(","),
            signed_at,
            token,
            nonce,
            PLATFORM.trim().to_ascii_lowercase(),
            ""
        );
        let sig = self.key.sign(payload.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes())
    }
}

fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Everything needed to open an authenticated connection.
pub struct ConnCfg {
    pub target: Target,
    pub token: String,
    pub scopes: Vec<String>,
    pub device: Option<Device>,
    pub timeout: Duration,
    pub read_buf: usize,
}

#[derive(Debug)]
pub enum HsError {
    Ws(WsError),
    /// connect answered with ok:false; carries error.code
    Rejected(String),
    /// server closed during handshake
    Closed(u16, String),
    BadChallenge,
    Timeout,
}

impl HsError {
    pub fn kind(&self) -> String {
        match self {
            HsError::Ws(e) => e.kind(),
            HsError::Rejected(c) => format!("rejected:{c}"),
            HsError::Closed(c, r) => {
                let r: String = r.chars().take(40).collect();
                format!("closed:{c}:{r}")
            }
            HsError::BadChallenge => "bad-challenge".into(),
            HsError::Timeout => "handshake-timeout".into(),
        }
    }
}

impl From<WsError> for HsError {
    fn from(e: WsError) -> Self {
        HsError::Ws(e)
    }
}

/// Client capability: `chat`/`agent` events only for sessions subscribed with
/// `sessions.messages.subscribe`.
pub const CAP_SCOPED_EVENTS: &str = "session-scoped-events";

/// WS upgrade + challenge → connect → hello-ok.
pub async fn open(cfg: &ConnCfg, opts: SockOpts) -> Result<Ws, HsError> {
    open_caps(cfg, opts, &[]).await
}

/// [`open`] advertising client `caps` in `connect`.
pub async fn open_caps(cfg: &ConnCfg, opts: SockOpts, caps: &[&str]) -> Result<Ws, HsError> {
    let mut ws = Ws::connect(&cfg.target, opts, cfg.read_buf, cfg.timeout).await?;
    match monoio::time::timeout(cfg.timeout, handshake(&mut ws, cfg, caps)).await {
        Ok(Ok(())) => {
            ws.shrink();
            Ok(ws)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HsError::Timeout),
    }
}

async fn handshake(ws: &mut Ws, cfg: &ConnCfg, caps: &[&str]) -> Result<(), HsError> {
    // 1. challenge
    let (nonce, ts) = loop {
        let f = ws.next().await?;
        match f.op {
            OP_CLOSE => {
                let (c, r) = close_info(ws.payload(&f));
                return Err(HsError::Closed(c, r));
            }
            OP_TEXT | OP_BINARY => {
                let v: Value =
                    serde_json::from_slice(ws.payload(&f)).map_err(|_| HsError::BadChallenge)?;
                if v["event"] == "connect.challenge" {
                    let nonce = v["payload"]["nonce"]
                        .as_str()
                        .ok_or(HsError::BadChallenge)?
                        .to_string();
                    let ts = v["payload"]["ts"].as_u64().ok_or(HsError::BadChallenge)?;
                    break (nonce, ts);
                }
            }
            _ => {}
        }
    };
    // 2. connect
    let mut params = json!({
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": CLIENT_ID, "version": "loadgen", "platform": PLATFORM, "mode": CLIENT_MODE},
        "role": ROLE,
        "scopes": cfg.scopes,
        "caps": caps,
        "auth": {"token": cfg.token},
    });
    if let Some(d) = &cfg.device {
        params["device"] = json!({
            "id": d.id,
            "publicKey": d.public_key,
            "signature": d.sign(&cfg.scopes, ts, &cfg.token, &nonce),
            "signedAt": ts,
            "nonce": nonce,
        });
    }
    let req = json!({"type":"req","id":"1","method":"connect","params":params});
    ws.queue_text(req.to_string().as_bytes());
    ws.flush().await?;
    // 3. hello-ok
    loop {
        let f = ws.next().await?;
        match f.op {
            OP_CLOSE => {
                let (c, r) = close_info(ws.payload(&f));
                return Err(HsError::Closed(c, r));
            }
            OP_TEXT | OP_BINARY => {
                if let Msg::Res { id, ok } = classify(ws.payload(&f)) {
                    if id == 1 {
                        if ok {
                            return Ok(());
                        }
                        return Err(HsError::Rejected(error_code(ws.payload(&f))));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Cheap view of an inbound frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// Response with a numeric id (non-numeric ids map to u64::MAX).
    Res {
        id: u64,
        ok: bool,
    },
    Event(EventKind),
    Other,
}

#[derive(Debug, PartialEq, Eq)]
pub enum EventKind {
    Presence,
    Tick,
    Other,
}

/// Classify a text frame. Fast path relies on `type` being the first key and
/// `id`/`ok` (responses) or `event` (events) following it, which holds for
/// the reference server; otherwise falls back to a full JSON parse.
pub fn classify(p: &[u8]) -> Msg {
    if let Some(rest) = p.strip_prefix(b"{\"type\":\"res\",\"id\":\"") {
        if let Some(q) = rest.iter().position(|&c| c == b'"') {
            let id = parse_u64(&rest[..q]);
            let after = &rest[q + 1..];
            if let Some(okrest) = after.strip_prefix(b",\"ok\":") {
                return Msg::Res {
                    id,
                    ok: okrest.starts_with(b"true"),
                };
            }
        }
    } else if let Some(rest) = p.strip_prefix(b"{\"type\":\"event\",\"event\":\"") {
        return Msg::Event(event_kind(rest));
    }
    // Slow path.
    let Ok(v) = serde_json::from_slice::<Value>(p) else {
        return Msg::Other;
    };
    match v["type"].as_str() {
        Some("res") => Msg::Res {
            id: v["id"]
                .as_str()
                .map(|s| parse_u64(s.as_bytes()))
                .unwrap_or(u64::MAX),
            ok: v["ok"].as_bool().unwrap_or(false),
        },
        Some("event") => {
            let e = v["event"].as_str().unwrap_or("");
            let mut s = e.as_bytes().to_vec();
            s.push(b'"');
            Msg::Event(event_kind(&s))
        }
        _ => Msg::Other,
    }
}

fn event_kind(rest: &[u8]) -> EventKind {
    if rest.starts_with(b"presence\"") {
        EventKind::Presence
    } else if rest.starts_with(b"tick\"") {
        EventKind::Tick
    } else {
        EventKind::Other
    }
}

fn parse_u64(s: &[u8]) -> u64 {
    if s.is_empty() || s.len() > 19 {
        return u64::MAX;
    }
    let mut n = 0u64;
    for &c in s {
        if !c.is_ascii_digit() {
            return u64::MAX;
        }
        n = n * 10 + (c - b'0') as u64;
    }
    n
}

/// Name of an event frame (fast path only: the gateway writes `{"type":"event","event":"…"`
/// first; anything else gives `None`).
pub fn event_name(p: &[u8]) -> Option<&[u8]> {
    let rest = p.strip_prefix(b"{\"type\":\"event\",\"event\":\"")?;
    let q = rest.iter().position(|&c| c == b'"')?;
    Some(&rest[..q])
}

/// The first string value following `needle` (e.g. `"runId":"`), without unescaping: for
/// ids and enum values, which contain no quotes.
pub fn str_after<'a>(p: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
    let i = find(p, needle)? + needle.len();
    let rest = &p[i..];
    let q = rest.iter().position(|&c| c == b'"')?;
    Some(&rest[..q])
}

/// `"runId":"` (first key of `chat` and `agent` payloads).
pub const RUN_ID: &[u8] = b"\"runId\":\"";
/// `"state":"` (`chat` payloads: status, delta, final, aborted, error).
pub const STATE: &[u8] = b"\"state\":\"";

/// The per-connection event `seq` of an event frame (`{…,"payload":{…},"seq":N[,…]}`), if any:
/// the last `,"seq":` that follows the payload's closing brace.
pub fn event_seq(p: &[u8]) -> Option<u64> {
    const NEEDLE: &[u8] = b",\"seq\":";
    let i = p.windows(NEEDLE.len()).rposition(|w| w == NEEDLE)?;
    if i == 0 || p[i - 1] != b'}' {
        return None;
    }
    let rest = &p[i + NEEDLE.len()..];
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = parse_u64(&rest[..digits]);
    (n != u64::MAX).then_some(n)
}

/// error.code of a failed response (slow path, failures only).
pub fn error_code(p: &[u8]) -> String {
    serde_json::from_slice::<Value>(p)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_frames() {
        assert_eq!(
            classify(br#"{"type":"res","id":"17","ok":true,"payload":null}"#),
            Msg::Res { id: 17, ok: true }
        );
        assert_eq!(
            classify(br#"{"id":"3","type":"res","ok":false,"error":{"code":"X"}}"#),
            Msg::Res { id: 3, ok: false }
        );
        assert_eq!(
            classify(br#"{"type":"event","event":"presence","payload":{},"seq":2}"#),
            Msg::Event(EventKind::Presence)
        );
        assert_eq!(
            classify(br#"{"event":"tick","type":"event","payload":{}}"#),
            Msg::Event(EventKind::Tick)
        );
        assert_eq!(
            error_code(br#"{"error":{"code":"UNAVAILABLE"}}"#),
            "UNAVAILABLE"
        );
    }

    #[test]
    fn chat_event_fields() {
        let f = br#"{"type":"event","event":"chat","payload":{"runId":"lg1-s3-t7","sessionKey":"agent:main:lg1-s3","agentId":"main","seq":4,"state":"final","stopReason":"stop"},"seq":19}"#;
        assert_eq!(event_name(f), Some(&b"chat"[..]));
        assert_eq!(str_after(f, RUN_ID), Some(&b"lg1-s3-t7"[..]));
        assert_eq!(str_after(f, STATE), Some(&b"final"[..]));
        assert_eq!(event_seq(f), Some(19));
        // the payload's own seq is not the frame's
        assert_eq!(
            event_seq(br#"{"type":"event","event":"x","payload":{"seq":4}}"#),
            None
        );
        assert_eq!(event_name(br#"{"type":"res","id":"1","ok":true}"#), None);
        let p = br#"{"type":"event","event":"presence","payload":{},"seq":2,"stateVersion":{"presence":3,"health":1}}"#;
        assert_eq!(event_seq(p), Some(2));
    }

    #[test]
    fn device_sig_verifies() {
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};
        let d = Device::generate();
        let scopes = vec!["operator.admin".to_string()];
        let sig = d.sign(&scopes, 5, "T", "n");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&d.public_key)
            .unwrap();
        let vk = VerifyingKey::from_bytes(&raw.try_into().unwrap()).unwrap();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap();
        let sig = Signature::from_bytes(&sig.try_into().unwrap());
        let msg = format!("v3|{}|cli|cli|operator|operator.admin|5|T|n|linux|", d.id);
        vk.verify(msg.as_bytes(), &sig).unwrap();
        assert_eq!(d.id.len(), 64);
    }
}
