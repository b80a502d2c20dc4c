//! The four curve pictures of Ultralytics' validator (`plot_pr_curve` and `plot_mc_curve` in
//! ultralytics/utils/metrics.py, 8.4.190), from [`DetCurves`]: 9 × 6 inches at 250 dpi, one thin line per class
//! with labels (coloured with a legend entry each when there are fewer than 21 such classes, grey otherwise),
//! the class mean as a thick blue line, and the legend outside the axes at the upper right.

use image::RgbImage;
use plotters::series::LineSeries;
use plotters::style::RGBColor;

use super::canvas::{blank, draw_on, Area, DrawResult};
use super::{axes, legend, legend_size, line_style, AxesSpec, LegendMark, Points, TAB10};
use crate::eval::det_metrics::DetCurves;
use crate::eval::f1::smooth;
use crate::YoloError;

const DPI: f64 = 250.0;
const FONT_PT: f64 = 11.0;
/// matplotlib's "large" title: 1.2 × the font size.
const TITLE_PT: f64 = 13.2;
/// Per-class legends only below this many classes.
const MAX_LEGEND_CLASSES: usize = 21;
const GREY: RGBColor = RGBColor(0x80, 0x80, 0x80);
const MEAN_BLUE: RGBColor = RGBColor(0, 0, 0xff);

/// Which of the four pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurveKind {
    /// `PR_curve.png`: precision against recall at IoU 0.5.
    PrecisionRecall,
    /// `F1_curve.png`: F1 against confidence.
    F1,
    /// `P_curve.png`: precision against confidence.
    Precision,
    /// `R_curve.png`: recall against confidence.
    Recall,
}

impl CurveKind {
    pub const ALL: [CurveKind; 4] = [
        CurveKind::PrecisionRecall,
        CurveKind::F1,
        CurveKind::Precision,
        CurveKind::Recall,
    ];

    /// The file Ultralytics writes it to.
    pub fn file_name(self) -> &'static str {
        match self {
            CurveKind::PrecisionRecall => "PR_curve.png",
            CurveKind::F1 => "F1_curve.png",
            CurveKind::Precision => "P_curve.png",
            CurveKind::Recall => "R_curve.png",
        }
    }

    fn y_label(self) -> &'static str {
        match self {
            CurveKind::PrecisionRecall | CurveKind::Precision => "Precision",
            CurveKind::F1 => "F1",
            CurveKind::Recall => "Recall",
        }
    }

    fn rows(self, curves: &DetCurves) -> &[Vec<f64>] {
        match self {
            CurveKind::PrecisionRecall => &curves.precision_at_recall,
            CurveKind::F1 => &curves.f1,
            CurveKind::Precision => &curves.precision,
            CurveKind::Recall => &curves.recall,
        }
    }
}

/// The class mean of `rows` at each x (empty without rows).
fn mean_rows(rows: &[Vec<f64>], len: usize) -> Vec<f64> {
    if rows.is_empty() {
        return Vec::new();
    }
    (0..len)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64)
        .collect()
}

/// Draws one of the curve pictures; `names` are all class names, indexed by class.
pub fn curve_figure(
    kind: CurveKind,
    curves: &DetCurves,
    names: &[String],
) -> Result<RgbImage, YoloError> {
    let pt = Points::at_dpi(DPI);
    let rows = kind.rows(curves);
    let x = &curves.x;
    let name_of = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let per_class = !curves.classes.is_empty() && curves.classes.len() < MAX_LEGEND_CLASSES;
    // The thick mean line: plain mean for PR, smoothed (box filter of 10%) for the confidence curves.
    let mean = mean_rows(rows, x.len());
    let (mean, mean_label) = match kind {
        CurveKind::PrecisionRecall => {
            let map50 = curves.ap50.iter().sum::<f64>() / curves.ap50.len().max(1) as f64;
            (mean, format!("all classes {map50:.3} mAP@0.5"))
        }
        _ => {
            let y = if mean.is_empty() {
                mean
            } else {
                smooth(&mean, 0.1)
            };
            // argmax: the first maximum.
            let best =
                y.iter()
                    .enumerate()
                    .fold(None::<(usize, f64)>, |best, (i, &v)| match best {
                        Some((_, b)) if b >= v => best,
                        _ => Some((i, v)),
                    });
            let label = best.map_or_else(
                || "all classes".to_string(),
                |(i, v)| format!("all classes {v:.2} at {:.3}", x[i]),
            );
            (y, label)
        }
    };
    let mut entries: Vec<(LegendMark, String)> = Vec::new();
    if per_class {
        for (k, &c) in curves.classes.iter().enumerate() {
            let label = match kind {
                CurveKind::PrecisionRecall => format!("{} {:.3}", name_of(c), curves.ap50[k]),
                _ => name_of(c),
            };
            entries.push((mark(TAB10[k % TAB10.len()], 1.0), label));
        }
    }
    if !mean.is_empty() {
        entries.push((mark(MEAN_BLUE, 3.0), mean_label));
    }
    let (w, h) = (pt.px(9.0 * 72.0) as u32, pt.px(6.0 * 72.0) as u32);
    let mut image = blank(w, h);
    let title = match kind {
        CurveKind::PrecisionRecall => "Precision-Recall Curve".to_string(),
        _ => format!("{}-Confidence Curve", kind.y_label()),
    };
    draw_on(&mut image, kind.file_name(), |root| {
        let labels: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
        let (legend_w, _) = legend_size(&labels, FONT_PT, pt);
        let gap = pt.px(8.0) as u32;
        let margin = pt.px_u32(6.0);
        let root = root.margin(margin, margin, margin, margin);
        let (axes_area, legend_area) = root.split_horizontally(w - 2 * margin - legend_w - gap);
        draw_axes(
            &axes_area,
            &legend_area,
            &title,
            kind,
            x,
            rows,
            &mean,
            per_class,
            &entries,
            pt,
        )
    })?;
    Ok(image)
}

fn mark(colour: RGBColor, width_pt: f64) -> LegendMark {
    LegendMark {
        colour,
        width_pt,
        dotted: false,
        marker: false,
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_axes(
    axes_area: &Area<'_>,
    legend_area: &Area<'_>,
    title: &str,
    kind: CurveKind,
    x: &[f64],
    rows: &[Vec<f64>],
    mean: &[f64],
    per_class: bool,
    entries: &[(LegendMark, String)],
    pt: Points,
) -> DrawResult {
    let spec = AxesSpec {
        title,
        x: (0.0, 1.0),
        y: (0.0, 1.0),
        x_label: Some(match kind {
            CurveKind::PrecisionRecall => "Recall",
            _ => "Confidence",
        }),
        y_label: Some(kind.y_label()),
        title_pt: TITLE_PT,
        label_pt: FONT_PT,
        tick_pt: FONT_PT,
    };
    let mut chart = axes(axes_area, &spec, pt)?;
    for (k, row) in rows.iter().enumerate() {
        let colour = if per_class {
            TAB10[k % TAB10.len()]
        } else {
            GREY
        };
        chart.draw_series(LineSeries::new(
            x.iter().copied().zip(row.iter().copied()),
            line_style(colour, 1.0, pt),
        ))?;
    }
    if !mean.is_empty() {
        chart.draw_series(LineSeries::new(
            x.iter().copied().zip(mean.iter().copied()),
            line_style(MEAN_BLUE, 3.0, pt),
        ))?;
    }
    // bbox_to_anchor=(1.04, 1), loc="upper left": level with the top of the axes frame.
    let top = chart.plotting_area().get_base_pixel().1 - legend_area.get_base_pixel().1;
    let entries: Vec<(LegendMark, &str)> = entries.iter().map(|(m, l)| (*m, l.as_str())).collect();
    legend(legend_area, (0, top), &entries, FONT_PT, pt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::det_metrics::det_curves;

    fn curves(nc: usize) -> DetCurves {
        // Per class: three predictions, two or three hits, on two to four labels, so the classes differ.
        let mut tp = Vec::new();
        let (mut conf, mut pred_cls, mut target_cls) = (vec![], vec![], vec![]);
        for c in 0..nc {
            for (k, hit) in [true, c % 2 == 0, true].into_iter().enumerate() {
                tp.push([hit; 10]);
                conf.push(0.9 - 0.3 * k as f32 - 0.01 * c as f32);
                pred_cls.push(c);
            }
            target_cls.extend(std::iter::repeat_n(c, 2 + c % 3));
        }
        det_curves(&tp, &conf, &pred_cls, &target_cls)
    }

    fn count(image: &RgbImage, rgb: [u8; 3]) -> usize {
        image.pixels().filter(|p| p.0 == rgb).count()
    }

    #[test]
    fn curve_figures_are_ultralytics_size_with_the_blue_mean() {
        let names: Vec<String> = (0..3).map(|i| format!("class{i}")).collect();
        let data = curves(3);
        for kind in CurveKind::ALL {
            let image = curve_figure(kind, &data, &names).expect("drawn");
            assert_eq!(image.dimensions(), (2250, 1500), "{kind:?}");
            assert!(count(&image, [0, 0, 0xff]) > 3000, "{kind:?}: no mean line");
            // Per-class colours (fewer than 21 classes): tab10's first two.
            assert!(count(&image, [0x1f, 0x77, 0xb4]) > 100, "{kind:?}");
            assert!(count(&image, [0xff, 0x7f, 0x0e]) > 100, "{kind:?}");
            if let Some(dir) = std::env::var_os("YOLO_BURN_PLOT_PREVIEW_DIR") {
                image
                    .save(std::path::Path::new(&dir).join(kind.file_name()))
                    .expect("preview written");
            }
        }
    }

    #[test]
    fn many_classes_are_grey_without_legend_entries() {
        let names: Vec<String> = (0..30).map(|i| format!("class{i}")).collect();
        let image = curve_figure(CurveKind::PrecisionRecall, &curves(30), &names).expect("drawn");
        assert!(count(&image, [0x80, 0x80, 0x80]) > 100);
        assert_eq!(count(&image, [0xff, 0x7f, 0x0e]), 0);
    }

    #[test]
    fn no_labelled_classes_still_draws_axes() {
        let image = curve_figure(CurveKind::F1, &curves(0), &[]).expect("drawn");
        assert_eq!(image.dimensions(), (2250, 1500));
        assert_eq!(count(&image, [0, 0, 0xff]), 0);
    }
}
