//! ControlNet files: the LDM layout the extension loads (`control_v11*_sd15_*.safetensors`, with or
//! without the `control_model.` prefix, f16 or f32) and diffusers `ControlNetModel` folders.
//! The geometry comes from the tensor shapes (a `.yaml` beside the file may give the attention
//! heads); SDXL, SD 2.x and other control files are recognised and named, not run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use yaml_rust2::{Yaml, YamlLoader};

use super::ModelError;
use super::config::UnetGeometry;
use super::keymap;
use super::loader::{ErrorSlot, KeyFn, mapped_var_builder};
use super::safetensors::SafetensorsFile;

/// The prefix the extension's full ControlNet files carry.
pub const LDM_CONTROL_PREFIX: &str = "control_model.";

/// Geometry of a ControlNet: the UNet encoder it copies plus its hint embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlGeometry {
    /// The encoder's geometry (the up half is unused).
    pub unet: UnetGeometry,
    /// Channels of the control image (3; 4 for a few experimental models).
    pub hint_channels: usize,
    /// Widths of the hint embedding's levels (SD 1.5: 16, 32, 96, 256); every level after the first
    /// halves the size, so the hint is `2^(levels−1)` times the latent size.
    pub hint_levels: Vec<usize>,
}

impl ControlGeometry {
    /// How many times larger than the latents the control image must be.
    pub fn hint_scale(&self) -> usize {
        1 << self.hint_levels.len().saturating_sub(1)
    }

    /// Number of residuals the network gives (skips + middle).
    pub fn residual_count(&self) -> usize {
        let levels = self.unet.channel_mult.len();
        1 + levels * self.unet.num_res_blocks + levels.saturating_sub(1) + 1
    }
}

enum Layout {
    /// LDM names under a prefix ("" or `control_model.`).
    Ldm(String),
    /// diffusers names.
    Diffusers,
}

/// An opened ControlNet file or folder.
pub struct ControlNetFile {
    path: PathBuf,
    file: Arc<SafetensorsFile>,
    layout: Layout,
    /// Its geometry.
    pub geometry: ControlGeometry,
}

impl std::fmt::Debug for ControlNetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlNetFile")
            .field("path", &self.path)
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

fn config_err(path: &Path, why: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn unsupported(path: &Path, what: &str) -> ModelError {
    ModelError::UnsupportedFamily {
        path: path.to_path_buf(),
        what: format!(
            "this is {what}; Easel {} runs ControlNets for SD 1.x",
            env!("CARGO_PKG_VERSION")
        ),
    }
}

/// The extension's model list entry: the file stem (a folder's name) and A1111's old short hash.
pub fn list_label(path: &Path) -> String {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let weights = if path.is_dir() {
        path.join("diffusion_pytorch_model.safetensors")
    } else {
        path.to_path_buf()
    };
    let hash = super::hash::old_model_hash(&weights).unwrap_or_else(|_| "NOFILE".into());
    format!("{name} [{hash}]")
}

/// Whether a single file's tensor names are a ControlNet's (either layout).
pub fn looks_like_controlnet(file: &SafetensorsFile) -> bool {
    let t = file.tensors();
    [
        "control_model.input_hint_block.0.weight",
        "input_hint_block.0.weight",
        "controlnet_cond_embedding.conv_in.weight",
    ]
    .iter()
    .any(|k| t.contains_key(*k))
}

impl ControlNetFile {
    /// Opens a `.safetensors` ControlNet (LDM or diffusers names) or a diffusers folder.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::NotFound {
                path: path.to_path_buf(),
            });
        }
        super::family::check_extension(path)?;
        if path.is_dir() {
            return Self::open_folder(path);
        }
        let file = SafetensorsFile::open(path)?;
        let tensors = file.tensors();
        if tensors
            .keys()
            .any(|k| k.starts_with("controlnet_cond_embedding."))
        {
            let geometry = from_diffusers_names(path, &file)?;
            return Ok(Self {
                path: path.to_path_buf(),
                file: Arc::new(file),
                layout: Layout::Diffusers,
                geometry,
            });
        }
        let prefix = if tensors.contains_key("control_model.input_hint_block.0.weight") {
            LDM_CONTROL_PREFIX
        } else if tensors.contains_key("input_hint_block.0.weight") {
            ""
        } else {
            return Err(not_a_controlnet(path, &file));
        };
        let mut geometry = from_ldm_shapes(path, &file, prefix)?;
        apply_yaml(path, &mut geometry)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Arc::new(file),
            layout: Layout::Ldm(prefix.to_owned()),
            geometry,
        })
    }

    fn open_folder(dir: &Path) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(config_err(dir, "a diffusers ControlNet folder needs config.json"));
        }
        let cfg = super::diffusers::read_json(&config_path)?;
        let class = cfg["_class_name"].as_str().unwrap_or_default();
        if class != "ControlNetModel" {
            return Err(config_err(
                &config_path,
                format!("_class_name is {class:?}, not ControlNetModel"),
            ));
        }
        let weights = [
            "diffusion_pytorch_model.safetensors",
            "diffusion_pytorch_model.fp16.safetensors",
        ]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            if dir.join("diffusion_pytorch_model.bin").is_file() {
                ModelError::Pickle {
                    path: dir.join("diffusion_pytorch_model.bin"),
                }
            } else {
                config_err(dir, "no diffusion_pytorch_model.safetensors in the folder")
            }
        })?;
        let file = SafetensorsFile::open(&weights)?;
        let mut geometry = from_diffusers_names(&weights, &file)?;
        // The config names the heads, which shapes cannot.
        let usize_of = |v: &serde_json::Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
        let levels = geometry.unet.channel_mult.len();
        let heads = if let Some(n) = cfg.get("num_attention_heads").and_then(usize_of) {
            vec![n; levels]
        } else {
            match &cfg["attention_head_dim"] {
                serde_json::Value::Array(a) => a.iter().filter_map(usize_of).collect(),
                v => usize_of(v).map_or_else(Vec::new, |n| vec![n; levels]),
            }
        };
        if heads.len() != levels || heads.contains(&0) {
            return Err(config_err(
                &config_path,
                "attention_head_dim is missing or does not match the levels",
            ));
        }
        geometry.unet.heads = heads;
        Ok(Self {
            path: dir.to_path_buf(),
            file: Arc::new(file),
            layout: Layout::Diffusers,
            geometry,
        })
    }

    /// The file or folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A `VarBuilder` in diffusers `ControlNetModel` names.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> (VarBuilder<'static>, ErrorSlot) {
        let key: KeyFn = match &self.layout {
            Layout::Diffusers => Arc::new(|n: &str| Some(n.to_owned())),
            Layout::Ldm(prefix) => {
                let g = self.geometry.clone();
                let prefix = prefix.clone();
                Arc::new(move |n: &str| control_key(n, &g).map(|k| format!("{prefix}{k}")))
            }
        };
        mapped_var_builder(self.file.clone(), key, dtype, device)
    }
}

/// The LDM name (without prefix) of a diffusers `ControlNetModel` parameter.
pub fn control_key(name: &str, g: &ControlGeometry) -> Option<String> {
    if let Some(rest) = name.strip_prefix("controlnet_cond_embedding.") {
        let (stem, leaf) = rest.rsplit_once('.')?;
        let index = if stem == "conv_in" {
            0
        } else if stem == "conv_out" {
            2 * (2 * (g.hint_levels.len() - 1) + 1)
        } else {
            2 * (stem.strip_prefix("blocks.")?.parse::<usize>().ok()? + 1)
        };
        return Some(format!("input_hint_block.{index}.{leaf}"));
    }
    if let Some(rest) = name.strip_prefix("controlnet_down_blocks.") {
        let (i, leaf) = rest.split_once('.')?;
        return Some(format!("zero_convs.{i}.0.{leaf}"));
    }
    if let Some(leaf) = name.strip_prefix("controlnet_mid_block.") {
        return Some(format!("middle_block_out.0.{leaf}"));
    }
    keymap::unet_key(name, &g.unet)?
        .strip_prefix(keymap::LDM_UNET_PREFIX)
        .map(str::to_owned)
}

fn not_a_controlnet(path: &Path, file: &SafetensorsFile) -> ModelError {
    let t = file.tensors();
    let any = |p: &str| t.keys().any(|k| k.contains(p));
    if any("lora_controlnet") || any(".lora_up.") {
        return unsupported(path, "a Control-LoRA");
    }
    if any("adapter.") || any("body.0.") {
        return unsupported(path, "a T2I-Adapter, not a ControlNet");
    }
    let family = super::family::detect_single_file(file);
    ModelError::UnsupportedFamily {
        path: path.to_path_buf(),
        what: format!(
            "this file is not a ControlNet (no input_hint_block / controlnet_cond_embedding tensors; it looks like: {})",
            family.label()
        ),
    }
}

/// Rejects what Easel does not run, by the shapes: SDXL (class embedding, 2048-wide context) and
/// SD 2.x (1024-wide context) ControlNets.
fn check_family(path: &Path, file: &SafetensorsFile, context_dim: usize) -> Result<(), ModelError> {
    let t = file.tensors();
    if t.keys()
        .any(|k| k.contains("label_emb") || k.contains("add_embedding"))
        || context_dim == 2048
    {
        return Err(unsupported(path, "an SDXL ControlNet"));
    }
    if context_dim == 1024 {
        return Err(unsupported(path, "an SD 2.x ControlNet"));
    }
    Ok(())
}

fn shape_of(file: &SafetensorsFile, key: &str) -> Option<Vec<usize>> {
    file.entry(key).map(|e| e.shape.clone())
}

/// The hint embedding's channels and level widths from its convolutions' shapes (`name(i)` is the
/// i-th convolution's weight key: conv_in, the block pairs, conv_out).
fn hint_geometry(
    path: &Path,
    file: &SafetensorsFile,
    name: &dyn Fn(usize) -> String,
    model_channels: usize,
) -> Result<(usize, Vec<usize>), ModelError> {
    let mut shapes = Vec::new();
    while let Some(s) = shape_of(file, &name(shapes.len())) {
        if s.len() != 4 {
            return Err(config_err(
                path,
                format!("{} has shape {s:?}", name(shapes.len())),
            ));
        }
        shapes.push(s);
        if shapes.len() > 64 {
            break;
        }
    }
    if shapes.len() < 2 || shapes.len() % 2 != 0 {
        return Err(config_err(
            path,
            format!(
                "the hint embedding has {} convolutions; expected an even number ≥ 2",
                shapes.len()
            ),
        ));
    }
    let hint_channels = shapes[0][1];
    let levels: Vec<usize> = shapes[..shapes.len() - 1]
        .iter()
        .step_by(2)
        .map(|s| s[0])
        .collect();
    let out = shapes[shapes.len() - 1][0];
    if out != model_channels {
        return Err(config_err(
            path,
            format!("the hint embedding gives {out} channels, the encoder starts with {model_channels}"),
        ));
    }
    Ok((hint_channels, levels))
}

/// Geometry of an LDM-layout ControlNet from its shapes.
fn from_ldm_shapes(path: &Path, file: &SafetensorsFile, prefix: &str) -> Result<ControlGeometry, ModelError> {
    let key = |k: &str| format!("{prefix}{k}");
    let conv_in = shape_of(file, &key("input_blocks.0.0.weight"))
        .ok_or_else(|| config_err(path, format!("missing {}", key("input_blocks.0.0.weight"))))?;
    if conv_in.len() != 4 {
        return Err(config_err(
            path,
            format!("input_blocks.0.0.weight has shape {conv_in:?}"),
        ));
    }
    let (mc, in_channels) = (conv_in[0], conv_in[1]);
    // Walk the input blocks: resnets (with an optional transformer) until a downsampler ends a level.
    let mut levels: Vec<(Vec<usize>, bool)> = vec![(Vec::new(), false)];
    let mut context_dim = None;
    let mut depth = 0;
    let mut linear_proj = false;
    for k in 1..256 {
        if file
            .entry(&key(&format!("input_blocks.{k}.0.op.weight")))
            .is_some()
        {
            levels.push((Vec::new(), false));
            continue;
        }
        let Some(res) = shape_of(file, &key(&format!("input_blocks.{k}.0.in_layers.2.weight"))) else {
            break;
        };
        let level = levels.last_mut().unwrap_or_else(|| unreachable!());
        level.0.push(res[0]);
        if let Some(p) = shape_of(file, &key(&format!("input_blocks.{k}.1.proj_in.weight"))) {
            level.1 = true;
            linear_proj = p.len() == 2;
            if context_dim.is_none() {
                context_dim = shape_of(
                    file,
                    &key(&format!(
                        "input_blocks.{k}.1.transformer_blocks.0.attn2.to_k.weight"
                    )),
                )
                .and_then(|s| s.get(1).copied());
                depth = (0..64)
                    .take_while(|d| {
                        file.entry(&key(&format!(
                            "input_blocks.{k}.1.transformer_blocks.{d}.attn1.to_q.weight"
                        )))
                        .is_some()
                    })
                    .count();
            }
        }
    }
    let context_dim =
        context_dim.ok_or_else(|| config_err(path, "no cross-attention found in the encoder"))?;
    check_family(path, file, context_dim)?;
    let num_res_blocks = levels[0].0.len();
    if num_res_blocks == 0 || levels.iter().any(|(r, _)| r.len() != num_res_blocks) {
        return Err(config_err(
            path,
            "the encoder's levels have different numbers of resnets",
        ));
    }
    let channel_mult: Vec<usize> = levels.iter().map(|(r, _)| r[0] / mc).collect();
    let (hint_channels, hint_levels) = hint_geometry(
        path,
        file,
        &|i| key(&format!("input_hint_block.{}.weight", 2 * i)),
        mc,
    )?;
    let zero_convs = (0..256)
        .take_while(|i| file.entry(&key(&format!("zero_convs.{i}.0.weight"))).is_some())
        .count();
    let n = channel_mult.len();
    let g = ControlGeometry {
        unet: UnetGeometry {
            in_channels,
            out_channels: 4,
            model_channels: mc,
            channel_mult,
            num_res_blocks,
            attention_levels: levels.iter().map(|(_, a)| *a).collect(),
            // SD 1.x: 8 heads everywhere; a `.yaml` beside the file may say otherwise.
            heads: vec![8; n],
            transformer_depth: depth.max(1),
            context_dim,
            use_linear_projection: linear_proj,
        },
        hint_channels,
        hint_levels,
    };
    if zero_convs + 1 != g.residual_count() {
        return Err(config_err(
            path,
            format!(
                "{zero_convs} zero convolutions for an encoder with {} skips",
                g.residual_count() - 1
            ),
        ));
    }
    Ok(g)
}

/// Geometry of a diffusers-named ControlNet from its shapes (heads come from the folder's config).
fn from_diffusers_names(path: &Path, file: &SafetensorsFile) -> Result<ControlGeometry, ModelError> {
    let conv_in =
        shape_of(file, "conv_in.weight").ok_or_else(|| config_err(path, "missing conv_in.weight"))?;
    if conv_in.len() != 4 {
        return Err(config_err(path, format!("conv_in.weight has shape {conv_in:?}")));
    }
    let mc = conv_in[0];
    let mut channel_mult = Vec::new();
    let mut attention_levels = Vec::new();
    let mut num_res_blocks = 0;
    let mut context_dim = None;
    let mut linear_proj = false;
    let mut depth = 1;
    for i in 0..64 {
        let Some(res) = shape_of(file, &format!("down_blocks.{i}.resnets.0.conv1.weight")) else {
            break;
        };
        channel_mult.push(res[0] / mc);
        let count = (0..64)
            .take_while(|j| {
                file.entry(&format!("down_blocks.{i}.resnets.{j}.conv1.weight"))
                    .is_some()
            })
            .count();
        if i == 0 {
            num_res_blocks = count;
        } else if count != num_res_blocks {
            return Err(config_err(
                path,
                "the encoder's levels have different numbers of resnets",
            ));
        }
        let attn = format!("down_blocks.{i}.attentions.0");
        let has_attn = file.entry(&format!("{attn}.proj_in.weight")).is_some();
        attention_levels.push(has_attn);
        if has_attn && context_dim.is_none() {
            linear_proj = shape_of(file, &format!("{attn}.proj_in.weight")).is_some_and(|s| s.len() == 2);
            context_dim = shape_of(file, &format!("{attn}.transformer_blocks.0.attn2.to_k.weight"))
                .and_then(|s| s.get(1).copied());
            depth = (0..64)
                .take_while(|d| {
                    file.entry(&format!("{attn}.transformer_blocks.{d}.attn1.to_q.weight"))
                        .is_some()
                })
                .count()
                .max(1);
        }
    }
    let context_dim =
        context_dim.ok_or_else(|| config_err(path, "no cross-attention found in the encoder"))?;
    check_family(path, file, context_dim)?;
    if channel_mult.is_empty() || num_res_blocks == 0 {
        return Err(config_err(path, "no down blocks found"));
    }
    let (hint_channels, hint_levels) = hint_geometry_diffusers(path, file, mc)?;
    let n = channel_mult.len();
    Ok(ControlGeometry {
        unet: UnetGeometry {
            in_channels: conv_in[1],
            out_channels: 4,
            model_channels: mc,
            channel_mult,
            num_res_blocks,
            attention_levels,
            heads: vec![8; n],
            transformer_depth: depth,
            context_dim,
            use_linear_projection: linear_proj,
        },
        hint_channels,
        hint_levels,
    })
}

/// The diffusers hint embedding: conv_in, `blocks.*`, conv_out.
fn hint_geometry_diffusers(
    path: &Path,
    file: &SafetensorsFile,
    mc: usize,
) -> Result<(usize, Vec<usize>), ModelError> {
    let blocks = (0..64)
        .take_while(|i| {
            file.entry(&format!("controlnet_cond_embedding.blocks.{i}.weight"))
                .is_some()
        })
        .count();
    let name = move |i: usize| {
        if i == 0 {
            "controlnet_cond_embedding.conv_in.weight".to_owned()
        } else if i <= blocks {
            format!("controlnet_cond_embedding.blocks.{}.weight", i - 1)
        } else if i == blocks + 1 {
            "controlnet_cond_embedding.conv_out.weight".to_owned()
        } else {
            String::new()
        }
    };
    hint_geometry(path, file, &name, mc)
}

/// Applies the heads (and checks the sizes) of a `.yaml` beside an LDM ControlNet
/// (`model.params.control_stage_config.params`, the extension's `cldm_v15.yaml` shape).
fn apply_yaml(path: &Path, g: &mut ControlGeometry) -> Result<(), ModelError> {
    let yaml_path = path.with_extension("yaml");
    if !yaml_path.is_file() {
        if g.unet.context_dim != 768 {
            return Err(config_err(
                path,
                format!(
                    "a {}-wide text context is not SD 1.x; put the ControlNet's .yaml (with num_heads) beside the file",
                    g.unet.context_dim
                ),
            ));
        }
        return Ok(());
    }
    let text = crate::system::read_regular_text(&yaml_path).map_err(|e| ModelError::io(&yaml_path, &e))?;
    super::config::check_yaml_size(&text).map_err(|why| config_err(&yaml_path, why))?;
    let docs = YamlLoader::load_from_str(&text)
        .map_err(|e| config_err(&yaml_path, format!("not valid YAML ({e})")))?;
    let doc = docs
        .first()
        .ok_or_else(|| config_err(&yaml_path, "the file is empty"))?;
    let p = &doc["model"]["params"]["control_stage_config"]["params"];
    if p.is_badvalue() {
        return Err(config_err(
            &yaml_path,
            "no model.params.control_stage_config.params section",
        ));
    }
    let uint = |y: &Yaml| y.as_i64().and_then(|v| usize::try_from(v).ok());
    for (name, want) in [
        ("model_channels", g.unet.model_channels),
        ("context_dim", g.unet.context_dim),
        ("hint_channels", g.hint_channels),
        ("num_res_blocks", g.unet.num_res_blocks),
    ] {
        if let Some(v) = uint(&p[name])
            && v != want
        {
            return Err(config_err(
                &yaml_path,
                format!("{name} is {v}, but the weights say {want}"),
            ));
        }
    }
    if let Some(n) = uint(&p["num_heads"]).filter(|&n| n > 0) {
        g.unet.heads = vec![n; g.unet.channel_mult.len()];
    } else if let Some(c) = uint(&p["num_head_channels"]).filter(|&c| c > 0) {
        g.unet.heads = g
            .unet
            .channel_mult
            .iter()
            .map(|m| (m * g.unet.model_channels / c).max(1))
            .collect();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models/controlnet")
            .join(name)
    }

    #[test]
    fn tiny_geometry_from_shapes_and_yaml() {
        let f = ControlNetFile::open(&fixture("tiny-control.safetensors")).unwrap();
        let g = &f.geometry;
        assert_eq!(g.unet.model_channels, 32);
        assert_eq!(g.unet.channel_mult, vec![1, 2]);
        assert_eq!(g.unet.num_res_blocks, 1);
        assert_eq!(g.unet.attention_levels, vec![true, false]);
        assert_eq!(g.unet.heads, vec![2, 2]);
        assert_eq!(g.unet.context_dim, 32);
        assert_eq!(g.hint_channels, 3);
        assert_eq!(g.hint_levels, vec![16, 32]);
        assert_eq!(g.hint_scale(), 2);
        assert_eq!(g.residual_count(), 5);
        let d = ControlNetFile::open(&fixture("tiny-control-diffusers")).unwrap();
        assert_eq!(d.geometry, f.geometry);
    }

    #[test]
    fn control_keys_map_to_ldm() {
        let mut g = ControlNetFile::open(&fixture("tiny-control.safetensors"))
            .unwrap()
            .geometry;
        g.hint_levels = vec![16, 32, 96, 256];
        assert_eq!(
            control_key("controlnet_cond_embedding.conv_out.weight", &g).unwrap(),
            "input_hint_block.14.weight"
        );
        assert_eq!(
            control_key("controlnet_cond_embedding.blocks.5.bias", &g).unwrap(),
            "input_hint_block.12.bias"
        );
        assert_eq!(
            control_key("controlnet_down_blocks.3.weight", &g).unwrap(),
            "zero_convs.3.0.weight"
        );
        assert_eq!(
            control_key("controlnet_mid_block.bias", &g).unwrap(),
            "middle_block_out.0.bias"
        );
        assert_eq!(
            control_key("conv_in.weight", &g).unwrap(),
            "input_blocks.0.0.weight"
        );
    }
}
