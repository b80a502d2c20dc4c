//! A model over a dataset split, evaluated as Ultralytics' validator and as pycocotools do: what `yolo-burn val`
//! prints and writes, and what the trainer measures each epoch. Inference is `predict::Detector`'s; the table,
//! results.csv and fitness use Ultralytics' own metrics (`eval::det_metrics`, what `yolo val` prints), and
//! pycocotools' twelve stats (`eval::coco`) are kept beside them.

use std::fmt;
use std::path::Path;

use burn::prelude::ToElement;
use burn::tensor::backend::Backend;
use serde::Serialize;

use crate::data::loader::{Loader, LoaderConfig};
use crate::data::Index;
use crate::eval::coco::{self, CocoEvaluation, CocoGroundTruth, DetectionBox};
use crate::eval::confusion::ConfusionMatrix;
use crate::eval::det_metrics::{
    ap_per_class, box_iou, det_curves, iou_thresholds, match_predictions, DetCurves, DetMetrics,
};
use crate::loss::DetectionLoss;
use crate::plots::confusion::{confusion_figure, Normalize};
use crate::plots::curves::{curve_figure, CurveKind};
use crate::plots::save_png;
use crate::predict::{place, unplace, Detector};
use crate::YoloError;

/// One row of the per-class table (Ultralytics' `Class Images Instances P R mAP50 mAP50-95`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassRow {
    pub name: String,
    /// Images holding at least one (non-crowd) box of the class.
    pub images: usize,
    /// Non-crowd boxes of the class.
    pub instances: usize,
    pub precision: f64,
    pub recall: f64,
    pub map50: f64,
    pub map50_95: f64,
}

/// The outcome of one validation run.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Detections in COCO results form (original image ids, category ids and pixels), rounded as written to
    /// predictions.json so that re-evaluating that file gives exactly these numbers.
    pub detections: Vec<DetectionBox>,
    /// pycocotools' evaluation of `detections`.
    pub evaluation: CocoEvaluation,
    /// Ultralytics' metrics of the unrounded detections (the table, results.csv and fitness).
    pub metrics: DetMetrics,
    /// The PR and F1/P/R-confidence curves of the same matches.
    pub curves: DetCurves,
    /// The `all` row first, then one per class with instances (Ultralytics' metrics).
    pub rows: Vec<ClassRow>,
    /// Mean box, cls and dfl loss over the batches, when a loss was given.
    pub losses: Option<[f64; 3]>,
}

impl Validation {
    /// mAP50 over the classes with labels, as Ultralytics computes it.
    pub fn map50(&self) -> f64 {
        self.metrics.map50()
    }

    /// mAP50-95 over the classes with labels, as Ultralytics computes it.
    pub fn map50_95(&self) -> f64 {
        self.metrics.map50_95()
    }

    /// Ultralytics' fitness: 0.1·mAP50 + 0.9·mAP50-95.
    pub fn fitness(&self) -> f64 {
        0.1 * self.map50().max(0.0) + 0.9 * self.map50_95().max(0.0)
    }

    /// What the pictures of this validation are drawn from.
    pub fn plots(&self) -> ValidationPlots {
        ValidationPlots {
            curves: self.curves.clone(),
            confusion: self.evaluation.confusion.clone(),
        }
    }

    /// The detections as a COCO results JSON array.
    pub fn predictions_json(&self) -> String {
        #[derive(Serialize)]
        struct Entry {
            image_id: i64,
            category_id: i64,
            bbox: [f64; 4],
            score: f64,
        }
        let entries: Vec<Entry> = self
            .detections
            .iter()
            .map(|d| Entry {
                image_id: d.image_id,
                category_id: d.category_id,
                bbox: d.bbox_xywh,
                score: d.score,
            })
            .collect();
        serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into())
    }
}

/// The pictures Ultralytics' validator leaves in its run folder, in data small enough for the trainer to keep its
/// best epoch's until training ends.
#[derive(Debug, Clone)]
pub struct ValidationPlots {
    pub curves: DetCurves,
    pub confusion: ConfusionMatrix,
}

impl ValidationPlots {
    /// Writes `PR_curve.png`, `F1_curve.png`, `P_curve.png`, `R_curve.png`, `confusion_matrix.png` and
    /// `confusion_matrix_normalized.png` into `dir`; `names` are the class names by index.
    pub fn write(&self, dir: &Path, names: &[String]) -> Result<(), YoloError> {
        for kind in CurveKind::ALL {
            let image = curve_figure(kind, &self.curves, names)?;
            save_png(&dir.join(kind.file_name()), &image)?;
        }
        for normalize in [Normalize::Counts, Normalize::Columns] {
            let image = confusion_figure(&self.confusion, names, normalize)?;
            save_png(&dir.join(normalize.file_name()), &image)?;
        }
        Ok(())
    }
}

/// Runs `detector` over every image of `index` (in the batches `loader` makes: letterboxed rectangles as
/// Ultralytics validates a PyTorch model, or one fixed canvas for an ONNX model) and
/// evaluates against `gt`, which must describe the same images: [`CocoGroundTruth::from_index`] for any
/// dataset, or the instances file itself for a COCO JSON dataset.
///
/// With `loss`, the same forward also gives the mean validation losses (on letterboxed targets, as Ultralytics'
/// validator computes them).
pub fn validate<B: Backend>(
    detector: &Detector<B>,
    index: &Index,
    gt: &CocoGroundTruth,
    loader: LoaderConfig,
    device: &B::Device,
    loss: Option<&DetectionLoss>,
) -> Result<Validation, YoloError> {
    let category_id = |class: usize| match &index.category_ids {
        Some(ids) => ids.get(class).map_or(class as i64, |&id| id as i64),
        None => class as i64,
    };
    let loader = Loader::new(index, loader)?;
    let records: std::collections::HashMap<u64, &crate::data::ImageRecord> =
        index.images.iter().map(|r| (r.id, r)).collect();
    let thresholds = iou_thresholds();
    // Ultralytics' stats: every prediction's true-positive row, confidence and class, and every label's class.
    let (mut tp, mut conf, mut pred_cls, mut target_cls) = (vec![], vec![], vec![], vec![]);
    let mut detections = Vec::new();
    let (mut loss_sums, mut batches) = ([0f64; 3], 0usize);
    for batch in loader.epoch(0) {
        let batch = batch?;
        let (found_per_image, head) = detector.detect_batch_with_head(&batch, device)?;
        if let Some(loss) = loss {
            let Some(head) = head else {
                return Err(YoloError::InvalidConfig(
                    "validation losses need the Burn model's head outputs, which an ONNX graph does not give"
                        .into(),
                ));
            };
            let parts = loss.forward(&head, &batch.loss_targets())?.parts;
            for (sum, part) in
                loss_sums
                    .iter_mut()
                    .zip([parts.box_loss, parts.cls_loss, parts.dfl_loss])
            {
                *sum += part.into_scalar().to_f64();
            }
            batches += 1;
        }
        for (image, (raw, placement)) in found_per_image
            .into_iter()
            .zip(&batch.placements)
            .enumerate()
        {
            let labels: Vec<_> = records
                .get(&batch.ids[image])
                .map(|r| r.boxes.iter().filter(|b| !b.crowd).collect())
                .unwrap_or_default();
            // Ultralytics' validator matches in model-input pixels, predictions unclipped; pycocotools (below)
            // gets them mapped back to the image and clipped.
            let label_xyxy: Vec<[f32; 4]> =
                labels.iter().map(|b| place(b.xyxy_px, placement)).collect();
            let label_cls: Vec<usize> = labels.iter().map(|b| b.class as usize).collect();
            let found_xyxy: Vec<[f32; 4]> = raw.iter().map(|d| d.xyxy).collect();
            let found_cls: Vec<usize> = raw.iter().map(|d| d.class).collect();
            let iou = box_iou(&label_xyxy, &found_xyxy);
            tp.extend(match_predictions(&found_cls, &label_cls, &iou, &thresholds));
            let found = unplace(raw, placement);
            conf.extend(found.iter().map(|d| d.conf));
            pred_cls.extend(found_cls);
            target_cls.extend(label_cls);
            let image_id = batch.ids[image] as i64;
            detections.extend(found.into_iter().map(|d| {
                let [x1, y1, x2, y2] = d.xyxy.map(f64::from);
                DetectionBox {
                    image_id,
                    category_id: category_id(d.class),
                    bbox_xywh: [x1, y1, x2 - x1, y2 - y1].map(|v| round(v, 3)),
                    score: round(f64::from(d.conf), 5),
                }
            }));
        }
    }
    let evaluation = coco::evaluate(gt, &detections);
    let metrics = ap_per_class(&tp, &conf, &pred_cls, &target_cls);
    let curves = det_curves(&tp, &conf, &pred_cls, &target_cls);
    let rows = class_rows(index, &metrics);
    let losses = loss.map(|_| loss_sums.map(|s| s / batches.max(1) as f64));
    Ok(Validation {
        detections,
        evaluation,
        metrics,
        curves,
        rows,
        losses,
    })
}

/// Ultralytics rounds results-file boxes to 3 decimals and scores to 5.
fn round(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

fn class_rows(index: &Index, metrics: &DetMetrics) -> Vec<ClassRow> {
    let nc = index.names.len();
    let mut images = vec![0usize; nc];
    let mut instances = vec![0usize; nc];
    for image in &index.images {
        let mut seen = vec![false; nc];
        for b in image.boxes.iter().filter(|b| !b.crowd) {
            if let Some(n) = instances.get_mut(b.class as usize) {
                *n += 1;
                seen[b.class as usize] = true;
            }
        }
        images
            .iter_mut()
            .zip(seen)
            .for_each(|(n, s)| *n += usize::from(s));
    }
    let best = &metrics.best;
    let mut rows = vec![ClassRow {
        name: "all".into(),
        images: index.images.len(),
        instances: instances.iter().sum(),
        precision: best.precision,
        recall: best.recall,
        map50: metrics.map50(),
        map50_95: metrics.map50_95(),
    }];
    for k in (0..nc).filter(|&k| instances[k] > 0) {
        let prf = best.per_class.iter().find(|c| c.category_id == k as i64);
        let (map50, map50_95) = metrics.class_ap(k).unwrap_or((0.0, 0.0));
        rows.push(ClassRow {
            name: index.names[k].clone(),
            images: images[k],
            instances: instances[k],
            precision: prf.map_or(0.0, |c| c.precision),
            recall: prf.map_or(0.0, |c| c.recall),
            map50,
            map50_95,
        });
    }
    rows
}

/// Ultralytics' validation table.
pub struct ClassTable<'a>(pub &'a [ClassRow]);

impl fmt::Display for ClassTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>22}{:>11}{:>11}{:>11}{:>11}{:>11}{:>11}",
            "Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)"
        )?;
        for row in self.0 {
            writeln!(
                f,
                "{:>22}{:>11}{:>11}{:>11.3}{:>11.3}{:>11.3}{:>11.3}",
                row.name,
                row.images,
                row.instances,
                row.precision,
                row.recall,
                row.map50,
                row.map50_95
            )?;
        }
        Ok(())
    }
}
