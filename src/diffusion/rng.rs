//! Seeded standard-normal noise, bit-exact with the two random streams A1111 offers:
//! torch's CPU generator ("CPU") and A1111's Philox imitation of CUDA randn ("NV").

/// Which random stream generates the noise (A1111 "RNG" setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoiseSource {
    /// `torch.randn(shape, generator=torch.Generator('cpu').manual_seed(seed))`.
    Cpu,
    /// A1111's `rng_philox.Generator(seed).randn(shape)`, its imitation of CUDA `torch.randn`.
    Nv,
}

/// A stream of standard normal draws; each call to `randn` is one torch.randn call.
///
/// Like A1111's `ImageRNG`, draw 0 is the initial noise and every later draw (a sampler's
/// `randn_like`) continues the same generator.
#[derive(Debug, Clone)]
pub struct NoiseRng {
    stream: Stream,
}

#[derive(Debug, Clone)]
enum Stream {
    // Boxed: the mt19937 state is 2.5 KiB, the Philox state 12 bytes.
    Cpu(Box<TorchCpuRng>),
    Nv(PhiloxRng),
}

impl NoiseRng {
    /// A fresh generator for `seed`.
    ///
    /// CPU uses only the low 32 bits of `seed` (torch seeds mt19937 with `seed & 0xffffffff`);
    /// NV keys Philox with all 64 bits.
    #[must_use]
    pub fn new(source: NoiseSource, seed: u64) -> Self {
        let stream = match source {
            NoiseSource::Cpu => Stream::Cpu(Box::new(TorchCpuRng::new(seed))),
            NoiseSource::Nv => Stream::Nv(PhiloxRng::new(seed)),
        };
        Self { stream }
    }

    /// The stream this generator draws from.
    #[must_use]
    pub fn source(&self) -> NoiseSource {
        match self.stream {
            Stream::Cpu(_) => NoiseSource::Cpu,
            Stream::Nv(_) => NoiseSource::Nv,
        }
    }

    /// One torch.randn call of `numel` values (row-major order of the tensor).
    pub fn randn(&mut self, numel: usize) -> Vec<f32> {
        let mut out = vec![0.0; numel];
        self.randn_into(&mut out);
        out
    }

    /// One torch.randn call that fills `out`; `out.len()` is the tensor's numel.
    pub fn randn_into(&mut self, out: &mut [f32]) {
        match &mut self.stream {
            Stream::Cpu(rng) => rng.randn_into(out),
            Stream::Nv(rng) => rng.randn_into(out),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CPU: torch's mt19937 generator and its float32 normal kernels
// ---------------------------------------------------------------------------------------------

const MT_N: usize = 624;
const MT_M: usize = 397;

/// torch's CPU generator (`CPUGeneratorImpl`): an mt19937 engine, plus the cached second
/// Box–Muller value of its scalar double-precision normal sampler.
///
/// [`TorchCpuRng::randn_into`] reproduces `torch.randn` of a contiguous float32 tensor:
/// - numel ≥ 16: torch's vectorised fill, the AVX2 kernel `normal_fill_AVX2` (what torch runs
///   on any x86-64 CPU with AVX2, AVX-512 ones included; torch on ARM or on pre-AVX2 CPUs uses
///   libm's `logf`/`sinf`/`cosf` instead and can differ in the last bit). It first draws one 24-bit uniform per value, then Box–Muller turns
///   each block of 16 in place: lane `j` takes `u1 = 1 - u[j]`, `u2 = u[j + 8]` and writes
///   `r·cos θ` to slot `j` and `r·sin θ` to slot `j + 8`. A ragged tail draws 16 *new*
///   uniforms over the last 16 slots and transforms them again, so the uniforms of the
///   overlap are drawn but overwritten. The maths is `avx_mathfun.h`'s Cephes `log256_ps` /
///   `sincos256_ps` in float32, with the multiply-adds fused the way GCC contracts them in
///   torch's `-mfma` build (see `fused`).
/// - numel < 16: `at::normal_distribution<double>` per value: two 53-bit uniforms give
///   `r = sqrt(-2 log1p(-u2))`, `θ = 2π u1`; it returns `r cos θ` and caches `r sin θ` for the
///   next value. The cache survives across calls (but the vectorised fill ignores it).
#[derive(Debug, Clone)]
pub struct TorchCpuRng {
    state: [u32; MT_N],
    index: usize,
    next_double_normal: Option<f64>,
}

impl TorchCpuRng {
    /// `torch.Generator('cpu').manual_seed(seed)`: mt19937 seeded with `seed & 0xffffffff`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut state = [0_u32; MT_N];
        state[0] = seed as u32;
        for j in 1..MT_N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253_u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        Self {
            state,
            index: MT_N,
            next_double_normal: None,
        }
    }

    /// Regenerates all 624 state words (the standard mt19937 recurrence).
    fn twist(&mut self) {
        fn mix(upper: u32, lower: u32, far: u32) -> u32 {
            let y = (upper & 0x8000_0000) | (lower & 0x7fff_ffff);
            far ^ (y >> 1) ^ if y & 1 == 0 { 0 } else { 0x9908_b0df }
        }
        let s = &mut self.state;
        for i in 0..MT_N - MT_M {
            s[i] = mix(s[i], s[i + 1], s[i + MT_M]);
        }
        for i in MT_N - MT_M..MT_N - 1 {
            s[i] = mix(s[i], s[i + 1], s[i + MT_M - MT_N]);
        }
        s[MT_N - 1] = mix(s[MT_N - 1], s[0], s[MT_M - 1]);
        self.index = 0;
    }

    /// The next 32-bit engine output (`generator->random()`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= MT_N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `generator->random64()`: two engine outputs, the first one is the high half.
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32();
        let lo = self.next_u32();
        (u64::from(hi) << 32) | u64::from(lo)
    }

    /// `uniform_real_distribution<float>(0, 1)`: the low 24 bits of one output, over 2^24.
    fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() & 0x00ff_ffff) as f32 / 16_777_216.0
    }

    /// `uniform_real_distribution<double>(0, 1)`: the low 53 bits of `random64`, over 2^53.
    fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() & 0x001f_ffff_ffff_ffff) as f64 / 9_007_199_254_740_992.0
    }

    /// `at::normal_distribution<double>(0, 1)`, torch's scalar sampler.
    fn normal_f64(&mut self) -> f64 {
        if let Some(cached) = self.next_double_normal.take() {
            return cached;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let radius = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(radius * theta.sin());
        radius * theta.cos()
    }

    /// One `torch.randn` call filling `out` (a contiguous float32 tensor, row-major).
    pub fn randn_into(&mut self, out: &mut [f32]) {
        let n = out.len();
        if n < 16 {
            for v in out.iter_mut() {
                *v = self.normal_f64() as f32;
            }
            return;
        }
        for v in out.iter_mut() {
            *v = self.uniform_f32();
        }
        for block in out.chunks_exact_mut(16) {
            box_muller_16(block);
        }
        if !n.is_multiple_of(16) {
            let tail = &mut out[n - 16..];
            for v in tail.iter_mut() {
                *v = self.uniform_f32();
            }
            box_muller_16(tail);
        }
    }
}

/// Eight float32 lanes: one `__m256` of the AVX2 kernel.
type Lanes = [f32; 8];

/// Eight lanes from a per-lane function (a plain loop the optimiser unrolls and vectorises).
#[inline]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    let mut out = [0.0; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = f(i);
    }
    out
}

/// torch's `normal_fill_16_AVX2` with mean 0 and std 1: 16 uniforms in, 16 normals out.
fn box_muller_16(block: &mut [f32]) {
    // `_mm256_set1_ps(2.0f * c10::pi<double>)`.
    const TWO_PI: f32 = (2.0 * std::f64::consts::PI) as f32;
    let (cos_half, sin_half) = block.split_at_mut(8);
    let log_u1 = cephes_log(&lanes(|i| 1.0 - cos_half[i]));
    let radius = lanes(|i| (-2.0 * log_u1[i]).sqrt());
    let (sin, cos) = cephes_sincos(&lanes(|i| TWO_PI * sin_half[i]));
    // `_mm256_fmadd_ps(n, std, mean)` with std 1 and mean 0 is `n + 0.0` (turns -0 into +0).
    for (i, (c, s)) in cos_half.iter_mut().zip(sin_half.iter_mut()).enumerate() {
        *c = radius[i] * cos[i] + 0.0;
        *s = radius[i] * sin[i] + 0.0;
    }
}

/// Fused multiply-add `a * b + c` with a single rounding, like the `vfmadd` instructions GCC
/// contracts torch's AVX2 kernel into. `a * b` is exact in f64, so the f64 sum is one rounding
/// of the exact result; rounding that again to f32 is wrong only when the f64 sum is inexact
/// and lands exactly halfway between two f32, and then it is nudged towards the exact value.
/// Exact for all results in the normal f32 range (this module never leaves it).
fn fused(a: f32, b: f32, c: f32) -> f32 {
    let ab = f64::from(a) * f64::from(b);
    let c = f64::from(c);
    let sum = ab + c;
    let bits = sum.to_bits();
    if bits & 0x1fff_ffff != 0x1000_0000 {
        return sum as f32;
    }
    // Two-sum: the exact rounding error of `ab + c`.
    let c_part = sum - ab;
    let err = (ab - (sum - c_part)) + (c - c_part);
    if err == 0.0 {
        return sum as f32;
    }
    let away_from_zero = (err > 0.0) == (sum > 0.0);
    let nudged = if away_from_zero { bits + 1 } else { bits - 1 };
    f64::from_bits(nudged) as f32
}

/// [`fused`] on eight lanes, with a fast path: all eight f64 sums are computed, and only if one
/// of them sits exactly halfway between two f32 (rare) do the lanes take the careful path.
#[inline]
fn fused8(a: &Lanes, b: &Lanes, c: &Lanes) -> Lanes {
    let mut sums = [0.0_f64; 8];
    let mut halfway = false;
    for (i, sum) in sums.iter_mut().enumerate() {
        *sum = f64::from(a[i]) * f64::from(b[i]) + f64::from(c[i]);
        halfway |= sum.to_bits() & 0x1fff_ffff == 0x1000_0000;
    }
    if halfway {
        return lanes(|i| fused(a[i], b[i], c[i]));
    }
    lanes(|i| sums[i] as f32)
}

/// `avx_mathfun.h`'s `log256_ps` (Cephes `logf`) for inputs in (0, 1].
///
/// Constants are the C double literals (shortest f64 spelling) rounded to float, as
/// `_PS256_CONST` does.
#[inline]
#[expect(clippy::many_single_char_names, reason = "the names of the Cephes source")]
fn cephes_log(x: &Lanes) -> Lanes {
    // cephes_SQRTHF, 0.707106781186547524.
    const SQRTHF: f32 = std::f64::consts::FRAC_1_SQRT_2 as f32;
    const P: [f32; 9] = [
        7.037_683_629_2E-2_f64 as f32,
        -1.151_461_031_0E-1_f64 as f32,
        1.167_699_874_0E-1_f64 as f32,
        -1.242_014_084_6E-1_f64 as f32,
        1.424_932_278_7E-1_f64 as f32,
        -1.666_805_766_5E-1_f64 as f32,
        2.000_071_476_5E-1_f64 as f32,
        -2.499_999_399_3E-1_f64 as f32,
        3.333_333_117_4E-1_f64 as f32,
    ];
    const Q1: f32 = -2.121_944_40e-4_f64 as f32;
    const Q2: f32 = 0.693_359_375_f64 as f32;
    // x = m·2^e with m in [0.5, 1); below sqrt(1/2) the kernel uses 2m - 1 and e - 1.
    let x = lanes(|i| x[i].max(f32::from_bits(0x0080_0000)));
    let m = lanes(|i| f32::from_bits((x[i].to_bits() & !0x7f80_0000) | 0.5_f32.to_bits()));
    let small = lanes(|i| if m[i] < SQRTHF { 1.0 } else { 0.0 });
    let e = lanes(|i| (((x[i].to_bits() >> 23) as i32 - 0x7f) as f32 + 1.0) - small[i]);
    let x = lanes(|i| (m[i] - 1.0) + m[i] * small[i]);
    let z = lanes(|i| x[i] * x[i]);
    let mut y = [P[0]; 8];
    for &p in &P[1..] {
        y = fused8(&y, &x, &[p; 8]);
    }
    // GCC fuses `y*x*z + e*Q1` at the first product, and `- z*0.5` and `+ e*Q2`.
    let y = fused8(&lanes(|i| y[i] * x[i]), &z, &lanes(|i| e[i] * Q1));
    let y = fused8(&lanes(|i| -z[i]), &[0.5; 8], &y);
    fused8(&e, &[Q2; 8], &lanes(|i| x[i] + y[i]))
}

/// `avx_mathfun.h`'s `sincos256_ps` (Cephes `sinf`/`cosf`): returns (sin, cos).
#[inline]
#[expect(clippy::many_single_char_names, reason = "the names of the Cephes source")]
fn cephes_sincos(x: &Lanes) -> (Lanes, Lanes) {
    const FOPI: f32 = 1.273_239_544_735_16_f64 as f32;
    const DP1: f32 = -0.785_156_25_f64 as f32;
    const DP2: f32 = -2.418_756_484_985_351_6e-4_f64 as f32;
    const DP3: f32 = -3.774_894_977_445_941e-8_f64 as f32;
    const SIN_P: [f32; 3] = [
        -1.951_529_589_1E-4_f64 as f32,
        8.332_160_873_6E-3_f64 as f32,
        -1.666_665_461_1E-1_f64 as f32,
    ];
    const COS_P: [f32; 3] = [
        2.443_315_711_809_948E-5_f64 as f32,
        -1.388_731_625_493_765E-3_f64 as f32,
        4.166_664_568_298_827E-2_f64 as f32,
    ];
    const SIGN: u32 = 0x8000_0000;
    let ax = lanes(|i| x[i].abs());
    // Octant j = (trunc(|x|·4/π) + 1) & !1, an exact small integer held in f32.
    let jf = lanes(|i| (((ax[i] * FOPI) as i32).wrapping_add(1) & !1) as f32);
    // Extended-precision reduction r = |x| - j·π/4.
    let r = fused8(&jf, &[DP1; 8], &ax);
    let r = fused8(&jf, &[DP2; 8], &r);
    let r = fused8(&jf, &[DP3; 8], &r);
    let z = lanes(|i| r[i] * r[i]);
    let yc = fused8(&[COS_P[0]; 8], &z, &[COS_P[1]; 8]);
    let yc = fused8(&yc, &z, &[COS_P[2]; 8]);
    let yc = fused8(&lanes(|i| yc[i] * z[i]), &z, &lanes(|i| -(z[i] * 0.5)));
    let yc = lanes(|i| yc[i] + 1.0);
    let ys = fused8(&[SIN_P[0]; 8], &z, &[SIN_P[1]; 8]);
    let ys = fused8(&ys, &z, &[SIN_P[2]; 8]);
    let ys = fused8(&lanes(|i| ys[i] * z[i]), &r, &r);
    let mut sin = [0.0; 8];
    let mut cos = [0.0; 8];
    for (i, (s_out, c_out)) in sin.iter_mut().zip(cos.iter_mut()).enumerate() {
        let j = jf[i] as i32;
        // The kernel picks the polynomials with masks and adds the masked-out +0.0 lane;
        // the adds are kept because they turn -0 into +0.
        let (s, c) = if j & 2 == 0 {
            (0.0 + ys[i], yc[i] + 0.0)
        } else {
            (yc[i] + 0.0, 0.0 + ys[i])
        };
        let sign_sin = (x[i].to_bits() & SIGN) ^ (((j & 4) as u32) << 29);
        let sign_cos = ((!j.wrapping_sub(2) & 4) as u32) << 29;
        *s_out = f32::from_bits(s.to_bits() ^ sign_sin);
        *c_out = f32::from_bits(c.to_bits() ^ sign_cos);
    }
    (sin, cos)
}

// ---------------------------------------------------------------------------------------------
// NV: A1111's Philox-4x32-10 imitation of CUDA randn
// ---------------------------------------------------------------------------------------------

/// Philox-4x32 round multipliers.
const PHILOX_M: [u32; 2] = [0xD251_1F53, 0xCD9E_8D57];
/// Philox-4x32 key increments (Weyl sequence).
const PHILOX_W: [u32; 2] = [0x9E37_79B9, 0xBB67_AE85];

/// A1111's "NV" generator (`modules/rng_philox.py`).
///
/// Value `i` of a call is Philox-4x32-10 of counter `(offset, 0, i, 0)` under key
/// `(seed low 32 bits, seed high 32 bits)`; its first two words `a`, `b` become
/// `u ≈ a·2⁻³² + 2⁻³³` and `v ≈ b·2π·2⁻³² + π·2⁻³²` (the script's float32 constants, with the
/// arithmetic in float64 as numpy promotes it), and the value is `sqrt(-2 ln u)·sin v` cast
/// to float32. The other two words are unused.
/// Each call uses the next offset.
#[derive(Debug, Clone)]
pub struct PhiloxRng {
    key: [u32; 2],
    offset: u32,
}

impl PhiloxRng {
    /// A generator at offset 0 for `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            key: [seed as u32, (seed >> 32) as u32],
            offset: 0,
        }
    }

    /// Philox-4x32 with 10 rounds: `counter` encrypted under `key`.
    #[must_use]
    pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
        let mut c = counter;
        let mut k = key;
        for round in 0..10 {
            if round > 0 {
                k[0] = k[0].wrapping_add(PHILOX_W[0]);
                k[1] = k[1].wrapping_add(PHILOX_W[1]);
            }
            let p0 = u64::from(c[0]) * u64::from(PHILOX_M[0]);
            let p2 = u64::from(c[2]) * u64::from(PHILOX_M[1]);
            c = [
                (p2 >> 32) as u32 ^ c[1] ^ k[0],
                p2 as u32,
                (p0 >> 32) as u32 ^ c[3] ^ k[1],
                p0 as u32,
            ];
        }
        c
    }

    /// One `randn` call filling `out`; the next call uses the next counter offset.
    pub fn randn_into(&mut self, out: &mut [f32]) {
        // rng_philox.py's float32 constants `two_pow32_inv` and `two_pow32_inv_2pi`.
        let inv = 2.328_306_4e-10_f64 as f32;
        let inv_2pi = (2.328_306_4e-10_f64 * 6.283_185_5_f64) as f32;
        let (scale, half) = (f64::from(inv), f64::from(inv / 2.0));
        let (scale_2pi, half_2pi) = (f64::from(inv_2pi), f64::from(inv_2pi / 2.0));
        for (index, v) in out.iter_mut().enumerate() {
            let g = Self::philox4x32_10([self.offset, 0, index as u32, 0], self.key);
            let u = f64::from(g[0]) * scale + half;
            let angle = f64::from(g[1]) * scale_2pi + half_2pi;
            *v = ((-2.0 * u.ln()).sqrt() * angle.sin()) as f32;
        }
        self.offset = self.offset.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use sha2::{Digest, Sha256};

    /// Test vectors made with torch 2.15 and A1111's `rng_philox.py` (a copy of `shared/vectors`).
    fn vectors() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vectors/randn.json");
        let text = std::fs::read_to_string(path).expect("read tests/fixtures/vectors/randn.json");
        serde_json::from_str(&text).expect("parse randn.json")
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-6 * want.abs().max(1e-3)
    }

    /// Compares one draw with its vector entry; returns the mismatches.
    fn check_draw(label: &str, got: &[f32], want: &Value) -> Vec<String> {
        let numel = want["numel"].as_u64().expect("numel") as usize;
        if got.len() != numel {
            return vec![format!("{label}: numel {} != {numel}", got.len())];
        }
        let mut errs = Vec::new();
        let bits = want["first32_bits"].as_array().expect("first32_bits");
        if bits.len() != numel.min(32) {
            errs.push(format!("{label}: vector has {} first32_bits", bits.len()));
        }
        for (i, hex) in bits.iter().enumerate() {
            let want_bits = u32::from_str_radix(hex.as_str().expect("hex"), 16).expect("hex");
            if got[i].to_bits() != want_bits {
                errs.push(format!(
                    "{label}[{i}]: {:08x} ({}) != {want_bits:08x} ({})",
                    got[i].to_bits(),
                    got[i],
                    f32::from_bits(want_bits)
                ));
            }
        }
        let sum: f64 = got.iter().map(|&v| f64::from(v)).sum();
        let sum_sq: f64 = got.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let want_sum = want["sum"].as_f64().expect("sum");
        let want_sum_sq = want["sum_sq"].as_f64().expect("sum_sq");
        if !close(sum, want_sum) {
            errs.push(format!("{label}: sum {sum} != {want_sum}"));
        }
        if !close(sum_sq, want_sum_sq) {
            errs.push(format!("{label}: sum_sq {sum_sq} != {want_sum_sq}"));
        }
        // Every value bit-exact, not only the first 32.
        let mut hasher = Sha256::new();
        for v in got {
            hasher.update(v.to_le_bytes());
        }
        let digest = format!("{:x}", hasher.finalize());
        if digest != want["sha256_f32le"].as_str().expect("sha256_f32le") {
            errs.push(format!("{label}: sha256 of all values differs"));
        }
        errs
    }

    /// Runs every case of `source` in the vectors: the first draw and the second draw.
    fn check_source(source: NoiseSource, name: &str) {
        let vectors = vectors();
        let mut errs = Vec::new();
        let mut cases = 0;
        for case in vectors["cases"].as_array().expect("cases") {
            if case["source"].as_str() != Some(name) {
                continue;
            }
            cases += 1;
            let seed = case["seed"].as_u64().expect("seed");
            let numel: usize = case["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .product();
            let label = format!("{name} seed {seed} shape {}", case["shape"]);
            let mut rng = NoiseRng::new(source, seed);
            let first = rng.randn(numel);
            errs.extend(check_draw(
                &format!("{label} draw 0"),
                &first,
                &case["first_draw"],
            ));
            let second = rng.randn(numel);
            errs.extend(check_draw(
                &format!("{label} draw 1"),
                &second,
                &case["second_draw"],
            ));
        }
        assert_eq!(cases, 20, "expected 20 {name} cases in randn.json");
        assert!(errs.is_empty(), "{} mismatches:\n{}", errs.len(), errs.join("\n"));
    }

    #[test]
    fn cpu_matches_torch_vectors() {
        check_source(NoiseSource::Cpu, "CPU");
    }

    #[test]
    fn nv_matches_a1111_philox_vectors() {
        check_source(NoiseSource::Nv, "NV");
    }

    #[test]
    fn nv_matches_rng_philox_docstring() {
        let vectors = vectors();
        let check = &vectors["philox_docstring_check"];
        let mut rng = NoiseRng::new(NoiseSource::Nv, check["seed"].as_u64().expect("seed"));
        let got = rng.randn(12);
        let values = check["values"].as_array().expect("values");
        let docstring = check["a1111_docstring"].as_array().expect("docstring");
        for (i, &g) in got.iter().enumerate() {
            let want = values[i].as_f64().expect("value") as f32;
            assert_eq!(g.to_bits(), want.to_bits(), "value {i}: {g} != {want}");
            let printed = docstring[i].as_f64().expect("docstring value");
            assert!((f64::from(g) - printed).abs() < 1e-6, "docstring value {i}");
        }
    }

    #[test]
    fn mt19937_matches_reference_sequence() {
        // C++11 requires the 10000th output of a default-seeded (5489) std::mt19937 to be this.
        let mut rng = TorchCpuRng::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = rng.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn philox_matches_random123_known_answers() {
        assert_eq!(
            PhiloxRng::philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            PhiloxRng::philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
    }

    #[test]
    fn cpu_seed_uses_low_32_bits_like_torch() {
        let mut a = NoiseRng::new(NoiseSource::Cpu, 42);
        let mut b = NoiseRng::new(NoiseSource::Cpu, (7 << 32) | 0x2a);
        assert_eq!(a.randn(20), b.randn(20));
        let mut a = NoiseRng::new(NoiseSource::Nv, 42);
        let mut b = NoiseRng::new(NoiseSource::Nv, (7 << 32) | 0x2a);
        assert_ne!(a.randn(20), b.randn(20));
    }

    #[test]
    fn small_draws_share_the_cached_normal_across_calls() {
        // Below 16 values torch draws from one scalar stream whose odd value is cached,
        // so splitting a draw into calls does not change the values.
        let mut whole = NoiseRng::new(NoiseSource::Cpu, 7);
        let mut split = NoiseRng::new(NoiseSource::Cpu, 7);
        let mut parts = split.randn(3);
        parts.extend(split.randn(4));
        assert_eq!(whole.randn(7), parts);
    }

    #[test]
    fn randn_into_matches_randn() {
        for source in [NoiseSource::Cpu, NoiseSource::Nv] {
            let mut a = NoiseRng::new(source, 3);
            let mut b = NoiseRng::new(source, 3);
            assert_eq!(a.source(), source);
            for numel in [0, 1, 15, 16, 17, 100] {
                let mut out = vec![f32::NAN; numel];
                b.randn_into(&mut out);
                assert_eq!(a.randn(numel), out, "{source:?} numel {numel}");
            }
        }
    }

    #[test]
    fn fused_is_a_correctly_rounded_fma() {
        // xorshift inputs over a wide exponent range, plus constructed halfway cases where
        // rounding the f64 sum to f32 would double-round.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let r = next();
            let a = f32::from_bits((r as u32 & 0x807f_ffff) | ((100 + (r >> 40) % 50) as u32) << 23);
            let b = f32::from_bits(((r >> 32) as u32 & 0x807f_ffff) | ((100 + (r >> 50) % 50) as u32) << 23);
            let c = f32::from_bits((next() as u32 & 0x807f_ffff) | ((90 + (r >> 56) % 60) as u32) << 23);
            assert_eq!(fused(a, b, c).to_bits(), a.mul_add(b, c).to_bits(), "{a} {b} {c}");
        }
        // a·b + c = 1 + 2^-23 + 2^-24 - 2^-60: the f64 sum rounds to the f32 midpoint
        // 1 + 2^-23 + 2^-24, which would then tie to the even 1 + 2^-22; the exact answer is
        // 1 + 2^-23.
        for sign in [1.0_f32, -1.0] {
            let a = sign * 2_f32.powi(-24) * (1.0 + 2_f32.powi(-18));
            let b = 1.0 - 2_f32.powi(-18);
            let c = sign * (1.0 + f32::EPSILON);
            let naive = (f64::from(a) * f64::from(b) + f64::from(c)) as f32;
            assert_ne!(naive.to_bits(), c.to_bits());
            assert_eq!(fused(a, b, c).to_bits(), c.to_bits());
            assert_eq!(a.mul_add(b, c).to_bits(), c.to_bits());
            assert_eq!(bits(&fused8(&[a; 8], &[b; 8], &[c; 8])), bits(&[c; 8]));
        }
        let x = [1.5_f32, -0.25, 3.0, 1e-3, -7.5, 0.125, 2.0, -1.0];
        assert_eq!(
            bits(&fused8(&x, &x, &x)),
            bits(&lanes(|i| x[i].mul_add(x[i], x[i])))
        );
    }
}
