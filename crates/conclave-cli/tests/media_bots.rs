//! Media against a real `conclave serve` on loopback: str0m bots (`conclave_client::media`)
//! publish synthetic Opus and VP8 and receive it through the SFU (routed) or peer to peer
//! (relayed), with loss injection and force-mute.

mod common;

use common::*;
use conclave_client::media::Kind;
use conclave_client::media::{BotConfig, Frame, MediaBot, publish_routed, receive_routed};
use conclave_client::signal::{ClientMessage, SdpKind, ServerMessage, StreamInfo};
use conclave_client::{Client, PublishOptions};
use conclave_sdk::{Role, SessionOptions, TokenOptions};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);
const RTC: &[&str] = &["--rtc-host", "127.0.0.1", "--rtc-port", "0", "--metrics-allow", "127.0.0.1"];

/// A counter's value from the server's /metrics.
async fn metric(base: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0)
}

struct Env {
    server: Server,
    sdk: conclave_sdk::Client,
    ws: String,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = create_project(&data);
    let server = Server::start(&data, RTC);
    let sdk = conclave_sdk::Client::new(&p.api_key, &p.api_secret, &server.base).unwrap();
    let ws = format!("{}/v1/signal", server.base.replace("http://", "ws://"));
    Env { server, sdk, ws, _dir: dir }
}

impl Env {
    async fn session(&self, opts: SessionOptions) -> String {
        self.sdk.create_session(&opts).await.unwrap().session_id
    }
    async fn join(&self, session: &str, role: Role) -> Client {
        let t = self.sdk.generate_token(session, &TokenOptions::new(role)).unwrap();
        Client::connect(&self.ws, session, &t).await.unwrap()
    }
    async fn publisher(&self, session: &str, source: u32) -> (Client, StreamInfo, MediaBot) {
        let mut c = self.join(session, Role::Publisher).await;
        let stream = c.publish(PublishOptions::default()).await.unwrap();
        let bot =
            publish_routed(&mut c, &stream.stream_id, BotConfig { source, ..BotConfig::default() }).await.unwrap();
        bot.wait_connected(T).await.unwrap();
        (c, stream, bot)
    }
    async fn subscriber(&self, session: &str, stream: &str, cfg: BotConfig) -> (Client, MediaBot) {
        let mut c = self.join(session, Role::Subscriber).await;
        c.subscribe(stream).await.unwrap();
        let bot = receive_routed(&mut c, cfg).await.unwrap();
        (c, bot)
    }
}

/// Pumps a receiver's signaling until it has `n` video frames.
async fn until_video(bot: &MediaBot, c: &mut Client, n: usize) {
    let end = Instant::now() + T;
    while bot.with_stats(|s| s.video_frames) < n as u64 {
        assert!(
            Instant::now() < end,
            "no video within {T:?}: {:?}",
            bot.with_stats(|s| (s.connected, s.rtp_in, s.errors.clone()))
        );
        bot.pump(c, Duration::from_millis(50)).await.unwrap();
    }
}

fn assert_in_order(frames: &[Frame]) {
    for w in frames.windows(2) {
        assert!(w[0].seq < w[1].seq, "{:?} out of order or duplicated: {} then {}", w[0].kind, w[0].seq, w[1].seq);
    }
    assert!(frames.iter().all(|f| f.intact), "a payload arrived damaged");
}

/// Sequence numbers missing between the first and the last received.
fn gaps(frames: &[Frame]) -> u32 {
    match (frames.first(), frames.last()) {
        (Some(a), Some(b)) => (b.seq - a.seq + 1) - frames.len() as u32,
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_media_reaches_two_subscribers_in_order_and_the_late_one_starts_on_a_keyframe() {
    let e = env().await;
    let s = e.session(SessionOptions::routed()).await;
    let (_pc, stream, publisher) = e.publisher(&s, 7).await;
    let (mut c1, r1) = e.subscriber(&s, &stream.stream_id, BotConfig::default()).await;
    until_video(&r1, &mut c1, 1).await;

    let late_join = Instant::now();
    let requests_before = publisher.with_stats(|s| s.keyframe_requests.len());
    let (mut c2, r2) = e.subscriber(&s, &stream.stream_id, BotConfig::default()).await;
    let window = Instant::now();
    let (a, b) = tokio::join!(r1.pump(&mut c1, Duration::from_secs(2)), r2.pump(&mut c2, Duration::from_secs(2)));
    a.unwrap();
    b.unwrap();
    publisher.stop_sending();
    let (a, b) =
        tokio::join!(r1.pump(&mut c1, Duration::from_millis(500)), r2.pump(&mut c2, Duration::from_millis(500)));
    a.unwrap();
    b.unwrap();

    let sent = publisher.stats();
    assert!(sent.errors.is_empty(), "publisher errors: {:?}", sent.errors);
    for (name, r) in [("first", &r1), ("late", &r2)] {
        let audio = r.frames(Kind::Audio);
        let video = r.frames(Kind::Video);
        assert_in_order(&audio);
        assert_in_order(&video);
        assert!(audio.iter().chain(&video).all(|f| f.source == 7));
        // Everything from the first frame received to the last sent arrives (loopback, no loss).
        let a_first = audio.first().expect("audio arrives").seq;
        let v_first = video.first().expect("video arrives").seq;
        let a_expected = sent.audio_sent - a_first;
        let v_expected = sent.video_sent - v_first;
        eprintln!(
            "{name}: audio {}/{a_expected} video {}/{v_expected} (first seqs {a_first}/{v_first})",
            audio.len(),
            video.len()
        );
        assert!(
            audio.len() as u32 + 2 >= a_expected && audio.len() as u32 <= a_expected,
            "{name}: audio {} of {a_expected}",
            audio.len()
        );
        assert!(
            video.len() as u32 + 2 >= v_expected && video.len() as u32 <= v_expected,
            "{name}: video {} of {v_expected}",
            video.len()
        );
        let in_window = |fs: &[Frame]| fs.iter().filter(|f| f.at >= window).count();
        // ~2 s at 50 and 30 frames per second.
        assert!(in_window(&audio) >= 85, "{name}: {} audio frames in the window", in_window(&audio));
        assert!(in_window(&video) >= 50, "{name}: {} video frames in the window", in_window(&video));
    }
    let late_first = r2.frames(Kind::Video)[0].clone();
    assert!(late_first.keyframe, "the late subscriber's first video frame is a keyframe");
    let after: Vec<_> = sent.keyframe_requests.iter().filter(|t| **t >= late_join).collect();
    assert!(
        !after.is_empty() && sent.keyframe_requests.len() > requests_before,
        "the publisher got a keyframe request after the late join"
    );
    assert!(
        sent.keyframes_sent.iter().any(|(seq, _)| *seq == late_first.seq),
        "that keyframe was one the publisher sent on request"
    );
    assert!(sent.keyframes_sent.len() >= 2, "a first keyframe and at least one on request: {:?}", sent.keyframes_sent);
    // The SFU's traffic shows in /metrics.
    let sent_packets = metric(&e.server.base, "conclave_media_packets_sent_total ").await;
    assert!(
        sent_packets > 200,
        "{sent_packets}: {}",
        reqwest::get(format!("{}/metrics", e.server.base)).await.unwrap().text().await.unwrap()
    );
    assert!(metric(&e.server.base, "conclave_media_bytes_received_total ").await > 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_survives_five_percent_receive_loss_through_nack() {
    let e = env().await;
    let s = e.session(SessionOptions::routed()).await;
    let (_pc, stream, publisher) = e.publisher(&s, 1).await;
    let (mut c, r) = e.subscriber(&s, &stream.stream_id, BotConfig { drop_every: 20, ..BotConfig::default() }).await;
    until_video(&r, &mut c, 1).await;
    r.pump(&mut c, Duration::from_secs(3)).await.unwrap();
    publisher.stop_sending();
    r.pump(&mut c, Duration::from_secs(1)).await.unwrap();

    let st = r.stats();
    let video = r.frames(Kind::Video);
    let audio = r.frames(Kind::Audio);
    let sent = publisher.stats();
    let v_expected = sent.video_sent - video[0].seq;
    eprintln!(
        "loss: dropped {} of {} RTP datagrams; video {} of {v_expected} frames, {} gaps, {} non-contiguous; audio {} of {}, {} gaps",
        st.rtp_dropped,
        st.rtp_in,
        video.len(),
        gaps(&video),
        video.iter().filter(|f| !f.contiguous).count(),
        audio.len(),
        sent.audio_sent - audio[0].seq,
        gaps(&audio),
    );
    let media_in = st.rtp_in - st.rtp_in_padded;
    eprintln!("{} padding-only packets not counted", st.rtp_in_padded);
    assert!(st.rtp_dropped * 22 >= media_in, "~5% of media RTP was dropped: {} of {media_in}", st.rtp_dropped);
    assert_in_order(&video);
    assert_in_order(&audio);
    // Retransmission recovers the video: at most 1% of frames lost, against ~5% packet loss.
    assert!(gaps(&video) * 100 <= v_expected, "video gaps {} of {v_expected}", gaps(&video));
    assert!(video.len() as u32 * 100 >= v_expected * 98, "video {} of {v_expected}", video.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_bots_negotiate_over_sdp_and_ice_and_send_peer_to_peer() {
    let e = env().await;
    let s = e.session(SessionOptions::default()).await;
    let mut pc = e.join(&s, Role::Publisher).await;
    let stream = pc.publish(PublishOptions::default()).await.unwrap();
    let mut sc = e.join(&s, Role::Subscriber).await;
    sc.subscribe(&stream.stream_id).await.unwrap();

    // The subscriber offers to the publisher (recvonly audio and video), then trickles.
    let sub_bot = MediaBot::start(BotConfig::default()).await.unwrap();
    let offer = sub_bot.offer(false, true).unwrap();
    let sid = stream.stream_id.clone();
    sc.send(ClientMessage::Sdp {
        to: stream.connection_id.clone(),
        stream_id: sid.clone(),
        kind: SdpKind::Offer,
        sdp: offer,
    })
    .unwrap();
    sc.send(ClientMessage::Ice {
        to: stream.connection_id.clone(),
        stream_id: sid.clone(),
        candidate: sub_bot.candidate_json(),
    })
    .unwrap();

    let (from, offer) =
        match pc.wait_for(|m| matches!(m, ServerMessage::Sdp { kind: SdpKind::Offer, .. }), T).await.unwrap() {
            ServerMessage::Sdp { from, stream_id, sdp, .. } => {
                assert_eq!(stream_id, sid);
                (from, sdp)
            }
            _ => unreachable!(),
        };
    assert_eq!(from, sc.connection_id);
    let pub_bot = MediaBot::start(BotConfig { source: 3, ..BotConfig::default() }).await.unwrap();
    let answer = pub_bot.accept_offer(&offer).unwrap();
    pc.send(ClientMessage::Sdp { to: from.clone(), stream_id: sid.clone(), kind: SdpKind::Answer, sdp: answer })
        .unwrap();
    pc.send(ClientMessage::Ice { to: from.clone(), stream_id: sid.clone(), candidate: pub_bot.candidate_json() })
        .unwrap();
    pub_bot.start_sending();
    match pc.wait_for(|m| matches!(m, ServerMessage::Ice { .. }), T).await.unwrap() {
        ServerMessage::Ice { candidate, from: f, .. } => {
            assert_eq!(f, sc.connection_id);
            pub_bot.add_remote_candidate(&candidate).unwrap();
        }
        _ => unreachable!(),
    }
    match sc.wait_for(|m| matches!(m, ServerMessage::Sdp { kind: SdpKind::Answer, .. }), T).await.unwrap() {
        ServerMessage::Sdp { sdp, .. } => sub_bot.accept_answer(&sdp).unwrap(),
        _ => unreachable!(),
    }
    match sc.wait_for(|m| matches!(m, ServerMessage::Ice { .. }), T).await.unwrap() {
        ServerMessage::Ice { candidate, .. } => sub_bot.add_remote_candidate(&candidate).unwrap(),
        _ => unreachable!(),
    }
    sub_bot.wait_connected(T).await.unwrap();
    pub_bot.wait_connected(T).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let audio = sub_bot.frames(Kind::Audio);
    let video = sub_bot.frames(Kind::Video);
    assert_in_order(&audio);
    assert_in_order(&video);
    let sent = pub_bot.stats();
    eprintln!("relayed: audio {}/{} video {}/{} sent", audio.len(), sent.audio_sent, video.len(), sent.video_sent);
    // Loopback, no loss: everything sent since the first frame received arrives.
    assert!(
        audio.len() >= 90 && audio.len() as u32 + 3 >= sent.audio_sent - audio[0].seq,
        "audio {} of {}",
        audio.len(),
        sent.audio_sent
    );
    assert!(
        video.len() >= 55 && video.len() as u32 + 2 >= sent.video_sent - video[0].seq,
        "video {} of {}",
        video.len(),
        sent.video_sent
    );
    assert!(video[0].keyframe && video.iter().all(|f| f.source == 3));
    // Peer to peer: each bot heard only the other's socket, never the server.
    let heard_by_sub = sub_bot.with_stats(|s| s.remote_addrs.clone());
    let heard_by_pub = pub_bot.with_stats(|s| s.remote_addrs.clone());
    assert_eq!(heard_by_sub.into_iter().collect::<Vec<_>>(), vec![pub_bot.local_addr()]);
    assert_eq!(heard_by_pub.into_iter().collect::<Vec<_>>(), vec![sub_bot.local_addr()]);
    drop(e.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_force_mute_stops_audio_at_the_subscriber_but_not_video() {
    let e = env().await;
    let s = e.session(SessionOptions::routed()).await;
    let (_pc, stream, _publisher) = e.publisher(&s, 9).await;
    let (mut c, r) = e.subscriber(&s, &stream.stream_id, BotConfig::default()).await;
    until_video(&r, &mut c, 1).await;
    r.pump(&mut c, Duration::from_millis(500)).await.unwrap();
    let audio_before = r.with_stats(|s| s.audio_frames);
    assert!(audio_before >= 20, "audio flows before the mute: {audio_before}");

    let url = format!("{}/v2/project/{}/session/{s}/stream/{}/mute", e.server.base, e.sdk.api_key(), stream.stream_id);
    let res = reqwest::Client::new().post(url).header("X-OPENTOK-AUTH", e.sdk.rest_credential()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let muted_at = Instant::now();
    r.wait_event(&mut c, |m| matches!(m, ServerMessage::StreamPropertyChanged { new_value, .. } if new_value == &serde_json::json!(false)), T).await.unwrap();
    r.pump(&mut c, Duration::from_secs(2)).await.unwrap();

    let settle = muted_at + Duration::from_millis(300);
    let audio_after = r.frames(Kind::Audio).iter().filter(|f| f.at > settle).count();
    let video_after = r.frames(Kind::Video).iter().filter(|f| f.at > settle).count();
    eprintln!("after mute: audio {audio_after}, video {video_after}");
    assert_eq!(audio_after, 0, "no audio after the force-mute");
    assert!(video_after >= 40, "video continues: {video_after}");
    assert_in_order(&r.frames(Kind::Video));
}

/// A meeting: one receiver subscribed to five publishers gets every one of them. Its answer to
/// the SFU's offer for ten tracks is about 20 KiB, over the 16 KiB message limit: session
/// descriptions have a limit of their own (this failed before they had).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_of_five_publishers_gets_every_one_of_them() {
    let env = env().await;
    let s = env.session(SessionOptions::routed()).await;
    let mut publishers = Vec::new();
    for source in 1..=5u32 {
        publishers.push(env.publisher(&s, source).await);
    }
    let mut c = env.join(&s, Role::Subscriber).await;
    for (_, stream, _) in &publishers {
        c.subscribe(&stream.stream_id).await.unwrap();
    }
    let bot = receive_routed(&mut c, BotConfig::default()).await.unwrap();
    let end = Instant::now() + T;
    let sources = |bot: &MediaBot| {
        let mut seen: Vec<u32> = bot.frames(Kind::Video).iter().map(|f| f.source).collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    };
    while sources(&bot).len() < 5 {
        assert!(
            Instant::now() < end,
            "video from {:?} only: {:?}",
            sources(&bot),
            bot.with_stats(|s| s.errors.clone())
        );
        bot.pump(&mut c, Duration::from_millis(50)).await.unwrap();
    }
    assert_eq!(sources(&bot), [1, 2, 3, 4, 5]);
}
