//! One error vocabulary (protocol §5): the `ErrorShape` of `res` frames, its top-level codes, the
//! `details.code` values clients branch on, and the WebSocket close codes.

use serde::Serialize;
use serde_json::{json, Value};

/// Top-level `error.code` values (`ErrorCodes`).
pub mod code {
    pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_PAIRED: &str = "NOT_PAIRED";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
}

/// WebSocket close codes the server uses (§5.4).
pub mod close {
    /// Handshake timeout, unparsable pre-auth frame.
    pub const NORMAL: u16 = 1000;
    /// Protocol range mismatch.
    pub const PROTOCOL: u16 = 1002;
    /// Handshake failures, slow consumer, repeated unauthorized calls.
    pub const POLICY: u16 = 1008;
    /// Frame over the pre-auth or post-auth payload limit.
    pub const TOO_BIG: u16 = 1009;
    /// Internal failure.
    pub const INTERNAL: u16 = 1011;
    /// Shutdown / restart.
    pub const RESTART: u16 = 1012;
    /// Retry later.
    pub const TRY_AGAIN: u16 = 1013;
    /// Credentials or policy revoked on a live connection.
    pub const AUTH_CHANGED: u16 = 4001;
}

/// Close reasons are truncated to 120 UTF-8 bytes on a char boundary (`close-reason.ts`).
pub fn truncate_reason(reason: &str) -> String {
    const MAX: usize = 120;
    if reason.len() <= MAX {
        return reason.to_owned();
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// `ErrorShape = {code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorShape {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Boxed: errors are the cold path, and this keeps `Result<_, ErrorShape>` small.
    pub details: Option<Box<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ErrorShape {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_REQUEST, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn retryable(mut self, yes: bool) -> Self {
        self.retryable = Some(yes);
        self
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retryable = Some(true);
        self.retry_after_ms = Some(ms);
        self
    }

    /// `FORBIDDEN "missing scope: X"` with `MISSING_SCOPE` details.
    pub fn missing_scope(scope: &str) -> Self {
        Self::new(code::FORBIDDEN, format!("missing scope: {scope}")).with_details(json!({
            "code": "MISSING_SCOPE",
            "missingScope": scope,
            "requiredScopes": [scope],
        }))
    }

    pub fn unknown_method(method: &str) -> Self {
        Self::invalid(format!("unknown method: {method}"))
    }

    pub fn unauthorized_role(role: &str) -> Self {
        Self::invalid(format!("unauthorized role: {role}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_truncation_respects_char_boundaries() {
        let s = "é".repeat(100); // 200 bytes
        let t = truncate_reason(&s);
        assert!(t.len() <= 120);
        assert_eq!(t.len(), 120);
        assert_eq!(truncate_reason("short"), "short");
    }

    #[test]
    fn missing_scope_shape() {
        let e = serde_json::to_value(ErrorShape::missing_scope("operator.read")).unwrap();
        assert_eq!(
            e,
            json!({"code":"FORBIDDEN","message":"missing scope: operator.read",
                   "details":{"code":"MISSING_SCOPE","missingScope":"operator.read","requiredScopes":["operator.read"]}})
        );
    }
}
