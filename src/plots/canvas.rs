//! The surface every picture is drawn on: plotters' bitmap backend writing straight into an `image::RgbImage`'s
//! buffer, with text set in the bundled DejaVu Sans (`assets/fonts`, Bitstream Vera licence), so no system font,
//! freetype or fontconfig is involved and every machine draws the same pixels.
//!
//! Text goes through [`TtfBackend`], which wraps the bitmap backend and places glyphs itself with ab_glyph:
//! plotters 0.3.7's own ab_glyph path puts the baseline half a font size below the anchor (top-anchored text
//! sticks out above its box) and drops each glyph's left bearing. Sizes are em heights in pixels, as PIL's
//! `truetype(font, size)` and matplotlib's points × dpi / 72 are.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, PxScaleFont, ScaleFont};
use image::{Rgb, RgbImage};
use plotters::backend::BitMapBackend;
use plotters::coord::Shift;
use plotters::drawing::{DrawingArea, DrawingAreaErrorKind, IntoDrawingArea};
use plotters::style::FontStyle;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

use crate::YoloError;

/// DejaVu Sans as matplotlib ships it; regular weight only, to keep the binary ~0.75 MB smaller than with bold.
const DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name every text style of the plots uses (registered with plotters too).
pub const FAMILY: &str = "DejaVu Sans";

/// The parsed font, registered with plotters on first use so that plotters' own text measurements (series
/// legends) know it as well.
pub(crate) fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        // Fails only for bytes that are not a font; the same bytes are parsed just below, where that would show.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS);
        FontRef::try_from_slice(DEJAVU_SANS)
            .expect("assets/fonts/DejaVuSans.ttf is a TrueType font (checked by the tests)")
    })
}

/// The font at an em height of `px` pixels.
fn scaled(px: f64) -> PxScaleFont<&'static FontRef<'static>> {
    let font = font();
    let em_units = font.units_per_em().unwrap_or(2048.0);
    // ab_glyph scales by ascent − descent; convert the em height to that.
    let scale = px as f32 * font.height_unscaled() / em_units;
    font.as_scaled(PxScale::from(scale))
}

/// The extent of one line of text, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextExtent {
    /// Sum of the advances (and kerning).
    pub width: f64,
    /// Above the baseline: the font's ascender, the same for every string.
    pub ascent: f64,
    /// Below the baseline (positive): the font's descender.
    pub descent: f64,
}

impl TextExtent {
    /// Line height: ascent + descent.
    pub fn height(&self) -> f64 {
        self.ascent + self.descent
    }
}

/// How much room `text` takes at an em height of `px` pixels.
pub fn measure(text: &str, px: f64) -> TextExtent {
    let f = scaled(px);
    let mut width = 0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            width += f.kern(p, id);
        }
        width += f.h_advance(id);
        prev = Some(id);
    }
    TextExtent {
        width: f64::from(width),
        ascent: f64::from(f.ascent()),
        descent: f64::from(-f.descent()),
    }
}

/// Rasterises `text` with its baseline starting at `origin` (sub-pixel), calling `put(x, y, coverage)` for
/// every touched pixel.
fn rasterize(text: &str, px: f64, origin: (f32, f32), mut put: impl FnMut(i32, i32, f32)) {
    let f = scaled(px);
    let mut x = origin.0;
    let mut prev = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            x += f.kern(p, id);
        }
        let glyph = id.with_scale_and_position(f.scale(), point(x, origin.1));
        if let Some(outline) = f.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            let (x0, y0) = (bounds.min.x as i32, bounds.min.y as i32);
            outline.draw(|gx, gy, coverage| put(x0 + gx as i32, y0 + gy as i32, coverage));
        }
        x += f.h_advance(id);
        prev = Some(id);
    }
}

/// plotters' bitmap backend with the text of this module; every other primitive is the bitmap backend's own.
pub struct TtfBackend<'a> {
    inner: BitMapBackend<'a>,
}

/// The bitmap backend's error (it only fails on a wrongly sized buffer, which [`draw_on`] rules out).
pub(crate) type BackendError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;
/// What a drawing step returns.
pub(crate) type DrawResult<T = ()> = Result<T, DrawingAreaErrorKind<BackendError>>;
/// A drawing area of the canvas, in pixels from its top-left corner.
pub(crate) type Area<'a> = DrawingArea<TtfBackend<'a>, Shift>;

impl<'a> DrawingBackend for TtfBackend<'a> {
    type ErrorType = BackendError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<BackendError>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    /// The anchor is a corner or middle of the line box (ascender to descender, advance width), as matplotlib
    /// aligns text.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<BackendError>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let px = style.size();
        let extent = measure(text, px);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Right => -extent.width,
            HPos::Center => -extent.width / 2.0,
        };
        let top = match anchor.v_pos {
            VPos::Top => 0.0,
            VPos::Center => -extent.height() / 2.0,
            VPos::Bottom => -extent.height(),
        };
        let origin = (dx as f32, (top + extent.ascent) as f32);
        let transform = style.transform();
        let (w, h) = self.get_size();
        let mut result = Ok(());
        rasterize(text, px, origin, |x, y, coverage| {
            let (x, y) = transform.transform(x, y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            let inside = x >= 0 && y >= 0 && x < w as i32 && y < h as i32;
            if inside && result.is_ok() && coverage > 0.0 {
                let alpha = color.alpha * f64::from(coverage.min(1.0));
                result = self.inner.draw_pixel(
                    (x, y),
                    BackendColor {
                        alpha,
                        rgb: color.rgb,
                    },
                );
            }
        });
        result
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<BackendError>> {
        let extent = measure(text, style.size());
        Ok((extent.width.ceil() as u32, extent.height().ceil() as u32))
    }
}

/// A white canvas of `width` × `height` pixels.
pub(crate) fn blank(width: u32, height: u32) -> RgbImage {
    RgbImage::from_pixel(width, height, Rgb([255; 3]))
}

/// Runs `paint` on the whole of `image` and keeps what it drew; `what` names the picture in an error.
pub(crate) fn draw_on(
    image: &mut RgbImage,
    what: &str,
    paint: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<(), YoloError> {
    font();
    let size = image.dimensions();
    let area = TtfBackend {
        inner: BitMapBackend::with_buffer(image.as_mut(), size),
    }
    .into_drawing_area();
    paint(&area)
        .and_then(|()| area.present())
        .map_err(|e| YoloError::Plot {
            what: what.to_string(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    #[test]
    fn bundled_font_parses_and_measures() {
        let e = measure("mAP50", 20.0);
        // DejaVu Sans: ascender 0.928 em, descender 0.236 em.
        assert!((e.ascent - 18.56).abs() < 0.05, "{e:?}");
        assert!((e.descent - 4.72).abs() < 0.05, "{e:?}");
        assert!(e.width > 50.0 && e.width < 80.0, "{e:?}");
        assert!(measure("mAP50-95", 20.0).width > e.width);
    }

    #[test]
    fn top_anchored_text_stays_below_its_anchor() {
        let mut image = blank(200, 60);
        draw_on(&mut image, "test", |area| {
            area.draw(&Text::new(
                "Hillbilly |",
                (10, 20),
                (FAMILY, 24.0).into_font().color(&BLACK),
            ))
        })
        .expect("drawn");
        let ink_rows: Vec<u32> = (0..60)
            .filter(|&y| (0..200).any(|x| image.get_pixel(x, y).0[0] < 128))
            .collect();
        let (first, last) = (ink_rows[0], *ink_rows.last().expect("ink"));
        assert!(first >= 20, "ink starts at row {first}, above the anchor");
        // The bar descends below the baseline (20 + 0.928 · 24 ≈ 42).
        assert!((44..=50).contains(&last), "ink ends at row {last}");
    }
}
