//! Model geometry: named presets per family, LDM `<checkpoint>.yaml` overrides (the A1111 convention), diffusers configs.
//! Sizes that tensor shapes decide are read from the shapes and checked against the config.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use super::ModelError;
use super::safetensors::SafetensorsFile;

/// CLIP text-encoder activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipActivation {
    /// `x * sigmoid(1.702 x)` (OpenAI CLIP).
    QuickGelu,
    /// Exact GELU.
    Gelu,
}

/// Geometry of a CLIP text transformer (transformers' `CLIPTextConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Sequence length (77).
    pub max_position_embeddings: usize,
    /// MLP activation.
    pub activation: ClipActivation,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
}

impl ClipConfig {
    /// Checks the sizes against what a CLIP text tower can be (before any is allocated).
    pub fn validate(&self) -> Result<(), String> {
        let within = |what: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "the text encoder's {what} is {v}; it must be between {lo} and {hi}"
                ))
            }
        };
        within("vocab_size", self.vocab_size, 1, 1 << 20)?;
        within("hidden_size", self.hidden_size, 1, 8192)?;
        within("intermediate_size", self.intermediate_size, 1, 65_536)?;
        within("num_hidden_layers", self.num_hidden_layers, 1, 64)?;
        within("num_attention_heads", self.num_attention_heads, 1, 128)?;
        // Prompts are 77-token windows; a longer table only costs memory (a 40,000-row one, a 10 GB mask).
        within("max_position_embeddings", self.max_position_embeddings, 77, 1024)?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "the text encoder's hidden_size {} is not divisible by its {} attention heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!(
                "the text encoder's layer_norm_eps {} must be a positive number",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// OpenAI CLIP ViT-L/14 text tower, used by SD 1.x.
    /// Source: openai/clip-vit-large-patch14 `config.json` `text_config`.
    pub fn vit_l14() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            max_position_embeddings: 77,
            activation: ClipActivation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }

    /// Reads a transformers `CLIPTextConfig` JSON (`config.json` of a text encoder).
    pub fn from_json_file(path: &Path) -> Result<Self, ModelError> {
        let json = super::diffusers::read_json(path)?;
        let base = Self::vit_l14();
        let num = |key: &str, default: usize| {
            json.get(key)
                .and_then(serde_json::Value::as_u64)
                .map_or(default, |v| v as usize)
        };
        let activation = match json.get("hidden_act").and_then(serde_json::Value::as_str) {
            None | Some("quick_gelu") => ClipActivation::QuickGelu,
            Some("gelu") => ClipActivation::Gelu,
            Some(other) => {
                return Err(ModelError::Config {
                    path: path.to_path_buf(),
                    why: format!("unsupported CLIP activation '{other}' (expected quick_gelu or gelu)"),
                });
            }
        };
        Ok(Self {
            vocab_size: num("vocab_size", base.vocab_size),
            hidden_size: num("hidden_size", base.hidden_size),
            intermediate_size: num("intermediate_size", base.intermediate_size),
            num_hidden_layers: num("num_hidden_layers", base.num_hidden_layers),
            num_attention_heads: num("num_attention_heads", base.num_attention_heads),
            max_position_embeddings: num("max_position_embeddings", base.max_position_embeddings),
            activation,
            layer_norm_eps: json
                .get("layer_norm_eps")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(base.layer_norm_eps),
        })
    }
}

/// Geometry of the LDM UNet (`unet_config.params` in an LDM yaml).
#[derive(Debug, Clone, PartialEq)]
pub struct UnetGeometry {
    /// Input channels: 4, or 9 for inpainting models.
    pub in_channels: usize,
    /// Output channels (4).
    pub out_channels: usize,
    /// Channels of the first level.
    pub model_channels: usize,
    /// Channel multiplier per level.
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level.
    pub num_res_blocks: usize,
    /// Whether each level has cross-attention transformers.
    pub attention_levels: Vec<bool>,
    /// Attention heads per level.
    pub heads: Vec<usize>,
    /// Transformer blocks per attention.
    pub transformer_depth: usize,
    /// Width of the text conditioning.
    pub context_dim: usize,
    /// Linear (SD2) instead of 1x1-conv projections in the transformers.
    pub use_linear_projection: bool,
}

impl UnetGeometry {
    /// SD 1.x UNet. Source: CompVis `configs/stable-diffusion/v1-inference.yaml`.
    pub fn sd15() -> Self {
        Self {
            in_channels: 4,
            out_channels: 4,
            model_channels: 320,
            channel_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            attention_levels: vec![true, true, true, false],
            heads: vec![8, 8, 8, 8],
            transformer_depth: 1,
            context_dim: 768,
            use_linear_projection: false,
        }
    }
}

/// Geometry of the KL autoencoder (`first_stage_config.params.ddconfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct VaeGeometry {
    /// Channels of the first level.
    pub ch: usize,
    /// Channel multiplier per level.
    pub ch_mult: Vec<usize>,
    /// Residual blocks per level.
    pub num_res_blocks: usize,
    /// Latent channels.
    pub z_channels: usize,
}

impl VaeGeometry {
    /// SD 1.x VAE. Source: CompVis `v1-inference.yaml` `ddconfig`.
    pub fn sd15() -> Self {
        Self {
            ch: 128,
            ch_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            z_channels: 4,
        }
    }

    /// Pixels per latent cell along each axis: 2^(levels − 1) (8 for every real SD model).
    pub fn downscale_factor(&self) -> usize {
        1 << self.ch_mult.len().saturating_sub(1)
    }
}

/// The DDPM noise schedule (`model.params` of an LDM yaml).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseSchedule {
    /// β at t = 0 (0.00085 for SD).
    pub linear_start: f64,
    /// β at t = T−1 (0.012 for SD).
    pub linear_end: f64,
    /// Number of training timesteps (1000).
    pub timesteps: usize,
    /// Latent scale factor (0.18215 for SD 1.x).
    pub scale_factor: f64,
}

impl NoiseSchedule {
    /// SD 1.x. Source: `v1-inference.yaml` `model.params`.
    pub fn sd15() -> Self {
        Self {
            linear_start: 0.00085,
            linear_end: 0.012,
            timesteps: 1000,
            scale_factor: 0.18215,
        }
    }

    /// ᾱ_t as LDM computes it: scaled-linear betas in f64, cumulative product, cast to f32.
    pub fn alphas_cumprod(&self) -> Vec<f32> {
        let n = self.timesteps;
        let (a, b) = (self.linear_start.sqrt(), self.linear_end.sqrt());
        let mut prod = 1.0f64;
        (0..n)
            .map(|i| {
                let s = if n > 1 {
                    a + (b - a) * i as f64 / (n - 1) as f64
                } else {
                    a
                };
                prod *= 1.0 - s * s;
                prod as f32
            })
            .collect()
    }
}

/// Everything needed to build the three networks of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Text encoder.
    pub clip: ClipConfig,
    /// Denoising UNet.
    pub unet: UnetGeometry,
    /// Autoencoder.
    pub vae: VaeGeometry,
    /// Noise schedule and latent scale.
    pub schedule: NoiseSchedule,
    /// Where the geometry came from (preset name or config path), for messages.
    pub source: String,
}

impl Geometry {
    /// The SD 1.5 preset.
    pub fn sd15() -> Self {
        Self {
            clip: ClipConfig::vit_l14(),
            unet: UnetGeometry::sd15(),
            vae: VaeGeometry::sd15(),
            schedule: NoiseSchedule::sd15(),
            source: "SD 1.x preset (v1-inference.yaml)".into(),
        }
    }

    /// The LDM yaml beside a checkpoint, A1111 style: `model.safetensors` → `model.yaml`.
    pub fn sidecar_yaml(checkpoint: &Path) -> Option<PathBuf> {
        let yaml = checkpoint.with_extension("yaml");
        yaml.is_file().then_some(yaml)
    }

    /// Applies an LDM yaml config on top of `self`.
    pub fn apply_ldm_yaml(mut self, path: &Path) -> Result<Self, ModelError> {
        let text = crate::system::read_regular_text(path).map_err(|err| ModelError::io(path, &err))?;
        let err = |why: String| ModelError::Config {
            path: path.to_path_buf(),
            why,
        };
        check_yaml_size(&text).map_err(err)?;
        let docs = YamlLoader::load_from_str(&text).map_err(|e| err(format!("not valid YAML ({e})")))?;
        let doc = docs.first().ok_or_else(|| err("the file is empty".into()))?;
        let params = &doc["model"]["params"];
        if params.is_badvalue() {
            return Err(err("no `model.params` section; is this an LDM config?".into()));
        }
        let float = |y: &Yaml| y.as_f64().or_else(|| y.as_i64().map(|v| v as f64));
        let uint = |y: &Yaml| y.as_i64().and_then(|v| usize::try_from(v).ok());
        let list = |y: &Yaml| -> Option<Vec<usize>> { y.as_vec()?.iter().map(uint).collect() };
        // A value that is present but not a whole number ≥ 0 is an error, not a silent preset.
        for (section, keys) in [
            (params, &["timesteps"][..]),
            (
                &params["unet_config"]["params"],
                &[
                    "in_channels",
                    "out_channels",
                    "model_channels",
                    "transformer_depth",
                    "context_dim",
                    "num_heads",
                    "num_head_channels",
                ][..],
            ),
            (
                &params["first_stage_config"]["params"]["ddconfig"],
                &["ch", "num_res_blocks", "z_channels"][..],
            ),
        ] {
            for key in keys {
                let y = &section[*key];
                let allowed_minus_one =
                    matches!(*key, "num_heads" | "num_head_channels") && y.as_i64() == Some(-1);
                if !y.is_badvalue() && uint(y).is_none() && !allowed_minus_one {
                    return Err(err(format!(
                        "{key} must be a whole number of at least 0, not {y:?}"
                    )));
                }
            }
        }

        if let Some(v) = float(&params["linear_start"]) {
            self.schedule.linear_start = v;
        }
        if let Some(v) = float(&params["linear_end"]) {
            self.schedule.linear_end = v;
        }
        if let Some(v) = uint(&params["timesteps"]) {
            self.schedule.timesteps = v;
        }
        if let Some(v) = float(&params["scale_factor"]) {
            self.schedule.scale_factor = v;
        }
        if let Some(p) = params["parameterization"].as_str()
            && p != "eps"
        {
            return Err(err(format!(
                "parameterization '{p}' is not supported yet (Easel runs eps-prediction models)"
            )));
        }

        let unet = &params["unet_config"]["params"];
        if !unet.is_badvalue() {
            let u = &mut self.unet;
            if let Some(v) = uint(&unet["in_channels"]) {
                u.in_channels = v;
            }
            if let Some(v) = uint(&unet["out_channels"]) {
                u.out_channels = v;
            }
            if let Some(v) = uint(&unet["model_channels"]) {
                u.model_channels = v;
            }
            if let Some(v) = list(&unet["channel_mult"]) {
                u.channel_mult = v;
            }
            if let Some(v) = uint(&unet["num_res_blocks"]) {
                u.num_res_blocks = v;
            } else if !unet["num_res_blocks"].is_badvalue() {
                return Err(err(
                    "num_res_blocks per level is not supported; use one number".into()
                ));
            }
            if let Some(v) = uint(&unet["transformer_depth"]) {
                u.transformer_depth = v;
            }
            if let Some(v) = uint(&unet["context_dim"]) {
                u.context_dim = v;
            }
            if let Some(v) = unet["use_linear_in_transformer"].as_bool() {
                u.use_linear_projection = v;
            }
            let levels = u.channel_mult.len();
            if let Some(res) = list(&unet["attention_resolutions"]) {
                // LDM lists the downsampling factors (1, 2, 4, ...) at which attention is used.
                u.attention_levels = (0..levels).map(|i| res.contains(&(1 << i))).collect();
            } else if u.attention_levels.len() != levels {
                u.attention_levels = vec![true; levels];
            }
            let num_heads = unet["num_heads"].as_i64().unwrap_or(-1);
            let head_channels = unet["num_head_channels"].as_i64().unwrap_or(-1);
            u.heads = (0..levels)
                .map(|i| {
                    let ch = u.model_channels * u.channel_mult[i];
                    if num_heads > 0 {
                        Ok(num_heads as usize)
                    } else if head_channels > 0 {
                        Ok(ch / head_channels as usize)
                    } else if let Some(h) = u.heads.get(i) {
                        Ok(*h)
                    } else {
                        Err(err("neither num_heads nor num_head_channels is set".into()))
                    }
                })
                .collect::<Result<_, _>>()?;
            if u.model_channels == 0 || u.channel_mult.is_empty() {
                return Err(err("model_channels and channel_mult must be non-empty".into()));
            }
        }

        let dd = &params["first_stage_config"]["params"]["ddconfig"];
        if !dd.is_badvalue() {
            let v = &mut self.vae;
            if let Some(x) = uint(&dd["ch"]) {
                v.ch = x;
            }
            if let Some(x) = list(&dd["ch_mult"]) {
                v.ch_mult = x;
            }
            if let Some(x) = uint(&dd["num_res_blocks"]) {
                v.num_res_blocks = x;
            }
            if let Some(x) = uint(&dd["z_channels"]) {
                v.z_channels = x;
            }
            if v.ch_mult.is_empty() {
                return Err(err("ddconfig.ch_mult must be non-empty".into()));
            }
        }

        if let Some(version) = params["cond_stage_config"]["params"]["version"].as_str() {
            let dir = path.parent().unwrap_or(Path::new(".")).join(version);
            let cfg = dir.join("config.json");
            if cfg.is_file() {
                self.clip = ClipConfig::from_json_file(&cfg)?;
            } else if !version.contains("clip-vit-large-patch14") {
                return Err(err(format!(
                    "cond_stage_config version '{version}' is neither the stock CLIP ViT-L/14 nor a folder with a config.json ({} not found)",
                    cfg.display()
                )));
            }
        }
        self.source = path.display().to_string();
        self.validate().map_err(err)?;
        Ok(self)
    }

    /// Checks every size against the range Easel can build, before anything is allocated from it:
    /// a config that asks for a 10 GB mask or a zero-width layer is refused with the value named.
    pub fn validate(&self) -> Result<(), String> {
        let within = |what: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} is {v}; it must be between {lo} and {hi}"))
            }
        };
        let s = &self.schedule;
        within("timesteps", s.timesteps, 2, 10_000)?;
        let positive = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} is {v}; it must be a positive number"))
            }
        };
        positive("linear_start", s.linear_start)?;
        positive("linear_end", s.linear_end)?;
        positive("scale_factor", s.scale_factor)?;
        if s.linear_start.max(s.linear_end) >= 1.0 {
            return Err("linear_start and linear_end must be below 1".into());
        }
        let u = &self.unet;
        within("in_channels", u.in_channels, 1, 64)?;
        within("out_channels", u.out_channels, 1, 64)?;
        within("model_channels", u.model_channels, 32, 4096)?;
        within("channel_mult levels", u.channel_mult.len(), 1, 8)?;
        within("num_res_blocks", u.num_res_blocks, 1, 16)?;
        within("transformer_depth", u.transformer_depth, 0, 32)?;
        within("context_dim", u.context_dim, 1, 8192)?;
        for (level, &mult) in u.channel_mult.iter().enumerate() {
            within("a channel_mult entry", mult, 1, 32)?;
            let ch = u.model_channels * mult;
            if !ch.is_multiple_of(32) {
                return Err(format!(
                    "level {level} has {ch} channels, which GroupNorm's 32 groups cannot divide"
                ));
            }
            let heads = u.heads.get(level).copied().unwrap_or(0);
            if heads == 0 || !ch.is_multiple_of(heads) {
                return Err(format!(
                    "level {level} has {ch} channels, which {heads} attention heads cannot divide"
                ));
            }
        }
        let v = &self.vae;
        within("VAE ch", v.ch, 32, 1024)?;
        within("VAE ch_mult levels", v.ch_mult.len(), 1, 8)?;
        within("VAE num_res_blocks", v.num_res_blocks, 1, 16)?;
        within("VAE z_channels", v.z_channels, 1, 64)?;
        for &mult in &v.ch_mult {
            within("a VAE ch_mult entry", mult, 1, 32)?;
            if !(v.ch * mult).is_multiple_of(32) {
                return Err(format!(
                    "the VAE's {} channels cannot be divided into GroupNorm's 32 groups",
                    v.ch * mult
                ));
            }
        }
        self.clip.validate()
    }

    /// Reads the component configs of a diffusers pipeline folder.
    pub fn from_diffusers_folder(dir: &Path) -> Result<Self, ModelError> {
        let mut g = Self::sd15();
        let unet_path = dir.join("unet").join("config.json");
        let unet = super::diffusers::read_json(&unet_path)?;
        let err = |path: &Path, why: String| ModelError::Config {
            path: path.to_path_buf(),
            why,
        };
        let num =
            |j: &serde_json::Value, k: &str| j.get(k).and_then(serde_json::Value::as_u64).map(|v| v as usize);
        let nums = |j: &serde_json::Value, k: &str| -> Option<Vec<usize>> {
            j.get(k)?
                .as_array()?
                .iter()
                .map(|v| v.as_u64().map(|v| v as usize))
                .collect()
        };
        let block_out = nums(&unet, "block_out_channels")
            .ok_or_else(|| err(&unet_path, "block_out_channels missing".into()))?;
        let first = *block_out
            .first()
            .ok_or_else(|| err(&unet_path, "block_out_channels is empty".into()))?;
        g.unet.model_channels = first;
        g.unet.channel_mult = block_out.iter().map(|c| c / first).collect();
        if block_out.iter().any(|c| c % first != 0) {
            return Err(err(
                &unet_path,
                "block_out_channels are not multiples of the first".into(),
            ));
        }
        g.unet.in_channels = num(&unet, "in_channels").unwrap_or(4);
        g.unet.out_channels = num(&unet, "out_channels").unwrap_or(4);
        g.unet.num_res_blocks = num(&unet, "layers_per_block").unwrap_or(2);
        g.unet.context_dim = num(&unet, "cross_attention_dim").unwrap_or(768);
        g.unet.use_linear_projection = unet
            .get("use_linear_projection")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let levels = block_out.len();
        g.unet.attention_levels = unet
            .get("down_block_types")
            .and_then(serde_json::Value::as_array)
            .map_or_else(
                || vec![true; levels],
                |a| {
                    a.iter()
                        .map(|t| t.as_str().is_some_and(|s| s.contains("CrossAttn")))
                        .collect()
                },
            );
        g.unet.heads = match unet.get("attention_head_dim") {
            Some(serde_json::Value::Array(_)) => nums(&unet, "attention_head_dim")
                .ok_or_else(|| err(&unet_path, "attention_head_dim is malformed".into()))?,
            Some(v) => vec![v.as_u64().unwrap_or(8) as usize; levels],
            None => vec![8; levels],
        };
        if let Some(depth) = num(&unet, "transformer_layers_per_block") {
            g.unet.transformer_depth = depth;
        }

        let vae_path = dir.join("vae").join("config.json");
        let vae = super::diffusers::read_json(&vae_path)?;
        let vae_out = nums(&vae, "block_out_channels")
            .ok_or_else(|| err(&vae_path, "block_out_channels missing".into()))?;
        let vfirst = *vae_out
            .first()
            .ok_or_else(|| err(&vae_path, "block_out_channels is empty".into()))?;
        g.vae.ch = vfirst;
        g.vae.ch_mult = vae_out.iter().map(|c| c / vfirst).collect();
        g.vae.num_res_blocks = num(&vae, "layers_per_block").unwrap_or(2);
        g.vae.z_channels = num(&vae, "latent_channels").unwrap_or(4);
        if let Some(s) = vae.get("scaling_factor").and_then(serde_json::Value::as_f64) {
            g.schedule.scale_factor = s;
        }

        let sched_path = dir.join("scheduler").join("scheduler_config.json");
        if sched_path.is_file() {
            let s = super::diffusers::read_json(&sched_path)?;
            if let Some(v) = s.get("beta_start").and_then(serde_json::Value::as_f64) {
                g.schedule.linear_start = v;
            }
            if let Some(v) = s.get("beta_end").and_then(serde_json::Value::as_f64) {
                g.schedule.linear_end = v;
            }
            if let Some(v) = num(&s, "num_train_timesteps") {
                g.schedule.timesteps = v;
            }
        }

        g.clip = ClipConfig::from_json_file(&dir.join("text_encoder").join("config.json"))?;
        g.source = dir.display().to_string();
        g.validate().map_err(|why| err(dir, why))?;
        Ok(g)
    }

    /// Checks the sizes that tensor shapes decide against this geometry, before any weight is loaded.
    /// `name` maps a candle-side name (diffusers layout) to the file's own key.
    pub fn check_shapes(
        &self,
        file: &SafetensorsFile,
        unet_key: &dyn Fn(&str) -> Option<String>,
        vae_key: &dyn Fn(&str) -> Option<String>,
        clip_key: &dyn Fn(&str) -> String,
    ) -> Result<(), ModelError> {
        let mismatch = |what: &str, key: &str, found: &[usize], expected: String| ModelError::Config {
            path: file.path().to_path_buf(),
            why: format!(
                "the geometry ({}) expects {what} = {expected}, but tensor '{key}' has shape {found:?}",
                self.source
            ),
        };
        let need = |key: Option<String>| -> Result<(String, Vec<usize>), ModelError> {
            let key = key.unwrap_or_default();
            let entry = file.entry(&key).ok_or_else(|| ModelError::MissingTensor {
                path: file.path().to_path_buf(),
                name: key.clone(),
            })?;
            Ok((key, entry.shape.clone()))
        };
        let (k, s) = need(unet_key("conv_in.weight"))?;
        if s.len() != 4 || s[0] != self.unet.model_channels || s[1] != self.unet.in_channels {
            return Err(mismatch(
                "UNet [model_channels, in_channels]",
                &k,
                &s,
                format!("[{}, {}, 3, 3]", self.unet.model_channels, self.unet.in_channels),
            ));
        }
        if let Some(level) = self.unet.attention_levels.iter().position(|a| *a) {
            let (k, s) = need(unet_key(&format!(
                "down_blocks.{level}.attentions.0.transformer_blocks.0.attn2.to_k.weight"
            )))?;
            if s.get(1) != Some(&self.unet.context_dim) {
                return Err(mismatch("context_dim", &k, &s, self.unet.context_dim.to_string()));
            }
        }
        let (k, s) = need(Some(clip_key("text_model.embeddings.token_embedding.weight")))?;
        if s != [self.clip.vocab_size, self.clip.hidden_size] {
            return Err(mismatch(
                "CLIP [vocab_size, hidden_size]",
                &k,
                &s,
                format!("[{}, {}]", self.clip.vocab_size, self.clip.hidden_size),
            ));
        }
        if self.clip.hidden_size != self.unet.context_dim {
            return Err(ModelError::Config {
                path: file.path().to_path_buf(),
                why: format!(
                    "the text encoder width {} differs from the UNet's context_dim {}",
                    self.clip.hidden_size, self.unet.context_dim
                ),
            });
        }
        let last = self.clip.num_hidden_layers.saturating_sub(1);
        need(Some(clip_key(&format!(
            "text_model.encoder.layers.{last}.mlp.fc1.weight"
        ))))?;
        let (k, s) = need(vae_key("encoder.conv_in.weight"))?;
        if s.first() != Some(&self.vae.ch) {
            return Err(mismatch("VAE ch", &k, &s, self.vae.ch.to_string()));
        }
        let (k, s) = need(vae_key("post_quant_conv.weight"))?;
        if s.first() != Some(&self.vae.z_channels) {
            return Err(mismatch(
                "VAE z_channels",
                &k,
                &s,
                self.vae.z_channels.to_string(),
            ));
        }
        Ok(())
    }
}

/// The largest `.yaml` config read: LDM configs are 2–5 KiB.
const MAX_YAML_BYTES: usize = 1 << 20;
/// The most nodes a `.yaml` may expand to once its aliases are resolved (LDM configs have ~200).
const MAX_YAML_NODES: usize = 100_000;
/// The deepest nesting of a `.yaml` (LDM configs nest 6 levels).
const MAX_YAML_DEPTH: usize = 64;

/// Counts a YAML event stream's nodes as the loader would expand them (an alias counts as the
/// whole node it names) and its nesting depth, stopping at the first bound passed.
#[derive(Default)]
struct YamlBudget {
    /// Node count of each open collection: its anchor id and the nodes so far.
    open: Vec<(usize, usize)>,
    /// Expanded node count of each anchored node.
    anchored: std::collections::HashMap<usize, usize>,
    total: usize,
    exceeded: Option<String>,
}

impl YamlBudget {
    fn add(&mut self, nodes: usize) {
        self.total = self.total.saturating_add(nodes);
        if let Some((_, count)) = self.open.last_mut() {
            *count = count.saturating_add(nodes);
        }
        if self.total > MAX_YAML_NODES && self.exceeded.is_none() {
            self.exceeded = Some(format!(
                "it expands to more than {MAX_YAML_NODES} values (aliases repeating aliases); an LDM config has a few hundred"
            ));
        }
    }
}

impl yaml_rust2::parser::EventReceiver for YamlBudget {
    fn on_event(&mut self, ev: yaml_rust2::parser::Event) {
        use yaml_rust2::parser::Event;
        if self.exceeded.is_some() {
            return;
        }
        match ev {
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    self.anchored.insert(anchor, 1);
                }
                self.add(1);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.open.len() >= MAX_YAML_DEPTH {
                    self.exceeded = Some(format!("it nests deeper than {MAX_YAML_DEPTH} levels"));
                }
                self.total = self.total.saturating_add(1);
                self.open.push((anchor, 1));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, count)) = self.open.pop() {
                    if anchor > 0 {
                        self.anchored.insert(anchor, count);
                    }
                    if let Some((_, parent)) = self.open.last_mut() {
                        *parent = parent.saturating_add(count);
                    }
                }
            }
            Event::Alias(id) => {
                let nodes = self.anchored.get(&id).copied().unwrap_or(1);
                self.add(nodes);
            }
            _ => {}
        }
    }
}

/// Refuses a `.yaml` text that is too large, too deep or expands to too many values before the
/// loader builds it (a "billion laughs" file of a few hundred bytes expands to gigabytes).
pub(crate) fn check_yaml_size(text: &str) -> Result<(), String> {
    if text.len() > MAX_YAML_BYTES {
        return Err(format!(
            "the file is {} KiB; an LDM config is a few KiB (the limit is {} KiB)",
            text.len() / 1024,
            MAX_YAML_BYTES / 1024
        ));
    }
    let mut budget = YamlBudget::default();
    // Syntax errors are left for the loader to report with its own message.
    let _ = yaml_rust2::parser::Parser::new_from_str(text).load(&mut budget, true);
    match budget.exceeded {
        Some(why) => Err(format!("refusing this YAML: {why}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphas_cumprod_matches_ldm() {
        let a = NoiseSchedule::sd15().alphas_cumprod();
        assert_eq!(a.len(), 1000);
        // Values from LDM's float64 schedule cast to float32.
        assert!((a[0] - 0.999_15).abs() < 1e-6);
        assert!((a[999] - 0.004_660_52).abs() < 1e-6, "{}", a[999]);
    }

    #[test]
    fn sd15_vae_factor() {
        assert_eq!(VaeGeometry::sd15().downscale_factor(), 8);
    }

    #[test]
    fn yaml_bombs_are_refused_before_they_expand() {
        let mut bomb =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(",");
            bomb += &[w[1], ": &", w[1], " [", &refs, "]\n"].concat();
        }
        let err = check_yaml_size(&bomb).expect_err("bomb");
        assert!(err.contains("expands to more than"), "{err}");
        // Deep nesting is refused by our count or by the parser itself, never built.
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let refused = check_yaml_size(&deep).is_err() || YamlLoader::load_from_str(&deep).is_err();
        assert!(refused, "a 10,000-level YAML must not load");
        // A real config passes, and so do a few aliases.
        assert_eq!(
            check_yaml_size("model:\n  params:\n    timesteps: 1000\nx: &x [1, 2]\ny: *x\n"),
            Ok(())
        );
    }

    #[test]
    fn sizes_from_a_yaml_are_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let with = |unet: &str, model: &str| {
            let path = dir.path().join("m.yaml");
            let mut lines: Vec<String> = [
                "model_channels: 32",
                "channel_mult: [1, 2]",
                "num_heads: 2",
                "context_dim: 768",
            ]
            .iter()
            .filter(|l| !unet.starts_with(l.split(':').next().unwrap_or_default()))
            .map(|l| (*l).to_owned())
            .collect();
            if !unet.is_empty() {
                lines.push(unet.to_owned());
            }
            let unet: String = lines.iter().map(|l| ["        ", l, "\n"].concat()).collect();
            let text = format!("model:\n  params:\n{model}    unet_config:\n      params:\n{unet}");
            std::fs::write(&path, text).unwrap();
            Geometry::sd15()
                .apply_ldm_yaml(&path)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(with("", ""), Ok(()));
        for (unet, model, says) in [
            ("", "    timesteps: 0\n", "timesteps is 0"),
            ("", "    timesteps: 1\n", "timesteps is 1"),
            ("", "    timesteps: 10000000000\n", "timesteps is 10000000000"),
            ("num_heads: 3", "", "3 attention heads"),
            ("model_channels: -1", "", "model_channels must be a whole number"),
            ("context_dim: -5", "", "context_dim must be a whole number"),
            ("in_channels: 0", "", "in_channels is 0"),
        ] {
            let err = with(unet, model).expect_err(says);
            assert!(err.contains(says), "{says}: {err}");
        }
        let mut clip = ClipConfig::vit_l14();
        clip.num_attention_heads = 0;
        assert!(clip.validate().unwrap_err().contains("num_attention_heads is 0"));
        clip = ClipConfig::vit_l14();
        clip.max_position_embeddings = 40_000;
        assert!(
            clip.validate()
                .unwrap_err()
                .contains("max_position_embeddings is 40000")
        );
    }
}
