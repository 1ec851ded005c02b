//! Classification heads: the seed's ([`Head::Cls`]: `[CLS]` → dropout →
//! `classifier`) or transformers' own ([`Head::Transformers`]:
//! `BertForSequenceClassification`'s pooler → dropout → `classifier`,
//! `ElectraForSequenceClassification`'s `classifier.dense` → gelu → dropout →
//! `classifier.out_proj`), under transformers' exact key names.
//!
//! The head is recorded in a checkpoint's `config.json` (`encoder_bench_head`)
//! so loading rebuilds the same one. A checkpoint with the transformers head is
//! a standard transformers checkpoint (`architectures:
//! ["BertForSequenceClassification"]`); one with the seed's head names a
//! `model_type` transformers does not know (`encoder_bench_bert`,
//! `encoder_bench_electra`) and carries `modeling_encoder_bench.py` with an
//! `auto_map`, so `AutoModelForSequenceClassification.from_pretrained(dir)`
//! refuses it unless called with `trust_remote_code=True`, which builds the
//! seed's head, and can never silently put a pooler under it.
use super::config::{BertConfig, ConfigRead, ElectraConfig, ModelConfig, read_json};
use crate::error::{Error, Result};
use crate::weights::{FamilySource, ModelFamily};
use std::path::Path;
use tch::Tensor;
use tch::nn;

/// Which classification head a classifier has.
///
/// ```
/// use encoder_bench::models::Head;
/// assert_eq!("transformers".parse::<Head>()?, Head::Transformers);
/// assert_eq!(Head::default(), Head::Cls); // the seed's head
/// assert_eq!(Head::Transformers.architecture("electra"), "ElectraForSequenceClassification");
/// # Ok::<(), encoder_bench::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// The seed notebook's: `[CLS]` hidden state → dropout → `classifier` Linear.
    #[default]
    Cls,
    /// transformers' `*ForSequenceClassification` head: BERT's pooler (dense +
    /// tanh on `[CLS]`, `bert.pooler.dense.*`) → dropout → `classifier.*`;
    /// ELECTRA's `classifier.dense` → gelu → dropout → `classifier.out_proj`.
    Transformers,
}

/// The config key that records the head of a saved classifier.
pub const HEAD_KEY: &str = "encoder_bench_head";

/// The Python file saved beside a checkpoint with the seed's head, named by
/// its `auto_map` (`trust_remote_code=True` runs it).
pub const MODELING_FILE: &str = "modeling_encoder_bench.py";

/// Its contents: config classes and `*ForSequenceClassification`-style
/// models with the seed's head, for both families.
pub const MODELING_SOURCE: &str = include_str!("modeling_encoder_bench.py");

impl std::str::FromStr for Head {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cls" | "seed" => Ok(Head::Cls),
            "transformers" | "hf" => Ok(Head::Transformers),
            other => Err(Error::invalid("head", format!("`{other}`: expected `cls` (the seed's) or `transformers`"))),
        }
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Head::Cls => "cls",
            Head::Transformers => "transformers",
        })
    }
}

impl Head {
    /// The `architectures` entry of a checkpoint with this head (`family`: `bert` or `electra`).
    pub fn architecture(self, family: &str) -> String {
        let fam = if family == "electra" { "Electra" } else { "Bert" };
        match self {
            Head::Cls => format!("EncoderBench{fam}Classifier"),
            Head::Transformers => format!("{fam}ForSequenceClassification"),
        }
    }

    /// The `model_type` of a checkpoint with this head: the family's own for
    /// the transformers head, one transformers does not know for the seed's.
    pub fn model_type(self, family: &str) -> String {
        match self {
            Head::Cls => format!("encoder_bench_{family}"),
            Head::Transformers => family.to_string(),
        }
    }

    /// The head a `config.json` records: [`HEAD_KEY`] when present, else the
    /// transformers head for a `*ForSequenceClassification` architecture,
    /// else `None` (a pretrained encoder: the caller chooses).
    pub fn recorded(config: &serde_json::Value, path: &Path) -> Result<Option<Head>> {
        if let Some(v) = config.get(HEAD_KEY) {
            let s = v.as_str().ok_or_else(|| Error::config(path, HEAD_KEY, format!("{v} is not a string")))?;
            return s.parse::<Head>().map(Some).map_err(|e| Error::config(path, HEAD_KEY, e.to_string()));
        }
        let archs = config.get("architectures").and_then(|a| a.as_array());
        let hf = archs.is_some_and(|a| a.iter().filter_map(|x| x.as_str()).any(|x| x.ends_with("ForSequenceClassification")));
        Ok(hf.then_some(Head::Transformers))
    }
}

/// Reads a classifier's `config.json`: the encoder config (a seed-head
/// checkpoint's `encoder_bench_*` model type read as its family) and the
/// head it records, if any.
pub(crate) fn read_config(path: &Path, family: Option<ModelFamily>, weight_keys: &[String]) -> Result<(ConfigRead, Option<Head>)> {
    let v: serde_json::Value = read_json(path)?;
    let head = Head::recorded(&v, path)?;
    let own = v.get("model_type").and_then(|m| m.as_str()).and_then(|m| m.strip_prefix("encoder_bench_")).map(str::to_string);
    let Some(own) = own else {
        return Ok((ModelConfig::from_file_with(path, family, weight_keys)?, head));
    };
    // Parsed from the file's text, not from `v`: only then can a bad value's
    // error name its key and line.
    let config = match own.as_str() {
        "bert" => {
            let mut c: BertConfig = read_json(path)?;
            c.model_type = own.clone();
            c.validate(path)?;
            ModelConfig::Bert(c)
        }
        "electra" => {
            let mut c: ElectraConfig = read_json(path)?;
            c.model_type = own.clone();
            c.validate(path)?;
            ModelConfig::Electra(c)
        }
        other => {
            return Err(Error::config(
                path,
                "model_type",
                format!("`encoder_bench_{other}`: expected encoder_bench_bert or encoder_bench_electra"),
            ));
        }
    };
    if let Some(f) = family
        && f.to_string() != config.family()
    {
        return Err(Error::config(path, "model_type", format!("`encoder_bench_{own}` contradicts the family `{f}` the caller asked for")));
    }
    Ok((ConfigRead { config, family_from: FamilySource::ModelType, ignored_fields: Vec::new() }, head))
}

/// The `config.json` fields that say which head a checkpoint has, and so how
/// transformers builds it (see the module documentation).
pub(crate) fn mark_config(cfg: &mut serde_json::Value, head: Head, family: &str) {
    cfg["model_type"] = head.model_type(family).into();
    cfg["architectures"] = serde_json::json!([head.architecture(family)]);
    cfg[HEAD_KEY] = head.to_string().into();
    if head == Head::Cls {
        let fam = if family == "electra" { "Electra" } else { "Bert" };
        let module = MODELING_FILE.trim_end_matches(".py");
        cfg["auto_map"] = serde_json::json!({
            "AutoConfig": format!("{module}.EncoderBench{fam}Config"),
            "AutoModelForSequenceClassification": format!("{module}.EncoderBench{fam}Classifier"),
        });
    } else if let Some(m) = cfg.as_object_mut() {
        m.remove("auto_map");
    }
}

fn init() -> nn::LinearConfig {
    // HF initialises heads as N(0, 0.02) with zero bias; tch's default
    // (Kaiming uniform) gives larger initial logits.
    nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 }, bs_init: Some(nn::Init::Const(0.0)), bias: true }
}

/// A head's layers, created under transformers' variable names.
#[derive(Debug)]
pub(crate) enum ClassifierHead {
    /// Dropout + `classifier` over the `[CLS]` hidden state (the seed's).
    Cls { dropout: f64, classifier: nn::Linear },
    /// `bert.pooler.dense` + tanh on `[CLS]` → dropout → `classifier`.
    BertPooled { dropout: f64, pooler: nn::Linear, classifier: nn::Linear },
    /// Dropout → `classifier.dense` → gelu → dropout → `classifier.out_proj` on `[CLS]`.
    Electra { dropout: f64, dense: nn::Linear, out_proj: nn::Linear },
}

impl ClassifierHead {
    /// Creates `head` for `family` at the var store's root `p`.
    pub(crate) fn new(p: &nn::Path, head: Head, family: &str, hidden: i64, classes: i64, dropout: f64) -> Self {
        match (head, family) {
            (Head::Cls, _) => ClassifierHead::Cls { dropout, classifier: nn::linear(p / "classifier", hidden, classes, init()) },
            (Head::Transformers, "electra") => ClassifierHead::Electra {
                dropout,
                dense: nn::linear(p / "classifier" / "dense", hidden, hidden, init()),
                out_proj: nn::linear(p / "classifier" / "out_proj", hidden, classes, init()),
            },
            (Head::Transformers, _) => ClassifierHead::BertPooled {
                dropout,
                pooler: nn::linear(p / "bert" / "pooler" / "dense", hidden, hidden, init()),
                classifier: nn::linear(p / "classifier", hidden, classes, init()),
            },
        }
    }

    /// Which [`Head`] this is.
    pub(crate) fn kind(&self) -> Head {
        match self {
            ClassifierHead::Cls { .. } => Head::Cls,
            _ => Head::Transformers,
        }
    }

    /// Logits from the encoder's last hidden states `[batch, seq, hidden]`.
    pub(crate) fn forward(&self, hidden: &Tensor, train: bool) -> Tensor {
        use super::dropout::dropout;
        use super::precision::linear;
        let cls = hidden.select(1, 0);
        match self {
            ClassifierHead::Cls { dropout: p, classifier } => linear(classifier, &dropout(&cls, *p, train)),
            ClassifierHead::BertPooled { dropout: p, pooler, classifier } => {
                let pooled = linear(pooler, &cls).tanh();
                linear(classifier, &dropout(&pooled, *p, train))
            }
            ClassifierHead::Electra { dropout: p, dense, out_proj } => {
                let x = linear(dense, &dropout(&cls, *p, train)).gelu("none");
                linear(out_proj, &dropout(&x, *p, train))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_recorded_and_refused_by_name() {
        let p = Path::new("config.json");
        let mut cfg = serde_json::json!({"model_type": "bert"});
        assert_eq!(Head::recorded(&cfg, p).unwrap(), None);
        mark_config(&mut cfg, Head::Cls, "bert");
        assert_eq!(cfg["model_type"], "encoder_bench_bert");
        assert_eq!(Head::recorded(&cfg, p).unwrap(), Some(Head::Cls));
        mark_config(&mut cfg, Head::Transformers, "bert");
        assert!(cfg.get("auto_map").is_none() && cfg["model_type"] == "bert");
        assert_eq!(Head::recorded(&cfg, p).unwrap(), Some(Head::Transformers));
        let hub = serde_json::json!({"architectures": ["BertForSequenceClassification"]});
        assert_eq!(Head::recorded(&hub, p).unwrap(), Some(Head::Transformers));
        let e = Head::recorded(&serde_json::json!({HEAD_KEY: "mlp"}), p).unwrap_err().to_string();
        assert!(e.contains(HEAD_KEY) && e.contains("mlp"), "{e}");
    }
}
