//! The samplers A1111 offers, with k-diffusion's update rules and A1111's random-draw order.
//! Each sampler drives a denoiser over a σ schedule and reports every step to a callback that may cancel.

use candle_core::Tensor;

use super::DiffusionError;
use super::brownian::BrownianNoise;
use super::schedule::{karras, linspace_f32};
use crate::params::{Sampler, UniPcOptions, UniPcVariant};

/// A k-diffusion denoiser: latents at noise level σ → predicted clean latents (x0).
pub trait Denoiser {
    /// Predicts x0 from `x` at noise level `sigma`.
    fn denoise(&mut self, x: &Tensor, sigma: f32) -> Result<Tensor, DiffusionError>;

    /// A1111's `state.sampling_step`: 0 at launch, then the index the sampler passes to its
    /// callback, which k-diffusion calls after a step's first model evaluation. ControlNet's
    /// guidance start/end is measured on it.
    fn set_sampling_step(&mut self, _step: usize) {}
}

/// An eps-prediction model at a DDPM timestep (what A1111's timestep samplers drive).
pub trait EpsModel {
    /// Predicts the noise in `x` at model time `t`, which may lie between the integer timesteps
    /// (UniPC evaluates the UNet at continuous times).
    fn eps_at(&mut self, x: &Tensor, t: f64) -> Result<Tensor, DiffusionError>;

    /// Predicts the noise in `x` at the integer timestep `t`.
    fn eps(&mut self, x: &Tensor, t: usize) -> Result<Tensor, DiffusionError> {
        self.eps_at(x, t as f64)
    }

    /// The unconditional noise prediction of the last [`EpsModel::eps`] call, where the model
    /// keeps it (A1111's `need_last_noise_uncond`, for DDIM CFG++).
    fn last_uncond_eps(&self) -> Option<Tensor> {
        None
    }

    /// As [`Denoiser::set_sampling_step`]; A1111's timestep samplers call back after a step's model
    /// evaluations.
    fn set_sampling_step(&mut self, _step: usize) {}
}

/// Source of the ancestral noise: each call is the next `randn` draw (A1111's `rng.next()`).
pub trait NoiseSource {
    /// The next draw, shaped like the latents.
    fn next_noise(&mut self) -> Result<Tensor, DiffusionError>;
}

/// Called after every step with (step index, total steps, current x, current x0 prediction).
/// Returning an error (e.g. [`DiffusionError::Cancelled`]) stops sampling.
pub type StepCallback<'a> = dyn FnMut(usize, usize, &Tensor, &Tensor) -> Result<(), DiffusionError> + 'a;

fn to_d(x: &Tensor, sigma: f32, denoised: &Tensor) -> Result<Tensor, DiffusionError> {
    Ok(((x - denoised)? / f64::from(sigma))?)
}

fn axpy(x: &Tensor, d: &Tensor, dt: f32) -> Result<Tensor, DiffusionError> {
    Ok((x + (d * f64::from(dt))?)?)
}

/// k-diffusion's `get_ancestral_step` with η = 1: (σ_down, σ_up).
fn ancestral_step(from: f32, to: f32) -> (f32, f32) {
    let up = to.min((to * to * (from * from - to * to) / (from * from)).sqrt());
    let down = (to * to - up * up).sqrt();
    (down, up)
}

/// torch's `a.lerp(b, 0.5)` on f32 scalars: `b − (b − a)·0.5` (weights ≥ 0.5 count from the end).
fn lerp_half(a: f32, b: f32) -> f32 {
    b - (b - a) * 0.5
}

/// k-diffusion's `linear_multistep_coeff(order, t, i, j)`: the integral over [t_i, t_{i+1}] of the
/// Lagrange basis polynomial of t_{i−j} on t_i, …, t_{i−order+1}, evaluated in f64 as numpy 1.26
/// evaluates k-diffusion's integrand (each factor `(τ − t_{i−k}) / (t_{i−j} − t_{i−k})` in f64, but
/// the denominator is a float32 difference), integrated exactly (scipy's `quad` is exact for
/// polynomials of this degree up to rounding).
fn lms_coefficient(order: usize, t: &[f32], i: usize, j: usize) -> f64 {
    let start = f64::from(t[i]);
    let h = f64::from(t[i + 1]) - start;
    // The polynomial in u = τ − t_i, lowest power first.
    let mut poly = vec![1.0f64];
    for k in (0..order).filter(|&k| k != j) {
        let den = f64::from(t[i - j] - t[i - k]);
        let shift = (start - f64::from(t[i - k])) / den;
        let slope = 1.0 / den;
        let mut next = vec![0.0f64; poly.len() + 1];
        for (p, c) in poly.iter().enumerate() {
            next[p] += c * shift;
            next[p + 1] += c * slope;
        }
        poly = next;
    }
    poly.iter()
        .enumerate()
        .map(|(p, c)| c * h.powi(p as i32 + 1) / (p as f64 + 1.0))
        .sum()
}

/// DPM-Solver-2's step from σ `s` (where the derivative is `d`) to `target` > 0 through the
/// log-space midpoint: one more model call.
fn dpm2_midpoint(
    model: &mut dyn Denoiser,
    x: &Tensor,
    d: &Tensor,
    s: f32,
    target: f32,
) -> Result<Tensor, DiffusionError> {
    let sigma_mid = lerp_half(s.ln(), target.ln()).exp();
    let x2 = axpy(x, d, sigma_mid - s)?;
    let denoised2 = model.denoise(&x2, sigma_mid)?;
    let d2 = to_d(&x2, sigma_mid, &denoised2)?;
    axpy(x, &d2, target - s)
}

/// Runs a k-diffusion sampler from `x` (already scaled by σ₀) over `sigmas` (ending in 0).
pub fn sample_k(
    sampler: Sampler,
    model: &mut dyn Denoiser,
    mut x: Tensor,
    sigmas: &[f32],
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    match sampler {
        Sampler::Restart => return sample_restart(model, x, sigmas, noise, callback),
        Sampler::DpmFast | Sampler::DpmAdaptive => {
            return Err(DiffusionError::Input(format!(
                "{sampler} runs between the model's σ range (sample_dpm_solver), not over a schedule"
            )));
        }
        s if s.uses_brownian_noise() => {
            return Err(DiffusionError::Input(format!(
                "{sampler} needs Brownian noise (sample_sde)"
            )));
        }
        _ => {}
    }
    let steps = sigmas.len().saturating_sub(1);
    let mut old_denoised: Option<Tensor> = None;
    // LMS: the last four derivatives, newest last.
    let mut ds: Vec<Tensor> = Vec::new();
    for i in 0..steps {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let denoised = match sampler {
            Sampler::Euler => {
                // k-diffusion draws the churn noise before testing s_churn; it is unused at s_churn = 0.
                noise.next_noise()?;
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                let d = to_d(&x, s, &denoised)?;
                x = axpy(&x, &d, s_next - s)?;
                denoised
            }
            Sampler::EulerA => {
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                let (down, up) = ancestral_step(s, s_next);
                let d = to_d(&x, s, &denoised)?;
                x = axpy(&x, &d, down - s)?;
                if s_next > 0.0 {
                    x = axpy(&x, &noise.next_noise()?, up)?;
                }
                denoised
            }
            Sampler::Heun => {
                noise.next_noise()?;
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                let d = to_d(&x, s, &denoised)?;
                let dt = s_next - s;
                if s_next == 0.0 {
                    x = axpy(&x, &d, dt)?;
                } else {
                    let x2 = axpy(&x, &d, dt)?;
                    let denoised2 = model.denoise(&x2, s_next)?;
                    let d2 = to_d(&x2, s_next, &denoised2)?;
                    let d_prime = ((d + d2)? / 2.0)?;
                    x = axpy(&x, &d_prime, dt)?;
                }
                denoised
            }
            Sampler::DpmPp2M => {
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                let t_fn = |sigma: f32| -sigma.ln();
                let sigma_fn = |t: f32| (-t).exp();
                let (t, t_next) = (t_fn(s), t_fn(s_next));
                let h = t_next - t;
                let ratio = sigma_fn(t_next) / sigma_fn(t);
                let coeff = -(-h).exp_m1();
                let target = match &old_denoised {
                    Some(old) if s_next != 0.0 => {
                        let h_last = t - t_fn(sigmas[i - 1]);
                        let r = h_last / h;
                        let a = 1.0 + 1.0 / (2.0 * r);
                        let b = 1.0 / (2.0 * r);
                        ((&denoised * f64::from(a))? - (old * f64::from(b))?)?
                    }
                    _ => denoised.clone(),
                };
                x = ((&x * f64::from(ratio))? + (target * f64::from(coeff))?)?;
                old_denoised = Some(denoised.clone());
                denoised
            }
            Sampler::Lcm => {
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                x = denoised.clone();
                if s_next > 0.0 {
                    x = axpy(&x, &noise.next_noise()?, s_next)?;
                }
                denoised
            }
            Sampler::Lms => {
                const ORDER: usize = 4;
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                ds.push(to_d(&x, s, &denoised)?);
                if ds.len() > ORDER {
                    ds.remove(0);
                }
                let order = (i + 1).min(ORDER);
                let mut sum: Option<Tensor> = None;
                for (j, d) in ds.iter().rev().enumerate().take(order) {
                    // torch multiplies by the coefficient rounded to f32.
                    let c = lms_coefficient(order, sigmas, i, j) as f32;
                    let term = (d * f64::from(c))?;
                    sum = Some(match sum {
                        None => term,
                        Some(acc) => (acc + term)?,
                    });
                }
                if let Some(sum) = sum {
                    x = (&x + sum)?;
                }
                denoised
            }
            Sampler::Dpm2 => {
                // As Euler: the churn noise is drawn every step and unused at s_churn = 0.
                noise.next_noise()?;
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                let d = to_d(&x, s, &denoised)?;
                if s_next == 0.0 {
                    x = axpy(&x, &d, s_next - s)?;
                } else {
                    x = dpm2_midpoint(model, &x, &d, s, s_next)?;
                }
                denoised
            }
            Sampler::Dpm2A => {
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                let (down, up) = ancestral_step(s, s_next);
                let d = to_d(&x, s, &denoised)?;
                if down == 0.0 {
                    x = axpy(&x, &d, down - s)?;
                } else {
                    x = dpm2_midpoint(model, &x, &d, s, down)?;
                    // k-diffusion@ab527a9 adds the noise only after a DPM-Solver-2 step.
                    x = axpy(&x, &noise.next_noise()?, up)?;
                }
                denoised
            }
            Sampler::DpmPp2SA => {
                let denoised = model.denoise(&x, s)?;
                model.set_sampling_step(i);
                let (down, up) = ancestral_step(s, s_next);
                if down == 0.0 {
                    let d = to_d(&x, s, &denoised)?;
                    x = axpy(&x, &d, down - s)?;
                } else {
                    let sigma_fn = |t: f32| (-t).exp();
                    let (t, t_next) = (-s.ln(), -down.ln());
                    let h = t_next - t;
                    let t_mid = t + 0.5 * h;
                    let x2 = ((&x * f64::from(sigma_fn(t_mid) / sigma_fn(t)))?
                        - (&denoised * f64::from((-h * 0.5).exp_m1()))?)?;
                    let denoised2 = model.denoise(&x2, sigma_fn(t_mid))?;
                    x = ((&x * f64::from(sigma_fn(t_next) / sigma_fn(t)))?
                        - (&denoised2 * f64::from((-h).exp_m1()))?)?;
                }
                if s_next > 0.0 {
                    x = axpy(&x, &noise.next_noise()?, up)?;
                }
                denoised
            }
            Sampler::Ddim | Sampler::DdimCfgPp | Sampler::Plms | Sampler::UniPc | Sampler::Tcd => {
                return Err(DiffusionError::Input(format!(
                    "{sampler} runs on timesteps, not through the k-diffusion loop"
                )));
            }
            Sampler::Restart
            | Sampler::DpmFast
            | Sampler::DpmAdaptive
            | Sampler::DpmPpSde
            | Sampler::DpmPp2MSde
            | Sampler::DpmPp2MSdeHeun
            | Sampler::DpmPp3MSde => unreachable!("dispatched before the loop"),
        };
        callback(i, steps, &x, &denoised)?;
    }
    Ok(x)
}

/// A1111's Restart sampler (`sd_samplers_extra.restart_sampler`, Xu et al. 2023) with its automatic
/// restart list: below 20 steps it is Heun over `sigmas`; from 20 steps it runs a Karras schedule of
/// steps − 9·k steps over the same σ range and, on reaching the σ closest to 0.1, goes back up to the
/// σ closest to 2 (adding fresh noise) and down again in 9 steps, k times (k = 1, or 2 from 36 steps
/// with steps/4 restart steps).
pub fn sample_restart(
    model: &mut dyn Denoiser,
    mut x: Tensor,
    sigmas: &[f32],
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    let steps = sigmas.len().saturating_sub(1);
    let nearest = |sigmas: &[f32], value: f32| -> usize {
        // torch.argmin(abs(sigmas − value)): the first index of the smallest distance.
        let mut best = 0;
        for (i, s) in sigmas.iter().enumerate() {
            if (s - value).abs() < (sigmas[best] - value).abs() {
                best = i;
            }
        }
        best
    };
    let own: Vec<f32>;
    let mut sigmas = sigmas;
    // (σ index where a restart starts, restart steps + 1, times, σ to restart up to)
    let mut restart: Option<(usize, usize, usize, f32)> = None;
    if steps >= 20 {
        let (restart_steps, restart_times) = if steps >= 36 { (steps / 4, 2) } else { (9, 1) };
        own = karras(
            steps - restart_steps * restart_times,
            sigmas[sigmas.len() - 2],
            sigmas[0],
        );
        sigmas = &own;
        restart = Some((nearest(sigmas, 0.1), restart_steps + 1, restart_times, 2.0));
    }
    let mut pairs: Vec<(f32, f32)> = Vec::new();
    for i in 0..sigmas.len().saturating_sub(1) {
        pairs.push((sigmas[i], sigmas[i + 1]));
        if let Some((at, restart_steps, times, restart_max)) = restart
            && i + 1 == at
        {
            let max_idx = nearest(sigmas, restart_max);
            if max_idx < at {
                let mut up = karras(restart_steps, sigmas[at], sigmas[max_idx]);
                up.pop();
                for _ in 0..times {
                    pairs.extend(up.windows(2).map(|w| (w[0], w[1])));
                }
            }
        }
    }
    let total = pairs.len();
    let mut last: Option<f32> = None;
    for (step, &(old, new)) in pairs.iter().enumerate() {
        if let Some(last) = last
            && last < old
        {
            let scale = (old * old - last * last).sqrt();
            x = axpy(&x, &noise.next_noise()?, scale)?;
        }
        // A Heun step (Euler when it ends at 0).
        let denoised = model.denoise(&x, old)?;
        model.set_sampling_step(step);
        let d = to_d(&x, old, &denoised)?;
        let dt = new - old;
        if new == 0.0 {
            x = axpy(&x, &d, dt)?;
        } else {
            let x2 = axpy(&x, &d, dt)?;
            let denoised2 = model.denoise(&x2, new)?;
            let d2 = to_d(&x2, new, &denoised2)?;
            x = axpy(&x, &((d + d2)? / 2.0)?, dt)?;
        }
        last = Some(new);
        callback(step, total, &x, &denoised)?;
    }
    Ok(x)
}

/// k-diffusion's `DPMSolver` in f32 scalars like torch's 0-d tensors: t = −ln σ.
struct DpmSolver<'a> {
    model: &'a mut dyn Denoiser,
    evaluations: usize,
}

/// The cached model evaluations of one DPM-Solver step (k-diffusion's `eps_cache`).
#[derive(Default)]
struct EpsCache {
    eps: Option<Tensor>,
    eps_r1: Option<Tensor>,
}

fn sigma_of_t(t: f32) -> f32 {
    (-t).exp()
}

fn t_of_sigma(sigma: f32) -> f32 {
    -sigma.ln()
}

impl DpmSolver<'_> {
    fn eps(&mut self, x: &Tensor, t: f32) -> Result<Tensor, DiffusionError> {
        let sigma = sigma_of_t(t);
        let denoised = self.model.denoise(x, sigma)?;
        self.evaluations += 1;
        to_d(x, sigma, &denoised)
    }

    fn eps_at(&mut self, slot: &mut Option<Tensor>, x: &Tensor, t: f32) -> Result<Tensor, DiffusionError> {
        if let Some(e) = slot {
            return Ok(e.clone());
        }
        let e = self.eps(x, t)?;
        *slot = Some(e.clone());
        Ok(e)
    }

    /// `x − c·e` with the scalar `c` computed first, as torch evaluates `x - a * b * e`.
    fn minus(x: &Tensor, c: f32, e: &Tensor) -> Result<Tensor, DiffusionError> {
        Ok((x - (e * f64::from(c))?)?)
    }

    fn step1(
        &mut self,
        x: &Tensor,
        t: f32,
        t_next: f32,
        cache: &mut EpsCache,
    ) -> Result<Tensor, DiffusionError> {
        let h = t_next - t;
        let eps = self.eps_at(&mut cache.eps, x, t)?;
        Self::minus(x, sigma_of_t(t_next) * h.exp_m1(), &eps)
    }

    fn step2(
        &mut self,
        x: &Tensor,
        t: f32,
        t_next: f32,
        r1: f64,
        cache: &mut EpsCache,
    ) -> Result<Tensor, DiffusionError> {
        let h = t_next - t;
        let eps = self.eps_at(&mut cache.eps, x, t)?;
        let s1 = t + r1 as f32 * h;
        let u1 = Self::minus(x, sigma_of_t(s1) * (r1 as f32 * h).exp_m1(), &eps)?;
        let eps_r1 = self.eps_at(&mut cache.eps_r1, &u1, s1)?;
        let sn = sigma_of_t(t_next);
        let x2 = Self::minus(x, sn * h.exp_m1(), &eps)?;
        Self::minus(&x2, sn / (2.0 * r1) as f32 * h.exp_m1(), &(eps_r1 - &eps)?)
    }

    fn step3(
        &mut self,
        x: &Tensor,
        t: f32,
        t_next: f32,
        cache: &mut EpsCache,
    ) -> Result<Tensor, DiffusionError> {
        let (r1, r2) = (1.0f64 / 3.0, 2.0f64 / 3.0);
        let h = t_next - t;
        let eps = self.eps_at(&mut cache.eps, x, t)?;
        let s1 = t + r1 as f32 * h;
        let s2 = t + r2 as f32 * h;
        let u1 = Self::minus(x, sigma_of_t(s1) * (r1 as f32 * h).exp_m1(), &eps)?;
        let eps_r1 = self.eps_at(&mut cache.eps_r1, &u1, s1)?;
        let r2h = r2 as f32 * h;
        let u2 = Self::minus(x, sigma_of_t(s2) * r2h.exp_m1(), &eps)?;
        let c2 = sigma_of_t(s2) * (r2 / r1) as f32 * (r2h.exp_m1() / r2h - 1.0);
        let u2 = Self::minus(&u2, c2, &(&eps_r1 - &eps)?)?;
        let eps_r2 = self.eps(&u2, s2)?;
        let sn = sigma_of_t(t_next);
        let x3 = Self::minus(x, sn * h.exp_m1(), &eps)?;
        Self::minus(&x3, sn / r2 as f32 * (h.exp_m1() / h - 1.0), &(eps_r2 - &eps)?)
    }

    /// The ancestral split of a step from t to t_next with η = 1: (t of σ_down capped at
    /// t_end, σ_up measured against σ(t_next)).
    fn ancestral(t: f32, t_next: f32, t_end: f32) -> (f32, f32) {
        let (down, _) = ancestral_step(sigma_of_t(t), sigma_of_t(t_next));
        let t_down = t_end.min(t_of_sigma(down));
        let (a, b) = (sigma_of_t(t_next), sigma_of_t(t_down));
        (t_down, (a * a - b * b).sqrt())
    }
}

/// A1111's "DPM fast" and "DPM adaptive": k-diffusion's `sample_dpm_fast` (`n` evaluations in
/// 3rd-order steps) and `sample_dpm_adaptive` (order 3, rtol 0.05, atol 0.0078, h_init 0.05, PID
/// I-controller), both with A1111's η = 1 (one noise draw per step taken) between `sigma_max` and
/// `sigma_min`. `x` is already scaled to σ_max. Returns the result and the model evaluations.
pub fn sample_dpm_solver(
    sampler: Sampler,
    model: &mut dyn Denoiser,
    mut x: Tensor,
    (sigma_min, sigma_max): (f32, f32),
    n: usize,
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    let mut solver = DpmSolver {
        model,
        evaluations: 0,
    };
    let (t_start, t_end) = (t_of_sigma(sigma_max), t_of_sigma(sigma_min));
    if sampler == Sampler::DpmFast {
        let m = n / 3 + 1;
        let ts = super::schedule::linspace_f32(t_start, t_end, m + 1);
        // m steps of order 3 ending in (2, 1) or in n mod 3: exactly n evaluations.
        let orders = if n.is_multiple_of(3) {
            let mut o = vec![3; m.saturating_sub(2)];
            o.extend([2, 1]);
            o
        } else {
            let mut o = vec![3; m - 1];
            o.push(n % 3);
            o
        };
        let total = orders.len();
        for (i, &order) in orders.iter().enumerate() {
            let mut cache = EpsCache::default();
            let (t, t_next) = (ts[i], ts[i + 1]);
            let (t_down, su) = DpmSolver::ancestral(t, t_next, t_end);
            let eps = solver.eps_at(&mut cache.eps, &x, t)?;
            solver.model.set_sampling_step(i);
            let denoised = DpmSolver::minus(&x, sigma_of_t(t), &eps)?;
            x = match order {
                1 => solver.step1(&x, t, t_down, &mut cache)?,
                2 => solver.step2(&x, t, t_down, 0.5, &mut cache)?,
                _ => solver.step3(&x, t, t_down, &mut cache)?,
            };
            x = axpy(&x, &noise.next_noise()?, su)?;
            callback(i, total, &x, &denoised)?;
        }
        return Ok(x);
    }
    // Adaptive: order 3, the embedded 2nd-order step estimates the error.
    let (rtol, atol) = (0.05f32, 0.0078f32);
    let mut pid = PidController::new(0.05, 1.5);
    let mut s = t_start;
    let mut x_prev = x.clone();
    let numel_sqrt = (x.elem_count() as f64).sqrt() as f32;
    let mut step = 0;
    let mut accepted = 0;
    while s < t_end - 1e-5 {
        let mut cache = EpsCache::default();
        let t = t_end.min(s + pid.h as f32);
        let (t_down, su) = DpmSolver::ancestral(s, t, t_end);
        let eps = solver.eps_at(&mut cache.eps, &x, s)?;
        let denoised = DpmSolver::minus(&x, sigma_of_t(s), &eps)?;
        let x_low = solver.step2(&x, s, t_down, 1.0 / 3.0, &mut cache)?;
        let x_high = solver.step3(&x, s, t_down, &mut cache)?;
        let delta = (x_low.abs()?.maximum(&x_prev.abs()?)? * f64::from(rtol))?.maximum(atol)?;
        let ratio = ((&x_low - &x_high)? / delta)?;
        let norm = ratio.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt();
        let error = norm / numel_sqrt;
        if pid.propose_step(f64::from(error)) {
            x_prev = x_low;
            x = axpy(&x_high, &noise.next_noise()?, su)?;
            s = t;
            // k-diffusion calls back with i = accepted steps − 1.
            solver.model.set_sampling_step(accepted);
            accepted += 1;
        }
        // Progress: the fraction of the t range covered, on a scale of 100.
        let done = ((s - t_start) / (t_end - t_start) * 100.0).clamp(0.0, 99.0) as usize;
        callback(done, 100, &x, &denoised)?;
        step += 1;
        if step > 100_000 {
            return Err(DiffusionError::Input(
                "DPM adaptive did not converge; choose another sampler".into(),
            ));
        }
    }
    Ok(x)
}

/// k-diffusion's `PIDStepSizeController` with A1111's coefficients (p 0, i 1, d 0), in f64 like
/// Python floats.
struct PidController {
    h: f64,
    b1: f64,
    errs: Option<[f64; 3]>,
}

impl PidController {
    fn new(h: f64, order: f64) -> Self {
        Self {
            h,
            b1: 1.0 / order,
            errs: None,
        }
    }

    fn propose_step(&mut self, error: f64) -> bool {
        const ACCEPT_SAFETY: f64 = 0.81;
        let inv = 1.0 / (error + 1e-8);
        let errs = self.errs.get_or_insert([inv; 3]);
        errs[0] = inv;
        // b2 = b3 = 0: the other factors are x⁰ = 1.
        let factor = errs[0].powf(self.b1);
        let factor = 1.0 + (factor - 1.0).atan();
        let accept = factor >= ACCEPT_SAFETY;
        if accept {
            errs[2] = errs[1];
            errs[1] = errs[0];
        }
        self.h *= factor;
        accept
    }
}

/// The SDE samplers A1111 runs with its Brownian-tree noise (`brownian_noise` in its sampler
/// table): k-diffusion's `sample_dpmpp_sde` (r = ½), `sample_dpmpp_2m_sde` (midpoint, or Heun
/// for "DPM++ 2M SDE Heun") and `sample_dpmpp_3m_sde`, all with η = 1 and s_noise = 1.
pub fn sample_sde(
    sampler: Sampler,
    model: &mut dyn Denoiser,
    mut x: Tensor,
    sigmas: &[f32],
    brownian: &mut BrownianNoise,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    let steps = sigmas.len().saturating_sub(1);
    let mut old: Option<Tensor> = None;
    let mut older: Option<Tensor> = None;
    let (mut h_1, mut h_2): (Option<f32>, Option<f32>) = (None, None);
    for i in 0..steps {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let denoised = model.denoise(&x, s)?;
        model.set_sampling_step(i);
        if s_next == 0.0 {
            x = match sampler {
                // DPM++ SDE ends with an Euler step, the multistep ones with the denoised latents.
                Sampler::DpmPpSde => axpy(&x, &to_d(&x, s, &denoised)?, s_next - s)?,
                _ => denoised.clone(),
            };
            callback(i, steps, &x, &denoised)?;
            continue;
        }
        let (t, t_next) = (-s.ln(), -s_next.ln());
        let h = t_next - t;
        match sampler {
            Sampler::DpmPpSde => {
                let sigma_fn = |t: f32| (-t).exp();
                let t_mid = t + h * 0.5;
                let (down, up) = ancestral_step(sigma_fn(t), sigma_fn(t_mid));
                let t_down = -down.ln();
                let x2 = ((&x * f64::from(sigma_fn(t_down) / sigma_fn(t)))?
                    - (&denoised * f64::from((t - t_down).exp_m1()))?)?;
                let x2 = axpy(&x2, &brownian.sample(sigma_fn(t), sigma_fn(t_mid))?, up)?;
                // (1 − fac)·denoised + fac·denoised_2 with fac = 1 is denoised_2.
                let denoised2 = model.denoise(&x2, sigma_fn(t_mid))?;
                let (down, up) = ancestral_step(sigma_fn(t), sigma_fn(t_next));
                let t_down = -down.ln();
                x = ((&x * f64::from(sigma_fn(t_down) / sigma_fn(t)))?
                    - (&denoised2 * f64::from((t - t_down).exp_m1()))?)?;
                x = axpy(&x, &brownian.sample(sigma_fn(t), sigma_fn(t_next))?, up)?;
            }
            Sampler::DpmPp2MSde | Sampler::DpmPp2MSdeHeun => {
                let eta_h = h;
                let c = -(-h - eta_h).exp_m1();
                x = ((&x * f64::from(s_next / s * (-eta_h).exp()))? + (&denoised * f64::from(c))?)?;
                if let (Some(prev), Some(h_last)) = (&old, h_1) {
                    let r = h_last / h;
                    let k = if sampler == Sampler::DpmPp2MSdeHeun {
                        (c / (-h - eta_h) + 1.0) * (1.0 / r)
                    } else {
                        0.5 * c * (1.0 / r)
                    };
                    x = axpy(&x, &(&denoised - prev)?, k)?;
                }
                let noise = (brownian.sample(s, s_next)? * f64::from(s_next))?;
                x = axpy(&x, &noise, (-(-2.0 * eta_h).exp_m1()).sqrt())?;
            }
            Sampler::DpmPp3MSde => {
                let h_eta = h * 2.0;
                x = ((&x * f64::from((-h_eta).exp()))? + (&denoised * f64::from(-(-h_eta).exp_m1()))?)?;
                let phi_2 = (-h_eta).exp_m1() / h_eta + 1.0;
                match (&old, &older, h_1, h_2) {
                    (Some(d_1), Some(d_2), Some(h_1), Some(h_2)) => {
                        let (r0, r1) = (h_1 / h, h_2 / h);
                        let d1_0 = ((&denoised - d_1)? / f64::from(r0))?;
                        let d1_1 = ((d_1 - d_2)? / f64::from(r1))?;
                        let diff = (&d1_0 - &d1_1)?;
                        let d1 = (&d1_0 + ((&diff * f64::from(r0))? / f64::from(r0 + r1))?)?;
                        let d2 = (diff / f64::from(r0 + r1))?;
                        let phi_3 = phi_2 / h_eta - 0.5;
                        x = axpy(&x, &d1, phi_2)?;
                        x = (&x - (d2 * f64::from(phi_3))?)?;
                    }
                    (Some(d_1), _, Some(h_1), _) => {
                        let d = ((&denoised - d_1)? / f64::from(h_1 / h))?;
                        x = axpy(&x, &d, phi_2)?;
                    }
                    _ => {}
                }
                let noise = (brownian.sample(s, s_next)? * f64::from(s_next))?;
                x = axpy(&x, &noise, (-(-2.0 * h).exp_m1()).sqrt())?;
            }
            _ => {
                return Err(DiffusionError::Input(format!(
                    "{sampler} is not a Brownian-noise sampler"
                )));
            }
        }
        older = old.replace(denoised.clone());
        h_2 = h_1.replace(h);
        callback(i, steps, &x, &denoised)?;
    }
    Ok(x)
}

/// A1111's DDIM (η = 0) over `timesteps` from [`super::schedule::ddim_timesteps`]; `x` is the raw noise.
/// Makes `len − 1` model evaluations and ends at ᾱ[timesteps[0]].
pub fn sample_ddim(
    model: &mut dyn EpsModel,
    x: Tensor,
    timesteps: &[usize],
    alphas_cumprod: &[f32],
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    ddim_loop(model, x, timesteps, alphas_cumprod, noise, callback, false)
}

/// A1111's "DDIM CFG++" (`sd_samplers_timesteps_impl.ddim_cfgpp`, η = 0): DDIM whose x0 comes from
/// the guided noise prediction (the model's CFG scale divided by 12.5) and whose direction to x_t
/// comes from the unconditional prediction ([`EpsModel::last_uncond_eps`]).
pub fn sample_ddim_cfgpp(
    model: &mut dyn EpsModel,
    x: Tensor,
    timesteps: &[usize],
    alphas_cumprod: &[f32],
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    ddim_loop(model, x, timesteps, alphas_cumprod, noise, callback, true)
}

/// x0 and the DDIM step to ᾱ_prev for a noise prediction `e_t` at ᾱ_t (`direction` is the noise
/// that points to x_t: `e_t` itself, or the unconditional prediction for CFG++).
fn ddim_step(
    x: &Tensor,
    e_t: &Tensor,
    direction: &Tensor,
    a_t: f32,
    a_prev: f32,
) -> Result<(Tensor, Tensor), DiffusionError> {
    let sqrt_one_minus_at = (1.0 - a_t).sqrt();
    let pred_x0 = ((x - (e_t * f64::from(sqrt_one_minus_at))?)? / f64::from(a_t.sqrt()))?;
    let dir_xt = (direction * f64::from((1.0 - a_prev).sqrt()))?;
    let x_prev = ((&pred_x0 * f64::from(a_prev.sqrt()))? + dir_xt)?;
    Ok((x_prev, pred_x0))
}

fn ddim_loop(
    model: &mut dyn EpsModel,
    mut x: Tensor,
    timesteps: &[usize],
    alphas_cumprod: &[f32],
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
    cfgpp: bool,
) -> Result<Tensor, DiffusionError> {
    let n = timesteps.len();
    let steps = n.saturating_sub(1);
    for i in 0..steps {
        let index = n - 1 - i;
        let a_t = alphas_cumprod[timesteps[index]];
        let a_prev = alphas_cumprod[timesteps[index - 1]];
        let e_t = model.eps(&x, timesteps[index])?;
        let direction = if cfgpp {
            model.last_uncond_eps().ok_or_else(|| {
                DiffusionError::Input("DDIM CFG++ needs the unconditional prediction".into())
            })?
        } else {
            e_t.clone()
        };
        let (x_prev, pred_x0) = ddim_step(&x, &e_t, &direction, a_t, a_prev)?;
        // η = 0 makes σ_t = 0, but A1111 still draws (and multiplies by zero) one noise per step.
        let drawn = noise.next_noise()?;
        x = (x_prev + (drawn * 0.0)?)?;
        model.set_sampling_step(i);
        callback(i, steps, &x, &pred_x0)?;
    }
    Ok(x)
}

/// A1111's PLMS (`sd_samplers_timesteps_impl.plms`): a pseudo improved Euler first step (two model
/// evaluations), then Adams–Bashforth steps of order 2, 3 and 4 on the noise predictions. No noise.
pub fn sample_plms(
    model: &mut dyn EpsModel,
    mut x: Tensor,
    timesteps: &[usize],
    alphas_cumprod: &[f32],
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    let n = timesteps.len();
    let steps = n.saturating_sub(1);
    let mut old_eps: Vec<Tensor> = Vec::new();
    for i in 0..steps {
        let index = n - 1 - i;
        let a_t = alphas_cumprod[timesteps[index]];
        let a_prev = alphas_cumprod[timesteps[index - 1]];
        let e_t = model.eps(&x, timesteps[index])?;
        let e_prime = match old_eps.len() {
            0 => {
                let (x_prev, _) = ddim_step(&x, &e_t, &e_t, a_t, a_prev)?;
                let e_next = model.eps(&x_prev, timesteps[index.saturating_sub(1)])?;
                ((&e_t + e_next)? / 2.0)?
            }
            1 => (((&e_t * 3.0)? - &old_eps[0])? / 2.0)?,
            2 => ((((&e_t * 23.0)? - (&old_eps[1] * 16.0)?)? + (&old_eps[0] * 5.0)?)? / 12.0)?,
            _ => {
                let k = old_eps.len();
                ((((((&e_t * 55.0)? - (&old_eps[k - 1] * 59.0)?)? + (&old_eps[k - 2] * 37.0)?)?
                    - (&old_eps[k - 3] * 9.0)?)?)
                    / 24.0)?
            }
        };
        let (x_prev, pred_x0) = ddim_step(&x, &e_prime, &e_prime, a_t, a_prev)?;
        old_eps.push(e_t);
        if old_eps.len() >= 4 {
            old_eps.remove(0);
        }
        x = x_prev;
        model.set_sampling_step(i);
        callback(i, steps, &x, &pred_x0)?;
    }
    Ok(x)
}

/// A1111's `NoiseScheduleVP('discrete')` (UniPC's noise schedule): log α(t) = ½·log ᾱ, piecewise
/// linear in t on the grid t_n = (n + 1)/N, extended by its outermost segments; f32 like torch.
struct DiscreteVp {
    t: Vec<f32>,
    log_alpha: Vec<f32>,
}

impl DiscreteVp {
    fn new(alphas_cumprod: &[f32]) -> Self {
        let n = alphas_cumprod.len();
        Self {
            t: linspace_f32(0.0, 1.0, n + 1).split_off(1),
            log_alpha: alphas_cumprod.iter().map(|a| 0.5 * a.ln()).collect(),
        }
    }

    /// log α(t) (`marginal_log_mean_coeff`): a point on a grid time uses the segment ending there.
    fn log_alpha(&self, t: f32) -> f32 {
        let below = self.t.partition_point(|&x| x < t);
        let j = below.saturating_sub(1).min(self.t.len() - 2);
        let (x0, x1) = (self.t[j], self.t[j + 1]);
        let (y0, y1) = (self.log_alpha[j], self.log_alpha[j + 1]);
        y0 + (t - x0) * (y1 - y0) / (x1 - x0)
    }

    /// σ(t) = sqrt(1 − α(t)²) (`marginal_std`).
    fn std(&self, t: f32) -> f32 {
        (1.0 - (2.0 * self.log_alpha(t)).exp()).sqrt()
    }

    /// λ(t) = log α − log σ (`marginal_lambda`).
    fn lambda(&self, t: f32) -> f32 {
        let l = self.log_alpha(t);
        l - 0.5 * (1.0 - (2.0 * l).exp()).ln()
    }
}

/// Solves `a·x = b` (n ≤ 10) by Gaussian elimination with partial pivoting in f64; torch's
/// `linalg.solve` does the same in f32.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f32>, DiffusionError> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        if a[pivot][col] == 0.0 || !a[pivot][col].is_finite() {
            return Err(DiffusionError::Input(
                "UniPC: its coefficient system is singular (two steps at the same noise level)".into(),
            ));
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let (upper, lower) = a.split_at_mut(row);
            let (pivot_row, target) = (&upper[col], &mut lower[0]);
            let f = target[col] / pivot_row[col];
            for (t, p) in target[col..].iter_mut().zip(&pivot_row[col..]) {
                *t -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0f64; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Ok(x.into_iter().map(|v| v as f32).collect())
}

/// Σ_k w_k·t_k (torch's `einsum('k,bkchw->bchw')`), or `None` for no terms.
fn weighted_sum(weights: &[f32], terms: &[Tensor]) -> Result<Option<Tensor>, DiffusionError> {
    let mut sum: Option<Tensor> = None;
    for (w, t) in weights.iter().zip(terms) {
        let term = (t * f64::from(*w))?;
        sum = Some(match sum {
            None => term,
            Some(acc) => (acc + term)?,
        });
    }
    Ok(sum)
}

/// A1111's UniPC (`modules/models/diffusion/uni_pc/uni_pc.py` as `sd_samplers_timesteps_impl.unipc`
/// runs it): data prediction, multistep, `time_uniform` times from `t_start` (1 in txt2img) to
/// 1/N, `steps` updates, each but the last with a corrector evaluation; `steps` UNet evaluations
/// in all. `x` is the raw noise (txt2img) or the noised image latents.
pub fn sample_unipc(
    model: &mut dyn EpsModel,
    mut x: Tensor,
    alphas_cumprod: &[f32],
    steps: usize,
    t_start: Option<f32>,
    options: UniPcOptions,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    let order = options.order;
    if order == 0 || steps < order {
        return Err(DiffusionError::Input(format!(
            "UniPC of order {order} needs at least {order} steps, and this job gives it {steps}: \
             raise the steps (or the denoising strength)"
        )));
    }
    if alphas_cumprod.len() < 2 {
        return Err(DiffusionError::Input("UniPC needs the model's ᾱ table".into()));
    }
    let vp = DiscreteVp::new(alphas_cumprod);
    let n_train = alphas_cumprod.len();
    // Python's 1. / total_N, rounded to f32 where torch meets it.
    let t_0 = (1.0 / n_train as f64) as f32;
    let times = linspace_f32(t_start.unwrap_or(1.0), t_0, steps + 1);

    // UniPCCFG.model at (t − 1/N)·1000, then x0 = (x − σ_t·ε)/α_t.
    let data_prediction = |model: &mut dyn EpsModel, x: &Tensor, t: f32| {
        let t_input = (t - t_0) * 1000.0;
        let eps = model.eps_at(x, f64::from(t_input))?;
        let l = vp.log_alpha(t);
        let (alpha, sigma) = (l.exp(), (1.0 - (2.0 * l).exp()).sqrt());
        Ok::<_, DiffusionError>(((x - (eps * f64::from(sigma))?)? / f64::from(alpha))?)
    };

    // One `multistep_uni_pc_bh_update` from the newest (time, x0) pair to time `t`.
    let update = |model: &mut dyn EpsModel,
                  x: &Tensor,
                  models: &[Tensor],
                  ts: &[f32],
                  t: f32,
                  order: usize,
                  use_corrector: bool|
     -> Result<(Tensor, Option<Tensor>), DiffusionError> {
        let last = ts.len() - 1;
        let lambda_prev_0 = vp.lambda(ts[last]);
        let h = vp.lambda(t) - lambda_prev_0;
        let m0 = &models[last];
        let (sigma_prev_0, sigma_t) = (vp.std(ts[last]), vp.std(t));
        let alpha_t = vp.log_alpha(t).exp();
        let mut rks = Vec::with_capacity(order);
        let mut d1s = Vec::with_capacity(order);
        for i in 1..order {
            let rk = (vp.lambda(ts[last - i]) - lambda_prev_0) / h;
            rks.push(rk);
            d1s.push(((&models[last - i] - m0)? / f64::from(rk))?);
        }
        rks.push(1.0);
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let b_h = match options.variant {
            UniPcVariant::Bh1 => hh,
            UniPcVariant::Bh2 => hh.exp_m1(),
        };
        let mut factorial: u64 = 1;
        let mut r = Vec::with_capacity(order);
        let mut b = Vec::with_capacity(order);
        for i in 1..=order {
            r.push(
                rks.iter()
                    .map(|&rk| f64::from(rk.powi(i as i32 - 1)))
                    .collect::<Vec<_>>(),
            );
            b.push(f64::from(h_phi_k * factorial as f32 / b_h));
            factorial *= i as u64 + 1;
            h_phi_k = h_phi_k / hh - (1.0 / factorial as f64) as f32;
        }
        let x_t_ = ((x * f64::from(sigma_t / sigma_prev_0))? - (m0 * f64::from(alpha_t * h_phi_1))?)?;
        let scale = f64::from(alpha_t * b_h);
        let x_t = if d1s.is_empty() {
            x_t_.clone()
        } else {
            let rhos_p = if order == 2 {
                vec![0.5]
            } else {
                let sub = r[..order - 1]
                    .iter()
                    .map(|row| row[..order - 1].to_vec())
                    .collect();
                solve(sub, b[..order - 1].to_vec())?
            };
            match weighted_sum(&rhos_p, &d1s)? {
                Some(pred_res) => (&x_t_ - (pred_res * scale)?)?,
                None => x_t_.clone(),
            }
        };
        if !use_corrector {
            return Ok((x_t, None));
        }
        let rhos_c = if order == 1 { vec![0.5] } else { solve(r, b)? };
        let model_t = data_prediction(model, &x_t, t)?;
        let d1_t = (&model_t - m0)?;
        let last_rho = f64::from(rhos_c[order - 1]);
        let corr = match weighted_sum(&rhos_c[..order - 1], &d1s)? {
            Some(corr_res) => (corr_res + (d1_t * last_rho)?)?,
            None => (d1_t * last_rho)?,
        };
        Ok(((&x_t_ - (corr * scale)?)?, Some(model_t)))
    };

    let mut ts = vec![times[0]];
    let mut models = vec![data_prediction(model, &x, times[0])?];
    let mut index = 0;
    let mut report = |model: &mut dyn EpsModel, x: &Tensor, x0: Option<&Tensor>, index: &mut usize| {
        // UniPCCFG.after_update: the callback with i = index, then index + 1.
        model.set_sampling_step(*index);
        callback(*index, steps, x, x0.unwrap_or(x))?;
        *index += 1;
        Ok::<_, DiffusionError>(())
    };
    // The first `order − 1` updates warm up with the orders the history allows.
    for (init_order, &t) in times.iter().enumerate().take(order).skip(1) {
        let (next, model_x) = update(model, &x, &models, &ts, t, init_order, true)?;
        x = next;
        let model_x = match model_x {
            Some(m) => m,
            None => data_prediction(model, &x, t)?,
        };
        report(model, &x, Some(&model_x), &mut index)?;
        models.push(model_x);
        ts.push(t);
    }
    for (step, &t) in times.iter().enumerate().skip(order) {
        let step_order = if options.lower_order_final {
            order.min(steps + 1 - step)
        } else {
            order
        };
        let (next, model_x) = update(model, &x, &models, &ts, t, step_order, step != steps)?;
        x = next;
        report(model, &x, model_x.as_ref(), &mut index)?;
        if step < steps {
            let model_x = match model_x {
                Some(m) => m,
                None => data_prediction(model, &x, t)?,
            };
            ts.remove(0);
            ts.push(t);
            models.remove(0);
            models.push(model_x);
        }
    }
    Ok(x)
}

/// diffusers' `TCDScheduler` (Trajectory Consistency Distillation) over `timesteps` (from
/// [`super::schedule::tcd_timesteps`]; img2img passes the tail it runs), with `x` at the noise
/// level of `timesteps[0]`. Each step predicts x0, moves it to the earlier timestep ⌊(1 − γ)·t_prev⌋ and, but on
/// the last step and for γ > 0, adds fresh noise up to t_prev (the image RNG's next draw). The last
/// step ends at ᾱ[0], like diffusers.
pub fn sample_tcd(
    model: &mut dyn EpsModel,
    mut x: Tensor,
    timesteps: &[usize],
    alphas_cumprod: &[f32],
    gamma: f64,
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    let n = timesteps.len();
    // Python's (1 − eta) times a long tensor: f32 arithmetic.
    let keep = (1.0 - gamma) as f32;
    for (i, &t) in timesteps.iter().enumerate() {
        let t_prev = timesteps.get(i + 1).copied().unwrap_or(0);
        let t_s = (keep * t_prev as f32).floor() as usize;
        let a_t = alphas_cumprod[t];
        let a_prev = alphas_cumprod[t_prev];
        let a_s = alphas_cumprod[t_s];
        let eps = model.eps(&x, t)?;
        let x0 = ((&x - (&eps * f64::from((1.0 - a_t).sqrt()))?)? / f64::from(a_t.sqrt()))?;
        let noised = ((&x0 * f64::from(a_s.sqrt()))? + (&eps * f64::from((1.0 - a_s).sqrt()))?)?;
        x = if gamma > 0.0 && i != n - 1 {
            let ratio = a_prev / a_s;
            let z = noise.next_noise()?;
            ((noised * f64::from(ratio.sqrt()))? + (z * f64::from((1.0 - ratio).sqrt()))?)?
        } else {
            noised
        };
        model.set_sampling_step(i);
        callback(i, n, &x, &x0)?;
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    struct Zero;
    impl Denoiser for Zero {
        fn denoise(&mut self, x: &Tensor, _sigma: f32) -> Result<Tensor, DiffusionError> {
            Ok(x.zeros_like()?)
        }
    }
    struct Counting(usize);
    impl NoiseSource for Counting {
        fn next_noise(&mut self) -> Result<Tensor, DiffusionError> {
            self.0 += 1;
            Ok(Tensor::zeros((1, 4, 2, 2), DType::F32, &Device::Cpu)?)
        }
    }

    #[test]
    fn zero_denoiser_reaches_zero_and_counts_draws() {
        let sigmas = [14.6f32, 5.0, 1.0, 0.0];
        for (sampler, draws) in [
            (Sampler::Euler, 3),
            (Sampler::EulerA, 2),
            (Sampler::Heun, 3),
            (Sampler::DpmPp2M, 0),
            (Sampler::Lcm, 2),
            (Sampler::Lms, 0),
            (Sampler::Dpm2, 3),
            (Sampler::Dpm2A, 2),
            (Sampler::DpmPp2SA, 2),
            (Sampler::Restart, 0),
        ] {
            let x = (Tensor::ones((1, 4, 2, 2), DType::F32, &Device::Cpu).unwrap() * 14.6).unwrap();
            let mut noise = Counting(0);
            let mut steps = 0;
            let out = sample_k(sampler, &mut Zero, x, &sigmas, &mut noise, &mut |_, _, _, _| {
                steps += 1;
                Ok(())
            })
            .unwrap();
            let max = out.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(max < 1e-5, "{sampler:?}: {max}");
            assert_eq!(noise.0, draws, "{sampler:?}");
            assert_eq!(steps, 3);
        }
    }

    #[test]
    fn lms_coefficients_interpolate_exactly() {
        // Order 1 is Euler: the integral of 1 over [t_i, t_{i+1}].
        let t = [10.0f32, 6.0, 3.0, 1.0, 0.0];
        assert!((lms_coefficient(1, &t, 0, 0) - (-4.0)).abs() < 1e-12);
        // The coefficients of any order sum to the step length (they integrate 1 exactly).
        for order in 1..=4 {
            let i = order - 1;
            let sum: f64 = (0..order).map(|j| lms_coefficient(order, &t, i, j)).sum();
            let h = f64::from(t[i + 1]) - f64::from(t[i]);
            assert!((sum - h).abs() < 1e-12, "order {order}: {sum} vs {h}");
        }
    }

    #[test]
    fn dpm_fast_uses_exactly_n_evaluations() {
        struct CountingModel(usize);
        impl Denoiser for CountingModel {
            fn denoise(&mut self, x: &Tensor, _sigma: f32) -> Result<Tensor, DiffusionError> {
                self.0 += 1;
                Ok((x * 0.5)?)
            }
        }
        for n in 1..=8 {
            let mut model = CountingModel(0);
            let x = Tensor::ones((1, 4, 2, 2), DType::F32, &Device::Cpu).unwrap();
            sample_dpm_solver(
                Sampler::DpmFast,
                &mut model,
                x,
                (0.03, 14.6),
                n,
                &mut Counting(0),
                &mut |_, _, _, _| Ok(()),
            )
            .unwrap();
            assert_eq!(model.0, n, "n = {n}");
        }
    }

    /// An eps model that counts its calls and records the model times it saw.
    struct CountingEps(Vec<f64>);
    impl EpsModel for CountingEps {
        fn eps_at(&mut self, x: &Tensor, t: f64) -> Result<Tensor, DiffusionError> {
            self.0.push(t);
            Ok((x * 0.1)?)
        }
    }

    fn sd15_alphas() -> Vec<f32> {
        crate::models::config::NoiseSchedule::sd15().alphas_cumprod()
    }

    #[test]
    fn unipc_evaluates_once_per_step_and_refuses_too_few_steps() {
        let alphas = sd15_alphas();
        for steps in 3..=8 {
            let mut model = CountingEps(Vec::new());
            let mut callbacks = 0;
            let x = Tensor::ones((1, 4, 2, 2), DType::F32, &Device::Cpu).unwrap();
            let out = sample_unipc(
                &mut model,
                x,
                &alphas,
                steps,
                None,
                UniPcOptions::default(),
                &mut |i, total, _, _| {
                    assert_eq!((i, total), (callbacks, steps));
                    callbacks += 1;
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(model.0.len(), steps, "steps {steps}");
            assert_eq!(callbacks, steps);
            // The first evaluation is at model time (1 − 1/1000)·1000 = 999.
            assert!((model.0[0] - 999.0).abs() < 1e-3, "{:?}", model.0);
            assert!(
                out.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    .is_finite()
            );
        }
        let x = Tensor::ones((1, 4, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let err = sample_unipc(
            &mut CountingEps(Vec::new()),
            x,
            &alphas,
            2,
            None,
            UniPcOptions::default(),
            &mut |_, _, _, _| Ok(()),
        )
        .expect_err("fewer steps than the order");
        assert!(err.to_string().contains("at least 3 steps"), "{err}");
    }

    #[test]
    fn tcd_draws_noise_on_every_step_but_the_last() {
        let alphas = sd15_alphas();
        let timesteps = [999, 759, 499, 259];
        for (gamma, start, draws) in [(0.3, 0, 3), (0.0, 0, 0), (0.3, 2, 1)] {
            let mut noise = Counting(0);
            let mut model = CountingEps(Vec::new());
            let x = Tensor::ones((1, 4, 2, 2), DType::F32, &Device::Cpu).unwrap();
            sample_tcd(
                &mut model,
                x,
                &timesteps[start..],
                &alphas,
                gamma,
                &mut noise,
                &mut |_, _, _, _| Ok(()),
            )
            .unwrap();
            assert_eq!(noise.0, draws, "gamma {gamma}, start {start}");
            assert_eq!(
                model.0,
                timesteps[start..].iter().map(|&t| t as f64).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn cancel_stops_within_one_step() {
        let sigmas = [14.6f32, 5.0, 1.0, 0.0];
        let x = Tensor::ones((1, 4, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let mut steps = 0;
        let r = sample_k(
            Sampler::Euler,
            &mut Zero,
            x,
            &sigmas,
            &mut Counting(0),
            &mut |_, _, _, _| {
                steps += 1;
                Err(DiffusionError::Cancelled)
            },
        );
        assert!(matches!(r, Err(DiffusionError::Cancelled)));
        assert_eq!(steps, 1);
    }
}
