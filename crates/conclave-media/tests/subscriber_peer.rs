//! Peers the server offers to (`Sfu::add_subscriber_peer`, how OpenTok.js subscribers
//! join): the first offer comes from a fresh ICE-lite `Rtc`, a browser-style answer
//! (`setup:active`, recvonly, no candidates) is accepted, and the publisher's media then
//! reaches the peer in order; bad calls add no peer. Later, the client may offer on its own
//! peer (an ICE restart after a network change): the SFU answers with new credentials and
//! media goes on.

mod net;

use std::time::Duration;

use conclave_media::{MediaKind, SfuError, SfuEvent};
use net::{Net, assert_in_order};

const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// The m-line kinds and directions of an SDP, in order.
fn m_lines(sdp: &str) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = Vec::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            lines.push((m.split(' ').next().unwrap_or_default().to_string(), String::new()));
        } else if let (Some(last), Some(dir)) = (
            lines.last_mut(),
            ["a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"].into_iter().find(|d| line == *d),
        ) {
            last.1 = dir[2..].to_string();
        }
    }
    lines
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn the_first_server_offer_is_ice_lite_actpass_with_the_publishers_tracks() {
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    let offer = net.sfu.add_subscriber_peer("osub:1", "pub", net.now).unwrap();
    net.drain_sfu();
    assert!(offer.contains("a=ice-lite\r\n"), "{offer}");
    assert!(offer.contains("a=setup:actpass\r\n"), "{offer}");
    assert!(!offer.contains("a=setup:active") && !offer.contains("a=setup:passive"), "{offer}");
    assert!(offer.contains(&format!("{} typ host", net.sfu_addr.port())), "the host candidate: {offer}");
    assert_eq!(m_lines(&offer), pairs(&[("audio", "sendonly"), ("video", "sendonly")]));
    assert!(offer.contains("opus/48000/2") && offer.contains("VP8/90000"), "{offer}");
    // The stream is named after the publisher.
    assert!(offer.contains("a=msid:pub "), "{offer}");
    // Nothing is connected yet, and a second offer waits for the answer.
    assert!(!net.sfu.is_connected("osub:1"));
    assert!(net.sfu.published_tracks("osub:1").unwrap().is_empty(), "a subscriber peer publishes nothing");
    net.join_publisher("pub2", 10003);
    assert_eq!(net.sfu.subscribe("osub:1", "pub2", net.now).unwrap(), None, "queued behind the pending offer");
}

#[test]
fn a_server_offered_subscriber_gets_opus_and_vp8_in_order() {
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    // Right after the publisher's offer, before it is connected: its tracks are known.
    let answer = net.join_offered("osub:1", 10002, "pub");
    assert!(answer.contains("a=setup:active\r\n"), "{answer}");
    assert!(!answer.contains("a=candidate"), "{answer}");
    assert!(!answer.contains("a=ice-lite"), "{answer}");
    assert_eq!(m_lines(&answer), pairs(&[("audio", "recvonly"), ("video", "recvonly")]));
    net.deliver_answer("osub:1", &answer);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    let connected = SfuEvent::PeerConnected { peer_id: "osub:1".to_string() };
    assert_eq!(net.sfu_events.iter().filter(|e| **e == connected).count(), 1);

    net.start_sending("pub");
    net.run_for(Duration::from_millis(2000));
    net.stop_sending("pub");
    net.run_for(Duration::from_millis(300));

    let sent_audio = net.client("pub").sending.audio_seq;
    let sent_video = net.client("pub").sending.video_seq;
    assert_eq!((sent_audio, sent_video), (100, 61));
    let audio = net.received("osub:1", MediaKind::Audio);
    let video = net.received("osub:1", MediaKind::Video);
    assert_in_order(&audio);
    assert_in_order(&video);
    assert!(audio.len() as u32 >= sent_audio - 2, "audio {}/{sent_audio}", audio.len());
    assert!(video.len() as u32 >= sent_video - 2, "video {}/{sent_video}", video.len());
    assert!(video[0].keyframe, "video starts with a keyframe");
    assert_eq!(video[0].seq, 0);
    assert!(net.client("pub").received.is_empty());
}

#[test]
fn a_late_server_offered_subscriber_starts_at_a_fresh_keyframe() {
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    net.start_sending("pub");
    net.run_for(Duration::from_millis(1000));
    let keyframes_before = net.client("pub").sending.keyframes_sent.len();

    let answer = net.join_offered("osub:1", 10002, "pub");
    net.deliver_answer("osub:1", &answer);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    net.run_for(Duration::from_millis(1000));

    assert!(net.client("pub").sending.keyframes_sent.len() > keyframes_before, "a keyframe was made for it");
    let asked = net.sfu_events.iter().any(|e| {
        matches!(e, SfuEvent::KeyframeRequested { publisher, subscriber: Some(s), .. }
            if publisher == "pub" && s == "osub:1")
    });
    assert!(asked, "a KeyframeRequested event names osub:1");
    let video = net.received("osub:1", MediaKind::Video);
    assert!(video.len() >= 25, "osub:1 got {} video frames", video.len());
    assert!(video[0].keyframe && video[0].seq > 0, "it starts at the keyframe made for it");
    assert_in_order(&video);
    let audio = net.received("osub:1", MediaKind::Audio);
    assert!(audio.len() >= 45, "osub:1 got {} audio frames", audio.len());
    assert_in_order(&audio);
}

#[test]
fn checks_before_the_answer_arrives_are_answered_with_it() {
    // A browser starts ICE checks as soon as it has answered; the answer may reach the
    // server after them. The server's peer has no remote credentials yet: str0m queues
    // the checks (it cannot sign a response without the remote password) and answers them
    // when the answer arrives, so the connection does not wait for a retransmission.
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    let answer = net.join_offered("osub:1", 10002, "pub");
    net.run_for(Duration::from_millis(300));
    assert!(!net.sfu.is_connected("osub:1"));
    assert_eq!(net.dropped_by_sfu, 0, "early checks reach the peer");
    let answered_at = net.now;
    net.deliver_answer("osub:1", &answer);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    assert!(
        net.now - answered_at < Duration::from_millis(50),
        "connected {:?} after the answer",
        net.now - answered_at
    );
    net.start_sending("pub");
    net.run_for(Duration::from_millis(1000));
    let video = net.received("osub:1", MediaKind::Video);
    let audio = net.received("osub:1", MediaKind::Audio);
    assert!(video.len() >= 28 && audio.len() >= 48, "video {}, audio {}", video.len(), audio.len());
    assert!(video[0].keyframe);
    assert_in_order(&video);
    assert_in_order(&audio);
}

#[test]
fn a_server_offered_subscriber_renegotiates_like_any_other() {
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    net.join_publisher("pub2", 10003);
    let answer = net.join_offered("osub:1", 10002, "pub");
    net.deliver_answer("osub:1", &answer);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    // A second publisher rides on an ordinary server offer.
    net.subscribe("osub:1", "pub2");
    net.start_sending("pub");
    net.start_sending("pub2");
    net.run_for(Duration::from_millis(1000));
    assert!(net.received("osub:1", MediaKind::Video).len() >= 55, "both publishers' video");
    assert!(net.received("osub:1", MediaKind::Audio).len() >= 95, "both publishers' audio");

    // The first publisher leaves: its m-lines are stopped in the next offer.
    net.sfu.remove_peer("pub").unwrap();
    net.drain_sfu();
    let offer = net.sfu.unsubscribe("osub:1", "pub2", net.now).unwrap().expect("an offer");
    assert_eq!(
        m_lines(&offer).into_iter().map(|(_, d)| d).collect::<Vec<_>>(),
        ["inactive", "inactive", "inactive", "inactive"]
    );
}

#[test]
fn bad_subscriber_peers_are_refused_and_leave_nothing() {
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    net.join_viewer("viewer", 10002);
    let now = net.now;
    let sfu = &mut net.sfu;
    assert!(matches!(sfu.add_subscriber_peer("osub:1", "nobody", now), Err(SfuError::UnknownPeer(p)) if p == "nobody"));
    assert!(matches!(sfu.add_subscriber_peer("viewer", "pub", now), Err(SfuError::PeerExists(p)) if p == "viewer"));
    assert!(matches!(sfu.add_subscriber_peer("pub", "pub", now), Err(SfuError::PeerExists(_))));
    // A data-channel-only peer publishes no tracks.
    assert!(matches!(sfu.add_subscriber_peer("osub:1", "viewer", now), Err(SfuError::NoTracks(p)) if p == "viewer"));
    assert!(matches!(sfu.published_tracks("osub:1"), Err(SfuError::UnknownPeer(_))), "no peer was added");
    assert!(matches!(sfu.accept_answer("osub:1", "v=0\r\n", now), Err(SfuError::UnknownPeer(_))));

    // A good one works after the failures, and only one answer is accepted.
    let answer = net.join_offered("osub:1", 10003, "pub");
    let now = net.now;
    assert!(matches!(net.sfu.add_subscriber_peer("osub:1", "pub", now), Err(SfuError::PeerExists(_))));
    net.deliver_answer("osub:1", &answer);
    assert!(matches!(net.sfu.accept_answer("osub:1", &answer, now), Err(SfuError::NoPendingOffer(_))));
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
}

#[test]
fn a_server_offered_subscriber_gets_one_layer_of_a_simulcast_publisher() {
    let mut net = Net::new();
    net.join_simulcast_publisher("pub", 10001, &["l", "h"]);
    let answer = net.join_offered("osub:1", 10002, "pub");
    assert_eq!(m_lines(&answer), pairs(&[("audio", "recvonly"), ("video", "recvonly")]));
    assert!(!answer.contains("a=simulcast"), "the subscriber gets a plain video track: {answer}");
    net.deliver_answer("osub:1", &answer);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    net.start_sending("pub");
    net.run_for(Duration::from_millis(2000));

    let sent = net.client("pub").sending.video_seq;
    let video = net.received("osub:1", MediaKind::Video);
    // Both layers carry the same frames, so one layer at a time means no frame twice,
    // except the picture at which forwarding moves up from the first layer seen to the
    // best one (the `forward` rules switch on that layer's keyframe even when the lower
    // layer's copy of the same picture went out already; `subscribe` does the same).
    assert!(video[0].keyframe, "video starts with a keyframe");
    for w in video.windows(2) {
        let repeated_switch = w[0].seq == w[1].seq && w[1].keyframe;
        assert!(w[0].seq < w[1].seq || repeated_switch, "out of order: {} then {}", w[0].seq, w[1].seq);
    }
    let repeats = video.windows(2).filter(|w| w[0].seq == w[1].seq).count();
    assert!(repeats <= 1, "one layer switch at most: {repeats}");
    assert!(video.len() as u32 >= sent - 3, "video {}/{sent}", video.len());
    let audio = net.received("osub:1", MediaKind::Audio);
    assert_in_order(&audio);
    assert!(audio.len() >= 95, "audio {}", audio.len());
}

fn ufrag(sdp: &str) -> String {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).expect("an ice-ufrag").to_string()
}

#[test]
fn a_subscriber_that_restarts_ice_is_answered_and_keeps_receiving() {
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    let (offer, answer) = net.join_offered_showing_offer("osub:1", 10002, "pub");
    net.deliver_answer("osub:1", &answer);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    net.start_sending("pub");
    net.run_for(Duration::from_millis(1000));
    let before = net.received("osub:1", MediaKind::Video).len();
    assert!(before >= 25, "video before the restart: {before}");

    let answer = net.restart_ice("osub:1");
    assert_ne!(ufrag(&answer), ufrag(&offer), "new ICE credentials in the answer: {answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert_eq!(m_lines(&answer), pairs(&[("audio", "sendonly"), ("video", "sendonly")]), "same tracks");
    net.run_for(Duration::from_millis(1000));
    net.stop_sending("pub");
    net.run_for(Duration::from_millis(300));
    assert!(net.sfu.is_connected("osub:1"));
    let video = net.received("osub:1", MediaKind::Video);
    let audio = net.received("osub:1", MediaKind::Audio);
    assert!(video.len() >= before + 25, "video went on after the restart: {before} -> {}", video.len());
    assert_in_order(&video);
    assert_in_order(&audio);
    let sent = net.client("pub").sending.video_seq;
    assert!(video.len() as u32 >= sent - 3, "video {}/{sent}", video.len());
}

#[test]
fn a_client_offer_voids_a_pending_server_offer_which_is_made_again() {
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    net.join_publisher("pub2", 10003);
    let answer = net.join_offered("osub:1", 10002, "pub");
    net.deliver_answer("osub:1", &answer);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    // The server offers pub2's tracks, but the client offers (an ICE restart) before it
    // answers: the server's offer is void, and its tracks come in the next one.
    let now = net.now;
    let collided = net.sfu.subscribe("osub:1", "pub2", now).unwrap().expect("a server offer");
    net.drain_sfu();
    assert_eq!(m_lines(&collided).len(), 4);
    net.restart_ice("osub:1");
    net.start_sending("pub");
    net.start_sending("pub2");
    net.run_for(Duration::from_millis(1000));
    let video = net.received("osub:1", MediaKind::Video);
    assert!(video.len() >= 55, "both publishers' video after the follow-up offer: {}", video.len());
}

#[test]
fn a_publisher_that_restarts_ice_keeps_its_subscribers() {
    let mut net = Net::with_offered_subscriber(false);
    net.start_sending("pub");
    net.run_for(Duration::from_millis(500));
    let tracks = net.sfu.published_tracks("pub").unwrap();
    let answer = net.restart_ice("pub");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert_eq!(net.sfu.published_tracks("pub").unwrap(), tracks, "the same tracks");
    let before = net.received("osub:1", MediaKind::Video).len();
    net.run_for(Duration::from_millis(1000));
    let video = net.received("osub:1", MediaKind::Video);
    assert!(video.len() >= before + 25, "its video went on: {before} -> {}", video.len());
    assert_in_order(&video);
    assert!(matches!(
        net.sfu.accept_offer("nobody", "v=0\r\n", net.now),
        Err(SfuError::UnknownPeer(_)) | Err(SfuError::Sdp(_))
    ));
}

#[test]
fn a_subscriber_whose_bandwidth_collapses_falls_back_to_audio_and_gets_video_back() {
    let mut net = Net::with_offered_subscriber(false);
    let now = net.now;
    net.sfu.set_audio_fallback("osub:1", true, now).unwrap();
    net.start_sending("pub");
    net.run_for(Duration::from_millis(3000));
    let fallback = |n: &Net, audio_only: bool| {
        n.sfu_events.iter().any(|e| *e == SfuEvent::AudioFallback { peer_id: "osub:1".to_string(), audio_only })
    };
    assert!(!fallback(&net, true), "no fallback on a good link");

    // 60 kbit/s: room for audio (about 40), not for video.
    net.cap_downlink("osub:1", Some(60_000));
    net.run_until(Duration::from_secs(30), |n| fallback(n, true));
    let entered = net.now;
    let sent_at_entry = net.client("pub").sending.video_seq;
    let audio_then = net.received("osub:1", MediaKind::Audio).len();
    net.run_for(Duration::from_millis(5000));
    // What the pacer had queued for the slow link still drains; nothing newer is sent.
    let video_then = net.received("osub:1", MediaKind::Video).len();
    let newer: Vec<u32> =
        net.received("osub:1", MediaKind::Video).iter().map(|r| r.seq).filter(|s| *s >= sent_at_entry).collect();
    assert_eq!(newer, Vec::<u32>::new(), "no video made after the fallback reaches the subscriber");
    let audio = net.received("osub:1", MediaKind::Audio).len() - audio_then;
    assert!(audio >= 150, "audio went on (sharing the link with the drained backlog): {audio} frames in 5 s");

    // The link recovers: video comes back, starting at a keyframe.
    net.cap_downlink("osub:1", None);
    net.run_until(Duration::from_secs(60), |n| fallback(n, false));
    let resumed = net.now;
    assert!(resumed - entered >= Duration::from_secs(5), "not before the recovery lasted");
    net.run_for(Duration::from_millis(2000));
    let video = net.received("osub:1", MediaKind::Video);
    let back: Vec<_> = video[video_then..].iter().filter(|r| r.seq >= sent_at_entry).cloned().collect();
    assert!(back.len() >= 40, "video is back: {} frames", back.len());
    assert!(back[0].keyframe, "it resumes at a keyframe");
    assert_in_order(&video);
}

#[test]
fn without_audio_fallback_a_slow_subscriber_keeps_its_video() {
    let mut net = Net::with_offered_subscriber(false);
    net.start_sending("pub");
    net.run_for(Duration::from_millis(1000));
    net.cap_downlink("osub:1", Some(60_000));
    net.run_for(Duration::from_secs(10));
    assert!(!net.sfu_events.iter().any(|e| matches!(e, SfuEvent::AudioFallback { .. })));
    let before = net.received("osub:1", MediaKind::Video).len();
    net.run_for(Duration::from_secs(2));
    assert!(net.received("osub:1", MediaKind::Video).len() > before, "video still trickles through");
}

#[test]
fn a_subscriber_can_pause_and_resume_video_and_audio_on_its_own() {
    pause_and_resume(false);
}

#[test]
fn in_rtp_mode_a_subscriber_can_pause_and_resume_video_and_audio_on_its_own() {
    pause_and_resume(true);
}

fn pause_and_resume(rtp_forwarding: bool) {
    let mut net = Net::with_offered_subscriber(rtp_forwarding);
    net.start_sending("pub");
    net.run_for(Duration::from_millis(1000));
    assert!(!net.received("osub:1", MediaKind::Video).is_empty());

    // subscribeToVideo(false): no video made after it reaches the subscriber; audio goes on.
    let now = net.now;
    net.sfu.set_receiving("osub:1", MediaKind::Video, false, now).unwrap();
    let paused_at = net.client("pub").sending.video_seq;
    let audio_then = net.received("osub:1", MediaKind::Audio).len();
    net.run_for(Duration::from_millis(2000));
    let video = net.received("osub:1", MediaKind::Video);
    assert!(video.iter().all(|r| r.seq < paused_at), "no video made while paused reaches the subscriber");
    assert!(net.received("osub:1", MediaKind::Audio).len() > audio_then + 50, "audio goes on");

    // subscribeToVideo(true): video comes back from a keyframe.
    let video_then = video.len();
    let now = net.now;
    net.sfu.set_receiving("osub:1", MediaKind::Video, true, now).unwrap();
    net.run_for(Duration::from_millis(2000));
    let video = net.received("osub:1", MediaKind::Video);
    assert!(video.len() >= video_then + 40, "video is back: {} frames", video.len() - video_then);
    assert!(video[video_then].keyframe, "it resumes at a keyframe");
    assert_in_order(&video);

    // subscribeToAudio(false) stops audio, and only audio.
    let now = net.now;
    net.sfu.set_receiving("osub:1", MediaKind::Audio, false, now).unwrap();
    net.run_for(Duration::from_millis(500));
    let (audio_then, video_then) =
        (net.received("osub:1", MediaKind::Audio).len(), net.received("osub:1", MediaKind::Video).len());
    net.run_for(Duration::from_millis(2000));
    assert_eq!(net.received("osub:1", MediaKind::Audio).len(), audio_then, "no audio while paused");
    assert!(net.received("osub:1", MediaKind::Video).len() > video_then + 40, "video goes on");
    assert!(net.sfu.set_receiving("nobody", MediaKind::Audio, false, net.now).is_err());
}

#[test]
fn an_ice_restart_ends_an_audio_fallback_learned_on_the_old_path() {
    let mut net = Net::with_offered_subscriber(false);
    let now = net.now;
    net.sfu.set_audio_fallback("osub:1", true, now).unwrap();
    net.start_sending("pub");
    net.run_for(Duration::from_millis(2000));
    let fallback = |n: &Net, audio_only: bool| {
        n.sfu_events.iter().filter(|e| **e == SfuEvent::AudioFallback { peer_id: "osub:1".into(), audio_only }).count()
    };
    net.cap_downlink("osub:1", Some(60_000));
    net.run_until(Duration::from_secs(30), |n| fallback(n, true) == 1);
    net.cap_downlink("osub:1", None);
    // A new path: the fallback ends at once, without waiting for the old estimate to recover.
    net.restart_ice("osub:1");
    assert_eq!(fallback(&net, false), 1, "the restart ends the fallback");
    let video_then = net.received("osub:1", MediaKind::Video).len();
    net.run_for(Duration::from_millis(2000));
    let video = net.received("osub:1", MediaKind::Video);
    assert!(video.len() >= video_then + 40, "video is back: {} frames", video.len() - video_then);
    assert!(video[video_then..].iter().any(|r| r.keyframe), "from a keyframe");
    assert_in_order(&video);
}
