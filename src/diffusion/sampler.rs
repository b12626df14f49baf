//! The samplers A1111 offers, with k-diffusion's update rules and A1111's random-draw order.
//! Each sampler drives a denoiser over a σ schedule and reports every step to a callback that may cancel.

use candle_core::Tensor;

use super::DiffusionError;
use crate::params::Sampler;

/// A k-diffusion denoiser: latents at noise level σ → predicted clean latents (x0).
pub trait Denoiser {
    /// Predicts x0 from `x` at noise level `sigma`.
    fn denoise(&mut self, x: &Tensor, sigma: f32) -> Result<Tensor, DiffusionError>;
}

/// An eps-prediction model at an integer DDPM timestep (what A1111's DDIM drives).
pub trait EpsModel {
    /// Predicts the noise in `x` at timestep `t`.
    fn eps(&mut self, x: &Tensor, t: usize) -> Result<Tensor, DiffusionError>;
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

/// Runs a k-diffusion sampler from `x` (already scaled by σ₀) over `sigmas` (ending in 0).
pub fn sample_k(
    sampler: Sampler,
    model: &mut dyn Denoiser,
    mut x: Tensor,
    sigmas: &[f32],
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
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
                let d = to_d(&x, s, &denoised)?;
                x = axpy(&x, &d, s_next - s)?;
                denoised
            }
            Sampler::EulerA => {
                let denoised = model.denoise(&x, s)?;
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
                x = denoised.clone();
                if s_next > 0.0 {
                    x = axpy(&x, &noise.next_noise()?, s_next)?;
                }
                denoised
            }
            Sampler::Lms => {
                const ORDER: usize = 4;
                let denoised = model.denoise(&x, s)?;
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
                let d = to_d(&x, s, &denoised)?;
                if s_next == 0.0 {
                    x = axpy(&x, &d, s_next - s)?;
                } else {
                    let sigma_mid = lerp_half(s.ln(), s_next.ln()).exp();
                    let x2 = axpy(&x, &d, sigma_mid - s)?;
                    let denoised2 = model.denoise(&x2, sigma_mid)?;
                    let d2 = to_d(&x2, sigma_mid, &denoised2)?;
                    x = axpy(&x, &d2, s_next - s)?;
                }
                denoised
            }
            Sampler::Dpm2A => {
                let denoised = model.denoise(&x, s)?;
                let (down, up) = ancestral_step(s, s_next);
                let d = to_d(&x, s, &denoised)?;
                if down == 0.0 {
                    x = axpy(&x, &d, down - s)?;
                } else {
                    let sigma_mid = lerp_half(s.ln(), down.ln()).exp();
                    let x2 = axpy(&x, &d, sigma_mid - s)?;
                    let denoised2 = model.denoise(&x2, sigma_mid)?;
                    let d2 = to_d(&x2, sigma_mid, &denoised2)?;
                    x = axpy(&x, &d2, down - s)?;
                    // k-diffusion@ab527a9 adds the noise only after a DPM-Solver-2 step.
                    x = axpy(&x, &noise.next_noise()?, up)?;
                }
                denoised
            }
            Sampler::DpmPp2SA => {
                let denoised = model.denoise(&x, s)?;
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
            Sampler::Ddim => {
                return Err(DiffusionError::Input(
                    "DDIM runs on timesteps, not through the k-diffusion loop".into(),
                ));
            }
        };
        callback(i, steps, &x, &denoised)?;
    }
    Ok(x)
}

/// A1111's DDIM (η = 0) over `timesteps` from [`super::schedule::ddim_timesteps`]; `x` is the raw noise.
/// Makes `len − 1` model evaluations and ends at ᾱ[timesteps[0]].
pub fn sample_ddim(
    model: &mut dyn EpsModel,
    mut x: Tensor,
    timesteps: &[usize],
    alphas_cumprod: &[f32],
    noise: &mut dyn NoiseSource,
    callback: &mut StepCallback<'_>,
) -> Result<Tensor, DiffusionError> {
    let n = timesteps.len();
    let steps = n.saturating_sub(1);
    for i in 0..steps {
        let index = n - 1 - i;
        let a_t = alphas_cumprod[timesteps[index]];
        let a_prev = alphas_cumprod[timesteps[index - 1]];
        let e_t = model.eps(&x, timesteps[index])?;
        let sqrt_one_minus_at = (1.0 - a_t).sqrt();
        let pred_x0 = ((&x - (&e_t * f64::from(sqrt_one_minus_at))?)? / f64::from(a_t.sqrt()))?;
        let dir_xt = (&e_t * f64::from((1.0 - a_prev).sqrt()))?;
        // η = 0 makes σ_t = 0, but A1111 still draws (and multiplies by zero) one noise per step.
        let sigma_t = 0.0f64;
        let drawn = noise.next_noise()?;
        x = (((&pred_x0 * f64::from(a_prev.sqrt()))? + dir_xt)? + (drawn * sigma_t)?)?;
        callback(i, steps, &x, &pred_x0)?;
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
