//! Encoders (BERT, ELECTRA), the classifier heads the notebook trains, and
//! checkpoint loading that takes real Hugging Face and PyTorch files unchanged.
pub mod bert;
pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod dropout;
pub mod electra;
pub mod mlm;
pub mod pickle;
pub mod precision;
pub mod source;

pub use bert::BertModel;
pub use checkpoint::{LoadReport, read_weights};
pub use classifier::{BertClassifier, ElectraClassifier, ModelConfig, TextClassifier, load_classifier, random_classifier, save_classifier};
pub use config::{Activation, BertConfig, ElectraConfig};
pub use electra::ElectraModel;
pub use mlm::ElectraForMaskedLM;
pub use precision::{Precision, with_precision};
pub use source::{ModelFiles, ModelSource};
