//! Whether encoded data fits a model: checked before any tensor is built, so
//! a mismatch is an error naming the set, the text and the limit instead of a
//! libtorch failure deep inside a forward pass. It lives with the models (not
//! with the data) because it reads the model's configuration.
use super::{ModelConfig, TextClassifier};
use crate::data::Encoded;
use crate::error::{Error, Result};

/// Checks that `data` fits `model` before any tensor is built, so a
/// mismatch is an error naming the set (`what`), the text and the limit
/// instead of a libtorch failure deep inside a forward pass: label ids
/// must be below the model's number of classes, sequences no longer than
/// its `max_position_embeddings`, token ids inside its vocabulary.
///
/// ```no_run
/// use encoder_bench::models::{ModelSource, check_encoded, load_classifier};
/// let (model, _) = load_classifier(&ModelSource::parse("models/minilm"), None, tch::Device::Cpu, 0)?;
/// # let data: encoder_bench::data::Encoded = todo!();
/// check_encoded(&data, model.as_ref(), "test data")?;
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn check_encoded(data: &Encoded, model: &dyn TextClassifier, what: &str) -> Result<()> {
    let (vocab, max_pos, type_vocab) = match model.config() {
        ModelConfig::Bert(c) => (c.vocab_size, c.max_position_embeddings, c.type_vocab_size),
        ModelConfig::Electra(c) => (c.vocab_size, c.max_position_embeddings, c.type_vocab_size),
    };
    let classes = model.num_classes();
    let bad = |msg: String| Err(Error::invalid(what, msg));
    if data.ids.len() != data.targets.len() || data.ids.len() != data.type_ids.len() {
        return bad(format!(
            "{} id sequences, {} type-id sequences and {} targets: expected one of each per text",
            data.ids.len(),
            data.type_ids.len(),
            data.targets.len()
        ));
    }
    if let Some((i, &t)) = data.targets.iter().enumerate().find(|&(_, &t)| t < 0 || t >= classes) {
        return bad(format!(
            "text {}: label id {t} is out of range for a model with {classes} classes (expected 0..{classes}); \
             were the model's labels taken from other data?",
            i + 1
        ));
    }
    if data.max_len as i64 > max_pos {
        return bad(format!("max_len {} exceeds the model's max_position_embeddings {max_pos}", data.max_len));
    }
    for (i, (ids, types)) in data.ids.iter().zip(&data.type_ids).enumerate() {
        if ids.len() as i64 > max_pos || ids.len() > data.max_len || ids.len() != types.len() {
            return bad(format!(
                "text {}: {} tokens ({} type ids) but max_len is {} and max_position_embeddings {max_pos}",
                i + 1,
                ids.len(),
                types.len(),
                data.max_len
            ));
        }
        if let Some(&id) = ids.iter().find(|&&id| id < 0 || id >= vocab) {
            return bad(format!(
                "text {}: token id {id} is outside the model's vocabulary of {vocab} (does the tokenizer belong to this model?)",
                i + 1
            ));
        }
        if let Some(&t) = types.iter().find(|&&t| t < 0 || t >= type_vocab) {
            return bad(format!("text {}: token type id {t} is outside the model's type_vocab_size {type_vocab}", i + 1));
        }
    }
    if data.pad_id < 0 || data.pad_id >= vocab {
        return bad(format!("pad id {} is outside the model's vocabulary of {vocab}", data.pad_id));
    }
    Ok(())
}
