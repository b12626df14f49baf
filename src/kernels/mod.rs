//! CPU hot paths owned by Easel: stride-1 convolutions without im2col (3×3 also by Winograd
//! F(2×2, 3×3) and F(4×4, 3×3)), 3×3 stride-2 convolutions, linear layers with the bias folded in, blocked attention,
//! fused GroupNorm(+SiLU), fused GEGLU, on f32 slices; and the allocator settings that let their
//! large buffers be reused instead of faulted in again on every step ([`memory`]).
//! The only module allowed `unsafe` (target-feature dispatch, `gemm` calls, glibc's
//! `mallopt`); `diffusion::ops` wires it in.
//!
//! Every kernel takes plain contiguous `f32` slices in the layout the networks already use (NCHW
//! activations, `[B, N, C]` tokens) and parallelises with rayon on the global pool (candle's).
//! Inner loops are written once as plain Rust and compiled for AVX-512, AVX2+FMA and the baseline
//! target (see [`simd`]); the one picked at run time depends on the CPU.

#![allow(unsafe_code)]

pub mod attention;
pub mod conv;
pub mod geglu;
pub mod group_norm;
pub mod linear;
pub mod memory;
pub mod simd;
pub mod winograd;

pub use attention::{AttentionShape, attention};
pub use conv::{ConvShape, conv1x1, conv3x3, conv3x3_stride2, stride2_output_size};
pub use geglu::geglu;
pub use group_norm::{GroupNormParams, GroupNormShape, group_norm};
pub use linear::linear;
pub use winograd::{WinogradTile, conv3x3_winograd, conv3x3_winograd_tiles};

#[cfg(test)]
pub(crate) mod testing {
    //! Deterministic random tensors for the kernel tests (candle cannot seed its CPU generator).

    use candle_core::{Device, Tensor};

    use crate::diffusion::rng::TorchCpuRng;

    /// Standard-normal values of shape `dims`, from `seed`, times `std` plus `mean`, on the CPU.
    pub fn randn(seed: u64, dims: &[usize], mean: f32, std: f32) -> Tensor {
        let mut data = vec![0f32; dims.iter().product()];
        TorchCpuRng::new(seed).randn_into(&mut data);
        for v in &mut data {
            *v = *v * std + mean;
        }
        Tensor::from_vec(data, dims, &Device::Cpu).expect("the data has the shape's element count")
    }

    /// A tensor's values, flattened.
    pub fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("a CPU f32 tensor")
    }
}
