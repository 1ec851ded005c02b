//! Bar charts: one bar per label (examples per class, samples/s per model,
//! F1 per class), upright while the labels fit side by side and lying
//! horizontally otherwise, each bar with its value when there is room.
use super::style::{DEFAULT_SIZE, DESC_PX, GRID, MAX_LABEL_CHARS, MUTED, TEXT, TICK_PX, Y_TICKS};
use super::style::{class_names, ensure_fonts, fit_text, font, text_style, text_width, tick_decimals, title_area};
use super::{Draw, PALETTE, draw_err};
use crate::error::{Error, Result};
use crate::train::Metrics;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One bar per label, e.g. examples per class, samples/s per model or F1 per
/// class.
///
/// `x_label` describes the categories and `y_label` the values, whichever way
/// the bars run: they stand upright while the labels fit side by side under
/// them and lie horizontally otherwise (long class names, many classes), so
/// every label stays readable without rotation. Each bar carries its value
/// when there is room.
///
/// ```
/// use encoder_bench::report::plot::{BarChart, Chart};
/// let chart = BarChart {
///     title: "Throughput".into(),
///     x_label: "model".into(),
///     y_label: "samples/s".into(),
///     labels: vec!["minilm".into(), "bert-base".into()],
///     values: vec![812.0, 205.5],
/// };
/// assert!(chart.svg()?.contains("bert-base"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BarChart {
    /// Text above the plot.
    pub title: String,
    /// Description of the categories.
    pub x_label: String,
    /// Description of the values.
    pub y_label: String,
    /// One label per value.
    pub labels: Vec<String>,
    /// Bar heights (finite; negative values are drawn below zero).
    pub values: Vec<f64>,
}

impl BarChart {
    /// Examples per class; `names[k]` names class `k` (missing names become ids).
    ///
    /// ```
    /// use encoder_bench::report::plot::BarChart;
    /// let chart = BarChart::class_counts(&["CS".into()], &[120, 40]);
    /// assert_eq!(chart.labels, ["CS", "1"]);
    /// ```
    pub fn class_counts(names: &[String], counts: &[usize]) -> Self {
        BarChart {
            title: "Examples per class".into(),
            x_label: "class".into(),
            y_label: "examples".into(),
            labels: class_names(names, counts.len()),
            values: counts.iter().map(|&c| c as f64).collect(),
        }
    }

    /// F1 of each class of an evaluation.
    ///
    /// ```
    /// use encoder_bench::report::plot::BarChart;
    /// use encoder_bench::train::Metrics;
    /// let m = Metrics::compute(&[0, 1, 1], &[0, 1, 0], 2)?;
    /// let chart = BarChart::per_class_f1(&["neg".into(), "pos".into()], &m);
    /// assert_eq!(chart.values.len(), 2);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn per_class_f1(names: &[String], metrics: &Metrics) -> Self {
        BarChart {
            title: format!("F1 per class (macro-F1 {:.3})", metrics.macro_f1),
            x_label: "class".into(),
            y_label: "F1".into(),
            labels: class_names(names, metrics.per_class.len()),
            values: metrics.per_class.iter().map(|c| c.f1).collect(),
        }
    }

    fn shown_labels(&self) -> Vec<String> {
        self.labels.iter().map(|l| fit_text(l, TICK_PX, MAX_LABEL_CHARS, u32::MAX)).collect()
    }

    /// Whether the bars lie horizontally: when the labels would not fit side by side.
    fn horizontal(&self) -> bool {
        ensure_fonts();
        let n = self.values.len().max(1) as u32;
        let widest = self.shown_labels().iter().map(|l| text_width(l, TICK_PX)).max().unwrap_or(0);
        // Roughly the plot width of an 800 px chart after axis labels.
        n > 24 || n * (widest + 12) > DEFAULT_SIZE.0 - 140
    }

    fn check(&self) -> Result<()> {
        if self.values.is_empty() {
            return Err(Error::invalid("values", format!("bar chart `{}` has no values to draw", self.title)));
        }
        if self.labels.len() != self.values.len() {
            return Err(Error::invalid("labels", format!("{} labels for {} values", self.labels.len(), self.values.len())));
        }
        if let Some((i, v)) = self.values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::invalid("values", format!("value {v} of bar {i} (`{}`) is not finite", self.labels[i])));
        }
        Ok(())
    }
}

/// Labels for bar values: whole numbers as such, otherwise one number of
/// decimals for all bars (three significant digits of the largest), so that
/// 1.00 and 0.80 line up rather than reading "1" and "0.800".
fn value_labels(values: &[f64]) -> Vec<String> {
    if values.iter().all(|v| v.fract() == 0.0 && v.abs() < 1e15) {
        return values.iter().map(|v| format!("{v:.0}")).collect();
    }
    let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let magnitude = if largest > 0.0 { largest.log10().floor() as i32 } else { 0 };
    let decimals = (2 - magnitude).clamp(0, 6) as usize;
    values.iter().map(|v| format!("{v:.decimals$}")).collect()
}

impl Draw for BarChart {
    fn pixel_size(&self) -> (u32, u32) {
        if self.horizontal() {
            // Keep each bar at least ~22 px tall so every label gets its own row.
            let h = 150 + 22 * self.values.len() as u32;
            (DEFAULT_SIZE.0, h.clamp(DEFAULT_SIZE.1, 4000))
        } else {
            DEFAULT_SIZE
        }
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        self.check()?;
        let n = self.values.len();
        let labels = self.shown_labels();
        let horizontal = self.horizontal();
        let lo = self.values.iter().copied().fold(0.0, f64::min);
        let hi = self.values.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = if hi - lo <= 0.0 { (0.0, 1.0) } else { (lo, hi) };
        let value_texts = value_labels(&self.values);
        // Room at the bar ends for the value labels.
        let (v0, v1) = (if lo < 0.0 { lo - (hi - lo) * 0.12 } else { 0.0 }, if hi > 0.0 { hi + (hi - lo) * 0.12 } else { 0.0 });
        let decimals = if self.values.iter().all(|v| v.fract() == 0.0) && v1 - v0 >= 5.0 { 0 } else { tick_decimals(v1 - v0, Y_TICKS) };
        let fv = move |v: &f64| format!("{:.decimals$}", if v.abs() < 1e-12 { 0.0 } else { *v });
        let label_of = |v: &f64, flip: bool| {
            let r = v.round();
            if (v - r).abs() > 1e-6 || r < 0.0 || r as usize >= n {
                return String::new();
            }
            let i = if flip { n - 1 - r as usize } else { r as usize };
            labels[i].clone()
        };
        let value_w = [v0, v1].iter().map(|v| text_width(&fv(v), TICK_PX)).max().unwrap_or(30);
        let widest_label = labels.iter().map(|l| text_width(l, TICK_PX)).max().unwrap_or(0);

        root.fill(&WHITE).map_err(draw_err)?;
        let area = title_area(root, &self.title)?;
        let bar = PALETTE[0].filled();
        let value_style = text_style(TICK_PX - 2, MUTED, HPos::Center, VPos::Bottom);

        if horizontal {
            let mut chart = ChartBuilder::on(&area)
                .margin_top(6)
                .margin_left(10)
                .margin_right(24)
                .margin_bottom(6)
                .x_label_area_size(DESC_PX + TICK_PX + 22)
                .y_label_area_size(widest_label + DESC_PX + 26)
                .build_cartesian_2d(v0..v1, -0.5..n as f64 - 0.5)
                .map_err(draw_err)?;
            let fl = |v: &f64| label_of(v, true);
            chart
                .configure_mesh()
                .disable_y_mesh()
                .x_desc(self.y_label.as_str())
                .y_desc(self.x_label.as_str())
                .y_labels(n)
                .x_labels(Y_TICKS)
                .y_label_formatter(&fl)
                .x_label_formatter(&fv)
                .label_style(font(TICK_PX).color(&TEXT))
                .axis_desc_style(font(DESC_PX).color(&TEXT))
                .bold_line_style(GRID)
                .max_light_lines(0)
                .axis_style(MUTED)
                .draw()
                .map_err(draw_err)?;
            // First label at the top, as a reader scans a list.
            let y = |i: usize| (n - 1 - i) as f64;
            chart
                .draw_series(self.values.iter().enumerate().map(|(i, &v)| Rectangle::new([(0.0, y(i) - 0.36), (v, y(i) + 0.36)], bar)))
                .map_err(draw_err)?;
            let row_px = (area.dim_in_pixel().1 as f64 - 80.0) / n as f64;
            if row_px >= TICK_PX as f64 {
                chart
                    .draw_series(self.values.iter().zip(&value_texts).enumerate().map(|(i, (&v, t))| {
                        let (h, dx) = if v < 0.0 { (HPos::Right, -5) } else { (HPos::Left, 5) };
                        EmptyElement::at((v, y(i))) + Text::new(t.clone(), (dx, 0), value_style.pos(Pos::new(h, VPos::Center)))
                    }))
                    .map_err(draw_err)?;
            }
        } else {
            let mut chart = ChartBuilder::on(&area)
                .margin_top(6)
                .margin_left(10)
                .margin_right(18)
                .margin_bottom(6)
                .x_label_area_size(DESC_PX + TICK_PX + 22)
                .y_label_area_size(value_w + DESC_PX + 22)
                .build_cartesian_2d(-0.5..n as f64 - 0.5, v0..v1)
                .map_err(draw_err)?;
            let fl = |v: &f64| label_of(v, false);
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc(self.x_label.as_str())
                .y_desc(self.y_label.as_str())
                .x_labels(n)
                .y_labels(Y_TICKS)
                .x_label_formatter(&fl)
                .y_label_formatter(&fv)
                .label_style(font(TICK_PX).color(&TEXT))
                .axis_desc_style(font(DESC_PX).color(&TEXT))
                .bold_line_style(GRID)
                .max_light_lines(0)
                .axis_style(MUTED)
                .draw()
                .map_err(draw_err)?;
            chart
                .draw_series(
                    self.values.iter().enumerate().map(|(i, &v)| Rectangle::new([(i as f64 - 0.36, 0.0), (i as f64 + 0.36, v)], bar)),
                )
                .map_err(draw_err)?;
            let slot_px = (area.dim_in_pixel().0 as f64 - 150.0) / n as f64;
            if value_texts.iter().all(|t| (text_width(t, TICK_PX - 2) as f64) < slot_px) {
                chart
                    .draw_series(self.values.iter().zip(&value_texts).enumerate().map(|(i, (&v, t))| {
                        let (vp, dy) = if v < 0.0 { (VPos::Top, 4) } else { (VPos::Bottom, -4) };
                        EmptyElement::at((i as f64, v)) + Text::new(t.clone(), (0, dy), value_style.pos(Pos::new(HPos::Center, vp)))
                    }))
                    .map_err(draw_err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::Chart;

    #[test]
    fn bar_orientation_follows_label_length() {
        let short = BarChart::class_counts(&["a".into(), "b".into()], &[3, 4]);
        assert!(!short.horizontal());
        let names: Vec<String> = (0..7).map(|i| format!("a rather long class name number {i}")).collect();
        let long = BarChart::class_counts(&names, &[5; 7]);
        assert!(long.horizontal());
        let svg = long.svg().unwrap();
        assert!(svg.contains("a rather long class name nu…"), "labels are cut with an ellipsis");
        let many = BarChart::class_counts(&[], &[1; 134]);
        assert!(many.size().1 > 2000, "134 classes get a tall chart: {:?}", many.size());
    }

    #[test]
    fn degenerate_bar_charts_do_not_panic() {
        assert!(BarChart::class_counts(&[], &[]).svg().is_err());
        BarChart::class_counts(&[], &[0, 0, 0]).svg().unwrap();
        BarChart::class_counts(&["only".into()], &[7]).svg().unwrap();
        let neg = BarChart { values: vec![-1.0, 2.0], labels: vec!["a".into(), "b".into()], ..Default::default() };
        neg.svg().unwrap();
        let nan = BarChart { values: vec![f64::NAN], labels: vec!["a".into()], ..Default::default() };
        assert!(nan.svg().is_err());
        let mismatch = BarChart { values: vec![1.0], labels: vec![], ..Default::default() };
        assert!(mismatch.svg().is_err());
    }

    #[test]
    fn value_labels_share_decimals() {
        assert_eq!(value_labels(&[1234.0, 0.0]), ["1234", "0"]);
        assert_eq!(value_labels(&[1.0, 0.8, 0.87345]), ["1.00", "0.80", "0.87"]);
        assert_eq!(value_labels(&[812.4, 205.25]), ["812", "205"]);
        assert_eq!(value_labels(&[12.345]), ["12.3"]);
    }
}
