//! Reliability, round two (issue #20): no wrong numbers with exit status 0,
//! no lost runs, no panics where a message belongs. Each test failed before
//! its fix; `docs/reliability.md` lists them. Tiny random models throughout.
use encoder_bench::data::{Dataset, Encoded, LabelMap};
use encoder_bench::models::{BertConfig, ModelConfig, TextClassifier, random_classifier};
use encoder_bench::tokenizer::TextTokenizer;
use encoder_bench::train::checkpoint::RunLock;
use encoder_bench::train::pretrain::{Corpus, PretrainConfig, pretrain_to_dir};
use encoder_bench::train::{OptimizerConfig, ProgressMode, StopConfig, StopReason, TrainConfig, fit, resume};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::Device;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny_model(classes: usize, seed: i64) -> Box<dyn TextClassifier> {
    let cfg: BertConfig = serde_json::from_str(
        r#"{"vocab_size": 100, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 32, "pad_token_id": 0}"#,
    )
    .unwrap();
    random_classifier(&ModelConfig::Bert(cfg), LabelMap::numbered(classes), Device::Cpu, seed)
}

fn tiny_data(n: usize, offset: i64) -> Encoded {
    let ids: Vec<Vec<i64>> = (0..n).map(|i| vec![1, 10 + (i % 2) as i64 + offset, 20 + (i as i64 * 7) % 50, 2]).collect();
    Encoded {
        type_ids: ids.iter().map(|v| vec![0; v.len()]).collect(),
        ids,
        targets: (0..n).map(|i| (i % 2) as i64).collect(),
        pad_id: 0,
        max_len: 16,
    }
}

fn quiet(epochs: usize, dir: Option<&Path>) -> TrainConfig {
    TrainConfig {
        max_len: 16,
        batch_size: 4,
        optimizer: OptimizerConfig { learning_rate: 1e-3, ..Default::default() },
        stop: StopConfig { epochs, ..Default::default() },
        seed: 3,
        progress: ProgressMode::Quiet,
        checkpoint_dir: dir.map(Path::to_path_buf),
        ..TrainConfig::default()
    }
}

fn err_of<T: std::fmt::Debug>(r: encoder_bench::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

// ------------------------------------------------------------------ numbers

#[test]
fn non_finite_settings_are_refused_before_training() {
    let _g = serial();
    let (train, test) = (tiny_data(8, 0), tiny_data(4, 0));
    for (field, edit) in [
        ("weight_decay", Box::new(|c: &mut TrainConfig| c.optimizer.weight_decay = f64::NAN) as Box<dyn Fn(&mut TrainConfig)>),
        ("learning_rate", Box::new(|c: &mut TrainConfig| c.optimizer.learning_rate = f64::INFINITY)),
        ("eps", Box::new(|c: &mut TrainConfig| c.optimizer.eps = f64::NAN)),
        ("betas", Box::new(|c: &mut TrainConfig| c.optimizer.betas = (f64::NAN, 0.999))),
        ("max_grad_norm", Box::new(|c: &mut TrainConfig| c.optimizer.max_grad_norm = Some(f64::NAN))),
        ("time_budget_s", Box::new(|c: &mut TrainConfig| c.stop.time_budget_s = Some(f64::NAN))),
        ("epochs", Box::new(|c: &mut TrainConfig| c.stop.epochs = 0)),
    ] {
        let mut cfg = quiet(1, None);
        edit(&mut cfg);
        let e = err_of(fit(tiny_model(2, 1).as_mut(), &train, &test, &cfg));
        assert!(e.contains(field), "{field}: {e}");
    }
}

#[test]
fn nan_weights_are_never_saved_as_a_checkpoint() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (tiny_data(8, 0), tiny_data(4, 0));
    let mut model = tiny_model(2, 1);
    // A NaN weight: the saving check names it, and a run never writes it.
    tch::no_grad(|| {
        for (name, mut t) in model.var_store().variables() {
            if name.contains("classifier") && name.ends_with("bias") {
                let _ = t.fill_(f64::NAN);
            }
        }
    });
    let e = err_of(encoder_bench::train::checkpoint::check_finite_weights(model.var_store(), "test"));
    assert!(e.contains("classifier.bias") && e.contains("not saved"), "{e}");
    let cfg = quiet(1, Some(dir.path()));
    let e = err_of(fit(model.as_mut(), &train, &test, &cfg));
    assert!(e.contains("NaN") || e.contains("nan"), "{e}");
    assert!(!dir.path().join("last").exists() && !dir.path().join("best").exists(), "a NaN checkpoint was written");
}

// ------------------------------------------------------------------ runs

#[test]
fn resume_with_other_data_or_settings_is_refused() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (tiny_data(8, 0), tiny_data(4, 0));
    let cfg = TrainConfig { stop: StopConfig { epochs: 2, max_steps: Some(2), ..Default::default() }, ..quiet(2, Some(dir.path())) };
    assert_eq!(fit(tiny_model(2, 1).as_mut(), &train, &test, &cfg).unwrap().stop, StopReason::MaxSteps);
    let cont = quiet(2, Some(dir.path()));
    let e = err_of(resume(tiny_model(2, 1).as_mut(), &tiny_data(8, 1), &test, &cont));
    assert!(e.contains("training data differs"), "{e}");
    let e = err_of(resume(tiny_model(2, 1).as_mut(), &train, &test, &TrainConfig { batch_size: 2, ..cont.clone() }));
    assert!(e.contains("batch_size: 4 -> 2"), "{e}");
    let done = resume(tiny_model(2, 1).as_mut(), &train, &test, &cont).unwrap();
    assert_eq!(done.stop, StopReason::Completed);
}

#[test]
fn a_run_directory_in_use_is_refused() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let _held = RunLock::acquire(dir.path()).unwrap();
    let e = err_of(fit(tiny_model(2, 1).as_mut(), &tiny_data(8, 0), &tiny_data(4, 0), &quiet(1, Some(dir.path()))));
    assert!(e.contains("in use by another run"), "{e}");
}

#[test]
fn checkpoints_carry_the_tokenizer() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig { tokenizer_dir: Some(root().join("models/minilm")), ..quiet(1, Some(dir.path())) };
    fit(tiny_model(2, 1).as_mut(), &tiny_data(8, 0), &tiny_data(4, 0), &cfg).unwrap();
    for d in ["best", "last"] {
        assert!(TextTokenizer::from_dir(dir.path().join(d)).is_ok(), "{d}/ has no tokenizer");
    }
}

#[test]
fn pretraining_never_replaces_an_output_and_never_fakes_a_resume() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("electra");
    let tok = TextTokenizer::from_dir(root().join("models/minilm")).unwrap();
    let corpus = Corpus::from_texts(&["one two three four five six".into(), "seven eight nine".into()], &tok, 8).unwrap();
    let shape = serde_json::from_str(
        r#"{"vocab_size": 30522, "embedding_size": 8, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 16, "pad_token_id": 0}"#,
    )
    .unwrap();
    let cfg = PretrainConfig {
        max_len: 8,
        batch_size: 2,
        stop: StopConfig { max_steps: Some(2), ..Default::default() },
        progress: ProgressMode::Quiet,
        checkpoint_dir: Some(out.join("checkpoints")),
        ..Default::default()
    };
    let e = err_of(pretrain_to_dir(&shape, &tok, &corpus, &cfg, &out, Device::Cpu, true));
    assert!(e.contains("no run to resume"), "{e}");
    pretrain_to_dir(&shape, &tok, &corpus, &cfg, &out, Device::Cpu, false).unwrap();
    let before = std::fs::read(out.join("model.safetensors")).unwrap();
    let e = err_of(pretrain_to_dir(&shape, &tok, &corpus, &cfg, &out, Device::Cpu, false));
    assert!(e.contains("already holds files"), "{e}");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), before);
}

#[test]
fn eval_scores_string_labels_by_name() {
    let model_labels = LabelMap::new(["a", "b", "c"].iter().map(|s| s.to_string()).collect());
    // A test file without class `a`: its own ids 0/1 are `b`/`c`.
    let test = Dataset::new("t.csv", vec!["x".into(), "y".into()], vec![0, 1], LabelMap::new(vec!["b".into(), "c".into()])).unwrap();
    assert_eq!(test.aligned_to(&model_labels).unwrap().targets, [1, 2]);
    let unknown = Dataset::new("u.csv", vec!["x".into()], vec![0], LabelMap::new(vec!["z".into()])).unwrap();
    assert!(err_of(unknown.aligned_to(&model_labels)).contains("`z`"));
}

// ------------------------------------------------------------------ the command line

fn cli(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_encoder-bench")).args(args).current_dir(cwd).output().expect("binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn fit_args(data: &str, out: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["fit", "--data", data, "--max-len", "16", "--device", "cpu", "--random-config"].map(String::from).to_vec();
    v.push(root().join("tests/fixtures/tiny-bert.json").display().to_string());
    v.extend(["--tokenizer".to_string(), root().join("models/minilm").display().to_string(), "--out".into(), out.into()]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn small_csv(dir: &Path, name: &str, sep: char) -> String {
    let rows: Vec<String> =
        (0..12).map(|i| format!("text number {i} about {}{sep}{}", ["cats", "dogs"][i % 2], ["cat", "dog"][i % 2])).collect();
    let path = dir.join(name);
    std::fs::write(&path, format!("text{sep}label\n{}\n", rows.join("\n"))).unwrap();
    path.display().to_string()
}

#[test]
fn cli_runs_are_kept_interrupted_cleanly_and_checked_early() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Upper-case and TSV extensions are data files, not WOS directories.
    let upper = small_csv(d, "DATA.CSV", ',');
    let tsv = small_csv(d, "data.tsv", '\t');
    let a: Vec<String> = fit_args(&upper, "run", &["--epochs", "1"]);
    let o = cli(&a.iter().map(String::as_str).collect::<Vec<_>>(), d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.join("run/checkpoints/best/tokenizer.json").exists(), "the checkpoint carries its tokenizer");
    let record = std::fs::read_to_string(d.join("run/run.json")).unwrap();
    assert!(record.contains("\"tokenizer_dir\""), "run.json names the tokenizer");
    let a = fit_args(&tsv, "tsv", &["--epochs", "1"]);
    assert!(cli(&a.iter().map(String::as_str).collect::<Vec<_>>(), d).status.success());

    // eval: the checkpoint's own tokenizer; --out naming a file is refused with its path.
    std::fs::write(d.join("afile"), "").unwrap();
    let o = cli(&["eval", "--data", &upper, "--checkpoint", "run/checkpoints/best", "--max-len", "16", "--out", "afile"], d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("afile"), "{}", text(&o));
    let o = cli(&["eval", "--data", &upper, "--checkpoint", "run/checkpoints/best", "--max-len", "16"], d);
    assert!(o.status.success(), "{}", text(&o));

    // --epochs 0: a clear error, status 1.
    let a = fit_args(&upper, "zero", &["--epochs", "0"]);
    let o = cli(&a.iter().map(String::as_str).collect::<Vec<_>>(), d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("epochs"), "{}", text(&o));

    // A run that does no step replaces nothing.
    let before = std::fs::read(d.join("run/run.json")).unwrap();
    let a = fit_args(&upper, "run", &["--overwrite", "--max-steps", "0"]);
    let o = cli(&a.iter().map(String::as_str).collect::<Vec<_>>(), d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read(d.join("run/run.json")).unwrap(), before);

    // An unwritable --out is found before training.
    let a = fit_args(&upper, "afile/run", &["--epochs", "1"]);
    let o = cli(&a.iter().map(String::as_str).collect::<Vec<_>>(), d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!text(&o).contains("epoch 1:"), "trained before finding the output unwritable: {}", text(&o));

    // Bad numbers for check-device and bench: messages, not panics.
    let cfgp = root().join("tests/fixtures/tiny-bert.json").display().to_string();
    let tok = root().join("models/minilm").display().to_string();
    let wos = root().join("../shared/data/wos-sample").display().to_string();
    for args in [
        vec!["check-device", "--device", "cpu", "--n", "0", "--random-config", &cfgp, "--tokenizer", &tok, "--data", &wos],
        vec!["check-device", "--device", "cpu", "--max-len", "4096", "--random-config", &cfgp, "--tokenizer", &tok, "--data", &wos],
        vec!["bench", "--device", "cpu", "--matmul", "1000000000", "--random-config", &cfgp, "--tokenizer", &tok, "--data", &wos],
        vec!["bench", "--device", "cpu", "--max-len", "4096", "--random-config", &cfgp, "--tokenizer", &tok, "--data", &wos],
    ] {
        let o = cli(&args, d);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
    }
}

#[test]
fn cli_first_ctrl_c_stops_after_the_step_and_writes_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = small_csv(d, "data.csv", ',');
    let a = fit_args(&data, "run", &["--epochs", "1000"]);
    let child = Command::new(env!("CARGO_BIN_EXE_encoder-bench"))
        .args(&a)
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first checkpoint: training is under way.
    let start = std::time::Instant::now();
    while !d.join("run/checkpoints/last").exists() {
        assert!(start.elapsed().as_secs() < 120, "no checkpoint after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("run/run.json")).unwrap()).unwrap();
    assert_eq!(record["stop"], "interrupted");
    assert!(!record["history"]["epochs"].as_array().unwrap().is_empty());
}
