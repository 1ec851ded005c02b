//! The library's one error type. Every variant names the file, line, key or
//! device at fault and what was expected, so a notebook user can act on it.
use std::path::{Path, PathBuf};

/// Errors raised by encoder-bench.
///
/// ```
/// use encoder_bench::Error;
/// let e = Error::data("X.txt", Some(3), "empty text line");
/// assert_eq!(e.to_string(), "X.txt:3: empty text line");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A dataset file is malformed (line is 1-based when known).
    #[error("{}{}: {msg}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Data { path: PathBuf, line: Option<usize>, msg: String },
    /// A model or training configuration is invalid.
    #[error("{}: key `{key}`: {msg}", path.display())]
    Config { path: PathBuf, key: String, msg: String },
    /// A weights file is unreadable, unsafe, or does not fit the model.
    #[error("{}{}: {msg}", path.display(), key.as_ref().map(|k| format!(": key `{k}`")).unwrap_or_default())]
    Weights { path: PathBuf, key: Option<String>, msg: String },
    /// Building or running the tokenizer failed.
    #[error("tokenizer {}: {msg}", path.display())]
    Tokenizer { path: PathBuf, msg: String },
    /// The requested device is not available or not understood.
    #[error("device `{device}`: {msg}")]
    Device { device: String, msg: String },
    /// Invalid argument passed to an API (names the argument).
    #[error("invalid `{name}`: {msg}")]
    Invalid { name: String, msg: String },
    /// Training stopped because of a numerical fault or similar condition.
    #[error("training: {0}")]
    Training(String),
    /// An error raised by libtorch, with what we were doing.
    #[error("{context}: {source}")]
    Torch {
        context: String,
        #[source]
        source: tch::TchError,
    },
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A malformed-data error at `path` (and `line`, 1-based, if known).
    pub fn data(path: impl AsRef<Path>, line: Option<usize>, msg: impl Into<String>) -> Self {
        Error::Data { path: path.as_ref().to_path_buf(), line, msg: msg.into() }
    }
    /// A config error naming the file and key.
    pub fn config(path: impl AsRef<Path>, key: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config { path: path.as_ref().to_path_buf(), key: key.into(), msg: msg.into() }
    }
    /// A weights error naming the file and, optionally, the key.
    pub fn weights(path: impl AsRef<Path>, key: Option<&str>, msg: impl Into<String>) -> Self {
        Error::Weights { path: path.as_ref().to_path_buf(), key: key.map(str::to_string), msg: msg.into() }
    }
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }
    /// An invalid-argument error.
    pub fn invalid(name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid { name: name.into(), msg: msg.into() }
    }
    /// Wraps a libtorch error with context.
    pub fn torch(context: impl Into<String>, source: tch::TchError) -> Self {
        Error::Torch { context: context.into(), source }
    }
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// fsync, then rename, so a crash never leaves a half-written file behind.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| std::fs::write(tmp, bytes).map_err(|e| Error::io(tmp, e)))
}

/// Like [`write_atomic`], but `write` produces the temp file itself (e.g. a
/// library that only writes to a path). The temp file is removed on failure.
pub fn write_atomic_with(path: impl AsRef<Path>, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let path = path.as_ref();
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::invalid("path", format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = write(&tmp).and_then(|()| {
        let f = std::fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
