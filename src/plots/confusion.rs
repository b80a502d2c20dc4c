//! `confusion_matrix.png` and `confusion_matrix_normalized.png` as Ultralytics' `ConfusionMatrix.plot` draws
//! them (ultralytics/utils/metrics.py, 8.4.190): 12 × 9 inches at 250 dpi, rows predicted and columns true with
//! background last, matplotlib's "Blues" colour map from 0 to the largest shown value, cells under 0.005 left
//! blank, the value in each cell while fewer than 30 rows are shown, class names on both axes while fewer than
//! 99, every k-th class only from 100 classes on, and a colour bar at the right. The normalised version divides
//! each column (true class) by its total.

use image::RgbImage;
use plotters::element::{PathElement, Rectangle, Text};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, FontTransform, IntoFont, RGBColor, TextStyle, BLACK, WHITE};

use super::canvas::{blank, draw_on, measure, Area, DrawResult, FAMILY};
use super::{nice_ticks, Points};
use crate::eval::confusion::ConfusionMatrix;
use crate::YoloError;

const DPI: f64 = 250.0;

/// Counts or column shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// `confusion_matrix.png`: the counts.
    Counts,
    /// `confusion_matrix_normalized.png`: each true-class column divided by its total.
    Columns,
}

impl Normalize {
    /// The file Ultralytics writes it to.
    pub fn file_name(self) -> &'static str {
        match self {
            Normalize::Counts => "confusion_matrix.png",
            Normalize::Columns => "confusion_matrix_normalized.png",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Normalize::Counts => "Confusion Matrix",
            Normalize::Columns => "Confusion Matrix Normalized",
        }
    }
}

/// matplotlib's "Blues" (ColorBrewer, nine anchors), sampled as its 256-entry lookup table is.
pub fn blues(v: f64) -> [u8; 3] {
    const ANCHORS: [[f64; 3]; 9] = [
        [0.968_627_450_980_392_2, 0.984_313_725_490_196, 1.0],
        [
            0.870_588_235_294_117_7,
            0.921_568_627_450_980_3,
            0.968_627_450_980_392_2,
        ],
        [
            0.776_470_588_235_294_1,
            0.858_823_529_411_764_7,
            0.937_254_901_960_784_3,
        ],
        [
            0.619_607_843_137_254_9,
            0.792_156_862_745_098,
            0.882_352_941_176_470_6,
        ],
        [
            0.419_607_843_137_254_9,
            0.682_352_941_176_470_6,
            0.839_215_686_274_509_8,
        ],
        [
            0.258_823_529_411_764_7,
            0.572_549_019_607_843_1,
            0.776_470_588_235_294_1,
        ],
        [
            0.129_411_764_705_882_37,
            0.443_137_254_901_960_76,
            0.709_803_921_568_627_5,
        ],
        [
            0.031_372_549_019_607_84,
            0.317_647_058_823_529_4,
            0.611_764_705_882_353,
        ],
        [
            0.031_372_549_019_607_84,
            0.188_235_294_117_647_06,
            0.419_607_843_137_254_9,
        ],
    ];
    let index = ((v.clamp(0.0, 1.0) * 256.0) as usize).min(255);
    let t = index as f64 / 255.0 * 8.0;
    let k = (t.floor() as usize).min(7);
    let f = t - k as f64;
    std::array::from_fn(|c| {
        let x = ANCHORS[k][c] + (ANCHORS[k + 1][c] - ANCHORS[k][c]) * f;
        (x * 255.0).round() as u8
    })
}

/// The values shown: the matrix (normalised or not), thinned to every k-th class from 100 classes on, with
/// values under 0.005 as `None` (blank, unlabelled); and the tick names.
fn shown_values(
    matrix: &ConfusionMatrix,
    names: &[String],
    normalize: Normalize,
) -> (Vec<Vec<Option<f64>>>, Vec<String>) {
    let nc = matrix.nc();
    let n = nc + 1;
    let column_totals: Vec<f64> = (0..n)
        .map(|t| (0..n).map(|p| matrix.get(p, t) as f64).sum())
        .collect();
    let value = |p: usize, t: usize| {
        let count = matrix.get(p, t) as f64;
        let v = match normalize {
            Normalize::Counts => count,
            Normalize::Columns => count / (column_totals[t] + 1e-9),
        };
        (v >= 0.005).then_some(v)
    };
    let keep: Vec<usize> = if nc >= 100 {
        let k = (nc / 60).max(2);
        (0..nc).step_by(k).chain(std::iter::once(nc)).collect()
    } else {
        (0..n).collect()
    };
    let name_of = |i: usize| {
        if i == nc {
            "background".to_string()
        } else {
            names.get(i).cloned().unwrap_or_else(|| i.to_string())
        }
    };
    let values = keep
        .iter()
        .map(|&p| keep.iter().map(|&t| value(p, t)).collect())
        .collect();
    (values, keep.into_iter().map(name_of).collect())
}

/// Draws the confusion matrix over `names` (class names by index).
pub fn confusion_figure(
    matrix: &ConfusionMatrix,
    names: &[String],
    normalize: Normalize,
) -> Result<RgbImage, YoloError> {
    let pt = Points::at_dpi(DPI);
    let (values, tick_names) = shown_values(matrix, names, normalize);
    let (w, h) = (pt.px(12.0 * 72.0) as u32, pt.px(9.0 * 72.0) as u32);
    let mut image = blank(w, h);
    draw_on(&mut image, normalize.file_name(), |root| {
        draw_matrix(root, &values, &tick_names, normalize, pt)
    })?;
    Ok(image)
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

fn draw_matrix(
    root: &Area<'_>,
    values: &[Vec<Option<f64>>],
    tick_names: &[String],
    normalize: Normalize,
    pt: Points,
) -> DrawResult {
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (f64::from(w), f64::from(h));
    let shown = values.len();
    let nf = shown as f64;
    let tick_pt = (15.0 - 0.1 * nf).max(6.0);
    let label_pt = (12.0 - 0.1 * nf).max(6.0);
    let bottom_fraction = (0.25 - 0.001 * nf).max(0.1);
    // subplots_adjust(left=0, right=0.84, top=0.94, bottom=btm); the colour bar takes 4.6% of that width and
    // 5% padding; the image keeps square cells, pushed right against the bar (colorbar anchors its parent at
    // (1, 0.5)).
    let top = 0.06 * h;
    let side = (1.0 - bottom_fraction) * h - top;
    let parent_w = 0.84 * w;
    let image_w = parent_w * (1.0 - 0.046 - 0.05);
    let side = side.min(image_w);
    let left = image_w - side;
    let cell = side / nf;
    let vmax = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0, f64::max);
    let edge = |i: usize| -> (i32, i32) {
        (
            (left + i as f64 * cell).round() as i32,
            (top + i as f64 * cell).round() as i32,
        )
    };
    for (p, row) in values.iter().enumerate() {
        for (t, v) in row.iter().enumerate() {
            let Some(v) = v else { continue };
            let colour = blues(if vmax > 0.0 { v / vmax } else { 0.0 });
            let (x0, y0) = (edge(t).0, edge(p).1);
            let (x1, y1) = (edge(t + 1).0, edge(p + 1).1);
            root.draw(&Rectangle::new([(x0, y0), (x1, y1)], rgb(colour).filled()))?;
        }
    }
    // Cell values while fewer than 30 rows are shown; white on dark cells.
    if shown < 30 {
        let threshold = 0.45
            * match normalize {
                Normalize::Columns => 1.0,
                Normalize::Counts => vmax,
            };
        for (p, row) in values.iter().enumerate() {
            for (t, v) in row.iter().enumerate() {
                let Some(v) = v else { continue };
                let text = match normalize {
                    Normalize::Columns => format!("{v:.2}"),
                    Normalize::Counts => format!("{}", v.round() as u64),
                };
                let colour = if *v > threshold { WHITE } else { BLACK };
                let centre = (
                    (left + (t as f64 + 0.5) * cell).round() as i32,
                    (top + (p as f64 + 0.5) * cell).round() as i32,
                );
                root.draw(&Text::new(
                    text,
                    centre,
                    TextStyle::from((FAMILY, pt.px(10.0)).into_font())
                        .color(&colour)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
        }
    }
    // Ticks: names while fewer than 99 rows are shown, else indices at round steps.
    let tick_len = pt.px(3.5).round() as i32;
    let pad = pt.px(3.5).round() as i32;
    let ticks: Vec<(usize, String)> = if shown < 99 {
        tick_names.iter().cloned().enumerate().collect()
    } else {
        let (t, _) = nice_ticks(0.0, nf - 1.0, 6);
        t.into_iter()
            .map(|v| (v as usize, format!("{}", v as usize)))
            .collect()
    };
    let tick_px = pt.px(tick_pt);
    let matrix_bottom = (top + side).round() as i32;
    let matrix_left = left.round() as i32;
    let axis = BLACK.stroke_width(pt.px_u32(0.8));
    let mut widest_y = 0f64;
    let mut widest_x = 0f64;
    for (i, name) in &ticks {
        let c = (left + (*i as f64 + 0.5) * cell).round() as i32;
        let r = (top + (*i as f64 + 0.5) * cell).round() as i32;
        root.draw(&PathElement::new(
            vec![(c, matrix_bottom), (c, matrix_bottom + tick_len)],
            axis,
        ))?;
        root.draw(&PathElement::new(
            vec![(matrix_left - tick_len, r), (matrix_left, r)],
            axis,
        ))?;
        let style = TextStyle::from((FAMILY, tick_px).into_font()).color(&BLACK);
        root.draw(&Text::new(
            name.clone(),
            (matrix_left - tick_len - pad, r),
            style.pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        root.draw(&Text::new(
            name.clone(),
            (c, matrix_bottom + tick_len + pad),
            style
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
        let width = measure(name, tick_px).width;
        widest_y = widest_y.max(width);
        widest_x = widest_x.max(width);
    }
    // Axis labels (labelpad 10 pt) and the title (pad 20 pt).
    let label_px = pt.px(label_pt);
    let label_pad = pt.px(10.0);
    let label_style = TextStyle::from((FAMILY, label_px).into_font()).color(&BLACK);
    let centre_x = (left + side / 2.0).round() as i32;
    let centre_y = (top + side / 2.0).round() as i32;
    root.draw(&Text::new(
        "True",
        (
            centre_x,
            matrix_bottom + tick_len + pad + (widest_x + label_pad).round() as i32,
        ),
        label_style.pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    root.draw(&Text::new(
        "Predicted",
        (
            matrix_left - tick_len - pad - (widest_y + label_pad).round() as i32,
            centre_y,
        ),
        label_style
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Bottom)),
    ))?;
    root.draw(&Text::new(
        normalize.title(),
        (centre_x, (top - pt.px(20.0)).round() as i32),
        label_style.pos(Pos::new(HPos::Center, VPos::Bottom)),
    ))?;
    colour_bar(root, image_w + 0.05 * parent_w, top, side, vmax, pt)
}

/// The colour bar (aspect 20, as matplotlib's) from 0 at the bottom to `vmax` at the top, ticks on its right.
fn colour_bar(
    root: &Area<'_>,
    left: f64,
    top: f64,
    height: f64,
    vmax: f64,
    pt: Points,
) -> DrawResult {
    let width = (height / 20.0).round() as i32;
    let (x0, y0) = (left.round() as i32, top.round() as i32);
    let rows = height.round() as i32;
    for r in 0..rows {
        let v = 1.0 - (f64::from(r) + 0.5) / f64::from(rows);
        let colour = blues(v);
        root.draw(&Rectangle::new(
            [(x0, y0 + r), (x0 + width, y0 + r + 1)],
            rgb(colour).filled(),
        ))?;
    }
    if vmax <= 0.0 {
        return Ok(());
    }
    let (ticks, decimals) = nice_ticks(0.0, vmax, 6);
    let tick_len = pt.px(3.5).round() as i32;
    let axis = BLACK.stroke_width(pt.px_u32(0.8));
    let style = TextStyle::from((FAMILY, pt.px(11.0)).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for v in ticks {
        let y = (top + height * (1.0 - v / vmax)).round() as i32;
        root.draw(&PathElement::new(
            vec![(x0 + width, y), (x0 + width + tick_len, y)],
            axis,
        ))?;
        root.draw(&Text::new(
            format!("{v:.decimals$}"),
            (x0 + width + 2 * tick_len, y),
            style.clone(),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::confusion::{ClassBox, ConfusionConfig};

    fn matrix(nc: usize) -> ConfusionMatrix {
        let mut m = ConfusionMatrix::new((0..nc as i64).collect());
        let b = |x: f64, class: usize, conf: f64| ClassBox {
            xyxy: [x, 0.0, x + 10.0, 10.0],
            class,
            conf,
        };
        for c in 0..nc {
            // Each class: found twice, confused with the next once, missed once.
            let gts = [
                b(0.0, c, 1.0),
                b(20.0, c, 1.0),
                b(40.0, c, 1.0),
                b(60.0, c, 1.0),
            ];
            let dets = [b(0.0, c, 0.9), b(20.0, c, 0.9), b(40.0, (c + 1) % nc, 0.9)];
            m.process_image(&dets, &gts, &ConfusionConfig::default());
        }
        m
    }

    #[test]
    fn blues_ends_are_matplotlibs() {
        assert_eq!(blues(0.0), [247, 251, 255]);
        assert_eq!(blues(1.0), [8, 48, 107]);
    }

    #[test]
    fn normalized_columns_sum_to_one_and_background_is_last() {
        let names: Vec<String> = (0..3).map(|i| format!("c{i}")).collect();
        let (values, ticks) = shown_values(&matrix(3), &names, Normalize::Columns);
        assert_eq!(ticks.last().map(String::as_str), Some("background"));
        assert_eq!(values.len(), 4);
        let column: f64 = (0..4).filter_map(|p| values[p][0]).sum();
        assert!((column - 1.0).abs() < 1e-6, "{column}");
        assert!((values[0][0].expect("diagonal") - 0.5).abs() < 1e-6);
        // Nothing is predicted as background for background.
        assert_eq!(values[3][3], None);
    }

    #[test]
    fn confusion_figures_have_ultralytics_size_and_dark_diagonal() {
        let names: Vec<String> = (0..3).map(|i| format!("class{i}")).collect();
        for normalize in [Normalize::Counts, Normalize::Columns] {
            let image = confusion_figure(&matrix(3), &names, normalize).expect("drawn");
            assert_eq!(image.dimensions(), (3000, 2250));
            // The diagonal cells hold the largest values: the darkest blue.
            let darkest = image.pixels().filter(|p| p.0 == blues(1.0)).count();
            assert!(darkest > 10_000, "{normalize:?}: {darkest}");
            if let Some(dir) = std::env::var_os("YOLO_BURN_PLOT_PREVIEW_DIR") {
                image
                    .save(std::path::Path::new(&dir).join(normalize.file_name()))
                    .expect("preview written");
            }
        }
    }

    #[test]
    fn hundred_classes_are_thinned() {
        let names: Vec<String> = (0..120).map(|i| format!("c{i}")).collect();
        let (values, ticks) = shown_values(&matrix(120), &names, Normalize::Counts);
        // Every second class plus background.
        assert_eq!(values.len(), 61);
        assert_eq!(ticks[1], "c2");
        let image = confusion_figure(&matrix(120), &names, Normalize::Counts).expect("drawn");
        assert_eq!(image.dimensions(), (3000, 2250));
    }
}
