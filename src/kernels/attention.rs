//! Blocked ("flash") multi-head attention on f32 tokens: tiles of queries against blocks of keys with an
//! online softmax, so no score matrix larger than one tile × one block ever exists.
//!
//! Inputs and output stay in the `[B, N, heads · d]` layout the projections produce, so heads are never
//! split into separate copies. Tasks are (batch, query tile) pairs on rayon; each walks every head, and
//! the products run through `gemm` single-threaded on strided views.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::simd::{self, multiversion};

/// Most query rows per task (128 measured a little faster than 64 or 256 at SD 1.5's 512² shapes:
/// each packed key/value block then serves more rows).
const QUERY_TILE: usize = 128;
/// Fewest query rows per task (smaller tiles only add `gemm` overhead).
const MIN_QUERY_TILE: usize = 8;
/// Keys per block of the online softmax; a tile's scores are `QUERY_TILE × KEY_BLOCK` f32 (256 KiB).
const KEY_BLOCK: usize = 512;

/// The widest head [`scratch_bytes`] allows for (SD 1.x's VAE attends with one head of 512).
const MAX_HEAD_DIM: usize = 512;

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
/// tile's scores, its running output (heads of up to [`MAX_HEAD_DIM`] channels) and its row statistics.
pub fn scratch_bytes() -> usize {
    rayon::current_num_threads() * QUERY_TILE * (KEY_BLOCK + MAX_HEAD_DIM + 5) * std::mem::size_of::<f32>()
}

/// Query rows per task: [`QUERY_TILE`], smaller when that would leave threads idle.
fn query_tile(batch: usize, queries: usize) -> usize {
    let tasks_per_item = (4 * rayon::current_num_threads()).div_ceil(batch.max(1));
    queries.div_ceil(tasks_per_item).clamp(MIN_QUERY_TILE, QUERY_TILE)
}

/// One batch item's query tile `q` `[rows, c]` against all its keys and values `[m, c]`, every head;
/// writes `out` `[rows, c]`.
///
/// The scores and the running output are kept column-major (`[keys][rows]`, `[d][rows]`): `gemm`
/// then uses the scores as they are, with no packing, and runs its widest micro-kernel along the
/// rows (not along `d`, which is only 40 at SD 1.5's first level), and the softmax works on whole
/// vectors of rows with no horizontal reductions.
fn attend_tile(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], heads: usize, d: usize, scale: f32) {
    let c = heads * d;
    let rows = q.len() / c;
    let m = k.len() / c;
    let block = KEY_BLOCK.min(m);
    let mut scores = vec![0f32; block * rows];
    let mut acc = vec![0f32; d * rows];
    let mut stats = RowStats::new(rows);
    let rs_c = c as isize;
    let cs_rows = rows as isize;
    for h in 0..heads {
        let col = h * d;
        for k0 in (0..m).step_by(KEY_BLOCK) {
            let bk = KEY_BLOCK.min(m - k0);
            let first = k0 == 0;
            let s = &mut scores[..rows * bk];
            // S = scale · Q_h K_hᵀ for keys k0..k0+bk, column-major: S(r, j) at j·rows + r. Q_h is
            // rows × d at column `col` of q (row stride c); Kᵀ's column j is key k0 + j (row stride
            // 1, column stride c).
            // SAFETY: every element gemm reads or writes lies inside its slice: Q reads
            // (rows-1)·c + col + d-1 < q.len(); K reads (k0+bk-1)·c + col + d-1 < m·c = k.len(); S is
            // exactly rows·bk long. The destination is a fresh `&mut` slice, so it aliases no input.
            unsafe {
                gemm(
                    rows,
                    bk,
                    d,
                    s.as_mut_ptr(),
                    cs_rows,
                    1,
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
            online_softmax(s, &mut stats, first);
            if !first {
                // Earlier blocks were exponentiated against a smaller max: rescale their output.
                rescale_columns(&mut acc, &stats.correction);
            }
            // A (+)= P V_h for keys k0..k0+bk: A is column-major [d][rows], P is S, V_h is bk × d
            // at row k0, column `col` of v (row stride c).
            // SAFETY: A is exactly d·rows long and S rows·bk; V reads (k0+bk-1)·c + col + d-1 <
            // v.len() (v has the shape of k). `acc` is this call's own buffer and aliases no input.
            unsafe {
                gemm(
                    rows,
                    d,
                    bk,
                    acc.as_mut_ptr(),
                    cs_rows,
                    1,
                    !first,
                    s.as_ptr(),
                    cs_rows,
                    1,
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
        // out[r, col + i] = A(r, i) / sum_r: back to rows of tokens.
        for (r, (o, &sum)) in out.chunks_exact_mut(c).zip(&stats.sum).enumerate() {
            let inv = 1.0 / sum;
            for (i, o) in o[col..col + d].iter_mut().enumerate() {
                *o = acc[i * rows + r] * inv;
            }
        }
    }
}

/// The online softmax's state for one tile's rows.
struct RowStats {
    /// Running max of each row's scores (the shift of its exponentials).
    max: Vec<f32>,
    /// Running sum of each row's exponentials.
    sum: Vec<f32>,
    /// What the latest block multiplied the earlier exponentials of each row by.
    correction: Vec<f32>,
    /// Scratch: the latest block's max and sum per row.
    block_max: Vec<f32>,
    block_sum: Vec<f32>,
}

impl RowStats {
    fn new(rows: usize) -> Self {
        Self {
            max: vec![0.0; rows],
            sum: vec![0.0; rows],
            correction: vec![1.0; rows],
            block_max: vec![0.0; rows],
            block_sum: vec![0.0; rows],
        }
    }
}

/// Turns a column-major block of scores `s` (`[keys][rows]`) into exponentials against each row's
/// running max, updating `stats` (`first`: the row's first block, so nothing earlier to correct).
fn online_softmax(s: &mut [f32], stats: &mut RowStats, first: bool) {
    softmax_block(
        s,
        &mut stats.max,
        &mut stats.sum,
        &mut stats.correction,
        (&mut stats.block_max, &mut stats.block_sum),
        first,
    );
}

multiversion! {
    /// [`online_softmax`]'s loops: every line runs over a contiguous column of rows. Its exponentials
    /// use fused multiply-adds where the level has them.
    fn softmax_block / softmax_block_at<const FMA: bool>(
        s: &mut [f32],
        row_max: &mut [f32],
        row_sum: &mut [f32],
        correction: &mut [f32],
        scratch: (&mut [f32], &mut [f32]),
        first: bool,
    ) {
        let (block_max, block_sum) = scratch;
        let rows = row_max.len();
        block_max.fill(f32::NEG_INFINITY);
        for column in s.chunks_exact(rows) {
            for (m, &x) in block_max.iter_mut().zip(column) {
                *m = if x > *m { x } else { *m };
            }
        }
        if first {
            row_max.copy_from_slice(block_max);
        } else {
            for ((m, b), corr) in row_max.iter_mut().zip(block_max.iter()).zip(correction.iter_mut()) {
                let new = if *b > *m { *b } else { *m };
                *corr = simd::exp_with::<FMA>(*m - new);
                *m = new;
            }
        }
        block_sum.fill(0.0);
        for column in s.chunks_exact_mut(rows) {
            for ((x, &m), sum) in column.iter_mut().zip(row_max.iter()).zip(block_sum.iter_mut()) {
                *x = simd::exp_with::<FMA>(*x - m);
                *sum += *x;
            }
        }
        if first {
            row_sum.copy_from_slice(block_sum);
        } else {
            for ((total, &b), &corr) in row_sum.iter_mut().zip(block_sum.iter()).zip(correction.iter()) {
                *total = *total * corr + b;
            }
        }
    }
}

multiversion! {
    /// Multiplies each row of the column-major `acc` (`[d][rows]`) by its `factor`.
    fn rescale_columns / rescale_columns_at(acc: &mut [f32], factor: &[f32]) {
        for column in acc.chunks_exact_mut(factor.len()) {
            for (a, &f) in column.iter_mut().zip(factor) {
                *a *= f;
            }
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
