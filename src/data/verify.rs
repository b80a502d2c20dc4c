//! The optional image pass: decodes every image of an [`Index`] in parallel, and drops (counting each, by path)
//! the missing and unreadable ones. Readers of JSON formats take sizes from the JSON and decode nothing, so that
//! reading Objects365's 1.7 M images' labels takes seconds; the caller runs this pass when it wants the check
//! (`data check`, or before the first epoch, with the result cached in the index file).

use rayon::prelude::*;

use super::image::verified_size;
use super::index::Index;
use super::problems::ProblemKind;

/// Decodes each image with [`verified_size`] (rayon's pool) and removes those that are missing
/// (`MissingImage`) or cannot be decoded, such as truncated, empty or non-image files (`UnreadableImage`).
/// An image whose decoded size differs from the recorded one is kept and counted as `Malformed`, since its
/// boxes may not fit it. Problems are reported in image order.
pub fn verify_images(index: &mut Index) {
    let results: Vec<_> = index
        .images
        .par_iter()
        .map(|image| verified_size(&image.path))
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
        Some(Err(e)) => {
            let kind = if e.is_missing() {
                ProblemKind::MissingImage
            } else {
                ProblemKind::UnreadableImage
            };
            problems.push(kind, &image.path, None, format!("{e}; image skipped"));
            false
        }
        None => true,
    });
}
