//! BERT: embeddings, the transformer encoder stack and the optional pooler.
//!
//! One small struct per Hugging Face submodule, created under the same
//! variable paths as HF's `state_dict` keys (`embeddings.word_embeddings.weight`,
//! `encoder.layer.3.attention.self.query.bias`, ...) so real checkpoints load
//! without renaming. ELECTRA reuses [`Encoder`] unchanged.
use super::config::{BertConfig, EncoderDims};
use super::dropout::{attention, dropout};
use super::precision::{fused_linear, layer_norm, linear};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Multi-head self-attention (libtorch's fused SDPA kernel outside training,
/// see [`attention`]).
#[derive(Debug)]
struct SelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    heads: i64,
    dropout: f64,
}

impl SelfAttention {
    fn new(p: &nn::Path, d: &EncoderDims) -> Self {
        let h = d.hidden_size;
        let lin = |name| nn::linear(p / name, h, h, Default::default());
        SelfAttention {
            query: lin("query"),
            key: lin("key"),
            value: lin("value"),
            heads: d.num_attention_heads,
            dropout: d.attention_probs_dropout_prob,
        }
    }

    /// `mask`: bool `[batch, 1, 1, seq]`, true where a token may be attended to
    /// (`None`: every token may).
    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>, train: bool) -> Tensor {
        let (b, l, h) = xs.size3().expect("hidden states are [batch, seq, hidden]");
        // One product for all three projections; q, k and v are strided views
        // of it, which SDPA reads in place.
        let qkv =
            fused_linear(&[&self.query, &self.key, &self.value], xs).view([b, l, 3, self.heads, h / self.heads]).permute([2, 0, 3, 1, 4]);
        // `unbind`, not three `select`s: its backward stacks the three
        // gradients in one copy, where each select's backward would fill a
        // full-size zero tensor and the three would then be summed.
        let [q, k, v]: [Tensor; 3] = qkv.unbind(0).try_into().expect("q, k and v");
        let ctx = attention(&q, &k, &v, mask, self.dropout, train);
        ctx.transpose(1, 2).reshape([b, l, h])
    }
}

/// dense → dropout → LayerNorm(x + residual): HF's `*Output` / `SelfOutput`.
#[derive(Debug)]
struct ResidualOutput {
    dense: nn::Linear,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl ResidualOutput {
    fn new(p: &nn::Path, d_in: i64, d: &EncoderDims) -> Self {
        let ln = nn::LayerNormConfig { eps: d.layer_norm_eps, ..Default::default() };
        ResidualOutput {
            dense: nn::linear(p / "dense", d_in, d.hidden_size, Default::default()),
            layer_norm: nn::layer_norm(p / "LayerNorm", vec![d.hidden_size], ln),
            dropout: d.hidden_dropout_prob,
        }
    }

    fn forward(&self, xs: &Tensor, residual: &Tensor, train: bool) -> Tensor {
        let ys = dropout(&linear(&self.dense, xs), self.dropout, train);
        layer_norm(&self.layer_norm, &(ys + residual))
    }
}

/// One transformer block (`encoder.layer.N`).
#[derive(Debug)]
struct Layer {
    attention: SelfAttention,
    attention_output: ResidualOutput,
    intermediate: nn::Linear,
    output: ResidualOutput,
    act: super::config::Activation,
}

impl Layer {
    fn new(p: &nn::Path, d: &EncoderDims) -> Self {
        Layer {
            attention: SelfAttention::new(&(p / "attention" / "self"), d),
            attention_output: ResidualOutput::new(&(p / "attention" / "output"), d.hidden_size, d),
            intermediate: nn::linear(p / "intermediate" / "dense", d.hidden_size, d.intermediate_size, Default::default()),
            output: ResidualOutput::new(&(p / "output"), d.intermediate_size, d),
            act: d.hidden_act,
        }
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>, train: bool) -> Tensor {
        let attn = self.attention_output.forward(&self.attention.forward(xs, mask, train), xs, train);
        let inter = self.act.apply(&linear(&self.intermediate, &attn));
        self.output.forward(&inter, &attn, train)
    }
}

/// The stack of transformer blocks (`encoder.layer.*`), shared with ELECTRA.
#[derive(Debug)]
pub struct Encoder {
    layers: Vec<Layer>,
}

impl Encoder {
    /// Creates `num_hidden_layers` blocks under `p` (normally `.../encoder`).
    pub fn new(p: &nn::Path, d: &EncoderDims) -> Self {
        Encoder { layers: (0..d.num_hidden_layers).map(|i| Layer::new(&(p / "layer" / i), d)).collect() }
    }

    /// Runs every block; `attention_mask` is `[batch, seq]` with 1 for real tokens.
    pub fn forward(&self, xs: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let (b, l) = attention_mask.size2().expect("attention mask is [batch, seq]");
        let mask = attention_mask.to_kind(Kind::Bool).view([b, 1, 1, l]);
        // A batch without padding needs no mask, and SDPA's kernels are
        // faster without one (as transformers drops an all-ones mask). Only
        // checked on the CPU: on an accelerator the check would be a sync.
        let unpadded = attention_mask.device() == tch::Device::Cpu && bool::try_from(mask.all()).unwrap_or(false);
        let mask = (!unpadded).then_some(mask);
        self.layers.iter().fold(xs.shallow_clone(), |h, layer| layer.forward(&h, mask.as_ref(), train))
    }
}

/// Word + position + token-type embeddings, LayerNorm, dropout
/// (`embeddings.*`); `width` is the hidden size for BERT and
/// `embedding_size` for ELECTRA.
#[derive(Debug)]
pub struct Embeddings {
    /// `word_embeddings` (public so an MLM head can tie its decoder to it).
    pub word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    eps: f64,
    dropout: f64,
}

impl Embeddings {
    /// Creates the embedding tables under `p` (normally `.../embeddings`).
    pub fn new(p: &nn::Path, vocab: i64, max_pos: i64, type_vocab: i64, width: i64, eps: f64, dropout: f64) -> Self {
        let emb = |name, n| nn::embedding(p / name, n, width, Default::default());
        Embeddings {
            word_embeddings: emb("word_embeddings", vocab),
            position_embeddings: emb("position_embeddings", max_pos),
            token_type_embeddings: emb("token_type_embeddings", type_vocab),
            layer_norm: nn::layer_norm(p / "LayerNorm", vec![width], nn::LayerNormConfig { eps, ..Default::default() }),
            eps,
            dropout,
        }
    }

    /// The same tables, shared: every tensor is a handle on this model's own
    /// (a shallow clone), so a second network built on them reads and trains
    /// the very same variables. ELECTRA's generator shares the
    /// discriminator's embeddings this way.
    pub fn share(&self) -> Embeddings {
        // tch's modules keep their configs private: build fresh ones in a
        // scratch store, then point their tensors at ours.
        let scratch = nn::VarStore::new(tch::Device::Cpu);
        let p = scratch.root();
        let size = |t: &Tensor| t.size();
        let (vocab, width) = (size(&self.word_embeddings.ws)[0], size(&self.word_embeddings.ws)[1]);
        let mut shared = Embeddings::new(
            &p,
            vocab,
            size(&self.position_embeddings.ws)[0],
            size(&self.token_type_embeddings.ws)[0],
            width,
            self.eps,
            self.dropout,
        );
        shared.word_embeddings.ws = self.word_embeddings.ws.shallow_clone();
        shared.position_embeddings.ws = self.position_embeddings.ws.shallow_clone();
        shared.token_type_embeddings.ws = self.token_type_embeddings.ws.shallow_clone();
        shared.layer_norm.ws = self.layer_norm.ws.as_ref().map(Tensor::shallow_clone);
        shared.layer_norm.bs = self.layer_norm.bs.as_ref().map(Tensor::shallow_clone);
        shared
    }

    /// The word-embedding lookup. On the CPU its backward emits a sparse
    /// gradient (the batch's rows) that autograd adds in place into a dense
    /// gradient buffer, created here (zeros) before the table's first
    /// backward. The dense backward would build a fresh `[vocab, width]`
    /// tensor every step (47 MB for BERT's vocabulary: freshly mapped pages, a
    /// fill and an extra full-size add), several percent of a MiniLM training
    /// step on a 2-core CPU. Optimizers still see a dense gradient. Creating
    /// the buffer up front, rather than after a first dense step, keeps every
    /// step's arithmetic the same, so a resumed run repeats an uninterrupted
    /// one bit for bit.
    fn words(&self, input_ids: &Tensor) -> Tensor {
        let w = &self.word_embeddings.ws;
        let cpu = w.device() == tch::Device::Cpu;
        let out = Tensor::embedding(w, input_ids, -1, false, cpu);
        // `requires_grad` of the output: grad mode is on and the table trains.
        if cpu && out.requires_grad() && !w.grad().defined() {
            // The zero gradient the first accumulation would start from.
            tch::with_grad(|| (w.sum(Kind::Float) * 0.0).backward());
        }
        out
    }

    /// `[batch, seq]` ids → `[batch, seq, width]`.
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: Option<&Tensor>, train: bool) -> Tensor {
        let l = input_ids.size()[1];
        let positions = Tensor::arange(l, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let types = match token_type_ids {
            Some(t) => self.token_type_embeddings.forward(t),
            None => self.token_type_embeddings.forward(&input_ids.zeros_like()),
        };
        let xs = self.words(input_ids) + types + self.position_embeddings.forward(&positions);
        dropout(&layer_norm(&self.layer_norm, &xs), self.dropout, train)
    }
}

/// `transformers.BertModel`: embeddings, encoder, and optionally the pooler.
///
/// ```
/// use encoder_bench::models::{BertConfig, BertModel};
/// let cfg: BertConfig = serde_json::from_str(r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1,
///     "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}"#).unwrap();
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let model = BertModel::new(&vs.root(), &cfg, false);
/// let ids = tch::Tensor::from_slice(&[2i64, 5, 7]).view([1, 3]);
/// let hidden = model.forward(&ids, &ids.ones_like(), None, false);
/// assert_eq!(hidden.size(), vec![1, 3, 8]);
/// ```
#[derive(Debug)]
pub struct BertModel {
    embeddings: Embeddings,
    encoder: Encoder,
    pooler: Option<nn::Linear>,
}

impl BertModel {
    /// Creates the model under `p` (use `vs.root() / "bert"` inside a classifier).
    pub fn new(p: &nn::Path, cfg: &BertConfig, with_pooler: bool) -> Self {
        let d = cfg.dims();
        BertModel {
            embeddings: Embeddings::new(
                &(p / "embeddings"),
                cfg.vocab_size,
                cfg.max_position_embeddings,
                cfg.type_vocab_size,
                cfg.hidden_size,
                cfg.layer_norm_eps,
                cfg.hidden_dropout_prob,
            ),
            encoder: Encoder::new(&(p / "encoder"), &d),
            pooler: with_pooler.then(|| nn::linear(p / "pooler" / "dense", cfg.hidden_size, cfg.hidden_size, Default::default())),
        }
    }

    /// Last hidden states `[batch, seq, hidden]`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: Option<&Tensor>, train: bool) -> Tensor {
        let xs = self.embeddings.forward(input_ids, token_type_ids, train);
        self.encoder.forward(&xs, attention_mask, train)
    }

    /// HF's pooled output: tanh(dense(hidden of `[CLS]`)); `None` without a pooler.
    pub fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        self.pooler.as_ref().map(|p| linear(p, &hidden.select(1, 0)).tanh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sparse backward of the word table lands in a dense gradient with
    /// the values of libtorch's dense backward (repeated ids summed), and an
    /// evaluation forward allocates no gradient at all.
    #[test]
    fn word_gradient_is_dense_and_equals_the_dense_backward() {
        let _rng = crate::rng_lock();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let emb = Embeddings::new(&(vs.root() / "embeddings"), 30, 8, 2, 6, 1e-12, 0.1);
        let ids = Tensor::from_slice(&[2i64, 5, 5, 7, 5, 9, 2, 0]).view([2, 4]);
        let _ = tch::no_grad(|| emb.forward(&ids, None, false));
        assert!(!emb.word_embeddings.ws.grad().defined(), "evaluation created a gradient buffer");

        let weights = Tensor::randn([2, 4, 6], (Kind::Float, tch::Device::Cpu));
        (emb.forward(&ids, None, false) * &weights).sum(Kind::Float).backward();
        let g = emb.word_embeddings.ws.grad();
        assert!(g.defined() && !g.is_sparse() && g.size() == [30, 6]);

        // The same function of a copy of the table, through the dense backward.
        let w = emb.word_embeddings.ws.detach().copy().set_requires_grad(true);
        let positions = Tensor::arange(4, (Kind::Int64, tch::Device::Cpu)).unsqueeze(0);
        let xs = Tensor::embedding(&w, &ids, -1, false, false)
            + emb.token_type_embeddings.forward(&ids.zeros_like()).detach()
            + emb.position_embeddings.forward(&positions).detach();
        let ln = &emb.layer_norm;
        let ys = xs.layer_norm([6], ln.ws.as_ref().map(|t| t.detach()), ln.bs.as_ref().map(|t| t.detach()), 1e-12, false);
        (ys * &weights).sum(Kind::Float).backward();
        let diff = (&g - w.grad()).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "sparse and dense backward differ by {diff}");
        assert!(w.grad().get(5).abs().sum(Kind::Float).double_value(&[]) > 0.0, "the repeated id got no gradient");
        assert_eq!(g.get(1).abs().sum(Kind::Float).double_value(&[]), 0.0, "an unused id got a gradient");
    }
}
