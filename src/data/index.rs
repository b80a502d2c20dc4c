//! The one in-memory description of a dataset split that every format parses into: images, their sizes, their
//! boxes in pixel xyxy with contiguous class ids, crowd flags, and the class names.
//!
//! Readers (`yolo_txt`, `coco`, `objects365`) build an [`Index`]; the loader and the evaluator only ever see this.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::problems::Problems;

/// One labelled box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoxLabel {
    /// Contiguous class index, `0..names.len()`.
    pub class: u32,
    /// Corners in pixels of the original (EXIF-rotated) image: x1, y1, x2, y2.
    pub xyxy_px: [f32; 4],
    /// COCO `iscrowd`: excluded from training targets, kept for evaluation (matched and ignored).
    pub crowd: bool,
    /// COCO annotation `area` (segment area, which COCO evaluation uses for its size ranges); the box area
    /// when the format has none.
    pub area: f32,
}

/// One image of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Where the image file is.
    pub path: PathBuf,
    /// COCO `image_id` (kept for results files); the position in the split for YOLO txt datasets.
    pub id: u64,
    /// Width and height in pixels, after EXIF orientation.
    pub size: [u32; 2],
    pub boxes: Vec<BoxLabel>,
}

/// A parsed, validated dataset split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Index {
    /// Class names by contiguous index.
    pub names: Vec<String>,
    /// Original category id of each contiguous class (COCO / Objects365 `category_id`), for results files.
    /// `None` for YOLO txt datasets, whose ids are already contiguous.
    pub category_ids: Option<Vec<u64>>,
    pub images: Vec<ImageRecord>,
    /// What was skipped while reading, by file and line.
    pub problems: Problems,
}

impl Index {
    /// Number of classes.
    pub fn nc(&self) -> usize {
        self.names.len()
    }

    /// Non-crowd boxes, the ones training uses.
    pub fn train_boxes(&self) -> usize {
        self.images
            .iter()
            .flat_map(|i| &i.boxes)
            .filter(|b| !b.crowd)
            .count()
    }

    /// Under `data.strict = true`, the first problem becomes an error naming its file and line.
    pub fn check_strict(&self, strict: bool) -> Result<(), crate::YoloError> {
        match self.problems.items.first() {
            Some(p) if strict => Err(crate::YoloError::Dataset {
                path: p.file.clone(),
                line: p.line,
                detail: format!("{}: {} (data.strict = true)", p.kind, p.detail),
            }),
            _ => Ok(()),
        }
    }

    /// Boxes per class (crowd excluded).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.names.len()];
        for b in self
            .images
            .iter()
            .flat_map(|i| &i.boxes)
            .filter(|b| !b.crowd)
        {
            if let Some(c) = counts.get_mut(b.class as usize) {
                *c += 1;
            }
        }
        counts
    }
}
