//! Job state of the window: the queue, the running job and its progress, and the strength sweep.
//! Builds engine [`Request`]s from the settings and follows the engine [`Event`]s that concern jobs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions};

use super::i18n::{tr, trf};
use super::text::short;
use crate::config::{AppPaths, Mode, Settings};
use crate::document::Document;
use crate::engine::{Engine, Event, GeneratedImage, JobId, PreviewImage, StepInfo};
use crate::request::{
    ControlUnit, DeviceChoice, Img2ImgSettings, InitImage, InpaintArea, MaskedContent, Request,
};

/// Strengths of the strength sweep.
const SWEEP_STRENGTHS: [f32; 6] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

/// Denoising strength of Refine (ADetailer's default).
const REFINE_STRENGTH: f32 = 0.4;

/// The picture size a job was submitted with, in pixels (its previews are stretched to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSize {
    /// Width in pixels.
    pub width_px: u32,
    /// Height in pixels.
    pub height_px: u32,
}

impl JobSize {
    fn of(request: &Request) -> Self {
        Self {
            width_px: request.params.width,
            height_px: request.params.height,
        }
    }
}

/// A job waiting in the engine's queue.
pub struct Queued {
    /// Its id.
    pub job: JobId,
    cancel: Arc<AtomicBool>,
    /// One line for the queue list: prompt, steps, seed, strength.
    pub summary: String,
    size: JobSize,
}

/// The latest step of the running job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Which step of which batch.
    pub info: StepInfo,
    /// Steps per second over the current batch.
    pub steps_per_sec: f64,
    /// Estimated seconds left for the whole job.
    pub eta_secs: f64,
}

/// The job the engine works on.
pub struct Running {
    /// Its id.
    pub job: JobId,
    cancel: Arc<AtomicBool>,
    /// `None` until the first step (while the model loads).
    pub progress: Option<Progress>,
    /// Its own picture size (the settings may have changed since it was submitted).
    pub size: JobSize,
}

/// One finished image of a strength sweep.
pub struct SweepResult {
    /// The strength it was made with.
    pub strength: f32,
    /// The picture, for the document if it is kept.
    pub picture: image::RgbImage,
    /// The picture on the GPU, for the picker.
    pub texture: TextureHandle,
}

/// One job of a strength sweep.
struct SweepJob {
    job: JobId,
    strength: f32,
}

/// A strength sweep: its jobs, and the results so far as a labelled row to pick from.
pub struct Sweep {
    jobs: Vec<SweepJob>,
    /// Results so far, ordered by strength.
    pub results: Vec<SweepResult>,
}

impl Sweep {
    /// How many jobs the sweep submitted.
    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    fn strength_of(&self, job: JobId) -> Option<f32> {
        self.jobs.iter().find(|j| j.job == job).map(|j| j.strength)
    }
}

/// What the rest of the app does after a job event (jobs know nothing of the canvas or the disk).
pub enum Effect {
    /// Draw this step's preview over the canvas, stretched to the job's size.
    Preview {
        /// Latent-resolution RGBA.
        image: PreviewImage,
        /// The job's picture size.
        size: JobSize,
    },
    /// The preview is over (the job ended, or its picture went to the sweep picker).
    ClearPreview,
    /// A finished picture for the canvas, as the document's next version.
    NewVersion(image::RgbImage),
    /// A finished image: save it into the outputs folder and show its parameters.
    Output(Box<GeneratedImage>),
    /// A message for the user.
    Message(String),
}

/// What submitting jobs reads and changes outside the job state.
pub struct Submit<'a> {
    /// Where the jobs go.
    pub engine: &'a Engine,
    /// The prompt panel's settings (a random seed is drawn into them).
    pub settings: &'a mut Settings,
    /// Where LoRAs and embeddings are looked up.
    pub paths: &'a AppPaths,
    /// The canvas document, for image to image.
    pub doc: Option<&'a Document>,
    /// The ControlNet section's control image file, loaded (`None`: the canvas picture).
    pub control_image: Option<&'a image::RgbImage>,
    /// The ControlNets in the ControlNet folders (for Refine's "Keep structure").
    pub control_models: &'a [crate::models::registry::ControlNetEntry],
}

/// Refine's "Keep structure" unit: an SD 1.5 inpaint ControlNet on the picture and its mask, or a
/// tile ControlNet on the picture, whichever the folders have (inpaint first).
fn keep_structure_unit(models: &[crate::models::registry::ControlNetEntry]) -> Result<ControlUnit, String> {
    use crate::imaging::ops::HintPreprocessor;
    let usable = |word: &str| {
        models
            .iter()
            .find(|e| e.family.is_ok() && e.name.to_ascii_lowercase().contains(word))
    };
    if let Some(inpaint) = usable("inpaint") {
        let mut unit = ControlUnit::new(inpaint.path.clone());
        unit.preprocessor = HintPreprocessor::InpaintOnly;
        return Ok(unit);
    }
    if let Some(tile) = usable("tile") {
        let mut unit = ControlUnit::new(tile.path.clone());
        unit.preprocessor = HintPreprocessor::TileResample {
            down_sampling_rate: 1.0,
        };
        return Ok(unit);
    }
    Err(tr("Keep structure needs an inpaint or tile ControlNet (control_v11p_sd15_inpaint or control_v11f1e_sd15_tile) in a ControlNet folder: File > Get models…, or turn Keep structure off").into())
}

impl Submit<'_> {
    /// The request for the prompt panel's parameters with `init`; see [`request`]. The ControlNet
    /// section adds its unit when it is on.
    fn request(&mut self, init: Option<InitImage>, strength: f32) -> Result<Request, String> {
        let mut request = request(self.settings, self.paths, init, strength)?;
        request.controls = self.controls(request.init.is_some())?;
        Ok(request)
    }

    /// The ControlNet unit of the section, when it is on. Its control image is the chosen file,
    /// or the canvas picture: through the img2img input when there is one, given explicitly otherwise.
    fn controls(&self, has_init: bool) -> Result<Vec<ControlUnit>, String> {
        let c = &self.settings.controlnet;
        if !c.enabled {
            return Ok(Vec::new());
        }
        let model = c.model.clone().ok_or(tr(
            "choose a ControlNet model in the ControlNet section, or turn ControlNet off",
        ))?;
        let mut unit = c.unit(model);
        if c.image_file.is_some() {
            let image = self.control_image.ok_or(tr(
                "the ControlNet control image is still loading (or could not be read); try again",
            ))?;
            unit.image = Some(image.clone());
        } else if !has_init {
            let doc = self
                .doc
                .ok_or(tr("ControlNet needs a control image: open a picture on the canvas, or choose a file in the ControlNet section"))?;
            unit.image = Some(doc.image().clone());
            unit.mask = doc.has_mask().then(|| doc.mask().clone());
        }
        unit.validate().map_err(|e| e.to_string())?;
        Ok(vec![unit])
    }
}

/// The queue, the running job, the strength sweep and the newest seed.
#[derive(Default)]
pub struct Jobs {
    queue: VecDeque<Queued>,
    running: Option<Running>,
    sweep: Option<Sweep>,
    last_seed: Option<u64>,
}

impl Jobs {
    /// True while a job runs or waits.
    pub fn is_busy(&self) -> bool {
        self.running.is_some() || !self.queue.is_empty()
    }

    /// The running job, if any.
    pub fn running(&self) -> Option<&Running> {
        self.running.as_ref()
    }

    /// Jobs waiting, oldest first.
    pub fn queue(&self) -> &VecDeque<Queued> {
        &self.queue
    }

    /// The open strength sweep, if any.
    pub fn sweep(&self) -> Option<&Sweep> {
        self.sweep.as_ref()
    }

    /// Seed of the newest image, for "Reuse".
    pub fn last_seed(&self) -> Option<u64> {
        self.last_seed
    }

    /// Queues the prompt panel's parameters: text to image, or image to image from `doc`.
    pub fn generate(&mut self, mut to: Submit<'_>) -> Result<(), String> {
        let init = match to.settings.mode {
            Mode::TextToImage => None,
            Mode::ImageToImage => {
                let doc = to.doc.ok_or(tr(
                    "image to image needs a picture: drop or open one onto the canvas",
                ))?;
                Some(InitImage {
                    image: doc.image().clone(),
                    mask: doc.has_mask().then(|| doc.mask().clone()),
                    settings: to.settings.img2img.clone(),
                })
            }
        };
        let strength = to.settings.strength;
        self.submit(to.engine, to.request(init, strength)?);
        Ok(())
    }

    /// Queues an only-masked inpaint of the masked region with ADetailer's defaults
    /// (denoise 0.4, padding 32 px, mask blur 4).
    pub fn refine(&mut self, mut to: Submit<'_>) -> Result<(), String> {
        let doc = to.doc.ok_or(tr("open a picture first"))?;
        if !doc.has_mask() {
            return Err(tr(
                "paint over the face or hand to refine first (or draw a box with the rectangle tool)",
            )
            .into());
        }
        let init = InitImage {
            image: doc.image().clone(),
            mask: Some(doc.mask().clone()),
            settings: Img2ImgSettings {
                padding: 32,
                mask_blur: 4,
                inpaint_area: InpaintArea::OnlyMasked,
                masked_content: MaskedContent::Original,
                invert_mask: false,
                ..to.settings.img2img.clone()
            },
        };
        let mut request = to.request(Some(init), REFINE_STRENGTH)?;
        if to.settings.keep_structure {
            request.controls.push(keep_structure_unit(to.control_models)?);
        }
        self.submit(to.engine, request);
        Ok(())
    }

    /// Queues ADetailer's flow on the canvas picture (faces, its defaults): one job, one result.
    pub fn fix_faces(&mut self, to: Submit<'_>) -> Result<(), String> {
        self.fix(to, crate::request::FixTarget::Faces)
    }

    /// Queues ADetailer's flow on the canvas picture (hands, its defaults): one job, one result.
    pub fn fix_hands(&mut self, to: Submit<'_>) -> Result<(), String> {
        self.fix(to, crate::request::FixTarget::Hands)
    }

    fn fix(&mut self, mut to: Submit<'_>, target: crate::request::FixTarget) -> Result<(), String> {
        let doc = to.doc.ok_or(tr("open a picture first"))?;
        let fix = crate::request::FixSettings {
            target,
            picture_only: true,
            control: if to.settings.keep_structure {
                Some(keep_structure_unit(to.control_models)?)
            } else {
                None
            },
            ..crate::request::FixSettings::default()
        };
        let init = InitImage {
            image: doc.image().clone(),
            mask: None,
            settings: to.settings.img2img.clone(),
        };
        let mut request = to.request(Some(init), fix.strength)?;
        request.fix = Some(fix);
        self.submit(to.engine, request);
        Ok(())
    }

    /// Queues one image-to-image job per sweep strength, all with the same seed, and opens the
    /// picker that collects their results.
    pub fn strength_sweep(&mut self, mut to: Submit<'_>) -> Result<(), String> {
        let doc = to.doc.ok_or(tr("open a picture first"))?;
        let (image, mask) = (doc.image().clone(), doc.has_mask().then(|| doc.mask().clone()));
        if to.settings.random_seed {
            to.settings.params.seed = crate::params::random_seed();
        }
        // One seed for the whole sweep: `request` must not draw a new one per job.
        let random = std::mem::replace(&mut to.settings.random_seed, false);
        let mut jobs = Vec::new();
        let mut failure = None;
        for strength in SWEEP_STRENGTHS {
            let init = InitImage {
                image: image.clone(),
                mask: mask.clone(),
                settings: to.settings.img2img.clone(),
            };
            match to.request(Some(init), strength) {
                Ok(request) => jobs.push(SweepJob {
                    job: self.submit(to.engine, request),
                    strength,
                }),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        to.settings.random_seed = random;
        self.sweep = (!jobs.is_empty()).then(|| Sweep {
            jobs,
            results: Vec::new(),
        });
        failure.map_or(Ok(()), Err)
    }

    /// Sends `request` to the engine and queues it.
    fn submit(&mut self, engine: &Engine, request: Request) -> JobId {
        let summary = summary(&request);
        let size = JobSize::of(&request);
        let (job, cancel) = engine.submit(request);
        self.queue.push_back(Queued {
            job,
            cancel,
            summary,
            size,
        });
        job
    }

    /// Asks the running job to stop after its current step.
    pub fn cancel_running(&self) {
        if let Some(r) = &self.running {
            r.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Takes a job out of the queue; the worker skips it when its turn comes.
    pub fn remove_queued(&mut self, job: JobId) {
        if let Some(q) = self.queue.iter().find(|q| q.job == job) {
            q.cancel.store(true, Ordering::Relaxed);
        }
        self.queue.retain(|q| q.job != job);
    }

    /// Closes the sweep picker and hands back the result at `index`, if there is one.
    pub fn take_sweep_result(&mut self, index: usize) -> Option<image::RgbImage> {
        let mut sweep = self.sweep.take()?;
        (index < sweep.results.len()).then(|| sweep.results.swap_remove(index).picture)
    }

    /// Closes the sweep picker; later results of its jobs become document versions.
    pub fn close_sweep(&mut self) {
        self.sweep = None;
    }

    /// Follows one engine event; events of jobs that are not running are ignored where it matters.
    pub fn handle_event(&mut self, event: Event, ctx: &egui::Context) -> Vec<Effect> {
        match event {
            Event::Started { job } => {
                if let Some(pos) = self.queue.iter().position(|q| q.job == job)
                    && let Some(q) = self.queue.remove(pos)
                {
                    self.running = Some(Running {
                        job,
                        cancel: q.cancel,
                        progress: None,
                        size: q.size,
                    });
                }
                Vec::new()
            }
            Event::Progress {
                job,
                info,
                steps_per_sec,
                eta_secs,
            } => {
                if let Some(r) = self.running.as_mut().filter(|r| r.job == job) {
                    r.progress = Some(Progress {
                        info,
                        steps_per_sec,
                        eta_secs,
                    });
                }
                Vec::new()
            }
            Event::Preview { job, image } => match &self.running {
                Some(r) if r.job == job => vec![Effect::Preview { image, size: r.size }],
                _ => Vec::new(),
            },
            Event::Image { job, image } => {
                self.last_seed = Some(image.seed);
                let mut effects = Vec::with_capacity(2);
                if let Some(rgb) = image::RgbImage::from_raw(image.width, image.height, image.rgb.clone()) {
                    let strength = self.sweep.as_ref().and_then(|s| s.strength_of(job));
                    match (self.sweep.as_mut(), strength) {
                        (Some(sweep), Some(strength)) => {
                            // Sweep results wait in the picker instead of becoming versions one by one.
                            let size = [rgb.width() as usize, rgb.height() as usize];
                            let texture = ctx.load_texture(
                                "sweep",
                                ColorImage::from_rgb(size, rgb.as_raw()),
                                TextureOptions::LINEAR,
                            );
                            sweep.results.push(SweepResult {
                                strength,
                                picture: rgb,
                                texture,
                            });
                            sweep.results.sort_by(|a, b| a.strength.total_cmp(&b.strength));
                            effects.push(Effect::ClearPreview);
                        }
                        // A new version of the document: undo (Ctrl+Z) goes back to the previous picture.
                        _ => effects.push(Effect::NewVersion(rgb)),
                    }
                }
                effects.push(Effect::Output(image));
                effects
            }
            Event::Warning { message, .. } => vec![Effect::Message(message)],
            Event::Failed { job, message, .. } => {
                let mut effects = self.finish(job);
                effects.push(Effect::Message(message));
                effects
            }
            Event::Finished { job } | Event::Cancelled { job } => self.finish(job),
            Event::LoadingModel { .. } | Event::ModelLoaded { .. } => Vec::new(),
        }
    }

    fn finish(&mut self, job: JobId) -> Vec<Effect> {
        self.queue.retain(|q| q.job != job);
        if self.running.as_ref().is_some_and(|r| r.job == job) {
            self.running = None;
            vec![Effect::ClearPreview]
        } else {
            Vec::new()
        }
    }
}

/// The request for the prompt panel's parameters with `init` (image to image at `strength` when
/// given). Draws a new seed first when the seed is random.
pub fn request(
    settings: &mut Settings,
    paths: &AppPaths,
    init: Option<InitImage>,
    strength: f32,
) -> Result<Request, String> {
    let model = settings
        .selected_model
        .clone()
        .ok_or(tr("choose a model in the model browser first"))?;
    if settings.random_seed {
        settings.params.seed = crate::params::random_seed();
    }
    let mut params = settings.params.clone();
    params.denoising_strength = init.as_ref().map(|_| strength);
    Ok(Request {
        model,
        device: DeviceChoice::Auto,
        params,
        init,
        lora_dirs: paths.lora_dirs(&settings.model_folders),
        embedding_dirs: paths.embedding_dirs(&settings.model_folders),
        previews: true,
        controls: Vec::new(),
        vae: settings.vae.clone(),
        vae_decoder: settings.vae_decoder,
        vae_encoder: settings.vae_encoder,
        vae_approx_dirs: paths.vae_approx_dirs(&settings.model_folders),
        fix: None,
    })
}

/// One line for the queue list: "prompt · 20 steps · seed 42 · inpaint 0.40".
fn summary(request: &Request) -> String {
    let params = &request.params;
    let what = match (&request.init, params.denoising_strength) {
        (Some(init), Some(strength)) if init.mask.is_some() => trf(
            " · inpaint {strength}",
            &[("strength", &format!("{strength:.2}"))],
        ),
        (Some(_), Some(strength)) => trf(
            " · img2img {strength}",
            &[("strength", &format!("{strength:.2}"))],
        ),
        _ => String::new(),
    };
    trf(
        "{prompt} · {steps} steps · seed {seed}{what}",
        &[
            ("prompt", &short(&params.prompt)),
            ("steps", &params.steps),
            ("seed", &params.seed),
            ("what", &what),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::GenerationParams;

    fn settings_with_model() -> Settings {
        Settings {
            params: GenerationParams {
                prompt: "a red barn".into(),
                steps: 3,
                width: 64,
                height: 96,
                seed: 11,
                ..GenerationParams::default()
            },
            random_seed: false,
            selected_model: Some("tiny.safetensors".into()),
            ..Settings::default()
        }
    }

    fn paths() -> AppPaths {
        AppPaths::under(std::env::temp_dir().join("easel-ui-jobs-test"))
    }

    /// Jobs with `ids` queued as `submit` queues them (without an engine), and their settings.
    fn queued(ids: &[JobId]) -> (Jobs, Settings) {
        let mut settings = settings_with_model();
        let request = request(&mut settings, &paths(), None, 0.5).unwrap();
        let mut jobs = Jobs::default();
        for &job in ids {
            jobs.queue.push_back(Queued {
                job,
                cancel: Arc::new(AtomicBool::new(false)),
                summary: summary(&request),
                size: JobSize::of(&request),
            });
        }
        (jobs, settings)
    }

    fn preview() -> PreviewImage {
        PreviewImage {
            width: 8,
            height: 12,
            rgba: vec![0; 8 * 12 * 4],
        }
    }

    fn image(seed: u64) -> GeneratedImage {
        GeneratedImage {
            index: 0,
            seed,
            width: 2,
            height: 2,
            rgb: vec![7; 2 * 2 * 3],
            infotext: "a red barn".into(),
        }
    }

    #[test]
    fn a_request_needs_a_model() {
        let mut settings = Settings {
            selected_model: None,
            ..Settings::default()
        };
        let err = request(&mut settings, &paths(), None, 0.5).unwrap_err();
        assert_eq!(err, "choose a model in the model browser first");
    }

    #[test]
    fn the_summary_names_prompt_steps_seed_and_strength() {
        let mut settings = settings_with_model();
        let txt2img = request(&mut settings, &paths(), None, 0.5).unwrap();
        assert_eq!(txt2img.params.denoising_strength, None);
        assert_eq!(summary(&txt2img), "a red barn · 3 steps · seed 11");
        let init = InitImage {
            image: image::RgbImage::new(4, 4),
            mask: Some(image::GrayImage::new(4, 4)),
            settings: Img2ImgSettings::default(),
        };
        let inpaint = request(&mut settings, &paths(), Some(init), 0.4).unwrap();
        assert_eq!(inpaint.params.denoising_strength, Some(0.4));
        assert_eq!(summary(&inpaint), "a red barn · 3 steps · seed 11 · inpaint 0.40");
    }

    #[test]
    fn previews_use_the_running_jobs_own_size() {
        let ctx = egui::Context::default();
        let (mut jobs, mut settings) = queued(&[1]);
        // The user changes the size while the job waits.
        settings.params.width = 512;
        assert!(jobs.handle_event(Event::Started { job: 1 }, &ctx).is_empty());
        assert!(jobs.is_busy() && jobs.queue().is_empty());
        let effects = jobs.handle_event(
            Event::Preview {
                job: 1,
                image: preview(),
            },
            &ctx,
        );
        let [Effect::Preview { size, .. }] = effects.as_slice() else {
            panic!("one preview expected");
        };
        assert_eq!(
            *size,
            JobSize {
                width_px: 64,
                height_px: 96
            }
        );
    }

    #[test]
    fn events_of_other_jobs_are_ignored() {
        let ctx = egui::Context::default();
        let (mut jobs, _) = queued(&[1, 2]);
        jobs.handle_event(Event::Started { job: 1 }, &ctx);
        let info = StepInfo {
            batch: 0,
            batch_count: 1,
            step: 1,
            steps: 3,
        };
        let progress = |job| Event::Progress {
            job,
            info,
            steps_per_sec: 2.0,
            eta_secs: 1.0,
        };
        jobs.handle_event(progress(2), &ctx);
        assert_eq!(jobs.running().unwrap().progress, None);
        jobs.handle_event(progress(1), &ctx);
        assert_eq!(jobs.running().unwrap().progress.unwrap().info, info);
        let stale = Event::Preview {
            job: 2,
            image: preview(),
        };
        assert!(jobs.handle_event(stale, &ctx).is_empty());
        // Ending the waiting job leaves the running one alone and clears no preview.
        assert!(jobs.handle_event(Event::Cancelled { job: 2 }, &ctx).is_empty());
        assert_eq!(jobs.running().unwrap().job, 1);
        let effects = jobs.handle_event(Event::Finished { job: 1 }, &ctx);
        assert!(matches!(effects.as_slice(), [Effect::ClearPreview]));
        assert!(!jobs.is_busy());
    }

    #[test]
    fn sweep_results_wait_in_strength_order() {
        let ctx = egui::Context::default();
        let mut jobs = Jobs {
            sweep: Some(Sweep {
                jobs: vec![
                    SweepJob {
                        job: 1,
                        strength: 0.3,
                    },
                    SweepJob {
                        job: 2,
                        strength: 0.4,
                    },
                ],
                results: Vec::new(),
            }),
            ..Jobs::default()
        };
        for (job, seed) in [(2, 5), (1, 5)] {
            let effects = jobs.handle_event(
                Event::Image {
                    job,
                    image: Box::new(image(seed)),
                },
                &ctx,
            );
            assert!(matches!(
                effects.as_slice(),
                [Effect::ClearPreview, Effect::Output(_)]
            ));
        }
        let strengths: Vec<f32> = jobs.sweep().unwrap().results.iter().map(|r| r.strength).collect();
        assert_eq!(strengths, [0.3, 0.4]);
        assert_eq!(jobs.last_seed(), Some(5));
        // An image of a job outside the sweep becomes a document version.
        let effects = jobs.handle_event(
            Event::Image {
                job: 3,
                image: Box::new(image(6)),
            },
            &ctx,
        );
        assert!(matches!(
            effects.as_slice(),
            [Effect::NewVersion(_), Effect::Output(_)]
        ));
        assert!(jobs.take_sweep_result(1).is_some());
        assert!(jobs.sweep().is_none(), "keeping a result closes the picker");
    }
}
