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

/// Upper bounds of `config.json` sizes: far above every released BERT or
/// ELECTRA (bert-large: hidden 1024, 24 layers, intermediate 4096,
/// vocabulary 30522, 512 positions), so a value beyond one is a typo or a
/// crafted file. They keep libtorch's size arithmetic far from overflow;
/// whether a model within them fits is then the memory check's question
/// ([`ModelConfig::check_memory`]).
pub mod limits {
    /// `vocab_size` (16.7 M; the largest public vocabularies have ~250 k).
    pub const VOCAB_SIZE: i64 = 1 << 24;
    /// `hidden_size` and ELECTRA's `embedding_size`.
    pub const HIDDEN_SIZE: i64 = 1 << 16;
    /// `num_hidden_layers`.
    pub const NUM_HIDDEN_LAYERS: i64 = 1 << 10;
    /// `intermediate_size`.
    pub const INTERMEDIATE_SIZE: i64 = 1 << 18;
    /// `max_position_embeddings`.
    pub const MAX_POSITION_EMBEDDINGS: i64 = 1 << 20;
    /// `type_vocab_size`.
    pub const TYPE_VOCAB_SIZE: i64 = 1 << 16;
}

/// Bytes per parameter of the weights as built (fp32).
const BYTES_PER_PARAMETER: u64 = 4;

/// The values of either family's config that validation and the size
/// estimate read (`embedding_size` is ELECTRA's; BERT embeds at the hidden size).
struct Values<'a> {
    vocab_size: i64,
    embedding_size: Option<i64>,
    hidden_size: i64,
    num_hidden_layers: i64,
    num_attention_heads: i64,
    intermediate_size: i64,
    max_position_embeddings: i64,
    type_vocab_size: i64,
    hidden_dropout_prob: f64,
    attention_probs_dropout_prob: f64,
    layer_norm_eps: f64,
    pad_token_id: Option<i64>,
    position_embedding_type: &'a str,
    model_type: &'a str,
}

impl Values<'_> {
    /// Parameters of the encoder these values describe (embeddings, the
    /// ELECTRA projection, the layers; no head), with the key of the largest
    /// share. Exact for valid values (`tests/models.rs` compares it with the
    /// built models); saturating, so hostile values cannot overflow it.
    fn encoder_parameters(&self) -> (u64, &'static str) {
        let n = |v: i64| v.max(0) as u64;
        let (h, i) = (n(self.hidden_size), n(self.intermediate_size));
        let e = self.embedding_size.map_or(h, n);
        let mul = |a: u64, b: u64| a.saturating_mul(b);
        let shares = [
            ("vocab_size", mul(n(self.vocab_size), e)),
            ("max_position_embeddings", mul(n(self.max_position_embeddings), e)),
            ("type_vocab_size", mul(n(self.type_vocab_size), e)),
            // q, k, v and the attention output (4·(h² + h)), the two
            // LayerNorms (4h), the feed-forward pair (2·h·i + i + h).
            (
                "num_hidden_layers",
                mul(
                    n(self.num_hidden_layers),
                    mul(4, mul(h, h).saturating_add(h))
                        .saturating_add(mul(4, h))
                        .saturating_add(mul(2, mul(h, i)))
                        .saturating_add(i)
                        .saturating_add(h),
                ),
            ),
        ];
        // The embeddings' LayerNorm, and ELECTRA's projection up to the hidden size.
        let project = if e != h { mul(e, h).saturating_add(h) } else { 0 };
        let total = shares.iter().fold(mul(2, e).saturating_add(project), |acc, (_, p)| acc.saturating_add(*p));
        let largest = shares.iter().max_by_key(|(_, p)| *p).map_or("num_hidden_layers", |(k, _)| k);
        (total, largest)
    }

    fn check(&self, path: &Path, expected_type: &str) -> Result<()> {
        let size = |key: &str, v: i64, max: i64| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                let why = if v < 1 { "is not a size" } else { "is beyond any real model (a typo?)" };
                Err(Error::config(path, key, format!("{v} {why}: expected an integer in 1..={max}")))
            }
        };
        size("vocab_size", self.vocab_size, limits::VOCAB_SIZE)?;
        if let Some(e) = self.embedding_size {
            size("embedding_size", e, limits::HIDDEN_SIZE)?;
        }
        size("hidden_size", self.hidden_size, limits::HIDDEN_SIZE)?;
        size("num_hidden_layers", self.num_hidden_layers, limits::NUM_HIDDEN_LAYERS)?;
        size("intermediate_size", self.intermediate_size, limits::INTERMEDIATE_SIZE)?;
        size("max_position_embeddings", self.max_position_embeddings, limits::MAX_POSITION_EMBEDDINGS)?;
        size("type_vocab_size", self.type_vocab_size, limits::TYPE_VOCAB_SIZE)?;
        let (hidden, heads) = (self.hidden_size, self.num_attention_heads);
        if heads < 1 {
            return Err(Error::config(path, "num_attention_heads", format!("{heads} is not a number of heads: expected at least 1")));
        }
        // transformers refuses this too: the heads split the hidden size evenly.
        if hidden % heads != 0 {
            return Err(Error::config(
                path,
                "num_attention_heads",
                format!("hidden_size {hidden} is not divisible by num_attention_heads {heads}"),
            ));
        }
        for (key, p) in
            [("hidden_dropout_prob", self.hidden_dropout_prob), ("attention_probs_dropout_prob", self.attention_probs_dropout_prob)]
        {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::config(path, key, format!("{p} is not a probability: expected a number in [0, 1]")));
            }
        }
        // LayerNorm adds eps in fp32: below the smallest normal float32 it
        // vanishes (a zero variance then divides by zero), above the largest
        // it is infinite.
        let eps = self.layer_norm_eps;
        let (lo, hi) = (f32::MIN_POSITIVE as f64, f32::MAX as f64);
        if !(lo..=hi).contains(&eps) {
            return Err(Error::config(
                path,
                "layer_norm_eps",
                format!("{eps} is not a positive number float32 can hold: expected {lo:e}..={hi:e}"),
            ));
        }
        if let Some(pad) = self.pad_token_id
            && !(0..self.vocab_size).contains(&pad)
        {
            return Err(Error::config(
                path,
                "pad_token_id",
                format!("{pad} is not a token id of the vocabulary: expected 0..{} (vocab_size {})", self.vocab_size, self.vocab_size),
            ));
        }
        let pos_type = self.position_embedding_type;
        if pos_type != "absolute" {
            return Err(Error::config(path, "position_embedding_type", format!("`{pos_type}` is not supported; expected \"absolute\"")));
        }
        if self.model_type != expected_type {
            return Err(Error::config(path, "model_type", format!("`{}` found; expected \"{expected_type}\"", self.model_type)));
        }
        if let Some(budget) = crate::device::total_memory_bytes() {
            self.check_memory(path, budget, "this machine's memory")?;
        }
        Ok(())
    }

    fn check_memory(&self, path: &Path, budget_bytes: u64, budget_name: &str) -> Result<()> {
        let (params, key) = self.encoder_parameters();
        let bytes = params.saturating_mul(BYTES_PER_PARAMETER);
        if bytes <= budget_bytes {
            return Ok(());
        }
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        Err(Error::config(
            path,
            key,
            format!(
                "the encoder would have {params} parameters, {:.2} GiB in fp32, more than {budget_name} ({:.2} GiB): refused before \
                 allocating (vocab_size {}, hidden_size {}, num_hidden_layers {}, intermediate_size {}, max_position_embeddings {})",
                gib(bytes),
                gib(budget_bytes),
                self.vocab_size,
                self.hidden_size,
                self.num_hidden_layers,
                self.intermediate_size,
                self.max_position_embeddings
            ),
        ))
    }
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

            /// Checks every value before anything is allocated, as
            /// transformers would refuse it or libtorch would fail on it:
            /// sizes in `1..=`[`limits`], heads dividing the hidden size,
            /// dropout probabilities in [0, 1], a positive `layer_norm_eps`,
            /// `pad_token_id` inside the vocabulary, and the encoder's fp32
            /// weights no larger than this machine's memory
            /// ([`crate::device::total_memory_bytes`]). Errors name `path`
            /// and the key.
            pub fn validate(&self, path: &Path) -> Result<()> {
                self.values().check(path, $model_type)
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

impl BertConfig {
    fn values(&self) -> Values<'_> {
        Values {
            vocab_size: self.vocab_size,
            embedding_size: None,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            intermediate_size: self.intermediate_size,
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            hidden_dropout_prob: self.hidden_dropout_prob,
            attention_probs_dropout_prob: self.attention_probs_dropout_prob,
            layer_norm_eps: self.layer_norm_eps,
            pad_token_id: self.pad_token_id,
            position_embedding_type: &self.position_embedding_type,
            model_type: &self.model_type,
        }
    }
}

impl ElectraConfig {
    fn values(&self) -> Values<'_> {
        Values {
            embedding_size: Some(self.embedding_size),
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            intermediate_size: self.intermediate_size,
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            hidden_dropout_prob: self.hidden_dropout_prob,
            attention_probs_dropout_prob: self.attention_probs_dropout_prob,
            layer_norm_eps: self.layer_norm_eps,
            pad_token_id: self.pad_token_id,
            position_embedding_type: &self.position_embedding_type,
            model_type: &self.model_type,
        }
    }
}

encoder_config_impl!(BertConfig, "bert", "a BERT");
encoder_config_impl!(ElectraConfig, "electra", "an ELECTRA");

impl ElectraConfig {
    /// The generator of replaced-token detection for this discriminator, at
    /// `size` (ELECTRA's paper: 1/4 to 1/2 works best) of its width: the
    /// number of attention heads and the feed-forward width scale by `size`,
    /// the head width, depth and embeddings stay (the two networks share the
    /// embedding tables, so their width must match).
    ///
    /// ```
    /// let d = encoder_bench::models::ElectraConfig::seed_shape();
    /// let g = d.generator(0.25);
    /// assert_eq!((g.hidden_size, g.num_attention_heads, g.intermediate_size), (49, 1, 196));
    /// assert_eq!((g.embedding_size, g.num_hidden_layers), (d.embedding_size, d.num_hidden_layers));
    /// ```
    pub fn generator(&self, size: f64) -> ElectraConfig {
        let head_dim = self.hidden_size / self.num_attention_heads.max(1);
        let heads = ((self.num_attention_heads as f64 * size).round() as i64).max(1);
        ElectraConfig {
            hidden_size: heads * head_dim,
            num_attention_heads: heads,
            intermediate_size: ((self.intermediate_size as f64 * size).round() as i64).max(1),
            ..self.clone()
        }
    }

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

    /// Parameters of the encoder this config describes (embeddings, layers;
    /// no head), computed from the config alone, before anything is built.
    ///
    /// ```
    /// let cfg = encoder_bench::models::ModelConfig::from_file("tests/fixtures/tiny-bert.json")?;
    /// assert!(cfg.encoder_parameters() > 0);
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn encoder_parameters(&self) -> u64 {
        self.values().encoder_parameters().0
    }

    /// Refuses the model when its encoder's fp32 weights alone take more
    /// than `budget_bytes` (validation checks against the machine's memory;
    /// a caller can ask for less). The error names `path`, the key of the
    /// largest share and the computed size.
    ///
    /// ```
    /// use std::path::Path;
    /// let cfg = encoder_bench::models::ModelConfig::from_file("tests/fixtures/tiny-bert.json")?;
    /// assert!(cfg.check_memory(Path::new("tiny-bert.json"), 1 << 30).is_ok());
    /// let e = cfg.check_memory(Path::new("tiny-bert.json"), 16).unwrap_err().to_string();
    /// assert!(e.contains("tiny-bert.json") && e.contains("parameters"), "{e}");
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn check_memory(&self, path: &Path, budget_bytes: u64) -> Result<()> {
        self.values().check_memory(path, budget_bytes, "the budget")
    }

    fn values(&self) -> Values<'_> {
        match self {
            ModelConfig::Bert(c) => c.values(),
            ModelConfig::Electra(c) => c.values(),
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
    fn every_size_probability_and_id_is_range_checked_naming_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = [
            ("vocab_size", "50"),
            ("hidden_size", "8"),
            ("num_hidden_layers", "1"),
            ("num_attention_heads", "2"),
            ("intermediate_size", "16"),
            ("max_position_embeddings", "16"),
        ];
        // The tiny shape with `key` set to the raw JSON `value`.
        let with = |key: &str, value: &str| {
            let mut fields: Vec<String> = tiny.iter().filter(|(k, _)| *k != key).map(|(k, v)| format!("\"{k}\": {v}")).collect();
            fields.push(format!("\"{key}\": {value}"));
            write(&dir, &format!("{{{}}}", fields.join(", ")))
        };
        let cases = [
            ("vocab_size", "-5", "vocab_size", "-5 is not a size"),
            ("hidden_size", "0", "hidden_size", "0 is not a size"),
            ("hidden_size", "2147483648", "hidden_size", "beyond any real model"),
            ("num_hidden_layers", "-1", "num_hidden_layers", "-1 is not a size"),
            ("num_hidden_layers", "1000000", "num_hidden_layers", "1..=1024"),
            ("num_attention_heads", "0", "num_attention_heads", "expected at least 1"),
            ("num_attention_heads", "3", "num_attention_heads", "not divisible"),
            ("intermediate_size", "0", "intermediate_size", "not a size"),
            ("max_position_embeddings", "-512", "max_position_embeddings", "not a size"),
            ("type_vocab_size", "0", "type_vocab_size", "not a size"),
            ("hidden_dropout_prob", "1.5", "hidden_dropout_prob", "not a probability"),
            ("attention_probs_dropout_prob", "-0.1", "attention_probs_dropout_prob", "not a probability"),
            ("layer_norm_eps", "0", "layer_norm_eps", "not a positive number"),
            ("layer_norm_eps", "1e-300", "layer_norm_eps", "float32"),
            ("pad_token_id", "50", "pad_token_id", "expected 0..50"),
            ("pad_token_id", "-1", "pad_token_id", "not a token id"),
            // serde's own refusals name the key too.
            ("vocab_size", "18446744073709551616", "vocab_size", "expected i64"),
            ("hidden_size", "8.5", "hidden_size", "expected i64"),
        ];
        for (field, value, key, want) in cases {
            let e = BertConfig::from_file(with(field, value)).unwrap_err().to_string();
            assert!(e.contains("config.json") && e.contains(&format!("key `{key}`")) && e.contains(want), "{field} {value}: {e}");
        }
        let e = ElectraConfig::from_file(with("embedding_size", "0")).unwrap_err().to_string();
        assert!(e.contains("key `embedding_size`"), "{e}");
        let p = with("pad_token_id", "0");
        assert!(BertConfig::from_file(&p).is_ok() && ElectraConfig::from_file(&p).is_ok());
    }

    #[test]
    fn a_model_larger_than_memory_is_refused_with_its_size_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        // Within every per-field limit, ~1.1e12 parameters: 4160 GiB of fp32.
        let p = write(
            &dir,
            r#"{"vocab_size": 16777216, "hidden_size": 65536, "num_attention_heads": 1, "intermediate_size": 8, "num_hidden_layers": 1}"#,
        );
        let e = BertConfig::from_file(&p).unwrap_err().to_string();
        if crate::device::total_memory_bytes().is_some() {
            assert!(e.contains("key `vocab_size`") && e.contains("parameters") && e.contains("GiB") && e.contains("memory"), "{e}");
        }
        let cfg = ModelConfig::Bert(serde_json::from_str(r#"{"vocab_size": 100, "hidden_size": 8, "num_attention_heads": 2}"#).unwrap());
        let e = cfg.check_memory(&p, 1024).unwrap_err().to_string();
        assert!(e.contains("key `num_hidden_layers`") && e.contains("the budget"), "{e}");
    }

    #[test]
    fn the_parameter_estimate_is_exact() {
        for text in [
            r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 16, "type_vocab_size": 3}"#,
            r#"{"vocab_size": 50, "embedding_size": 4, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 16, "max_position_embeddings": 9}"#,
        ] {
            let bert = ModelConfig::Bert(serde_json::from_str(text).unwrap());
            let electra = ModelConfig::Electra(serde_json::from_str(text).unwrap());
            for cfg in [bert, electra] {
                let model = crate::models::random_classifier(&cfg, crate::data::LabelMap::numbered(3), tch::Device::Cpu, 0);
                let head = 8 * 3 + 3;
                assert_eq!(cfg.encoder_parameters() as i64 + head, model.num_parameters(), "{cfg:?}");
            }
        }
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
