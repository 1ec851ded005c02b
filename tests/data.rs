//! Dataset readers and splits: the real WOS sample, every malformed input the
//! readers promise to report (file, line and reason), CSV/Parquet round trips.
use encoder_bench::data::split::{SAMPLE_FRACTION, SAMPLE_TEST_FRACTION};
use encoder_bench::data::{Dataset, LabelMap, Split, WosLevel};
use polars::prelude::*;
use std::path::{Path, PathBuf};

fn wos_sample() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wos-sample");
    assert!(p.join("X.txt").exists(), "WOS sample missing at {}", p.display());
    p
}

fn sample() -> Dataset {
    Dataset::read_wos(wos_sample(), WosLevel::L1).unwrap()
}

/// Asserts that `msg` contains every one of `parts`.
#[track_caller]
fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "expected {p:?} in error message: {msg}");
    }
}

// ---------------------------------------------------------------- WOS

#[test]
fn wos_sample_loads() {
    let ds = sample();
    assert_eq!(ds.len(), 210);
    assert_eq!(ds.num_classes(), 7);
    assert_eq!(ds.class_counts(), [30; 7]);
    assert_eq!(ds.labels, LabelMap::wos_level1());
    assert_eq!(ds.labels.name(0), Some("Computer Science"));
    assert_eq!(ds.labels.name(6), Some("Biochemistry"));
    // Interleaved 0,1,...,6,0,1,... as the sample's README says.
    assert!(ds.targets.iter().enumerate().all(|(i, &t)| t == i % 7));
    assert!(ds.texts.iter().all(|t| !t.trim().is_empty() && !t.ends_with('\r')));
    assert_eq!(PathBuf::from(&ds.source), wos_sample());
}

/// Writes `files` into a fresh WOS directory and returns the reader's error.
fn wos_err(files: &[(&str, &[u8])], level: WosLevel) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    match Dataset::read_wos(dir.path(), level) {
        Ok(ds) => panic!("expected an error, read {} texts", ds.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn wos_other_levels_and_line_endings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("X.txt"), "first text\r\nsecond text\r\nthird").unwrap();
    std::fs::write(dir.path().join("YL2.txt"), "3\n0\n11\n").unwrap();
    std::fs::write(dir.path().join("Y.txt"), "1\r\n1\r\n0").unwrap();
    let l2 = Dataset::read_wos(dir.path(), WosLevel::L2).unwrap();
    assert_eq!(l2.texts, ["first text", "second text", "third"]);
    assert_eq!(l2.targets, [3, 0, 11]);
    assert_eq!(l2.labels, LabelMap::numbered(12));
    let leaf = Dataset::read_wos(dir.path(), WosLevel::Leaf).unwrap();
    assert_eq!(leaf.targets, [1, 1, 0]);
    assert_eq!(leaf.num_classes(), 2);
}

#[test]
fn wos_missing_files() {
    let e = wos_err(&[("YL1.txt", b"0\n")], WosLevel::L1);
    assert_has(&e, &["X.txt", "not found", "needs X.txt and YL1.txt"]);
    let e = wos_err(&[("X.txt", b"a\n")], WosLevel::L1);
    assert_has(&e, &["YL1.txt: file not found", "needs X.txt and YL1.txt"]);
    let e = wos_err(&[("X.txt", b"a\n"), ("YL1.txt", b"0\n")], WosLevel::L2);
    assert_has(&e, &["YL2.txt: file not found", "X.txt and YL1.txt", "plus YL2.txt"]);
    let e = wos_err(&[("X.txt", b"a\n"), ("YL1.txt", b"0\n")], WosLevel::Leaf);
    assert_has(&e, &["Y.txt: file not found"]);
}

#[test]
fn wos_empty_files() {
    let e = wos_err(&[("X.txt", b""), ("YL1.txt", b"0\n")], WosLevel::L1);
    assert_has(&e, &["X.txt", "empty file"]);
    let e = wos_err(&[("X.txt", b"a\n"), ("YL1.txt", b"\n")], WosLevel::L1);
    assert_has(&e, &["YL1.txt", "empty file"]);
}

#[test]
fn wos_line_count_mismatch() {
    let e = wos_err(&[("X.txt", b"a\nb\nc\n"), ("YL1.txt", b"0\n1\n")], WosLevel::L1);
    assert_has(&e, &["YL1.txt:3:", "X.txt has 3 lines", "YL1.txt has 2"]);
    let e = wos_err(&[("X.txt", b"a\nb"), ("YL1.txt", b"0\r\n1\r\n2\r\n")], WosLevel::L1);
    assert_has(&e, &["X.txt:3:", "X.txt has 2 lines", "YL1.txt has 3"]);
}

#[test]
fn wos_empty_text_lines() {
    let e = wos_err(&[("X.txt", b"a\n\nc\n"), ("YL1.txt", b"0\n1\n2\n")], WosLevel::L1);
    assert_has(&e, &["X.txt:2:", "empty text line"]);
    let e = wos_err(&[("X.txt", b"a\nb\n \t \r\n"), ("YL1.txt", b"0\n1\n2\n")], WosLevel::L1);
    assert_has(&e, &["X.txt:3:", "empty text line"]);
    // A blank line at the end beyond the one final newline is an empty line too.
    let e = wos_err(&[("X.txt", b"a\nb\n\n"), ("YL1.txt", b"0\n1\n")], WosLevel::L1);
    assert_has(&e, &["X.txt:3:", "empty text line"]);
}

#[test]
fn wos_bad_labels() {
    let e = wos_err(&[("X.txt", b"a\nb\n"), ("YL1.txt", b"0\nfour\n")], WosLevel::L1);
    assert_has(&e, &["YL1.txt:2:", "\"four\"", "not an integer"]);
    let e = wos_err(&[("X.txt", b"a\nb\n"), ("YL1.txt", b"1.5\n0\n")], WosLevel::L1);
    assert_has(&e, &["YL1.txt:1:", "\"1.5\"", "not an integer"]);
    let e = wos_err(&[("X.txt", b"a\nb\nc\n"), ("YL1.txt", b"0\n6\n7\n")], WosLevel::L1);
    assert_has(&e, &["YL1.txt:3:", "label 7 out of range", "0..=6"]);
    let e = wos_err(&[("X.txt", b"a\nb\n"), ("YL1.txt", b"-1\n0\n")], WosLevel::L1);
    assert_has(&e, &["YL1.txt:1:", "label -1 out of range"]);
    let e = wos_err(&[("X.txt", b"a\nb\n"), ("YL2.txt", b"5\n-2\n")], WosLevel::L2);
    assert_has(&e, &["YL2.txt:2:", "label -2 out of range", ">= 0"]);
    let e = wos_err(&[("X.txt", b"a\nb\n"), ("Y.txt", b"5\n\n")], WosLevel::Leaf);
    assert_has(&e, &["Y.txt:2:", "empty label line"]);
}

#[test]
fn wos_invalid_utf8() {
    let e = wos_err(&[("X.txt", b"fine\nalso fine\nbroken \xc3\x28 text\n"), ("YL1.txt", b"0\n1\n2\n")], WosLevel::L1);
    assert_has(&e, &["X.txt:3:", "invalid UTF-8", "0xC3"]);
    let e = wos_err(&[("X.txt", b"a\nb\n"), ("YL1.txt", b"0\n\xff\n")], WosLevel::L1);
    assert_has(&e, &["YL1.txt:2:", "invalid UTF-8"]);
}

// ---------------------------------------------------------------- CSV

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn csv_err(content: &str, text_col: &str, label_col: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "data.csv", content);
    Dataset::read_csv(&p, text_col, label_col).unwrap_err().to_string()
}

#[test]
fn csv_round_trip_integer_labels() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        write(dir.path(), "data.csv", "id,text,label\r\n1,\"Hello, world\",2\r\n2,\"a \"\"quoted\"\" word\",0\r\n3,\"two\nlines\",2\r\n");
    let ds = Dataset::read_csv(&p, "text", "label").unwrap();
    assert_eq!(ds.texts, ["Hello, world", "a \"quoted\" word", "two\nlines"]);
    let trailing_blank = write(dir.path(), "blank.csv", "text,label\na,0\n\n");
    assert_eq!(Dataset::read_csv(&trailing_blank, "text", "label").unwrap().texts, ["a"]);
    assert_eq!(ds.targets, [2, 0, 2]);
    assert_eq!(ds.labels, LabelMap::numbered(3));
    assert_eq!(PathBuf::from(&ds.source), p);
}

#[test]
fn csv_string_labels_map_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "data.csv", "label,text\nsports,goal\narts,paint\nnews,vote\nsports,match\n");
    let ds = Dataset::read_csv(&p, "text", "label").unwrap();
    assert_eq!(ds.labels.names(), ["arts", "news", "sports"]);
    assert_eq!(ds.targets, [2, 0, 1, 2]);
    assert_eq!(ds.texts, ["goal", "paint", "vote", "match"]);
}

#[test]
fn csv_errors() {
    let e = csv_err("text,label\na,0\n", "body", "label");
    assert_has(&e, &["data.csv:1:", "no column `body`", "`text`, `label`"]);
    let e = csv_err("text,label\na,0\n", "text", "class");
    assert_has(&e, &["data.csv:1:", "no column `class`"]);
    let e = csv_err("text,label\na,0\n,1\n", "text", "label");
    assert_has(&e, &["data.csv:3:", "data row 2", "null text"]);
    let e = csv_err("text,label\na,0\nb,1\nc,\n", "text", "label");
    assert_has(&e, &["data.csv:4:", "data row 3", "null label"]);
    let e = csv_err("text,label\na,x\nb,\n", "text", "label");
    assert_has(&e, &["data.csv:3:", "data row 2", "null label"]);
    let e = csv_err("text,label\na,0\nb,-3\n", "text", "label");
    assert_has(&e, &["data.csv:3:", "data row 2", "label -3 out of range"]);
    // A text spanning lines moves the line of later rows.
    let e = csv_err("text,label\n\"one\ntwo\nthree\",0\nb,-1\n", "text", "label");
    assert_has(&e, &["data.csv:5:", "data row 2", "out of range"]);
    // Blank lines are skipped but still count for line numbers.
    let e = csv_err("text,label\na,0\n\nb,-1\n\n", "text", "label");
    assert_has(&e, &["data.csv:4:", "data row 3", "out of range"]);
    let e = csv_err("", "text", "label");
    assert_has(&e, &["data.csv", "empty file"]);
    let e = csv_err("text,label\n", "text", "label");
    assert_has(&e, &["data.csv", "no data rows"]);
}

// ---------------------------------------------------------------- Parquet

fn write_parquet(dir: &Path, mut df: DataFrame) -> PathBuf {
    let p = dir.join("data.parquet");
    let f = std::fs::File::create(&p).unwrap();
    ParquetWriter::new(f).finish(&mut df).unwrap();
    p
}

fn parquet_err(df: DataFrame) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write_parquet(dir.path(), df);
    Dataset::read_parquet(&p, "text", "label").unwrap_err().to_string()
}

#[test]
fn parquet_round_trip_integer_labels() {
    let dir = tempfile::tempdir().unwrap();
    let df = df!("text" => ["alpha", "beta, with comma", "gamma\nwith newline"], "label" => [1i64, 0, 4]).unwrap();
    let p = write_parquet(dir.path(), df);
    let ds = Dataset::read_parquet(&p, "text", "label").unwrap();
    assert_eq!(ds.texts, ["alpha", "beta, with comma", "gamma\nwith newline"]);
    assert_eq!(ds.targets, [1, 0, 4]);
    assert_eq!(ds.labels, LabelMap::numbered(5));
    // Narrow integer types are integers too.
    let df = df!("text" => ["a", "b"], "label" => [2u32, 1]).unwrap();
    let ds = Dataset::read_parquet(write_parquet(dir.path(), df), "text", "label").unwrap();
    assert_eq!(ds.targets, [2, 1]);
}

#[test]
fn parquet_string_labels_map_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let df = df!("label" => ["neg", "pos", "neutral", "neg"], "text" => ["bad", "good", "meh", "awful"]).unwrap();
    let ds = Dataset::read_parquet(write_parquet(dir.path(), df), "text", "label").unwrap();
    assert_eq!(ds.labels.names(), ["neg", "neutral", "pos"]);
    assert_eq!(ds.targets, [0, 2, 1, 0]);
    // In a Parquet file the dtype decides: digit strings are names, sorted as text.
    let df = df!("text" => ["a", "b", "c"], "label" => ["10", "9", "10"]).unwrap();
    let ds = Dataset::read_parquet(write_parquet(dir.path(), df), "text", "label").unwrap();
    assert_eq!(ds.labels.names(), ["10", "9"]);
    assert_eq!(ds.targets, [0, 1, 0]);
}

#[test]
fn parquet_errors() {
    let e = parquet_err(df!("body" => ["a"], "label" => [0i64]).unwrap());
    assert_has(&e, &["data.parquet", "no column `text`", "`body`, `label`"]);
    let e = parquet_err(df!("text" => [1i64, 2], "label" => [0i64, 1]).unwrap());
    assert_has(&e, &["data.parquet", "text column `text`", "dtype i64"]);
    let e = parquet_err(df!("text" => [Some("a"), None], "label" => [0i64, 1]).unwrap());
    assert_has(&e, &["data.parquet", "row 2", "null text"]);
    let e = parquet_err(df!("text" => ["a", "b", "c"], "label" => [Some(0i64), Some(1), None]).unwrap());
    assert_has(&e, &["data.parquet", "row 3", "null label"]);
    let e = parquet_err(df!("text" => ["a", "b"], "label" => [Some("x"), None]).unwrap());
    assert_has(&e, &["data.parquet", "row 2", "null label"]);
    let e = parquet_err(df!("text" => ["a", "b"], "label" => [0i32, -1]).unwrap());
    assert_has(&e, &["data.parquet", "row 2", "label -1 out of range"]);
    let e = parquet_err(df!("text" => ["a", "b"], "label" => [0.5f64, 1.0]).unwrap());
    assert_has(&e, &["label column `label`", "dtype f64"]);
    let empty = df!("text" => Vec::<String>::new(), "label" => Vec::<i64>::new()).unwrap();
    assert_has(&parquet_err(empty), &["data.parquet", "no rows"]);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "zero.parquet", "");
    assert_has(&Dataset::read_parquet(&p, "text", "label").unwrap_err().to_string(), &["zero.parquet", "empty file"]);
}

// ---------------------------------------------------------------- splits

#[test]
fn first_n_on_sample_is_balanced() {
    let ds = sample();
    let s = Split::first_n(&ds, 168).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (168, 42));
    assert_eq!(s.train.class_counts(), [24; 7]);
    assert_eq!(s.test.class_counts(), [6; 7]);
    assert_eq!(s.train.texts[..], ds.texts[..168]);
    assert_eq!(s.test.texts[..], ds.texts[168..]);
    assert_eq!(s.test.labels, ds.labels);
    assert!(Split::first_n(&ds, 0).is_err());
    assert!(Split::first_n(&ds, 210).is_err());
}

#[test]
fn stratified_balance_on_sample() {
    let ds = sample();
    for f in [0.1, 0.2, 0.25, 0.33] {
        let s = Split::stratified(&ds, f, 42).unwrap();
        let want = (f * 30.0).round() as usize;
        assert_eq!(s.test.class_counts(), [want; 7], "fraction {f}");
        assert_eq!(s.train.class_counts(), [30 - want; 7], "fraction {f}");
        // Each side keeps the file's order.
        let pos = |t: &String| ds.texts.iter().position(|x| x == t).unwrap();
        let test_pos: Vec<usize> = s.test.texts.iter().map(pos).collect();
        assert!(test_pos.is_sorted(), "fraction {f}");
    }
}

#[test]
fn stratified_is_deterministic_by_seed() {
    let ds = sample();
    let a = Split::stratified(&ds, 0.2, 7).unwrap();
    let b = Split::stratified(&ds, 0.2, 7).unwrap();
    let c = Split::stratified(&ds, 0.2, 8).unwrap();
    assert_eq!(a.train.texts, b.train.texts);
    assert_eq!(a.test.texts, b.test.texts);
    assert_eq!(a.test.targets, b.test.targets);
    assert_ne!(a.test.texts, c.test.texts);
    assert!(Split::stratified(&ds, 1.0, 7).is_err());
    assert!(Split::stratified(&ds, 0.0, 7).is_err());
}

#[test]
fn sample_mode_sizes() {
    let ds = sample();
    // Seed defaults: 10% of 210 = 21 kept, round(0.024 * 21) = 1 test text.
    let s = Split::sample(&ds, SAMPLE_FRACTION, SAMPLE_TEST_FRACTION).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (20, 1));
    assert_eq!(s.train.texts[..], ds.texts[..20]);
    assert_eq!(s.test.texts[..], ds.texts[20..21]);
    let s = Split::sample(&ds, 0.5, 0.2).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (84, 21));
    assert!(Split::sample(&ds, 0.01, SAMPLE_TEST_FRACTION).is_err());
    assert!(Split::sample(&ds, 0.0, 0.2).is_err());
    assert!(Split::sample(&ds, 0.5, 1.0).is_err());
}
