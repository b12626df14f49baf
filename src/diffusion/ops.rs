//! The ops the UNet and VAE are built from. Each times itself for `easel bench --profile`
//! ([`super::profile`]); convolutions, attention, GroupNorm and GEGLU run Easel's kernels on contiguous f32 CPU
//! tensors and candle's ops everywhere else (other devices, dtypes or layouts).

use candle_core::{D, DType, Module, Result, Storage, Tensor};
use candle_nn::{Conv2d, LayerNorm, Linear, VarBuilder};

use super::profile::{OpKind, time};
use crate::kernels;

/// Whether Easel's kernels run at all: `EASEL_KERNELS=off` (or `0`) sends every op to candle, to
/// compare speed in one build or to rule the kernels out when a result looks wrong. Read once.
pub fn kernels_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var("EASEL_KERNELS").map_or(true, |v| !matches!(v.trim(), "off" | "0" | "false"))
    })
}

/// Runs `f` on the values of `t` when it is a contiguous f32 tensor in CPU memory and the kernels
/// are enabled; `None` otherwise.
fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if t.dtype() != DType::F32 || !t.device().is_cpu() || !kernels_enabled() {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(cpu) => cpu.as_slice::<f32>().ok().map(|data| f(&data[start..end])),
        _ => None,
    }
}

/// Which Winograd algorithm, if any, a 3×3 convolution of `shape` runs by rather than directly:
/// none below [`WINOGRAD_MIN_PIXELS`] per image, F(4×4, 3×3) from [`WINOGRAD_F4_MIN_TILES`] of its
/// tiles over the batch, F(2×2, 3×3) between. `EASEL_WINOGRAD` (read once) overrides: `off` (or
/// `0`, `false`) keeps every convolution direct, `f2` never takes F(4×4), `f4` takes it wherever
/// Winograd runs.
fn winograd_for(shape: kernels::ConvShape) -> Option<kernels::WinogradTile> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Auto,
        Off,
        F2,
        F4,
    }
    static MODE: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();
    let mode = *MODE.get_or_init(
        || match std::env::var("EASEL_WINOGRAD").as_deref().map(str::trim) {
            Ok("off" | "0" | "false") => Mode::Off,
            Ok("f2" | "F2") => Mode::F2,
            Ok("f4" | "F4") => Mode::F4,
            _ => Mode::Auto,
        },
    );
    if mode == Mode::Off || shape.height * shape.width < WINOGRAD_MIN_PIXELS {
        return None;
    }
    let f4 = match mode {
        Mode::F4 => true,
        Mode::Auto => {
            shape.batch * shape.height.div_ceil(4) * shape.width.div_ceil(4) >= WINOGRAD_F4_MIN_TILES
        }
        Mode::F2 | Mode::Off => false,
    };
    Some(if f4 {
        kernels::WinogradTile::F4
    } else {
        kernels::WinogradTile::F2
    })
}

/// Fewest pixels per image for which 3×3 convolutions take a Winograd kernel. Measured on 2
/// threads, direct against F(2×2): 16² × 1280 batch 2 85 against 43–54 ms, batch 1 39 against 32;
/// but 8² × 1280 batch 2 21 against 23 ms, batch 1 13 against 21 (four tiles a side leave the
/// products too narrow to pay for transforming the weights).
const WINOGRAD_MIN_PIXELS: usize = 16 * 16;

/// Fewest F(4×4) tiles (4×4 output pixels each) over the whole batch for which F(4×4, 3×3)
/// replaces F(2×2, 3×3): it takes 36 products per tile against F(2×2)'s 4 × 16, but its weight
/// transform is 36/9 of the weights (16/9 for F(2×2)) and its products are a quarter as wide, so it
/// pays only when many tiles share them. Measured on 2 threads, F(4×4) against F(2×2): 32² × 640
/// batch 2 (128 tiles) 33–36 against 41–43 ms, 64² × 512 batch 1 (256) 46 against 61; but 32² ×
/// 640 batch 1 (64) 27 against 24, 16² × 1280 batch 2 (32) 57 against 48–54.
const WINOGRAD_F4_MIN_TILES: usize = 128;

/// A CPU tensor of `shape` holding `data`.
fn cpu_tensor(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &candle_core::Device::Cpu)
}

/// Attention score buffers larger than this are computed in slices over batch × heads.
pub const ATTENTION_SLICE_BYTES: usize = 512 << 20;

/// A convolution, timed as 1×1 or 3×3 by its kernel size; stride-1 "same" convolutions and 3×3
/// stride-2 ones (padding 0 or 1) of contiguous f32 CPU tensors run Easel's kernels, everything else
/// candle's.
pub fn conv2d(conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
    let kind = if conv.weight().dim(3)? == 1 {
        OpKind::Conv1x1
    } else {
        OpKind::Conv3x3
    };
    time(kind, || match conv_kernel(conv, x)? {
        Some(out) => Ok(out),
        None => conv.forward(x),
    })
}

/// How [`conv_kernel`] runs a convolution.
#[derive(Clone, Copy)]
enum ConvPath {
    /// 3×3, stride 1, padding 1, by Winograd or directly.
    Same3x3,
    /// 1×1, stride 1, padding 0.
    Pointwise,
    /// 3×3, stride 2, this padding (0 or 1).
    Stride2(usize),
}

/// Easel's convolution (3×3 stride 1 padding 1, 1×1 padding 0, 3×3 stride 2 padding 0 or 1) when
/// the input, weight and bias are contiguous f32 on the CPU; `None` for every other convolution,
/// device, dtype or layout.
fn conv_kernel(conv: &Conv2d, x: &Tensor) -> Result<Option<Tensor>> {
    let config = conv.config();
    let (cout, cin, kh, kw) = conv.weight().dims4()?;
    let Ok((batch, channels, height, width)) = x.dims4() else {
        return Ok(None);
    };
    if config.dilation != 1 || config.groups != 1 || channels != cin {
        return Ok(None);
    }
    let path = match (kh, kw, config.stride, config.padding) {
        (3, 3, 1, 1) => ConvPath::Same3x3,
        (1, 1, 1, 0) => ConvPath::Pointwise,
        (3, 3, 2, p @ (0 | 1)) => ConvPath::Stride2(p),
        _ => return Ok(None),
    };
    let (out_h, out_w) = match path {
        ConvPath::Stride2(p) => match kernels::stride2_output_size(height, width, p) {
            Some(size) => size,
            // Smaller than the kernel: candle says so.
            None => return Ok(None),
        },
        ConvPath::Same3x3 | ConvPath::Pointwise => (height, width),
    };
    let shape = kernels::ConvShape {
        batch,
        in_channels: cin,
        out_channels: cout,
        height,
        width,
    };
    let run = |xs: &[f32], ws: &[f32], bias: Option<&[f32]>| {
        let mut out = kernels::memory::zeroed(batch * cout * out_h * out_w);
        match path {
            ConvPath::Same3x3 => match winograd_for(shape) {
                Some(tile) => kernels::conv3x3_winograd_tiles(tile, xs, ws, bias, shape, &mut out),
                None => kernels::conv3x3(xs, ws, bias, shape, &mut out),
            },
            ConvPath::Pointwise => kernels::conv1x1(xs, ws, bias, shape, &mut out),
            ConvPath::Stride2(p) => kernels::conv3x3_stride2(xs, ws, bias, shape, p, &mut out),
        }
        out
    };
    let out = with_cpu_f32(x, |xs| {
        with_cpu_f32(conv.weight(), |ws| match conv.bias() {
            Some(bias) => with_cpu_f32(bias, |bs| run(xs, ws, Some(bs))),
            None => Some(run(xs, ws, None)),
        })
    });
    match out.flatten().flatten() {
        Some(out) => cpu_tensor(out, &[batch, cout, out_h, out_w]).map(Some),
        None => Ok(None),
    }
}

/// A linear layer: Easel's kernel (one product over every token, bias folded in) on contiguous f32
/// CPU tensors, candle's elsewhere.
pub fn linear(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    time(OpKind::Linear, || {
        let (outputs, inputs) = layer.weight().dims2()?;
        let rows = x.elem_count() / inputs.max(1);
        if x.rank() >= 2 && x.dim(D::Minus1)? == inputs && inputs > 0 {
            let out = with_cpu_f32(x, |xs| {
                with_cpu_f32(layer.weight(), |ws| {
                    let run = |bias: Option<&[f32]>| {
                        let mut out = kernels::memory::zeroed(rows * outputs);
                        kernels::linear(xs, ws, bias, rows, &mut out);
                        out
                    };
                    match layer.bias() {
                        Some(bias) => with_cpu_f32(bias, |bs| run(Some(bs))),
                        None => Some(run(None)),
                    }
                })
            });
            if let Some(out) = out.flatten().flatten() {
                let mut shape = x.dims().to_vec();
                shape.pop();
                shape.push(outputs);
                return cpu_tensor(out, &shape);
            }
        }
        layer.forward(x)
    })
}

/// A LayerNorm over the last dimension.
pub fn layer_norm(norm: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    time(OpKind::Norm, || norm.forward(x))
}

/// SiLU, `x · σ(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    time(OpKind::Elementwise, || candle_nn::ops::silu(x))
}

/// `a + b`, same shapes (residual connections).
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    time(OpKind::Elementwise, || a + b)
}

/// GEGLU with the exact (erf) GELU, as LDM's `GEGLU` calls `F.gelu`: `[.., 2n]` → `a · gelu(g)` `[.., n]`
/// where `a` is the first half of the last dimension and `g` the second.
pub fn geglu(proj: &Tensor) -> Result<Tensor> {
    time(OpKind::Elementwise, || {
        let full = proj.dim(D::Minus1)?;
        let half = full / 2;
        if full > 0 && full.is_multiple_of(2) {
            let fused = with_cpu_f32(proj, |p| {
                let mut out = kernels::memory::zeroed(p.len() / 2);
                kernels::geglu(p, &mut out, half);
                out
            });
            if let Some(out) = fused {
                let mut shape = proj.dims().to_vec();
                shape.pop();
                shape.push(half);
                return cpu_tensor(out, &shape);
            }
        }
        proj.narrow(D::Minus1, 0, half)? * proj.narrow(D::Minus1, half, half)?.gelu_erf()?
    })
}

/// Runs a pure data movement (transpose + copy, concatenation, upsampling, padding) under the layout timer.
pub fn layout(f: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    time(OpKind::Layout, f)
}

/// GroupNorm over NCHW (or any `[B, C, …]`) with an optional fused SiLU and per-channel shift.
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
    reference: candle_nn::GroupNorm,
}

impl GroupNorm {
    /// Loads `weight` and `bias` of `channels` from `vb` (candle-nn's names and init hints).
    pub fn new(vb: &VarBuilder<'_>, groups: usize, channels: usize, eps: f64) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.))?;
        let bias = vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.))?;
        Ok(Self {
            reference: candle_nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?,
            weight,
            bias,
            groups,
            eps,
        })
    }

    /// Normalises `x`, then applies SiLU when `silu` is set.
    pub fn forward(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        time(OpKind::Norm, || self.run(x, None, silu))
    }

    /// Normalises `x + shift` where `shift` is `[B, C]`, broadcast over space (the resnets' time
    /// embedding), then applies SiLU when `silu` is set.
    pub fn forward_shifted(&self, x: &Tensor, shift: &Tensor, silu: bool) -> Result<Tensor> {
        time(OpKind::Norm, || self.run(x, Some(shift), silu))
    }

    fn run(&self, x: &Tensor, shift: Option<&Tensor>, silu: bool) -> Result<Tensor> {
        if let Some(y) = self.kernel(x, shift, silu)? {
            return Ok(y);
        }
        let x = match shift {
            Some(s) => {
                let mut dims = s.dims().to_vec();
                dims.resize(x.rank(), 1);
                x.broadcast_add(&s.reshape(dims)?)?
            }
            None => x.clone(),
        };
        let y = self.reference.forward(&x)?;
        if silu { candle_nn::ops::silu(&y) } else { Ok(y) }
    }

    /// The fused kernel when every tensor is contiguous f32 on the CPU; `None` otherwise.
    fn kernel(&self, x: &Tensor, shift: Option<&Tensor>, silu: bool) -> Result<Option<Tensor>> {
        let dims = x.dims();
        if dims.len() < 3 || dims[1] != self.weight.elem_count() {
            return Ok(None);
        }
        let shape = kernels::GroupNormShape {
            batch: dims[0],
            channels: dims[1],
            spatial: dims[2..].iter().product(),
            groups: self.groups,
        };
        if shift.is_some_and(|s| s.elem_count() != shape.batch * shape.channels) {
            return Ok(None);
        }
        let out = with_cpu_f32(x, |x| {
            with_cpu_f32(&self.weight, |weight| {
                with_cpu_f32(&self.bias, |bias| {
                    let params = kernels::GroupNormParams {
                        weight,
                        bias,
                        eps: self.eps,
                        silu,
                    };
                    let run = |shift: Option<&[f32]>| {
                        let mut out = kernels::memory::zeroed(x.len());
                        kernels::group_norm(x, shift, &mut out, shape, params);
                        out
                    };
                    match shift {
                        Some(s) => with_cpu_f32(s, |s| run(Some(s))),
                        None => Some(run(None)),
                    }
                })
            })
        });
        match out.flatten().flatten().flatten() {
            Some(out) => cpu_tensor(out, dims).map(Some),
            None => Ok(None),
        }
    }
}

/// Peak bytes of score buffers one [`attention`] call holds for `rows` (batch × heads) of `queries`
/// against `keys`: the kernel's tiles for f32 on the CPU (no score matrix), candle's score slices
/// (at most [`ATTENTION_SLICE_BYTES`] unless one row is larger) everywhere else.
pub fn attention_scratch_bytes(rows: usize, queries: usize, keys: usize, dtype: DType, cpu: bool) -> u64 {
    if cpu && dtype == DType::F32 && kernels_enabled() {
        return kernels::attention::scratch_bytes() as u64;
    }
    let per_row = (queries * keys * dtype.size_in_bytes() * 2) as u64;
    per_row.max((per_row * rows as u64).min(ATTENTION_SLICE_BYTES as u64))
}

/// Multi-head attention core: `q` `[B, N, C]`, `k` and `v` `[B, M, C]` with `C = heads · d`
/// → `softmax(q kᵀ · scale) v` per head, merged back to `[B, N, C]`. Scores and softmax are f32.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    time(OpKind::Attention, || {
        match attention_kernel(q, k, v, heads, scale)? {
            Some(out) => Ok(out),
            None => attention_reference(q, k, v, heads, scale),
        }
    })
}

/// The blocked attention kernel when q, k and v are contiguous f32 on the CPU; `None` otherwise.
fn attention_kernel(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Option<Tensor>> {
    let (b, n, c) = q.dims3()?;
    let (bk, m, ck) = k.dims3()?;
    if heads == 0 || !c.is_multiple_of(heads) || m == 0 || (bk, ck) != (b, c) || v.dims() != k.dims() {
        return Ok(None); // let candle report (or handle) the odd shape
    }
    let shape = kernels::AttentionShape {
        batch: b,
        queries: n,
        keys: m,
        heads,
        head_dim: c / heads,
    };
    let out = with_cpu_f32(q, |q| {
        with_cpu_f32(k, |k| {
            with_cpu_f32(v, |v| {
                let mut out = kernels::memory::zeroed(q.len());
                kernels::attention(q, k, v, &mut out, shape, scale as f32);
                out
            })
        })
    });
    match out.flatten().flatten() {
        Some(out) => cpu_tensor(out, &[b, n, c]).map(Some),
        None => Ok(None),
    }
}

/// The attention core in candle ops, sliced over batch × heads so that no score buffer exceeds
/// [`ATTENTION_SLICE_BYTES`]; the reference the kernels are tested against.
pub fn attention_reference(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    let (b, n, c) = q.dims3()?;
    let head_dim = c / heads;
    let split = |t: &Tensor| -> Result<Tensor> {
        let (b, m, _) = t.dims3()?;
        t.reshape((b, m, heads, head_dim))?
            .transpose(1, 2)?
            .reshape((b * heads, m, head_dim))?
            .contiguous()
    };
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let m = k.dim(1)?;
    let rows = b * heads;
    let per_row = n * m * q.dtype().size_in_bytes() * 2;
    let slice = (ATTENTION_SLICE_BYTES / per_row.max(1)).clamp(1, rows);
    let kt = k.t()?;
    let mut outs = Vec::with_capacity(rows.div_ceil(slice));
    let mut start = 0;
    while start < rows {
        let len = slice.min(rows - start);
        let scores = (q.narrow(0, start, len)?.matmul(&kt.narrow(0, start, len)?)? * scale)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
        outs.push(probs.matmul(&v.narrow(0, start, len)?)?);
        start += len;
    }
    Tensor::cat(&outs, 0)?
        .reshape((b, heads, n, head_dim))?
        .transpose(1, 2)?
        .reshape((b, n, c))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;

    use super::*;
    use crate::kernels::testing::{randn, values};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        values(&a.to_dtype(DType::F32).unwrap())
            .iter()
            .zip(values(&b.to_dtype(DType::F32).unwrap()))
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    fn group_norm(channels: usize, dtype: DType) -> GroupNorm {
        let mut weights = std::collections::HashMap::new();
        weights.insert("weight".to_owned(), randn(1, &[channels], 1.0, 0.3));
        weights.insert("bias".to_owned(), randn(2, &[channels], 0.0, 0.3));
        let vb = VarBuilder::from_tensors(weights, dtype, &Device::Cpu);
        GroupNorm::new(&vb, 4, channels, 1e-5).unwrap()
    }

    #[test]
    fn group_norm_takes_the_kernel_or_candle_and_both_agree() {
        let x = randn(3, &[2, 8, 5, 6], 0.3, 1.5);
        let t = randn(4, &[2, 8], 0.0, 1.0);
        let fused = group_norm(8, DType::F32);
        let shifted = (&x + t.reshape((2, 8, 1, 1)).unwrap().broadcast_as(x.shape()).unwrap()).unwrap();
        let reference = candle_nn::ops::silu(&fused.reference.forward(&shifted).unwrap()).unwrap();
        // Contiguous f32: the kernel.
        let got = fused.forward_shifted(&x, &t, true).unwrap();
        assert!(max_diff(&got, &reference) < 1e-5);
        // A transposed view is not contiguous: candle's ops, same answer.
        let xt = x
            .transpose(2, 3)
            .unwrap()
            .contiguous()
            .unwrap()
            .transpose(2, 3)
            .unwrap();
        assert!(!xt.is_contiguous());
        let got = fused.forward_shifted(&xt, &t, true).unwrap();
        assert!(max_diff(&got, &reference) < 1e-5);
        // Another dtype: candle's ops.
        let wide = group_norm(8, DType::F64);
        let got = wide
            .forward_shifted(
                &x.to_dtype(DType::F64).unwrap(),
                &t.to_dtype(DType::F64).unwrap(),
                true,
            )
            .unwrap();
        assert_eq!(got.dtype(), DType::F64);
        assert!(max_diff(&got, &reference) < 1e-5);
    }

    #[test]
    fn attention_and_geglu_fall_back_outside_contiguous_f32() {
        let q = randn(5, &[2, 9, 12], 0.0, 1.0);
        let k = randn(6, &[2, 4, 12], 0.0, 1.0);
        let v = randn(7, &[2, 4, 12], 0.0, 1.0);
        let want = attention_reference(&q, &k, &v, 3, 0.5).unwrap();
        assert!(max_diff(&attention(&q, &k, &v, 3, 0.5).unwrap(), &want) < 1e-5);
        let as_f64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let wide = attention(&as_f64(&q), &as_f64(&k), &as_f64(&v), 3, 0.5).unwrap();
        assert_eq!(wide.dtype(), DType::F64);
        assert!(max_diff(&wide, &want) < 1e-5);

        let proj = randn(8, &[2, 3, 10], 0.0, 2.0);
        let want =
            (proj.narrow(2, 0, 5).unwrap() * proj.narrow(2, 5, 5).unwrap().gelu_erf().unwrap()).unwrap();
        let got = geglu(&proj).unwrap();
        assert_eq!(got.dims(), &[2, 3, 5]);
        assert!(max_diff(&got, &want) < 1e-5);
        let strided = proj.transpose(0, 1).unwrap();
        let got = geglu(&strided).unwrap();
        assert!(max_diff(&got, &want.transpose(0, 1).unwrap()) < 1e-5);
    }

    #[test]
    fn convolutions_take_the_kernel_or_candle_and_both_agree() {
        let x = randn(9, &[2, 6, 7, 5], 0.0, 1.0);
        for (k, padding, stride) in [(3, 1, 1), (1, 0, 1), (3, 1, 2), (3, 0, 1)] {
            let weight = randn(10, &[4, 6, k, k], 0.0, 0.3);
            let bias = randn(11, &[4], 0.0, 1.0);
            let config = candle_nn::Conv2dConfig {
                padding,
                stride,
                ..Default::default()
            };
            let conv = Conv2d::new(weight, Some(bias), config);
            let want = conv.forward(&x).unwrap();
            let taken = conv_kernel(&conv, &x).unwrap();
            assert_eq!(
                taken.is_some(),
                (stride == 1 && padding == k / 2) || (k == 3 && stride == 2),
                "k {k} padding {padding} stride {stride}"
            );
            assert!(max_diff(&conv2d(&conv, &x).unwrap(), &want) < 1e-5);
            // A non-contiguous input and an f64 input go to candle, same answer.
            let xt = x
                .transpose(2, 3)
                .unwrap()
                .contiguous()
                .unwrap()
                .transpose(2, 3)
                .unwrap();
            assert!(conv_kernel(&conv, &xt).unwrap().is_none());
            assert!(max_diff(&conv2d(&conv, &xt).unwrap(), &want) < 1e-5);
        }
        let wide = Conv2d::new(
            randn(12, &[4, 6, 3, 3], 0.0, 0.3).to_dtype(DType::F64).unwrap(),
            None,
            candle_nn::Conv2dConfig {
                padding: 1,
                ..Default::default()
            },
        );
        let got = conv2d(&wide, &x.to_dtype(DType::F64).unwrap()).unwrap();
        assert_eq!(got.dtype(), DType::F64);
    }

    #[test]
    fn large_3x3_convolutions_take_winograd_and_agree_with_the_direct_kernel() {
        // 33 × 32 pixels, batch 1: 72 F(4×4) tiles, so F(2×2), with an odd side (a half tile row).
        let shape = kernels::ConvShape {
            batch: 1,
            in_channels: 5,
            out_channels: 3,
            height: 33,
            width: 32,
        };
        assert_eq!(
            winograd_for(shape),
            Some(kernels::WinogradTile::F2),
            "F(2×2) takes this size"
        );
        let at = |batch, side| kernels::ConvShape {
            batch,
            height: side,
            width: side,
            ..shape
        };
        assert_eq!(winograd_for(at(2, 8)), None);
        assert_eq!(winograd_for(at(2, 15)), None);
        assert_eq!(winograd_for(at(2, 16)), Some(kernels::WinogradTile::F2));
        assert_eq!(winograd_for(at(2, 32)), Some(kernels::WinogradTile::F4));
        assert_eq!(winograd_for(at(1, 32)), Some(kernels::WinogradTile::F2));
        assert_eq!(winograd_for(at(1, 48)), Some(kernels::WinogradTile::F4));
        // F(2×2) at 33 × 32, F(4×4) at 64 × 65 (a ragged tile column).
        for (i, s) in [
            shape,
            kernels::ConvShape {
                height: 64,
                width: 65,
                ..shape
            },
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 13 + 3 * i as u64;
            let x = randn(seed, &[s.batch, 5, s.height, s.width], 0.0, 1.0);
            let conv = Conv2d::new(
                randn(seed + 1, &[3, 5, 3, 3], 0.0, 0.3),
                Some(randn(seed + 2, &[3], 0.0, 1.0)),
                candle_nn::Conv2dConfig {
                    padding: 1,
                    ..Default::default()
                },
            );
            let want = conv.forward(&x).unwrap();
            let (xs, ws, bs) = (
                x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                conv.weight().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                conv.bias().unwrap().to_vec1::<f32>().unwrap(),
            );
            let mut direct = vec![0f32; want.elem_count()];
            kernels::conv3x3(&xs, &ws, Some(&bs), s, &mut direct);
            let direct = Tensor::from_vec(direct, want.shape(), &candle_core::Device::Cpu).unwrap();
            let taken = conv2d(&conv, &x).unwrap();
            // F(4×4)'s transforms round about ten times more than F(2×2)'s: bound it relative to
            // the output's scale.
            let peak = values(&want).iter().fold(0f32, |m, v| m.max(v.abs()));
            let tolerance = if i == 0 { 1e-5 } else { 2e-5 * peak };
            assert!(max_diff(&taken, &want) < tolerance, "{s:?}");
            assert!(max_diff(&taken, &direct) < tolerance, "{s:?}");
        }
    }

    #[test]
    fn linear_takes_the_kernel_for_any_leading_dimensions() {
        let layer = Linear::new(randn(13, &[6, 5], 0.0, 0.3), Some(randn(14, &[6], 0.0, 1.0)));
        for dims in [&[7, 5][..], &[2, 3, 5], &[2, 2, 3, 5]] {
            let x = randn(15, dims, 0.0, 1.0);
            let got = linear(&layer, &x).unwrap();
            assert_eq!(got.dims().last(), Some(&6));
            assert!(max_diff(&got, &layer.forward(&x).unwrap()) < 1e-5);
            let wide = linear(&layer, &x.to_dtype(DType::F64).unwrap());
            assert!(
                wide.is_err(),
                "candle refuses mixed dtypes; the kernel must not hide that"
            );
        }
    }
}
