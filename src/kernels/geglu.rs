//! GEGLU in one pass: `[rows, 2n]` → `a · GELU(g)` `[rows, n]`, with the exact (erf) GELU as LDM uses.

use rayon::prelude::*;

use super::simd::{self, multiversion};

/// Output values per rayon task (about 64 KiB).
const VALUES_PER_TASK: usize = 16 * 1024;

/// For each row of `proj` (`2 · hidden` values: `a` then `g`), writes `a · GELU(g)` to the row of `out`
/// (`hidden` values). Both contiguous.
///
/// # Panics
/// When `out` is not `hidden` values per row of `proj`.
pub fn geglu(proj: &[f32], out: &mut [f32], hidden: usize) {
    assert!(
        hidden > 0 && out.len().is_multiple_of(hidden) && proj.len() == 2 * out.len(),
        "geglu: proj must be [rows, 2·{hidden}] and out [rows, {hidden}]"
    );
    let rows = (VALUES_PER_TASK / hidden).max(1);
    out.par_chunks_mut(rows * hidden)
        .zip(proj.par_chunks(rows * 2 * hidden))
        .for_each(|(out_t, proj_t)| {
            for (out_r, proj_r) in out_t
                .chunks_exact_mut(hidden)
                .zip(proj_t.chunks_exact(2 * hidden))
            {
                let (a, g) = proj_r.split_at(hidden);
                gate(a, g, out_r);
            }
        });
}

multiversion! {
    /// `out = a · GELU(g)`.
    fn gate / gate_at(a: &[f32], g: &[f32], out: &mut [f32]) {
        for ((o, &a), &g) in out.iter_mut().zip(a).zip(g) {
            *o = a * simd::gelu_erf(g);
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::D;

    use super::*;
    use crate::kernels::testing::{randn, values};

    #[test]
    fn matches_candle() {
        let mut worst = 0f32;
        for (rows, hidden) in [(1, 1), (7, 13), (2 * 64, 128), (2 * 1024, 1280), (3, 5120)] {
            let proj = randn((rows * hidden) as u64, &[rows, 2 * hidden], 0.0, 3.0);
            let want = (proj.narrow(D::Minus1, 0, hidden).unwrap()
                * proj
                    .narrow(D::Minus1, hidden, hidden)
                    .unwrap()
                    .gelu_erf()
                    .unwrap())
            .unwrap();
            let mut out = vec![0f32; rows * hidden];
            geglu(&values(&proj), &mut out, hidden);
            let want = values(&want);
            let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = out.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff < 1e-5 * peak.max(1.0),
                "{rows}x{hidden}: max diff {diff} (peak {peak})"
            );
            worst = worst.max(diff / peak.max(1.0));
        }
        eprintln!("geglu: worst relative diff {worst:e}");
    }

    #[test]
    fn every_level_agrees() {
        let a: Vec<f32> = (0..515).map(|i| (i % 17) as f32 * 0.3 - 2.0).collect();
        let g: Vec<f32> = (0..515).map(|i| (i % 29) as f32 * 0.5 - 7.0).collect();
        let mut base = vec![0f32; a.len()];
        gate_at(simd::Level::Baseline, &a, &g, &mut base);
        for level in [simd::Level::Avx2, simd::Level::Avx512] {
            let mut out = vec![0f32; a.len()];
            gate_at(level, &a, &g, &mut out);
            let diff = out.iter().zip(&base).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(diff < 1e-6, "{level:?}: {diff}");
        }
    }
}
