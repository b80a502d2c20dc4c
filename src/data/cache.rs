//! The binary index cache: a parsed, verified split saved next to its labels, reused while every source file
//! keeps its size and modification time (the same test Ultralytics' `.cache` files use, without its hash of
//! paths only).
//!
//! A read-only dataset folder (such as a shared mount) cannot hold the cache, so it then lives in the system
//! temp folder under a name derived from the preferred path. A cache that cannot be written is not an error:
//! the next run just verifies again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::Index;
use crate::model::weights::write_atomic;

/// Bumped whenever `Index` or the readers' rules change, so old caches are rebuilt.
const FORMAT: u32 = 1;

/// Size and modification time of every file a split was built from; `None` for a file that is absent (a
/// label file may be, for a background image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    pub files: Vec<(PathBuf, Option<(u64, i128)>)>,
}

impl Fingerprint {
    pub fn add(&mut self, path: &Path) {
        let stamp = std::fs::metadata(path).ok().map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
            (m.len(), modified.map_or(0, |d| d.as_nanos() as i128))
        });
        self.files.push((path.to_path_buf(), stamp));
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    fingerprint: Fingerprint,
    index: Index,
}

/// Whether the folder's permission bits allow writing. Checked explicitly because root may write anyway, and a
/// dataset folder marked read-only (a shared mount) must stay untouched.
fn writable(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
}

/// Where a split's cache lives: the preferred path, then its stand-in in the temp folder.
pub fn locations(preferred: &Path) -> [PathBuf; 2] {
    let mut hasher = DefaultHasher::new();
    preferred.hash(&mut hasher);
    let fallback = std::env::temp_dir()
        .join("yolo-burn-index")
        .join(format!("{:016x}.cache", hasher.finish()));
    [preferred.to_path_buf(), fallback]
}

/// The cached index, if a cache exists and matches `fingerprint` exactly.
pub fn load(preferred: &Path, fingerprint: &Fingerprint) -> Option<Index> {
    locations(preferred).iter().find_map(|path| {
        let bytes = std::fs::read(path).ok()?;
        let cache: CacheFile = postcard::from_bytes(&bytes).ok()?;
        (cache.format == FORMAT && &cache.fingerprint == fingerprint).then_some(cache.index)
    })
}

/// Saves the index; returns where, or `None` if neither location is writable.
pub fn store(preferred: &Path, fingerprint: &Fingerprint, index: &Index) -> Option<PathBuf> {
    let cache = CacheFile {
        format: FORMAT,
        fingerprint: fingerprint.clone(),
        index: index.clone(),
    };
    let bytes = postcard::to_stdvec(&cache).ok()?;
    locations(preferred).into_iter().find(|path| {
        path.parent()
            .is_some_and(|dir| std::fs::create_dir_all(dir).is_ok() && writable(dir))
            && write_atomic(path, &bytes).is_ok()
    })
}
