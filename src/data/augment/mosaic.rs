//! The 4-image mosaic of Ultralytics' `Mosaic._mosaic4` (`Mosaic.get_params` with `n=4` in 8.4): four resized
//! images meet at a random centre of a `2·imgsz` grey canvas; boxes are shifted, clipped to the canvas, and
//! dropped when their area becomes zero.

use std::ops::Range;

use image::RgbImage;

use super::{LabelBox, Sample, PAD_VALUE};
use crate::data::rng::SampleRng;

/// A mosaic canvas held as where its tiles go, not as pixels: the separable warp reads only the rows it needs
/// through [`Mosaic::row_into`] (a row stays in L1), where a whole canvas is a 4.9 MB fill and four tile copies
/// per sample at imgsz 640, most of which the warp never reads.
pub struct Mosaic<'a> {
    side: usize,
    /// Each tile's region on the canvas `[x1, y1, x2, y2]` and the tile pixel at its top-left; empty ones dropped.
    parts: Vec<(&'a RgbImage, [usize; 4], [usize; 2])>,
}

impl Mosaic<'_> {
    /// `[w, h]` of the canvas.
    pub fn size(&self) -> [u32; 2] {
        [self.side as u32; 2]
    }

    /// Pixels `xs` of canvas row `y` as packed RGB bytes into the same pixels of `out` (a `3 · side`-byte row):
    /// grey 114 where no tile lies. Bytes outside `xs` are left as they are.
    pub fn row_into(&self, y: usize, xs: Range<usize>, out: &mut [u8]) {
        let xs = xs.start.min(self.side)..xs.end.min(self.side);
        out[xs.start * 3..xs.end * 3].fill(PAD_VALUE);
        for &(tile, a, b) in &self.parts {
            let (x0, x1) = (a[0].max(xs.start), a[2].min(xs.end));
            if (a[1]..a[3]).contains(&y) && x0 < x1 {
                let tile_x = b[0] + x0 - a[0];
                let start = ((b[1] + y - a[1]) * tile.width() as usize + tile_x) * 3;
                out[x0 * 3..x1 * 3].copy_from_slice(&tile.as_raw()[start..][..(x1 - x0) * 3]);
            }
        }
    }

    /// The whole canvas, for warps that read it in any order.
    pub fn image(&self) -> RgbImage {
        let mut raw = vec![0u8; self.side * self.side * 3];
        for (y, row) in raw.chunks_exact_mut(self.side * 3).enumerate() {
            self.row_into(y, 0..self.side, row);
        }
        RgbImage::from_raw(self.side as u32, self.side as u32, raw).unwrap_or_default()
    }
}

/// Lays out the mosaic of `tiles` (the sample's own image first, then three others) on a `2·imgsz` canvas.
///
/// The centre `(xc, yc)` is drawn uniformly in `[imgsz/2, 3·imgsz/2)` on each axis (Ultralytics' `border =
/// -imgsz // 2`), `yc` first. Tile 0 ends at the centre (top-left), 1 starts there horizontally (top-right),
/// 2 below-left, 3 below-right; each tile keeps the corner that touches the centre.
///
/// # Shapes
/// Canvas `[2·imgsz, 2·imgsz]`; boxes in canvas pixels.
pub fn mosaic4<'a>(
    tiles: [&'a Sample; 4],
    imgsz: u32,
    rng: &mut SampleRng,
) -> (Mosaic<'a>, Vec<LabelBox>) {
    let s = imgsz as i64;
    let half = s / 2;
    let yc = rng.uniform(half as f64, (2 * s - half) as f64) as i64;
    let xc = rng.uniform(half as f64, (2 * s - half) as f64) as i64;
    let canvas_side = 2 * s;
    let mut parts = Vec::with_capacity(4);
    let mut boxes = Vec::new();
    for (i, tile) in tiles.iter().enumerate() {
        let (w, h) = (tile.image.width() as i64, tile.image.height() as i64);
        // a: the region on the canvas; b: the same-size region of the tile.
        let (a, b) = match i {
            0 => {
                let a = [(xc - w).max(0), (yc - h).max(0), xc, yc];
                (a, [w - (a[2] - a[0]), h - (a[3] - a[1]), w, h])
            }
            1 => {
                let a = [xc, (yc - h).max(0), (xc + w).min(canvas_side), yc];
                (a, [0, h - (a[3] - a[1]), w.min(a[2] - a[0]), h])
            }
            2 => {
                let a = [(xc - w).max(0), yc, xc, canvas_side.min(yc + h)];
                (a, [w - (a[2] - a[0]), 0, w, (a[3] - a[1]).min(h)])
            }
            _ => {
                let a = [xc, yc, (xc + w).min(canvas_side), canvas_side.min(yc + h)];
                (a, [0, 0, w.min(a[2] - a[0]), (a[3] - a[1]).min(h)])
            }
        };
        let cw = (a[2] - a[0]).min(b[2] - b[0]);
        let ch = (a[3] - a[1]).min(b[3] - b[1]);
        if cw > 0 && ch > 0 {
            let (x, y) = (a[0] as usize, a[1] as usize);
            parts.push((
                &tile.image,
                [x, y, x + cw as usize, y + ch as usize],
                [b[0] as usize, b[1] as usize],
            ));
        }
        let pad = [(a[0] - b[0]) as f32, (a[1] - b[1]) as f32];
        let side = canvas_side as f32;
        for bx in &tile.boxes {
            let [x1, y1, x2, y2] = bx.xyxy_px;
            let moved = [
                (x1 + pad[0]).clamp(0.0, side),
                (y1 + pad[1]).clamp(0.0, side),
                (x2 + pad[0]).clamp(0.0, side),
                (y2 + pad[1]).clamp(0.0, side),
            ];
            // Instances.remove_zero_area_boxes
            if (moved[2] - moved[0]) * (moved[3] - moved[1]) > 0.0 {
                boxes.push(LabelBox {
                    class: bx.class,
                    xyxy_px: moved,
                });
            }
        }
    }
    let mosaic = Mosaic {
        side: canvas_side as usize,
        parts,
    };
    (mosaic, boxes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(w: u32, h: u32, value: u8) -> Sample {
        Sample {
            image: RgbImage::from_pixel(w, h, image::Rgb([value; 3])),
            boxes: vec![LabelBox {
                class: value as u32,
                xyxy_px: [0.0, 0.0, w as f32, h as f32],
            }],
        }
    }

    /// Four tiles of different sizes, each one grey level with one box over all of it.
    fn four_tiles() -> [Sample; 4] {
        [
            tile(64, 48, 1),
            tile(40, 64, 2),
            tile(64, 64, 3),
            tile(30, 20, 4),
        ]
    }

    #[test]
    fn mosaic4_tiles_meet_at_the_centre() {
        let tiles = four_tiles();
        let mut rng = SampleRng::for_sample(0, 0, 0);
        let (mosaic, boxes) = mosaic4([&tiles[0], &tiles[1], &tiles[2], &tiles[3]], 64, &mut rng);
        let out = Sample {
            image: mosaic.image(),
            boxes,
        };
        assert_eq!(out.image.dimensions(), (128, 128));
        assert_eq!(out.boxes.len(), 4);
        // Tile 0's box ends at the centre, tile 3's starts there.
        let [_, _, xc, yc] = out.boxes[0].xyxy_px;
        assert_eq!(&out.boxes[3].xyxy_px[..2], &[xc, yc]);
        assert!((32.0..96.0).contains(&xc) && (32.0..96.0).contains(&yc));
        assert_eq!(out.image.get_pixel(xc as u32 - 1, yc as u32 - 1).0, [1; 3]);
        assert_eq!(out.image.get_pixel(xc as u32, yc as u32).0, [4; 3]);
    }

    #[test]
    fn mosaic_rows_equal_the_composed_canvas_in_any_column_range() {
        let tiles = four_tiles();
        let mut rng = SampleRng::for_sample(0, 0, 7);
        let (mosaic, _) = mosaic4([&tiles[0], &tiles[1], &tiles[2], &tiles[3]], 64, &mut rng);
        let canvas = mosaic.image();
        let stride = 128 * 3;
        // every tile and the grey between them appear
        for v in [1, 2, 3, 4, PAD_VALUE] {
            assert!(canvas.as_raw().contains(&v), "value {v}");
        }
        for (y, want) in canvas.as_raw().chunks_exact(stride).enumerate() {
            for xs in [0..128, 10..90, 63..65, 100..200, 5..5] {
                let mut row = vec![0u8; stride];
                mosaic.row_into(y, xs.clone(), &mut row);
                let (a, b) = (xs.start.min(128) * 3, xs.end.min(128) * 3);
                assert_eq!(&row[a..b], &want[a..b], "row {y}, columns {xs:?}");
                assert!(row[..a].iter().chain(&row[b..]).all(|&v| v == 0));
            }
        }
    }
}
