//! The replicated registry of connected nodes. A node's own shard announces it when it opens
//! (`Up`) and when it closes (`Down`); every shard applies the same deltas, so `node.list` and
//! the routing of `node.invoke` are answered locally.

use std::{collections::HashMap, sync::Arc};

use serde_json::{json, Value};

/// A connected node, as declared at connect. It crosses to other hosts of a cluster as JSON;
/// `host` is filled in by the receiving host.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    /// The cluster host the node is connected to (`None`: this one).
    #[serde(skip)]
    pub host: Option<Arc<str>>,
    /// Where the node's connection lives (a shard of `host`).
    pub shard: usize,
    pub conn: u64,
    pub conn_id: String,
    pub client_id: String,
    pub client_mode: String,
    pub display_name: Option<String>,
    pub platform: String,
    pub version: String,
    pub device_family: Option<String>,
    pub model_identifier: Option<String>,
    pub remote_ip: Option<String>,
    pub caps: Vec<String>,
    /// Commands the node declared (not all may be approved).
    pub commands: Vec<String>,
    pub permissions: Option<Value>,
    pub path_env: Option<String>,
    pub connected_at_ms: u64,
    /// The latest `node.host.stats` (with `updatedAtMs`).
    pub host_stats: Option<Value>,
}

/// A registry change.
#[derive(Debug, Clone)]
pub enum NodeDelta {
    Up(Arc<NodeInfo>),
    Down {
        node_id: String,
        conn_id: String,
        at_ms: u64,
    },
}

/// Connected nodes, and when known nodes last disconnected.
#[derive(Default)]
pub struct NodeRegistry {
    pub live: HashMap<String, Arc<NodeInfo>>,
    pub last_disconnected: HashMap<String, u64>,
}

impl NodeRegistry {
    /// Applies a delta; a `Down` for a connection that was already replaced is ignored.
    pub fn apply(&mut self, d: &NodeDelta) {
        match d {
            NodeDelta::Up(n) => {
                self.live.insert(n.node_id.clone(), n.clone());
            }
            NodeDelta::Down {
                node_id,
                conn_id,
                at_ms,
            } => {
                if self
                    .live
                    .get(node_id)
                    .is_some_and(|n| &n.conn_id == conn_id)
                {
                    self.live.remove(node_id);
                    self.last_disconnected.insert(node_id.clone(), *at_ms);
                }
            }
        }
    }

    /// Host `host` left the cluster: its nodes are gone (their ids, for `node.presence`).
    pub fn remove_host(&mut self, host: &str, at_ms: u64) -> Vec<String> {
        let gone: Vec<String> = self
            .live
            .iter()
            .filter(|(_, n)| n.host.as_deref() == Some(host))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.live.remove(id);
            self.last_disconnected.insert(id.clone(), at_ms);
        }
        gone
    }
}

/// The `node.presence` event payload for a change.
pub fn presence_payload(d: &NodeDelta) -> Value {
    match d {
        NodeDelta::Up(n) => json!({
            "nodeId": n.node_id, "connected": true, "ts": n.connected_at_ms,
            "displayName": n.display_name, "platform": n.platform,
        }),
        NodeDelta::Down { node_id, at_ms, .. } => {
            json!({"nodeId": node_id, "connected": false, "ts": at_ms})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, conn_id: &str) -> Arc<NodeInfo> {
        Arc::new(NodeInfo {
            node_id: id.into(),
            host: None,
            shard: 0,
            conn: 1,
            conn_id: conn_id.into(),
            client_id: "node-host".into(),
            client_mode: "node".into(),
            display_name: None,
            platform: "linux".into(),
            version: "1".into(),
            device_family: None,
            model_identifier: None,
            remote_ip: None,
            caps: vec![],
            commands: vec![],
            permissions: None,
            path_env: None,
            connected_at_ms: 1,
            host_stats: None,
        })
    }

    #[test]
    fn a_stale_down_does_not_remove_a_reconnected_node() {
        let mut r = NodeRegistry::default();
        r.apply(&NodeDelta::Up(node("n", "c1")));
        r.apply(&NodeDelta::Up(node("n", "c2")));
        r.apply(&NodeDelta::Down {
            node_id: "n".into(),
            conn_id: "c1".into(),
            at_ms: 5,
        });
        assert_eq!(r.live["n"].conn_id, "c2");
        r.apply(&NodeDelta::Down {
            node_id: "n".into(),
            conn_id: "c2".into(),
            at_ms: 6,
        });
        assert!(r.live.is_empty());
        assert_eq!(r.last_disconnected["n"], 6);
    }
}
