//! `resize_bilinear`, `resize_area` and the predictor's `Letterbox` against cv2 5.1 and ultralytics 8.4.190, byte
//! for byte: the SHA-256 of every output must match. Cases come from scripts/resize_reference.py
//! (tests/data/resize_cv2.json); `RESIZE_CV2_CASES=<file>` points the tests at another case file, such as the
//! script's `--full` grid with the coco128 images.

use std::path::PathBuf;

use image::RgbImage;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use yolo_burn::data::augment::resize::{resize_area, resize_bilinear};
use yolo_burn::data::augment::{Letterbox, Sample};

#[derive(Debug, Deserialize)]
struct Cases {
    resize: Vec<ResizeCase>,
    letterbox: Vec<LetterboxCase>,
}

/// Where a case's source pixels come from: regenerated noise, or a PNG that cv2 decoded and wrote.
#[derive(Debug, Deserialize)]
struct Source {
    src: [u32; 2],
    seed: Option<u32>,
    png: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct ResizeCase {
    #[serde(flatten)]
    source: Source,
    dst: [u32; 2],
    interpolation: String,
    sha256: String,
}

#[derive(Debug, Deserialize)]
struct LetterboxCase {
    #[serde(flatten)]
    source: Source,
    unpadded: [u32; 2],
    pad_left_top: [u32; 2],
    canvas: [u32; 2],
    sha256: String,
}

fn cases() -> Cases {
    let path = std::env::var_os("RESIZE_CV2_CASES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/resize_cv2.json"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// scripts/resize_reference.py's `pattern`: byte `i` is the top byte of an integer hash of `(seed, i)`.
fn pattern(seed: u32, [w, h]: [u32; 2]) -> RgbImage {
    let bytes = (0..w * h * 3)
        .map(|i| {
            let mut x = i
                .wrapping_mul(0x9E37_79B1)
                .wrapping_add(seed.wrapping_mul(0x85EB_CA77));
            x ^= x >> 15;
            x = x.wrapping_mul(0x2C1B_3C6D);
            x ^= x >> 12;
            x = x.wrapping_mul(0x297A_2D39);
            x ^= x >> 15;
            (x >> 24) as u8
        })
        .collect();
    RgbImage::from_raw(w, h, bytes).expect("w·h·3 bytes")
}

impl Source {
    fn image(&self) -> RgbImage {
        let image = match (&self.png, self.seed) {
            (Some(png), _) => image::open(png)
                .unwrap_or_else(|e| panic!("{}: {e}", png.display()))
                .to_rgb8(),
            (None, Some(seed)) => pattern(seed, self.src),
            (None, None) => panic!("case without seed or png: {self:?}"),
        };
        assert_eq!(image.dimensions(), self.src.into(), "{self:?}");
        image
    }

    fn name(&self) -> String {
        match &self.png {
            Some(png) => png.display().to_string(),
            None => format!("{:?} seed {:?}", self.src, self.seed),
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs every case of `interpolation` and lists the mismatches.
fn check_resize(interpolation: &str, resize: fn(&RgbImage, [u32; 2]) -> RgbImage) {
    let cases = cases();
    let mut failed = Vec::new();
    let mut n = 0;
    for case in cases
        .resize
        .iter()
        .filter(|c| c.interpolation == interpolation)
    {
        n += 1;
        let out = resize(&case.source.image(), case.dst);
        assert_eq!(out.dimensions(), case.dst.into());
        if sha256_hex(out.as_raw()) != case.sha256 {
            failed.push(format!("{} -> {:?}", case.source.name(), case.dst));
        }
    }
    assert!(n > 0, "no {interpolation} cases");
    assert!(
        failed.is_empty(),
        "{} of {n} {interpolation} cases differ from cv2:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn resize_bilinear_equals_cv2_inter_linear() {
    check_resize("linear", resize_bilinear);
}

#[test]
fn resize_area_equals_cv2_inter_area() {
    check_resize("area", resize_area);
}

#[test]
fn letterbox_fit_rect_equals_ultralytics_predictor_letterbox() {
    let cases = cases();
    assert!(cases.letterbox.len() >= 3);
    let mut failed = Vec::new();
    for case in &cases.letterbox {
        let image = case.source.image();
        let lb = Letterbox::fit_rect(case.source.src, 640, 32);
        assert_eq!(
            (lb.unpadded, lb.pad_left_top, lb.canvas),
            (case.unpadded, case.pad_left_top, case.canvas),
            "{}",
            case.source.name()
        );
        let out = lb.apply(&Sample {
            image,
            boxes: Vec::new(),
        });
        if sha256_hex(out.image.as_raw()) != case.sha256 {
            failed.push(case.source.name());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} letterboxed images differ from Ultralytics':\n{}",
        failed.len(),
        cases.letterbox.len(),
        failed.join("\n")
    );
}
