//! `data preview`: a batch drawn as Ultralytics' `plot_images` draws `train_batch0.jpg`: up to 16 images in a
//! square grid (column-major), white borders, file names, boxes in the per-class colours of Ultralytics'
//! palette with the class name on a filled tab. Text uses the public-domain 8×8 glyphs of `font8x8`, scaled.

use image::{Rgb, RgbImage};

use crate::data::augment::resize::resize_bilinear;
use crate::data::loader::Batch;

/// Ultralytics' `Colors.hexs` (ultralytics/utils/plotting.py): class `c` gets `PALETTE[c % 20]`.
pub const PALETTE: [[u8; 3]; 20] = [
    [0x04, 0x2A, 0xFF],
    [0x0B, 0xDB, 0xEB],
    [0xF3, 0xF3, 0xF3],
    [0x00, 0xDF, 0xB7],
    [0x11, 0x1F, 0x68],
    [0xFF, 0x6F, 0xDD],
    [0xFF, 0x44, 0x4F],
    [0xCC, 0xED, 0x00],
    [0x00, 0xF3, 0x44],
    [0xBD, 0x00, 0xFF],
    [0x00, 0xB4, 0xFF],
    [0xDD, 0x00, 0xBA],
    [0x00, 0xFF, 0xFF],
    [0x26, 0xC0, 0x00],
    [0x01, 0xFF, 0xB3],
    [0x7D, 0x24, 0xFF],
    [0x7B, 0x00, 0x68],
    [0xFF, 0x1B, 0x6C],
    [0xFC, 0x6D, 0x2F],
    [0xA2, 0xFF, 0x0B],
];

/// At most this many images are drawn (`plot_images`' `max_subplots`).
pub const MAX_SUBPLOTS: usize = 16;
/// Longest side of the grid before it is shrunk (`plot_images`' `max_size`).
pub const MAX_SIZE: f64 = 1920.0;

/// The colour of class `c`.
pub fn class_colour(c: usize) -> [u8; 3] {
    PALETTE[c % PALETTE.len()]
}

/// Draws `batch` (its first 16 images) with its targets labelled by `names`.
pub fn render_batch(batch: &Batch, names: &[String]) -> RgbImage {
    let [b, _, h, w] = batch.shape;
    let bs = b.min(MAX_SUBPLOTS);
    let ns = (bs as f64).sqrt().ceil().max(1.0) as usize;
    let mut grid = RgbImage::from_pixel((ns * w) as u32, (ns * h) as u32, Rgb([255; 3]));
    let plane = w * h;
    for i in 0..bs {
        let (x0, y0) = (w * (i / ns), h * (i % ns));
        let image = &batch.images[i * 3 * plane..(i + 1) * 3 * plane];
        for y in 0..h {
            for x in 0..w {
                let k = y * w + x;
                let px = [image[k], image[plane + k], image[2 * plane + k]];
                grid.put_pixel((x0 + x) as u32, (y0 + y) as u32, Rgb(px));
            }
        }
    }
    // Shrink a grid larger than MAX_SIZE; boxes are normalised, so only the cell size matters below.
    let scale = MAX_SIZE / ns as f64 / h.max(w) as f64;
    let (mut cw, mut ch) = (w as f64, h as f64);
    if scale < 1.0 {
        cw = (scale * w as f64).ceil();
        ch = (scale * h as f64).ceil();
        grid = resize_bilinear(
            &grid,
            [(cw as usize * ns) as u32, (ch as usize * ns) as u32],
        );
    }
    let fs = (((ch + cw) * ns as f64 * 0.01) as i64).max(18);
    let line = ((fs as f64 / 10.0).round() as i64).max(1);
    let text_scale = ((fs as f64 / 14.0).round() as i64).max(1);
    let (cw, ch) = (cw as i64, ch as i64);
    for i in 0..bs {
        let (x0, y0) = (cw * (i / ns) as i64, ch * (i % ns) as i64);
        rectangle(&mut grid, [x0, y0, x0 + cw, y0 + ch], [255; 3], 2);
        if let Some(name) = batch.paths.get(i).and_then(|p| p.file_name()) {
            let name: String = name.to_string_lossy().chars().take(40).collect();
            text(&mut grid, [x0 + 5, y0 + 5], &name, [220; 3], text_scale);
        }
        for t in batch.targets.iter().filter(|t| t[0] as usize == i) {
            let class = t[1] as usize;
            let [cx, cy, bw, bh] = [t[2], t[3], t[4], t[5]].map(|v| v as f64);
            let xyxy = [
                x0 + ((cx - bw / 2.0) * cw as f64) as i64,
                y0 + ((cy - bh / 2.0) * ch as f64) as i64,
                x0 + ((cx + bw / 2.0) * cw as f64) as i64,
                y0 + ((cy + bh / 2.0) * ch as f64) as i64,
            ];
            let colour = class_colour(class);
            rectangle(&mut grid, xyxy, colour, line);
            let label = names
                .get(class)
                .cloned()
                .unwrap_or_else(|| class.to_string());
            box_label(&mut grid, xyxy, &label, colour, text_scale);
        }
    }
    grid
}

/// Fills `[x1, y1, x2, y2)` (clipped to the image).
pub(crate) fn fill(image: &mut RgbImage, xyxy: [i64; 4], colour: [u8; 3]) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    for y in xyxy[1].max(0)..xyxy[3].min(h) {
        for x in xyxy[0].max(0)..xyxy[2].min(w) {
            image.put_pixel(x as u32, y as u32, Rgb(colour));
        }
    }
}

/// An outline `width` pixels thick, inside `[x1, y1, x2, y2]`.
pub(crate) fn rectangle(
    image: &mut RgbImage,
    [x1, y1, x2, y2]: [i64; 4],
    colour: [u8; 3],
    width: i64,
) {
    fill(image, [x1, y1, x2, y1 + width], colour);
    fill(image, [x1, y2 - width, x2, y2], colour);
    fill(image, [x1, y1, x1 + width, y2], colour);
    fill(image, [x2 - width, y1, x2, y2], colour);
}

/// Draws `s` with its top-left corner at `at`, each glyph pixel a `scale`×`scale` square.
pub(crate) fn text(image: &mut RgbImage, at: [i64; 2], s: &str, colour: [u8; 3], scale: i64) {
    for (i, ch) in s.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY
            .get(ch as usize)
            .copied()
            .unwrap_or(font8x8::legacy::BASIC_LEGACY[b'?' as usize]);
        let gx = at[0] + i as i64 * 8 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let x = gx + col * scale;
                    let y = at[1] + row as i64 * scale;
                    fill(image, [x, y, x + scale, y + scale], colour);
                }
            }
        }
    }
}

/// Ultralytics' `Annotator.box_label` tab: the label on a filled box of the class colour, above the box when
/// there is room, else inside it; black text on light colours, white otherwise.
pub(crate) fn box_label(
    image: &mut RgbImage,
    xyxy: [i64; 4],
    label: &str,
    colour: [u8; 3],
    scale: i64,
) {
    let (tw, th) = (label.chars().count() as i64 * 8 * scale, 8 * scale);
    let pad = scale;
    let above = xyxy[1] - th - 2 * pad >= 0;
    let y0 = if above {
        xyxy[1] - th - 2 * pad
    } else {
        xyxy[1]
    };
    fill(
        image,
        [xyxy[0], y0, xyxy[0] + tw + 2 * pad, y0 + th + 2 * pad],
        colour,
    );
    let luma = 0.299 * colour[0] as f64 + 0.587 * colour[1] as f64 + 0.114 * colour[2] as f64;
    let ink = if luma > 160.0 { [0; 3] } else { [255; 3] };
    text(image, [xyxy[0] + pad, y0 + pad], label, ink, scale);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_batch_draws_box_in_class_colour() {
        let batch = Batch {
            images: vec![128; 4 * 3 * 64 * 64],
            shape: [4, 3, 64, 64],
            targets: vec![[1.0, 2.0, 0.5, 0.5, 0.5, 0.5]],
            paths: vec![],
            ids: vec![],
            placements: vec![],
        };
        let grid = render_batch(&batch, &["a".into(), "b".into(), "c".into()]);
        assert_eq!(grid.dimensions(), (128, 128));
        // Image 1 is below image 0 (column-major); its box's left edge at x = 16.
        assert_eq!(grid.get_pixel(16, 64 + 40).0, PALETTE[2]);
        assert_eq!(grid.get_pixel(32, 64 + 32).0, [128; 3]);
    }
}
