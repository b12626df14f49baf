//! Live previews: a per-family linear map from latent channels to RGB, costing a tiny fraction of a step.
//! The same approximation A1111 calls "Approx cheap"; full VAE decode happens only at the end.

use candle_core::{DType, Device, Tensor};

use super::DiffusionError;
use crate::request::PreviewImage;

/// SD 1.x latent → RGB factors (rows: latent channels, columns: R, G, B), fitted by the community
/// on VAE decodes and used by A1111's cheap approximation. Output is in about [-1, 1].
const SD1_LATENT_RGB: [[f32; 3]; 4] = [
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
];

/// Projects the first image of a latent batch `[B, 4, h, w]` to RGBA.
pub fn latent_preview(latents: &Tensor) -> Result<PreviewImage, DiffusionError> {
    let (_, c, h, w) = latents.dims4()?;
    if c != SD1_LATENT_RGB.len() {
        return Err(DiffusionError::Input(format!(
            "no preview factors for {c} latent channels"
        )));
    }
    let lat = latents
        .get(0)?
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let plane = h * w;
    let mut rgba = vec![255u8; plane * 4];
    for p in 0..plane {
        for (k, px) in rgba[p * 4..p * 4 + 3].iter_mut().enumerate() {
            let v: f32 = (0..c).map(|ch| lat[ch * plane + p] * SD1_LATENT_RGB[ch][k]).sum();
            *px = (v.midpoint(1.0).clamp(0.0, 1.0) * 255.0) as u8;
        }
    }
    Ok(PreviewImage {
        width: w,
        height: h,
        rgba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_channels() {
        let mut v = vec![0f32; 4 * 2 * 3];
        v[0] = 1.0; // channel 0, pixel 0
        let t = Tensor::from_vec(v, (1, 4, 2, 3), &Device::Cpu).unwrap();
        let p = latent_preview(&t).unwrap();
        assert_eq!((p.width, p.height, p.rgba.len()), (3, 2, 24));
        assert_eq!(&p.rgba[..4], &[172, 156, 168, 255]);
        assert_eq!(&p.rgba[4..8], &[127, 127, 127, 255]);
    }
}
