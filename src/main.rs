//! `encoder-bench`: the command-line edge of the library.
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use encoder_bench::prelude::*;
use encoder_bench::train::pretrain::DEFAULT_CORPUS;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(name = "encoder-bench", version, about = "Fine-tune and compare transformer encoders on text classification")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a model on a dataset and write a run record.
    Fit(Box<FitArgs>),
    /// Evaluate a saved checkpoint on a dataset: metrics, confusion matrix, per-class report.
    Eval(Box<EvalArgs>),
    /// Fine-tune models × batch sizes (the seed's analysis grid) into one results table and charts.
    Sweep(Box<SweepArgs>),
    /// Pre-train an ELECTRA (masked LM or replaced-token detection) on plain text into a directory the fine-tuning loader takes.
    Pretrain(Box<PretrainArgs>),
    /// Measure training and evaluation samples/s (compare with bench/reference.py).
    Bench(Box<BenchArgs>),
    /// Compare a model's logits on a device with the CPU's (GPU/MPS sanity check).
    CheckDevice(Box<CheckDeviceArgs>),
    /// Write a fine-tuned checkpoint as a transformers model directory (config with label names, weights, tokenizer).
    Export(Box<ExportArgs>),
    /// Fine-tune the shipped MiniLM on the shipped WOS sample (a quick demo).
    Demo {
        /// Epochs to run.
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// Output directory (default: runs/demo-<unix time>, so reruns never collide).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Where the texts and labels come from.
#[derive(Args, Clone)]
struct DataArgs {
    /// WOS directory (X.txt + YL1.txt), or a .csv / .tsv / .parquet file (extension in any case).
    #[arg(long, default_value = "../shared/data/wos-sample")]
    data: PathBuf,
    /// Text column for CSV / Parquet.
    #[arg(long, default_value = "text")]
    text_column: String,
    /// Label column for CSV / Parquet.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Training examples: the first N rows (the seed's split); default 80%.
    #[arg(long)]
    train_size: Option<usize>,
    /// Share of each class's training texts held out as the validation set that chooses the epoch
    /// (and, in a sweep, the batch size); 0: the seed's mode, where the test set chooses (records say so).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// At least this many validation texts per class.
    #[arg(long, default_value_t = 2)]
    val_min_per_class: usize,
    /// Seed of the validation carve.
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
}

impl DataArgs {
    fn read(&self) -> Result<Dataset> {
        let ds = Dataset::read_path(&self.data, &self.text_column, &self.label_column)
            .with_context(|| format!("--data {}", self.data.display()))?;
        Ok(ds)
    }

    fn validation(&self) -> Result<Option<ValidationSpec>> {
        if self.val_fraction == 0.0 {
            return Ok(None);
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            anyhow::bail!(
                "--val-fraction {}: expected a share in (0, 1), or 0 for the seed's mode (the test set chooses)",
                self.val_fraction
            );
        }
        Ok(Some(ValidationSpec { fraction: self.val_fraction, min_per_class: self.val_min_per_class }))
    }

    fn split_spec(&self, ds: &Dataset) -> Result<SplitSpec> {
        let n_train = self.train_size.unwrap_or(ds.len() * 4 / 5);
        Ok(SplitSpec { test: TestSplit::FirstN { n_train }, validation: self.validation()?, validation_seed: self.split_seed })
    }

    fn load(&self) -> Result<(Dataset, Split)> {
        let ds = self.read()?;
        let split = self.split_spec(&ds)?.splits(&ds)?.remove(0);
        let valid = split
            .valid
            .as_ref()
            .map_or("no validation set: the test set chooses (seed's mode)".to_string(), |v| format!("{} validation", v.len()));
        eprintln!("data: {} ({} train / {valid} / {} test, {} classes)", ds.source, split.train.len(), split.test.len(), ds.num_classes());
        Ok((ds, split))
    }
}

/// Fine-tuning settings: the optimizer and stop flags come from the
/// library's configs (defaults: transformers' fine-tuning recipe); the rest
/// are fine-tuning's own.
#[derive(Args, Clone)]
struct TrainArgs {
    #[arg(long, default_value_t = TrainConfig::default().max_len)]
    max_len: usize,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// Evaluation batch size (default: 2 × batch size).
    #[arg(long)]
    eval_batch_size: Option<usize>,
    #[command(flatten)]
    optimizer: OptimizerConfig,
    #[command(flatten)]
    stop: StopConfig,
    #[command(flatten)]
    selection: SelectionConfig,
    #[arg(long, default_value_t = TrainConfig::default().label_smoothing)]
    label_smoothing: f64,
    /// `max` (pad to --max-len, as the seed), `dynamic` (to each batch's longest text) or `bucketed` (dynamic, similar lengths batched together).
    #[arg(long, default_value = "dynamic", value_parser = parse_padding)]
    padding: Padding,
    /// fp32, or bf16 matrix products over fp32 weights.
    #[arg(long, default_value = "fp32")]
    precision: encoder_bench::models::Precision,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, cuda, cuda:N, mps (default: auto / ENCODER_BENCH_DEVICE).
    #[arg(long)]
    device: Option<String>,
}

impl TrainArgs {
    fn config(&self) -> TrainConfig {
        TrainConfig {
            max_len: self.max_len,
            batch_size: self.batch_size,
            eval_batch_size: self.eval_batch_size,
            optimizer: self.optimizer.clone(),
            stop: self.stop.clone(),
            selection: self.selection.clone(),
            label_smoothing: self.label_smoothing,
            padding: self.padding,
            precision: self.precision,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

#[derive(Args)]
struct FitArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Output directory: run.json, history.csv, charts, checkpoints/ (refuses to overwrite a run).
    #[arg(long, default_value = "runs/fit")]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Replace a run already in --out.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    /// A saved classifier directory (e.g. runs/fit/checkpoints/best).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Tokenizer directory (default: the checkpoint's own; a checkpoint without one needs this).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Evaluate every text instead of the test split.
    #[arg(long)]
    all: bool,
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long)]
    device: Option<String>,
    /// Write metrics.json, the confusion matrix (PNG + SVG) and report.txt here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SweepArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    train: TrainArgs,
    /// Models as NAME=SOURCE (a directory or hub id), repeatable; default BERT=models/minilm.
    #[arg(long = "model", value_name = "NAME=SOURCE")]
    models: Vec<String>,
    /// An ELECTRA as NAME=CONFIG.json,STATE_DICT (e.g. ELECTRA=models/electra-seed/config.json,models/electra-seed/babylm_model.bin).
    #[arg(long = "electra", value_name = "NAME=CONFIG,STATE_DICT")]
    electras: Vec<String>,
    /// Tokenizer for models without one.
    #[arg(long, default_value = "models/minilm")]
    tokenizer: PathBuf,
    /// Batch sizes, comma-separated.
    #[arg(long, default_value = "8,16,32", value_delimiter = ',')]
    batch_sizes: Vec<usize>,
    /// Seeds, comma-separated: every model × batch size runs once per seed (and fold).
    #[arg(long, default_value = "0", value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Stratified k-fold cross-validation (every text tested once per seed); 1 keeps the --train-size split.
    #[arg(long, default_value_t = 1)]
    folds: usize,
    /// Leave out the TF-IDF + logistic-regression baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Output directory: report/cells/runs/epochs/comparisons tables (CSV + Parquet), sweep.json, charts.
    #[arg(long, default_value = "runs/sweep")]
    out: PathBuf,
    /// Write the sweep as independent jobs into DIR (plan.json, jobs/NNNN/job.json, jobs.txt) instead of
    /// running it; with --run-job, the plan whose job to run.
    #[arg(long, value_name = "DIR", conflicts_with = "collect")]
    plan: Option<PathBuf>,
    /// Run job N of the plan in --plan DIR (skipped when done, resumed when cut short).
    #[arg(long, value_name = "N", requires = "plan")]
    run_job: Option<usize>,
    /// Build the summary, comparisons and charts of a planned sweep whose jobs have all run (into DIR/summary).
    #[arg(long, value_name = "DIR")]
    collect: Option<PathBuf>,
}

/// Pre-training settings (defaults: the seed's ELECTRA shape on the WOS abstracts, 4 minutes, masked LM).
#[derive(Args)]
struct PretrainArgs {
    /// Plain-text corpus, one document per line.
    #[arg(long, default_value = DEFAULT_CORPUS)]
    corpus: PathBuf,
    /// Tokenizer directory (tokenizer.json or vocab.txt); bert-base-uncased's vocabulary.
    #[arg(long, default_value = "models/minilm")]
    tokenizer: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "models/electra-seed")]
    out: PathBuf,
    /// Model config.json to use instead of the seed's shape.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Wall-clock budget in minutes (training stops cleanly, then saves).
    #[arg(long, default_value_t = 4.0)]
    minutes: f64,
    /// Length of the learning-rate schedule in steps (and the most steps run).
    #[arg(long, default_value_t = 60)]
    max_steps: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f64,
    #[arg(long, default_value_t = 5)]
    log_every: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda, cuda:N, mps (default: auto / ENCODER_BENCH_DEVICE).
    #[arg(long)]
    device: Option<String>,
    /// Stop cleanly when this file appears.
    #[arg(long)]
    stop_file: Option<PathBuf>,
    /// Continue from <out>/checkpoints/last.
    #[arg(long)]
    resume: bool,
    /// fp32, or bf16 matrix products over fp32 weights (about 2x on a CPU with AVX512-BF16/AMX).
    #[arg(long, default_value = "fp32")]
    precision: encoder_bench::models::Precision,
    /// mlm (masked LM) or rtd (ELECTRA's replaced-token detection: a generator and the discriminator kept).
    #[arg(long, default_value = "mlm")]
    objective: encoder_bench::train::pretrain::Objective,
    /// rtd: the generator's width as a fraction of the discriminator's.
    #[arg(long, default_value_t = 0.25)]
    generator_size: f64,
}

/// Which model to build: a checkpoint, or random weights of a config.
#[derive(Args, Clone)]
struct ModelArgs {
    /// Model: a directory or hub id (ignored when --config/--state-dict or --random-config are given).
    #[arg(long, default_value = "models/minilm")]
    model: String,
    /// ELECTRA-style config.json for --state-dict.
    #[arg(long, requires = "state_dict")]
    config: Option<PathBuf>,
    /// PyTorch state dict (e.g. babylm_model.bin) to load with --config.
    #[arg(long, requires = "config")]
    state_dict: Option<PathBuf>,
    /// Build the model from this config.json with random weights (e.g. a bert-base shape).
    #[arg(long, conflicts_with_all = ["config", "state_dict"])]
    random_config: Option<PathBuf>,
    /// Tokenizer directory (tokenizer.json or vocab.txt); default: the model's own, else models/minilm.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Model family, for configs without `model_type` (default: from the config, else the weights' key names).
    #[arg(long, value_parser = ["bert", "electra"])]
    family: Option<String>,
    /// Name shown in results (default: the model path).
    #[arg(long)]
    name: Option<String>,
}

impl ModelArgs {
    fn load(&self, labels: LabelMap, device: Device) -> Result<(Box<dyn TextClassifier>, TextTokenizer, String)> {
        let (model, tok_dir, default_name) = if let Some(cfg) = &self.random_config {
            let config = encoder_bench::models::ModelConfig::from_file(cfg)?;
            let model = encoder_bench::models::random_classifier(&config, labels, device, 0);
            (model, None, format!("random:{}", cfg.display()))
        } else {
            let source = match (&self.config, &self.state_dict) {
                (Some(c), Some(w)) => ModelSource::state_dict(c, w),
                _ => ModelSource::parse(&self.model),
            };
            let family = self.family.as_deref().map(str::parse).transpose()?;
            let (model, report) = encoder_bench::models::load_classifier_as(&source, family, Some(labels), device, 0)?;
            eprintln!("{report}");
            (model, source.resolve()?.tokenizer_dir, source.to_string())
        };
        let tok_dir = self.tokenizer.clone().or(tok_dir).unwrap_or_else(|| "models/minilm".into());
        let tok = TextTokenizer::from_dir(&tok_dir)?;
        Ok((model, tok, self.name.clone().unwrap_or(default_name)))
    }
}

fn parse_padding(s: &str) -> std::result::Result<Padding, String> {
    s.parse().map_err(|e: encoder_bench::Error| e.to_string())
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// WOS directory whose texts are cycled as inputs.
    #[arg(long, default_value = "../shared/data/wos-sample")]
    data: PathBuf,
    /// Device: cpu, cuda, cuda:N, mps (default: auto / ENCODER_BENCH_DEVICE).
    #[arg(long)]
    device: Option<String>,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    /// Untimed steps before each timed phase.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    train_steps: usize,
    #[arg(long, default_value_t = 10)]
    eval_batches: usize,
    /// Precisions to measure, comma-separated: fp32, bf16.
    #[arg(long, default_value = "fp32", value_delimiter = ',')]
    precision: Vec<encoder_bench::models::Precision>,
    /// `max` (pad every batch to --max-len, as the seed), `dynamic` or `bucketed` (similar lengths batched together).
    #[arg(long, default_value = "dynamic", value_parser = parse_padding)]
    padding: Padding,
    /// Also time an N×N×N fp32 matrix product (0: skip).
    #[arg(long, default_value_t = 0)]
    matmul: i64,
    /// Print one JSON object per result on stdout (human-readable lines go to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CheckDeviceArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// WOS directory whose first texts are used.
    #[arg(long, default_value = "../shared/data/wos-sample")]
    data: PathBuf,
    /// Device to compare with the CPU (cuda, cuda:N, mps).
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Texts to run.
    #[arg(long, default_value_t = 16)]
    n: usize,
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Largest allowed |logit difference| in fp32; exit status 1 above it.
    #[arg(long, default_value_t = 1e-3)]
    tol: f64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The first Ctrl-C stops a run after its current step and writes its
    // records; a second one exits at once.
    encoder_bench::train::checkpoint::install_interrupt_handler();
    match cli.command {
        Command::Fit(args) => fit_cmd(*args),
        Command::Bench(args) => bench_cmd(*args),
        Command::CheckDevice(args) => check_device_cmd(*args),
        Command::Eval(args) => eval_cmd(*args),
        Command::Pretrain(args) => pretrain_cmd(*args),
        Command::Sweep(args) => sweep_cmd(*args),
        Command::Export(args) => export_cmd(*args),
        Command::Demo { epochs, out } => {
            let cli = Cli::parse_from(["encoder-bench", "fit", "--train-size", "168", "--max-len", "128", "--epochs", &epochs.to_string()]);
            let Command::Fit(mut args) = cli.command else { unreachable!("parsed a fit command") };
            args.out = out.unwrap_or_else(|| {
                format!("runs/demo-{}", SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)).into()
            });
            fit_cmd(*args)
        }
    }
}

fn fit_cmd(args: FitArgs) -> Result<()> {
    use encoder_bench::report::{Chart, LineChart};
    let started = Instant::now();
    let record_path = args.out.join("run.json");
    if record_path.exists() && !args.resume && !args.overwrite {
        anyhow::bail!("{} already holds a run; choose another --out, or pass --resume or --overwrite", args.out.display());
    }
    let device = encoder_bench::device::select_device(args.train.device.as_deref())?;
    let (ds, split) = args.data.load()?;
    let (mut model, tok, name) = args.model.load(ds.labels.clone(), device)?;
    let cfg = TrainConfig {
        checkpoint_dir: Some(args.out.join("checkpoints")),
        tokenizer_dir: tok.source().parent().map(std::path::Path::to_path_buf),
        overwrite: args.overwrite,
        ..args.train.config()
    };
    cfg.validate_for(device)?;
    let (train, test) = (tok.encode_dataset(&split.train, cfg.max_len)?, tok.encode_dataset(&split.test, cfg.max_len)?);
    // The seed's mode (no validation set): the test set chooses, and the record says so.
    let valid = split.valid.as_ref().map(|v| tok.encode_dataset(v, cfg.max_len)).transpose()?;
    let chosen_on = if valid.is_some() { "validation" } else { "test" };
    let valid = valid.as_ref().unwrap_or(&test);
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let out = if args.resume {
        encoder_bench::train::resume_and_test(model.as_mut(), &train, valid, &test, &cfg)?
    } else {
        fit_and_test(model.as_mut(), &train, valid, &test, &cfg)?
    };
    if out.history.epochs.iter().all(|e| e.steps == 0) {
        anyhow::bail!(
            "the run stopped ({:?}) before its first training step: nothing was written, and any earlier run in {} is kept",
            out.stop,
            args.out.display()
        );
    }
    let record = RunRecord {
        name: args.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model: name.clone(),
        data: ds.source.clone(),
        train_size: train.len(),
        valid_size: valid.len(),
        test_size: Some(test.len()),
        chosen_epoch: out.chosen_epoch,
        chosen_on: Some(chosen_on.into()),
        test_metrics: out.test.as_ref().map(|t| t.metrics.clone()),
        device: encoder_bench::device::device_name(device),
        config: cfg,
        history: out.history.clone(),
        final_metrics: out.last_validation.as_ref().map(|v| v.metrics.clone()),
        labels: ds.labels.names().to_vec(),
        stop: out.stop,
        wall_s: started.elapsed().as_secs_f64(),
        started_unix,
        versions: encoder_bench::report::Versions::current(),
    };
    record.save(&record_path)?;
    let mut frame = encoder_bench::report::history_frame(&[(name.clone(), record.config.batch_size, &out.history)]);
    encoder_bench::report::save_frame(&mut frame, &args.out.join("history.csv"))?;
    let runs = [(name, &out.history)];
    LineChart::accuracy_per_epoch(&runs).save(&args.out.join("accuracy"))?;
    LineChart::loss_per_epoch(&runs).save(&args.out.join("loss"))?;
    if let Some(t) = &out.test {
        encoder_bench::report::Heatmap::confusion(ds.labels.names(), &t.metrics.confusion).save(&args.out.join("confusion"))?;
        println!(
            "test set ({} texts) at epoch {} (chosen on the {chosen_on} set):\n{}",
            test.len(),
            out.chosen_epoch.unwrap_or(0),
            t.metrics.report(ds.labels.names())
        );
    }
    println!("run record: {} (history.csv, accuracy/loss/confusion .svg/.png, checkpoints/)", record_path.display());
    Ok(())
}

fn eval_cmd(args: EvalArgs) -> Result<()> {
    use encoder_bench::report::Chart;
    let device = encoder_bench::device::select_device(args.device.as_deref())?;
    let (ds, split) = args.data.load()?;
    let source = ModelSource::parse(&args.checkpoint.to_string_lossy());
    let (model, report) = load_classifier(&source, None, device, 0)?;
    if !report.missing.is_empty() {
        anyhow::bail!("{} is not a fine-tuned classifier: missing {}", args.checkpoint.display(), report.missing.join(", "));
    }
    // Scored against the model's classes: by name, or by id for bare integer labels.
    let data = if args.all { &ds } else { &split.test }.aligned_to(model.labels())?;
    let Some(tok_dir) = args.tokenizer.clone().or(source.resolve()?.tokenizer_dir) else {
        anyhow::bail!(
            "{} holds no tokenizer (tokenizer.json or vocab.txt): pass --tokenizer DIR, the tokenizer the model was fine-tuned with",
            args.checkpoint.display()
        );
    };
    let tok = TextTokenizer::from_dir(&tok_dir)?;
    let enc = tok.encode_dataset(&data, args.max_len)?;
    let cfg = TrainConfig {
        max_len: args.max_len,
        eval_batch_size: Some(args.batch_size),
        progress: ProgressMode::Auto,
        ..TrainConfig::default()
    };
    cfg.validate_for(device)?;
    let v = validate(model.as_ref(), &enc, &cfg)?;
    let names = model.labels().names().to_vec();
    let text = v.metrics.report(&names);
    println!("{} texts, loss {:.4}\n{text}", enc.len(), v.loss);
    if let Some(out) = &args.out {
        if out.exists() && !out.is_dir() {
            anyhow::bail!("--out {}: a file of that name exists; expected a directory (it is created if missing)", out.display());
        }
        std::fs::create_dir_all(out).with_context(|| format!("creating --out {}", out.display()))?;
        encoder_bench::error::write_atomic(out.join("metrics.json"), encoder_bench::report::to_json_pretty(&v.metrics)?.as_bytes())?;
        encoder_bench::error::write_atomic(out.join("report.txt"), text.as_bytes())?;
        encoder_bench::report::Heatmap::confusion(&names, &v.metrics.confusion).save(&out.join("confusion"))?;
        println!("written: {}/metrics.json, report.txt, confusion.svg/.png", out.display());
    }
    Ok(())
}

fn sweep_cmd(args: SweepArgs) -> Result<()> {
    use encoder_bench::sweep::{JobOutcome, run_planned_job};
    let device = || encoder_bench::device::select_device(args.train.device.as_deref());
    if let Some(dir) = &args.collect {
        let s = Sweep::collect(dir)?;
        return report_sweep(&s, &dir.join("summary"));
    }
    if let (Some(dir), Some(n)) = (&args.plan, args.run_job) {
        encoder_bench::train::checkpoint::install_interrupt_handler();
        match run_planned_job(dir, n, device()?)? {
            JobOutcome::AlreadyDone(r) => {
                println!("job {n} had already finished (test accuracy {:.1}%): nothing to do", r.test.accuracy * 100.0)
            }
            JobOutcome::Ran(r) => println!("job {n} finished: test accuracy {:.1}% at epoch {:?}", r.test.accuracy * 100.0, r.chosen_epoch),
        }
        return Ok(());
    }
    let plan = sweep_plan(&args)?;
    if let Some(dir) = &args.plan {
        let commands = plan.write(dir)?;
        println!(
            "{} jobs written to {}: run each (any order, any machine sharing the paths), then collect:",
            commands.len(),
            dir.display()
        );
        println!("  xargs -P 2 -I{{}} sh -c {{}} < {}/jobs.txt", dir.display());
        println!("  encoder-bench sweep --collect {}", dir.display());
        return Ok(());
    }
    if args.out.join("sweep.json").exists() {
        anyhow::bail!("{} already holds a sweep; choose another --out", args.out.display());
    }
    let s = sweep(&plan, device()?, |r| {
        eprintln!(
            "{}: test accuracy {:.1}% (epoch {:?})",
            encoder_bench::sweep::describe(&plan, &r.job),
            r.test.accuracy * 100.0,
            r.chosen_epoch
        )
    })?;
    report_sweep(&s, &args.out)
}

fn sweep_plan(args: &SweepArgs) -> Result<SweepPlan> {
    let mut models = Vec::new();
    for spec in &args.models {
        let (name, src) = spec.split_once('=').with_context(|| format!("--model `{spec}`: expected NAME=SOURCE"))?;
        models.push(SweepModel::new(name, ModelSource::parse(src)).with_tokenizer_if_missing(&args.tokenizer));
    }
    for spec in &args.electras {
        let (name, files) = spec.split_once('=').with_context(|| format!("--electra `{spec}`: expected NAME=CONFIG,STATE_DICT"))?;
        let (cfg, weights) = files.split_once(',').with_context(|| format!("--electra `{spec}`: expected NAME=CONFIG,STATE_DICT"))?;
        models.push(SweepModel::new(name, ModelSource::state_dict(cfg, weights)).with_tokenizer(&args.tokenizer));
    }
    if models.is_empty() {
        models.push(SweepModel::new("BERT", ModelSource::parse("models/minilm")));
    }
    let ds = args.data.read()?;
    let split = match args.folds {
        0 => anyhow::bail!("--folds 0: expected 1 (the --train-size split) or more (k-fold cross-validation)"),
        1 => args.data.split_spec(&ds)?,
        k => SplitSpec { test: TestSplit::KFold { k, seed: args.data.split_seed }, ..args.data.split_spec(&ds)? },
    };
    let plan = SweepPlan {
        data: DataSpec {
            path: args.data.data.clone(),
            text_column: args.data.text_column.clone(),
            label_column: args.data.label_column.clone(),
            first: None,
        },
        data_fingerprint: Some(ds.fingerprint()),
        split,
        models,
        batch_sizes: args.batch_sizes.clone(),
        seeds: args.seeds.clone(),
        baseline: !args.no_baseline,
        train: TrainConfig { checkpoint_dir: None, ..args.train.config() },
    };
    plan.validate()?;
    Ok(plan)
}

fn report_sweep(s: &Sweep, out: &std::path::Path) -> Result<()> {
    use encoder_bench::report::Chart;
    s.save(out)?;
    s.accuracy_chart().save(&out.join("accuracy"))?;
    for (m, c) in s.plan.models.iter().zip(s.epoch_charts()) {
        c.save(&out.join(format!("epochs-{}", m.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))))?;
    }
    println!("{}", s.report_frame());
    for c in s.conclusions() {
        println!("- {c}");
    }
    println!(
        "written: {}/report, cells, runs, epochs, comparisons .csv/.parquet; sweep.json; accuracy and epochs-* .svg/.png",
        out.display()
    );
    Ok(())
}

fn pretrain_cmd(args: PretrainArgs) -> Result<()> {
    use encoder_bench::models::ElectraConfig;
    use encoder_bench::train::pretrain::{Corpus, PretrainConfig, pretrain_to_dir};
    let device = encoder_bench::device::select_device(args.device.as_deref())?;
    let model_cfg: ElectraConfig = match &args.config {
        Some(p) => ElectraConfig::from_file(p)?,
        None => ElectraConfig::seed_shape(),
    };
    let tok = TextTokenizer::from_dir(&args.tokenizer)?;
    let cfg = PretrainConfig {
        max_len: args.max_len,
        batch_size: args.batch_size,
        optimizer: OptimizerConfig {
            learning_rate: args.learning_rate,
            warmup_ratio: args.warmup_ratio,
            ..OptimizerConfig::electra_pretraining()
        },
        stop: StopConfig {
            max_steps: Some(args.max_steps),
            time_budget_s: Some(args.minutes * 60.0),
            stop_file: args.stop_file.clone(),
            ..StopConfig::default()
        },
        log_every: args.log_every,
        seed: args.seed,
        progress: ProgressMode::Auto,
        checkpoint_dir: Some(args.out.join("checkpoints")),
        precision: args.precision,
        objective: args.objective,
        generator_size: args.generator_size,
        ..Default::default()
    };
    // Before the corpus is tokenised: a bad number is found at once.
    cfg.validate()?;
    let corpus = Corpus::from_text_file(&args.corpus, &tok, cfg.max_len)?;
    println!(
        "corpus {}: {} documents → {} sequences, {} tokens; model {} layers × {} hidden",
        args.corpus.display(),
        corpus.documents,
        corpus.len(),
        corpus.num_tokens(),
        model_cfg.num_hidden_layers,
        model_cfg.hidden_size
    );
    let out = pretrain_to_dir(&model_cfg, &tok, &corpus, &cfg, &args.out, device, args.resume)?;
    println!("{} parameters; stopped: {:?} after {} steps", out.parameters, out.stop, out.steps);
    println!("step  epoch   loss   masked-acc  rtd-loss  rtd-acc    tokens   PFLOP    seconds");
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    for r in &out.history.records {
        println!(
            "{:>4}  {:>5.2}  {:>6.3}  {:>9.3}  {:>8}  {:>7}  {:>8}  {:>6.4}  {:>7.1}{}",
            r.step,
            r.epoch,
            r.loss,
            r.accuracy,
            opt(r.detection_loss),
            opt(r.detection_accuracy),
            r.tokens,
            r.flops / 1e15,
            r.elapsed_s,
            if r.partial { "  (partial window)" } else { "" }
        );
    }
    println!(
        "{} tokens ({} with padding), {:.3} PFLOP estimated, {:.0} s, {:.0} tokens/s; written to {}",
        out.tokens,
        out.padded_tokens,
        out.flops / 1e15,
        out.elapsed_s,
        out.tokens as f64 / out.elapsed_s.max(1e-9),
        args.out.display()
    );
    Ok(())
}

/// Resolves and reports the device on stderr, keeping stdout for JSON.
fn device_quietly(request: Option<&str>) -> Result<Device> {
    let choice = encoder_bench::device::resolve_device(request)?;
    eprintln!("Using device: {choice}");
    Ok(choice.device)
}

fn bench_cmd(args: BenchArgs) -> Result<()> {
    encoder_bench::bench::check_matmul_size(args.matmul)?;
    let device = device_quietly(args.device.as_deref())?;
    let ds = Dataset::read_wos(&args.data, WosLevel::L1)?;
    let (mut model, tok, name) = args.model.load(ds.labels.clone(), device)?;
    let matmul = (args.matmul > 0).then(|| encoder_bench::bench::matmul_gflops(device, args.matmul, tch::Kind::Float));
    for &precision in &args.precision {
        let cfg = encoder_bench::bench::BenchConfig {
            batch_size: args.batch_size,
            max_len: args.max_len,
            warmup_steps: args.warmup,
            train_steps: args.train_steps,
            eval_batches: args.eval_batches,
            precision,
            padding: args.padding,
        };
        let r = encoder_bench::bench::run(&name, model.as_mut(), &tok, &ds, &cfg)?;
        eprintln!(
            "{name} [{precision}, {}, batch {}, max_len {}]: train {:.1} samples/s ({:.1} GFLOP/s), eval {:.1} samples/s, peak RSS {:.0} MiB",
            r.device,
            cfg.batch_size,
            cfg.max_len,
            r.train_samples_per_s,
            r.train_gflops,
            r.eval_samples_per_s,
            r.peak_rss_mib.unwrap_or(f64::NAN)
        );
        if args.json {
            let mut v = serde_json::to_value(&r)?;
            v["matmul_gflops"] = serde_json::json!(matmul);
            println!("{}", serde_json::to_string(&v)?);
        }
    }
    if let Some(g) = matmul {
        eprintln!("matmul {n}x{n}x{n} fp32: {g:.1} GFLOP/s", n = args.matmul);
    }
    Ok(())
}

fn check_device_cmd(args: CheckDeviceArgs) -> Result<()> {
    use encoder_bench::models::{Precision, with_precision};
    encoder_bench::bench::DeviceCheck { n: args.n, max_len: args.max_len, tol: args.tol }.validate()?;
    let device = device_quietly(Some(&args.device))?;
    let ds = Dataset::read_wos(&args.data, WosLevel::L1)?;
    let (mut model, tok, name) = args.model.load(ds.labels.clone(), Device::Cpu)?;
    let idx: Vec<usize> = (0..args.n.min(ds.len())).collect();
    let enc = tok.encode_dataset(&ds.subset(&idx), args.max_len)?;
    encoder_bench::models::check_encoded(&enc, model.as_ref(), "check-device texts")?;
    let logits = |model: &dyn TextClassifier, dev: Device, p: Precision| -> Result<tch::Tensor> {
        let mut out = Vec::new();
        for b in enc.batches(8, Padding::Dynamic, None, dev)? {
            out.push(tch::no_grad(|| with_precision(p, || model.forward_t(&b.ids, &b.mask, Some(&b.token_type_ids), false))));
        }
        Ok(tch::Tensor::cat(&out, 0).to_kind(tch::Kind::Float).to_device(Device::Cpu))
    };
    let cpu = logits(model.as_ref(), Device::Cpu, Precision::Fp32)?;
    encoder_bench::device::move_var_store(model.var_store_mut(), device)?;
    let dev32 = logits(model.as_ref(), device, Precision::Fp32)?;
    // bf16 only where it is offered (not on MPS).
    let dev16 = Precision::Bf16.check_device(device).is_ok().then(|| logits(model.as_ref(), device, Precision::Bf16)).transpose()?;
    let diff = |t: &tch::Tensor| (t - &cpu).abs().max().double_value(&[]);
    let (d32, d16) = (diff(&dev32), dev16.as_ref().map(diff));
    let scale = cpu.abs().max().double_value(&[]);
    let agree = dev16
        .as_ref()
        .map(|d| d.argmax(-1, false).eq_tensor(&cpu.argmax(-1, false)).to_kind(tch::Kind::Float).mean(tch::Kind::Float).double_value(&[]));
    let device_name = encoder_bench::device::device_name(device);
    println!(
        "{}",
        serde_json::json!({"model": name, "device": device_name, "texts": enc.len(), "max_len": args.max_len,
            "max_abs_logit": scale, "fp32_max_abs_diff": d32, "bf16_max_abs_diff": d16, "bf16_argmax_agreement": agree, "tol": args.tol,
            "ok": d32 <= args.tol})
    );
    if d32 > args.tol {
        anyhow::bail!("{device_name} fp32 logits differ from the CPU's by {d32:.3e} (> {:.1e})", args.tol);
    }
    Ok(())
}

// ---- export: a fine-tuned checkpoint as a transformers model directory ----

#[derive(Args)]
struct ExportArgs {
    /// A saved classifier directory (e.g. runs/fit/checkpoints/best).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Output directory, ready for AutoModelForSequenceClassification.from_pretrained.
    #[arg(long)]
    out: PathBuf,
    /// Tokenizer directory (default: the checkpoint's, else models/minilm).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Dataset whose label names go into id2label/label2id (WOS directory, .csv or .parquet); default: the checkpoint's.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Label column for CSV / Parquet.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Text column for CSV / Parquet.
    #[arg(long, default_value = "text")]
    text_column: String,
}

fn export_cmd(args: ExportArgs) -> Result<()> {
    use encoder_bench::models::export::export_classifier;
    let labels = match &args.data {
        Some(data) => Some(
            Dataset::read_path(data, &args.text_column, &args.label_column).with_context(|| format!("--data {}", data.display()))?.labels,
        ),
        None => None,
    };
    let source = ModelSource::parse(&args.checkpoint.to_string_lossy());
    let has_tokenizer = source.resolve()?.tokenizer_dir.is_some();
    let tok = args.tokenizer.clone().or_else(|| (!has_tokenizer).then(|| PathBuf::from("models/minilm")));
    let e = export_classifier(&source, labels, tok.as_deref(), &args.out)?;
    println!("exported {} ({}, {} head; labels {:?})", e.dir.display(), e.architecture, e.head, e.labels);
    let trust = if e.needs_remote_code { ", trust_remote_code=True" } else { "" };
    println!("load in Python: AutoModelForSequenceClassification.from_pretrained(\"{}\"{trust})", e.dir.display());
    Ok(())
}
