//! Datasets: every format parses once into an [`Index`] (validated, with each skipped item named), images are
//! augmented as `u8` pixels, and the loader collates batches.

pub mod descriptor;
pub mod image;
pub mod index;
pub mod problems;
pub mod summary;
pub mod yolo_txt;

pub use descriptor::{DatasetSpec, SplitName};
pub use index::{BoxLabel, ImageRecord, Index};
pub use problems::{Problem, ProblemKind, Problems};

use std::path::Path;

use crate::YoloError;

/// Reads one split of the dataset named by `data.dataset`: a YOLO txt descriptor (`.yaml`, `.yml`, `.toml`).
pub fn read_index(dataset: &Path, split: SplitName) -> Result<Index, YoloError> {
    let extension = dataset
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "yaml" | "yml" | "toml" => {
            let spec = DatasetSpec::read(dataset)?;
            yolo_txt::read_split(&spec, split)
        }
        _ => Err(YoloError::Dataset {
            path: dataset.into(),
            line: None,
            detail:
                "data.dataset must be a dataset .yaml/.toml descriptor or a COCO/Objects365 .json"
                    .into(),
        }),
    }
}
