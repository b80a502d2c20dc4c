//! `results.png` as Ultralytics' `plot_results` draws it (ultralytics/utils/plotting.py, 8.4.190): the loss and
//! metric columns of results.csv in two rows (train losses and the first half of the metrics on top, val losses
//! and the rest below), 2 × 5 panels for detection, each with the values as a line with dots ("results") and a
//! Gaussian-smoothed dotted line ("smooth"), the column name as title, and the legend in the second panel.
//! Figure size (n + 2) × 6 inches at 200 dpi, fonts 11 pt, titles 12 pt, as matplotlib lays it out there.

use image::RgbImage;
use plotters::element::{Circle, PathElement};
use plotters::series::LineSeries;
use plotters::style::Color;

use super::canvas::{blank, draw_on, DrawResult};
use super::{
    axes, dotted_pattern, legend, legend_size, line_style, marker_radius, AxesSpec, LegendMark,
    Points, TAB10,
};
use crate::YoloError;

/// One panel: a column of results.csv against the epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel<'a> {
    /// The column name, shown as the panel title.
    pub title: &'a str,
    /// One value per epoch (non-finite values leave a gap).
    pub values: Vec<f64>,
}

/// `plot_results`' dpi.
const DPI: f64 = 200.0;
/// matplotlib's line width there, in points (both lines).
const LINE_PT: f64 = 2.0;
/// `plt_settings`' font size, and the titles' 12.
const FONT_PT: f64 = 11.0;
const TITLE_PT: f64 = 12.0;

/// Ultralytics' `_gaussian_filter1d(y, sigma)` (scipy.ndimage.gaussian_filter1d with mode "reflect"): a
/// normalised Gaussian kernel of radius `int(truncate · sigma + 0.5)`, the signal mirrored at both ends
/// (edge sample repeated) as many times as the kernel needs, so that even a run of one or two epochs gets a
/// smoothing line.
pub fn gaussian_filter1d(y: &[f64], sigma: f64, truncate: f64) -> Vec<f64> {
    let n = y.len() as i64;
    if n == 0 {
        return Vec::new();
    }
    let radius = (truncate * sigma + 0.5) as i64;
    let sigma2 = sigma * sigma;
    let mut kernel: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / sigma2 * (x * x) as f64).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    // scipy's "reflect" (NumPy's "symmetric"): d c b a | a b c d | d c b a, repeated with period 2n.
    let reflect = |i: i64| {
        let m = i.rem_euclid(2 * n);
        (if m < n { m } else { 2 * n - 1 - m }) as usize
    };
    (0..n)
        .map(|i| {
            kernel
                .iter()
                .zip(-radius..=radius)
                .map(|(k, offset)| k * y[reflect(i + offset)])
                .sum()
        })
        .collect()
}

/// The results figure: `panels` against `epochs`, in two rows.
pub fn results_figure(epochs: &[f64], panels: &[Panel<'_>]) -> Result<RgbImage, YoloError> {
    let pt = Points::at_dpi(DPI);
    let cols = panels.len().div_ceil(2).max(1);
    let (w, h) = (
        (pt.px(72.0) * (panels.len() + 2) as f64).round() as u32,
        pt.px(72.0 * 6.0).round() as u32,
    );
    let mut image = blank(w, h);
    draw_on(&mut image, "results.png", |root| {
        let cells = root.margin(
            pt.px_u32(4.0),
            pt.px_u32(4.0),
            pt.px_u32(4.0),
            pt.px_u32(4.0),
        );
        let cells = cells.split_evenly((2, cols));
        for (k, panel) in panels.iter().enumerate() {
            draw_panel(&cells[k], epochs, panel, k == 1, pt)?;
        }
        Ok(())
    })?;
    Ok(image)
}

/// The limits matplotlib picks: the data range with 5% margins (a flat series gets ±5% of its value).
fn limits(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 0.055 } else { 0.05 * lo.abs() };
        return (lo - pad, hi + pad);
    }
    (lo - 0.05 * span, hi + 0.05 * span)
}

fn draw_panel(
    cell: &super::canvas::Area<'_>,
    epochs: &[f64],
    panel: &Panel<'_>,
    with_legend: bool,
    pt: Points,
) -> DrawResult {
    let smooth = gaussian_filter1d(&panel.values, 3.0, 4.0);
    let x = limits(epochs.iter().copied());
    let y = limits(panel.values.iter().chain(&smooth).copied());
    let spec = AxesSpec {
        title: panel.title,
        x,
        y,
        x_label: None,
        y_label: None,
        title_pt: TITLE_PT,
        label_pt: FONT_PT,
        tick_pt: FONT_PT,
    };
    let mut chart = axes(cell, &spec, pt)?;
    let (results_colour, smooth_colour) = (TAB10[0], TAB10[1]);
    let points: Vec<(f64, f64)> = epochs
        .iter()
        .copied()
        .zip(panel.values.iter().copied())
        .collect();
    // Runs of finite values, so that a missing value breaks the line instead of dragging it to 0.
    for run in points.split(|p| !p.1.is_finite()).filter(|r| !r.is_empty()) {
        chart.draw_series(LineSeries::new(
            run.iter().copied(),
            line_style(results_colour, LINE_PT, pt),
        ))?;
    }
    chart.draw_series(
        points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&p| Circle::new(p, marker_radius(pt), results_colour.filled())),
    )?;
    // The dotted line as dots placed along the curve in pixels, so the pattern keeps its rhythm on any slope.
    let smoothed: Vec<(i32, i32)> = epochs
        .iter()
        .copied()
        .zip(smooth.iter().copied())
        .filter(|p| p.1.is_finite())
        .map(|p| chart.backend_coord(&p))
        .collect();
    let (dash, gap) = dotted_pattern(LINE_PT, pt);
    let style = line_style(smooth_colour, LINE_PT, pt);
    let dots = dashes(&smoothed, f64::from(dash), f64::from(gap));
    let base = chart.plotting_area().get_base_pixel();
    let area = chart.plotting_area().strip_coord_spec();
    for dot in dots {
        let rel: Vec<(i32, i32)> = dot.iter().map(|&(x, y)| (x - base.0, y - base.1)).collect();
        area.draw(&PathElement::new(rel, style))?;
    }
    if with_legend {
        let entries = [
            (
                LegendMark {
                    colour: results_colour,
                    width_pt: LINE_PT,
                    dotted: false,
                    marker: true,
                },
                "results",
            ),
            (
                LegendMark {
                    colour: smooth_colour,
                    width_pt: LINE_PT,
                    dotted: true,
                    marker: false,
                },
                "smooth",
            ),
        ];
        let labels: Vec<&str> = entries.iter().map(|e| e.1).collect();
        let (lw, lh) = legend_size(&labels, FONT_PT, pt);
        let (aw, ah) = area.dim_in_pixel();
        let inset = pt.px(5.0).round() as i32;
        let data: Vec<(i32, i32)> = points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| {
                let (x, y) = chart.backend_coord(p);
                (x - base.0, y - base.1)
            })
            .chain(smoothed.iter().map(|&(x, y)| (x - base.0, y - base.1)))
            .collect();
        let corners = [
            (aw as i32 - lw as i32 - inset, inset),
            (inset, inset),
            (inset, ah as i32 - lh as i32 - inset),
            (aw as i32 - lw as i32 - inset, ah as i32 - lh as i32 - inset),
        ];
        // matplotlib's loc="best": the corner (upper right, upper left, lower left, lower right) over the
        // fewest data points.
        let covered = |(cx, cy): (i32, i32)| {
            data.iter()
                .filter(|&&(x, y)| x >= cx && x <= cx + lw as i32 && y >= cy && y <= cy + lh as i32)
                .count()
        };
        let at = corners
            .iter()
            .copied()
            .min_by_key(|&c| covered(c))
            .unwrap_or(corners[0]);
        legend(&area, at, &entries, FONT_PT, pt)?;
    }
    Ok(())
}

/// Splits a polyline (pixels) into dashes of `dash` pixels separated by `gap` pixels, measured along it.
fn dashes(points: &[(i32, i32)], dash: f64, gap: f64) -> Vec<Vec<(i32, i32)>> {
    let mut out = Vec::new();
    let mut current: Vec<(i32, i32)> = Vec::new();
    // Distance into the current dash-gap period.
    let mut phase = 0.0;
    let period = dash + gap;
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (dx, dy) = (f64::from(b.0 - a.0), f64::from(b.1 - a.1));
        let len = dx.hypot(dy);
        let at = |t: f64| {
            (
                (f64::from(a.0) + dx * t / len.max(1e-9)).round() as i32,
                (f64::from(a.1) + dy * t / len.max(1e-9)).round() as i32,
            )
        };
        let mut t = 0.0;
        while t < len {
            if phase < dash {
                if current.is_empty() {
                    current.push(at(t));
                }
                let step = (dash - phase).min(len - t);
                t += step;
                phase += step;
                current.push(at(t));
                if phase >= dash {
                    out.push(std::mem::take(&mut current));
                }
            } else {
                let step = (period - phase).min(len - t);
                t += step;
                phase += step;
                if phase >= period {
                    phase = 0.0;
                }
            }
        }
    }
    if current.len() > 1 {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scipy.ndimage.gaussian_filter1d(y, sigma=3) for each input, printed by scripts/gaussian_filter_reference.py
    /// (scipy 1.17.1, which agrees with ultralytics 8.4.190's `_gaussian_filter1d`).
    #[test]
    fn gaussian_filter_matches_scipy() {
        let cases: [(&[f64], &[f64]); 5] = [
            (&[0.7], &[0.7]),
            (&[1.0, 3.0], &[1.9999801460396065, 2.000019853960394]),
            (
                &[1.62, 1.41, 1.33, 1.29, 1.2],
                &[
                    1.400289780286141,
                    1.3886897728321697,
                    1.369960843778733,
                    1.351286084073936,
                    1.3397735190290208,
                ],
            ),
            (
                &[
                    0.0,
                    0.579425538604203,
                    1.0414709848078965,
                    1.2974949866040544,
                    1.3092974268256818,
                    1.0984721441039564,
                    0.7411200080598673,
                    0.34921677231038023,
                    0.04319750469207184,
                    -0.07753011766509699,
                    0.041075725336861546,
                    0.39445967442960816,
                ],
                &[
                    0.7006757581879883,
                    0.726376768222277,
                    0.7622384294283187,
                    0.7846333672645138,
                    0.7728615602646753,
                    0.7181791623811633,
                    0.6268153355049331,
                    0.5163016451622907,
                    0.40773465284575283,
                    0.31821393892275046,
                    0.257026991057024,
                    0.22664303886779671,
                ],
            ),
            (
                &[
                    0.5,
                    -0.48,
                    0.58,
                    -0.32,
                    0.8200000000000001,
                    0.0,
                    1.22,
                    0.4800000000000001,
                    1.78,
                    1.1199999999999999,
                    2.5,
                    1.92,
                    3.38,
                    2.88,
                    4.42,
                    4.0,
                    5.62,
                    5.28,
                    6.9799999999999995,
                    6.72,
                    8.5,
                    8.32,
                    10.18,
                    10.08,
                    12.02,
                    12.0,
                    14.02,
                    14.080000000000002,
                    16.18,
                    16.32,
                ],
                &[
                    0.2076462033003352,
                    0.23528399776964032,
                    0.2933369394370744,
                    0.38607195778271597,
                    0.5175142584840655,
                    0.690262061761834,
                    0.9052736829523982,
                    1.162369434979999,
                    1.4609100096818155,
                    1.800270109800763,
                    2.180023561949848,
                    2.599939553706325,
                    3.059913957102613,
                    3.5598958345904075,
                    4.099913957102613,
                    4.679895834590407,
                    5.299913957102612,
                    5.959895834590408,
                    6.659816704375368,
                    7.399433515190121,
                    8.178078743551424,
                    8.993940901021523,
                    9.842652219412043,
                    10.714871137542753,
                    11.592919870950164,
                    12.447315800110703,
                    13.235008346695,
                    13.90159667715026,
                    14.388929058216076,
                    14.647105879098694,
                ],
            ),
        ];
        for (input, expected) in cases {
            let got = gaussian_filter1d(input, 3.0, 4.0);
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(expected) {
                assert!((g - e).abs() < 1e-9, "{input:?}: {got:?} vs {expected:?}");
            }
        }
    }

    fn panels() -> Vec<Panel<'static>> {
        let names = [
            "train/box_loss",
            "train/cls_loss",
            "train/dfl_loss",
            "metrics/precision(B)",
            "metrics/recall(B)",
            "val/box_loss",
            "val/cls_loss",
            "val/dfl_loss",
            "metrics/mAP50(B)",
            "metrics/mAP50-95(B)",
        ];
        names
            .iter()
            .enumerate()
            .map(|(k, &title)| Panel {
                title,
                values: (1..=8).map(|e| 1.0 / (e + k) as f64).collect(),
            })
            .collect()
    }

    #[test]
    fn results_figure_is_ultralytics_size_with_ten_panels() {
        let epochs: Vec<f64> = (1..=8).map(f64::from).collect();
        let image = results_figure(&epochs, &panels()).expect("drawn");
        // (10 + 2) × 6 inches at 200 dpi.
        assert_eq!(image.dimensions(), (2400, 1200));
        // Each of the ten cells holds the blue results line and the orange smoothing dots.
        let (cw, ch) = (2400 / 5, 1200 / 2);
        for cell in 0..10u32 {
            let (x0, y0) = ((cell % 5) * cw, (cell / 5) * ch);
            let count = |rgb: [u8; 3]| {
                (x0..x0 + cw)
                    .flat_map(|x| (y0..y0 + ch).map(move |y| (x, y)))
                    .filter(|&(x, y)| image.get_pixel(x, y).0 == rgb)
                    .count()
            };
            assert!(
                count([0x1f, 0x77, 0xb4]) > 200,
                "cell {cell}: no results line"
            );
            assert!(
                count([0xff, 0x7f, 0x0e]) > 50,
                "cell {cell}: no smooth line"
            );
        }
        if let Some(out) = std::env::var_os("YOLO_BURN_PLOT_PREVIEW") {
            image.save(out).expect("preview written");
        }
    }

    #[test]
    fn results_figure_draws_a_single_epoch() {
        let one: Vec<Panel> = panels()
            .into_iter()
            .map(|p| Panel {
                values: p.values[..1].to_vec(),
                ..p
            })
            .collect();
        let image = results_figure(&[1.0], &one).expect("drawn");
        assert_eq!(image.dimensions(), (2400, 1200));
    }

    #[test]
    fn dashes_cover_dash_over_period_of_a_line() {
        let d = dashes(&[(0, 0), (100, 0)], 4.0, 6.0);
        assert_eq!(d.len(), 10);
        assert!(d.iter().all(|s| s.first().map(|p| p.0 % 10) == Some(0)));
    }
}
