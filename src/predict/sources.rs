//! What `predict --source` names: one image, a folder of images (sorted, not recursive), or a glob pattern.

use std::path::{Path, PathBuf};

use crate::YoloError;

const EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "webp", "mpo"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The image files a source names, sorted. A named file is returned even if its extension is unusual, so that
/// reading it reports the real problem.
pub fn expand(source: &str) -> Result<Vec<PathBuf>, YoloError> {
    let path = Path::new(source);
    let missing = || YoloError::Dataset {
        path: path.into(),
        line: None,
        detail: "no such image, folder or glob match".into(),
    };
    let mut files = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| YoloError::Io {
            path: path.into(),
            source,
        })?;
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_image(p))
            .collect()
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else if source.contains(['*', '?', '[']) {
        let pattern = glob::glob(source).map_err(|e| YoloError::Dataset {
            path: path.into(),
            line: None,
            detail: format!("bad glob pattern: {e}"),
        })?;
        pattern
            .flatten()
            .filter(|p| p.is_file() && is_image(p))
            .collect()
    } else {
        return Err(missing());
    };
    files.sort();
    if files.is_empty() {
        return Err(missing());
    }
    Ok(files)
}
