//! CSV and Parquet readers (through polars): one text column, one label column.
//!
//! Labels may be integers, used as ids unchanged, or strings, mapped to ids in
//! sorted order of the distinct names so that the same file always gives the
//! same ids. See [`Dataset::read_csv`] and [`Dataset::read_parquet`].
use super::text::{label_id, utf8};
use super::{Dataset, LabelMap};
use crate::error::{Error, Result};
use polars::prelude::*;
use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;

/// How to point a user at a data row in error messages.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// A CSV file: its bytes, to turn a row into its physical line, and for
    /// each frame row the file's data row (blank rows were dropped).
    Csv {
        bytes: &'a [u8],
        rows: &'a [usize],
    },
    Parquet,
}

impl Dataset {
    /// Reads a CSV file with a header line, taking texts from `text_col` and
    /// labels from `label_col`; other columns are ignored.
    ///
    /// All fields are read as strings, then the label column is taken as
    /// integer ids when every label parses as an integer (ids must be ≥ 0;
    /// `max + 1` numbered classes), and as class names otherwise (ids follow
    /// the sorted order of the distinct names). Blank lines (rows whose
    /// fields are all empty) are skipped. Errors name the file and the
    /// line of the offending row (the header is line 1): missing columns (with
    /// the columns present), null or empty texts, null labels, negative
    /// labels, and an empty file or one without data rows.
    ///
    /// ```no_run
    /// use encoder_bench::data::Dataset;
    /// let ds = Dataset::read_csv("data/reviews.csv", "text", "label")?;
    /// println!("{} texts, classes {:?}", ds.len(), ds.labels.names());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn read_csv(path: impl AsRef<Path>, text_col: &str, label_col: &str) -> Result<Dataset> {
        Self::read_delimited(path.as_ref(), b',', text_col, label_col)
    }

    /// Reads a tab-separated file with a header line, as [`read_csv`](Self::read_csv) reads a CSV.
    ///
    /// ```no_run
    /// let ds = encoder_bench::data::Dataset::read_tsv("data/train.tsv", "text", "label")?;
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn read_tsv(path: impl AsRef<Path>, text_col: &str, label_col: &str) -> Result<Dataset> {
        Self::read_delimited(path.as_ref(), b'\t', text_col, label_col)
    }

    fn read_delimited(path: &Path, separator: u8, text_col: &str, label_col: &str) -> Result<Dataset> {
        let bytes = read_nonempty(path, "a header line and data rows")?;
        // polars would report a bad byte without its line (or replace it).
        utf8(path, &bytes)?;
        // Every column as a string: polars would otherwise guess types from the
        // first 100 rows only and fail later without a line number, and a text
        // column of numbers would come back as integers.
        let df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .map_parse_options(|o| o.with_separator(separator))
            .into_reader_with_file_handle(Cursor::new(bytes.as_slice()))
            .finish()
            .map_err(|e| Error::data(path, None, format!("cannot read CSV: {e}")))?;
        // polars turns blank lines (a trailing one, typically) into all-null
        // rows; skip them as pandas does instead of failing on "null text".
        let blank = df.columns().iter().fold(BooleanChunked::full("".into(), true, df.height()), |acc, c| &acc & &c.is_null());
        let rows: Vec<usize> = blank.iter().enumerate().filter(|(_, b)| *b != Some(true)).map(|(i, _)| i).collect();
        let df = if rows.len() < df.height() {
            df.filter(&!&blank).map_err(|e| Error::data(path, None, format!("cannot read CSV: {e}")))?
        } else {
            df
        };
        from_frame(&df, path, text_col, label_col, Origin::Csv { bytes: &bytes, rows: &rows })
    }

    /// Reads a Parquet file, taking texts from `text_col` (a string column)
    /// and labels from `label_col` (integers, used as ids and required to be
    /// ≥ 0, or strings, mapped to ids in sorted order of the distinct names).
    /// Categorical columns count as strings.
    ///
    /// Errors name the file and the 1-based row: missing columns (with the
    /// columns present), a text column of another type (with its dtype), null
    /// or empty texts, null labels, negative labels, and a file without rows.
    ///
    /// ```no_run
    /// use encoder_bench::data::Dataset;
    /// let ds = Dataset::read_parquet("data/train.parquet", "text", "label")?;
    /// println!("{} texts in {} classes", ds.len(), ds.num_classes());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn read_parquet(path: impl AsRef<Path>, text_col: &str, label_col: &str) -> Result<Dataset> {
        let path = path.as_ref();
        let bytes = read_nonempty(path, "a Parquet file")?;
        let df = ParquetReader::new(Cursor::new(bytes.as_slice()))
            .finish()
            .map_err(|e| Error::data(path, None, format!("cannot read Parquet: {e}")))?;
        from_frame(&df, path, text_col, label_col, Origin::Parquet)
    }
}

fn read_nonempty(path: &Path, expected: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::data(path, None, format!("empty file: expected {expected}")));
    }
    Ok(bytes)
}

fn from_frame(df: &DataFrame, path: &Path, text_col: &str, label_col: &str, origin: Origin) -> Result<Dataset> {
    let text = column(df, path, text_col, origin)?;
    let label = column(df, path, label_col, origin)?;
    if df.height() == 0 {
        let what = match origin {
            Origin::Csv { .. } => "no data rows: the file has only a header",
            Origin::Parquet => "no rows",
        };
        return Err(Error::data(path, None, what));
    }
    let texts = read_texts(text, path, text_col, origin)?;
    let (targets, labels) = read_labels(label, path, label_col, origin)?;
    Dataset::new(path.display().to_string(), texts, targets, labels)
}

fn column<'a>(df: &'a DataFrame, path: &Path, name: &str, origin: Origin) -> Result<&'a Column> {
    df.column(name).map_err(|_| {
        let present: Vec<String> = df.get_column_names().iter().map(|c| format!("`{c}`")).collect();
        // For CSV the column names come from the header, line 1.
        let line = matches!(origin, Origin::Csv { .. }).then_some(1);
        Error::data(path, line, format!("no column `{name}`; columns present: {}", present.join(", ")))
    })
}

/// Categorical columns hold strings too; everything else is left as is.
fn as_strings(col: &Column) -> Option<Column> {
    let dt = col.dtype();
    if dt.is_string() {
        Some(col.clone())
    } else if dt.is_categorical() || dt.is_enum() {
        col.cast(&DataType::String).ok()
    } else {
        None
    }
}

fn read_texts(col: &Column, path: &Path, name: &str, origin: Origin) -> Result<Vec<String>> {
    let strings = as_strings(col)
        .ok_or_else(|| Error::data(path, None, format!("text column `{name}` has dtype {}, expected strings", col.dtype())))?;
    let ca = strings.str().map_err(|e| Error::data(path, None, e.to_string()))?;
    ca.iter()
        .enumerate()
        .map(|(row, v)| match v {
            None => Err(row_error(path, origin, row, format!("null text in column `{name}`"))),
            Some(s) if s.trim().is_empty() => Err(row_error(path, origin, row, format!("empty text in column `{name}`"))),
            Some(s) => Ok(s.to_string()),
        })
        .collect()
}

fn read_labels(col: &Column, path: &Path, name: &str, origin: Origin) -> Result<(Vec<usize>, LabelMap)> {
    let dt = col.dtype();
    if dt.is_integer() {
        let ints = col
            .strict_cast(&DataType::Int64)
            .map_err(|e| Error::data(path, None, format!("label column `{name}` ({dt}) does not fit in i64: {e}")))?;
        let ca = ints.i64().map_err(|e| Error::data(path, None, e.to_string()))?;
        let values = ca.iter().enumerate().map(|(row, v)| v.ok_or(row)).collect::<Vec<_>>();
        return integer_labels(values, path, name, origin);
    }
    let Some(strings) = as_strings(col) else {
        return Err(Error::data(path, None, format!("label column `{name}` has dtype {dt}, expected integers or strings")));
    };
    let ca = strings.str().map_err(|e| Error::data(path, None, e.to_string()))?;
    if let Some(row) = ca.iter().position(|v| v.is_none()) {
        return Err(row_error(path, origin, row, format!("null label in column `{name}`")));
    }
    let names: Vec<&str> = ca.iter().flatten().collect();
    // CSV fields are all read as strings, so integer labels show up here.
    if matches!(origin, Origin::Csv { .. }) {
        let parsed: Option<Vec<i64>> = names.iter().map(|s| s.trim().parse().ok()).collect();
        if let Some(ints) = parsed {
            return integer_labels(ints.into_iter().map(Ok).collect(), path, name, origin);
        }
    }
    if let Some(row) = names.iter().position(|s| s.trim().is_empty()) {
        return Err(row_error(path, origin, row, format!("empty label in column `{name}`")));
    }
    let mut distinct: BTreeSet<&str> = BTreeSet::new();
    for (row, label) in names.iter().enumerate() {
        if distinct.insert(label) && distinct.len() > super::text::MAX_CLASSES {
            return Err(row_error(
                path,
                origin,
                row,
                format!(
                    "label `{label}` is distinct label number {} in column `{name}`: at most {} classes are supported (is `{name}` the \
                     label column?)",
                    distinct.len(),
                    super::text::MAX_CLASSES
                ),
            ));
        }
    }
    let distinct: Vec<&str> = distinct.into_iter().collect();
    let targets = names.iter().map(|n| distinct.binary_search(n).expect("name comes from the same column")).collect();
    Ok((targets, LabelMap::new(distinct.into_iter().map(String::from).collect())))
}

/// Integer labels (`Err(row)` marks a null) → ids and `max + 1` numbered classes.
fn integer_labels(values: Vec<Result<i64, usize>>, path: &Path, name: &str, origin: Origin) -> Result<(Vec<usize>, LabelMap)> {
    let mut targets = Vec::with_capacity(values.len());
    for (row, v) in values.into_iter().enumerate() {
        let v = v.map_err(|row| row_error(path, origin, row, format!("null label in column `{name}`")))?;
        let id = label_id(v).map_err(|msg| {
            let hint = if v > 0 { format!(" (is `{name}` the label column?)") } else { String::new() };
            row_error(path, origin, row, format!("{msg}{hint}"))
        })?;
        targets.push(id);
    }
    let n = targets.iter().max().map_or(0, |m| m + 1);
    Ok((targets, LabelMap::numbered(n)))
}

/// An error at frame row `row` (0-based): CSV errors carry the physical line
/// and the file's data row, Parquet ones the 1-based row (Parquet has no lines).
fn row_error(path: &Path, origin: Origin, row: usize, msg: String) -> Error {
    match origin {
        Origin::Csv { bytes, rows } => {
            let row = rows[row];
            Error::data(path, Some(csv_line_of_row(bytes, row)), format!("data row {}: {msg}", row + 1))
        }
        Origin::Parquet => Error::data(path, None, format!("row {}: {msg}", row + 1)),
    }
}

/// The 1-based line where data row `row` (0-based) starts. It is `row + 2`
/// (after the header) unless quoted fields span lines, so the file is
/// scanned, honouring `"` quoting, to stay right for multi-line texts.
/// Blank lines count as rows, as they do for polars.
fn csv_line_of_row(bytes: &[u8], row: usize) -> usize {
    // Record 0 is the header; data row `row` is record `row + 1`.
    let (mut line, mut record, mut in_quotes) = (1usize, 0usize, false);
    for &b in bytes {
        if record == row + 1 {
            break;
        }
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' => {
                line += 1;
                record += usize::from(!in_quotes);
            }
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_follow_quoted_newlines() {
        let csv = b"text,label\n\"two\nlines\",a\nplain,b\n\"x\"\"y\",c\n";
        assert_eq!(csv_line_of_row(csv, 0), 2);
        assert_eq!(csv_line_of_row(csv, 1), 4);
        assert_eq!(csv_line_of_row(csv, 2), 5);
        assert_eq!(csv_line_of_row(b"t,l\r\na,1\r\nb,2\r\n", 1), 3);
        assert_eq!(csv_line_of_row(b"t,l\na,1\n\nb,2\n", 2), 4);
    }

    #[test]
    fn string_labels_sorted_and_integer_like_csv_labels_are_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "text,label\nx,b\ny,a\nz,b\n").unwrap();
        let ds = Dataset::read_csv(&p, "text", "label").unwrap();
        assert_eq!(ds.labels.names(), ["a", "b"]);
        assert_eq!(ds.targets, [1, 0, 1]);
        std::fs::write(&p, "text,label\nx,2\ny,0\n").unwrap();
        let ds = Dataset::read_csv(&p, "text", "label").unwrap();
        assert_eq!(ds.targets, [2, 0]);
        assert_eq!(ds.num_classes(), 3);
    }

    #[test]
    fn numeric_texts_stay_texts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.csv");
        std::fs::write(&p, "text,label\n12,0\n3.5,1\n").unwrap();
        let ds = Dataset::read_csv(&p, "text", "label").unwrap();
        assert_eq!(ds.texts, ["12", "3.5"]);
    }
}
