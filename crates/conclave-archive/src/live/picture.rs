//! The live canvas: planar YUV 4:2:0 pictures, filled black and drawn into with a stream's
//! latest picture scaled to fit a layout tile (aspect kept, centred, nearest neighbour). Pure
//! pixel work; must not decide where tiles go (`compose::placements` does) or run ffmpeg.
//!
//! Nearest neighbour is enough here: each decoder already scales its stream to the canvas
//! size with ffmpeg's scaler, so this only shrinks a picture into a tile.

use crate::compose::Rect;

/// A YUV 4:2:0 picture (`yuv420p`: the Y plane, then U, then V). Even width and height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Y, U and V of black in video range.
const BLACK: (u8, u8, u8) = (16, 128, 128);

impl Picture {
    /// Bytes of a `width`×`height` picture.
    pub fn len_for(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * (w / 2) * (h / 2)
    }

    pub fn black(width: u32, height: u32) -> Self {
        let mut p = Picture { width, height, data: vec![0; Self::len_for(width, height)] };
        p.fill_black();
        p
    }

    pub fn fill_black(&mut self) {
        let y = (self.width * self.height) as usize;
        self.data[..y].fill(BLACK.0);
        let c = (self.width / 2 * (self.height / 2)) as usize;
        self.data[y..y + c].fill(BLACK.1);
        self.data[y + c..].fill(BLACK.2);
    }

    /// (offset, width, height) of plane 0 (Y), 1 (U) or 2 (V).
    fn plane(&self, i: usize) -> (usize, usize, usize) {
        let (w, h) = (self.width as usize, self.height as usize);
        match i {
            0 => (0, w, h),
            1 => (w * h, w / 2, h / 2),
            _ => (w * h + (w / 2) * (h / 2), w / 2, h / 2),
        }
    }

    /// The Y, U, V values at pixel (x, y).
    pub fn yuv_at(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let (x, y) = (x as usize, y as usize);
        let at = |i: usize, x: usize, y: usize| {
            let (off, w, _) = self.plane(i);
            self.data[off + y * w + x]
        };
        (at(0, x, y), at(1, x / 2, y / 2), at(2, x / 2, y / 2))
    }

    /// Draws `src` into `tile`, scaled to fit with its aspect kept and centred; the rest of
    /// the tile is left as it was.
    pub fn draw_fit(&mut self, src: &Picture, tile: Rect) {
        if src.width == 0 || src.height == 0 || tile.w == 0 || tile.h == 0 {
            return;
        }
        let fit = fit_rect(src.width, src.height, tile);
        for i in 0..3 {
            let div = if i == 0 { 1 } else { 2 };
            let (so, sw, sh) = src.plane(i);
            let (doff, dw, dh) = self.plane(i);
            let (x0, y0) = ((fit.x / div) as usize, (fit.y / div) as usize);
            let (w, h) = ((fit.w / div) as usize, (fit.h / div) as usize);
            if w == 0 || h == 0 {
                continue;
            }
            let cols: Vec<usize> = (0..w).map(|c| (c * sw / w).min(sw - 1)).collect();
            for r in 0..h.min(dh.saturating_sub(y0)) {
                let sr = (r * sh / h).min(sh - 1);
                let srow = &src.data[so + sr * sw..so + (sr + 1) * sw];
                let start = doff + (y0 + r) * dw + x0;
                let n = w.min(dw.saturating_sub(x0));
                for (d, &c) in self.data[start..start + n].iter_mut().zip(&cols) {
                    *d = srow[c];
                }
            }
        }
    }
}

/// The largest even rectangle of `sw`:`sh` shape centred in `tile`.
pub fn fit_rect(sw: u32, sh: u32, tile: Rect) -> Rect {
    let (tw, th) = (tile.w as u64, tile.h as u64);
    let (sw, sh) = (sw.max(1) as u64, sh.max(1) as u64);
    let (w, h) = if tw * sh <= th * sw { (tw, tw * sh / sw) } else { (th * sw / sh, th) };
    let (w, h) = ((w as u32) & !1, (h as u32) & !1);
    let x = tile.x + (((tile.w - w) / 2) & !1);
    let y = tile.y + (((tile.h - h) / 2) & !1);
    Rect { x, y, w, h }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, yuv: (u8, u8, u8)) -> Picture {
        let mut p = Picture::black(w, h);
        let (y, c) = ((w * h) as usize, (w / 2 * (h / 2)) as usize);
        p.data[..y].fill(yuv.0);
        p.data[y..y + c].fill(yuv.1);
        p.data[y + c..].fill(yuv.2);
        p
    }

    #[test]
    fn fit_keeps_the_shape_and_centres() {
        let tile = Rect { x: 320, y: 0, w: 320, h: 480 };
        assert_eq!(fit_rect(640, 480, tile), Rect { x: 320, y: 120, w: 320, h: 240 });
        assert_eq!(fit_rect(640, 480, Rect { x: 0, y: 0, w: 640, h: 480 }), Rect { x: 0, y: 0, w: 640, h: 480 });
        let tall = fit_rect(480, 640, Rect { x: 0, y: 0, w: 640, h: 480 });
        assert_eq!((tall.w, tall.h, tall.y), (360, 480, 0));
        assert_eq!(tall.x, 140);
    }

    #[test]
    fn draw_fills_the_tile_and_leaves_the_rest() {
        let mut canvas = Picture::black(640, 480);
        let red = solid(640, 480, (81, 90, 240));
        canvas.draw_fit(&red, Rect { x: 0, y: 0, w: 320, h: 480 });
        // Letterboxed in the left half: 320x240 at y 120.
        assert_eq!(canvas.yuv_at(160, 240), (81, 90, 240));
        assert_eq!(canvas.yuv_at(0, 120), (81, 90, 240));
        assert_eq!(canvas.yuv_at(318, 358), (81, 90, 240));
        assert_eq!(canvas.yuv_at(160, 60), BLACK, "above the letterbox");
        assert_eq!(canvas.yuv_at(480, 240), BLACK, "the right half");
        let blue = solid(320, 240, (41, 240, 110));
        canvas.draw_fit(&blue, Rect { x: 320, y: 240, w: 320, h: 240 });
        assert_eq!(canvas.yuv_at(639, 479), (41, 240, 110));
        assert_eq!(canvas.yuv_at(160, 240), (81, 90, 240));
    }

    #[test]
    fn scaling_picks_the_matching_source_pixels() {
        // Left half white, right half black: halved, the boundary stays in the middle.
        let mut src = Picture::black(64, 32);
        for r in 0..32 {
            src.data[r * 64..r * 64 + 32].fill(235);
        }
        let mut canvas = Picture::black(32, 16);
        canvas.draw_fit(&src, Rect { x: 0, y: 0, w: 32, h: 16 });
        assert_eq!(canvas.yuv_at(15, 8).0, 235);
        assert_eq!(canvas.yuv_at(16, 8).0, 16);
    }
}
