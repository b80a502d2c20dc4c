//! What a run leaves besides its weights: the run folder itself (never reusing one silently), `args.toml`,
//! `results.csv` with Ultralytics' columns, and `results.png`.
//!
//! `results.png` is Ultralytics' figure (`crate::plots::results`), fed with the loss and metric columns here.

use std::fmt::Write as _;
use std::path::Path;

use super::checkpoint::ValMetrics;
use crate::model::weights::write_atomic;
use crate::plots::results::{results_figure, Panel};
use crate::plots::save_png;
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
    save_png(&run_dir.join("results.png"), &plot(rows)?)
}

/// Ultralytics' `plot_results` order: the loss columns split in half around the first half of the metric
/// columns (`loss_keys[:3] + metric_keys[:2] + loss_keys[3:] + metric_keys[2:]`), so the top row is train losses,
/// precision and recall, the bottom row val losses and the two mAPs. The lr and amp columns are not plotted
/// (their names hold neither "loss" nor "metric").
const PANEL_COLUMNS: [usize; 10] = [2, 3, 4, 5, 6, 9, 10, 11, 7, 8];

/// results.png: Ultralytics' ten panels, each column against the epoch with its smoothed line.
pub fn plot(rows: &[EpochRow]) -> Result<image::RgbImage, YoloError> {
    let epochs: Vec<f64> = rows.iter().map(|r| r.epoch as f64).collect();
    let values: Vec<[f64; 17]> = rows.iter().map(EpochRow::values).collect();
    let panels: Vec<Panel> = PANEL_COLUMNS
        .iter()
        .map(|&c| Panel {
            title: COLUMNS[c],
            values: values.iter().map(|v| v[c]).collect(),
        })
        .collect();
    results_figure(&epochs, &panels)
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
    fn plot_has_ultralytics_ten_panels_in_its_order() {
        let rows: Vec<EpochRow> = (1..=4).map(row).collect();
        let img = plot(&rows).expect("drawn");
        assert_eq!(img.dimensions(), (2400, 1200));
        let titles: Vec<&str> = PANEL_COLUMNS.iter().map(|&c| COLUMNS[c]).collect();
        assert_eq!(
            titles,
            [
                "train/box_loss",
                "train/cls_loss",
                "train/dfl_loss",
                "metrics/precision(B)",
                "metrics/recall(B)",
                "val/box_loss",
                "val/cls_loss",
                "val/dfl_loss",
                "metrics/mAP50(B)",
                "metrics/mAP50-95(B)",
            ]
        );
        if let Some(out) = std::env::var_os("YOLO_BURN_PLOT_PREVIEW") {
            img.save(out).expect("preview written");
        }
    }
}
