//! Decoding images as Ultralytics does: EXIF orientation applied, grayscale / CMYK / 16-bit / alpha all turned
//! into 8-bit RGB.

use std::io::{Read, Seek, SeekFrom};
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
    if !jpeg_is_complete(path)? {
        return Err(ImageError::TruncatedJpeg);
    }
    Ok([image.width(), image.height()])
}

/// For a JPEG (starts with FF D8), whether it ends with the EOI marker FF D9, ignoring trailing zero padding
/// that some cameras write. Other formats are complete as far as this check goes.
fn jpeg_is_complete(path: &Path) -> std::io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let mut head = [0u8; 2];
    if file.read(&mut head)? < 2 || head != [0xFF, 0xD8] {
        return Ok(true);
    }
    let len = file.seek(SeekFrom::End(0))?;
    let tail_len = len.min(4096);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.read_to_end(&mut tail)?;
    let end = tail.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    Ok(tail[..end].ends_with(&[0xFF, 0xD9]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_is_complete_padding_ok_cut_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.jpg");
        std::fs::write(&path, [0xFF, 0xD8, 1, 2, 0xFF, 0xD9, 0, 0]).expect("write");
        assert!(jpeg_is_complete(&path).expect("reads"));
        std::fs::write(&path, [0xFF, 0xD8, 1, 2, 0xFF]).expect("write");
        assert!(!jpeg_is_complete(&path).expect("reads"));
        std::fs::write(&path, b"GIF89a").expect("write");
        assert!(jpeg_is_complete(&path).expect("reads"));
    }
}
