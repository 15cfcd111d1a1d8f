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
    /// Placement score ([`Load::score`]); lower takes new sessions first.
    #[serde(default)]
    pub load: u64,
    /// What the score was computed from.
    #[serde(default)]
    pub detail: Load,
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
    /// A live node's registry entry.
    async fn node(&self, id: &str) -> Option<NodeInfo>;
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
    async fn node(&self, _id: &str) -> Option<NodeInfo> {
        None
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
        NodeInfo { id: id.into(), url: format!("http://{id}"), load, draining, detail: Load::default() }
    }

    #[test]
    fn placement_picks_the_least_loaded_live_node() {
        assert_eq!(least_loaded(&[n("a", 5, false), n("b", 2, false), n("c", 9, false)]).unwrap().id, "b");
        assert_eq!(
            least_loaded(&[n("a", 5, false), n("b", 2, true)]).unwrap().id,
            "a",
            "draining nodes take no sessions"
        );
        assert_eq!(
            least_loaded(&[n("b", 1, false), n("a", 1, false)]).unwrap().id,
            "a",
            "ties break the same way everywhere"
        );
        assert!(least_loaded(&[n("a", 0, true)]).is_none());
    }
}

/// Measures this node's load for the registry: live connections and streams (from the hub),
/// CPU use of this process and forwarded media bitrate (from the metrics) since the last call.
pub struct LoadProbe {
    hub: std::sync::Weak<crate::signal::hub::Hub>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    last: std::sync::Mutex<(std::time::Instant, u64, u64)>,
}

/// One sample of a node's load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Load {
    pub connections: u64,
    pub streams: u64,
    pub cpu_percent: u64,
    pub forward_kbps: u64,
}

impl Load {
    /// The placement score: a stream weighs ten connections, a percent of CPU five, 100 kbit/s
    /// of forwarded media one.
    pub fn score(&self) -> u64 {
        self.connections + 10 * self.streams + 5 * self.cpu_percent + self.forward_kbps / 100
    }
}

fn process_cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    // Linux reports in USER_HZ, 100 on every mainstream configuration.
    ticks * 10_000
}

impl LoadProbe {
    pub fn new(
        hub: &std::sync::Arc<crate::signal::hub::Hub>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> LoadProbe {
        let sent = metrics.counters.media_bytes_sent.load(std::sync::atomic::Ordering::Relaxed);
        LoadProbe {
            hub: std::sync::Arc::downgrade(hub),
            metrics,
            last: std::sync::Mutex::new((std::time::Instant::now(), process_cpu_us(), sent)),
        }
    }

    pub fn sample(&self) -> Load {
        let (_, connections, streams) = self.hub.upgrade().map(|h| h.stats()).unwrap_or_default();
        let now = std::time::Instant::now();
        let cpu = process_cpu_us();
        let sent = self.metrics.counters.media_bytes_sent.load(std::sync::atomic::Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let wall_us = now.duration_since(last.0).as_micros().max(1) as u64;
        let cpu_percent = cpu.saturating_sub(last.1) * 100 / wall_us;
        let forward_kbps = sent.saturating_sub(last.2) * 8 * 1000 / wall_us;
        *last = (now, cpu, sent);
        Load { connections, streams, cpu_percent, forward_kbps }
    }
}
