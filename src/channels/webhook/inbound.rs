//! Signatures (both directions) and inbound request verification and parsing: pure functions,
//! no I/O.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::WebhookAccountConfig;

pub(super) type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp_ms: u64, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(timestamp_ms.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// The `X-Ringgate-Signature` value for a body sent at `timestamp_ms`: `sha256=<hex>`.
pub fn sign(secret: &[u8], timestamp_ms: u64, body: &[u8]) -> String {
    format!("sha256={}", to_hex(&mac(secret, timestamp_ms, body)))
}

/// Checks `X-Ringgate-Timestamp` / `X-Ringgate-Signature` against `body`: the timestamp must be
/// within `window_ms` of `now_ms` (either way, so a captured request cannot be replayed later)
/// and the MAC must match (compared in constant time). Returns the timestamp.
pub fn verify_signature(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_ms: u64,
    window_ms: u64,
) -> Result<u64, InboundError> {
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| InboundError::BadTimestamp)?;
    let skew_ms = ts.abs_diff(now_ms);
    if skew_ms > window_ms {
        return Err(InboundError::Stale { skew_ms, window_ms });
    }
    let given = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(from_hex32)
        .ok_or(InboundError::MalformedSignature)?;
    let expected = mac(secret, ts, body);
    if bool::from(expected.ct_eq(&given)) {
        Ok(ts)
    } else {
        Err(InboundError::BadSignature)
    }
}

pub(super) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes exactly 64 hex digits (either case).
fn from_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Inbound

/// The signing headers of an inbound request, as the HTTP layer found them.
#[derive(Debug, Clone, Copy, Default)]
pub struct InboundHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A verified inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub account_id: String,
    pub from: String,
    pub text: String,
    /// The body's `sessionKey`, else the account's configured one (not yet resolved to the
    /// canonical `agent:<id>:<key>` form).
    pub session_key: String,
    /// The sender's id for the message, usable as an idempotency key.
    pub message_id: Option<String>,
    /// The signed `X-Ringgate-Timestamp`.
    pub timestamp_ms: u64,
}

/// Why an inbound request was refused; [`InboundError::http_status`] gives the answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InboundError {
    #[error("unknown webhook account `{0}`")]
    UnknownAccount(String),
    #[error("webhook account `{account}` does not accept messages: {reason}")]
    NotAccepting {
        account: String,
        reason: &'static str,
    },
    #[error("webhook account `{0}` is stopped")]
    Stopped(String),
    #[error("body is {len} bytes, over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("X-Ringgate-Timestamp must be milliseconds since the Unix epoch")]
    BadTimestamp,
    #[error("timestamp is {skew_ms} ms from the gateway clock, outside the {window_ms} ms window")]
    Stale { skew_ms: u64, window_ms: u64 },
    #[error("X-Ringgate-Signature must be sha256=<64 hex digits>")]
    MalformedSignature,
    #[error("signature does not match")]
    BadSignature,
    #[error("body is not valid JSON: {0}")]
    BadJson(String),
    #[error("invalid message: {0}")]
    Invalid(String),
}

impl InboundError {
    /// 404 unknown/disabled/unconfigured account, 503 stopped, 413 too large, 401 any
    /// timestamp/signature problem, 400 a bad body.
    pub fn http_status(&self) -> u16 {
        match self {
            InboundError::UnknownAccount(_) | InboundError::NotAccepting { .. } => 404,
            InboundError::Stopped(_) => 503,
            InboundError::TooLarge { .. } => 413,
            InboundError::BadJson(_) | InboundError::Invalid(_) => 400,
            _ => 401,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InboundBody {
    text: String,
    from: String,
    session_key: Option<String>,
    message_id: Option<String>,
}

/// Longest `from` / `messageId` accepted.
const MAX_ID_LEN: usize = 256;

/// Verifies and parses one inbound request for `account` at `now_ms`: size, then signature
/// (so unauthenticated bodies are never parsed), then the body.
pub fn verify_inbound(
    account: &WebhookAccountConfig,
    headers: &InboundHeaders,
    body: &[u8],
    now_ms: u64,
) -> Result<InboundMessage, InboundError> {
    let limit = account.max_inbound_bytes;
    if body.len() > limit {
        return Err(InboundError::TooLarge {
            len: body.len(),
            limit,
        });
    }
    let secret = account
        .secret
        .as_ref()
        .ok_or_else(|| InboundError::NotAccepting {
            account: account.account_id.clone(),
            reason: "no secret configured",
        })?;
    let timestamp = headers
        .timestamp
        .ok_or(InboundError::MissingHeader("X-Ringgate-Timestamp"))?;
    let signature = headers
        .signature
        .ok_or(InboundError::MissingHeader("X-Ringgate-Signature"))?;
    let ts = verify_signature(
        secret.expose().as_bytes(),
        timestamp,
        signature,
        body,
        now_ms,
        account.replay_window_ms,
    )?;
    parse_inbound(body, &account.account_id, &account.session_key, ts)
}

/// Parses an (already verified) inbound body.
pub fn parse_inbound(
    body: &[u8],
    account_id: &str,
    default_session_key: &str,
    timestamp_ms: u64,
) -> Result<InboundMessage, InboundError> {
    let b: InboundBody = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => InboundError::Invalid(e.to_string()),
        _ => InboundError::BadJson(e.to_string()),
    })?;
    let bad = |m: &str| Err(InboundError::Invalid(m.to_owned()));
    if b.text.trim().is_empty() {
        return bad("`text` must not be empty");
    }
    if b.from.trim().is_empty() || b.from.len() > MAX_ID_LEN {
        return bad("`from` must be 1-256 characters");
    }
    if matches!(&b.message_id, Some(id) if id.is_empty() || id.len() > MAX_ID_LEN) {
        return bad("`messageId` must be 1-256 characters");
    }
    let session_key = match b.session_key {
        None => default_session_key.to_owned(),
        Some(k) if !k.trim().is_empty() && k.len() <= crate::chat::key::MAX_KEY_LEN => k,
        Some(_) => return bad("`sessionKey` must be 1-512 characters"),
    };
    Ok(InboundMessage {
        account_id: account_id.to_owned(),
        from: b.from,
        text: b.text,
        session_key,
        message_id: b.message_id,
        timestamp_ms,
    })
}
