//! Datasets of labelled texts: readers, label maps, splits and batches.
//!
//! A [`Dataset`] owns texts, label ids and the [`LabelMap`] that names them.
//! Readers live in submodules (WOS text pairs, CSV/Parquet through polars);
//! [`split`] makes train/test splits; [`batch`] turns encoded texts into
//! tensors on a device.
pub mod batch;
pub mod split;
pub mod tabular;
pub mod text;
pub mod wos;

use serde::{Deserialize, Serialize};

pub use batch::{Batch, Batches, Encoded, Padding};
pub use split::{Split, SplitRows, ValidationSpec};
pub use wos::WosLevel;

/// Names of the classes, indexed by label id.
///
/// ```
/// use encoder_bench::data::LabelMap;
/// let m = LabelMap::wos_level1();
/// assert_eq!(m.name(2), Some("Psychology"));
/// assert_eq!(m.id("Biochemistry"), Some(6));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMap {
    names: Vec<String>,
}

impl LabelMap {
    /// A map from explicit names; id `i` is `names[i]`.
    pub fn new(names: Vec<String>) -> Self {
        LabelMap { names }
    }

    /// `n` classes named by their ids ("0", "1", ...), for data without names.
    pub fn numbered(n: usize) -> Self {
        LabelMap { names: (0..n).map(|i| i.to_string()).collect() }
    }

    /// The seven level-1 domains of Web of Science (WOS-46985 `YL1.txt`).
    pub fn wos_level1() -> Self {
        Self::new(
            [
                "Computer Science",
                "Electrical Engineering",
                "Psychology",
                "Mechanical Engineering",
                "Civil Engineering",
                "Medical Science",
                "Biochemistry",
            ]
            .map(String::from)
            .to_vec(),
        )
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `id`.
    pub fn name(&self, id: usize) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }

    /// The id of the class called `name`.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// All names in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Labelled texts plus the label map that names their classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Where the data came from (a directory or file), for messages and reports.
    pub source: String,
    /// One document per entry.
    pub texts: Vec<String>,
    /// Label id of each text, `< labels.len()`.
    pub targets: Vec<usize>,
    /// Names of the classes.
    pub labels: LabelMap,
}

impl Dataset {
    /// Builds a dataset, checking that lengths agree and ids are in range.
    pub fn new(source: impl Into<String>, texts: Vec<String>, targets: Vec<usize>, labels: LabelMap) -> crate::Result<Self> {
        let source = source.into();
        if texts.len() != targets.len() {
            return Err(crate::Error::data(&source, None, format!("{} texts but {} labels", texts.len(), targets.len())));
        }
        text::check_class_count(labels.len(), "label map").map_err(|msg| crate::Error::data(&source, None, msg))?;
        if let Some((i, &t)) = targets.iter().enumerate().find(|&(_, &t)| t >= labels.len()) {
            return Err(crate::Error::data(&source, Some(i + 1), format!("label {t} out of range: expected 0..{}", labels.len())));
        }
        Ok(Dataset { source, texts, targets, labels })
    }

    /// Number of texts.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// True when there are no texts.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Number of classes (from the label map, even if some have no examples).
    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }

    /// Examples per class, indexed by label id.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &t in &self.targets {
            counts[t] += 1;
        }
        counts
    }

    /// The same examples with their labels re-numbered by `labels`, matched
    /// by name: what makes a test set read from its own file agree with the
    /// training set's label ids (string labels are numbered per file, so
    /// the same name can have different ids in two files).
    ///
    /// A label that `labels` does not have (say, a class present only in the
    /// test file) is an error naming the data, the first row that has it and
    /// the known classes.
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap};
    /// let names = |v: &[&str]| LabelMap::new(v.iter().map(|s| s.to_string()).collect());
    /// let test = Dataset::new("test.csv", vec!["x".into(), "y".into()], vec![0, 1], names(&["b", "c"]))?;
    /// let train_labels = names(&["a", "b", "c"]);
    /// assert_eq!(test.with_labels(&train_labels)?.targets, [1, 2]);
    /// let e = test.with_labels(&names(&["a", "b"])).unwrap_err().to_string();
    /// assert!(e.contains("test.csv") && e.contains("row 2") && e.contains("`c`"));
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn with_labels(&self, labels: &LabelMap) -> crate::Result<Dataset> {
        let targets = self
            .targets
            .iter()
            .enumerate()
            .map(|(row, &t)| {
                let name = self.labels.name(t).unwrap_or_default();
                labels.id(name).ok_or_else(|| {
                    let known: Vec<String> = labels.names().iter().take(20).map(|n| format!("`{n}`")).collect();
                    crate::Error::data(
                        &self.source,
                        None,
                        format!(
                            "row {}: label `{name}` is not one of the {} known classes ({}{}): a class present only in this data cannot be \
                             predicted by a model trained without it",
                            row + 1,
                            labels.len(),
                            known.join(", "),
                            if labels.len() > 20 { ", …" } else { "" }
                        ),
                    )
                })
            })
            .collect::<crate::Result<Vec<usize>>>()?;
        Dataset::new(self.source.clone(), self.texts.clone(), targets, labels.clone())
    }

    /// This data with its label ids re-expressed in `labels` (a model's
    /// classes), so that scoring compares the same classes: by name when the
    /// data names its classes, by id when its labels are bare integers (a
    /// CSV/Parquet column of ids: "Labels may be integers, used as ids
    /// unchanged"). A class the model does not know, or an id beyond its
    /// classes, is an error naming the data and the row.
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap};
    /// let names = |v: &[&str]| LabelMap::new(v.iter().map(|s| s.to_string()).collect());
    /// // The test file lacks class `a`: its ids 0, 1 mean `b`, `c`, which the model calls 1, 2.
    /// let test = Dataset::new("test.csv", vec!["x".into(), "y".into()], vec![0, 1], names(&["b", "c"]))?;
    /// assert_eq!(test.aligned_to(&names(&["a", "b", "c"]))?.targets, [1, 2]);
    /// // Bare integer labels are ids.
    /// let ids = Dataset::new("ids.csv", vec!["x".into()], vec![1], LabelMap::numbered(2))?;
    /// assert_eq!(ids.aligned_to(&names(&["a", "b", "c"]))?.targets, [1]);
    /// assert!(ids.aligned_to(&names(&["a"])).is_err());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn aligned_to(&self, labels: &LabelMap) -> crate::Result<Dataset> {
        if &self.labels == labels {
            return Ok(self.clone());
        }
        if self.labels != LabelMap::numbered(self.labels.len()) {
            return self.with_labels(labels);
        }
        if let Some((row, &t)) = self.targets.iter().enumerate().find(|&(_, &t)| t >= labels.len()) {
            return Err(crate::Error::data(
                &self.source,
                None,
                format!("row {}: label id {t} is beyond the model's {} classes (ids 0..{})", row + 1, labels.len(), labels.len()),
            ));
        }
        Dataset::new(self.source.clone(), self.texts.clone(), self.targets.clone(), labels.clone())
    }

    /// Reads `path` by its kind: a WOS directory (`X.txt` + `YL1.txt`, level
    /// 1), or a `.csv`, `.tsv`/`.tab` or `.parquet`/`.pq` file (extension in
    /// any case) with the given text and label columns.
    ///
    /// ```
    /// let ds = encoder_bench::data::Dataset::read_path("../shared/data/wos-sample", "text", "label")?;
    /// assert_eq!(ds.num_classes(), 7);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn read_path(path: impl AsRef<std::path::Path>, text_column: &str, label_column: &str) -> crate::Result<Dataset> {
        let path = path.as_ref();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Dataset::read_csv(path, text_column, label_column),
            "tsv" | "tab" => Dataset::read_tsv(path, text_column, label_column),
            "parquet" | "pq" => Dataset::read_parquet(path, text_column, label_column),
            _ if path.is_dir() => Dataset::read_wos(path, WosLevel::L1),
            _ => Err(crate::Error::data(path, None, "expected a WOS directory (X.txt + YL1.txt) or a .csv, .tsv or .parquet file")),
        }
    }

    /// A short hash of the texts, labels and class names (FNV-1a, stable
    /// across platforms and releases): what a planned job checks to be sure
    /// it reads the data the plan was made from.
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap};
    /// let a = Dataset::new("a", vec!["x".into()], vec![0], LabelMap::numbered(2))?;
    /// let mut b = a.clone();
    /// b.targets[0] = 1;
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for name in self.labels.names() {
            eat(name.as_bytes());
        }
        for (t, &y) in self.texts.iter().zip(&self.targets) {
            eat(t.as_bytes());
            eat(&(y as u64).to_le_bytes());
        }
        format!("{h:016x}-{}", self.len())
    }

    /// This data followed by `other`'s (same label map required).
    ///
    /// ```
    /// use encoder_bench::data::{Dataset, LabelMap};
    /// let a = Dataset::new("d", vec!["x".into()], vec![0], LabelMap::numbered(2))?;
    /// let b = Dataset::new("d", vec!["y".into()], vec![1], LabelMap::numbered(2))?;
    /// assert_eq!(a.concat(&b)?.targets, [0, 1]);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn concat(&self, other: &Dataset) -> crate::Result<Dataset> {
        if self.labels != other.labels {
            return Err(crate::Error::data(&other.source, None, "has other classes than the data it is joined to"));
        }
        let texts = self.texts.iter().chain(&other.texts).cloned().collect();
        let targets = self.targets.iter().chain(&other.targets).copied().collect();
        Dataset::new(self.source.clone(), texts, targets, self.labels.clone())
    }

    /// The examples at `indices`, in that order (same label map).
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            source: self.source.clone(),
            texts: indices.iter().map(|&i| self.texts[i].clone()).collect(),
            targets: indices.iter().map(|&i| self.targets[i]).collect(),
            labels: self.labels.clone(),
        }
    }
}
