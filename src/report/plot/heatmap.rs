//! Confusion-matrix heatmaps: true classes down, predicted classes across,
//! cells shaded by count in scikit-learn's white-to-dark-blue scale with the
//! count written inside, and a colour bar. The chart grows with the number
//! of classes up to a size a notebook still shows.
use super::style::{DESC_PX, MAX_LABEL_CHARS, MUTED, TEXT, TICK_PX, TITLE_PX};
use super::style::{bold_style, class_names, ensure_fonts, fit_text, text_style, text_width, title_area};
use super::{Draw, draw_err};
use crate::error::{Error, Result};
use crate::train::ConfusionMatrix;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// Smallest size a heatmap is drawn at.
const HEATMAP_SIZE: (u32, u32) = (640, 600);
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
    use crate::report::plot::Chart;

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
    fn degenerate_heatmaps_do_not_panic() {
        assert!(Heatmap::default().svg().is_err());
        let ragged = Heatmap { labels: vec!["a".into(), "b".into()], counts: vec![vec![1, 2], vec![3]], ..Default::default() };
        assert!(ragged.svg().is_err());
        let zeros = Heatmap { labels: vec!["a".into()], counts: vec![vec![0]], ..Default::default() };
        zeros.svg().unwrap();
    }

    #[test]
    fn blues_scale_and_text_contrast() {
        assert_eq!(blues(0.0), RGBColor(0xf7, 0xfb, 0xff));
        assert_eq!(blues(1.0), RGBColor(0x08, 0x30, 0x6b));
        assert!(is_dark(blues(1.0)) && !is_dark(blues(0.0)));
    }
}
