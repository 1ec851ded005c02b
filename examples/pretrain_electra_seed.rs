//! Pre-trains an ELECTRA generator in the seed notebook's shape (vocabulary
//! 30522, embeddings 64, hidden 196, 18 layers, 4 heads, intermediate 784)
//! with masked-LM on a plain-text corpus (the WOS sample's abstracts by
//! default) for a bounded time, and writes a directory the fine-tuning loader
//! takes as it takes the seed's `babylm_model.bin`:
//!
//! ```sh
//! cargo run --example pretrain_electra_seed -- --minutes 4 --out models/electra-seed
//! ```
//!
//! The output holds `config.json`, `model.safetensors` (ElectraForMaskedLM
//! keys), `tokenizer.json` and `pretrain_summary.json` (loss curve, tokens,
//! FLOPs, time). Fine-tune it with `ModelSource::parse("models/electra-seed")`.
//! Create the `--stop-file` to end early; `--resume` continues from
//! `<out>/checkpoints/last`.
use clap::Parser;
use encoder_bench::models::ElectraConfig;
use encoder_bench::tokenizer::TextTokenizer;
use encoder_bench::train::ProgressMode;
use encoder_bench::train::pretrain::{Corpus, DEFAULT_CORPUS, PretrainConfig, pretrain_to_dir};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Masked-LM pre-training of a seed-shaped ELECTRA")]
struct Args {
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
}

/// The seed notebook's ELECTRA-small variant.
const SEED_SHAPE: &str = r#"{"vocab_size": 30522, "embedding_size": 64, "hidden_size": 196, "num_hidden_layers": 18,
    "num_attention_heads": 4, "intermediate_size": 784, "max_position_embeddings": 512, "pad_token_id": 0}"#;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = encoder_bench::device::select_device(args.device.as_deref())?;
    let model_cfg: ElectraConfig = match &args.config {
        Some(p) => ElectraConfig::from_file(p)?,
        None => serde_json::from_str(SEED_SHAPE)?,
    };
    let tok = TextTokenizer::from_dir(&args.tokenizer)?;
    let cfg = PretrainConfig {
        max_len: args.max_len,
        batch_size: args.batch_size,
        max_steps: Some(args.max_steps),
        learning_rate: args.learning_rate,
        warmup_ratio: args.warmup_ratio,
        log_every: args.log_every,
        seed: args.seed,
        time_budget_s: Some(args.minutes * 60.0),
        stop_file: args.stop_file.clone(),
        progress: ProgressMode::Auto,
        checkpoint_dir: Some(args.out.join("checkpoints")),
        ..Default::default()
    };
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
    let (model, out) = pretrain_to_dir(&model_cfg, &tok, &corpus, &cfg, &args.out, device, args.resume)?;
    println!("{} parameters; stopped: {:?} after {} steps", model.num_parameters(), out.stop, out.steps);
    println!("step  epoch   loss   masked-acc   tokens   PFLOP    seconds");
    for r in &out.history.records {
        println!(
            "{:>4}  {:>5.2}  {:>6.3}  {:>9.3}  {:>8}  {:>6.4}  {:>7.1}{}",
            r.step,
            r.epoch,
            r.loss,
            r.accuracy,
            r.tokens,
            r.flops / 1e15,
            r.elapsed_s,
            if r.partial { "  (partial window)" } else { "" }
        );
    }
    println!(
        "{} tokens ({} with padding), {:.3} PFLOP estimated, {:.0} s; written to {}",
        out.tokens,
        out.padded_tokens,
        out.flops / 1e15,
        out.elapsed_s,
        args.out.display()
    );
    Ok(())
}
