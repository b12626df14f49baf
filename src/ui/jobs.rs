//! Job state of the window: the queue, the running job and its progress, and the strength sweep.
//! Builds engine [`Request`]s from the settings and follows the engine [`Event`]s that concern jobs.
//! The job state reads out as one line for the status bar: phase, "job k of n", step, measured ETA.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::i18n::{tr, tr_noop, trf};
use super::text::short;
use crate::config::{AppPaths, Mode, Settings};
use crate::document::{Document, PixelRect};
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

/// Where a job's live previews go on the canvas picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewRegion {
    /// Over the whole picture (text to image, image to image, inpaint of the whole picture).
    Whole,
    /// Over this part of the picture, in its pixels (inpaint "only masked": the crop the model sees).
    Part(PixelRect),
    /// Not shown: the job works on regions the UI does not know in advance (Fix faces).
    Hidden,
}

/// What a job captured when it was submitted, for its previews and for fitting its result.
#[derive(Clone)]
struct Captured {
    /// Its own picture size (the settings may change after it was submitted).
    size: JobSize,
    /// The mask it inpaints through (inverted when the job inverts it); `None` without one.
    mask: Option<Arc<image::GrayImage>>,
    region: PreviewRegion,
}

impl Captured {
    fn of(request: &Request) -> Self {
        let masked = request.init.as_ref().and_then(|init| {
            let mask = init.mask.as_ref()?;
            Some((init, mask))
        });
        let mask = masked.map(|(init, mask)| {
            Arc::new(if init.settings.invert_mask {
                crate::imaging::ops::invert(mask)
            } else {
                mask.clone()
            })
        });
        let region = match masked {
            _ if request.fix.is_some() => PreviewRegion::Hidden,
            Some((init, mask)) if init.settings.inpaint_area == InpaintArea::OnlyMasked => {
                let s = &init.settings;
                let processed = crate::imaging::processed_mask(mask, s.invert_mask, s.mask_blur);
                crate::imaging::only_masked_region(
                    &processed,
                    s.padding,
                    request.params.width,
                    request.params.height,
                )
                .map_or(PreviewRegion::Whole, |(x0, y0, x1, y1)| {
                    PreviewRegion::Part(PixelRect { x0, y0, x1, y1 })
                })
            }
            _ => PreviewRegion::Whole,
        };
        Self {
            size: JobSize::of(request),
            mask,
            region,
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
    captured: Captured,
}

/// The latest step of the running job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Which step of which batch.
    pub info: StepInfo,
    /// Steps per second, measured from the first step on (`None` until a second step).
    pub steps_per_sec: Option<f64>,
    /// Estimated seconds left for the whole job, from the measured step time (`None` until a
    /// second step: the first one carries the model's warm-up).
    pub eta_secs: Option<f64>,
}

/// What the running job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// It left the queue; nothing reported yet.
    Starting,
    /// Its checkpoint is being loaded.
    Loading,
    /// The model is there: encoding the prompt, then sampling (see [`Running::progress`]).
    Sampling,
}

/// The job the engine works on.
pub struct Running {
    /// Its id.
    pub job: JobId,
    cancel: Arc<AtomicBool>,
    /// `None` until the first step.
    pub progress: Option<Progress>,
    /// Its own picture size (the settings may have changed since it was submitted).
    pub size: JobSize,
    /// Loading, or sampling.
    pub phase: Phase,
    /// Cancel was asked for; the job stops after its current step.
    pub cancelling: bool,
    /// When and after how many steps the first step event came (the start of the measured time).
    first_step: Option<(Instant, usize)>,
    started: Instant,
    captured: Captured,
}

/// One job of a strength sweep.
struct SweepJob {
    job: JobId,
    strength: f32,
}

/// A strength sweep: its jobs and their strengths (its results are staged on the canvas in
/// strength order, labelled with it).
struct Sweep {
    jobs: Vec<SweepJob>,
}

impl Sweep {
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
        /// Where on the picture it goes.
        region: PreviewRegion,
    },
    /// The preview is over (the job ended).
    ClearPreview,
    /// A finished picture for the canvas, to be staged over the picture.
    Result(JobResult),
    /// A finished image: save it into the outputs folder and show its parameters.
    Output(Box<GeneratedImage>),
    /// A message for the user.
    Message(String),
}

/// A finished picture and the mask its job inpainted through (to fit it into a picture of
/// another size without touching the pixels outside that mask).
pub struct JobResult {
    /// The picture, at the job's size.
    pub picture: image::RgbImage,
    /// The job's mask, at the size of the picture it was given.
    pub mask: Option<Arc<image::GrayImage>>,
    /// Its seed.
    pub seed: u64,
    /// The strength, when it came from a strength sweep.
    pub strength: Option<f32>,
    /// Its A1111 parameters.
    pub infotext: String,
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
    /// Jobs submitted since the app was last idle, and how many of them have ended ("job k of n").
    run_total: usize,
    run_ended: usize,
    /// How the last job ended ("cancelled", "failed"), until the next one starts.
    outcome: Option<&'static str>,
}

/// Whole seconds, or minutes and seconds past a minute: "42 s", "3 min 05 s".
fn duration_text(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    if secs < 60 {
        trf("{secs} s", &[("secs", &secs)])
    } else {
        trf(
            "{min} min {secs} s",
            &[("min", &(secs / 60)), ("secs", &format!("{:02}", secs % 60))],
        )
    }
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

    /// Seed of the newest image, for "Reuse".
    pub fn last_seed(&self) -> Option<u64> {
        self.last_seed
    }

    /// "k of n" for the running job when more than one job was submitted since the app was idle.
    pub fn job_number(&self) -> Option<(usize, usize)> {
        (self.running.is_some() && self.run_total > 1)
            .then(|| ((self.run_ended + 1).min(self.run_total), self.run_total))
    }

    /// One line for the status bar: what the running job does ("loading the model…", "job 2 of 6 ·
    /// step 3/9 · ETA 4 s", "cancelling…"), or how the last one ended, or "ready".
    pub fn status_text(&self) -> String {
        let Some(r) = &self.running else {
            let mut text = tr(self.outcome.unwrap_or(tr_noop("ready"))).to_owned();
            if !self.queue.is_empty() {
                text.push_str(" · ");
                text.push_str(&trf("{count} queued", &[("count", &self.queue.len())]));
            }
            return text;
        };
        let mut parts = Vec::new();
        if let Some((k, n)) = self.job_number() {
            parts.push(trf("job {k} of {n}", &[("k", &k), ("n", &n)]));
        }
        if r.cancelling {
            parts.push(tr("cancelling…").to_owned());
            return parts.join(" · ");
        }
        match (r.phase, r.progress) {
            (Phase::Starting, _) => parts.push(tr("starting…").to_owned()),
            (Phase::Loading, _) => parts.push(tr("loading the model…").to_owned()),
            (Phase::Sampling, None) => parts.push(tr("preparing the first step…").to_owned()),
            (Phase::Sampling, Some(p)) => {
                let info = p.info;
                if info.batch_count > 1 {
                    parts.push(trf(
                        "image {k} of {n}",
                        &[("k", &(info.batch + 1)), ("n", &info.batch_count)],
                    ));
                }
                parts.push(trf(
                    "step {step}/{steps}",
                    &[("step", &info.step), ("steps", &info.steps)],
                ));
                match (p.steps_per_sec, p.eta_secs) {
                    (Some(rate), Some(eta)) => {
                        parts.push(format!("{rate:.2} it/s"));
                        parts.push(trf("ETA {time}", &[("time", &duration_text(eta))]));
                    }
                    _ => parts.push(tr("measuring…").to_owned()),
                }
            }
        }
        parts.join(" · ")
    }

    /// The running job's share done, 0 to 1 (0 while it loads).
    pub fn fraction_done(&self) -> f32 {
        self.running.as_ref().and_then(|r| r.progress).map_or(0.0, |p| {
            let info = p.info;
            let done = info.batch * info.steps + info.step;
            done as f32 / (info.batch_count * info.steps).max(1) as f32
        })
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
        let mut request = to.request(init, strength)?;
        request.fix = fix_after_generating(to.settings.fix_after, to.settings.img2img.soft);
        self.submit(to.engine, request);
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
            soft: to.settings.img2img.soft,
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

    /// Queues one image-to-image job per sweep strength, all with the same seed; their results
    /// are staged on the canvas in strength order.
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
        self.sweep = (!jobs.is_empty()).then_some(Sweep { jobs });
        failure.map_or(Ok(()), Err)
    }

    /// Sends `request` to the engine and queues it.
    fn submit(&mut self, engine: &Engine, request: Request) -> JobId {
        let summary = summary(&request);
        let captured = Captured::of(&request);
        let (job, cancel) = engine.submit(request);
        tracing::info!("job {job} queued: {summary}");
        self.push_queued(Queued {
            job,
            cancel,
            summary,
            captured,
        });
        job
    }

    /// Queues a submitted job; a job submitted while the app is idle starts a new "k of n" count.
    fn push_queued(&mut self, queued: Queued) {
        if !self.is_busy() {
            self.run_total = 0;
            self.run_ended = 0;
        }
        self.run_total += 1;
        self.queue.push_back(queued);
    }

    /// Asks the running job to stop after its current step; the status says "cancelling…" until
    /// the engine confirms.
    pub fn cancel_running(&mut self) {
        if let Some(r) = &mut self.running {
            r.cancel.store(true, Ordering::Relaxed);
            if !r.cancelling {
                tracing::info!("job {}: cancel requested", r.job);
            }
            r.cancelling = true;
        }
    }

    /// Takes a job out of the queue; the worker skips it when its turn comes.
    pub fn remove_queued(&mut self, job: JobId) {
        if let Some(q) = self.queue.iter().find(|q| q.job == job) {
            q.cancel.store(true, Ordering::Relaxed);
            tracing::info!("job {job} taken out of the queue");
            self.run_total = self.run_total.saturating_sub(1);
        }
        self.queue.retain(|q| q.job != job);
    }

    /// Follows one engine event; events of jobs that are not running are ignored where it matters.
    pub fn handle_event(&mut self, event: Event) -> Vec<Effect> {
        self.handle_event_at(event, Instant::now())
    }

    /// [`Self::handle_event`] with the time the event arrived (tests give their own clock).
    fn handle_event_at(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        match event {
            Event::Started { job } => {
                if let Some(pos) = self.queue.iter().position(|q| q.job == job)
                    && let Some(q) = self.queue.remove(pos)
                {
                    tracing::info!("job {job} started");
                    self.outcome = None;
                    self.running = Some(Running {
                        job,
                        cancel: q.cancel,
                        progress: None,
                        size: q.captured.size,
                        phase: Phase::Starting,
                        cancelling: false,
                        first_step: None,
                        started: now,
                        captured: q.captured,
                    });
                }
                Vec::new()
            }
            Event::LoadingModel { job, path } => {
                if let Some(r) = self.running.as_mut().filter(|r| r.job == job) {
                    tracing::info!("job {job}: loading {}", path.display());
                    r.phase = Phase::Loading;
                }
                Vec::new()
            }
            Event::ModelLoaded { job, secs } => {
                if let Some(r) = self.running.as_mut().filter(|r| r.job == job) {
                    tracing::info!("job {job}: model loaded in {secs:.1} s");
                    r.phase = Phase::Sampling;
                }
                Vec::new()
            }
            Event::Progress { job, info, .. } => {
                if let Some(r) = self.running.as_mut().filter(|r| r.job == job) {
                    r.phase = Phase::Sampling;
                    let done = info.batch * info.steps + info.step;
                    let total = info.batch_count * info.steps;
                    // The first step carries loading and warm-up: measure from it on.
                    let (first_at, first_done) = *r.first_step.get_or_insert((now, done));
                    let measured = done.saturating_sub(first_done);
                    let rate = (measured > 0).then(|| {
                        let per_step = now.duration_since(first_at).as_secs_f64() / measured as f64;
                        (
                            1.0 / per_step.max(1e-9),
                            per_step * total.saturating_sub(done) as f64,
                        )
                    });
                    r.progress = Some(Progress {
                        info,
                        steps_per_sec: rate.map(|(s, _)| s),
                        eta_secs: rate.map(|(_, e)| e),
                    });
                }
                Vec::new()
            }
            Event::Preview { job, image } => match &self.running {
                Some(r) if r.job == job && r.captured.region != PreviewRegion::Hidden => {
                    vec![Effect::Preview {
                        image,
                        size: r.size,
                        region: r.captured.region,
                    }]
                }
                _ => Vec::new(),
            },
            Event::Image { job, image } => {
                self.last_seed = Some(image.seed);
                let mut effects = Vec::with_capacity(2);
                if let Some(rgb) = image::RgbImage::from_raw(image.width, image.height, image.rgb.clone()) {
                    effects.push(Effect::Result(JobResult {
                        picture: rgb,
                        mask: self
                            .running
                            .as_ref()
                            .filter(|r| r.job == job)
                            .and_then(|r| r.captured.mask.clone()),
                        seed: image.seed,
                        strength: self.sweep.as_ref().and_then(|s| s.strength_of(job)),
                        infotext: image.infotext.clone(),
                    }));
                }
                effects.push(Effect::Output(image));
                effects
            }
            Event::Warning { message, .. } => vec![Effect::Message(message)],
            Event::Failed { job, message, .. } => {
                tracing::warn!("job {job} failed: {message}");
                let mut effects = self.finish(job, now, Some(tr_noop("failed")));
                effects.push(Effect::Message(message));
                effects
            }
            Event::Finished { job } => self.finish(job, now, None),
            Event::Cancelled { job } => self.finish(job, now, Some(tr_noop("cancelled"))),
        }
    }

    /// The job ended; `outcome` says how when it did not simply finish.
    fn finish(&mut self, job: JobId, now: Instant, outcome: Option<&'static str>) -> Vec<Effect> {
        self.queue.retain(|q| q.job != job);
        match &self.running {
            Some(r) if r.job == job => {
                let secs = now.duration_since(r.started).as_secs_f64();
                tracing::info!("job {job} {} after {secs:.1} s", outcome.unwrap_or("finished"));
                self.running = None;
                self.run_ended += 1;
                if outcome.is_some() {
                    self.outcome = outcome;
                }
                vec![Effect::ClearPreview]
            }
            _ => Vec::new(),
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

/// `result` fitted into `picture` (another size): scaled to the picture's size, and where the
/// job had a `mask` (at the picture's size), blended through it, so that the picture outside the
/// mask stays exactly as it was. The picture keeps its size.
pub fn fit_into(
    picture: &image::RgbImage,
    result: &image::RgbImage,
    mask: Option<&image::GrayImage>,
) -> image::RgbImage {
    let (w, h) = picture.dimensions();
    let scaled = image::imageops::resize(result, w, h, image::imageops::FilterType::Lanczos3);
    let Some(mask) = mask.filter(|m| m.dimensions() == (w, h)) else {
        return scaled;
    };
    let mut out = picture.clone();
    for ((o, s), m) in out.pixels_mut().zip(scaled.pixels()).zip(mask.pixels()) {
        let a = u32::from(m.0[0]);
        for (oc, sc) in o.0.iter_mut().zip(s.0) {
            *oc = ((u32::from(*oc) * (255 - a) + u32::from(sc) * a + 127) / 255) as u8;
        }
    }
    out
}

/// Largest side the size fields allow, in pixels.
pub const MAX_SIDE_PX: u32 = 2048;
/// Smallest side the size fields allow, in pixels.
pub const MIN_SIDE_PX: u32 = 64;

/// The size a `width` × `height` picture is generated at: its own size rounded to the nearest
/// multiple of 8 (the latent is an eighth of the picture), scaled down first when a side is over
/// [`MAX_SIDE_PX`], and at least [`MIN_SIDE_PX`].
pub fn working_size(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let scale = (f64::from(MAX_SIDE_PX) / w.max(h)).min(1.0);
    let side = |v: f64| {
        let eighths = (v * scale / 8.0).round() as u32;
        (eighths * 8).clamp(MIN_SIDE_PX, MAX_SIDE_PX)
    };
    (side(w), side(h))
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

/// The fix that follows a Generate: faces, then hands, with ADetailer's defaults; `None` when
/// neither is ticked.
fn fix_after_generating(
    after: crate::config::FixAfter,
    soft: Option<crate::request::SoftInpainting>,
) -> Option<crate::request::FixSettings> {
    use crate::request::FixTarget;
    let mut targets = [(after.faces, FixTarget::Faces), (after.hands, FixTarget::Hands)]
        .into_iter()
        .filter_map(|(on, target)| on.then_some(target));
    let target = targets.next()?;
    Some(crate::request::FixSettings {
        target,
        more_targets: targets.collect(),
        soft,
        ..crate::request::FixSettings::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_generating_fixes_faces_then_hands_with_adetailers_defaults() {
        use crate::config::FixAfter;
        use crate::request::FixTarget;
        assert!(fix_after_generating(FixAfter::default(), None).is_none());
        let both = fix_after_generating(
            FixAfter {
                faces: true,
                hands: true,
            },
            None,
        )
        .unwrap();
        assert_eq!(
            (both.target, both.more_targets.as_slice()),
            (FixTarget::Faces, &[FixTarget::Hands][..])
        );
        assert!(!both.picture_only, "the fix follows the generation");
        assert!((both.strength - 0.4).abs() < 1e-6 && both.padding == 32 && both.mask_blur == 4);
        assert_eq!(both.soft, None);
        // The Inpaint section's soft inpainting goes along into every fix inpaint.
        let soft = crate::request::SoftInpainting::default();
        let hands = fix_after_generating(
            FixAfter {
                faces: false,
                hands: true,
            },
            Some(soft),
        )
        .unwrap();
        assert_eq!((hands.target, hands.more_targets.len()), (FixTarget::Hands, 0));
        assert_eq!(hands.soft, Some(soft));
    }
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
                captured: Captured::of(&request),
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
        let (mut jobs, mut settings) = queued(&[1]);
        // The user changes the size while the job waits.
        settings.params.width = 512;
        assert!(jobs.handle_event(Event::Started { job: 1 }).is_empty());
        assert!(jobs.is_busy() && jobs.queue().is_empty());
        let effects = jobs.handle_event(Event::Preview {
            job: 1,
            image: preview(),
        });
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
        let (mut jobs, _) = queued(&[1, 2]);
        jobs.handle_event(Event::Started { job: 1 });
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
        jobs.handle_event(progress(2));
        assert_eq!(jobs.running().unwrap().progress, None);
        jobs.handle_event(progress(1));
        assert_eq!(jobs.running().unwrap().progress.unwrap().info, info);
        let stale = Event::Preview {
            job: 2,
            image: preview(),
        };
        assert!(jobs.handle_event(stale).is_empty());
        // Ending the waiting job leaves the running one alone and clears no preview.
        assert!(jobs.handle_event(Event::Cancelled { job: 2 }).is_empty());
        assert_eq!(jobs.running().unwrap().job, 1);
        let effects = jobs.handle_event(Event::Finished { job: 1 });
        assert!(matches!(effects.as_slice(), [Effect::ClearPreview]));
        assert!(!jobs.is_busy());
    }

    #[test]
    fn sweep_results_carry_their_strength_and_others_none() {
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
            }),
            ..Jobs::default()
        };
        for (job, seed, strength) in [(2, 5, Some(0.4)), (1, 5, Some(0.3)), (3, 6, None)] {
            let effects = jobs.handle_event(Event::Image {
                job,
                image: Box::new(image(seed)),
            });
            let [Effect::Result(result), Effect::Output(_)] = effects.as_slice() else {
                panic!("a result and an output");
            };
            assert_eq!(result.strength, strength);
            assert_eq!(result.seed, seed);
            assert_eq!(result.infotext, image(seed).infotext);
        }
        assert_eq!(jobs.last_seed(), Some(6));
    }

    #[test]
    fn a_result_of_another_size_fits_into_the_picture_through_its_mask() {
        let picture = image::RgbImage::from_pixel(8, 8, image::Rgb([100, 100, 100]));
        let result = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 200, 200]));
        let mut mask = image::GrayImage::new(8, 8);
        for y in 0..8 {
            for x in 0..4 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        let fitted = fit_into(&picture, &result, Some(&mask));
        assert_eq!(fitted.dimensions(), (8, 8));
        assert_eq!(fitted.get_pixel(1, 3).0, [200; 3], "inside the mask: the result");
        assert_eq!(
            fitted.get_pixel(6, 3).0,
            [100; 3],
            "outside: the picture, untouched"
        );
        // Without a mask the whole result is scaled to the picture's size.
        let whole = fit_into(&picture, &result, None);
        assert_eq!(whole.dimensions(), (8, 8));
        assert_eq!(whole.get_pixel(6, 3).0, [200; 3]);
    }

    #[test]
    fn the_working_size_is_the_picture_rounded_to_eighths() {
        assert_eq!(working_size(512, 512), (512, 512));
        assert_eq!(working_size(515, 509), (512, 512));
        assert_eq!(working_size(99, 70), (96, 72));
        assert_eq!(working_size(20, 30), (64, 64));
        // Too large: scaled down to 2048 on the long side, the aspect kept.
        assert_eq!(working_size(4096, 3072), (2048, 1536));
    }

    fn step(job: JobId, step: usize, steps: usize) -> Event {
        Event::Progress {
            job,
            info: StepInfo {
                batch: 0,
                batch_count: 1,
                step,
                steps,
            },
            steps_per_sec: 0.1,
            eta_secs: 999.0,
        }
    }

    #[test]
    fn loading_then_sampling_with_an_eta_measured_after_the_first_step() {
        let (mut jobs, _) = queued(&[1]);
        let t0 = Instant::now();
        let at = |secs: f64| t0 + std::time::Duration::from_secs_f64(secs);
        jobs.handle_event_at(Event::Started { job: 1 }, at(0.0));
        assert_eq!(jobs.status_text(), "starting…");
        let loading = Event::LoadingModel {
            job: 1,
            path: "tiny.safetensors".into(),
        };
        jobs.handle_event_at(loading, at(0.1));
        assert_eq!(jobs.status_text(), "loading the model…");
        jobs.handle_event_at(Event::ModelLoaded { job: 1, secs: 9.0 }, at(9.0));
        assert_eq!(jobs.status_text(), "preparing the first step…");
        // The first step ends 10 s after the start: no ETA from it.
        jobs.handle_event_at(step(1, 1, 10), at(10.0));
        assert_eq!(jobs.status_text(), "step 1/10 · measuring…");
        jobs.handle_event_at(step(1, 2, 10), at(11.0));
        jobs.handle_event_at(step(1, 3, 10), at(12.0));
        // One second a step since the first: 7 steps left, 7 s (not the 10 s a step of the first).
        let p = jobs.running().unwrap().progress.unwrap();
        assert!((p.eta_secs.unwrap() - 7.0).abs() < 1e-6, "{p:?}");
        assert_eq!(jobs.status_text(), "step 3/10 · 1.00 it/s · ETA 7 s");
        jobs.cancel_running();
        assert_eq!(jobs.status_text(), "cancelling…");
        jobs.handle_event_at(Event::Cancelled { job: 1 }, at(12.5));
        assert_eq!(jobs.status_text(), "cancelled");
    }

    #[test]
    fn a_run_of_several_jobs_counts_them() {
        let (mut jobs, _) = queued(&[]);
        for job in 1..=3 {
            let q = queued(&[job]).0.queue.pop_front().unwrap();
            jobs.push_queued(q);
        }
        assert_eq!(jobs.status_text(), "ready · 3 queued");
        jobs.handle_event(Event::Started { job: 1 });
        assert_eq!(jobs.job_number(), Some((1, 3)));
        jobs.handle_event(Event::Finished { job: 1 });
        jobs.handle_event(Event::Started { job: 2 });
        assert!(
            jobs.status_text().starts_with("job 2 of 3 · "),
            "{}",
            jobs.status_text()
        );
        jobs.remove_queued(3);
        assert_eq!(jobs.job_number(), Some((2, 2)));
        jobs.handle_event(Event::Finished { job: 2 });
        assert_eq!(jobs.status_text(), "ready");
        // A job submitted while idle starts a new count of one: no "job k of n".
        let q = queued(&[4]).0.queue.pop_front().unwrap();
        jobs.push_queued(q);
        jobs.handle_event(Event::Started { job: 4 });
        assert_eq!(jobs.job_number(), None);
    }

    #[test]
    fn only_masked_previews_cover_the_crop_and_fix_previews_are_hidden() {
        let mut settings = settings_with_model();
        settings.params.width = 64;
        settings.params.height = 64;
        let mut mask = image::GrayImage::new(256, 256);
        for y in 100..120 {
            for x in 100..120 {
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        let init = |area| InitImage {
            image: image::RgbImage::new(256, 256),
            mask: Some(mask.clone()),
            settings: Img2ImgSettings {
                inpaint_area: area,
                ..Img2ImgSettings::default()
            },
        };
        let only = request(&mut settings, &paths(), Some(init(InpaintArea::OnlyMasked)), 0.5).unwrap();
        let PreviewRegion::Part(r) = Captured::of(&only).region else {
            panic!("a part of the picture expected");
        };
        assert!(r.x0 <= 100 && r.y0 <= 100 && r.x1 >= 120 && r.y1 >= 120, "{r:?}");
        assert!(r.width() < 256, "{r:?}");
        let whole = request(
            &mut settings,
            &paths(),
            Some(init(InpaintArea::WholePicture)),
            0.5,
        )
        .unwrap();
        assert_eq!(Captured::of(&whole).region, PreviewRegion::Whole);
        assert_eq!(Captured::of(&whole).mask.as_deref(), Some(&mask));
        let mut fix = whole;
        fix.fix = Some(crate::request::FixSettings::default());
        assert_eq!(Captured::of(&fix).region, PreviewRegion::Hidden);
    }
}
