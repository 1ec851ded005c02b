//! Line charts: [`Series`] of `(x, y)` points over a shared x axis, each
//! with its colour, dash and marker shape, and a legend in its own strip to
//! the right of the plot. The usual lines are accuracy and loss per epoch
//! of several runs ([`LineChart::accuracy_per_epoch`], [`LineChart::loss_per_epoch`]).
use super::style::{DEFAULT_SIZE, DESC_PX, GRID, LEGEND_PX, MUTED, TEXT, TICK_PX, X_TICKS, Y_TICKS};
use super::style::{fit_text, font, padded_range, text_style, text_width, tick_decimals, title_area};
use super::{Draw, PALETTE, draw_err, palette};
use crate::error::{Error, Result};
use crate::train::History;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// One named line of a [`LineChart`].
///
/// ```
/// use encoder_bench::report::plot::Series;
/// let s = Series::new("bert bs=32 valid", vec![(1.0, 0.9), (2.0, 0.7)]).dashed(true).color(3);
/// assert!(s.dashed);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Draw the line dashed (and the markers hollow), e.g. validation next to
    /// training loss of the same run.
    pub dashed: bool,
    /// Palette index ([`palette`]); `None` uses the series' position, so two
    /// series of one run can share a colour by naming the same index.
    pub color: Option<usize>,
    /// `(low, high)` of an interval around each point, drawn as an error
    /// bar; empty for none (else one per point).
    pub errors: Vec<(f64, f64)>,
}

impl Series {
    /// A solid series in the next palette colour.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points, dashed: false, color: None, errors: Vec::new() }
    }

    /// Sets an interval `(low, high)` per point, drawn as error bars.
    ///
    /// ```
    /// use encoder_bench::report::plot::{Chart, LineChart, Series};
    /// let mut c = LineChart::new("Accuracy", "batch size", "accuracy");
    /// c.series.push(Series::new("bert", vec![(8.0, 0.7), (16.0, 0.6)]).with_errors(vec![(0.6, 0.8), (0.5, 0.7)]));
    /// assert!(c.svg()?.contains("Accuracy"));
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn with_errors(mut self, errors: Vec<(f64, f64)>) -> Self {
        self.errors = errors;
        self
    }

    /// Sets whether the line is dashed.
    pub fn dashed(mut self, dashed: bool) -> Self {
        self.dashed = dashed;
        self
    }

    /// Sets the palette index.
    pub fn color(mut self, index: usize) -> Self {
        self.color = Some(index);
        self
    }
}

/// Lines over a shared x axis, e.g. accuracy per epoch of several model ×
/// batch-size runs, with a legend to the right of the plot.
///
/// When every x is a whole number (epochs) the x ticks are whole numbers too.
/// With `y_range: None` the y axis covers the data with a margin; with
/// `percent_y` values in `[0, 1]` are labelled as percentages and the axis
/// stays within 0–100 %.
///
/// ```
/// use encoder_bench::report::plot::{Chart, LineChart, Series};
/// let mut chart = LineChart::new("Training loss", "epoch", "loss");
/// chart.series.push(Series::new("electra", vec![(1.0, 1.9), (2.0, 1.2)]));
/// assert!(chart.svg()?.contains("Training loss"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineChart {
    /// Text above the plot.
    pub title: String,
    /// x axis description.
    pub x_label: String,
    /// y axis description.
    pub y_label: String,
    /// The lines, in legend order.
    pub series: Vec<Series>,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
    /// Label y values as percentages (values are fractions).
    pub percent_y: bool,
}

impl LineChart {
    /// An empty chart with a title and axis descriptions.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        LineChart { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), ..Default::default() }
    }

    /// Validation accuracy per epoch, one line per named run (epochs without
    /// validation are left out).
    ///
    /// ```
    /// use encoder_bench::report::plot::LineChart;
    /// use encoder_bench::train::History;
    /// let (a, b) = (History::default(), History::default());
    /// let chart = LineChart::accuracy_per_epoch(&[("minilm bs=16".into(), &a), ("bert bs=32".into(), &b)]);
    /// assert_eq!(chart.series.len(), 2);
    /// ```
    pub fn accuracy_per_epoch(runs: &[(String, &History)]) -> Self {
        let series = runs
            .iter()
            .enumerate()
            .map(|(i, (name, h))| {
                let points = h.epochs.iter().filter_map(|e| e.accuracy.map(|a| (e.epoch as f64, a))).collect();
                Series::new(name.clone(), points).color(i)
            })
            .collect();
        LineChart { series, percent_y: true, ..LineChart::new("Validation accuracy per epoch", "epoch", "accuracy") }
    }

    /// Training (solid) and validation (dashed, same colour) loss per epoch of
    /// each named run.
    ///
    /// ```
    /// use encoder_bench::report::plot::LineChart;
    /// use encoder_bench::train::History;
    /// let h = History::default();
    /// let chart = LineChart::loss_per_epoch(&[("minilm".into(), &h)]);
    /// assert_eq!(chart.series[1].name, "minilm valid");
    /// assert!(chart.series[1].dashed);
    /// ```
    pub fn loss_per_epoch(runs: &[(String, &History)]) -> Self {
        let mut series = Vec::with_capacity(runs.len() * 2);
        for (i, (name, h)) in runs.iter().enumerate() {
            let train = h.epochs.iter().map(|e| (e.epoch as f64, e.train_loss)).collect();
            let valid = h.epochs.iter().filter_map(|e| e.val_loss.map(|l| (e.epoch as f64, l))).collect();
            series.push(Series::new(format!("{name} train"), train).color(i));
            series.push(Series::new(format!("{name} valid"), valid).color(i).dashed(true));
        }
        LineChart { series, ..LineChart::new("Loss per epoch", "epoch", "loss") }
    }

    fn y_formatter(&self, lo: f64, hi: f64) -> impl Fn(&f64) -> String + use<> {
        let percent = self.percent_y;
        let decimals = tick_decimals(if percent { (hi - lo) * 100.0 } else { hi - lo }, Y_TICKS);
        move |v: &f64| {
            // Avoid "-0" at a zero tick reached through rounding.
            let v = if v.abs() < 1e-12 { 0.0 } else { *v };
            if percent { format!("{:.decimals$}%", v * 100.0) } else { format!("{v:.decimals$}") }
        }
    }
}

/// Marker shapes, cycled after the palette so that series 1 and 11 differ.
#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Triangle,
    Square,
}

impl Marker {
    fn of(index: usize) -> Marker {
        match (index / PALETTE.len()) % 3 {
            0 => Marker::Circle,
            1 => Marker::Triangle,
            _ => Marker::Square,
        }
    }
}

/// What a series is drawn with, shared by the plot and its legend.
struct Look {
    color: RGBColor,
    dashed: bool,
    marker: Marker,
}

impl Look {
    fn of(s: &Series, position: usize) -> Look {
        let idx = s.color.unwrap_or(position);
        Look { color: palette(idx), dashed: s.dashed, marker: Marker::of(idx) }
    }

    fn marker_style(&self) -> ShapeStyle {
        // Hollow markers tell dashed (validation) points apart where lines cross.
        if self.dashed { self.color.stroke_width(2) } else { self.color.filled() }
    }
}

/// A series ready to draw: its look, its finite points and its legend text.
type Drawable<'a> = (Look, Vec<(f64, f64)>, &'a str);
/// Error bars of one series: its colour and `(x, low, y, high)` per bar.
type Bars = (RGBColor, Vec<(f64, f64, f64, f64)>);

impl Draw for LineChart {
    fn pixel_size(&self) -> (u32, u32) {
        DEFAULT_SIZE
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let series: Vec<Drawable> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
                (Look::of(s, i), pts, s.name.as_str())
            })
            .filter(|(_, pts, _)| !pts.is_empty())
            .collect();
        // Error bars: (x, low, y, high), only where all four are finite.
        let bars: Vec<Bars> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let b = s
                    .points
                    .iter()
                    .zip(&s.errors)
                    .map(|(&(x, y), &(lo, hi))| (x, lo, y, hi))
                    .filter(|b| [b.0, b.1, b.2, b.3].iter().all(|v| v.is_finite()))
                    .collect();
                (Look::of(s, i).color, b)
            })
            .collect();
        if series.is_empty() {
            return Err(Error::invalid(
                "series",
                format!("line chart `{}` has no finite points to draw ({} series)", self.title, self.series.len()),
            ));
        }
        let all = || series.iter().flat_map(|(_, pts, _)| pts.iter());
        let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in all() {
            (x_lo, x_hi, y_lo, y_hi) = (x_lo.min(x), x_hi.max(x), y_lo.min(y), y_hi.max(y));
        }
        for &(_, lo, _, hi) in bars.iter().flat_map(|(_, b)| b) {
            (y_lo, y_hi) = (y_lo.min(lo), y_hi.max(hi));
        }
        let integer_x = all().all(|(x, _)| x.fract() == 0.0) && x_hi - x_lo <= 1e6;
        let (x0, x1) = if integer_x {
            let pad = if x_hi > x_lo { ((x_hi - x_lo) * 0.04).max(0.2) } else { 0.5 };
            (x_lo - pad, x_hi + pad)
        } else {
            padded_range(x_lo, x_hi, 0.03)
        };
        let (y0, y1) = match self.y_range {
            Some((lo, hi)) => {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(Error::invalid("y_range", format!("({lo}, {hi}) is not a finite range with low <= high")));
                }
                padded_range(lo, hi, 0.0)
            }
            None => {
                let (lo, hi) = padded_range(y_lo, y_hi, 0.08);
                if self.percent_y && y_lo >= 0.0 && y_hi <= 1.0 {
                    // A margin must not invent impossible accuracies like 103 %.
                    (lo.max(0.0), hi.min(1.0))
                } else {
                    (lo, hi)
                }
            }
        };

        root.fill(&WHITE).map_err(draw_err)?;
        let area = title_area(root, &self.title)?;
        let (w, _) = area.dim_in_pixel();
        let named = series.iter().any(|(_, _, n)| !n.is_empty());
        let legend_w = if named {
            let widest = series.iter().map(|(_, _, n)| text_width(n, LEGEND_PX)).max().unwrap_or(0);
            (widest + 62).min(w * 2 / 5)
        } else {
            0
        };
        let (plot_area, legend_area) = area.split_horizontally(w - legend_w);

        let fy = self.y_formatter(y0, y1);
        let y_label_w = [y0, y1, (y0 + y1) / 2.0].iter().map(|v| text_width(&fy(v), TICK_PX)).max().unwrap_or(30);
        let fx = move |v: &f64| {
            if integer_x {
                if (v - v.round()).abs() < 1e-9 { format!("{}", v.round()) } else { String::new() }
            } else {
                format!("{:.*}", tick_decimals(x1 - x0, X_TICKS), v)
            }
        };
        let x_ticks = if integer_x { ((x_hi - x_lo) as usize + 1).clamp(1, 12) } else { X_TICKS };

        let mut chart = ChartBuilder::on(&plot_area)
            .margin_top(6)
            .margin_left(10)
            .margin_right(18)
            .margin_bottom(6)
            .x_label_area_size(DESC_PX + TICK_PX + 22)
            .y_label_area_size(y_label_w + DESC_PX + 22)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .x_labels(x_ticks)
            .y_labels(Y_TICKS)
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .label_style(font(TICK_PX).color(&TEXT))
            .axis_desc_style(font(DESC_PX).color(&TEXT))
            .bold_line_style(GRID)
            .max_light_lines(0)
            .axis_style(MUTED)
            .draw()
            .map_err(draw_err)?;

        for (look, pts, _) in &series {
            let line = look.color.stroke_width(2);
            if look.dashed {
                chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, line)).map_err(draw_err)?;
            } else {
                chart.draw_series(LineSeries::new(pts.iter().copied(), line)).map_err(draw_err)?;
            }
            // Markers on dense lines are noise; they help on short epoch curves.
            if pts.len() <= 60 {
                let st = look.marker_style();
                match look.marker {
                    Marker::Circle => chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, st))).map(|_| ()),
                    Marker::Triangle => chart.draw_series(pts.iter().map(|p| TriangleMarker::new(*p, 5, st))).map(|_| ()),
                    Marker::Square => {
                        chart.draw_series(pts.iter().map(|p| EmptyElement::at(*p) + Rectangle::new([(-4, -4), (4, 4)], st))).map(|_| ())
                    }
                }
                .map_err(draw_err)?;
            }
        }

        for (color, b) in &bars {
            chart
                .draw_series(b.iter().map(|&(x, lo, y, hi)| ErrorBar::new_vertical(x, lo, y, hi, color.stroke_width(2), 10)))
                .map_err(draw_err)?;
        }

        if legend_w > 0 {
            draw_legend(&legend_area, &series.iter().map(|(l, _, n)| (l, *n)).collect::<Vec<_>>())?;
        }
        Ok(())
    }
}

/// The legend in its own strip right of the plot, so it never hides data.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(&Look, &str)]) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let row = LEGEND_PX as i32 + 8;
    let top = 8;
    let fits = ((h as i32 - top - 16) / row).max(1) as usize;
    // With more entries than rows, the last row says how many are not shown.
    let shown = if entries.len() > fits { fits - 1 } else { entries.len() };
    let rows = shown + usize::from(shown < entries.len());
    let box_right = w as i32 - 8;
    area.draw(&Rectangle::new([(0, top), (box_right, top + rows as i32 * row + 10)], RGBColor(0xbb, 0xbb, 0xbb).stroke_width(1)))
        .map_err(draw_err)?;
    let label_w = (box_right - 48).max(10) as u32;
    for (i, (look, name)) in entries.iter().take(shown).enumerate() {
        let y = top + 5 + i as i32 * row + row / 2;
        let line = look.color.stroke_width(2);
        if look.dashed {
            for (a, b) in [(6, 12), (16, 22), (26, 32)] {
                area.draw(&PathElement::new(vec![(a, y), (b, y)], line)).map_err(draw_err)?;
            }
        } else {
            area.draw(&PathElement::new(vec![(6, y), (32, y)], line)).map_err(draw_err)?;
        }
        let st = look.marker_style();
        match look.marker {
            Marker::Circle => area.draw(&Circle::new((19, y), 4, st)),
            Marker::Triangle => area.draw(&TriangleMarker::new((19, y), 5, st)),
            Marker::Square => area.draw(&Rectangle::new([(15, y - 4), (23, y + 4)], st)),
        }
        .map_err(draw_err)?;
        let text = fit_text(name, LEGEND_PX, usize::MAX, label_w);
        area.draw_text(&text, &text_style(LEGEND_PX, TEXT, HPos::Left, VPos::Center), (40, y)).map_err(draw_err)?;
    }
    if shown < entries.len() {
        let y = top + 5 + shown as i32 * row + row / 2;
        let more = format!("… {} more", entries.len() - shown);
        area.draw_text(&more, &text_style(LEGEND_PX, MUTED, HPos::Left, VPos::Center), (40, y)).map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::Chart;
    use crate::report::plot::tests::history;

    #[test]
    fn line_chart_svg_has_title_series_and_legend() {
        let (a, b) = (history(&[0.5, 0.62, 0.7]), history(&[0.4, 0.66, 0.71]));
        let chart = LineChart::accuracy_per_epoch(&[("minilm bs=16".into(), &a), ("bert & co <bs=32>".into(), &b)]);
        let svg = chart.svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("Validation accuracy per epoch"));
        assert!(svg.contains("minilm bs=16"));
        assert!(svg.contains("bert &amp; co &lt;bs=32&gt;"), "series names are escaped");
        assert!(svg.contains("%"), "percent ticks");
        // Whole-number epochs give whole-number ticks only.
        assert!(svg.contains(">\n2\n</text>"));
        assert!(!svg.contains(">\n1.5\n</text>") && !svg.contains(">\n2.0\n</text>"));
    }

    #[test]
    fn loss_chart_pairs_colours_and_dashes_validation() {
        let h = history(&[0.5, 0.6]);
        let chart = LineChart::loss_per_epoch(&[("a".into(), &h), ("b".into(), &h)]);
        assert_eq!(
            chart.series.iter().map(|s| (s.color, s.dashed)).collect::<Vec<_>>(),
            [(Some(0), false), (Some(0), true), (Some(1), false), (Some(1), true)]
        );
        let svg = chart.svg().unwrap();
        assert!(svg.contains("a valid") && svg.contains("b train"));
    }

    #[test]
    fn degenerate_line_charts_do_not_panic() {
        let empty = LineChart::new("t", "x", "y");
        assert!(matches!(empty.svg(), Err(Error::Invalid { .. })));
        let no_points = LineChart { series: vec![Series::new("s", vec![])], ..empty.clone() };
        assert!(matches!(no_points.svg(), Err(Error::Invalid { .. })));
        let nan = LineChart { series: vec![Series::new("s", vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)])], ..empty.clone() };
        assert!(nan.svg().is_err());
        for pts in [vec![(1.0, 0.5)], vec![(1.0, 0.5), (2.0, 0.5)], vec![(0.5, 0.0), (0.5, 0.0)], vec![(3.0, -2.0)]] {
            for percent_y in [false, true] {
                let c = LineChart { series: vec![Series::new("s", pts.clone())], percent_y, ..empty.clone() };
                c.svg().unwrap();
            }
        }
        let fixed = LineChart { series: vec![Series::new("s", vec![(1.0, 0.5)])], y_range: Some((0.5, 0.5)), ..empty.clone() };
        fixed.svg().unwrap();
        let bad = LineChart { y_range: Some((1.0, 0.0)), ..fixed };
        assert!(matches!(bad.svg(), Err(Error::Invalid { .. })));
    }
}
