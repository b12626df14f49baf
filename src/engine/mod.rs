//! The inference worker: one named thread owns the loaded model, runs jobs in order and streams events back.
//! GUI and CLI submit the same `Job`; cancel is an atomic flag checked after every step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use candle_core::Tensor;

use crate::diffusion::DiffusionError;
use crate::diffusion::embeddings::EmbeddingDb;
use crate::diffusion::img2img::InitImage;
use crate::diffusion::lora;
use crate::diffusion::model::{DeviceChoice, SdModel, compute_dtype};
use crate::diffusion::pipeline::{self, GeneratedImage, Observer, StepInfo};
use crate::diffusion::preview::{PreviewImage, latent_preview};
use crate::models::ModelError;
use crate::params::GenerationParams;
use crate::prompt::ClipTokenizer;

/// Identifies a job; ids only grow.
pub type JobId = u64;

/// One generation request: a plain value the GUI, the CLI and tests all build the same way.
#[derive(Debug, Clone)]
pub struct Job {
    /// Unique, increasing id.
    pub id: JobId,
    /// Checkpoint file or diffusers folder.
    pub model: PathBuf,
    /// Where to run.
    pub device: DeviceChoice,
    /// What to generate.
    pub params: GenerationParams,
    /// Set to stop the job after the current step.
    pub cancel: Arc<AtomicBool>,
    /// Send a [`Event::Preview`] after every step.
    pub previews: bool,
    /// img2img/inpainting input; `None` for txt2img.
    pub init: Option<InitImage>,
    /// Folders where `<lora:name:w>` tags are looked up.
    pub lora_dirs: Vec<PathBuf>,
    /// Folders of textual-inversion embeddings.
    pub embedding_dirs: Vec<PathBuf>,
}

/// Whether a failure is the user's input (fixable by them) or something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Bad parameters, missing or broken files, unsupported models.
    BadInput,
    /// Anything else (out of memory, internal errors).
    Internal,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The job left the queue.
    Started {
        /// Job id.
        job: JobId,
    },
    /// A checkpoint is being loaded (this can take a while).
    LoadingModel {
        /// Job id.
        job: JobId,
        /// The checkpoint.
        path: PathBuf,
    },
    /// The checkpoint finished loading.
    ModelLoaded {
        /// Job id.
        job: JobId,
        /// Seconds it took.
        secs: f64,
    },
    /// A sampler step finished.
    Progress {
        /// Job id.
        job: JobId,
        /// Which step of which batch.
        info: StepInfo,
        /// Steps per second over this batch so far.
        steps_per_sec: f64,
        /// Estimated seconds left for the whole job.
        eta_secs: f64,
    },
    /// The cheap latent→RGB picture of the current step.
    Preview {
        /// Job id.
        job: JobId,
        /// Latent-resolution RGBA.
        image: PreviewImage,
    },
    /// An image is done.
    Image {
        /// Job id.
        job: JobId,
        /// The image (boxed: it is large).
        image: Box<GeneratedImage>,
    },
    /// A notice that did not stop the job.
    Warning {
        /// Job id.
        job: JobId,
        /// The text.
        message: String,
    },
    /// The job completed.
    Finished {
        /// Job id.
        job: JobId,
    },
    /// The job failed; the app keeps running.
    Failed {
        /// Job id.
        job: JobId,
        /// Input problem or internal problem.
        kind: FailureKind,
        /// The engine's message.
        message: String,
    },
    /// The job stopped because its cancel flag was set.
    Cancelled {
        /// Job id.
        job: JobId,
    },
}

/// Keeps the last loaded checkpoint so consecutive jobs do not reload it.
#[derive(Default)]
pub struct ModelCache {
    loaded: Option<(PathBuf, DeviceChoice, Option<SystemTime>, SdModel)>,
    identity: ModelIdentity,
}

/// How a checkpoint is named in infotexts.
#[derive(Debug, Clone, Default)]
pub struct ModelIdentity {
    /// A1111 `Model:` (file stem or folder name).
    pub name: Option<String>,
    /// A1111 `Model hash:` (AutoV2), for single files.
    pub hash: Option<String>,
}

impl ModelIdentity {
    /// Name and AutoV2 hash of a checkpoint path (hashing reads the whole file).
    pub fn of(path: &std::path::Path) -> Result<Self, ModelError> {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let hash = if path.is_file() {
            Some(crate::models::hash::autov2(&crate::models::hash::cached_sha256(
                path,
                |_, _| {},
            )?))
        } else {
            None
        };
        Ok(Self { name, hash })
    }
}

impl ModelCache {
    /// The model for `path` on `device`, loading it if it is not the cached one (or the file changed).
    pub fn get(
        &mut self,
        path: &std::path::Path,
        device: DeviceChoice,
        mut on_load: impl FnMut(),
    ) -> Result<(&mut SdModel, &ModelIdentity, Option<f64>), DiffusionError> {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let hit = matches!(&self.loaded, Some((p, d, m, _)) if p == path && *d == device && *m == mtime);
        let mut loaded_secs = None;
        if !hit {
            self.loaded = None; // free the old model before loading the next one
            on_load();
            let dev = device.open()?;
            let model = SdModel::open(path, &dev, compute_dtype(&dev))?;
            loaded_secs = Some(model.load_secs);
            self.identity = ModelIdentity::of(path)?;
            self.loaded = Some((path.to_path_buf(), device, mtime, model));
        }
        match &mut self.loaded {
            Some((_, _, _, model)) => Ok((model, &self.identity, loaded_secs)),
            None => Err(DiffusionError::Input("no model is loaded".into())),
        }
    }

    /// Drops the loaded model.
    pub fn clear(&mut self) {
        self.loaded = None;
    }
}

struct JobObserver<'a> {
    job: &'a Job,
    shutdown: Option<&'a AtomicBool>,
    emit: &'a mut dyn FnMut(Event),
    started: Instant,
    batch_started: Instant,
    current_batch: usize,
}

impl Observer for JobObserver<'_> {
    fn on_step(&mut self, info: StepInfo, x0: &Tensor) -> Result<(), DiffusionError> {
        if self.job.previews {
            match latent_preview(x0) {
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

/// Opened LoRA files by path, reused while the file is unchanged.
/// What an embeddings load depends on: folders, text-encoder width, and every file with its mtime.
type EmbeddingKey = (Vec<PathBuf>, usize, Vec<(PathBuf, Option<SystemTime>)>);
/// The last embeddings load and what it came from.
type EmbeddingCache = Mutex<Option<(EmbeddingKey, Arc<EmbeddingDb>)>>;

/// The embeddings of `dirs`, reloaded only when a file changed; skipped files are reported once.
fn embeddings_for(
    dirs: &[PathBuf],
    tokenizer: &ClipTokenizer,
    hidden: usize,
    observer: &mut dyn Observer,
) -> Arc<EmbeddingDb> {
    static CACHE: OnceLock<EmbeddingCache> = OnceLock::new();
    let mut files = Vec::new();
    for d in dirs {
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                let mtime = e.metadata().and_then(|m| m.modified()).ok();
                files.push((e.path(), mtime));
            }
        }
    }
    files.sort();
    let key = (dirs.to_vec(), hidden, files);
    let mut cache = CACHE
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((k, db)) = cache.as_ref()
        && *k == key
    {
        return db.clone();
    }
    let db = Arc::new(EmbeddingDb::load(dirs, tokenizer, hidden));
    for why in &db.skipped {
        observer.on_warning(why);
    }
    *cache = Some((key, db.clone()));
    db
}

type LoraCache = Mutex<HashMap<PathBuf, (Option<SystemTime>, Arc<lora::LoraFile>)>>;

fn lora_cache() -> &'static LoraCache {
    static CACHE: OnceLock<LoraCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Resolves the prompt's `<lora:…>` tags in `dirs`, merges them into `model` (or restores the base
/// networks when there are none) and writes A1111's `Lora hashes` into the infotext.
fn apply_loras(
    model: &mut SdModel,
    dirs: &[PathBuf],
    params: &mut GenerationParams,
    observer: &mut dyn Observer,
) -> Result<(), DiffusionError> {
    let (_, tags, unknown) = lora::extract_tags(&params.prompt).map_err(DiffusionError::Input)?;
    for tag in unknown {
        observer.on_warning(&format!("{tag} is not something Easel knows; it was left out"));
    }
    params.extra.retain(|(k, _)| k != "Lora hashes");
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
        let path = lora::find(&tag.name, dirs).ok_or_else(|| {
            DiffusionError::Input(
                lora::LoraError::NotFound {
                    name: tag.name.clone(),
                    folders: folders(),
                }
                .to_string(),
            )
        })?;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let cached = lora_cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&path)
            .filter(|(m, _)| *m == mtime)
            .map(|(_, f)| f.clone());
        let file = if let Some(f) = cached {
            f
        } else {
            let f = Arc::new(
                lora::LoraFile::open(&path, &tag.name).map_err(|e| DiffusionError::Input(e.to_string()))?,
            );
            lora_cache()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(path.clone(), (mtime, f.clone()));
            f
        };
        set.push(lora::Applied {
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
    if !set.is_empty() {
        let hashes = set
            .iter()
            .map(|a| format!("{}: {}", a.lora.name, a.lora.short_hash))
            .collect::<Vec<_>>()
            .join(", ");
        params.extra.push(("Lora hashes".into(), hashes));
    }
    Ok(())
}

/// Classifies an error for the user: their input, or an internal failure.
pub fn failure_kind(err: &DiffusionError) -> FailureKind {
    match err {
        DiffusionError::Model(ModelError::Tensor { .. })
        | DiffusionError::Tensor(_)
        | DiffusionError::Cancelled => FailureKind::Internal,
        DiffusionError::Input(_) | DiffusionError::Tokenizer(_) | DiffusionError::Model(_) => {
            FailureKind::BadInput
        }
    }
}

/// Runs one job to completion on the calling thread, reporting through `emit`. The terminal event
/// (`Finished`, `Failed` or `Cancelled`) is emitted too.
/// `shutdown`, when given, cancels the job like its own flag does.
pub fn run_job(
    cache: &mut ModelCache,
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
        let path = job.model.clone();
        let id = job.id;
        let (model, identity, loaded) = {
            let emit_ref = &mut *emit;
            cache.get(&path, job.device, || {
                emit_ref(Event::LoadingModel {
                    job: id,
                    path: path.clone(),
                });
            })?
        };
        if let Some(secs) = loaded {
            emit(Event::ModelLoaded { job: id, secs });
        }
        let mut observer = JobObserver {
            job,
            shutdown,
            emit: &mut *emit,
            started: Instant::now(),
            batch_started: Instant::now(),
            current_batch: 0,
        };
        let mut params = job.params.clone();
        params.model_name.clone_from(&identity.name);
        params.model_hash.clone_from(&identity.hash);
        apply_loras(model, &job.lora_dirs, &mut params, &mut observer)?;
        model.embeddings = embeddings_for(
            &job.embedding_dirs,
            tokenizer,
            model.clip.config().hidden_size,
            &mut observer,
        );
        pipeline::generate(model, tokenizer, &params, job.init.as_ref(), &mut observer)
    })();
    match result {
        Ok(_) => emit(Event::Finished { job: job.id }),
        Err(DiffusionError::Cancelled) => emit(Event::Cancelled { job: job.id }),
        Err(err) => emit(Event::Failed {
            job: job.id,
            kind: failure_kind(&err),
            message: err.to_string(),
        }),
    }
}

enum Command {
    Run(Box<Job>),
}

/// Handle to the inference worker thread. Dropping it stops the worker after the current job.
pub struct Engine {
    commands: Option<SyncSender<Command>>,
    events: Receiver<Event>,
    worker: Option<JoinHandle<()>>,
    next_id: AtomicU64,
    cancel_all: Arc<AtomicBool>,
    lora_dirs: Mutex<Vec<PathBuf>>,
    embedding_dirs: Mutex<Vec<PathBuf>>,
}

/// Capacity of the job queue.
const QUEUE_CAPACITY: usize = 64;
/// Capacity of the event channel; progress events are dropped rather than block the worker when it is full.
const EVENT_CAPACITY: usize = 256;

impl Engine {
    /// Starts the worker. `wake` is called after every event (the GUI passes `ctx.request_repaint`).
    pub fn spawn(wake: Option<Box<dyn Fn() + Send>>) -> std::io::Result<Self> {
        let (cmd_tx, cmd_rx) = sync_channel::<Command>(QUEUE_CAPACITY);
        let (ev_tx, ev_rx) = sync_channel::<Event>(EVENT_CAPACITY);
        let cancel_all = Arc::new(AtomicBool::new(false));
        let worker = std::thread::Builder::new().name("inference".into()).spawn({
            let shutdown = cancel_all.clone();
            move || worker_loop(&cmd_rx, &ev_tx, &shutdown, wake.as_deref())
        })?;
        Ok(Self {
            commands: Some(cmd_tx),
            events: ev_rx,
            worker: Some(worker),
            next_id: AtomicU64::new(1),
            cancel_all,
            lora_dirs: Mutex::new(Vec::new()),
            embedding_dirs: Mutex::new(Vec::new()),
        })
    }

    /// Queues a job without previews; returns its id and cancel flag.
    pub fn submit(
        &self,
        model: PathBuf,
        device: DeviceChoice,
        params: GenerationParams,
    ) -> (JobId, Arc<AtomicBool>) {
        self.submit_job(model, device, params, false)
    }

    /// Queues an img2img/inpainting job (txt2img when `init` is `None`) without previews.
    pub fn submit_with_init(
        &self,
        model: PathBuf,
        device: DeviceChoice,
        params: GenerationParams,
        init: Option<InitImage>,
    ) -> (JobId, Arc<AtomicBool>) {
        self.submit_full(model, device, params, init, false)
    }

    /// Queues a txt2img job; `previews` asks for a [`Event::Preview`] after every step.
    pub fn submit_job(
        &self,
        model: PathBuf,
        device: DeviceChoice,
        params: GenerationParams,
        previews: bool,
    ) -> (JobId, Arc<AtomicBool>) {
        self.submit_full(model, device, params, None, previews)
    }

    /// Queues any job: `init` makes it img2img/inpainting, `previews` asks for a [`Event::Preview`]
    /// after every step. LoRA tags are looked up in the folders set with [`Self::set_lora_dirs`].
    pub fn submit_full(
        &self,
        model: PathBuf,
        device: DeviceChoice,
        params: GenerationParams,
        init: Option<InitImage>,
        previews: bool,
    ) -> (JobId, Arc<AtomicBool>) {
        let lora_dirs = self
            .lora_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let embedding_dirs = self
            .embedding_dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            id,
            model,
            device,
            params,
            cancel: cancel.clone(),
            previews,
            init,
            lora_dirs,
            embedding_dirs,
        };
        if let Some(tx) = &self.commands
            && tx.send(Command::Run(Box::new(job))).is_err()
        {
            tracing::error!("the inference worker has stopped; job {id} was not queued");
        }
        (id, cancel)
    }

    /// Folders where later jobs look up `<lora:…>` tags.
    pub fn set_lora_dirs(&self, dirs: Vec<PathBuf>) {
        *self.lora_dirs.lock().unwrap_or_else(PoisonError::into_inner) = dirs;
    }

    /// Folders later jobs read textual-inversion embeddings from.
    pub fn set_embedding_dirs(&self, dirs: Vec<PathBuf>) {
        *self.embedding_dirs.lock().unwrap_or_else(PoisonError::into_inner) = dirs;
    }

    /// The event stream.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.cancel_all.store(true, Ordering::Relaxed);
        self.commands = None; // closes the queue; the worker exits after the current job
        // Drain events so a worker blocked on a full channel can finish.
        while self.events.try_recv().is_ok() {}
        if let Some(worker) = self.worker.take() {
            while !worker.is_finished() {
                while self.events.try_recv().is_ok() {}
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if worker.join().is_err() {
                tracing::error!("the inference worker panicked while stopping");
            }
        }
    }
}

fn worker_loop(
    commands: &Receiver<Command>,
    events: &SyncSender<Event>,
    shutdown: &AtomicBool,
    wake: Option<&(dyn Fn() + Send)>,
) {
    let tokenizer = ClipTokenizer::bundled();
    let mut cache = ModelCache::default();
    while let Ok(Command::Run(job)) = commands.recv() {
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
                    message: err.to_string(),
                });
                continue;
            }
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_job(&mut cache, tokenizer, &job, Some(shutdown), &mut emit);
        }));
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "unknown panic".into());
            cache.clear();
            emit(Event::Failed {
                job: job.id,
                kind: FailureKind::Internal,
                message: format!("internal error in the inference worker: {what}; the model was unloaded"),
            });
        }
    }
}
