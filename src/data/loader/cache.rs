//! Where the loader gets an image already decoded and resized (long side = imgsz): decoded every time, kept in
//! RAM once for all workers, or kept as raw pixels in a `.npy` file beside the image.
//!
//! Ultralytics' `cache=disk` stores the full-size BGR image as `<stem>.npy`; ours stores the resized RGB image,
//! which is what every epoch needs, as `<file name>.<imgsz>.<PIXELS>.npy` (e.g. `000000000009.jpg.640.cv2.npy`),
//! so the two never read each other's files. The file is a standard NPY 1.0 array `|u1` of shape `(h, w, 3)`,
//! readable with `numpy.load`; it is used only when it is newer than the image.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use image::RgbImage;

use crate::config::CacheMode;
use crate::data::augment::resize::resize_long_side;
use crate::data::image::load_rgb;
use crate::YoloError;

/// One source of resized images, shared by the workers through an `Arc`.
#[derive(Debug)]
pub enum ImageCache {
    /// Decode and resize each time.
    None,
    /// No cache asked for, in training: Ultralytics' mosaic buffer, the most recently decoded images kept
    /// until `max` newer ones have been decoded (`BaseDataset.load_image`, `max_buffer_length =
    /// min(images, batch · 8, 1000)`). A mosaic draws three random partners per sample, so this spares most of
    /// their decodes on small datasets while memory stays bounded by the batch size, not the dataset.
    Recent(RecentBuffer),
    /// Decoded and resized on first use, then kept: one slot per image of the index.
    Ram(Vec<OnceLock<Arc<RgbImage>>>),
    /// Raw resized pixels in `.npy` files beside the images.
    Disk,
}

impl ImageCache {
    /// The cache for `mode` over `paths`. `disk` falls back to no cache, with one warning on stderr, when the
    /// folder of the first image is not writable.
    pub fn new(mode: CacheMode, paths: &[&Path]) -> Self {
        match mode {
            CacheMode::None => Self::None,
            CacheMode::Ram => Self::Ram((0..paths.len()).map(|_| OnceLock::new()).collect()),
            CacheMode::Disk => {
                let dir = paths.first().and_then(|p| p.parent()).map(|d| {
                    if d.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        d
                    }
                });
                match dir.map(|d| {
                    tempfile::Builder::new()
                        .prefix(".yolo-burn-probe")
                        .tempfile_in(d)
                }) {
                    Some(Ok(_)) | None => Self::Disk,
                    Some(Err(e)) => {
                        eprintln!(
                            "yolo-burn: warning: data.cache = \"disk\" but {} is not writable ({e}); \
                             continuing without an image cache",
                            dir.map(|d| d.display().to_string()).unwrap_or_default()
                        );
                        Self::None
                    }
                }
            }
        }
    }

    /// The training cache for `mode`: as [`ImageCache::new`], except that no cache becomes Ultralytics'
    /// recent-image buffer for a batch size of `batch`.
    pub fn for_training(mode: CacheMode, paths: &[&Path], batch: usize) -> Self {
        match mode {
            CacheMode::None => Self::Recent(RecentBuffer::new(
                paths.len().min(batch * 8).min(MAX_RECENT),
            )),
            _ => Self::new(mode, paths),
        }
    }

    /// Image `i` (at `path`), decoded, EXIF-rotated and resized so its long side is `imgsz`.
    pub fn load(&self, i: usize, path: &Path, imgsz: u32) -> Result<Arc<RgbImage>, YoloError> {
        match self {
            Self::None => decode_resized(path, imgsz).map(Arc::new),
            Self::Recent(buffer) => {
                if let Some(image) = buffer.get(i) {
                    return Ok(image);
                }
                let image = Arc::new(decode_resized(path, imgsz)?);
                buffer.insert(i, image.clone());
                Ok(image)
            }
            Self::Ram(slots) => {
                if let Some(image) = slots.get(i).and_then(|s| s.get()) {
                    return Ok(image.clone());
                }
                let image = Arc::new(decode_resized(path, imgsz)?);
                Ok(match slots.get(i) {
                    Some(slot) => slot.get_or_init(|| image).clone(),
                    None => image,
                })
            }
            Self::Disk => {
                let npy = npy_path(path, imgsz);
                if is_fresh(&npy, path) {
                    if let Some(image) = read_npy(&npy) {
                        return Ok(Arc::new(image));
                    }
                }
                let image = decode_resized(path, imgsz)?;
                // A failed write only costs the next epoch a decode.
                let _ = write_npy(&npy, &image);
                Ok(Arc::new(image))
            }
        }
    }
}

/// Ultralytics' cap on its mosaic buffer.
const MAX_RECENT: usize = 1000;

/// The images decoded most recently, shared by the workers; see [`ImageCache::Recent`].
#[derive(Debug)]
pub struct RecentBuffer {
    max: usize,
    state: Mutex<RecentState>,
}

#[derive(Debug, Default)]
struct RecentState {
    images: HashMap<usize, Arc<RgbImage>>,
    order: VecDeque<usize>,
}

impl RecentBuffer {
    fn new(max: usize) -> Self {
        Self {
            max,
            state: Mutex::new(RecentState::default()),
        }
    }

    fn get(&self, i: usize) -> Option<Arc<RgbImage>> {
        // A poisoned lock only means another worker panicked mid-insert; the map is still whole.
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.images.get(&i).cloned()
    }

    /// Keeps image `i`, then drops the oldest while the buffer holds `max` or more (and more than one), as
    /// `if 1 < len(self.buffer) >= self.max_buffer_length: pop(0)` does.
    fn insert(&self, i: usize, image: Arc<RgbImage>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.images.insert(i, image).is_none() {
            state.order.push_back(i);
        }
        while state.order.len() > 1 && state.order.len() >= self.max {
            if let Some(old) = state.order.pop_front() {
                state.images.remove(&old);
            }
        }
    }

    /// Images held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.images.len()
    }
}

fn decode_resized(path: &Path, imgsz: u32) -> Result<RgbImage, YoloError> {
    let image = load_rgb(path).map_err(|e| YoloError::Dataset {
        path: path.to_path_buf(),
        line: None,
        detail: format!("cannot read image: {e}"),
    })?;
    Ok(resize_long_side(image, imgsz))
}

/// Names how the cached pixels were made: "cv2" since JPEGs decode through libjpeg-turbo and resize as
/// `cv2.resize` does. Files from the earlier decoder and resize (`<name>.<imgsz>.npy`, off by a level here and
/// there) are newer than their images, so only a new name keeps them from being read.
const PIXELS: &str = "cv2";

/// `<image file name>.<imgsz>.<PIXELS>.npy` beside the image.
pub fn npy_path(image: &Path, imgsz: u32) -> PathBuf {
    let mut name = image.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{imgsz}.{PIXELS}.npy"));
    image.with_file_name(name)
}

fn is_fresh(npy: &Path, image: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(npy), modified(image)), (Some(n), Some(i)) if n >= i)
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY\x01\x00";

/// Writes an NPY 1.0 `|u1` array of shape `(h, w, 3)`, atomically (temporary file, then rename).
fn write_npy(path: &Path, image: &RgbImage) -> std::io::Result<()> {
    let mut header = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}, 3), }}",
        image.height(),
        image.width()
    );
    // Magic (8) + length (2) + header, padded with spaces to a multiple of 64 and ended by '\n'.
    let unpadded = NPY_MAGIC.len() + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(NPY_MAGIC)?;
    file.write_all(&(header.len() as u16).to_le_bytes())?;
    file.write_all(header.as_bytes())?;
    file.write_all(image.as_raw())?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Reads what [`write_npy`] wrote; `None` for anything else (the caller decodes the image instead).
fn read_npy(path: &Path) -> Option<RgbImage> {
    let bytes = fs::read(path).ok()?;
    let rest = bytes.strip_prefix(NPY_MAGIC)?;
    let len = u16::from_le_bytes([*rest.first()?, *rest.get(1)?]) as usize;
    let header = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
    if !header.contains("'descr': '|u1'") || !header.contains("'fortran_order': False") {
        return None;
    }
    let shape = header.split("'shape': (").nth(1)?.split(')').next()?;
    let dims: Vec<u32> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [h, w, 3] = dims[..] else { return None };
    let data = rest.get(2 + len..)?;
    if data.len() != (w * h * 3) as usize {
        return None;
    }
    RgbImage::from_raw(w, h, data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_keeps_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jpg.640.npy");
        let image = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8, y as u8, 9]));
        write_npy(&path, &image).unwrap();
        let bytes = fs::read(&path).unwrap();
        let header_end = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!(header_end % 64, 0);
        assert_eq!(read_npy(&path).unwrap(), image);
    }

    #[test]
    fn recent_buffer_keeps_fewer_than_max_newest() {
        let buffer = RecentBuffer::new(3);
        let image = Arc::new(RgbImage::new(1, 1));
        for i in 0..5 {
            buffer.insert(i, image.clone());
        }
        // Ultralytics pops once the buffer reaches max: the newest max − 1 stay
        assert_eq!(buffer.len(), 2);
        assert!(buffer.get(4).is_some() && buffer.get(3).is_some() && buffer.get(2).is_none());
        // re-inserting a held image does not count twice
        buffer.insert(4, image.clone());
        assert_eq!(buffer.len(), 2);
        // a buffer of one still keeps its image
        let one = RecentBuffer::new(1);
        one.insert(7, image);
        assert!(one.get(7).is_some());
    }

    #[test]
    fn npy_path_keeps_extension_and_size() {
        assert_eq!(
            npy_path(Path::new("/d/images/x.jpg"), 640),
            PathBuf::from("/d/images/x.jpg.640.cv2.npy")
        );
    }
}
