//! Charts for the notebook and for report files: line charts (accuracy or
//! loss per epoch), bar charts (class counts, throughput, per-class F1) and
//! confusion-matrix heatmaps.
//!
//! Every chart renders to an SVG string (shown inline by the evcxr kernel) and
//! to PNG files. The PNG text is drawn with the DejaVu Sans font compiled into
//! the binary, so rendering works on machines without any system fonts.
//!
//! ```
//! use encoder_bench::report::plot::{Chart, LineChart, Series};
//! let chart = LineChart {
//!     title: "Validation accuracy".into(),
//!     x_label: "epoch".into(),
//!     y_label: "accuracy".into(),
//!     series: vec![Series::new("minilm bs=16", vec![(1.0, 0.61), (2.0, 0.74), (3.0, 0.79)])],
//!     y_range: None,
//!     percent_y: true,
//! };
//! let svg = chart.svg()?;
//! assert!(svg.contains("minilm bs=16"));
//! # Ok::<(), encoder_bench::Error>(())
//! ```
use crate::error::{Error, Result};
use crate::train::{ConfusionMatrix, History, Metrics};
use plotters::backend::{BitMapBackend, SVGBackend};
use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The font family every text uses; [`ensure_fonts`] maps it to DejaVu Sans.
const FAMILY: &str = "sans-serif";
const TITLE_PX: u32 = 22;
const DESC_PX: u32 = 17;
const TICK_PX: u32 = 15;
const LEGEND_PX: u32 = 15;
const DEFAULT_SIZE: (u32, u32) = (800, 480);
const HEATMAP_SIZE: (u32, u32) = (640, 600);
/// Most ticks on a numeric x axis and on a value axis.
const X_TICKS: usize = 10;
const Y_TICKS: usize = 10;
/// Class names longer than this are cut with an ellipsis: beyond it they eat
/// the plot area without getting more readable.
const MAX_LABEL_CHARS: usize = 28;

/// Tableau's ten categorical colours: distinguishable, also in greyscale print
/// by their markers, and familiar from matplotlib.
const PALETTE: [RGBColor; 10] = [
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
const GRID: RGBColor = RGBColor(0xe2, 0xe2, 0xe2);
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);
/// matplotlib's "Blues" stops, the colour map scikit-learn uses for confusion matrices.
const BLUES: [(u8, u8, u8); 9] = [
    (0xf7, 0xfb, 0xff),
    (0xde, 0xeb, 0xf7),
    (0xc6, 0xdb, 0xef),
    (0x9e, 0xca, 0xe1),
    (0x6b, 0xae, 0xd6),
    (0x42, 0x92, 0xc6),
    (0x21, 0x71, 0xb5),
    (0x08, 0x51, 0x9c),
    (0x08, 0x30, 0x6b),
];

/// Colour `i` of the fixed chart palette (it repeats after ten).
///
/// ```
/// use encoder_bench::report::plot::palette;
/// assert_eq!(palette(0), palette(10));
/// assert_ne!(palette(0), palette(1));
/// ```
pub fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Registers DejaVu Sans as "sans-serif" for the bitmap backend and for text
/// measurement; without it plotters has no font at all (no `ttf` feature).
fn ensure_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        let regular = plotters::style::register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok();
        let bold = plotters::style::register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok();
        // The fonts are compiled in: failing to parse them is a build defect.
        assert!(regular && bold, "the bundled DejaVu Sans fonts do not parse");
    });
}

/// A chart that renders to SVG and PNG and shows itself in a notebook.
///
/// ```no_run
/// use encoder_bench::report::plot::{BarChart, Chart};
/// use std::path::Path;
/// let chart = BarChart::class_counts(&["neg".into(), "pos".into()], &[120, 80]);
/// chart.save(Path::new("report/class_counts"))?; // report/class_counts.svg and .png
/// chart.evcxr_display(); // inline in a Jupyter cell
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub trait Chart {
    /// Pixel size the chart is drawn at (it grows with the number of classes).
    fn size(&self) -> (u32, u32);

    /// The chart as a standalone SVG document.
    ///
    /// Fails with [`Error::Invalid`] when there is nothing to draw.
    fn svg(&self) -> Result<String>;

    /// Draws the chart into a PNG file at `path`, atomically.
    fn save_png(&self, path: &Path) -> Result<()>;

    /// Writes `stem.svg` and `stem.png` (the extension is appended, so a stem
    /// such as `acc.bs16` keeps its dot), each atomically.
    fn save(&self, stem: &Path) -> Result<()> {
        let svg = self.svg()?;
        crate::error::write_atomic(with_suffix(stem, "svg"), svg.as_bytes())?;
        self.save_png(&with_suffix(stem, "png"))
    }

    /// Shows the chart inline in a Jupyter cell run by evcxr, as true SVG.
    ///
    /// Errors are shown in the cell as text, since a display hook cannot fail.
    fn evcxr_display(&self) {
        match self.svg() {
            Ok(svg) => println!("EVCXR_BEGIN_CONTENT image/svg+xml\n{svg}\nEVCXR_END_CONTENT"),
            Err(e) => {
                println!("EVCXR_BEGIN_CONTENT text/plain\nchart not drawn: {e}\nEVCXR_END_CONTENT")
            }
        }
    }
}

fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// The drawing side of a chart, generic over the backend, kept private so the
/// public [`Chart`] trait stays object safe.
trait Draw {
    fn pixel_size(&self) -> (u32, u32);
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> Error {
    Error::invalid("chart", format!("drawing failed: {e}"))
}

fn render_svg(chart: &impl Draw) -> Result<String> {
    ensure_fonts();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, chart.pixel_size()).into_drawing_area();
        chart.draw_on(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(out)
}

fn render_png(chart: &impl Draw, path: &Path) -> Result<()> {
    ensure_fonts();
    crate::error::write_atomic_with(path, |tmp| {
        // The bitmap backend picks the image format from the extension, which
        // the atomic temp name lacks: draw to `<tmp>.png`, then move it over.
        let drawn = with_suffix(tmp, "png");
        let result = (|| {
            let root = BitMapBackend::new(&drawn, chart.pixel_size()).into_drawing_area();
            chart.draw_on(&root)?;
            root.present().map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
            // `root` drops here; an undrawn backend would write the file on drop,
            // so cleanup below must come after this closure.
        })()
        .and_then(|()| std::fs::rename(&drawn, tmp).map_err(|e| Error::io(tmp, e)));
        if result.is_err() {
            let _ = std::fs::remove_file(&drawn);
        }
        result
    })
}

macro_rules! impl_chart {
    ($t:ty) => {
        impl Chart for $t {
            fn size(&self) -> (u32, u32) {
                self.pixel_size()
            }
            fn svg(&self) -> Result<String> {
                render_svg(self)
            }
            fn save_png(&self, path: &Path) -> Result<()> {
                render_png(self, path)
            }
        }

        impl $t {
            /// Shows the chart inline in an evcxr Jupyter cell; an inherent
            /// method so that it works without importing [`Chart`].
            pub fn evcxr_display(&self) {
                Chart::evcxr_display(self)
            }
        }
    };
}

impl_chart!(LineChart);
impl_chart!(BarChart);
impl_chart!(Heatmap);

// ---------------------------------------------------------------------------
// Text helpers

fn font(px: u32) -> FontDesc<'static> {
    (FAMILY, px).into_font()
}

fn text_style(px: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    font(px).color(&color).pos(Pos::new(h, v))
}

fn bold_style(px: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    // Not `font(px).style(Bold)`: plotters' `FontDesc::style` keeps the
    // regular glyphs it already loaded, so the text would not be bold.
    FontDesc::new(FAMILY.into(), px as f64, FontStyle::Bold).color(&color).pos(Pos::new(h, v))
}

/// Width in pixels of `text` at `px`, as both backends lay it out.
fn text_width(text: &str, px: u32) -> u32 {
    font(px).box_size(text).map(|(w, _)| w).unwrap_or(px * text.chars().count() as u32 / 2)
}

/// `text` cut with an ellipsis so it is at most `max_chars` long and `max_px` wide.
fn fit_text(text: &str, px: u32, max_chars: usize, max_px: u32) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    if chars.len() <= max_chars && text_width(text, px) <= max_px {
        return text.to_string();
    }
    chars.truncate(max_chars.saturating_sub(1));
    loop {
        let candidate: String = chars.iter().collect::<String>() + "…";
        if chars.is_empty() || text_width(&candidate, px) <= max_px {
            return candidate;
        }
        chars.pop();
    }
}

/// Decimals the ticks of an axis spanning `span` need when plotters places at
/// most `max_ticks` of them: its steps are 1, 2 or 5 × 10^k and at least
/// `span / max_ticks`, so the smallest such step decides.
fn tick_decimals(span: f64, max_ticks: usize) -> usize {
    if span <= 0.0 || !span.is_finite() {
        return 2;
    }
    let min_step = span / max_ticks.max(1) as f64;
    let power = 10f64.powf(min_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|&s| s >= min_step * (1.0 - 1e-9)).unwrap_or(10.0 * power);
    (-step.log10().floor()).clamp(0.0, 6.0) as usize
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

/// Draws the title centred at the top of `root` and returns the area below it.
fn title_area<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>> {
    if title.is_empty() {
        return Ok(root.margin(8, 0, 0, 0));
    }
    let (w, _) = root.dim_in_pixel();
    let title = fit_text(title, TITLE_PX, usize::MAX, w.saturating_sub(20));
    root.draw_text(&title, &bold_style(TITLE_PX, TEXT, HPos::Center, VPos::Top), (w as i32 / 2, 10)).map_err(draw_err)?;
    Ok(root.margin(TITLE_PX + 20, 0, 0, 0))
}

/// `[lo, hi]` widened by `pad` on each side, or made non-degenerate when all
/// values are equal (plotters cannot map an empty range).
fn padded_range(lo: f64, hi: f64, pad_frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(lo.abs()).max(1.0) {
        let pad = if hi.abs() > 0.0 { hi.abs() * 0.05 } else { 0.5 };
        return (lo - pad, hi + pad);
    }
    (lo - span * pad_frac, hi + span * pad_frac)
}

// ---------------------------------------------------------------------------
// Line chart

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
}

impl Series {
    /// A solid series in the next palette colour.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { name: name.into(), points, dashed: false, color: None }
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

// ---------------------------------------------------------------------------
// Bar chart

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

/// `names` padded with class ids up to `n`.
fn class_names(names: &[String], n: usize) -> Vec<String> {
    (0..n).map(|k| names.get(k).cloned().unwrap_or_else(|| k.to_string())).collect()
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

// ---------------------------------------------------------------------------
// Heatmap

/// A confusion matrix: rows are true classes, columns predicted ones, cells
/// coloured by count (white to dark blue, as scikit-learn draws it) with the
/// count written inside when it fits.
///
/// ```
/// use encoder_bench::report::plot::{Chart, Heatmap};
/// let chart = Heatmap {
///     title: "Confusion matrix".into(),
///     labels: vec!["neg".into(), "pos".into()],
///     counts: vec![vec![50, 3], vec![7, 40]],
/// };
/// let svg = chart.svg()?;
/// assert!(svg.contains("predicted") && svg.contains(">\n40\n</text>"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heatmap {
    /// Text above the matrix.
    pub title: String,
    /// Class names, one per row and column.
    pub labels: Vec<String>,
    /// `counts[true][predicted]`, square.
    pub counts: Vec<Vec<usize>>,
}

impl Heatmap {
    /// The heatmap of a confusion matrix; missing names become class ids.
    ///
    /// ```
    /// use encoder_bench::report::plot::Heatmap;
    /// use encoder_bench::train::metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1], &[0, 0, 1], 2)?;
    /// let chart = Heatmap::confusion(&["neg".into(), "pos".into()], &cm);
    /// assert_eq!(chart.counts, cm.counts);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn confusion(names: &[String], cm: &ConfusionMatrix) -> Self {
        let accuracy = if cm.total() > 0 { (0..cm.n).map(|k| cm.counts[k][k]).sum::<usize>() as f64 / cm.total() as f64 } else { 0.0 };
        Heatmap {
            title: format!("Confusion matrix ({} examples, accuracy {:.1} %)", cm.total(), accuracy * 100.0),
            labels: class_names(names, cm.n),
            counts: cm.counts.clone(),
        }
    }

    fn shown_labels(&self) -> Vec<String> {
        self.labels.iter().map(|l| fit_text(l, TICK_PX, MAX_LABEL_CHARS, 220)).collect()
    }

    /// The largest count, at least 1 so the colour scale is never empty.
    fn max_count(&self) -> usize {
        self.counts.iter().flatten().copied().max().unwrap_or(0).max(1)
    }

    fn check(&self) -> Result<()> {
        let n = self.counts.len();
        if n == 0 {
            return Err(Error::invalid("counts", format!("heatmap `{}` has no cells to draw", self.title)));
        }
        if let Some((i, row)) = self.counts.iter().enumerate().find(|(_, r)| r.len() != n) {
            return Err(Error::invalid("counts", format!("row {i} has {} cells; a {n}-class matrix needs {n}", row.len())));
        }
        if self.labels.len() != n {
            return Err(Error::invalid("labels", format!("{} labels for a {n}×{n} matrix", self.labels.len())));
        }
        Ok(())
    }
}

/// The Blues colour at `t` in `[0, 1]`.
fn blues(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0) * (BLUES.len() - 1) as f64;
    let i = (t.floor() as usize).min(BLUES.len() - 2);
    let f = t - i as f64;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Dark cells get white text: by perceived luminance, not by count.
fn is_dark(c: RGBColor) -> bool {
    0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * (c.2 as f64) < 140.0
}

impl Draw for Heatmap {
    fn pixel_size(&self) -> (u32, u32) {
        ensure_fonts();
        let n = self.counts.len() as u32;
        // Grow past the default so that every cell can hold its count and
        // every class its name, up to a size a notebook still shows; beyond
        // that (100+ classes) cells shrink and only non-zero counts that fit are written.
        let widest_count = text_width(&self.max_count().to_string(), 11);
        let cell = (widest_count + 10).max(26);
        let label_w = self.shown_labels().iter().map(|l| text_width(l, TICK_PX)).max().unwrap_or(0);
        let desc = DESC_PX + 10;
        let bottom = desc + if label_w + 6 > cell { label_w + 12 } else { TICK_PX + 12 };
        let w = desc + label_w + 10 + n * cell + 24 + 14 + text_width(&self.max_count().to_string(), TICK_PX) + 22;
        let h = TITLE_PX + 20 + 4 + n * cell + bottom + 10;
        (w.clamp(HEATMAP_SIZE.0, 1800), h.clamp(HEATMAP_SIZE.1, 1800))
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        self.check()?;
        let n = self.counts.len();
        let labels = self.shown_labels();
        let max = self.max_count();

        root.fill(&WHITE).map_err(draw_err)?;
        let area = title_area(root, &self.title)?;
        let (w, h) = area.dim_in_pixel();
        let (w, h) = (w as i32, h as i32);
        let label_w = labels.iter().map(|l| text_width(l, TICK_PX)).max().unwrap_or(0) as i32;
        let desc = DESC_PX as i32 + 10;
        let colorbar = 24 + 14 + text_width(&max.to_string(), TICK_PX) as i32 + 12;
        let left = desc + label_w + 10;
        let right = colorbar + 10;
        // Rotate the column labels only when they do not fit side by side.
        let cell_guess = ((w - left - right).min(h - desc - TICK_PX as i32 - 20) / n as i32).max(1);
        let rotate = label_w + 6 > cell_guess;
        let bottom = desc + if rotate { label_w + 12 } else { TICK_PX as i32 + 12 };
        let cell = ((w - left - right).min(h - bottom - 10) / n as i32).max(1);
        let (x0, y0) = (left, 4);
        let side = cell * n as i32;

        let max_count_px = ((cell / 2) as u32).clamp(9, 16);
        // Zero cells share the background, which keeps the SVG of a sparse
        // 100-class matrix small; past a dozen classes their "0"s are noise.
        let show_zeros = n <= 12;
        area.draw(&Rectangle::new([(x0, y0), (x0 + side, y0 + side)], blues(0.0).filled())).map_err(draw_err)?;
        for (t, row) in self.counts.iter().enumerate() {
            for (p, &c) in row.iter().enumerate() {
                let (cx, cy) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                let color = blues(c as f64 / max as f64);
                if c > 0 {
                    area.draw(&Rectangle::new([(cx, cy), (cx + cell, cy + cell)], color.filled())).map_err(draw_err)?;
                }
                let text = c.to_string();
                // The largest size that fits: a long count gets smaller text, not none.
                let fitting = (9..=max_count_px).rev().find(|&px| (text_width(&text, px) as i32) < cell - 3);
                if let Some(count_px) = fitting.filter(|_| (c > 0 || show_zeros) && cell >= 12) {
                    let fg = if is_dark(color) { WHITE } else { TEXT };
                    area.draw_text(&text, &text_style(count_px, fg, HPos::Center, VPos::Center), (cx + cell / 2, cy + cell / 2))
                        .map_err(draw_err)?;
                }
            }
        }
        if cell >= 8 {
            let grid = RGBColor(0xdd, 0xdd, 0xdd).stroke_width(1);
            for k in 1..n as i32 {
                let at = k * cell;
                area.draw(&PathElement::new(vec![(x0 + at, y0), (x0 + at, y0 + side)], grid)).map_err(draw_err)?;
                area.draw(&PathElement::new(vec![(x0, y0 + at), (x0 + side, y0 + at)], grid)).map_err(draw_err)?;
            }
        }
        area.draw(&Rectangle::new([(x0, y0), (x0 + side, y0 + side)], MUTED.stroke_width(1))).map_err(draw_err)?;

        // With tiny cells only every k-th class is named, so names never overlap.
        let step = ((TICK_PX as i32 + 2) / cell + 1).max(1) as usize;
        let step = if cell >= TICK_PX as i32 + 2 { 1 } else { step };
        let row_style = text_style(TICK_PX, TEXT, HPos::Right, VPos::Center);
        let col_style = if rotate {
            text_style(TICK_PX, TEXT, HPos::Right, VPos::Center).transform(FontTransform::Rotate270)
        } else {
            text_style(TICK_PX, TEXT, HPos::Center, VPos::Top)
        };
        for (k, label) in labels.iter().enumerate().step_by(step) {
            let mid = k as i32 * cell + cell / 2;
            area.draw_text(label, &row_style, (x0 - 6, y0 + mid)).map_err(draw_err)?;
            area.draw_text(label, &col_style, (x0 + mid, y0 + side + 6)).map_err(draw_err)?;
        }
        let desc_style = bold_style(DESC_PX, TEXT, HPos::Center, VPos::Center);
        let label_h = if rotate { label_w + 12 } else { TICK_PX as i32 + 12 };
        area.draw_text("predicted", &desc_style, (x0 + side / 2, y0 + side + label_h + desc / 2)).map_err(draw_err)?;
        area.draw_text("true", &desc_style.transform(FontTransform::Rotate270), (desc / 2, y0 + side / 2)).map_err(draw_err)?;

        // Colour bar: what the shades mean in counts.
        let bx = x0 + side + 24;
        let steps = side.clamp(1, 100);
        for s in 0..steps {
            let (ya, yb) = (y0 + side - (s + 1) * side / steps, y0 + side - s * side / steps);
            let color = blues((s as f64 + 0.5) / steps as f64);
            area.draw(&Rectangle::new([(bx, ya), (bx + 14, yb)], color.filled())).map_err(draw_err)?;
        }
        area.draw(&Rectangle::new([(bx, y0), (bx + 14, y0 + side)], MUTED.stroke_width(1))).map_err(draw_err)?;
        let tick_style = text_style(TICK_PX, TEXT, HPos::Left, VPos::Center);
        let ticks: Vec<usize> = if max >= 2 { vec![0, max / 2, max] } else { vec![0, max] };
        for v in ticks {
            let y = y0 + side - (v as f64 / max as f64 * side as f64).round() as i32;
            area.draw(&PathElement::new(vec![(bx + 14, y), (bx + 18, y)], MUTED.stroke_width(1))).map_err(draw_err)?;
            area.draw_text(&v.to_string(), &tick_style, (bx + 21, y)).map_err(draw_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::EpochRecord;

    pub(crate) fn history(accs: &[f64]) -> History {
        History {
            epochs: accs
                .iter()
                .enumerate()
                .map(|(i, &a)| EpochRecord {
                    epoch: i + 1,
                    train_loss: 1.5 / (i + 1) as f64,
                    val_loss: Some(1.7 / (i + 1) as f64 + 0.1),
                    accuracy: Some(a),
                    macro_f1: Some(a - 0.05),
                    steps: 100,
                    lr: 2e-5,
                    complete: true,
                    train_s: 10.0,
                    eval_s: 1.0,
                    train_samples_per_s: 321.5,
                    eval_samples_per_s: Some(900.0),
                })
                .collect(),
        }
    }

    fn is_png(path: &Path) -> bool {
        let bytes = std::fs::read(path).unwrap();
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5_000
    }

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
    fn degenerate_inputs_do_not_panic() {
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

        assert!(BarChart::class_counts(&[], &[]).svg().is_err());
        BarChart::class_counts(&[], &[0, 0, 0]).svg().unwrap();
        BarChart::class_counts(&["only".into()], &[7]).svg().unwrap();
        let neg = BarChart { values: vec![-1.0, 2.0], labels: vec!["a".into(), "b".into()], ..Default::default() };
        neg.svg().unwrap();
        let nan = BarChart { values: vec![f64::NAN], labels: vec!["a".into()], ..Default::default() };
        assert!(nan.svg().is_err());
        let mismatch = BarChart { values: vec![1.0], labels: vec![], ..Default::default() };
        assert!(mismatch.svg().is_err());

        assert!(Heatmap::default().svg().is_err());
        let ragged = Heatmap { labels: vec!["a".into(), "b".into()], counts: vec![vec![1, 2], vec![3]], ..Default::default() };
        assert!(ragged.svg().is_err());
        let zeros = Heatmap { labels: vec!["a".into()], counts: vec![vec![0]], ..Default::default() };
        zeros.svg().unwrap();
    }

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
    fn heatmap_svg_has_counts_and_axis_names() {
        let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 1, 2, 2, 2], &[0, 1, 1, 1, 2, 2, 0], 3).unwrap();
        let chart = Heatmap::confusion(&["CS".into(), "Medical & Bio".into()], &cm);
        let svg = chart.svg().unwrap();
        for s in ["true", "predicted", "CS", "Medical &amp; Bio", ">\n2\n</text>", "Confusion matrix"] {
            assert!(svg.contains(s), "missing {s}");
        }
        // Dark (highest) cells carry white text.
        assert!(svg.contains("fill=\"#FFFFFF\""));
    }

    #[test]
    fn save_writes_svg_and_png_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(&[0.5, 0.6, 0.72, 0.75]);
        let charts: Vec<(&str, Box<dyn Chart>)> = vec![
            ("acc.bs16", Box::new(LineChart::accuracy_per_epoch(&[("m".into(), &h)]))),
            ("counts", Box::new(BarChart::class_counts(&["x".into(), "y".into()], &[10, 20]))),
            ("cm", Box::new(Heatmap { title: "cm".into(), labels: vec!["a".into(), "b".into()], counts: vec![vec![5, 1], vec![2, 9]] })),
        ];
        for (stem, chart) in &charts {
            chart.save(&dir.path().join(stem)).unwrap();
            let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
            assert!(svg.contains("<svg"));
            assert!(is_png(&dir.path().join(format!("{stem}.png"))), "{stem}.png");
        }
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["acc.bs16.png", "acc.bs16.svg", "cm.png", "cm.svg", "counts.png", "counts.svg"], "no temp files left");

        // A failed draw leaves nothing behind, not even the bitmap's temp file.
        let empty = LineChart::new("t", "x", "y");
        assert!(empty.save_png(&dir.path().join("empty.png")).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 6);
    }

    #[test]
    fn helpers() {
        ensure_fonts();
        assert_eq!(value_labels(&[1234.0, 0.0]), ["1234", "0"]);
        assert_eq!(value_labels(&[1.0, 0.8, 0.87345]), ["1.00", "0.80", "0.87"]);
        assert_eq!(value_labels(&[812.4, 205.25]), ["812", "205"]);
        assert_eq!(value_labels(&[12.345]), ["12.3"]);
        assert_eq!(tick_decimals(0.9, 8), 1);
        assert_eq!(tick_decimals(100.0, 8), 0);
        assert_eq!(tick_decimals(0.05, 8), 2);
        assert_eq!(tick_decimals(0.0, 8), 2);
        assert_eq!(fit_text("short", 15, 28, 1000), "short");
        assert!(fit_text(&"w".repeat(100), 15, 28, 1000).ends_with('…'));
        assert!(text_width("wide text", 15) > text_width("w", 15));
        assert_eq!(blues(0.0), RGBColor(0xf7, 0xfb, 0xff));
        assert_eq!(blues(1.0), RGBColor(0x08, 0x30, 0x6b));
        assert!(is_dark(blues(1.0)) && !is_dark(blues(0.0)));
    }

    /// Renders one example of every chart to /tmp for a visual check:
    /// `cargo test --lib report::plot::tests::render_examples -- --ignored`.
    #[test]
    #[ignore]
    fn render_examples() {
        let runs: Vec<(String, History)> = [("minilm", 16), ("minilm", 32), ("bert-base-uncased", 16), ("electra-small", 16)]
            .iter()
            .enumerate()
            .map(|(i, (m, bs))| {
                let accs: Vec<f64> = (0..5).map(|e| 0.45 + 0.08 * i as f64 + 0.3 * (1.0 - (-0.8 * e as f64).exp())).collect();
                let mut h = history(&accs);
                for e in &mut h.epochs {
                    e.train_loss *= 1.0 - 0.15 * i as f64;
                    e.val_loss = e.val_loss.map(|l| l * (1.0 - 0.12 * i as f64));
                }
                (format!("{m} bs={bs}"), h)
            })
            .collect();
        let refs: Vec<(String, &History)> = runs.iter().map(|(n, h)| (n.clone(), h)).collect();
        LineChart::accuracy_per_epoch(&refs).save(Path::new("/tmp/plot_acc")).unwrap();
        LineChart::loss_per_epoch(&refs).save(Path::new("/tmp/plot_loss")).unwrap();
        let names: Vec<String> = [
            "Computer Science",
            "Electrical Engineering",
            "Psychology",
            "Mechanical Engineering",
            "Civil Engineering",
            "Medical Sciences",
            "Biochemistry",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        BarChart::class_counts(&names, &[1523, 987, 1412, 1100, 640, 2100, 870]).save(Path::new("/tmp/plot_counts")).unwrap();
        let short = BarChart {
            title: "Training throughput".into(),
            x_label: "model".into(),
            y_label: "samples/s".into(),
            labels: vec!["minilm".into(), "bert-base".into(), "electra".into()],
            values: vec![812.4, 205.25, 530.0],
        };
        short.save(Path::new("/tmp/plot_throughput")).unwrap();
        let targets: Vec<usize> = (0..700).map(|i| i % 7).collect();
        let preds: Vec<usize> = targets.iter().enumerate().map(|(i, &t)| if i % 5 == 0 { (t + i / 5) % 7 } else { t }).collect();
        let m = Metrics::compute(&targets, &preds, 7).unwrap();
        BarChart::per_class_f1(&names, &m).save(Path::new("/tmp/plot_f1")).unwrap();
        Heatmap::confusion(&names, &m.confusion).save(Path::new("/tmp/plot_cm")).unwrap();
        let short_names: Vec<String> = ["neg", "pos", "neu"].iter().map(|s| s.to_string()).collect();
        let m3 = Metrics::compute(&[0, 0, 1, 1, 2, 2, 2, 0], &[0, 1, 1, 1, 2, 0, 2, 0], 3).unwrap();
        Heatmap::confusion(&short_names, &m3.confusion).save(Path::new("/tmp/plot_cm3")).unwrap();
        let t134: Vec<usize> = (0..5000).map(|i| i % 134).collect();
        let p134: Vec<usize> = t134.iter().enumerate().map(|(i, &t)| if i % 4 == 0 { (t + 1) % 134 } else { t }).collect();
        let m134 = Metrics::compute(&t134, &p134, 134).unwrap();
        Heatmap::confusion(&[], &m134.confusion).save(Path::new("/tmp/plot_cm134")).unwrap();
        BarChart::per_class_f1(&[], &m134).save(Path::new("/tmp/plot_f1_134")).unwrap();
        let many: Vec<(String, History)> =
            (0..13).map(|i| (format!("run {i} with a long descriptive name"), history(&[0.3 + 0.01 * i as f64, 0.5, 0.6]))).collect();
        let refs: Vec<(String, &History)> = many.iter().map(|(n, h)| (n.clone(), h)).collect();
        LineChart::accuracy_per_epoch(&refs).save(Path::new("/tmp/plot_many")).unwrap();
        let one = history(&[0.62]);
        LineChart::accuracy_per_epoch(&[("single epoch".into(), &one)]).save(Path::new("/tmp/plot_single")).unwrap();
        let flat = LineChart {
            series: vec![Series::new("", vec![(0.1, 2.5), (0.2, 2.5), (0.3, 2.5)])],
            ..LineChart::new("Constant loss, unnamed series", "step (fraction of epoch)", "loss")
        };
        flat.save(Path::new("/tmp/plot_flat")).unwrap();
        let models = BarChart {
            title: "Samples per second".into(),
            x_label: "model".into(),
            y_label: "samples/s".into(),
            labels: ["bert-base-uncased", "google/electra-small-discriminator", "all-MiniLM-L6-v2", "distilbert"]
                .map(String::from)
                .to_vec(),
            values: vec![205.3, 1210.0, 1822.7, 390.1],
        };
        models.save(Path::new("/tmp/plot_models")).unwrap();
        let n20: Vec<String> = (0..20).map(|i| format!("{} class {i}", names[i % 7])).collect();
        let t20: Vec<usize> = (0..2000).map(|i| (i * 7) % 20).collect();
        let p20: Vec<usize> = t20.iter().enumerate().map(|(i, &t)| if i % 3 == 0 { (t + i % 4) % 20 } else { t }).collect();
        let m20 = Metrics::compute(&t20, &p20, 20).unwrap();
        Heatmap::confusion(&n20, &m20.confusion).save(Path::new("/tmp/plot_cm20")).unwrap();
    }
}
