//! Charts for the notebook and for report files: line charts (accuracy or
//! loss per epoch), bar charts (class counts, throughput, per-class F1) and
//! confusion-matrix heatmaps.
//!
//! Every chart renders to an SVG string (shown inline by the evcxr kernel) and
//! to PNG files. The PNG text is drawn with the DejaVu Sans font compiled into
//! the binary, so rendering works on machines without any system fonts.
//!
//! This file holds what all charts share on the outside: the [`Chart`]
//! trait, the [`palette`] and rendering to SVG and PNG. The charts themselves
//! live in `line.rs` ([`LineChart`], [`Series`]), `bar.rs` ([`BarChart`]) and
//! `heatmap.rs` ([`Heatmap`]); `style.rs` has the font, text and axis helpers
//! they draw with.
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
mod bar;
mod heatmap;
mod line;
mod style;

pub use bar::BarChart;
pub use heatmap::Heatmap;
pub use line::{LineChart, Series};

use crate::error::{Error, Result};
use plotters::backend::{BitMapBackend, SVGBackend};
use plotters::coord::Shift;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use style::ensure_fonts;

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
        if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::error::write_atomic(with_suffix(stem, "svg"), svg.as_bytes())?;
        self.save_png(&with_suffix(stem, "png"))
    }

    /// Saves `stem.svg` and `stem.png` (see [`save`](Self::save), folders
    /// made as needed), then shows the chart in the cell: a notebook's
    /// charts land in its report folder as they are drawn.
    fn show_and_save(&self, stem: &str) -> Result<()> {
        self.save(Path::new(stem))?;
        self.evcxr_display();
        Ok(())
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

            /// [`Chart::show_and_save`] without importing [`Chart`].
            pub fn show_and_save(&self, stem: &str) -> Result<()> {
                Chart::show_and_save(self, stem)
            }
        }
    };
}

/// Line charts drawn as panels of one image, one below the other: facets
/// (one per model, say) that keep each panel to a readable number of lines,
/// shown by one display call (a notebook cell shows one image per kind).
///
/// ```
/// use encoder_bench::report::plot::{Chart, Facets, LineChart, Series};
/// let panel = |t: &str| { let mut c = LineChart::new(t, "epoch", "accuracy"); c.series.push(Series::new("a", vec![(1.0, 0.5)])); c };
/// let f = Facets(vec![panel("A"), panel("B")]);
/// assert_eq!(f.size().1, 2 * panel("A").size().1);
/// assert!(f.svg()?.contains("B"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facets(pub Vec<LineChart>);

impl Draw for Facets {
    fn pixel_size(&self) -> (u32, u32) {
        let (w, h) = self.0.first().map_or(style::DEFAULT_SIZE, |c| c.pixel_size());
        (w, h * self.0.len().max(1) as u32)
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        if self.0.is_empty() {
            return Err(Error::invalid("facets", "no panels to draw"));
        }
        for (panel, area) in self.0.iter().zip(root.split_evenly((self.0.len(), 1))) {
            panel.draw_on(&area)?;
        }
        Ok(())
    }
}

impl_chart!(LineChart);
impl_chart!(BarChart);
impl_chart!(Heatmap);
impl_chart!(Facets);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{EpochRecord, History, Metrics};

    /// A history with one complete epoch per accuracy in `accs`.
    pub(super) fn history(accs: &[f64]) -> History {
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
                    test_loss: None,
                    test_accuracy: None,
                    test_macro_f1: None,
                })
                .collect(),
        }
    }

    fn is_png(path: &Path) -> bool {
        let bytes = std::fs::read(path).unwrap();
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5_000
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
    fn show_and_save_makes_its_folder_and_writes_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("out/charts/class_counts");
        let chart = BarChart::class_counts(&["a".into(), "b".into()], &[3, 1]);
        chart.show_and_save(stem.to_str().unwrap()).unwrap();
        let svg = std::fs::read_to_string(with_suffix(&stem, "svg")).unwrap();
        assert!(svg.trim_start().starts_with("<svg") && svg.contains("</svg>"));
        let png = std::fs::read(with_suffix(&stem, "png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
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
