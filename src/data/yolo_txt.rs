//! Ultralytics' YOLO txt layout: `…/images/<split>/x.jpg` ↔ `…/labels/<split>/x.txt`, one `class cx cy w h`
//! line per box (normalised), or a polygon `class x1 y1 x2 y2 …` whose bounding box is taken.
//!
//! Every image is decoded once to verify it (a truncated JPEG has a valid header) and to get its upright size;
//! every defect is counted and named by file and line, as Ultralytics' `verify_image_label` does, but loudly.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::cache::{self, Fingerprint};
use super::descriptor::{DatasetSpec, SplitName};
use super::image::verified_size;
use super::{BoxLabel, ImageRecord, Index, ProblemKind, Problems};
use crate::YoloError;

/// Image extensions Ultralytics reads (`IMG_FORMATS`), the ones our decoder handles.
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "mpo"];

/// Reads one split of a YOLO txt dataset.
pub fn read_split(spec: &DatasetSpec, split: SplitName) -> Result<Index, YoloError> {
    let sources = spec.split(split);
    if sources.is_empty() {
        return Err(YoloError::Dataset {
            path: spec.file.clone(),
            line: None,
            detail: format!("the dataset has no `{}` split", split.key()),
        });
    }
    let mut problems = Problems::default();
    let mut files = Vec::new();
    for source in sources {
        files.extend(list_images(source, &mut problems)?);
    }
    let mut fingerprint = Fingerprint::default();
    fingerprint.files.push((spec.file.clone(), None));
    for image in &files {
        fingerprint.add(image);
        fingerprint.add(&label_path(image));
    }
    let cache_path = cache_file(&sources[0], split);
    if let Some(mut index) = cache::load(&cache_path, &fingerprint) {
        if index.names == spec.names {
            index.problems.items.splice(0..0, problems.items);
            return Ok(index);
        }
    }
    let nc = spec.names.len();
    let results: Vec<(Option<ImageRecord>, Problems)> = files
        .par_iter()
        .enumerate()
        .map(|(id, path)| read_image(path, id as u64, nc))
        .collect();
    let mut images = Vec::with_capacity(results.len());
    for (record, mut found) in results {
        images.extend(record);
        problems.items.append(&mut found.items);
    }
    let index = Index {
        names: spec.names.clone(),
        category_ids: None,
        images,
        problems,
    };
    cache::store(&cache_path, &fingerprint, &index);
    Ok(index)
}

/// `labels/<split folder>.yolo-burn-cache` beside the labels, as Ultralytics puts its `labels/<split>.cache`.
fn cache_file(source: &Path, split: SplitName) -> PathBuf {
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(split.key())
        .to_string();
    let labels = label_path(&source.join("x"));
    labels
        .parent()
        .unwrap_or(Path::new("."))
        .with_file_name(format!("{stem}.yolo-burn-cache"))
}

/// The image files of one `train`/`val` entry: a folder (searched recursively), a list file of image paths
/// (relative ones resolve against the list's folder, as Ultralytics does), or a single image.
fn list_images(source: &Path, problems: &mut Problems) -> Result<Vec<PathBuf>, YoloError> {
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    };
    let mut files = Vec::new();
    if source.is_dir() {
        let mut stack = vec![source.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| YoloError::Io {
                path: dir.clone(),
                source: e,
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if is_image(&path) {
                    files.push(path);
                }
            }
        }
    } else if source.extension().is_some_and(|e| e == "txt") {
        let text = std::fs::read_to_string(source).map_err(|e| YoloError::Io {
            path: source.into(),
            source: e,
        })?;
        let base = source.parent().unwrap_or(Path::new("."));
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let path = base.join(line.strip_prefix("./").unwrap_or(line));
            if is_image(&path) {
                files.push(path);
            } else {
                problems.push(
                    ProblemKind::Malformed,
                    source,
                    Some(i + 1),
                    format!("{line} is not an image file"),
                );
            }
        }
    } else if source.is_file() && is_image(source) {
        files.push(source.to_path_buf());
    } else {
        return Err(YoloError::Dataset {
            path: source.into(),
            line: None,
            detail: "no such image folder, list file or image".into(),
        });
    }
    files.sort();
    Ok(files)
}

/// Ultralytics' `img2label_paths`: the last `/images/` becomes `/labels/`, the extension `.txt`.
pub fn label_path(image: &Path) -> PathBuf {
    let text = image.to_string_lossy();
    let sep = std::path::MAIN_SEPARATOR;
    let (images, labels) = (format!("{sep}images{sep}"), format!("{sep}labels{sep}"));
    let swapped = match text.rfind(&images) {
        Some(at) => format!("{}{labels}{}", &text[..at], &text[at + images.len()..]),
        None => text.into_owned(),
    };
    PathBuf::from(swapped).with_extension("txt")
}

fn read_image(path: &Path, id: u64, nc: usize) -> (Option<ImageRecord>, Problems) {
    let mut problems = Problems::default();
    let size = match verified_size(path) {
        Ok(size) => size,
        Err(e) => {
            let kind = if e.is_missing() {
                ProblemKind::MissingImage
            } else {
                ProblemKind::UnreadableImage
            };
            problems.push(kind, path, None, e.to_string());
            return (None, problems);
        }
    };
    let labels = label_path(path);
    // No label file means a background image, as in Ultralytics.
    let boxes = match std::fs::read_to_string(&labels) {
        Ok(text) => parse_labels(&text, &labels, size, nc, &mut problems),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            problems.push(ProblemKind::Malformed, &labels, None, e.to_string());
            Vec::new()
        }
    };
    (
        Some(ImageRecord {
            path: path.into(),
            id,
            size,
            boxes,
        }),
        problems,
    )
}

/// Parses a label file's lines into pixel boxes, skipping and counting each bad line.
pub fn parse_labels(
    text: &str,
    file: &Path,
    [w, h]: [u32; 2],
    nc: usize,
    problems: &mut Problems,
) -> Vec<BoxLabel> {
    let mut boxes: Vec<BoxLabel> = Vec::new();
    let mut seen: Vec<[u32; 5]> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = Some(i + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let polygon = fields.len() >= 7 && fields.len() % 2 == 1;
        if fields.len() != 5 && !polygon {
            let detail = format!(
                "{} fields, expected 5 (class cx cy w h) or a polygon",
                fields.len()
            );
            problems.push(ProblemKind::WrongFieldCount, file, lineno, detail);
            continue;
        }
        let values: Result<Vec<f64>, _> = fields.iter().map(|f| f.parse::<f64>()).collect();
        let values = match values {
            Ok(v) if v.iter().all(|x| x.is_finite()) => v,
            _ => {
                problems.push(
                    ProblemKind::NotANumber,
                    file,
                    lineno,
                    format!("`{}`", line.trim()),
                );
                continue;
            }
        };
        let class = values[0];
        if class < 0.0 || class.fract() != 0.0 || class as usize >= nc {
            problems.push(
                ProblemKind::ClassOutOfRange,
                file,
                lineno,
                format!("class {} not in 0..{nc}", fields[0]),
            );
            continue;
        }
        if values[1..].iter().any(|v| !(0.0..=1.0).contains(v)) {
            let detail = format!(
                "`{}`: normalised coordinates must lie in [0, 1]",
                line.trim()
            );
            problems.push(ProblemKind::OutOfRange, file, lineno, detail);
            continue;
        }
        let [cx, cy, bw, bh] = if polygon {
            polygon_box(&values[1..])
        } else {
            [values[1], values[2], values[3], values[4]]
        };
        if bw <= 0.0 || bh <= 0.0 {
            problems.push(
                ProblemKind::ZeroSize,
                file,
                lineno,
                format!("width {bw}, height {bh}"),
            );
            continue;
        }
        let key = [class as f32, cx as f32, cy as f32, bw as f32, bh as f32].map(f32::to_bits);
        if seen.contains(&key) {
            problems.push(
                ProblemKind::DuplicateBox,
                file,
                lineno,
                format!("`{}` repeats an earlier line", line.trim()),
            );
            continue;
        }
        seen.push(key);
        let (w, h) = (f64::from(w), f64::from(h));
        let xyxy = [
            (cx - bw / 2.0) * w,
            (cy - bh / 2.0) * h,
            (cx + bw / 2.0) * w,
            (cy + bh / 2.0) * h,
        ];
        let [x1, y1, x2, y2] = [
            xyxy[0].clamp(0.0, w),
            xyxy[1].clamp(0.0, h),
            xyxy[2].clamp(0.0, w),
            xyxy[3].clamp(0.0, h),
        ];
        boxes.push(BoxLabel {
            class: class as u32,
            xyxy_px: [x1 as f32, y1 as f32, x2 as f32, y2 as f32],
            crowd: false,
            area: ((x2 - x1) * (y2 - y1)) as f32,
        });
    }
    boxes
}

/// Ultralytics' `segments2boxes`: the polygon's bounding box as normalised cx, cy, w, h.
fn polygon_box(xy: &[f64]) -> [f64; 4] {
    let (mut x1, mut y1, mut x2, mut y2) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in xy.chunks_exact(2) {
        (x1, x2) = (x1.min(p[0]), x2.max(p[0]));
        (y1, y2) = (y1.min(p[1]), y2.max(p[1]));
    }
    [(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<BoxLabel>, Problems) {
        let mut problems = Problems::default();
        let boxes = parse_labels(text, Path::new("l.txt"), [100, 50], 3, &mut problems);
        (boxes, problems)
    }

    #[test]
    fn label_path_swaps_the_last_images_folder() {
        let p = label_path(Path::new("/d/images/x/images/train/a.jpg"));
        assert_eq!(p, Path::new("/d/images/x/labels/train/a.txt"));
    }

    #[test]
    fn good_line_becomes_pixel_xyxy() {
        let (boxes, problems) = parse("1 0.5 0.5 0.2 0.4\n");
        assert!(problems.is_empty());
        assert_eq!(boxes[0].class, 1);
        let xyxy = boxes[0].xyxy_px;
        assert!(
            (xyxy[0] - 40.0).abs() < 1e-4 && (xyxy[3] - 35.0).abs() < 1e-4,
            "{xyxy:?}"
        );
    }

    #[test]
    fn each_defect_is_counted_with_its_line() {
        let text = "0 0.5 0.5 0.1\n0 nan 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n0 1.5 0.5 0.1 0.1\n0 0.5 0.5 0 0.1\n\
                    0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\nx 0.5 0.5 0.1 0.1\n";
        let (boxes, problems) = parse(text);
        assert_eq!(boxes.len(), 1);
        let kinds: Vec<(ProblemKind, Option<usize>)> =
            problems.items.iter().map(|p| (p.kind, p.line)).collect();
        assert_eq!(
            kinds,
            [
                (ProblemKind::WrongFieldCount, Some(1)),
                (ProblemKind::NotANumber, Some(2)),
                (ProblemKind::ClassOutOfRange, Some(3)),
                (ProblemKind::OutOfRange, Some(4)),
                (ProblemKind::ZeroSize, Some(5)),
                (ProblemKind::DuplicateBox, Some(7)),
                (ProblemKind::NotANumber, Some(8)),
            ]
        );
    }

    #[test]
    fn polygon_line_gives_its_bounding_box() {
        let (boxes, problems) = parse("2 0.1 0.2 0.3 0.2 0.3 0.6\n");
        assert!(problems.is_empty());
        let xyxy = boxes[0].xyxy_px;
        assert!(
            (xyxy[0] - 10.0).abs() < 1e-4
                && (xyxy[2] - 30.0).abs() < 1e-4
                && (xyxy[3] - 30.0).abs() < 1e-4
        );
    }
}
