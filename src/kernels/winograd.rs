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
//! The work is split one of two ways, each product single-threaded ([`Split`]). On large images,
//! tasks take chunks of tiles (a chunk's transformed input and products are the task's scratch)
//! and share the weights, transformed once per call (`points/9` of the weights' size, freed after
//! the call). On small images, where the weights outweigh the tiles (SD 1.5's 16² and 32² levels),
//! all tiles are transformed first and tasks take blocks of output channels, each transforming
//! only its own channels' weights, which then stay in its core's cache instead of going out to
//! memory and back. The transforms themselves run on whole vectors: the weights' across 16 input
//! channels, F(4×4)'s along the tiles of a row.

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
/// row stride `points·Cin`. One task per output channel; each runs [`transform_channel`].
fn transform_weights(tile: WinogradTile, weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let points = tile.points();
    let mut u = super::memory::zeroed(cout * points * cin);
    u.par_chunks_mut(points * cin)
        .zip(weight.par_chunks(9 * cin))
        .for_each(|(u_k, w_k)| transform_channel(tile, w_k, u_k));
    u
}

/// Input channels transformed at once by [`transform_channel`]: one AVX-512 vector per value.
const LANES: usize = 16;

/// `G g` for one column `g` of `L` kernels at once (or `a Gᵀ` for one row), F(2×2, 3×3)'s `G`.
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
fn g4<const L: usize>(g0: [f32; L], g1: [f32; L], g2: [f32; L]) -> [[f32; L]; 4] {
    // Loops rather than `array::from_fn`, which is not inlined into the multiversioned callers.
    let mut out = [g0, [0.0; L], [0.0; L], g2];
    for l in 0..L {
        out[1][l] = 0.5 * (g0[l] + g1[l] + g2[l]);
        out[2][l] = 0.5 * (g0[l] - g1[l] + g2[l]);
    }
    out
}

/// `G g` for one column `g` of `L` kernels at once (or `a Gᵀ` for one row), F(4×4, 3×3)'s `G`.
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
fn g6<const L: usize>(g0: [f32; L], g1: [f32; L], g2: [f32; L]) -> [[f32; L]; 6] {
    let mut out = [[0.0; L]; 6];
    out[5] = g2;
    for l in 0..L {
        let even = g0[l] + g2[l];
        out[0][l] = 0.25 * g0[l];
        out[1][l] = -(even + g1[l]) / 6.0;
        out[2][l] = -(even - g1[l]) / 6.0;
        out[3][l] = g0[l] / 24.0 + g1[l] / 12.0 + g2[l] / 6.0;
        out[4][l] = g0[l] / 24.0 - g1[l] / 12.0 + g2[l] / 6.0;
    }
    out
}

/// `U = G g Gᵀ` of `L` input channels' 3×3 kernels `taps[t][l]` (tap `t` of channel `l`), with the
/// `G` of `tile`: `side + 2` rows of `side + 2` points, each `L` values.
#[expect(
    clippy::inline_always,
    reason = "must inline into each multiversioned caller to be compiled for its target"
)]
#[inline(always)]
fn transform_lanes<const L: usize>(
    tile: WinogradTile,
    taps: &[[f32; L]; 9],
    mut store: impl FnMut(usize, [f32; L]),
) {
    match tile {
        WinogradTile::F2 => {
            // a = G g, column by column of the kernel, then U = a Gᵀ, row by row.
            let (c0, c1, c2) = (
                g4(taps[0], taps[3], taps[6]),
                g4(taps[1], taps[4], taps[7]),
                g4(taps[2], taps[5], taps[8]),
            );
            for (i, ((a0, a1), a2)) in c0.into_iter().zip(c1).zip(c2).enumerate() {
                for (q, value) in g4(a0, a1, a2).into_iter().enumerate() {
                    store(4 * i + q, value);
                }
            }
        }
        WinogradTile::F4 => {
            let (c0, c1, c2) = (
                g6(taps[0], taps[3], taps[6]),
                g6(taps[1], taps[4], taps[7]),
                g6(taps[2], taps[5], taps[8]),
            );
            for (i, ((a0, a1), a2)) in c0.into_iter().zip(c1).zip(c2).enumerate() {
                for (q, value) in g6(a0, a1, a2).into_iter().enumerate() {
                    store(6 * i + q, value);
                }
            }
        }
    }
}

multiversion! {
    /// [`transform_weights`] for one output channel: its kernels `w_k` (`[Cin, 3, 3]`) into `u_k`
    /// (`[points, Cin]`), [`LANES`] input channels at a time.
    fn transform_channel / transform_channel_at(tile: WinogradTile, w_k: &[f32], u_k: &mut [f32]) {
        let cin = w_k.len() / 9;
        let whole = cin - cin % LANES;
        for c in (0..whole).step_by(LANES) {
            let block = &w_k[9 * c..9 * (c + LANES)];
            let mut taps = [[0f32; LANES]; 9];
            for (l, kernel) in block.chunks_exact(9).enumerate() {
                for (t, &value) in kernel.iter().enumerate() {
                    taps[t][l] = value;
                }
            }
            transform_lanes(tile, &taps, |xi, value| {
                u_k[xi * cin + c..xi * cin + c + LANES].copy_from_slice(&value);
            });
        }
        for c in whole..cin {
            let mut taps = [[0f32; 1]; 9];
            for (t, tap) in taps.iter_mut().enumerate() {
                *tap = [w_k[9 * c + t]];
            }
            transform_lanes(tile, &taps, |xi, [value]| u_k[xi * cin + c] = value);
        }
    }
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
    /// (`[Cin, plane]`), written to `v` as `layout` says; `rows` is scratch.
    fn input_transform4 / input_transform4_at(
        padded: &[f32],
        grid: Grid,
        tile_rows: (usize, usize),
        rows: &mut Vec<f32>,
        v: &mut [f32],
        layout: VLayout,
    ) {
        let (ty0, ty1) = tile_rows;
        let (tw, pw) = (grid.tiles_x, grid.pw);
        let cin = padded.len() / grid.plane;
        // Six rows of combinations, then each split into its four column phases (phase k holds
        // columns 4j + k), so that tile j's six columns 4j .. 4j+5 are element j of phases 0..3
        // and element j + 1 of phases 0 and 1: every loop below runs along tiles at unit stride.
        let phase_len = tw + 1;
        rows.resize(6 * pw + 6 * 4 * phase_len, 0.0);
        let (combined, phases) = rows.split_at_mut(6 * pw);
        for c in 0..cin {
            let p = &padded[c * grid.plane..(c + 1) * grid.plane];
            for ty in ty0..ty1 {
                let at = (ty - ty0) * tw;
                let d = &p[4 * ty * pw..(4 * ty + 6) * pw];
                // Bᵀ d over whole padded rows, every column at once (rows cut to exactly `pw`, so
                // the loop runs without bounds checks).
                {
                    let [d0, d1, d2, d3, d4, d5]: [&[f32]; 6] = std::array::from_fn(|i| &d[i * pw..(i + 1) * pw]);
                    let mut out = combined.chunks_exact_mut(pw);
                    let mut next = || out.next().expect("six combination rows");
                    let (c0, c1, c2, c3, c4, c5) = (next(), next(), next(), next(), next(), next());
                    for x in 0..pw {
                        let t = bt6([d0[x], d1[x], d2[x], d3[x], d4[x], d5[x]]);
                        c0[x] = t[0];
                        c1[x] = t[1];
                        c2[x] = t[2];
                        c3[x] = t[3];
                        c4[x] = t[4];
                        c5[x] = t[5];
                    }
                }
                for (r, ph) in combined.chunks_exact(pw).zip(phases.chunks_exact_mut(4 * phase_len)) {
                    let mut out = ph.chunks_exact_mut(phase_len);
                    let mut next = || out.next().expect("four phases");
                    let (q0, q1, q2, q3) = (next(), next(), next(), next());
                    for (j, quad) in r[..4 * tw].chunks_exact(4).enumerate().take(tw) {
                        q0[j] = quad[0];
                        q1[j] = quad[1];
                        q2[j] = quad[2];
                        q3[j] = quad[3];
                    }
                    // pw = 4·tw + 2: the last two columns start phase 0 and 1's element tw.
                    q0[tw] = r[4 * tw];
                    q1[tw] = r[4 * tw + 1];
                }
                // (Bᵀ d) B: tile j's six values of each combination row i, along all tiles.
                for (i, ph) in phases.chunks_exact(4 * phase_len).enumerate() {
                    let (p0, rest) = ph.split_at(phase_len);
                    let (p1, rest) = rest.split_at(phase_len);
                    let (p2, p3) = rest.split_at(phase_len);
                    let mut rest = &mut v[(6 * i) * layout.point + c * layout.channel + at..];
                    let mut dsts: [&mut [f32]; 6] = Default::default();
                    for (q, dst) in dsts.iter_mut().enumerate() {
                        let (head, tail) = std::mem::take(&mut rest).split_at_mut(if q < 5 { layout.point } else { tw });
                        *dst = &mut head[..tw];
                        rest = tail;
                    }
                    let [d0, d1, d2, d3, d4, d5] = dsts;
                    // Every slice exactly `tw` long, so the loop runs without bounds checks.
                    let (p0, p1, p2, p3, p4, p5) = (&p0[..tw], &p1[..tw], &p2[..tw], &p3[..tw], &p0[1..=tw], &p1[1..=tw]);
                    for j in 0..tw {
                        let t = bt6([p0[j], p1[j], p2[j], p3[j], p4[j], p5[j]]);
                        d0[j] = t[0];
                        d1[j] = t[1];
                        d2[j] = t[2];
                        d3[j] = t[3];
                        d4[j] = t[4];
                        d5[j] = t[5];
                    }
                }
            }
        }
    }
}

/// Tiles [`output_transform4`] works on at once: one AVX-512 vector per value.
const TILE_LANES: usize = 16;

multiversion! {
    /// F(4×4, 3×3)'s `Y = Aᵀ M A` (+ bias) for the tiles of tile rows `ty0..ty1`, from `m`
    /// `[36, Cout, ld]`, into `outs`: for each output channel, its output rows of those tile rows.
    fn output_transform4 / output_transform4_at(
        m: &[f32],
        bias: Option<&[f32]>,
        grid: Grid,
        tile_rows: (usize, usize),
        outs: &mut [&mut [f32]],
        ld: usize,
    ) {
        const L: usize = TILE_LANES;
        let (ty0, ty1) = tile_rows;
        let (tw, w) = (grid.tiles_x, grid.w);
        let cout = outs.len();
        for (k, dst) in outs.iter_mut().enumerate() {
            let b = bias.map_or(0.0, |b| b[k]);
            for ty in ty0..ty1 {
                let at = (ty - ty0) * tw;
                let y0 = 4 * (ty - ty0);
                let out_rows = (grid.h - 4 * ty).min(4);
                for j0 in (0..tw).step_by(L) {
                    let n = (tw - j0).min(L);
                    // The 36 points of tiles j0 .. j0+n, each a vector along the tiles.
                    let mut p = [[0f32; L]; 36];
                    for (xi, point) in p.iter_mut().enumerate() {
                        let start = (xi * cout + k) * ld + at + j0;
                        if n == L {
                            // A fixed-size copy: vector moves, not a call to `memcpy`.
                            *point = m[start..start + L].try_into().expect("L values");
                        } else {
                            for (o, &value) in point.iter_mut().zip(&m[start..start + n]) {
                                *o = value;
                            }
                        }
                    }
                    // Aᵀ M: the 4×6 intermediate, one column of M at a time.
                    let mut t = [[[0f32; L]; 6]; 4];
                    for col in 0..6 {
                        for l in 0..L {
                            let r = at6([p[col][l], p[6 + col][l], p[12 + col][l], p[18 + col][l], p[24 + col][l], p[30 + col][l]]);
                            for (i, value) in r.into_iter().enumerate() {
                                t[i][col][l] = value;
                            }
                        }
                    }
                    for (i, t_i) in t.iter().enumerate().take(out_rows) {
                        // (Aᵀ M) A: four pixels from each row of six.
                        let mut y = [[0f32; L]; 4];
                        for l in 0..L {
                            let r = at6([t_i[0][l], t_i[1][l], t_i[2][l], t_i[3][l], t_i[4][l], t_i[5][l]]);
                            for (q, value) in r.into_iter().enumerate() {
                                y[q][l] = value + b;
                            }
                        }
                        let row = &mut dst[(y0 + i) * w..(y0 + i + 1) * w];
                        let x0 = 4 * j0;
                        let whole = n.min((w - x0) / 4);
                        for (l, px) in row[x0..x0 + 4 * whole].chunks_exact_mut(4).enumerate() {
                            px.copy_from_slice(&[y[0][l], y[1][l], y[2][l], y[3][l]]);
                        }
                        // A last tile cut short by the image's right edge.
                        for l in whole..n {
                            for (q, o) in row[x0 + 4 * l..].iter_mut().enumerate().take(4) {
                                *o = y[q][l];
                            }
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
        layout: VLayout,
    ) {
        let (ty0, ty1) = tile_rows;
        let (tw, pw) = (grid.tiles_x, grid.pw);
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
                    let point = |q: usize| (4 * i + q) * layout.point + c * layout.channel + at;
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
        ld: usize,
    ) {
        let (ty0, ty1) = tile_rows;
        let (tw, w) = (grid.tiles_x, grid.w);
        let cout = outs.len();
        let pairs = w / 2;
        for (k, dst) in outs.iter_mut().enumerate() {
            let b = bias.map_or(0.0, |b| b[k]);
            for ty in ty0..ty1 {
                let at = (ty - ty0) * tw;
                let p = |xi: usize| &m[(xi * cout + k) * ld + at..(xi * cout + k) * ld + at + tw];
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

/// Where [`input_transform`] and [`input_transform4`] write `V`: value (ξ, c, tile t) at
/// `ξ·point + c·channel + t`, tiles numbered row-major from the first tile row transformed.
#[derive(Clone, Copy)]
struct VLayout {
    point: usize,
    channel: usize,
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

/// How [`conv3x3_winograd_tiles`] splits its work between tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    /// Runs of tile rows, each task multiplying its tiles by every output channel's transformed
    /// weights, which are transformed once for all tasks: for large images, where the tiles
    /// outweigh the weights.
    Tiles,
    /// Blocks of output channels, each task transforming its own channels' weights and multiplying
    /// them by every tile, whose transform is shared: for small images, where the weights outweigh
    /// the tiles. The transformed weights never leave the task's cache, against the `Tiles`
    /// split's `points/9` of the weights written to memory and read back on every call.
    OutputChannels,
}

/// Output channels per task in [`Split::OutputChannels`], at most: enough rows for each product
/// that packing its `V_ξ` operand (shared by every block) is a small share of the work, few enough
/// that a task's transformed weights (`points·Cin` values per channel) stay near its core. Measured
/// on 2 threads at 16² × 1280 (batch 2, F(2×2)): 32 rows 105 ms, 64 48, 128 54, 192 49; at
/// 16² × 2560 → 1280: 157, 109, 90, 89 ms.
const BLOCK_CHANNELS: usize = 128;

/// The split for `shape`: by output channels when all the tiles' transform (`points·Cin·tiles`)
/// is no larger than the weights' (`points·Cin·Cout`). Measured on 2 threads, time by output
/// channels against by tiles: 16² × 1280 batch 2 (F(2×2), 128 tiles) 43–54 against 65–69 ms;
/// 32² × 640 batch 2 (F(4×4), 128 tiles) 33–36 against 50; but 64² × 320 batch 2 (F(4×4), 512
/// tiles) 50 against 37, and alike where tiles and channels are even (64² × 512 batch 1, F(4×4):
/// 49 against 46).
fn split_for(shape: ConvShape, grid: Grid) -> Split {
    let tiles = shape.batch * grid.tiles_y * grid.tiles_x;
    if tiles <= shape.out_channels {
        Split::OutputChannels
    } else {
        Split::Tiles
    }
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
    let split = split_for(shape, Grid::new(tile, shape.height, shape.width));
    conv3x3_winograd_split(tile, split, x, weight, bias, shape, out);
}

/// [`conv3x3_winograd_tiles`] with the work split `split`.
fn conv3x3_winograd_split(
    tile: WinogradTile,
    split: Split,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: ConvShape,
    out: &mut [f32],
) {
    let ConvShape {
        batch,
        in_channels: cin,
        height: h,
        width: w,
        ..
    } = shape;
    shape.check(x, weight, 9, bias, out);
    if out.is_empty() || cin == 0 {
        // No input channel: the bias alone, as the direct kernel writes it.
        super::conv3x3(x, weight, bias, shape, out);
        return;
    }
    let grid = Grid::new(tile, h, w);
    // Every image zero-padded: one row and column before, enough after for whole patches.
    let mut padded = super::memory::zeroed(batch * cin * grid.plane);
    padded
        .par_chunks_mut(grid.plane)
        .zip(x.par_chunks(h * w))
        .for_each(|(p, xc)| {
            for (y, src) in xc.chunks_exact(w).enumerate() {
                p[(y + 1) * grid.pw + 1..(y + 1) * grid.pw + 1 + w].copy_from_slice(src);
            }
        });
    let shared = SharedOut {
        ptr: out.as_mut_ptr(),
        len: out.len(),
    };
    match split {
        Split::Tiles => by_tiles(tile, grid, &padded, weight, bias, shape, &shared),
        Split::OutputChannels => by_output_channels(tile, grid, &padded, weight, bias, shape, &shared),
    }
}

/// `V = Bᵀ d B` of tile rows `tile_rows` of every channel of one padded image, by `tile`'s
/// transform, written to `v` as `layout` says; `rows` is scratch.
fn input_transform_tiles(
    tile: WinogradTile,
    image: &[f32],
    grid: Grid,
    tile_rows: (usize, usize),
    rows: &mut Vec<f32>,
    v: &mut [f32],
    layout: VLayout,
) {
    match tile {
        WinogradTile::F2 => input_transform(image, grid, tile_rows, rows, v, layout),
        WinogradTile::F4 => input_transform4(image, grid, tile_rows, rows, v, layout),
    }
}

/// `Y = Aᵀ M A` (+ bias) of tile rows `tile_rows` by `tile`'s transform, from `m`
/// (`[points, outs.len(), ld]`) into `outs`.
fn output_transform_tiles(
    tile: WinogradTile,
    m: &[f32],
    bias: Option<&[f32]>,
    grid: Grid,
    tile_rows: (usize, usize),
    outs: &mut [&mut [f32]],
    ld: usize,
) {
    match tile {
        WinogradTile::F2 => output_transform(m, bias, grid, tile_rows, outs, ld),
        WinogradTile::F4 => output_transform4(m, bias, grid, tile_rows, outs, ld),
    }
}

/// `M_ξ = U_ξ · V_ξ` for every point ξ < `points`: `[rows, Cin] · [Cin, cols]` into `m`
/// (`[points, rows, cols]`, its own buffer), where U_ξ's rows start at `u[ξ·Cin]` with row stride
/// `points·Cin`, and V_ξ's rows at `v[ξ·v_point]` with row stride `v_row`.
fn point_products(
    points: usize,
    (rows, cin, cols): (usize, usize, usize),
    u: &[f32],
    v: &[f32],
    (v_point, v_row): (usize, usize),
    m: &mut [f32],
) {
    assert!(u.len() >= rows * points * cin, "U is too short");
    assert!(
        points == 0 || v.len() >= (points - 1) * v_point + cin.saturating_sub(1) * v_row + cols,
        "V is too short"
    );
    assert!(m.len() >= points * rows * cols, "M is too short");
    for xi in 0..points {
        // SAFETY: U_ξ is read at ξ·Cin + o·P·Cin + c < rows·P·Cin ≤ u.len() for o < rows, c < Cin;
        // V_ξ at ξ·v_point + c·v_row + t ≤ (P−1)·v_point + (Cin−1)·v_row + cols − 1 < v.len(); M_ξ
        // is written at ξ·rows·cols + o·cols + t < P·rows·cols ≤ m.len() (all asserted above).
        // `m` is borrowed mutably, so it aliases neither input.
        unsafe {
            gemm(
                rows,
                cols,
                cin,
                m.as_mut_ptr().add(xi * rows * cols),
                1,
                cols as isize,
                false,
                u.as_ptr().add(xi * cin),
                1,
                (points * cin) as isize,
                v.as_ptr().add(xi * v_point),
                1,
                v_row as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    }
}

/// [`Split::Tiles`]: runs of whole tile rows, about [`CHUNK_TILES`] tiles each and enough tasks for
/// every thread; the weights transformed once, up front.
fn by_tiles(
    tile: WinogradTile,
    grid: Grid,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: ConvShape,
    shared: &SharedOut,
) {
    let ConvShape {
        batch,
        in_channels: cin,
        out_channels: cout,
        height: h,
        width: w,
    } = shape;
    let points = tile.points();
    let u = transform_weights(tile, weight, cout, cin);
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
    tasks.into_par_iter().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new()),
        |(v, m, rows): &mut (Vec<f32>, Vec<f32>, Vec<f32>), (b, ty0, ty1)| {
            let tb = (ty1 - ty0) * grid.tiles_x;
            v.resize(points * cin * tb, 0.0);
            m.resize(points * cout * tb, 0.0);
            let image = &padded[b * cin * grid.plane..(b + 1) * cin * grid.plane];
            let layout = VLayout {
                point: cin * tb,
                channel: tb,
            };
            input_transform_tiles(tile, image, grid, (ty0, ty1), rows, v, layout);
            point_products(points, (cout, cin, tb), &u, v, (cin * tb, tb), m);
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
            output_transform_tiles(tile, m, bias, grid, (ty0, ty1), &mut outs, tb);
        },
    );
}

/// [`Split::OutputChannels`]: every tile's input transform first (tasks over channels), then blocks
/// of [`BLOCK_CHANNELS`] output channels, each transforming its own weights.
fn by_output_channels(
    tile: WinogradTile,
    grid: Grid,
    padded: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    shape: ConvShape,
    shared: &SharedOut,
) {
    let ConvShape {
        batch,
        in_channels: cin,
        out_channels: cout,
        height: h,
        width: w,
    } = shape;
    let points = tile.points();
    let per_image = grid.tiles_y * grid.tiles_x;
    let tiles = batch * per_image;
    // V as [Cin, points, tiles]: each channel's values contiguous, so tasks over channels write
    // disjoint runs; V_ξ is then [Cin, tiles] with row stride points·tiles.
    let mut v = super::memory::zeroed(cin * points * tiles);
    let channels_per_task = cin.div_ceil(4 * rayon::current_num_threads().max(1)).max(1);
    v.par_chunks_mut(channels_per_task * points * tiles)
        .enumerate()
        .for_each_init(Vec::new, |rows, (task, v_task)| {
            let c0 = task * channels_per_task;
            let c1 = c0 + v_task.len() / (points * tiles);
            let layout = VLayout {
                point: tiles,
                channel: points * tiles,
            };
            for b in 0..batch {
                let image = &padded[(b * cin + c0) * grid.plane..(b * cin + c1) * grid.plane];
                input_transform_tiles(
                    tile,
                    image,
                    grid,
                    (0, grid.tiles_y),
                    rows,
                    &mut v_task[b * per_image..],
                    layout,
                );
            }
        });
    let v = &v;
    // About BLOCK_CHANNELS channels a block, as many blocks for each thread, whole vectors of rows.
    let threads = rayon::current_num_threads().max(1);
    let blocks = cout.div_ceil(BLOCK_CHANNELS).next_multiple_of(threads);
    let block_channels = cout.div_ceil(blocks).next_multiple_of(16);
    (0..cout.div_ceil(block_channels)).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(u, m): &mut (Vec<f32>, Vec<f32>), block| {
            let k0 = block * block_channels;
            let k1 = (k0 + block_channels).min(cout);
            let rows = k1 - k0;
            u.resize(rows * points * cin, 0.0);
            m.resize(points * rows * tiles, 0.0);
            for (u_k, w_k) in u
                .chunks_exact_mut(points * cin)
                .zip(weight[9 * cin * k0..9 * cin * k1].chunks_exact(9 * cin))
            {
                transform_channel(tile, w_k, u_k);
            }
            point_products(points, (rows, cin, tiles), u, v, (tiles, points * tiles), m);
            let bias = bias.map(|bias| &bias[k0..k1]);
            for b in 0..batch {
                let mut outs: Vec<&mut [f32]> = (k0..k1)
                    .map(|k| {
                        // SAFETY: channel k of image b lies inside `out` (checked by `rows`);
                        // tasks own disjoint channel blocks, and this task's slices are of
                        // distinct channels.
                        unsafe { shared.rows((b * cout + k) * h * w, h * w) }
                    })
                    .collect();
                output_transform_tiles(
                    tile,
                    &m[b * per_image..],
                    bias,
                    grid,
                    (0, grid.tiles_y),
                    &mut outs,
                    tiles,
                );
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

    /// The worst of max |winograd − candle| over max |candle| for random inputs of `shape`, with a
    /// bias, by `tile` with each split of the work.
    fn relative_diff(tile: WinogradTile, shape: ConvShape, seed: u64) -> f32 {
        let splits: [(WinogradTile, crate::kernels::conv::tests::Kernel); 4] = [
            (WinogradTile::F2, |x, w, b, s, o| {
                conv3x3_winograd_split(WinogradTile::F2, Split::Tiles, x, w, b, s, o);
            }),
            (WinogradTile::F2, |x, w, b, s, o| {
                conv3x3_winograd_split(WinogradTile::F2, Split::OutputChannels, x, w, b, s, o);
            }),
            (WinogradTile::F4, |x, w, b, s, o| {
                conv3x3_winograd_split(WinogradTile::F4, Split::Tiles, x, w, b, s, o);
            }),
            (WinogradTile::F4, |x, w, b, s, o| {
                conv3x3_winograd_split(WinogradTile::F4, Split::OutputChannels, x, w, b, s, o);
            }),
        ];
        splits
            .into_iter()
            .filter(|&(t, _)| t == tile)
            .map(|(_, kernel)| relative_diff_of(shape, seed, kernel))
            .fold(0f32, f32::max)
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
            shape(2, 37, 70, 9, 11), // output channel blocks cut short, weights with a ragged tail
        ]
        .into_iter()
        .enumerate()
        {
            let diff = relative_diff(WinogradTile::F2, s, 40 * i as u64);
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
            shape(2, 37, 70, 9, 11),   // output channel blocks cut short, weights with a ragged tail
        ]
        .into_iter()
        .enumerate()
        {
            let diff = relative_diff(WinogradTile::F4, s, 50 + i as u64);
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
        let layout = VLayout {
            point: cin * tiles,
            channel: tiles,
        };
        input_transform4_at(
            Level::Baseline,
            &padded,
            grid,
            all,
            &mut scratch,
            &mut reference,
            layout,
        );
        let m = values(&randn(10, &[36, cout, tiles], 0.0, 1.0));
        let pixels = grid.h * grid.w;
        let run_output = |level: Level| {
            let mut out = vec![f32::NAN; cout * pixels];
            let mut outs: Vec<&mut [f32]> = out.chunks_mut(pixels).collect();
            output_transform4_at(level, &m, Some(&[0.5, -1.0]), grid, all, &mut outs, tiles);
            out
        };
        let out_reference = run_output(Level::Baseline);
        assert!(out_reference.iter().all(|v| v.is_finite()), "every pixel written");
        for level in [Level::Avx2, Level::Avx512] {
            let mut v = vec![f32::NAN; reference.len()];
            input_transform4_at(level, &padded, grid, all, &mut scratch, &mut v, layout);
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
        let layout = VLayout {
            point: cin * tiles,
            channel: tiles,
        };
        input_transform_at(
            Level::Baseline,
            &padded,
            grid,
            (1, 4),
            &mut scratch,
            &mut reference,
            layout,
        );
        let m = values(&randn(8, &[POINTS, cout, tiles], 0.0, 1.0));
        let rows = grid.output_rows(1, 4).len() * grid.w;
        let run_output = |level: Level| {
            let mut out = vec![f32::NAN; cout * rows];
            let mut outs: Vec<&mut [f32]> = out.chunks_mut(rows).collect();
            output_transform_at(level, &m, Some(&[0.5, -1.0]), grid, (1, 4), &mut outs, tiles);
            out
        };
        let out_reference = run_output(Level::Baseline);
        assert!(out_reference.iter().all(|v| v.is_finite()), "every pixel written");
        for level in [Level::Avx2, Level::Avx512] {
            let mut v = vec![f32::NAN; reference.len()];
            input_transform_at(level, &padded, grid, (1, 4), &mut scratch, &mut v, layout);
            assert_eq!(v, reference, "{level:?}");
            assert_eq!(run_output(level), out_reference, "{level:?}");
        }
    }

    #[test]
    fn weight_transforms_agree_on_every_instruction_set() {
        // 37 input channels: two whole blocks of lanes and a tail of five.
        let cin = 37;
        let w_k = values(&randn(11, &[cin, 3, 3], 0.0, 1.0));
        for tile in [WinogradTile::F2, WinogradTile::F4] {
            let run = |level: Level| {
                let mut u_k = vec![f32::NAN; tile.points() * cin];
                transform_channel_at(level, tile, &w_k, &mut u_k);
                u_k
            };
            let reference = run(Level::Baseline);
            assert!(
                reference.iter().all(|v| v.is_finite()),
                "{tile:?}: every point written"
            );
            for level in [Level::Avx2, Level::Avx512] {
                assert_eq!(run(level), reference, "{tile:?} {level:?}");
            }
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
