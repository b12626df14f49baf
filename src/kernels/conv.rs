//! Convolutions over NCHW as `gemm` products: 3×3 with padding 1 and 1×1 without im2col, and 3×3
//! with stride 2.
//!
//! A 3×3 convolution is the sum of nine 1×1 convolutions of shifted inputs. Once each input channel is
//! zero-padded to a `(H+2) × (W+2)` plane, tap `(ky, kx)` of output pixel `(y, x)` reads padded index
//! `(y + ky)(W+2) + x + kx`. If the output is also laid out with the padded row stride `W+2`, that is
//! the same plane read from offset `ky(W+2) + kx` for every pixel at once: a contiguous run, so the
//! rows an im2col matrix would hold are plain slices of the padded input, gathered one column tile
//! at a time. The bias initialises the output; the two extra columns of every output row are dropped
//! when it is copied into the result.
//!
//! A 3×3 convolution with stride 2 has no such runs (its taps read every other column), so its taps
//! are copied one output tile at a time into the same `[9·Cin, tile]` layout, and the same product
//! writes the tile.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// The geometry of a convolution: input `[batch, in_channels, height, width]`, output
/// `[batch, out_channels, height, width]` (stride 1, "same" padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Rows of both the input and the output.
    pub height: usize,
    /// Columns of both the input and the output.
    pub width: usize,
}

impl ConvShape {
    fn input_len(self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }

    fn output_len(self) -> usize {
        self.batch * self.out_channels * self.height * self.width
    }

    /// Panics unless the slices have this shape's lengths (`taps` weights per channel pair).
    pub(super) fn check(self, x: &[f32], weight: &[f32], taps: usize, bias: Option<&[f32]>, out: &[f32]) {
        assert_eq!(x.len(), self.input_len(), "convolution input length");
        let weights = self.out_channels * self.in_channels * taps;
        assert_eq!(weight.len(), weights, "convolution weight length");
        assert_eq!(out.len(), self.output_len(), "convolution output length");
        if let Some(bias) = bias {
            assert_eq!(bias.len(), self.out_channels, "convolution bias length");
        }
    }
}

/// Fills every row of `dst` (rows of `row_len`) with its channel's bias, or zeros.
fn fill_bias(dst: &mut [f32], row_len: usize, bias: Option<&[f32]>) {
    match bias {
        Some(bias) => dst
            .par_chunks_mut(row_len)
            .zip(bias.par_iter())
            .for_each(|(row, &b)| row.fill(b)),
        None => dst.fill(0.0),
    }
}

/// Output columns per task of [`conv3x3`]: its gathered taps (`9·Cin × TILE` f32, 4.5 MiB at
/// Cin = 256) and output tile stay in the caches while one product runs over them.
const TILE: usize = 512;

/// 3×3 convolution, stride 1, padding 1: `out = conv(x, weight) + bias`.
///
/// `x` is `[B, Cin, H, W]`, `weight` `[Cout, Cin, 3, 3]`, `bias` `[Cout]`, `out` `[B, Cout, H, W]`,
/// all contiguous.
///
/// The padded output plane (row stride `W+2`) is cut into column tiles. For each tile the nine
/// shifted input rows of every channel are gathered into one `[9·Cin, tile]` block, so one product
/// with the weight as stored (`[Cout, 9·Cin]`, the same `(channel, tap)` order) writes the tile once,
/// bias included. Tiles run in parallel, each product single-threaded; a plane too small to give
/// every thread a tile runs as one tile with a multi-threaded product instead.
///
/// # Panics
/// When a slice length does not match `shape`.
pub fn conv3x3(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: ConvShape, out: &mut [f32]) {
    let ConvShape {
        in_channels: cin,
        out_channels: cout,
        height: h,
        width: w,
        ..
    } = shape;
    shape.check(x, weight, 9, bias, out);
    if out.is_empty() {
        return;
    }
    if cin == 0 {
        for chunk in out.chunks_mut(cout * h * w) {
            fill_bias(chunk, h * w, bias);
        }
        return;
    }
    let pw = w + 2;
    let plane = (h + 2) * pw;
    let n = h * pw;
    let threads = rayon::current_num_threads().max(1);
    let (tiles, parallel_products) = if n >= threads * 64 {
        // Whole rounds of tiles for every thread, none wider than TILE.
        let rounds = n.div_ceil(threads * TILE);
        (threads * rounds, false)
    } else {
        (1, true)
    };
    let tile = n.div_ceil(tiles);
    // The last tap of the last channel reads two values past the last plane (in dropped columns).
    let mut padded = super::memory::zeroed(cin * plane + 2);
    let mut wide = vec![0f32; cout * n];
    for (xb, ob) in x
        .chunks_exact(cin * h * w)
        .zip(out.chunks_exact_mut(cout * h * w))
    {
        padded[..cin * plane]
            .par_chunks_mut(plane)
            .zip(xb.par_chunks(h * w))
            .for_each(|(p, xc)| {
                for (y, src) in xc.chunks_exact(w).enumerate() {
                    p[(y + 1) * pw + 1..(y + 1) * pw + 1 + w].copy_from_slice(src);
                }
            });
        let run_tile = |t: usize, dst: &WideTile| {
            let n0 = t * tile;
            let cols = tile.min(n - n0);
            let mut taps = vec![0f32; 9 * cin * cols];
            for (row, gathered) in taps.chunks_exact_mut(cols).enumerate() {
                let (c, tap) = (row / 9, row % 9);
                let from = c * plane + (tap / 3) * pw + tap % 3 + n0;
                gathered.copy_from_slice(&padded[from..from + cols]);
            }
            let parallelism = if parallel_products {
                Parallelism::Rayon(0)
            } else {
                Parallelism::None
            };
            // SAFETY: tiles are disjoint column ranges of `wide`, n0 + cols ≤ n.
            unsafe { tile_product(weight, &taps, bias, (n0, cols), dst, parallelism) };
        };
        let dst = WideTile(wide.as_mut_ptr(), n);
        if parallel_products {
            run_tile(0, &dst);
        } else {
            (0..tiles).into_par_iter().for_each(|t| run_tile(t, &dst));
        }
        ob.par_chunks_mut(h * w)
            .zip(wide.par_chunks(n))
            .for_each(|(dst, src)| {
                for (d, s) in dst.chunks_exact_mut(w).zip(src.chunks_exact(pw)) {
                    d.copy_from_slice(&s[..w]);
                }
            });
    }
}

/// The output buffer shared by the column tiles of [`conv3x3`] and [`conv3x3_stride2`]: a pointer to `[Cout, n]`
/// f32 and `n`. Each tile touches only its own columns.
struct WideTile(*mut f32, usize);

// SAFETY: tasks holding a `&WideTile` write disjoint column ranges (see `row` and the product in
// `conv3x3`), and the buffer outlives the parallel loop that shares it.
unsafe impl Sync for WideTile {}

impl WideTile {
    /// Row `o`'s columns `n0 .. n0 + cols`.
    #[expect(
        clippy::mut_from_ref,
        reason = "each tile owns a disjoint column range of every row"
    )]
    fn row(&self, o: usize, n0: usize, cols: usize) -> &mut [f32] {
        // SAFETY: the caller's tile owns columns n0..n0+cols of every row, which lie inside row o
        // of the `[Cout, n]` buffer (n0 + cols ≤ n); no other live reference covers them.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(o * self.1 + n0), cols) }
    }
}

/// Output rows and columns of a 3×3 convolution with stride 2 and `padding` zeros on every side of
/// an `h` × `w` input (PyTorch's formula); `None` when the padded input is smaller than the kernel.
pub fn stride2_output_size(h: usize, w: usize, padding: usize) -> Option<(usize, usize)> {
    let side = |n: usize| (n + 2 * padding).checked_sub(3).map(|v| v / 2 + 1);
    Some((side(h)?, side(w)?))
}

/// 3×3 convolution with stride 2 and `padding` zeros on every side: `out = conv(x, weight) + bias`
/// (the UNet's and ControlNet's downsamplers with padding 1, the VAE encoder's after its own
/// asymmetric pad with padding 0).
///
/// `x` is `[B, Cin, H, W]` (`shape` describes the input), `weight` `[Cout, Cin, 3, 3]`, `bias`
/// `[Cout]`, `out` `[B, Cout, OH, OW]` with the sizes of [`stride2_output_size`], all contiguous.
/// For each column tile of output pixels, the nine taps of every channel are gathered (every other
/// column of a padded input row) into one `[9·Cin, tile]` block and one single-threaded product with
/// the weight as stored writes the tile; tiles run in parallel.
///
/// # Panics
/// When a slice length does not match, or the padded input is smaller than the kernel.
pub fn conv3x3_stride2(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: ConvShape,
    padding: usize,
    out: &mut [f32],
) {
    let ConvShape {
        batch,
        in_channels: cin,
        out_channels: cout,
        height: h,
        width: w,
    } = shape;
    let (oh, ow) = stride2_output_size(h, w, padding).expect("the padded input covers the kernel");
    assert_eq!(x.len(), shape.input_len(), "convolution input length");
    assert_eq!(weight.len(), cout * cin * 9, "convolution weight length");
    assert_eq!(out.len(), batch * cout * oh * ow, "convolution output length");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), cout, "convolution bias length");
    }
    let n = oh * ow;
    if out.is_empty() {
        return;
    }
    if cin == 0 {
        for chunk in out.chunks_mut(cout * n) {
            fill_bias(chunk, n, bias);
        }
        return;
    }
    let (ph, pw) = (h + 2 * padding, w + 2 * padding);
    let plane = ph * pw;
    let threads = rayon::current_num_threads().max(1);
    let tiles = n.div_ceil(TILE).max(threads).min(n);
    let tile = n.div_ceil(tiles);
    let mut padded = super::memory::zeroed(cin * plane);
    for (xb, ob) in x.chunks_exact(cin * h * w).zip(out.chunks_exact_mut(cout * n)) {
        padded
            .par_chunks_mut(plane)
            .zip(xb.par_chunks(h * w))
            .for_each(|(p, xc)| {
                for (y, src) in xc.chunks_exact(w).enumerate() {
                    let at = (y + padding) * pw + padding;
                    p[at..at + w].copy_from_slice(src);
                }
            });
        let dst = WideTile(ob.as_mut_ptr(), n);
        let dst = &dst;
        (0..n.div_ceil(tile)).into_par_iter().for_each(|t| {
            let n0 = t * tile;
            let cols = tile.min(n - n0);
            let mut taps = vec![0f32; 9 * cin * cols];
            for (row, gathered) in taps.chunks_exact_mut(cols).enumerate() {
                let (c, ky, kx) = (row / 9, row % 9 / 3, row % 3);
                let src = &padded[c * plane..(c + 1) * plane];
                // Output pixel p = (oy, ox) reads padded (2·oy + ky, 2·ox + kx).
                let mut p = n0;
                let mut filled = 0;
                while filled < cols {
                    let (oy, ox) = (p / ow, p % ow);
                    let run = (ow - ox).min(cols - filled);
                    let from = (2 * oy + ky) * pw + 2 * ox + kx;
                    for (g, s) in gathered[filled..filled + run]
                        .iter_mut()
                        .zip(src[from..].iter().step_by(2))
                    {
                        *g = *s;
                    }
                    filled += run;
                    p += run;
                }
            }
            // SAFETY: tiles are disjoint column ranges of this image's output, n0 + cols ≤ n.
            unsafe { tile_product(weight, &taps, bias, (n0, cols), dst, Parallelism::None) };
        });
    }
}

/// One column tile of a 3×3 convolution: columns `n0 .. n0 + cols` of every row of `dst` get their
/// channel's bias plus `W[Cout, 9·Cin] · T[9·Cin, cols]`, where `weight` is as stored and `taps` the
/// tile's gathered taps, both row-major.
///
/// # Safety
/// `n0 + cols` must not exceed `dst`'s row length, and no other live reference may touch those
/// columns of any row while this runs.
unsafe fn tile_product(
    weight: &[f32],
    taps: &[f32],
    bias: Option<&[f32]>,
    (n0, cols): (usize, usize),
    dst: &WideTile,
    parallelism: Parallelism,
) {
    let depth = taps.len() / cols;
    let cout = weight.len() / depth;
    assert!(
        taps.len() == depth * cols && weight.len() == cout * depth,
        "tile product sizes"
    );
    for (o, b) in (0..cout).map(|o| (o, bias.map_or(0.0, |b| b[o]))) {
        dst.row(o, n0, cols).fill(b);
    }
    // SAFETY: W is read up to (Cout-1)·depth + depth-1 < weight.len(); T up to
    // (depth-1)·cols + cols-1 < taps.len() (asserted); O is written at (o, n0 + j) for o < Cout and
    // j < cols, inside `dst` and exclusive to this call by the caller's contract.
    unsafe {
        gemm(
            cout,
            cols,
            depth,
            dst.0.add(n0),
            1,
            dst.1 as isize,
            true,
            weight.as_ptr(),
            1,
            depth as isize,
            taps.as_ptr(),
            1,
            cols as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// 1×1 convolution: `out = weight · x + bias` per pixel, one product per batch item.
///
/// `x` is `[B, Cin, H, W]`, `weight` `[Cout, Cin]` (or `[Cout, Cin, 1, 1]`), `bias` `[Cout]`, `out`
/// `[B, Cout, H, W]`, all contiguous.
///
/// # Panics
/// When a slice length does not match `shape`.
pub fn conv1x1(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: ConvShape, out: &mut [f32]) {
    let ConvShape {
        in_channels: cin,
        out_channels: cout,
        height: h,
        width: w,
        ..
    } = shape;
    shape.check(x, weight, 1, bias, out);
    let n = h * w;
    if out.is_empty() {
        return;
    }
    for (b, ob) in out.chunks_exact_mut(cout * n).enumerate() {
        fill_bias(ob, n, bias);
        if cin == 0 {
            continue;
        }
        let xb = &x[b * cin * n..(b + 1) * cin * n];
        // O[Cout, n] += W[Cout, Cin] · X[Cin, n], all row-major.
        // SAFETY: W is read up to (Cout-1)·Cin + Cin-1 < weight.len(), X up to (Cin-1)·n + n-1 <
        // xb.len(), O is written up to (Cout-1)·n + n-1 < ob.len(); `ob` is a `&mut` chunk of `out`,
        // which cannot alias the shared input slices.
        unsafe {
            gemm(
                cout,
                n,
                cin,
                ob.as_mut_ptr(),
                1,
                n as isize,
                true,
                weight.as_ptr(),
                1,
                cin as isize,
                xb.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(0),
            );
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use candle_nn::Module;

    use super::*;
    use crate::kernels::testing::{randn, values};

    /// A stride-1 "same" convolution kernel's signature.
    pub(in crate::kernels) type Kernel = fn(&[f32], &[f32], Option<&[f32]>, ConvShape, &mut [f32]);

    /// candle's convolution (the reference) and this module's kernel on the same random data.
    fn both(shape: ConvShape, k: usize, with_bias: bool, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let run: Kernel = if k == 3 { conv3x3 } else { conv1x1 };
        against_candle(shape, k, with_bias, seed, run)
    }

    /// candle's `k`×`k` convolution (the reference) and `run` on the same random data.
    pub(in crate::kernels) fn against_candle(
        shape: ConvShape,
        k: usize,
        with_bias: bool,
        seed: u64,
        run: Kernel,
    ) -> (Vec<f32>, Vec<f32>) {
        let ConvShape {
            batch,
            in_channels: cin,
            out_channels: cout,
            height: h,
            width: w,
        } = shape;
        let x = randn(seed, &[batch, cin, h, w], 0.1, 1.0);
        let weight = randn(seed + 1, &[cout, cin, k, k], 0.0, 0.2);
        let bias = with_bias.then(|| randn(seed + 2, &[cout], 0.3, 1.0));
        let config = candle_nn::Conv2dConfig {
            padding: k / 2,
            ..Default::default()
        };
        let conv = candle_nn::Conv2d::new(weight.clone(), bias.clone(), config);
        let reference = values(&conv.forward(&x).expect("candle conv2d"));
        let mut out = vec![f32::NAN; shape.output_len()];
        let bias = bias.as_ref().map(values);
        run(&values(&x), &values(&weight), bias.as_deref(), shape, &mut out);
        (reference, out)
    }

    fn assert_close(reference: &[f32], out: &[f32], what: &str) {
        assert_eq!(reference.len(), out.len(), "{what}: length");
        let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = reference
            .iter()
            .zip(out)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 2e-5 * scale,
            "{what}: max difference {worst} (scale {scale})"
        );
    }

    #[test]
    fn conv3x3_matches_candle() {
        let cases = [
            (
                ConvShape {
                    batch: 1,
                    in_channels: 3,
                    out_channels: 5,
                    height: 7,
                    width: 6,
                },
                true,
            ),
            (
                ConvShape {
                    batch: 2,
                    in_channels: 16,
                    out_channels: 8,
                    height: 9,
                    width: 11,
                },
                true,
            ),
            (
                ConvShape {
                    batch: 2,
                    in_channels: 8,
                    out_channels: 16,
                    height: 1,
                    width: 1,
                },
                false,
            ),
            (
                ConvShape {
                    batch: 1,
                    in_channels: 33,
                    out_channels: 17,
                    height: 16,
                    width: 16,
                },
                false,
            ),
            (
                ConvShape {
                    batch: 1,
                    in_channels: 64,
                    out_channels: 64,
                    height: 12,
                    width: 5,
                },
                true,
            ),
        ];
        for (i, (shape, bias)) in cases.into_iter().enumerate() {
            let (reference, out) = both(shape, 3, bias, 10 * i as u64);
            assert_close(&reference, &out, &format!("{shape:?}, bias {bias}"));
        }
    }

    #[test]
    fn conv1x1_matches_candle() {
        let cases = [
            (
                ConvShape {
                    batch: 1,
                    in_channels: 4,
                    out_channels: 3,
                    height: 5,
                    width: 7,
                },
                true,
            ),
            (
                ConvShape {
                    batch: 2,
                    in_channels: 32,
                    out_channels: 48,
                    height: 8,
                    width: 8,
                },
                false,
            ),
        ];
        for (i, (shape, bias)) in cases.into_iter().enumerate() {
            let (reference, out) = both(shape, 1, bias, 100 + 10 * i as u64);
            assert_close(&reference, &out, &format!("{shape:?}, bias {bias}"));
        }
    }

    #[test]
    fn stride2_matches_candle() {
        let mut worst = 0f32;
        for (i, (batch, cin, cout, h, w, padding)) in [
            (1, 3, 4, 7, 6, 1),    // odd rows
            (2, 5, 3, 8, 9, 1),    // odd columns, batch 2
            (1, 4, 2, 9, 9, 0),    // the VAE encoder's (input already padded)
            (2, 16, 8, 64, 66, 1), // several tiles, runs across output rows
            (1, 2, 2, 1, 1, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 500 + 10 * i as u64;
            let x = randn(seed, &[batch, cin, h, w], 0.1, 1.0);
            let weight = randn(seed + 1, &[cout, cin, 3, 3], 0.0, 0.2);
            let bias = randn(seed + 2, &[cout], 0.3, 1.0);
            let config = candle_nn::Conv2dConfig {
                padding,
                stride: 2,
                ..Default::default()
            };
            let conv = candle_nn::Conv2d::new(weight.clone(), Some(bias.clone()), config);
            let reference = values(&conv.forward(&x).expect("candle conv2d"));
            let shape = ConvShape {
                batch,
                in_channels: cin,
                out_channels: cout,
                height: h,
                width: w,
            };
            let (oh, ow) = stride2_output_size(h, w, padding).expect("big enough");
            let mut out = vec![f32::NAN; batch * cout * oh * ow];
            conv3x3_stride2(
                &values(&x),
                &values(&weight),
                Some(&values(&bias)),
                shape,
                padding,
                &mut out,
            );
            assert_close(&reference, &out, &format!("{shape:?} padding {padding}"));
            let peak = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
            worst = worst.max(
                reference
                    .iter()
                    .zip(&out)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
                    / peak,
            );
        }
        assert_eq!(stride2_output_size(1, 1, 0), None, "smaller than the kernel");
        eprintln!("conv3x3 stride 2: worst relative diff {worst:e}");
    }

    #[test]
    fn no_input_channels_gives_the_bias() {
        let shape = ConvShape {
            batch: 2,
            in_channels: 0,
            out_channels: 2,
            height: 2,
            width: 3,
        };
        let mut out = vec![f32::NAN; shape.output_len()];
        conv3x3(&[], &[], Some(&[1.5, -2.0]), shape, &mut out);
        let expected: Vec<f32> = [[1.5f32; 6], [-2.0; 6], [1.5; 6], [-2.0; 6]].concat();
        assert_eq!(out, expected);
    }
}
