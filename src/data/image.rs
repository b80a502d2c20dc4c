//! Decoding images as Ultralytics does: EXIF orientation applied, grayscale / CMYK / 16-bit / alpha all turned
//! into 8-bit RGB.
//!
//! Ultralytics reads images with `cv2.imread`, whose JPEG decoder is libjpeg-turbo. Other JPEG decoders round
//! the IDCT and the chroma upsampling differently (zune-jpeg moved boxes by 0.3 px at the median downstream), so
//! JPEGs go through libjpeg-turbo's own code (mozjpeg's decoder) with its defaults, the ones OpenCV keeps: the
//! accurate integer IDCT and fancy upsampling. `scripts/jpeg_reference.py` and `tests/jpeg_decode.rs` check the
//! bytes against cv2. Every other format goes through the `image` crate.

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use mozjpeg::{ColorSpace, Decompress, Marker};

/// Why an image could not be read; `MissingImage` and `UnreadableImage` problems carry its text.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("file not found")]
    Missing,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Decode(#[from] image::ImageError),
    /// libjpeg's own message, e.g. "libjpeg fatal error: Bogus marker length".
    #[error("{0}")]
    Jpeg(String),
    /// The decoder fills a truncated JPEG scan with grey and succeeds; Ultralytics' `verify_image_label` checks
    /// the end marker, and so do we.
    #[error("JPEG has no end-of-image marker (truncated)")]
    TruncatedJpeg,
}

impl ImageError {
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing)
    }
}

/// Every JPEG starts with the start-of-image marker; the file name's extension is not trusted.
const JPEG_SOI: [u8; 2] = [0xFF, 0xD8];

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ImageError::Missing),
        Err(e) => Err(ImageError::Io(e)),
    }
}

/// Decodes `path` fully into 8-bit RGB, upright (EXIF orientation applied).
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    decode(&read(path)?)
}

fn decode(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    let (mut image, orientation) = if bytes.starts_with(&JPEG_SOI) {
        let jpeg = decode_jpeg(bytes)?;
        (DynamicImage::ImageRgb8(jpeg.rgb), jpeg.orientation)
    } else {
        let mut decoder = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()?
            .into_decoder()?;
        let orientation = decoder.orientation()?;
        (DynamicImage::from_decoder(decoder)?, orientation)
    };
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Width and height after EXIF orientation, checking that the whole file decodes.
///
/// A truncated JPEG has a valid header, so the header alone would accept it; Ultralytics' `verify_image_label`
/// also decodes (and checks the JPEG end marker). Decoding costs about as much as the training loader's first
/// read, and the result is cached in the index file.
pub fn verified_size(path: &Path) -> Result<[u32; 2], ImageError> {
    let bytes = read(path)?;
    let image = decode(&bytes)?;
    if !jpeg_is_complete(&bytes) {
        return Err(ImageError::TruncatedJpeg);
    }
    Ok([image.width(), image.height()])
}

/// For a JPEG (starts with FF D8), whether it ends with the EOI marker FF D9, ignoring trailing zero padding
/// that some cameras write. Other formats are complete as far as this check goes.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&JPEG_SOI) {
        return true;
    }
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes[..end].ends_with(&[0xFF, 0xD9])
}

/// A decoded JPEG, still as stored: `orientation` is yet to be applied.
struct Jpeg {
    rgb: RgbImage,
    orientation: Orientation,
}

/// libjpeg reports a fatal error through `error_exit`, whose default calls `exit()`; the mozjpeg crate replaces
/// it with an unwind (its C is built with `-fexceptions`), which we catch here and turn into an error.
fn decode_jpeg(bytes: &[u8]) -> Result<Jpeg, ImageError> {
    match std::panic::catch_unwind(|| decode_jpeg_unwinding(bytes)) {
        Ok(result) => result.map_err(|e| ImageError::Jpeg(format!("libjpeg: {e}"))),
        Err(payload) => Err(ImageError::Jpeg(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg failed".into()),
        )),
    }
}

/// OpenCV's `JpegDecoder::readData` for `IMREAD_COLOR`: libjpeg converts YCbCr, RGB and grayscale (replicated)
/// to RGB itself; four-component files (CMYK, or YCCK that libjpeg turns into CMYK) come out as CMYK and are
/// converted by [`cmyk_to_rgb`]. Warnings (corrupt but decodable data) are ignored, as cv2 only prints them.
fn decode_jpeg_unwinding(bytes: &[u8]) -> std::io::Result<Jpeg> {
    let decompress = Decompress::builder()
        .with_markers(&[Marker::APP(1)])
        .from_mem(bytes)?;
    let orientation = exif_orientation(&decompress);
    let four_components = decompress.components().len() == 4;
    let out_space = if four_components {
        ColorSpace::JCS_CMYK
    } else {
        ColorSpace::JCS_RGB
    };
    let mut started = decompress.to_colorspace(out_space)?;
    let (width, height) = (started.width(), started.height());
    let pixels: Vec<u8> = started.read_scanlines()?;
    // No `jpeg_finish_decompress`: it only reads on to the end marker, and OpenCV keeps the image when that
    // fails (a bad marker after the last row), so an error there must not refuse it here either.
    let rgb = if four_components {
        cmyk_to_rgb(&pixels)
    } else {
        pixels
    };
    let too_large = || std::io::Error::other(format!("{width}x{height} is too large"));
    let width = u32::try_from(width).map_err(|_| too_large())?;
    let height = u32::try_from(height).map_err(|_| too_large())?;
    let rgb = RgbImage::from_raw(width, height, rgb).ok_or_else(|| {
        std::io::Error::other("libjpeg returned fewer rows than the header gives")
    })?;
    Ok(Jpeg { rgb, orientation })
}

/// OpenCV's `icvCvt_CMYK2BGR_8u_C4C3R`, which reads Adobe's inverted CMYK: R = k - (255 - c)·k / 256.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = i32::from(px[3]);
        for &c in &px[..3] {
            rgb.push((k - (((255 - i32::from(c)) * k) >> 8)) as u8);
        }
    }
    rgb
}

/// The orientation tag of the first APP1 segment that holds EXIF (as OpenCV's `ExifReader` looks for it);
/// upright when there is none or it cannot be parsed.
fn exif_orientation<R>(decompress: &Decompress<R>) -> Orientation {
    const EXIF_HEADER: &[u8] = b"Exif\0\0";
    decompress
        .markers()
        .find(|m| m.marker == Marker::APP(1) && m.data.starts_with(EXIF_HEADER))
        .and_then(|m| Orientation::from_exif_chunk(&m.data[EXIF_HEADER.len()..]))
        .unwrap_or(Orientation::NoTransforms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4:2:0 JPEG from the `image` crate's encoder, so the tests need no files.
    fn small_jpeg() -> Vec<u8> {
        let image = RgbImage::from_fn(40, 24, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 10) as u8, 128])
        });
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&image)
            .expect("encodes");
        bytes
    }

    #[test]
    fn jpeg_is_complete_padding_ok_cut_refused() {
        assert!(jpeg_is_complete(&[0xFF, 0xD8, 1, 2, 0xFF, 0xD9, 0, 0]));
        assert!(!jpeg_is_complete(&[0xFF, 0xD8, 1, 2, 0xFF]));
        assert!(jpeg_is_complete(b"GIF89a"));
    }

    #[test]
    fn decode_jpeg_size_and_colour_kept() {
        let image = decode(&small_jpeg()).expect("decodes");
        assert_eq!(image.dimensions(), (40, 24));
        let px = image.get_pixel(20, 12).0;
        assert!(
            px.iter()
                .zip([120u8, 120, 128])
                .all(|(&a, b)| a.abs_diff(b) <= 4),
            "{px:?}"
        );
    }

    #[test]
    fn decode_corrupt_jpeg_is_error_not_panic() {
        let jpeg = small_jpeg();
        let mut garbage = vec![0xFF, 0xD8];
        garbage.extend((0..500u32).map(|i| (i * 37 % 251) as u8));
        for bytes in [&jpeg[..2], &jpeg[..jpeg.len() / 8], &garbage[..]] {
            let err = decode(bytes).expect_err("refused");
            assert!(matches!(err, ImageError::Jpeg(_)), "{err:?}");
        }
    }

    #[test]
    fn verified_size_truncated_jpeg_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cut.jpg");
        let jpeg = small_jpeg();
        // libjpeg fills the missing scan with grey, like cv2, so only the end-marker check refuses it.
        std::fs::write(&path, &jpeg[..jpeg.len() * 3 / 4]).expect("write");
        assert!(load_rgb(&path).is_ok());
        assert!(matches!(
            verified_size(&path),
            Err(ImageError::TruncatedJpeg)
        ));
        std::fs::write(&path, &jpeg).expect("write");
        assert_eq!(verified_size(&path).expect("complete"), [40, 24]);
    }

    #[test]
    fn cmyk_to_rgb_matches_opencv_formula() {
        // Inverted (Adobe) CMYK: k = 255 and c = 0 is full red ink removed, i.e. R = 1 after OpenCV's >> 8.
        assert_eq!(
            cmyk_to_rgb(&[0, 255, 255, 255, 3, 24, 109, 255]),
            vec![1, 255, 255, 4, 25, 110]
        );
        assert_eq!(cmyk_to_rgb(&[200, 100, 0, 0]), vec![0, 0, 0]);
    }
}
