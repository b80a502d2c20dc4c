//! `yolo-burn bench loader`: training-loader throughput (images/s) with mosaic and the default augmentations,
//! compared with Ultralytics' dataloader by `scripts/bench_loader.py` (docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::config::{AugmentSection, CacheMode};
use crate::data::augment::TrainAugment;
use crate::data::loader::{Loader, LoaderConfig, LoaderMode, TrainSchedule};
use crate::data::{BoxLabel, ImageRecord, Index};
use crate::YoloError;

/// What to time.
#[derive(Debug, Clone)]
pub struct LoaderBench {
    /// Folder of images (`images/train2017`).
    pub images: PathBuf,
    /// Folder of YOLO txt labels with the same stems (`labels/train2017`).
    pub labels: PathBuf,
    pub imgsz: usize,
    pub batch: usize,
    pub workers: usize,
    /// Untimed epochs first.
    pub warmup_epochs: usize,
    /// Timed epochs.
    pub epochs: usize,
}

/// Images per second over the timed epochs.
#[derive(Debug, Clone, Serialize)]
pub struct LoaderBenchResult {
    pub images: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    pub workers: usize,
    pub imgsz: usize,
    pub batch: usize,
}

impl LoaderBench {
    pub fn run(&self) -> Result<LoaderBenchResult, YoloError> {
        let index = minimal_yolo_index(&self.images, &self.labels)?;
        let config = LoaderConfig {
            imgsz: self.imgsz,
            batch: self.batch,
            workers: self.workers,
            seed: 0,
            mode: LoaderMode::Train(TrainSchedule {
                augment: TrainAugment::new(&AugmentSection::default(), self.imgsz)?,
                close_mosaic: 0,
                epochs: self.warmup_epochs + self.epochs,
            }),
            cache: CacheMode::None,
            prefetch: 2,
        };
        let loader = Loader::new(&index, config)?;
        for epoch in 0..self.warmup_epochs {
            for batch in loader.epoch(epoch) {
                batch?;
            }
        }
        let start = Instant::now();
        let mut images = 0;
        for epoch in self.warmup_epochs..self.warmup_epochs + self.epochs {
            for batch in loader.epoch(epoch) {
                images += batch?.len();
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        Ok(LoaderBenchResult {
            images,
            seconds,
            images_per_s: images as f64 / seconds,
            workers: self.workers,
            imgsz: self.imgsz,
            batch: self.batch,
        })
    }
}

/// TEMPORARY, to be replaced by `data::yolo_txt` when the readers are merged: the images of a folder and their
/// YOLO txt labels (`class cx cy w h`, normalised), with no validation beyond skipping unparsable lines. Image
/// sizes come from the file headers (no EXIF orientation: coco128 has none).
fn minimal_yolo_index(images: &Path, labels: &Path) -> Result<Index, YoloError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| YoloError::Io { path, source }
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(images)
        .map_err(io(images))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    paths.sort();
    let mut records = Vec::with_capacity(paths.len());
    let mut nc = 0;
    for (id, path) in paths.into_iter().enumerate() {
        let (w, h) = image::image_dimensions(&path).map_err(|e| YoloError::Dataset {
            path: path.clone(),
            line: None,
            detail: e.to_string(),
        })?;
        let stem = path.file_stem().unwrap_or_default();
        let label = labels.join(stem).with_extension("txt");
        let text = std::fs::read_to_string(&label).unwrap_or_default();
        let boxes = text
            .lines()
            .filter_map(|line| {
                let v: Vec<f32> = line
                    .split_whitespace()
                    .filter_map(|t| t.parse().ok())
                    .collect();
                let [c, cx, cy, bw, bh] = v[..] else {
                    return None;
                };
                let (fw, fh) = (w as f32, h as f32);
                let xyxy_px = [
                    (cx - bw / 2.0) * fw,
                    (cy - bh / 2.0) * fh,
                    (cx + bw / 2.0) * fw,
                    (cy + bh / 2.0) * fh,
                ];
                Some(BoxLabel {
                    class: c as u32,
                    xyxy_px,
                    crowd: false,
                    area: bw * fw * bh * fh,
                })
            })
            .collect::<Vec<_>>();
        nc = boxes
            .iter()
            .map(|b| b.class as usize + 1)
            .fold(nc, usize::max);
        records.push(ImageRecord {
            path,
            id: id as u64,
            size: [w, h],
            boxes,
        });
    }
    Ok(Index {
        names: (0..nc).map(|c| c.to_string()).collect(),
        images: records,
        ..Index::default()
    })
}
