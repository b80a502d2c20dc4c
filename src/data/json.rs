//! One entry point for COCO-style instances JSON: reads the file once (streaming), then decides whether it is
//! Objects365 or plain COCO, which only changes where images are looked up and how classes are named.

use std::path::{Path, PathBuf};

use super::coco::{coco_index, CocoOptions};
use super::coco_stream::read_instances;
use super::index::Index;
use super::objects365::{is_objects365, objects365_index, NameStyle, Objects365Options};
use crate::YoloError;

/// Which reader a JSON file goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFormat {
    Coco,
    Objects365,
}

/// Options for [`read_json_index`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Image folder (COCO, Objects365 v1) or dataset root (Objects365 v2); `None` uses each format's default.
    pub images_dir: Option<PathBuf>,
    /// Objects365 class-name spelling; ignored for COCO.
    pub names: NameStyle,
    /// Forces a format; `None` decides by name (`zhiyuan_objv2_*`, `objects365_*`), then by content.
    pub format: Option<JsonFormat>,
}

/// Reads a COCO or Objects365 instances JSON into an [`Index`] without decoding images; run
/// [`super::verify::verify_images`] afterwards to drop missing or unreadable ones.
pub fn read_json_index(path: &Path, options: &JsonOptions) -> Result<Index, YoloError> {
    let raw = read_instances(path)?;
    let format = options.format.unwrap_or_else(|| {
        if is_objects365(path, &raw) {
            JsonFormat::Objects365
        } else {
            JsonFormat::Coco
        }
    });
    match format {
        JsonFormat::Coco => Ok(coco_index(
            raw,
            path,
            &CocoOptions {
                images_dir: options.images_dir.clone(),
            },
        )),
        JsonFormat::Objects365 => {
            let o365 = Objects365Options {
                images_dir: options.images_dir.clone(),
                names: options.names,
            };
            objects365_index(raw, path, &o365)
        }
    }
}
