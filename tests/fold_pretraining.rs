//! ELECTRAs pre-trained per fold: no test (or validation) text reaches a
//! fold's pre-training corpus, the weights are reused only for the same
//! corpus and settings, the 0-minute twin is the pre-training's own starting
//! point, a sweep fine-tunes fold k from fold k's weights, and a curve
//! spends each budget on each objective from one twin. Tiny models
//! (width 32) on the WOS sample, so the file runs in seconds.
use encoder_bench::data::{Dataset, Split, WosLevel};
use encoder_bench::models::{ElectraConfig, ElectraForMaskedLM, ModelSource, read_weights};
use encoder_bench::sweep::{DataSpec, FoldPretraining, PretrainingCurve, SplitSpec, SweepModel, SweepPlan, sweep};
use encoder_bench::train::pretrain::Objective;
use encoder_bench::train::{ProgressMode, StopConfig, TrainConfig};
use std::collections::HashSet;
use std::path::PathBuf;
use tch::Device;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn wos() -> PathBuf {
    root().join("../shared/data/wos-sample")
}

fn tiny() -> ElectraConfig {
    serde_json::from_str(
        r#"{"vocab_size": 30522, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0}"#,
    )
    .unwrap()
}

fn pretraining(minutes: f64, dir: &std::path::Path) -> FoldPretraining {
    let mut p = FoldPretraining::new(tiny(), root().join("models/minilm"), minutes, dir);
    p.pretrain.max_len = 64;
    p.pretrain.stop = StopConfig { max_steps: Some(3), ..Default::default() };
    p.pretrain.progress = ProgressMode::Quiet;
    p
}

/// Fine-tuning `models` for one epoch at batch 16 on every fold, no baseline.
fn one_epoch_plan(data: DataSpec, split: SplitSpec, models: Vec<SweepModel>) -> SweepPlan {
    SweepPlan {
        data,
        data_fingerprint: None,
        split,
        models,
        batch_sizes: vec![16],
        seeds: vec![0],
        baseline: false,
        train: TrainConfig {
            max_len: 32,
            progress: ProgressMode::Quiet,
            stop: StopConfig { epochs: 1, ..Default::default() },
            ..Default::default()
        },
    }
}

#[test]
fn no_test_text_reaches_a_folds_pretraining() {
    let ds = Dataset::read_wos(wos(), WosLevel::L1).unwrap();
    let plan_split = SplitSpec { validation: Some(Default::default()), ..SplitSpec::kfold(3, 0) };
    let splits = plan_split.splits(&ds).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A budget the step cap always ends first, even on a loaded machine: the
    // step counts below are exact.
    let p = pretraining(0.5, tmp.path());
    let folds = p.run(&splits, Device::Cpu).unwrap();
    assert_eq!(folds.len(), 3);
    let mut tested = HashSet::new();
    for (s, f) in splits.iter().zip(&folds) {
        let corpus: HashSet<&String> = FoldPretraining::corpus_texts(s).texts.iter().collect();
        let held_out: Vec<&String> = s.test.texts.iter().chain(&s.valid.as_ref().unwrap().texts).collect();
        assert!(held_out.iter().all(|t| !corpus.contains(t)), "fold {}: a held-out text is in the corpus", f.fold + 1);
        assert_eq!(f.corpus_texts, s.train.len());
        // The record beside the weights names exactly the training texts.
        let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f.dir.join("corpus.json")).unwrap()).unwrap();
        assert_eq!(rec["fingerprint"], s.train.fingerprint());
        assert_ne!(rec["fingerprint"], s.train.concat(&s.test).unwrap().fingerprint());
        let r = f.result.as_ref().expect("pre-trained");
        assert_eq!(r.steps, 3);
        assert!(!f.reused);
        tested.extend(s.test.texts.iter().cloned());
    }
    // Every text is tested once over the folds, so one corpus for all folds would have leaked.
    assert_eq!(tested.len(), ds.len());

    // The same call again reuses every fold; other settings pre-train again.
    let again = p.run(&splits, Device::Cpu).unwrap();
    assert!(again.iter().all(|f| f.reused) && again[0].result == folds[0].result);
    // Weights drawn by an older initialisation (no `init` in the record) are drawn again.
    let record = folds[0].dir.join("corpus.json");
    let mut rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert!(rec.as_object_mut().unwrap().remove("init").is_some());
    std::fs::write(&record, rec.to_string()).unwrap();
    assert!(!p.run(&splits[..1], Device::Cpu).unwrap()[0].reused);
    let mut longer = p.clone();
    longer.pretrain.stop.max_steps = Some(4);
    let redone = longer.run(&splits[..1], Device::Cpu).unwrap();
    assert!(!redone[0].reused && redone[0].result.as_ref().unwrap().steps == 4);
}

#[test]
fn zero_minutes_is_the_pretrainings_starting_point() {
    let ds = Dataset::read_wos(wos(), WosLevel::L1).unwrap();
    let splits = Split::kfold(&ds, 2, 0).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let twin = pretraining(0.0, tmp.path()).run(&splits, Device::Cpu).unwrap();
    assert!(twin.iter().all(|f| f.result.is_none()));
    let start = ElectraForMaskedLM::random(&tiny(), Device::Cpu, 0);
    let saved: std::collections::HashMap<String, tch::Tensor> =
        read_weights(twin[1].dir.join("model.safetensors")).unwrap().into_iter().collect();
    let mut compared = 0;
    for (name, t) in start.var_store().variables() {
        let key = if saved.contains_key(&name) { name.clone() } else { format!("electra.{name}") };
        if let Some(s) = saved.get(&key) {
            assert!(s.equal(&t), "{name} differs from the seeded initialisation");
            compared += 1;
        }
    }
    assert!(compared > 10, "compared {compared} tensors");
}

#[test]
fn a_sweep_fine_tunes_each_fold_from_its_own_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pretraining(0.05, tmp.path());
    let split = SplitSpec { validation: Some(Default::default()), ..SplitSpec::kfold(2, 0) };
    let data = DataSpec { first: Some(70), ..DataSpec::new(wos()) };
    let splits = split.splits(&data.read().unwrap()).unwrap();
    let folds = p.run(&splits, Device::Cpu).unwrap();
    let model = p.sweep_model("ELECTRA (tiny)", &folds);
    assert_eq!(model.source_for(1).unwrap(), &ModelSource::Dir(folds[1].dir.clone()));
    let mut plan = one_epoch_plan(data, split, vec![model]);
    let sw = sweep(&plan, Device::Cpu, |_| {}).unwrap();
    assert_eq!(sw.runs.len(), 2);
    assert_eq!(sw.runs.iter().map(|r| r.test_rows.len()).sum::<usize>(), 70);
    // Weights for another number of folds are refused before anything runs.
    plan.split = SplitSpec::kfold(3, 0);
    let e = sweep(&plan, Device::Cpu, |_| {}).unwrap_err().to_string();
    assert!(e.contains("ELECTRA (tiny)") && e.contains("2 folds"), "{e}");
}

/// Both objectives on one curve: one random-init twin, one point per
/// objective and budget, each written as its objective's model, and the
/// report lines start at the shared twin and compare the objectives.
#[test]
fn a_curve_spends_each_budget_on_each_objective_from_one_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pretraining(0.05, tmp.path());
    let split = SplitSpec { validation: Some(Default::default()), ..SplitSpec::kfold(2, 0) };
    let data = DataSpec { first: Some(70), ..DataSpec::new(wos()) };
    let splits = split.splits(&data.read().unwrap()).unwrap();
    let curve = PretrainingCurve::run(&p, &[Objective::Mlm, Objective::Rtd], &[0.05, 0.0, 0.05], &splits, Device::Cpu).unwrap();
    let names: Vec<String> = curve.models().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["ELECTRA (random init)", "ELECTRA (MLM, 0.05 min)", "ELECTRA (RTD, 0.05 min)"]);
    assert_eq!(curve.objectives(), [Objective::Mlm, Objective::Rtd]);
    let arch = |dir: &std::path::Path| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()["architectures"]
            .clone()
    };
    let [twin, mlm, rtd] = &curve.points[..] else { panic!("{:?}", curve.points) };
    assert_eq!(twin.folds[0].dir, tmp.path().join("0min/fold-1"));
    assert_eq!(arch(&mlm.folds[1].dir), serde_json::json!(["ElectraForMaskedLM"]));
    assert_eq!(arch(&rtd.folds[1].dir), serde_json::json!(["ElectraForPreTraining"]));
    assert!(rtd.folds.iter().all(|f| f.result.as_ref().unwrap().history.records.iter().all(|r| r.detection_loss.is_some())));
    assert!(mlm.folds.iter().all(|f| f.result.as_ref().unwrap().history.records.iter().all(|r| r.detection_loss.is_none())));

    let plan = one_epoch_plan(data, split, curve.models());
    let sw = sweep(&plan, Device::Cpu, |_| {}).unwrap();
    let chart = curve.chart(&sw);
    let lines: Vec<(&str, Vec<f64>)> = chart.series.iter().map(|s| (s.name.as_str(), s.points.iter().map(|p| p.0).collect())).collect();
    assert_eq!(lines[0], ("MLM, batch size 16", vec![0.0, 0.05]));
    assert_eq!(lines[1], ("RTD, batch size 16", vec![0.0, 0.05]));
    assert_eq!(chart.series[0].points[0], chart.series[1].points[0], "both lines start at the shared twin");
    let said = curve.conclusions(&sw).join("\n");
    assert!(said.contains("ELECTRA (MLM, 0.05 min) reaches") && said.contains("ELECTRA (RTD, 0.05 min) reaches"), "{said}");
    let table = curve.compute_table(&sw).to_text();
    assert_eq!(table.lines().count(), 1 + 3 + 1, "{table}");
}
