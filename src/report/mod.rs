//! What a run leaves behind: run records (JSON) that reports and notebooks
//! reload, charts (SVG and PNG), HTML tables and polars data frames for the
//! notebook, the hooks that show them in an evcxr Jupyter cell, and the
//! statistics that say whether a difference between runs is real ([`stats`]).
pub mod clock;
pub mod display;
pub mod frames;
pub mod html;
pub mod json;
pub mod plot;
pub mod record;
pub mod stats;

pub use clock::SectionClock;
pub use display::evcxr_html;
pub use frames::{history_frame, save_frame};
pub use html::{HtmlTable, dataframe_html, html_table};
pub use json::to_json_pretty;
pub use plot::{BarChart, Chart, Facets, Heatmap, LineChart, Series};
pub use record::{RunRecord, Versions};

/// A made-up history for the report modules' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::train::{EpochRecord, History};

    /// `n` epochs with falling loss and rising accuracy; the last one incomplete.
    pub(crate) fn history(n: usize) -> History {
        History {
            epochs: (1..=n)
                .map(|epoch| EpochRecord {
                    epoch,
                    train_loss: 1.0 / epoch as f64,
                    val_loss: Some(1.2 / epoch as f64),
                    accuracy: Some(0.5 + 0.1 * epoch as f64),
                    macro_f1: None,
                    steps: 10,
                    lr: 1e-5,
                    complete: epoch < n,
                    train_s: 1.0,
                    eval_s: 0.1,
                    train_samples_per_s: 123.456,
                    eval_samples_per_s: None,
                    test_loss: None,
                    test_accuracy: None,
                    test_macro_f1: None,
                })
                .collect(),
        }
    }
}
