//! The notebook's sections 6 and 7 without a notebook: ELECTRAs pre-trained
//! per fold for each `PRETRAIN_MINUTES` budget with each `PRETRAIN_OBJECTIVE`,
//! fine-tuned in the sweep beside BERT and the baseline, then the curve's
//! cost table and computed conclusions. Settings are the notebook's
//! environment variables, e.g. the README's objective comparison:
//!
//! ```text
//! PRETRAIN_OBJECTIVE=mlm,rtd PRETRAIN_MINUTES=0,1,4 SWEEP_BATCH_SIZES=16 SWEEP_EPOCHS=5 \
//!     cargo run --example pretraining_curve -- target/curve
//! ```
//!
//! The argument is where the weights (reused when nothing changed) and the
//! sweep's tables go (default `target/curve`).
//!
//! `cargo run` builds this crate itself unoptimised (its dependencies are
//! optimised), and pre-training runs at half the kernel's speed: 1,290 against
//! 2,790 tokens/s in bf16 on the 2-core CPU of 2026-12-02. For numbers the
//! notebook would give, build the crate as the kernel does (about a minute):
//! `CARGO_PROFILE_DEV_OPT_LEVEL=2 cargo run --example pretraining_curve`.
use encoder_bench::notebook::NotebookSettings;
use encoder_bench::sweep::{describe, sweep};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/curve".into()));
    // The notebook's defaults are relative to notebooks/; these to the repository root.
    let settings = NotebookSettings::from_vars(|k| {
        std::env::var(k).ok().or_else(|| match k {
            "WOS_DIR" => Some("../shared/data/wos-sample".into()),
            "BERT_MODEL" => Some("models/minilm".into()),
            _ => None,
        })
    })?;
    let device = encoder_bench::device::select_device(None)?;
    for d in settings.deviations() {
        println!("- {d}");
    }
    let ds = settings.dataset()?;
    let curve = settings.pretraining_curve(&ds, "models/minilm".as_ref(), &out.join("electra"), device)?;
    let plan = settings.sweep_plan(&ds, &curve)?;
    let sw = sweep(&plan, device, |r| println!("{}: test accuracy {:.1}%", describe(&plan, &r.job), r.test.accuracy * 100.0))?;
    sw.save(out.join("sweep"))?;
    println!("\n{}", curve.compute_table(&sw).to_text());
    for line in curve.conclusions(&sw).into_iter().chain(sw.conclusions()) {
        println!("- {line}");
    }
    Ok(())
}
