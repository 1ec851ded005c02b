//! Estimated floating-point operations, so pre-training and fine-tuning
//! compute can be compared in the same unit.
//!
//! The estimate counts the matrix multiplications, which dominate a
//! transformer's work: a `[m, k] × [k, n]` product is `2·m·k·n` FLOPs (one
//! multiply, one add). Per token of a sequence of length `L` (padding
//! included, since it is computed), with hidden size `H`, intermediate size
//! `I` and, for ELECTRA, embedding size `E`:
//!
//! - embedding projection (ELECTRA with `E ≠ H`): `2·E·H`;
//! - each layer: `2·4·H²` (query, key, value, output) + `2·2·H·I` (feed-forward)
//!   + `2·2·L·H` (attention scores `QKᵀ` and the weighted sum of values);
//! - the MLM head, per *predicted* position: `2·H·E + 2·E·V` (vocabulary `V`);
//! - a classifier head, per example: `2·H·C` for `C` classes.
//!
//! Embedding lookups, LayerNorm, softmax, activations and the optimizer are
//! left out (a few percent for these sizes). A training step costs
//! [`TRAIN_FACTOR`] = 3 forward passes: the backward pass computes gradients
//! for both the inputs and the weights of every product, twice the forward
//! work. Without the attention term this is the familiar `6 × parameters ×
//! tokens` (Kaplan et al., 2020), with "parameters" those inside matmuls.
use crate::data::{Encoded, Padding};
use crate::models::{ElectraConfig, ModelConfig};

/// Training FLOPs per forward FLOP (forward + backward ≈ 1 + 2).
pub const TRAIN_FACTOR: f64 = 3.0;

/// Forward FLOPs of the encoder for `batch` sequences padded to `seq_len`.
///
/// ```
/// use encoder_bench::models::{BertConfig, ModelConfig};
/// use encoder_bench::train::flops::encoder_forward_flops;
/// let cfg: BertConfig = serde_json::from_str(r#"{"hidden_size": 4, "num_hidden_layers": 1,
///     "num_attention_heads": 1, "intermediate_size": 8}"#).unwrap();
/// // per token: 8·16 + 4·4·8 + 4·L·4 with L = 2 → 128 + 128 + 32 = 288
/// assert_eq!(encoder_forward_flops(&ModelConfig::Bert(cfg), 1, 2), 2.0 * 288.0);
/// ```
pub fn encoder_forward_flops(cfg: &ModelConfig, batch: usize, seq_len: usize) -> f64 {
    match cfg {
        ModelConfig::Bert(c) => transformer_flops((c.hidden_size, c.intermediate_size, c.num_hidden_layers, 0.0), batch, seq_len),
        ModelConfig::Electra(c) => electra_forward_flops(c, batch, seq_len),
    }
}

/// [`encoder_forward_flops`] of an ELECTRA, from its config alone (no
/// [`ModelConfig`] to build in a pre-training step).
pub fn electra_forward_flops(c: &ElectraConfig, batch: usize, seq_len: usize) -> f64 {
    let project = if c.embedding_size != c.hidden_size { 2.0 * (c.embedding_size * c.hidden_size) as f64 } else { 0.0 };
    transformer_flops((c.hidden_size, c.intermediate_size, c.num_hidden_layers, project), batch, seq_len)
}

/// Hidden width, feed-forward width, layers and the embedding projection's FLOPs per token.
fn transformer_flops((h, i, layers, project): (i64, i64, i64, f64), batch: usize, seq_len: usize) -> f64 {
    let (h, i, l) = (h as f64, i as f64, seq_len as f64);
    let per_layer = 8.0 * h * h + 4.0 * h * i + 4.0 * l * h;
    (batch * seq_len) as f64 * (project + layers as f64 * per_layer)
}

/// Forward FLOPs of the ELECTRA MLM head on `predicted` positions.
pub fn mlm_head_forward_flops(cfg: &ElectraConfig, predicted: usize) -> f64 {
    let (h, e, v) = (cfg.hidden_size as f64, cfg.embedding_size as f64, cfg.vocab_size as f64);
    predicted as f64 * (2.0 * h * e + 2.0 * e * v)
}

/// Estimated training FLOPs of fine-tuning a classifier with `classes`
/// outputs on `data` for `epochs` epochs with `batch_size` (forward and
/// backward, [`TRAIN_FACTOR`]). Exact for [`Padding::MaxLen`]; for
/// [`Padding::Dynamic`] and [`Padding::Bucketed`] batch widths are taken from
/// the unshuffled order, a close approximation of the shuffled batches `fit`
/// runs.
///
/// ```
/// use encoder_bench::data::{Encoded, Padding};
/// use encoder_bench::models::{BertConfig, ModelConfig};
/// use encoder_bench::train::flops::{TRAIN_FACTOR, encoder_forward_flops, fine_tuning_flops};
/// let cfg = ModelConfig::Bert(serde_json::from_str(r#"{"hidden_size": 4, "num_hidden_layers": 1,
///     "num_attention_heads": 1, "intermediate_size": 8}"#).unwrap());
/// let data = Encoded { ids: vec![vec![1, 2, 3]; 4], type_ids: vec![vec![0; 3]; 4], targets: vec![0; 4], pad_id: 0, max_len: 8 };
/// let f = fine_tuning_flops(&cfg, &data, 2, Padding::MaxLen, 1, 3);
/// assert_eq!(f, TRAIN_FACTOR * (2.0 * encoder_forward_flops(&cfg, 2, 8) + 4.0 * 2.0 * 4.0 * 3.0));
/// ```
pub fn fine_tuning_flops(cfg: &ModelConfig, data: &Encoded, batch_size: usize, padding: Padding, epochs: usize, classes: usize) -> f64 {
    let batch_size = batch_size.max(1);
    let mut per_epoch = 0.0;
    let order = data.batch_order(batch_size, padding, None);
    for rows in order.chunks(batch_size) {
        let width = data.width(rows, padding);
        per_epoch += encoder_forward_flops(cfg, rows.len(), width) + rows.len() as f64 * 2.0 * (cfg.hidden_size() as f64) * classes as f64;
    }
    TRAIN_FACTOR * per_epoch * epochs as f64
}
