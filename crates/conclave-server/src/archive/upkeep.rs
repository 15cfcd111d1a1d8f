//! The archiver's upkeep: the one-second timer (maximum duration, idle stop, fallback sweep,
//! orphans of dead cluster nodes), start-up recovery of recordings a previous run left behind,
//! and the drain at shutdown.
//!
//! Owns: when these run and what they decide. Must not touch: the lifecycle's transitions
//! themselves (`Archiver::transition`, `stop`, `finish` in `mod.rs`).

use super::{Archiver, lock, pipeline, retry};
use crate::clock;
use conclave_core::archive::ArchiveStatus;
use conclave_store::ArchiveRecord;
use std::sync::Arc;
use std::time::Duration;

impl Archiver {
    /// Every second: stop archives idle past `idle_stop` or longer than `max_duration`. Also
    /// starts the upload retries from the fallback store (`retry`).
    pub fn spawn_timers(self: &Arc<Self>) {
        retry::spawn(self);
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut since_sweep = Duration::ZERO;
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let due: Vec<(String, String, &'static str)> = lock(&me.active)
                    .iter()
                    .filter_map(|(id, a)| {
                        if a.started.elapsed() >= me.config.max_duration {
                            Some((id.clone(), a.api_key.clone(), "maximum duration exceeded"))
                        } else if a.idle_since.is_some_and(|t| t.elapsed() >= me.config.idle_stop) {
                            Some((id.clone(), a.api_key.clone(), "no stream was published"))
                        } else {
                            None
                        }
                    })
                    .collect();
                for (id, api_key, reason) in due {
                    if let Err(e) = me.stop(&api_key, &id, reason).await {
                        tracing::warn!(archive = %id, error = %e, "automatic stop failed");
                    }
                }
                since_sweep += Duration::from_secs(1);
                if since_sweep >= me.config.sweep_every {
                    since_sweep = Duration::ZERO;
                    me.sweep().await;
                }
                if me.cluster.node_id().is_some() {
                    me.fail_orphans().await;
                }
            }
        });
    }

    /// Expires fallback copies past their retention: the file goes, then the status.
    pub async fn sweep(&self) {
        let now = clock::unix_ms();
        let Ok(available) = self.store.archives_in_status(&[ArchiveStatus::Available]).await else { return };
        for r in available.into_iter().filter(|r| r.expires_at_ms.is_some_and(|t| t <= now)) {
            if let Some(file) = &r.fallback_file {
                let ext = file.split_once('.').map(|(_, e)| e).unwrap_or("");
                if let Err(e) = self.fallback.delete(&r.id, ext) {
                    tracing::error!(archive = %r.id, error = %e, "cannot remove an expired archive file; will retry");
                    continue;
                }
            }
            let next = ArchiveRecord {
                status: ArchiveStatus::Expired,
                fallback_file: None,
                reason: "retention period ended".into(),
                ..r
            };
            let _ = self.transition(next, ArchiveStatus::Available).await;
        }
    }

    /// Cluster mode: archives whose recording node stopped sending heartbeats can never be
    /// finished here (their files are on that node's disk): they end `failed` with the reason,
    /// never `started` forever. Compare-and-set, so only one node records it.
    async fn fail_orphans(&self) {
        let Ok(pending) = self
            .store
            .archives_in_status(&[ArchiveStatus::Started, ArchiveStatus::Paused, ArchiveStatus::Stopped])
            .await
        else {
            return;
        };
        for r in pending {
            let Some(node) = r.node.clone() else { continue };
            if Some(node.as_str()) == self.cluster.node_id() || self.cluster.is_alive(&node).await {
                continue;
            }
            let from = r.status;
            let next = ArchiveRecord {
                status: ArchiveStatus::Failed,
                reason: format!(
                    "the node recording it ({node}) stopped responding; what it recorded stays on that node's disk"
                ),
                ..r
            };
            if self.transition(next, from).await.is_ok() {
                tracing::error!(node = %node, "ALERT: an archive's recording node died; archive marked failed");
            }
        }
    }

    /// Start-up recovery (idempotent): archives a previous run left recording or finishing
    /// are finalized from what reached the disk and delivered; none stays `started`.
    pub async fn recover(self: &Arc<Self>) {
        let Ok(pending) = self
            .store
            .archives_in_status(&[ArchiveStatus::Started, ArchiveStatus::Paused, ArchiveStatus::Stopped])
            .await
        else {
            return;
        };
        for r in pending {
            // Each node recovers its own recordings (their files are on its disk).
            if r.node.as_deref() != self.cluster.node_id() {
                continue;
            }
            let r = if r.status.is_recording() {
                let from = r.status;
                let next = ArchiveRecord {
                    status: ArchiveStatus::Stopped,
                    reason: "recording interrupted by a server restart; finalized from what reached the disk".into(),
                    duration_s: 0,
                    ..r
                };
                match self.transition(next, from).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "recovering an archive failed");
                        continue;
                    }
                }
            } else {
                r
            };
            tracing::warn!(archive = %r.id, "recovering an archive after a restart");
            let me = self.clone();
            let dir = self.work_dir(&r.id);
            self.in_flight.lock().await.spawn(async move {
                let streams =
                    tokio::task::spawn_blocking(move || pipeline::recover_streams(&dir)).await.unwrap_or_default();
                me.finish(r, streams, None).await;
            });
        }
    }

    /// SIGTERM: stop every recording, then wait until each is delivered or kept.
    pub async fn drain(self: &Arc<Self>) {
        let ids: Vec<(String, String)> =
            lock(&self.active).iter().map(|(id, a)| (id.clone(), a.api_key.clone())).collect();
        for (id, key) in ids {
            let _ = self.stop(&key, &id, "server shutting down").await;
        }
        let mut set = std::mem::take(&mut *self.in_flight.lock().await);
        while set.join_next().await.is_some() {}
    }
}
