//! Datasets: every format parses once into an [`Index`] (validated, with each skipped item named), images are
//! augmented as `u8` pixels, and the loader collates batches.

pub mod augment;
pub mod cache;
pub mod coco;
pub mod coco_stream;
pub mod descriptor;
pub mod image;
pub mod index;
pub mod json;
pub mod loader;
pub mod objects365;
pub mod objects365_names;
pub mod preview;
pub mod problems;
pub mod rng;
pub mod shapes;
pub mod summary;
#[cfg(target_arch = "x86_64")]
pub(crate) mod vbmi;
pub mod verify;
pub mod yolo_txt;

pub use descriptor::{DatasetSpec, SplitName};
pub use index::{BoxLabel, ImageRecord, Index};
pub use json::{read_json_index, JsonFormat, JsonOptions};
pub use problems::{Problem, ProblemKind, Problems};

use std::path::Path;

use crate::YoloError;

/// Reads one split of the dataset named by `data.dataset`: a YOLO txt descriptor (`.yaml`, `.yml`, `.toml`),
/// or a COCO / Objects365 instances `.json` (`images`: their folder, `data.images`; whose images are then decoded once to verify them; the verified
/// index is cached like a YOLO split's).
pub fn read_index(
    dataset: &Path,
    images: Option<&Path>,
    split: SplitName,
) -> Result<Index, YoloError> {
    let extension = dataset
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "yaml" | "yml" | "toml" => {
            if !dataset.exists() && dataset.file_name().is_some_and(|n| n == "shapes.toml") {
                write_shapes_descriptor(dataset)?;
            }
            let spec = DatasetSpec::read(dataset)?;
            match spec.generate.as_deref() {
                None => {}
                Some("shapes") => shapes::ensure(&spec.root)?,
                Some(other) => {
                    return Err(YoloError::Dataset {
                        path: dataset.into(),
                        line: None,
                        detail: format!(
                            "generate = \"{other}\": the only generated dataset is \"shapes\""
                        ),
                    })
                }
            }
            yolo_txt::read_split(&spec, split)
        }
        // A COCO / Objects365 instances file is one split, whichever is asked for.
        "json" => json_split(dataset, images),
        _ => Err(YoloError::Dataset {
            path: dataset.into(),
            line: None,
            detail:
                "data.dataset must be a dataset .yaml/.toml descriptor or a COCO/Objects365 .json"
                    .into(),
        }),
    }
}

/// The default config names `datasets/shapes.toml`; run from outside the repository, the binary writes its
/// embedded copy there so the default still works.
fn write_shapes_descriptor(path: &Path) -> Result<(), YoloError> {
    let io = |source| YoloError::Io {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, shapes::DESCRIPTOR).map_err(io)
}

fn json_split(path: &Path, images: Option<&Path>) -> Result<Index, YoloError> {
    let options = JsonOptions {
        images_dir: images.map(Path::to_path_buf),
        ..JsonOptions::default()
    };
    let mut index = read_json_index(path, &options)?;
    let mut fingerprint = cache::Fingerprint::default();
    fingerprint.add(path);
    for image in &index.images {
        fingerprint.add(&image.path);
    }
    let cache_path = path.with_extension("yolo-burn-cache");
    if let Some(cached) = cache::load(&cache_path, &fingerprint) {
        return no_images_found(path, images, cached);
    }
    verify::verify_images(&mut index);
    cache::store(&cache_path, &fingerprint, &index);
    no_images_found(path, images, index)
}

/// A JSON whose listed images are all missing is an error that names the folder searched and `data.images`,
/// instead of an empty dataset (the usual cause: the images live elsewhere than the reader guessed).
fn no_images_found(path: &Path, images: Option<&Path>, index: Index) -> Result<Index, YoloError> {
    let missing: Vec<&Problem> = index
        .problems
        .items
        .iter()
        .filter(|p| p.kind == ProblemKind::MissingImage)
        .collect();
    if !index.images.is_empty() || missing.is_empty() {
        return Ok(index);
    }
    let folder = missing[0]
        .file
        .parent()
        .map_or_else(|| ".".to_string(), |d| d.display().to_string());
    let how = match images {
        Some(_) => "data.images",
        None => "data.images is unset, so the reader looked beside the JSON",
    };
    Err(YoloError::Dataset {
        path: path.into(),
        line: None,
        detail: format!(
            "none of the {} images it lists was found in {folder} ({how}); set data.images to the folder \
             that holds them (e.g. --set data.images=path/to/images)",
            missing.len()
        ),
    })
}
