//! What was wrong with a dataset, item by item: every skipped image or label is counted and named by file and
//! line, and `data.strict = true` turns the first one into an error.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The kinds of defect a reader counts, the same for every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ProblemKind {
    /// The image file is absent.
    MissingImage,
    /// The image cannot be decoded: truncated, empty, or not an image.
    UnreadableImage,
    /// A label line does not have 5 fields (class cx cy w h).
    WrongFieldCount,
    /// A coordinate or class field is not a number, or is NaN / infinite.
    NotANumber,
    /// A normalised coordinate lies outside [0, 1] (beyond a small tolerance).
    OutOfRange,
    /// A class id is not in the dataset's names.
    ClassOutOfRange,
    /// A box of zero or negative width or height.
    ZeroSize,
    /// The same box twice in one image.
    DuplicateBox,
    /// A JSON annotation names an image id that is not in `images`.
    DanglingImageId,
    /// A JSON annotation names a category id that is not in `categories`.
    DanglingCategoryId,
    /// A malformed descriptor or JSON record.
    Malformed,
}

impl ProblemKind {
    /// Whether the whole image is dropped (otherwise only the label line or box is).
    pub fn drops_image(self) -> bool {
        matches!(self, Self::MissingImage | Self::UnreadableImage)
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::MissingImage => "missing image",
            Self::UnreadableImage => "unreadable image",
            Self::WrongFieldCount => "wrong field count",
            Self::NotANumber => "not a number",
            Self::OutOfRange => "coordinate out of range",
            Self::ClassOutOfRange => "class out of range",
            Self::ZeroSize => "zero or negative size",
            Self::DuplicateBox => "duplicate box",
            Self::DanglingImageId => "dangling image_id",
            Self::DanglingCategoryId => "dangling category_id",
            Self::Malformed => "malformed record",
        };
        f.write_str(text)
    }
}

/// One defect, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub file: PathBuf,
    /// 1-based line of a label file; for JSON, the annotation or image index in its array.
    pub line: Option<usize>,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}: {}", self.kind, self.detail)
    }
}

/// All defects found while reading one split.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Problems {
    pub items: Vec<Problem>,
}

impl Problems {
    pub fn push(
        &mut self,
        kind: ProblemKind,
        file: impl Into<PathBuf>,
        line: Option<usize>,
        detail: impl Into<String>,
    ) {
        self.items.push(Problem {
            kind,
            file: file.into(),
            line,
            detail: detail.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Counts by kind, in `ProblemKind` order.
    pub fn counts(&self) -> Vec<(ProblemKind, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for p in &self.items {
            *counts.entry(p.kind).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }
}
