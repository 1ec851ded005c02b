//! The seed's head against transformers' on MiniLM and the WOS sample split
//! (first 168 / last 42): final test accuracy per seed, then the mean and a
//! 95% t-interval per head. `cargo run --release --example wos_heads -- 0 1 2`
//! (`EPOCHS`, `MAX_LEN` override 5 and 128).
use encoder_bench::models::{Head, load_classifier_with_head};
use encoder_bench::prelude::*;

/// Two-sided 95% Student t quantiles for 1..=10 degrees of freedom.
const T95: [f64; 10] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

fn main() -> Result<()> {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (epochs, max_len) = (env("EPOCHS", 5), env("MAX_LEN", 128));
    let seeds: Vec<u64> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let seeds = if seeds.is_empty() { vec![0, 1, 2] } else { seeds };
    let ds = Dataset::read_wos("../shared/data/wos-sample", WosLevel::L1)?;
    let split = Split::first_n(&ds, 168)?;
    let tok = TextTokenizer::from_dir("models/minilm")?;
    let (train, test) = (tok.encode_dataset(&split.train, max_len)?, tok.encode_dataset(&split.test, max_len)?);
    for head in [Head::Cls, Head::Transformers] {
        let mut accs = Vec::new();
        for &seed in &seeds {
            let src = ModelSource::parse("models/minilm");
            let (mut m, _) = load_classifier_with_head(&src, Some(ds.labels.clone()), Some(head), tch::Device::Cpu, seed as i64)?;
            let cfg = TrainConfig {
                max_len,
                batch_size: 16,
                optimizer: OptimizerConfig { max_grad_norm: Some(1.0), ..OptimizerConfig::transformers() },
                stop: StopConfig { epochs, ..Default::default() },
                seed,
                progress: ProgressMode::Quiet,
                ..TrainConfig::transformers_recipe()
            };
            let out = fit(m.as_mut(), &train, &test, &cfg)?;
            let acc = out.last_validation.map(|v| v.metrics.accuracy).unwrap_or(f64::NAN);
            println!("{head} head, seed {seed}: test accuracy {:.1} %", acc * 100.0);
            accs.push(acc);
        }
        let n = accs.len() as f64;
        let mean = accs.iter().sum::<f64>() / n;
        let sd = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
        let half = T95.get(accs.len().saturating_sub(2)).map_or(f64::NAN, |t| t * sd / n.sqrt());
        println!("{head} head: mean {:.1} % ± {:.1} (95% t-interval, n = {})", mean * 100.0, half * 100.0, accs.len());
    }
    Ok(())
}
