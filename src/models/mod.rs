//! Encoders (BERT, ELECTRA), the classifier heads the notebook trains, and
//! checkpoint loading that takes real Hugging Face and PyTorch files unchanged.
pub mod bert;
pub mod classifier;
pub mod compat;
pub mod config;
pub mod dropout;
pub mod electra;
pub mod export;
pub mod heads;
pub mod mlm;
pub mod precision;
pub mod rtd;

pub use crate::weights::{LoadReport, ModelFamily, ModelFiles, ModelSource, read_weights};
pub use bert::BertModel;
pub use classifier::{
    BertClassifier, ElectraClassifier, TextClassifier, load_classifier, load_classifier_as, load_classifier_with_head, random_classifier,
    random_classifier_with_head, save_classifier,
};
pub use compat::check_encoded;
pub use config::{Activation, BertConfig, ConfigRead, ElectraConfig, ModelConfig};
pub use electra::ElectraModel;
pub use heads::Head;
pub use mlm::{ElectraForMaskedLM, MlmHead};
pub use precision::{Precision, with_precision};
pub use rtd::ElectraRtd;
