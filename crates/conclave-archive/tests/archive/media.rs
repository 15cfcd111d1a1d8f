//! Test helper: real VP8 and Opus frames made by ffmpeg (IVF and Ogg containers, parsed
//! minimally here), and ffprobe/ffmpeg checks of a WebM file. Fails (never skips) without
//! ffmpeg.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Frame {
    pub ts_ns: u64,
    pub data: Vec<u8>,
    pub key: bool,
}

pub fn require_ffmpeg() {
    for bin in ["ffmpeg", "ffprobe"] {
        let ok = Command::new(bin)
            .arg("-version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "`{bin}` is required for this test: install it with `apt-get install -y ffmpeg`"
        );
    }
}

fn run_ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `secs` of 320x240 15 fps VP8 test pattern, keyframe every 15 frames.
pub fn vp8_frames(dir: &Path, secs: u32) -> Vec<Frame> {
    require_ffmpeg();
    let ivf = dir.join("v.ivf");
    let t = secs.to_string();
    run_ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=15",
        "-t",
        &t,
        "-c:v",
        "libvpx",
        "-g",
        "15",
        "-f",
        "ivf",
        ivf.to_str().unwrap(),
    ]);
    parse_ivf(&std::fs::read(&ivf).unwrap())
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
    parse_ogg(&std::fs::read(&ogg).unwrap())
        .into_iter()
        .skip(2) // OpusHead, OpusTags
        .map(|p| {
            let f = Frame {
                ts_ns: ts,
                key: true,
                data: p,
            };
            ts += conclave_archive::recorder::opus_packet_duration_ns(&f.data);
            f
        })
        .collect()
}

fn parse_ivf(b: &[u8]) -> Vec<Frame> {
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
        let key = conclave_archive::recorder::vp8_is_keyframe(&data);
        out.push(Frame {
            ts_ns: pts * num * 1_000_000_000 / den,
            data,
            key,
        });
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
}

/// ffprobe codecs, container duration and video width.
pub fn probe(file: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,duration,width:format=duration",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "ffprobe stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"].as_array().unwrap();
    let mut codecs: Vec<String> = streams
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_string())
        .collect();
    codecs.sort();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(-1.0);
    let width = streams.iter().find_map(|s| s["width"].as_u64());
    Probe {
        codecs,
        duration,
        width,
    }
}

/// Full decode; returns ffmpeg's stderr (empty means clean).
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg decode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn tmp() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_path_buf();
    (d, p)
}
