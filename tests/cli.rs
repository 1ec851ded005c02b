//! The command line end to end on a tiny random BERT (real tokenizer, real
//! WOS sample): `fit` writes its outputs and refuses to overwrite, `eval`
//! scores the checkpoint, `sweep` writes its tables, `bench` prints JSON,
//! and bad arguments fail with a message and a non-zero status.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn wos() -> PathBuf {
    root().join("../shared/data/wos-sample")
}

fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_encoder-bench")).args(args).current_dir(cwd).output().expect("binary runs")
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = run(args, cwd);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed:\n{text}");
    text
}

fn model_args() -> Vec<String> {
    let cfg = root().join("tests/fixtures/tiny-bert.json");
    let tok = root().join("models/minilm");
    vec!["--random-config".into(), cfg.display().to_string(), "--tokenizer".into(), tok.display().to_string()]
}

#[test]
fn fit_eval_sweep_and_bench_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = wos().display().to_string();
    let m = model_args();
    let m: Vec<&str> = m.iter().map(String::as_str).collect();
    let common = ["--data", &data, "--train-size", "168", "--max-len", "32", "--device", "cpu"];

    let mut fit = vec!["fit"];
    fit.extend(common);
    fit.extend(&m);
    fit.extend(["--epochs", "2", "--batch-size", "32", "--lr", "1e-3", "--out", "run"]);
    let text = ok(&fit, d);
    assert!(text.contains("epoch 2/2:"), "{text}");
    for f in ["run.json", "history.csv", "accuracy.svg", "accuracy.png", "loss.svg", "confusion.png", "checkpoints/best/model.safetensors"]
    {
        assert!(d.join("run").join(f).exists(), "fit did not write {f}");
    }
    let csv = std::fs::read_to_string(d.join("run/history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header + one row per epoch:\n{csv}");

    // A second fit into the same directory must refuse, not overwrite.
    let again = run(&fit, d);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a run"));

    let tok = root().join("models/minilm").display().to_string();
    let text = ok(
        &[
            "eval",
            "--data",
            &data,
            "--train-size",
            "168",
            "--checkpoint",
            "run/checkpoints/best",
            "--tokenizer",
            &tok,
            "--max-len",
            "32",
            "--device",
            "cpu",
            "--out",
            "eval",
        ],
        d,
    );
    assert!(text.contains("42 texts"), "{text}");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("eval/metrics.json")).unwrap()).unwrap();
    let acc = metrics["accuracy"].as_f64().unwrap();
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("run/run.json")).unwrap()).unwrap();
    // best/ is the validation-chosen epoch, and the run's result is the test set scored there.
    assert_eq!(record["chosen_on"], "validation");
    let tested = record["test_metrics"]["accuracy"].as_f64().unwrap();
    assert!((acc - tested).abs() < 1e-9, "eval of best/ gives {acc}, the run's test result {tested}");
    let chosen = record["chosen_epoch"].as_u64().unwrap() as usize;
    let valid = record["history"]["epochs"].as_array().unwrap().iter().filter_map(|e| e["accuracy"].as_f64()).collect::<Vec<_>>();
    assert!(valid.iter().all(|&a| a <= valid[chosen - 1]), "epoch {chosen} is the best on validation: {valid:?}");

    let mut sweep = vec!["sweep"];
    sweep.extend(common);
    sweep.extend(["--model", "missing=does/not/exist", "--tokenizer", &tok, "--epochs", "1", "--batch-sizes", "16,32", "--out", "sweep"]);
    // A NAME=SOURCE pointing nowhere fails with the path in the message.
    let bad = run(&sweep, d);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does/not/exist"), "{}", String::from_utf8_lossy(&bad.stderr));
    let at = sweep.iter().position(|a| *a == "missing=does/not/exist").unwrap();
    sweep[at] = "tiny=run/checkpoints/best";
    let text = ok(&sweep, d);
    assert!(text.contains("Design: one split with 42 test texts") && text.contains("TF-IDF + LR"), "{text}");
    let report = std::fs::read_to_string(d.join("sweep/report.csv")).unwrap();
    assert_eq!(report.lines().count(), 3, "one row per model and the baseline:\n{report}");
    assert!(report.starts_with("model,batch size 16,batch size 32"), "{report}");
    for f in ["report.parquet", "cells.csv", "runs.csv", "epochs.parquet", "comparisons.csv", "sweep.json", "accuracy.svg", "accuracy.png"]
    {
        assert!(d.join("sweep").join(f).exists(), "sweep did not write {f}");
    }

    let mut bench = vec!["bench", "--data", &data, "--device", "cpu", "--max-len", "32", "--batch-size", "4", "--warmup", "1"];
    bench.extend(&m);
    bench.extend(["--train-steps", "2", "--eval-batches", "2", "--precision", "fp32,bf16", "--json"]);
    let out = run(&bench, d);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("stdout is JSON lines only")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["config"]["precision"], "bf16");
    assert!(lines.iter().all(|l| l["train_samples_per_s"].as_f64().unwrap() > 0.0));
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["fit", "--precision", "fp16"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected fp32 or bf16"));
    let out = run(&["fit", "--data", "/nonexistent/wos", "--out", "x"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/wos"), "{}", String::from_utf8_lossy(&out.stderr));
}
