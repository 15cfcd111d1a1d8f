//! The media workers of a node: one sans-IO SFU per worker thread, each with its own UDP
//! socket, and the placement of sessions on them.
//!
//! Owns: starting the workers, which worker a session's peers live on (a stable hash of the
//! session ID, so every peer of a session is on one worker and forwarding needs no locks or
//! hops between threads), and the one bounded queue their events reach the hub through.
//! Must not touch: what the SFU does with a command (the worker's) or session rules (the
//! hub's).

use super::{MEDIA_EVENTS_QUEUE, MediaEvent, MediaHandle, start_worker};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The node's media workers.
#[derive(Clone)]
pub struct MediaPool {
    workers: Arc<[MediaHandle]>,
    /// The workers' reports, taken once by whoever acts on them (the hub).
    events: Arc<Mutex<Option<mpsc::Receiver<MediaEvent>>>>,
}

/// How many media workers to run by default: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl MediaPool {
    /// Starts `workers` media workers on `address`'s IP. Port 0: each binds a port of its own;
    /// port P: worker i binds P + i (open that range in a firewall). `rtp_forwarding`: their
    /// SFUs forward RTP packets, not frames.
    pub fn start(
        address: SocketAddr,
        workers: usize,
        rtp_forwarding: bool,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<MediaPool> {
        let workers = workers.max(1);
        let (events_tx, events_rx) = mpsc::channel(MEDIA_EVENTS_QUEUE);
        let mut started = Vec::with_capacity(workers);
        for i in 0..workers {
            let port = match address.port() {
                0 => 0,
                p => u16::try_from(usize::from(p) + i).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "the media port range passes 65535")
                })?,
            };
            let at = SocketAddr::new(address.ip(), port);
            started.push(start_worker(i, at, rtp_forwarding, events_tx.clone(), metrics.clone())?);
        }
        Ok(MediaPool { workers: started.into(), events: Arc::new(Mutex::new(Some(events_rx))) })
    }

    /// The worker every peer of `session_id` lives on.
    pub fn for_session(&self, session_id: &str) -> &MediaHandle {
        &self.workers[worker_of(session_id, self.workers.len())]
    }

    /// The workers' UDP addresses, in worker order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.address).collect()
    }

    /// The workers' reports; `None` once taken.
    pub fn take_events(&self) -> Option<mpsc::Receiver<MediaEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A stable placement (FNV-1a of the session ID): the same on every call and every run.
fn worker_of(session_id: &str, workers: usize) -> usize {
    let hash =
        session_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % workers as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::worker_of;

    #[test]
    fn a_session_always_lands_on_the_same_worker_and_sessions_spread() {
        let sessions: Vec<String> = (0..1000).map(|i| format!("2_MX4xMDB-fg-{i}")).collect();
        let mut per_worker = [0usize; 4];
        for s in &sessions {
            let w = worker_of(s, 4);
            assert_eq!(w, worker_of(s, 4));
            per_worker[w] += 1;
        }
        assert!(per_worker.iter().all(|n| (150..350).contains(n)), "{per_worker:?}");
        assert_eq!(worker_of("anything", 1), 0);
    }
}
