//! The original's auth-failure texts and `details` (`auth-messages.ts`,
//! `connect-error-details.ts`). Clients parse some substrings and branch on `details.code`, so
//! these are copied exactly.

use serde_json::{json, Value};

/// What the connecting client is, for choosing the hint in the message.
#[derive(Debug, Clone, Copy)]
pub struct ClientKind {
    /// `client.mode == "cli"`.
    pub cli: bool,
    /// Control UI, browser copilot or TUI.
    pub operator_ui: bool,
    /// `client.mode == "webchat"` or `client.id == "webchat-ui"`.
    pub webchat: bool,
    /// Peer is loopback with no proxy headers.
    pub local: bool,
}

impl ClientKind {
    pub fn of(client_id: &str, mode: &str, local: bool) -> Self {
        ClientKind {
            cli: mode == "cli",
            operator_ui: matches!(
                client_id,
                "openclaw-control-ui" | "openclaw-browser-copilot" | "openclaw-tui"
            ),
            webchat: mode == "webchat" || client_id == "webchat-ui",
            local,
        }
    }
}

/// `formatGatewayAuthFailureMessage` for a shared-secret or device-token failure reason.
pub fn failure_message(reason: &str, kind: ClientKind) -> String {
    let ui = kind.operator_ui || kind.webchat;
    let token_hint = if kind.cli {
        if kind.local {
            "use this gateway's gateway.auth.token or pair the device"
        } else {
            "set gateway.remote.token to match gateway.auth.token"
        }
    } else if ui {
        "open the dashboard URL and paste the token in Control UI settings"
    } else {
        "provide gateway auth token"
    };
    let password_hint = if kind.cli {
        if kind.local {
            "use this gateway's gateway.auth.password"
        } else {
            "set gateway.remote.password to match gateway.auth.password"
        }
    } else if ui {
        "enter the password in Control UI settings"
    } else {
        "provide gateway auth password"
    };
    match reason {
        "token_missing" => {
            let hint = if ui {
                "paste in Control UI settings or openclaw doctor --generate-gateway-token; restart"
            } else {
                token_hint
            };
            format!("unauthorized: gateway token missing ({hint})")
        }
        "token_mismatch" => format!("unauthorized: gateway token mismatch ({token_hint})"),
        "token_missing_config" => {
            "unauthorized: gateway token not configured on gateway (set gateway.auth.token)".into()
        }
        "password_missing" => format!("unauthorized: gateway password missing ({password_hint})"),
        "password_mismatch" => format!("unauthorized: gateway password mismatch ({password_hint})"),
        "password_missing_config" => {
            "unauthorized: gateway password not configured on gateway (set gateway.auth.password)"
                .into()
        }
        "rate_limited" => {
            "unauthorized: too many failed authentication attempts (retry later)".into()
        }
        "device_token_mismatch" => {
            "unauthorized: device token mismatch (rotate/reissue device token)".into()
        }
        "scope_mismatch" => {
            "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)".into()
        }
        _ => "unauthorized".into(),
    }
}

/// `resolveAuthConnectErrorDetailCode`.
pub fn detail_code(reason: &str) -> &'static str {
    match reason {
        "token_missing" => "AUTH_TOKEN_MISSING",
        "token_mismatch" => "AUTH_TOKEN_MISMATCH",
        "token_missing_config" => "AUTH_TOKEN_NOT_CONFIGURED",
        "password_missing" => "AUTH_PASSWORD_MISSING",
        "password_mismatch" => "AUTH_PASSWORD_MISMATCH",
        "password_missing_config" => "AUTH_PASSWORD_NOT_CONFIGURED",
        "bootstrap_token_invalid" => "AUTH_BOOTSTRAP_TOKEN_INVALID",
        "rate_limited" => "AUTH_RATE_LIMITED",
        "device_token_mismatch" => "AUTH_DEVICE_TOKEN_MISMATCH",
        "scope_mismatch" => "AUTH_SCOPE_MISMATCH",
        r if r.starts_with("trusted_proxy_missing_header_") => "AUTH_IDENTITY_HEADER_REQUIRED",
        "" => "AUTH_REQUIRED",
        _ => "AUTH_UNAUTHORIZED",
    }
}

/// `details` of an auth failure: `{code, authReason, canRetryWithDeviceToken,
/// recommendedNextStep}`.
pub fn failure_details(reason: &str, can_retry_with_device_token: bool) -> Value {
    let next = if can_retry_with_device_token {
        "retry_with_device_token"
    } else {
        match reason {
            "token_missing"
            | "password_missing"
            | "token_missing_config"
            | "password_missing_config" => "update_auth_configuration",
            "token_mismatch" | "password_mismatch" | "device_token_mismatch" => {
                "update_auth_credentials"
            }
            "rate_limited" => "wait_then_retry",
            _ => "review_auth_configuration",
        }
    };
    json!({
        "code": detail_code(reason),
        "authReason": reason,
        "canRetryWithDeviceToken": can_retry_with_device_token,
        "recommendedNextStep": next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_captured_bad_token_frame() {
        let kind = ClientKind::of("cli", "cli", true);
        assert_eq!(
            failure_message("token_mismatch", kind),
            "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)"
        );
        assert_eq!(
            failure_details("token_mismatch", false),
            json!({"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch",
                   "canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"})
        );
    }

    #[test]
    fn hints_by_client_kind() {
        let backend = ClientKind::of("gateway-client", "backend", true);
        assert_eq!(
            failure_message("token_mismatch", backend),
            "unauthorized: gateway token mismatch (provide gateway auth token)"
        );
        let tui = ClientKind::of("openclaw-tui", "ui", true);
        assert!(failure_message("token_missing", tui).contains("Control UI settings"));
        assert_eq!(detail_code("weird"), "AUTH_UNAUTHORIZED");
    }
}
