//! Node capability pairing (protocol §3.4, second layer): a node's declared commands, filtered
//! by the platform allowlist, must be approved by an operator before they can be invoked. The
//! approved surface and the pending request live on the node's device row (durable).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::pairing::PairedDevice;

/// Pending node requests expire this long after the node's last retry.
pub const PENDING_TTL_MS: u64 = 5 * 60_000;

/// An approved surface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSurface {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub created_at_ms: u64,
    pub approved_at_ms: u64,
}

/// A surface waiting for approval (also the `node.pair.requested` payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingSurface {
    pub request_id: String,
    pub node_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub required_approve_scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent: Option<bool>,
    pub ts: u64,
}

/// Commands a node may expose by default (the original's Linux node-host allowlist, applied to
/// every platform): others (`dir.*`, `file.*`, `workspace.*`, …) are withheld from the surface.
const ALLOWLIST: &[&str] = &[
    "system.run",
    "system.run.prepare",
    "system.which",
    "system.execApprovals.get",
    "system.execApprovals.set",
    "system.notify",
    "fs.listDir",
    "terminal.upload",
    "browser.proxy",
    "browser.proxy.upload.v1",
    "mcp.tools.call.v1",
    "screen.snapshot",
    "desktop.stream",
    "computer.act",
];

/// Commands whose approval needs `operator.admin` (`node-pairing-authz.ts`).
const ADMIN_COMMANDS: &[&str] = &[
    "system.run",
    "system.run.prepare",
    "system.which",
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "system.execApprovals.get",
    "system.execApprovals.set",
];

/// Commands whose invocation needs `operator.admin`.
pub const ADMIN_INVOKE: &[&str] = &[
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "terminal.upload",
];

pub fn allowlisted(command: &str) -> bool {
    ALLOWLIST.contains(&command) || command.starts_with("ollama.")
}

/// The declared commands a surface request may carry.
pub fn admissible(commands: &[String]) -> Vec<String> {
    let mut v: Vec<String> = commands
        .iter()
        .filter(|c| allowlisted(c))
        .cloned()
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Scopes an approver needs for these commands.
pub fn required_scopes(commands: &[String]) -> Vec<String> {
    let mut v = vec!["operator.pairing".to_owned()];
    if commands
        .iter()
        .any(|c| ADMIN_COMMANDS.contains(&c.as_str()))
    {
        v.push("operator.admin".into());
    } else if !commands.is_empty() {
        v.push("operator.write".into());
    }
    v
}

/// Does the approved surface already cover these commands?
pub fn covered(d: &PairedDevice, commands: &[String]) -> bool {
    d.node_surface
        .as_ref()
        .is_some_and(|s| commands.iter().all(|c| s.commands.contains(c)))
}

/// The pending request, unless expired.
pub fn live_pending(d: &PairedDevice, now: u64) -> Option<&PendingSurface> {
    d.pending_node_surface
        .as_ref()
        .filter(|p| now.saturating_sub(p.ts) < PENDING_TTL_MS)
}

/// `approvalState` of a node device.
pub fn approval_state(d: Option<&PairedDevice>, now: u64) -> &'static str {
    match d {
        Some(d) => match (&d.node_surface, live_pending(d, now)) {
            (Some(_), Some(_)) => "pending-reapproval",
            (Some(_), None) => "approved",
            (None, Some(_)) => "pending-approval",
            (None, None) => "unapproved",
        },
        None => "unapproved",
    }
}

/// A `node.pair.list` `paired` row.
pub fn paired_json(d: &PairedDevice, s: &NodeSurface) -> Value {
    json!({
        "nodeId": d.device_id,
        "clientId": d.client_id,
        "clientMode": d.client_mode,
        "displayName": d.label.clone().or(d.display_name.clone()),
        "platform": d.platform,
        "version": s.version,
        "deviceFamily": d.device_family,
        "caps": s.caps,
        "commands": s.commands,
        "createdAtMs": s.created_at_ms,
        "approvedAtMs": s.approved_at_ms,
        "lastSeenAtMs": d.last_seen_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_and_required_scopes() {
        let declared: Vec<String> = ["system.which", "file.fetch", "ollama.chat", "dir.list"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = admissible(&declared);
        assert_eq!(a, ["ollama.chat", "system.which"]);
        assert_eq!(required_scopes(&a), ["operator.pairing", "operator.admin"]);
        assert_eq!(
            required_scopes(&["ollama.chat".to_string()]),
            ["operator.pairing", "operator.write"]
        );
        assert_eq!(required_scopes(&[]), ["operator.pairing"]);
    }
}
