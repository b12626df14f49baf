//! Noise levels: the model's discrete σ table and the schedules A1111 builds from it (k-diffusion semantics, f32 like torch).
//! Also the DDIM timestep grid and the LCM 50-entry grid.

use crate::params::{Sampler, Schedule};

/// torch.linspace in f32: the first half counts up from `start`, the second half down from `end`.
pub fn linspace_f32(start: f32, end: f32, n: usize) -> Vec<f32> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (n - 1) as f32;
            let half = n / 2;
            (0..n)
                .map(|i| {
                    if i < half {
                        start + step * i as f32
                    } else {
                        end - step * (n - 1 - i) as f32
                    }
                })
                .collect()
        }
    }
}

/// The discrete σ table of an eps-prediction model, wrapped as k-diffusion's `DiscreteSchedule`.
#[derive(Debug, Clone)]
pub struct ModelSigmas {
    sigmas: Vec<f32>,
    log_sigmas: Vec<f32>,
    /// ᾱ at each table entry (ascending σ).
    alphas_cumprod: Vec<f32>,
}

impl ModelSigmas {
    /// σ_t = sqrt((1 − ᾱ_t) / ᾱ_t), in f32 as k-diffusion's `CompVisDenoiser` computes it.
    pub fn from_alphas_cumprod(alphas_cumprod: &[f32]) -> Self {
        let sigmas: Vec<f32> = alphas_cumprod.iter().map(|a| ((1.0 - a) / a).sqrt()).collect();
        let log_sigmas = sigmas.iter().map(|s| s.ln()).collect();
        Self {
            sigmas,
            log_sigmas,
            alphas_cumprod: alphas_cumprod.to_vec(),
        }
    }

    /// The LCM grid of A1111's `LCMCompVisDenoiser`: 50 entries ᾱ[19], ᾱ[39], …, ᾱ[999].
    pub fn lcm_grid(alphas_cumprod: &[f32]) -> Self {
        let n = alphas_cumprod.len();
        let skip = n / LCM_ORIGINAL_STEPS;
        let mut valid = vec![0f32; LCM_ORIGINAL_STEPS];
        for x in 0..LCM_ORIGINAL_STEPS {
            valid[LCM_ORIGINAL_STEPS - 1 - x] = alphas_cumprod[n - 1 - x * skip];
        }
        Self::from_alphas_cumprod(&valid)
    }

    /// ᾱ table.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// The σ table, ascending (k-diffusion's `inner_model.sigmas`).
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// Smallest σ of the table.
    pub fn sigma_min(&self) -> f32 {
        self.sigmas[0]
    }

    /// Largest σ of the table.
    pub fn sigma_max(&self) -> f32 {
        self.sigmas[self.sigmas.len() - 1]
    }

    /// Continuous timestep of σ by log-σ interpolation (k-diffusion `sigma_to_t`, unquantised).
    pub fn sigma_to_t(&self, sigma: f32) -> f32 {
        let log_sigma = sigma.ln();
        let n = self.log_sigmas.len();
        // Index of the last table entry with log σ ≤ log_sigma, clamped to n − 2.
        let count = self.log_sigmas.iter().filter(|&&l| log_sigma - l >= 0.0).count();
        let low = count.saturating_sub(1).min(n - 2);
        let (lo, hi) = (self.log_sigmas[low], self.log_sigmas[low + 1]);
        let w = ((lo - log_sigma) / (lo - hi)).clamp(0.0, 1.0);
        (1.0 - w) * low as f32 + w * (low + 1) as f32
    }

    /// Nearest table index of σ (k-diffusion's quantised `sigma_to_t`; A1111's LCM uses it).
    pub fn nearest_index(&self, sigma: f32) -> usize {
        let log_sigma = sigma.ln();
        let mut best = 0;
        for (i, l) in self.log_sigmas.iter().enumerate() {
            if (log_sigma - l).abs() < (log_sigma - self.log_sigmas[best]).abs() {
                best = i;
            }
        }
        best
    }

    /// σ of a continuous timestep (k-diffusion `t_to_sigma`).
    pub fn t_to_sigma(&self, t: f32) -> f32 {
        let low = t.floor() as usize;
        let high = (t.ceil() as usize).min(self.log_sigmas.len() - 1);
        let w = t - t.floor();
        ((1.0 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()
    }

    /// k-diffusion `get_sigmas(n)`: t = linspace(T−1, 0, n), then a final 0.
    pub fn discrete(&self, n: usize) -> Vec<f32> {
        let top = (self.sigmas.len() - 1) as f32;
        let mut s: Vec<f32> = linspace_f32(top, 0.0, n)
            .into_iter()
            .map(|t| self.t_to_sigma(t))
            .collect();
        s.push(0.0);
        s
    }
}

/// A1111's LCM "original timesteps".
pub const LCM_ORIGINAL_STEPS: usize = 50;

/// Karras et al. (2022) schedule with ρ = 7, then a final 0 (k-diffusion `get_sigmas_karras`):
/// σ^(1/ρ) of the ends in f64 (Python floats), the ramp in f32 (torch), the power rounded from f64.
/// (torch's vectorised `powf` is within 1 ulp of that; it differs in the last bit for about 1 %
/// of the entries, which only matters where a Brownian tree rounds that σ to 6 decimals.)
pub fn karras(n: usize, sigma_min: f32, sigma_max: f32) -> Vec<f32> {
    let rho = 7.0f64;
    let min_inv = f64::from(sigma_min).powf(1.0 / rho);
    let max_inv = f64::from(sigma_max).powf(1.0 / rho);
    let span = (min_inv - max_inv) as f32;
    let max_inv = max_inv as f32;
    let mut s: Vec<f32> = linspace_f32(0.0, 1.0, n)
        .into_iter()
        .map(|r| (f64::from(max_inv + r * span).powf(rho)) as f32)
        .collect();
    s.push(0.0);
    s
}

/// Log-linear schedule, then a final 0 (k-diffusion `get_sigmas_exponential`).
pub fn exponential(n: usize, sigma_min: f32, sigma_max: f32) -> Vec<f32> {
    let start = f64::from(sigma_max).ln() as f32;
    let end = f64::from(sigma_min).ln() as f32;
    let mut s: Vec<f32> = linspace_f32(start, end, n).into_iter().map(f32::exp).collect();
    s.push(0.0);
    s
}

/// A1111's LCM schedule: t = linspace(999, 19, n) on the 50-entry grid, then a final 0.
pub fn lcm(grid: &ModelSigmas, n: usize, train_steps: usize) -> Vec<f32> {
    let skip = (train_steps / LCM_ORIGINAL_STEPS) as f32;
    let start = grid.nearest_index(grid.sigma_max()) as f32 * skip + (skip - 1.0);
    let end = grid.nearest_index(grid.sigma_min()) as f32 * skip + (skip - 1.0);
    let mut s: Vec<f32> = linspace_f32(start, end, n)
        .into_iter()
        .map(|t| grid.t_to_sigma((t - (skip - 1.0)) / skip))
        .collect();
    s.push(0.0);
    s
}

/// A1111's DDIM timesteps: clip(range(0, T, T // steps) + 1, 0, T − 1).
pub fn ddim_timesteps(steps: usize, train_steps: usize) -> Vec<usize> {
    let stride = (train_steps / steps.max(1)).max(1);
    (0..train_steps)
        .step_by(stride)
        .map(|t| (t + 1).min(train_steps - 1))
        .collect()
}

/// TCD's distillation grid size (diffusers `TCDScheduler`'s `original_inference_steps`).
pub const TCD_ORIGINAL_STEPS: usize = 50;

/// diffusers' `TCDScheduler.set_timesteps(steps)`: the grid k·i − 1 (i = 1…50, k = T/50) from the
/// top, at the indices ⌊j·50/steps⌋ (`np.linspace(0, 50, steps, endpoint=False)`); `None` for more
/// than 50 steps or none, which diffusers refuses.
pub fn tcd_timesteps(steps: usize, train_steps: usize) -> Option<Vec<usize>> {
    let original = TCD_ORIGINAL_STEPS;
    if steps == 0 || steps > original || train_steps < original {
        return None;
    }
    let k = train_steps / original;
    let spacing = original as f64 / steps as f64;
    Some(
        (0..steps)
            .map(|j| {
                let index = (j as f64 * spacing).floor() as usize;
                (original - index) * k - 1
            })
            .collect(),
    )
}

/// What A1111's scheduler functions see as `inner_model`: the model's σ table, or the 50-entry
/// LCM grid with `LCMCompVisDenoiser`'s integer timesteps.
struct InnerModel<'a> {
    grid: &'a ModelSigmas,
    /// LCM: training steps per grid entry (20 for SD 1.5); `None` for k-diffusion's denoiser.
    lcm_skip: Option<usize>,
}

impl InnerModel<'_> {
    fn sigma_to_t(&self, sigma: f32) -> f32 {
        match self.lcm_skip {
            None => self.grid.sigma_to_t(sigma),
            Some(skip) => (self.grid.nearest_index(sigma) * skip + skip - 1) as f32,
        }
    }

    fn t_to_sigma(&self, t: f32) -> f32 {
        match self.lcm_skip {
            None => self.grid.t_to_sigma(t),
            Some(skip) => {
                let last = (self.grid.sigmas().len() - 1) as f32;
                let skip = skip as f32;
                self.grid.t_to_sigma(((t - (skip - 1.0)) / skip).clamp(0.0, last))
            }
        }
    }

    /// `inner_model.get_sigmas(n)`.
    fn get_sigmas(&self, n: usize, train_steps: usize) -> Vec<f32> {
        match self.lcm_skip {
            None => self.grid.discrete(n),
            Some(_) => lcm(self.grid, n, train_steps),
        }
    }

    /// A1111 `sgm_uniform` (`drop_last`) and `normal_scheduler`: timesteps evenly spaced between
    /// those of σ_max and σ_min.
    fn uniform_in_t(&self, n: usize, drop_last: bool) -> Vec<f32> {
        let start = self.sigma_to_t(self.grid.sigma_max());
        let end = self.sigma_to_t(self.grid.sigma_min());
        let mut ts = linspace_f32(start, end, if drop_last { n + 1 } else { n });
        if drop_last {
            ts.pop();
        }
        let mut s: Vec<f32> = ts.into_iter().map(|t| self.t_to_sigma(t)).collect();
        s.push(0.0);
        s
    }

    /// A1111 `simple_scheduler`: σ table entries −(1 + int(x·len/n)), then 0.
    fn simple(&self, n: usize) -> Vec<f32> {
        let table = self.grid.sigmas();
        let ss = table.len() as f64 / n as f64;
        let mut s: Vec<f32> = (0..n)
            .map(|x| table[table.len() - 1 - (x as f64 * ss) as usize])
            .collect();
        s.push(0.0);
        s
    }

    /// A1111 `ddim_scheduler`: table entries 1, 1 + len // n, … below len, descending, then 0.
    /// (Its length is not always n + 1: 6 steps give 7 σ > 0.)
    fn ddim(&self, n: usize) -> Vec<f32> {
        let table = self.grid.sigmas();
        let ss = (table.len() / n.max(1)).max(1);
        let mut s: Vec<f32> = (1..table.len()).step_by(ss).map(|x| table[x]).collect();
        s.reverse();
        s.push(0.0);
        s
    }
}

/// k-diffusion `get_sigmas_polyexponential(n, σmin, σmax, rho)`, then a final 0 (f32 like torch).
pub fn polyexponential(n: usize, sigma_min: f32, sigma_max: f32, rho: f32) -> Vec<f32> {
    let log_min = f64::from(sigma_min).ln();
    let span = (f64::from(sigma_max).ln() - log_min) as f32;
    let log_min = log_min as f32;
    let mut s: Vec<f32> = linspace_f32(1.0, 0.0, n)
        .into_iter()
        .map(|r| (r.powf(rho) * span + log_min).exp())
        .collect();
    s.push(0.0);
    s
}

/// A1111 `kl_optimal`: tan of arctan σ evenly interpolated, n + 1 entries ending at σ_min, no 0.
pub fn kl_optimal(n: usize, sigma_min: f32, sigma_max: f32) -> Vec<f32> {
    let (alpha_min, alpha_max) = (sigma_min.atan(), sigma_max.atan());
    (0..=n)
        .map(|i| {
            let r = i as f32 / n as f32;
            (r * alpha_min + (1.0 - r) * alpha_max).tan()
        })
        .collect()
}

/// NVIDIA's Align Your Steps σ for SD 1.5 at 10 steps, as A1111 v1.10 ships them.
pub const AYS_SD15: [f64; 11] = [
    14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029,
];

/// numpy `linspace(start, stop, num)` in f64: `i·step + start`, the last entry exactly `stop`.
fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
            v[num - 1] = stop;
            v
        }
    }
}

/// numpy `interp(x, xp, fp)` for ascending `xp`.
fn np_interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let last = xp.len() - 1;
    if x < xp[0] {
        return fp[0];
    }
    if x >= xp[last] {
        return fp[last];
    }
    let j = xp.iter().rposition(|&v| v <= x).unwrap_or(0);
    if xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    slope * (x - xp[j]) + fp[j]
}

/// A1111 `get_align_your_steps_sigmas` for SD 1.x: the table itself at 10 steps, otherwise its
/// log-linear interpolation (numpy, f64) to n entries; then 0, cast to f32.
pub fn align_your_steps(n: usize) -> Vec<f32> {
    let table = AYS_SD15;
    let mut s: Vec<f32> = if n == table.len() {
        table.iter().map(|&v| v as f32).collect()
    } else {
        let xs = np_linspace(0.0, 1.0, table.len());
        let ys: Vec<f64> = table.iter().rev().map(|v| v.ln()).collect();
        let mut out: Vec<f32> = np_linspace(0.0, 1.0, n)
            .into_iter()
            .map(|x| np_interp(x, &xs, &ys).exp() as f32)
            .collect();
        out.reverse();
        out
    };
    s.push(0.0);
    s
}

/// A1111's default Beta schedule parameters (`beta_dist_alpha`, `beta_dist_beta`).
pub const BETA_DEFAULT: (f64, f64) = (0.6, 0.6);

/// A1111 `beta_scheduler`: σ_min + ppf(1 − linspace(0, 1, n); α, β)·(σ_max − σ_min) in f64
/// (scipy's `stats.beta.ppf`), then 0, cast to f32.
pub fn beta(n: usize, sigma_min: f32, sigma_max: f32, alpha: f64, beta: f64) -> Vec<f32> {
    let (lo, hi) = (f64::from(sigma_min), f64::from(sigma_max));
    let mut s: Vec<f32> = np_linspace(0.0, 1.0, n)
        .into_iter()
        .map(|x| (lo + super::special::beta_ppf(1.0 - x, alpha, beta) * (hi - lo)) as f32)
        .collect();
    s.push(0.0);
    s
}

/// Options of A1111's schedules that are settings rather than part of the name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleOptions {
    /// Beta schedule (α, β).
    pub beta: (f64, f64),
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        Self { beta: BETA_DEFAULT }
    }
}

/// The σ schedule for a k-diffusion sampler (A1111 `KDiffusionSampler.get_sigmas`) with the
/// default schedule options.
pub fn sigmas_for(sampler: Sampler, schedule: Schedule, steps: usize, table: &ModelSigmas) -> Vec<f32> {
    sigmas_with(sampler, schedule, steps, table, ScheduleOptions::default())
}

/// The σ schedule for a k-diffusion sampler (A1111 `KDiffusionSampler.get_sigmas`): usually n + 1
/// entries ending in 0 (KL Optimal ends at σ_min; DDIM may give more). Samplers that discard the
/// penultimate σ (DPM2, …) get a schedule of n + 1 steps with it removed.
pub fn sigmas_with(
    sampler: Sampler,
    schedule: Schedule,
    steps: usize,
    table: &ModelSigmas,
    options: ScheduleOptions,
) -> Vec<f32> {
    let train_steps = table.alphas_cumprod().len();
    let lcm_grid = (sampler == Sampler::Lcm).then(|| ModelSigmas::lcm_grid(table.alphas_cumprod()));
    let inner = InnerModel {
        grid: lcm_grid.as_ref().unwrap_or(table),
        lcm_skip: lcm_grid.as_ref().map(|_| train_steps / LCM_ORIGINAL_STEPS),
    };
    let discard = sampler.discards_penultimate_sigma();
    let n = steps + usize::from(discard);
    let (lo, hi) = (inner.grid.sigma_min(), inner.grid.sigma_max());
    let mut sigmas = match sampler.resolved_schedule(schedule) {
        Schedule::Automatic | Schedule::Uniform => inner.get_sigmas(n, train_steps),
        Schedule::Karras => karras(n, lo, hi),
        Schedule::Exponential => exponential(n, lo, hi),
        Schedule::Polyexponential => polyexponential(n, lo, hi, 1.0),
        Schedule::SgmUniform => inner.uniform_in_t(n, true),
        Schedule::KlOptimal => kl_optimal(n, lo, hi),
        Schedule::AlignYourSteps => align_your_steps(n),
        Schedule::Simple => inner.simple(n),
        Schedule::Normal => inner.uniform_in_t(n, false),
        Schedule::Ddim => inner.ddim(n),
        Schedule::Beta => beta(n, lo, hi, options.beta.0, options.beta.1),
    };
    if discard && sigmas.len() >= 2 {
        sigmas.remove(sigmas.len() - 2);
    }
    sigmas
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::config::NoiseSchedule;

    fn table() -> ModelSigmas {
        ModelSigmas::from_alphas_cumprod(&NoiseSchedule::sd15().alphas_cumprod())
    }

    #[test]
    fn sd15_sigma_range() {
        let t = table();
        assert!((t.sigma_min() - 0.029_167_5).abs() < 1e-6, "{}", t.sigma_min());
        assert!((t.sigma_max() - 14.614_643).abs() < 1e-4, "{}", t.sigma_max());
    }

    #[test]
    fn sigma_t_round_trip() {
        let t = table();
        for ts in [0.0f32, 1.0, 10.5, 421.37, 998.9, 999.0] {
            let back = t.sigma_to_t(t.t_to_sigma(ts));
            assert!((back - ts).abs() < 2e-3, "{ts} -> {back}");
        }
    }

    #[test]
    fn schedules_shape() {
        let t = table();
        let d = t.discrete(6);
        assert_eq!(d.len(), 7);
        assert!((d[0] - t.sigma_max()).abs() < 1e-5);
        assert_eq!(d[6], 0.0);
        let k = karras(6, t.sigma_min(), t.sigma_max());
        assert!((k[5] - t.sigma_min()).abs() < 1e-6);
        assert!(d.windows(2).all(|w| w[0] > w[1]));
        let e = exponential(6, t.sigma_min(), t.sigma_max());
        assert!((e[0] - t.sigma_max()).abs() < 1e-4);
    }

    #[test]
    fn ddim_grid() {
        assert_eq!(ddim_timesteps(10, 1000).len(), 10);
        assert_eq!(ddim_timesteps(10, 1000)[..2], [1, 101]);
        assert_eq!(ddim_timesteps(13, 1000).len(), 14);
        assert_eq!(*ddim_timesteps(13, 1000).last().unwrap_or(&0), 989);
    }

    #[test]
    fn tcd_timesteps_follow_diffusers() {
        assert_eq!(tcd_timesteps(4, 1000), Some(vec![999, 759, 499, 259]));
        assert_eq!(
            tcd_timesteps(8, 1000),
            Some(vec![999, 879, 759, 639, 499, 379, 259, 139])
        );
        assert_eq!(tcd_timesteps(1, 1000), Some(vec![999]));
        let all = tcd_timesteps(50, 1000).unwrap();
        assert_eq!((all[0], all[49], all.len()), (999, 19, 50));
        assert_eq!(tcd_timesteps(51, 1000), None);
        assert_eq!(tcd_timesteps(0, 1000), None);
    }

    #[test]
    fn lcm_grid_endpoints() {
        let ac = NoiseSchedule::sd15().alphas_cumprod();
        let grid = ModelSigmas::lcm_grid(&ac);
        let s = lcm(&grid, 4, 1000);
        assert_eq!(s.len(), 5);
        let top = ((1.0 - ac[999]) / ac[999]).sqrt();
        assert!((s[0] - top).abs() < 1e-4);
        let bottom = ((1.0 - ac[19]) / ac[19]).sqrt();
        assert!((s[3] - bottom).abs() < 1e-5);
    }
}
