//! The connect gate (protocol §2.5): given schema-valid `connect` params and what the transport
//! knows about the peer, decide accept (role, effective scopes, auth method) or reject (error
//! shape + close code). Pure: no sockets, no clock, no shared state; the rate limiter is
//! consulted by the caller.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::{
    errors::{close, code, truncate_reason, ErrorShape},
    scopes::Role,
};
use crate::{
    auth::{
        device::{self, DeviceProof, SignedFields, VerifiedDevice},
        messages::{failure_details, failure_message, ClientKind},
        secret::{self, AuthMode, SecretCheck},
    },
    pairing::{self, PairedDevice, TokenRefusal},
};

pub const PROTOCOL_VERSION: u64 = 4;
pub const MIN_NODE_PROTOCOL: u64 = 3;
pub const MIN_PROBE_PROTOCOL: u64 = 3;

/// What the transport and config contribute to the decision.
#[derive(Debug, Clone)]
pub struct Peer<'a> {
    pub ip: IpAddr,
    /// `Origin` request header.
    pub origin: Option<&'a str>,
    /// `Host` request header.
    pub host: Option<&'a str>,
    /// `x-openclaw-scopes` request header (caps the granted scopes when present).
    pub scopes_header: Option<&'a str>,
    /// In trusted-proxy mode: the user the proxy named in the upgrade, or why not.
    pub proxy_identity: Option<&'a Result<String, String>>,
    /// A loopback peer that forwarded nothing (the trusted-proxy password fallback).
    pub direct_local: bool,
}

/// Inputs of one connect decision.
#[derive(Debug, Clone)]
pub struct ConnectInput<'a> {
    pub params: &'a Value,
    pub challenge_nonce: &'a str,
    pub now_ms: u64,
    pub peer: Peer<'a>,
    pub auth: &'a AuthMode,
    pub allowed_origins: &'a [String],
    /// The paired-device replica row for `device.id`, if any (for device-token auth).
    pub paired: Option<&'a PairedDevice>,
}

/// Client metadata kept for presence and logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientInfo {
    pub id: String,
    pub mode: String,
    pub version: String,
    pub platform: String,
    pub display_name: Option<String>,
    pub device_family: Option<String>,
    pub model_identifier: Option<String>,
    pub instance_id: Option<String>,
    pub time_zone: Option<String>,
}

/// An accepted connect.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub role: Role,
    /// Effective scopes, the live authority for every later request.
    pub scopes: Vec<String>,
    /// `hello-ok.auth.method`.
    pub auth_method: &'static str,
    pub client: ClientInfo,
    pub caps: Vec<String>,
    /// Node surface declared at connect (`commands`, `permissions`, `pathEnv`); empty for
    /// operators.
    pub commands: Vec<String>,
    pub permissions: Option<serde_json::Value>,
    pub path_env: Option<String>,
    pub device: Option<VerifiedDevice>,
    /// `modelCatalog`: the scope a Control UI asks its first model catalog for, pushed as
    /// `models.snapshot` after `hello-ok` when it also declares the `model-catalog-snapshot` cap.
    pub model_catalog: Option<serde_json::Value>,
}

/// A rejected connect: send `error` in a `res` (when `respond`) then close.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub error: ErrorShape,
    pub close_code: u16,
    pub close_reason: String,
    /// A shared-secret failure: counts toward the per-IP limiter.
    pub auth_failure: bool,
}

impl Rejected {
    fn policy(error: ErrorShape) -> Self {
        let reason = truncate_reason(&error.message);
        Rejected {
            error,
            close_code: close::POLICY,
            close_reason: reason,
            auth_failure: false,
        }
    }
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn str_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// True when a pre-auth frame claims worker identity on the normal ingress (close 1008
/// `invalid-handshake` before any other check).
pub fn claims_worker(params: &Value) -> bool {
    let client = params.get("client");
    s(params, "role") == Some("worker")
        || client.and_then(|c| s(c, "id")) == Some("openclaw-worker")
        || client.and_then(|c| s(c, "mode")) == Some("worker")
}

/// Protocol range check (§1.4).
fn protocol_ok(min: u64, max: u64, role: Option<&str>, mode: &str) -> bool {
    (min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= max)
        || (mode == "probe" && min <= PROTOCOL_VERSION && max >= MIN_PROBE_PROTOCOL)
        || (role == Some("node")
            && mode == "node"
            && min <= MIN_NODE_PROTOCOL
            && MIN_NODE_PROTOCOL <= max)
}

fn host_part(hostport: &str) -> &str {
    let h = hostport.trim();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h)
}

fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://")?.1;
    Some(host_part(rest.split('/').next().unwrap_or(rest)))
}

fn is_loopback_host(h: &str) -> bool {
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_private_host(h: &str) -> bool {
    if is_loopback_host(h) || h.ends_with(".local") || h.ends_with(".ts.net") {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_private() || v4.is_link_local(),
        Ok(IpAddr::V6(v6)) => (v6.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

/// Origin policy (§2.5 step 5): `Err(reason)` when refused.
fn check_origin(
    client_id: &str,
    mode: &str,
    peer: &Peer,
    allowed: &[String],
) -> Result<(), &'static str> {
    let browser_client = matches!(
        client_id,
        "openclaw-control-ui" | "openclaw-browser-copilot"
    ) || mode == "webchat"
        || client_id == "webchat-ui";
    let Some(origin) = peer.origin.filter(|o| !o.is_empty() && *o != "null") else {
        return if browser_client {
            Err("origin missing or invalid")
        } else {
            Ok(())
        };
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    let Some(oh) = origin_host(origin) else {
        return Err("origin missing or invalid");
    };
    if let Some(host) = peer.host.map(host_part) {
        if oh.eq_ignore_ascii_case(host) && is_private_host(oh) {
            return Ok(());
        }
    }
    if peer.ip.is_loopback() && is_loopback_host(oh) {
        return Ok(());
    }
    Err("origin not allowed")
}

/// A protocol version as the client sent it, saturated to `u64`: an integer too large for
/// `u64` (`1e19`, `18446744073709551616`, which JSON carries as a float) is a huge version,
/// never 0 — so it fails the range check instead of slipping under it.
fn protocol_number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .unwrap_or(0)
}

/// Evaluates a connect whose params passed the schema.
pub fn evaluate(input: &ConnectInput) -> Result<Accepted, Rejected> {
    let p = input.params;
    let client = &p["client"];
    let client_id = s(client, "id").unwrap_or_default();
    let mode = s(client, "mode").unwrap_or_default();
    let min = protocol_number(&p["minProtocol"]);
    let max = protocol_number(&p["maxProtocol"]);
    let role_raw = s(p, "role");

    // Step 2: protocol range → 1002.
    if !protocol_ok(min, max, role_raw, mode) {
        let error = ErrorShape::invalid("protocol mismatch").with_details(json!({
            "code": "PROTOCOL_MISMATCH",
            "clientMinProtocol": min,
            "clientMaxProtocol": max,
            "expectedProtocol": PROTOCOL_VERSION,
            "minimumProbeProtocol": MIN_PROBE_PROTOCOL,
        }));
        return Err(Rejected {
            error,
            close_code: close::PROTOCOL,
            close_reason: "protocol mismatch".into(),
            auth_failure: false,
        });
    }

    // Step 3: role.
    let role = match role_raw.unwrap_or("operator") {
        "operator" => Role::Operator,
        "node" => Role::Node,
        _ => return Err(Rejected::policy(ErrorShape::invalid("invalid role"))),
    };
    let requested_scopes = str_list(p.get("scopes"));

    // Step 5: origin policy for browser clients and any client that sent an Origin.
    if let Err(reason) = check_origin(client_id, mode, &input.peer, input.allowed_origins) {
        return Err(Rejected::policy(
            ErrorShape::invalid(
                "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)",
            )
            .with_details(json!({"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": reason})),
        ));
    }

    // Step 6: shared secret.
    let auth = p.get("auth");
    let token = auth.and_then(|a| s(a, "token"));
    let password = auth.and_then(|a| s(a, "password"));
    let (secret_result, proxy_user) = match input.auth {
        AuthMode::TrustedProxy(tp) => trusted_proxy_secret(tp, &input.peer, password),
        mode => (secret::check(mode, token, password), None),
    };
    let local = input.peer.ip.is_loopback();
    let kind = ClientKind::of(client_id, mode, local);
    let device_param = p.get("device");
    let auth_failed = |reason: &str| -> Rejected {
        let can_retry = reason == "token_mismatch"
            && device_param.is_some()
            && token.is_some()
            && auth.and_then(|a| a.get("deviceToken")).is_none();
        let message = failure_message(reason, kind);
        let error =
            ErrorShape::invalid(message.clone()).with_details(failure_details(reason, can_retry));
        Rejected {
            error,
            close_code: close::POLICY,
            close_reason: truncate_reason(&message),
            // A proxy refusing its user is not a guess at a secret (the original counts only
            // password mismatches in trusted-proxy mode).
            auth_failure: !reason.starts_with("trusted_proxy_")
                && reason != "proxy_attribution_required",
        }
    };

    // Step 7: missing device identity policy.
    let backend_self = client_id == "gateway-client" && mode == "backend" && local;
    let cli_local = client_id == "cli" && mode == "cli" && local;
    let Some(device_param) = device_param else {
        if let SecretCheck::Failed(reason) = &secret_result {
            return Err(auth_failed(reason));
        }
        // Operator UIs (Control UI, browser copilot, TUI) need a device identity — except
        // behind an identity-aware proxy, which vouches for the user instead.
        let control_ui = matches!(
            client_id,
            "openclaw-control-ui" | "openclaw-browser-copilot" | "openclaw-tui"
        );
        let proxy_vouches = control_ui && role == Role::Operator && proxy_user.is_some();
        if proxy_vouches {
            let AuthMode::TrustedProxy(tp) = input.auth else {
                unreachable!("a proxy user only in trusted-proxy mode")
            };
            let user = proxy_user.unwrap_or_default();
            let granted: Vec<&str> = tp.scopes_of(user).iter().map(String::as_str).collect();
            let scopes = cap_scopes(&granted, input.peer.scopes_header);
            return Ok(accepted(role, scopes, "trusted-proxy", client, p, None));
        }
        if control_ui && !matches!(input.auth, AuthMode::None) {
            return Err(Rejected::policy(
                ErrorShape::invalid(
                    "control ui requires device identity (use HTTPS or localhost secure context)",
                )
                .with_details(json!({"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"})),
            ));
        }
        if role != Role::Operator {
            return Err(Rejected::policy(
                ErrorShape::new(code::NOT_PAIRED, "device identity required")
                    .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
            ));
        }
        let SecretCheck::Ok(method) = secret_result else {
            unreachable!("failures returned above")
        };
        // Scope clearing: a device-less shared-secret connection gets no scopes, except the
        // local CLI and the local backend self-connect.
        let scopes = if cli_local || backend_self {
            cap_scopes(&requested_scopes, input.peer.scopes_header)
        } else {
            Vec::new()
        };
        return Ok(accepted(role, scopes, method, client, p, None));
    };

    // Step 8: device proof.
    let proof = DeviceProof {
        id: s(device_param, "id").unwrap_or_default(),
        public_key: s(device_param, "publicKey").unwrap_or_default(),
        signature: s(device_param, "signature").unwrap_or_default(),
        signed_at: device_param["signedAt"].as_u64().unwrap_or(0),
        nonce: s(device_param, "nonce").unwrap_or_default(),
    };
    let signed_token = auth
        .and_then(|a| {
            s(a, "token")
                .or(s(a, "deviceToken"))
                .or(s(a, "bootstrapToken"))
        })
        .unwrap_or("");
    let fields = SignedFields {
        client_id,
        client_mode: mode,
        role: role.as_str(),
        scopes: &requested_scopes,
        token: signed_token,
        platform: s(client, "platform"),
        device_family: s(client, "deviceFamily"),
    };
    let verified =
        device::verify(&proof, &fields, input.challenge_nonce, input.now_ms).map_err(|e| {
            Rejected::policy(
                ErrorShape::invalid(e.message)
                    .with_details(json!({"code": e.code, "reason": e.reason})),
            )
        })?;

    // Step 9: credentials: the shared secret, else a device token (the explicit
    // `auth.deviceToken`, else `auth.token` as a fallback) checked against the paired device.
    let method = match &secret_result {
        SecretCheck::Ok(m) => *m,
        SecretCheck::Failed(reason) => {
            let explicit = auth.and_then(|a| s(a, "deviceToken"));
            let scopes: Vec<String> = requested_scopes.iter().map(|s| s.to_string()).collect();
            let pk = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                verified.public_key,
            );
            match explicit.or(token) {
                Some(t) => {
                    match pairing::verify_token(input.paired, &pk, role.as_str(), t, &scopes) {
                        Ok(()) => "device-token",
                        Err(refusal) if explicit.is_some() => {
                            return Err(auth_failed(match refusal {
                                TokenRefusal::Mismatch => "device_token_mismatch",
                                TokenRefusal::Scope => "scope_mismatch",
                            }))
                        }
                        Err(_) => return Err(auth_failed(reason)),
                    }
                }
                None => return Err(auth_failed(reason)),
            }
        }
    };

    // Step 10 (pairing) needs the store: the caller decides with `crate::pairing`. A proxy
    // user's identity scopes join the requested ones (operators only).
    let mut requested_scopes = requested_scopes;
    if let (Some(user), AuthMode::TrustedProxy(tp), Role::Operator) = (proxy_user, input.auth, role)
    {
        for s in tp.scopes_of(user) {
            if !requested_scopes.contains(&s.as_str()) {
                requested_scopes.push(s);
            }
        }
    }
    let scopes = cap_scopes(&requested_scopes, input.peer.scopes_header);
    Ok(accepted(role, scopes, method, client, p, Some(verified)))
}

/// The shared-secret step in trusted-proxy mode: the user the proxy named at the upgrade;
/// failing that, a local client connecting directly may use `gateway.auth.password`.
fn trusted_proxy_secret<'a>(
    tp: &crate::auth::trusted_proxy::TrustedProxyAuth,
    peer: &Peer<'a>,
    password: Option<&str>,
) -> (SecretCheck, Option<&'a str>) {
    match peer.proxy_identity {
        Some(Ok(user)) => (SecretCheck::Ok("trusted-proxy"), Some(user.as_str())),
        other => {
            if let (Some(pw), true, Some(given)) = (&tp.password, peer.direct_local, password) {
                let r = if secret::secret_eq(pw, given) {
                    SecretCheck::Ok("password")
                } else {
                    SecretCheck::Failed("password_mismatch".into())
                };
                return (r, None);
            }
            let reason = match other {
                Some(Err(r)) => r.clone(),
                _ => "trusted_proxy_no_request".to_owned(),
            };
            (SecretCheck::Failed(reason.into()), None)
        }
    }
}

/// Applies the `x-openclaw-scopes` cap: present-but-empty ⇒ no scopes.
fn cap_scopes(requested: &[&str], header: Option<&str>) -> Vec<String> {
    match header {
        None => requested.iter().map(|s| s.to_string()).collect(),
        Some(h) => {
            let allowed: Vec<&str> = h
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            requested
                .iter()
                .filter(|s| allowed.contains(s))
                .map(|s| s.to_string())
                .collect()
        }
    }
}

fn opt_string(v: &Value, k: &str) -> Option<String> {
    s(v, k).map(str::to_owned)
}

fn accepted(
    role: Role,
    scopes: Vec<String>,
    method: &'static str,
    client: &Value,
    p: &Value,
    device: Option<VerifiedDevice>,
) -> Accepted {
    Accepted {
        role,
        scopes,
        auth_method: method,
        client: ClientInfo {
            id: opt_string(client, "id").unwrap_or_default(),
            mode: opt_string(client, "mode").unwrap_or_default(),
            version: opt_string(client, "version").unwrap_or_default(),
            platform: opt_string(client, "platform").unwrap_or_default(),
            display_name: opt_string(client, "displayName"),
            device_family: opt_string(client, "deviceFamily"),
            model_identifier: opt_string(client, "modelIdentifier"),
            instance_id: opt_string(client, "instanceId"),
            time_zone: opt_string(client, "timeZone"),
        },
        caps: str_list(p.get("caps"))
            .into_iter()
            .map(str::to_owned)
            .collect(),
        commands: str_list(p.get("commands"))
            .into_iter()
            .map(str::to_owned)
            .collect(),
        permissions: p.get("permissions").filter(|v| v.is_object()).cloned(),
        path_env: opt_string(p, "pathEnv"),
        device,
        model_catalog: p.get("modelCatalog").filter(|v| v.is_object()).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    const LOOPBACK: &str = "127.0.0.1";
    const REMOTE: &str = "10.0.0.9";

    fn params(mode: &str, scopes: &[&str], token: Option<&str>) -> Value {
        let mut p = json!({"minProtocol":4,"maxProtocol":4,
            "client":{"id":"cli","version":"1","platform":"linux","mode":mode},
            "role":"operator","scopes":scopes,"caps":[]});
        if let Some(t) = token {
            p["auth"] = json!({"token": t});
        }
        p
    }

    fn run(p: &Value, ip: &str, auth: &AuthMode) -> Result<Accepted, Rejected> {
        evaluate(&ConnectInput {
            params: p,
            challenge_nonce: "nonce",
            now_ms: 1_000_000,
            peer: Peer {
                ip: ip.parse().unwrap(),
                origin: None,
                host: None,
                scopes_header: None,
                proxy_identity: None,
                direct_local: false,
            },
            auth,
            allowed_origins: &[],
            paired: None,
        })
    }

    fn tok() -> AuthMode {
        AuthMode::Token("secret".into())
    }

    #[test]
    fn cli_local_keeps_scopes() {
        let a = run(
            &params("cli", &["operator.admin"], Some("secret")),
            LOOPBACK,
            &tok(),
        )
        .unwrap();
        assert_eq!(a.scopes, vec!["operator.admin"]);
        assert_eq!(a.auth_method, "token");
        assert_eq!(a.role, Role::Operator);
    }

    #[test]
    fn out_of_range_protocol_numbers_are_a_mismatch() {
        // Sent as text so the numbers reach the gate as JSON parses them.
        for min in ["18446744073709551616", "1e19", "18446744073709551615", "5"] {
            let text = format!(
                r#"{{"minProtocol":{min},"maxProtocol":4,"client":{{"id":"cli","version":"1","platform":"linux","mode":"cli"}},"auth":{{"token":"secret"}}}}"#
            );
            let p: Value = serde_json::from_str(&text).unwrap();
            let r = run(&p, LOOPBACK, &tok());
            let rej = r
                .err()
                .unwrap_or_else(|| panic!("minProtocol {min} accepted"));
            assert_eq!(rej.close_code, close::PROTOCOL, "minProtocol {min}");
            assert_eq!(
                rej.error.details.as_ref().unwrap()["code"],
                "PROTOCOL_MISMATCH"
            );
        }
    }

    #[test]
    fn probe_and_remote_scopes_cleared() {
        let a = run(
            &params("probe", &["operator.read"], Some("secret")),
            LOOPBACK,
            &tok(),
        )
        .unwrap();
        assert!(a.scopes.is_empty());
        let a = run(
            &params("cli", &["operator.admin"], Some("secret")),
            REMOTE,
            &tok(),
        )
        .unwrap();
        assert!(a.scopes.is_empty());
    }

    #[test]
    fn bad_token_matches_vector() {
        let r = run(
            &params("cli", &["operator.admin"], Some("wrong")),
            LOOPBACK,
            &tok(),
        )
        .unwrap_err();
        assert_eq!(r.close_code, 1008);
        assert_eq!(r.error.code, "INVALID_REQUEST");
        assert_eq!(
            r.error.message,
            "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)"
        );
        assert_eq!(r.close_reason, r.error.message);
        assert_eq!(
            r.error.details.as_ref().unwrap()["code"],
            "AUTH_TOKEN_MISMATCH"
        );
        assert!(r.auth_failure);
        let r = run(&params("cli", &[], None), LOOPBACK, &tok()).unwrap_err();
        assert_eq!(
            r.error.details.as_ref().unwrap()["code"],
            "AUTH_TOKEN_MISSING"
        );
    }

    #[test]
    fn protocol_ranges() {
        let mut p = params("cli", &[], Some("secret"));
        p["minProtocol"] = json!(5);
        p["maxProtocol"] = json!(6);
        let r = run(&p, LOOPBACK, &tok()).unwrap_err();
        assert_eq!(r.close_code, 1002);
        assert_eq!(r.close_reason, "protocol mismatch");
        assert_eq!(
            *r.error.details.unwrap(),
            json!({"code":"PROTOCOL_MISMATCH","clientMinProtocol":5,"clientMaxProtocol":6,"expectedProtocol":4,"minimumProbeProtocol":3})
        );
        let mut p = params("probe", &[], Some("secret"));
        p["minProtocol"] = json!(3);
        p["maxProtocol"] = json!(3);
        assert!(run(&p, LOOPBACK, &tok()).is_ok(), "probe accepts 3..");
        let mut p = params("cli", &[], Some("secret"));
        p["minProtocol"] = json!(3);
        p["maxProtocol"] = json!(3);
        assert_eq!(run(&p, LOOPBACK, &tok()).unwrap_err().close_code, 1002);
    }

    #[test]
    fn invalid_role_and_node_without_device() {
        let mut p = params("cli", &[], Some("secret"));
        p["role"] = json!("admin");
        let r = run(&p, LOOPBACK, &tok()).unwrap_err();
        assert_eq!(
            (r.error.message.as_str(), r.close_code),
            ("invalid role", 1008)
        );
        let mut p = params("node", &[], Some("secret"));
        p["role"] = json!("node");
        let r = run(&p, LOOPBACK, &tok()).unwrap_err();
        assert_eq!(r.error.code, "NOT_PAIRED");
        assert_eq!(r.error.details.unwrap()["code"], "DEVICE_IDENTITY_REQUIRED");
    }

    #[test]
    fn origin_policy() {
        let p = params("cli", &[], Some("secret"));
        let run_origin = |origin: &str, host: &str, ip: &str, allowed: &[String]| {
            evaluate(&ConnectInput {
                params: &p,
                challenge_nonce: "n",
                now_ms: 0,
                peer: Peer {
                    ip: ip.parse().unwrap(),
                    origin: Some(origin),
                    host: Some(host),
                    scopes_header: None,
                    proxy_identity: None,
                    direct_local: false,
                },
                auth: &tok(),
                allowed_origins: allowed,
                paired: None,
            })
        };
        assert!(run_origin("http://127.0.0.1:18789", "127.0.0.1:18789", LOOPBACK, &[]).is_ok());
        let r = run_origin("https://evil.example", "127.0.0.1:18789", LOOPBACK, &[]).unwrap_err();
        assert_eq!(
            r.error.details.unwrap()["code"],
            "CONTROL_UI_ORIGIN_NOT_ALLOWED"
        );
        assert!(run_origin(
            "https://ok.example",
            "gw:1",
            REMOTE,
            &["https://ok.example".into()]
        )
        .is_ok());
        // A browser client with no Origin fails.
        let mut ui = params("webchat", &[], Some("secret"));
        ui["client"]["id"] = json!("webchat-ui");
        let r = run(&ui, LOOPBACK, &tok()).unwrap_err();
        assert_eq!(
            r.error.details.unwrap()["reason"],
            "origin missing or invalid"
        );
    }

    #[test]
    fn device_proof_is_verified_before_pairing() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let raw = key.verifying_key().to_bytes();
        let id = device::device_id(&raw);
        let mut p = params("cli", &["operator.read"], Some("secret"));
        let msg = format!("v3|{id}|cli|cli|operator|operator.read|1000000|secret|nonce|linux|");
        let sig = URL_SAFE_NO_PAD.encode(key.sign(msg.as_bytes()).to_bytes());
        p["device"] = json!({"id": id, "publicKey": URL_SAFE_NO_PAD.encode(raw), "signature": sig,
                             "signedAt": 1_000_000u64, "nonce": "nonce"});
        let a = run(&p, LOOPBACK, &tok()).unwrap();
        assert_eq!(a.device.as_ref().unwrap().device_id, id);
        assert_eq!(
            a.scopes,
            vec!["operator.read"],
            "device connections keep their scopes"
        );
        // The token is part of the signed payload: changing it breaks the signature.
        let mut wrong = p.clone();
        wrong["auth"]["token"] = json!("wrong");
        let r = run(&wrong, LOOPBACK, &tok()).unwrap_err();
        assert_eq!(
            r.error.details.as_ref().unwrap()["code"],
            "DEVICE_AUTH_SIGNATURE_INVALID"
        );
        // A forged signature is reported before pairing.
        p["device"]["signature"] = json!(URL_SAFE_NO_PAD.encode([0u8; 64]));
        let r = run(&p, LOOPBACK, &tok()).unwrap_err();
        assert_eq!(
            r.error.details.unwrap()["code"],
            "DEVICE_AUTH_SIGNATURE_INVALID"
        );
    }

    #[test]
    fn worker_claims() {
        assert!(claims_worker(&json!({"role": "worker"})));
        assert!(claims_worker(&json!({"client": {"mode": "worker"}})));
        assert!(!claims_worker(&json!({"client": {"mode": "cli"}})));
    }

    fn proxied(
        p: &Value,
        identity: Result<String, String>,
        direct_local: bool,
        scopes_header: Option<&str>,
    ) -> Result<Accepted, Rejected> {
        let mut tp = crate::auth::trusted_proxy::TrustedProxyAuth {
            user_header: "x-forwarded-user".into(),
            password: Some("local-pw".into()),
            ..Default::default()
        };
        tp.identity_scopes.insert(
            "ann".into(),
            vec!["operator.read".into(), "operator.write".into()],
        );
        let auth = AuthMode::TrustedProxy(Box::new(tp));
        evaluate(&ConnectInput {
            params: p,
            challenge_nonce: "nonce",
            now_ms: 1_000_000,
            peer: Peer {
                ip: REMOTE.parse().unwrap(),
                origin: Some("https://gw.example.com"),
                host: Some("gw.example.com"),
                scopes_header,
                proxy_identity: Some(&identity),
                direct_local,
            },
            auth: &auth,
            allowed_origins: &["https://gw.example.com".to_owned()],
            paired: None,
        })
    }

    #[test]
    fn trusted_proxy_users_and_refusals() {
        let mut ui = params("webchat", &["operator.admin"], None);
        ui["client"]["id"] = json!("openclaw-control-ui");
        // A device-less Control UI the proxy vouches for: its own scopes are cleared, the
        // user's identity scopes granted, capped by the proxy's header.
        let a = proxied(&ui, Ok("ann".into()), false, None).unwrap();
        assert_eq!(a.auth_method, "trusted-proxy");
        assert_eq!(a.scopes, ["operator.read", "operator.write"]);
        let a = proxied(&ui, Ok("ann".into()), false, Some("operator.read")).unwrap();
        assert_eq!(a.scopes, ["operator.read"]);
        // Another device-less client still needs a device.
        let cli = params("cli", &["operator.admin"], None);
        let e = proxied(&cli, Ok("ann".into()), false, None);
        assert!(e.is_ok_and(|a| a.scopes.is_empty()));
        // Refusals say "unauthorized"; the reason and its code are in the details.
        let e = proxied(
            &ui,
            Err("trusted_proxy_missing_header_X-Auth".into()),
            false,
            None,
        )
        .unwrap_err();
        assert_eq!(e.error.message, "unauthorized");
        assert_eq!(
            e.error.details.as_ref().unwrap()["code"],
            "AUTH_IDENTITY_HEADER_REQUIRED"
        );
        assert_eq!(
            e.error.details.as_ref().unwrap()["authReason"],
            "trusted_proxy_missing_header_X-Auth"
        );
        assert_eq!(e.close_reason, "unauthorized");
        let e = proxied(
            &ui,
            Err("trusted_proxy_untrusted_source".into()),
            false,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.error.details.as_ref().unwrap()["code"],
            "AUTH_UNAUTHORIZED"
        );
        // A local client connecting directly may use the password; a remote one may not.
        let mut local = params("cli", &["operator.read"], None);
        local["auth"] = json!({"password": "local-pw"});
        let why = Err("trusted_proxy_untrusted_source".to_owned());
        assert_eq!(
            proxied(&local, why.clone(), true, None)
                .unwrap()
                .auth_method,
            "password"
        );
        assert!(proxied(&local, why.clone(), false, None).is_err());
        local["auth"] = json!({"password": "nope"});
        let e = proxied(&local, why, true, None).unwrap_err();
        assert_eq!(
            e.error.details.as_ref().unwrap()["authReason"],
            "password_mismatch"
        );
    }
}
