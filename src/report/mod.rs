//! What a run leaves behind: run records (JSON) that reports and notebooks
//! reload, charts (SVG and PNG), HTML tables and polars data frames for the
//! notebook, and the hooks that show them in an evcxr Jupyter cell.
pub mod display;
pub mod frames;
pub mod html;
pub mod plot;
pub mod record;

pub use display::evcxr_html;
pub use frames::{history_frame, save_frame};
pub use html::{HtmlTable, dataframe_html, html_table};
pub use plot::{BarChart, Chart, Heatmap, LineChart, Series};
pub use record::{RunRecord, Versions};
