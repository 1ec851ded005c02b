//! What a run leaves behind: run records (JSON) that reports and notebooks
//! reload, charts (SVG and PNG) and HTML tables for the notebook.
pub mod html;
pub mod plot;
pub mod record;

pub use html::{HtmlTable, dataframe_html, evcxr_html, history_frame, html_table, save_frame};
pub use plot::{BarChart, Chart, Heatmap, LineChart, Series};
pub use record::{RunRecord, Versions};
