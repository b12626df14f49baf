//! Blocked ("flash") multi-head attention on f32 tokens: tiles of queries against blocks of keys with an
//! online softmax, so no score matrix larger than one tile × one block ever exists.
//!
//! Inputs and output stay in the `[B, N, heads · d]` layout the projections produce, so heads are never
//! split into separate copies. Tasks are (batch, query tile) pairs on rayon; each walks every head, and
//! the products run through `gemm` single-threaded on strided views.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::simd;

/// Most query rows per task (128 measured a little faster than 64 or 256 at SD 1.5's 512² shapes:
/// each packed key/value block then serves more rows).
const QUERY_TILE: usize = 128;
/// Fewest query rows per task (smaller tiles only add `gemm` overhead).
const MIN_QUERY_TILE: usize = 8;
/// Keys per block of the online softmax; a tile's scores are `QUERY_TILE × KEY_BLOCK` f32 (256 KiB).
const KEY_BLOCK: usize = 512;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Batch items.
    pub batch: usize,
    /// Query tokens per item (`N`).
    pub queries: usize,
    /// Key/value tokens per item (`M`).
    pub keys: usize,
    /// Heads.
    pub heads: usize,
    /// Channels per head (`d`).
    pub head_dim: usize,
}

/// `out = softmax(q kᵀ · scale) v` per batch item and head, in f32.
///
/// `q` and `out` are `[batch, queries, heads · head_dim]`, `k` and `v` are `[batch, keys, heads · head_dim]`,
/// all contiguous; head `h` is channels `h·d .. (h+1)·d` of each token.
///
/// # Panics
/// When a slice length does not match `shape`, or `shape.keys` is 0 (softmax over nothing).
pub fn attention(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], shape: AttentionShape, scale: f32) {
    let AttentionShape {
        batch,
        queries: n,
        keys: m,
        heads,
        head_dim: d,
    } = shape;
    let c = heads * d;
    assert_eq!(
        q.len(),
        batch * n * c,
        "attention: q must be [batch, queries, heads·d]"
    );
    assert_eq!(
        k.len(),
        batch * m * c,
        "attention: k must be [batch, keys, heads·d]"
    );
    assert_eq!(
        v.len(),
        batch * m * c,
        "attention: v must be [batch, keys, heads·d]"
    );
    assert_eq!(out.len(), q.len(), "attention: out must have the shape of q");
    if q.is_empty() {
        return;
    }
    assert!(m > 0, "attention: softmax over zero keys");
    let tile = query_tile(batch, n);
    out.par_chunks_mut(n * c)
        .zip(q.par_chunks(n * c))
        .zip(k.par_chunks(m * c))
        .zip(v.par_chunks(m * c))
        .for_each(|(((out_b, q_b), k_b), v_b)| {
            out_b
                .par_chunks_mut(tile * c)
                .zip(q_b.par_chunks(tile * c))
                .for_each(|(out_t, q_t)| attend_tile(q_t, k_b, v_b, out_t, heads, d, scale));
        });
}

/// Upper bound of the scratch memory one [`attention`] call holds at once: per running task, one
/// tile's scores and its row statistics.
pub fn scratch_bytes() -> usize {
    rayon::current_num_threads() * QUERY_TILE * (KEY_BLOCK + 2) * std::mem::size_of::<f32>()
}

/// Query rows per task: [`QUERY_TILE`], smaller when that would leave threads idle.
fn query_tile(batch: usize, queries: usize) -> usize {
    let tasks_per_item = (4 * rayon::current_num_threads()).div_ceil(batch.max(1));
    queries.div_ceil(tasks_per_item).clamp(MIN_QUERY_TILE, QUERY_TILE)
}

/// One batch item's query tile `q` `[rows, c]` against all its keys and values `[m, c]`, every head;
/// writes `out` `[rows, c]`.
fn attend_tile(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], heads: usize, d: usize, scale: f32) {
    let c = heads * d;
    let rows = q.len() / c;
    let m = k.len() / c;
    let block = KEY_BLOCK.min(m);
    let mut scores = vec![0f32; rows * block];
    let mut row_max = vec![0f32; rows];
    let mut row_sum = vec![0f32; rows];
    let rs_c = c as isize;
    for h in 0..heads {
        let col = h * d;
        for k0 in (0..m).step_by(KEY_BLOCK) {
            let bk = KEY_BLOCK.min(m - k0);
            let first = k0 == 0;
            let s = &mut scores[..rows * bk];
            // S = scale · Q_h K_hᵀ for keys k0..k0+bk: S is [rows, bk] row-major; Q_h is rows × d at
            // column `col` of q (row stride c); Kᵀ's column j is key k0 + j, row stride 1, column stride c.
            // SAFETY: every element gemm reads or writes lies inside its slice: Q reads
            // (rows-1)·c + col + d-1 < q.len(); K reads (k0+bk-1)·c + col + d-1 < m·c = k.len(); S is
            // exactly rows·bk long. The destination is a fresh `&mut` slice, so it aliases no input.
            unsafe {
                gemm(
                    rows,
                    bk,
                    d,
                    s.as_mut_ptr(),
                    1,
                    bk as isize,
                    false,
                    q.as_ptr().add(col),
                    1,
                    rs_c,
                    k.as_ptr().add(k0 * c + col),
                    rs_c,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            for (r, s_row) in s.chunks_exact_mut(bk).enumerate() {
                let block_max = simd::max(s_row);
                let new_max = if first {
                    block_max
                } else {
                    block_max.max(row_max[r])
                };
                let sum = simd::exp_shifted_sum(s_row, new_max);
                if first {
                    row_sum[r] = sum;
                } else {
                    // Earlier blocks were exponentiated against a smaller max: rescale their sum and output.
                    let correction = simd::exp(row_max[r] - new_max);
                    row_sum[r] = row_sum[r] * correction + sum;
                    if correction != 1.0 {
                        simd::scale(&mut out[r * c + col..r * c + col + d], correction);
                    }
                }
                row_max[r] = new_max;
            }
            // O_h (+)= P V_h for keys k0..k0+bk: O_h is rows × d at column `col` of out (row stride c),
            // P is S ([rows, bk], row stride bk), V_h is bk × d at row k0, column `col` of v (row stride c).
            // SAFETY: bounds as above (out has the shape of q, v the shape of k); `out` is written
            // only through this call while no other reference to it is live, and aliases no input.
            unsafe {
                gemm(
                    rows,
                    d,
                    bk,
                    out.as_mut_ptr().add(col),
                    1,
                    rs_c,
                    !first,
                    s.as_ptr(),
                    1,
                    bk as isize,
                    v.as_ptr().add(k0 * c + col),
                    1,
                    rs_c,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        }
        for (r, &sum) in row_sum.iter().enumerate() {
            simd::scale(&mut out[r * c + col..r * c + col + d], 1.0 / sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::ops::attention_reference;
    use crate::kernels::testing::{randn, values};

    /// Max |kernel − candle| over max |candle| for random inputs of `shape`.
    fn relative_diff(shape: AttentionShape, seed: u64) -> f32 {
        let AttentionShape {
            batch,
            queries,
            keys,
            heads,
            head_dim,
        } = shape;
        let c = heads * head_dim;
        // Scores of a few units, as in trained networks: the softmax is neither flat nor one-hot.
        let q = randn(3 * seed, &[batch, queries, c], 0.0, 1.5);
        let k = randn(3 * seed + 1, &[batch, keys, c], 0.0, 1.5);
        let v = randn(3 * seed + 2, &[batch, keys, c], 0.0, 1.0);
        let scale = (head_dim as f64).powf(-0.5);
        let want = attention_reference(&q, &k, &v, heads, scale).unwrap();
        let mut out = vec![0f32; batch * queries * c];
        attention(
            &values(&q),
            &values(&k),
            &values(&v),
            &mut out,
            shape,
            scale as f32,
        );
        let want = values(&want);
        let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = out.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        diff / peak
    }

    fn shape(batch: usize, queries: usize, keys: usize, heads: usize, head_dim: usize) -> AttentionShape {
        AttentionShape {
            batch,
            queries,
            keys,
            heads,
            head_dim,
        }
    }

    #[test]
    fn matches_candle_on_odd_and_tiny_shapes() {
        let mut worst = 0f32;
        for (i, s) in [
            shape(1, 1, 1, 1, 1),
            shape(1, 7, 5, 3, 5),
            shape(2, 65, 77, 2, 16), // tiny test UNet cross-attention, ragged last tile
            shape(2, 64, 64, 2, 16), // tiny test UNet self-attention at 8×8
            shape(1, 64, 64, 1, 32), // tiny test VAE mid block
            shape(2, 130, 1030, 3, 7), // several key blocks, partial last block
        ]
        .into_iter()
        .enumerate()
        {
            let diff = relative_diff(s, i as u64);
            assert!(diff < 1e-5, "{s:?}: relative diff {diff}");
            worst = worst.max(diff);
        }
        eprintln!("attention, odd and tiny shapes: worst relative diff {worst:e}");
    }

    #[test]
    fn matches_candle_on_sd15_shapes() {
        let mut worst = 0f32;
        for (i, s) in [
            shape(2, 1024, 1024, 8, 40),  // level 0 self-attention at 256² pixels
            shape(2, 1024, 77, 8, 40),    // level 0 cross-attention
            shape(2, 256, 256, 8, 80),    // level 1
            shape(2, 16, 77, 8, 160),     // mid block at 256² pixels
            shape(1, 1024, 1024, 1, 512), // VAE mid block at 256² pixels
        ]
        .into_iter()
        .enumerate()
        {
            let diff = relative_diff(s, 100 + i as u64);
            assert!(diff < 1e-5, "{s:?}: relative diff {diff}");
            worst = worst.max(diff);
        }
        eprintln!("attention, SD 1.5 shapes: worst relative diff {worst:e}");
    }
}
