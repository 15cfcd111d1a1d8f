//! End-to-end behaviour of the SFU core with real str0m client peers on
//! virtual time: media reaches subscribers, late joiners get a keyframe,
//! force-mute and removal stop forwarding.

mod net;

use std::time::Duration;

use conclave_media::{MediaKind, SfuError, SfuEvent};
use net::{Net, assert_in_order};

const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// A publisher "pub" and a viewer "sub1" subscribed to it, all connected.
fn room() -> Net {
    let mut net = Net::new();
    net.join_publisher("pub", 10001);
    net.join_viewer("sub1", 10002);
    net.subscribe("sub1", "pub");
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    net
}

#[test]
fn publisher_tracks_are_announced_and_peers_connect() {
    let net = room();
    let published: Vec<_> = net
        .sfu_events
        .iter()
        .filter_map(|e| match e {
            SfuEvent::TrackPublished { peer_id, kind, .. } => Some((peer_id.as_str(), *kind)),
            _ => None,
        })
        .collect();
    assert_eq!(published, [("pub", MediaKind::Audio), ("pub", MediaKind::Video)]);
    let tracks = net.sfu.published_tracks("pub").unwrap();
    assert_eq!(tracks.len(), 2);
    for kind in [MediaKind::Audio, MediaKind::Video] {
        assert_eq!(tracks.iter().filter(|(_, k)| *k == kind).count(), 1, "{kind:?}");
    }
    assert!(net.sfu.published_tracks("sub1").unwrap().is_empty(), "a data-channel-only offer publishes nothing");
    for who in ["pub", "sub1"] {
        let connected = SfuEvent::PeerConnected { peer_id: who.to_string() };
        assert_eq!(net.sfu_events.iter().filter(|e| **e == connected).count(), 1, "{who}");
    }
}

#[test]
fn opus_and_vp8_reach_the_subscriber_in_order() {
    let mut net = room();
    net.start_sending("pub");
    net.run_for(Duration::from_millis(2000));
    net.stop_sending("pub");
    net.run_for(Duration::from_millis(300));

    let sent_audio = net.client("pub").sending.audio_seq;
    let sent_video = net.client("pub").sending.video_seq;
    assert_eq!((sent_audio, sent_video), (100, 61));

    let audio = net.received("sub1", MediaKind::Audio);
    let video = net.received("sub1", MediaKind::Video);
    assert_in_order(&audio);
    assert_in_order(&video);
    // A lossless network: allow only a frame or two lost at the edges.
    assert!(audio.len() as u32 >= sent_audio - 2, "audio {}/{sent_audio}", audio.len());
    assert!(video.len() as u32 >= sent_video - 2, "video {}/{sent_video}", video.len());
    assert!(video[0].keyframe, "video starts with a keyframe");
    assert_eq!(video[0].seq, 0);
    // The publisher never forwards back to itself.
    assert!(net.client("pub").received.is_empty());
}

#[test]
fn a_late_subscriber_gets_a_keyframe_request_to_the_publisher() {
    let mut net = room();
    net.start_sending("pub");
    net.run_for(Duration::from_millis(1000));
    let requests_before = net.client("pub").keyframe_requests;
    let keyframes_before = net.client("pub").sending.keyframes_sent.len();

    net.join_viewer("sub2", 10003);
    net.subscribe("sub2", "pub");
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    net.run_for(Duration::from_millis(1000));

    let publisher = net.client("pub");
    assert!(
        publisher.keyframe_requests > requests_before,
        "the publisher got {} keyframe requests, {} before sub2 joined",
        publisher.keyframe_requests,
        requests_before
    );
    assert!(publisher.sending.keyframes_sent.len() > keyframes_before);
    let asked_for_sub2 = net.sfu_events.iter().any(|e| {
        matches!(e, SfuEvent::KeyframeRequested { publisher, subscriber: Some(s), .. }
            if publisher == "pub" && s == "sub2")
    });
    assert!(asked_for_sub2, "a KeyframeRequested event names sub2");

    let video = net.received("sub2", MediaKind::Video);
    assert!(video.len() >= 20, "sub2 got {} video frames", video.len());
    assert!(video[0].keyframe, "sub2's video starts at a keyframe");
    assert!(video[0].seq > 0, "that keyframe was made for the late joiner");
    assert_in_order(&video);
    assert!(net.received("sub2", MediaKind::Audio).len() >= 40);
    // sub1 kept receiving meanwhile.
    assert!(net.received("sub1", MediaKind::Video).len() >= 55);
}

#[test]
fn force_mute_stops_audio_but_not_video() {
    let mut net = room();
    net.start_sending("pub");
    net.run_for(Duration::from_millis(1000));
    let audio_before = net.received("sub1", MediaKind::Audio).len();
    assert!(audio_before >= 45, "audio flowed first: {audio_before}");

    net.sfu.set_audio_forwarding("pub", false).unwrap();
    let muted_at_audio = net.client("pub").sending.audio_seq;
    let muted_at_video = net.client("pub").sending.video_seq;
    net.run_for(Duration::from_millis(1000));

    let late_audio = net.received("sub1", MediaKind::Audio).into_iter().filter(|r| r.seq >= muted_at_audio).count();
    let late_video = net.received("sub1", MediaKind::Video).into_iter().filter(|r| r.seq >= muted_at_video).count();
    assert_eq!(late_audio, 0, "no audio after the force mute");
    assert!(late_video >= 28, "video continued: {late_video}");

    net.sfu.set_audio_forwarding("pub", true).unwrap();
    let unmuted_at = net.client("pub").sending.audio_seq;
    net.run_for(Duration::from_millis(500));
    let resumed = net.received("sub1", MediaKind::Audio).into_iter().filter(|r| r.seq >= unmuted_at).count();
    assert!(resumed >= 23, "audio resumed after unmute: {resumed}");
}

#[test]
fn a_removed_publisher_reaches_no_one() {
    let mut net = room();
    net.start_sending("pub");
    net.run_for(Duration::from_millis(800));
    let pub_addr = net.client("pub").addr;
    net.capture = Some((pub_addr, Vec::new()));
    net.run_for(Duration::from_millis(200));
    assert!(net.received("sub1", MediaKind::Video).len() >= 28);

    net.sfu.remove_peer("pub").unwrap();
    net.drain_sfu();
    let received_at_removal = net.client("sub1").received.len();
    net.run_for(Duration::from_millis(1000));
    assert_eq!(net.client("sub1").received.len(), received_at_removal, "nothing after removal");

    // A removed peer's flow is unknown: replaying its recent datagrams (SRTP,
    // RTCP and STUN alike) reaches no peer.
    let (_, replay) = net.capture.take().unwrap();
    assert!(replay.len() >= 15, "captured {} datagrams", replay.len());
    let (sfu, now) = (net.sfu_addr, net.now);
    let accepted = replay.iter().filter(|b| net.sfu.handle_datagram(now, pub_addr, sfu, b)).count();
    assert_eq!(accepted, 0);
    net.drain_sfu();
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.client("sub1").received.len(), received_at_removal);

    assert!(!net.sfu.is_connected("pub"));
    assert!(matches!(net.sfu.subscribe("sub1", "pub", net.now), Err(SfuError::UnknownPeer(_))));
    assert!(matches!(net.sfu.remove_peer("pub"), Err(SfuError::UnknownPeer(_))));
    // sub1 itself is unaffected and still connected.
    assert!(net.sfu.is_connected("sub1"));
}

#[test]
fn unknown_flows_and_bad_calls_are_refused() {
    let mut net = room();
    let stranger = "127.0.0.1:10099".parse().unwrap();
    let sfu = net.sfu_addr;
    // Not WebRTC, then RTP-looking bytes from an unknown flow.
    assert!(!net.sfu.handle_datagram(net.now, stranger, sfu, &[0xFF; 30]));
    let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
    rtp.resize(100, 0);
    assert!(!net.sfu.handle_datagram(net.now, stranger, sfu, &rtp));
    assert!(matches!(net.sfu.subscribe("sub1", "sub1", net.now), Err(SfuError::SelfSubscribe)));
    assert!(matches!(net.sfu.accept_answer("sub1", "v=0\r\n", net.now), Err(SfuError::Sdp(_))));
    assert!(matches!(net.sfu.add_peer("pub", "v=0\r\n", net.now), Err(SfuError::PeerExists(_))));
    // Subscribing twice to the same publisher changes nothing.
    assert_eq!(net.sfu.subscribe("sub1", "pub", net.now).unwrap(), None);
}

#[test]
fn a_tapped_publisher_is_recorded_from_a_keyframe_without_muted_audio() {
    let mut net = room();
    net.start_sending("pub");
    net.run_for(Duration::from_millis(600));
    assert!(net.recorded.is_empty(), "nothing is recorded before the tap");
    let now = net.now;
    net.sfu.set_tap("pub", true, now).unwrap();
    net.drain_sfu();
    net.run_for(Duration::from_millis(1000));
    let video: Vec<_> = net.recorded.iter().filter(|r| r.0 == MediaKind::Video).collect();
    let audio = net.recorded.iter().filter(|r| r.0 == MediaKind::Audio).count();
    assert!(audio >= 45, "audio recorded: {audio}");
    assert!(video.len() >= 25, "video recorded: {}", video.len());
    assert!(video.iter().any(|v| v.2), "the tap asked for a keyframe and got one");
    assert!(video.windows(2).all(|w| w[0].1 < w[1].1), "in order");

    // Force-muted audio is not recorded either; video is.
    net.sfu.set_audio_forwarding("pub", false).unwrap();
    let (a0, v0) = (audio, video.len());
    net.run_for(Duration::from_millis(500));
    let audio_now = net.recorded.iter().filter(|r| r.0 == MediaKind::Audio).count();
    let video_now = net.recorded.iter().filter(|r| r.0 == MediaKind::Video).count();
    assert!(audio_now <= a0 + 1, "no muted audio in the recording: {a0} -> {audio_now}");
    assert!(video_now >= v0 + 10, "video still recorded");

    // Untapped: nothing more.
    let now = net.now;
    net.sfu.set_tap("pub", false, now).unwrap();
    let total = net.recorded.len();
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.recorded.len(), total, "nothing after the tap is removed");
}
