//! Seeds and noise as A1111 draws them: one torch-compatible generator per image, the first draw is
//! the initial latent noise, later draws feed the ancestral samplers, and ENSD reseeds after draw 0.

use candle_core::{Device, Tensor};

use super::DiffusionError;
use super::model::SdModel;
use super::rng::{NoiseRng, NoiseSource as RngKind};
use super::sampler::NoiseSource;
use crate::params::{GenerationParams, RngSource};

/// The seeds of batch iteration `batch`, A1111 style: `seed + batch·size + i`.
pub fn batch_seeds(params: &GenerationParams, batch: usize) -> Vec<u64> {
    let size = params.batch_size as usize;
    (0..size)
        .map(|i| params.seed.wrapping_add((batch * size + i) as u64))
        .collect()
}

pub(crate) fn rng_kind(source: RngSource) -> RngKind {
    match source {
        RngSource::Cpu => RngKind::Cpu,
        // "GPU" means CUDA's torch.randn on the machines that make most infotexts; A1111's NV source imitates it.
        RngSource::Gpu | RngSource::Nv => RngKind::Nv,
    }
}

/// One generator per image, as A1111's `ImageRNG`; after the first draw ENSD reseeds them.
pub(crate) struct BatchNoise {
    kind: RngKind,
    seeds: Vec<u64>,
    rngs: Vec<NoiseRng>,
    ensd: u64,
    shape: (usize, usize, usize),
    device: Device,
    draws: usize,
}

impl BatchNoise {
    pub(crate) fn new(
        kind: RngKind,
        seeds: Vec<u64>,
        ensd: u64,
        shape: (usize, usize, usize),
        device: &Device,
    ) -> Self {
        let rngs = seeds.iter().map(|s| NoiseRng::new(kind, *s)).collect();
        Self {
            kind,
            seeds,
            rngs,
            ensd,
            shape,
            device: device.clone(),
            draws: 0,
        }
    }
}

impl BatchNoise {
    /// The image seeds, one per image of the batch.
    pub(crate) fn seeds(&self) -> &[u64] {
        &self.seeds
    }
}

impl NoiseSource for BatchNoise {
    fn next_noise(&mut self) -> Result<Tensor, DiffusionError> {
        let numel = self.shape.0 * self.shape.1 * self.shape.2;
        let per_image = self
            .rngs
            .iter_mut()
            .map(|r| Tensor::from_vec(r.randn(numel), self.shape, &self.device))
            .collect::<Result<Vec<_>, _>>()?;
        self.draws += 1;
        if self.draws == 1 && self.ensd != 0 {
            self.rngs = self
                .seeds
                .iter()
                .map(|s| NoiseRng::new(self.kind, s.wrapping_add(self.ensd)))
                .collect();
        }
        Ok(Tensor::stack(&per_image, 0)?)
    }
}

/// `(channels, height, width)` of one image's latents.
pub(crate) fn latent_shape(model: &SdModel, params: &GenerationParams) -> (usize, usize, usize) {
    let f = model.vae.downscale_factor();
    (
        model.geometry().vae.z_channels,
        params.height as usize / f,
        params.width as usize / f,
    )
}

/// Draw 0 of the image RNG for `seeds`, `[B, C, h, w]`.
pub fn first_noise(
    model: &SdModel,
    params: &GenerationParams,
    seeds: &[u64],
) -> Result<Tensor, DiffusionError> {
    let shape = latent_shape(model, params);
    BatchNoise::new(rng_kind(params.rng), seeds.to_vec(), 0, shape, &model.device).next_noise()
}
