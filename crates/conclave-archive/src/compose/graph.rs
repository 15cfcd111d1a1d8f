//! The ffmpeg filter graph for a composed archive: every input gets a tile where `layout`
//! places it, each stream delayed by its offset, and all audio mixed. Pure string building;
//! must not run anything nor decide where tiles go (that is `layout`).
//!
//! Video: each video tile is a black `color` source of tile size with the stream (timestamps
//! shifted by the offset, scaled to fit with `force_original_aspect_ratio=decrease`) overlaid
//! in the middle, so the tile is black before the stream starts and ends when it ends; one
//! black frame is appended so that a tile shows black after its end. An audio-only input's
//! tile is a black `showwaves` of its (delayed) audio, which lasts exactly as long as the
//! audio. A grid is `xstack`ed (which repeats an ended input's last frame, hence the black
//! frame) and padded to the requested size; the other layouts overlay their tiles, focus
//! first, on a black canvas that lasts as long as the longest input (`xstack` cannot
//! overlap tiles, which `pip` needs). A layout that changes while recording
//! (`build_epochs`) draws each stream once per epoch, enabled only during it.
//! Audio: each stream is resampled to 48 kHz with silence filling gaps from t=0
//! (`aresample=async=1:first_pts=0`), delayed by its offset (`adelay`) and mixed with
//! `amix=normalize=0` (levels kept, as in a real call).

use super::layout::{Epoch, Layout, Rect, TileInput, placements};
use std::fmt::Write;

/// Output frame rate of the composed video.
pub const FPS: u32 = 25;

/// A built graph and the labels to `-map`.
#[derive(Debug, Clone)]
pub struct Graph {
    pub filter: String,
    /// `[vout]` exists.
    pub video: bool,
    /// `[aout]` exists.
    pub audio: bool,
}

/// Build the graph for `inputs` (input `i` is ffmpeg input `i`) on a `width`x`height`
/// canvas. Inputs must have audio or video.
pub fn build(inputs: &[TileInput], width: u32, height: u32, layout: Layout) -> Graph {
    let video = inputs.iter().any(|i| i.has_video);
    let audio = inputs.iter().any(|i| i.has_audio);
    let mut f = String::new();
    let mut mix = Vec::new();
    let places = placements(layout, inputs, width, height);
    let mut size = vec![(0, 0); inputs.len()];
    for (i, r) in &places {
        size[*i] = (r.w, r.h);
    }
    for (i, inp) in inputs.iter().enumerate() {
        let delay = inp.offset_ms;
        let (tw, th) = size[i];
        if inp.has_audio {
            mix.push(audio_chain(&mut f, i, inp, (video && !inp.has_video).then_some((tw, th))));
        }
        if inp.has_video {
            let secs = seconds(delay);
            let _ = write!(
                f,
                "color=c=black:s={tw}x{th}:r={FPS}[b{i}];\
                 [{i}:v:0]setpts=PTS+{secs}/TB,\
                 scale={tw}:{th}:force_original_aspect_ratio=decrease:force_divisible_by=2,\
                 setsar=1[s{i}];\
                 [b{i}][s{i}]overlay=x=(W-w)/2:y=(H-h)/2:eof_action=endall,\
                 tpad=stop=1:stop_mode=add:color=black[t{i}];"
            );
        }
    }
    if video {
        if layout == Layout::BestFit || inputs.len() == 1 {
            let tiles: String = (0..inputs.len()).map(|i| format!("[t{i}]")).collect();
            if inputs.len() == 1 {
                f.push_str(&tiles);
            } else {
                let positions: Vec<String> = places.iter().map(|(_, r)| format!("{}_{}", r.x, r.y)).collect();
                let _ = write!(f, "{tiles}xstack=inputs={}:layout={}:fill=black,", inputs.len(), positions.join("|"));
            }
        } else {
            // A black canvas as long as the longest input, tiles overlaid in drawing order.
            let total = inputs.iter().map(|i| i.offset_ms + i.duration_ms).max().unwrap_or(0).max(1);
            let _ = write!(f, "color=c=black:s={width}x{height}:r={FPS}:d={}[c0];", seconds(total));
            for (step, (i, r)) in places.iter().enumerate() {
                let _ = write!(f, "[c{step}][t{i}]overlay=x={}:y={}:eof_action=pass[c{}];", r.x, r.y, step + 1);
            }
            let _ = write!(f, "[c{}]", places.len());
        }
        let _ = write!(f, "pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,format=yuv420p[vout];");
    }
    if audio {
        mix_audio(&mut f, &mix);
    }
    Graph { filter: f.trim_end_matches(';').to_string(), video, audio }
}

/// Input `i`'s audio, resampled from t=0 and delayed by its offset, as `[a{i}]`; with a tile
/// size, also a black waveform tile `[t{i}]` as long as the audio (an audio-only input's
/// place in a video). Returns the audio label.
fn audio_chain(f: &mut String, i: usize, inp: &TileInput, tile: Option<(u32, u32)>) -> String {
    let delay = inp.offset_ms;
    let _ = write!(
        f,
        "[{i}:a:0]aresample=48000:async=1:first_pts=0,adelay=delays={delay}:all=1,\
         aformat=sample_rates=48000:channel_layouts=stereo"
    );
    match tile {
        Some((tw, th)) => {
            let _ = write!(
                f,
                ",asplit=2[a{i}][w{i}];[w{i}]showwaves=s={tw}x{th}:rate={FPS}:colors=black,\
                 format=yuv420p,drawbox=c=black:t=fill,tpad=stop=1:stop_mode=add:color=black\
                 [t{i}];"
            );
        }
        None => {
            let _ = write!(f, "[a{i}];");
        }
    }
    format!("[a{i}]")
}

/// Mixes the audio labels into `[aout]` (levels kept, as in a real call).
fn mix_audio(f: &mut String, labels: &[String]) {
    if labels.len() == 1 {
        let _ = write!(f, "{}anull[aout]", labels[0]);
    } else {
        let _ = write!(f, "{}amix=inputs={}:duration=longest:normalize=0[aout]", labels.concat(), labels.len());
    }
}

/// The graph for the layout over time: one epoch (or none: a grid) is [`build`] with that
/// epoch's layout and focus; with more, each input's video is split once per epoch, scaled to its tile in that epoch and letterboxed, and overlaid on a black canvas
/// only while its epoch lasts. Audio-only inputs get no tile (their area stays black);
/// audio is mixed as in [`build`].
pub fn build_epochs(inputs: &[TileInput], width: u32, height: u32, epochs: &[Epoch]) -> Graph {
    let video = inputs.iter().any(|i| i.has_video);
    if !video || epochs.len() < 2 {
        let first = epochs.first().copied().unwrap_or(Epoch { from_ms: 0, layout: Layout::BestFit, focus: None });
        let marked: Vec<TileInput> =
            inputs.iter().enumerate().map(|(i, t)| TileInput { focus: first.focus == Some(i), ..*t }).collect();
        return build(&marked, width, height, first.layout);
    }
    let total = inputs.iter().map(|i| i.offset_ms + i.duration_ms).max().unwrap_or(0).max(1);
    let k = epochs.len();
    let mut f = String::new();
    // Per epoch: its span and where each input goes.
    let spans: Vec<(u64, u64)> = (0..k)
        .map(|e| (epochs[e].from_ms, epochs.get(e + 1).map_or(total.max(epochs[e].from_ms + 1), |n| n.from_ms)))
        .collect();
    let places: Vec<Vec<(usize, Rect)>> = epochs
        .iter()
        .map(|e| {
            let marked: Vec<TileInput> =
                inputs.iter().enumerate().map(|(i, t)| TileInput { focus: e.focus == Some(i), ..*t }).collect();
            placements(e.layout, &marked, width, height)
        })
        .collect();
    for (i, inp) in inputs.iter().enumerate().filter(|(_, t)| t.has_video) {
        let outs: String = (0..k).map(|e| format!("[v{i}_{e}]")).collect();
        let _ = write!(f, "[{i}:v:0]setpts=PTS+{}/TB,split={k}{outs};", seconds(inp.offset_ms));
        for (e, place) in places.iter().enumerate() {
            let r = place.iter().find(|(j, _)| *j == i).map(|(_, r)| *r).expect("every input is placed");
            let (w, h) = (r.w, r.h);
            let _ = write!(
                f,
                "[v{i}_{e}]scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,setsar=1,\
                 pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black[p{i}_{e}];"
            );
        }
    }
    let _ = write!(f, "color=c=black:s={width}x{height}:r={FPS}:d={}[c0];", seconds(total));
    let mut n = 0;
    for (e, place) in places.iter().enumerate() {
        let (from, to) = spans[e];
        for (i, r) in place.iter().filter(|(i, _)| inputs[*i].has_video) {
            let _ = write!(
                f,
                "[c{n}][p{i}_{e}]overlay=x={}:y={}:eof_action=pass:enable='gte(t,{})*lt(t,{})'[c{}];",
                r.x,
                r.y,
                seconds(from),
                seconds(to),
                n + 1
            );
            n += 1;
        }
    }
    let _ = write!(f, "[c{n}]format=yuv420p[vout];");
    let mix: Vec<String> =
        inputs.iter().enumerate().filter(|(_, t)| t.has_audio).map(|(i, t)| audio_chain(&mut f, i, t, None)).collect();
    if !mix.is_empty() {
        mix_audio(&mut f, &mix);
    }
    Graph { filter: f.trim_end_matches(';').to_string(), video, audio: inputs.iter().any(|i| i.has_audio) }
}

/// Milliseconds as ffmpeg seconds (`1.500`).
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_labels() {
        let av = TileInput { offset_ms: 1500, duration_ms: 2000, has_audio: true, has_video: true, focus: false };
        let a = TileInput { has_video: false, ..av };
        let g = build(&[av, a], 640, 480, Layout::BestFit);
        assert!(g.video && g.audio);
        assert!(g.filter.contains("setpts=PTS+1.500/TB"));
        assert!(g.filter.contains("adelay=delays=1500:all=1"));
        assert!(g.filter.contains("layout=0_0|320_0"));
        assert!(g.filter.contains("showwaves"), "audio-only input gets a tile");
        assert!(g.filter.contains("amix=inputs=2"));
        let g = build(&[a], 640, 480, Layout::BestFit);
        assert!(!g.video && g.audio && !g.filter.contains("vout"));
    }

    fn video(focus: bool) -> TileInput {
        TileInput { offset_ms: 0, duration_ms: 1000, has_audio: false, has_video: true, focus }
    }

    #[test]
    fn overlay_layouts_draw_on_a_canvas_as_long_as_the_longest_input() {
        let mut late = video(false);
        late.offset_ms = 2500;
        let g = build(&[video(true), late], 640, 480, Layout::Pip);
        assert!(g.filter.contains("color=c=black:s=640x480:r=25:d=3.500[c0]"), "{}", g.filter);
        assert!(g.filter.contains("[c0][t0]overlay=x=0:y=0:eof_action=pass[c1]"), "{}", g.filter);
        assert!(g.filter.contains("[c1][t1]overlay="), "{}", g.filter);
        assert!(!g.filter.contains("xstack"));
    }
}
