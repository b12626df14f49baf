//! Generation parameters: what reproduces one image, with A1111's sampler, schedule and RNG names.
//! Their text form (the infotext) is written and read in [`crate::infotext`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors from reading sampler, schedule and infotext values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParamsError {
    /// A sampler name that Easel does not implement.
    #[error("unknown sampler '{name}': Easel supports {valid}")]
    UnknownSampler {
        /// The name as given.
        name: String,
        /// The supported A1111 names, comma separated.
        valid: String,
    },
    /// A schedule type that Easel does not implement.
    #[error("unknown schedule type '{name}': Easel supports {valid}")]
    UnknownSchedule {
        /// The name as given.
        name: String,
        /// The supported A1111 labels, comma separated.
        valid: String,
    },
    /// An RNG source other than GPU, CPU or NV.
    #[error("unknown RNG source '{name}': valid sources are {valid}")]
    UnknownRng {
        /// The name as given.
        name: String,
        /// The valid A1111 names, comma separated.
        valid: String,
    },
    /// A field of the infotext params line whose value cannot be read.
    #[error("infotext field '{key}' has value '{value}', expected {expected}")]
    InvalidValue {
        /// The infotext key, e.g. `Steps`.
        key: String,
        /// The value as written.
        value: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
}

fn name_list<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter().map(|&x| name(x)).collect::<Vec<_>>().join(", ")
}

/// A sampler, named as in A1111 (`modules/sd_samplers_kdiffusion.py`, `sd_samplers_timesteps.py`,
/// `sd_samplers_lcm.py`). Only the samplers Easel implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sampler {
    /// k-diffusion `sample_euler`.
    #[serde(rename = "Euler")]
    Euler,
    /// k-diffusion `sample_euler_ancestral`.
    #[serde(rename = "Euler a")]
    EulerA,
    /// k-diffusion `sample_heun`.
    #[serde(rename = "Heun")]
    Heun,
    /// k-diffusion `sample_dpmpp_2m`; its automatic schedule is Karras.
    #[serde(rename = "DPM++ 2M")]
    DpmPp2M,
    /// A1111's timestep DDIM sampler (eta 0).
    #[serde(rename = "DDIM")]
    Ddim,
    /// A1111's LCM sampler.
    #[serde(rename = "LCM")]
    Lcm,
    /// k-diffusion `sample_lms` (order 4, coefficients integrated in f64).
    #[serde(rename = "LMS")]
    Lms,
    /// k-diffusion `sample_dpm_2`; Karras, one σ more with the penultimate one dropped.
    #[serde(rename = "DPM2")]
    Dpm2,
    /// k-diffusion `sample_dpm_2_ancestral` (eta 1); Karras, penultimate σ dropped.
    #[serde(rename = "DPM2 a")]
    Dpm2A,
    /// k-diffusion `sample_dpmpp_2s_ancestral` (eta 1); Karras.
    #[serde(rename = "DPM++ 2S a")]
    DpmPp2SA,
    /// k-diffusion `sample_dpm_fast` with A1111's eta 1, between the model's σ range.
    #[serde(rename = "DPM fast")]
    DpmFast,
    /// k-diffusion `sample_dpm_adaptive` with A1111's eta 1; the step count is its own.
    #[serde(rename = "DPM adaptive")]
    DpmAdaptive,
    /// A1111's Restart sampler (Heun steps; restarts from 20 steps up); Karras.
    #[serde(rename = "Restart")]
    Restart,
    /// k-diffusion `sample_dpmpp_sde` with A1111's Brownian-tree noise; Karras.
    #[serde(rename = "DPM++ SDE")]
    DpmPpSde,
    /// k-diffusion `sample_dpmpp_2m_sde` (midpoint) with Brownian-tree noise; Exponential.
    #[serde(rename = "DPM++ 2M SDE")]
    DpmPp2MSde,
    /// k-diffusion `sample_dpmpp_2m_sde` (Heun) with Brownian-tree noise; Exponential.
    #[serde(rename = "DPM++ 2M SDE Heun")]
    DpmPp2MSdeHeun,
    /// k-diffusion `sample_dpmpp_3m_sde` with Brownian-tree noise; Exponential, penultimate σ dropped.
    #[serde(rename = "DPM++ 3M SDE")]
    DpmPp3MSde,
    /// A1111's timestep DDIM with CFG++ (CFG scale / 12.5, direction from the unconditional noise).
    #[serde(rename = "DDIM CFG++")]
    DdimCfgPp,
    /// A1111's timestep PLMS.
    #[serde(rename = "PLMS")]
    Plms,
    /// A1111's timestep UniPC (`modules/models/diffusion/uni_pc`): bh1, order 3, lower order at the
    /// end; runs as many steps as A1111's DDIM grid has timesteps (12 requested run 13).
    #[serde(rename = "UniPC")]
    UniPc,
    /// TCD (Trajectory Consistency Distillation), as diffusers' `TCDScheduler` with gamma 0.3; named
    /// as Forge and ComfyUI name it (A1111 v1.10 has no TCD).
    #[serde(rename = "TCD")]
    Tcd,
}

impl Sampler {
    /// Every sampler, in the order the UI lists them.
    pub const ALL: [Sampler; 21] = [
        Sampler::DpmPp2M,
        Sampler::DpmPpSde,
        Sampler::DpmPp2MSde,
        Sampler::DpmPp2MSdeHeun,
        Sampler::DpmPp2SA,
        Sampler::DpmPp3MSde,
        Sampler::EulerA,
        Sampler::Euler,
        Sampler::Lms,
        Sampler::Heun,
        Sampler::Dpm2,
        Sampler::Dpm2A,
        Sampler::DpmFast,
        Sampler::DpmAdaptive,
        Sampler::Restart,
        Sampler::Ddim,
        Sampler::DdimCfgPp,
        Sampler::Plms,
        Sampler::UniPc,
        Sampler::Lcm,
        Sampler::Tcd,
    ];

    /// The name A1111 shows and writes in infotexts.
    #[must_use]
    pub fn a1111_name(self) -> &'static str {
        match self {
            Sampler::Euler => "Euler",
            Sampler::EulerA => "Euler a",
            Sampler::Heun => "Heun",
            Sampler::DpmPp2M => "DPM++ 2M",
            Sampler::Ddim => "DDIM",
            Sampler::Lcm => "LCM",
            Sampler::Lms => "LMS",
            Sampler::Dpm2 => "DPM2",
            Sampler::Dpm2A => "DPM2 a",
            Sampler::DpmPp2SA => "DPM++ 2S a",
            Sampler::DpmFast => "DPM fast",
            Sampler::DpmAdaptive => "DPM adaptive",
            Sampler::Restart => "Restart",
            Sampler::DpmPpSde => "DPM++ SDE",
            Sampler::DpmPp2MSde => "DPM++ 2M SDE",
            Sampler::DpmPp2MSdeHeun => "DPM++ 2M SDE Heun",
            Sampler::DpmPp3MSde => "DPM++ 3M SDE",
            Sampler::DdimCfgPp => "DDIM CFG++",
            Sampler::Plms => "PLMS",
            Sampler::UniPc => "UniPC",
            Sampler::Tcd => "TCD",
        }
    }

    /// A1111's API aliases for the sampler (the third field of its sampler tables).
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Sampler::Euler => &["k_euler"],
            Sampler::EulerA => &["k_euler_a", "k_euler_ancestral"],
            Sampler::Heun => &["k_heun"],
            Sampler::DpmPp2M => &["k_dpmpp_2m"],
            Sampler::Ddim => &["ddim"],
            Sampler::Lcm => &["k_lcm"],
            Sampler::Lms => &["k_lms"],
            Sampler::Dpm2 => &["k_dpm_2"],
            Sampler::Dpm2A => &["k_dpm_2_a"],
            Sampler::DpmPp2SA => &["k_dpmpp_2s_a"],
            Sampler::DpmFast => &["k_dpm_fast"],
            Sampler::DpmAdaptive => &["k_dpm_ad"],
            Sampler::Restart => &["restart"],
            Sampler::DpmPpSde => &["k_dpmpp_sde"],
            Sampler::DpmPp2MSde => &["k_dpmpp_2m_sde"],
            Sampler::DpmPp2MSdeHeun => &["k_dpmpp_2m_sde_heun"],
            Sampler::DpmPp3MSde => &["k_dpmpp_3m_sde"],
            Sampler::DdimCfgPp => &["ddim_cfgpp"],
            Sampler::Plms => &["plms"],
            Sampler::UniPc => &["unipc"],
            Sampler::Tcd => &["tcd"],
        }
    }

    /// Looks a sampler up by its A1111 name or alias, ignoring ASCII case and surrounding spaces.
    ///
    /// # Errors
    /// [`ParamsError::UnknownSampler`], listing the supported names.
    pub fn from_name(s: &str) -> Result<Self, ParamsError> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|x| {
                x.a1111_name().eq_ignore_ascii_case(s)
                    || x.aliases().iter().any(|a| a.eq_ignore_ascii_case(s))
            })
            .ok_or_else(|| ParamsError::UnknownSampler {
                name: s.to_owned(),
                valid: name_list(&Self::ALL, Self::a1111_name),
            })
    }

    /// The schedule that "Automatic" means for this sampler (the `scheduler` option in A1111's
    /// sampler table), or `None` when the sampler uses the model's discrete schedule.
    #[must_use]
    pub fn default_schedule(self) -> Option<Schedule> {
        match self {
            Sampler::DpmPp2M
            | Sampler::DpmPp2SA
            | Sampler::Dpm2
            | Sampler::Dpm2A
            | Sampler::Restart
            | Sampler::DpmPpSde => Some(Schedule::Karras),
            Sampler::DpmPp2MSde | Sampler::DpmPp2MSdeHeun | Sampler::DpmPp3MSde => {
                Some(Schedule::Exponential)
            }
            Sampler::Euler
            | Sampler::EulerA
            | Sampler::Heun
            | Sampler::Lms
            | Sampler::DpmFast
            | Sampler::DpmAdaptive
            | Sampler::Ddim
            | Sampler::DdimCfgPp
            | Sampler::Plms
            | Sampler::UniPc
            | Sampler::Tcd
            | Sampler::Lcm => None,
        }
    }

    /// A1111's `discard_next_to_last_sigma` option: the schedule is built for one step more and
    /// its penultimate σ is dropped.
    #[must_use]
    pub fn discards_penultimate_sigma(self) -> bool {
        matches!(self, Sampler::Dpm2 | Sampler::Dpm2A | Sampler::DpmPp3MSde)
    }

    /// A1111's `brownian_noise` option: the sampler's noise comes from Brownian trees seeded with
    /// the image seeds, not from the image RNG's later draws.
    #[must_use]
    pub fn uses_brownian_noise(self) -> bool {
        matches!(
            self,
            Sampler::DpmPpSde | Sampler::DpmPp2MSde | Sampler::DpmPp2MSdeHeun | Sampler::DpmPp3MSde
        )
    }

    /// Whether the sampler runs on DDPM timesteps (A1111's `sd_samplers_timesteps`, or TCD's own
    /// timestep grid) rather than on a k-diffusion σ schedule; the schedule type does not apply to it.
    #[must_use]
    pub fn uses_timesteps(self) -> bool {
        matches!(
            self,
            Sampler::Ddim | Sampler::DdimCfgPp | Sampler::Plms | Sampler::UniPc | Sampler::Tcd
        )
    }

    /// The schedule this sampler runs with when `chosen` is picked: `Automatic` becomes the
    /// sampler's default schedule where it has one, every other choice stays.
    pub fn resolved_schedule(self, chosen: Schedule) -> Schedule {
        match (chosen, self.default_schedule()) {
            (Schedule::Automatic, Some(resolved)) => resolved,
            (chosen, _) => chosen,
        }
    }

    /// Whether each step but a last one that ends at σ = 0 evaluates the model twice.
    #[must_use]
    pub fn is_second_order(self) -> bool {
        matches!(
            self,
            Sampler::Heun
                | Sampler::Dpm2
                | Sampler::Dpm2A
                | Sampler::DpmPp2SA
                | Sampler::Restart
                | Sampler::DpmPpSde
        )
    }

    /// Whether A1111 writes `ENSD` for this sampler: `sd_samplers_common.
    /// is_sampler_using_eta_noise_seed_delta` needs the `uses_ensd` option and a non-zero eta
    /// (eta defaults to 1): Euler a, DPM2 a, DPM++ 2S a, DPM fast and DPM adaptive among these.
    #[must_use]
    pub fn writes_ensd(self) -> bool {
        matches!(
            self,
            Sampler::EulerA | Sampler::Dpm2A | Sampler::DpmPp2SA | Sampler::DpmFast | Sampler::DpmAdaptive
        )
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.a1111_name())
    }
}

impl FromStr for Sampler {
    type Err = ParamsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

/// UniPC's B(h) (A1111's `uni_pc_variant` setting; its third choice, `vary_coeff`, is not run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UniPcVariant {
    /// B(h) = h (A1111's default).
    #[default]
    Bh1,
    /// B(h) = eʰ − 1.
    Bh2,
}

/// A1111's UniPC settings (`uni_pc_*` in `modules/shared_options.py` of v1.10; the skip type is
/// always `time_uniform`, A1111's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UniPcOptions {
    /// `uni_pc_variant` (bh1).
    pub variant: UniPcVariant,
    /// `uni_pc_order` (3); A1111 refuses fewer steps than this.
    pub order: usize,
    /// `uni_pc_lower_order_final` (true): the last steps drop to the orders they can support.
    pub lower_order_final: bool,
}

impl Default for UniPcOptions {
    fn default() -> Self {
        Self {
            variant: UniPcVariant::Bh1,
            order: 3,
            lower_order_final: true,
        }
    }
}

/// TCD's gamma (diffusers' `eta` in `TCDScheduler.step`) when nothing else is set.
pub const TCD_DEFAULT_GAMMA: f64 = 0.3;

/// A sigma schedule ("Schedule type" in A1111, `modules/sd_schedulers.py` of v1.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Schedule {
    /// The sampler's own default (see [`Sampler::default_schedule`]).
    #[default]
    Automatic,
    /// The model's discrete schedule, evenly spaced in timesteps.
    Uniform,
    /// Karras et al. (2022), rho 7.
    Karras,
    /// Evenly spaced in log sigma.
    Exponential,
    /// k-diffusion's polyexponential schedule with A1111's rho 1.
    Polyexponential,
    /// Evenly spaced timesteps without the last one (SGM / ComfyUI `sgm_uniform`).
    #[serde(rename = "SGM Uniform")]
    SgmUniform,
    /// "KL Optimal": tan of evenly spaced arctan σ; ends at the model's smallest σ, not 0.
    #[serde(rename = "KL Optimal")]
    KlOptimal,
    /// NVIDIA's Align Your Steps table for SD 1.5, log-linearly interpolated to the step count.
    #[serde(rename = "Align Your Steps")]
    AlignYourSteps,
    /// Every (1000 / steps)-th entry of the model's σ table (ComfyUI `simple`).
    Simple,
    /// Evenly spaced timesteps including both ends (ComfyUI `normal`).
    Normal,
    /// The σ table at timesteps 1, 1 + 1000 // steps, … (ComfyUI `ddim_uniform`).
    #[serde(rename = "DDIM")]
    Ddim,
    /// Quantiles of a Beta(α, β) distribution between the model's σ range (α = β = 0.6 by default).
    Beta,
}

impl Schedule {
    /// Every schedule, in A1111's order.
    pub const ALL: [Schedule; 12] = [
        Schedule::Automatic,
        Schedule::Uniform,
        Schedule::Karras,
        Schedule::Exponential,
        Schedule::Polyexponential,
        Schedule::SgmUniform,
        Schedule::KlOptimal,
        Schedule::AlignYourSteps,
        Schedule::Simple,
        Schedule::Normal,
        Schedule::Ddim,
        Schedule::Beta,
    ];

    /// The label A1111 shows and writes in infotexts.
    #[must_use]
    pub fn a1111_name(self) -> &'static str {
        match self {
            Schedule::Automatic => "Automatic",
            Schedule::Uniform => "Uniform",
            Schedule::Karras => "Karras",
            Schedule::Exponential => "Exponential",
            Schedule::Polyexponential => "Polyexponential",
            Schedule::SgmUniform => "SGM Uniform",
            Schedule::KlOptimal => "KL Optimal",
            Schedule::AlignYourSteps => "Align Your Steps",
            Schedule::Simple => "Simple",
            Schedule::Normal => "Normal",
            Schedule::Ddim => "DDIM",
            Schedule::Beta => "Beta",
        }
    }

    /// A1111's internal scheduler name (`sd_schedulers.Scheduler.name`) and aliases.
    fn internal_names(self) -> &'static [&'static str] {
        match self {
            Schedule::Automatic => &["automatic"],
            Schedule::Uniform => &["uniform"],
            Schedule::Karras => &["karras"],
            Schedule::Exponential => &["exponential"],
            Schedule::Polyexponential => &["polyexponential"],
            Schedule::SgmUniform => &["sgm_uniform", "SGMUniform"],
            Schedule::KlOptimal => &["kl_optimal"],
            Schedule::AlignYourSteps => &["align_your_steps"],
            Schedule::Simple => &["simple"],
            Schedule::Normal => &["normal"],
            Schedule::Ddim => &["ddim"],
            Schedule::Beta => &["beta"],
        }
    }

    /// Looks a schedule up by its A1111 label, internal name (`sgm_uniform`) or alias
    /// (`SGMUniform`), ignoring ASCII case and surrounding spaces.
    ///
    /// # Errors
    /// [`ParamsError::UnknownSchedule`], listing the supported labels.
    pub fn from_name(s: &str) -> Result<Self, ParamsError> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|x| {
                x.a1111_name().eq_ignore_ascii_case(s)
                    || x.internal_names().iter().any(|a| a.eq_ignore_ascii_case(s))
            })
            .ok_or_else(|| ParamsError::UnknownSchedule {
                name: s.to_owned(),
                valid: name_list(&Self::ALL, Self::a1111_name),
            })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.a1111_name())
    }
}

impl FromStr for Schedule {
    type Err = ParamsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

/// Where the noise comes from (A1111's "Random number generator source" option, infotext `RNG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum RngSource {
    /// A1111's default; not written to the infotext.
    #[default]
    #[serde(rename = "GPU")]
    Gpu,
    /// `torch.randn` on a CPU generator.
    #[serde(rename = "CPU")]
    Cpu,
    /// A1111's Philox imitation of NVIDIA's generator.
    #[serde(rename = "NV")]
    Nv,
}

impl RngSource {
    /// Every source, in A1111's order.
    pub const ALL: [RngSource; 3] = [RngSource::Gpu, RngSource::Cpu, RngSource::Nv];

    /// The name A1111 uses (`GPU`, `CPU`, `NV`).
    #[must_use]
    pub fn a1111_name(self) -> &'static str {
        match self {
            RngSource::Gpu => "GPU",
            RngSource::Cpu => "CPU",
            RngSource::Nv => "NV",
        }
    }

    /// Looks a source up by name, ignoring ASCII case and surrounding spaces.
    ///
    /// # Errors
    /// [`ParamsError::UnknownRng`], listing the valid names.
    pub fn from_name(s: &str) -> Result<Self, ParamsError> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|x| x.a1111_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParamsError::UnknownRng {
                name: s.to_owned(),
                valid: name_list(&Self::ALL, Self::a1111_name),
            })
    }
}

impl fmt::Display for RngSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.a1111_name())
    }
}

impl FromStr for RngSource {
    type Err = ParamsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

/// Everything needed to reproduce one image, plus infotext keys Easel does not interpret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParams {
    /// Positive prompt, possibly several lines.
    pub prompt: String,
    /// Negative prompt; empty for none.
    pub negative_prompt: String,
    /// Sampling steps.
    pub steps: u32,
    /// Sampler.
    pub sampler: Sampler,
    /// Sigma schedule.
    pub schedule: Schedule,
    /// Classifier-free guidance scale.
    pub cfg_scale: f32,
    /// Seed of this image (the CLI turns A1111's -1 into a random seed before this point).
    pub seed: u64,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// CLIP skip; 1 means use the last layer.
    pub clip_skip: u32,
    /// Number of batches. Not part of the infotext.
    pub batch_count: u32,
    /// Images per batch. Not part of the infotext.
    pub batch_size: u32,
    /// Noise source.
    pub rng: RngSource,
    /// Eta noise seed delta (ENSD): added to the seed for noise drawn after the initial latent.
    pub eta_noise_seed_delta: u64,
    /// Checkpoint name as A1111 writes it (file name without extension).
    pub model_name: Option<String>,
    /// A1111 short hash of the checkpoint (first 10 hex digits of its sha256).
    pub model_hash: Option<String>,
    /// img2img/inpaint denoising strength; `None` for txt2img.
    pub denoising_strength: Option<f32>,
    /// Keys we do not interpret, kept in order for round trips.
    pub extra: Vec<(String, String)>,
}

impl Default for GenerationParams {
    /// A1111's txt2img defaults (steps 20, CFG 7, 512x512, batch 1x1, GPU RNG, ENSD 0) with the
    /// Euler a sampler and seed 0.
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: String::new(),
            steps: 20,
            sampler: Sampler::EulerA,
            schedule: Schedule::Automatic,
            cfg_scale: 7.0,
            seed: 0,
            width: 512,
            height: 512,
            clip_skip: 1,
            batch_count: 1,
            batch_size: 1,
            rng: RngSource::Gpu,
            eta_noise_seed_delta: 0,
            model_name: None,
            model_hash: None,
            denoising_strength: None,
            extra: Vec::new(),
        }
    }
}

impl GenerationParams {
    /// Images the job makes: batch count × batch size (no overflow).
    pub fn image_count(&self) -> u64 {
        u64::from(self.batch_count) * u64::from(self.batch_size)
    }

    /// The "Schedule type" A1111 writes for this sampler and schedule: the sampler's default
    /// schedule label when `Automatic` resolves to a schedule function (`KDiffusionSampler.
    /// get_sigmas` stores `scheduler.label`), else the chosen label.
    #[must_use]
    pub fn a1111_schedule_label(&self) -> &'static str {
        self.sampler.resolved_schedule(self.schedule).a1111_name()
    }
}

/// Values laid over a [`GenerationParams`]: each `Some` replaces its field, `None` keeps it. The
/// CLI's flags over a replayed infotext and another tool's metadata over the defaults both go
/// through [`Overrides::apply`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Positive prompt.
    pub prompt: Option<String>,
    /// Negative prompt.
    pub negative_prompt: Option<String>,
    /// Sampling steps.
    pub steps: Option<u32>,
    /// Sampler.
    pub sampler: Option<Sampler>,
    /// Schedule type.
    pub schedule: Option<Schedule>,
    /// CFG scale.
    pub cfg_scale: Option<f32>,
    /// Seed.
    pub seed: Option<u64>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Clip skip.
    pub clip_skip: Option<u32>,
    /// Batch count.
    pub batch_count: Option<u32>,
    /// Batch size.
    pub batch_size: Option<u32>,
    /// Noise source.
    pub rng: Option<RngSource>,
    /// ENSD.
    pub eta_noise_seed_delta: Option<u64>,
    /// img2img denoising strength.
    pub denoising_strength: Option<f32>,
    /// Checkpoint name.
    pub model_name: Option<String>,
}

impl Overrides {
    /// Replaces each field of `params` that has a value here.
    pub fn apply(self, params: &mut GenerationParams) {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        set(&mut params.prompt, self.prompt);
        set(&mut params.negative_prompt, self.negative_prompt);
        set(&mut params.steps, self.steps);
        set(&mut params.sampler, self.sampler);
        set(&mut params.schedule, self.schedule);
        set(&mut params.cfg_scale, self.cfg_scale);
        set(&mut params.seed, self.seed);
        set(&mut params.width, self.width);
        set(&mut params.height, self.height);
        set(&mut params.clip_skip, self.clip_skip);
        set(&mut params.batch_count, self.batch_count);
        set(&mut params.batch_size, self.batch_size);
        set(&mut params.rng, self.rng);
        set(&mut params.eta_noise_seed_delta, self.eta_noise_seed_delta);
        if self.denoising_strength.is_some() {
            params.denoising_strength = self.denoising_strength;
        }
        if self.model_name.is_some() {
            params.model_name = self.model_name;
        }
    }
}

/// A fresh random seed in A1111's range (0 ..= 4294967294), for "seed −1".
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() % 4_294_967_295
}
