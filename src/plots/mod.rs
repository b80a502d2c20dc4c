//! Every picture yolo-burn writes, in one place and on one plotting crate (plotters, bitmap backend, bundled TTF
//! font): the training curves (`results.png`), what `val` and the end of training leave (PR/F1/P/R curves and
//! the two confusion matrices), and boxes with labels on images (`predict`, `data preview`). The layouts copy
//! Ultralytics' matplotlib figures (sizes, dpi, colours, legends) so that runs of both can be compared side by
//! side.
//!
//! - [`canvas`]: the font, the text-correct backend, drawing into an `image::RgbImage`
//! - [`results`]: the 2×5 panels of `results.png`, and the Gaussian smoothing line
//! - [`curves`]: `PR_curve.png`, `F1_curve.png`, `P_curve.png`, `R_curve.png`
//! - [`confusion`]: `confusion_matrix.png`, `confusion_matrix_normalized.png`
//! - [`annotate`]: Ultralytics' `Annotator.box_label` on images

pub mod annotate;
pub mod canvas;
pub mod confusion;
pub mod curves;
pub mod results;

use std::path::Path;

use image::RgbImage;
use plotters::chart::{ChartBuilder, ChartContext};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::{Circle, PathElement, Rectangle, Text};
use plotters::prelude::{Cartesian2d, DrawingArea};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color, IntoFont, RGBColor, ShapeStyle, TextStyle, BLACK, WHITE};

use crate::model::weights::write_atomic;
use crate::YoloError;
use canvas::{measure, Area, DrawResult, TtfBackend, FAMILY};

/// Ultralytics' `Colors.hexs` (ultralytics/utils/plotting.py): class `c` gets `PALETTE[c % 20]`.
pub const PALETTE: [[u8; 3]; 20] = [
    [0x04, 0x2A, 0xFF],
    [0x0B, 0xDB, 0xEB],
    [0xF3, 0xF3, 0xF3],
    [0x00, 0xDF, 0xB7],
    [0x11, 0x1F, 0x68],
    [0xFF, 0x6F, 0xDD],
    [0xFF, 0x44, 0x4F],
    [0xCC, 0xED, 0x00],
    [0x00, 0xF3, 0x44],
    [0xBD, 0x00, 0xFF],
    [0x00, 0xB4, 0xFF],
    [0xDD, 0x00, 0xBA],
    [0x00, 0xFF, 0xFF],
    [0x26, 0xC0, 0x00],
    [0x01, 0xFF, 0xB3],
    [0x7D, 0x24, 0xFF],
    [0x7B, 0x00, 0x68],
    [0xFF, 0x1B, 0x6C],
    [0xFC, 0x6D, 0x2F],
    [0xA2, 0xFF, 0x0B],
];

/// The colour of class `c`.
pub fn class_colour(c: usize) -> [u8; 3] {
    PALETTE[c % PALETTE.len()]
}

/// matplotlib's default colour cycle (`tab10`), for per-class curves and the results lines.
const TAB10: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Writes `image` as PNG to `path` (atomically, as results.csv and the checkpoints are written).
pub fn save_png(path: &Path, image: &RgbImage) -> Result<(), YoloError> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| YoloError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    write_atomic(path, &bytes)
}

/// Lengths of a figure in typographic points, turned into pixels at the figure's dpi, as matplotlib sizes
/// fonts and lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Points {
    /// Pixels per point: dpi / 72.
    pub px_per_pt: f64,
}

impl Points {
    pub(crate) fn at_dpi(dpi: f64) -> Self {
        Self {
            px_per_pt: dpi / 72.0,
        }
    }

    /// `pt` points in pixels.
    pub(crate) fn px(&self, pt: f64) -> f64 {
        pt * self.px_per_pt
    }

    /// `pt` points in whole pixels, at least one.
    pub(crate) fn px_u32(&self, pt: f64) -> u32 {
        (pt * self.px_per_pt).round().max(1.0) as u32
    }
}

/// Tick values at "nice" steps (1, 2, 2.5, 5 × 10^k, as matplotlib's `MaxNLocator`) inside `lo..=hi`, with
/// steps of at least a `bins`-th of the range, and the decimals their labels need.
pub(crate) fn nice_ticks(lo: f64, hi: f64, bins: usize) -> (Vec<f64>, usize) {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return (vec![lo], 2);
    }
    let raw = span / bins.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let (mantissa, step) = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|&m| (m, m * magnitude))
        .find(|&(_, s)| s >= raw * (1.0 - 1e-9))
        .unwrap_or((10.0, 10.0 * magnitude));
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    let exponent = (step / mantissa).log10().round() as i32;
    let mut decimals = (-exponent).max(0) as usize;
    if mantissa == 2.5 {
        decimals += 1;
    }
    if mantissa == 10.0 {
        decimals = decimals.saturating_sub(1);
    }
    (ticks, decimals)
}

/// One matplotlib axes: its limits, labels and font sizes.
pub(crate) struct AxesSpec<'s> {
    pub title: &'s str,
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub x_label: Option<&'s str>,
    pub y_label: Option<&'s str>,
    /// Font sizes in points: title, axis labels, tick labels.
    pub title_pt: f64,
    pub label_pt: f64,
    pub tick_pt: f64,
}

/// A linear f64 axis with the ticks [`nice_ticks`] chose (plotters' own `WithKeyPoints` wrapper loses the
/// label formatter of f64 axes, so the mesh could not be drawn with it).
#[derive(Clone)]
pub(crate) struct TickedAxis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Self {
        Self {
            linear: (lo..hi).into(),
            ticks,
        }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.linear.range()
    }
}

/// A chart whose axes carry their own tick values.
pub(crate) type Chart<'a, 'b> =
    ChartContext<'a, TtfBackend<'b>, Cartesian2d<TickedAxis, TickedAxis>>;

/// Draws a framed axes filling `area` (title above, tick labels and axis labels outside the frame) and returns
/// the chart to plot into.
pub(crate) fn axes<'a, 'b>(
    area: &'a DrawingArea<TtfBackend<'b>, Shift>,
    spec: &AxesSpec<'_>,
    pt: Points,
) -> DrawResult<Chart<'a, 'b>> {
    let tick_px = pt.px(spec.tick_pt);
    let label_px = pt.px(spec.label_pt);
    let tick_len = pt.px_u32(3.5);
    let pad = pt.px(3.5);
    let tick_height = measure("0", tick_px).height();
    let label_height = measure("Xg", label_px).height();
    let x_area = tick_height
        + f64::from(tick_len)
        + pad
        + spec.x_label.map_or(0.0, |_| label_height + pad)
        + pad;
    // The title sits 6 pt above the frame, centred on it (matplotlib's axes title), not on the whole cell.
    let title_px = pt.px(spec.title_pt);
    let title_pad = pt.px(6.0);
    let title_room = if spec.title.is_empty() {
        0.0
    } else {
        measure(spec.title, title_px).height() + title_pad
    };
    let margin_top = pt.px_u32(4.0) + title_room.ceil() as u32;
    let margin_left = pt.px_u32(2.0);
    // matplotlib's MaxNLocator("auto"): as many intervals as tick labels fit, at most 9; a label takes three
    // font sizes of width on the x axis and two of height on the y axis.
    let bins = |length_px: f64, per_label_pt: f64| {
        ((length_px / pt.px(per_label_pt)).floor() as usize).clamp(1, 9)
    };
    let (area_w, area_h) = area.dim_in_pixel();
    let frame_h = f64::from(area_h) - f64::from(margin_top) - x_area;
    let (y_ticks, y_decimals) = nice_ticks(spec.y.0, spec.y.1, bins(frame_h, 2.0 * spec.tick_pt));
    let widest_y = y_ticks
        .iter()
        .map(|v| measure(&format!("{v:.y_decimals$}"), tick_px).width)
        .fold(0.0, f64::max);
    let y_area = widest_y
        + f64::from(tick_len)
        + pad
        + spec.y_label.map_or(0.0, |_| label_height + pad)
        + pad;
    // Half a tick label of room right of the frame, so that the last x label is not cut.
    let half_label = measure("0.00", tick_px).width / 2.0 + pt.px(4.0);
    let frame_w = f64::from(area_w) - f64::from(margin_left) - y_area - half_label;
    let (x_ticks, x_decimals) = nice_ticks(spec.x.0, spec.x.1, bins(frame_w, 3.0 * spec.tick_pt));
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_top(margin_top)
        .margin_right(half_label.ceil() as u32)
        .margin_left(margin_left)
        .x_label_area_size(x_area.ceil() as u32)
        .y_label_area_size(y_area.ceil() as u32);
    let mut chart = builder.build_cartesian_2d(
        TickedAxis::new(spec.x.0, spec.x.1, x_ticks.clone()),
        TickedAxis::new(spec.y.0, spec.y.1, y_ticks.clone()),
    )?;
    let x_format = move |v: &f64| format!("{v:.x_decimals$}");
    let y_format = move |v: &f64| format!("{v:.y_decimals$}");
    let axis = BLACK.stroke_width(pt.px_u32(0.8));
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .x_labels(x_ticks.len() + 1)
        .y_labels(y_ticks.len() + 1)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .label_style((FAMILY, tick_px))
        .axis_desc_style((FAMILY, label_px))
        .axis_style(axis)
        .set_all_tick_mark_size(tick_len);
    if let Some(label) = spec.x_label {
        mesh.x_desc(label);
    }
    if let Some(label) = spec.y_label {
        mesh.y_desc(label);
    }
    mesh.draw()?;
    // The top and right spines, which plotters' mesh does not draw.
    let (xr, yr) = (spec.x, spec.y);
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(xr.0, yr.1), (xr.1, yr.1), (xr.1, yr.0)],
        axis,
    )))?;
    if !spec.title.is_empty() {
        let (base, frame) = (
            area.get_base_pixel(),
            chart.plotting_area().get_base_pixel(),
        );
        let frame_w = chart.plotting_area().dim_in_pixel().0 as i32;
        let at = (
            frame.0 - base.0 + frame_w / 2,
            frame.1 - base.1 - title_pad.round() as i32,
        );
        area.draw(&Text::new(
            spec.title.to_string(),
            at,
            TextStyle::from((FAMILY, title_px).into_font())
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        ))?;
    }
    Ok(chart)
}

/// What a legend entry shows left of its label.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LegendMark {
    pub colour: RGBColor,
    /// Line width in points.
    pub width_pt: f64,
    /// Dotted (matplotlib's ":") rather than solid.
    pub dotted: bool,
    /// A round marker in the middle of the line.
    pub marker: bool,
}

/// The size a legend with these labels takes, in pixels.
pub(crate) fn legend_size(labels: &[&str], font_pt: f64, pt: Points) -> (u32, u32) {
    let px = pt.px(font_pt);
    let em = px;
    let widest = labels
        .iter()
        .map(|l| measure(l, px).width)
        .fold(0.0, f64::max);
    let line = measure("Xg", px).height();
    // matplotlib's handlelength 2, handletextpad 0.8, borderpad 0.4, labelspacing 0.5 (in font sizes).
    let width = 2.0 * 0.4 * em + 2.0 * em + 0.8 * em + widest + 2.0 * pt.px(0.8);
    let n = labels.len() as f64;
    let height = 2.0 * 0.4 * em + n * line + (n - 1.0).max(0.0) * 0.5 * em;
    (width.ceil() as u32, height.ceil() as u32)
}

/// A matplotlib-like legend box (white, light grey edge) with its top-left corner at `at` in `area`'s pixels.
pub(crate) fn legend(
    area: &Area<'_>,
    at: (i32, i32),
    entries: &[(LegendMark, &str)],
    font_pt: f64,
    pt: Points,
) -> DrawResult {
    let labels: Vec<&str> = entries.iter().map(|e| e.1).collect();
    let (w, h) = legend_size(&labels, font_pt, pt);
    let (x0, y0) = at;
    let (x1, y1) = (x0 + w as i32, y0 + h as i32);
    area.draw(&Rectangle::new(
        [(x0, y0), (x1, y1)],
        WHITE.mix(0.8).filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(x0, y0), (x1, y1)],
        RGBColor(204, 204, 204).stroke_width(pt.px_u32(0.8)),
    ))?;
    let px = pt.px(font_pt);
    let line = measure("Xg", px).height();
    let mut y = y0 as f64 + 0.4 * px;
    for (mark, label) in entries {
        let mid = (y + line / 2.0).round() as i32;
        let hx0 = (x0 as f64 + 0.4 * px) as i32;
        let hx1 = (x0 as f64 + 2.4 * px) as i32;
        let style = mark.colour.stroke_width(pt.px_u32(mark.width_pt));
        if mark.dotted {
            let (dash, gap) = dotted_pattern(mark.width_pt, pt);
            let mut x = hx0;
            while x < hx1 {
                let end = (x + dash).min(hx1);
                area.draw(&PathElement::new(vec![(x, mid), (end, mid)], style))?;
                x += dash + gap;
            }
        } else {
            area.draw(&PathElement::new(vec![(hx0, mid), (hx1, mid)], style))?;
        }
        if mark.marker {
            area.draw(&Circle::new(
                ((hx0 + hx1) / 2, mid),
                marker_radius(pt),
                mark.colour.filled(),
            ))?;
        }
        area.draw(&Text::new(
            label.to_string(),
            ((x0 as f64 + 3.2 * px) as i32, y.round() as i32),
            (FAMILY, px).into_font().color(&BLACK),
        ))?;
        y += line + 0.5 * px;
    }
    Ok(())
}

/// matplotlib's ":" for a line `width_pt` wide: dashes of 1 and gaps of 1.65 line widths, in pixels.
pub(crate) fn dotted_pattern(width_pt: f64, pt: Points) -> (i32, i32) {
    let w = pt.px(width_pt);
    (
        w.round().max(1.0) as i32,
        (1.65 * w).round().max(1.0) as i32,
    )
}

/// matplotlib's "." marker at markersize 8 (a dot of 4 points plus its 1-point edge), as a radius in pixels.
pub(crate) fn marker_radius(pt: Points) -> i32 {
    pt.px(2.5).round() as i32
}

/// A solid line style `width_pt` points wide.
pub(crate) fn line_style(colour: RGBColor, width_pt: f64, pt: Points) -> ShapeStyle {
    colour.stroke_width(pt.px_u32(width_pt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_unit_interval_in_fifths() {
        let (t, d) = nice_ticks(0.0, 1.0, 5);
        assert_eq!(t.len(), 6);
        assert!((t[5] - 1.0).abs() < 1e-12);
        assert_eq!(d, 1);
        let (t, d) = nice_ticks(0.0012, 0.0031, 5);
        assert!(t.iter().all(|&v| (0.0012..=0.0031).contains(&v)), "{t:?}");
        assert_eq!(d, 4);
        let (t, d) = nice_ticks(1.0, 5.0, 6);
        assert_eq!(t, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(d, 0);
    }
}
