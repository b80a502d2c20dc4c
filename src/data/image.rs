//! Decoding images as Ultralytics does: EXIF orientation applied, grayscale / CMYK / 16-bit / alpha all turned
//! into 8-bit RGB.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

/// Why an image could not be read; `MissingImage` and `UnreadableImage` problems carry its text.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("file not found")]
    Missing,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Decode(#[from] image::ImageError),
}

impl ImageError {
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing)
    }
}

fn open(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>, ImageError> {
    match ImageReader::open(path) {
        Ok(reader) => Ok(reader.with_guessed_format()?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ImageError::Missing),
        Err(e) => Err(ImageError::Io(e)),
    }
}

/// Decodes `path` fully into 8-bit RGB, upright (EXIF orientation applied).
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    let mut decoder = open(path)?.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Width and height after EXIF orientation, from the header alone, checking that the whole file decodes.
///
/// A truncated JPEG has a valid header, so the header alone would accept it; Ultralytics' `verify_image_label`
/// also decodes (and checks the JPEG end marker). Decoding costs about as much as the training loader's first
/// read, and the result is cached in the index file.
pub fn verified_size(path: &Path) -> Result<[u32; 2], ImageError> {
    let image = load_rgb(path)?;
    Ok([image.width(), image.height()])
}
