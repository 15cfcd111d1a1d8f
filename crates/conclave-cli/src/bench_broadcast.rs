//! `conclave bench broadcast`: what a live broadcast costs and how late its HLS is.
//!
//! Runs `--broadcasts` live compositions (the server's own `conclave_archive::live`, HLS
//! output to a temporary directory) of `--streams` VP8 + Opus streams each (320x240 at 15
//! fps, a moving test pattern; the first stream of the first broadcast is a solid colour
//! that switches), fed in real time. Reports:
//! - CPU per broadcast: this process (compositor threads, feeders) plus its ffmpeg children
//!   (decoders, encoder, HLS muxer), from `/proc`, over the measured window;
//! - glass-to-playlist latency: the first broadcast's first stream switches colour every few
//!   seconds; the time from the first frame of the new colour being handed over (as the SFU
//!   would hand it) to the first playlist entry whose segment shows it. It excludes the
//!   network and the SFU (a few ms on a LAN) and a player's own buffering (players usually
//!   hold three segments).
//!
//! Owns: the measurement. Must not touch: the composition itself.

use conclave_archive::compose::Layout;
use conclave_archive::live::{EncodeSpec, LiveCompositor, LiveSpec, OutputKind};
use conclave_archive::recorder::VideoCodec;
use conclave_client::clip::EncodedClip;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct BroadcastBench {
    pub broadcasts: usize,
    pub streams: usize,
    pub width: u32,
    pub height: u32,
    pub seconds: u64,
    pub low_latency: bool,
}

/// Clock ticks of this process and its children (utime + stime of each), in seconds.
fn cpu_seconds() -> f64 {
    let me = std::process::id();
    let ticks = |stat: &str| -> Option<(u32, f64)> {
        let after = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        let ppid: u32 = f.get(1)?.parse().ok()?;
        let t: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some((ppid, t))
    };
    let mut total = 0.0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            if let Some((ppid, t)) = ticks(&stat)
                && (pid == me || ppid == me)
            {
                total += t;
            }
        }
    }
    // SAFETY: sysconf has no preconditions.
    total / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Feeds clips into stream `id` in real time until `stop`; `colour` picks the clip.
fn feeder(
    c: Arc<LiveCompositor>,
    id: String,
    clips: Arc<Vec<EncodedClip>>,
    colour: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut v, mut a) = (0usize, 0usize);
        let mut current = usize::MAX;
        while !stop.load(Ordering::Relaxed) {
            let clip = &clips[colour.load(Ordering::Relaxed)];
            let want = colour.load(Ordering::Relaxed);
            if want != current {
                // A switch starts on the new clip's first frame, a keyframe.
                current = want;
                v = 0;
            }
            let t = start.elapsed();
            let next_video = Duration::from_secs_f64(v as f64 / clip.fps as f64);
            let next_audio = Duration::from_millis(a as u64 * 20);
            let (due, is_video) = if next_video <= next_audio { (next_video, true) } else { (next_audio, false) };
            if due > t {
                std::thread::sleep(due - t);
            }
            if is_video {
                let n = v % clip.video.len();
                let (frame, key) = &clip.video[n];
                // Without a switch, loop over the clip (it starts on a keyframe).
                c.push_video(&id, VideoCodec::Vp8, frame, *key, due.as_millis() as u64);
                v += 1;
            } else {
                c.push_audio(&id, &clip.audio[a % clip.audio.len()]);
                a += 1;
            }
        }
    });
}

/// The colour of the last picture of a segment: 0 red, 1 blue, 2 other.
fn last_colour(segment: &Path, width: u32, height: u32, (x, y): (u32, u32)) -> usize {
    let out = std::process::Command::new(conclave_archive::ffmpeg::ffmpeg_bin())
        .args(["-v", "error", "-i"])
        .arg(segment)
        .args(["-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output();
    let Ok(out) = out else { return 2 };
    let frame = (width * height * 3) as usize;
    if out.stdout.len() < frame {
        return 2;
    }
    let last = &out.stdout[out.stdout.len() - frame..];
    let i = ((width * y + x) * 3) as usize;
    match last.get(i..i + 3) {
        Some([r, _, b]) if *r > 150 && *b < 100 => 0,
        Some([r, _, b]) if *b > 150 && *r < 100 => 1,
        _ => 2,
    }
}

fn segments(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("index.m3u8"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(".ts"))
        .map(str::to_owned)
        .collect()
}

pub fn run(b: BroadcastBench) -> anyhow::Result<()> {
    let work = tempfile_dir()?;
    let clips = Arc::new(vec![
        EncodedClip::generate_colour(&work, 4, 15, "red").map_err(anyhow::Error::msg)?,
        EncodedClip::generate_colour(&work, 4, 15, "blue").map_err(anyhow::Error::msg)?,
        // The other streams: a moving test pattern, which costs what real pictures cost.
        EncodedClip::generate(&work, 4, 15).map_err(anyhow::Error::msg)?,
    ]);
    let segment = if b.low_latency { 1 } else { 2 };
    let stop = Arc::new(AtomicBool::new(false));
    let switch = Arc::new(AtomicUsize::new(0));
    let mut running = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..b.broadcasts {
        let dir = work.join(format!("hls-{i}"));
        let spec = LiveSpec {
            encode: EncodeSpec {
                width: b.width,
                height: b.height,
                fps: 25,
                has_audio: true,
                has_video: true,
                video_bitrate: 2_000_000,
                keyframe_seconds: segment,
            },
            layout: Layout::BestFit,
            outputs: vec![(
                "hls".into(),
                OutputKind::Hls { dir: dir.clone(), segment_seconds: segment, list_size: 30 },
            )],
        };
        let c = Arc::new(LiveCompositor::start(spec)?);
        for s in 0..b.streams {
            let id = format!("s{s}");
            c.add_stream(&id, true, true, false)?;
            let colour = if i == 0 && s == 0 { switch.clone() } else { Arc::new(AtomicUsize::new(2)) };
            feeder(c.clone(), id, clips.clone(), colour, stop.clone());
        }
        running.push(c);
        dirs.push(dir);
    }
    // Where the switching stream is drawn: the middle of the first tile.
    let tiles: Vec<conclave_archive::compose::TileInput> = (0..b.streams)
        .map(|_| conclave_archive::compose::TileInput {
            offset_ms: 0,
            duration_ms: 0,
            has_audio: true,
            has_video: true,
            focus: false,
        })
        .collect();
    let first = conclave_archive::compose::placements(Layout::BestFit, &tiles, b.width, b.height)[0].1;
    let probe = (first.x + first.w / 2, first.y + first.h / 2);
    // Warm up until the first playlist has segments.
    let warm = Instant::now();
    while segments(&dirs[0]).len() < 2 && warm.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let mut latencies = Vec::new();
    // Not a multiple of the segment length, so the switches land at every phase of a segment.
    let period = Duration::from_millis(3000 * segment as u64 + 2700);
    while t0.elapsed() < Duration::from_secs(b.seconds) {
        let want = 1 - switch.load(Ordering::Relaxed);
        let seen: Vec<String> = segments(&dirs[0]);
        let at = Instant::now();
        switch.store(want, Ordering::Relaxed);
        let deadline = at + period;
        let mut found = None;
        while Instant::now() < deadline {
            for s in segments(&dirs[0]).into_iter().filter(|s| !seen.contains(s)) {
                if last_colour(&dirs[0].join(&s), b.width, b.height, probe) == want {
                    found = Some(at.elapsed());
                    break;
                }
            }
            if found.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(l) = found {
            latencies.push(l.as_secs_f64());
        }
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    }
    let (cpu, secs) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let ticks: Vec<(u64, u64)> = running.iter().map(|c| c.ticks()).collect();
    for c in &running {
        c.finish();
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or(f64::NAN);
    let max = latencies.last().copied().unwrap_or(f64::NAN);
    println!(
        "| broadcasts | streams each | resolution | HLS | cores used (all) | cores per broadcast | glass-to-playlist median / max (s, n) | late ticks |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {}x{} | {} s segments{} | {:.2} | {:.2} | {:.2} / {:.2} (n={}) | {} |",
        b.broadcasts,
        b.streams,
        b.width,
        b.height,
        segment,
        if b.low_latency { " (lowLatency)" } else { "" },
        cpu / secs,
        cpu / secs / b.broadcasts as f64,
        median,
        max,
        latencies.len(),
        ticks.iter().map(|t| t.1).sum::<u64>(),
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("conclave-bench-broadcast-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
