//! The Redis coordinator: a node registry with heartbeats (`conclave:node:{id}`, a JSON
//! [`NodeInfo`] with a short TTL, listed in the set `conclave:nodes`) and session placement
//! (`conclave:placement:{sessionId}` = node ID), moved only when its node's heartbeat lapsed,
//! with a compare-and-set script so that two nodes never place one session differently.
//! No pub/sub: state lives in keys, so a node that lost Redis for a while just reads them
//! again (the connection manager reconnects).
//!
//! Owns: those keys. Must not touch: anything else in Redis.

use super::{Coordinator, Load, NodeInfo, Owner, least_loaded};
use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Heartbeat period; a node is dead after `HEARTBEAT * LIVES` without one.
pub const HEARTBEAT: Duration = Duration::from_millis(1000);
const LIVES: u32 = 3;

/// Set the placement to ARGV[1] if it is unset or still points at the dead node ARGV[2];
/// returns the placement in force.
const PLACE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return ARGV[1]
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return cur
"#;

/// Placements of idle sessions are forgotten after a day.
const PLACEMENT_TTL_MS: u64 = 24 * 3600 * 1000;

pub struct RedisCluster {
    conn: ConnectionManager,
    me: NodeInfo,
    draining: AtomicBool,
}

fn node_key(id: &str) -> String {
    format!("conclave:node:{id}")
}

impl RedisCluster {
    pub async fn connect(redis_url: &str, node_id: &str, url: &str) -> Result<Arc<RedisCluster>, String> {
        let client = redis::Client::open(redis_url).map_err(|e| format!("invalid --redis-url: {e}"))?;
        let conn = tokio::time::timeout(Duration::from_secs(10), ConnectionManager::new(client))
            .await
            .map_err(|_| "Redis did not answer within 10 s".to_owned())?
            .map_err(|e| format!("cannot connect to Redis: {e}"))?;
        let me = NodeInfo {
            id: node_id.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            load: 0,
            draining: false,
            detail: Load::default(),
        };
        let c = Arc::new(RedisCluster { conn, me, draining: AtomicBool::new(false) });
        c.beat(Load::default()).await?;
        Ok(c)
    }

    /// Publishes this node's heartbeat with its load (`load()` is read each period).
    pub fn spawn_heartbeat(self: &Arc<Self>, load: impl Fn() -> Load + Send + 'static) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                let Some(c) = me.upgrade() else { return };
                if let Err(e) = c.beat(load()).await {
                    tracing::warn!(error = %e, "cluster heartbeat failed");
                }
            }
        });
    }

    async fn beat(&self, load: Load) -> Result<(), String> {
        let info = NodeInfo {
            load: load.score(),
            detail: load,
            draining: self.draining.load(Ordering::Relaxed),
            ..self.me.clone()
        };
        let mut c = self.conn.clone();
        let ttl = (HEARTBEAT * LIVES).as_millis() as u64;
        let json = serde_json::to_string(&info).expect("serializes");
        let _: () = c
            .set_options(
                node_key(&self.me.id),
                json,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl)),
            )
            .await
            .map_err(|e| e.to_string())?;
        let _: () = c.sadd("conclave:nodes", &self.me.id).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn node_entry(&self, id: &str) -> Option<NodeInfo> {
        let mut c = self.conn.clone();
        let json: Option<String> = c.get(node_key(id)).await.ok()?;
        json.and_then(|j| serde_json::from_str(&j).ok())
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>, String> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = c.smembers("conclave:nodes").await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for id in ids {
            match self.node_entry(&id).await {
                Some(n) => out.push(n),
                // Gone for good (no heartbeat key): forget it.
                None => {
                    let _: Result<(), _> = c.srem("conclave:nodes", &id).await;
                }
            }
        }
        Ok(out)
    }

    fn owner_of(&self, id: String, nodes: &[NodeInfo]) -> Owner {
        if id == self.me.id {
            return Owner::Local;
        }
        match nodes.iter().find(|n| n.id == id) {
            Some(n) => Owner::Remote(n.clone()),
            None => {
                Owner::Remote(NodeInfo { id, url: String::new(), load: 0, draining: false, detail: Load::default() })
            }
        }
    }
}

#[async_trait]
impl Coordinator for RedisCluster {
    fn node_id(&self) -> Option<&str> {
        Some(&self.me.id)
    }

    async fn place(&self, session_id: &str) -> Result<Owner, String> {
        let key = format!("conclave:placement:{session_id}");
        let mut c = self.conn.clone();
        let current: Option<String> = c.get(&key).await.map_err(|e| e.to_string())?;
        let nodes = self.live_nodes().await?;
        let dead = match current {
            Some(id) if nodes.iter().any(|n| n.id == id) || id == self.me.id => return Ok(self.owner_of(id, &nodes)),
            Some(id) => id,
            None => String::new(),
        };
        // A draining node takes no new session, even before its next heartbeat says so.
        let draining = self.draining.load(Ordering::Relaxed);
        let candidates: Vec<NodeInfo> = nodes.iter().filter(|n| !(draining && n.id == self.me.id)).cloned().collect();
        let chosen = least_loaded(&candidates).map(|n| n.id.clone()).unwrap_or_else(|| self.me.id.clone());
        let placed: String = redis::Script::new(PLACE)
            .key(&key)
            .arg(&chosen)
            .arg(&dead)
            .arg(PLACEMENT_TTL_MS)
            .invoke_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        if !dead.is_empty() && placed == chosen {
            tracing::warn!(session = %session_id, from = %dead, to = %chosen, "session placed again after its node's heartbeat lapsed");
        }
        Ok(self.owner_of(placed, &nodes))
    }

    async fn owner(&self, session_id: &str) -> Result<Owner, String> {
        let mut c = self.conn.clone();
        let current: Option<String> =
            c.get(format!("conclave:placement:{session_id}")).await.map_err(|e| e.to_string())?;
        match current {
            None => Ok(Owner::Local),
            Some(id) if id == self.me.id => Ok(Owner::Local),
            Some(id) => match self.node_entry(&id).await {
                Some(n) => Ok(Owner::Remote(n)),
                // Its node died: nothing is live anywhere; handle here (and place on join).
                None => Ok(Owner::Local),
            },
        }
    }

    async fn is_alive(&self, node: &str) -> bool {
        node == self.me.id || self.node_entry(node).await.is_some()
    }

    async fn node(&self, id: &str) -> Option<NodeInfo> {
        self.node_entry(id).await
    }

    fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}
