//! Exporting a fine-tuned classifier as a standard transformers model
//! directory: `config.json` (with `architectures`, `id2label`/`label2id`
//! holding the dataset's label names), `model.safetensors` and the tokenizer
//! files, ready for `AutoModelForSequenceClassification.from_pretrained` and
//! `AutoTokenizer.from_pretrained`. A classifier with the seed's head also
//! gets `modeling_encoder_bench.py` and needs `trust_remote_code=True`
//! (see [`super::heads`]).
use super::classifier::{load_classifier, save_classifier};
use super::heads::Head;
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;
use crate::weights::ModelSource;
use std::path::{Path, PathBuf};

/// Tokenizer files copied as they are when the tokenizer directory has them.
const TOKENIZER_FILES: [&str; 4] = ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"];

/// What [`export_classifier`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The output directory.
    pub dir: PathBuf,
    /// The head of the exported classifier.
    pub head: Head,
    /// Its `architectures` entry (`BertForSequenceClassification`, ...).
    pub architecture: String,
    /// The class names, in id order, as `id2label` holds them.
    pub labels: Vec<String>,
    /// `trust_remote_code=True` is needed to load it (the seed's head).
    pub needs_remote_code: bool,
}

/// Writes the fine-tuned classifier at `source` to `out` in the layout
/// transformers loads. `labels` renames the classes (the dataset's names;
/// their count must match the checkpoint's); `None` keeps the checkpoint's.
/// The tokenizer comes from `tokenizer_dir`, else the checkpoint's own
/// directory; without either it is an error.
///
/// ```no_run
/// use encoder_bench::data::LabelMap;
/// use encoder_bench::models::{ModelSource, export::export_classifier};
/// let src = ModelSource::parse("runs/fit/checkpoints/best");
/// let e = export_classifier(&src, Some(LabelMap::wos_level1()), Some("models/minilm".as_ref()), "exported".as_ref())?;
/// println!("{} ({})", e.dir.display(), e.architecture);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn export_classifier(source: &ModelSource, labels: Option<LabelMap>, tokenizer_dir: Option<&Path>, out: &Path) -> Result<Exported> {
    let files = source.resolve()?;
    let tok_dir = tokenizer_dir
        .map(Path::to_path_buf)
        .or(files.tokenizer_dir.clone())
        .ok_or_else(|| Error::invalid("tokenizer", format!("{source} has no tokenizer.json or vocab.txt: name a tokenizer directory")))?;
    let (model, report) = load_classifier(source, labels, tch::Device::Cpu, 0)?;
    if let Some(key) = report.missing.first() {
        return Err(Error::weights(
            &files.weights,
            Some(key),
            format!("not a fine-tuned classifier: {} variable(s) missing (the head was never trained)", report.missing.len()),
        ));
    }
    save_classifier(model.as_ref(), out, None)?;
    let same_dir = |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if !same_dir(&tok_dir, out) {
        let mut copied = false;
        for name in TOKENIZER_FILES {
            let from = tok_dir.join(name);
            if from.exists() {
                let bytes = std::fs::read(&from).map_err(|e| Error::io(&from, e))?;
                crate::error::write_atomic(out.join(name), &bytes)?;
                copied |= name == "tokenizer.json";
            }
        }
        if !copied {
            let tok = TextTokenizer::from_dir(&tok_dir)?;
            let path = out.join("tokenizer.json");
            crate::error::write_atomic_with(&path, |tmp| {
                tok.inner().save(tmp, false).map_err(|e| Error::Tokenizer { path: path.clone(), msg: e.to_string() })
            })?;
        }
    }
    let config = out.join("tokenizer_config.json");
    if !config.exists() {
        let text = serde_json::json!({"tokenizer_class": "BertTokenizer", "model_max_length": model.config().max_position_embeddings()});
        crate::error::write_atomic(&config, text.to_string().as_bytes())?;
    }
    let head = model.head();
    Ok(Exported {
        dir: out.to_path_buf(),
        head,
        architecture: head.architecture(model.config().family()),
        labels: model.labels().names().to_vec(),
        needs_remote_code: head == Head::Cls,
    })
}
