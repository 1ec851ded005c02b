//! `transformers.ElectraForMaskedLM`: the ELECTRA generator that masked-LM
//! pre-training trains, and whose state dict the notebook fine-tunes (the
//! seed's `babylm_model.bin` is one).
//!
//! Variables live under HF's `state_dict` names, so files go both ways
//! unchanged: `electra.*` (the encoder, [`ElectraModel`]),
//! `generator_predictions.{dense,LayerNorm}.*` and `generator_lm_head.bias`.
//! The decoder weight `generator_lm_head.weight` is not a variable of its
//! own: as in transformers, it *is* `electra.embeddings.word_embeddings.weight`
//! (the same tensor, so both uses train it), and files written here omit it,
//! as `save_pretrained` does.
use super::config::{ElectraConfig, read_json};
use super::electra::ElectraModel;
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;
use crate::weights::ModelSource;
use crate::weights::{KeyMap, LoadReport, WeightSet, load_into};
use std::path::Path;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The tied decoder's key in HF state dicts (saved by `torch.save(model.state_dict())`).
pub const TIED_DECODER_KEY: &str = "generator_lm_head.weight";

/// `transformers.ElectraForMaskedLM`: encoder → `generator_predictions`
/// (dense hidden→embedding, GELU, LayerNorm) → `generator_lm_head` (the word
/// embeddings, transposed, plus a bias) → logits over the vocabulary.
///
/// ```
/// use encoder_bench::models::{ElectraConfig, ElectraForMaskedLM};
/// let cfg: ElectraConfig = serde_json::from_str(r#"{"vocab_size": 50, "embedding_size": 4, "hidden_size": 8,
///     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}"#).unwrap();
/// let model = ElectraForMaskedLM::random(&cfg, tch::Device::Cpu, 0);
/// let ids = tch::Tensor::from_slice(&[2i64, 5, 7]).view([1, 3]);
/// assert_eq!(model.forward_t(&ids, &ids.ones_like(), None, false).size(), vec![1, 3, 50]);
/// assert!(model.var_store().variables().contains_key("generator_lm_head.bias"));
/// assert!(!model.var_store().variables().contains_key("generator_lm_head.weight")); // tied
/// ```
#[derive(Debug)]
pub struct ElectraForMaskedLM {
    vs: nn::VarStore,
    electra: ElectraModel,
    head: MlmHead,
    config: ElectraConfig,
}

/// The `config.json` of an ELECTRA model class: `config` with
/// `architectures: [architecture]` and HF's initializer range.
pub(crate) fn electra_config_json(config: &ElectraConfig, architecture: &str) -> Result<serde_json::Value> {
    let mut cfg = serde_json::to_value(config).map_err(|e| Error::invalid("config", e.to_string()))?;
    cfg["architectures"] = serde_json::json!([architecture]);
    cfg["initializer_range"] = serde_json::json!(0.02);
    Ok(cfg)
}

/// The `config.json` of an `ElectraForMaskedLM` (decoder tied to the word embeddings).
pub(crate) fn generator_config_json(config: &ElectraConfig) -> Result<serde_json::Value> {
    let mut cfg = electra_config_json(config, "ElectraForMaskedLM")?;
    cfg["tie_word_embeddings"] = serde_json::json!(true);
    Ok(cfg)
}

/// ELECTRA's masked-LM head under HF's names, `generator_predictions`
/// (dense hidden→embedding, GELU, LayerNorm) and `generator_lm_head.bias`;
/// its decoder is the word-embedding table it is handed, not a variable of
/// its own. [`ElectraForMaskedLM`] and the generator of replaced-token
/// detection ([`ElectraRtd`](super::ElectraRtd)) both use it.
#[derive(Debug)]
pub struct MlmHead {
    dense: nn::Linear,
    layer_norm: nn::LayerNorm,
    bias: Tensor,
}

impl MlmHead {
    /// Creates `root/generator_predictions.*` and `root/generator_lm_head.bias`.
    pub fn new(root: &nn::Path, cfg: &ElectraConfig) -> Self {
        let p = root / "generator_predictions";
        let dense = nn::linear(&p / "dense", cfg.hidden_size, cfg.embedding_size, Default::default());
        let ln = nn::LayerNormConfig { eps: cfg.layer_norm_eps, ..Default::default() };
        let layer_norm = nn::layer_norm(&p / "LayerNorm", vec![cfg.embedding_size], ln);
        let bias = (root / "generator_lm_head").var("bias", &[cfg.vocab_size], nn::Init::Const(0.0));
        MlmHead { dense, layer_norm, bias }
    }

    /// Hidden states `[..., hidden]` → logits `[..., vocab]` through the tied
    /// decoder `word_embeddings` `[vocab, embedding]`.
    pub fn forward(&self, hidden: &Tensor, word_embeddings: &Tensor) -> Tensor {
        // transformers hard-codes exact GELU here, whatever `hidden_act` says.
        let xs = self.layer_norm.forward(&self.dense.forward(hidden).gelu("none"));
        xs.linear(word_embeddings, Some(&self.bias))
    }
}

impl ElectraForMaskedLM {
    /// A model with tch's default initialisation, on the CPU (load weights
    /// into it, or use [`random`](Self::random) for HF's initialisation).
    pub fn new(cfg: &ElectraConfig) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let electra = ElectraModel::new(&(&root / "electra"), cfg);
        let head = MlmHead::new(&root, cfg);
        ElectraForMaskedLM { vs, electra, head, config: cfg.clone() }
    }

    /// A model initialised as `transformers` initialises a new one (N(0, 0.02)
    /// weights, zero biases, unit LayerNorm scales, zero padding row), seeded
    /// through [`crate::device::seeded`], then moved to `device`.
    pub fn random(cfg: &ElectraConfig, device: Device, seed: i64) -> Self {
        let mut model = Self::new(cfg);
        // Seeded after building, so that what the construction drew does not
        // matter: a model with more variables that draws this encoder first
        // gets the same one ([`ElectraRtd::random`](super::ElectraRtd::random)).
        crate::device::seeded(seed, || super::classifier::init_like_transformers(&model.vs, cfg.pad_token_id));
        crate::device::move_var_store(&mut model.vs, device).expect("a new model's fp32 variables pass every device rule");
        model
    }

    /// Loads an `ElectraForMaskedLM` checkpoint: a directory written by
    /// [`save`](Self::save) or `save_pretrained`, or a `torch.save(state_dict)`
    /// file such as the seed's `babylm_model.bin` beside its `config.json`.
    ///
    /// Every variable must be in the file. A `generator_lm_head.weight` in the
    /// file must equal the word embeddings (it is tied to them); an untied
    /// config (`tie_word_embeddings: false`) is refused.
    ///
    /// ```no_run
    /// use encoder_bench::models::{ElectraForMaskedLM, ModelSource};
    /// let src = ModelSource::state_dict("my-electra/config.json", "my-electra/babylm_model.bin");
    /// let (model, report) = ElectraForMaskedLM::load(&src, tch::Device::Cpu)?;
    /// println!("{report}");
    /// # Ok::<(), encoder_bench::Error>(())
    /// ```
    pub fn load(source: &ModelSource, device: Device) -> Result<(Self, LoadReport)> {
        let files = source.resolve()?;
        let cfg = ElectraConfig::from_file(&files.config)?;
        let raw: serde_json::Value = read_json(&files.config)?;
        if raw.get("tie_word_embeddings").and_then(|v| v.as_bool()) == Some(false) {
            return Err(Error::config(
                &files.config,
                "tie_word_embeddings",
                "false: an untied generator_lm_head is not supported (transformers ties it to the word embeddings)",
            ));
        }
        let model = Self::new(&cfg);
        let mut weights = WeightSet::open(&files.weights)?.into_tensors()?;
        let tied = weights.iter().position(|(k, _)| k == TIED_DECODER_KEY).map(|i| weights.remove(i).1);
        let map = KeyMap {
            encoder_prefix: "electra",
            strip_prefixes: &["electra."],
            ignore: &["position_ids", "token_type_ids"],
            may_be_missing: &[],
        };
        let mut report = load_into(&model.vs, weights, &map, &files.weights)?;
        if let Some(decoder) = tied {
            let emb = &model.electra.embeddings.word_embeddings.ws;
            if decoder.size() != emb.size() {
                return Err(Error::weights(
                    &files.weights,
                    Some(TIED_DECODER_KEY),
                    format!("shape {:?} differs from the word embeddings' {:?}", decoder.size(), emb.size()),
                ));
            }
            let diff = tch::no_grad(|| (decoder.to_kind(Kind::Float) - emb).abs().max().double_value(&[]));
            if diff != 0.0 {
                return Err(Error::weights(
                    &files.weights,
                    Some(TIED_DECODER_KEY),
                    format!("differs from electra.embeddings.word_embeddings.weight (max abs diff {diff:e}); it must be tied to them"),
                ));
            }
            report.ignored.push(TIED_DECODER_KEY.to_string());
            report.ignored.sort();
        }
        let mut model = model;
        crate::device::move_var_store(&mut model.vs, device)?;
        Ok((model, report))
    }

    /// Writes `dir/config.json` (all of [`ElectraConfig`]'s fields, plus
    /// `architectures: ["ElectraForMaskedLM"]` and `tie_word_embeddings: true`)
    /// and `dir/model.safetensors` under HF's key names, each atomically, and
    /// `tokenizer.json` when a tokenizer is given. `transformers`'
    /// `ElectraForMaskedLM.from_pretrained(dir)` loads it with no missing
    /// keys, and so does [`load_classifier`](super::load_classifier) for
    /// fine-tuning.
    pub fn save(&self, dir: impl AsRef<Path>, tokenizer: Option<&TextTokenizer>) -> Result<()> {
        crate::weights::save_pretrained(&self.vs, &self.config_json()?, tokenizer, dir.as_ref())
    }

    /// The `config.json` that [`save`](Self::save) writes.
    pub fn config_json(&self) -> Result<serde_json::Value> {
        generator_config_json(&self.config)
    }

    /// Last hidden states of the encoder `[batch, seq, hidden]`.
    pub fn hidden_states(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: Option<&Tensor>, train: bool) -> Tensor {
        self.electra.forward(input_ids, attention_mask, token_type_ids, train)
    }

    /// The MLM head on hidden states `[..., hidden]` → logits `[..., vocab]`.
    pub fn head(&self, hidden: &Tensor) -> Tensor {
        self.head.forward(hidden, &self.electra.embeddings.word_embeddings.ws)
    }

    /// Logits `[batch, seq, vocab]` at every position (HF's `logits`);
    /// dropout only when `train`.
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: Option<&Tensor>, train: bool) -> Tensor {
        self.head(&self.hidden_states(input_ids, attention_mask, token_type_ids, train))
    }

    /// Logits `[n, vocab]` at the `n` positions where the bool `[batch, seq]`
    /// tensor `positions` is true, in row-major order. The loss only needs
    /// the masked positions, and the vocabulary projection is the costliest
    /// matmul of a small model, so pre-training runs the head on these alone.
    pub fn masked_logits(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        positions: &Tensor,
        train: bool,
    ) -> Tensor {
        let hidden = self.hidden_states(input_ids, attention_mask, token_type_ids, train);
        self.head(&hidden.index(&[Some(positions)]))
    }

    /// The encoder.
    pub fn electra(&self) -> &ElectraModel {
        &self.electra
    }

    /// The variables (for optimizers and checkpoints).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Mutable variables (to move devices).
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// The configuration.
    pub fn config(&self) -> &ElectraConfig {
        &self.config
    }

    /// Number of trainable parameters (the tied decoder counted once).
    pub fn num_parameters(&self) -> i64 {
        self.vs.trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64
    }
}
