//! Where each stream goes in a composed archive: OpenTok's layout types as rectangles on the
//! canvas. `bestFit` is a grid (one tile per input, in input order, row by row); `pip` gives
//! the focus stream the whole canvas and the others small insets in the lower right;
//! `verticalPresentation` puts the focus on the left with the others in a column on the
//! right; `horizontalPresentation` puts it on top with the others in a row below. The focus
//! is the first input marked `focus`, else the first input. Pure arithmetic; must not build
//! filter strings (that is `graph`) or decide the layout (the caller does).

/// What the layout and the graph need to know about one input.
#[derive(Debug, Clone, Copy)]
pub struct TileInput {
    pub offset_ms: u64,
    /// Milliseconds of media in the input (from its first frame).
    pub duration_ms: u64,
    pub has_audio: bool,
    pub has_video: bool,
    /// The stream the presentation layouts make large (OpenTok's `focus` layout class).
    pub focus: bool,
}

/// How the tiles are arranged (OpenTok's archive layout types; `custom` stylesheets are
/// rendered as `BestFit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    #[default]
    BestFit,
    Pip,
    VerticalPresentation,
    HorizontalPresentation,
}

/// A tile's place on the canvas, in pixels (even sizes and offsets, as yuv420p needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// A stretch of the archive with one layout: from `from_ms` (archive time) until the next
/// epoch's start, or the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    pub from_ms: u64,
    pub layout: Layout,
    /// The input the layout makes large (`None`: the first).
    pub focus: Option<usize>,
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

fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

/// Each input's tile, in drawing order (later tiles are drawn over earlier ones): input order
/// for a grid; the focus first, then the others in input order, for the other layouts.
pub fn placements(layout: Layout, inputs: &[TileInput], width: u32, height: u32) -> Vec<(usize, Rect)> {
    let n = inputs.len();
    if layout == Layout::BestFit || n == 1 {
        let (cols, rows) = grid(n);
        let (w, h) = (even(width / cols as u32), even(height / rows as u32));
        return (0..n).map(|i| (i, Rect { x: (i % cols) as u32 * w, y: (i / cols) as u32 * h, w, h })).collect();
    }
    let focus = inputs.iter().position(|i| i.focus).unwrap_or(0);
    let others: Vec<usize> = (0..n).filter(|i| *i != focus).collect();
    let k = others.len() as u32;
    let mut out = Vec::with_capacity(n);
    match layout {
        Layout::Pip => {
            out.push((focus, Rect { x: 0, y: 0, w: width, h: height }));
            // Quarter-size insets from the lower right corner leftwards, then upwards.
            let (w, h) = (even(width / 4), even(height / 4));
            let m = even(width.min(height) / 24);
            let per_row = ((width - m) / (w + m)).max(1);
            for (j, i) in others.into_iter().enumerate() {
                let (col, row) = (j as u32 % per_row, j as u32 / per_row);
                let x = width.saturating_sub((col + 1) * (w + m)) & !1;
                let y = height.saturating_sub((row + 1) * (h + m)) & !1;
                out.push((i, Rect { x, y, w, h }));
            }
        }
        Layout::VerticalPresentation => {
            let col = even(width / 4);
            out.push((focus, Rect { x: 0, y: 0, w: width - col, h: height }));
            // A column on the right, tiles of the canvas's shape, centred vertically.
            let h = even((height / k).min(col * height / width));
            let top = ((height - h * k) / 2) & !1;
            for (j, i) in others.into_iter().enumerate() {
                out.push((i, Rect { x: width - col, y: top + j as u32 * h, w: col, h }));
            }
        }
        Layout::HorizontalPresentation => {
            let row = even(height / 4);
            out.push((focus, Rect { x: 0, y: 0, w: width, h: height - row }));
            // A row along the bottom, tiles of the canvas's shape, centred horizontally.
            let w = even((width / k).min(row * width / height));
            let left = ((width - w * k) / 2) & !1;
            for (j, i) in others.into_iter().enumerate() {
                out.push((i, Rect { x: left + j as u32 * w, y: height - row, w, h: row }));
            }
        }
        Layout::BestFit => unreachable!("handled above"),
    }
    out
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

    fn video(focus: bool) -> TileInput {
        TileInput { offset_ms: 0, duration_ms: 1000, has_audio: false, has_video: true, focus }
    }

    fn inside(r: &Rect, w: u32, h: u32) -> bool {
        r.x + r.w <= w
            && r.y + r.h <= h
            && r.x.is_multiple_of(2)
            && r.y.is_multiple_of(2)
            && r.w.is_multiple_of(2)
            && r.h.is_multiple_of(2)
    }

    #[test]
    fn presentation_layouts_make_the_focus_large() {
        let inputs = [video(false), video(true), video(false)];
        for layout in [Layout::Pip, Layout::VerticalPresentation, Layout::HorizontalPresentation] {
            let p = placements(layout, &inputs, 640, 480);
            assert_eq!(p.len(), 3, "{layout:?}");
            assert_eq!(p[0].0, 1, "{layout:?}: the focus is drawn first");
            let area = |r: &Rect| r.w * r.h;
            assert!(p[1..].iter().all(|(_, r)| area(r) * 4 <= area(&p[0].1)), "{layout:?}: {p:?}");
            assert!(p.iter().all(|(_, r)| inside(r, 640, 480)), "{layout:?}: {p:?}");
        }
        let pip = placements(Layout::Pip, &inputs, 640, 480);
        assert_eq!(pip[0].1, Rect { x: 0, y: 0, w: 640, h: 480 });
        // The first inset sits in the lower right corner, the next one to its left.
        let (a, b) = (pip[1].1, pip[2].1);
        assert!(a.x + a.w > 600 && a.y + a.h > 440 && b.x + b.w <= a.x, "{pip:?}");
        let v = placements(Layout::VerticalPresentation, &inputs, 640, 480);
        assert!(v[1..].iter().all(|(_, r)| r.x >= v[0].1.w), "column right of the focus: {v:?}");
        let h = placements(Layout::HorizontalPresentation, &inputs, 640, 480);
        assert!(h[1..].iter().all(|(_, r)| r.y >= h[0].1.h), "row below the focus: {h:?}");
        // Without a focus mark, the first input is the focus; one input fills the canvas.
        assert_eq!(placements(Layout::Pip, &[video(false), video(false)], 640, 480)[0].0, 0);
        assert_eq!(placements(Layout::Pip, &[video(false)], 640, 480)[0].1, Rect { x: 0, y: 0, w: 640, h: 480 });
        // Many insets stay on the canvas.
        let many = vec![video(false); 12];
        assert!(placements(Layout::Pip, &many, 320, 240).iter().all(|(_, r)| inside(r, 320, 240)));
        assert!(placements(Layout::VerticalPresentation, &many, 320, 240).iter().all(|(_, r)| inside(r, 320, 240)));
        assert!(placements(Layout::HorizontalPresentation, &many, 240, 320).iter().all(|(_, r)| inside(r, 240, 320)));
    }
}
