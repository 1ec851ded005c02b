//! ELECTRA's own pre-training pair for replaced-token detection: a small
//! masked-LM generator proposes tokens for the masked positions, and the
//! discriminator (`transformers.ElectraForPreTraining`, the model that is
//! then fine-tuned) learns to tell, at every position, whether the token is
//! the original. The generator shares the discriminator's embedding tables
//! (the paper's tied embeddings), so both objectives train them.
//!
//! Both networks live in one var store, the discriminator under HF's names
//! (`electra.*`, `discriminator_predictions.*`) and the generator under
//! `generator.` (`generator.electra.encoder.*`, …); [`save`](ElectraRtd::save)
//! writes the discriminator as a model directory, [`save_generator`](ElectraRtd::save_generator)
//! the generator as an `ElectraForMaskedLM` one.
use super::bert::Embeddings;
use super::classifier::init_vars_like_transformers;
use super::config::ElectraConfig;
use super::electra::ElectraModel;
use super::mlm::{MlmHead, electra_config_json, generator_config_json};
use crate::error::Result;
use crate::tokenizer::TextTokenizer;
use std::path::Path;
use tch::nn;
use tch::{Device, Tensor};

/// The var-store prefix of the generator's own variables.
pub const GENERATOR_PREFIX: &str = "generator.";

/// An ELECTRA discriminator and its generator, for replaced-token detection.
///
/// ```
/// use encoder_bench::models::{ElectraConfig, ElectraRtd};
/// let cfg: ElectraConfig = serde_json::from_str(r#"{"vocab_size": 50, "embedding_size": 4, "hidden_size": 8,
///     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}"#).unwrap();
/// let model = ElectraRtd::random(&cfg, 0.5, tch::Device::Cpu, 0);
/// let ids = tch::Tensor::from_slice(&[2i64, 5, 7]).view([1, 3]);
/// let ones = ids.ones_like();
/// assert_eq!(model.discriminator_logits(&ids, &ones, false).size(), vec![1, 3]);
/// let at = ids.gt(4); // the positions to propose tokens for
/// assert_eq!(model.generator_logits(&ids, &ones, &at, false).size(), vec![2, 50]);
/// assert_eq!(model.generator_config().hidden_size, 4);
/// let vars = model.var_store().variables();
/// assert!(vars.contains_key("discriminator_predictions.dense_prediction.weight"));
/// assert!(!vars.contains_key("generator.electra.embeddings.word_embeddings.weight")); // shared
/// ```
#[derive(Debug)]
pub struct ElectraRtd {
    vs: nn::VarStore,
    electra: ElectraModel,
    dense: nn::Linear,
    dense_prediction: nn::Linear,
    generator: ElectraModel,
    generator_head: MlmHead,
    config: ElectraConfig,
    generator_config: ElectraConfig,
}

impl ElectraRtd {
    /// A pair initialised as `transformers` initialises new models, seeded
    /// through [`crate::device::seeded`], then moved to `device`. The
    /// discriminator's encoder is drawn first, so it equals the encoder of
    /// [`ElectraForMaskedLM::random`](super::ElectraForMaskedLM::random) with
    /// the same config and seed: the randomly initialised twin of a run is
    /// the same whichever objective pre-trains it. The generator is
    /// `config.generator(generator_size)`.
    pub fn random(config: &ElectraConfig, generator_size: f64, device: Device, seed: i64) -> Self {
        let generator_config = config.generator(generator_size);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let electra = ElectraModel::new(&(&root / "electra"), config);
        let p = &root / "discriminator_predictions";
        let dense = nn::linear(&p / "dense", config.hidden_size, config.hidden_size, Default::default());
        let dense_prediction = nn::linear(&p / "dense_prediction", config.hidden_size, 1, Default::default());
        let g = &root / "generator";
        let generator = ElectraModel::with_embeddings(&(&g / "electra"), &generator_config, electra.embeddings.share());
        let generator_head = MlmHead::new(&g, &generator_config);
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by_key(|(k, _)| (!k.starts_with("electra."), k.starts_with(GENERATOR_PREFIX), k.clone()));
        crate::device::seeded(seed, || init_vars_like_transformers(vars, config.pad_token_id));
        let mut model =
            ElectraRtd { vs, electra, dense, dense_prediction, generator, generator_head, config: config.clone(), generator_config };
        // `set_device` moves each variable in place, so the generator's
        // handles on the shared embeddings follow.
        crate::device::move_var_store(&mut model.vs, device).expect("a new model's fp32 variables pass every device rule");
        model
    }

    /// The generator's logits `[n, vocab]` at the `n` positions where the
    /// bool `[batch, seq]` `positions` is true (row-major), from the
    /// corrupted `input_ids`.
    pub fn generator_logits(&self, input_ids: &Tensor, attention_mask: &Tensor, positions: &Tensor, train: bool) -> Tensor {
        let hidden = self.generator.forward(input_ids, attention_mask, None, train);
        self.generator_head.forward(&hidden.index(&[Some(positions)]), &self.electra.embeddings.word_embeddings.ws)
    }

    /// The discriminator's logits `[batch, seq]` (HF's `logits`: > 0 means
    /// "replaced").
    pub fn discriminator_logits(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let hidden = self.electra.forward(input_ids, attention_mask, None, train);
        let xs = self.config.hidden_act.apply(&super::precision::linear(&self.dense, &hidden));
        super::precision::linear(&self.dense_prediction, &xs).squeeze_dim(-1)
    }

    /// Writes the discriminator as a model directory: `config.json`
    /// (`architectures: ["ElectraForPreTraining"]`), `model.safetensors`
    /// under HF's names and `tokenizer.json` when given. `transformers`'
    /// `ElectraForPreTraining.from_pretrained(dir)` loads it with no missing
    /// keys, and [`load_classifier`](super::load_classifier) fine-tunes it.
    pub fn save(&self, dir: impl AsRef<Path>, tokenizer: Option<&TextTokenizer>) -> Result<()> {
        let vars = self.vs.variables().into_iter().filter(|(k, _)| !k.starts_with(GENERATOR_PREFIX)).collect();
        crate::weights::save_pretrained_vars(vars, &electra_config_json(&self.config, "ElectraForPreTraining")?, tokenizer, dir.as_ref())
    }

    /// Writes the generator as an `ElectraForMaskedLM` directory (its
    /// embeddings are the shared tables).
    pub fn save_generator(&self, dir: impl AsRef<Path>, tokenizer: Option<&TextTokenizer>) -> Result<()> {
        let vars = self
            .vs
            .variables()
            .into_iter()
            .filter_map(|(k, v)| match k.strip_prefix(GENERATOR_PREFIX) {
                Some(rest) => Some((rest.to_string(), v)),
                None => k.starts_with("electra.embeddings.").then_some((k, v)),
            })
            .collect();
        crate::weights::save_pretrained_vars(vars, &generator_config_json(&self.generator_config)?, tokenizer, dir.as_ref())
    }

    /// Every variable, generator included (what a checkpoint holds).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The discriminator's configuration.
    pub fn config(&self) -> &ElectraConfig {
        &self.config
    }

    /// The generator's configuration.
    pub fn generator_config(&self) -> &ElectraConfig {
        &self.generator_config
    }

    /// The shared embedding tables (for tests of the sharing).
    pub fn embeddings(&self) -> &Embeddings {
        &self.electra.embeddings
    }

    /// Trainable parameters of both networks (shared tables counted once).
    pub fn num_parameters(&self) -> i64 {
        self.vs.trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64
    }
}
