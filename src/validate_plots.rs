//! The two pictures `val` writes: the precision-recall curve at IoU 0.5 and the confusion matrix, drawn with
//! the `image` crate and the bundled bitmap font (no plotting stack, no system fonts).

use image::{Rgb, RgbImage};

use crate::data::preview::{fill, text};
use crate::eval::coco::params::NUM_RECALL_THRESHOLDS;
use crate::eval::coco::CocoEvaluation;

const WHITE: [u8; 3] = [255; 3];
const BLACK: [u8; 3] = [0; 3];

/// Precision against recall at IoU 0.5 (area all, 100 detections), one grey line per class and the class mean
/// in blue, as Ultralytics' `PR_curve.png`.
pub fn pr_curve(evaluation: &CocoEvaluation) -> RgbImage {
    let (w, h, margin) = (640i64, 480i64, 48i64);
    let mut image = RgbImage::from_pixel(w as u32, h as u32, Rgb(WHITE));
    let (x0, y0, x1, y1) = (margin, 40, w - 16, h - margin);
    let to_px = |r: f64, p: f64| {
        [
            x0 + (r * (x1 - x0) as f64) as i64,
            y1 - (p * (y1 - y0) as f64) as i64,
        ]
    };
    let recall_axis = |i: usize| i as f64 / (NUM_RECALL_THRESHOLDS - 1) as f64;
    let mut mean = vec![0f64; NUM_RECALL_THRESHOLDS];
    let mut counted = 0usize;
    for k in 0..evaluation.num_categories() {
        let curve: Vec<f64> = (0..NUM_RECALL_THRESHOLDS)
            .map(|r| evaluation.precision_at(0, r, k, 0, 2))
            .collect();
        if curve.iter().all(|&p| p < 0.0) {
            continue;
        }
        counted += 1;
        let points: Vec<[i64; 2]> = curve
            .iter()
            .enumerate()
            .map(|(i, &p)| to_px(recall_axis(i), p.max(0.0)))
            .collect();
        polyline(&mut image, &points, [190, 190, 190], 1);
        mean.iter_mut()
            .zip(&curve)
            .for_each(|(m, &p)| *m += p.max(0.0));
    }
    if counted > 0 {
        let points: Vec<[i64; 2]> = mean
            .iter()
            .enumerate()
            .map(|(i, &p)| to_px(recall_axis(i), p / counted as f64))
            .collect();
        polyline(&mut image, &points, [31, 119, 180], 3);
    }
    axes(&mut image, [x0, y0, x1, y1]);
    text(
        &mut image,
        [x0 + 8, 6],
        &format!(
            "Precision-Recall, IoU 0.5: all classes mAP50 {:.3}",
            evaluation.stats.0[1]
        ),
        BLACK,
        1,
    );
    text(&mut image, [(x0 + x1) / 2 - 24, h - 20], "Recall", BLACK, 1);
    text(&mut image, [4, y0 - 14], "Precision", BLACK, 1);
    image
}

/// The confusion matrix (rows predicted, columns true, last row and column background), each column normalised
/// to its total, as Ultralytics' `confusion_matrix_normalized.png`.
pub fn confusion_matrix(evaluation: &CocoEvaluation, names: &[String]) -> RgbImage {
    let matrix = &evaluation.confusion;
    let n = matrix.nc() + 1;
    let label_room = 96i64;
    let cell = (640 / n as i64).max(3);
    let side = label_room + cell * n as i64 + 8;
    let mut image = RgbImage::from_pixel(side as u32, side as u32, Rgb(WHITE));
    for truth in 0..n {
        let total: u64 = (0..n).map(|p| matrix.get(p, truth)).sum();
        for predicted in 0..n {
            let share = if total == 0 {
                0.0
            } else {
                matrix.get(predicted, truth) as f64 / total as f64
            };
            let shade = |c: u8| (255.0 - share * (255.0 - f64::from(c))) as u8;
            let colour = [shade(8), shade(48), shade(107)];
            let (x, y) = (
                label_room + truth as i64 * cell,
                label_room + predicted as i64 * cell,
            );
            fill(&mut image, [x, y, x + cell, y + cell], colour);
        }
    }
    // Class names only when a cell is tall enough for the 8-pixel font.
    if cell >= 9 {
        for i in 0..n {
            let name = if i < n - 1 {
                names.get(i).map_or("?", String::as_str)
            } else {
                "background"
            };
            let short: String = name.chars().take((label_room / 8 - 1) as usize).collect();
            text(
                &mut image,
                [2, label_room + i as i64 * cell + (cell - 8) / 2],
                &short,
                BLACK,
                1,
            );
        }
    }
    text(&mut image, [label_room, 8], "True", BLACK, 1);
    text(&mut image, [2, label_room - 16], "Predicted", BLACK, 1);
    image
}

fn axes(image: &mut RgbImage, [x0, y0, x1, y1]: [i64; 4]) {
    fill(image, [x0, y1, x1, y1 + 1], BLACK);
    fill(image, [x0 - 1, y0, x0, y1 + 1], BLACK);
    for tick in 0..=5 {
        let t = tick as f64 / 5.0;
        let x = x0 + (t * (x1 - x0) as f64) as i64;
        let y = y1 - (t * (y1 - y0) as f64) as i64;
        fill(image, [x, y1, x + 1, y1 + 5], BLACK);
        fill(image, [x0 - 5, y, x0, y + 1], BLACK);
        text(image, [x - 12, y1 + 8], &format!("{t:.1}"), BLACK, 1);
        text(image, [x0 - 30, y - 4], &format!("{t:.1}"), BLACK, 1);
    }
}

/// Straight segments between consecutive points, `width` pixels thick.
fn polyline(image: &mut RgbImage, points: &[[i64; 2]], colour: [u8; 3], width: i64) {
    for pair in points.windows(2) {
        let ([ax, ay], [bx, by]) = (pair[0], pair[1]);
        let steps = (bx - ax).abs().max((by - ay).abs()).max(1);
        for s in 0..=steps {
            let x = ax + (bx - ax) * s / steps;
            let y = ay + (by - ay) * s / steps;
            fill(
                image,
                [
                    x - width / 2,
                    y - width / 2,
                    x - width / 2 + width,
                    y - width / 2 + width,
                ],
                colour,
            );
        }
    }
}
