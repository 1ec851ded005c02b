//! The fine-tuning loss, shared by the training step and evaluation.
use tch::{Kind, Tensor};

/// Cross-entropy on logits with label smoothing: one softmax, inside the loss
/// (the seed's model applied a second one before `CrossEntropyLoss`).
///
/// ```
/// let logits = tch::Tensor::from_slice(&[10.0f32, 0.0, 0.0]).view([1, 3]);
/// let loss = encoder_bench::train::loss_fn(&logits, &tch::Tensor::from_slice(&[0i64]), 0.0);
/// assert!(loss.double_value(&[]) < 1e-3);
/// ```
pub fn loss_fn(logits: &Tensor, targets: &Tensor, label_smoothing: f64) -> Tensor {
    logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(targets, None, tch::Reduction::Mean, -100, label_smoothing)
}
