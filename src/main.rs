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
    /// Measure training and evaluation samples/s (compare with bench/reference.py).
    Bench(Box<BenchArgs>),
    /// Compare a model's logits on a device with the CPU's (GPU/MPS sanity check).
    CheckDevice(Box<CheckDeviceArgs>),
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
            let (model, report) = load_classifier(&source, Some(labels), device, 0)?;
            eprintln!("{report}");
            (model, source.resolve()?.tokenizer_dir, source.to_string())
        };
        let tok_dir = self.tokenizer.clone().or(tok_dir).unwrap_or_else(|| "models/minilm".into());
        let tok = TextTokenizer::from_dir(&tok_dir)?;
        Ok((model, tok, self.name.clone().unwrap_or(default_name)))
    }
}

fn parse_padding(s: &str) -> std::result::Result<Padding, String> {
    match s {
        "max" | "max_len" | "max-len" => Ok(Padding::MaxLen),
        "dynamic" => Ok(Padding::Dynamic),
        _ => Err(format!("`{s}`: expected `max` (pad to --max-len, as the seed) or `dynamic`")),
    }
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
    /// `max` (pad every batch to --max-len, as the seed) or `dynamic`.
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
    match cli.command {
        Command::Fit(args) => fit_cmd(*args),
        Command::Bench(args) => bench_cmd(*args),
        Command::CheckDevice(args) => check_device_cmd(*args),
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

/// Resolves and reports the device on stderr, keeping stdout for JSON.
fn device_quietly(request: Option<&str>) -> Result<Device> {
    let choice = encoder_bench::device::resolve_device(request)?;
    eprintln!("Using device: {choice}");
    Ok(choice.device)
}

fn bench_cmd(args: BenchArgs) -> Result<()> {
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
    let device = device_quietly(Some(&args.device))?;
    let ds = Dataset::read_wos(&args.data, WosLevel::L1)?;
    let (mut model, tok, name) = args.model.load(ds.labels.clone(), Device::Cpu)?;
    let idx: Vec<usize> = (0..args.n.min(ds.len())).collect();
    let enc = tok.encode_dataset(&ds.subset(&idx), args.max_len)?;
    let logits = |model: &dyn TextClassifier, dev: Device, p: Precision| -> Result<tch::Tensor> {
        let mut out = Vec::new();
        for b in enc.batches(8, Padding::Dynamic, None, dev)? {
            out.push(tch::no_grad(|| with_precision(p, || model.forward_t(&b.ids, &b.mask, Some(&b.token_type_ids), false))));
        }
        Ok(tch::Tensor::cat(&out, 0).to_kind(tch::Kind::Float).to_device(Device::Cpu))
    };
    let cpu = logits(model.as_ref(), Device::Cpu, Precision::Fp32)?;
    model.var_store_mut().set_device(device);
    let dev32 = logits(model.as_ref(), device, Precision::Fp32)?;
    let dev16 = logits(model.as_ref(), device, Precision::Bf16)?;
    let diff = |t: &tch::Tensor| (t - &cpu).abs().max().double_value(&[]);
    let (d32, d16) = (diff(&dev32), diff(&dev16));
    let scale = cpu.abs().max().double_value(&[]);
    let agree = dev16.argmax(-1, false).eq_tensor(&cpu.argmax(-1, false)).to_kind(tch::Kind::Float).mean(tch::Kind::Float).double_value(&[]);
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
