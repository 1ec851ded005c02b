//! Pretty JSON for run records, with arrays of plain values on one line.
//!
//! serde_json's pretty printer puts every element of every array on a line
//! of its own. A confusion matrix is `classes²` numbers: at 3,000 classes
//! that made a 112 MB `run.json`, nearly all of it indentation. Here a row
//! of counts stays one line (`0, ` is 3 bytes a count; serde_json used 11), while objects, and
//! arrays of objects or arrays, are laid out as serde_json lays them out, in
//! the fields' own order.
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};
use std::io::{self, Write};

/// `value` as pretty JSON (two-space indent), arrays of numbers, strings,
/// booleans and nulls kept on one line.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct M { n: usize, counts: Vec<Vec<usize>> }
/// let text = encoder_bench::report::to_json_pretty(&M { n: 2, counts: vec![vec![3, 0], vec![1, 4]] })?;
/// assert_eq!(text, "{\n  \"n\": 2,\n  \"counts\": [\n    [3, 0],\n    [1, 4]\n  ]\n}");
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn to_json_pretty<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, RowFormatter::default());
    value.serialize(&mut ser).map_err(|e| Error::invalid("json", e.to_string()))?;
    String::from_utf8(out).map_err(|e| Error::invalid("json", e.to_string()))
}

/// An open container. An array learns whether an element is a plain value
/// or a container only when the element starts, so the separator before an
/// element is written then.
enum Open {
    Array {
        /// An element has begun and its separator is not written yet.
        owed: bool,
        /// No element has been written yet.
        empty: bool,
        /// An element is an array or object: one element a line.
        tall: bool,
    },
    Object {
        empty: bool,
    },
}

#[derive(Default)]
struct RowFormatter {
    open: Vec<Open>,
}

impl RowFormatter {
    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.open.len() {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    /// Writes the separator an array owes before its next element.
    fn before_value<W: ?Sized + Write>(&mut self, w: &mut W, container: bool) -> io::Result<()> {
        let Some(Open::Array { owed, empty, tall }) = self.open.last_mut() else { return Ok(()) };
        if !*owed {
            return Ok(());
        }
        let first = *empty;
        (*owed, *empty) = (false, false);
        *tall |= container;
        let tall = *tall;
        if !first {
            w.write_all(b",")?;
        }
        if tall {
            self.newline(w)
        } else if first {
            Ok(())
        } else {
            w.write_all(b" ")
        }
    }
}

macro_rules! scalar {
    ($($name:ident($ty:ty)),* $(,)?) => {
        $(fn $name<W: ?Sized + Write>(&mut self, w: &mut W, value: $ty) -> io::Result<()> {
            self.before_value(w, false)?;
            serde_json::ser::CompactFormatter.$name(w, value)
        })*
    };
}

impl Formatter for RowFormatter {
    scalar!(
        write_bool(bool),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_f32(f32),
        write_f64(f64),
        write_number_str(&str),
        write_byte_array(&[u8]),
    );

    fn write_null<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, false)?;
        w.write_all(b"null")
    }

    fn begin_string<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, false)?;
        w.write_all(b"\"")
    }

    fn write_char_escape<W: ?Sized + Write>(&mut self, w: &mut W, escape: CharEscape) -> io::Result<()> {
        serde_json::ser::CompactFormatter.write_char_escape(w, escape)
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, true)?;
        self.open.push(Open::Array { owed: false, empty: true, tall: false });
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        if let Some(Open::Array { empty: false, tall: true, .. }) = self.open.pop() {
            self.newline(w)?;
        }
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, _w: &mut W, _first: bool) -> io::Result<()> {
        if let Some(Open::Array { owed, .. }) = self.open.last_mut() {
            *owed = true;
        }
        Ok(())
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.before_value(w, true)?;
        self.open.push(Open::Object { empty: true });
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        if let Some(Open::Object { empty: false }) = self.open.pop() {
            self.newline(w)?;
        }
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if let Some(Open::Object { empty }) = self.open.last_mut() {
            *empty = false;
        }
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_as_serde_json_with_rows_on_one_line() {
        let v = serde_json::json!({
            "name": "a \"quoted\" name", "empty": {}, "none": [], "nan": null,
            "rows": [[1, 2], [3, 4]], "objects": [{"a": 1.5}, {"b": [true, false]}], "labels": ["x", "y, z"],
            "mixed": [1, [2], 3],
        });
        let text = to_json_pretty(&v).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
        assert!(text.contains("\"rows\": [\n    [1, 2],\n    [3, 4]\n  ]"), "{text}");
        assert!(
            text.contains("\"labels\": [\"x\", \"y, z\"]") && text.contains("\"empty\": {}") && text.contains("\"none\": []"),
            "{text}"
        );
        assert_eq!(to_json_pretty(&f64::NAN).unwrap(), "null");
    }

    #[test]
    fn a_1000_class_confusion_matrix_takes_about_three_bytes_a_count() {
        let counts = vec![vec![0usize; 1000]; 1000];
        let text = to_json_pretty(&serde_json::json!({ "confusion": { "counts": counts } })).unwrap();
        let pretty = serde_json::to_string_pretty(&serde_json::json!({ "confusion": { "counts": counts } })).unwrap();
        assert!(text.len() < 3_100_000 && pretty.len() > 10_000_000, "{} vs serde_json's {}", text.len(), pretty.len());
    }
}
