//! Annotated copies of images: each detection's box in its class colour with a "name 0.87" tab, drawn with the
//! same palette and bundled bitmap font as `data preview` (no system font).

use image::RgbImage;

use crate::data::preview::{box_label, class_colour, rectangle};
use crate::eval::nms::Detection;

/// Draws `detections` onto `image`. Line width follows Ultralytics' `Annotator`: about 0.3% of the image's mean
/// side, at least 2 pixels.
pub fn annotate(image: &mut RgbImage, detections: &[Detection], names: &[String]) {
    let mean_side = f64::from(image.width() + image.height()) / 2.0;
    let line = ((mean_side * 0.003).round() as i64).max(2);
    let text_scale = (line / 2).max(1);
    for det in detections {
        let xyxy = det.xyxy.map(|v| v.round() as i64);
        let colour = class_colour(det.class);
        rectangle(image, xyxy, colour, line);
        let name = names
            .get(det.class)
            .map_or_else(|| det.class.to_string(), Clone::clone);
        box_label(
            image,
            xyxy,
            &format!("{name} {:.2}", det.conf),
            colour,
            text_scale,
        );
    }
}
