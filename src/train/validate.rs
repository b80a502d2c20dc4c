//! Validation during training, as Ultralytics' `DetectionValidator` does it on the EMA model: inference-mode
//! forward, NMS (conf 0.001, iou 0.7, max_det 300, multi-label), boxes mapped back to original pixels, then
//! COCO evaluation through `eval::coco` (mAP50 = stats[1], mAP50-95 = stats[0]) and Ultralytics' best-F1 P and
//! R; the val losses come from the same forward. Nothing is re-implemented here: this only feeds `eval`.

use std::fmt::Write as _;

use burn::prelude::ToElement;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::checkpoint::ValMetrics;
use super::source::BatchSource;
use crate::data::Index;
use crate::eval::coco::{self, CocoEvaluation, CocoGroundTruth, DetectionBox};
use crate::eval::nms::{batched_non_max_suppression, NmsConfig};
use crate::loss::DetectionLoss;
use crate::model::Yolo;
use crate::YoloError;

/// What one validation produced.
#[derive(Debug, Clone)]
pub struct Validation {
    pub metrics: ValMetrics,
    pub evaluation: CocoEvaluation,
}

/// Runs `model` over every batch of `source` (the val split of `index`, in index order) and evaluates.
pub fn validate<B: Backend>(
    model: &Yolo<B>,
    source: &dyn BatchSource,
    index: &Index,
    loss: &DetectionLoss,
    nms: &NmsConfig,
    device: &B::Device,
) -> Result<Validation, YoloError> {
    let nc = index.nc();
    let mut detections = Vec::new();
    let mut loss_sums = [0f64; 3];
    let batches = source.batches_per_epoch();
    for i in 0..batches {
        let batch = source.batch(0, i)?;
        let images =
            Tensor::<B, 4>::from_data(TensorData::new(batch.images.clone(), batch.shape), device);
        let out = model.forward(images);
        let parts = loss.forward(&out, &batch.loss_targets())?.parts;
        for (sum, part) in
            loss_sums
                .iter_mut()
                .zip([parts.box_loss, parts.cls_loss, parts.dfl_loss])
        {
            *sum += part.into_scalar().to_f64();
        }
        let decoded = model.head().decode(&out);
        let pred = decoded
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| YoloError::InvalidTargets(format!("{e:?}")))?;
        let kept = batched_non_max_suppression(&pred, batch.shape[0], nc, nms);
        for ((dets, &pos), placement) in kept
            .iter()
            .zip(&batch.index_positions)
            .zip(&batch.placements)
        {
            let record = &index.images[pos];
            let [w, h] = record.size.map(|v| v as f32);
            for d in dets {
                let unmap =
                    |v: f32, pad: f32, limit: f32| ((v - pad) / placement.gain).clamp(0.0, limit);
                let x1 = unmap(d.xyxy[0], placement.pad_px[0], w);
                let y1 = unmap(d.xyxy[1], placement.pad_px[1], h);
                let x2 = unmap(d.xyxy[2], placement.pad_px[0], w);
                let y2 = unmap(d.xyxy[3], placement.pad_px[1], h);
                detections.push(DetectionBox {
                    image_id: record.id as i64,
                    category_id: category_id(index, d.class),
                    bbox_xywh: [x1, y1, x2 - x1, y2 - y1].map(f64::from),
                    score: f64::from(d.conf),
                });
            }
        }
    }
    let gt = CocoGroundTruth::from_index(index);
    let evaluation = coco::evaluate(&gt, &detections);
    let n = batches.max(1) as f64;
    let metrics = ValMetrics {
        precision: evaluation.best_f1.precision,
        recall: evaluation.best_f1.recall,
        map50: evaluation.stats.0[1].max(0.0),
        map50_95: evaluation.stats.0[0].max(0.0),
        box_loss: loss_sums[0] / n,
        cls_loss: loss_sums[1] / n,
        dfl_loss: loss_sums[2] / n,
    };
    Ok(Validation {
        metrics,
        evaluation,
    })
}

fn category_id(index: &Index, class: usize) -> i64 {
    match &index.category_ids {
        Some(ids) => ids.get(class).map_or(class as i64, |&id| id as i64),
        None => class as i64,
    }
}

/// Ultralytics' validation table: an `all` row, then one row per class with labels.
pub fn class_table(validation: &Validation, index: &Index) -> String {
    let e = &validation.evaluation;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>22}{:>11}{:>11}{:>11}{:>11}{:>11}{:>11}",
        "Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)"
    );
    let counts = index.class_counts();
    let total: usize = counts.iter().sum();
    let m = &validation.metrics;
    let _ = writeln!(
        out,
        "{:>22}{:>11}{:>11}{:>11.3}{:>11.3}{:>11.3}{:>11.3}",
        "all",
        index.images.len(),
        total,
        m.precision,
        m.recall,
        m.map50,
        m.map50_95
    );
    for (k, name) in index.names.iter().enumerate() {
        if counts.get(k).copied().unwrap_or(0) == 0 {
            continue;
        }
        let images = index
            .images
            .iter()
            .filter(|i| i.boxes.iter().any(|b| b.class as usize == k && !b.crowd))
            .count();
        let id = category_id(index, k);
        let prf = e.best_f1.per_class.iter().find(|c| c.category_id == id);
        let kk = e.categories.iter().position(|c| c.id == id);
        let ap50 = kk.map_or(0.0, |kk| class_ap50(e, kk));
        let ap = kk
            .and_then(|kk| e.per_category_ap.get(kk).copied())
            .unwrap_or(0.0)
            .max(0.0);
        let _ = writeln!(
            out,
            "{:>22}{:>11}{:>11}{:>11.3}{:>11.3}{:>11.3}{:>11.3}",
            name,
            images,
            counts[k],
            prf.map_or(0.0, |c| c.precision),
            prf.map_or(0.0, |c| c.recall),
            ap50,
            ap
        );
    }
    out
}

/// AP at IoU 0.5 of category `k` (area all, 100 detections), as pycocotools' mean over recall thresholds.
fn class_ap50(e: &CocoEvaluation, k: usize) -> f64 {
    let max_det_index = 2; // maxDets [1, 10, 100]
    let values: Vec<f64> = (0..101)
        .map(|r| e.precision_at(0, r, k, 0, max_det_index))
        .filter(|&p| p > -1.0)
        .collect();
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}
