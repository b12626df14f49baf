//! Fully connected layers as one `gemm` product over every token, bias folded into the destination.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// `out[r, o] = Σ_i x[r, i] · weight[o, i] + bias[o]` for `rows` rows of `x` (`[rows, in]`),
/// `weight` `[out, in]` as stored by PyTorch, `bias` `[out]`, `out` `[rows, out]`, all contiguous.
///
/// # Panics
/// When a slice length does not match `rows`, the weight's shape or the bias.
pub fn linear(x: &[f32], weight: &[f32], bias: Option<&[f32]>, rows: usize, out: &mut [f32]) {
    let inputs = x.len().checked_div(rows).unwrap_or(0);
    assert_eq!(x.len(), rows * inputs, "linear input length");
    let outputs = out.len().checked_div(rows).unwrap_or(0);
    assert_eq!(out.len(), rows * outputs, "linear output length");
    assert_eq!(weight.len(), outputs * inputs, "linear weight length");
    if out.is_empty() {
        return;
    }
    match bias {
        Some(bias) => {
            assert_eq!(bias.len(), outputs, "linear bias length");
            out.par_chunks_mut(outputs)
                .for_each(|row| row.copy_from_slice(bias));
        }
        None => out.fill(0.0),
    }
    if inputs == 0 {
        return;
    }
    // O[rows, out] += X[rows, in] · Wᵀ: Wᵀ's element (i, o) is weight[o·in + i], so its row stride
    // is 1 and its column stride `in`.
    // SAFETY: X is read up to (rows-1)·in + in-1 < x.len(), W up to (out-1)·in + in-1 < weight.len(),
    // O is written up to (rows-1)·out + out-1 < out.len(); `out` is a `&mut` slice and cannot alias
    // the shared inputs.
    unsafe {
        gemm(
            rows,
            outputs,
            inputs,
            out.as_mut_ptr(),
            1,
            outputs as isize,
            true,
            x.as_ptr(),
            1,
            inputs as isize,
            weight.as_ptr(),
            inputs as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        );
    }
}

#[cfg(test)]
mod tests {
    use candle_nn::Module;

    use super::*;
    use crate::kernels::testing::{randn, values};

    #[test]
    fn linear_matches_candle() {
        for (i, (rows, inputs, outputs, with_bias)) in [
            (1, 3, 2, true),
            (77, 32, 48, true),
            (130, 64, 17, false),
            (5, 1, 9, true),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 20 * i as u64;
            let x = randn(seed, &[rows, inputs], 0.1, 1.0);
            let weight = randn(seed + 1, &[outputs, inputs], 0.0, 0.3);
            let bias = with_bias.then(|| randn(seed + 2, &[outputs], 0.0, 1.0));
            let layer = candle_nn::Linear::new(weight.clone(), bias.clone());
            let reference = values(&layer.forward(&x).unwrap());
            let mut out = vec![f32::NAN; rows * outputs];
            let bias = bias.as_ref().map(values);
            linear(&values(&x), &values(&weight), bias.as_deref(), rows, &mut out);
            let worst = reference
                .iter()
                .zip(&out)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "{rows}×{inputs}→{outputs}: max difference {worst}");
        }
    }
}
