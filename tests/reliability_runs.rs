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
    assert!(!text(&o).contains("epoch 1/"), "trained before finding the output unwritable: {}", text(&o));

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

// ------------------------------------------------------------------ config.json values

use proptest::prelude::*;
use proptest::sample::select;

/// Cases per property test: `PROPTEST_CASES` for long runs, else a few dozen (a few seconds).
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// The numeric keys of a config.json, in the order the generator fills them.
const CONFIG_KEYS: [&str; 12] = [
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "embedding_size",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "layer_norm_eps",
    "pad_token_id",
];

/// Hostile raw JSON for an integer field: negative, zero, huge, beyond i64, not an integer.
fn hostile_int() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "-1", "0", "-9223372036854775808", "9223372036854775807", "2147483648", "65537", "1048577", "16777217",
            "1e30", "18446744073709551616", "3.5", "\"12\"", "null", "true",
        ])
        .prop_map(String::from),
        2 => (-(1i64 << 40)..(1i64 << 40)).prop_map(|v| v.to_string()),
        2 => (1i64..=64).prop_map(|v| v.to_string()),
        1 => (1i64 << 10..=1i64 << 24).prop_map(|v| v.to_string()),
    ]
}

/// Hostile raw JSON for a probability or epsilon field.
fn hostile_float() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "-0.1", "0", "1", "1.0000001", "1e300", "-1e300", "1e-300", "1e-38", "1e-45", "3.5e38", "1e400", "NaN", "null", "\"x\"",
        ])
        .prop_map(String::from),
        1 => (-2.0f64..2.0).prop_map(|v| v.to_string()),
    ]
}

/// A tiny valid config (family, key → raw JSON), then up to three keys
/// replaced by hostile values (returned with the keys replaced).
fn config_json() -> impl Strategy<Value = (String, String, Vec<&'static str>)> {
    let valid = (
        select(vec!["bert", "electra"]),
        (2i64..=64, 1i64..=4, 1i64..=3, 1i64..=2, 1i64..=16, 1i64..=16, 1i64..=3, 1i64..=8),
        (select(vec!["0", "0.1", "1"]), select(vec!["0", "0.1", "1"]), select(vec!["1e-12", "1e-5"]), any::<Option<u8>>()),
    );
    let mutations = proptest::collection::vec(
        (0..CONFIG_KEYS.len()).prop_flat_map(|i| {
            let value = if (8..=10).contains(&i) { hostile_float().boxed() } else { hostile_int().boxed() };
            (Just(CONFIG_KEYS[i]), value)
        }),
        0..=3,
    );
    (valid, mutations).prop_map(|((family, ints, floats), mutations)| {
        let (vocab, head_dim, heads, layers, inter, max_pos, types, emb) = ints;
        let (hdrop, adrop, eps, pad) = floats;
        let mut fields: Vec<(&str, String)> = vec![
            ("vocab_size", vocab.to_string()),
            ("hidden_size", (head_dim * heads).to_string()),
            ("num_hidden_layers", layers.to_string()),
            ("num_attention_heads", heads.to_string()),
            ("intermediate_size", inter.to_string()),
            ("max_position_embeddings", max_pos.to_string()),
            ("type_vocab_size", types.to_string()),
            ("embedding_size", emb.to_string()),
            ("hidden_dropout_prob", hdrop.to_string()),
            ("attention_probs_dropout_prob", adrop.to_string()),
            ("layer_norm_eps", eps.to_string()),
            ("pad_token_id", pad.map_or("null".into(), |p| (p as i64 % vocab).to_string())),
        ];
        let mut changed = Vec::new();
        for (key, value) in mutations {
            fields.iter_mut().filter(|(k, _)| *k == key).for_each(|f| f.1 = value.clone());
            changed.push(key);
        }
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
        (family.to_string(), format!("{{\"model_type\": \"{family}\", {}}}", body.join(", ")), changed)
    })
}

/// The most parameter bytes the property test lets a config build: far
/// below the machine's memory, so the memory check's refusal is exercised.
const TEST_BUDGET: u64 = 4 << 20;

proptest! {
    #![proptest_config(cases(64))]

    /// Every numeric config field over negative, zero, small and huge
    /// values: an error naming the file and a config key, or a model that
    /// stays under the budget and gives finite logits of the right shape.
    /// Never a panic.
    #[test]
    fn config_json_gives_an_error_or_a_working_model(case in config_json()) {
        let (family, json, changed) = case;
        let _g = serial();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, &json).unwrap();
        // Ok(Err(estimate)): refused by the test's budget; Ok(Ok(..)): built and run.
        type Built = (Vec<i64>, bool, u64, i64);
        let outcome = std::panic::catch_unwind(|| -> encoder_bench::Result<Result<Built, u64>> {
            let cfg = ModelConfig::from_file(&path)?;
            if cfg.check_memory(&path, TEST_BUDGET).is_err() {
                return Ok(Err(cfg.encoder_parameters()));
            }
            let model = random_classifier(&cfg, LabelMap::numbered(3), Device::Cpu, 0);
            let (vocab, max_pos) = match &cfg {
                ModelConfig::Bert(c) => (c.vocab_size, c.max_position_embeddings),
                ModelConfig::Electra(c) => (c.vocab_size, c.max_position_embeddings),
            };
            let seq = max_pos.min(3);
            let ids: Vec<i64> = (0..2 * seq).map(|i| (i * 7 + 1) % vocab).collect();
            let ids = tch::Tensor::from_slice(&ids).view([2, seq]);
            let logits = model.try_forward_t(&ids, &ids.ones_like(), Some(&ids.zeros_like()), false)?;
            let finite = logits.isfinite().all().int64_value(&[]) == 1;
            Ok(Ok((logits.size(), finite, cfg.encoder_parameters(), model.num_parameters())))
        });
        let outcome = outcome.map_err(|_| TestCaseError::fail(format!("panicked on {json}")))?;
        match outcome {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with(&path.display().to_string()), "{json}: {msg}");
                let named = CONFIG_KEYS.iter().chain(&["<json>"]).any(|k| msg.contains(&format!("key `{k}`")));
                prop_assert!(named, "{json}: no config key named: {msg}");
                prop_assert!(!changed.is_empty(), "a valid tiny {family} config was refused: {json}: {msg}");
            }
            Ok(Err(estimate)) => prop_assert!(estimate * 4 > TEST_BUDGET, "refused within the budget: {json}"),
            Ok(Ok((shape, finite, estimate, built))) => {
                prop_assert_eq!(shape, vec![2, 3], "{}", json);
                prop_assert!(finite, "non-finite logits from {json}");
                prop_assert!(estimate * 4 <= TEST_BUDGET, "{json}");
                // The estimate the memory check uses is the model built (plus the 3-class head).
                let hidden: i64 = serde_json::from_str::<serde_json::Value>(&json).unwrap()["hidden_size"].as_i64().unwrap();
                prop_assert_eq!(estimate as i64 + 3 * hidden + 3, built, "{}", json);
            }
        }
    }
}

// ------------------------------------------------------------------ numeric flags

/// Values a user can type for a numeric flag.
const FLAG_VALUES: [&str; 24] = [
    "-1",
    "0",
    "1",
    "2",
    "3",
    "16",
    "33",
    "4096",
    "1e-3",
    "0.5",
    "0.999",
    "nan",
    "inf",
    "-inf",
    "1e308",
    "-0",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "1048577",
    "abc",
    "none",
    "1e-320",
    "",
];

/// `fit`'s numeric flags as the CLI declares them: the library's own
/// `OptimizerConfig` and `StopConfig` flags, plus `TrainArgs`' fields.
#[derive(clap::Parser, Debug)]
struct FitFlags {
    #[arg(long, default_value_t = 16)]
    max_len: usize,
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    #[arg(long)]
    eval_batch_size: Option<usize>,
    #[command(flatten)]
    optimizer: OptimizerConfig,
    #[command(flatten)]
    stop: StopConfig,
    #[arg(long, default_value_t = 0.001)]
    label_smoothing: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `pretrain`'s numeric flags.
#[derive(clap::Parser, Debug)]
struct PretrainFlags {
    #[arg(long, default_value_t = 4.0)]
    minutes: f64,
    #[arg(long, default_value_t = 2)]
    max_steps: usize,
    #[arg(long, default_value_t = 2)]
    batch_size: usize,
    #[arg(long, default_value_t = 8)]
    max_len: usize,
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f64,
    #[arg(long, default_value_t = 5)]
    log_every: usize,
}

/// `bench`'s and `check-device`'s numeric flags.
#[derive(clap::Parser, Debug)]
struct BenchFlags {
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    train_steps: usize,
    #[arg(long, default_value_t = 10)]
    eval_batches: usize,
    #[arg(long, default_value_t = 0)]
    matmul: i64,
    #[arg(long, default_value_t = 16)]
    n: usize,
    #[arg(long, default_value_t = 1e-3)]
    tol: f64,
}

fn flags(names: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec((select(names.to_vec()), select(FLAG_VALUES.to_vec())), 0..4)
        .prop_map(|pairs| std::iter::once("x".to_string()).chain(pairs.into_iter().map(|(f, v)| format!("{f}={v}"))).collect())
}

fn tiny_electra() -> encoder_bench::models::ElectraConfig {
    serde_json::from_str(
        r#"{"vocab_size": 30522, "embedding_size": 8, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 16, "pad_token_id": 0}"#,
    )
    .unwrap()
}

/// Runs `f`, turning a panic into a test failure naming `what`.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| TestCaseError::fail(format!("panicked: {what}")))
}

proptest! {
    #![proptest_config(cases(48))]

    /// `fit`'s and `eval`'s numeric flags: clap refuses what is not a
    /// number of the flag's type (a usage error, status 2); the rest is
    /// refused by `TrainConfig::validate` naming the field, or runs (a
    /// step of `fit`, then an evaluation) to a result or an error. Never a
    /// panic, never an overflow.
    #[test]
    fn fit_and_eval_flags_are_refused_or_run(argv in flags(&[
        "--max-len", "--batch-size", "--eval-batch-size", "--epochs", "--max-steps", "--time-budget", "--lr",
        "--weight-decay", "--warmup-ratio", "--max-grad-norm", "--label-smoothing", "--seed",
    ])) {
        use clap::Parser;
        let Ok(f) = FitFlags::try_parse_from(&argv) else { return Ok(()) };
        let _g = serial();
        let cfg = TrainConfig {
            max_len: f.max_len,
            batch_size: f.batch_size,
            eval_batch_size: f.eval_batch_size,
            optimizer: f.optimizer.clone(),
            stop: f.stop.clone(),
            label_smoothing: f.label_smoothing,
            seed: f.seed,
            progress: ProgressMode::Quiet,
            ..TrainConfig::default()
        };
        let what = format!("{argv:?}");
        match no_panic(&what, || cfg.validate())? {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("invalid `"), "{what}: {msg}");
            }
            Ok(()) => {
                let mut data = tiny_data(8, 0);
                data.max_len = cfg.max_len;
                // One step, so a run of any accepted length stays short.
                let short = TrainConfig {
                    stop: StopConfig { max_steps: Some(cfg.stop.max_steps.unwrap_or(1).min(1)), ..cfg.stop.clone() },
                    ..cfg.clone()
                };
                let r = no_panic(&what, || fit(tiny_model(2, 1).as_mut(), &data, &data, &short).map(|_| ()))?;
                if let Err(e) = r {
                    prop_assert!(!e.to_string().is_empty());
                }
                let eval = TrainConfig { max_len: cfg.max_len, eval_batch_size: Some(cfg.batch_size), progress: ProgressMode::Quiet, ..TrainConfig::default() };
                if eval.validate().is_ok() {
                    let _ = no_panic(&what, || encoder_bench::train::validate(tiny_model(2, 1).as_ref(), &data, &eval).map(|_| ()))?;
                }
            }
        }
    }

    /// `pretrain`'s numeric flags, as `pretrain_cmd` builds its config:
    /// refused naming the field, or a run of at most one step.
    #[test]
    fn pretrain_flags_are_refused_or_run(argv in flags(&[
        "--minutes", "--max-steps", "--batch-size", "--max-len", "--learning-rate", "--warmup-ratio", "--log-every",
    ])) {
        use clap::Parser;
        use encoder_bench::models::ElectraForMaskedLM;
        let Ok(f) = PretrainFlags::try_parse_from(&argv) else { return Ok(()) };
        let _g = serial();
        let cfg = PretrainConfig {
            max_len: f.max_len,
            batch_size: f.batch_size,
            optimizer: OptimizerConfig { learning_rate: f.learning_rate, warmup_ratio: f.warmup_ratio, ..OptimizerConfig::electra_pretraining() },
            stop: StopConfig { max_steps: Some(f.max_steps), time_budget_s: Some(f.minutes * 60.0), ..StopConfig::default() },
            log_every: f.log_every,
            progress: ProgressMode::Quiet,
            ..Default::default()
        };
        let what = format!("{argv:?}");
        match no_panic(&what, || cfg.validate())? {
            Err(e) => prop_assert!(e.to_string().starts_with("invalid `"), "{what}: {e}"),
            Ok(()) => {
                let tok = TextTokenizer::from_dir(root().join("models/minilm")).unwrap();
                let texts = ["one two three four five six".to_string(), "seven eight nine".to_string()];
                let short = PretrainConfig { stop: StopConfig { max_steps: Some(f.max_steps.min(1)), ..cfg.stop.clone() }, ..cfg.clone() };
                let r = no_panic(&what, || {
                    let corpus = Corpus::from_texts(&texts, &tok, short.max_len)?;
                    let mut model = ElectraForMaskedLM::random(&tiny_electra(), Device::Cpu, 0);
                    encoder_bench::train::pretrain::pretrain(&mut model, &corpus, &short).map(|_| ())
                })?;
                if let Err(e) = r {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    /// `bench`'s and `check-device`'s numeric flags: what the library's
    /// checks accept keeps every phase of a benchmark within
    /// `MAX_BENCH_TEXTS` texts (no overflowing products), a device check
    /// to at least one text and a finite tolerance.
    #[test]
    fn bench_and_check_device_flags_are_refused_or_bounded(argv in flags(&[
        "--batch-size", "--max-len", "--warmup", "--train-steps", "--eval-batches", "--matmul", "--n", "--tol",
    ])) {
        use clap::Parser;
        use encoder_bench::bench::{BenchConfig, DeviceCheck, MAX_BENCH_TEXTS, check_matmul_size};
        let Ok(f) = BenchFlags::try_parse_from(&argv) else { return Ok(()) };
        let cfg = BenchConfig {
            batch_size: f.batch_size,
            max_len: f.max_len,
            warmup_steps: f.warmup,
            train_steps: f.train_steps,
            eval_batches: f.eval_batches,
            ..BenchConfig::default()
        };
        let what = format!("{argv:?}");
        if no_panic(&what, || cfg.validate())?.is_ok() {
            for steps in [cfg.warmup_steps, cfg.train_steps, cfg.eval_batches] {
                prop_assert!(steps.checked_mul(cfg.batch_size).is_some_and(|n| n <= MAX_BENCH_TEXTS), "{what}");
            }
        }
        if check_matmul_size(f.matmul).is_ok() {
            prop_assert!((0..=16_384).contains(&f.matmul));
        }
        if (DeviceCheck { n: f.n, max_len: f.max_len, tol: f.tol }).validate().is_ok() {
            prop_assert!(f.n >= 1 && f.tol.is_finite() && f.tol >= 0.0 && f.max_len >= 2, "{what}");
        }
    }
}

#[test]
fn cli_worst_numbers_exit_1_with_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = small_csv(d, "data.csv", ',');
    let max = usize::MAX.to_string();
    // A 4-row CSV whose label 99999 once implied 100,000 classes (an 80 GB confusion matrix).
    std::fs::write(d.join("ids.csv"), "text,label\na b,0\nc d,1\ne f,0\ng h,99999\n").unwrap();
    let cfgp = root().join("tests/fixtures/tiny-bert.json").display().to_string();
    let tok = root().join("models/minilm").display().to_string();
    let wos = root().join("../shared/data/wos-sample").display().to_string();
    let fit = |extra: &[&str]| fit_args(&data, "run", extra);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (fit(&["--epochs", &max]), "epochs"),
        (fit(&["--batch-size", &max]), "batch_size"),
        (fit(&["--eval-batch-size", &max]), "eval_batch_size"),
        (
            fit(&[])
                .into_iter()
                .scan(false, |after, a| Some(if std::mem::replace(after, a == "--max-len") { max.clone() } else { a }))
                .collect(),
            "max_len",
        ),
        (fit(&["--lr", "1e308"]), "became"),
        (fit_args(&d.join("ids.csv").display().to_string(), "ids", &[]), "ids.csv:5: data row 4: label 99999 out of range"),
        (
            ["pretrain", "--minutes", "1e308", "--tokenizer", &tok, "--out", "pre", "--device", "cpu"].map(String::from).to_vec(),
            "time_budget",
        ),
        (
            ["pretrain", "--batch-size", &max, "--tokenizer", &tok, "--out", "pre", "--device", "cpu"].map(String::from).to_vec(),
            "batch_size",
        ),
        (
            ["bench", "--device", "cpu", "--train-steps", &max, "--random-config", &cfgp, "--tokenizer", &tok, "--data", &wos]
                .map(String::from)
                .to_vec(),
            "train_steps",
        ),
        (
            ["check-device", "--device", "cpu", "--tol", "nan", "--random-config", &cfgp, "--tokenizer", &tok, "--data", &wos]
                .map(String::from)
                .to_vec(),
            "tol",
        ),
    ];
    for (args, want) in cases {
        let o = cli(&args.iter().map(String::as_str).collect::<Vec<_>>(), d);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want) && !text(&o).contains("panicked"), "{args:?}: {}", text(&o));
    }
}

// ------------------------------------------------------------------ labels

#[test]
fn label_ids_beyond_the_class_cap_are_refused_where_they_are_and_records_stay_small() {
    use encoder_bench::data::WosLevel;
    use encoder_bench::data::text::MAX_CLASSES;
    use encoder_bench::train::Metrics;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(MAX_CLASSES, 1000);
    // CSV: integer ids up to 999 are classes; 1000 and the 99999 of the report are not.
    std::fs::write(d.join("ok.csv"), "text,label\na,0\nb,999\n").unwrap();
    assert_eq!(Dataset::read_csv(d.join("ok.csv"), "text", "label").unwrap().num_classes(), 1000);
    for bad in ["1000", "99999"] {
        std::fs::write(d.join("ids.csv"), format!("text,label\na,0\nb,1\nc,0\nd,{bad}\n")).unwrap();
        let e = err_of(Dataset::read_csv(d.join("ids.csv"), "text", "label"));
        assert!(e.contains("ids.csv:5: data row 4") && e.contains(&format!("label {bad}")) && e.contains("at most 1000 classes"), "{e}");
    }
    // String labels: the 1001st distinct name is refused at its line.
    let rows: Vec<String> = (0..=MAX_CLASSES).map(|i| format!("text {i},class{i}")).collect();
    std::fs::write(d.join("names.csv"), format!("text,label\n{}\n", rows.join("\n"))).unwrap();
    let e = err_of(Dataset::read_csv(d.join("names.csv"), "text", "label"));
    assert!(e.contains("names.csv:1002:") && e.contains("distinct label number 1001"), "{e}");
    // WOS label files.
    std::fs::write(d.join("X.txt"), "a\nb\n").unwrap();
    std::fs::write(d.join("Y.txt"), "3\n99999\n").unwrap();
    let e = err_of(Dataset::read_wos(d, WosLevel::Leaf));
    assert!(e.contains("Y.txt:2:") && e.contains("at most 1000 classes"), "{e}");
    // A label map (or a model's outputs) beyond the cap.
    let e = err_of(Dataset::new("made.csv", vec!["x".into()], vec![0], LabelMap::numbered(MAX_CLASSES + 1)));
    assert!(e.contains("made.csv") && e.contains("1001 classes"), "{e}");
    assert!(err_of(Metrics::compute(&[0], &[0], MAX_CLASSES + 1)).contains("num_classes"));
    // At the cap, a run record with its confusion matrix stays a few MB (was 11 MB pretty-printed at 1,000 classes, 112 MB at 3,000).
    let targets: Vec<usize> = (0..50).map(|i| i * 20).collect();
    let metrics = Metrics::compute(&targets, &targets, MAX_CLASSES).unwrap();
    let record = encoder_bench::report::RunRecord {
        name: "cap".into(),
        model: "tiny".into(),
        data: "ids.csv".into(),
        train_size: 50,
        valid_size: 50,
        device: "cpu".into(),
        config: TrainConfig::default(),
        history: Default::default(),
        final_metrics: Some(metrics),
        test_size: None,
        chosen_epoch: None,
        chosen_on: None,
        test_metrics: None,
        labels: LabelMap::numbered(MAX_CLASSES).names().to_vec(),
        stop: StopReason::Completed,
        wall_s: 1.0,
        started_unix: 0,
        versions: encoder_bench::report::Versions::current(),
    };
    let path = d.join("run.json");
    record.save(&path).unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert!(bytes < 4 << 20, "run.json is {bytes} bytes at {MAX_CLASSES} classes");
    assert_eq!(encoder_bench::report::RunRecord::load(&path).unwrap(), record);
}

#[test]
fn parquet_small_integer_columns_are_read() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let texts = ["a", "b", "c"];
    let frames = [
        df!("text" => texts, "label" => [0i8, 2, 1], "unused" => [1u8, 2, 3]).unwrap(),
        df!("text" => texts, "label" => [0i16, 2, 1], "unused" => [1u16, 2, 3]).unwrap(),
        df!("text" => texts, "label" => [0u8, 2, 1], "unused" => [-1i8, 2, 3]).unwrap(),
        df!("text" => texts, "label" => [0u16, 2, 1], "unused" => [-1i16, 2, 3]).unwrap(),
    ];
    for (i, mut df) in frames.into_iter().enumerate() {
        let p = dir.path().join(format!("small{i}.parquet"));
        ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();
        let ds = Dataset::read_parquet(&p, "text", "label").unwrap_or_else(|e| panic!("{:?}: {e}", df.schema()));
        assert_eq!((ds.targets.as_slice(), ds.num_classes()), (&[0, 2, 1][..], 3), "{:?}", df.schema());
    }
    let mut df = df!("text" => ["a"], "label" => [-3i8]).unwrap();
    let p = dir.path().join("neg.parquet");
    ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();
    let e = err_of(Dataset::read_parquet(&p, "text", "label"));
    assert!(e.contains("neg.parquet") && e.contains("row 1") && e.contains("-3"), "{e}");
}

// ------------------------------------------------------------------ devices

#[test]
fn bf16_is_refused_on_mps_at_config_validation() {
    use encoder_bench::models::Precision;
    let cfg = TrainConfig { precision: Precision::Bf16, ..TrainConfig::default() };
    assert!(cfg.validate_for(Device::Cpu).is_ok());
    let e = err_of(cfg.validate_for(Device::Mps));
    assert!(e.contains("precision") && e.contains("bf16") && e.contains("MPS"), "{e}");
    let e = err_of(encoder_bench::device::to_device(&tch::Tensor::from(1.5f64), Device::Cpu));
    assert!(e.contains("float64"), "{e}");
}

/// Runs the command line under `ENCODER_BENCH_MPS_RULES=1`: every transfer
/// then follows MPS's rules on the CPU, so a float64 (or bf16) tensor
/// moved anywhere in `fit`, `resume`, `eval` or `pretrain` fails here.
#[test]
fn mps_rules_hold_on_the_cpu_for_fit_resume_eval_and_pretrain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = small_csv(d, "data.csv", ',');
    let mps = |args: Vec<String>| {
        let o = Command::new(env!("CARGO_BIN_EXE_encoder-bench"))
            .args(&args)
            .current_dir(d)
            .env("ENCODER_BENCH_MPS_RULES", "1")
            .output()
            .expect("binary runs");
        (o.status.code(), text(&o))
    };
    // Default clipping (1.0) on, so the clipping step runs too.
    let (code, out) = mps(fit_args(&data, "run", &["--epochs", "2", "--max-steps", "2", "--batch-size", "4"]));
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = mps(fit_args(&data, "run", &["--epochs", "2", "--batch-size", "4", "--resume"]));
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = mps(["eval", "--data", &data, "--checkpoint", "run/checkpoints/best", "--max-len", "16"].map(String::from).to_vec());
    assert_eq!(code, Some(0), "{out}");
    std::fs::write(d.join("corpus.txt"), "one two three four five six\nseven eight nine ten\n").unwrap();
    std::fs::write(d.join("electra.json"), serde_json::to_string(&tiny_electra()).unwrap()).unwrap();
    let tok = root().join("models/minilm").display().to_string();
    let pre = ["pretrain", "--corpus", "corpus.txt", "--tokenizer", &tok, "--config", "electra.json", "--out", "pre", "--device", "cpu"];
    let mut args: Vec<String> = pre.map(String::from).to_vec();
    args.extend(["--max-steps", "2", "--batch-size", "2", "--max-len", "8"].map(String::from));
    let (code, out) = mps(args);
    assert_eq!(code, Some(0), "{out}");
    // bf16 is refused by name before any work.
    let (code, out) = mps(fit_args(&data, "bf16", &["--precision", "bf16"]));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("bf16") && out.contains("MPS"), "{out}");
}

/// Batches made by hand reach the layers through `try_forward_t`: a shape
/// the layers take for granted is an error there (it was a panic in
/// `size2().expect(...)` deep inside the encoder).
#[test]
fn forward_on_a_malformed_batch_is_an_error_not_a_panic() {
    let _g = serial();
    let model = tiny_model(2, 1);
    let flat = tch::Tensor::from_slice(&[1i64, 5, 2]);
    let e = err_of(model.try_forward_t(&flat, &flat.ones_like(), None, false));
    assert!(e.contains("input_ids") && e.contains("[batch, sequence]"), "{e}");
    let ids = flat.view([1, 3]);
    let e = err_of(model.try_forward_t(&ids, &tch::Tensor::ones([1, 2], (tch::Kind::Int64, Device::Cpu)), None, false));
    assert!(e.contains("attention_mask") && e.contains("differs"), "{e}");
    assert_eq!(model.try_forward_t(&ids, &ids.ones_like(), None, false).unwrap().size(), vec![1, 2]);
}

/// A saved classifier's config (`model_type: encoder_bench_bert`) is read
/// by its own path: its bad values name their key too (they were all
/// `key `<json>``), and its sizes are range-checked like any config's.
#[test]
fn a_saved_classifiers_bad_config_values_name_their_key() {
    use encoder_bench::models::{ModelSource, load_classifier, save_classifier};
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    save_classifier(tiny_model(2, 1).as_ref(), dir.path(), None).unwrap();
    let path = dir.path().join("config.json");
    let good: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(good["model_type"], "encoder_bench_bert");
    for (key, value, want) in [
        ("hidden_size", serde_json::json!("big"), "invalid type"),
        ("num_hidden_layers", serde_json::json!(-1), "not a size"),
        ("attention_probs_dropout_prob", serde_json::json!(2.0), "not a probability"),
    ] {
        let mut cfg = good.clone();
        cfg[key] = value;
        std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
        let e = err_of(load_classifier(&ModelSource::parse(&dir.path().display().to_string()), None, Device::Cpu, 0));
        assert!(e.contains("config.json") && e.contains(&format!("key `{key}`")) && e.contains(want), "{key}: {e}");
    }
}

/// `pretrain_to_dir` takes a config made in code, which never met
/// `from_file`'s checks: a negative layer count silently built no layers.
#[test]
fn pretraining_checks_a_config_made_in_code() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let tok = TextTokenizer::from_dir(root().join("models/minilm")).unwrap();
    let corpus = Corpus::from_texts(&["one two three four five six".into()], &tok, 8).unwrap();
    let mut shape = tiny_electra();
    shape.num_hidden_layers = -1;
    let cfg = PretrainConfig {
        max_len: 8,
        batch_size: 2,
        stop: StopConfig { max_steps: Some(1), ..Default::default() },
        progress: ProgressMode::Quiet,
        ..Default::default()
    };
    let e = err_of(pretrain_to_dir(&shape, &tok, &corpus, &cfg, dir.path().join("out"), Device::Cpu, false));
    assert!(e.contains("key `num_hidden_layers`") && e.contains("-1 is not a size"), "{e}");
    assert!(!dir.path().join("out").exists(), "an output was written");
}
