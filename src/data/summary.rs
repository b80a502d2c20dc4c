//! The report `yolo-burn data check` prints: images, boxes, boxes per class, and problems by kind with the
//! first few named by file and line.

use std::fmt;

use super::Index;

/// How many problems are listed by name before the rest are only counted.
const LISTED: usize = 20;

/// A printable summary of one split.
pub struct Summary<'a> {
    pub split: &'a str,
    pub index: &'a Index,
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = self.index;
        let crowd = index
            .images
            .iter()
            .flat_map(|i| &i.boxes)
            .filter(|b| b.crowd)
            .count();
        let background = index.images.iter().filter(|i| i.boxes.is_empty()).count();
        writeln!(
            f,
            "{}: {} images ({background} without boxes), {} boxes{}, {} classes",
            self.split,
            index.images.len(),
            index.train_boxes(),
            if crowd > 0 {
                format!(" + {crowd} crowd")
            } else {
                String::new()
            },
            index.nc()
        )?;
        let width = index
            .names
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "  {:>5}  {:<width$}  {:>9}",
            "class", "name", "instances"
        )?;
        for (i, (name, count)) in index.names.iter().zip(index.class_counts()).enumerate() {
            writeln!(f, "  {i:>5}  {name:<width$}  {count:>9}")?;
        }
        if index.problems.is_empty() {
            return writeln!(f, "  no problems found");
        }
        let counts = index.problems.counts();
        let total: usize = counts.iter().map(|(_, n)| n).sum();
        writeln!(f, "  {total} problems, skipped:")?;
        for (kind, n) in counts {
            writeln!(f, "    {n:>7}  {kind}")?;
        }
        for problem in index.problems.items.iter().take(LISTED) {
            writeln!(f, "  {problem}")?;
        }
        if total > LISTED {
            writeln!(f, "  … and {} more", total - LISTED)?;
        }
        Ok(())
    }
}
