//! ELECTRA: BERT's encoder behind embeddings of `embedding_size`, projected up
//! to the hidden size by `embeddings_project` when the two differ.
use super::bert::{Embeddings, Encoder};
use super::config::ElectraConfig;
use tch::Tensor;
use tch::nn;

/// `transformers.ElectraModel` (the discriminator/generator body).
///
/// ```
/// use encoder_bench::models::{ElectraConfig, ElectraModel};
/// let cfg: ElectraConfig = serde_json::from_str(r#"{"vocab_size": 50, "embedding_size": 4, "hidden_size": 8,
///     "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}"#).unwrap();
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let model = ElectraModel::new(&vs.root(), &cfg);
/// let ids = tch::Tensor::from_slice(&[2i64, 5, 7]).view([1, 3]);
/// assert_eq!(model.forward(&ids, &ids.ones_like(), None, false).size(), vec![1, 3, 8]);
/// ```
#[derive(Debug)]
pub struct ElectraModel {
    /// The embedding tables (public so the MLM head can tie to them).
    pub embeddings: Embeddings,
    embeddings_project: Option<nn::Linear>,
    encoder: Encoder,
}

impl ElectraModel {
    /// Creates the model under `p` (use `vs.root() / "electra"` as HF does).
    pub fn new(p: &nn::Path, cfg: &ElectraConfig) -> Self {
        let embeddings = Embeddings::new(
            &(p / "embeddings"),
            cfg.vocab_size,
            cfg.max_position_embeddings,
            cfg.type_vocab_size,
            cfg.embedding_size,
            cfg.layer_norm_eps,
            cfg.hidden_dropout_prob,
        );
        Self::with_embeddings(p, cfg, embeddings)
    }

    /// Creates the model under `p` on given embedding tables (ELECTRA's
    /// generator reads the discriminator's, [`Embeddings::share`]); only the
    /// projection and the encoder are new variables. `cfg.embedding_size`
    /// must be the tables' width.
    pub fn with_embeddings(p: &nn::Path, cfg: &ElectraConfig, embeddings: Embeddings) -> Self {
        ElectraModel {
            embeddings,
            embeddings_project: (cfg.embedding_size != cfg.hidden_size)
                .then(|| nn::linear(p / "embeddings_project", cfg.embedding_size, cfg.hidden_size, Default::default())),
            encoder: Encoder::new(&(p / "encoder"), &cfg.dims()),
        }
    }

    /// Last hidden states `[batch, seq, hidden]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: Option<&Tensor>, train: bool) -> Tensor {
        let mut xs = self.embeddings.forward(input_ids, token_type_ids, train);
        if let Some(project) = &self.embeddings_project {
            xs = super::precision::linear(project, &xs);
        }
        self.encoder.forward(&xs, attention_mask, train)
    }
}
