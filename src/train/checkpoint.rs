//! The run core shared by fine-tuning ([`fit`](mod@super::fit)) and pre-training
//! ([`pretrain`](mod@super::pretrain)): the run directory's layout and its
//! crash-safe saves, the trainer state written beside the weights and read
//! back to resume, the per-step seed that makes a resumed run draw what the
//! uninterrupted one drew, and the checks that stop a run.
//!
//! A run directory holds `last/` (weights, `optimizer.safetensors`,
//! `trainer_state.json`: everything needed to continue) and, for
//! fine-tuning, `best/`. Each is written whole into `<name>.partial` and
//! swapped in by renames, so a crash mid-save leaves the previous one intact.
//!
//! ```
//! use encoder_bench::train::checkpoint::{save_dir, saved_dir};
//! let dir = tempfile::tempdir()?;
//! save_dir(dir.path(), "last", |d| encoder_bench::error::write_atomic(d.join("x"), b"1"))?;
//! assert_eq!(saved_dir(dir.path(), "last"), dir.path().join("last"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use super::config::StopConfig;
use super::optim::Optimizer;
use crate::error::{Error, Result};
use crate::weights::{KeyMap, load_into, read_weights};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Tensor, nn};

/// The file in a checkpoint holding the run's position and settings.
pub const TRAINER_STATE: &str = "trainer_state.json";
/// The file in a checkpoint holding the optimizer's moments.
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";
/// The file in a checkpoint holding the weights.
pub const WEIGHTS: &str = "model.safetensors";

/// Why a run returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All epochs ran.
    Completed,
    /// `max_steps` was reached.
    MaxSteps,
    /// `time_budget_s` ran out.
    TimeBudget,
    /// The stop file appeared.
    StopFile,
    /// Ctrl-C (SIGINT) asked for a stop (see [`install_interrupt_handler`]).
    Interrupted,
    /// The validation metric did not improve for `patience` epochs.
    EarlyStopping,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and `_exit`.
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe; a second Ctrl-C means "now".
        unsafe { libc::_exit(130) };
    }
}

/// Makes the first Ctrl-C (SIGINT) a clean stop: the running step finishes,
/// then the run saves its checkpoint and returns
/// [`StopReason::Interrupted`], so its records are written as for a stop
/// file. A second Ctrl-C exits at once (status 130). For programs that own
/// the process (the CLI); a notebook kernel keeps its own handler.
///
/// ```no_run
/// encoder_bench::train::checkpoint::install_interrupt_handler();
/// ```
pub fn install_interrupt_handler() {
    // SAFETY: the handler only touches an atomic and calls `_exit`.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
}

/// True once Ctrl-C has asked for a stop (after [`install_interrupt_handler`]).
///
/// ```
/// assert!(!encoder_bench::train::checkpoint::interrupted());
/// ```
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Salt of fine-tuning's per-step seeds (see [`step_seed`]).
pub const FINE_TUNING_SALT: u64 = 0x9E37_79B9_7F4A_7C15;
/// Salt of pre-training's per-step seeds (see [`step_seed`]).
pub const PRETRAINING_SALT: u64 = 0xD1B5_4A32_D192_ED03;

/// The seed of every random draw of one step (dropout, masks) and of one
/// epoch's shuffle (`step = usize::MAX`): a pure function of the run seed and
/// the position, so a run resumed from any step draws exactly what the
/// uninterrupted run drew. `salt` keeps fine-tuning's and pre-training's
/// streams apart.
///
/// ```
/// use encoder_bench::train::checkpoint::{FINE_TUNING_SALT, step_seed};
/// assert_eq!(step_seed(FINE_TUNING_SALT, 0, 1, 2), step_seed(FINE_TUNING_SALT, 0, 1, 2));
/// assert_ne!(step_seed(FINE_TUNING_SALT, 0, 1, 2), step_seed(FINE_TUNING_SALT, 0, 2, 1));
/// ```
pub fn step_seed(salt: u64, seed: u64, epoch: usize, step: usize) -> u64 {
    let mut x = seed ^ salt;
    for v in [epoch as u64, step as u64] {
        x = (x ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 31;
    }
    x
}

/// A [`step_seed`] as libtorch's `manual_seed` takes it (non-negative).
///
/// ```
/// assert!(encoder_bench::train::checkpoint::torch_seed(u64::MAX) >= 0);
/// ```
pub fn torch_seed(seed: u64) -> i64 {
    (seed >> 1) as i64
}

/// The time-budget and stop-file checks of a run, from the moment it starts.
///
/// ```
/// use encoder_bench::train::StopConfig;
/// use encoder_bench::train::checkpoint::StopWatch;
/// let w = StopWatch::start(&StopConfig { time_budget_s: Some(3600.0), ..Default::default() });
/// assert_eq!(w.check(), None);
/// ```
#[derive(Debug)]
pub struct StopWatch {
    start: Instant,
    budget: Option<f64>,
    stop_file: Option<PathBuf>,
}

impl StopWatch {
    /// Starts the clock for the signals of `stop`.
    pub fn start(stop: &StopConfig) -> Self {
        StopWatch { start: Instant::now(), budget: stop.time_budget_s, stop_file: stop.stop_file.clone() }
    }

    /// Seconds since the start.
    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The signal that asks the run to stop now, if any: Ctrl-C, then the
    /// time budget, then the stop file. The stop file is consumed (removed)
    /// when it stops a run, so the next run — the next cell, the next run of
    /// a sweep — is not stopped by the same request.
    pub fn check(&self) -> Option<StopReason> {
        if interrupted() {
            return Some(StopReason::Interrupted);
        }
        if self.budget.is_some_and(|b| self.elapsed_s() >= b) {
            return Some(StopReason::TimeBudget);
        }
        if let Some(f) = self.stop_file.as_ref().filter(|f| f.exists()) {
            if let Err(e) = std::fs::remove_file(f) {
                eprintln!("stopping: the stop file {} could not be removed ({e}); remove it before the next run", f.display());
            }
            return Some(StopReason::StopFile);
        }
        None
    }
}

/// Where `dir/<name>` (written by [`save_dir`]) is: itself, or `<name>.old`
/// when a crash fell between its two renames.
pub fn saved_dir(dir: &Path, name: &str) -> PathBuf {
    let (fin, old) = (dir.join(name), dir.join(format!("{name}.old")));
    if !fin.exists() && old.exists() { old } else { fin }
}

/// Writes `dir/<name>` as a whole: into `<name>.partial`, then swapped in by
/// renames, so a crash mid-save leaves the previous checkpoint intact.
pub fn save_dir(dir: &Path, name: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let fin = dir.join(name);
    let tmp = dir.join(format!("{name}.partial"));
    let old = dir.join(format!("{name}.old"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write(&tmp)?;
    let _ = std::fs::remove_dir_all(&old);
    if fin.exists() {
        std::fs::rename(&fin, &old).map_err(|e| Error::io(&fin, e))?;
    }
    std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Refuses to start a new run over the checkpoints of an earlier one.
pub fn check_no_run(dir: &Path) -> Result<()> {
    if let Some(found) = ["last", "best", "last.old"].iter().find(|n| dir.join(n).exists()) {
        return Err(Error::invalid(
            "checkpoint_dir",
            format!(
                "{} already holds a run ({found}/ exists): call `resume` to continue it, set `overwrite: true` in the config \
                 to replace it, or choose another directory",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Writes `dir/<name>` as one checkpoint: the model (by `save_model`, which
/// writes weights, config and tokenizer as a model directory), the
/// optimizer's moments when given, and `state` as [`TRAINER_STATE`].
///
/// ```
/// use encoder_bench::train::checkpoint::{read_state, save_checkpoint};
/// let dir = tempfile::tempdir()?;
/// save_checkpoint(dir.path(), "last", |_| Ok(()), None, &serde_json::json!({"global_step": 7}))?;
/// let state: serde_json::Value = read_state(&dir.path().join("last"))?;
/// assert_eq!(state["global_step"], 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_checkpoint<S: Serialize>(
    dir: &Path,
    name: &str,
    save_model: impl FnOnce(&Path) -> Result<()>,
    opt: Option<&Optimizer>,
    state: &S,
) -> Result<()> {
    let json = serde_json::to_string_pretty(state).map_err(|e| Error::invalid("trainer state", e.to_string()))?;
    save_dir(dir, name, |d| {
        save_model(d)?;
        if let Some(opt) = opt {
            let path = d.join(OPTIMIZER_STATE);
            Tensor::write_safetensors(&opt.state(), &path).map_err(|e| Error::torch(format!("writing {}", path.display()), e))?;
        }
        crate::error::write_atomic(d.join(TRAINER_STATE), json.as_bytes())
    })
}

/// Reads the trainer state of the checkpoint in `from`.
pub fn read_state<S: DeserializeOwned>(from: &Path) -> Result<S> {
    let path = from.join(TRAINER_STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::config(&path, "<json>", e.to_string()))
}

/// Loads the weights and optimizer moments of the checkpoint in `from` into
/// `vs` and `opt` (keys exactly as saved).
pub fn restore_weights(from: &Path, vs: &nn::VarStore, opt: &mut Optimizer) -> Result<()> {
    restore_model(from, vs)?;
    let opt_path = from.join(OPTIMIZER_STATE);
    opt.load_state(&read_weights(&opt_path)?, &opt_path)
}

/// Loads only the weights of the checkpoint in `from` into `vs` (a `best/`
/// checkpoint has no optimizer state).
pub fn restore_model(from: &Path, vs: &nn::VarStore) -> Result<()> {
    let weights = from.join(WEIGHTS);
    let map = KeyMap { encoder_prefix: "", strip_prefixes: &[], ignore: &[], may_be_missing: &[] };
    load_into(vs, read_weights(&weights)?, &map, &weights).map(|_| ())
}

/// An exclusive hold on a run directory for as long as it lives: two runs
/// writing the same checkpoints would leave one of them holding the other's
/// weights. Taken before any training, so an unwritable directory is also
/// found at once. The lock (`flock` on `<dir>/.lock`) is released by the
/// kernel when the process ends, however it ends.
///
/// ```
/// use encoder_bench::train::checkpoint::RunLock;
/// let dir = tempfile::tempdir()?;
/// let held = RunLock::acquire(dir.path())?;
/// assert!(RunLock::acquire(dir.path()).is_err());
/// drop(held);
/// assert!(RunLock::acquire(dir.path()).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Creates `dir` if needed and locks it, or says which directory is busy.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        use std::os::unix::io::AsRawFd;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::invalid(
                "checkpoint_dir",
                format!(
                    "{} is in use by another run (it holds {}): wait for it to finish, or choose another directory",
                    dir.display(),
                    path.display()
                ),
            ));
        }
        Ok(RunLock { _file: file })
    }
}

/// Refuses to save weights that are no longer numbers: a checkpoint must be
/// a point a run can go back to. `what` names the run and position.
///
/// ```
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let mut w = vs.root().zeros("w", &[2]);
/// assert!(encoder_bench::train::checkpoint::check_finite_weights(&vs, "test").is_ok());
/// let _ = tch::no_grad(|| w.fill_(f64::NAN));
/// assert!(encoder_bench::train::checkpoint::check_finite_weights(&vs, "test").is_err());
/// ```
pub fn check_finite_weights(vs: &nn::VarStore, what: &str) -> Result<()> {
    let bad =
        tch::no_grad(|| vs.variables().into_iter().find(|(_, v)| v.isfinite().logical_not().any().int64_value(&[]) != 0).map(|(k, _)| k));
    match bad {
        None => Ok(()),
        Some(name) => Err(Error::Training(format!(
            "{what}: weight `{name}` became NaN or infinite (the learning rate may be too high); not saved, the last good checkpoint, if any, is kept"
        ))),
    }
}
