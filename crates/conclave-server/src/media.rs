//! Routed media: one UDP socket for all peers and the task that drives the sans-IO SFU
//! (`conclave-media`) with real time and real datagrams.
//!
//! Owns: the socket, the clock, and the command channel the hub uses. Must not touch:
//! session rules (the hub decides who may publish or subscribe) or SDP policy (the SFU's).
//! Peer IDs: `pub:{streamId}` for a publishing connection, `sub:{connectionId}` for a
//! client's receiving connection.

use conclave_media::{RecordedFrame, Sfu, SfuOutput};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

pub fn publisher_peer(stream_id: &str) -> String {
    format!("pub:{stream_id}")
}

pub fn receiver_peer(connection_id: &str) -> String {
    format!("sub:{connection_id}")
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

pub enum MediaCommand {
    AddPeer { peer: String, offer: String, reply: Reply<String> },
    AcceptAnswer { peer: String, answer: String, reply: Reply<Option<String>> },
    Subscribe { receiver: String, publisher: String, reply: Reply<Option<String>> },
    Unsubscribe { receiver: String, publisher: String, reply: Reply<Option<String>> },
    RemovePeer { peer: String },
    AudioForwarding { peer: String, enabled: bool },
    PreferredLayer { receiver: String, publisher: String, rid: Option<&'static str> },
    MaxTemporalLayer { receiver: String, publisher: String, max: Option<u8> },
    /// Attach (`Some`) or detach (`None`) a recording sink to a publisher peer, which may
    /// not exist yet: the tap is applied when it appears.
    Tap { peer: String, archive: String, sink: Option<FrameSink> },
    RequestKeyframe { peer: String },
}

/// Receives a tapped publisher's frames on the media task; must not block (it should hand
/// the frame to another thread and drop it when that thread is behind).
pub type FrameSink = std::sync::Arc<dyn Fn(&RecordedFrame) + Send + Sync>;

/// Recording sinks per publisher peer, each tagged with its archive.
#[derive(Default)]
struct Taps(HashMap<String, Vec<(String, FrameSink)>>);

/// The hub's handle on the SFU task.
#[derive(Clone)]
pub struct MediaHandle {
    tx: mpsc::UnboundedSender<MediaCommand>,
    pub address: SocketAddr,
}

impl MediaHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> MediaCommand) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| "the media task stopped".to_owned())?;
        rx.await.map_err(|_| "the media task stopped".to_owned())?
    }

    pub async fn add_peer(&self, peer: String, offer: String) -> Result<String, String> {
        self.ask(|reply| MediaCommand::AddPeer { peer, offer, reply }).await
    }
    pub async fn accept_answer(&self, peer: String, answer: String) -> Result<Option<String>, String> {
        self.ask(|reply| MediaCommand::AcceptAnswer { peer, answer, reply }).await
    }
    pub async fn subscribe(&self, receiver: String, publisher: String) -> Result<Option<String>, String> {
        self.ask(|reply| MediaCommand::Subscribe { receiver, publisher, reply }).await
    }
    pub async fn unsubscribe(&self, receiver: String, publisher: String) -> Result<Option<String>, String> {
        self.ask(|reply| MediaCommand::Unsubscribe { receiver, publisher, reply }).await
    }
    pub fn remove_peer(&self, peer: String) {
        let _ = self.tx.send(MediaCommand::RemovePeer { peer });
    }
    pub fn audio_forwarding(&self, peer: String, enabled: bool) {
        let _ = self.tx.send(MediaCommand::AudioForwarding { peer, enabled });
    }
    pub fn preferred_layer(&self, receiver: String, publisher: String, rid: Option<&'static str>) {
        let _ = self.tx.send(MediaCommand::PreferredLayer { receiver, publisher, rid });
    }
    pub fn max_temporal_layer(&self, receiver: String, publisher: String, max: Option<u8>) {
        let _ = self.tx.send(MediaCommand::MaxTemporalLayer { receiver, publisher, max });
    }
    pub fn tap(&self, peer: String, archive: String, sink: Option<FrameSink>) {
        let _ = self.tx.send(MediaCommand::Tap { peer, archive, sink });
    }
    pub fn request_keyframe(&self, peer: String) {
        let _ = self.tx.send(MediaCommand::RequestKeyframe { peer });
    }
}

/// Binds `address` (UDP; port 0 picks one) and starts the SFU task. The bound address is
/// the host candidate every peer is offered.
pub async fn start(address: SocketAddr, metrics: std::sync::Arc<crate::metrics::Metrics>) -> std::io::Result<MediaHandle> {
    let socket = UdpSocket::bind(address).await?;
    let address = socket.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(socket, address, rx, metrics));
    Ok(MediaHandle { tx, address })
}

fn apply(sfu: &mut Sfu, taps: &mut Taps, cmd: MediaCommand, now: Instant) {
    let err = |e: conclave_media::SfuError| e.to_string();
    match cmd {
        MediaCommand::AddPeer { peer, offer, reply } => {
            let tapped = taps.0.contains_key(&peer);
            let answer = sfu.add_peer(peer.clone(), &offer, now).map_err(err);
            if tapped && answer.is_ok() {
                let _ = sfu.set_tap(&peer, true, now);
            }
            let _ = reply.send(answer);
        }
        MediaCommand::Tap { peer, archive, sink } => {
            let sinks = taps.0.entry(peer.clone()).or_default();
            sinks.retain(|(a, _)| *a != archive);
            if let Some(sink) = sink {
                sinks.push((archive, sink));
            }
            let on = !sinks.is_empty();
            if !on {
                taps.0.remove(&peer);
            }
            // The peer may not exist yet (or is gone): `AddPeer` applies the tap later.
            let _ = sfu.set_tap(&peer, on, now);
        }
        MediaCommand::RequestKeyframe { peer } => {
            let _ = sfu.request_publisher_keyframe(&peer, now);
        }
        MediaCommand::AcceptAnswer { peer, answer, reply } => {
            let _ = reply.send(sfu.accept_answer(&peer, &answer, now).map_err(err));
        }
        MediaCommand::Subscribe { receiver, publisher, reply } => {
            let _ = reply.send(sfu.subscribe(&receiver, &publisher, now).map_err(err));
        }
        MediaCommand::Unsubscribe { receiver, publisher, reply } => {
            let _ = reply.send(sfu.unsubscribe(&receiver, &publisher, now).map_err(err));
        }
        MediaCommand::RemovePeer { peer } => {
            let _ = sfu.remove_peer(&peer);
        }
        MediaCommand::AudioForwarding { peer, enabled } => {
            let _ = sfu.set_audio_forwarding(&peer, enabled);
        }
        MediaCommand::PreferredLayer { receiver, publisher, rid } => {
            let _ = sfu.set_preferred_layer(&receiver, &publisher, rid, now);
        }
        MediaCommand::MaxTemporalLayer { receiver, publisher, max } => {
            let _ = sfu.set_max_temporal_layer(&receiver, &publisher, max);
        }
    }
}

/// Datagrams handled per wake-up before the SFU's output is drained (amortises wake-ups).
const RECV_BATCH: usize = 64;

async fn run(socket: UdpSocket, local: SocketAddr, mut commands: mpsc::UnboundedReceiver<MediaCommand>, metrics: std::sync::Arc<crate::metrics::Metrics>) {
    use crate::metrics::add;
    let c = &metrics.counters;
    let mut sfu = Sfu::new(local);
    let mut taps = Taps::default();
    let mut buf = vec![0u8; 2048];
    let mut deadline = Instant::now() + Duration::from_secs(1);
    loop {
        // Drain everything the SFU wants done, and learn its next deadline.
        while let Some(out) = sfu.poll_output() {
            match out {
                SfuOutput::Transmit { destination, bytes, .. } => {
                    // Non-blocking first; wait for socket space only when the buffer is full.
                    let sent = match socket.try_send_to(&bytes, destination) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => socket.send_to(&bytes, destination).await,
                        other => other,
                    };
                    match sent {
                        Ok(n) => {
                            add(&c.media_packets_sent, 1);
                            add(&c.media_bytes_sent, n as u64);
                        }
                        Err(e) => tracing::debug!(error = %e, %destination, "media send failed"),
                    }
                }
                SfuOutput::Timeout(t) => {
                    deadline = t;
                    break;
                }
                SfuOutput::Event(e) => tracing::debug!(event = ?e, "sfu"),
                SfuOutput::Recorded(frame) => {
                    if let Some(sinks) = taps.0.get(&frame.publisher) {
                        for (_, sink) in sinks {
                            sink(&frame);
                        }
                    }
                }
            }
        }
        let sleep_until = tokio::time::Instant::from_std(deadline.max(Instant::now()).min(Instant::now() + Duration::from_secs(1)));
        tokio::select! {
            recv = socket.recv_from(&mut buf) => match recv {
                Ok((n, source)) => {
                    let now = Instant::now();
                    let (mut packets, mut bytes) = (1, n as u64);
                    sfu.handle_datagram(now, source, local, &buf[..n]);
                    // Take what else is already queued before producing output.
                    for _ in 1..RECV_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, source)) => {
                                packets += 1;
                                bytes += n as u64;
                                sfu.handle_datagram(now, source, local, &buf[..n]);
                            }
                            Err(_) => break,
                        }
                    }
                    add(&c.media_packets_received, packets);
                    add(&c.media_bytes_received, bytes);
                }
                Err(e) => tracing::debug!(error = %e, "media receive failed"),
            },
            cmd = commands.recv() => match cmd {
                Some(cmd) => apply(&mut sfu, &mut taps, cmd, Instant::now()),
                None => return,
            },
            _ = tokio::time::sleep_until(sleep_until) => sfu.handle_timeout(Instant::now()),
        }
    }
}
