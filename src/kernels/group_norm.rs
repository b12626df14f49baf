//! GroupNorm over NCHW f32 in two passes per (batch, group) — statistics, then normalise + affine
//! (+ SiLU) — with an optional per-channel shift added to the input first (the UNet's time embedding).

use rayon::prelude::*;

use super::simd::{self, multiversion};

/// Sizes of one GroupNorm call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupNormShape {
    /// Batch items.
    pub batch: usize,
    /// Channels (a multiple of `groups`).
    pub channels: usize,
    /// Values per channel (`H · W`).
    pub spatial: usize,
    /// Groups the channels are split into.
    pub groups: usize,
}

/// The learned and fixed parameters of one GroupNorm.
#[derive(Debug, Clone, Copy)]
pub struct GroupNormParams<'a> {
    /// Per-channel scale γ.
    pub weight: &'a [f32],
    /// Per-channel offset β.
    pub bias: &'a [f32],
    /// Added to the variance.
    pub eps: f64,
    /// Apply SiLU to the result.
    pub silu: bool,
}

/// `out = GroupNorm(x + shift)` (then SiLU when `params.silu`), where `shift` is `[batch, channels]`
/// broadcast over space. `x` and `out` are `[batch, channels, spatial]` contiguous. Statistics are
/// accumulated in f64.
///
/// # Panics
/// When a slice length does not match `shape`, or `channels` is not a multiple of `groups`.
pub fn group_norm(
    x: &[f32],
    shift: Option<&[f32]>,
    out: &mut [f32],
    shape: GroupNormShape,
    params: GroupNormParams<'_>,
) {
    let GroupNormShape {
        batch,
        channels,
        spatial,
        groups,
    } = shape;
    assert!(
        groups > 0 && channels.is_multiple_of(groups),
        "group norm: {channels} channels in {groups} groups"
    );
    assert_eq!(
        x.len(),
        batch * channels * spatial,
        "group norm: x must be [batch, channels, spatial]"
    );
    assert_eq!(out.len(), x.len(), "group norm: out must have the shape of x");
    assert_eq!(
        params.weight.len(),
        channels,
        "group norm: one weight per channel"
    );
    assert_eq!(params.bias.len(), channels, "group norm: one bias per channel");
    if let Some(s) = shift {
        assert_eq!(
            s.len(),
            batch * channels,
            "group norm: shift must be [batch, channels]"
        );
    }
    let per_group = channels / groups;
    let chunk = per_group * spatial;
    if chunk == 0 {
        return;
    }
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .enumerate()
        .for_each(|(i, (out_g, x_g))| {
            let (b, g) = (i / groups, i % groups);
            let first = g * per_group;
            let shift_of = |j: usize| shift.map_or(0.0, |s| s[b * channels + first + j]);
            let (mut sum, mut sum_sq) = (0f64, 0f64);
            for (j, x_c) in x_g.chunks_exact(spatial).enumerate() {
                let (s1, s2) = sum_and_squares(x_c, shift_of(j));
                sum += s1;
                sum_sq += s2;
            }
            let count = chunk as f64;
            let mean = sum / count;
            let var = (sum_sq / count - mean * mean).max(0.0);
            let inv_std = 1.0 / (var + params.eps).sqrt();
            for (j, (x_c, out_c)) in x_g
                .chunks_exact(spatial)
                .zip(out_g.chunks_exact_mut(spatial))
                .enumerate()
            {
                let c = first + j;
                // y = (x + shift − mean) · γ/σ + β, centred before scaling so a large mean costs no precision.
                let center = (mean - f64::from(shift_of(j))) as f32;
                let scale = (f64::from(params.weight[c]) * inv_std) as f32;
                normalize(x_c, out_c, center, scale, params.bias[c], params.silu);
            }
        });
}

multiversion! {
    /// Sum and sum of squares of `x + shift` (each value rounded to f32 first, as an f32 add would), in f64.
    fn sum_and_squares / sum_and_squares_at(x: &[f32], shift: f32) -> (f64, f64) {
        const LANES: usize = 8;
        let (mut s1, mut s2) = ([0f64; LANES], [0f64; LANES]);
        let chunks = x.chunks_exact(LANES);
        let tail = chunks.remainder();
        for chunk in chunks {
            for ((a, b), &v) in s1.iter_mut().zip(&mut s2).zip(chunk) {
                let v = f64::from(v + shift);
                *a += v;
                *b += v * v;
            }
        }
        let (mut t1, mut t2) = (0f64, 0f64);
        for &v in tail {
            let v = f64::from(v + shift);
            t1 += v;
            t2 += v * v;
        }
        (t1 + s1.iter().sum::<f64>(), t2 + s2.iter().sum::<f64>())
    }
}

multiversion! {
    /// `out = (x − center) · scale + bias`, then SiLU when `silu`.
    fn normalize / normalize_at(x: &[f32], out: &mut [f32], center: f32, scale: f32, bias: f32, silu: bool) {
        if silu {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = simd::silu((v - center) * scale + bias);
            }
        } else {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = (v - center) * scale + bias;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Module;

    use super::*;
    use crate::kernels::testing::{randn, values};

    /// Max |kernel − candle| for random `[batch, channels, h, w]` input (mean `offset`), random γ/β.
    fn max_diff(
        batch: usize,
        channels: usize,
        hw: (usize, usize),
        groups: usize,
        silu: bool,
        shifted: bool,
    ) -> f32 {
        let seed = (batch * 1000 + channels * 10 + hw.0) as u64;
        let x = randn(seed, &[batch, channels, hw.0, hw.1], 0.5, 2.0);
        let weight = randn(seed + 1, &[channels], 1.0, 0.2);
        let bias = randn(seed + 2, &[channels], 0.0, 0.2);
        let shift = randn(seed + 3, &[batch, channels], 0.0, 1.0);
        let eps = 1e-5;
        let reference =
            candle_nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps).unwrap();
        let input = if shifted {
            x.broadcast_add(&shift.unsqueeze(2).unwrap().unsqueeze(3).unwrap())
                .unwrap()
        } else {
            x.clone()
        };
        let mut want = reference.forward(&input).unwrap();
        if silu {
            want = candle_nn::ops::silu(&want).unwrap();
        }
        let flat = values;
        let mut out = vec![0f32; x.elem_count()];
        let shift_data = flat(&shift);
        group_norm(
            &flat(&x),
            shifted.then_some(shift_data.as_slice()),
            &mut out,
            GroupNormShape {
                batch,
                channels,
                spatial: hw.0 * hw.1,
                groups,
            },
            GroupNormParams {
                weight: &flat(&weight),
                bias: &flat(&bias),
                eps,
                silu,
            },
        );
        flat(&want)
            .iter()
            .zip(&out)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
    }

    #[test]
    fn matches_candle() {
        let mut worst = 0f32;
        for (batch, channels, hw, groups) in [
            (1, 32, (8, 8), 32),    // tiny test geometry: one channel per group
            (2, 64, (4, 4), 32),    // tiny UNet level 1
            (2, 6, (3, 5), 3),      // odd sizes
            (1, 5, (1, 1), 1),      // one value per channel
            (2, 320, (32, 32), 32), // SD 1.5 level 0 at 256² pixels
            (2, 1280, (4, 4), 32),  // SD 1.5 mid block at 256² pixels
            (1, 128, (64, 64), 32), // SD 1.5 VAE last level at 64² pixels
        ] {
            for (silu, shifted) in [(false, false), (true, false), (true, true)] {
                let diff = max_diff(batch, channels, hw, groups, silu, shifted);
                assert!(
                    diff < 1e-5,
                    "{batch}x{channels}x{hw:?}/{groups} silu {silu} shift {shifted}: max diff {diff}"
                );
                worst = worst.max(diff);
            }
        }
        eprintln!("group norm: worst max abs diff {worst:e}");
    }

    #[test]
    fn every_level_gives_the_same_statistics_and_values() {
        let x: Vec<f32> = (0..1001).map(|i| ((i * 37) % 101) as f32 * 0.1 - 3.0).collect();
        let want = sum_and_squares_at(simd::Level::Baseline, &x, 0.25);
        let mut base = vec![0f32; x.len()];
        normalize_at(simd::Level::Baseline, &x, &mut base, 0.1, 1.5, -0.2, true);
        for level in [simd::Level::Avx2, simd::Level::Avx512] {
            let got = sum_and_squares_at(level, &x, 0.25);
            assert!(
                (got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-9,
                "{level:?}"
            );
            let mut out = vec![0f32; x.len()];
            normalize_at(level, &x, &mut out, 0.1, 1.5, -0.2, true);
            let diff = out.iter().zip(&base).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-6, "{level:?}: {diff}");
        }
    }
}
