//! What a bad ground-truth or results file produces. Every variant names the file, so the binary's message tells
//! the user which of the two inputs to fix.

use std::path::PathBuf;

/// A COCO file that could not be read or does not fit the evaluation.
#[derive(Debug, thiserror::Error)]
pub enum CocoError {
    /// The file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// Why it could not be read (in the message, not chained, so it prints once).
        error: std::io::Error,
    },
    /// The text is not JSON of the expected shape; serde's message has the line and column.
    #[error("{} is not a valid COCO {kind} file: {error}", path.display())]
    Json {
        /// The path (or name) of the text.
        path: PathBuf,
        /// "instances" or "results".
        kind: &'static str,
        /// serde_json's message.
        error: serde_json::Error,
    },
    /// A detection names an image the ground truth does not have (pycocotools' loadRes asserts here:
    /// "Results do not correspond to current coco set").
    #[error(
        "{}: detection {index} has image_id {image_id}, which is not an image of the ground truth; \
         results must refer to the ground truth's images",
        path.display()
    )]
    UnknownImage {
        /// The results file.
        path: PathBuf,
        /// Position of the detection in the results array (0-based).
        index: usize,
        /// The dangling id.
        image_id: i64,
    },
    /// A value is present but unusable (a NaN score, a non-finite box).
    #[error("{}: {detail}", path.display())]
    Invalid {
        /// The file holding the value.
        path: PathBuf,
        /// What is wrong and where.
        detail: String,
    },
}
