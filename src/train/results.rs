//! What a run leaves besides its weights: the run folder itself (never reusing one silently), `args.toml`,
//! `results.csv` with Ultralytics' columns, and `results.png`.
//!
//! `results.png` is drawn with the `image` crate alone (no plotting crate, no fonts, works offline): one panel
//! per numeric column of results.csv, in column order, five per row (Ultralytics' layout: train losses and
//! precision/recall/mAP on top, val losses and mAP below), each a blue polyline scaled to its own min..max with
//! the x axis running over epochs. Text (8×8 bitmap glyphs, `font8x8`): each panel's column name, its min and
//! max, and the first and last epoch.

use std::fmt::Write as _;
use std::path::Path;

use image::{Rgb, RgbImage};

use super::checkpoint::ValMetrics;
use crate::data::preview::text;
use crate::model::weights::write_atomic;
use crate::YoloError;

/// results.csv's header: Ultralytics 8.4's column names, then the mixed-precision columns (the fp16 loss scale,
/// 1 in fp32 and bf16, and the optimizer steps skipped for non-finite gradients so far).
pub const COLUMNS: [&str; 17] = [
    "epoch",
    "time",
    "train/box_loss",
    "train/cls_loss",
    "train/dfl_loss",
    "metrics/precision(B)",
    "metrics/recall(B)",
    "metrics/mAP50(B)",
    "metrics/mAP50-95(B)",
    "val/box_loss",
    "val/cls_loss",
    "val/dfl_loss",
    "lr/pg0",
    "lr/pg1",
    "lr/pg2",
    "amp/scale",
    "amp/skipped_steps",
];

/// Columns drawn in results.png (the amp columns are not: Ultralytics' ten panels stay as they are).
const PLOTTED: usize = 15;

/// Mean training losses of one epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrainLosses {
    pub box_loss: f64,
    pub cls_loss: f64,
    pub dfl_loss: f64,
}

/// One row of results.csv.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRow {
    /// 1-based, as Ultralytics writes it.
    pub epoch: usize,
    /// Seconds since the run started (Ultralytics' `time`).
    pub time_s: f64,
    pub train: TrainLosses,
    pub val: ValMetrics,
    /// Learning rate of pg0..pg2 at the epoch's last batch.
    pub lr: [f64; 3],
    /// The loss scale at the epoch's end (1 without loss scaling).
    pub amp_scale: f64,
    /// Optimizer steps skipped for non-finite gradients since the run began.
    pub amp_skipped_steps: u64,
}

impl EpochRow {
    fn values(&self) -> [f64; 17] {
        [
            self.epoch as f64,
            self.time_s,
            self.train.box_loss,
            self.train.cls_loss,
            self.train.dfl_loss,
            self.val.precision,
            self.val.recall,
            self.val.map50,
            self.val.map50_95,
            self.val.box_loss,
            self.val.cls_loss,
            self.val.dfl_loss,
            self.lr[0],
            self.lr[1],
            self.lr[2],
            self.amp_scale,
            self.amp_skipped_steps as f64,
        ]
    }
}

/// results.csv as text: header, then one row per epoch.
pub fn csv_text(rows: &[EpochRow]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for row in rows {
        let values = row.values();
        let _ = write!(out, "{}", row.epoch);
        for v in &values[1..16] {
            let _ = write!(out, ",{v:.6}");
        }
        let _ = write!(out, ",{}", row.amp_skipped_steps);
        out.push('\n');
    }
    out
}

/// Reads the rows of an existing results.csv (for a resumed run), keeping those with `epoch <= keep_epochs`;
/// a missing or unreadable file gives none.
pub fn read_rows(path: &Path, keep_epochs: usize) -> Vec<EpochRow> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let v: Vec<f64> = line
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .ok()?;
            (v.len() == COLUMNS.len()).then(|| EpochRow {
                epoch: v[0] as usize,
                time_s: v[1],
                train: TrainLosses {
                    box_loss: v[2],
                    cls_loss: v[3],
                    dfl_loss: v[4],
                },
                val: ValMetrics {
                    precision: v[5],
                    recall: v[6],
                    map50: v[7],
                    map50_95: v[8],
                    box_loss: v[9],
                    cls_loss: v[10],
                    dfl_loss: v[11],
                },
                lr: [v[12], v[13], v[14]],
                amp_scale: v[15],
                amp_skipped_steps: v[16] as u64,
            })
        })
        .filter(|r| r.epoch <= keep_epochs)
        .collect()
}

/// Writes results.csv and results.png into `run_dir`.
pub fn write_results(run_dir: &Path, rows: &[EpochRow]) -> Result<(), YoloError> {
    write_atomic(&run_dir.join("results.csv"), csv_text(rows).as_bytes())?;
    let png = plot(rows);
    let path = run_dir.join("results.png");
    let mut bytes = Vec::new();
    png.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| YoloError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(&path, &bytes)
}

const PANEL_W: u32 = 240;
const PANEL_H: u32 = 170;
const MARGIN: u32 = 12;
/// Room above a panel for its title, and below it for the epoch axis.
const TITLE_H: u32 = 20;
const AXIS_H: u32 = 14;

/// The 13 numeric columns after `epoch` and `time`, each in its own panel, five per row, as Ultralytics'
/// results.png: the column name above each panel, its range at the left edge, the epochs below.
pub fn plot(rows: &[EpochRow]) -> RgbImage {
    let series: Vec<Vec<f64>> = (2..PLOTTED)
        .map(|c| rows.iter().map(|r| r.values()[c]).collect())
        .collect();
    let cols = 5u32;
    let grid_rows = (series.len() as u32).div_ceil(cols);
    let mut img = RgbImage::from_pixel(cols * PANEL_W, grid_rows * PANEL_H, Rgb([255, 255, 255]));
    let first_epoch = rows.first().map_or(1, |r| r.epoch);
    let last_epoch = rows.last().map_or(1, |r| r.epoch);
    for (i, values) in series.iter().enumerate() {
        let x0 = (i as u32 % cols) * PANEL_W + MARGIN;
        let y0 = (i as u32 / cols) * PANEL_H + TITLE_H;
        let (w, h) = (PANEL_W - 2 * MARGIN, PANEL_H - TITLE_H - AXIS_H - 4);
        let ink = [60, 60, 60];
        text(
            &mut img,
            [x0 as i64, y0 as i64 - 14],
            COLUMNS[i + 2],
            ink,
            1,
        );
        draw_box(&mut img, x0, y0, w, h, Rgb([180, 180, 180]));
        let axis_y = (y0 + h + 4) as i64;
        text(
            &mut img,
            [x0 as i64, axis_y],
            &first_epoch.to_string(),
            ink,
            1,
        );
        let last = last_epoch.to_string();
        text(
            &mut img,
            [(x0 + w) as i64 - 8 * last.len() as i64, axis_y],
            &last,
            ink,
            1,
        );
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            continue;
        }
        let grey = [150, 150, 150];
        text(
            &mut img,
            [x0 as i64 + 3, y0 as i64 + 3],
            &format!("{hi:.4}"),
            grey,
            1,
        );
        text(
            &mut img,
            [x0 as i64 + 3, (y0 + h) as i64 - 10],
            &format!("{lo:.4}"),
            grey,
            1,
        );
        if values.len() < 2 {
            continue;
        }
        let span = if hi > lo { hi - lo } else { 1.0 };
        let point = |k: usize, v: f64| {
            let x = x0 as f64 + w as f64 * k as f64 / (values.len() - 1) as f64;
            let y = y0 as f64 + h as f64 * (1.0 - (v - lo) / span);
            (x, y)
        };
        for k in 1..values.len() {
            if values[k - 1].is_finite() && values[k].is_finite() {
                draw_line(
                    &mut img,
                    point(k - 1, values[k - 1]),
                    point(k, values[k]),
                    Rgb([31, 119, 180]),
                );
            }
        }
    }
    img
}

fn draw_box(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, c: Rgb<u8>) {
    for x in x0..=x0 + w {
        img.put_pixel(x, y0, c);
        img.put_pixel(x, y0 + h, c);
    }
    for y in y0..=y0 + h {
        img.put_pixel(x0, y, c);
        img.put_pixel(x0 + w, y, c);
    }
}

fn draw_line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: Rgb<u8>) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for s in 0..=steps {
        let t = s as f64 / steps as f64;
        let x = (a.0 + (b.0 - a.0) * t).round() as i64;
        let y = (a.1 + (b.1 - a.1) * t).round() as i64;
        for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
            let (px, py) = (x + dx, y + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> EpochRow {
        EpochRow {
            epoch,
            time_s: epoch as f64 * 10.0,
            train: TrainLosses {
                box_loss: 2.0 / epoch as f64,
                cls_loss: 1.0,
                dfl_loss: 1.5,
            },
            val: ValMetrics {
                map50: 0.1 * epoch as f64,
                ..ValMetrics::default()
            },
            lr: [0.01, 0.01, 0.02],
            amp_scale: 32768.0,
            amp_skipped_steps: epoch as u64,
        }
    }

    #[test]
    fn csv_has_ultralytics_header_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<EpochRow> = (1..=3).map(row).collect();
        write_results(dir.path(), &rows).unwrap();
        let text = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
        assert!(text.starts_with(
            "epoch,time,train/box_loss,train/cls_loss,train/dfl_loss,metrics/precision(B)"
        ));
        let back = read_rows(&dir.path().join("results.csv"), 2);
        assert_eq!(back.len(), 2);
        assert!((back[1].val.map50 - 0.2).abs() < 1e-6);
        assert!(text
            .lines()
            .next()
            .unwrap()
            .ends_with(",amp/scale,amp/skipped_steps"));
        assert_eq!((back[1].amp_scale, back[1].amp_skipped_steps), (32768.0, 2));
        assert!(dir.path().join("results.png").exists());
    }

    #[test]
    fn plot_titles_each_panel() {
        let rows: Vec<EpochRow> = (1..=4).map(row).collect();
        let img = plot(&rows);
        // The title strip above the first panel holds dark glyph pixels; without text it was blank.
        let dark = (MARGIN..PANEL_W - MARGIN)
            .flat_map(|x| (4..TITLE_H - 4).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
            .count();
        assert!(dark > 50, "{dark} dark pixels in the title strip");
        if let Some(out) = std::env::var_os("YOLO_BURN_PLOT_PREVIEW") {
            img.save(out).expect("preview written");
        }
    }
}
