//! Datasets: every format parses once into an [`Index`] (validated, with each skipped item named), images are
//! augmented as `u8` pixels, and the loader collates batches.

pub mod coco;
pub mod coco_stream;
pub mod image;
pub mod index;
pub mod json;
pub mod objects365;
pub mod objects365_names;
pub mod problems;
pub mod verify;

pub use index::{BoxLabel, ImageRecord, Index};
pub use json::{read_json_index, JsonFormat, JsonOptions};
pub use problems::{Problem, ProblemKind, Problems};
