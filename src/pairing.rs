//! Device pairing decisions (protocol §3.2, §3.4, §3.5), pure: the data model of paired devices,
//! pending requests and device tokens; which connects need pairing and why; when local silent
//! approval applies; device-token verification; approval authority. The storage thread
//! ([`crate::store`]) applies the decisions durably; shards hold read-only replicas.

use std::collections::BTreeMap;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    auth::secret::secret_eq,
    proto::scopes::{Scope, ScopeSet},
};

/// Pending requests expire this long after their last refresh.
pub const PENDING_TTL_MS: u64 = 300_000;

/// One per-role bearer token of a paired device. `Debug` redacts the token, so it cannot reach
/// a log line by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceToken {
    pub token: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub created_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<u64>,
}

/// A paired device row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    pub device_id: String,
    /// Raw Ed25519 key, base64url without padding.
    pub public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub approved_scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_via: Option<String>,
    pub approved_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Tokens by role.
    pub tokens: BTreeMap<String, DeviceToken>,
    /// The node capability surface operators approved (node devices only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_surface: Option<crate::nodes::surface::NodeSurface>,
    /// A node capability surface waiting for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_node_surface: Option<crate::nodes::surface::PendingSurface>,
}

impl std::fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceToken")
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .field("created_at_ms", &self.created_at_ms)
            .field("rotated_at_ms", &self.rotated_at_ms)
            .field("revoked_at_ms", &self.revoked_at_ms)
            .finish()
    }
}

impl PairedDevice {
    /// `device.pair.list` form: tokens summarized, approved scopes hidden.
    pub fn redacted(&self, connected: Option<bool>) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("approvedScopes");
            // ringgate keeps the approval time; a device is created when first approved.
            o.entry("createdAtMs").or_insert(json!(self.approved_at_ms));
            let tokens: Vec<Value> = self
                .tokens
                .values()
                .map(|t| {
                    let mut s =
                        json!({"role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at_ms});
                    for (k, val) in [
                        ("rotatedAtMs", t.rotated_at_ms),
                        ("revokedAtMs", t.revoked_at_ms),
                        ("lastUsedAtMs", t.last_used_at_ms),
                    ] {
                        if let Some(x) = val {
                            s[k] = json!(x);
                        }
                    }
                    s
                })
                .collect();
            if tokens.is_empty() {
                o.remove("tokens");
            } else {
                o.insert("tokens".into(), Value::Array(tokens));
            }
            if let Some(c) = connected {
                o.insert("connected".into(), json!(c));
            }
        }
        v
    }

    /// The live (not revoked) token for a role.
    pub fn live_token(&self, role: &str) -> Option<&DeviceToken> {
        self.tokens.get(role).filter(|t| t.revoked_at_ms.is_none())
    }
}

/// A pending pairing request (also the `device.pair.requested` payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    pub role: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    pub silent: bool,
    pub is_repair: bool,
    pub ts: u64,
}

/// Why a connect needs pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotPaired,
    RoleUpgrade,
    ScopeUpgrade,
    MetadataUpgrade,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotPaired => "not-paired",
            Reason::RoleUpgrade => "role-upgrade",
            Reason::ScopeUpgrade => "scope-upgrade",
            Reason::MetadataUpgrade => "metadata-upgrade",
        }
    }

    fn requirement(self) -> &'static str {
        match self {
            Reason::NotPaired => "device is not approved yet",
            Reason::RoleUpgrade => "device is asking for a higher role than currently approved",
            Reason::ScopeUpgrade => "device is asking for more scopes than currently approved",
            Reason::MetadataUpgrade => "device identity changed and must be re-approved",
        }
    }

    fn remediation(self) -> &'static str {
        match self {
            Reason::NotPaired => "Approve this device from the pending pairing requests.",
            Reason::RoleUpgrade => {
                "Review the requested role upgrade, then approve the pending request."
            }
            Reason::ScopeUpgrade => {
                "Review the requested scopes, then approve the pending upgrade."
            }
            Reason::MetadataUpgrade => {
                "Review the refreshed device details, then approve the pending request."
            }
        }
    }

    /// `pairing required: <requirement>`.
    pub fn message(self) -> String {
        format!("pairing required: {}", self.requirement())
    }

    /// The close reason, with the request id when there is one.
    pub fn close_reason(self, request_id: Option<&str>) -> String {
        match request_id {
            Some(id) => format!("{} (requestId: {id})", self.message()),
            None => self.message(),
        }
    }

    /// `details` of the `NOT_PAIRED` error.
    pub fn details(
        self,
        request_id: Option<&str>,
        device_id: &str,
        role: &str,
        scopes: &[String],
        existing: Option<&PairedDevice>,
    ) -> Value {
        let mut d = json!({"code": "PAIRING_REQUIRED", "reason": self.as_str()});
        if let Some(id) = request_id {
            d["requestId"] = json!(id);
        }
        d["remediationHint"] = json!(self.remediation());
        d["deviceId"] = json!(device_id);
        d["requestedRole"] = json!(role);
        d["requestedScopes"] = json!(scopes);
        if let Some(e) = existing {
            if !e.roles.is_empty() {
                d["approvedRoles"] = json!(e.roles);
            }
            if !e.approved_scopes.is_empty() {
                d["approvedScopes"] = json!(e.approved_scopes);
            }
        }
        d
    }
}

/// What a connecting device asks for.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub public_key: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub platform: Option<&'a str>,
    pub device_family: Option<&'a str>,
}

fn norm(s: Option<&str>) -> String {
    s.map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default()
}

/// Do `granted` scopes (with operator implications) cover every requested scope?
pub fn covers(granted: &[String], requested: &[String]) -> bool {
    let set = ScopeSet::from_strs(granted.iter().map(String::as_str));
    requested.iter().all(|r| match Scope::parse(r) {
        Some(s) => set.satisfies(s),
        None => set.has(Scope::Admin) || granted.contains(r),
    })
}

/// The pairing matrix: `None` when the device may connect as asked.
pub fn requirement(paired: Option<&PairedDevice>, ask: &Ask) -> Option<Reason> {
    let Some(p) = paired.filter(|p| p.public_key == ask.public_key) else {
        return Some(Reason::NotPaired);
    };
    let platform_changed =
        p.platform.is_some() && norm(p.platform.as_deref()) != norm(ask.platform);
    let family_changed =
        p.device_family.is_some() && norm(p.device_family.as_deref()) != norm(ask.device_family);
    if platform_changed || family_changed {
        return Some(Reason::MetadataUpgrade);
    }
    if !p.roles.iter().any(|r| r == ask.role) {
        return Some(Reason::RoleUpgrade);
    }
    if ask.role == "operator" && !covers(&p.approved_scopes, ask.scopes) {
        return Some(Reason::ScopeUpgrade);
    }
    None
}

/// Where the connect came from, for silent approval (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locality {
    /// Loopback peer, no proxy headers.
    pub local: bool,
    /// An `Origin` header was sent.
    pub has_origin: bool,
    /// Control UI or webchat client (may send an Origin and still be local).
    pub browser_ui: bool,
}

/// `shouldAllowSilentLocalPairing`.
pub fn silent_allowed(
    reason: Reason,
    loc: Locality,
    role: &str,
    existing: Option<&PairedDevice>,
    auth_method: &str,
    auto_approve_local: bool,
) -> bool {
    if !loc.local || !auto_approve_local {
        return false;
    }
    if loc.has_origin && !loc.browser_ui {
        return false;
    }
    match reason {
        Reason::NotPaired => true,
        Reason::RoleUpgrade => role == "operator",
        Reason::ScopeUpgrade => {
            matches!(auth_method, "none" | "token" | "password")
                && existing.is_none_or(|e| e.roles.iter().any(|r| r == role))
        }
        Reason::MetadataUpgrade => !loc.browser_ui,
    }
}

/// 32 random bytes, base64url.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a presented device token was refused (`authReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// `device_token_mismatch`.
    Mismatch,
    /// `scope_mismatch`.
    Scope,
}

/// Verifies a device token for (device, role, requested scopes), in constant time.
pub fn verify_token(
    paired: Option<&PairedDevice>,
    public_key: &str,
    role: &str,
    presented: &str,
    scopes: &[String],
) -> Result<(), TokenRefusal> {
    let p = paired
        .filter(|p| p.public_key == public_key)
        .ok_or(TokenRefusal::Mismatch)?;
    let t = p.live_token(role).ok_or(TokenRefusal::Mismatch)?;
    if !secret_eq(&t.token, presented) {
        return Err(TokenRefusal::Mismatch);
    }
    if role == "operator" && (!covers(&t.scopes, scopes) || !covers(&p.approved_scopes, scopes)) {
        return Err(TokenRefusal::Scope);
    }
    Ok(())
}

/// Can the existing token for `role` be handed out again for these scopes?
pub fn reusable_token<'a>(
    p: &'a PairedDevice,
    role: &str,
    scopes: &[String],
) -> Option<&'a DeviceToken> {
    p.live_token(role)
        .filter(|t| role != "operator" || covers(&t.scopes, scopes))
}

/// Approval authority (§3.4): the approver must hold every operator scope being granted (or be
/// admin); non-operator roles need admin. `Err` is the refusal message.
pub fn approval_allowed(pending: &PendingRequest, caller: &ScopeSet) -> Result<(), String> {
    if caller.has(Scope::Admin) {
        return Ok(());
    }
    if !caller.has(Scope::Pairing) {
        return Err("missing scope: operator.pairing".into());
    }
    if pending.roles.iter().any(|r| r != "operator") {
        return Err("missing scope: operator.admin".into());
    }
    for s in &pending.scopes {
        let ok = match Scope::parse(s) {
            Some(sc) => caller.satisfies(sc),
            None => false,
        };
        if !ok {
            return Err(format!("missing scope: {s}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(roles: &[&str], scopes: &[&str]) -> PairedDevice {
        PairedDevice {
            device_id: "d".into(),
            public_key: "pk".into(),
            display_name: None,
            platform: Some("linux".into()),
            device_family: None,
            client_id: Some("cli".into()),
            client_mode: Some("cli".into()),
            role: roles.first().map(|r| r.to_string()),
            roles: roles.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            approved_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            remote_ip: None,
            approved_via: None,
            approved_at_ms: 1,
            last_seen_at_ms: None,
            label: None,
            tokens: BTreeMap::new(),
            node_surface: None,
            pending_node_surface: None,
        }
    }

    fn ask<'a>(role: &'a str, scopes: &'a [String], platform: &'a str) -> Ask<'a> {
        Ask {
            public_key: "pk",
            role,
            scopes,
            platform: Some(platform),
            device_family: None,
        }
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn matrix() {
        let read = v(&["operator.read"]);
        let admin = v(&["operator.admin"]);
        assert_eq!(
            requirement(None, &ask("operator", &read, "linux")),
            Some(Reason::NotPaired)
        );
        let d = device(&["operator"], &["operator.write"]);
        assert_eq!(
            requirement(Some(&d), &ask("operator", &read, "Linux ")),
            None,
            "write covers read; metadata normalized"
        );
        assert_eq!(
            requirement(Some(&d), &ask("operator", &admin, "linux")),
            Some(Reason::ScopeUpgrade)
        );
        assert_eq!(
            requirement(Some(&d), &ask("node", &[], "linux")),
            Some(Reason::RoleUpgrade)
        );
        assert_eq!(
            requirement(Some(&d), &ask("operator", &read, "darwin")),
            Some(Reason::MetadataUpgrade)
        );
        let mut other_key = d.clone();
        other_key.public_key = "other".into();
        assert_eq!(
            requirement(Some(&other_key), &ask("operator", &read, "linux")),
            Some(Reason::NotPaired)
        );
    }

    #[test]
    fn silent_rules() {
        let local = Locality {
            local: true,
            has_origin: false,
            browser_ui: false,
        };
        let remote = Locality {
            local: false,
            ..local
        };
        let with_origin = Locality {
            has_origin: true,
            ..local
        };
        assert!(silent_allowed(
            Reason::NotPaired,
            local,
            "operator",
            None,
            "token",
            true
        ));
        assert!(silent_allowed(
            Reason::NotPaired,
            local,
            "node",
            None,
            "token",
            true
        ));
        assert!(!silent_allowed(
            Reason::NotPaired,
            remote,
            "operator",
            None,
            "token",
            true
        ));
        assert!(!silent_allowed(
            Reason::NotPaired,
            with_origin,
            "operator",
            None,
            "token",
            true
        ));
        assert!(!silent_allowed(
            Reason::NotPaired,
            local,
            "operator",
            None,
            "token",
            false
        ));
        let op = device(&["operator"], &["operator.read"]);
        assert!(!silent_allowed(
            Reason::RoleUpgrade,
            local,
            "node",
            Some(&op),
            "token",
            true
        ));
        assert!(silent_allowed(
            Reason::ScopeUpgrade,
            local,
            "operator",
            Some(&op),
            "token",
            true
        ));
        assert!(!silent_allowed(
            Reason::ScopeUpgrade,
            local,
            "operator",
            Some(&op),
            "device-token",
            true
        ));
    }

    #[test]
    fn device_tokens() {
        let mut d = device(&["operator"], &["operator.write"]);
        d.tokens.insert(
            "operator".into(),
            DeviceToken {
                token: "tok".into(),
                role: "operator".into(),
                scopes: v(&["operator.write"]),
                created_at_ms: 1,
                rotated_at_ms: None,
                revoked_at_ms: None,
                last_used_at_ms: None,
            },
        );
        assert_eq!(
            verify_token(Some(&d), "pk", "operator", "tok", &v(&["operator.read"])),
            Ok(())
        );
        assert_eq!(
            verify_token(Some(&d), "pk", "operator", "nope", &[]),
            Err(TokenRefusal::Mismatch)
        );
        assert_eq!(
            verify_token(Some(&d), "pk", "operator", "tok", &v(&["operator.admin"])),
            Err(TokenRefusal::Scope)
        );
        assert_eq!(
            verify_token(Some(&d), "pk", "node", "tok", &[]),
            Err(TokenRefusal::Mismatch)
        );
        assert!(reusable_token(&d, "operator", &v(&["operator.read"])).is_some());
        assert!(reusable_token(&d, "operator", &v(&["operator.admin"])).is_none());
        d.tokens.get_mut("operator").unwrap().revoked_at_ms = Some(5);
        assert_eq!(
            verify_token(Some(&d), "pk", "operator", "tok", &[]),
            Err(TokenRefusal::Mismatch)
        );
        assert_eq!(new_token().len(), 43);
    }

    #[test]
    fn approval_authority() {
        let pending = |roles: &[&str], scopes: &[&str]| PendingRequest {
            request_id: "r".into(),
            device_id: "d".into(),
            public_key: "pk".into(),
            display_name: None,
            platform: None,
            device_family: None,
            client_id: None,
            client_mode: None,
            role: roles[0].into(),
            roles: v(roles),
            scopes: v(scopes),
            remote_ip: None,
            silent: false,
            is_repair: false,
            ts: 0,
        };
        let pairing_write = ScopeSet::from_strs(["operator.pairing", "operator.write"]);
        assert!(
            approval_allowed(&pending(&["operator"], &["operator.read"]), &pairing_write).is_ok()
        );
        assert_eq!(
            approval_allowed(&pending(&["operator"], &["operator.admin"]), &pairing_write),
            Err("missing scope: operator.admin".into())
        );
        assert_eq!(
            approval_allowed(&pending(&["node"], &[]), &pairing_write),
            Err("missing scope: operator.admin".into())
        );
        assert!(approval_allowed(
            &pending(&["node"], &[]),
            &ScopeSet::from_strs(["operator.admin"])
        )
        .is_ok());
        assert!(approval_allowed(
            &pending(&["operator"], &[]),
            &ScopeSet::from_strs(["operator.write"])
        )
        .is_err());
    }

    #[test]
    fn redaction_hides_secrets() {
        let mut d = device(&["operator"], &["operator.write"]);
        d.tokens.insert(
            "operator".into(),
            DeviceToken {
                token: "secret-token".into(),
                role: "operator".into(),
                scopes: vec![],
                created_at_ms: 1,
                rotated_at_ms: None,
                revoked_at_ms: None,
                last_used_at_ms: None,
            },
        );
        let r = d.redacted(Some(true));
        let s = r.to_string();
        assert!(!s.contains("secret-token"));
        assert!(r.get("approvedScopes").is_none());
        assert_eq!(r["connected"], true);
        assert_eq!(r["tokens"][0]["role"], "operator");
    }
}
