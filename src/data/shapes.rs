//! The embedded default dataset: shapes drawn procedurally, deterministically, on first use, so that
//! `yolo-burn train --config configs/yolo.toml` works on a fresh offline machine.
//!
//! It is a real detection task, not a toy: six classes told apart by outline (not colour: every shape takes a
//! random colour), sizes from 8% to 60% of the image, several objects per image overlapping each other (a shape
//! hidden for more than 60% of its pixels loses its label, as an annotator would skip it), and clutter: a
//! gradient background, pixel noise, random lines and blobs that belong to no class.
//!
//! The output is the Ultralytics YOLO txt layout (`images/{train,val}`, `labels/{train,val}`), so every other
//! tool reads it. Changing the drawing changes `VERSION`, which names the folder, so an old copy is never
//! mistaken for the new one.

use std::path::Path;

use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::YoloError;

/// Bumped whenever the drawing changes.
pub const VERSION: u32 = 1;
/// The class names, in label order.
pub const NAMES: [&str; 6] = ["circle", "square", "triangle", "star", "cross", "ring"];
/// Square image side in pixels.
pub const IMAGE_SIZE: u32 = 160;
/// Images per split.
pub const TRAIN_IMAGES: usize = 800;
pub const VAL_IMAGES: usize = 160;

/// The descriptor written where the config expects `datasets/shapes.toml` when it is missing.
pub const DESCRIPTOR: &str = include_str!("../../datasets/shapes.toml");

/// Writes the dataset under `root` unless a complete copy (marked by `root/.complete`) is there.
pub fn ensure(root: &Path) -> Result<(), YoloError> {
    let marker = root.join(".complete");
    if marker.exists() {
        return Ok(());
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| YoloError::Io { path, source }
    };
    for split in ["train", "val"] {
        for kind in ["images", "labels"] {
            let dir = root.join(kind).join(split);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
    }
    let jobs: Vec<(&str, usize)> = (0..TRAIN_IMAGES)
        .map(|i| ("train", i))
        .chain((0..VAL_IMAGES).map(|i| ("val", i)))
        .collect();
    jobs.par_iter().try_for_each(|&(split, i)| {
        // Train and val draw from disjoint seeds.
        let seed = if split == "train" {
            i as u64
        } else {
            1_000_000 + i as u64
        };
        let (image, labels) = draw(seed);
        let stem = format!("{split}_{i:05}");
        let image_path = root.join("images").join(split).join(format!("{stem}.png"));
        image.save(&image_path).map_err(|e| YoloError::Dataset {
            path: image_path.clone(),
            line: None,
            detail: e.to_string(),
        })?;
        let label_path = root.join("labels").join(split).join(format!("{stem}.txt"));
        std::fs::write(&label_path, labels).map_err(io(&label_path))
    })?;
    std::fs::write(&marker, format!("shapes v{VERSION}\n")).map_err(io(&marker))
}

/// One shape to draw.
struct Shape {
    class: usize,
    cx: f32,
    cy: f32,
    /// Half the bounding extent, in pixels.
    radius: f32,
    angle: f32,
    colour: [u8; 3],
}

impl Shape {
    /// Whether pixel centre (x, y) is inside the shape.
    fn contains(&self, x: f32, y: f32) -> bool {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let (s, c) = self.angle.sin_cos();
        // Rotate into the shape's frame.
        let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
        let r = self.radius;
        match NAMES[self.class] {
            "circle" => dx * dx + dy * dy <= r * r,
            "ring" => {
                let d2 = dx * dx + dy * dy;
                d2 <= r * r && d2 >= (0.55 * r) * (0.55 * r)
            }
            "square" => u.abs() <= r * 0.707 && v.abs() <= r * 0.707,
            "cross" => (u.abs() <= r * 0.3 && v.abs() <= r) || (v.abs() <= r * 0.3 && u.abs() <= r),
            "triangle" => inside_polygon(u, v, &regular_polygon(3, r, 0.0)),
            _ => inside_polygon(u, v, &star(r)),
        }
    }

    /// The pixel bounding box (x1, y1, x2, y2) of the drawn shape, from a scan of its extent.
    fn bounds(&self, size: u32) -> Option<[u32; 4]> {
        let (x0, x1) = (self.cx - self.radius - 1.0, self.cx + self.radius + 1.0);
        let (y0, y1) = (self.cy - self.radius - 1.0, self.cy + self.radius + 1.0);
        let clamp = |v: f32| v.clamp(0.0, size as f32) as u32;
        let mut b = [u32::MAX, u32::MAX, 0, 0];
        for y in clamp(y0)..clamp(y1) {
            for x in clamp(x0)..clamp(x1) {
                if self.contains(x as f32 + 0.5, y as f32 + 0.5) {
                    b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
                }
            }
        }
        (b[0] < b[2] && b[1] < b[3]).then_some(b)
    }
}

fn regular_polygon(n: usize, r: f32, phase: f32) -> Vec<(f32, f32)> {
    (0..n)
        .map(|k| {
            let a =
                phase - std::f32::consts::FRAC_PI_2 + k as f32 * std::f32::consts::TAU / n as f32;
            (r * a.cos(), r * a.sin())
        })
        .collect()
}

fn star(r: f32) -> Vec<(f32, f32)> {
    (0..10)
        .map(|k| {
            let a = -std::f32::consts::FRAC_PI_2 + k as f32 * std::f32::consts::PI / 5.0;
            let rr = if k % 2 == 0 { r } else { r * 0.45 };
            (rr * a.cos(), rr * a.sin())
        })
        .collect()
}

/// Even-odd rule.
fn inside_polygon(x: f32, y: f32, poly: &[(f32, f32)]) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let ((xi, yi), (xj, yj)) = (poly[i], poly[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Draws image `seed`: returns it and its YOLO label text.
fn draw(seed: u64) -> (RgbImage, String) {
    let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(VERSION) << 48));
    let size = IMAGE_SIZE;
    let sf = size as f32;
    // Background: a random two-colour gradient.
    let (a, b): ([u8; 3], [u8; 3]) = (rng.random(), rng.random());
    let vertical = rng.random_bool(0.5);
    let mut image = RgbImage::from_fn(size, size, |x, y| {
        let t = if vertical {
            y as f32 / sf
        } else {
            x as f32 / sf
        };
        Rgb([0, 1, 2].map(|c| (a[c] as f32 * (1.0 - t) + b[c] as f32 * t) as u8))
    });
    // Clutter: lines and blobs of no class.
    for _ in 0..rng.random_range(0..6) {
        let colour = Rgb(rng.random::<[u8; 3]>());
        let (x0, y0, x1, y1) = (
            rng.random_range(0.0..sf),
            rng.random_range(0.0..sf),
            rng.random_range(0.0..sf),
            rng.random_range(0.0..sf),
        );
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
        for s in 0..=steps {
            let t = s as f32 / steps as f32;
            let (x, y) = ((x0 + t * (x1 - x0)) as u32, (y0 + t * (y1 - y0)) as u32);
            if x < size && y < size {
                image.put_pixel(x, y, colour);
            }
        }
    }
    for _ in 0..rng.random_range(0..4) {
        let colour = Rgb(rng.random::<[u8; 3]>());
        let (cx, cy, r) = (
            rng.random_range(0.0..sf),
            rng.random_range(0.0..sf),
            rng.random_range(1.5..4.0f32),
        );
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                if dx * dx + dy * dy <= r * r {
                    image.put_pixel(x, y, colour);
                }
            }
        }
    }
    // Objects, drawn in order; `owner` records which shape each pixel shows.
    let count = rng.random_range(1..=6);
    let shapes: Vec<Shape> = (0..count)
        .map(|_| {
            let radius = rng.random_range(0.04..0.30) * sf;
            Shape {
                class: rng.random_range(0..NAMES.len()),
                cx: rng.random_range(radius * 0.5..sf - radius * 0.5),
                cy: rng.random_range(radius * 0.5..sf - radius * 0.5),
                radius,
                angle: rng.random_range(0.0..std::f32::consts::TAU),
                colour: rng.random(),
            }
        })
        .collect();
    let mut owner = vec![usize::MAX; (size * size) as usize];
    let mut area = vec![0usize; shapes.len()];
    for (k, shape) in shapes.iter().enumerate() {
        let Some([x1, y1, x2, y2]) = shape.bounds(size) else {
            continue;
        };
        for y in y1..y2 {
            for x in x1..x2 {
                if shape.contains(x as f32 + 0.5, y as f32 + 0.5) {
                    image.put_pixel(x, y, Rgb(shape.colour));
                    owner[(y * size + x) as usize] = k;
                    area[k] += 1;
                }
            }
        }
    }
    let mut visible = vec![0usize; shapes.len()];
    for &k in owner.iter().filter(|&&k| k != usize::MAX) {
        visible[k] += 1;
    }
    // Pixel noise over everything.
    for pixel in image.pixels_mut() {
        for c in pixel.0.iter_mut() {
            *c = (*c as i32 + rng.random_range(-12..=12)).clamp(0, 255) as u8;
        }
    }
    let mut labels = String::new();
    for (k, shape) in shapes.iter().enumerate() {
        let Some([x1, y1, x2, y2]) = shape.bounds(size) else {
            continue;
        };
        if area[k] == 0 || (visible[k] as f32) < 0.4 * area[k] as f32 {
            continue;
        }
        let (cx, cy) = ((x1 + x2) as f32 / 2.0 / sf, (y1 + y2) as f32 / 2.0 / sf);
        let (w, h) = ((x2 - x1) as f32 / sf, (y2 - y1) as f32 / sf);
        labels.push_str(&format!("{} {cx:.6} {cy:.6} {w:.6} {h:.6}\n", shape.class));
    }
    (image, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawing_is_deterministic_and_labelled() {
        let (a, la) = draw(7);
        let (b, lb) = draw(7);
        assert_eq!(a.as_raw(), b.as_raw());
        assert_eq!(la, lb);
        let (_, other) = draw(8);
        assert_ne!(la, other);
    }

    #[test]
    fn labelled_boxes_cover_their_shape_colour() {
        // A lone shape on a flat background: the label is its tight box.
        let shape = Shape {
            class: 0,
            cx: 50.0,
            cy: 60.0,
            radius: 20.0,
            angle: 0.0,
            colour: [255, 0, 0],
        };
        let [x1, y1, x2, y2] = shape.bounds(160).expect("inside the image");
        assert!(
            (30..=31).contains(&x1) && (69..=70).contains(&x2),
            "{x1} {x2}"
        );
        assert!(
            (40..=41).contains(&y1) && (79..=80).contains(&y2),
            "{y1} {y2}"
        );
    }

    #[test]
    fn every_class_appears_in_a_few_images() {
        let mut seen = [false; NAMES.len()];
        for seed in 0..40 {
            for line in draw(seed).1.lines() {
                let class: usize = line
                    .split(' ')
                    .next()
                    .and_then(|c| c.parse().ok())
                    .expect("class");
                seen[class] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }
}
