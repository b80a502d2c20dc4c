//! COCO instances JSON → [`Index`]: category ids become contiguous classes (ascending id, original ids kept for
//! results files), `bbox` [x, y, w, h] becomes clipped pixel xyxy, crowd boxes are kept with `crowd: true`
//! (the loader leaves them out of training targets; evaluation matches and ignores them), and every record that
//! cannot be used is counted in `Index::problems` with its array index as `line`.
//!
//! Image sizes come from the JSON's `width`/`height`; nothing is decoded here. [`super::verify::verify_images`]
//! is the separate, parallel pass that decodes each image and drops the missing or unreadable ones.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::coco_stream::{read_instances, RawAnnotation, RawInstances};
use super::index::{BoxLabel, ImageRecord, Index};
use super::problems::{ProblemKind, Problems};
use crate::YoloError;

/// How to read a COCO instances file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CocoOptions {
    /// Folder that `images[].file_name` is relative to; `None` picks one with [`default_images_dir`].
    pub images_dir: Option<PathBuf>,
}

/// Reads a COCO instances JSON (streaming, so files of any size fit in memory).
pub fn read_coco(json: &Path, options: &CocoOptions) -> Result<Index, YoloError> {
    let raw = read_instances(json)?;
    Ok(coco_index(raw, json, options))
}

/// Builds the index from already-read records (the dispatcher reads once, then decides the format).
pub(crate) fn coco_index(raw: RawInstances, json: &Path, options: &CocoOptions) -> Index {
    let images_dir = options
        .images_dir
        .clone()
        .unwrap_or_else(|| default_images_dir(json));
    build_index(raw, json, |file_name| images_dir.join(file_name))
}

/// Where the images of `json` probably are, for `.../instances_X.json` (X is the whole stem when the name has
/// no `instances_` prefix), the first folder that exists of:
/// 1. `<json dir>/images/X`
/// 2. `<json dir>/../images/X`: Ultralytics' `coco/annotations` + `coco/images/train2017` layout;
/// 3. `<json dir>/../X`: the official `coco/annotations` + `coco/train2017` layout;
/// 4. else the JSON's own folder.
pub fn default_images_dir(json: &Path) -> PathBuf {
    let dir = json
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let split = stem.strip_prefix("instances_").unwrap_or(stem);
    if split.is_empty() {
        return dir;
    }
    [
        dir.join("images").join(split),
        dir.join("..").join("images").join(split),
        dir.join("..").join(split),
    ]
    .into_iter()
    .find(|candidate| candidate.is_dir())
    .unwrap_or(dir)
}

/// Resolves the raw records of `json` into an [`Index`]; `image_path` turns a `file_name` into a path.
/// Shared with the Objects365 reader, which only differs in paths and names.
pub(crate) fn build_index(
    raw: RawInstances,
    json: &Path,
    image_path: impl Fn(&str) -> PathBuf,
) -> Index {
    let RawInstances {
        images: raw_images,
        mut categories,
        annotations,
        mut problems,
    } = raw;

    // Classes: ascending category id, as Ultralytics' and pycocotools' converters number them.
    categories.sort_by_key(|c| c.id);
    let mut names = Vec::with_capacity(categories.len());
    let mut category_ids = Vec::with_capacity(categories.len());
    for category in categories {
        if category_ids.last() == Some(&category.id) {
            problems.push(
                ProblemKind::Malformed,
                json,
                None,
                format!("category id {} appears twice", category.id),
            );
            continue;
        }
        category_ids.push(category.id);
        names.push(category.name);
    }
    let class_of: HashMap<u64, u32> = category_ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i as u32))
        .collect();

    // Images; `None` marks an image dropped for its size, whose boxes go with it without further reports.
    let mut slot_of: HashMap<u64, Option<u32>> = HashMap::with_capacity(raw_images.len());
    let mut images = Vec::with_capacity(raw_images.len());
    for (i, image) in raw_images.into_iter().enumerate() {
        if slot_of.contains_key(&image.id) {
            let detail = format!(
                "images[{i}]: image id {} appears twice ({})",
                image.id, image.file_name
            );
            problems.push(ProblemKind::Malformed, json, Some(i), detail);
            continue;
        }
        if image.width == 0 || image.height == 0 {
            let detail = format!(
                "images[{i}]: {} is {}x{} pixels; image dropped",
                image.file_name, image.width, image.height
            );
            problems.push(ProblemKind::ZeroSize, json, Some(i), detail);
            slot_of.insert(image.id, None);
            continue;
        }
        slot_of.insert(image.id, Some(images.len() as u32));
        images.push(ImageRecord {
            path: image_path(&image.file_name),
            id: image.id,
            size: [image.width, image.height],
            boxes: Vec::new(),
        });
    }

    // Reserve each image's boxes exactly: with tens of millions of boxes, Vec doubling would waste up to half.
    let mut counts = vec![0u32; images.len()];
    for a in &annotations {
        if let Some(Some(slot)) = slot_of.get(&a.image_id) {
            counts[*slot as usize] += 1;
        }
    }
    for (image, count) in images.iter_mut().zip(counts) {
        image.boxes.reserve_exact(count as usize);
    }

    for (k, a) in annotations.iter().enumerate() {
        let slot = match slot_of.get(&a.image_id) {
            Some(Some(slot)) => *slot as usize,
            Some(None) => continue,
            None => {
                let detail = format!(
                    "annotations[{k}]: image_id {} is not in images; box skipped",
                    a.image_id
                );
                problems.push(ProblemKind::DanglingImageId, json, Some(k), detail);
                continue;
            }
        };
        let Some(&class) = class_of.get(&a.category_id) else {
            let detail = format!(
                "annotations[{k}]: category_id {} is not in categories; box skipped",
                a.category_id
            );
            problems.push(ProblemKind::DanglingCategoryId, json, Some(k), detail);
            continue;
        };
        let image = &mut images[slot];
        match to_label(a, class, image.size) {
            Ok(label) => image.boxes.push(label),
            Err(kind) => {
                let detail = format!(
                    "annotations[{k}]: bbox {:?} in {} ({}x{}){}; box skipped",
                    a.bbox_xywh,
                    image.path.display(),
                    image.size[0],
                    image.size[1],
                    if kind == ProblemKind::ZeroSize {
                        " has no area inside the image"
                    } else {
                        " is not finite"
                    },
                );
                problems.push(kind, json, Some(k), detail);
            }
        }
    }
    drop(annotations);

    for image in &mut images {
        drop_duplicates(image, json, &mut problems);
    }
    Index {
        names,
        category_ids: Some(category_ids),
        images,
        problems,
    }
}

/// `bbox` [x, y, w, h] → xyxy clipped to the image; `Err` says why the box is dropped.
fn to_label(
    a: &RawAnnotation,
    class: u32,
    [width, height]: [u32; 2],
) -> Result<BoxLabel, ProblemKind> {
    let [x, y, w, h] = a.bbox_xywh;
    if !(x.is_finite() && y.is_finite() && w.is_finite() && h.is_finite()) {
        return Err(ProblemKind::NotANumber);
    }
    let (width, height) = (width as f32, height as f32);
    // `+ 0.0` turns -0.0 into 0.0, so equal boxes have equal bits for the duplicate check.
    let x1 = x.clamp(0.0, width) + 0.0;
    let y1 = y.clamp(0.0, height) + 0.0;
    let x2 = (x + w).clamp(0.0, width) + 0.0;
    let y2 = (y + h).clamp(0.0, height) + 0.0;
    let box_area = (x2 - x1) * (y2 - y1);
    if x2 <= x1 || y2 <= y1 {
        return Err(ProblemKind::ZeroSize);
    }
    let area = if a.area.is_finite() { a.area } else { box_area };
    Ok(BoxLabel {
        class,
        xyxy_px: [x1, y1, x2, y2],
        crowd: a.crowd,
        area,
    })
}

/// Drops the second and later copies of a box (same class, same xyxy) in one image, counting each.
fn drop_duplicates(image: &mut ImageRecord, json: &Path, problems: &mut Problems) {
    if image.boxes.len() < 2 {
        return;
    }
    let mut seen = HashSet::with_capacity(image.boxes.len());
    let (path, id) = (&image.path, image.id);
    image.boxes.retain(|b| {
        let fresh = seen.insert((b.class, b.xyxy_px.map(f32::to_bits)));
        if !fresh {
            let detail = format!(
                "image id {id} ({}): class {} box {:?} appears twice",
                path.display(),
                b.class,
                b.xyxy_px
            );
            problems.push(ProblemKind::DuplicateBox, json, None, detail);
        }
        fresh
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotation(bbox_xywh: [f32; 4]) -> RawAnnotation {
        RawAnnotation {
            image_id: 1,
            category_id: 1,
            bbox_xywh,
            area: f32::NAN,
            crowd: false,
        }
    }

    #[test]
    fn to_label_box_past_edge_is_clipped() {
        let label = to_label(&annotation([-5.0, 10.0, 20.0, 100.0]), 0, [40, 50]).expect("kept");
        assert_eq!(label.xyxy_px, [0.0, 10.0, 15.0, 50.0]);
        assert_eq!(label.area, 15.0 * 40.0);
    }

    #[test]
    fn to_label_box_outside_image_is_zero_size() {
        assert_eq!(
            to_label(&annotation([50.0, 10.0, 20.0, 10.0]), 0, [40, 50]),
            Err(ProblemKind::ZeroSize)
        );
        assert_eq!(
            to_label(&annotation([5.0, 10.0, 0.0, 10.0]), 0, [40, 50]),
            Err(ProblemKind::ZeroSize)
        );
    }

    #[test]
    fn to_label_nan_is_not_a_number() {
        assert_eq!(
            to_label(&annotation([f32::NAN, 1.0, 2.0, 3.0]), 0, [40, 50]),
            Err(ProblemKind::NotANumber)
        );
    }

    #[test]
    fn default_images_dir_ultralytics_layout_found() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("annotations")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("images/val2017")).expect("mkdir");
        let json = root.path().join("annotations/instances_val2017.json");
        assert_eq!(
            default_images_dir(&json),
            root.path().join("annotations/../images/val2017")
        );
        let other = root.path().join("annotations/instances_train2017.json");
        assert_eq!(default_images_dir(&other), root.path().join("annotations"));
    }
}
