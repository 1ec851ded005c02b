//! Polars data frames of run results and saving them: [`history_frame`]
//! lays the per-epoch results of several runs out as one long table (to pivot
//! or filter in a notebook), [`save_frame`] writes a frame as CSV or Parquet.
//! [`dataframe_html`](crate::report::html::dataframe_html) shows a frame as an HTML table.
use crate::error::{Error, Result};
use crate::train::History;
use polars::prelude::{Column, DataFrame};
use std::path::Path;

/// The per-epoch results of several runs as one long table, with columns
/// `model`, `batch_size`, `epoch`, `train_loss`, `val_loss`, `accuracy`
/// (a fraction), `macro_f1` and `train_samples_per_s`: ready to pivot into
/// batch size × model × epoch comparisons.
///
/// ```
/// use encoder_bench::report::frames::history_frame;
/// use encoder_bench::train::History;
/// let df = history_frame(&[("minilm".into(), 16, &History::default())]);
/// assert_eq!(df.width(), 8);
/// ```
pub fn history_frame(runs: &[(String, usize, &History)]) -> DataFrame {
    let rows = || runs.iter().flat_map(|(model, bs, h)| h.epochs.iter().map(move |e| (model, *bs, e)));
    let height = rows().count();
    let columns = vec![
        Column::new("model".into(), rows().map(|(m, _, _)| m.as_str()).collect::<Vec<_>>()),
        Column::new("batch_size".into(), rows().map(|(_, bs, _)| bs as u64).collect::<Vec<_>>()),
        Column::new("epoch".into(), rows().map(|(_, _, e)| e.epoch as u64).collect::<Vec<_>>()),
        Column::new("train_loss".into(), rows().map(|(_, _, e)| e.train_loss).collect::<Vec<_>>()),
        Column::new("val_loss".into(), rows().map(|(_, _, e)| e.val_loss).collect::<Vec<_>>()),
        Column::new("accuracy".into(), rows().map(|(_, _, e)| e.accuracy).collect::<Vec<_>>()),
        Column::new("macro_f1".into(), rows().map(|(_, _, e)| e.macro_f1).collect::<Vec<_>>()),
        Column::new("train_samples_per_s".into(), rows().map(|(_, _, e)| e.train_samples_per_s).collect::<Vec<_>>()),
    ];
    // Every column is built from the same rows with distinct names, which is
    // all DataFrame::new checks.
    DataFrame::new(height, columns).expect("history columns have equal lengths and distinct names")
}

/// Writes `df` to `path` as CSV or Parquet (chosen by the extension),
/// atomically.
///
/// ```
/// use encoder_bench::report::frames::{history_frame, save_frame};
/// let dir = tempfile::tempdir().unwrap();
/// let mut df = history_frame(&[]);
/// save_frame(&mut df, &dir.path().join("h.csv"))?;
/// assert!(std::fs::read_to_string(dir.path().join("h.csv")).unwrap().starts_with("model,batch_size"));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn save_frame(df: &mut DataFrame, path: &Path) -> Result<()> {
    use polars::prelude::{CsvWriter, ParquetWriter, SerWriter};
    let bad = |e: polars::prelude::PolarsError| Error::invalid(path.display().to_string(), e.to_string());
    let parquet = path.extension().is_some_and(|e| e == "parquet");
    crate::error::write_atomic_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        if parquet { ParquetWriter::new(f).finish(df).map(|_| ()).map_err(bad) } else { CsvWriter::new(&mut f).finish(df).map_err(bad) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::history;

    #[test]
    fn history_frame_shape_and_columns() {
        let (a, b) = (history(3), history(2));
        let df = history_frame(&[("minilm".into(), 16, &a), ("bert".into(), 32, &b)]);
        assert_eq!(df.shape(), (5, 8));
        let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["model", "batch_size", "epoch", "train_loss", "val_loss", "accuracy", "macro_f1", "train_samples_per_s"]);
        assert_eq!(df.column("model").unwrap().get(3).unwrap().get_str(), Some("bert"));
        assert_eq!(df.column("macro_f1").unwrap().null_count(), 5);
        assert_eq!(history_frame(&[]).shape(), (0, 8));
    }

    #[test]
    fn save_frame_writes_csv_and_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(2);
        let mut df = history_frame(&[("minilm".into(), 16, &h)]);
        save_frame(&mut df, &dir.path().join("h.csv")).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("h.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        save_frame(&mut df, &dir.path().join("h.parquet")).unwrap();
        assert!(std::fs::read(dir.path().join("h.parquet")).unwrap().starts_with(b"PAR1"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temp files left");
    }
}
