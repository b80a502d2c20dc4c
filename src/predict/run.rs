//! `yolo-burn predict`: every source image through the detector, with an annotated copy, a JSON file of its
//! detections, and optionally Ultralytics' `save_txt` label file, in a run folder.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::Detector;
use crate::data::image::load_rgb;
use crate::eval::nms::Detection;
use crate::plots::annotate::annotate_detections;
use crate::YoloError;

/// What a predict run needs besides the detector.
pub struct PredictOptions<'a> {
    pub names: &'a [String],
    /// The run folder (created by the caller).
    pub out_dir: &'a Path,
    /// Also write `labels/<stem>.txt` lines `class cx cy w h conf` (normalised), as Ultralytics' `save_txt`
    /// with `save_conf`.
    pub save_txt: bool,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a predict run did.
#[derive(Debug, Default)]
pub struct PredictSummary {
    pub images: usize,
    pub detections: usize,
    /// Sources that could not be read, with the reason; the others are still processed.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// One detection as written to `<stem>.json` (Ultralytics' `Results.to_json` fields).
#[derive(Serialize)]
struct JsonDetection<'a> {
    name: &'a str,
    class: usize,
    confidence: f32,
    #[serde(rename = "box")]
    xyxy: JsonBox,
}

#[derive(Serialize)]
struct JsonBox {
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
}

/// Runs `sources` one by one (they may differ in size) and writes the outputs.
pub fn predict_files<B: Backend>(
    detector: &Detector<B>,
    sources: &[PathBuf],
    options: &PredictOptions,
    device: &B::Device,
) -> Result<PredictSummary, YoloError> {
    let bar = if options.progress {
        ProgressBar::new(sources.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} images {elapsed_precise} (ETA {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if options.save_txt {
        let labels = options.out_dir.join("labels");
        std::fs::create_dir_all(&labels).map_err(|source| YoloError::Io {
            path: labels,
            source,
        })?;
    }
    let mut summary = PredictSummary::default();
    for path in sources {
        bar.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let image = match load_rgb(path) {
            Ok(image) => image,
            Err(e) => {
                summary.unreadable.push((path.clone(), e.to_string()));
                bar.inc(1);
                continue;
            }
        };
        let size = [image.width(), image.height()];
        let mut annotated = image.clone();
        let detections = detector
            .detect_images(vec![image], device)?
            .pop()
            .unwrap_or_default();
        annotate_detections(&mut annotated, &detections, options.names)?;
        write_outputs(path, &annotated, &detections, size, options)?;
        summary.images += 1;
        summary.detections += detections.len();
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summary)
}

fn write_outputs(
    source: &Path,
    annotated: &image::RgbImage,
    detections: &[Detection],
    [w, h]: [u32; 2],
    options: &PredictOptions,
) -> Result<(), YoloError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| YoloError::Io { path, source }
    };
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let image_name = source
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("{stem}.jpg")));
    let image_path = options.out_dir.join(image_name);
    annotated
        .save(&image_path)
        .or_else(|_| annotated.save(image_path.with_extension("png")))
        .map_err(|e| YoloError::Dataset {
            path: image_path.clone(),
            line: None,
            detail: e.to_string(),
        })?;
    let entries: Vec<JsonDetection> = detections
        .iter()
        .map(|d| JsonDetection {
            name: options.names.get(d.class).map_or("", String::as_str),
            class: d.class,
            confidence: d.conf,
            xyxy: JsonBox {
                x1: d.xyxy[0],
                y1: d.xyxy[1],
                x2: d.xyxy[2],
                y2: d.xyxy[3],
            },
        })
        .collect();
    let json_path = options.out_dir.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".into());
    std::fs::write(&json_path, json).map_err(io(&json_path))?;
    if options.save_txt {
        let (fw, fh) = (w as f32, h as f32);
        let lines: String = detections
            .iter()
            .map(|d| {
                let [x1, y1, x2, y2] = d.xyxy;
                let (cx, cy, bw, bh) = (
                    (x1 + x2) / 2.0 / fw,
                    (y1 + y2) / 2.0 / fh,
                    (x2 - x1) / fw,
                    (y2 - y1) / fh,
                );
                format!(
                    "{} {cx:.6} {cy:.6} {bw:.6} {bh:.6} {:.6}\n",
                    d.class, d.conf
                )
            })
            .collect();
        let txt = options.out_dir.join("labels").join(format!("{stem}.txt"));
        std::fs::write(&txt, lines).map_err(io(&txt))?;
    }
    Ok(())
}
