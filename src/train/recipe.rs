//! Fine-tuning recipes per model family and size, chosen from the model's
//! config: a small ELECTRA trained from few pre-training steps does not learn
//! with the rate tuned for a pre-trained BERT, and the ELECTRA paper tunes
//! its own (Clark et al. 2020, appendix: learning rate 3e-4 / 1e-4 / 5e-5 for
//! small / base / large, layer-wise decay 0.8 / 0.8 / 0.9, 10% warmup, no
//! weight decay, Adam epsilon 1e-6). BERT-family models get transformers'
//! recipe (AdamW 5e-5, weight decay 0.01, 10% warmup, linear decay).
use super::config::{OptimizerConfig, Schedule};
use crate::models::ModelConfig;
use serde::{Deserialize, Serialize};

/// A named optimizer setting for fine-tuning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Where the numbers come from ("ELECTRA paper, small", ...).
    pub name: String,
    /// The optimizer, schedule, clipping and layer-wise decay.
    pub optimizer: OptimizerConfig,
}

impl Recipe {
    /// The recipe for a model of `config`: ELECTRA by its hidden size (up
    /// to 256: small, up to 768: base, above: large), every BERT-family
    /// model transformers' recipe. Clipping at 1.0 throughout.
    ///
    /// ```
    /// use encoder_bench::models::{ElectraConfig, ModelConfig};
    /// use encoder_bench::train::recipe::Recipe;
    /// let r = Recipe::for_config(&ModelConfig::Electra(ElectraConfig::seed_shape()));
    /// assert_eq!((r.optimizer.learning_rate, r.optimizer.layer_decay), (3e-4, Some(0.8)));
    /// assert!(r.name.contains("small"));
    /// ```
    pub fn for_config(config: &ModelConfig) -> Recipe {
        match config {
            ModelConfig::Electra(c) => {
                let (size, lr, decay) = match c.hidden_size {
                    ..=256 => ("small", 3e-4, 0.8),
                    257..=768 => ("base", 1e-4, 0.8),
                    _ => ("large", 5e-5, 0.9),
                };
                Recipe {
                    name: format!("ELECTRA paper, {size}"),
                    optimizer: OptimizerConfig {
                        learning_rate: lr,
                        layer_decay: Some(decay),
                        weight_decay: 0.0,
                        eps: 1e-6,
                        max_grad_norm: Some(1.0),
                        ..OptimizerConfig::transformers()
                    },
                }
            }
            ModelConfig::Bert(_) => Recipe::transformers(),
        }
    }

    /// transformers' `Trainer` recipe with clipping at 1.0.
    pub fn transformers() -> Recipe {
        Recipe { name: "transformers".into(), optimizer: OptimizerConfig { max_grad_norm: Some(1.0), ..OptimizerConfig::transformers() } }
    }

    /// One line for a table: rate, decay, warmup, weight decay, clipping.
    ///
    /// ```
    /// let r = encoder_bench::train::recipe::Recipe::transformers();
    /// assert_eq!(r.describe(), "AdamW, lr 5e-5, linear after 10% warmup, weight decay 0.01, clip 1");
    /// ```
    pub fn describe(&self) -> String {
        describe_optimizer(&self.optimizer)
    }
}

/// An optimizer setting in words, as [`Recipe::describe`] prints it.
pub fn describe_optimizer(o: &OptimizerConfig) -> String {
    let mut parts = vec![format!("{:?}", o.kind), format!("lr {:e}", o.learning_rate)];
    if let Some(d) = o.layer_decay {
        parts.push(format!("layer-wise decay {d}"));
    }
    parts.push(match o.schedule {
        Schedule::Linear => format!("linear after {:.0}% warmup", o.warmup_ratio * 100.0),
        Schedule::Constant if o.warmup_ratio > 0.0 => format!("constant after {:.0}% warmup", o.warmup_ratio * 100.0),
        Schedule::Constant => "constant".into(),
    });
    if o.weight_decay > 0.0 {
        parts.push(format!("weight decay {}", o.weight_decay));
    }
    parts.push(o.max_grad_norm.map_or("no clipping".into(), |c| format!("clip {c}")));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ElectraConfig;

    #[test]
    fn electra_sizes_get_the_papers_numbers_and_bert_transformers() {
        let electra = |hidden: i64| {
            let c = ElectraConfig { hidden_size: hidden, ..ElectraConfig::seed_shape() };
            Recipe::for_config(&ModelConfig::Electra(c)).optimizer
        };
        assert_eq!((electra(256).learning_rate, electra(256).layer_decay), (3e-4, Some(0.8)));
        assert_eq!((electra(768).learning_rate, electra(768).layer_decay), (1e-4, Some(0.8)));
        assert_eq!((electra(1024).learning_rate, electra(1024).layer_decay), (5e-5, Some(0.9)));
        assert!(electra(256).validate().is_ok());
        let bert: crate::models::BertConfig = serde_json::from_str(
            r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16}"#,
        )
        .unwrap();
        assert_eq!(Recipe::for_config(&ModelConfig::Bert(bert)), Recipe::transformers());
        assert!(Recipe::for_config(&ModelConfig::Electra(ElectraConfig::seed_shape())).describe().contains("layer-wise decay 0.8"));
    }
}
