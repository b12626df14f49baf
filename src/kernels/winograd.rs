//! 3×3 stride-1 convolutions (padding 1) by Winograd's minimal filtering, F(2×2, 3×3) or
//! F(4×4, 3×3).
//!
//! Each 2×2 block of output pixels ("tile") of one output channel needs 36 multiply-adds per input
//! channel done directly; in the Winograd domain it needs 16. The input is cut into overlapping 4×4
//! patches, one per tile, each mapped to 16 values `V = Bᵀ d B`; the weights are mapped to
//! `U = G g Gᵀ`; then for each of the 16 points ξ one product `M_ξ = U_ξ · V_ξ`
//! (`[Cout, Cin] · [Cin, tiles]`) does all the channel mixing, and `Aᵀ M A` turns each tile's 16
//! values back into its 2×2 pixels, the bias added on the way out.
//!
//! The transforms only add, subtract and halve, so the result differs from the direct sum by
//! rounding alone (a few ulps more than a direct sum's reassociation; the tests bound it).
//!
//! F(4×4, 3×3) is the same with 4×4 tiles read from 6×6 patches: 36 products per 16 output pixels
//! (2.25 per pixel, against 4 for F(2×2) and 9 direct), at the price of transforms with factors up
//! to 8 and 1/24, so about ten times F(2×2)'s rounding (still near 1e-6 of the output's scale),
//! and a weight transform four times the weights' size (36/9).
//!
//! Tiles are processed in chunks (the transformed input and product of one chunk are a task's
//! scratch), chunks in parallel, each product single-threaded. The weights are transformed once
//! per call, in parallel: `16/9` of the weight's size, freed after the call.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::conv::ConvShape;
use super::simd::multiversion;

/// Which Winograd algorithm: the output tile's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WinogradTile {
    /// F(2×2, 3×3): 4×4 patches, 16 points.
    F2,
    /// F(4×4, 3×3): 6×6 patches, 36 points.
    F4,
}

impl WinogradTile {
    /// Output pixels along a tile's side.
    fn side(self) -> usize {
        match self {
            Self::F2 => 2,
            Self::F4 => 4,
        }
    }

    /// Points of the Winograd domain: the patch a tile reads, `(side + 2)²`.
    fn points(self) -> usize {
        (self.side() + 2) * (self.side() + 2)
    }
}

/// Points of F(2×2, 3×3).
const POINTS: usize = 16;
/// Tiles per task (whole tile rows, so at least one row): enough columns for each product that
/// packing its `[Cout, Cin]` operand is a small share of the work, few enough that a task's scratch
/// (`16·(Cin + Cout)·tiles` f32) stays small. 64 to 512 measured alike at SD 1.5's shapes.
const CHUNK_TILES: usize = 128;

/// The weights in the Winograd domain, `[Cout, points, Cin]`: point ξ's `[Cout, Cin]` matrix has
/// row stride `points·Cin`.
fn transform_weights(tile: WinogradTile, weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    match tile {
        WinogradTile::F2 => transform_weights2(weight, cout, cin),
        WinogradTile::F4 => transform_weights4(weight, cout, cin),
    }
}

/// `G g` for one column `g` of a 3×3 kernel (or `a Gᵀ` for one row), F(4×4, 3×3)'s `G`.
#[inline]
fn g6(g0: f32, g1: f32, g2: f32) -> [f32; 6] {
    let even = g0 + g2;
    [
        0.25 * g0,
        -(even + g1) / 6.0,
        -(even - g1) / 6.0,
        g0 / 24.0 + g1 / 12.0 + g2 / 6.0,
        g0 / 24.0 - g1 / 12.0 + g2 / 6.0,
        g2,
    ]
}

/// [`transform_weights`] for F(4×4, 3×3): `U = G g Gᵀ`, 36 points.
fn transform_weights4(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    const P: usize = 36;
    let mut u = vec![0f32; cout * P * cin];
    u.par_chunks_mut(P * cin)
        .zip(weight.par_chunks(9 * cin))
        .for_each(|(u_k, w_k)| {
            for (c, g) in w_k.chunks_exact(9).enumerate() {
                let cols: [[f32; 6]; 3] = std::array::from_fn(|j| g6(g[j], g[3 + j], g[6 + j]));
                for i in 0..6 {
                    let row = g6(cols[0][i], cols[1][i], cols[2][i]);
                    for (q, value) in row.into_iter().enumerate() {
                        u_k[(6 * i + q) * cin + c] = value;
                    }
                }
            }
        });
    u
}

/// [`transform_weights`] for F(2×2, 3×3): `U = G g Gᵀ`, 16 points.
fn transform_weights2(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut u = vec![0f32; cout * POINTS * cin];
    u.par_chunks_mut(POINTS * cin)
        .zip(weight.par_chunks(9 * cin))
        .for_each(|(u_k, w_k)| {
            for (c, g) in w_k.chunks_exact(9).enumerate() {
                // a = G g: rows of the 4×3 intermediate.
                let mut a = [[0f32; 3]; 4];
                for j in 0..3 {
                    let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                    a[0][j] = g0;
                    a[1][j] = 0.5 * (g0 + g1 + g2);
                    a[2][j] = 0.5 * (g0 - g1 + g2);
                    a[3][j] = g2;
                }
                // U = a Gᵀ.
                for (i, row) in a.iter().enumerate() {
                    let (a0, a1, a2) = (row[0], row[1], row[2]);
                    u_k[(4 * i) * cin + c] = a0;
                    u_k[(4 * i + 1) * cin + c] = 0.5 * (a0 + a1 + a2);
                    u_k[(4 * i + 2) * cin + c] = 0.5 * (a0 - a1 + a2);
                    u_k[(4 * i + 3) * cin + c] = a2;
                }
            }
        });
    u
}

/// Geometry of the tile grid over one image.
#[derive(Clone, Copy)]
struct Grid {
    /// Output pixels along a tile's side (2 or 4).
    side: usize,
    /// Output rows and columns.
    h: usize,
    w: usize,
    /// Tile rows and tiles per row.
    tiles_y: usize,
    tiles_x: usize,
    /// Row stride of the padded input plane (`side·tiles_x + 2`).
    pw: usize,
    /// Size of one padded input plane.
    plane: usize,
}

impl Grid {
    fn new(tile: WinogradTile, h: usize, w: usize) -> Self {
        let side = tile.side();
        let (tiles_y, tiles_x) = (h.div_ceil(side), w.div_ceil(side));
        let pw = side * tiles_x + 2;
        Self {
            side,
            h,
            w,
            tiles_y,
            tiles_x,
            pw,
            plane: (side * tiles_y + 2) * pw,
        }
    }

    /// Output rows of tile rows `ty0..ty1` (the last tile row may be cut short).
    fn output_rows(self, ty0: usize, ty1: usize) -> std::ops::Range<usize> {
        self.side * ty0..(self.side * ty1).min(self.h)
    }
}

/// `Bᵀ e` for six values `e` (a column or row of a 6×6 patch), F(4×4, 3×3)'s `Bᵀ`.
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
fn bt6(e: [f32; 6]) -> [f32; 6] {
    let [e0, e1, e2, e3, e4, e5] = e;
    [
        4.0 * e0 - 5.0 * e2 + e4,
        -4.0 * (e1 + e2) + e3 + e4,
        4.0 * (e1 - e2) - e3 + e4,
        2.0 * (e3 - e1) - e2 + e4,
        2.0 * (e1 - e3) - e2 + e4,
        4.0 * e1 - 5.0 * e3 + e5,
    ]
}

/// `Aᵀ m` for six values `m` (a column or row of a tile's 6×6 products), F(4×4, 3×3)'s `Aᵀ`.
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
fn at6(m: [f32; 6]) -> [f32; 4] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let (sum12, diff12) = (m1 + m2, m1 - m2);
    let (sum34, diff34) = (m3 + m4, m3 - m4);
    [
        m0 + sum12 + sum34,
        diff12 + 2.0 * diff34,
        sum12 + 4.0 * sum34,
        diff12 + 8.0 * diff34 + m5,
    ]
}

multiversion! {
    /// F(4×4, 3×3)'s `V = Bᵀ d B` for the tiles of tile rows `ty0..ty1` of every channel of `padded`
    /// (`[Cin, plane]`), written to `v` `[36, Cin, tiles]`; `rows` is scratch.
    fn input_transform4 / input_transform4_at(
        padded: &[f32],
        grid: Grid,
        tile_rows: (usize, usize),
        rows: &mut Vec<f32>,
        v: &mut [f32],
    ) {
        let (ty0, ty1) = tile_rows;
        let (tw, pw) = (grid.tiles_x, grid.pw);
        let tb = (ty1 - ty0) * tw;
        let cin = padded.len() / grid.plane;
        rows.resize(6 * pw, 0.0);
        for c in 0..cin {
            let p = &padded[c * grid.plane..(c + 1) * grid.plane];
            for ty in ty0..ty1 {
                let at = (ty - ty0) * tw;
                let d = &p[4 * ty * pw..(4 * ty + 6) * pw];
                // Bᵀ d over whole padded rows: six rows of combinations, every column at once.
                for x in 0..pw {
                    let t = bt6(std::array::from_fn(|i| d[i * pw + x]));
                    for (i, value) in t.into_iter().enumerate() {
                        rows[i * pw + x] = value;
                    }
                }
                // (Bᵀ d) B: tile j reads columns 4j .. 4j+5 of each combination row.
                for (i, r) in rows.chunks_exact(pw).enumerate() {
                    let base = |q: usize| ((6 * i + q) * cin + c) * tb + at;
                    for j in 0..tw {
                        let t = bt6(std::array::from_fn(|k| r[4 * j + k]));
                        for (q, value) in t.into_iter().enumerate() {
                            v[base(q) + j] = value;
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// F(4×4, 3×3)'s `Y = Aᵀ M A` (+ bias) for the tiles of tile rows `ty0..ty1`, from `m`
    /// `[36, Cout, tiles]`, into `outs`: for each output channel, its output rows of those tile rows.
    fn output_transform4 / output_transform4_at(
        m: &[f32],
        bias: Option<&[f32]>,
        grid: Grid,
        tile_rows: (usize, usize),
        outs: &mut [&mut [f32]],
    ) {
        let (ty0, ty1) = tile_rows;
        let (tw, w) = (grid.tiles_x, grid.w);
        let cout = outs.len();
        let tb = (ty1 - ty0) * tw;
        for (k, dst) in outs.iter_mut().enumerate() {
            let b = bias.map_or(0.0, |b| b[k]);
            for ty in ty0..ty1 {
                let at = (ty - ty0) * tw;
                let y0 = 4 * (ty - ty0);
                let out_rows = (grid.h - 4 * ty).min(4);
                for j in 0..tw {
                    let point = |xi: usize| m[(xi * cout + k) * tb + at + j];
                    // Aᵀ M: the 4×6 intermediate, one column of M at a time.
                    let cols: [[f32; 4]; 6] =
                        std::array::from_fn(|col| at6(std::array::from_fn(|r| point(6 * r + col))));
                    let x0 = 4 * j;
                    let px = (w - x0).min(4);
                    for (i, row_of_t) in (0..out_rows).map(|i| (i, std::array::from_fn(|col| cols[col][i]))) {
                        // (Aᵀ M) A: four pixels from each row of six.
                        let y = at6(row_of_t);
                        let row = &mut dst[(y0 + i) * w + x0..(y0 + i) * w + x0 + px];
                        for (o, value) in row.iter_mut().zip(y) {
                            *o = value + b;
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// `V = Bᵀ d B` for the tiles of tile rows `ty0..ty1` of every channel of `padded` (`[Cin, plane]`),
    /// written to `v` `[16, Cin, tiles]` (tiles in row-major order); `rows` is scratch.
    fn input_transform / input_transform_at(
        padded: &[f32],
        grid: Grid,
        tile_rows: (usize, usize),
        rows: &mut Vec<f32>,
        v: &mut [f32],
    ) {
        let (ty0, ty1) = tile_rows;
        let (tw, pw) = (grid.tiles_x, grid.pw);
        let tb = (ty1 - ty0) * tw;
        let cin = padded.len() / grid.plane;
        rows.resize(4 * pw, 0.0);
        for c in 0..cin {
            let p = &padded[c * grid.plane..(c + 1) * grid.plane];
            for ty in ty0..ty1 {
                let at = (ty - ty0) * tw;
                let d = &p[2 * ty * pw..(2 * ty + 4) * pw];
                let (d0, rest) = d.split_at(pw);
                let (d1, rest) = rest.split_at(pw);
                let (d2, d3) = rest.split_at(pw);
                // Bᵀ d over whole padded rows: four rows of combinations, every column at once.
                let (r0, rest) = rows.split_at_mut(pw);
                let (r1, rest) = rest.split_at_mut(pw);
                let (r2, r3) = rest.split_at_mut(pw);
                for x in 0..pw {
                    r0[x] = d0[x] - d2[x];
                    r1[x] = d1[x] + d2[x];
                    r2[x] = d2[x] - d1[x];
                    r3[x] = d1[x] - d3[x];
                }
                // (Bᵀ d) B: tile j reads columns 2j .. 2j+3 of each combination row.
                for (i, r) in rows.chunks_exact(pw).enumerate() {
                    let point = |q: usize| ((4 * i + q) * cin + c) * tb + at;
                    let dst = &mut v[point(0)..point(0) + tw];
                    for (j, o) in dst.iter_mut().enumerate() {
                        *o = r[2 * j] - r[2 * j + 2];
                    }
                    let dst = &mut v[point(1)..point(1) + tw];
                    for (j, o) in dst.iter_mut().enumerate() {
                        *o = r[2 * j + 1] + r[2 * j + 2];
                    }
                    let dst = &mut v[point(2)..point(2) + tw];
                    for (j, o) in dst.iter_mut().enumerate() {
                        *o = r[2 * j + 2] - r[2 * j + 1];
                    }
                    let dst = &mut v[point(3)..point(3) + tw];
                    for (j, o) in dst.iter_mut().enumerate() {
                        *o = r[2 * j + 1] - r[2 * j + 3];
                    }
                }
            }
        }
    }
}

multiversion! {
    /// `Y = Aᵀ M A` (+ bias) for the tiles of tile rows `ty0..ty1`, from `m` `[16, Cout, tiles]`, into
    /// `outs`: for each output channel, its output rows of those tile rows (`grid.output_rows`).
    fn output_transform / output_transform_at(
        m: &[f32],
        bias: Option<&[f32]>,
        grid: Grid,
        tile_rows: (usize, usize),
        outs: &mut [&mut [f32]],
    ) {
        let (ty0, ty1) = tile_rows;
        let (tw, w) = (grid.tiles_x, grid.w);
        let cout = outs.len();
        let tb = (ty1 - ty0) * tw;
        let pairs = w / 2;
        for (k, dst) in outs.iter_mut().enumerate() {
            let b = bias.map_or(0.0, |b| b[k]);
            for ty in ty0..ty1 {
                let at = (ty - ty0) * tw;
                let p = |xi: usize| &m[(xi * cout + k) * tb + at..(xi * cout + k) * tb + at + tw];
                let points: [&[f32]; POINTS] = std::array::from_fn(p);
                let y0 = 2 * (ty - ty0);
                // Aᵀ M: output row 0 is point rows 0 + 1 + 2, row 1 is 1 − (2 + 3).
                for i in 0..2 {
                    if 2 * ty + i >= grid.h {
                        break;
                    }
                    let (a, c, sign) = (&points[4 * i..4 * i + 4], &points[4 * i + 4..4 * i + 12], if i == 0 { 1.0 } else { -1.0 });
                    let s = |j: usize, col: usize| a[col][j] + sign * (c[col][j] + c[4 + col][j]);
                    let row = &mut dst[(y0 + i) * w..(y0 + i + 1) * w];
                    // (Aᵀ M) A: pixel 0 of a tile sums columns 0..3, pixel 1 takes 1 − 2 − 3.
                    for (j, px) in row[..2 * pairs].chunks_exact_mut(2).enumerate() {
                        let (s0, s1, s2, s3) = (s(j, 0), s(j, 1), s(j, 2), s(j, 3));
                        px[0] = s0 + s1 + s2 + b;
                        px[1] = s1 - s2 - s3 + b;
                    }
                    if w % 2 == 1 {
                        let j = tw - 1;
                        row[w - 1] = s(j, 0) + s(j, 1) + s(j, 2) + b;
                    }
                }
            }
        }
    }
}

/// The output tensor, shared by the tasks of [`conv3x3_winograd`]: each takes the rows of its own
/// tile rows in every channel.
struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: tasks holding a `&SharedOut` take disjoint row ranges (`rows`), and the buffer outlives
// the parallel loop that shares it.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Elements `start .. start + len` of the output.
    ///
    /// # Safety
    /// The range must lie inside the output, and no other live slice may overlap it.
    #[expect(clippy::mut_from_ref, reason = "each task owns disjoint output rows")]
    unsafe fn rows(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len, "output rows out of range");
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// 3×3 convolution, stride 1, padding 1, by Winograd F(2×2, 3×3): `out = conv(x, weight) + bias`,
/// with the same arguments as [`super::conv3x3`].
///
/// # Panics
/// When a slice length does not match `shape`.
pub fn conv3x3_winograd(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: ConvShape, out: &mut [f32]) {
    conv3x3_winograd_tiles(WinogradTile::F2, x, weight, bias, shape, out);
}

/// [`conv3x3_winograd`] by F(4×4, 3×3).
///
/// # Panics
/// When a slice length does not match `shape`.
pub fn conv3x3_winograd4(x: &[f32], weight: &[f32], bias: Option<&[f32]>, shape: ConvShape, out: &mut [f32]) {
    conv3x3_winograd_tiles(WinogradTile::F4, x, weight, bias, shape, out);
}

/// 3×3 convolution, stride 1, padding 1, by Winograd with output tiles `tile`: `out = conv(x,
/// weight) + bias`, with the same arguments as [`super::conv3x3`].
///
/// # Panics
/// When a slice length does not match `shape`.
pub fn conv3x3_winograd_tiles(
    tile: WinogradTile,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: ConvShape,
    out: &mut [f32],
) {
    let ConvShape {
        batch,
        in_channels: cin,
        out_channels: cout,
        height: h,
        width: w,
    } = shape;
    shape.check(x, weight, 9, bias, out);
    if out.is_empty() || cin == 0 {
        // No input channel: the bias alone, as the direct kernel writes it.
        super::conv3x3(x, weight, bias, shape, out);
        return;
    }
    let grid = Grid::new(tile, h, w);
    let points = tile.points();
    let u = transform_weights(tile, weight, cout, cin);
    // Every image zero-padded: one row and column before, enough after for whole 4×4 patches.
    let mut padded = vec![0f32; batch * cin * grid.plane];
    padded
        .par_chunks_mut(grid.plane)
        .zip(x.par_chunks(h * w))
        .for_each(|(p, xc)| {
            for (y, src) in xc.chunks_exact(w).enumerate() {
                p[(y + 1) * grid.pw + 1..(y + 1) * grid.pw + 1 + w].copy_from_slice(src);
            }
        });
    // Tasks are runs of whole tile rows: about CHUNK_TILES tiles, and enough tasks for every thread.
    let threads = rayon::current_num_threads().max(1);
    let rows_per_task = (CHUNK_TILES / grid.tiles_x)
        .clamp(1, grid.tiles_y)
        .min(grid.tiles_y.div_ceil(threads.div_ceil(batch)));
    let tasks: Vec<(usize, usize, usize)> = (0..batch)
        .flat_map(|b| {
            (0..grid.tiles_y)
                .step_by(rows_per_task)
                .map(move |ty0| (b, ty0, (ty0 + rows_per_task).min(grid.tiles_y)))
        })
        .collect();
    let shared = SharedOut {
        ptr: out.as_mut_ptr(),
        len: out.len(),
    };
    let shared = &shared;
    tasks.into_par_iter().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new()),
        |(v, m, rows): &mut (Vec<f32>, Vec<f32>, Vec<f32>), (b, ty0, ty1)| {
            let tb = (ty1 - ty0) * grid.tiles_x;
            v.resize(points * cin * tb, 0.0);
            m.resize(points * cout * tb, 0.0);
            let image = &padded[b * cin * grid.plane..(b + 1) * cin * grid.plane];
            match tile {
                WinogradTile::F2 => input_transform(image, grid, (ty0, ty1), rows, v),
                WinogradTile::F4 => input_transform4(image, grid, (ty0, ty1), rows, v),
            }
            for xi in 0..points {
                // M_ξ[Cout, tb] = U_ξ[Cout, Cin] · V_ξ[Cin, tb]; U_ξ has row stride P·Cin, where
                // P = `points`, ξ < P.
                // SAFETY: U_ξ is read at ξ·Cin + o·P·Cin + c < Cout·P·Cin = u.len() for o < Cout,
                // c < Cin; V_ξ at ξ·Cin·tb + c·tb + t < P·Cin·tb ≤ v.len(); M_ξ is written at
                // ξ·Cout·tb + o·tb + t < P·Cout·tb ≤ m.len(). `m` is this task's own buffer and
                // aliases neither input.
                unsafe {
                    gemm(
                        cout,
                        tb,
                        cin,
                        m.as_mut_ptr().add(xi * cout * tb),
                        1,
                        tb as isize,
                        false,
                        u.as_ptr().add(xi * cin),
                        1,
                        (points * cin) as isize,
                        v.as_ptr().add(xi * cin * tb),
                        1,
                        tb as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            }
            let pixels = grid.output_rows(ty0, ty1);
            let mut outs: Vec<&mut [f32]> = (0..cout)
                .map(|k| {
                    let start = ((b * cout + k) * h + pixels.start) * w;
                    // SAFETY: rows `pixels` of channel k of image b lie inside `out` (checked by
                    // `rows`); tasks own disjoint (image, tile row) ranges, so these slices overlap
                    // no other task's, and this task's own slices are of distinct channels.
                    unsafe { shared.rows(start, pixels.len() * w) }
                })
                .collect();
            match tile {
                WinogradTile::F2 => output_transform(m, bias, grid, (ty0, ty1), &mut outs),
                WinogradTile::F4 => output_transform4(m, bias, grid, (ty0, ty1), &mut outs),
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::tests::against_candle;
    use crate::kernels::simd::Level;
    use crate::kernels::testing::{randn, values};

    /// Max |winograd − candle| over max |candle| for random inputs of `shape`, with a bias.
    fn relative_diff(shape: ConvShape, seed: u64) -> f32 {
        relative_diff_of(shape, seed, conv3x3_winograd)
    }

    fn relative_diff_of(shape: ConvShape, seed: u64, kernel: crate::kernels::conv::tests::Kernel) -> f32 {
        let (want, out) = against_candle(shape, 3, true, seed, kernel);
        let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = out.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff.is_finite(), "{shape:?}: every output written");
        diff / peak
    }

    fn shape(batch: usize, cin: usize, cout: usize, h: usize, w: usize) -> ConvShape {
        ConvShape {
            batch,
            in_channels: cin,
            out_channels: cout,
            height: h,
            width: w,
        }
    }

    #[test]
    fn matches_candle_on_odd_tiny_and_sd_shapes() {
        let mut worst = 0f32;
        for (i, s) in [
            shape(1, 1, 1, 1, 1),
            shape(1, 2, 3, 1, 5),
            shape(1, 3, 2, 5, 1),
            shape(2, 5, 7, 7, 9),     // odd sides: half tiles at the bottom and right
            shape(2, 4, 4, 8, 8),     // tiny test latents
            shape(1, 32, 32, 33, 31), // several chunks, ragged
            shape(2, 64, 48, 32, 32),
            shape(1, 3, 16, 64, 64), // a VAE-like first layer
        ]
        .into_iter()
        .enumerate()
        {
            let diff = relative_diff(s, 40 * i as u64);
            assert!(diff < 2e-6, "{s:?}: relative diff {diff}");
            worst = worst.max(diff);
        }
        eprintln!("winograd conv3x3: worst relative diff {worst:e}");
    }

    #[test]
    fn f4_matches_candle_on_odd_tiny_and_sd_shapes() {
        let mut worst = 0f32;
        for (i, s) in [
            shape(1, 1, 1, 1, 1),
            shape(1, 2, 3, 1, 5),
            shape(1, 3, 2, 6, 1),
            shape(2, 5, 7, 7, 9), // ragged: tiles cut to 3 rows and 1 column
            shape(2, 4, 4, 8, 8),
            shape(1, 32, 32, 33, 31), // several chunks, ragged
            shape(2, 64, 48, 32, 32),
            shape(1, 3, 16, 64, 64),
            shape(1, 320, 64, 16, 16), // SD 1.5's widest input channel count at this level
        ]
        .into_iter()
        .enumerate()
        {
            let diff = relative_diff_of(s, 50 + i as u64, conv3x3_winograd4);
            assert!(diff < 1e-5, "{s:?}: relative diff {diff}");
            worst = worst.max(diff);
        }
        eprintln!("winograd F(4x4) conv3x3: worst relative diff {worst:e}");
    }

    #[test]
    fn f4_transforms_agree_on_every_instruction_set() {
        let grid = Grid::new(WinogradTile::F4, 7, 9);
        let (cin, cout) = (3, 2);
        let padded = values(&randn(9, &[cin, grid.plane], 0.0, 1.0));
        let tiles = grid.tiles_y * grid.tiles_x;
        let mut scratch = Vec::new();
        let mut reference = vec![0f32; 36 * cin * tiles];
        let all = (0, grid.tiles_y);
        input_transform4_at(Level::Baseline, &padded, grid, all, &mut scratch, &mut reference);
        let m = values(&randn(10, &[36, cout, tiles], 0.0, 1.0));
        let pixels = grid.h * grid.w;
        let run_output = |level: Level| {
            let mut out = vec![f32::NAN; cout * pixels];
            let mut outs: Vec<&mut [f32]> = out.chunks_mut(pixels).collect();
            output_transform4_at(level, &m, Some(&[0.5, -1.0]), grid, all, &mut outs);
            out
        };
        let out_reference = run_output(Level::Baseline);
        assert!(out_reference.iter().all(|v| v.is_finite()), "every pixel written");
        for level in [Level::Avx2, Level::Avx512] {
            let mut v = vec![f32::NAN; reference.len()];
            input_transform4_at(level, &padded, grid, all, &mut scratch, &mut v);
            assert_eq!(v, reference, "{level:?}");
            assert_eq!(run_output(level), out_reference, "{level:?}");
        }
    }

    #[test]
    fn every_instruction_set_transforms_alike() {
        let grid = Grid::new(WinogradTile::F2, 7, 9);
        let (cin, cout) = (3, 2);
        let padded = values(&randn(7, &[cin, grid.plane], 0.0, 1.0));
        let tiles = 3 * grid.tiles_x;
        let mut scratch = Vec::new();
        let mut reference = vec![0f32; POINTS * cin * tiles];
        input_transform_at(
            Level::Baseline,
            &padded,
            grid,
            (1, 4),
            &mut scratch,
            &mut reference,
        );
        let m = values(&randn(8, &[POINTS, cout, tiles], 0.0, 1.0));
        let rows = grid.output_rows(1, 4).len() * grid.w;
        let run_output = |level: Level| {
            let mut out = vec![f32::NAN; cout * rows];
            let mut outs: Vec<&mut [f32]> = out.chunks_mut(rows).collect();
            output_transform_at(level, &m, Some(&[0.5, -1.0]), grid, (1, 4), &mut outs);
            out
        };
        let out_reference = run_output(Level::Baseline);
        assert!(out_reference.iter().all(|v| v.is_finite()), "every pixel written");
        for level in [Level::Avx2, Level::Avx512] {
            let mut v = vec![f32::NAN; reference.len()];
            input_transform_at(level, &padded, grid, (1, 4), &mut scratch, &mut v);
            assert_eq!(v, reference, "{level:?}");
            assert_eq!(run_output(level), out_reference, "{level:?}");
        }
    }

    #[test]
    fn zero_input_channels_give_the_bias() {
        let s = shape(1, 0, 2, 3, 3);
        let mut out = vec![f32::NAN; 18];
        conv3x3_winograd(&[], &[], Some(&[1.5, -2.0]), s, &mut out);
        assert!(out[..9].iter().all(|&v| v == 1.5) && out[9..].iter().all(|&v| v == -2.0));
    }
}
