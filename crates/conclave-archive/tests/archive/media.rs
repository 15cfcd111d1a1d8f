//! Test helper: real VP8, VP9 and Opus frames made by ffmpeg (IVF and Ogg containers,
//! parsed minimally here), ffprobe/ffmpeg checks of a media file, recording helpers and the
//! stock `age` CLI. Fails (never skips) without ffmpeg or age.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Frame {
    pub ts_ns: u64,
    pub data: Vec<u8>,
    pub key: bool,
}

pub fn require_ffmpeg() {
    for bin in ["ffmpeg", "ffprobe"] {
        let ok = Command::new(bin).arg("-version").output().map(|o| o.status.success()).unwrap_or(false);
        assert!(ok, "`{bin}` is required for this test: install it with `apt-get install -y ffmpeg`");
    }
}

fn run_ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// `secs` of 320x240 15 fps VP8 test pattern, keyframe every 15 frames.
pub fn vp8_frames(dir: &Path, secs: u32) -> Vec<Frame> {
    ivf_frames(dir, secs, &["-c:v", "libvpx"], conclave_archive::recorder::vp8_is_keyframe)
}

/// `secs` of 320x240 15 fps VP9 test pattern (realtime mode, no alt-ref superframes),
/// keyframe every 15 frames.
pub fn vp9_frames(dir: &Path, secs: u32) -> Vec<Frame> {
    let vp9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0"];
    ivf_frames(dir, secs, &vp9, conclave_archive::recorder::vp9_is_keyframe)
}

/// `secs` of 320x240 15 fps VP8 of one solid colour (an ffmpeg colour name).
pub fn vp8_colour_frames(dir: &Path, secs: u32, colour: &str) -> Vec<Frame> {
    let source = format!("color=c={colour}:size=320x240:rate=15");
    encode_ivf(
        dir,
        &format!("{colour}.ivf"),
        &source,
        secs,
        &["-c:v", "libvpx"],
        conclave_archive::recorder::vp8_is_keyframe,
    )
}

/// Encodes the test pattern with `codec` arguments into IVF and splits it into frames.
fn ivf_frames(dir: &Path, secs: u32, codec: &[&str], is_key: fn(&[u8]) -> bool) -> Vec<Frame> {
    encode_ivf(dir, &format!("{}.ivf", codec[1]), "testsrc=size=320x240:rate=15", secs, codec, is_key)
}

/// Encodes an ffmpeg lavfi `source` with `codec` arguments into IVF and splits it into frames.
fn encode_ivf(
    dir: &Path,
    name: &str,
    source: &str,
    secs: u32,
    codec: &[&str],
    is_key: fn(&[u8]) -> bool,
) -> Vec<Frame> {
    require_ffmpeg();
    let ivf = dir.join(name);
    let t = secs.to_string();
    let mut args = vec!["-f", "lavfi", "-i", source, "-t", &t];
    args.extend_from_slice(codec);
    args.extend_from_slice(&["-g", "15", "-f", "ivf", ivf.to_str().unwrap()]);
    run_ffmpeg(&args);
    parse_ivf(&std::fs::read(&ivf).unwrap(), is_key)
}

/// `secs` of 320x240 15 fps H.264 (Constrained Baseline, as browsers send: no B-frames,
/// SPS and PPS with every IDR, an IDR every 15 frames) as Annex B access units.
pub fn h264_frames(dir: &Path, secs: u32) -> Vec<Frame> {
    require_ffmpeg();
    let out = dir.join("v.h264");
    let t = secs.to_string();
    run_ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=15",
        "-t",
        &t,
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-bf",
        "0",
        "-g",
        "15",
        "-x264-params",
        "aud=1:repeat-headers=1",
        "-f",
        "h264",
        out.to_str().unwrap(),
    ]);
    let data = std::fs::read(&out).unwrap();
    // Every access unit starts with an access unit delimiter (NAL type 9).
    let aud = [0u8, 0, 0, 1, 9];
    let mut starts: Vec<usize> = (0..data.len().saturating_sub(4)).filter(|i| data[*i..].starts_with(&aud)).collect();
    starts.push(data.len());
    starts
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let au = data[w[0]..w[1]].to_vec();
            let key = conclave_archive::recorder::h264::h264_is_keyframe(&au);
            Frame { ts_ns: i as u64 * 1_000_000_000 / 15, data: au, key }
        })
        .collect()
}

/// `secs` of 440 Hz stereo Opus at 48 kHz.
pub fn opus_packets(dir: &Path, secs: u32) -> Vec<Frame> {
    require_ffmpeg();
    let ogg = dir.join("a.ogg");
    let t = secs.to_string();
    run_ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &t,
        "-ac",
        "2",
        "-c:a",
        "libopus",
        "-f",
        "ogg",
        ogg.to_str().unwrap(),
    ]);
    let mut ts = 0;
    let mut packets = parse_ogg(&std::fs::read(&ogg).unwrap());
    packets.drain(..2); // OpusHead, OpusTags
    packets
        .into_iter()
        .map(|p| {
            let f = Frame { ts_ns: ts, key: true, data: p };
            ts += conclave_archive::recorder::opus_packet_duration_ns(&f.data);
            f
        })
        .collect()
}

fn parse_ivf(b: &[u8], is_key: fn(&[u8]) -> bool) -> Vec<Frame> {
    assert_eq!(&b[..4], b"DKIF");
    let hdr = u16::from_le_bytes([b[6], b[7]]) as usize;
    let den = u32::from_le_bytes(b[16..20].try_into().unwrap()) as u64;
    let num = u32::from_le_bytes(b[20..24].try_into().unwrap()) as u64;
    let mut at = hdr;
    let mut out = Vec::new();
    while at + 12 <= b.len() {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let pts = u64::from_le_bytes(b[at + 4..at + 12].try_into().unwrap());
        let data = b[at + 12..at + 12 + len].to_vec();
        at += 12 + len;
        let key = is_key(&data);
        out.push(Frame { ts_ns: pts * num * 1_000_000_000 / den, data, key });
    }
    out
}

fn parse_ogg(b: &[u8]) -> Vec<Vec<u8>> {
    let mut at = 0;
    let mut packets = Vec::new();
    let mut cur = Vec::new();
    while at + 27 <= b.len() {
        assert_eq!(&b[at..at + 4], b"OggS", "bad ogg page at {at}");
        let nseg = b[at + 26] as usize;
        let lacing = &b[at + 27..at + 27 + nseg];
        let mut body = at + 27 + nseg;
        for &l in lacing {
            cur.extend_from_slice(&b[body..body + l as usize]);
            body += l as usize;
            if l < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        at = body;
    }
    packets
}

pub struct Probe {
    pub codecs: Vec<String>,
    pub duration: f64,
    pub width: Option<u64>,
    pub height: Option<u64>,
}

/// ffprobe codecs, container duration and video width.
pub fn probe(file: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,duration,width,height:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "ffprobe stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().unwrap();
    let mut codecs: Vec<String> = streams.iter().map(|s| s["codec_name"].as_str().unwrap().to_string()).collect();
    codecs.sort();
    let duration = v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(-1.0);
    let width = streams.iter().find_map(|s| s["width"].as_u64());
    let height = streams.iter().find_map(|s| s["height"].as_u64());
    Probe { codecs, duration, width, height }
}

/// Full decode; returns ffmpeg's stderr (empty means clean).
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg decode failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_path_buf();
    (d, p)
}

/// Seconds of media ffmpeg can actually read (largest packet pts; live-mode and crashed
/// WebMs have no Duration element).
pub fn last_pts(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .fold(0.0, f64::max)
}

/// Record `audio` and `video` (timestamps shifted by `t0_ns`) in time order into `rec`.
pub fn feed_sorted(rec: &mut conclave_archive::StreamRecorder, audio: &[Frame], video: &[Frame], t0_ns: u64) {
    let mut evs: Vec<(u64, bool, &Frame)> = audio.iter().map(|a| (a.ts_ns, true, a)).collect();
    evs.extend(video.iter().map(|v| (v.ts_ns, false, v)));
    evs.sort_by_key(|e| e.0);
    for (_, is_audio, f) in evs {
        if is_audio {
            rec.write_audio(&f.data, t0_ns + f.ts_ns).unwrap();
        } else {
            rec.write_video(&f.data, t0_ns + f.ts_ns, f.key).unwrap();
        }
    }
}

/// True when `needle` occurs anywhere in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub const WEBM_MAGIC: [u8; 4] = [0x1a, 0x45, 0xdf, 0xa3];

/// Write `identity` as an `age-keygen` style identity file.
pub fn write_identity(path: &Path, identity: &age::x25519::Identity) {
    use age::secrecy::ExposeSecret;
    let text = format!("# created by conclave-archive tests\n{}\n", identity.to_string().expose_secret());
    std::fs::write(path, text).unwrap();
}

/// Run the stock `age -d -i identity` on `input`; returns (success, stdout, stderr).
pub fn age_cli_decrypt(identity: &Path, input: &Path) -> (bool, Vec<u8>, String) {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(input)
        .output()
        .expect("the `age` CLI is required for this test: apt-get install -y age");
    (out.status.success(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}
