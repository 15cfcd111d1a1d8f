//! Test harness: str0m client peers and an `Sfu` in one process, joined by a
//! lossless zero-latency "network" that moves datagrams by address, on
//! virtual time (one real `Instant::now()` at start, then 1 ms ticks).
//!
//! Owns nothing outside tests. Clients are plain (full ICE) str0m peers.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_media::{Sfu, SfuEvent, SfuOutput};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

pub const TICK: Duration = Duration::from_millis(1);
pub const AUDIO_EVERY: Duration = Duration::from_millis(20);
pub const VIDEO_EVERY: Duration = Duration::from_millis(33);

/// A frame a client got, decoded from our synthetic payloads.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: MediaKind,
    pub seq: u32,
    pub keyframe: bool,
    pub at: Instant,
}

/// What a publishing client sends, and where it is.
#[derive(Debug, Default)]
pub struct Sending {
    pub audio_mid: Option<Mid>,
    pub video_mid: Option<Mid>,
    pub enabled: bool,
    pub next_audio: Option<Instant>,
    pub next_video: Option<Instant>,
    pub audio_seq: u32,
    pub video_seq: u32,
    pub keyframe_due: bool,
    /// Simulcast: every video frame goes out once per layer (same payload on each).
    pub video_rids: Vec<Rid>,
    /// Sequence numbers of the video keyframes sent.
    pub keyframes_sent: Vec<u32>,
    /// When each video frame was sent, by sequence number.
    pub video_sent_at: Vec<Instant>,
}

pub struct Client {
    pub name: String,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub deadline: Instant,
    pub pending: Option<SdpPendingOffer>,
    pub connected: bool,
    pub received: Vec<Received>,
    pub keyframe_requests: usize,
    pub sending: Sending,
}

pub struct Net {
    pub start: Instant,
    pub now: Instant,
    pub sfu: Sfu,
    pub sfu_addr: SocketAddr,
    pub sfu_deadline: Option<Instant>,
    pub sfu_events: Vec<SfuEvent>,
    /// Frames of tapped publishers (`Sfu::set_tap`), decoded: (kind, seq, keyframe).
    pub recorded: Vec<(MediaKind, u32, bool)>,
    /// Alongside `recorded`: each frame's (codec, contiguous, media time in µs).
    pub recorded_meta: Vec<(&'static str, bool, u64)>,
    /// Recorded frames whose bytes are not a payload we sent.
    pub recorded_undecodable: usize,
    pub clients: Vec<Client>,
    pub dropped_by_sfu: usize,
    /// Datagrams sent to the SFU from this address are also kept here.
    pub capture: Option<(SocketAddr, Vec<Vec<u8>>)>,
    inflight: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Bottlenecks towards some clients (see `Net::cap_downlink`).
    links: Vec<Link>,
    /// Clients that lose every n-th RTP packet the SFU sends them: (address, n, count so far).
    rtp_loss: Vec<(SocketAddr, u32, u32)>,
}

/// A bottleneck towards one client: packets leave at `bps`, queueing up to `MAX_QUEUE`;
/// beyond that they are lost (a drop-tail router).
struct Link {
    to: SocketAddr,
    bps: u64,
    busy_until: Instant,
    queue: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
}

const MAX_QUEUE: Duration = Duration::from_millis(250);

/// Opus-like audio payload carrying `seq`.
pub fn audio_payload(seq: u32) -> Vec<u8> {
    let mut p = vec![0xF8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.resize(60, 0xAB);
    p
}

/// A VP8 frame carrying `seq`. The first byte is the VP8 payload header,
/// whose P bit (bit 0) is 0 for a keyframe; keyframes also carry the start
/// code and span several RTP packets.
pub fn video_payload(seq: u32, keyframe: bool) -> Vec<u8> {
    let mut p =
        if keyframe { vec![0x50, 0x2d, 0x01, 0x9d, 0x01, 0x2a] } else { vec![0x51, 0x0a, 0x00, 0x00, 0x00, 0x00] };
    p.extend_from_slice(&seq.to_be_bytes());
    p.resize(if keyframe { 3000 } else { 700 }, (seq % 251) as u8);
    p
}

fn decode(kind: MediaKind, data: &[u8]) -> Option<(u32, bool)> {
    match kind {
        MediaKind::Audio => {
            let seq = u32::from_be_bytes(data.get(1..5)?.try_into().ok()?);
            (data == audio_payload(seq)).then_some((seq, false))
        }
        MediaKind::Video => {
            let seq = u32::from_be_bytes(data.get(6..10)?.try_into().ok()?);
            let keyframe = data[0] & 1 == 0;
            (data == video_payload(seq, keyframe)).then_some((seq, keyframe))
        }
    }
}

impl Net {
    pub fn new() -> Net {
        let start = Instant::now();
        let sfu_addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        Net {
            start,
            now: start,
            recorded: Vec::new(),
            recorded_meta: Vec::new(),
            recorded_undecodable: 0,
            sfu: Sfu::new(sfu_addr),
            sfu_addr,
            sfu_deadline: None,
            sfu_events: Vec::new(),
            clients: Vec::new(),
            dropped_by_sfu: 0,
            capture: None,
            inflight: VecDeque::new(),
            links: Vec::new(),
            rtp_loss: Vec::new(),
        }
    }

    pub fn client(&mut self, name: &str) -> &mut Client {
        self.clients.iter_mut().find(|c| c.name == name).expect("known client")
    }

    fn index(&self, name: &str) -> usize {
        self.clients.iter().position(|c| c.name == name).expect("known client")
    }

    fn new_client(&mut self, name: &str, port: u16) -> usize {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap()).unwrap();
        self.clients.push(Client {
            name: name.to_string(),
            addr,
            rtc,
            deadline: self.now,
            pending: None,
            connected: false,
            received: Vec::new(),
            keyframe_requests: 0,
            sending: Sending::default(),
        });
        self.clients.len() - 1
    }

    /// A client that offers one sendonly audio and one sendonly video track.
    pub fn join_publisher(&mut self, name: &str, port: u16) {
        self.join_simulcast_publisher(name, port, &[]);
    }

    /// A publisher whose video is sent as simulcast layers `rids` (none: no simulcast).
    pub fn join_simulcast_publisher(&mut self, name: &str, port: u16, rids: &[&str]) {
        let i = self.new_client(name, port);
        let c = &mut self.clients[i];
        let simulcast = (!rids.is_empty()).then(|| {
            let mut s = Simulcast::new();
            for rid in rids {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let mut api = c.rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        let (offer, pending) = api.apply().unwrap();
        c.sending.audio_mid = Some(audio);
        c.sending.video_mid = Some(video);
        c.sending.video_rids = rids.iter().map(|r| Rid::from(*r)).collect();
        c.sending.keyframe_due = true;
        self.finish_join(i, offer, pending);
    }

    /// A client that publishes nothing (its offer has only a data channel).
    pub fn join_viewer(&mut self, name: &str, port: u16) {
        let i = self.new_client(name, port);
        let mut api = self.clients[i].rtc.sdp_api();
        api.add_channel("control".to_string());
        let (offer, pending) = api.apply().unwrap();
        self.finish_join(i, offer, pending);
    }

    fn finish_join(&mut self, i: usize, offer: SdpOffer, pending: SdpPendingOffer) {
        let name = self.clients[i].name.clone();
        let answer = self.sfu.add_peer(name, &offer.to_sdp_string(), self.now).unwrap();
        self.drain_sfu();
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        self.clients[i].rtc.sdp_api().accept_answer(pending, answer).unwrap();
        self.drain_client(i);
    }

    /// A receive-only client that joins the way an OpenTok.js subscriber does: the SFU
    /// offers first (`Sfu::add_subscriber_peer`) and the client answers like a browser,
    /// with `a=setup:active`, recvonly m-lines and no `a=candidate` lines. Returns that
    /// answer, which has not reached the SFU yet (see `deliver_answer`).
    /// A publisher "pub" and its subscriber "osub:1" on a server-offered peer, both connected
    /// (`rtp`: the SFU forwards RTP packets, not frames).
    pub fn with_offered_subscriber(rtp: bool) -> Net {
        let mut net = Net::new();
        net.sfu.set_rtp_forwarding(rtp);
        net.join_publisher("pub", 10001);
        let answer = net.join_offered("osub:1", 10002, "pub");
        net.deliver_answer("osub:1", &answer);
        net.run_until(Duration::from_secs(5), |n| n.all_connected());
        net
    }

    pub fn join_offered(&mut self, name: &str, port: u16, publisher: &str) -> String {
        self.join_offered_showing_offer(name, port, publisher).1
    }

    /// [`Net::join_offered`], returning the server's offer too.
    pub fn join_offered_showing_offer(&mut self, name: &str, port: u16, publisher: &str) -> (String, String) {
        let offer = self.sfu.add_subscriber_peer(name, publisher, self.now).unwrap();
        self.drain_sfu();
        let i = self.new_client(name, port);
        let answer = self.browser_answer(i, &offer);
        (offer, answer)
    }

    /// The client's answer to a first offer, as a browser makes it. str0m answers an
    /// `actpass` offer as the DTLS server (`setup:passive`) where browsers take the client
    /// role; shown `passive` instead, the str0m client takes the client role and answers
    /// `active`, so both ends agree with what its answer says.
    fn browser_answer(&mut self, i: usize, offer: &str) -> String {
        let offer = offer.replace("a=setup:actpass", "a=setup:passive");
        let offer = SdpOffer::from_sdp_string(&offer).unwrap();
        let answer = self.clients[i].rtc.sdp_api().accept_offer(offer).unwrap();
        self.drain_client(i);
        let sdp = answer.to_sdp_string();
        sdp.split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with("a=candidate"))
            .map(|l| format!("{l}\r\n"))
            .collect()
    }

    /// Hands a client's answer to the SFU, then answers any follow-up offers.
    pub fn deliver_answer(&mut self, name: &str, answer: &str) {
        let offer = self.sfu.accept_answer(name, answer, self.now).unwrap();
        self.drain_sfu();
        self.answer_offers(name, offer);
    }

    /// Runs the server offer / client answer cycle until nothing is queued.
    pub fn subscribe(&mut self, subscriber: &str, publisher: &str) {
        let offer = self.sfu.subscribe(subscriber, publisher, self.now).unwrap();
        self.drain_sfu();
        self.answer_offers(subscriber, offer);
    }

    pub fn answer_offers(&mut self, peer: &str, mut offer: Option<String>) {
        let i = self.index(peer);
        while let Some(sdp) = offer {
            let offer_sdp = SdpOffer::from_sdp_string(&sdp).unwrap();
            let answer = self.clients[i].rtc.sdp_api().accept_offer(offer_sdp).unwrap();
            self.drain_client(i);
            offer = self.sfu.accept_answer(peer, &answer.to_sdp_string(), self.now).unwrap();
            self.drain_sfu();
        }
    }

    /// The client restarts ICE as a browser does after a network change: a new offer with
    /// new credentials on its existing peer (`Sfu::accept_offer`). Returns the SFU's answer;
    /// a follow-up server offer, if any, is answered before this returns.
    pub fn restart_ice(&mut self, name: &str) -> String {
        let i = self.index(name);
        let mut api = self.clients[i].rtc.sdp_api();
        api.ice_restart(true);
        let (offer, pending) = api.apply().expect("an ICE restart makes an offer");
        self.drain_client(i);
        let (answer, next) = self.sfu.accept_offer(name, &offer.to_sdp_string(), self.now).unwrap();
        self.drain_sfu();
        let parsed = SdpAnswer::from_sdp_string(&answer).unwrap();
        self.clients[i].rtc.sdp_api().accept_answer(pending, parsed).unwrap();
        self.drain_client(i);
        self.answer_offers(name, next);
        answer
    }

    pub fn start_sending(&mut self, name: &str) {
        let now = self.now;
        let s = &mut self.client(name).sending;
        s.enabled = true;
        s.next_audio = Some(now);
        s.next_video = Some(now);
    }

    /// Limits what reaches client `name` to `bps` from now on (`None`: no limit again).
    pub fn cap_downlink(&mut self, name: &str, bps: Option<u64>) {
        let to = self.client(name).addr;
        let now = self.now;
        match (self.links.iter_mut().find(|l| l.to == to), bps) {
            (Some(link), Some(bps)) => link.bps = bps,
            (Some(_), None) => {
                // What is queued still arrives.
                let i = self.links.iter().position(|l| l.to == to).unwrap();
                let link = self.links.remove(i);
                for (_, source, bytes) in link.queue {
                    self.inflight.push_back((source, to, bytes));
                }
            }
            (None, Some(bps)) => self.links.push(Link { to, bps, busy_until: now, queue: VecDeque::new() }),
            (None, None) => {}
        }
    }

    /// Loses every `every`-th RTP packet (never RTCP, STUN or DTLS) from the SFU to client
    /// `name` from now on (`None`: no loss again).
    pub fn lose_rtp_to(&mut self, name: &str, every: Option<u32>) {
        let to = self.client(name).addr;
        self.rtp_loss.retain(|(addr, _, _)| *addr != to);
        if let Some(every) = every {
            self.rtp_loss.push((to, every, 0));
        }
    }

    /// Whether this datagram to `to` is lost on purpose (see `lose_rtp_to`).
    fn lost_on_purpose(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        // RTP version 2, and a payload type outside RTCP's 200..=206 (72..=78 without the marker bit).
        let rtp = bytes.len() > 12 && bytes[0] >> 6 == 2 && !(72..=78).contains(&(bytes[1] & 0x7f));
        let Some((_, every, count)) = self.rtp_loss.iter_mut().find(|(addr, _, _)| *addr == to).filter(|_| rtp) else {
            return false;
        };
        *count += 1;
        *count % *every == 0
    }

    pub fn stop_sending(&mut self, name: &str) {
        self.client(name).sending.enabled = false;
    }

    pub fn drain_sfu(&mut self) {
        while let Some(o) = self.sfu.poll_output() {
            match o {
                SfuOutput::Transmit { source, destination, bytes } => {
                    assert_eq!(source, self.sfu_addr, "the SFU sends from its host address");
                    self.inflight.push_back((source, destination, bytes));
                }
                SfuOutput::Timeout(t) => {
                    self.sfu_deadline = Some(t);
                    return;
                }
                SfuOutput::Event(e) => self.sfu_events.push(e),
                SfuOutput::Recorded(f) => match decode(f.kind, &f.data) {
                    Some((seq, keyframe)) => {
                        self.recorded.push((f.kind, seq, keyframe));
                        self.recorded_meta.push((f.codec, f.contiguous, f.media_time_us));
                    }
                    None => self.recorded_undecodable += 1,
                },
            }
        }
        self.sfu_deadline = None;
    }

    fn drain_client(&mut self, i: usize) {
        let c = &mut self.clients[i];
        loop {
            match c.rtc.poll_output().unwrap() {
                Output::Timeout(t) => {
                    c.deadline = t;
                    return;
                }
                Output::Transmit(t) => self.inflight.push_back((t.source, t.destination, t.contents.into())),
                Output::Event(Event::Connected) => c.connected = true,
                Output::Event(Event::KeyframeRequest(_)) => {
                    c.keyframe_requests += 1;
                    c.sending.keyframe_due = true;
                }
                Output::Event(Event::MediaData(d)) => {
                    let kind = match d.params.spec().codec {
                        Codec::Opus => MediaKind::Audio,
                        _ => MediaKind::Video,
                    };
                    let (seq, keyframe) = decode(kind, &d.data).expect("payload arrives intact");
                    assert_eq!(keyframe, d.is_keyframe(), "str0m sees the same frame type");
                    c.received.push(Received { kind, seq, keyframe, at: self.now });
                }
                Output::Event(_) => {}
            }
        }
    }

    fn send_media(&mut self, i: usize) {
        let now = self.now;
        let start = self.start;
        let c = &mut self.clients[i];
        if !c.sending.enabled || !c.connected {
            return;
        }
        if let (Some(mid), Some(at)) = (c.sending.audio_mid, c.sending.next_audio)
            && at <= now
        {
            let seq = c.sending.audio_seq;
            let Some(w) = c.rtc.writer(mid) else {
                c.sending.enabled = false; // the Rtc was closed
                return;
            };
            let pt = w.payload_params().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();
            let t = MediaTime::new(seq as u64 * 960, Frequency::FORTY_EIGHT_KHZ);
            w.write(pt, start + AUDIO_EVERY * seq, t, audio_payload(seq)).unwrap();
            c.sending.audio_seq += 1;
            c.sending.next_audio = Some(at + AUDIO_EVERY);
            self.drain_client(i);
        }
        let c = &mut self.clients[i];
        if let (Some(mid), Some(at)) = (c.sending.video_mid, c.sending.next_video)
            && at <= now
        {
            let seq = c.sending.video_seq;
            let keyframe = std::mem::take(&mut c.sending.keyframe_due);
            if keyframe {
                c.sending.keyframes_sent.push(seq);
            }
            let layers: Vec<Option<Rid>> = match c.sending.video_rids.as_slice() {
                [] => vec![None],
                rids => rids.iter().copied().map(Some).collect(),
            };
            for rid in layers {
                let Some(w) = c.rtc.writer(mid) else {
                    c.sending.enabled = false; // the Rtc was closed
                    return;
                };
                let pt = w.payload_params().find(|p| p.spec().codec == Codec::Vp8).unwrap().pt();
                let w = match rid {
                    Some(rid) => w.rid(rid),
                    None => w,
                };
                let t = MediaTime::new(seq as u64 * 3000, Frequency::NINETY_KHZ);
                w.write(pt, start + VIDEO_EVERY * seq, t, video_payload(seq, keyframe)).unwrap();
            }
            c.sending.video_seq += 1;
            c.sending.video_sent_at.push(now);
            c.sending.next_video = Some(at + VIDEO_EVERY);
            self.drain_client(i);
        }
    }

    fn deliver(&mut self) {
        let mut budget = 100_000;
        while let Some((source, destination, bytes)) = self.inflight.pop_front() {
            budget -= 1;
            assert!(budget > 0, "the network never went quiet");
            if destination == self.sfu_addr {
                if let Some((from, kept)) = &mut self.capture
                    && *from == source
                {
                    kept.push(bytes.clone());
                }
                if !self.sfu.handle_datagram(self.now, source, destination, &bytes) {
                    self.dropped_by_sfu += 1;
                }
                self.drain_sfu();
            } else if let Some(link) = self.links.iter_mut().find(|l| l.to == destination) {
                let start = link.busy_until.max(self.now);
                if start.saturating_duration_since(self.now) > MAX_QUEUE {
                    continue; // lost
                }
                let airtime = Duration::from_nanos(bytes.len() as u64 * 8 * 1_000_000_000 / link.bps);
                link.busy_until = start + airtime;
                link.queue.push_back((link.busy_until, source, bytes));
            } else if let Some(i) = self.clients.iter().position(|c| c.addr == destination) {
                if source == self.sfu_addr && self.lost_on_purpose(destination, &bytes) {
                    continue;
                }
                let input = Input::Receive(
                    self.now,
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination,
                        contents: bytes.as_slice().try_into().unwrap(),
                    },
                );
                self.clients[i].rtc.handle_input(input).unwrap();
                self.drain_client(i);
            }
        }
    }

    /// Hands on what has crossed a bottleneck by now.
    fn release_links(&mut self) {
        let now = self.now;
        for i in 0..self.links.len() {
            while self.links[i].queue.front().is_some_and(|(at, _, _)| *at <= now) {
                let (_, source, bytes) = self.links[i].queue.pop_front().unwrap();
                let to = self.links[i].to;
                let c = self.clients.iter().position(|c| c.addr == to).unwrap();
                let input = Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: to,
                        contents: bytes.as_slice().try_into().unwrap(),
                    },
                );
                self.clients[c].rtc.handle_input(input).unwrap();
                self.drain_client(c);
            }
        }
        self.deliver();
    }

    /// One millisecond of virtual time.
    pub fn tick(&mut self) {
        for i in 0..self.clients.len() {
            self.send_media(i);
        }
        self.deliver();
        self.release_links();
        for i in 0..self.clients.len() {
            if self.clients[i].deadline <= self.now {
                self.clients[i].rtc.handle_input(Input::Timeout(self.now)).unwrap();
                self.drain_client(i);
            }
        }
        if self.sfu_deadline.is_some_and(|t| t <= self.now) {
            self.sfu.handle_timeout(self.now);
            self.drain_sfu();
        }
        self.deliver();
        self.now += TICK;
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.tick();
        }
    }

    /// Ticks until `done` holds; panics after `limit` of virtual time.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(self.now < end, "condition not reached within {limit:?}");
            self.tick();
        }
    }

    pub fn all_connected(&self) -> bool {
        self.clients.iter().all(|c| c.connected && self.sfu.is_connected(&c.name))
    }

    pub fn received(&self, name: &str, kind: MediaKind) -> Vec<Received> {
        let c = self.clients.iter().find(|c| c.name == name).unwrap();
        c.received.iter().filter(|r| r.kind == kind).cloned().collect()
    }
}

/// Sequence numbers strictly increase.
pub fn assert_in_order(frames: &[Received]) {
    for w in frames.windows(2) {
        assert!(w[0].seq < w[1].seq, "out of order or duplicated: {} then {}", w[0].seq, w[1].seq);
    }
}
