//! Which architecture family a checkpoint belongs to, and how that was
//! decided: from the config's `model_type` or `architectures`, from the
//! caller, or — for older releases whose config names neither (Google's
//! `bert_config.json`, general TinyBERT) — from the weights' key names.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// An encoder family this crate can build.
///
/// ```
/// use encoder_bench::weights::ModelFamily;
/// assert_eq!("electra".parse::<ModelFamily>()?, ModelFamily::Electra);
/// assert_eq!(ModelFamily::Bert.to_string(), "bert");
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// BERT-architecture encoders (bert-base, TinyBERT, MiniLM, ...).
    Bert,
    /// ELECTRA discriminators / generators.
    Electra,
}

impl ModelFamily {
    /// `"bert"` or `"electra"`, as in `model_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFamily::Bert => "bert",
            ModelFamily::Electra => "electra",
        }
    }
}

impl std::fmt::Display for ModelFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelFamily {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bert" => Ok(ModelFamily::Bert),
            "electra" => Ok(ModelFamily::Electra),
            other => Err(Error::invalid("family", format!("`{other}` is not a model family; expected \"bert\" or \"electra\""))),
        }
    }
}

/// Where a [`ModelFamily`] decision came from (shown in the load report).
///
/// ```
/// use encoder_bench::weights::FamilySource;
/// assert_eq!(FamilySource::WeightKeys.to_string(), "weight keys");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilySource {
    /// The config's `model_type`.
    #[default]
    ModelType,
    /// The config's `architectures` (`Bert*` / `Electra*` classes).
    Architectures,
    /// Given by the caller (`--family`, `SweepModel::with_family`, ...).
    Caller,
    /// Inferred from the weights' key names.
    WeightKeys,
}

impl std::fmt::Display for FamilySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FamilySource::ModelType => "model_type",
            FamilySource::Architectures => "architectures",
            FamilySource::Caller => "caller",
            FamilySource::WeightKeys => "weight keys",
        })
    }
}

/// The family the key names of a state dict point to, if they point to one:
/// an `electra.` prefix or ELECTRA's `embeddings_project` means ELECTRA, a
/// `bert.` prefix means BERT, and bare encoder keys (`embeddings.*`,
/// `encoder.layer.*`, as `BertModel.save_pretrained` writes them) mean BERT.
/// Keys that fit neither give `None`.
///
/// ```
/// use encoder_bench::weights::{ModelFamily, infer_family};
/// let keys = ["bert.embeddings.word_embeddings.weight", "fit_denses.0.weight"];
/// assert_eq!(infer_family(keys), Some(ModelFamily::Bert));
/// assert_eq!(infer_family(["embeddings_project.weight", "embeddings.word_embeddings.weight"]), Some(ModelFamily::Electra));
/// assert_eq!(infer_family(["decoder.weight"]), None);
/// ```
pub fn infer_family<I, S>(keys: I) -> Option<ModelFamily>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let (mut bert, mut electra, mut bare) = (false, false, false);
    for k in keys {
        let k = k.as_ref();
        if k.starts_with("electra.") || k.starts_with("embeddings_project.") || k.contains(".embeddings_project.") {
            electra = true;
        } else if k.starts_with("bert.") {
            bert = true;
        } else if k.starts_with("embeddings.word_embeddings.") || k.starts_with("encoder.layer.") {
            bare = true;
        }
    }
    if electra {
        Some(ModelFamily::Electra)
    } else if bert || bare {
        Some(ModelFamily::Bert)
    } else {
        None
    }
}
