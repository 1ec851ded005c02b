//! Model configurations read from Hugging Face `config.json` files.
//!
//! Field names and defaults mirror `transformers`' `BertConfig` and
//! `ElectraConfig`, so any checkpoint's config loads unchanged; values we do
//! not implement are refused with the key named instead of being ignored.
//! Fields we do not know (TinyBERT's `emb_size`, `cell`, ...) are ignored,
//! as transformers ignores them, and listed in the load report.
use crate::error::{Error, Result};
use crate::weights::{FamilySource, ModelFamily, infer_family};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Hidden activation functions (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU with erf, HF's `gelu`.
    #[serde(rename = "gelu")]
    Gelu,
    /// tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`).
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluTanh,
    /// ReLU.
    #[serde(rename = "relu")]
    Relu,
    /// SiLU / swish.
    #[serde(rename = "silu", alias = "swish")]
    Silu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, xs: &tch::Tensor) -> tch::Tensor {
        match self {
            Activation::Gelu => xs.gelu("none"),
            Activation::GeluTanh => xs.gelu("tanh"),
            Activation::Relu => xs.relu(),
            Activation::Silu => xs.silu(),
        }
    }
}

/// What an encoder needs to know, shared by BERT and ELECTRA.
///
/// ```
/// let cfg: encoder_bench::models::BertConfig =
///     serde_json::from_str(r#"{"hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536}"#).unwrap();
/// assert_eq!(cfg.num_hidden_layers, 12); // HF default
/// assert_eq!(cfg.layer_norm_eps, 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    #[serde(default = "d::vocab_size")]
    pub vocab_size: i64,
    #[serde(default = "d::bert_hidden")]
    pub hidden_size: i64,
    #[serde(default = "d::bert_layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "d::bert_heads")]
    pub num_attention_heads: i64,
    #[serde(default = "d::bert_intermediate")]
    pub intermediate_size: i64,
    #[serde(default = "d::act")]
    pub hidden_act: Activation,
    #[serde(default = "d::dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "d::dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "d::max_pos")]
    pub max_position_embeddings: i64,
    #[serde(default = "d::type_vocab")]
    pub type_vocab_size: i64,
    #[serde(default = "d::eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    #[serde(default = "d::pos_type")]
    pub position_embedding_type: String,
    #[serde(default = "d::bert_type")]
    pub model_type: String,
}

/// ELECTRA's config: BERT's plus `embedding_size` (embeddings narrower than
/// the hidden size are projected up by `embeddings_project`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElectraConfig {
    #[serde(default = "d::vocab_size")]
    pub vocab_size: i64,
    #[serde(default = "d::electra_embedding")]
    pub embedding_size: i64,
    #[serde(default = "d::electra_hidden")]
    pub hidden_size: i64,
    #[serde(default = "d::bert_layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "d::electra_heads")]
    pub num_attention_heads: i64,
    #[serde(default = "d::electra_intermediate")]
    pub intermediate_size: i64,
    #[serde(default = "d::act")]
    pub hidden_act: Activation,
    #[serde(default = "d::dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "d::dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "d::max_pos")]
    pub max_position_embeddings: i64,
    #[serde(default = "d::type_vocab")]
    pub type_vocab_size: i64,
    #[serde(default = "d::eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    #[serde(default = "d::pos_type")]
    pub position_embedding_type: String,
    #[serde(default = "d::electra_type")]
    pub model_type: String,
}

/// HF's defaults (transformers 5.x `BertConfig` / `ElectraConfig`).
mod d {
    use super::Activation;
    pub fn vocab_size() -> i64 {
        30522
    }
    pub fn bert_hidden() -> i64 {
        768
    }
    pub fn bert_layers() -> i64 {
        12
    }
    pub fn bert_heads() -> i64 {
        12
    }
    pub fn bert_intermediate() -> i64 {
        3072
    }
    pub fn electra_embedding() -> i64 {
        128
    }
    pub fn electra_hidden() -> i64 {
        256
    }
    pub fn electra_heads() -> i64 {
        4
    }
    pub fn electra_intermediate() -> i64 {
        1024
    }
    pub fn act() -> Activation {
        Activation::Gelu
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn max_pos() -> i64 {
        512
    }
    pub fn type_vocab() -> i64 {
        2
    }
    pub fn eps() -> f64 {
        1e-12
    }
    pub fn pos_type() -> String {
        "absolute".into()
    }
    pub fn bert_type() -> String {
        "bert".into()
    }
    pub fn electra_type() -> String {
        "electra".into()
    }
}

/// The encoder-stack part of a config, common to both families.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderDims {
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub hidden_act: Activation,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub layer_norm_eps: f64,
}

/// Reads and parses a JSON config, naming the file and the offending key on error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| json_error(path, &text, e))
}

fn json_error(path: &Path, text: &str, e: serde_json::Error) -> Error {
    // serde_json reports "unknown variant `x`, expected one of ..." or
    // "invalid type: string \"big\", expected i64" without the key; recover it
    // from the text: the last `"key":` before the position the error points at.
    let key = if e.is_data() { key_before(text, e.line(), e.column()) } else { None };
    Error::config(path, key.unwrap_or_else(|| "<json>".to_string()), format!("{e}"))
}

/// The key of the last `"key": value` pair that starts before 1-based
/// `line`/`column` of `text`, scanning strings properly (escapes, colons
/// inside values), so one-line and pretty-printed files both work.
fn key_before(text: &str, line: usize, column: usize) -> Option<String> {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let end = (line_start + column).min(text.len());
    let bytes = &text.as_bytes()[..end];
    let (mut i, mut last_string, mut key) = (0, None, None);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                last_string = Some((start, i.min(bytes.len())));
            }
            b':' => {
                if let Some((a, b)) = last_string.take() {
                    key = Some((a, b));
                }
            }
            b if b.is_ascii_whitespace() => {}
            _ => last_string = None,
        }
        i += 1;
    }
    key.and_then(|(a, b)| text.get(a..b)).map(str::to_string)
}

fn check_common(path: &Path, hidden: i64, heads: i64, pos_type: &str, model_type: &str, expected_type: &str) -> Result<()> {
    if heads <= 0 || hidden <= 0 || hidden % heads != 0 {
        return Err(Error::config(
            path,
            "num_attention_heads",
            format!("hidden_size {hidden} is not divisible by num_attention_heads {heads}"),
        ));
    }
    if pos_type != "absolute" {
        return Err(Error::config(path, "position_embedding_type", format!("`{pos_type}` is not supported; expected \"absolute\"")));
    }
    if model_type != expected_type {
        return Err(Error::config(path, "model_type", format!("`{model_type}` found; expected \"{expected_type}\"")));
    }
    Ok(())
}

/// `from_file`, `validate` and `dims` are the same for both families; only
/// the expected `model_type` differs.
macro_rules! encoder_config_impl {
    ($ty:ident, $model_type:literal, $what:literal) => {
        impl $ty {
            #[doc = concat!("Reads ", $what, " `config.json`.")]
            pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
                let path = path.as_ref();
                let cfg: Self = read_json(path)?;
                cfg.validate(path)?;
                Ok(cfg)
            }

            /// Checks values we cannot run (named by key; `path` is used in the message).
            pub fn validate(&self, path: &Path) -> Result<()> {
                check_common(path, self.hidden_size, self.num_attention_heads, &self.position_embedding_type, &self.model_type, $model_type)
            }

            /// The encoder-stack dimensions.
            pub fn dims(&self) -> EncoderDims {
                EncoderDims {
                    hidden_size: self.hidden_size,
                    num_hidden_layers: self.num_hidden_layers,
                    num_attention_heads: self.num_attention_heads,
                    intermediate_size: self.intermediate_size,
                    hidden_act: self.hidden_act,
                    hidden_dropout_prob: self.hidden_dropout_prob,
                    attention_probs_dropout_prob: self.attention_probs_dropout_prob,
                    layer_norm_eps: self.layer_norm_eps,
                }
            }
        }
    };
}

encoder_config_impl!(BertConfig, "bert", "a BERT");
encoder_config_impl!(ElectraConfig, "electra", "an ELECTRA");

impl ElectraConfig {
    /// The seed notebook's home-pretrained ELECTRA-small variant: vocabulary
    /// 30522 (bert-base-uncased), embeddings 64, hidden 196, 18 layers,
    /// 4 heads, intermediate 784.
    ///
    /// ```
    /// let c = encoder_bench::models::ElectraConfig::seed_shape();
    /// assert_eq!((c.embedding_size, c.hidden_size, c.num_hidden_layers), (64, 196, 18));
    /// ```
    pub fn seed_shape() -> Self {
        serde_json::from_value(serde_json::json!({
            "vocab_size": 30522, "embedding_size": 64, "hidden_size": 196, "num_hidden_layers": 18,
            "num_attention_heads": 4, "intermediate_size": 784, "max_position_embeddings": 512, "pad_token_id": 0
        }))
        .expect("the seed shape is a valid ElectraConfig")
    }
}

/// A BERT-family or ELECTRA configuration, told apart by `model_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelConfig {
    /// `model_type: "bert"` (bert-base, TinyBERT, MiniLM, ...).
    Bert(BertConfig),
    /// `model_type: "electra"`.
    Electra(ElectraConfig),
}

/// Config fields of transformers' `PretrainedConfig` (and of Google's
/// original BERT configs) that do not change how the encoder computes; they
/// are accepted silently rather than listed as ignored.
const COMMON_FIELDS: &[&str] = &[
    "architectures",
    "model_type",
    "id2label",
    "label2id",
    "num_labels",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "_name_or_path",
    "use_cache",
    "classifier_dropout",
    "gradient_checkpointing",
    "initializer_range",
    "bos_token_id",
    "eos_token_id",
    "sep_token_id",
    "tie_word_embeddings",
    "return_dict",
    "output_hidden_states",
    "output_attentions",
    "is_decoder",
    "add_cross_attention",
    "problem_type",
    "finetuning_task",
    "directionality",
    "pooler_fc_size",
    "pooler_num_attention_heads",
    "pooler_num_fc_layers",
    "pooler_size_per_head",
    "pooler_type",
    "summary_type",
    "summary_use_proj",
    "summary_activation",
    "summary_last_dropout",
    "chunk_size_feed_forward",
    "is_encoder_decoder",
    "pruned_heads",
    "torchscript",
    "use_bfloat16",
    "tf_legacy_loss",
    "tie_encoder_decoder",
    "decoder_start_token_id",
    "task_specific_params",
    "cross_attention_hidden_size",
    "tokenizer_class",
    "prefix",
    // transformers 4.x wrote generation defaults into every config.
    "max_length",
    "min_length",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
];

/// A config as read by [`ModelConfig::from_file_with`]: the config, how its
/// family was decided, and the fields it carries that this crate does not use.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRead {
    /// The parsed config.
    pub config: ModelConfig,
    /// Where the family came from.
    pub family_from: FamilySource,
    /// Unknown fields, ignored as transformers ignores them (sorted).
    pub ignored_fields: Vec<String>,
}

fn family_of_model_type(path: &Path, model_type: &str) -> Result<ModelFamily> {
    model_type
        .parse()
        .map_err(|_| Error::config(path, "model_type", format!("`{model_type}` is not supported; expected \"bert\" or \"electra\"")))
}

impl ModelConfig {
    /// Reads a `config.json`, choosing the family from `model_type` (or,
    /// when absent, from `architectures`); a config naming neither is an
    /// error here; [`ModelConfig::from_file_with`] also takes the caller's
    /// family and the weights' key names.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::from_file_with(path, None, &[])?.config)
    }

    /// Reads a `config.json` (or `bert_config.json`), deciding the family in
    /// this order: `caller` (which must agree with the config's `model_type`
    /// when it has one), `model_type`, `architectures`, then the key names
    /// in `weight_keys` (see [`infer_family`]). Unknown fields are ignored
    /// and listed.
    ///
    /// ```
    /// use encoder_bench::models::ModelConfig;
    /// use encoder_bench::weights::{FamilySource, ModelFamily};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("config.json");
    /// std::fs::write(&path, r#"{"hidden_size": 32, "num_attention_heads": 2, "emb_size": 32, "cell": {}}"#)?;
    /// let read = ModelConfig::from_file_with(&path, None, &["bert.embeddings.word_embeddings.weight".to_string()])?;
    /// assert_eq!((read.config.family(), read.family_from), ("bert", FamilySource::WeightKeys));
    /// assert_eq!(read.ignored_fields, ["cell", "emb_size"]);
    /// let read = ModelConfig::from_file_with(&path, Some(ModelFamily::Electra), &[])?;
    /// assert_eq!((read.config.family(), read.family_from), ("electra", FamilySource::Caller));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file_with(path: impl AsRef<Path>, caller: Option<ModelFamily>, weight_keys: &[String]) -> Result<ConfigRead> {
        let path = path.as_ref();
        let v: serde_json::Value = read_json(path)?;
        let Some(fields) = v.as_object() else {
            return Err(Error::config(path, "<json>", "expected a JSON object of config fields"));
        };
        let model_type = match fields.get("model_type") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(m)) => Some(family_of_model_type(path, m)?),
            Some(other) => return Err(Error::config(path, "model_type", format!("{other} is not a string"))),
        };
        let from_architectures = || {
            let archs = fields.get("architectures")?.as_array()?;
            archs.iter().filter_map(|a| a.as_str()).find_map(|a| {
                if a.starts_with("Electra") {
                    Some(ModelFamily::Electra)
                } else if a.starts_with("Bert") {
                    Some(ModelFamily::Bert)
                } else {
                    None
                }
            })
        };
        let (family, family_from) = match (caller, model_type) {
            (Some(c), Some(m)) if c != m => {
                return Err(Error::config(
                    path,
                    "model_type",
                    format!("`{m}` contradicts the family `{c}` the caller asked for; drop the family or fix the config"),
                ));
            }
            (Some(c), _) => (c, FamilySource::Caller),
            (None, Some(m)) => (m, FamilySource::ModelType),
            (None, None) => match (from_architectures(), infer_family(weight_keys)) {
                (Some(f), _) => (f, FamilySource::Architectures),
                (None, Some(f)) => (f, FamilySource::WeightKeys),
                (None, None) => {
                    let sample: Vec<&str> = weight_keys.iter().take(3).map(String::as_str).collect();
                    return Err(Error::config(
                        path,
                        "model_type",
                        format!(
                            "missing, `architectures` names no Bert* or Electra* class, and the weight keys ({}) have no \
                             `bert.`/`electra.` prefix or encoder names: give the family (`--family bert|electra`, \
                             `SweepModel::with_family`, `load_classifier_as`)",
                            if sample.is_empty() { "none given".to_string() } else { format!("{}, …", sample.join(", ")) }
                        ),
                    ));
                }
            },
        };
        let config = match family {
            ModelFamily::Bert => ModelConfig::Bert(BertConfig::from_file(path)?),
            ModelFamily::Electra => ModelConfig::Electra(ElectraConfig::from_file(path)?),
        };
        let known = serde_json::to_value(&config).unwrap_or_default();
        let known = known.as_object();
        let mut ignored_fields: Vec<String> =
            fields.keys().filter(|k| !COMMON_FIELDS.contains(&k.as_str()) && !known.is_some_and(|o| o.contains_key(*k))).cloned().collect();
        ignored_fields.sort();
        Ok(ConfigRead { config, family_from, ignored_fields })
    }

    /// `"bert"` or `"electra"`.
    pub fn family(&self) -> &'static str {
        match self {
            ModelConfig::Bert(_) => "bert",
            ModelConfig::Electra(_) => "electra",
        }
    }

    /// Hidden size of the encoder.
    pub fn hidden_size(&self) -> i64 {
        match self {
            ModelConfig::Bert(c) => c.hidden_size,
            ModelConfig::Electra(c) => c.hidden_size,
        }
    }

    /// Longest sequence the position table allows.
    pub fn max_position_embeddings(&self) -> i64 {
        match self {
            ModelConfig::Bert(c) => c.max_position_embeddings,
            ModelConfig::Electra(c) => c.max_position_embeddings,
        }
    }

    pub(crate) fn pad_token_id(&self) -> Option<i64> {
        match self {
            ModelConfig::Bert(c) => c.pad_token_id,
            ModelConfig::Electra(c) => c.pad_token_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
        let p = dir.path().join("config.json");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn caller_family_contradicting_model_type_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, r#"{"model_type": "electra", "hidden_size": 8, "num_attention_heads": 2}"#);
        let e = ModelConfig::from_file_with(&p, Some(ModelFamily::Bert), &[]).unwrap_err().to_string();
        assert!(e.contains("key `model_type`") && e.contains("contradicts the family `bert`"), "{e}");
        let read = ModelConfig::from_file_with(&p, Some(ModelFamily::Electra), &[]).unwrap();
        assert_eq!((read.config.family(), read.family_from), ("electra", FamilySource::Caller));
        // model_type wins over the weight keys; architectures over the keys too.
        let keys = ["bert.embeddings.word_embeddings.weight".to_string()];
        assert_eq!(ModelConfig::from_file_with(&p, None, &keys).unwrap().family_from, FamilySource::ModelType);
        let p = write(&dir, r#"{"architectures": ["ElectraForMaskedLM"], "hidden_size": 8, "num_attention_heads": 2}"#);
        let read = ModelConfig::from_file_with(&p, None, &keys).unwrap();
        assert_eq!((read.config.family(), read.family_from), ("electra", FamilySource::Architectures));
    }

    #[test]
    fn electra_defaults_follow_transformers() {
        let c: ElectraConfig = serde_json::from_str("{}").unwrap();
        assert_eq!((c.embedding_size, c.hidden_size, c.num_attention_heads), (128, 256, 4));
    }

    #[test]
    fn unsupported_activation_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "{\n  \"hidden_act\": \"mish\",\n  \"hidden_size\": 8\n}");
        let e = BertConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("hidden_act") && e.contains("mish") && e.contains("config.json"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_right_key_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, r#"{"num_hidden_layers": 2, "note": "a: b", "hidden_size": "big", "vocab_size": 10}"#);
        let e = BertConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("key `hidden_size`") && e.contains("expected i64"), "{e}");
        assert_eq!(key_before(r#"{"a\"b": [1, "x"], "c": tru"#, 1, 26).as_deref(), Some("c"));
    }

    #[test]
    fn wrong_type_and_indivisible_heads_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "{\n  \"hidden_size\": \"big\"\n}");
        let e = BertConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("hidden_size"), "{e}");
        let p = write(&dir, r#"{"hidden_size": 100, "num_attention_heads": 12}"#);
        let e = BertConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("not divisible"), "{e}");
    }
}
