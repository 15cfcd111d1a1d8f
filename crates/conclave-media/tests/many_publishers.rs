//! A receiving peer subscribed to many publishers at once (a meeting): subscriptions asked for
//! while a server offer is outstanding are queued and offered together after its answer; the
//! receiver must then get every publisher's media, in frame mode and in RTP mode.

mod net;

use std::time::Duration;

use conclave_media::MediaKind;
use net::Net;

fn meeting(publishers: usize, rtp: bool) {
    let mut net = Net::new();
    net.sfu.set_rtp_forwarding(rtp);
    let names: Vec<String> = (0..publishers).map(|i| format!("pub{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        net.join_publisher(name, 10001 + i as u16);
    }
    net.join_viewer("viewer", 11000);
    net.run_until(Duration::from_secs(5), |n| n.all_connected());
    // Every subscription asked for before the viewer answers anything, as the server does
    // when a receiver's connection becomes ready with subscriptions waiting.
    let now = net.now;
    let mut first = None;
    for name in &names {
        if let Some(offer) = net.sfu.subscribe("viewer", name, now).unwrap() {
            assert!(first.is_none(), "one server offer at a time");
            first = Some(offer);
        }
    }
    net.answer_offers("viewer", first);
    for name in &names {
        net.start_sending(name);
    }
    net.run_for(Duration::from_millis(1500));
    let before = net.received("viewer", MediaKind::Video).len();
    let sent_before: u32 = names.iter().map(|n| net.client(n).sending.video_seq).sum();
    net.run_for(Duration::from_millis(3000));
    let got = net.received("viewer", MediaKind::Video).len() - before;
    let sent = names.iter().map(|n| net.client(n).sending.video_seq).sum::<u32>() - sent_before;
    assert!(got as u32 * 10 >= sent * 9, "the viewer got {got} of {sent} video frames from {publishers} publishers");
}

#[test]
fn a_viewer_of_six_publishers_gets_all_of_them() {
    meeting(6, false);
}

#[test]
fn in_rtp_mode_a_viewer_of_six_publishers_gets_all_of_them() {
    meeting(6, true);
}
