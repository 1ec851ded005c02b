//! The notebook's `BERTClass` and `ELECTRAClass`: encoder → hidden state of
//! `[CLS]` → dropout → `Linear(hidden, classes)`, or, by choice, transformers'
//! own sequence-classification heads ([`Head`], in `heads.rs`).
//!
//! `forward_t` returns logits. The seed applied a softmax before
//! `CrossEntropyLoss` (which applies its own), flattening the gradients; we
//! keep one softmax, inside the loss, and expose probabilities separately.
use super::config::{BertConfig, ElectraConfig, ModelConfig, read_json};
use super::heads::{ClassifierHead, Head};
use super::{BertModel, ElectraModel};
use crate::data::LabelMap;
use crate::error::{Error, Result};
use crate::tokenizer::TextTokenizer;
use crate::weights::ModelSource;
use crate::weights::{KeyMap, LoadReport, ModelFamily, WeightSet, load_set_into};
use std::path::Path;
use tch::nn;
use tch::{Device, Kind, Tensor};

/// What training and evaluation code needs from any classifier.
pub trait TextClassifier: std::fmt::Debug {
    /// Logits `[batch, classes]`; dropout is active only when `train`.
    fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: Option<&Tensor>, train: bool) -> Tensor;

    /// [`TextClassifier::forward_t`] after checking that every input is on the
    /// model's device: a batch built by hand on the wrong device gets an
    /// error naming the tensor and both devices instead of libtorch's.
    fn try_forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let mut inputs = vec![("input_ids", input_ids), ("attention_mask", attention_mask)];
        inputs.extend(token_type_ids.map(|t| ("token_type_ids", t)));
        crate::device::check_same_device("forward", self.var_store().device(), &inputs)?;
        // The layers take these shapes for granted (and would panic on others).
        let shape = input_ids.size();
        if shape.len() != 2 {
            return Err(Error::invalid("input_ids", format!("shape {shape:?}: expected [batch, sequence]")));
        }
        if let Some((name, t)) = inputs.iter().find(|(_, t)| t.size() != shape) {
            return Err(Error::invalid(*name, format!("shape {:?} differs from input_ids' {shape:?}", t.size())));
        }
        Ok(self.forward_t(input_ids, attention_mask, token_type_ids, train))
    }

    /// Class probabilities `[batch, classes]` in evaluation mode, without gradients.
    fn probabilities(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: Option<&Tensor>) -> Tensor {
        tch::no_grad(|| self.forward_t(input_ids, attention_mask, token_type_ids, false).softmax(-1, Kind::Float))
    }

    /// This model as a value several threads may run [`TextClassifier::forward_t`]
    /// on at once (without gradients), when it allows that; evaluation on a
    /// multi-core CPU then runs batches side by side. `None` (the default)
    /// keeps evaluation on one thread.
    fn as_sync(&self) -> Option<&(dyn TextClassifier + Sync)> {
        None
    }

    /// The variables (for optimizers and checkpoints).
    fn var_store(&self) -> &nn::VarStore;

    /// Mutable variables (to move devices or change dtype).
    fn var_store_mut(&mut self) -> &mut nn::VarStore;

    /// The encoder configuration.
    fn config(&self) -> &ModelConfig;

    /// The class names; their count is the number of outputs.
    fn labels(&self) -> &LabelMap;

    /// The classification head ([`Head::Cls`] unless the model says otherwise).
    fn head(&self) -> Head {
        Head::Cls
    }

    /// Number of outputs.
    fn num_classes(&self) -> i64 {
        self.labels().len() as i64
    }

    /// Number of parameters.
    fn num_parameters(&self) -> i64 {
        self.var_store().trainable_variables().iter().map(Tensor::numel).sum::<usize>() as i64
    }
}

/// The two classifiers differ only in their encoder field.
macro_rules! impl_text_classifier {
    ($ty:ident, $encoder:ident) => {
        impl TextClassifier for $ty {
            fn forward_t(&self, ids: &Tensor, mask: &Tensor, types: Option<&Tensor>, train: bool) -> Tensor {
                self.head.forward(&self.$encoder.forward(ids, mask, types, train), train)
            }
            fn as_sync(&self) -> Option<&(dyn TextClassifier + Sync)> {
                Some(self)
            }
            fn var_store(&self) -> &nn::VarStore {
                &self.vs
            }
            fn var_store_mut(&mut self) -> &mut nn::VarStore {
                &mut self.vs
            }
            fn config(&self) -> &ModelConfig {
                &self.config
            }
            fn labels(&self) -> &LabelMap {
                &self.labels
            }
            fn head(&self) -> Head {
                self.head.kind()
            }
        }
    };
}

/// The notebook's `BERTClass`: any BERT-architecture encoder (bert-base,
/// TinyBERT, MiniLM) under `bert.*`, plus the head under `classifier.*`.
#[derive(Debug)]
pub struct BertClassifier {
    vs: nn::VarStore,
    bert: BertModel,
    head: ClassifierHead,
    config: ModelConfig,
    labels: LabelMap,
}

impl BertClassifier {
    /// A classifier with the seed's head and freshly initialised weights (on the CPU; load, then move).
    pub fn new(cfg: &BertConfig, labels: LabelMap) -> Self {
        Self::with_head(cfg, labels, Head::Cls)
    }

    /// A classifier with `head` and freshly initialised weights (on the CPU).
    ///
    /// ```
    /// use encoder_bench::models::{BertClassifier, BertConfig, Head, TextClassifier};
    /// let cfg: BertConfig = serde_json::from_str(r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1,
    ///     "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}"#).unwrap();
    /// let model = BertClassifier::with_head(&cfg, encoder_bench::data::LabelMap::numbered(3), Head::Transformers);
    /// assert!(model.var_store().variables().contains_key("bert.pooler.dense.weight"));
    /// assert_eq!(model.head(), Head::Transformers);
    /// ```
    pub fn with_head(cfg: &BertConfig, labels: LabelMap, head: Head) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let bert = BertModel::new(&(vs.root() / "bert"), cfg, false);
        let head = ClassifierHead::new(&vs.root(), head, "bert", cfg.hidden_size, labels.len() as i64, cfg.hidden_dropout_prob);
        BertClassifier { vs, bert, head, config: ModelConfig::Bert(cfg.clone()), labels }
    }
}

impl_text_classifier!(BertClassifier, bert);

// SAFETY: tch marks every `Tensor` `!Sync` because a tensor can be changed in
// place through a shallow clone. Through `&BertClassifier` nothing is: the
// forward pass only reads the weights (libtorch supports concurrent reads of
// a tensor; its reference counts are atomic), and the precision and
// weight-cast cache it consults are thread-local.
unsafe impl Sync for BertClassifier {}

/// The notebook's `ELECTRAClass`: an ELECTRA encoder under `electra.*` plus
/// the head under `classifier.*`.
#[derive(Debug)]
pub struct ElectraClassifier {
    vs: nn::VarStore,
    electra: ElectraModel,
    head: ClassifierHead,
    config: ModelConfig,
    labels: LabelMap,
}

impl ElectraClassifier {
    /// A classifier with the seed's head and freshly initialised weights (on the CPU).
    pub fn new(cfg: &ElectraConfig, labels: LabelMap) -> Self {
        Self::with_head(cfg, labels, Head::Cls)
    }

    /// A classifier with `head` (transformers': `classifier.dense` →
    /// gelu → `classifier.out_proj`) and freshly initialised weights (on the CPU).
    ///
    /// ```
    /// use encoder_bench::models::{ElectraClassifier, ElectraConfig, Head, TextClassifier};
    /// let cfg: ElectraConfig = serde_json::from_str(r#"{"vocab_size": 50, "embedding_size": 4, "hidden_size": 8,
    ///     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}"#).unwrap();
    /// let model = ElectraClassifier::with_head(&cfg, encoder_bench::data::LabelMap::numbered(3), Head::Transformers);
    /// assert!(model.var_store().variables().contains_key("classifier.out_proj.weight"));
    /// ```
    pub fn with_head(cfg: &ElectraConfig, labels: LabelMap, head: Head) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let electra = ElectraModel::new(&(vs.root() / "electra"), cfg);
        let head = ClassifierHead::new(&vs.root(), head, "electra", cfg.hidden_size, labels.len() as i64, cfg.hidden_dropout_prob);
        ElectraClassifier { vs, electra, head, config: ModelConfig::Electra(cfg.clone()), labels }
    }
}

impl_text_classifier!(ElectraClassifier, electra);

// SAFETY: as for `BertClassifier`: `&self` methods only read the weights.
unsafe impl Sync for ElectraClassifier {}

fn build(config: &ModelConfig, labels: LabelMap, head: Head) -> Box<dyn TextClassifier> {
    match config {
        ModelConfig::Bert(c) => Box::new(BertClassifier::with_head(c, labels, head)),
        ModelConfig::Electra(c) => Box::new(ElectraClassifier::with_head(c, labels, head)),
    }
}

/// Re-initialises every variable as `transformers` does for a new model:
/// N(0, 0.02) weights, zero biases, unit LayerNorm scales, zero padding row.
pub fn init_like_transformers(vs: &nn::VarStore, pad_token_id: Option<i64>) {
    // Sorted: the var store is a HashMap, and drawing in its order would give
    // different weights for the same seed from one process to the next.
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    init_vars_like_transformers(vars, pad_token_id)
}

/// [`init_like_transformers`] drawing in the order given: a model that
/// draws its encoder first gets the same encoder, for the same seed, as any
/// other model with that encoder (ELECTRA's discriminator and its masked-LM
/// twin).
pub fn init_vars_like_transformers(vars: Vec<(String, Tensor)>, pad_token_id: Option<i64>) {
    tch::no_grad(|| {
        for (name, mut v) in vars {
            if name.ends_with("LayerNorm.weight") {
                let _ = v.fill_(1.0);
            } else if name.ends_with(".bias") {
                let _ = v.zero_();
            } else {
                let _ = v.normal_(0.0, 0.02);
                if let Some(pad) = pad_token_id.filter(|_| name.ends_with("word_embeddings.weight")) {
                    let _ = v.get(pad).zero_();
                }
            }
        }
    });
}

/// A classifier with random weights initialised as `transformers` does, for
/// "no pre-training" baselines. Seeded through [`crate::device::seeded`].
pub fn random_classifier(config: &ModelConfig, labels: LabelMap, device: Device, seed: i64) -> Box<dyn TextClassifier> {
    random_classifier_with_head(config, labels, Head::Cls, device, seed)
}

/// [`random_classifier`] with a chosen [`Head`].
///
/// ```
/// use encoder_bench::models::{Head, ModelConfig, random_classifier_with_head};
/// let cfg = ModelConfig::from_file("tests/fixtures/tiny-bert.json")?;
/// let labels = encoder_bench::data::LabelMap::numbered(2);
/// let model = random_classifier_with_head(&cfg, labels, Head::Transformers, tch::Device::Cpu, 0);
/// assert_eq!(model.head(), Head::Transformers);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn random_classifier_with_head(
    config: &ModelConfig,
    labels: LabelMap,
    head: Head,
    device: Device,
    seed: i64,
) -> Box<dyn TextClassifier> {
    let mut model = crate::device::seeded(seed, || {
        let model = build(config, labels, head);
        init_like_transformers(model.var_store(), config.pad_token_id());
        model
    });
    crate::device::move_var_store(model.var_store_mut(), device).expect("a new model's fp32 variables pass every device rule");
    model
}

const IGNORED_KEYS: &[&str] = &[
    "position_ids",           // buffers, recomputed
    "token_type_ids",         // HF's registered zero buffer
    "generator_predictions.", // ElectraForMaskedLM's MLM head
    "generator_lm_head.",
    "discriminator_predictions.", // ElectraForPreTraining's head
    "cls.",                       // BertForPreTraining / BertForMaskedLM heads
    "pooler.",                    // the seed's head classifies from [CLS], not the pooler
    "fit_denses.",                // TinyBERT's distillation projections
];

/// Loads a classifier from `source`: the encoder's weights from the file
/// (any of `bert.`/`electra.`/no prefix), the head from the file when it has
/// one (a saved fine-tuned model), otherwise newly initialised.
///
/// `labels` gives the classes; `None` takes them from the config's
/// `id2label` (written by [`save_classifier`]). Weights are read on the CPU
/// and then moved to `device`.
///
/// The head is the one the checkpoint's config records (see [`Head::recorded`]),
/// else the seed's; [`load_classifier_with_head`] chooses it.
///
/// ```no_run
/// use encoder_bench::data::LabelMap;
/// use encoder_bench::models::{ModelSource, load_classifier};
/// let (model, report) = load_classifier(&ModelSource::parse("models/minilm"), Some(LabelMap::wos_level1()), tch::Device::Cpu, 0)?;
/// println!("{report}");
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn load_classifier(
    source: &ModelSource,
    labels: Option<LabelMap>,
    device: Device,
    seed: i64,
) -> Result<(Box<dyn TextClassifier>, LoadReport)> {
    load(source, None, labels, None, device, seed)
}

/// [`load_classifier`] with the family given by the caller (`None`: from the
/// config's `model_type` / `architectures`, else from the weights' key
/// names). Single and sharded weights load alike, shard by shard; the report
/// says how the family was decided and which config fields were ignored.
///
/// ```no_run
/// use encoder_bench::data::LabelMap;
/// use encoder_bench::models::{ModelSource, load_classifier_as};
/// use encoder_bench::weights::ModelFamily;
/// let src = ModelSource::parse("TinyBERT_General_4L_312D");
/// let (_model, report) = load_classifier_as(&src, Some(ModelFamily::Bert), Some(LabelMap::wos_level1()), tch::Device::Cpu, 0)?;
/// assert_eq!(report.family_from, "caller");
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn load_classifier_as(
    source: &ModelSource,
    family: Option<ModelFamily>,
    labels: Option<LabelMap>,
    device: Device,
    seed: i64,
) -> Result<(Box<dyn TextClassifier>, LoadReport)> {
    load(source, family, labels, None, device, seed)
}

/// [`load_classifier`] with the head chosen: `Some(head)` builds
/// `head` (an error when the checkpoint records another one), `None` the
/// recorded one or the seed's. With [`Head::Transformers`] a pretrained
/// BERT's pooler (`pooler.dense.*`) is loaded when the file has it.
///
/// ```no_run
/// use encoder_bench::models::{Head, ModelSource, load_classifier_with_head};
/// let labels = Some(encoder_bench::data::LabelMap::wos_level1());
/// let (model, report) = load_classifier_with_head(&ModelSource::parse("models/minilm"), labels, Some(Head::Transformers), tch::Device::Cpu, 0)?;
/// assert!(!report.missing.iter().any(|k| k.starts_with("bert.pooler")));
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn load_classifier_with_head(
    source: &ModelSource,
    labels: Option<LabelMap>,
    head: Option<Head>,
    device: Device,
    seed: i64,
) -> Result<(Box<dyn TextClassifier>, LoadReport)> {
    load(source, None, labels, head, device, seed)
}

fn load(
    source: &ModelSource,
    family: Option<ModelFamily>,
    labels: Option<LabelMap>,
    head: Option<Head>,
    device: Device,
    seed: i64,
) -> Result<(Box<dyn TextClassifier>, LoadReport)> {
    let files = source.resolve()?;
    let weights = WeightSet::open(&files.weights)?;
    let (read, recorded) = super::heads::read_config(&files.config, family, &weights.keys())?;
    let config = read.config;
    let head = match (head, recorded) {
        (Some(h), Some(r)) if h != r => {
            return Err(Error::config(
                &files.config,
                super::heads::HEAD_KEY,
                format!("the checkpoint has the `{r}` head; `{h}` was asked for"),
            ));
        }
        (h, r) => h.or(r).unwrap_or_default(),
    };
    let labels = match labels {
        Some(l) => l,
        None => read_labels(&files.config)?,
    };
    if labels.is_empty() {
        return Err(Error::invalid("labels", "a classifier needs at least one class"));
    }
    crate::data::text::check_class_count(labels.len(), "a classifier's labels").map_err(|msg| Error::invalid("labels", msg))?;
    tch::manual_seed(seed);
    let mut model = build(&config, labels, head);
    let family = config.family();
    let map = KeyMap {
        encoder_prefix: family,
        strip_prefixes: &["bert.", "electra."],
        ignore: IGNORED_KEYS,
        may_be_missing: &["classifier.", "bert.pooler."],
    };
    let mut report = load_set_into(model.var_store(), weights, &map)?;
    report.family = family.to_string();
    report.family_from = read.family_from.to_string();
    report.config_ignored = read.ignored_fields;
    crate::device::move_var_store(model.var_store_mut(), device)?;
    Ok((model, report))
}

fn read_labels(config: &Path) -> Result<LabelMap> {
    let v: serde_json::Value = read_json(config)?;
    let id2label = v
        .get("id2label")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::config(config, "id2label", "missing: pass the labels explicitly for a model without a classifier"))?;
    crate::data::text::check_class_count(id2label.len(), "id2label").map_err(|msg| Error::config(config, "id2label", msg))?;
    let mut names = vec![String::new(); id2label.len()];
    for (k, name) in id2label {
        let i: usize = k
            .parse()
            .ok()
            .filter(|&i| i < names.len())
            .ok_or_else(|| Error::config(config, "id2label", format!("key `{k}` is not an id in 0..{}", names.len())))?;
        names[i] = name.as_str().unwrap_or_default().to_string();
    }
    Ok(LabelMap::new(names))
}

/// Saves a classifier to `dir` as `model.safetensors` + `config.json` (with
/// `id2label`/`label2id` and the head, see [`super::heads`]) and, if given,
/// `tokenizer.json`; each file is written atomically, so an interrupted save
/// never leaves a torn file. A classifier with the seed's head also gets
/// `modeling_encoder_bench.py`, which transformers runs under
/// `trust_remote_code=True`.
pub fn save_classifier(model: &dyn TextClassifier, dir: impl AsRef<Path>, tokenizer: Option<&TextTokenizer>) -> Result<()> {
    let mut cfg = serde_json::to_value(model.config()).map_err(|e| Error::invalid("config", e.to_string()))?;
    let names = model.labels().names();
    super::heads::mark_config(&mut cfg, model.head(), model.config().family());
    cfg["num_labels"] = serde_json::json!(names.len());
    cfg["id2label"] =
        names.iter().enumerate().map(|(i, n)| (i.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>().into();
    cfg["label2id"] = names.iter().enumerate().map(|(i, n)| (n.clone(), serde_json::json!(i))).collect::<serde_json::Map<_, _>>().into();
    crate::weights::save_pretrained(model.var_store(), &cfg, tokenizer, dir.as_ref())?;
    let modeling = dir.as_ref().join(super::heads::MODELING_FILE);
    if model.head() == Head::Cls {
        crate::error::write_atomic(&modeling, super::heads::MODELING_SOURCE.as_bytes())
    } else if modeling.exists() {
        std::fs::remove_file(&modeling).map_err(|e| Error::io(&modeling, e))
    } else {
        Ok(())
    }
}
