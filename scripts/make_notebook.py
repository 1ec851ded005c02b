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
seed settings on a GPU (a value that does not parse is an error naming the variable; the table
below shows what was used): `SEED_SETTINGS=1` (the seed's exact recipe), `WOS_DIR`, `TRAIN_SIZE`, `BERT_MODEL`, `TINYBERT_MODEL`, `ELECTRA_CONFIG` /
`ELECTRA_STATE_DICT`, `MAX_LEN`, `BATCH_SIZE`, `EPOCHS`, `LEARNING_RATE`, `PRECISION` (fp32|bf16),
`PADDING` (dynamic|bucketed|max_len; bucketed batches similar lengths together, worth it at MAX_LEN 512),
`SWEEP_BATCH_SIZES` (default 8,16,32), `SWEEP_EPOCHS`, `SWEEP_FOLDS` (default 5; 1 keeps the seed's split),
`SWEEP_SEEDS` (default 1), `PRETRAIN_MINUTES`.

Three splits, as in any honest evaluation: the model trains on the **training** texts, a
**validation** set carved from them (10%, at least 2 per class) chooses the epoch and the batch size,
and the **test** texts are scored once, at the chosen point, and reported.
""")
md("## 1. Import and device\nThe crate is a path dependency; the first run compiles it (minutes), later runs reuse the build.")
code(""":dep encoder-bench = { path = ".." }""")
code("""
use encoder_bench::prelude::*;
use encoder_bench::report::{BarChart, Chart, Heatmap, LineChart, SectionClock, Series, history_frame, dataframe_html, evcxr_html, html_table};
use encoder_bench::sweep::{Setting, Sweep, SweepModel, SweepPlan, DataSpec, SplitSpec, sweep, describe};
use encoder_bench::models::{ElectraConfig, Precision};
use encoder_bench::notebook::NotebookSettings;
use encoder_bench::report::html::bullet_list;
let settings: NotebookSettings = NotebookSettings::from_env()?;
let device: Device = select_device(None)?;
let mut clock: SectionClock = SectionClock::start();
settings.table()
""")
md("""
### Where this notebook differs from the seed's
Computed from the settings above (`SEED_SETTINGS=1` removes all but the fixes and the split):
""")
code("""bullet_list(&settings.deviations())""")
md("""
## 2. Preprocess data
WOS-46985 is published by Kowsari et al. (2018) on Mendeley Data as *Web of Science Dataset*
(WOS.zip); unpack it and set `WOS_DIR` to its `WOS46985` folder. Without it the notebook uses the
210-abstract sample shipped beside the repository. As in the seed, the first N texts train and the
rest test; the files interleave the classes, so both sides are balanced. A stratified 10% of the
training side becomes the validation set.
""")
code("""
let ds: Dataset = Dataset::read_wos(&settings.wos_dir, WosLevel::L1)?;
let n_train: usize = settings.train_size.unwrap_or(ds.len() * 4 / 5);
let split: Split = match settings.validation() {
    Some(v) => Split::first_n(&ds, n_train)?.with_validation(v, 0)?,
    None => Split::first_n(&ds, n_train)?,
};
let n_valid: usize = split.valid.as_ref().map_or(0, |v| v.len());
println!("{}: {} texts, {} train / {n_valid} validation / {} test", ds.source, ds.len(), split.train.len(), split.test.len());
clock.lap("1-2. Import, device, data");
""")
md("## 3. Labels\nThe seven level-1 domains and how many abstracts each has.")
code("""
let counts: Vec<usize> = ds.class_counts();
let rows: Vec<Vec<String>> = ds.labels.names().iter().enumerate().map(|(i, n)| vec![i.to_string(), n.clone(), counts[i].to_string()]).collect();
evcxr_html(&encoder_bench::report::html_table(&["id".into(), "domain".into(), "texts".into()], &rows));
""")
code("""BarChart::class_counts(ds.labels.names(), &counts).evcxr_display();
clock.lap("3. Labels");""")
md("""
## 4. Tokenizer, encoding and models
Texts are tokenised once, in parallel, and padded per batch. The BERT default is the real
all-MiniLM-L6-v2 checkpoint (a BERT architecture: 6 layers, hidden 384); set `BERT_MODEL` to a
directory or hub id for bert-base-uncased or TinyBERT. Older releases load as they are: a config
without `model_type` (the family then comes from the weights' key names), Google's `bert_config.json`,
TinyBERT's extra config fields and `fit_denses` weights, sharded safetensors or `.bin`. The load
report lists what was loaded, what is new (the classifier head), and how the family was decided.
""")
code("""
let max_len: usize = settings.max_len;
let bert_src: ModelSource = ModelSource::parse(&settings.bert_model);
let tok: TextTokenizer = TextTokenizer::from_dir(bert_src.resolve()?.tokenizer_dir.ok_or("BERT_MODEL has no tokenizer")?)?;
let train: Encoded = tok.encode_dataset(&split.train, max_len)?;
let valid: Encoded = tok.encode_dataset(split.selection(), max_len)?;
let test: Encoded = tok.encode_dataset(&split.test, max_len)?;
load_classifier(&bert_src, Some(ds.labels.clone()), device, 0)?.1
""")
md("""
The seed's ELECTRA was pre-trained by its authors and shipped as a PyTorch state dict
(`babylm_model.bin`, `ElectraForMaskedLM` keys) plus `config.json`. Point `ELECTRA_CONFIG` and
`ELECTRA_STATE_DICT` at yours. Otherwise the notebook takes `models/electra-seed/`, which
`make notebook` pre-trains with our own masked-LM pre-training (section 7) on the WOS abstracts;
if that is absent too, a randomly initialised ELECTRA of the same shape from the test fixtures,
and the tables say so. Only the classifier head is new; the MLM head is set aside. Caveat:
`models/electra-seed` is pre-trained (masked words, no labels) on all the abstracts of the data,
so its pre-training has read the texts that later serve as test texts; section 7 pre-trains on the
training split only.
""")
code("""
let (electra_src, electra_name): (ModelSource, String) = match &settings.electra {
    Some((c, w)) => (ModelSource::state_dict(c, w), "ELECTRA".to_string()),
    _ if std::path::Path::new("../models/electra-seed/model.safetensors").exists() =>
        (ModelSource::parse("../models/electra-seed"), "ELECTRA (pre-trained here)".to_string()),
    _ => (ModelSource::state_dict("../tests/fixtures/large/electra-seed/config.json", "../tests/fixtures/large/electra-seed/babylm_model.bin"),
          "ELECTRA (random init)".to_string()),
};
println!("{electra_name}: {electra_src}");
clock.lap("4. Tokenizer, encoding, models");
load_classifier(&electra_src, Some(ds.labels.clone()), device, 0)?.1
""")
md("""
## 5. Training
The loss is cross-entropy on logits with the seed's label smoothing (0.001); the seed applied a
softmax before `CrossEntropyLoss`, which squashes the gradients, and we do not. The validation set
chooses the epoch; the model ends holding that epoch's weights and the test set is scored once, there.
The cell builds its model from the pretrained weights each time, so re-running it (say after
changing a setting) starts afresh; it needs the data and encodings of sections 2 and 4.
Create the file `notebooks/STOP` to end training cleanly after the current step (it is removed
when it stops a run; in the sweep it ends the whole sweep).
""")
code("""
let cfg: TrainConfig = settings.train_config();
let mut bert: Box<dyn TextClassifier> = load_classifier(&bert_src, Some(ds.labels.clone()), device, 0)?.0;
let out: FitResult = fit_and_test(bert.as_mut(), &train, &valid, &test, &cfg)?;
println!("epoch {:?} chosen on validation; test accuracy there: {:.1}% ({} texts)",
    out.chosen_epoch, out.test.as_ref().map_or(0.0, |t| t.metrics.accuracy) * 100.0, test.len());
out.history.clone()
""")
code("""LineChart::accuracy_per_epoch(&[("BERT (MiniLM)".to_string(), &out.history)]).evcxr_display();
clock.lap("5. Training");""")
md("""
## 6. Model analysis
The seed typed one run per model and batch size into tables by hand, and one run on 42 test texts
cannot tell models apart. Here every model is fine-tuned at every batch size (`SWEEP_BATCH_SIZES`)
on every fold of a stratified `SWEEP_FOLDS`-fold cross-validation (every abstract is a test text
once), each run starting from the pretrained weights, next to a TF-IDF + logistic-regression
baseline on the same folds. Epochs and batch sizes are chosen on each fold's validation set.
""")
code("""
let mut sweep_models: Vec<SweepModel> = vec![SweepModel::new("BERT", bert_src.clone()),
    SweepModel::new(electra_name.clone(), electra_src.clone()).with_tokenizer_if_missing("../models/minilm")];
if let Some(t) = &settings.tinybert_model { sweep_models.push(SweepModel::new("TinyBERT", ModelSource::parse(t))); }
let split_spec: SplitSpec = SplitSpec { validation: settings.validation(), ..SplitSpec::folds_or_first_n(settings.sweep_folds, n_train, 0) };
let plan: SweepPlan = SweepPlan { data: DataSpec::new(&settings.wos_dir), data_fingerprint: None, split: split_spec, models: sweep_models,
    batch_sizes: settings.sweep_batch_sizes.clone(), seeds: (0..settings.sweep_seeds).collect(), baseline: true,
    train: TrainConfig { progress: ProgressMode::Quiet, stop: StopConfig { epochs: settings.sweep_epochs, ..cfg.stop.clone() }, ..cfg.clone() } };
let sw: Sweep = sweep(&plan, device, |r| println!("{}: test accuracy {:.1}%", describe(&plan, &r.job), r.test.accuracy * 100.0))?;
""")
md("Test accuracy at the validation-chosen epoch, mean ± 95% confidence half-width over the runs (n beside it), in percent:")
code("""evcxr_html(&dataframe_html(&sw.report_frame()));""")
code("""sw.accuracy_chart().evcxr_display();""")
md("Validation accuracy per epoch, mean over folds, one chart per model:")
code("""sw.epoch_facets().evcxr_display();""")
md("Paired comparisons on the same test texts (bootstrap over texts, McNemar's exact test):")
code("""evcxr_html(&dataframe_html(&sw.comparisons_frame()));""")
md("The best setting (chosen on validation): confusion matrix and per-class F1 over all its test predictions.")
code("""
let best: Setting = sw.best_overall().ok_or("the sweep has no model runs")?;
let best_metrics: Metrics = sw.pooled_metrics(&best)?;
println!("best setting: {best}");
Heatmap::confusion(ds.labels.names(), &best_metrics.confusion).evcxr_display();
""")
code("""BarChart::per_class_f1(ds.labels.names(), &best_metrics).evcxr_display();""")
md("### Conclusions, computed from the runs above")
code("""
bullet_list(&sw.conclusions())
""")
md("Every run and every epoch stay available as tables (also saved as CSV and Parquet):")
code("""sw.save("out/sweep")?; evcxr_html(&dataframe_html(&sw.runs_frame()));
clock.lap("6. Model analysis");""")
md("""
## 7. Pre-training vs fine-tuning compute
The seed argued by analogy that pre-training costs far more than fine-tuning. Here both are
measured. The cell below pre-trains an ELECTRA of the seed's shape with masked-word prediction
(15% of tokens chosen; 80% masked, 10% random, 10% kept) on the WOS abstracts for
`PRETRAIN_MINUTES` (default 2) and plots its MLM loss. Then it fine-tunes the result and an
identically shaped randomly initialised ELECTRA with the same settings, and puts tokens, model
FLOPs (matrix products, forward + backward), wall time and samples/s side by side.
""")
code("""
use encoder_bench::train::pretrain::{Corpus, PretrainConfig, PretrainResult, pretrain_to_dir};
let mlm_tok: TextTokenizer = TextTokenizer::from_dir("../models/minilm")?;
let pcfg: PretrainConfig = PretrainConfig {
    max_len: 128, batch_size: 16, log_every: 5, progress: ProgressMode::Notebook,
    optimizer: OptimizerConfig { learning_rate: 1e-3, ..OptimizerConfig::electra_pretraining() },
    stop: StopConfig { max_steps: Some(settings.pretrain_steps), time_budget_s: Some(settings.pretrain_minutes * 60.0),
        stop_file: Some("STOP".into()), ..StopConfig::default() },
    ..Default::default()
};
let corpus: Corpus = Corpus::from_texts(&split.train.texts, &mlm_tok, pcfg.max_len)?;
let pre_dir: String = "../target/notebook-electra".to_string();
let _ = std::fs::remove_dir_all(&pre_dir);
let pre: PretrainResult = pretrain_to_dir(&ElectraConfig::seed_shape(), &mlm_tok, &corpus, &pcfg, &pre_dir, device, false)?.1;
println!("{} steps, {} tokens, {:.2} TFLOP, {:.0} s", pre.steps, pre.tokens, pre.flops / 1e12, pre.elapsed_s);
let mut mlm_chart = LineChart::new("Masked-LM pre-training", "step", "MLM loss");
mlm_chart.series.push(Series::new("loss", pre.history.records.iter().map(|r| (r.step as f64, r.loss)).collect()).color(0));
mlm_chart.evcxr_display();
""")
md("Pre-training corpus: the training split only, so the test texts stay unseen. Fine-tune both ELECTRAs:")
code("""
let ecfg: ElectraConfig = ElectraConfig::seed_shape();
let e_train: Encoded = mlm_tok.encode_dataset(&split.train, cfg.max_len)?;
let e_valid: Encoded = mlm_tok.encode_dataset(split.selection(), cfg.max_len)?;
let e_test: Encoded = mlm_tok.encode_dataset(&split.test, cfg.max_len)?;
let mut pre_model: Box<dyn TextClassifier> = load_classifier(&ModelSource::parse(&pre_dir), Some(ds.labels.clone()), device, 0)?.0;
let pre_fit: FitResult = fit_and_test(pre_model.as_mut(), &e_train, &e_valid, &e_test, &cfg)?;
let mut rnd_model: Box<dyn TextClassifier> = encoder_bench::models::random_classifier(
    &encoder_bench::models::ModelConfig::Electra(ecfg.clone()), ds.labels.clone(), device, 0);
let rnd_fit: FitResult = fit_and_test(rnd_model.as_mut(), &e_train, &e_valid, &e_test, &cfg)?;
LineChart::accuracy_per_epoch(&[("pre-trained here".to_string(), &pre_fit.history), ("random init".to_string(), &rnd_fit.history)]).evcxr_display();
""")
code("""
use encoder_bench::train::flops::fine_tuning_flops;
// One block: its closures and temporaries stay local to this cell.
{
    let ft_flops: f64 = fine_tuning_flops(pre_model.config(), &e_train, cfg.batch_size, cfg.padding, cfg.stop.epochs, ds.num_classes());
    let ft_s: f64 = pre_fit.history.epochs.iter().map(|e| e.train_s).sum();
    let ft_tokens: usize = e_train.ids.iter().map(Vec::len).sum::<usize>() * cfg.stop.epochs;
    let ft_samples: usize = e_train.len() * cfg.stop.epochs;
    let pre_samples: usize = pre.steps * pcfg.batch_size;
    let fmt = |x: f64| format!("{x:.3e}");
    let rows: Vec<Vec<String>> = vec![
        vec!["pre-training (MLM)".into(), pre.tokens.to_string(), fmt(pre.flops), format!("{:.1}", pre.elapsed_s), format!("{:.1}", pre_samples as f64 / pre.elapsed_s)],
        vec!["fine-tuning (classification)".into(), ft_tokens.to_string(), fmt(ft_flops), format!("{ft_s:.1}"), format!("{:.1}", ft_samples as f64 / ft_s)],
        vec!["ratio pre / fine".into(), format!("{:.1}", pre.tokens as f64 / ft_tokens as f64), format!("{:.1}", pre.flops / ft_flops),
             format!("{:.1}", pre.elapsed_s / ft_s), "".into()],
    ];
    evcxr_html(&html_table(&["stage".into(), "tokens".into(), "model FLOPs".into(), "wall s".into(), "samples/s".into()], &rows));
    let acc = |f: &FitResult| f.test.as_ref().map_or(0.0, |t| t.metrics.accuracy) * 100.0;
    println!("test accuracy at the validation-chosen epoch: pre-trained here {:.1}%, random init {:.1}% ({} test texts)", acc(&pre_fit), acc(&rnd_fit), e_test.len());
}
""")
md("""
For scale: the ELECTRA paper reports 1.4e18 pre-training FLOPs (4 days on one V100) for
ELECTRA-Small, against the fine-tuning FLOPs in the table above for a few hundred abstracts.
Our minutes of pre-training already cost more than the fine-tuning; a useful pre-training costs
millions of times more.
""")
md("Wall time per section on this machine:")
code("""clock.lap("7. Pre-training vs fine-tuning");
clock.table()""")

nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Rust (encoder-bench)", "language": "rust", "name": "rust"},
      "language_info": {"name": "rust"},
      "encoder_bench": {"generated_by": "scripts/make_notebook.py", "edit": "edit the generator, then `make notebook-source`"}},
      "nbformat": 4, "nbformat_minor": 5}
import sys
import nbformat
nbo = nbformat.from_dict(nb)
nbformat.validator.normalize(nbo)
for i, c in enumerate(nbo.cells):
    c["id"] = f"cell-{i:02d}"
TARGET = "notebooks/technical_evaluation.ipynb"
text = nbformat.writes(nbo) + "\n"
if "--check" in sys.argv[1:]:
    # The generator is the notebook's one source: a hand edit of the .ipynb,
    # or a generator change not regenerated, fails here (make test).
    try:
        current = open(TARGET, encoding="utf-8").read()
    except FileNotFoundError:
        current = ""
    if current != text:
        sys.exit(f"{TARGET} differs from what scripts/make_notebook.py generates: edit the generator "
                 f"(the notebook's one source) and run `make notebook-source`, then commit both")
    print(f"{TARGET} matches scripts/make_notebook.py")
else:
    with open(TARGET, "w", encoding="utf-8") as f:
        f.write(text)
