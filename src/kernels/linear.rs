//! Fully connected layers as `gemm` products over the tokens, bias folded into the destination: tasks
//! of rows or of output columns, whichever repacks the smaller operand, each product single-threaded.

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
    let threads = rayon::current_num_threads().max(1);
    if rows >= outputs.max(MIN_ROWS_PER_TASK * threads) {
        // Tasks of whole rows, each its own single-threaded product that packs the whole weight:
        // the weight is the smaller operand.
        let tasks = rows.div_ceil(MAX_ROWS_PER_TASK).max(2 * threads);
        let chunk = rows.div_ceil(tasks);
        out.par_chunks_mut(chunk * outputs)
            .zip(x.par_chunks(chunk * inputs))
            .for_each(|(o, xs)| {
                let rows = xs.len() / inputs;
                // SAFETY: `o` is this task's own `&mut` chunk of whole output rows, as many as `xs` has.
                unsafe { product(xs, weight, (rows, outputs, inputs), o.as_mut_ptr(), outputs) }
            });
    } else {
        // Fewer rows than outputs (CLIP's 77 tokens, cross-attention keys, the small UNet levels):
        // tasks of output columns, each packing its own slice of the weight and all of the input.
        let chunk = outputs.div_ceil(2 * threads).next_multiple_of(16).min(outputs);
        let dst = SharedColumns(out.as_mut_ptr());
        let dst = &dst;
        weight.par_chunks(chunk * inputs).enumerate().for_each(|(t, w)| {
            let cols = w.len() / inputs;
            // SAFETY: column t·chunk of row 0 lies inside `out` (t·chunk < outputs), and from there
            // `rows` rows of stride `outputs` stay inside it; this task alone writes columns
            // t·chunk .. t·chunk + cols (the weight's row chunks are disjoint).
            unsafe { product(x, w, (rows, cols, inputs), dst.0.add(t * chunk), outputs) };
        });
    }
}

/// Rows per task of a long [`linear`] at most (a task's share of the input stays in the caches).
const MAX_ROWS_PER_TASK: usize = 512;
/// Rows per thread below which [`linear`] always splits the output columns.
const MIN_ROWS_PER_TASK: usize = 64;

/// The output shared by the column tasks of [`linear`]; each writes only its own columns.
struct SharedColumns(*mut f32);

// SAFETY: tasks holding a `&SharedColumns` write disjoint column ranges, and the buffer outlives
// the parallel loop that shares it.
unsafe impl Sync for SharedColumns {}

/// `O[rows, cols] += X[rows, inputs] · Wᵀ` single-threaded, `W` `[cols, inputs]` row-major, `O`
/// starting at `dst` with row stride `dst_stride`.
///
/// # Safety
/// `dst` must be valid for writes at `r·dst_stride + j` for every `r < rows`, `j < cols`, with no
/// other live reference to those elements, and must not overlap `x` or `weight`.
unsafe fn product(
    x: &[f32],
    weight: &[f32],
    (rows, cols, inputs): (usize, usize, usize),
    dst: *mut f32,
    dst_stride: usize,
) {
    assert!(x.len() >= rows * inputs && weight.len() >= cols * inputs && cols <= dst_stride);
    // O[rows, cols] += X[rows, in] · Wᵀ: Wᵀ's element (i, o) is weight[o·in + i], so its row stride
    // is 1 and its column stride `in`.
    // SAFETY: X is read up to (rows-1)·in + in-1 < x.len(), W up to (cols-1)·in + in-1 <
    // weight.len() (asserted); O's elements are valid and exclusive by this function's contract.
    unsafe {
        gemm(
            rows,
            cols,
            inputs,
            dst,
            1,
            dst_stride as isize,
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
            Parallelism::None,
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
            (77, 32, 100, true),   // column tasks, the last one narrow
            (1100, 24, 40, false), // row tasks, the last one short
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
