//! COCO files in: an instances (ground truth) file and a results (detections) file, read with serde into the
//! plain records the evaluation works on. Fields the bbox evaluation does not use (segmentation, image sizes,
//! licences) are skipped.
//!
//! Numbers are parsed by serde_json's default float parser, which can differ from Python's correctly rounded one
//! by one unit in the last place in rare cases (its `float_roundtrip` feature would rebuild Burn); that is ~1e-16
//! relative, far inside the 1e-6 parity tolerance.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::CocoError;

/// One ground-truth box, as the instances file gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct GtBox {
    /// The annotation id; pycocotools records matches by id, so an id of 0 counts as "unmatched" there too.
    pub id: i64,
    /// The image it belongs to.
    pub image_id: i64,
    /// Its category id (the file's id, not a 0-based index).
    pub category_id: i64,
    /// Box in pixels, `[x, y, w, h]` with x, y the top-left corner.
    pub bbox_xywh: [f64; 4],
    /// The annotation's `area` (the segment's area in COCO), which decides small/medium/large; `w * h` when the
    /// file has none.
    pub area: f64,
    /// `iscrowd = 1`: matched by any number of detections, and neither a hit nor a miss.
    pub iscrowd: bool,
}

/// One category of the ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// The file's id.
    pub id: i64,
    /// The file's name (empty when absent).
    pub name: String,
}

/// A COCO instances file, reduced to what bbox evaluation reads.
#[derive(Debug, Clone, Default)]
pub struct CocoGroundTruth {
    /// Image ids, sorted and unique (pycocotools' `sorted(getImgIds())`).
    pub image_ids: Vec<i64>,
    /// Categories sorted by id, unique.
    pub categories: Vec<Category>,
    /// Every annotation, in file order.
    pub annotations: Vec<GtBox>,
}

/// One detection of a COCO results file.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionBox {
    /// The image it was found in; must be one of the ground truth's.
    pub image_id: i64,
    /// Its category id (the ground truth's ids).
    pub category_id: i64,
    /// Box in pixels, `[x, y, w, h]`.
    pub bbox_xywh: [f64; 4],
    /// Confidence; higher ranks first.
    pub score: f64,
}

impl DetectionBox {
    /// The area pycocotools' loadRes gives a bbox result: `w * h`.
    pub fn area(&self) -> f64 {
        self.bbox_xywh[2] * self.bbox_xywh[3]
    }
}

#[derive(Deserialize)]
struct InstancesFile {
    images: Vec<ImageEntry>,
    #[serde(default)]
    annotations: Vec<AnnotationEntry>,
    categories: Vec<CategoryEntry>,
}

#[derive(Deserialize)]
struct ImageEntry {
    id: i64,
}

#[derive(Deserialize)]
struct CategoryEntry {
    id: i64,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct AnnotationEntry {
    id: i64,
    image_id: i64,
    category_id: i64,
    bbox: [f64; 4],
    area: Option<f64>,
    #[serde(default)]
    iscrowd: i64,
}

#[derive(Deserialize)]
struct ResultEntry {
    image_id: i64,
    category_id: i64,
    bbox: [f64; 4],
    score: f64,
}

fn read(path: &Path) -> Result<Vec<u8>, CocoError> {
    std::fs::read(path).map_err(|error| CocoError::Read {
        path: path.to_path_buf(),
        error,
    })
}

impl CocoGroundTruth {
    /// Read an instances JSON file.
    pub fn from_path(path: &Path) -> Result<Self, CocoError> {
        Self::from_slice(&read(path)?, path)
    }

    /// Parse instances JSON; `name` is used in error messages.
    pub fn from_slice(bytes: &[u8], name: &Path) -> Result<Self, CocoError> {
        let file: InstancesFile =
            serde_json::from_slice(bytes).map_err(|error| CocoError::Json {
                path: name.to_path_buf(),
                kind: "instances",
                error,
            })?;
        let mut image_ids: Vec<i64> = file.images.iter().map(|i| i.id).collect();
        image_ids.sort_unstable();
        image_ids.dedup();
        let mut categories: Vec<Category> = file
            .categories
            .into_iter()
            .map(|c| Category {
                id: c.id,
                name: c.name,
            })
            .collect();
        categories.sort_by_key(|c| c.id);
        categories.dedup_by_key(|c| c.id);
        let annotations = file
            .annotations
            .into_iter()
            .map(|a| GtBox {
                id: a.id,
                image_id: a.image_id,
                category_id: a.category_id,
                bbox_xywh: a.bbox,
                area: a.area.unwrap_or(a.bbox[2] * a.bbox[3]),
                iscrowd: a.iscrowd != 0,
            })
            .collect();
        Ok(Self {
            image_ids,
            categories,
            annotations,
        })
    }
}

impl CocoGroundTruth {
    /// The ground truth of a dataset split as COCO sees it: the index's image ids, its categories (original ids
    /// when the dataset came from COCO JSON, else the class index), every box with its crowd flag and area.
    /// Annotation ids start at 1, since pycocotools treats id 0 as "unmatched".
    pub fn from_index(index: &crate::data::Index) -> Self {
        let category_id = |class: u32| match &index.category_ids {
            Some(ids) => ids
                .get(class as usize)
                .map_or(i64::from(class), |&id| id as i64),
            None => i64::from(class),
        };
        let mut image_ids: Vec<i64> = index.images.iter().map(|i| i.id as i64).collect();
        image_ids.sort_unstable();
        image_ids.dedup();
        let categories = (0..index.names.len() as u32)
            .map(|c| Category {
                id: category_id(c),
                name: index.names[c as usize].clone(),
            })
            .collect();
        let annotations = index
            .images
            .iter()
            .flat_map(|image| image.boxes.iter().map(move |b| (image.id, b)))
            .enumerate()
            .map(|(n, (image_id, b))| {
                let [x1, y1, x2, y2] = b.xyxy_px.map(f64::from);
                GtBox {
                    id: n as i64 + 1,
                    image_id: image_id as i64,
                    category_id: category_id(b.class),
                    bbox_xywh: [x1, y1, x2 - x1, y2 - y1],
                    area: f64::from(b.area),
                    iscrowd: b.crowd,
                }
            })
            .collect();
        Self {
            image_ids,
            categories,
            annotations,
        }
    }
}

/// Read a results JSON file (an array of `{image_id, category_id, bbox, score}`) and check it against `gt`.
pub fn read_detections(path: &Path, gt: &CocoGroundTruth) -> Result<Vec<DetectionBox>, CocoError> {
    detections_from_slice(&read(path)?, path, gt)
}

/// Parse results JSON and check every image id against `gt` (pycocotools' loadRes asserts; we name the first
/// dangling one). An empty array is accepted as "no detections" (pycocotools fails on it with an IndexError).
pub fn detections_from_slice(
    bytes: &[u8],
    name: &Path,
    gt: &CocoGroundTruth,
) -> Result<Vec<DetectionBox>, CocoError> {
    let entries: Vec<ResultEntry> =
        serde_json::from_slice(bytes).map_err(|error| CocoError::Json {
            path: name.to_path_buf(),
            kind: "results",
            error,
        })?;
    let images: HashSet<i64> = gt.image_ids.iter().copied().collect();
    let invalid = |detail: String| CocoError::Invalid {
        path: PathBuf::from(name),
        detail,
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            if !images.contains(&e.image_id) {
                return Err(CocoError::UnknownImage {
                    path: name.to_path_buf(),
                    index,
                    image_id: e.image_id,
                });
            }
            if e.score.is_nan() {
                return Err(invalid(format!("detection {index} has a NaN score")));
            }
            if e.bbox.iter().any(|v| !v.is_finite()) {
                return Err(invalid(format!(
                    "detection {index} has a non-finite bbox {:?}",
                    e.bbox
                )));
            }
            Ok(DetectionBox {
                image_id: e.image_id,
                category_id: e.category_id,
                bbox_xywh: e.bbox,
                score: e.score,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GT: &str = r#"{"images":[{"id":3},{"id":1},{"id":3}],
        "categories":[{"id":5,"name":"b"},{"id":2,"name":"a"}],
        "annotations":[{"id":1,"image_id":1,"category_id":2,"bbox":[0,0,10,10],
                        "segmentation":[[0,0,1,1]]}]}"#;

    fn gt() -> CocoGroundTruth {
        CocoGroundTruth::from_slice(GT.as_bytes(), Path::new("gt.json")).unwrap()
    }

    #[test]
    fn instances_ids_sorted_unique_area_falls_back_to_box() {
        let gt = gt();
        assert_eq!(gt.image_ids, vec![1, 3]);
        assert_eq!(gt.categories[0].id, 2);
        assert_eq!(gt.annotations[0].area, 100.0);
        assert!(!gt.annotations[0].iscrowd);
    }

    #[test]
    fn results_unknown_image_is_named() {
        let text = r#"[{"image_id":1,"category_id":2,"bbox":[0,0,1,1],"score":0.5},
                       {"image_id":7,"category_id":2,"bbox":[0,0,1,1],"score":0.5}]"#;
        let err = detections_from_slice(text.as_bytes(), Path::new("dt.json"), &gt()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("dt.json") && message.contains("image_id 7"),
            "{message}"
        );
    }

    #[test]
    fn results_malformed_names_file() {
        let err = detections_from_slice(b"[{", Path::new("dt.json"), &gt()).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("dt.json is not a valid COCO results file"));
    }
}
