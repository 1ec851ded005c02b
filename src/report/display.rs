//! What a notebook cell shows when it ends with a value of this crate: the
//! evcxr Jupyter kernel calls an `evcxr_display` method on it, which prints
//! the value as rich output. This module has [`evcxr_html`] and those hooks for
//! [`HtmlTable`] and for the types of other modules ([`History`], [`Metrics`],
//! [`ConfusionMatrix`], [`LoadReport`]); charts carry theirs through
//! [`Chart::evcxr_display`](crate::report::plot::Chart::evcxr_display).
//!
//! ```no_run
//! use encoder_bench::train::History;
//! History::default().evcxr_display(); // "no epochs recorded yet" in the cell
//! ```
use crate::models::LoadReport;
use crate::report::html::{HtmlTable, history_html, load_report_html, metrics_html};
use crate::report::plot::Heatmap;
use crate::train::{ConfusionMatrix, History, Metrics};

/// Shows `html` as rich output of an evcxr Jupyter cell.
///
/// ```no_run
/// use encoder_bench::report::display::evcxr_html;
/// use encoder_bench::report::html::html_table;
/// evcxr_html(&html_table(&["a".into()], &[vec!["1".into()]]));
/// ```
pub fn evcxr_html(html: &str) {
    // Wide tables (a sweep summary has a dozen columns) scroll instead of spilling over the page.
    println!("EVCXR_BEGIN_CONTENT text/html\n<div style=\"overflow-x:auto\">{html}</div>\nEVCXR_END_CONTENT");
}

impl HtmlTable {
    /// Shows the fragment in an evcxr Jupyter cell.
    pub fn evcxr_display(&self) {
        evcxr_html(&self.0);
    }
}

impl History {
    /// Shows the per-epoch table ([`history_html`]) in an evcxr Jupyter cell.
    pub fn evcxr_display(&self) {
        evcxr_html(&history_html(self));
    }
}

impl Metrics {
    /// Shows the scores ([`metrics_html`], classes named by id) in an evcxr
    /// Jupyter cell; call `evcxr_html(&metrics_html(&m, &names))` for names.
    pub fn evcxr_display(&self) {
        evcxr_html(&metrics_html(self, &[]));
    }
}

impl ConfusionMatrix {
    /// Shows the matrix as a heatmap (classes named by id) in an evcxr Jupyter cell.
    pub fn evcxr_display(&self) {
        Heatmap::confusion(&[], self).evcxr_display();
    }
}

impl LoadReport {
    /// Shows the key table ([`load_report_html`]) in an evcxr Jupyter cell.
    pub fn evcxr_display(&self) {
        evcxr_html(&load_report_html(self));
    }
}
