//! The optional image pass: decodes every image of an [`Index`] in parallel, and drops (counting each, by path)
//! the missing and unreadable ones. Readers of JSON formats take sizes from the JSON and decode nothing, so that
//! reading Objects365's 1.7 M images' labels takes seconds; the caller runs this pass when it wants the check
//! (`data check`, or before the first epoch, with the result cached in the index file).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rayon::prelude::*;

use super::image::{verified_size, ImageError};
use super::index::Index;
use super::problems::ProblemKind;

/// Decodes each image with [`verified_size`] (rayon's pool) and removes those that are missing
/// (`MissingImage`) or cannot be decoded, such as truncated, empty or non-image files (`UnreadableImage`).
/// A JPEG must also end with its end-of-image marker: the decoder fills a truncated scan with grey and
/// succeeds, so, as Ultralytics' `verify_image_label` does, the last two bytes are checked.
/// An image whose decoded size differs from the recorded one is kept and counted as `Malformed`, since its
/// boxes may not fit it. Problems are reported in image order.
pub fn verify_images(index: &mut Index) {
    let results: Vec<_> = index
        .images
        .par_iter()
        .map(|image| checked_size(&image.path))
        .collect();
    let problems = &mut index.problems;
    let mut results = results.into_iter();
    index.images.retain(|image| match results.next() {
        Some(Ok(size)) => {
            if size != image.size {
                let detail = format!(
                    "decodes to {}x{}, but the labels say {}x{}",
                    size[0], size[1], image.size[0], image.size[1]
                );
                problems.push(ProblemKind::Malformed, &image.path, None, detail);
            }
            true
        }
        Some(Err(Unusable::Image(e))) => {
            let kind = if e.is_missing() {
                ProblemKind::MissingImage
            } else {
                ProblemKind::UnreadableImage
            };
            problems.push(kind, &image.path, None, format!("{e}; image skipped"));
            false
        }
        Some(Err(Unusable::TruncatedJpeg)) => {
            let detail = "JPEG has no end-of-image marker (truncated); image skipped";
            problems.push(ProblemKind::UnreadableImage, &image.path, None, detail);
            false
        }
        None => true,
    });
}

/// Why [`checked_size`] refused an image.
enum Unusable {
    Image(ImageError),
    TruncatedJpeg,
}

/// [`verified_size`], plus the JPEG end-marker check.
fn checked_size(path: &Path) -> Result<[u32; 2], Unusable> {
    let size = verified_size(path).map_err(Unusable::Image)?;
    match jpeg_is_complete(path) {
        Ok(true) => Ok(size),
        Ok(false) => Err(Unusable::TruncatedJpeg),
        Err(e) => Err(Unusable::Image(ImageError::Io(e))),
    }
}

/// For a JPEG (starts with FF D8), whether it ends with the EOI marker FF D9, ignoring trailing zero padding
/// that some cameras write. Other formats are complete as far as this check goes.
fn jpeg_is_complete(path: &Path) -> std::io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let mut head = [0u8; 2];
    if file.read(&mut head)? < 2 || head != [0xFF, 0xD8] {
        return Ok(true);
    }
    let len = file.seek(SeekFrom::End(0))?;
    let tail_len = len.min(4096);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.read_to_end(&mut tail)?;
    let end = tail.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    Ok(tail[..end].ends_with(&[0xFF, 0xD9]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_is_complete_padding_ok_cut_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.jpg");
        std::fs::write(&path, [0xFF, 0xD8, 1, 2, 0xFF, 0xD9, 0, 0]).expect("write");
        assert!(jpeg_is_complete(&path).expect("reads"));
        std::fs::write(&path, [0xFF, 0xD8, 1, 2, 0xFF]).expect("write");
        assert!(!jpeg_is_complete(&path).expect("reads"));
        std::fs::write(&path, b"GIF89a").expect("write");
        assert!(jpeg_is_complete(&path).expect("reads"));
    }
}
