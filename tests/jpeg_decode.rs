//! `load_rgb` gives cv2.imread's JPEG pixels byte for byte (libjpeg-turbo 3.1.2 in opencv-python 5.1.0): five
//! coco128 images from ../shared and the small files of tests/data/jpeg (chroma subsampling, progressive,
//! restart markers, CMYK, EXIF orientation), against tests/data/jpeg_reference.json from
//! scripts/jpeg_reference.py.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use yolo_burn::data::image::load_rgb;

mod common;
use common::shared;

#[derive(Deserialize)]
struct Reference {
    crop_xy: [u32; 2],
    crop_size: u32,
    coco128: Vec<Case>,
    generated: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    path: String,
    width: u32,
    height: u32,
    sha256: String,
    /// `crop_size` rows of `crop_size` RGB pixels from `crop_xy`.
    crop: Vec<Vec<[u8; 3]>>,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn reference() -> Reference {
    let path = manifest_dir().join("tests/data/jpeg_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("jpeg_reference.json parses")
}

/// Decodes `path` and compares with `case`: the crop first, so that a mismatch shows pixels, then every byte.
fn check(path: &Path, case: &Case, [x0, y0]: [u32; 2], size: u32) {
    let image = load_rgb(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        image.dimensions(),
        (case.width, case.height),
        "{}: size",
        case.path
    );
    let crop: Vec<Vec<[u8; 3]>> = (y0..y0 + size)
        .map(|y| (x0..x0 + size).map(|x| image.get_pixel(x, y).0).collect())
        .collect();
    assert_eq!(
        crop, case.crop,
        "{}: 8x8 crop at ({x0}, {y0}), rows of RGB",
        case.path
    );
    let sha256: String = Sha256::digest(image.as_raw())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        sha256, case.sha256,
        "{}: SHA-256 of the RGB bytes",
        case.path
    );
}

#[test]
fn coco128_jpegs_decode_as_cv2_imread() {
    let reference = reference();
    let coco128 = shared("datasets/coco128");
    assert_eq!(reference.coco128.len(), 5);
    for case in &reference.coco128 {
        check(
            &coco128.join(&case.path),
            case,
            reference.crop_xy,
            reference.crop_size,
        );
    }
}

#[test]
fn generated_jpegs_decode_as_cv2_imread() {
    let reference = reference();
    let folder = manifest_dir().join("tests/data/jpeg");
    assert_eq!(reference.generated.len(), 6);
    for case in &reference.generated {
        check(
            &folder.join(&case.path),
            case,
            reference.crop_xy,
            reference.crop_size,
        );
    }
}
