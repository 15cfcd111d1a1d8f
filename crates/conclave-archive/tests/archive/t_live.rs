//! Live composition with real ffmpeg: solid-colour VP8 publishers fed in real time become an
//! HLS playlist whose segments are H.264 + AAC with each colour where the layout puts it; an
//! Opus 440 Hz tone decodes to 16 kHz PCM whose peak is at 440 Hz; an RTMP output to a real
//! (ffmpeg) RTMP server goes live, goes offline when the server goes away and comes back by
//! itself when the server returns.

use crate::media::{self, Frame};
use conclave_archive::compose::Layout;
use conclave_archive::live::{AudioDecoder, EncodeSpec, LiveCompositor, LiveSpec, OutputKind, OutputState};
use conclave_archive::recorder::VideoCodec;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Plays `video` and `audio` (looped) into the compositor in real time for `secs`.
fn play(
    c: Arc<LiveCompositor>,
    id: &'static str,
    video: Vec<Frame>,
    audio: Vec<Frame>,
    secs: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let loop_ns = video.last().map(|f| f.ts_ns + 66_666_667).unwrap_or(2_000_000_000).max(1);
        let mut events: Vec<(u64, bool, Vec<u8>, bool)> = Vec::new();
        let rounds = (secs * 1_000_000_000).div_ceil(loop_ns);
        for r in 0..rounds {
            let base = r * loop_ns;
            events.extend(video.iter().map(|f| (base + f.ts_ns, false, f.data.clone(), f.key)));
            events.extend(
                audio.iter().filter(|f| f.ts_ns < loop_ns).map(|f| (base + f.ts_ns, true, f.data.clone(), true)),
            );
        }
        events.sort_by_key(|e| e.0);
        let start = Instant::now();
        for (ts, is_audio, data, key) in events {
            let due = start + Duration::from_nanos(ts);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if is_audio {
                c.push_audio(id, &data);
            } else {
                c.push_video(id, VideoCodec::Vp8, &data, key, ts / 1_000_000);
            }
        }
    })
}

fn spec(outputs: Vec<(String, OutputKind)>, layout: Layout) -> LiveSpec {
    LiveSpec {
        encode: EncodeSpec {
            width: 640,
            height: 480,
            fps: 15,
            has_audio: true,
            has_video: true,
            video_bitrate: 800_000,
            keyframe_seconds: 1,
        },
        layout,
        outputs,
    }
}

fn segments(dir: &Path) -> Vec<String> {
    let Ok(list) = std::fs::read_to_string(dir.join("index.m3u8")) else { return Vec::new() };
    list.lines().filter(|l| l.ends_with(".ts")).map(str::to_owned).collect()
}

fn looks(p: [u8; 3], colour: &str) -> bool {
    let [r, g, b] = p.map(i32::from);
    match colour {
        "red" => r > 170 && g < 80 && b < 80,
        "blue" => b > 170 && r < 80 && g < 80,
        _ => unreachable!(),
    }
}

#[test]
fn hls_playlist_grows_with_the_layout_and_ends() {
    let (_d, dir) = media::tmp();
    let red = media::vp8_colour_frames(&dir, 2, "red");
    let blue = media::vp8_colour_frames(&dir, 2, "blue");
    let tone = media::opus_packets(&dir, 2);
    let hls = dir.join("hls");
    let out = OutputKind::Hls { dir: hls.clone(), segment_seconds: 1, list_size: 30 };
    let c = Arc::new(LiveCompositor::start(spec(vec![("hls".into(), out)], Layout::BestFit)).unwrap());
    c.add_stream("red", true, true, false).unwrap();
    c.add_stream("blue", false, true, false).unwrap();
    let a = play(c.clone(), "red", red, tone, 6);
    let b = play(c.clone(), "blue", blue, Vec::new(), 6);
    // The playlist appears and grows while the broadcast runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    while segments(&hls).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let early = segments(&hls).len();
    assert!(early >= 2, "no segments after 20 s");
    a.join().unwrap();
    b.join().unwrap();
    let later = segments(&hls);
    assert!(later.len() > early, "the playlist grows: {early} then {}", later.len());
    assert!(c.outputs()[0].1.state == OutputState::Live, "{:?}", c.outputs());
    c.finish();
    let list = std::fs::read_to_string(hls.join("index.m3u8")).unwrap();
    assert!(list.contains("#EXT-X-ENDLIST"), "ended playlist:\n{list}");
    let all = segments(&hls);
    let last = hls.join(&all[all.len() - 2]);
    let p = media::probe(&last);
    assert_eq!(p.codecs, ["aac", "h264"]);
    assert_eq!((p.width, p.height), (Some(640), Some(480)));
    // bestFit with two streams: red on the left, blue on the right (each letterboxed).
    let rgb = first_frame_rgb(&last);
    let px = |x: u32, y: u32| {
        let i = ((y * 640 + x) * 3) as usize;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    assert!(looks(px(160, 240), "red"), "left tile {:?}", px(160, 240));
    assert!(looks(px(480, 240), "blue"), "right tile {:?}", px(480, 240));
}

/// The first picture of a segment (its timestamps do not start at 0), as RGB24.
fn first_frame_rgb(segment: &Path) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(segment)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The power of `freq` in `samples` (Goertzel).
fn power(samples: &[i16], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = x as f64 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
}

#[test]
fn opus_decodes_to_pcm_at_the_asked_rate() {
    let (_d, dir) = media::tmp();
    let tone = media::opus_packets(&dir, 2);
    let dec = AudioDecoder::start(16_000).unwrap();
    let start = Instant::now();
    let mut pcm = Vec::new();
    let mut next_frame = Duration::from_millis(200);
    for f in &tone {
        let due = start + Duration::from_nanos(f.ts_ns);
        while Instant::now() < due {
            if start.elapsed() >= next_frame {
                let mut frame = [0i16; 320];
                dec.mix_into(&mut frame);
                pcm.extend_from_slice(&frame);
                next_frame += Duration::from_millis(20);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        dec.push(&f.data);
    }
    let heard: Vec<i16> = pcm.into_iter().skip_while(|s| *s == 0).collect();
    assert!(heard.len() > 8000, "half a second of sound at least, got {} samples", heard.len());
    let at = |f| power(&heard[..8000], 16_000.0, f);
    let peak = at(440.0);
    for other in [220.0, 330.0, 660.0, 1000.0, 3000.0] {
        assert!(peak > 20.0 * at(other), "440 Hz {peak:e} vs {other} Hz {:e}", at(other));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real RTMP server: ffmpeg listening, writing what it receives to `out`.
fn rtmp_server(port: u16, out: &Path) -> std::process::Child {
    std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-listen", "1", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/key"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(c: &LiveCompositor, want: OutputState, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if c.outputs()[0].1.state == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn rtmp_output_goes_live_and_reconnects_when_the_server_returns() {
    let (_d, dir) = media::tmp();
    let red = media::vp8_colour_frames(&dir, 2, "red");
    let tone = media::opus_packets(&dir, 2);
    let port = free_port();
    let mut server = rtmp_server(port, &dir.join("first.flv"));
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("rtmp://127.0.0.1:{port}/live/key");
    let target: conclave_archive::live::Target = Box::new(move || Ok(url.clone()));
    let c = Arc::new(
        LiveCompositor::start(spec(vec![("yt".into(), OutputKind::Rtmp { target })], Layout::BestFit)).unwrap(),
    );
    c.add_stream("red", true, true, false).unwrap();
    let player = play(c.clone(), "red", red, tone, 16);
    assert!(wait_for(&c, OutputState::Live, 15), "live: {:?}", c.outputs());
    std::thread::sleep(Duration::from_secs(2));
    let _ = server.kill();
    let _ = server.wait();
    assert!(wait_for(&c, OutputState::Offline, 10), "offline after the server went: {:?}", c.outputs());
    let second = dir.join("second.flv");
    let mut server = rtmp_server(port, &second);
    assert!(wait_for(&c, OutputState::Live, 15), "live again: {:?}", c.outputs());
    assert!(c.outputs()[0].1.attempts >= 2);
    std::thread::sleep(Duration::from_secs(3));
    player.join().unwrap();
    c.finish();
    let _ = server.wait_timeout_or_kill();
    let p = media::probe(&second);
    assert_eq!(p.codecs, ["aac", "h264"], "the reconnected stream is playable");
    assert!(media::last_pts(&second) > 1.0);
}

trait WaitOrKill {
    fn wait_timeout_or_kill(&mut self) -> std::io::Result<()>;
}

impl WaitOrKill for std::process::Child {
    fn wait_timeout_or_kill(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()?;
        self.wait().map(|_| ())
    }
}
