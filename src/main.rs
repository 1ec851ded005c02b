//! `encoder-bench`: the command-line edge of the library.
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use encoder_bench::prelude::*;
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

#[derive(Args)]
struct FitArgs {
    /// WOS directory (X.txt + YL1.txt), or a .csv / .parquet file.
    #[arg(long, default_value = "../shared/data/wos-sample")]
    data: PathBuf,
    /// Text and label columns for CSV / Parquet.
    #[arg(long, default_value = "text")]
    text_column: String,
    /// Label column for CSV / Parquet.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Model: a directory or hub id (ignored when --config/--state-dict are given).
    #[arg(long, default_value = "models/minilm")]
    model: String,
    /// ELECTRA-style config.json for --state-dict.
    #[arg(long, requires = "state_dict")]
    config: Option<PathBuf>,
    /// PyTorch state dict (e.g. babylm_model.bin) to load with --config.
    #[arg(long, requires = "config")]
    state_dict: Option<PathBuf>,
    /// Tokenizer directory (tokenizer.json or vocab.txt) when the model has none.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Training examples: the first N rows (the seed's split); default 80%.
    #[arg(long)]
    train_size: Option<usize>,
    /// Device: cpu, cuda, cuda:N, mps (default: auto / ENCODER_BENCH_DEVICE).
    #[arg(long)]
    device: Option<String>,
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 1e-5)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (refuses to overwrite an existing run record).
    #[arg(long, default_value = "runs/fit")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Fit(args) => fit_cmd(*args),
        Command::Demo { epochs, out } => fit_cmd(FitArgs {
            data: "../shared/data/wos-sample".into(),
            text_column: "text".into(),
            label_column: "label".into(),
            model: "models/minilm".into(),
            config: None,
            state_dict: None,
            tokenizer: None,
            train_size: Some(168),
            device: None,
            max_len: 128,
            batch_size: 16,
            epochs,
            lr: 5e-5,
            seed: 0,
            out: out.unwrap_or_else(|| {
                format!("runs/demo-{}", SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)).into()
            }),
        }),
    }
}

fn load_data(args: &FitArgs) -> Result<Dataset> {
    let ext = args.data.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(match ext {
        "csv" => Dataset::read_csv(&args.data, &args.text_column, &args.label_column)?,
        "parquet" => Dataset::read_parquet(&args.data, &args.text_column, &args.label_column)?,
        _ => Dataset::read_wos(&args.data, WosLevel::L1)?,
    })
}

fn fit_cmd(args: FitArgs) -> Result<()> {
    let started = Instant::now();
    let record_path = args.out.join("run.json");
    if record_path.exists() {
        anyhow::bail!("{} already holds a run; choose another --out", args.out.display());
    }
    let device = encoder_bench::device::select_device(args.device.as_deref())?;
    let ds = load_data(&args)?;
    let n_train = args.train_size.unwrap_or(ds.len() * 4 / 5);
    let split = Split::first_n(&ds, n_train)?;
    println!("data: {} ({} train / {} test, {} classes)", ds.source, split.train.len(), split.test.len(), ds.num_classes());
    let source = match (&args.config, &args.state_dict) {
        (Some(c), Some(w)) => ModelSource::state_dict(c, w),
        _ => ModelSource::parse(&args.model),
    };
    let (mut model, report) = load_classifier(&source, Some(ds.labels.clone()), device, args.seed as i64)?;
    println!("{report}");
    let tok_dir = args.tokenizer.clone().or(source.resolve()?.tokenizer_dir).context("the model has no tokenizer; pass --tokenizer DIR")?;
    let tok = TextTokenizer::from_dir(&tok_dir)?;
    let (train, test) = (tok.encode_dataset(&split.train, args.max_len)?, tok.encode_dataset(&split.test, args.max_len)?);
    let cfg = TrainConfig {
        max_len: args.max_len,
        batch_size: args.batch_size,
        epochs: args.epochs,
        learning_rate: args.lr,
        seed: args.seed,
        checkpoint_dir: Some(args.out.join("checkpoints")),
        ..TrainConfig::transformers_recipe()
    };
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let out = fit(model.as_mut(), &train, &test, &cfg)?;
    let record = RunRecord {
        name: args.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model: source.to_string(),
        data: ds.source.clone(),
        train_size: train.len(),
        valid_size: test.len(),
        device: encoder_bench::device::device_name(device),
        config: cfg,
        history: out.history,
        final_metrics: out.last_validation.as_ref().map(|v| v.metrics.clone()),
        labels: ds.labels.names().to_vec(),
        stop: out.stop,
        wall_s: started.elapsed().as_secs_f64(),
        started_unix,
        versions: encoder_bench::report::Versions::current(),
    };
    record.save(&record_path)?;
    if let Some(v) = &out.last_validation {
        println!("{}", v.metrics.report(ds.labels.names()));
    }
    println!("run record: {}", record_path.display());
    Ok(())
}
