//! The inference worker thread: owns the caches, runs one job at a time, turns what the pipeline
//! reports into [`Event`]s, and survives a panic in a job (the model is unloaded, the job fails).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Instant;

use candle_core::Tensor;

use super::cache::{Caches, LoraCache};
use super::{Event, FailureKind, Job};
use crate::diffusion::DiffusionError;
use crate::diffusion::lora_merge::Applied;
use crate::diffusion::model::SdModel;
use crate::diffusion::pipeline::{self, Observer};
use crate::diffusion::preview::latent_preview;
use crate::diffusion::taesd::{self, TinyDecoder, TinyEncoder};
use crate::infotext;
use crate::models::ModelError;
use crate::models::lora_file::{LoraError, find, find_pickle};
use crate::params::GenerationParams;
use crate::prompt::ClipTokenizer;
use crate::prompt::extra_networks::extract_tags;
use crate::request::{GeneratedImage, StepInfo, VaeDecoder, VaeEncoder};

struct JobObserver<'a> {
    job: &'a Job,
    /// Full-resolution previews through TAESD when a decoder was found; the latent projection otherwise.
    preview_decoder: Option<std::sync::Arc<TinyDecoder>>,
    shutdown: Option<&'a AtomicBool>,
    emit: &'a mut dyn FnMut(Event),
    started: Instant,
    batch_started: Instant,
    current_batch: usize,
}

impl Observer for JobObserver<'_> {
    fn on_step(&mut self, info: StepInfo, x0: &Tensor) -> Result<(), DiffusionError> {
        if self.job.request.previews {
            let preview = match &self.preview_decoder {
                Some(dec) => taesd::preview(dec, x0),
                None => latent_preview(x0),
            };
            match preview {
                Ok(image) => (self.emit)(Event::Preview {
                    job: self.job.id,
                    image,
                }),
                Err(err) => tracing::debug!("no preview: {err}"),
            }
        }
        if info.batch != self.current_batch {
            self.current_batch = info.batch;
            self.batch_started = Instant::now();
        }
        let batch_secs = self.batch_started.elapsed().as_secs_f64().max(1e-9);
        let steps_per_sec = info.step as f64 / batch_secs;
        let done = info.batch * info.steps + info.step;
        let total = info.batch_count * info.steps;
        let per_step = self.started.elapsed().as_secs_f64() / done.max(1) as f64;
        (self.emit)(Event::Progress {
            job: self.job.id,
            info,
            steps_per_sec,
            eta_secs: per_step * (total - done) as f64,
        });
        if self.job.cancel.load(Ordering::Relaxed) || self.shutdown.is_some_and(|s| s.load(Ordering::Relaxed))
        {
            return Err(DiffusionError::Cancelled);
        }
        Ok(())
    }

    fn on_image(&mut self, image: &GeneratedImage) {
        (self.emit)(Event::Image {
            job: self.job.id,
            image: Box::new(image.clone()),
        });
    }

    fn on_warning(&mut self, message: &str) {
        (self.emit)(Event::Warning {
            job: self.job.id,
            message: message.to_owned(),
        });
    }
}

/// Resolves the prompt's `<lora:…>` tags in `dirs`, merges them into `model` (or restores the base
/// networks when there are none) and writes A1111's `Lora hashes` into the infotext.
fn apply_loras(
    model: &mut SdModel,
    loras: &mut LoraCache,
    dirs: &[PathBuf],
    params: &mut GenerationParams,
    observer: &mut dyn Observer,
) -> Result<(), DiffusionError> {
    let (_, tags, unknown) = extract_tags(&params.prompt)?;
    for tag in unknown {
        observer.on_warning(&format!("{tag} is not something Easel knows; it was left out"));
    }
    let mut set = Vec::new();
    for tag in &tags {
        let folders = || {
            if dirs.is_empty() {
                "(no LoRA folder is configured)".to_owned()
            } else {
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let Some(path) = find(&tag.name, dirs) else {
            if let Some(pickle) = find_pickle(&tag.name, dirs) {
                return Err(ModelError::Pickle { path: pickle }.into());
            }
            return Err(LoraError::NotFound {
                name: tag.name.clone(),
                folders: folders(),
            }
            .into());
        };
        let file = loras.get(&path, &tag.name)?;
        set.push(Applied {
            lora: file,
            te: tag.te,
            unet: tag.unet,
        });
    }
    let started = Instant::now();
    let report = model.set_loras(&set)?;
    if report.matched > 0 {
        tracing::info!(
            "LoRA set applied in {:.2} s ({} modules)",
            started.elapsed().as_secs_f64(),
            report.matched
        );
    }
    let mut unmatched: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, key) in &report.unmatched {
        unmatched.entry(name).or_default().push(key);
    }
    for (name, keys) in unmatched {
        observer.on_warning(&format!(
            "LoRA '{name}': {} of its modules match nothing in this model and were skipped (e.g. {})",
            keys.len(),
            keys[0]
        ));
    }
    let hashes: Vec<(String, String)> = set
        .iter()
        .map(|a| (a.lora.name.clone(), a.lora.short_hash.clone()))
        .collect();
    infotext::set_hashes(params, infotext::LORA_HASHES, &hashes);
    Ok(())
}

/// The TAESD networks a job uses: the decoder for live previews whenever one is found and for the
/// final decode when the request asks for it; the encoder for an img2img start when asked.
struct JobTaesd {
    preview: Option<std::sync::Arc<TinyDecoder>>,
    decode: Option<std::sync::Arc<TinyDecoder>>,
    encode: Option<std::sync::Arc<TinyEncoder>>,
}

/// Finds and loads the TAESD decoder for `request`. A decoder that is missing, unreadable or made
/// for other latents is an error when the final decode needs it, and only drops the previews back
/// to the latent projection otherwise.
fn select_taesd(
    model: &SdModel,
    cache: &mut super::cache::TaesdCache,
    request: &crate::request::Request,
) -> Result<JobTaesd, DiffusionError> {
    let encode = select_taesd_encoder(model, cache, request)?;
    let wanted = request.vae_decoder == VaeDecoder::Taesd;
    if !wanted && !request.previews {
        return Ok(JobTaesd {
            preview: None,
            decode: None,
            encode,
        });
    }
    let found = cache
        .get(&request.vae_approx_dirs, &model.device, model.dtype)
        .and_then(|dec| match dec {
            Some(dec) => {
                fits_model(model, "decoder", dec.latent_channels(), dec.upscale_factor()).map(|()| Some(dec))
            }
            None => Ok(None),
        });
    match (found, wanted) {
        (Ok(Some(dec)), _) => Ok(JobTaesd {
            preview: request.previews.then(|| dec.clone()),
            decode: wanted.then_some(dec),
            encode,
        }),
        (Ok(None), true) => Err(DiffusionError::Input(taesd::missing_message(
            &request.vae_approx_dirs,
            "decoder",
        ))),
        (Err(err), true) => Err(err),
        (Ok(None), false) => Ok(JobTaesd {
            preview: None,
            decode: None,
            encode,
        }),
        (Err(err), false) => {
            tracing::warn!("TAESD previews are off: {err}");
            Ok(JobTaesd {
                preview: None,
                decode: None,
                encode,
            })
        }
    }
}

/// The TAESD encoder when the request starts from an image and asks for it; a missing, unreadable
/// or mismatched encoder is then an error.
fn select_taesd_encoder(
    model: &SdModel,
    cache: &mut super::cache::TaesdCache,
    request: &crate::request::Request,
) -> Result<Option<std::sync::Arc<TinyEncoder>>, DiffusionError> {
    if request.vae_encoder != VaeEncoder::Taesd || request.init.is_none() {
        return Ok(None);
    }
    let enc = cache
        .encoder(&request.vae_approx_dirs, &model.device, model.dtype)?
        .ok_or_else(|| DiffusionError::Input(taesd::missing_message(&request.vae_approx_dirs, "encoder")))?;
    fits_model(model, "encoder", enc.latent_channels(), enc.downscale_factor())?;
    Ok(Some(enc))
}

/// Whether a TAESD network with `channels` latent channels and a `factor`× scale works with the
/// model's VAE.
fn fits_model(model: &SdModel, part: &str, channels: usize, factor: usize) -> Result<(), DiffusionError> {
    let (z, f) = (model.geometry().vae.z_channels, model.vae.downscale_factor());
    if channels == z && factor == f {
        return Ok(());
    }
    Err(DiffusionError::Input(format!(
        "the TAESD {part} works on {channels} latent channels at {factor}× scale, but this model's VAE uses {z} channels and {f}×; it belongs to another model family"
    )))
}

/// Classifies an error for the user: their input, or an internal failure.
pub fn failure_kind(err: &DiffusionError) -> FailureKind {
    match err {
        DiffusionError::Model(ModelError::Tensor { .. })
        | DiffusionError::Tensor(_)
        | DiffusionError::Cancelled => FailureKind::Internal,
        DiffusionError::Input(_)
        | DiffusionError::Tokenizer(_)
        | DiffusionError::Model(_)
        | DiffusionError::Request(_)
        | DiffusionError::Tag(_)
        | DiffusionError::Lora(_) => FailureKind::BadInput,
    }
}

/// Runs one job to completion on the calling thread, reporting through `emit`. The terminal event
/// (`Finished`, `Failed` or `Cancelled`) is emitted too.
/// `shutdown`, when given, cancels the job like its own flag does.
pub(crate) fn run_job(
    caches: &mut Caches,
    tokenizer: &ClipTokenizer,
    job: &Job,
    shutdown: Option<&AtomicBool>,
    emit: &mut dyn FnMut(Event),
) {
    emit(Event::Started { job: job.id });
    if job.cancel.load(Ordering::Relaxed) {
        // Removed from the queue before it started.
        emit(Event::Cancelled { job: job.id });
        return;
    }
    let result = (|| {
        let request = &job.request;
        let path = request.model.clone();
        let id = job.id;
        let Caches {
            models,
            loras,
            embeddings,
            controlnets,
            taesd: taesd_cache,
            vaes,
        } = caches;
        let (model, identity, loaded) = {
            let emit_ref = &mut *emit;
            models.get(&path, request.device, || {
                emit_ref(Event::LoadingModel {
                    job: id,
                    path: path.clone(),
                });
            })?
        };
        if let Some(secs) = loaded {
            emit(Event::ModelLoaded { job: id, secs });
        }
        let vae_file = match &request.vae {
            Some(p) => Some(vaes.get(p)?),
            None => None,
        };
        model.set_vae(vae_file.as_ref())?;
        let tiny = select_taesd(model, taesd_cache, request)?;
        let mut observer = JobObserver {
            job,
            preview_decoder: tiny.preview.clone(),
            shutdown,
            emit: &mut *emit,
            started: Instant::now(),
            batch_started: Instant::now(),
            current_batch: 0,
        };
        let mut params = request.params.clone();
        params.model_name.clone_from(&identity.name);
        params.model_hash.clone_from(&identity.hash);
        // A1111's `VAE hash` and `VAE` describe the VAE this job really uses (a replayed text's are replaced).
        params
            .extra
            .retain(|(k, _)| k != infotext::VAE_HASH && k != infotext::VAE_NAME);
        if let Some(file) = &vae_file {
            params
                .extra
                .push((infotext::VAE_HASH.into(), file.short_hash.clone()));
            params.extra.push((infotext::VAE_NAME.into(), file.name.clone()));
        }
        apply_loras(model, loras, &request.lora_dirs, &mut params, &mut observer)?;
        let hidden = model.clip.config().hidden_size;
        model.embeddings = embeddings.get(&request.embedding_dirs, tokenizer, hidden, |why| {
            observer.on_warning(why);
        });
        // The job's units, then the fix's own unit, if any.
        let units: Vec<&crate::request::ControlUnit> = request
            .controls
            .iter()
            .chain(request.fix.as_ref().and_then(|f| f.control.as_ref()))
            .collect();
        let paths: Vec<_> = units.iter().map(|c| c.model.clone()).collect();
        let nets = controlnets.get(&paths, &model.device, model.dtype)?;
        let mut controls: Vec<pipeline::JobControl> = nets
            .into_iter()
            .zip(units)
            .map(|((net, label), unit)| pipeline::JobControl {
                net,
                unit: unit.clone(),
                label,
            })
            .collect();
        let fix_control =
            (controls.len() > request.controls.len()).then(|| controls.remove(controls.len() - 1));
        model.tiny_decoder = tiny.decode;
        model.tiny_encoder = tiny.encode;
        crate::diffusion::fix::generate_and_fix(
            model,
            tokenizer,
            &params,
            request.init.as_ref(),
            &controls,
            request
                .fix
                .as_ref()
                .map(|settings| crate::diffusion::fix::FixJob {
                    settings,
                    control: fix_control.as_ref(),
                }),
            &mut observer,
        )
    })();
    match result {
        Ok(_) => emit(Event::Finished { job: job.id }),
        Err(DiffusionError::Cancelled) => emit(Event::Cancelled { job: job.id }),
        Err(err) => emit(Event::Failed {
            job: job.id,
            kind: failure_kind(&err),
            message: crate::text::shorten(&err.to_string(), crate::text::MESSAGE_LIMIT).into_owned(),
        }),
    }
}

pub(super) fn worker_loop(
    commands: &Receiver<Box<Job>>,
    events: &SyncSender<Event>,
    shutdown: &AtomicBool,
    wake: Option<&(dyn Fn() + Send)>,
) {
    let tokenizer = ClipTokenizer::bundled();
    let mut caches = Caches::default();
    loop {
        let job = match commands.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                // The queue is done: hand the buffers the last jobs freed back to the system, so
                // an idle app does not hold its peak (the loaded model stays).
                crate::kernels::memory::release_free_memory();
                match commands.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
        };
        let mut emit = |event: Event| {
            let important = !matches!(event, Event::Progress { .. } | Event::Preview { .. });
            if important {
                let _ = events.send(event);
            } else if let Err(TrySendError::Disconnected(_)) = events.try_send(event) {
                return;
            }
            if let Some(wake) = wake {
                wake();
            }
        };
        let tokenizer = match &tokenizer {
            Ok(t) => t,
            Err(err) => {
                emit(Event::Failed {
                    job: job.id,
                    kind: FailureKind::Internal,
                    message: crate::text::shorten(&err.to_string(), crate::text::MESSAGE_LIMIT).into_owned(),
                });
                continue;
            }
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_job(&mut caches, tokenizer, &job, Some(shutdown), &mut emit);
        }));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".into());
            caches.models.clear();
            emit(Event::Failed {
                job: job.id,
                kind: FailureKind::Internal,
                message: format!("internal error in the inference worker: {what}; the model was unloaded"),
            });
        }
    }
}
