//! Boxes and their labels drawn onto images, as Ultralytics' `Annotator` does (ultralytics/utils/plotting.py,
//! 8.4.190): `predict` images take its default cv2 path (`Results.plot`), `data preview` its PIL path
//! (`plot_images`). The labels are set in the bundled DejaVu Sans instead of cv2's Hershey stroke font, at the
//! size that fills the same label tab.

use image::RgbImage;
use plotters::element::{Rectangle, Text};
use plotters::style::{Color, IntoFont, RGBColor};

use super::canvas::{draw_on, measure, Area, DrawResult, FAMILY};
use super::{class_colour, PALETTE};
use crate::eval::nms::Detection;
use crate::YoloError;

/// Where a box outline of width `lw` lies relative to the box's edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    /// Centred on the edges (cv2.rectangle).
    Centered,
    /// Inside the box (PIL's `ImageDraw.rectangle(width=…)`).
    Inside,
}

/// How big boxes and labels are drawn on one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelStyle {
    /// Box outline width in pixels.
    pub line_width: u32,
    /// Label em height in pixels.
    pub font_px: f64,
    /// Extra label-tab height beyond the text's line height (cv2's `h += 3`).
    pub tab_padding: u32,
    pub stroke: Stroke,
}

impl LabelStyle {
    /// Ultralytics' cv2 annotator for a `width` × `height` image: `lw = max(round(sum(im.shape) / 2 · 0.003), 2)`
    /// (`im.shape` is (h, w, 3), so the channels count too) and a label tab `cv2.getTextSize(...)[1] + 3` tall at
    /// font scale lw / 3, thickness lw − 1. That height is 9·lw for the Hershey simplex font (measured with
    /// OpenCV 5.1 for lw 2..12); the TTF text is sized so its line (ascender to descender) fills the tab less a
    /// pixel above and below.
    pub fn predict(width: u32, height: u32) -> Self {
        let mean = f64::from(width + height + 3) / 2.0;
        // Python's round: half to even.
        let line_width = ((mean * 0.003).round_ties_even() as u32).max(2);
        let tab = 9 * line_width + 3;
        let unit = measure("", 1.0).height();
        Self {
            line_width,
            font_px: f64::from(tab - 2) / unit,
            tab_padding: 2,
            stroke: Stroke::Centered,
        }
    }

    /// Ultralytics' PIL annotator (`plot_images`, which `data preview` draws): a truetype font of `font_size`
    /// pixels and boxes `line_width` wide inside their edges.
    pub fn pil(font_size: f64, line_width: u32) -> Self {
        Self {
            line_width: line_width.max(1),
            font_px: font_size,
            tab_padding: 0,
            stroke: Stroke::Inside,
        }
    }

    /// Height of a label tab in pixels.
    fn tab_height(&self) -> i32 {
        (measure("", self.font_px).height().round() as i32) + self.tab_padding as i32
    }
}

/// Ultralytics' `Annotator.get_txt_color`: the palette's light colours get dark navy text (#111F68), the rest
/// white (its `dark_colors` set, there in BGR).
pub fn text_colour(background: [u8; 3]) -> [u8; 3] {
    const LIGHT_BACKGROUNDS: [usize; 9] = [1, 2, 3, 5, 7, 8, 12, 14, 19];
    if LIGHT_BACKGROUNDS.iter().any(|&k| PALETTE[k] == background) {
        PALETTE[4]
    } else {
        [255; 3]
    }
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Fills `[x1, y1, x2, y2)` in pixels (clipped to the image by the backend).
fn fill(area: &Area<'_>, [x1, y1, x2, y2]: [i32; 4], colour: [u8; 3]) -> DrawResult {
    if x2 <= x1 || y2 <= y1 {
        return Ok(());
    }
    area.draw(&Rectangle::new([(x1, y1), (x2, y2)], rgb(colour).filled()))
}

/// A box outline `width` pixels wide.
fn outline(
    area: &Area<'_>,
    [x1, y1, x2, y2]: [i32; 4],
    colour: [u8; 3],
    width: u32,
    stroke: Stroke,
) -> DrawResult {
    let w = width as i32;
    // Outer edges of the band, centred on the box edge (an even width reaches a pixel further out than in).
    let (ox1, oy1, ox2, oy2) = match stroke {
        Stroke::Centered => (x1 - w / 2, y1 - w / 2, x2 - w / 2 + w, y2 - w / 2 + w),
        Stroke::Inside => (x1, y1, x2, y2),
    };
    let (ix1, iy1, ix2, iy2) = (ox1 + w, oy1 + w, ox2 - w, oy2 - w);
    fill(area, [ox1, oy1, ox2, iy1], colour)?;
    fill(area, [ox1, iy2, ox2, oy2], colour)?;
    fill(area, [ox1, iy1, ix1, iy2], colour)?;
    fill(area, [ix2, iy1, ox2, iy2], colour)
}

/// `Annotator.box_label`: the box, then `label` on a tab of the box's colour above its top-left corner, or just
/// inside it when there is no room above; a tab running off the right edge is moved left.
fn box_label(
    area: &Area<'_>,
    xyxy: [f64; 4],
    label: &str,
    colour: [u8; 3],
    style: &LabelStyle,
) -> DrawResult {
    // int(box[i]) truncates towards zero.
    let corners = xyxy.map(|v| v as i32);
    outline(area, corners, colour, style.line_width, style.stroke)?;
    if label.is_empty() {
        return Ok(());
    }
    let (image_w, _) = area.dim_in_pixel();
    let text_w = measure(label, style.font_px).width.ceil() as i32;
    let h = style.tab_height();
    let (mut x, y) = (corners[0], corners[1]);
    let outside = y >= h;
    if x > image_w as i32 - text_w {
        x = image_w as i32 - text_w;
    }
    let top = if outside { y - h } else { y };
    fill(area, [x, top, x + text_w, top + h], colour)?;
    let text_top = top + (style.tab_padding as i32) / 2;
    area.draw(&Text::new(
        label.to_string(),
        (x, text_top),
        (FAMILY, style.font_px)
            .into_font()
            .color(&rgb(text_colour(colour))),
    ))
}

/// One box to draw: corners in pixels, the class (for its colour) and the label text.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledBox {
    pub xyxy: [f64; 4],
    pub class: usize,
    pub label: String,
}

/// Draws `boxes` in order (later ones on top) with their labels.
pub fn draw_boxes(
    image: &mut RgbImage,
    boxes: &[LabelledBox],
    style: &LabelStyle,
) -> Result<(), YoloError> {
    draw_on(image, "box labels", |area| {
        for b in boxes {
            box_label(area, b.xyxy, &b.label, class_colour(b.class), style)?;
        }
        Ok(())
    })
}

/// `Results.plot()` for detections: each box in its class colour with a "name 0.87" tab, lowest confidence first
/// so that the most confident boxes end up on top (Ultralytics iterates `reversed(pred_boxes)`).
pub fn annotate_detections(
    image: &mut RgbImage,
    detections: &[Detection],
    names: &[String],
) -> Result<(), YoloError> {
    let style = LabelStyle::predict(image.width(), image.height());
    let mut order: Vec<&Detection> = detections.iter().collect();
    order.sort_by(|a, b| a.conf.total_cmp(&b.conf));
    let boxes: Vec<LabelledBox> = order
        .into_iter()
        .map(|d| {
            let name = names
                .get(d.class)
                .map_or_else(|| d.class.to_string(), Clone::clone);
            LabelledBox {
                xyxy: d.xyxy.map(f64::from),
                class: d.class,
                label: format!("{name} {:.2}", d.conf),
            }
        })
        .collect();
    draw_boxes(image, &boxes, &style)
}

/// Text with its top-left corner (ascender line) at `at`.
pub fn text(
    image: &mut RgbImage,
    at: (i32, i32),
    s: &str,
    colour: [u8; 3],
    font_px: f64,
) -> Result<(), YoloError> {
    draw_on(image, "text", |area| {
        area.draw(&Text::new(
            s.to_string(),
            at,
            (FAMILY, font_px).into_font().color(&rgb(colour)),
        ))
    })
}

/// An outline `width` pixels wide inside `[x1, y1, x2, y2)` (PIL's rectangle), e.g. the white mosaic borders.
pub fn rectangle_inside(
    image: &mut RgbImage,
    xyxy: [i32; 4],
    colour: [u8; 3],
    width: u32,
) -> Result<(), YoloError> {
    draw_on(image, "rectangle", |area| {
        outline(area, xyxy, colour, width, Stroke::Inside)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn predict_style_follows_ultralytics_line_width() {
        assert_eq!(LabelStyle::predict(640, 480).line_width, 2);
        // (1920 + 1080 + 3) / 2 · 0.003 = 4.5045 → 5.
        assert_eq!(LabelStyle::predict(1920, 1080).line_width, 5);
        assert_eq!(LabelStyle::predict(4000, 3000).line_width, 11);
        // The tab is cv2's 9·lw + 3 tall.
        let style = LabelStyle::predict(640, 480);
        assert_eq!(style.tab_height(), 21);
    }

    #[test]
    fn text_colour_dark_on_light_palette_entries() {
        assert_eq!(text_colour(PALETTE[0]), [255; 3]);
        assert_eq!(text_colour(PALETTE[1]), [0x11, 0x1F, 0x68]);
        assert_eq!(text_colour(PALETTE[2]), [0x11, 0x1F, 0x68]);
        assert_eq!(text_colour(PALETTE[4]), [255; 3]);
    }

    #[test]
    fn annotate_draws_box_edges_in_class_colour_at_line_width() {
        let mut image = RgbImage::from_pixel(640, 480, Rgb([128, 128, 128]));
        let det = Detection {
            xyxy: [100.0, 200.0, 300.0, 400.0],
            conf: 0.87,
            class: 5,
        };
        let names = vec!["a".to_string(); 6];
        annotate_detections(&mut image, &[det], &names).expect("drawn");
        let colour = PALETTE[5];
        // lw 2, centred on x = 100: columns 99 and 100; 98 and 101 stay grey.
        let row = 300;
        assert_eq!(image.get_pixel(99, row).0, colour);
        assert_eq!(image.get_pixel(100, row).0, colour);
        assert_eq!(image.get_pixel(98, row).0, [128; 3]);
        assert_eq!(image.get_pixel(101, row).0, [128; 3]);
        // The label tab: above the box, 21 px tall, in the class colour with text in it.
        assert_eq!(image.get_pixel(101, 200 - 20).0, colour);
        assert_eq!(image.get_pixel(101, 200 - 22).0, [128; 3]);
        let tab_ink = (100..140)
            .flat_map(|x| (179..200).map(move |y| (x, y)))
            .filter(|&(x, y)| image.get_pixel(x, y).0 != colour)
            .count();
        assert!(tab_ink > 20, "{tab_ink} text pixels in the tab");
    }

    #[test]
    fn label_goes_inside_a_box_at_the_top_edge() {
        let mut image = RgbImage::from_pixel(200, 100, Rgb([0, 0, 0]));
        let boxes = [LabelledBox {
            xyxy: [150.0, 5.0, 199.0, 90.0],
            class: 0,
            label: "person 0.91".into(),
        }];
        let style = LabelStyle::predict(200, 100);
        draw_boxes(&mut image, &boxes, &style).expect("drawn");
        // No room above (y = 5 < 21): the tab starts at the box's top, and it is moved left to fit the image.
        let w = measure("person 0.91", style.font_px).width.ceil() as u32;
        assert!(w > 60 && w < 140, "{w}");
        assert_eq!(image.get_pixel(200 - w, 6).0, PALETTE[0]);
        assert_eq!(image.get_pixel(200 - w - 1, 6).0, [0; 3]);
        assert_eq!(image.get_pixel(200 - w, 25).0, PALETTE[0]);
        assert_eq!(image.get_pixel(200 - w, 26).0, [0; 3]);
    }
}
