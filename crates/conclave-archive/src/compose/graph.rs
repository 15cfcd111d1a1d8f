//! The ffmpeg filter graph for a composed archive: a grid of tiles (one per input, in input
//! order, row by row) on a black canvas, each stream delayed by its offset, and all audio
//! mixed. Pure string building; must not run anything.
//!
//! Video: each video tile is a black `color` source of tile size with the stream (timestamps
//! shifted by the offset, scaled to fit with `force_original_aspect_ratio=decrease`) overlaid
//! in the middle, so the tile is black before the stream starts and ends when it ends; one
//! black frame is appended so that `xstack`, which repeats an ended input's last frame, shows
//! black after the end. An audio-only input's tile is a black `showwaves` of its (delayed)
//! audio, which lasts exactly as long as the audio. The grid is `xstack`ed and padded to
//! the requested size.
//! Audio: each stream is resampled to 48 kHz with silence filling gaps from t=0
//! (`aresample=async=1:first_pts=0`), delayed by its offset (`adelay`) and mixed with
//! `amix=normalize=0` (levels kept, as in a real call).

use std::fmt::Write;

/// Output frame rate of the composed video.
pub const FPS: u32 = 25;

/// What the graph needs to know about one input.
#[derive(Debug, Clone, Copy)]
pub struct TileInput {
    pub offset_ms: u64,
    pub has_audio: bool,
    pub has_video: bool,
}

/// A built graph and the labels to `-map`.
#[derive(Debug, Clone)]
pub struct Graph {
    pub filter: String,
    /// `[vout]` exists.
    pub video: bool,
    /// `[aout]` exists.
    pub audio: bool,
}

/// Grid shape for `n` tiles: `cols = ceil(sqrt(n))`, `rows = ceil(n / cols)`.
pub fn grid(n: usize) -> (usize, usize) {
    let mut cols = (n as f64).sqrt().ceil() as usize;
    while cols * cols < n {
        cols += 1;
    }
    let cols = cols.max(1);
    (cols, n.div_ceil(cols).max(1))
}

/// Build the graph for `inputs` (input `i` is ffmpeg input `i`) on a `width`x`height`
/// canvas. Inputs must have audio or video.
pub fn build(inputs: &[TileInput], width: u32, height: u32) -> Graph {
    let video = inputs.iter().any(|i| i.has_video);
    let audio = inputs.iter().any(|i| i.has_audio);
    let mut f = String::new();
    let mut mix = Vec::new();
    let (cols, rows) = grid(inputs.len());
    let tw = (width / cols as u32) & !1;
    let th = (height / rows as u32) & !1;
    for (i, inp) in inputs.iter().enumerate() {
        let delay = inp.offset_ms;
        if inp.has_audio {
            let _ = write!(
                f,
                "[{i}:a:0]aresample=48000:async=1:first_pts=0,adelay=delays={delay}:all=1,\
                 aformat=sample_rates=48000:channel_layouts=stereo"
            );
            if video && !inp.has_video {
                let _ = write!(
                    f,
                    ",asplit=2[a{i}][w{i}];[w{i}]showwaves=s={tw}x{th}:rate={FPS}:colors=black,\
                     format=yuv420p,drawbox=c=black:t=fill,tpad=stop=1:stop_mode=add:color=black\
                     [t{i}];"
                );
            } else {
                let _ = write!(f, "[a{i}];");
            }
            mix.push(format!("[a{i}]"));
        }
        if inp.has_video {
            let secs = format!("{}.{:03}", delay / 1000, delay % 1000);
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
        let tiles: String = (0..inputs.len()).map(|i| format!("[t{i}]")).collect();
        if inputs.len() == 1 {
            f.push_str(&tiles);
        } else {
            let layout: Vec<String> = (0..inputs.len())
                .map(|i| format!("{}_{}", (i % cols) as u32 * tw, (i / cols) as u32 * th))
                .collect();
            let _ = write!(
                f,
                "{tiles}xstack=inputs={}:layout={}:fill=black,",
                inputs.len(),
                layout.join("|")
            );
        }
        let _ = write!(
            f,
            "pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,format=yuv420p[vout];"
        );
    }
    if audio {
        if mix.len() == 1 {
            let _ = write!(f, "{}anull[aout]", mix[0]);
        } else {
            let _ = write!(
                f,
                "{}amix=inputs={}:duration=longest:normalize=0[aout]",
                mix.concat(),
                mix.len()
            );
        }
    }
    Graph {
        filter: f.trim_end_matches(';').to_string(),
        video,
        audio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_shapes() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(2), (2, 1));
        assert_eq!(grid(3), (2, 2));
        assert_eq!(grid(4), (2, 2));
        assert_eq!(grid(5), (3, 2));
        assert_eq!(grid(9), (3, 3));
        assert_eq!(grid(10), (4, 3));
    }

    #[test]
    fn graph_labels() {
        let av = TileInput {
            offset_ms: 1500,
            has_audio: true,
            has_video: true,
        };
        let a = TileInput {
            has_video: false,
            ..av
        };
        let g = build(&[av, a], 640, 480);
        assert!(g.video && g.audio);
        assert!(g.filter.contains("setpts=PTS+1.500/TB"));
        assert!(g.filter.contains("adelay=delays=1500:all=1"));
        assert!(g.filter.contains("layout=0_0|320_0"));
        assert!(
            g.filter.contains("showwaves"),
            "audio-only input gets a tile"
        );
        assert!(g.filter.contains("amix=inputs=2"));
        let g = build(&[a], 640, 480);
        assert!(!g.video && g.audio && !g.filter.contains("vout"));
    }
}
