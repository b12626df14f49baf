//! Run-time instruction-set dispatch and the vectorisable inner loops the kernels share (exp, SiLU,
//! exact GELU, reductions). Each loop is plain Rust that LLVM vectorises once compiled for a wider target.

use std::sync::OnceLock;

/// The instruction sets a multiversioned loop is compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The build target's own features (SSE2 on x86-64, NEON on aarch64).
    Baseline,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512 F/VL/BW/DQ (plus AVX2 and FMA).
    Avx512,
}

/// The widest level this CPU runs, detected once.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    let avx512 = avx2
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq");
    if avx512 {
        Level::Avx512
    } else if avx2 {
        Level::Avx2
    } else {
        Level::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Baseline
}

/// Defines `fn $name(args)` running `body` compiled for the CPU's [`level`], and `fn $name_at(level, args)`
/// for a given level (capped at the CPU's, so it is always safe; tests use it to cover every path).
/// The body must only call `#[inline(always)]` helpers, so that they are compiled for the same target.
///
/// Written `fn $name / $name_at<const FMA: bool>(args)`, the body also gets a const `FMA`: true
/// where the level has fused multiply-add, for [`madd`] and [`exp_with`]. Results then differ
/// between levels by rounding (a fused multiply-add rounds once), so only loops whose callers
/// tolerate that use it.
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $name_at:ident <const $fma:ident: bool> ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        #[inline]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            $name_at($crate::kernels::simd::level(), $($arg),*)
        }

        #[doc = concat!("[`", stringify!($name), "`] compiled for `level`, or the CPU's level when that is lower.")]
        $vis fn $name_at(level: $crate::kernels::simd::Level, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic<const $fma: bool>($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
            fn avx512($($arg: $ty),*) $(-> $ret)? {
                generic::<true>($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                generic::<true>($($arg),*)
            }

            match level.min($crate::kernels::simd::level()) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `level()` detected AVX-512 F/VL/BW/DQ, AVX2 and FMA on this CPU.
                $crate::kernels::simd::Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `level()` detected AVX2 and FMA on this CPU.
                $crate::kernels::simd::Level::Avx2 => unsafe { avx2($($arg),*) },
                _ => generic::<{ $crate::kernels::simd::BASELINE_FMA }>($($arg),*),
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $name_at:ident ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        // The same dispatch; the body ignores the const, so every level computes alike.
        $crate::kernels::simd::multiversion! {
            $(#[$meta])*
            $vis fn $name / $name_at <const _FMA: bool> ($($arg: $ty),*) $(-> $ret)? $body
        }
    };
}
pub(crate) use multiversion;

/// Whether the baseline target has fused multiply-add (aarch64 always does; x86-64 only when built
/// for a CPU with FMA). Without it `f32::mul_add` is a slow library call, so [`madd`] must not fuse.
pub const BASELINE_FMA: bool = cfg!(any(target_arch = "aarch64", target_feature = "fma"));

/// `a·b + c`: fused (rounded once) when `FMA`, else a product and a sum (rounded twice).
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `eˣ` in f32 (Cephes `expf`: range reduction by ln 2, degree-5 polynomial, relative error about 1e-7).
/// Inputs are clamped to [-87, 88], so the result is never 0 or ∞ (e⁻⁸⁷ ≈ 1.6e-38).
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_with::<false>(x)
}

/// [`exp`] with its multiply-adds fused when `FMA` (half the instructions; the same bound on the
/// error). `exp_with::<false>` is [`exp`], operation for operation.
#[inline(always)]
pub fn exp_with<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = madd::<FMA>(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = madd::<FMA>(-n, LN2_HI, x);
    let r = madd::<FMA>(-n, LN2_LO, r);
    let p = 1.987_569_1e-4_f32;
    let p = madd::<FMA>(p, r, 1.398_199_9e-3);
    let p = madd::<FMA>(p, r, 8.333_452e-3);
    let p = madd::<FMA>(p, r, 4.166_579_6e-2);
    let p = madd::<FMA>(p, r, 1.666_666_5e-1);
    let p = madd::<FMA>(p, r, 0.5);
    let y = madd::<FMA>(p * r, r, r) + 1.0;
    // 2ⁿ built from its bits: n = bits(t) - bits(ROUND), exponent field n + 127 (within 1..=254 after the clamp).
    let two_n = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    y * two_n
}

/// SiLU, `x · σ(x)`.
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// The error function (Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7; PyTorch's vectorised
/// `erf` uses the same formula).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// GELU with the exact (erf) form, `x · Φ(x)`.
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp_of_std() {
        let mut worst = 0f32;
        // Inside the clamp range [-87, 88].
        for i in -86_900..=87_900 {
            let x = i as f32 * 1e-3;
            let want = x.exp();
            worst = worst.max(((exp(x) - want) / want).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn erf_and_gelu_are_close_to_the_f64_reference() {
        let mut worst = 0f64;
        for i in -8000..=8000 {
            let x = i as f32 * 1e-3;
            let xf = f64::from(x);
            // candle's f64 erf (a port of statrs) as the reference.
            let want = candle_core::cpu::erf::erf_f64(xf * std::f64::consts::FRAC_1_SQRT_2);
            worst = worst.max((f64::from(erf(x * std::f32::consts::FRAC_1_SQRT_2)) - want).abs());
        }
        // A&S 7.1.26 is within 1.5e-7 in exact arithmetic; f32 rounding adds a few ulp of 1.
        assert!(worst < 6e-7, "worst absolute erf error {worst}");
        assert!((gelu_erf(3.0) - 2.995_950_2).abs() < 1e-6);
        assert_eq!(gelu_erf(0.0), 0.0);
    }

    #[test]
    fn fused_exp_is_as_close_to_std() {
        let mut worst = 0f32;
        for i in -86_900..=87_900 {
            let x = i as f32 * 1e-3;
            let want = x.exp();
            worst = worst.max(((exp_with::<true>(x) - want) / want).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp_with::<true>(-1000.0) > 0.0 && exp_with::<true>(1000.0).is_finite());
    }
}
