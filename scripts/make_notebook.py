"""Writes notebooks/technical_evaluation.ipynb from the cell list below (run with
.venv/bin/python after `make notebook-setup`, which installs nbformat). Edit here, not
in the .ipynb, so the notebook stays reviewable as code."""
import json
cells = []
def md(s): cells.append({"cell_type": "markdown", "metadata": {}, "source": s.strip("\n")})
def code(s): cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": s.strip("\n")})

md("""
# Technical evaluation: fine-tuning BERT-family and ELECTRA encoders on Web of Science

A Rust re-creation of the research notebook that fine-tuned BERT, TinyBERT and a home-pretrained
ELECTRA-small on WOS-46985, running on the `encoder-bench` crate through the evcxr kernel.

Settings come from environment variables so the same notebook runs a quick CPU check or the full
seed settings on a GPU: `WOS_DIR`, `BERT_MODEL`, `ELECTRA_CONFIG` / `ELECTRA_STATE_DICT`,
`MAX_LEN`, `BATCH_SIZE`, `EPOCHS`, `LEARNING_RATE`.
""")
md("## 1. Import and device\nThe crate is a path dependency; the first run compiles it (minutes), later runs reuse the build.")
code(""":dep encoder-bench = { path = ".." }""")
code("""
use encoder_bench::prelude::*;
use encoder_bench::report::{BarChart, Chart, Heatmap, LineChart, history_frame, dataframe_html, evcxr_html};
fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
let device: Device = select_device(None).unwrap();
""")
md("""
## 2. Preprocess data
WOS-46985 is published by Kowsari et al. (2018) on Mendeley Data as *Web of Science Dataset*
(WOS.zip); unpack it and set `WOS_DIR` to its `WOS46985` folder. Without it the notebook uses the
210-abstract sample shipped beside the repository. As in the seed, the first N texts train and the
rest test; the files interleave the classes, so both sides are balanced.
""")
code("""
let wos_dir: String = std::env::var("WOS_DIR").unwrap_or("../../shared/data/wos-sample".to_string());
let ds: Dataset = Dataset::read_wos(&wos_dir, WosLevel::L1).unwrap();
let n_train: usize = env_or("TRAIN_SIZE", ds.len() * 4 / 5);
let split: Split = Split::first_n(&ds, n_train).unwrap();
println!("{}: {} texts, {} train / {} test", ds.source, ds.len(), split.train.len(), split.test.len());
""")
md("## 3. Labels\nThe seven level-1 domains and how many abstracts each has.")
code("""
let counts: Vec<usize> = ds.class_counts();
let rows: Vec<Vec<String>> = ds.labels.names().iter().enumerate().map(|(i, n)| vec![i.to_string(), n.clone(), counts[i].to_string()]).collect();
evcxr_html(&encoder_bench::report::html_table(&["id".into(), "domain".into(), "texts".into()], &rows));
""")
code("""BarChart::class_counts(ds.labels.names(), &counts).evcxr_display();""")
md("""
## 4. Tokenizer, encoding and models
Texts are tokenised once, in parallel, and padded per batch. The BERT default is the real
all-MiniLM-L6-v2 checkpoint (a BERT architecture: 6 layers, hidden 384); set `BERT_MODEL` to a
directory or hub id for bert-base-uncased or TinyBERT. The load report lists what was loaded and
what is new (the classifier head).
""")
code("""
let max_len: usize = env_or("MAX_LEN", 64);
let bert_src: ModelSource = ModelSource::parse(&std::env::var("BERT_MODEL").unwrap_or("../models/minilm".to_string()));
let tok: TextTokenizer = TextTokenizer::from_dir(bert_src.resolve().unwrap().tokenizer_dir.expect("model has a tokenizer")).unwrap();
let train: Encoded = tok.encode_dataset(&split.train, max_len).unwrap();
let test: Encoded = tok.encode_dataset(&split.test, max_len).unwrap();
let loaded: (Box<dyn TextClassifier>, LoadReport) = load_classifier(&bert_src, Some(ds.labels.clone()), device, 0).unwrap();
let mut bert: Box<dyn TextClassifier> = loaded.0;
loaded.1
""")
md("""
## 5. Training
The loss is cross-entropy on logits with the seed's label smoothing (0.001); the seed applied a
softmax before `CrossEntropyLoss`, which squashes the gradients, and we do not. Create the file
`notebooks/STOP` to end training cleanly after the current step.
""")
code("""
let cfg: TrainConfig = TrainConfig {
    max_len,
    batch_size: env_or("BATCH_SIZE", 16),
    epochs: env_or("EPOCHS", 3),
    learning_rate: env_or("LEARNING_RATE", 5e-5),
    max_grad_norm: Some(1.0),
    stop_file: Some("STOP".into()),
    progress: ProgressMode::Notebook,
    ..TrainConfig::transformers_recipe()
};
let out: FitResult = fit(bert.as_mut(), &train, &test, &cfg).unwrap();
out.history.clone()
""")
code("""LineChart::accuracy_per_epoch(&[("MiniLM".to_string(), &out.history)]).evcxr_display();""")
md("## 6. Analysis of the best run\nConfusion matrix and per-class F1 of the last validation.")
code("""
let metrics: Metrics = out.last_validation.as_ref().unwrap().metrics.clone();
Heatmap::confusion(ds.labels.names(), &metrics.confusion).evcxr_display();
""")
code("""BarChart::per_class_f1(ds.labels.names(), &metrics).evcxr_display();""")
code("""
evcxr_html(&dataframe_html(&history_frame(&[("MiniLM".to_string(), cfg.batch_size, &out.history)])));
""")
md("""
## 7. Still to come
The batch-size sweep over BERT, TinyBERT and ELECTRA, and measured pre-training compute, arrive
with the sweep and pre-training work; nothing in this section is estimated by analogy.
""")

nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Rust (encoder-bench)", "language": "rust", "name": "rust"},
      "language_info": {"name": "rust"}}, "nbformat": 4, "nbformat_minor": 5}
import nbformat
nbo = nbformat.from_dict(nb)
nbformat.validator.normalize(nbo)
for i, c in enumerate(nbo.cells):
    c["id"] = f"cell-{i:02d}"
nbformat.write(nbo, "notebooks/technical_evaluation.ipynb")
