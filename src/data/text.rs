//! Rules every reader applies to its bytes and labels: UTF-8 with the place
//! of the first bad byte, and integer label ids in a supported range. Kept in
//! one place so that the WOS and the CSV/Parquet readers cannot drift apart.
use crate::error::{Error, Result};
use std::path::Path;

/// The most classes integer labels may imply (`max + 1`). A larger id is far
/// more likely a wrong column (e.g. a document id) than a real class, and
/// naming that many classes would exhaust memory.
///
/// ```
/// assert_eq!(encoder_bench::data::text::MAX_CLASSES, 100_000);
/// ```
pub const MAX_CLASSES: usize = 100_000;

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
/// assert!(label_id(100_000).unwrap_err().contains("more than 100000 classes"));
/// ```
pub fn label_id(v: i64) -> std::result::Result<usize, String> {
    if v < 0 {
        Err(format!("label {v} out of range: integer labels must be >= 0"))
    } else if v as u64 >= MAX_CLASSES as u64 {
        Err(format!("label {v} out of range: more than {MAX_CLASSES} classes is not supported"))
    } else {
        Ok(v as usize)
    }
}
