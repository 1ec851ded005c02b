//! What every chart shares: the font and its sizes, text colours, text
//! measurement and fitting, tick decimals, axis ranges, the title strip and
//! class names.
//!
//! All text goes through [`font`] and friends, which use the DejaVu Sans
//! faces registered by [`ensure_fonts`]; measuring with the same font the
//! backends draw with is what lets the charts size their margins and cut
//! long labels before they overlap.
use super::draw_err;
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

/// The font family every text uses; [`ensure_fonts`] maps it to DejaVu Sans.
const FAMILY: &str = "sans-serif";
pub(super) const TITLE_PX: u32 = 22;
pub(super) const DESC_PX: u32 = 17;
pub(super) const TICK_PX: u32 = 15;
pub(super) const LEGEND_PX: u32 = 15;
/// Pixel size of line and bar charts (bar charts grow taller with many classes).
pub(super) const DEFAULT_SIZE: (u32, u32) = (800, 480);
/// Most ticks on a numeric x axis and on a value axis.
pub(super) const X_TICKS: usize = 10;
pub(super) const Y_TICKS: usize = 10;
/// Class names longer than this are cut with an ellipsis: beyond it they eat
/// the plot area without getting more readable.
pub(super) const MAX_LABEL_CHARS: usize = 28;

/// Grid lines.
pub(super) const GRID: RGBColor = RGBColor(0xe2, 0xe2, 0xe2);
/// Titles, tick labels and axis descriptions.
pub(super) const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
/// Axes, frames and secondary text.
pub(super) const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// Registers DejaVu Sans as "sans-serif" for the bitmap backend and for text
/// measurement; without it plotters has no font at all (no `ttf` feature).
pub(super) fn ensure_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        let regular = plotters::style::register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok();
        let bold = plotters::style::register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok();
        // The fonts are compiled in: failing to parse them is a build defect.
        assert!(regular && bold, "the bundled DejaVu Sans fonts do not parse");
    });
}

/// The chart font at `px` pixels.
pub(super) fn font(px: u32) -> FontDesc<'static> {
    (FAMILY, px).into_font()
}

/// Regular text at `px` in `color`, anchored at `(h, v)` of the drawing position.
pub(super) fn text_style(px: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    font(px).color(&color).pos(Pos::new(h, v))
}

/// Bold text, otherwise as [`text_style`].
pub(super) fn bold_style(px: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    // Not `font(px).style(Bold)`: plotters' `FontDesc::style` keeps the
    // regular glyphs it already loaded, so the text would not be bold.
    FontDesc::new(FAMILY.into(), px as f64, FontStyle::Bold).color(&color).pos(Pos::new(h, v))
}

/// Width in pixels of `text` at `px`, as both backends lay it out.
pub(super) fn text_width(text: &str, px: u32) -> u32 {
    font(px).box_size(text).map(|(w, _)| w).unwrap_or(px * text.chars().count() as u32 / 2)
}

/// `text` cut with an ellipsis so it is at most `max_chars` long and `max_px` wide.
pub(super) fn fit_text(text: &str, px: u32, max_chars: usize, max_px: u32) -> String {
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
pub(super) fn tick_decimals(span: f64, max_ticks: usize) -> usize {
    if span <= 0.0 || !span.is_finite() {
        return 2;
    }
    let min_step = span / max_ticks.max(1) as f64;
    let power = 10f64.powf(min_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|&s| s >= min_step * (1.0 - 1e-9)).unwrap_or(10.0 * power);
    (-step.log10().floor()).clamp(0.0, 6.0) as usize
}

/// Draws the title centred at the top of `root` and returns the area below it.
pub(super) fn title_area<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>> {
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
pub(super) fn padded_range(lo: f64, hi: f64, pad_frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(lo.abs()).max(1.0) {
        let pad = if hi.abs() > 0.0 { hi.abs() * 0.05 } else { 0.5 };
        return (lo - pad, hi + pad);
    }
    (lo - span * pad_frac, hi + span * pad_frac)
}

/// `names` padded with class ids up to `n`.
pub(super) fn class_names(names: &[String], n: usize) -> Vec<String> {
    (0..n).map(|k| names.get(k).cloned().unwrap_or_else(|| k.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_tick_helpers() {
        ensure_fonts();
        assert_eq!(tick_decimals(0.9, 8), 1);
        assert_eq!(tick_decimals(100.0, 8), 0);
        assert_eq!(tick_decimals(0.05, 8), 2);
        assert_eq!(tick_decimals(0.0, 8), 2);
        assert_eq!(fit_text("short", 15, 28, 1000), "short");
        assert!(fit_text(&"w".repeat(100), 15, 28, 1000).ends_with('…'));
        assert!(text_width("wide text", 15) > text_width("w", 15));
        assert_eq!(class_names(&["a".into()], 3), ["a", "1", "2"]);
    }
}
