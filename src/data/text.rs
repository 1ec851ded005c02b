//! Rules every reader applies to its bytes and labels: UTF-8 with the place
//! of the first bad byte, and integer label ids in a supported range. Kept in
//! one place so that the WOS and the CSV/Parquet readers cannot drift apart.
use crate::error::{Error, Result};
use std::path::Path;

/// The most classes a dataset or a classifier may have: integer labels
/// imply `max + 1` classes, so ids are `0..MAX_CLASSES`; string labels may
/// have this many distinct names. A larger id is far more likely a wrong
/// column (a document id, a year) than a real class. The confusion matrix
/// is `classes²` counts: at 1,000 classes it is 8 MB in memory and about
/// 3 MB in `run.json`; at the 99,999 a one-row typo once implied, it was
/// 80 GB, and libtorch aborted.
///
/// ```
/// assert_eq!(encoder_bench::data::text::MAX_CLASSES, 1_000);
/// ```
pub const MAX_CLASSES: usize = 1_000;

/// `bytes` as text, or an error naming the line and column of the first
/// byte that is not UTF-8.
///
/// ```
/// use encoder_bench::data::text::utf8;
/// assert_eq!(utf8("a.txt".as_ref(), b"ok").unwrap(), "ok");
/// let e = utf8("a.txt".as_ref(), b"one\ntw\xff").unwrap_err().to_string();
/// assert!(e.contains("a.txt:2") && e.contains("column 3"), "{e}");
/// ```
pub fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line_start = bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::data(
            path,
            Some(line),
            format!("invalid UTF-8: byte 0x{:02X} at column {} (the file must be UTF-8 encoded)", bytes[at], at - line_start + 1),
        )
    })
}

/// An integer label as a label id, or what is wrong with it (the caller adds
/// where it was found).
///
/// ```
/// use encoder_bench::data::text::label_id;
/// assert_eq!(label_id(6), Ok(6));
/// assert!(label_id(-3).unwrap_err().contains("must be >= 0"));
/// assert_eq!(label_id(999), Ok(999));
/// assert!(label_id(99_999).unwrap_err().contains("at most 1000 classes"));
/// ```
pub fn label_id(v: i64) -> std::result::Result<usize, String> {
    if v < 0 {
        Err(format!("label {v} out of range: integer labels must be >= 0"))
    } else if v as u64 >= MAX_CLASSES as u64 {
        Err(format!(
            "label {v} out of range: integer labels are class ids 0..={}, at most {MAX_CLASSES} classes are supported",
            MAX_CLASSES - 1
        ))
    } else {
        Ok(v as usize)
    }
}

/// Refuses a label map of more than [`MAX_CLASSES`] classes; `what` says
/// where the labels came from (the caller adds the file).
///
/// ```
/// use encoder_bench::data::text::check_class_count;
/// assert!(check_class_count(7, "labels").is_ok());
/// assert!(check_class_count(3_000, "labels").unwrap_err().contains("3000 classes"));
/// ```
pub fn check_class_count(n: usize, what: &str) -> std::result::Result<(), String> {
    if n > MAX_CLASSES { Err(format!("{what}: {n} classes, more than the {MAX_CLASSES} supported")) } else { Ok(()) }
}
