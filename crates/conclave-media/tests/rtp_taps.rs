//! Recording taps in RTP mode (`Sfu::set_rtp_forwarding`, issue 16 item 2) with real str0m
//! client peers on virtual time: the SFU reassembles a tapped publisher's packets into the
//! frames frame mode hands the archiver (byte for byte our payloads), in order, keyframes
//! flagged, Opus frames, force-muted audio left out, and a simulcast tap locked to one layer.

mod net;

use std::time::Duration;

use conclave_media::MediaKind;
use net::Net;

const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// The recorded frames of one kind: (sequence number we sent, keyframe, codec, contiguous,
/// media time).
fn recorded(net: &Net, kind: MediaKind) -> Vec<(u32, bool, &'static str, bool, u64)> {
    net.recorded
        .iter()
        .zip(&net.recorded_meta)
        .filter(|(r, _)| r.0 == kind)
        .map(|(r, m)| (r.1, r.2, m.0, m.1, m.2))
        .collect()
}

#[test]
fn a_tapped_publisher_in_rtp_mode_is_recorded_as_whole_frames_in_order() {
    let mut net = Net::new();
    net.sfu.set_rtp_forwarding(true);
    net.join_publisher("pub", 10001);
    net.join_viewer("sub1", 10002);
    net.subscribe("sub1", "pub");
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    net.start_sending("pub");
    net.run_for(Duration::from_millis(600));
    assert!(net.recorded.is_empty(), "nothing is recorded before the tap");
    let now = net.now;
    net.sfu.set_tap("pub", true, now).unwrap();
    net.drain_sfu();
    net.run_for(Duration::from_millis(1000));

    assert_eq!(net.recorded_undecodable, 0, "every recorded frame is a payload sent, byte for byte");
    let audio = recorded(&net, MediaKind::Audio);
    let video = recorded(&net, MediaKind::Video);
    assert!(audio.len() >= 45, "audio recorded: {}", audio.len());
    assert!(video.len() >= 25, "video recorded: {}", video.len());
    for frames in [&audio, &video] {
        // Whole frames, none missing between the first and the last, contiguous, and media
        // times that grow with them.
        assert!(frames.windows(2).all(|w| w[1].0 == w[0].0 + 1), "every frame, in order");
        assert!(frames.iter().all(|f| f.3), "nothing was lost");
        assert!(frames.windows(2).all(|w| w[1].4 > w[0].4), "media time grows");
    }
    assert!(audio.iter().all(|a| a.2 == "opus"), "Opus frames");
    assert!(video.iter().all(|v| v.2 == "vp8"));
    let sent_keyframes = net.client("pub").sending.keyframes_sent.clone();
    let keyframes: Vec<u32> = video.iter().filter(|v| v.1).map(|v| v.0).collect();
    assert!(!keyframes.is_empty(), "the tap asked for a keyframe and got one");
    let in_range: Vec<u32> =
        sent_keyframes.into_iter().filter(|k| (video[0].0..=video.last().unwrap().0).contains(k)).collect();
    assert_eq!(keyframes, in_range, "exactly the keyframes sent are flagged");
    // 20 ms of Opus at 48 kHz, 33 ms of video at 90 kHz apart (the client's clocks).
    assert_eq!(audio[1].4 - audio[0].4, 20_000);

    // Force-muted audio is not recorded; video is.
    net.sfu.set_audio_forwarding("pub", false).unwrap();
    let (a0, v0) = (audio.len(), video.len());
    net.run_for(Duration::from_millis(500));
    assert!(recorded(&net, MediaKind::Audio).len() <= a0 + 1, "no muted audio in the recording");
    assert!(recorded(&net, MediaKind::Video).len() >= v0 + 10, "video still recorded");

    // Untapped: nothing more.
    let now = net.now;
    net.sfu.set_tap("pub", false, now).unwrap();
    let total = net.recorded.len();
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.recorded.len(), total, "nothing after the tap is removed");
}

#[test]
fn a_simulcast_tap_in_rtp_mode_records_one_layer() {
    let mut net = Net::new();
    net.sfu.set_rtp_forwarding(true);
    net.join_simulcast_publisher("pub", 10001, &["l", "h"]);
    net.run_until(CONNECT_LIMIT, |n| n.all_connected());
    let now = net.now;
    net.sfu.set_tap("pub", true, now).unwrap();
    net.drain_sfu();
    net.start_sending("pub");
    net.run_for(Duration::from_millis(2000));

    assert_eq!(net.recorded_undecodable, 0);
    let sent = net.client("pub").sending.video_seq;
    let video = recorded(&net, MediaKind::Video);
    // Both layers carry the same frames: one layer recorded means each frame once, except
    // the picture at which the tap moves up to the best layer, on that layer's keyframe.
    let repeats: Vec<_> = video.windows(2).filter(|w| w[0].0 == w[1].0).collect();
    assert!(repeats.len() <= 1, "one layer switch at most: {repeats:?}");
    assert!(repeats.iter().all(|w| w[1].1), "the switch is at a keyframe");
    assert!(video.windows(2).all(|w| w[0].0 <= w[1].0), "in order");
    assert!(video.len() as u32 >= sent - 3, "video {}/{sent}", video.len());
    assert!(video[0].1, "the first recorded frame is a keyframe");
}
