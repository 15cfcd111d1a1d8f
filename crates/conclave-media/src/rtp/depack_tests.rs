//! Tests of `depack`: known frames packetized per codec, fed in order, reordered within a
//! frame, with losses and duplicates; the frames that come out are compared byte for byte.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

/// One RTP packet as the depacketizer takes it.
#[derive(Debug, Clone)]
struct Pkt {
    seq: u16,
    timestamp: u32,
    marker: bool,
    payload: Vec<u8>,
}

/// A VP8 frame's bytes: the payload header's P bit (bit 0) is 0 on a keyframe.
fn vp8_frame(n: u8, keyframe: bool, len: usize) -> Vec<u8> {
    let mut f = vec![if keyframe { 0x10 } else { 0x11 }, n];
    f.resize(len, n);
    f
}

/// VP8 packets of one frame in `chunk`-byte pieces: an extended descriptor with a 15-bit
/// picture ID on each, S on the first.
fn vp8_packets(frame: &[u8], chunk: usize, picture_id: u16) -> Vec<Vec<u8>> {
    frame
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| {
            let mut p = vec![if i == 0 { 0x90 } else { 0x80 }, 0x80, 0x80 | (picture_id >> 8) as u8, picture_id as u8];
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// VP9 packets of one frame: I, P (inter frames), B on the first, E on the last, 7-bit picture ID.
fn vp9_packets(frame: &[u8], chunk: usize, keyframe: bool) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = frame.chunks(chunk).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut b = 0x80 | if keyframe { 0 } else { 0x40 };
            b |= if i == 0 { 0x08 } else { 0 } | if i == last { 0x04 } else { 0 };
            let mut p = vec![b, 0x11];
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// RTP packets of frames given as payload lists, one timestamp per frame (`step` apart), the
/// marker on each frame's last packet, sequence numbers from `seq0`.
fn rtp(frames: &[Vec<Vec<u8>>], seq0: u16, ts0: u32, step: u32) -> Vec<Pkt> {
    let mut seq = seq0;
    let mut out = Vec::new();
    for (i, payloads) in frames.iter().enumerate() {
        for (j, payload) in payloads.iter().enumerate() {
            let timestamp = ts0.wrapping_add(step.wrapping_mul(i as u32));
            out.push(Pkt { seq, timestamp, marker: j + 1 == payloads.len(), payload: payload.clone() });
            seq = seq.wrapping_add(1);
        }
    }
    out
}

fn feed(d: &mut Depacketizer, packets: &[Pkt], t0: Instant) -> Vec<Frame> {
    let mut frames = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let at = t0 + Duration::from_millis(i as u64);
        frames.extend(d.push(p.seq, p.timestamp, p.marker, &p.payload, at));
    }
    frames
}

#[test]
fn vp8_frames_lose_their_descriptors_and_keep_keyframe_and_timing() {
    let frames = [vp8_frame(0, true, 2500), vp8_frame(1, false, 700), vp8_frame(2, false, 1300)];
    let packets = rtp(&frames.iter().map(|f| vp8_packets(f, 1000, 300)).collect::<Vec<_>>(), 65534, 90_000, 3000);
    let t0 = Instant::now();
    let out = feed(&mut Depacketizer::new(Codec::Vp8), &packets, t0);
    assert_eq!(out.iter().map(|f| f.data.clone()).collect::<Vec<_>>(), frames.to_vec());
    assert_eq!(out.iter().map(|f| f.keyframe).collect::<Vec<_>>(), [true, false, false]);
    assert!(out.iter().all(|f| f.contiguous));
    assert_eq!(out.iter().map(|f| f.media_time_us).collect::<Vec<_>>(), [1_000_000, 1_033_333, 1_066_666]);
    assert_eq!(out[1].arrival, t0 + Duration::from_millis(3), "when its first packet came");
}

#[test]
fn a_frame_with_a_lost_packet_is_dropped_and_the_next_is_not_contiguous() {
    let frames: Vec<Vec<u8>> = (0..4).map(|n| vp8_frame(n, n == 0, 2500)).collect();
    let mut packets = rtp(&frames.iter().map(|f| vp8_packets(f, 1000, 7)).collect::<Vec<_>>(), 100, 0, 3000);
    packets.remove(4); // the middle of frame 1
    let t0 = Instant::now();
    let mut d = Depacketizer::new(Codec::Vp8);
    let mut out = feed(&mut d, &packets, t0);
    assert_eq!(out.len(), 1, "frame 2 waits for the hole before it to be filled");
    // Time enough for a retransmission passes; the next packet gives frame 1 up.
    let late = t0 + Duration::from_millis(3) + MAX_HOLD;
    out.extend(d.push(112, 4 * 3000, true, &vp8_packets(&vp8_frame(4, false, 10), 1000, 7)[0], late));
    assert_eq!(out.iter().map(|f| f.data[1]).collect::<Vec<_>>(), [0, 2, 3, 4]);
    assert_eq!(out.iter().map(|f| f.contiguous).collect::<Vec<_>>(), [true, false, true, true]);
}

#[test]
fn a_retransmission_in_time_completes_the_frame() {
    let frames: Vec<Vec<u8>> = (0..3).map(|n| vp8_frame(n, n == 0, 2500)).collect();
    let mut packets = rtp(&frames.iter().map(|f| vp8_packets(f, 1000, 7)).collect::<Vec<_>>(), 100, 0, 3000);
    let lost = packets.remove(4);
    packets.push(lost);
    let out = feed(&mut Depacketizer::new(Codec::Vp8), &packets, Instant::now());
    assert_eq!(out.iter().map(|f| f.data.clone()).collect::<Vec<_>>(), frames);
    assert!(out.iter().all(|f| f.contiguous));
}

#[test]
fn vp9_frames_lose_their_descriptors() {
    let frames = [vp8_frame(0, true, 2100), vp8_frame(1, false, 600)];
    let payloads = vec![vp9_packets(&frames[0], 1000, true), vp9_packets(&frames[1], 1000, false)];
    let out = feed(&mut Depacketizer::new(Codec::Vp9), &rtp(&payloads, 5, 0, 3000), Instant::now());
    assert_eq!(
        out.iter().map(|f| (f.keyframe, f.data.clone())).collect::<Vec<_>>(),
        [(true, frames[0].clone()), (false, frames[1].clone())]
    );
}

#[test]
fn opus_one_packet_one_frame_reordered_and_duplicated() {
    let payload = |n: u8| vec![0xfc, n, n];
    let packets = rtp(&(0..5).map(|n| vec![payload(n)]).collect::<Vec<_>>(), 10, 48_000, 960);
    let order = [0, 1, 1, 2, 4, 3];
    let shuffled: Vec<Pkt> = order.iter().map(|i| packets[*i].clone()).collect();
    let t0 = Instant::now();
    let mut d = Depacketizer::new(Codec::Opus);
    let mut out = feed(&mut d, &shuffled, t0);
    assert_eq!(out.iter().map(|f| f.data[1]).collect::<Vec<_>>(), [0, 1, 2, 3, 4], "the duplicate is dropped");
    assert!(out.iter().all(|f| !f.keyframe && f.contiguous), "audio: no keyframes, as in frame mode");
    assert_eq!(out[1].media_time_us, 1_020_000);
    // A lost packet: the one after it waits, then is handed out as not contiguous.
    out = d.push(16, 48_000 + 6 * 960, false, &payload(6), t0);
    assert!(out.is_empty());
    out = d.push(17, 48_000 + 7 * 960, false, &payload(7), t0 + MAX_HOLD);
    assert_eq!(out.iter().map(|f| (f.data[1], f.contiguous)).collect::<Vec<_>>(), [(6, false), (7, true)]);
}

#[test]
fn h264_single_nal_stap_a_and_fu_a_become_annex_b() {
    let sps = [0x67, 0x42, 0xc0, 0x1f];
    let pps = [0x68, 0xce, 0x3c, 0x80];
    let idr: Vec<u8> = [0x65].into_iter().chain((0..2500).map(|i| i as u8)).collect();
    let mut stap = vec![0x78];
    for nal in [&sps[..], &pps[..]] {
        stap.extend((nal.len() as u16).to_be_bytes());
        stap.extend(nal);
    }
    // IDR as FU-A: header (F, NRI 3, type 28), FU header (S/E, type 5).
    let body = &idr[1..];
    let chunks: Vec<&[u8]> = body.chunks(1000).collect();
    let mut frame0 = vec![stap];
    for (i, c) in chunks.iter().enumerate() {
        let fu = 0x05 | if i == 0 { 0x80 } else { 0 } | if i + 1 == chunks.len() { 0x40 } else { 0 };
        frame0.push([0x7c, fu].into_iter().chain(c.iter().copied()).collect());
    }
    let slice = vec![0x41, 0x9a, 0x01];
    let packets = rtp(&[frame0, vec![slice.clone()]], 1, 0, 3000);
    let out = feed(&mut Depacketizer::new(Codec::H264), &packets, Instant::now());
    let mut expected = Vec::new();
    for nal in [&sps[..], &pps[..], &[0x65][..]] {
        expected.extend(START_CODE);
        expected.extend(nal);
    }
    expected.extend(body);
    assert_eq!(out[0].data, expected);
    assert!(out[0].keyframe);
    assert_eq!(out[1].data, [&START_CODE[..], &slice].concat());
    assert!(!out[1].keyframe);
}

#[test]
fn joining_mid_frame_starts_at_the_next_whole_frame() {
    let frames: Vec<Vec<u8>> = (0..3).map(|n| vp8_frame(n, false, 2500)).collect();
    let packets = rtp(&frames.iter().map(|f| vp8_packets(f, 1000, 7)).collect::<Vec<_>>(), 0, 0, 3000);
    let out = feed(&mut Depacketizer::new(Codec::Vp8), &packets[1..], Instant::now());
    assert_eq!(out.iter().map(|f| (f.data[1], f.contiguous)).collect::<Vec<_>>(), [(1, true), (2, true)]);
}

#[test]
fn a_restarted_stream_is_followed_after_a_break() {
    let frames: Vec<Vec<u8>> = (0..4).map(|n| vp8_frame(n, n % 2 == 0, 1500)).collect();
    let payloads: Vec<_> = frames.iter().map(|f| vp8_packets(f, 1000, 7)).collect();
    let t0 = Instant::now();
    let mut d = Depacketizer::new(Codec::Vp8);
    let mut out = feed(&mut d, &rtp(&payloads[..2], 1000, 0, 3000), t0);
    // The sender starts over: new sequence numbers (behind, far away) and timestamps.
    out.extend(feed(&mut d, &rtp(&payloads[2..], 40_000, 7_000_000, 3000), t0));
    assert_eq!(
        out.iter().map(|f| (f.data[1], f.contiguous)).collect::<Vec<_>>(),
        [(0, true), (1, true), (2, false), (3, true)]
    );
}

proptest! {
    /// Known VP8 frames, randomly packetized, each frame's packets shuffled: every frame
    /// comes out whole, in order, contiguous, across sequence number wrap.
    #[test]
    fn random_packetization_and_reordering_within_frames(
        sizes in prop::collection::vec((1usize..4000, 200usize..1200), 1..12),
        seq0 in any::<u16>(),
        ts0 in any::<u32>(),
        shuffle in any::<u64>(),
    ) {
        let frames: Vec<Vec<u8>> =
            sizes.iter().enumerate().map(|(n, (len, _))| vp8_frame(n as u8, n == 0, *len + 2)).collect();
        let payloads: Vec<_> = frames.iter().zip(&sizes).map(|(f, (_, chunk))| vp8_packets(f, *chunk, 1)).collect();
        let mut packets = rtp(&payloads, seq0, ts0, 3000);
        let mut at = 0;
        for (i, p) in payloads.iter().enumerate() {
            let n = p.len();
            packets[at..at + n].rotate_left((shuffle as usize).wrapping_add(i) % n);
            if (shuffle >> (i % 64)) & 1 == 1 {
                packets[at..at + n].reverse();
            }
            at += n;
        }
        let out = feed(&mut Depacketizer::new(Codec::Vp8), &packets, Instant::now());
        prop_assert_eq!(out.iter().map(|f| f.data.clone()).collect::<Vec<_>>(), frames);
        prop_assert!(out.iter().all(|f| f.contiguous));
        prop_assert!(out[0].keyframe);
    }

    /// Losing one packet loses exactly the frame it belonged to, and the frame after it says so.
    #[test]
    fn one_lost_packet_loses_its_frame_only(
        sizes in prop::collection::vec((1usize..4000, 200usize..1200), 3..10),
        lost in any::<prop::sample::Index>(),
        seq0 in any::<u16>(),
    ) {
        let frames: Vec<Vec<u8>> =
            sizes.iter().enumerate().map(|(n, (len, _))| vp8_frame(n as u8, n == 0, *len + 2)).collect();
        let payloads: Vec<_> = frames.iter().zip(&sizes).map(|(f, (_, chunk))| vp8_packets(f, *chunk, 1)).collect();
        let mut packets = rtp(&payloads, seq0, 0, 3000);
        // Not in the first frame (nothing would say it was lost) nor the last (nothing after it).
        let first_len = payloads[0].len();
        let last_len = payloads.last().unwrap().len();
        let index = first_len + lost.index(packets.len() - first_len - last_len);
        let owner: Vec<usize> = payloads.iter().enumerate().flat_map(|(n, p)| std::iter::repeat_n(n, p.len())).collect();
        let lost_frame = owner[index];
        packets.remove(index);
        let t0 = Instant::now();
        let mut d = Depacketizer::new(Codec::Vp8);
        let mut out = Vec::new();
        for p in &packets {
            // Packets far apart: a hole is given up at the first packet after MAX_HOLD.
            out.extend(d.push(p.seq, p.timestamp, p.marker, &p.payload, t0 + MAX_HOLD * u32::from(p.seq.wrapping_sub(seq0))));
        }
        // One more frame, long after: what waited behind the hole is handed out by now.
        let (n, seq) = (frames.len(), seq0.wrapping_add(packets.len() as u16 + 1));
        let last = vp8_packets(&vp8_frame(n as u8, false, 3), 100, 1).remove(0);
        out.extend(d.push(seq, 3000 * n as u32, true, &last, t0 + MAX_HOLD * 100_000));
        let expected: Vec<(u8, bool)> =
            (0..=n).filter(|n| *n != lost_frame).map(|n| (n as u8, n != lost_frame + 1)).collect();
        prop_assert_eq!(out.iter().map(|f| (f.data[1], f.contiguous)).collect::<Vec<_>>(), expected);
    }
}
