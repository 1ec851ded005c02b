//! Fine-tunes the shipped MiniLM on the WOS sample split (first 168 / last 42)
//! with the settings Python transformers was measured with, for several seeds,
//! and prints test accuracy per epoch: `cargo run --example wos_minilm -- 0 1 2`
//! (`PRECISION=bf16` for bf16 matrix products).
use encoder_bench::prelude::*;

fn main() -> Result<()> {
    let precision: Precision = std::env::var("PRECISION").unwrap_or_else(|_| "fp32".into()).parse()?;
    let seeds: Vec<u64> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let ds = Dataset::read_wos("../shared/data/wos-sample", WosLevel::L1)?;
    let split = Split::first_n(&ds, 168)?;
    let tok = TextTokenizer::from_dir("models/minilm")?;
    let (train, test) = (tok.encode_dataset(&split.train, 128)?, tok.encode_dataset(&split.test, 128)?);
    for seed in if seeds.is_empty() { vec![0] } else { seeds } {
        let (mut m, _) = load_classifier(&ModelSource::parse("models/minilm"), Some(ds.labels.clone()), tch::Device::Cpu, seed as i64)?;
        let cfg = TrainConfig {
            max_len: 128,
            batch_size: 16,
            optimizer: OptimizerConfig { max_grad_norm: Some(1.0), ..OptimizerConfig::transformers() },
            stop: StopConfig { epochs: 5, ..Default::default() },
            seed,
            precision,
            progress: ProgressMode::Quiet,
            ..TrainConfig::transformers_recipe()
        };
        let out = fit(m.as_mut(), &train, &test, &cfg)?;
        let accs: Vec<String> = out.history.epochs.iter().map(|e| format!("{:.0}", e.accuracy.unwrap_or(0.0) * 100.0)).collect();
        println!("{precision} seed {seed}: test accuracy per epoch {} %", accs.join(" / "));
    }
    Ok(())
}
