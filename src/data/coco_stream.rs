//! Streaming reader for COCO-style instances JSON (COCO, Objects365): walks the top-level `images`,
//! `annotations` and `categories` arrays element by element, straight off a buffered file.
//!
//! Why streaming: Objects365 v2's train JSON is over 5 GB, and a `serde_json::Value` of it needs several times
//! that in RAM. Here each annotation becomes a 40-byte [`RawAnnotation`] as soon as it is read (segmentation
//! polygons and unknown fields are skipped without being stored), so peak memory follows the number of boxes,
//! not the file size. The arrays may come in any order (COCO 2017 puts `categories` last), so annotations are
//! only resolved against images and categories once the whole file has been read, by [`super::coco`].

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::problems::{ProblemKind, Problems};
use crate::YoloError;

/// One entry of `images`, with only the fields we use.
#[derive(Debug, Clone, PartialEq)]
pub struct RawImage {
    pub id: u64,
    /// As written in the JSON: a bare name for COCO, `images/v2/patchN/...` for Objects365 v2.
    pub file_name: String,
    pub width: u32,
    pub height: u32,
}

/// One entry of `categories`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCategory {
    pub id: u64,
    pub name: String,
}

/// One entry of `annotations`, kept compact until images and categories are known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawAnnotation {
    pub image_id: u64,
    pub category_id: u64,
    /// COCO `bbox`: x, y (top-left), width, height in pixels; NaN where the JSON had `null`.
    pub bbox_xywh: [f32; 4],
    /// COCO `area`; NaN when absent (the clipped box area is used then).
    pub area: f32,
    pub crowd: bool,
}

/// Everything read from one instances file, in file order. `problems` holds the records that could not be
/// kept (missing fields, a `bbox` without 4 numbers), each with its index in its array.
#[derive(Debug, Default)]
pub struct RawInstances {
    pub images: Vec<RawImage>,
    pub categories: Vec<RawCategory>,
    pub annotations: Vec<RawAnnotation>,
    pub problems: Problems,
}

/// Reads `path` streaming. Malformed JSON (or a field of the wrong type) is an error naming the file, line and
/// column; a record missing a field is counted as `Malformed` and skipped.
pub fn read_instances(path: &Path) -> Result<RawInstances, YoloError> {
    let file = File::open(path).map_err(|source| YoloError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // A large buffer: serde_json's reader path asks for one byte at a time.
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut out = RawInstances::default();
    let json_error = |e: serde_json::Error| YoloError::Dataset {
        path: path.to_path_buf(),
        line: Some(e.line()),
        detail: format!("not a COCO instances JSON: {e}"),
    };
    TopLevel {
        out: &mut out,
        path,
    }
    .deserialize(&mut de)
    .map_err(json_error)?;
    de.end().map_err(json_error)?;
    Ok(out)
}

/// The top-level object; fills `out` as its arrays go by.
struct TopLevel<'a> {
    out: &'a mut RawInstances,
    path: &'a Path,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum TopKey {
    Images,
    Annotations,
    Categories,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with images, annotations and categories")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = [false; 3];
        while let Some(key) = map.next_key::<TopKey>()? {
            match key {
                TopKey::Images => {
                    map.next_value_seed(Records {
                        out: &mut *self.out,
                        path: self.path,
                        kind: Kind::Image,
                    })?;
                    seen[0] = true;
                }
                TopKey::Annotations => {
                    map.next_value_seed(Records {
                        out: &mut *self.out,
                        path: self.path,
                        kind: Kind::Annotation,
                    })?;
                    seen[1] = true;
                }
                TopKey::Categories => {
                    map.next_value_seed(Records {
                        out: &mut *self.out,
                        path: self.path,
                        kind: Kind::Category,
                    })?;
                    seen[2] = true;
                }
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        for (seen, name) in seen.iter().zip(["images", "annotations", "categories"]) {
            if !seen {
                return Err(de::Error::missing_field(name));
            }
        }
        Ok(())
    }
}

/// Which top-level array a [`Records`] walks.
#[derive(Clone, Copy)]
enum Kind {
    Image,
    Annotation,
    Category,
}

/// One top-level array, element by element.
struct Records<'a> {
    out: &'a mut RawInstances,
    path: &'a Path,
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.out;
        let mut index = 0usize;
        match self.kind {
            Kind::Image => {
                while let Some(image) = seq.next_element::<ImageJson>()? {
                    match image.into_raw() {
                        Ok(raw) => out.images.push(raw),
                        Err(missing) => {
                            malformed(&mut out.problems, self.path, "images", index, missing)
                        }
                    }
                    index += 1;
                }
            }
            Kind::Annotation => {
                while let Some(annotation) = seq.next_element::<AnnotationJson>()? {
                    match annotation.into_raw() {
                        Ok(raw) => out.annotations.push(raw),
                        Err(missing) => {
                            malformed(&mut out.problems, self.path, "annotations", index, missing)
                        }
                    }
                    index += 1;
                }
            }
            Kind::Category => {
                while let Some(category) = seq.next_element::<CategoryJson>()? {
                    match (category.id, category.name) {
                        (Some(id), Some(name)) => out.categories.push(RawCategory { id, name }),
                        _ => malformed(
                            &mut out.problems,
                            self.path,
                            "categories",
                            index,
                            "id or name",
                        ),
                    }
                    index += 1;
                }
            }
        }
        Ok(())
    }
}

fn malformed(problems: &mut Problems, path: &Path, array: &str, index: usize, missing: &str) {
    problems.push(
        ProblemKind::Malformed,
        path,
        Some(index),
        format!("{array}[{index}]: no valid {missing}"),
    );
}

/// `images[i]` as written; unknown fields (license, url, coco_url, ...) are skipped.
#[derive(Deserialize)]
struct ImageJson {
    id: Option<u64>,
    file_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
}

impl ImageJson {
    fn into_raw(self) -> Result<RawImage, &'static str> {
        match self {
            ImageJson {
                id: Some(id),
                file_name: Some(file_name),
                width: Some(width),
                height: Some(height),
            } => Ok(RawImage {
                id,
                file_name,
                width,
                height,
            }),
            _ => Err("id, file_name, width or height"),
        }
    }
}

/// `categories[i]` as written; `supercategory` is skipped.
#[derive(Deserialize)]
struct CategoryJson {
    id: Option<u64>,
    name: Option<String>,
}

/// `annotations[i]` as written; `segmentation`, `id`, `isfake`, ... are skipped without being stored.
#[derive(Deserialize)]
struct AnnotationJson {
    image_id: Option<u64>,
    category_id: Option<u64>,
    bbox: Option<BboxJson>,
    area: Option<f64>,
    #[serde(default)]
    iscrowd: Crowd,
}

impl AnnotationJson {
    fn into_raw(self) -> Result<RawAnnotation, &'static str> {
        let (Some(image_id), Some(category_id)) = (self.image_id, self.category_id) else {
            return Err("image_id or category_id");
        };
        let Some(BboxJson { values, len: 4 }) = self.bbox else {
            return Err("bbox of 4 numbers");
        };
        Ok(RawAnnotation {
            image_id,
            category_id,
            bbox_xywh: values.map(|v| v as f32),
            area: self.area.map_or(f32::NAN, |a| a as f32),
            crowd: self.iscrowd.0,
        })
    }
}

/// A `bbox` array read without allocating; `len` counts every element, so a wrong length is detected.
struct BboxJson {
    values: [f64; 4],
    len: usize,
}

impl<'de> Deserialize<'de> for BboxJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BboxVisitor;
        impl<'de> Visitor<'de> for BboxVisitor {
            type Value = BboxJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a bbox [x, y, w, h]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BboxJson, A::Error> {
                let mut bbox = BboxJson {
                    values: [f64::NAN; 4],
                    len: 0,
                };
                // `null` (how some writers spell NaN) stays NaN and is counted as NotANumber later.
                while let Some(value) = seq.next_element::<Option<f64>>()? {
                    if let Some(slot) = bbox.values.get_mut(bbox.len) {
                        *slot = value.unwrap_or(f64::NAN);
                    }
                    bbox.len += 1;
                }
                Ok(bbox)
            }
        }
        deserializer.deserialize_seq(BboxVisitor)
    }
}

/// `iscrowd`: COCO writes 0/1; some converters write `true`/`false`.
#[derive(Default)]
struct Crowd(bool);

impl<'de> Deserialize<'de> for Crowd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CrowdVisitor;
        impl Visitor<'_> for CrowdVisitor {
            type Value = Crowd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("0, 1, true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Crowd, E> {
                Ok(Crowd(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Crowd, E> {
                Ok(Crowd(v != 0))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Crowd, E> {
                Ok(Crowd(v != 0))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Crowd, E> {
                Ok(Crowd(false))
            }
        }
        deserializer.deserialize_any(CrowdVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RawInstances, YoloError> {
        let dir = tempfile::tempdir().map_err(|source| YoloError::Io {
            path: "tmp".into(),
            source,
        })?;
        let path = dir.path().join("instances.json");
        std::fs::write(&path, text).map_err(|source| YoloError::Io {
            path: path.clone(),
            source,
        })?;
        read_instances(&path)
    }

    #[test]
    fn read_instances_annotations_before_images_all_kept() {
        let raw = parse(
            r#"{"annotations": [{"image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4], "area": 12.5,
                "iscrowd": 1, "segmentation": {"counts": [1, 2], "size": [5, 5]}}],
                "info": {"year": 2017},
                "images": [{"id": 7, "file_name": "a.jpg", "width": 10, "height": 20, "url": "x"}],
                "categories": [{"id": 3, "name": "cat", "supercategory": "animal"}]}"#,
        )
        .expect("parses");
        assert_eq!(
            raw.images,
            vec![RawImage {
                id: 7,
                file_name: "a.jpg".into(),
                width: 10,
                height: 20
            }]
        );
        assert_eq!(
            raw.categories,
            vec![RawCategory {
                id: 3,
                name: "cat".into()
            }]
        );
        let a = raw.annotations[0];
        assert_eq!(
            (a.image_id, a.category_id, a.bbox_xywh, a.area, a.crowd),
            (7, 3, [1.0, 2.0, 3.0, 4.0], 12.5, true)
        );
    }

    #[test]
    fn read_instances_short_bbox_is_counted_malformed() {
        let raw = parse(
            r#"{"images": [], "categories": [], "annotations": [
                {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3]},
                {"image_id": 1, "bbox": [1, 2, 3, 4]}]}"#,
        )
        .expect("parses");
        assert!(raw.annotations.is_empty());
        assert_eq!(raw.problems.counts(), vec![(ProblemKind::Malformed, 2)]);
        assert_eq!(raw.problems.items[1].line, Some(1));
    }

    #[test]
    fn read_instances_truncated_json_names_file() {
        let err = parse(r#"{"images": [{"id": 1"#).expect_err("truncated");
        assert!(err.to_string().contains("instances.json"), "{err}");
    }

    #[test]
    fn read_instances_missing_annotations_array_is_error() {
        let err = parse(r#"{"images": [], "categories": []}"#).expect_err("no annotations");
        assert!(err.to_string().contains("annotations"), "{err}");
    }
}
