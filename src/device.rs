//! Choosing where tensors live: CUDA, then Apple MPS, then CPU.
//!
//! The choice can be forced by argument or by the `ENCODER_BENCH_DEVICE`
//! environment variable (`cpu`, `cuda`, `cuda:N`, `mps`, `auto`). Asking for a
//! device that is not there is an error, never a silent fallback to the CPU:
//! a benchmark that quietly ran on the wrong device is worse than no number.
use crate::error::{Error, Result};
use std::fmt;

/// The environment variable that overrides automatic device selection.
pub const DEVICE_ENV: &str = "ENCODER_BENCH_DEVICE";

/// A resolved device and why it was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceChoice {
    /// The libtorch device.
    pub device: tch::Device,
    /// Where the choice came from.
    pub reason: ChoiceReason,
}

/// Where a [`DeviceChoice`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceReason {
    /// Passed as an argument.
    Argument,
    /// Read from `ENCODER_BENCH_DEVICE`.
    Environment,
    /// Picked automatically (CUDA > MPS > CPU).
    Auto,
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.reason {
            ChoiceReason::Argument => "requested".to_string(),
            ChoiceReason::Environment => format!("from {DEVICE_ENV}"),
            ChoiceReason::Auto => "auto: CUDA > MPS > CPU".to_string(),
        };
        write!(f, "{} ({how}; {} CPU threads)", device_name(self.device), tch::get_num_threads())
    }
}

/// Keeps freed CPU memory in the process between training steps (glibc
/// only; a no-op elsewhere, and when the user has set glibc's malloc tunables).
///
/// With glibc's defaults, the tens of megabytes of activations a backward pass
/// frees go back to the kernel (heap trimming, and mmap for blocks above a
/// moving threshold), and the next forward pass faults every page in again,
/// zeroed: measured ~17k page faults per MiniLM training step, several percent
/// of the step on a 2-core CPU. Here blocks up to 32 MiB come from the heap and
/// up to 1 GiB of free heap is kept for reuse. The peak footprint is unchanged;
/// what a finished run leaves free stays with the process for the next one.
/// Called by `fit`, `pretrain`, evaluation and the benchmark; idempotent.
///
/// ```
/// encoder_bench::device::retain_freed_cpu_memory();
/// encoder_bench::device::retain_freed_cpu_memory(); // the second call does nothing
/// ```
pub fn retain_freed_cpu_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            if !user_tuned_malloc() {
                // SAFETY: mallopt only changes glibc's allocator parameters; it is
                // thread-safe and takes no pointers.
                unsafe {
                    // Fixing the mmap threshold also stops glibc from moving it.
                    libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                    libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
                }
            }
        }
    });
}

/// Whether the environment sets glibc's malloc tunables (then they win).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn user_tuned_malloc() -> bool {
    std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc"))
        || ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_"].iter().any(|k| std::env::var_os(k).is_some())
}

/// The short name of a device: `cpu`, `cuda:0`, `mps`.
///
/// ```
/// assert_eq!(encoder_bench::device::device_name(tch::Device::Cuda(1)), "cuda:1");
/// ```
pub fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        tch::Device::Mps => "mps".into(),
        tch::Device::Vulkan => "vulkan".into(),
    }
}

/// Whether bf16 matrix products run fast on `device`: a CUDA GPU, or a CPU
/// with AVX512-BF16 or AMX (read from `/proc/cpuinfo`; elsewhere unknown,
/// so no). Never on MPS, nor under the MPS rules.
///
/// ```
/// assert!(!encoder_bench::device::bf16_is_fast(tch::Device::Mps));
/// ```
pub fn bf16_is_fast(device: tch::Device) -> bool {
    if mps_rules_apply(device) {
        return false;
    }
    match device {
        tch::Device::Cuda(_) => true,
        tch::Device::Cpu => std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| cpu_flags_have_bf16(&info)),
        _ => false,
    }
}

/// True when a `/proc/cpuinfo` text lists `avx512_bf16` or `amx_bf16` among its flags.
fn cpu_flags_have_bf16(cpuinfo: &str) -> bool {
    cpuinfo.lines().filter(|l| l.starts_with("flags")).any(|l| l.split_whitespace().any(|f| f == "avx512_bf16" || f == "amx_bf16"))
}

/// Parses a device name and checks that it is present on this machine.
///
/// `None` means "auto". Returns an error for unknown names and absent devices.
///
/// ```
/// use encoder_bench::device::parse_device;
/// assert_eq!(parse_device("cpu").unwrap(), Some(tch::Device::Cpu));
/// assert_eq!(parse_device("auto").unwrap(), None);
/// assert!(parse_device("tpu").is_err());
/// ```
pub fn parse_device(spec: &str) -> Result<Option<tch::Device>> {
    let s = spec.trim().to_ascii_lowercase();
    let err = |msg: String| Error::Device { device: spec.to_string(), msg };
    let device = match s.as_str() {
        "auto" | "" => return Ok(None),
        "cpu" => tch::Device::Cpu,
        "mps" => {
            if !tch::utils::has_mps() {
                return Err(err("MPS (Apple GPU) is not available on this machine".into()));
            }
            tch::Device::Mps
        }
        "cuda" | "gpu" => tch::Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => tch::Device::Cuda(i),
            _ => return Err(err("expected one of cpu, cuda, cuda:N, mps, auto".into())),
        },
    };
    if let tch::Device::Cuda(i) = device {
        let n = tch::Cuda::device_count() as usize;
        if n == 0 {
            return Err(err("CUDA is not available (no GPU seen by libtorch)".into()));
        }
        if i >= n {
            return Err(err(format!("only {n} CUDA device(s): expected an index below {n}")));
        }
    }
    Ok(Some(device))
}

/// Resolves the device without printing: argument, then `ENCODER_BENCH_DEVICE`,
/// then CUDA > MPS > CPU.
pub fn resolve_device(request: Option<&str>) -> Result<DeviceChoice> {
    if let Some(r) = request
        && let Some(device) = parse_device(r)?
    {
        return Ok(DeviceChoice { device, reason: ChoiceReason::Argument });
    }
    if let Some(device) = from_env(std::env::var(DEVICE_ENV).ok())? {
        return Ok(DeviceChoice { device, reason: ChoiceReason::Environment });
    }
    let device = if tch::Cuda::is_available() {
        tch::Device::Cuda(0)
    } else if tch::utils::has_mps() {
        tch::Device::Mps
    } else {
        tch::Device::Cpu
    };
    Ok(DeviceChoice { device, reason: ChoiceReason::Auto })
}

/// Parses the value of `ENCODER_BENCH_DEVICE`; errors say where the request
/// came from, since a stale variable is easy to forget.
fn from_env(value: Option<String>) -> Result<Option<tch::Device>> {
    let Some(value) = value else { return Ok(None) };
    parse_device(&value).map_err(|e| match e {
        Error::Device { device, msg } => Error::Device { device, msg: format!("{msg} (requested by {DEVICE_ENV}={value})") },
        other => other,
    })
}

/// Checks that every tensor in `tensors` (named, for the message) is on
/// `expected`, the device of the model they are about to meet; `context`
/// says what was being done. libtorch's own error for a mix-up names
/// neither the tensors nor the call.
///
/// ```
/// use encoder_bench::device::check_same_device;
/// let ids = tch::Tensor::from_slice(&[101i64, 102]);
/// assert!(check_same_device("forward", tch::Device::Cpu, &[("input_ids", &ids)]).is_ok());
/// let e = check_same_device("forward", tch::Device::Cuda(0), &[("input_ids", &ids)]).unwrap_err().to_string();
/// assert!(e.contains("input_ids") && e.contains("cpu") && e.contains("cuda:0") && e.contains("forward"));
/// ```
pub fn check_same_device(context: &str, expected: tch::Device, tensors: &[(&str, &tch::Tensor)]) -> Result<()> {
    for (name, t) in tensors {
        let found = t.device();
        if found != expected {
            return Err(Error::Device {
                device: device_name(found),
                msg: format!(
                    "{context}: tensor `{name}` is on {} but the model is on {}; move it with `.to_device({:?})`",
                    device_name(found),
                    device_name(expected),
                    expected
                ),
            });
        }
    }
    Ok(())
}

/// The environment variable that applies the MPS rules on every device
/// (`1`): see [`enforce_mps_rules`].
pub const MPS_RULES_ENV: &str = "ENCODER_BENCH_MPS_RULES";

/// 0: not decided yet (read [`MPS_RULES_ENV`] on first use), 1: off, 2: on.
static MPS_RULES: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Applies the rules of Apple's MPS backend to every transfer, whatever the
/// device: no float64 anywhere (also outside MPS mode), no bf16 and no bf16
/// precision. MPS cannot be run where the test suite runs, so this is how a
/// CPU run finds what would fail on a Mac; `ENCODER_BENCH_MPS_RULES=1` turns
/// it on for a whole process (the CLI included).
///
/// ```
/// use encoder_bench::device::{enforce_mps_rules, mps_rules_enforced};
/// enforce_mps_rules(true);
/// assert!(mps_rules_enforced());
/// let bf16 = tch::Tensor::ones([2], (tch::Kind::BFloat16, tch::Device::Cpu));
/// assert!(encoder_bench::device::to_device(&bf16, tch::Device::Cpu).is_err());
/// enforce_mps_rules(false);
/// assert!(encoder_bench::device::to_device(&bf16, tch::Device::Cpu).is_ok());
/// ```
pub fn enforce_mps_rules(on: bool) {
    MPS_RULES.store(if on { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the MPS rules apply to every device (see [`enforce_mps_rules`]).
///
/// ```
/// // Off unless ENCODER_BENCH_MPS_RULES=1 or enforce_mps_rules(true).
/// if std::env::var_os(encoder_bench::device::MPS_RULES_ENV).is_none() {
///     assert!(!encoder_bench::device::mps_rules_enforced());
/// }
/// ```
pub fn mps_rules_enforced() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match MPS_RULES.load(Relaxed) {
        0 => {
            let on = std::env::var(MPS_RULES_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"));
            // A concurrent `enforce_mps_rules` wins over the variable.
            let _ = MPS_RULES.compare_exchange(0, if on { 2 } else { 1 }, Relaxed, Relaxed);
            MPS_RULES.load(Relaxed) == 2
        }
        v => v == 2,
    }
}

/// Whether MPS's rules apply to work on `device`: it is MPS, or the rules
/// are enforced everywhere.
///
/// ```
/// assert!(encoder_bench::device::mps_rules_apply(tch::Device::Mps));
/// ```
pub fn mps_rules_apply(device: tch::Device) -> bool {
    device == tch::Device::Mps || mps_rules_enforced()
}

/// What MPS refuses or this crate does not offer there, or `None`.
fn transfer_refusal(kind: tch::Kind, mps: bool) -> Option<&'static str> {
    match kind {
        // Nothing in the crate needs float64 on a device, and MPS has none:
        // refusing it everywhere makes a CPU run show what a Mac would hit.
        tch::Kind::Double | tch::Kind::ComplexDouble => {
            Some("float64 tensors are never moved to a device (MPS has no float64): convert to float32 first")
        }
        tch::Kind::BFloat16 if mps => Some("bf16 is not offered on MPS: use fp32"),
        _ => None,
    }
}

/// Checks that a tensor of `kind` may be moved to `device` (see [`to_device`]).
///
/// ```
/// use encoder_bench::device::check_transfer;
/// assert!(check_transfer(tch::Kind::Float, tch::Device::Mps).is_ok());
/// assert!(check_transfer(tch::Kind::Double, tch::Device::Cpu).is_err());
/// assert!(check_transfer(tch::Kind::BFloat16, tch::Device::Mps).is_err());
/// ```
pub fn check_transfer(kind: tch::Kind, device: tch::Device) -> Result<()> {
    match transfer_refusal(kind, mps_rules_apply(device)) {
        None => Ok(()),
        Some(why) => {
            let note = if device != tch::Device::Mps && kind == tch::Kind::BFloat16 {
                " (the MPS rules are enforced on every device)"
            } else {
                ""
            };
            Err(Error::Device { device: device_name(device), msg: format!("moving a {kind:?} tensor: {why}{note}") })
        }
    }
}

/// Moves `t` to `device`: the crate's one host-to-device transfer. Refuses
/// float64 on every device and bf16 under the MPS rules
/// ([`mps_rules_apply`]); libtorch's own failure (out of device memory) is
/// an error, not a panic.
///
/// ```
/// use encoder_bench::device::to_device;
/// let ids = tch::Tensor::from_slice(&[101i64, 102]);
/// assert_eq!(to_device(&ids, tch::Device::Cpu)?.size(), vec![2]);
/// let e = to_device(&tch::Tensor::from(0.5f64), tch::Device::Cpu).unwrap_err().to_string();
/// assert!(e.contains("float64"), "{e}");
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn to_device(t: &tch::Tensor, device: tch::Device) -> Result<tch::Tensor> {
    check_transfer(t.kind(), device)?;
    t.f_to_device(device).map_err(|e| Error::torch(format!("moving a {:?} tensor to {}", t.kind(), device_name(device)), e))
}

/// Moves every variable of `vs` to `device`, after checking each against
/// the rules of [`to_device`] (a variable that breaks one is named).
///
/// ```
/// let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let _w = vs.root().zeros("w", &[2]);
/// encoder_bench::device::move_var_store(&mut vs, tch::Device::Cpu)?;
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn move_var_store(vs: &mut tch::nn::VarStore, device: tch::Device) -> Result<()> {
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, v) in &vars {
        check_transfer(v.kind(), device).map_err(|e| match e {
            Error::Device { device, msg } => Error::Device { device, msg: format!("variable `{name}`: {msg}") },
            other => other,
        })?;
    }
    vs.set_device(device);
    Ok(())
}

/// Total memory of this machine in bytes: `MemTotal` of `/proc/meminfo`,
/// or the cgroup's `memory.max` when that is lower (a container). `None`
/// where neither can be read (not Linux).
///
/// ```
/// if let Some(bytes) = encoder_bench::device::total_memory_bytes() {
///     assert!(bytes > 1 << 20);
/// }
/// ```
pub fn total_memory_bytes() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| parse_meminfo_total(&t));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|t| t.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal` in bytes from the text of `/proc/meminfo` (`MemTotal: 16314476 kB`).
fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        None => 1,
        Some(u) if u.eq_ignore_ascii_case("kb") => 1024,
        Some(_) => return None,
    };
    value.checked_mul(unit)
}

/// Resolves the device (see [`resolve_device`]) and prints the choice, as the
/// seed notebook printed its MPS device.
///
/// ```
/// let device = encoder_bench::device::select_device(Some("cpu"))?;
/// assert_eq!(device, tch::Device::Cpu);
/// # Ok::<(), encoder_bench::Error>(())
/// ```
pub fn select_device(request: Option<&str>) -> Result<tch::Device> {
    let choice = resolve_device(request)?;
    println!("Using device: {choice}");
    Ok(choice.device)
}

/// Runs `f` right after `tch::manual_seed(seed)`, with no other thread's
/// seeded section between the seed and `f`'s draws.
///
/// libtorch's CPU generator is one per process, so two threads that seed and
/// draw at once (two models initialised or trained side by side, or tests run
/// in parallel) would interleave their draws, and a seeded initialisation or
/// dropout mask would depend on timing. Every seeded draw in this crate goes
/// through here: seeded results are the same whatever else runs in the
/// process. Sections on one thread nest (the inner one re-seeds).
///
/// ```
/// let a = encoder_bench::device::seeded(7, || tch::Tensor::randn([3], tch::kind::FLOAT_CPU));
/// let b = encoder_bench::device::seeded(7, || tch::Tensor::randn([3], tch::kind::FLOAT_CPU));
/// assert!(a.equal(&b));
/// ```
pub fn seeded<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    // Reentrant, so a section inside a section on the same thread nests; no
    // poisoning, since a panic inside a section leaves nothing half-done.
    static GENERATOR: parking_lot::ReentrantMutex<()> = parking_lot::const_reentrant_mutex(());
    let _guard = GENERATOR.lock();
    tch::manual_seed(seed);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn bf16_flags_are_read_from_the_flags_line_only() {
        assert!(cpu_flags_have_bf16("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n"));
        assert!(cpu_flags_have_bf16("flags\t: sse amx_bf16\n"));
        assert!(!cpu_flags_have_bf16("flags\t: fpu avx512f avx512_bf16x\nbugs\t: avx512_bf16\n"));
        assert!(!cpu_flags_have_bf16(""));
    }

    #[test]
    fn absent_accelerators_are_errors_not_fallbacks() {
        if tch::Cuda::device_count() == 0 {
            let e = parse_device("cuda").unwrap_err().to_string();
            assert!(e.contains("cuda") && e.contains("not available"), "{e}");
            assert!(parse_device("cuda:3").is_err());
        }
        if !tch::utils::has_mps() {
            let e = parse_device("mps").unwrap_err().to_string();
            assert!(e.contains("MPS"), "{e}");
        }
    }

    /// A freed activation-sized block is reused without faulting its pages
    /// in again (with glibc's defaults it would be unmapped and re-mapped).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_blocks_are_reused_without_page_faults() {
        if user_tuned_malloc() {
            return; // the user's settings win; nothing to check
        }
        retain_freed_cpu_memory();
        let faults = || {
            // SAFETY: getrusage writes one rusage struct into the zeroed value it is given.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
            u.ru_minflt
        };
        let touch = |n: usize| {
            let mut v = vec![1u8; n];
            v[n - 1] = 2;
            std::hint::black_box(&v);
        };
        let n = 24 << 20;
        touch(n);
        let before = faults();
        touch(n);
        let again = faults() - before;
        assert!(again < 512, "{again} page faults re-allocating a freed {n}-byte block ({} pages)", n / 4096);
    }

    #[test]
    fn transfer_rules_refuse_float64_everywhere_and_bf16_under_mps_rules() {
        use tch::Kind;
        assert_eq!(transfer_refusal(Kind::Float, true), None);
        assert_eq!(transfer_refusal(Kind::Int64, true), None);
        assert!(transfer_refusal(Kind::Double, false).is_some_and(|m| m.contains("float64")));
        assert_eq!(transfer_refusal(Kind::BFloat16, false), None);
        assert!(transfer_refusal(Kind::BFloat16, true).is_some_and(|m| m.contains("bf16")));
        let e = check_transfer(Kind::BFloat16, tch::Device::Mps).unwrap_err().to_string();
        assert!(e.contains("device `mps`") && e.contains("BFloat16"), "{e}");
    }

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let text = "MemTotal:       16314476 kB\nMemFree:         1234 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(16314476 * 1024));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo_total("MemTotal: lots kB\n"), None);
        if cfg!(target_os = "linux") {
            assert!(total_memory_bytes().is_some_and(|b| b > 1 << 26));
        }
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_device(" CPU ").unwrap(), Some(tch::Device::Cpu));
        assert_eq!(device_name(tch::Device::Cpu), "cpu");
        let e = parse_device("cuda:x").unwrap_err().to_string();
        assert!(e.contains("cuda:x") && e.contains("cuda:N"), "{e}");
    }

    #[test]
    fn environment_errors_name_the_variable() {
        assert_eq!(from_env(None).unwrap(), None);
        assert_eq!(from_env(Some("cpu".into())).unwrap(), Some(tch::Device::Cpu));
        let e = from_env(Some("tpu".into())).unwrap_err().to_string();
        assert!(e.contains("device `tpu`") && e.contains("ENCODER_BENCH_DEVICE=tpu") && e.contains("cuda:N"), "{e}");
        if tch::Cuda::device_count() == 0 {
            let e = from_env(Some("cuda".into())).unwrap_err().to_string();
            assert!(e.contains("not available") && e.contains("ENCODER_BENCH_DEVICE=cuda"), "{e}");
        }
    }

    #[test]
    fn argument_wins_over_environment() {
        // The environment is only read when no argument is given; an explicit
        // argument must not be overridden by a stale variable.
        let c = resolve_device(Some("cpu")).unwrap();
        assert_eq!(c.reason, ChoiceReason::Argument);
        assert_eq!(c.device, tch::Device::Cpu);
    }

    #[test]
    fn seeded_sections_on_parallel_threads_draw_their_own_values() {
        let draw = |seed: i64| Vec::<f32>::try_from(seeded(seed, || Tensor::randn([64], tch::kind::FLOAT_CPU))).unwrap();
        let expected: Vec<Vec<f32>> = (0..4).map(draw).collect();
        // Without the lock a thread's seed is often overwritten between its
        // `manual_seed` and its draw; 2 x 300 sections make a miss near certain.
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..2i64)
                .map(|t| {
                    let expected = &expected;
                    s.spawn(move || (0..300i64).all(|i| draw((i + t) % 4) == expected[((i + t) % 4) as usize]))
                })
                .collect();
            assert!(workers.into_iter().all(|w| w.join().unwrap()));
        });
    }

    #[test]
    fn a_nested_section_reseeds_instead_of_waiting_for_itself() {
        let (outer, inner) =
            seeded(1, || (Tensor::randn([4], tch::kind::FLOAT_CPU), seeded(2, || Tensor::randn([4], tch::kind::FLOAT_CPU))));
        assert!(outer.equal(&seeded(1, || Tensor::randn([4], tch::kind::FLOAT_CPU))));
        assert!(inner.equal(&seeded(2, || Tensor::randn([4], tch::kind::FLOAT_CPU))));
    }
}
