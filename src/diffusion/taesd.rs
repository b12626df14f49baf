//! TAESD, the tiny autoencoder (madebyollin/taesd; diffusers `AutoencoderTiny`): a fast approximate
//! VAE for live previews at full resolution and an optional fast final decode or encode.
//!
//! Both are plain `nn.Sequential` stacks of 3×3 convolutions and residual `Block`s, so the network is
//! read off the file's keys: `decoder.layers.N.…` / `encoder.layers.N.…` (diffusers), or the bare
//! Sequential indices of the standalone `taesd_decoder.safetensors` / `taesd_encoder.safetensors`
//! (`1.weight`, `3.conv.0.weight`, …; the decoder's index 0 is the parameterless `Clamp`). The number
//! of levels, blocks and channels comes from the tensors, so tiny test geometries load too.
//!
//! Latents are the diffusion model's own (already × 0.18215: TAESD's scale factor is 1). The
//! decoder soft-clamps them with `tanh(x/3)·3` and returns pixels in [-1, 1] (diffusers'
//! convention; A1111 turns TAESD's [0, 1] output into [-1, 1] with `x·2 − 1` the same way). The
//! encoder takes pixels in [-1, 1] (it works on [0, 1] inside).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};

use super::DiffusionError;
use super::ops;
use crate::models::safetensors::SafetensorsFile;

pub use crate::models::registry::{
    find_taesd_decoder as find_decoder, find_taesd_encoder as find_encoder,
    missing_taesd_message as missing_message,
};

/// One layer of a TAESD `nn.Sequential` that Easel runs.
enum Layer {
    /// 3×3 convolution, optionally followed by ReLU.
    Conv { conv: Conv2d, relu: bool },
    /// Nearest-neighbour 2× upsampling (`nn.Upsample(scale_factor=2)`).
    Upsample,
    /// `relu(conv(relu(conv(relu(conv(x))))) + skip(x))`.
    Block(Block),
}

/// TAESD's residual block (`AutoencoderTinyBlock`).
struct Block {
    convs: [Conv2d; 3],
    skip: Option<Conv2d>,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = ops::conv2d(&self.convs[0], x)?.relu()?;
        let h = ops::conv2d(&self.convs[1], &h)?.relu()?;
        let h = ops::conv2d(&self.convs[2], &h)?;
        let skip = match &self.skip {
            Some(s) => ops::conv2d(s, x)?,
            None => x.clone(),
        };
        ops::add(&h, &skip)?.relu()
    }
}

fn run(layers: &[Layer], x: Tensor) -> candle_core::Result<Tensor> {
    let mut h = x;
    for layer in layers {
        h = match layer {
            Layer::Conv { conv, relu } => {
                let y = ops::conv2d(conv, &h)?;
                if *relu { y.relu()? } else { y }
            }
            Layer::Upsample => {
                let (_, _, hh, ww) = h.dims4()?;
                ops::layout(|| h.upsample_nearest2d(2 * hh, 2 * ww))?
            }
            Layer::Block(b) => b.forward(&h)?,
        };
    }
    Ok(h)
}

/// TAESD's decoder: latents `[B, C, h, w]` → pixels `[B, 3, f·h, f·w]` in about [-1, 1].
pub struct TinyDecoder {
    layers: Vec<Layer>,
    latent_channels: usize,
    upsamples: usize,
    dtype: DType,
}

/// TAESD's encoder: pixels `[B, 3, H, W]` in [-1, 1] → latents `[B, C, H/f, W/f]`.
pub struct TinyEncoder {
    layers: Vec<Layer>,
    latent_channels: usize,
    downsamples: usize,
    dtype: DType,
}

impl TinyDecoder {
    /// Loads the decoder from a standalone decoder file, a diffusers `AutoencoderTiny` weights file,
    /// or a diffusers folder, in `dtype` on `device`.
    ///
    /// # Errors
    /// A missing or unreadable file, a file that holds no TAESD decoder, or broken shapes.
    pub fn open(path: &Path, device: &Device, dtype: DType) -> Result<Self, DiffusionError> {
        let file = SafetensorsFile::open(&weights_file(path))?;
        let items = sequential(&file, Role::Decoder, device, dtype)?;
        let convs = items.iter().filter(|i| matches!(i, Item::Conv(..))).count();
        let mut layers = Vec::with_capacity(items.len() + convs);
        let mut seen = 0;
        for item in items {
            match item {
                Item::Conv(conv) => {
                    seen += 1;
                    // conv_in, ReLU; every later convolution but the last follows an upsample.
                    if seen > 1 && seen < convs {
                        layers.push(Layer::Upsample);
                    }
                    layers.push(Layer::Conv {
                        conv,
                        relu: seen == 1,
                    });
                }
                Item::Block(b) => layers.push(Layer::Block(b)),
            }
        }
        let first = first_conv_shape(&layers);
        Ok(Self {
            latent_channels: first.1,
            upsamples: convs.saturating_sub(2),
            layers,
            dtype,
        })
    }

    /// A full-size SD 1.x TAESD decoder (64 channels, blocks 3-3-3-1, 8×) with random weights, for `easel bench`.
    ///
    /// # Errors
    /// Tensor failures.
    pub fn random_sd(device: &Device, dtype: DType) -> Result<Self, DiffusionError> {
        let c = 64;
        let mut layers = vec![Layer::Conv {
            conv: random_conv(4, c, 1, true, device, dtype)?,
            relu: true,
        }];
        for (i, blocks) in [3, 3, 3, 1].into_iter().enumerate() {
            for _ in 0..blocks {
                layers.push(Layer::Block(random_block(c, device, dtype)?));
            }
            if i < 3 {
                layers.push(Layer::Upsample);
                layers.push(Layer::Conv {
                    conv: random_conv(c, c, 1, false, device, dtype)?,
                    relu: false,
                });
            }
        }
        layers.push(Layer::Conv {
            conv: random_conv(c, 3, 1, true, device, dtype)?,
            relu: false,
        });
        Ok(Self {
            layers,
            latent_channels: 4,
            upsamples: 3,
            dtype,
        })
    }

    /// Pixels per latent cell.
    pub fn upscale_factor(&self) -> usize {
        1 << self.upsamples
    }

    /// Latent channels it reads.
    pub fn latent_channels(&self) -> usize {
        self.latent_channels
    }

    /// Decodes diffusion latents (not divided by the VAE scale factor) to pixels in about [-1, 1], f32.
    ///
    /// # Errors
    /// A latent channel count the decoder was not made for; tensor failures.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor, DiffusionError> {
        let c = latents.dim(1)?;
        if c != self.latent_channels {
            return Err(DiffusionError::Input(format!(
                "the TAESD decoder reads {} latent channels but this model's latents have {c}; it belongs to another model family",
                self.latent_channels
            )));
        }
        let x = latents.to_dtype(self.dtype)?;
        // Clamp: tanh(x / 3) · 3.
        let x = ((x / 3.0)?.tanh()? * 3.0)?;
        let y = run(&self.layers, x)?;
        Ok(((y * 2.0)? - 1.0)?.to_dtype(DType::F32)?)
    }
}

impl TinyEncoder {
    /// Loads the encoder from a standalone encoder file, a diffusers `AutoencoderTiny` weights file,
    /// or a diffusers folder.
    ///
    /// # Errors
    /// A missing or unreadable file, a file that holds no TAESD encoder, or broken shapes.
    pub fn open(path: &Path, device: &Device, dtype: DType) -> Result<Self, DiffusionError> {
        let file = SafetensorsFile::open(&weights_file(path))?;
        let items = sequential(&file, Role::Encoder, device, dtype)?;
        let convs = items.iter().filter(|i| matches!(i, Item::Conv(..))).count();
        let mut layers = Vec::with_capacity(items.len());
        let mut seen = 0;
        for item in items {
            match item {
                Item::Conv(conv) => {
                    seen += 1;
                    // Every convolution but the first and the last is a stride-2 downsample.
                    let conv = if seen > 1 && seen < convs {
                        let cfg = Conv2dConfig {
                            padding: 1,
                            stride: 2,
                            ..Conv2dConfig::default()
                        };
                        Conv2d::new(conv.weight().clone(), conv.bias().cloned(), cfg)
                    } else {
                        conv
                    };
                    layers.push(Layer::Conv { conv, relu: false });
                }
                Item::Block(b) => layers.push(Layer::Block(b)),
            }
        }
        let last = last_conv_shape(&layers);
        Ok(Self {
            latent_channels: last.0,
            downsamples: convs.saturating_sub(2),
            layers,
            dtype,
        })
    }

    /// Pixels per latent cell.
    pub fn downscale_factor(&self) -> usize {
        1 << self.downsamples
    }

    /// Latent channels it writes.
    pub fn latent_channels(&self) -> usize {
        self.latent_channels
    }

    /// Encodes pixels in [-1, 1] to diffusion latents (already at the model's scale), f32.
    ///
    /// # Errors
    /// A size that is not a multiple of the downscale factor; tensor failures.
    pub fn encode(&self, pixels: &Tensor) -> Result<Tensor, DiffusionError> {
        let (_, _, h, w) = pixels.dims4()?;
        let f = self.downscale_factor();
        if !h.is_multiple_of(f) || !w.is_multiple_of(f) {
            return Err(DiffusionError::Input(format!(
                "TAESD encodes sizes that are multiples of {f}, not {w}x{h}"
            )));
        }
        let x = ((pixels.to_dtype(self.dtype)? + 1.0)? / 2.0)?;
        Ok(run(&self.layers, x)?.to_dtype(DType::F32)?)
    }
}

/// `path` itself, or the weights inside a diffusers folder.
fn weights_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        let fp32 = path.join("diffusion_pytorch_model.safetensors");
        if fp32.is_file() {
            return fp32;
        }
        let fp16 = path.join("diffusion_pytorch_model.fp16.safetensors");
        if fp16.is_file() {
            return fp16;
        }
        return fp32;
    }
    path.to_path_buf()
}

/// (out, in) channels of the first convolution.
fn first_conv_shape(layers: &[Layer]) -> (usize, usize) {
    layers
        .iter()
        .find_map(|l| match l {
            Layer::Conv { conv, .. } => conv.weight().dims4().ok().map(|d| (d.0, d.1)),
            _ => None,
        })
        .unwrap_or_default()
}

/// (out, in) channels of the last convolution.
fn last_conv_shape(layers: &[Layer]) -> (usize, usize) {
    layers
        .iter()
        .rev()
        .find_map(|l| match l {
            Layer::Conv { conv, .. } => conv.weight().dims4().ok().map(|d| (d.0, d.1)),
            _ => None,
        })
        .unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Decoder,
    Encoder,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Decoder => "decoder",
            Self::Encoder => "encoder",
        }
    }
}

/// A layer with weights, in Sequential order.
enum Item {
    Conv(Conv2d),
    Block(Block),
}

/// Reads the Sequential of `role` out of `file`: the parameterised layers in index order, checked
/// to be `conv, (block | conv)*, conv` with matching channels.
fn sequential(
    file: &SafetensorsFile,
    role: Role,
    device: &Device,
    dtype: DType,
) -> Result<Vec<Item>, DiffusionError> {
    let path = file.path().to_path_buf();
    let bad = |why: String| {
        DiffusionError::Input(format!(
            "{} is not a TAESD {}: {why}",
            path.display(),
            role.name()
        ))
    };
    // The layer index at the start of a key below `prefix`, and the rest of the key.
    let split = |key: &str, prefix: &str| -> Option<(usize, String)> {
        let rest = key.strip_prefix(prefix)?;
        let (n, tail) = rest.split_once('.')?;
        Some((n.parse().ok()?, tail.to_owned()))
    };
    let names: Vec<&String> = file.tensors().keys().collect();
    let prefixes: &[&str] = match role {
        Role::Decoder => &["decoder.layers.", "decoder.", ""],
        Role::Encoder => &["encoder.layers.", "encoder.", ""],
    };
    let Some(prefix) = prefixes
        .iter()
        .copied()
        .find(|p| names.iter().any(|k| split(k, p).is_some()))
    else {
        return Err(bad(
            "it holds no Sequential layer weights (`N.weight`, `N.conv.0.weight`)".into(),
        ));
    };
    let mut indices: Vec<usize> = names
        .iter()
        .filter_map(|k| split(k, prefix))
        .map(|(n, _)| n)
        .collect();
    indices.sort_unstable();
    indices.dedup();
    let load = |name: String| file.load(&name, dtype, device).map_err(DiffusionError::from);
    let has = |name: &str| file.entry(name).is_some();
    let conv3 = |key: String, bias: Option<String>| -> Result<Conv2d, DiffusionError> {
        let w = load(key.clone())?;
        let dims = w.dims();
        if dims.len() != 4 || dims[2] != 3 || dims[3] != 3 {
            return Err(bad(format!(
                "'{key}' has shape {dims:?}, expected a 3×3 convolution"
            )));
        }
        let b = bias.filter(|b| has(b)).map(load).transpose()?;
        Ok(Conv2d::new(
            w,
            b,
            Conv2dConfig {
                padding: 1,
                ..Conv2dConfig::default()
            },
        ))
    };
    let mut items = Vec::new();
    for n in indices {
        let p = format!("{prefix}{n}.");
        if has(&format!("{p}weight")) {
            items.push(Item::Conv(conv3(format!("{p}weight"), Some(format!("{p}bias")))?));
        } else if has(&format!("{p}conv.0.weight")) {
            let conv = |i: usize| conv3(format!("{p}conv.{i}.weight"), Some(format!("{p}conv.{i}.bias")));
            let skip = if has(&format!("{p}skip.weight")) {
                let w = load(format!("{p}skip.weight"))?;
                Some(Conv2d::new(w, None, Conv2dConfig::default()))
            } else {
                None
            };
            items.push(Item::Block(Block {
                convs: [conv(0)?, conv(2)?, conv(4)?],
                skip,
            }));
        } else {
            return Err(bad(format!(
                "layer {n} is neither a convolution nor a TAESD block"
            )));
        }
    }
    // Shape checks: a chain of convolutions whose channels meet.
    let mut channels: Option<usize> = None;
    let mut conv_count = 0;
    for item in &items {
        let (out, inp) = match item {
            Item::Conv(c) => {
                conv_count += 1;
                let d = c.weight().dims4()?;
                (d.0, d.1)
            }
            Item::Block(b) => {
                let d0 = b.convs[0].weight().dims4()?;
                let d2 = b.convs[2].weight().dims4()?;
                (d2.0, d0.1)
            }
        };
        if let Some(c) = channels
            && c != inp
        {
            return Err(bad(format!(
                "a layer reads {inp} channels after one that writes {c}"
            )));
        }
        channels = Some(out);
    }
    let first_is_conv = matches!(items.first(), Some(Item::Conv(_)));
    let last_is_conv = matches!(items.last(), Some(Item::Conv(_)));
    if conv_count < 2 || !first_is_conv || !last_is_conv {
        return Err(bad("it does not start and end with a convolution".into()));
    }
    let first_in = match &items[0] {
        Item::Conv(c) => c.weight().dims4()?.1,
        Item::Block(_) => 0,
    };
    let last_out = channels.unwrap_or_default();
    let looks = if first_in == 3 && last_out != 3 {
        Role::Encoder
    } else {
        Role::Decoder
    };
    if looks != role {
        return Err(bad(format!(
            "it looks like a TAESD {} (it reads {first_in} and writes {last_out} channels)",
            looks.name()
        )));
    }
    Ok(items)
}

fn random_conv(
    cin: usize,
    cout: usize,
    k: usize,
    bias: bool,
    device: &Device,
    dtype: DType,
) -> Result<Conv2d, DiffusionError> {
    let std = 1.0 / ((cin * k * k) as f32).sqrt();
    let w = Tensor::randn(0f32, std, (cout, cin, k, k), device)?.to_dtype(dtype)?;
    let b = bias.then(|| Tensor::zeros(cout, dtype, device)).transpose()?;
    let padding = k / 2;
    Ok(Conv2d::new(
        w,
        b,
        Conv2dConfig {
            padding,
            ..Conv2dConfig::default()
        },
    ))
}

fn random_block(c: usize, device: &Device, dtype: DType) -> Result<Block, DiffusionError> {
    Ok(Block {
        convs: [
            random_conv(c, c, 3, true, device, dtype)?,
            random_conv(c, c, 3, true, device, dtype)?,
            random_conv(c, c, 3, true, device, dtype)?,
        ],
        skip: None,
    })
}

/// RGB8 pixels of decoded images `[B, 3, H, W]` in [-1, 1], A1111's way: `clamp((x+1)/2)·255`, truncated.
///
/// # Errors
/// Tensor failures.
pub fn to_rgb8(pixels: &Tensor) -> Result<Vec<Vec<u8>>, DiffusionError> {
    let pixels = (((pixels.to_dtype(DType::F32)? + 1.0)? / 2.0)?.clamp(0f32, 1f32)? * 255.0)?;
    let (b, _, h, w) = pixels.dims4()?;
    let flat = pixels
        .permute((0, 2, 3, 1))?
        .contiguous()?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let per = h * w * 3;
    Ok((0..b)
        .map(|i| flat[i * per..(i + 1) * per].iter().map(|v| *v as u8).collect())
        .collect())
}

/// A full-resolution live preview of the first image of `latents` through `decoder`.
///
/// # Errors
/// Tensor failures or a latent channel mismatch.
pub fn preview(
    decoder: &TinyDecoder,
    latents: &Tensor,
) -> Result<crate::request::PreviewImage, DiffusionError> {
    let first = latents.narrow(0, 0, 1)?;
    let pixels = decoder.decode(&first)?;
    let (_, _, h, w) = pixels.dims4()?;
    let rgb = to_rgb8(&pixels)?.pop().unwrap_or_default();
    let mut rgba = Vec::with_capacity(h * w * 4);
    for px in rgb.chunks_exact(3) {
        rgba.extend_from_slice(&[px[0], px[1], px[2], 255]);
    }
    Ok(crate::request::PreviewImage {
        width: w,
        height: h,
        rgba,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_full_size_decoder_upscales_by_eight() {
        let dec = TinyDecoder::random_sd(&Device::Cpu, DType::F32).unwrap();
        assert_eq!((dec.upscale_factor(), dec.latent_channels()), (8, 4));
        let z = Tensor::zeros((1, 4, 2, 3), DType::F32, &Device::Cpu).unwrap();
        let p = preview(&dec, &z).unwrap();
        assert_eq!((p.width, p.height, p.rgba.len()), (24, 16, 24 * 16 * 4));
    }
}
