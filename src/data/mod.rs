//! Datasets: every format parses once into an [`Index`] (validated, with each skipped item named), images are
//! augmented as `u8` pixels, and the loader collates batches.

pub mod augment;
pub mod image;
pub mod index;
pub mod loader;
pub mod preview;
pub mod problems;
pub mod read;
pub mod rng;

pub use index::{BoxLabel, ImageRecord, Index};
pub use problems::{Problem, ProblemKind, Problems};
pub use read::read_index;
