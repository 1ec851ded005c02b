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

#[cfg(test)]
mod tests {
    use super::*;

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
}
