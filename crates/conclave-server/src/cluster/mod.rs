//! Cluster coordination: which node hosts a session. Every live session is single-homed on
//! one node (its signaling, SFU, recordings and participant count), chosen by load when the
//! first participant arrives, LiveKit-style. Other nodes redirect signaling there and forward
//! session-scoped REST calls to it (`proxy`). The embedded default is [`SingleNode`]; several
//! nodes share PostgreSQL (the store) and Redis ([`redis::RedisCluster`]).
//!
//! Owns: node registry, placement and the owner lookup. Must not touch: session rules (the
//! hub's), SQL (the store's) or media.

pub mod proxy;
pub mod redis;

use async_trait::async_trait;

/// A node as other nodes reach it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// Base URL of the node's REST and signaling listener, e.g. `https://node-b:4000`.
    pub url: String,
    /// Load used for placement: live connections plus ten per published stream.
    #[serde(default)]
    pub load: u64,
    #[serde(default)]
    pub draining: bool,
}

/// Where a session lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Local,
    Remote(NodeInfo),
}

#[async_trait]
pub trait Coordinator: Send + Sync + 'static {
    /// This node's ID in a cluster; `None` on a single node.
    fn node_id(&self) -> Option<&str>;
    /// The node that hosts `session_id`, placing it (least loaded live node) when it has no
    /// live owner yet. Used when a participant arrives.
    async fn place(&self, session_id: &str) -> Result<Owner, String>;
    /// The node hosting `session_id` now, without placing it (unplaced → `Local`).
    async fn owner(&self, session_id: &str) -> Result<Owner, String>;
    /// Whether `node` still sends heartbeats.
    async fn is_alive(&self, node: &str) -> bool;
    /// Takes this node out of placement (SIGTERM): no new sessions come here.
    fn drain(&self);
}

/// One node, no Redis: everything is local.
pub struct SingleNode;

#[async_trait]
impl Coordinator for SingleNode {
    fn node_id(&self) -> Option<&str> {
        None
    }
    async fn place(&self, _session_id: &str) -> Result<Owner, String> {
        Ok(Owner::Local)
    }
    async fn owner(&self, _session_id: &str) -> Result<Owner, String> {
        Ok(Owner::Local)
    }
    async fn is_alive(&self, _node: &str) -> bool {
        true
    }
    fn drain(&self) {}
}

/// The least loaded of `nodes` that is not draining (ties: lowest ID, so all nodes agree).
pub fn least_loaded(nodes: &[NodeInfo]) -> Option<&NodeInfo> {
    nodes.iter().filter(|n| !n.draining).min_by(|a, b| a.load.cmp(&b.load).then_with(|| a.id.cmp(&b.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: &str, load: u64, draining: bool) -> NodeInfo {
        NodeInfo { id: id.into(), url: format!("http://{id}"), load, draining }
    }

    #[test]
    fn placement_picks_the_least_loaded_live_node() {
        assert_eq!(least_loaded(&[n("a", 5, false), n("b", 2, false), n("c", 9, false)]).unwrap().id, "b");
        assert_eq!(least_loaded(&[n("a", 5, false), n("b", 2, true)]).unwrap().id, "a", "draining nodes take no sessions");
        assert_eq!(least_loaded(&[n("b", 1, false), n("a", 1, false)]).unwrap().id, "a", "ties break the same way everywhere");
        assert!(least_loaded(&[n("a", 0, true)]).is_none());
    }
}
