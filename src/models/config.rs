//! Model configurations read from Hugging Face `config.json` files.
//!
//! Field names and defaults mirror `transformers`' `BertConfig` and
//! `ElectraConfig`, so any checkpoint's config loads unchanged; values we do
//! not implement are refused with the key named instead of being ignored.
use crate::error::{Error, Result};
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

impl ModelConfig {
    /// Reads a `config.json`, choosing the family from `model_type` (or,
    /// when absent, from `architectures`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let v: serde_json::Value = read_json(path)?;
        let model_type = v.get("model_type").and_then(|m| m.as_str()).map(str::to_string).or_else(|| {
            let archs = v.get("architectures")?.as_array()?;
            archs.iter().filter_map(|a| a.as_str()).find_map(|a| {
                if a.starts_with("Electra") {
                    Some("electra".to_string())
                } else if a.starts_with("Bert") {
                    Some("bert".to_string())
                } else {
                    None
                }
            })
        });
        match model_type.as_deref() {
            Some("bert") => Ok(ModelConfig::Bert(BertConfig::from_file(path)?)),
            Some("electra") => Ok(ModelConfig::Electra(ElectraConfig::from_file(path)?)),
            Some(other) => Err(Error::config(path, "model_type", format!("`{other}` is not supported; expected \"bert\" or \"electra\""))),
            None => Err(Error::config(path, "model_type", "missing, and `architectures` names no Bert* or Electra* class")),
        }
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
