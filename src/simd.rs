//! Runtime choice of vector width for the few element loops written in Rust
//! (dropout masks, the Adam update): the loop is compiled once per x86
//! feature level and the widest the CPU has is called. Every variant does the
//! same IEEE operations in the same order (Rust never contracts `a * b + c`
//! into an FMA on its own), so results do not depend on the CPU.

/// Defines `fn $name(args)` whose body is compiled for AVX-512F, AVX2 and the
/// baseline, and dispatches at run time.
///
/// ```ignore
/// simd_dispatch! {
///     /// Doubles every element.
///     fn double(xs: &mut [f32]) {
///         for x in xs { *x *= 2.0 }
///     }
/// }
/// ```
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) {
                generic($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) {
                generic($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked on the line above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked on the line above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;
