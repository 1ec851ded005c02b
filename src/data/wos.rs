//! Reader for the Web of Science (WOS) release format.
//!
//! A WOS directory holds `X.txt`, one document a line, and label files with one
//! integer a line for the same documents: `YL1.txt` (level 1, 7 domains),
//! `YL2.txt` (level 2) and `Y.txt` (leaf labels). See [`Dataset::read_wos`].
use super::text::{label_id, utf8};
use super::{Dataset, LabelMap};
use crate::error::{Error, Result};
use std::path::Path;

/// Which label file of a WOS directory to read.
///
/// ```
/// use encoder_bench::data::WosLevel;
/// assert_eq!(WosLevel::L1.file_name(), "YL1.txt");
/// assert_eq!(WosLevel::Leaf.file_name(), "Y.txt");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WosLevel {
    /// The 7 level-1 domains (`YL1.txt`, ids 0..=6, named by [`LabelMap::wos_level1`]).
    L1,
    /// Level-2 areas (`YL2.txt`), numbered classes.
    L2,
    /// Leaf labels (`Y.txt`), numbered classes.
    Leaf,
}

impl WosLevel {
    /// The label file this level reads, inside a WOS directory.
    pub fn file_name(self) -> &'static str {
        match self {
            WosLevel::L1 => "YL1.txt",
            WosLevel::L2 => "YL2.txt",
            WosLevel::Leaf => "Y.txt",
        }
    }
}

/// WOS-46985 has 7 level-1 domains, ids 0..=6.
const WOS_L1_CLASSES: usize = 7;

impl Dataset {
    /// Reads a WOS directory: texts from `X.txt`, labels from the file of
    /// `level` (see [`WosLevel::file_name`]).
    ///
    /// Lines may end in `\n` or `\r\n`, with or without a final newline, and a
    /// leading UTF-8 byte-order mark is ignored. Level-1 labels must be in
    /// 0..=6 and are named by [`LabelMap::wos_level1`]; level-2 and leaf
    /// labels must be ≥ 0 and give `max + 1` numbered classes.
    ///
    /// Every error names the file and, where it applies, the 1-based line:
    /// missing or empty files, non-UTF-8 bytes, empty text lines, labels that
    /// are not integers or out of range, and a different number of lines in
    /// `X.txt` and the label file.
    ///
    /// ```no_run
    /// use encoder_bench::data::{Dataset, WosLevel};
    /// let ds = Dataset::read_wos("../shared/data/wos-sample", WosLevel::L1)?;
    /// assert_eq!(ds.num_classes(), 7);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn read_wos(dir: impl AsRef<Path>, level: WosLevel) -> Result<Dataset> {
        let dir = dir.as_ref();
        let x_path = dir.join("X.txt");
        let y_path = dir.join(level.file_name());
        let x_bytes = read_required(&x_path, level)?;
        let y_bytes = read_required(&y_path, level)?;
        let x_lines = split_lines(&x_path, &x_bytes)?;
        let y_lines = split_lines(&y_path, &y_bytes)?;

        // Per-file checks come before the count check: a stray blank line or a
        // bad label is reported where it is, not as a vaguer count mismatch.
        for (i, line) in x_lines.iter().enumerate() {
            if line.trim().is_empty() {
                return Err(Error::data(&x_path, Some(i + 1), "empty text line: every line of X.txt must hold a document"));
            }
        }
        let targets = parse_labels(&y_path, &y_lines, level)?;

        if x_lines.len() != y_lines.len() {
            // Point at the first line that has no partner, in the shorter file.
            let (short, n) = if x_lines.len() < y_lines.len() { (&x_path, x_lines.len()) } else { (&y_path, y_lines.len()) };
            return Err(Error::data(
                short,
                Some(n + 1),
                format!(
                    "line counts differ: X.txt has {} lines but {} has {}; each text needs exactly one label",
                    x_lines.len(),
                    level.file_name(),
                    y_lines.len()
                ),
            ));
        }

        let labels = match level {
            WosLevel::L1 => LabelMap::wos_level1(),
            WosLevel::L2 | WosLevel::Leaf => LabelMap::numbered(targets.iter().max().map_or(0, |m| m + 1)),
        };
        let texts = x_lines.into_iter().map(str::to_string).collect();
        Dataset::new(dir.display().to_string(), texts, targets, labels)
    }
}

/// Reads a file of the WOS directory; a missing one is reported with what the
/// directory should contain, since that is the usual mistake (wrong path).
fn read_required(path: &Path, level: WosLevel) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::data(
            path,
            None,
            match level {
                WosLevel::L1 => "file not found: a WOS directory needs X.txt and YL1.txt".to_string(),
                _ => {
                    format!("file not found: a WOS directory needs X.txt and YL1.txt, plus {} to read {level:?} labels", level.file_name())
                }
            },
        )),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Splits a file into lines without their `\n` / `\r\n` terminators, checking
/// UTF-8 first so that a bad byte is reported with its line.
fn split_lines<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<&'a str>> {
    let text = utf8(path, bytes)?;
    // Editors on Windows often prepend a BOM; it would otherwise end up in the
    // first text or make the first label unparsable.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(Error::data(path, None, "empty file: expected one entry per line"));
    }
    let text = text.strip_suffix('\n').unwrap_or(text);
    // `trim_end_matches`, not `strip_suffix`: files converted twice end
    // lines in `\r\r\n`, which would leave a stray `\r` in every text.
    Ok(text.split('\n').map(|l| l.trim_end_matches('\r')).collect())
}

fn parse_labels(path: &Path, lines: &[&str], level: WosLevel) -> Result<Vec<usize>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let line = Some(i + 1);
            let s = raw.trim();
            if s.is_empty() {
                return Err(Error::data(path, line, "empty label line: expected an integer"));
            }
            let v: i64 = s.parse().map_err(|_| Error::data(path, line, format!("label \"{s}\" is not an integer")))?;
            match level {
                WosLevel::L1 if !(0..WOS_L1_CLASSES as i64).contains(&v) => Err(Error::data(
                    path,
                    line,
                    format!(
                        "label {v} out of range: level-1 labels are 0..={} (WOS-46985 has {WOS_L1_CLASSES} domains)",
                        WOS_L1_CLASSES - 1
                    ),
                )),
                _ => label_id(v).map_err(|msg| Error::data(path, line, msg)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "X.txt", b"a b\r\nc d\r\ne f");
        write(d.path(), "YL2.txt", b"0\r\n4\r\n2\r\n");
        let ds = Dataset::read_wos(d.path(), WosLevel::L2).unwrap();
        assert_eq!(ds.texts, ["a b", "c d", "e f"]);
        assert_eq!(ds.targets, [0, 4, 2]);
        assert_eq!(ds.num_classes(), 5);
        assert_eq!(ds.labels.name(4), Some("4"));
    }

    #[test]
    fn doubled_carriage_returns_are_line_endings_too() {
        // Found by tests/reliability.rs::fuzz_wos_reader.
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "X.txt", "caf\u{e9}\r\r\nnext\r\r\n".as_bytes());
        write(d.path(), "YL1.txt", b"0\r\r\n1\n");
        let ds = Dataset::read_wos(d.path(), WosLevel::L1).unwrap();
        assert_eq!(ds.texts, ["caf\u{e9}", "next"]);
    }

    #[test]
    fn bom_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "X.txt", "\u{feff}hello\n".as_bytes());
        write(d.path(), "YL1.txt", "\u{feff}6\n".as_bytes());
        let ds = Dataset::read_wos(d.path(), WosLevel::L1).unwrap();
        assert_eq!(ds.texts, ["hello"]);
        assert_eq!(ds.labels.name(ds.targets[0]), Some("Biochemistry"));
    }

    #[test]
    fn invalid_utf8_reports_its_line() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "X.txt", b"ok\nfine\nbad \xff here\n");
        write(d.path(), "YL1.txt", b"0\n1\n2\n");
        let e = Dataset::read_wos(d.path(), WosLevel::L1).unwrap_err().to_string();
        assert!(e.contains("X.txt:3:") && e.contains("UTF-8") && e.contains("0xFF") && e.contains("column 5"), "{e}");
    }

    #[test]
    fn huge_label_is_refused() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "X.txt", b"a\n");
        write(d.path(), "Y.txt", b"99999999999\n");
        let e = Dataset::read_wos(d.path(), WosLevel::Leaf).unwrap_err().to_string();
        assert!(e.contains("Y.txt:1:") && e.contains("out of range"), "{e}");
    }
}
