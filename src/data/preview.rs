//! `data preview`: a batch drawn as Ultralytics' `plot_images` draws `train_batch0.jpg`: up to 16 images in a
//! square grid (column-major), white borders, file names, boxes in the per-class colours of Ultralytics'
//! palette with the class name on a filled tab (the drawing itself is `crate::plots::annotate`).

use image::{Rgb, RgbImage};

use crate::data::augment::resize::resize_bilinear;
use crate::data::loader::Batch;
use crate::plots::annotate::{draw_boxes, rectangle_inside, text, LabelStyle, LabelledBox};
use crate::YoloError;

/// At most this many images are drawn (`plot_images`' `max_subplots`).
pub const MAX_SUBPLOTS: usize = 16;
/// Longest side of the grid before it is shrunk (`plot_images`' `max_size`).
pub const MAX_SIZE: f64 = 1920.0;

/// Draws `batch` (its first 16 images) with its targets labelled by `names`.
pub fn render_batch(batch: &Batch, names: &[String]) -> Result<RgbImage, YoloError> {
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
    // plot_images: fs = max(int((h + w) · ns · 0.01), 18), boxes round(fs / 10) wide.
    let fs = (((ch + cw) * ns as f64 * 0.01) as i64).max(18);
    let style = LabelStyle::pil(fs as f64, (fs as f64 / 10.0).round_ties_even() as u32);
    let (cw, ch) = (cw as i64, ch as i64);
    let mut boxes = Vec::new();
    for i in 0..bs {
        let (x0, y0) = (cw * (i / ns) as i64, ch * (i % ns) as i64);
        rectangle_inside(
            &mut grid,
            [x0, y0, x0 + cw, y0 + ch].map(|v| v as i32),
            [255; 3],
            2,
        )?;
        if let Some(name) = batch.paths.get(i).and_then(|p| p.file_name()) {
            let name: String = name.to_string_lossy().chars().take(40).collect();
            text(
                &mut grid,
                (x0 as i32 + 5, y0 as i32 + 5),
                &name,
                [220; 3],
                fs as f64,
            )?;
        }
        for t in batch.targets.iter().filter(|t| t[0] as usize == i) {
            let class = t[1] as usize;
            let [cx, cy, bw, bh] = [t[2], t[3], t[4], t[5]].map(f64::from);
            boxes.push(LabelledBox {
                xyxy: [
                    x0 as f64 + (cx - bw / 2.0) * cw as f64,
                    y0 as f64 + (cy - bh / 2.0) * ch as f64,
                    x0 as f64 + (cx + bw / 2.0) * cw as f64,
                    y0 as f64 + (cy + bh / 2.0) * ch as f64,
                ],
                class,
                label: names
                    .get(class)
                    .cloned()
                    .unwrap_or_else(|| class.to_string()),
            });
        }
    }
    draw_boxes(&mut grid, &boxes, &style)?;
    Ok(grid)
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
        let grid = render_batch(&batch, &["a".into(), "b".into(), "c".into()]).expect("drawn");
        assert_eq!(grid.dimensions(), (128, 128));
        // Image 1 is below image 0 (column-major); its box's left edge at x = 16.
        assert_eq!(grid.get_pixel(16, 64 + 40).0, crate::plots::PALETTE[2]);
        assert_eq!(grid.get_pixel(32, 64 + 32).0, [128; 3]);
    }
}
