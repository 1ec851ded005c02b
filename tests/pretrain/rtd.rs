//! Replaced-token detection (ELECTRA's objective): the generator shares the
//! discriminator's embeddings, the discriminator learns to find replaced
//! tokens, a run resumes exactly, the output loads in Python `transformers`
//! as `ElectraForPreTraining` (and its generator as `ElectraForMaskedLM`)
//! with the same logits, and fine-tuning takes it. Tiny models throughout.
use super::{python, run_python, serial, tiny_config, tokenizer, wos_lines};
use encoder_bench::data::LabelMap;
use encoder_bench::models::{ElectraForMaskedLM, ElectraRtd, ModelSource, load_classifier, read_weights};
use encoder_bench::train::pretrain::{Corpus, Objective, PretrainConfig, pretrain, pretrain_to_dir, resume_pretraining};
use encoder_bench::train::{OptimizerConfig, ProgressMode, StopConfig, StopReason};
use std::collections::{HashMap, HashSet};
use tch::{Device, Kind, Tensor};

fn rtd_cfg() -> PretrainConfig {
    PretrainConfig {
        max_len: 32,
        batch_size: 8,
        stop: StopConfig { epochs: 3, ..Default::default() },
        optimizer: OptimizerConfig { learning_rate: 2e-3, ..OptimizerConfig::electra_pretraining() },
        log_every: 4,
        progress: ProgressMode::Quiet,
        objective: Objective::Rtd,
        generator_size: 0.5,
        ..Default::default()
    }
}

#[test]
fn the_discriminator_starts_from_the_masked_lm_twin_and_shares_its_embeddings_with_the_generator() {
    let _guard = serial();
    let cfg = tiny_config();
    let rtd = ElectraRtd::random(&cfg, 0.5, Device::Cpu, 3);
    let mlm = ElectraForMaskedLM::random(&cfg, Device::Cpu, 3);
    let (rv, mv) = (rtd.var_store().variables(), mlm.var_store().variables());
    let encoder: Vec<&String> = mv.keys().filter(|k| k.starts_with("electra.")).collect();
    assert!(encoder.len() > 20);
    for k in encoder {
        assert!(rv[k].equal(&mv[k]), "{k}: the random-init twin would not be the discriminator's start");
    }
    let g = rtd.generator_config();
    assert_eq!((g.hidden_size, g.num_attention_heads, g.intermediate_size), (16, 2, 24));
    assert!(rv.contains_key("generator.electra.encoder.layer.1.output.dense.weight"));
    // One table, trained by both losses: no generator copy of the embeddings exists.
    assert!(rv.keys().all(|k| !k.starts_with("generator.electra.embeddings.")), "{:?}", rv.keys().collect::<Vec<_>>());
    let ids = Tensor::from_slice(&[101i64, 7592, 2088, 102]).view([1, 4]);
    let ones = ids.ones_like();
    let at = ids.eq(7592);
    let loss = rtd.generator_logits(&ids, &ones, &at, true).sum(Kind::Float);
    loss.backward();
    let grad = rtd.embeddings().word_embeddings.ws.grad();
    assert!(grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0, "the generator's loss does not reach the shared table");
}

#[test]
fn replaced_token_detection_learns_and_resumes_exactly() {
    let _guard = serial();
    let tok = tokenizer();
    let corpus = Corpus::from_texts(&wos_lines(24), &tok, 32).unwrap();
    let mcfg = tiny_config();
    let mut base = rtd_cfg();
    base.stop.epochs = 4;
    let mut a = ElectraRtd::random(&mcfg, base.generator_size, Device::Cpu, 5);
    let full = pretrain(&mut a, &corpus, &base).unwrap();
    let recs = &full.history.records;
    let (first, last) = (&recs[0], recs.last().unwrap());
    println!("{:#?}", recs.iter().map(|r| (r.step, r.loss, r.detection_loss, r.detection_accuracy)).collect::<Vec<_>>());
    let (d0, d1) = (first.detection_loss.unwrap(), last.detection_loss.unwrap());
    // ln 2 = 0.693 is a coin; replaced tokens are ~13% of real ones, so
    // "never replaced" scores ~0.39: the detector must beat that.
    assert!(d1 < d0 && d1 < 0.36, "the discriminator did not learn: {d0} -> {d1}");
    assert!(last.detection_accuracy.unwrap() > 0.92, "{last:?}");
    assert!(last.loss < first.loss - 0.5, "the generator did not learn: {} -> {}", first.loss, last.loss);
    assert!(full.flops > 0.0 && full.parameters > 0);

    // Stop after one step, resume with another seed's weights, finish: the same run.
    let dir = tempfile::tempdir().unwrap();
    let stop = dir.path().join("STOP");
    std::fs::write(&stop, "").unwrap();
    let mut cfg = PretrainConfig { checkpoint_dir: Some(dir.path().join("ckpt")), ..base.clone() };
    cfg.stop.stop_file = Some(stop.clone());
    let mut b = ElectraRtd::random(&mcfg, base.generator_size, Device::Cpu, 5);
    assert_eq!(pretrain(&mut b, &corpus, &cfg).unwrap().steps, 1);
    let mut c = ElectraRtd::random(&mcfg, base.generator_size, Device::Cpu, 42);
    let rest = resume_pretraining(&mut c, &corpus, &cfg).unwrap();
    assert_eq!(rest.stop, StopReason::Completed);
    assert!(rest.history.same_results(&full.history), "{:#?}\n{:#?}", rest.history, full.history);
    let (va, vc) = (a.var_store().variables(), c.var_store().variables());
    for (name, t) in &va {
        assert!(t.equal(&vc[name]), "{name} differs after resume");
    }
    // Another objective cannot continue it.
    let mlm_cfg = PretrainConfig { objective: Objective::Mlm, ..cfg.clone() };
    let mut m = ElectraForMaskedLM::random(&mcfg, Device::Cpu, 5);
    let e = resume_pretraining(&mut m, &corpus, &mlm_cfg).unwrap_err().to_string();
    assert!(e.contains("objective"), "{e}");
    let e = pretrain(&mut m, &corpus, &cfg).unwrap_err().to_string();
    assert!(e.contains("rtd") && e.contains("mlm"), "{e}");
}

#[test]
fn the_output_loads_in_transformers_as_electra_for_pretraining_and_fine_tunes_here() {
    let _guard = serial();
    let tok = tokenizer();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("electra");
    let corpus = Corpus::from_texts(&wos_lines(4), &tok, 32).unwrap();
    // In bf16, as the notebook pre-trains on a CPU with AVX512-BF16.
    let mut cfg = PretrainConfig { precision: encoder_bench::models::Precision::Bf16, ..rtd_cfg() };
    cfg.stop.max_steps = Some(3);
    let out = pretrain_to_dir(&tiny_config(), &tok, &corpus, &cfg, &dir, Device::Cpu, false).unwrap();
    assert_eq!(out.steps, 3);
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"], serde_json::json!(["ElectraForPreTraining"]));
    let keys: HashSet<String> = read_weights(dir.join("model.safetensors")).unwrap().into_iter().map(|(k, _)| k).collect();
    for k in
        ["discriminator_predictions.dense.weight", "discriminator_predictions.dense_prediction.bias", "electra.embeddings_project.weight"]
    {
        assert!(keys.contains(k), "{k} not saved");
    }
    assert!(keys.iter().all(|k| !k.starts_with("generator")), "the generator is written apart: {keys:?}");
    let summary = std::fs::read_to_string(dir.join("pretrain_summary.json")).unwrap();
    assert!(summary.contains("\"objective\": \"rtd\"") && summary.contains("detection_loss"), "{summary}");

    // Fine-tuning takes the discriminator, not its detection head.
    let (clf, report) = load_classifier(&ModelSource::Dir(dir.clone()), Some(LabelMap::wos_level1()), Device::Cpu, 0).unwrap();
    assert_eq!(report.missing, vec!["classifier.bias".to_string(), "classifier.weight".to_string()], "{report}");
    assert!(report.unexpected.is_empty() && report.ignored.iter().any(|k| k.starts_with("discriminator_predictions.")), "{report}");
    let saved: HashMap<String, Tensor> = read_weights(dir.join("model.safetensors")).unwrap().into_iter().collect();
    let w = "electra.encoder.layer.1.intermediate.dense.weight";
    assert!(clf.var_store().variables()[w].equal(&saved[w]));

    let Some(py) = python() else { return };
    let logits = tmp.path().join("logits.safetensors");
    let stdout = run_python(&py, &["rtd", dir.to_str().unwrap(), logits.to_str().unwrap()]);
    assert!(stdout.contains("\"tied\": true") && stdout.contains("\"shared_embeddings\": true"), "{stdout}");
    let f: HashMap<String, Tensor> = Tensor::read_safetensors(&logits).unwrap().into_iter().collect();
    let mask = f["attention_mask"].to_kind(Kind::Float);
    // Our pair, rebuilt from the files: the discriminator's logits and the generator's.
    let gen_dir = ModelSource::Dir(dir.join("generator"));
    let (generator, _) = ElectraForMaskedLM::load(&gen_dir, Device::Cpu).unwrap();
    let ours_gen = tch::no_grad(|| generator.forward_t(&f["input_ids"], &f["attention_mask"], Some(&f["token_type_ids"]), false));
    let dg = ((ours_gen - &f["generator_logits"]) * mask.unsqueeze(-1)).abs().max().double_value(&[]);
    let pair = ElectraRtd::random(&tiny_config(), cfg.generator_size, Device::Cpu, 0);
    let vars = pair.var_store().variables();
    tch::no_grad(|| {
        for (k, t) in &saved {
            vars[k].shallow_clone().copy_(t);
        }
    });
    let ours = tch::no_grad(|| pair.discriminator_logits(&f["input_ids"], &f["attention_mask"], false));
    let dd = ((ours - &f["logits"]) * &mask).abs().max().double_value(&[]);
    println!("max abs diff vs transformers: discriminator {dd:e}, generator {dg:e}");
    assert!(dd <= 1e-4 && dg <= 1e-4, "{dd} {dg}");
}
