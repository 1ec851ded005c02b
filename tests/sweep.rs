//! A planned sweep run job by job — in any order, one job killed mid-run and
//! run again — gives exactly the in-process sweep (issue #17, scale-out).
use encoder_bench::sweep::{Sweep, SweepPlan, sweep};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_encoder-bench")).args(args).current_dir(root()).output().unwrap()
}

fn run_job(plan: &Path, n: usize) -> String {
    let o = cli(&["sweep", "--plan", plan.to_str().unwrap(), "--run-job", &n.to_string()]);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "job {n}: {text}");
    text
}

/// Starts job `n` and kills it (SIGKILL: no chance to clean up) as soon as
/// its first checkpoint (`last/`, swapped in whole) exists.
fn kill_after_first_checkpoint(plan: &Path, n: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_encoder-bench"))
        .args(["sweep", "--plan", plan.to_str().unwrap(), "--run-job", &n.to_string()])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let last = plan.join(format!("jobs/{n:04}/run/last/trainer_state.json"));
    let start = std::time::Instant::now();
    while !last.exists() {
        assert!(child.try_wait().unwrap().is_none(), "job {n} ended before its first checkpoint");
        assert!(start.elapsed().as_secs() < 300, "no checkpoint after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn strip(s: &Sweep) -> Vec<encoder_bench::sweep::JobResult> {
    s.runs.iter().map(|r| r.without_timings()).collect()
}

#[test]
fn a_planned_sweep_run_job_by_job_equals_the_in_process_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plan");
    let p = plan_dir.to_str().unwrap();
    let o = cli(&[
        "sweep",
        "--plan",
        p,
        "--folds",
        "2",
        "--batch-sizes",
        "32",
        "--epochs",
        "3",
        "--max-len",
        "16",
        "--lr",
        "1e-4",
        "--seeds",
        "0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let commands = std::fs::read_to_string(plan_dir.join("jobs.txt")).unwrap();
    assert_eq!(commands.lines().count(), 4, "2 folds × (1 model + baseline): {commands}");
    assert!(commands.lines().all(|l| l.starts_with("encoder-bench sweep --plan ")));

    // Collecting before every job ran names what is missing.
    let early = cli(&["sweep", "--collect", p]);
    assert_eq!(early.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&early.stderr).contains("4 of 4 jobs"), "{}", String::from_utf8_lossy(&early.stderr));

    // Out of order; job 1 killed after its first epoch, then run again (it resumes).
    run_job(&plan_dir, 3);
    kill_after_first_checkpoint(&plan_dir, 1);
    assert!(!plan_dir.join("jobs/0001/result.json").exists(), "killed before it finished");
    run_job(&plan_dir, 1);
    run_job(&plan_dir, 2);
    run_job(&plan_dir, 0);
    assert!(run_job(&plan_dir, 0).contains("already finished"), "a finished job is skipped");

    let o = cli(&["sweep", "--collect", p]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let collected = Sweep::collect(&plan_dir).unwrap();
    assert!(plan_dir.join("summary/report.csv").exists());

    let plan = SweepPlan::read(&plan_dir).unwrap();
    let in_process = sweep(&plan, tch::Device::Cpu, |_| {}).unwrap();
    assert_eq!(strip(&collected), strip(&in_process));
    assert_eq!(collected.report_frame(), in_process.report_frame());
    let no_speed = |s: &Sweep| s.conclusions().into_iter().filter(|c| !c.contains("throughput")).collect::<Vec<_>>();
    assert_eq!(no_speed(&collected), no_speed(&in_process));
}
