//! Routed media: one media worker per core (see [`pool`]), each a thread with its own UDP
//! socket driving its own sans-IO SFU (`conclave-media`) with real time and real datagrams.
//!
//! Owns: the sockets, the clock, and the command channels the hub uses. Must not touch:
//! session rules (the hub decides who may publish or subscribe) or SDP policy (the SFU's).
//! Peer IDs: `pub:{streamId}` for a publishing connection, `sub:{connectionId}` for a
//! client's receiving connection, `osub:{subscriberId}` for an OpenTok.js subscriber's own
//! receiving connection (one per subscriber, made from a server offer).

use conclave_media::{RecordedFrame, Sfu, SfuEvent, SfuOutput};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

pub mod pool;
pub use pool::MediaPool;

pub mod peer_id;
pub use peer_id::PeerId;

/// The peer publishing `stream_id`.
pub fn publisher_peer(stream_id: &str) -> PeerId {
    PeerId::Publisher(stream_id.to_owned())
}

/// Protocol v1: the one receiving peer of `connection_id`.
pub fn receiver_peer(connection_id: &str) -> PeerId {
    PeerId::Receiver(connection_id.to_owned())
}

/// The peer of one OpenTok.js subscriber: its own peer connection, which receives one
/// publisher's tracks (see [`MediaHandle::add_subscriber_peer`]).
pub fn subscriber_peer(subscriber_id: &str) -> PeerId {
    PeerId::Subscriber(subscriber_id.to_owned())
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

pub enum MediaCommand {
    AddPeer {
        peer: String,
        offer: String,
        reply: Reply<String>,
    },
    /// A new peer made from a server offer, subscribed to all of `publisher`'s tracks; the
    /// reply is the offer (its answer goes through `AcceptAnswer`).
    AddSubscriberPeer {
        peer: String,
        publisher: String,
        /// Audio only while the peer's bandwidth is too low for video (reported as
        /// [`MediaEvent::AudioFallback`]).
        audio_fallback: bool,
        reply: Reply<String>,
    },
    AcceptAnswer {
        peer: String,
        answer: String,
        reply: Reply<Option<String>>,
    },
    /// A client's offer: a new peer (`AddPeer`) when `may_create` and the peer does not
    /// exist, else a later offer on its peer (an ICE restart, a renegotiation).
    Offer {
        peer: String,
        offer: String,
        may_create: bool,
        reply: Reply<OfferAnswer>,
    },
    Subscribe {
        receiver: String,
        publisher: String,
        reply: Reply<Option<String>>,
    },
    Unsubscribe {
        receiver: String,
        publisher: String,
        reply: Reply<Option<String>>,
    },
    RemovePeer {
        peer: String,
    },
    AudioForwarding {
        peer: String,
        enabled: bool,
    },
    PreferredLayer {
        receiver: String,
        publisher: String,
        rid: Option<&'static str>,
    },
    MaxTemporalLayer {
        receiver: String,
        publisher: String,
        max: Option<u8>,
    },
    /// Pause (`receive: false`) or resume a receiving peer's video (`video`) or audio.
    Receiving {
        peer: String,
        video: bool,
        receive: bool,
    },
    /// Attach (`Some`) or detach (`None`) a recording sink to a publisher peer, which may
    /// not exist yet: the tap is applied when it appears.
    Tap {
        peer: String,
        archive: String,
        sink: Option<FrameSink>,
    },
    RequestKeyframe {
        peer: String,
    },
}

/// Receives a tapped publisher's frames on the media task; must not block (it should hand
/// the frame to another thread and drop it when that thread is behind). Each frame is shared
/// by every archive that taps it, never copied per archive.
pub type FrameSink = std::sync::Arc<dyn Fn(&std::sync::Arc<RecordedFrame>) + Send + Sync>;

/// The SFU's answer to a client's offer (see [`MediaHandle::offer`]).
#[derive(Debug)]
pub struct OfferAnswer {
    pub answer: String,
    /// The offer was a later one on a peer that existed (an ICE restart, a renegotiation).
    pub renegotiated: bool,
    /// A server offer to send after the answer (changes that a collided offer had carried).
    pub follow_up: Option<String>,
}

/// What the SFU reports to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A peer with audio fallback on gets audio only now (`audio_only`), or video again.
    AudioFallback { peer: PeerId, audio_only: bool },
}

/// Events the hub has not taken yet, at most: past that, new events are dropped (and
/// counted in the log) rather than let a stalled hub grow the media task's memory. Audio
/// fallback changes are rare (seconds apart per peer by their hysteresis).
pub const MEDIA_EVENTS_QUEUE: usize = 1024;

/// Recording sinks per publisher peer, each tagged with its archive.
#[derive(Default)]
struct Taps(HashMap<String, Vec<(String, FrameSink)>>);

/// The handle on one media worker: every peer of a session lives on the same worker (see
/// [`MediaPool::for_session`]).
#[derive(Clone)]
pub struct MediaHandle {
    tx: mpsc::UnboundedSender<MediaCommand>,
    pub address: SocketAddr,
}

/// A reply the SFU will give. The command is already in the SFU's queue when this exists, so
/// commands reach the SFU in the order they were made, whenever their replies are awaited.
pub type Pending<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send>>;

impl MediaHandle {
    fn ask<T: Send + 'static>(&self, make: impl FnOnce(Reply<T>) -> MediaCommand) -> Pending<T> {
        let (tx, rx) = oneshot::channel();
        let sent = self.tx.send(make(tx)).map_err(|_| "the media task stopped".to_owned());
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| "the media task stopped".to_owned())?
        })
    }

    pub fn add_peer(&self, peer: PeerId, offer: String) -> Pending<String> {
        self.ask(|reply| MediaCommand::AddPeer { peer: peer.into(), offer, reply })
    }
    /// Adds `peer` (see [`subscriber_peer`]) receiving every track `publisher` publishes now,
    /// and returns the server's offer for it. Fails if the peer exists, or the publisher is
    /// unknown or has no tracks yet. With `audio_fallback`, the peer gets audio only while its
    /// bandwidth is too low for video.
    pub fn add_subscriber_peer(&self, peer: PeerId, publisher: PeerId, audio_fallback: bool) -> Pending<String> {
        let (peer, publisher) = (peer.into(), publisher.into());
        self.ask(|reply| MediaCommand::AddSubscriberPeer { peer, publisher, audio_fallback, reply })
    }
    pub fn accept_answer(&self, peer: PeerId, answer: String) -> Pending<Option<String>> {
        self.ask(|reply| MediaCommand::AcceptAnswer { peer: peer.into(), answer, reply })
    }
    /// A client's offer for `peer`: answered as a new peer's first offer when `may_create`
    /// and the peer does not exist yet, else as a later offer on the peer (fails if unknown).
    pub fn offer(&self, peer: PeerId, offer: String, may_create: bool) -> Pending<OfferAnswer> {
        self.ask(|reply| MediaCommand::Offer { peer: peer.into(), offer, may_create, reply })
    }
    pub fn subscribe(&self, receiver: PeerId, publisher: PeerId) -> Pending<Option<String>> {
        let (receiver, publisher) = (receiver.into(), publisher.into());
        self.ask(|reply| MediaCommand::Subscribe { receiver, publisher, reply })
    }
    pub fn unsubscribe(&self, receiver: PeerId, publisher: PeerId) -> Pending<Option<String>> {
        let (receiver, publisher) = (receiver.into(), publisher.into());
        self.ask(|reply| MediaCommand::Unsubscribe { receiver, publisher, reply })
    }
    pub fn remove_peer(&self, peer: PeerId) {
        let _ = self.tx.send(MediaCommand::RemovePeer { peer: peer.into() });
    }
    pub fn audio_forwarding(&self, peer: PeerId, enabled: bool) {
        let _ = self.tx.send(MediaCommand::AudioForwarding { peer: peer.into(), enabled });
    }
    pub fn preferred_layer(&self, receiver: PeerId, publisher: PeerId, rid: Option<&'static str>) {
        let (receiver, publisher) = (receiver.into(), publisher.into());
        let _ = self.tx.send(MediaCommand::PreferredLayer { receiver, publisher, rid });
    }
    pub fn max_temporal_layer(&self, receiver: PeerId, publisher: PeerId, max: Option<u8>) {
        let (receiver, publisher) = (receiver.into(), publisher.into());
        let _ = self.tx.send(MediaCommand::MaxTemporalLayer { receiver, publisher, max });
    }
    pub fn receiving(&self, peer: PeerId, video: bool, receive: bool) {
        let _ = self.tx.send(MediaCommand::Receiving { peer: peer.into(), video, receive });
    }
    pub fn tap(&self, peer: PeerId, archive: String, sink: Option<FrameSink>) {
        let _ = self.tx.send(MediaCommand::Tap { peer: peer.into(), archive, sink });
    }
    pub fn request_keyframe(&self, peer: PeerId) {
        let _ = self.tx.send(MediaCommand::RequestKeyframe { peer: peer.into() });
    }
}

/// Binds `address` (UDP; port 0 picks one) and starts one media worker on a thread of its
/// own, reporting to `events`. The bound address is the host candidate its peers are offered.
/// `rtp_forwarding`: its SFU forwards RTP packets, not frames (see `Sfu::set_rtp_forwarding`).
pub fn start_worker(
    index: usize,
    address: SocketAddr,
    rtp_forwarding: bool,
    events: mpsc::Sender<MediaEvent>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> std::io::Result<MediaHandle> {
    let socket = std::net::UdpSocket::bind(address)?;
    socket.set_nonblocking(true)?;
    let address = socket.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name(format!("media-{index}")).spawn(move || {
        runtime.block_on(async move {
            match UdpSocket::from_std(socket) {
                Ok(socket) => run(socket, address, rtp_forwarding, rx, events, metrics).await,
                Err(e) => tracing::error!(error = %e, "media worker could not use its socket"),
            }
        })
    })?;
    Ok(MediaHandle { tx, address })
}

fn apply(sfu: &mut Sfu, taps: &mut Taps, cmd: MediaCommand, now: Instant) {
    let err = |e: conclave_media::SfuError| e.to_string();
    match cmd {
        MediaCommand::AddPeer { peer, offer, reply } => {
            let _ = reply.send(add_peer(sfu, taps, peer, &offer, now).map_err(err));
        }
        MediaCommand::Offer { peer, offer, may_create, reply } => {
            let exists = sfu.published_tracks(&peer).is_ok();
            let answer = if exists || !may_create {
                sfu.accept_offer(&peer, &offer, now).map(|(answer, follow_up)| OfferAnswer {
                    answer,
                    renegotiated: true,
                    follow_up,
                })
            } else {
                add_peer(sfu, taps, peer, &offer, now).map(|answer| OfferAnswer {
                    answer,
                    renegotiated: false,
                    follow_up: None,
                })
            };
            let _ = reply.send(answer.map_err(err));
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
        MediaCommand::AddSubscriberPeer { peer, publisher, audio_fallback, reply } => {
            let offer = sfu.add_subscriber_peer(peer.clone(), &publisher, now);
            if offer.is_ok() && audio_fallback {
                let _ = sfu.set_audio_fallback(&peer, true, now);
            }
            let _ = reply.send(offer.map_err(err));
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
        MediaCommand::Receiving { peer, video, receive } => {
            let kind = if video { conclave_media::MediaKind::Video } else { conclave_media::MediaKind::Audio };
            let _ = sfu.set_receiving(&peer, kind, receive, now);
        }
    }
}

/// A new peer from its first offer; a tap asked for before it existed starts now.
fn add_peer(
    sfu: &mut Sfu,
    taps: &Taps,
    peer: String,
    offer: &str,
    now: Instant,
) -> Result<String, conclave_media::SfuError> {
    let answer = sfu.add_peer(peer.clone(), offer, now)?;
    if taps.0.contains_key(&peer) {
        let _ = sfu.set_tap(&peer, true, now);
    }
    Ok(answer)
}

/// Receive batches (of `mmsg::BATCH` datagrams each) taken per wake-up before the SFU's
/// output is drained: amortises wake-ups without starving sends.
const RECV_BATCHES: usize = 4;

/// Due timeouts handled back to back before the socket and commands get a turn.
const MAX_IMMEDIATE: u32 = 64;

async fn run(
    socket: UdpSocket,
    local: SocketAddr,
    rtp_forwarding: bool,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
    events: mpsc::Sender<MediaEvent>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    use crate::metrics::add;
    let c = &metrics.counters;
    let mut sfu = Sfu::new(local);
    sfu.set_rtp_forwarding(rtp_forwarding);
    tracing::info!(forwarding = if rtp_forwarding { "rtp" } else { "frames" }, "media forwarding mode");
    let mut taps = Taps::default();
    let mut rx = mmsg::RecvBatch::new();
    let mut pending: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    // Timeouts handled in a row without a look at the socket and the commands.
    let mut immediate = 0;
    let mut load = WorkerLoad::new(Instant::now());
    loop {
        load.maybe_report(&mut sfu, &metrics, Instant::now());
        // Drain everything the SFU wants done, and learn its next deadline (none without
        // peers: then just look again in a second).
        let mut deadline = Instant::now() + Duration::from_secs(1);
        while let Some(out) = sfu.poll_output() {
            match out {
                SfuOutput::Transmit { destination, bytes, .. } => pending.push((destination, bytes)),
                SfuOutput::Timeout(t) => {
                    deadline = t;
                    break;
                }
                SfuOutput::Event(SfuEvent::AudioFallback { peer_id, audio_only }) => {
                    let Some(peer) = PeerId::parse(&peer_id) else { continue };
                    let event = MediaEvent::AudioFallback { peer, audio_only };
                    if let Err(mpsc::error::TrySendError::Full(e)) = events.try_send(event) {
                        tracing::warn!(event = ?e, "media events queue full: event dropped");
                    }
                }
                SfuOutput::Event(e) => tracing::debug!(event = ?e, "sfu"),
                SfuOutput::Recorded(frame) => {
                    if let Some(sinks) = taps.0.get(&frame.publisher) {
                        let frame = std::sync::Arc::new(frame);
                        for (_, sink) in sinks {
                            sink(&frame);
                        }
                    }
                }
            }
        }
        let now = Instant::now();
        if deadline <= now && immediate < MAX_IMMEDIATE && pending.len() < mmsg::BATCH * 4 {
            // Due already (str0m's pacer asks for an immediate timeout after each packet):
            // no trip through the reactor, and what it sends joins the same `sendmmsg`.
            immediate += 1;
            sfu.handle_timeout(now);
            continue;
        }
        immediate = 0;
        // One `sendmmsg` per batch of queued datagrams.
        let mut sent = 0;
        while sent < pending.len() {
            match socket.try_io(tokio::io::Interest::WRITABLE, || mmsg::send(&socket, &pending[sent..])) {
                Ok((n, bytes)) => {
                    sent += n;
                    add(&c.media_packets_sent, n as u64);
                    add(&c.media_bytes_sent, bytes);
                }
                // Socket buffer full: wait for space (as a blocking send would).
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let _ = socket.writable().await;
                }
                Err(e) => {
                    // `sendmmsg` fails only on its first datagram: skip that one.
                    tracing::debug!(error = %e, destination = %pending[sent].0, "media send failed");
                    sent += 1;
                }
            }
        }
        pending.clear();
        let sleep_until = tokio::time::Instant::from_std(deadline.max(now).min(now + Duration::from_secs(1)));
        let wake = tokio::select! {
            biased;
            cmd = commands.recv() => Wake::Command(cmd),
            ready = socket.readable() => Wake::Readable(ready),
            _ = tokio::time::sleep_until(sleep_until) => Wake::Timer,
        };
        match wake {
            Wake::Command(Some(cmd)) => apply(&mut sfu, &mut taps, cmd, Instant::now()),
            Wake::Command(None) => return,
            Wake::Readable(Err(e)) => tracing::debug!(error = %e, "media receive failed"),
            Wake::Readable(Ok(())) => {
                let now = Instant::now();
                let (mut packets, mut bytes) = (0, 0u64);
                for _ in 0..RECV_BATCHES {
                    let n = match socket.try_io(tokio::io::Interest::READABLE, || rx.recv(&socket)) {
                        Ok(n) => n,
                        Err(e) => {
                            if e.kind() != std::io::ErrorKind::WouldBlock {
                                tracing::debug!(error = %e, "media receive failed");
                            }
                            break;
                        }
                    };
                    for i in 0..n {
                        if let Some((source, data)) = rx.get(i) {
                            packets += 1;
                            bytes += data.len() as u64;
                            sfu.handle_datagram(now, source, local, data);
                        }
                    }
                    if n < mmsg::BATCH {
                        break;
                    }
                }
                add(&c.media_packets_received, packets);
                add(&c.media_bytes_received, bytes);
            }
            Wake::Timer => sfu.handle_timeout(Instant::now()),
        }
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to write; the clock ID is a constant.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// What woke a media worker up.
enum Wake {
    Command(Option<MediaCommand>),
    Readable(std::io::Result<()>),
    Timer,
}

/// How busy a media worker's thread is, what its SFU sheds for it, and what the SFU has shed:
/// looked at every `LOAD_INTERVAL` and reported to the SFU (`Sfu::set_overload`) and `/metrics`.
/// Busy is the CPU time the thread itself used over the wall time: a worker that has a core to
/// itself and uses all of it is overloaded; one that waits for a core other processes hold is
/// not (shedding its video would not give it the core).
struct WorkerLoad {
    since: Instant,
    cpu_since: Duration,
    guard: conclave_media::OverloadGuard,
    /// What was last added to the metrics, so each report adds the change.
    reported: conclave_media::ShedStats,
}

const LOAD_INTERVAL: Duration = Duration::from_millis(500);

impl WorkerLoad {
    fn new(now: Instant) -> WorkerLoad {
        WorkerLoad { since: now, cpu_since: thread_cpu_time(), guard: Default::default(), reported: Default::default() }
    }

    fn maybe_report(&mut self, sfu: &mut Sfu, metrics: &crate::metrics::Metrics, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < LOAD_INTERVAL {
            return;
        }
        let cpu = thread_cpu_time();
        let busy = cpu.saturating_sub(self.cpu_since).as_secs_f64() / elapsed.as_secs_f64();
        (self.since, self.cpu_since) = (now, cpu);
        let c = &metrics.counters;
        let before = self.guard.level();
        if let Some(level) = self.guard.observe(busy, now) {
            sfu.set_overload(level);
            let was_overloaded = before != conclave_media::Shed::Nothing;
            let overloaded = level != conclave_media::Shed::Nothing;
            if overloaded && !was_overloaded {
                crate::metrics::inc(&c.media_workers_overloaded);
            } else if was_overloaded && !overloaded {
                c.media_workers_overloaded.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let stats = sfu.shed_stats();
        let old = std::mem::replace(&mut self.reported, stats);
        crate::metrics::add(&c.media_shed_backlog_packets, stats.backlog_packets - old.backlog_packets);
        crate::metrics::add(&c.media_shed_overload_packets, stats.overload_packets - old.overload_packets);
        // A gauge shared by the workers: each adds the change of its own share.
        c.media_legs_shedding
            .fetch_add(stats.legs_shedding.wrapping_sub(old.legs_shedding), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Batched UDP I/O: `recvmmsg` / `sendmmsg` on the media socket (one syscall per batch
/// instead of one per datagram). Public for `conclave bench udp-floor`, which measures the
/// kernel's share of forwarding with the same calls.
pub mod mmsg {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    /// Datagrams per syscall.
    pub const BATCH: usize = 32;
    const BUF: usize = 2048;

    pub struct RecvBatch {
        bufs: Vec<[u8; BUF]>,
        addrs: Vec<libc::sockaddr_storage>,
        lens: [usize; BATCH],
        truncated: [bool; BATCH],
    }

    impl Default for RecvBatch {
        fn default() -> RecvBatch {
            RecvBatch::new()
        }
    }

    impl RecvBatch {
        pub fn new() -> RecvBatch {
            RecvBatch {
                bufs: vec![[0; BUF]; BATCH],
                // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
                addrs: vec![unsafe { zeroed() }; BATCH],
                lens: [0; BATCH],
                truncated: [false; BATCH],
            }
        }

        /// Receives up to `BATCH` datagrams without blocking; returns how many.
        pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
            // SAFETY: iovec and mmsghdr are plain data; zeroes are valid before filling in.
            let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
            for i in 0..BATCH {
                iovs[i] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: BUF };
                let h = &mut hdrs[i].msg_hdr;
                h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = &mut iovs[i];
                h.msg_iovlen = 1;
            }
            // SAFETY: every header points at a live buffer and address of the stated sizes.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            for ((len, truncated), h) in self.lens.iter_mut().zip(self.truncated.iter_mut()).zip(&hdrs).take(n) {
                *len = h.msg_len as usize;
                *truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            }
            Ok(n)
        }

        /// The `i`th datagram of the last `recv`, unless it was truncated or has no
        /// IP source address.
        pub fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
            if self.truncated[i] {
                return None;
            }
            Some((from_storage(&self.addrs[i])?, &self.bufs[i][..self.lens[i]]))
        }
    }

    /// Sends the first (up to `BATCH`) datagrams with one `sendmmsg`; returns how many went
    /// and their bytes. An error means the first one failed.
    pub fn send(socket: &impl AsRawFd, items: &[(SocketAddr, Vec<u8>)]) -> io::Result<(usize, u64)> {
        let count = items.len().min(BATCH);
        // SAFETY: plain data, filled in below.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, (dest, bytes)) in items[..count].iter().enumerate() {
            let len = to_storage(*dest, &mut addrs[i]);
            iovs[i] = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = len;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live buffer and address of the stated sizes;
        // the kernel only reads them.
        let n =
            unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), count as libc::c_uint, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        let bytes = items[..n].iter().map(|(_, b)| b.len() as u64).sum();
        Ok((n, bytes))
    }

    fn to_storage(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
                let sin = unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
                sin6.sin6_scope_id = a.scope_id();
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    fn from_storage(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match s.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the family says this is a sockaddr_in.
                let sin = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this is a sockaddr_in6.
                let sin6 = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn addresses_round_trip() {
            for a in ["127.0.0.1:5000", "[::1]:6000", "[fe80::1%2]:7"] {
                let a: SocketAddr = a.parse().unwrap();
                // SAFETY: plain data.
                let mut s: libc::sockaddr_storage = unsafe { zeroed() };
                to_storage(a, &mut s);
                assert_eq!(from_storage(&s), Some(a));
            }
        }

        #[test]
        fn batches_go_out_and_come_back() {
            let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = b.local_addr().unwrap();
            let items: Vec<(SocketAddr, Vec<u8>)> = (0..40u8).map(|i| (to, vec![i; 100 + i as usize])).collect();
            let mut sent = 0;
            while sent < items.len() {
                sent += send(&a, &items[sent..]).unwrap().0;
            }
            let mut rx = RecvBatch::new();
            let mut got = Vec::new();
            while got.len() < items.len() {
                let n = rx.recv(&b).unwrap_or(0);
                for i in 0..n {
                    let (from, data) = rx.get(i).unwrap();
                    assert_eq!(from, a.local_addr().unwrap());
                    got.push(data.to_vec());
                }
            }
            assert_eq!(got, items.into_iter().map(|(_, d)| d).collect::<Vec<_>>());
        }
    }
}
