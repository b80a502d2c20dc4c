//! Objects365 → [`Index`]. Objects365 ships COCO-format instances files, so parsing and validation are
//! [`super::coco`]'s; this module only knows where the images are and which spelling of the 365 names to use.
//!
//! - **v2** (`zhiyuan_objv2_{train,val}.json`): `file_name` is relative to the dataset root and names its patch,
//!   e.g. `images/v1/patch8/objects365_v1_00420917.jpg` or `images/v2/patch16/objects365_v2_00908726.jpg`.
//!   The root defaults to the JSON's folder (where both the official download and Ultralytics' script put it).
//! - **v1** (`objects365_{train,val}.json`): `file_name` is a bare file name, looked up in the split's image
//!   folder (see [`default_v1_images_dir`]).
//!
//! Ultralytics' own `Objects365.yaml` converts the JSON into a flat YOLO-txt tree; such a tree is read by the
//! YOLO-txt reader, not here. Missing or corrupt images (Ultralytics flags 111,771 of 1,742,289 training images)
//! are counted and dropped by [`super::verify::verify_images`], which the caller runs when it wants the decoding
//! cost.

use std::path::{Path, PathBuf};

use super::coco::build_index;
use super::coco_stream::{read_instances, RawInstances};
use super::index::Index;
use super::objects365_names::{OFFICIAL_DIFFERENCES, ULTRALYTICS_NAMES};
use crate::YoloError;

/// Number of Objects365 classes (v1 and v2).
pub const NUM_CLASSES: usize = 365;

/// Which spelling of the 365 class names the index carries. Class indices are the same either way
/// (category id order), so only the printed names and exported metadata differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameStyle {
    /// Ultralytics' `Objects365.yaml` names: the official list with 16 typos fixed ("Moniter/TV" → "Monitor/TV",
    /// trailing spaces dropped, "Meat ball" → "Meatball", ...). The default, so that weights trained with
    /// Ultralytics on Objects365 (whose checkpoints carry these names) and ours print and export the same names.
    #[default]
    Ultralytics,
    /// The names exactly as the JSON's `categories[].name` spell them (typos and trailing spaces included), as
    /// mmdetection and pycocotools-based tools report them.
    Official,
}

/// Objects365 release, which decides where images are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// How to read an Objects365 instances file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objects365Options {
    /// For v2, the dataset root that `file_name` (`images/v?/patchN/...`) is relative to; for v1, the folder
    /// holding the images. `None`: the JSON's folder for v2, [`default_v1_images_dir`] for v1.
    pub images_dir: Option<PathBuf>,
    pub names: NameStyle,
}

/// Reads an Objects365 v1 or v2 instances JSON, streaming.
pub fn read_objects365(json: &Path, options: &Objects365Options) -> Result<Index, YoloError> {
    let raw = read_instances(json)?;
    objects365_index(raw, json, options)
}

/// Builds the index from already-read records (the dispatcher reads once, then decides the format).
pub(crate) fn objects365_index(
    raw: RawInstances,
    json: &Path,
    options: &Objects365Options,
) -> Result<Index, YoloError> {
    let version = version_of(json, &raw);
    let images_dir = match (&options.images_dir, version) {
        (Some(dir), _) => dir.clone(),
        (None, Version::V2) => json_dir(json),
        (None, Version::V1) => default_v1_images_dir(json),
    };
    let mut index = build_index(raw, json, |file_name| images_dir.join(file_name));
    if options.names == NameStyle::Ultralytics {
        if index.names.len() != NUM_CLASSES {
            return Err(YoloError::Dataset {
                path: json.to_path_buf(),
                line: None,
                detail: format!(
                    "{} categories, but Ultralytics' Objects365 names are for {NUM_CLASSES}; read it with the \
                     official names (NameStyle::Official) or as plain COCO JSON",
                    index.names.len()
                ),
            });
        }
        index.names = ULTRALYTICS_NAMES.iter().map(|n| n.to_string()).collect();
    }
    Ok(index)
}

/// The official v2 spelling of class `class` (as in `zhiyuan_objv2_*.json`).
pub fn official_name(class: usize) -> Option<&'static str> {
    let fixed = OFFICIAL_DIFFERENCES
        .iter()
        .find(|(i, _)| *i == class)
        .map(|(_, name)| *name);
    fixed.or_else(|| ULTRALYTICS_NAMES.get(class).copied())
}

/// Whether `raw` (read from `json`) is Objects365: by file name (`zhiyuan_objv2_*`, `objects365_*`), else by
/// content (365 categories whose names are mostly Objects365's, in either spelling).
pub fn is_objects365(json: &Path, raw: &RawInstances) -> bool {
    let name = json
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if name.starts_with("zhiyuan_objv2") || name.starts_with("objects365") {
        return true;
    }
    if raw.categories.len() != NUM_CLASSES {
        return false;
    }
    let known = |name: &str| {
        let name = name.trim();
        ULTRALYTICS_NAMES
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
            || OFFICIAL_DIFFERENCES
                .iter()
                .any(|(_, n)| n.trim().eq_ignore_ascii_case(name))
    };
    raw.categories.iter().filter(|c| known(&c.name)).count() >= NUM_CLASSES * 9 / 10
}

/// v2 when named `zhiyuan_objv2_*` or when its `file_name`s carry the `images/v?/patchN/` prefix.
fn version_of(json: &Path, raw: &RawInstances) -> Version {
    let name = json
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let v2_paths = raw
        .images
        .first()
        .is_some_and(|i| i.file_name.starts_with("images/v"));
    if name.starts_with("zhiyuan_objv2") || v2_paths {
        Version::V2
    } else {
        Version::V1
    }
}

fn json_dir(json: &Path) -> PathBuf {
    match json.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// v1 images of `.../objects365_X.json` (X = train or val): the first folder that exists of `<json dir>/images/X`,
/// `<json dir>/X`, `<json dir>/../images/X`, `<json dir>/../X`; else the JSON's folder.
pub fn default_v1_images_dir(json: &Path) -> PathBuf {
    let dir = json_dir(json);
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let split = stem.strip_prefix("objects365_").unwrap_or(stem);
    if split.is_empty() {
        return dir;
    }
    let parent = dir.join("..");
    [
        dir.join("images").join(split),
        dir.join(split),
        parent.join("images").join(split),
        parent.join(split),
    ]
    .into_iter()
    .find(|candidate| candidate.is_dir())
    .unwrap_or(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_name_typo_and_plain_names() {
        assert_eq!(official_name(37), Some("Moniter/TV"));
        assert_eq!(official_name(364), Some("Table Tennis "));
        assert_eq!(official_name(0), Some("Person"));
        assert_eq!(official_name(365), None);
    }

    #[test]
    fn ultralytics_names_fixes_at_98_and_313() {
        assert_eq!(
            (ULTRALYTICS_NAMES[97], ULTRALYTICS_NAMES[98]),
            ("Cake", "Dining Table")
        );
        assert_eq!(
            (ULTRALYTICS_NAMES[312], ULTRALYTICS_NAMES[313]),
            ("Hoverboard", "Meatball")
        );
    }

    #[test]
    fn default_name_style_is_ultralytics() {
        assert_eq!(NameStyle::default(), NameStyle::Ultralytics);
    }
}
