//! Run folders: `<project>/<name>/`, never overwritten silently. As Ultralytics' `increment_path`, an existing
//! folder gets a numeric suffix (`train2`, `train3`, …) unless `exist_ok`.

use std::path::{Path, PathBuf};

use crate::YoloError;

/// `<project>/<name>`, or `<name>2`, `<name>3`, … when it exists and `exist_ok` is false.
pub fn unique_run_dir(project: &Path, name: &str, exist_ok: bool) -> PathBuf {
    let base = project.join(name);
    if exist_ok || !base.exists() {
        return base;
    }
    (2..)
        .map(|n| project.join(format!("{name}{n}")))
        .find(|p| !p.exists())
        .unwrap_or(base)
}

/// Picks the run folder for `name` under `project` and creates it.
pub fn create_run_dir(project: &Path, name: &str, exist_ok: bool) -> Result<PathBuf, YoloError> {
    let dir = unique_run_dir(project, name, exist_ok);
    std::fs::create_dir_all(&dir).map_err(|source| YoloError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_run_gets_a_suffix_unless_exist_ok() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = create_run_dir(dir.path(), "val", false).expect("first");
        assert_eq!(first, dir.path().join("val"));
        assert_eq!(
            create_run_dir(dir.path(), "val", false).expect("second"),
            dir.path().join("val2")
        );
        assert_eq!(
            create_run_dir(dir.path(), "val", true).expect("reuse"),
            dir.path().join("val")
        );
    }
}
