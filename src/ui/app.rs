//! `EaselApp`: `logic` drains engine and disk events and applies commands; `ui` only draws and queues commands.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use eframe::egui::{
    self, Color32, ColorImage, Key, KeyboardShortcut, Modifiers, TextureHandle, TextureOptions, Vec2,
};

use super::canvas::{self, CanvasView};
use super::canvas_gpu::CanvasResources;
use super::io::{GalleryItem, Io, IoTask, Reply, Rgba};
use crate::config::{AppPaths, Mode, Settings};
use crate::engine::{Engine, Event, JobId, StepInfo};
use crate::models::registry::ModelEntry;
use crate::params::{GenerationParams, RngSource, Sampler, Schedule};
use crate::request::{
    DeviceChoice, Img2ImgSettings, InitImage, InpaintArea, MaskedContent, Request, ResizeMode,
};

const GENERATE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);
const CANCEL: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Escape);
/// Seconds of quiet after an edit before the document is autosaved.
const AUTOSAVE_DELAY_S: f64 = 1.5;

/// What the UI asks for; applied in `logic` after the frame that produced it.
enum Command {
    Generate,
    Cancel,
    RemoveQueued(JobId),
    SelectModel(PathBuf),
    AddFolder,
    Rescan,
    ShowGalleryItem(usize),
    UseParameters(String),
    DeleteGalleryItem(usize),
    OpenOutputs,
    /// Only-masked inpaint of the masked region with ADetailer's defaults.
    Refine,
    /// One job per strength, same seed.
    StrengthSweep,
    /// Native dialog to open an image onto the canvas.
    OpenImage,
}

struct Running {
    job: JobId,
    cancel: Arc<AtomicBool>,
    step: Option<(StepInfo, f64, f64)>,
}

struct Queued {
    job: JobId,
    cancel: Arc<AtomicBool>,
    summary: String,
}

/// A strength sweep: its jobs, and the results so far as a labelled row to pick from.
struct Sweep {
    jobs: Vec<(JobId, f32)>,
    results: Vec<(f32, image::RgbImage, TextureHandle)>,
}

/// What the "only masked" region depends on: revision, blur, padding, invert, width, height.
type ContextKey = (u64, u32, u32, bool, u32, u32);

/// UI frame cost while the app runs (logged, for the notes; not a test).
#[derive(Default)]
struct FrameStats {
    window_start: Option<std::time::Instant>,
    last_frame: Option<std::time::Instant>,
    frames: u32,
    worst: f64,
    total: f64,
    worst_interval: f64,
}

/// Strengths of the strength sweep.
const SWEEP: [f32; 6] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

/// The Easel window.
#[expect(clippy::struct_excessive_bools, reason = "independent UI flags")]
pub struct EaselApp {
    settings: Settings,
    paths: AppPaths,
    engine: Engine,
    io: Io,
    models: Vec<ModelEntry>,
    loras: Vec<crate::models::registry::LoraEntry>,
    scanning: bool,
    model_filter: String,
    gallery: Vec<(GalleryItem, TextureHandle)>,
    confirm_delete: Option<usize>,
    canvas: CanvasView,
    /// Parameters of the picture shown, when it came from a file that has them.
    shown_infotext: Option<String>,
    /// The GPU canvas pipeline is installed.
    gpu: bool,
    /// Last autosaved document revision and when the document last changed.
    autosave: (Option<u64>, Option<u64>, f64),
    /// AutoV2 hashes by model path, as they arrive.
    hashes: std::collections::HashMap<PathBuf, Result<String, String>>,
    /// Model preview pictures.
    thumbs: std::collections::HashMap<PathBuf, TextureHandle>,
    image_picks: (SyncSender<PathBuf>, Receiver<PathBuf>),
    sweep: Option<Sweep>,
    /// Seed of the newest image, for "reuse".
    last_seed: Option<u64>,
    /// The last "only masked" region and what it was computed from.
    context_cache: Option<(ContextKey, (u32, u32, u32, u32))>,
    /// Frame timing (`EASEL_FRAME_STATS=1` logs it every 5 s): start, frames, worst, total CPU seconds.
    frame_stats: Option<FrameStats>,
    /// When the process started (for the time-to-first-frame log line).
    started: Option<std::time::Instant>,
    running: Option<Running>,
    queue: VecDeque<Queued>,
    messages: Vec<String>,
    show_shortcuts: bool,
    show_about: bool,
    commands: Vec<Command>,
    folder_picks: (SyncSender<PathBuf>, Receiver<PathBuf>),
    ctx: egui::Context,
}

impl EaselApp {
    /// Starts the engine and disk workers and asks for the model list and gallery.
    pub fn new(ctx: &egui::Context, paths: AppPaths, settings: Settings) -> anyhow::Result<Self> {
        let wake = {
            let ctx = ctx.clone();
            move || ctx.request_repaint()
        };
        let engine = Engine::spawn(Some(Box::new(wake.clone())))?;
        let io = Io::spawn(wake)?;
        for dir in [
            &paths.default_models_dir,
            &paths.default_lora_dir(),
            &paths.default_embeddings_dir(),
        ] {
            if let Err(err) = std::fs::create_dir_all(dir) {
                tracing::warn!("could not create {}: {err}", dir.display());
            }
        }
        let mut app = Self {
            settings,
            paths,
            engine,
            io,
            models: Vec::new(),
            loras: Vec::new(),
            scanning: false,
            model_filter: String::new(),
            gallery: Vec::new(),
            confirm_delete: None,
            canvas: CanvasView::default(),
            shown_infotext: None,
            gpu: false,
            autosave: (None, None, 0.0),
            hashes: std::collections::HashMap::new(),
            thumbs: std::collections::HashMap::new(),
            image_picks: sync_channel(4),
            sweep: None,
            last_seed: None,
            context_cache: None,
            frame_stats: std::env::var_os("EASEL_FRAME_STATS").map(|_| FrameStats::default()),
            started: None,
            running: None,
            queue: VecDeque::new(),
            messages: Vec::new(),
            show_shortcuts: false,
            show_about: false,
            commands: Vec::new(),
            folder_picks: sync_channel(4),
            ctx: ctx.clone(),
        };
        app.rescan();
        app.io.send(IoTask::LoadGallery(app.paths.outputs_dir.clone()));
        app.io.send(IoTask::LoadDocument(app.paths.document_dir()));
        Ok(app)
    }

    /// The persisted settings (tests read them).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Number of images in the gallery.
    pub fn gallery_len(&self) -> usize {
        self.gallery.len()
    }

    /// True while a job runs or waits.
    pub fn is_busy(&self) -> bool {
        self.running.is_some() || !self.queue.is_empty()
    }

    /// Dismissible messages currently shown.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// Infotext of the newest gallery image.
    pub fn newest_infotext(&self) -> Option<&str> {
        self.gallery
            .first()
            .and_then(|(item, _)| item.infotext.as_deref())
    }

    fn rescan(&mut self) {
        let mut folders = vec![self.paths.default_models_dir.clone()];
        folders.extend(self.settings.model_folders.iter().cloned());
        self.scanning = true;
        self.io.send(IoTask::Scan(folders));
        let lora_dirs = self.paths.lora_dirs(&self.settings.model_folders);
        self.io.send(IoTask::ScanLoras(lora_dirs));
    }

    /// LoRA names the browser knows (tests read them).
    pub fn lora_names(&self) -> Vec<String> {
        self.loras.iter().map(|l| l.name.clone()).collect()
    }

    fn texture(&self, name: &str, rgba: &Rgba) -> TextureHandle {
        let image = ColorImage::from_rgba_unmultiplied([rgba.width, rgba.height], &rgba.pixels);
        self.ctx.load_texture(name, image, TextureOptions::LINEAR)
    }

    /// The open document, for tests.
    pub fn document(&self) -> Option<&crate::document::Document> {
        self.canvas.doc.as_ref()
    }

    /// Where the canvas picture is on screen, in points (tests aim the pointer with it).
    pub fn canvas_image_rect(&self) -> Option<egui::Rect> {
        self.canvas.image_rect
    }

    /// The open document, mutable, for tests.
    pub fn document_mut(&mut self) -> Option<&mut crate::document::Document> {
        self.canvas.doc.as_mut()
    }

    fn submit(&mut self) {
        let init = match self.settings.mode {
            Mode::TextToImage => None,
            Mode::ImageToImage => {
                let Some(doc) = &self.canvas.doc else {
                    self.messages
                        .push("image to image needs a picture: drop or open one onto the canvas".into());
                    return;
                };
                Some(InitImage {
                    image: doc.image().clone(),
                    mask: doc.has_mask().then(|| doc.mask().clone()),
                    settings: self.settings.img2img.clone(),
                })
            }
        };
        let strength = self.settings.strength;
        self.submit_with(init, strength);
    }

    /// Queues the prompt panel's parameters with `init` (img2img at `strength` when given).
    fn submit_with(&mut self, init: Option<InitImage>, strength: f32) -> Option<JobId> {
        let Some(model) = self.settings.selected_model.clone() else {
            self.messages
                .push("choose a model in the model browser first".into());
            return None;
        };
        if self.settings.random_seed {
            self.settings.params.seed = crate::params::random_seed();
        }
        let mut params = self.settings.params.clone();
        params.denoising_strength = init.as_ref().map(|_| strength);
        let what = match &init {
            None => String::new(),
            Some(i) if i.mask.is_some() => format!(" · inpaint {strength:.2}"),
            Some(_) => format!(" · img2img {strength:.2}"),
        };
        let summary = format!(
            "{} · {} steps · seed {}{what}",
            short(&params.prompt),
            params.steps,
            params.seed
        );
        let request = Request {
            model,
            device: DeviceChoice::Auto,
            params,
            init,
            lora_dirs: self.paths.lora_dirs(&self.settings.model_folders),
            embedding_dirs: self.paths.embedding_dirs(&self.settings.model_folders),
            previews: true,
        };
        let (job, cancel) = self.engine.submit(request);
        self.queue.push_back(Queued { job, cancel, summary });
        Some(job)
    }

    fn refine(&mut self) {
        let Some(doc) = &self.canvas.doc else {
            self.messages.push("open a picture first".into());
            return;
        };
        if !doc.has_mask() {
            self.messages.push(
                "paint over the face or hand to refine first (or draw a box with the rectangle tool)".into(),
            );
            return;
        }
        // ADetailer's defaults: denoise 0.4, padding 32 px, mask blur 4, only masked.
        let settings = Img2ImgSettings {
            padding: 32,
            mask_blur: 4,
            inpaint_area: InpaintArea::OnlyMasked,
            masked_content: MaskedContent::Original,
            invert_mask: false,
            ..self.settings.img2img.clone()
        };
        let init = InitImage {
            image: doc.image().clone(),
            mask: Some(doc.mask().clone()),
            settings,
        };
        self.submit_with(Some(init), 0.4);
    }

    fn strength_sweep(&mut self) {
        let Some(doc) = &self.canvas.doc else {
            self.messages.push("open a picture first".into());
            return;
        };
        let (image, mask) = (doc.image().clone(), doc.has_mask().then(|| doc.mask().clone()));
        if self.settings.random_seed {
            self.settings.params.seed = crate::params::random_seed();
        }
        let random = std::mem::replace(&mut self.settings.random_seed, false);
        let mut jobs = Vec::new();
        for strength in SWEEP {
            let init = InitImage {
                image: image.clone(),
                mask: mask.clone(),
                settings: self.settings.img2img.clone(),
            };
            if let Some(job) = self.submit_with(Some(init), strength) {
                jobs.push((job, strength));
            }
        }
        self.settings.random_seed = random;
        self.sweep = (!jobs.is_empty()).then(|| Sweep {
            jobs,
            results: Vec::new(),
        });
    }

    fn handle_engine_event(&mut self, event: Event) {
        match event {
            Event::Started { job } => {
                if let Some(pos) = self.queue.iter().position(|q| q.job == job) {
                    let q = self.queue.remove(pos);
                    if let Some(q) = q {
                        self.running = Some(Running {
                            job,
                            cancel: q.cancel,
                            step: None,
                        });
                    }
                }
            }
            Event::Progress {
                job,
                info,
                steps_per_sec,
                eta_secs,
            } => {
                if let Some(r) = self.running.as_mut().filter(|r| r.job == job) {
                    r.step = Some((info, steps_per_sec, eta_secs));
                }
            }
            Event::Preview { job, image } => {
                if self.running.as_ref().is_some_and(|r| r.job == job) {
                    let size = Vec2::new(
                        self.settings.params.width as f32,
                        self.settings.params.height as f32,
                    );
                    self.canvas
                        .set_preview(&self.ctx, &image.rgba, [image.width, image.height], size);
                }
            }
            Event::Image { job, image } => {
                self.last_seed = Some(image.seed);
                let sweep_strength = self
                    .sweep
                    .as_ref()
                    .and_then(|s| s.jobs.iter().find(|(j, _)| *j == job).map(|(_, st)| *st));
                if let Some(rgb) = image::RgbImage::from_raw(image.width, image.height, image.rgb.clone()) {
                    if let Some(strength) = sweep_strength {
                        // Sweep results wait in the picker instead of becoming versions one by one.
                        let rgba = Rgba {
                            width: rgb.width() as usize,
                            height: rgb.height() as usize,
                            pixels: rgb.pixels().flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
                        };
                        let tex = self.texture("sweep", &rgba);
                        if let Some(sweep) = &mut self.sweep {
                            sweep.results.push((strength, rgb, tex));
                            sweep.results.sort_by(|a, b| a.0.total_cmp(&b.0));
                        }
                        self.canvas.clear_preview();
                    } else {
                        // A new version of the document: undo (Ctrl+Z) goes back to the previous picture.
                        self.canvas.set_picture(rgb);
                    }
                }
                self.shown_infotext = Some(image.infotext.clone());
                self.io.send(IoTask::Save(self.paths.outputs_dir.clone(), image));
            }
            Event::Warning { message, .. } => self.messages.push(message),
            Event::Failed { job, message, .. } => {
                self.finish(job);
                self.messages.push(message);
            }
            Event::Finished { job } | Event::Cancelled { job } => self.finish(job),
            Event::LoadingModel { .. } | Event::ModelLoaded { .. } => {}
        }
    }

    fn finish(&mut self, job: JobId) {
        if self.running.as_ref().is_some_and(|r| r.job == job) {
            self.running = None;
            self.canvas.clear_preview();
        }
        self.queue.retain(|q| q.job != job);
    }

    fn handle_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Models(models) => {
                let unhashed: Vec<PathBuf> = models
                    .iter()
                    .filter(|m| m.problem.is_none() && m.path.is_file() && !self.hashes.contains_key(&m.path))
                    .map(|m| m.path.clone())
                    .collect();
                if !unhashed.is_empty() {
                    self.io.send(IoTask::Hash(unhashed));
                }
                let pictures: Vec<(PathBuf, PathBuf)> = models
                    .iter()
                    .filter_map(|m| m.thumbnail.clone().map(|t| (m.path.clone(), t)))
                    .collect();
                if !pictures.is_empty() {
                    self.io.send(IoTask::Thumbnails(pictures));
                }
                self.models = models;
                self.scanning = false;
            }
            Reply::Saved(item) => {
                let tex = self.texture("thumb", &item.thumbnail);
                self.gallery.insert(0, (item, tex));
            }
            Reply::Gallery(items) => {
                self.gallery = items
                    .into_iter()
                    .map(|item| {
                        let tex = self.texture("thumb", &item.thumbnail);
                        (item, tex)
                    })
                    .collect();
            }
            Reply::Image(rgba, infotext) => {
                if let Some(img) =
                    image::RgbaImage::from_raw(rgba.width as u32, rgba.height as u32, rgba.pixels)
                {
                    let rgb = crate::imaging::flatten_on_white(&image::DynamicImage::ImageRgba8(img));
                    self.canvas.set_picture(rgb);
                }
                self.shown_infotext = infotext;
            }
            Reply::Loras(loras) => {
                let pictures: Vec<(PathBuf, PathBuf)> = loras
                    .iter()
                    .filter_map(|l| l.thumbnail.clone().map(|t| (l.path.clone(), t)))
                    .collect();
                if !pictures.is_empty() {
                    self.io.send(IoTask::Thumbnails(pictures));
                }
                let unhashed: Vec<PathBuf> = loras
                    .iter()
                    .filter(|l| !self.hashes.contains_key(&l.path))
                    .map(|l| l.path.clone())
                    .collect();
                if !unhashed.is_empty() {
                    self.io.send(IoTask::Hash(unhashed));
                }
                self.loras = loras;
            }
            Reply::Hashed(path, hash) => {
                self.hashes.insert(path, hash);
            }
            Reply::Thumbnail(path, rgba) => {
                let tex = self.texture("model-thumb", &rgba);
                self.thumbs.insert(path, tex);
            }
            Reply::Document(doc) => {
                if self.canvas.doc.is_none() {
                    let (image, mask) = *doc;
                    self.canvas.doc = Some(crate::document::Document::from_layers(image, mask));
                    self.autosave.0 = self.canvas.doc.as_ref().map(crate::document::Document::revision);
                }
            }
            Reply::Done => {}
            Reply::Failed(message) => self.messages.push(message),
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Generate => self.submit(),
            Command::Cancel => {
                if let Some(r) = &self.running {
                    r.cancel.store(true, Ordering::Relaxed);
                }
            }
            Command::RemoveQueued(job) => {
                if let Some(q) = self.queue.iter().find(|q| q.job == job) {
                    // The worker skips a job whose flag is set before it starts.
                    q.cancel.store(true, Ordering::Relaxed);
                }
                self.queue.retain(|q| q.job != job);
            }
            Command::SelectModel(path) => self.settings.selected_model = Some(path),
            Command::AddFolder => {
                let tx = self.folder_picks.0.clone();
                let ctx = self.ctx.clone();
                let spawned = std::thread::Builder::new()
                    .name("folder-dialog".into())
                    .spawn(move || {
                        if let Some(folder) = rfd::FileDialog::new()
                            .set_title("Add a model folder")
                            .pick_folder()
                        {
                            let _ = tx.send(folder);
                            ctx.request_repaint();
                        }
                    });
                if let Err(err) = spawned {
                    self.messages
                        .push(format!("could not open the folder dialog: {err}"));
                }
            }
            Command::Rescan => self.rescan(),
            Command::Refine => self.refine(),
            Command::StrengthSweep => self.strength_sweep(),
            Command::OpenImage => {
                let tx = self.image_picks.0.clone();
                let ctx = self.ctx.clone();
                let spawned = std::thread::Builder::new()
                    .name("image-dialog".into())
                    .spawn(move || {
                        if let Some(file) = rfd::FileDialog::new()
                            .set_title("Open an image")
                            .add_filter("Images", &["png", "jpg", "jpeg", "webp"])
                            .pick_file()
                        {
                            let _ = tx.send(file);
                            ctx.request_repaint();
                        }
                    });
                if let Err(err) = spawned {
                    self.messages
                        .push(format!("could not open the file dialog: {err}"));
                }
            }
            Command::ShowGalleryItem(i) => {
                if let Some((item, _)) = self.gallery.get(i) {
                    self.io.send(IoTask::LoadImage(item.path.clone()));
                }
            }
            Command::UseParameters(text) => match crate::infotext::parse(&text) {
                Ok(mut p) => {
                    if let Some(strength) = p.denoising_strength {
                        self.settings.img2img = crate::infotext::read_img2img(&p.extra);
                        self.settings.strength = strength;
                        self.settings.mode = Mode::ImageToImage;
                    }
                    crate::infotext::strip_img2img(&mut p.extra);
                    self.settings.params = GenerationParams {
                        batch_count: self.settings.params.batch_count,
                        batch_size: self.settings.params.batch_size,
                        ..p
                    };
                    self.settings.random_seed = false;
                }
                Err(err) => self
                    .messages
                    .push(format!("these parameters could not be used: {err}")),
            },
            Command::DeleteGalleryItem(i) => {
                if i < self.gallery.len() {
                    let (item, _) = self.gallery.remove(i);
                    if let Err(err) = std::fs::remove_file(&item.path) {
                        self.messages
                            .push(format!("could not delete {}: {err}", item.path.display()));
                    }
                }
            }
            Command::OpenOutputs => {
                let dir = &self.paths.outputs_dir;
                let _ = std::fs::create_dir_all(dir);
                let opener = if cfg!(target_os = "macos") {
                    "open"
                } else if cfg!(target_os = "windows") {
                    "explorer"
                } else {
                    "xdg-open"
                };
                if let Err(err) = std::process::Command::new(opener).arg(dir).spawn() {
                    self.messages
                        .push(format!("could not open {}: {err}", dir.display()));
                }
            }
        }
    }

    fn prompt_panel_ui(&mut self, ui: &mut egui::Ui) {
        let p = &mut self.settings.params;
        let label = ui.label("Prompt");
        ui.add(
            egui::TextEdit::multiline(&mut p.prompt)
                .desired_rows(4)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        if let Err(err) = crate::prompt::editing::parse(&p.prompt) {
            ui.small(
                egui::RichText::new(format!("prompt editing: {err}; the prompt is used as written"))
                    .color(Color32::from_rgb(230, 160, 90)),
            );
        }
        // Typing `<lora:` offers the LoRAs whose names start with what follows.
        if let Some(partial) = open_lora_tag(&p.prompt) {
            let partial = partial.to_lowercase();
            let matches: Vec<&str> = self
                .loras
                .iter()
                .map(|l| l.name.as_str())
                .filter(|n| n.to_lowercase().starts_with(&partial))
                .take(8)
                .collect();
            if !matches.is_empty() {
                ui.horizontal_wrapped(|ui| {
                    ui.small("LoRA:");
                    for name in matches {
                        if ui.small_button(name).on_hover_text("complete the tag").clicked() {
                            let cut = p.prompt.len() - partial.len();
                            p.prompt.truncate(cut);
                            p.prompt.push_str(name);
                            p.prompt.push_str(":1>");
                        }
                    }
                });
            }
        }
        let label = ui.label("Negative prompt");
        ui.add(
            egui::TextEdit::multiline(&mut p.negative_prompt)
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        ui.separator();
        egui::Grid::new("params").num_columns(2).show(ui, |ui| {
            let l = ui.label("Sampler");
            egui::ComboBox::from_id_salt("sampler")
                .selected_text(p.sampler.a1111_name())
                .show_ui(ui, |ui| {
                    for s in Sampler::ALL {
                        ui.selectable_value(&mut p.sampler, s, s.a1111_name());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Schedule type");
            egui::ComboBox::from_id_salt("schedule")
                .selected_text(p.schedule.a1111_name())
                .show_ui(ui, |ui| {
                    for s in Schedule::ALL {
                        ui.selectable_value(&mut p.schedule, s, s.a1111_name());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Steps");
            ui.add(egui::DragValue::new(&mut p.steps).range(1..=150))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("CFG scale");
            ui.add(
                egui::DragValue::new(&mut p.cfg_scale)
                    .range(1.0..=30.0)
                    .speed(0.1),
            )
            .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Seed");
            ui.horizontal(|ui| {
                ui.add_enabled(!self.settings.random_seed, egui::DragValue::new(&mut p.seed))
                    .labelled_by(l.id);
                ui.checkbox(&mut self.settings.random_seed, "Random seed")
                    .on_hover_text("pick a new seed for every generation");
                if let Some(seed) = self.last_seed
                    && ui
                        .small_button("Reuse")
                        .on_hover_text(format!("use the last image's seed ({seed})"))
                        .clicked()
                {
                    p.seed = seed;
                    self.settings.random_seed = false;
                }
            });
            ui.end_row();
            let l = ui.label("Width");
            ui.add(egui::DragValue::new(&mut p.width).range(64..=2048).speed(8))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Height");
            ui.add(egui::DragValue::new(&mut p.height).range(64..=2048).speed(8))
                .labelled_by(l.id);
            ui.end_row();
            ui.label("");
            ui.horizontal(|ui| {
                for (w, h) in [(512, 512), (512, 768), (768, 512)] {
                    if ui.small_button(format!("{w}×{h}")).clicked() {
                        p.width = w;
                        p.height = h;
                    }
                }
                if ui
                    .small_button("Swap")
                    .on_hover_text("swap width and height")
                    .clicked()
                {
                    std::mem::swap(&mut p.width, &mut p.height);
                }
            });
            ui.end_row();
            let l = ui.label("Batch count");
            ui.add(egui::DragValue::new(&mut p.batch_count).range(1..=100))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Clip skip");
            ui.add(egui::DragValue::new(&mut p.clip_skip).range(1..=12))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("RNG");
            egui::ComboBox::from_id_salt("rng")
                .selected_text(p.rng.a1111_name())
                .show_ui(ui, |ui| {
                    for r in RngSource::ALL {
                        ui.selectable_value(&mut p.rng, r, r.a1111_name());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
        });
        // Snap sizes to the multiple of 8 the model needs.
        p.width = p.width / 8 * 8;
        p.height = p.height / 8 * 8;
        ui.separator();
        self.img2img_ui(ui);
        ui.separator();
        ui.horizontal(|ui| {
            let generate = ui.add_enabled(
                self.settings.selected_model.is_some(),
                egui::Button::new("Generate"),
            );
            if generate.on_hover_text("Ctrl+Enter").clicked() {
                self.commands.push(Command::Generate);
            }
            if self.running.is_some() && ui.button("Cancel").on_hover_text("Esc").clicked() {
                self.commands.push(Command::Cancel);
            }
        });
        if self.settings.selected_model.is_none() {
            ui.small("Choose a model on the right to start.");
        }
        if !self.queue.is_empty() {
            ui.separator();
            ui.label(format!("Queue ({})", self.queue.len()));
            for q in &self.queue {
                ui.horizontal(|ui| {
                    if ui
                        .small_button("×")
                        .on_hover_text("remove from the queue")
                        .clicked()
                    {
                        self.commands.push(Command::RemoveQueued(q.job));
                    }
                    ui.small(&q.summary);
                });
            }
        }
    }

    fn img2img_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.settings.mode, Mode::TextToImage, "Text to image");
            ui.selectable_value(&mut self.settings.mode, Mode::ImageToImage, "Image to image")
                .on_hover_text("start from the canvas picture; a painted mask makes it inpainting");
        });
        if self.settings.mode != Mode::ImageToImage {
            return;
        }
        let strength = &mut self.settings.strength;
        let s = &mut self.settings.img2img;
        egui::Grid::new("img2img").num_columns(2).show(ui, |ui| {
            let l = ui.label("Denoising strength");
            ui.add(egui::Slider::new(strength, 0.0..=1.0).step_by(0.01))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Resize mode");
            egui::ComboBox::from_id_salt("resize_mode")
                .selected_text(s.resize_mode.label())
                .show_ui(ui, |ui| {
                    for m in ResizeMode::ALL {
                        ui.selectable_value(&mut s.resize_mode, m, m.label());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
        });
        let masked = self
            .canvas
            .doc
            .as_ref()
            .is_some_and(crate::document::Document::has_mask);
        egui::CollapsingHeader::new(if masked {
            "Inpaint (mask painted)"
        } else {
            "Inpaint"
        })
        .default_open(masked)
        .show(ui, |ui| {
            egui::Grid::new("inpaint").num_columns(2).show(ui, |ui| {
                let l = ui.label("Mask blur");
                ui.add(egui::DragValue::new(&mut s.mask_blur).range(0..=64))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Masked content");
                egui::ComboBox::from_id_salt("masked_content")
                    .selected_text(s.masked_content.label())
                    .show_ui(ui, |ui| {
                        for m in MaskedContent::ALL {
                            ui.selectable_value(&mut s.masked_content, m, m.label());
                        }
                    })
                    .response
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Inpaint area");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut s.inpaint_area, InpaintArea::WholePicture, "Whole picture");
                    ui.selectable_value(&mut s.inpaint_area, InpaintArea::OnlyMasked, "Only masked");
                })
                .response
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Only masked padding");
                ui.add(egui::DragValue::new(&mut s.padding).range(0..=256))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Mask mode");
                ui.checkbox(&mut s.invert_mask, "Inpaint not masked")
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Conditional mask weight");
                ui.add(egui::Slider::new(&mut s.mask_weight, 0.0..=1.0))
                    .labelled_by(l.id)
                    .on_hover_text("inpainting models only");
                ui.end_row();
            });
        });
        ui.horizontal(|ui| {
            let has_doc = self.canvas.doc.is_some();
            if ui
                .add_enabled(has_doc && masked, egui::Button::new("Refine"))
                .on_hover_text("repaint only the masked area at full resolution (denoise 0.4, padding 32, blur 4): for faces and hands")
                .on_disabled_hover_text("paint a mask over the face or hand first")
                .clicked()
            {
                self.commands.push(Command::Refine);
            }
            if ui
                .add_enabled(has_doc, egui::Button::new("Strength sweep"))
                .on_hover_text("one image per strength 0.3 … 0.8 with the same seed")
                .clicked()
            {
                self.commands.push(Command::StrengthSweep);
            }
        });
    }

    fn lora_browser_ui(&mut self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new(format!("LoRAs ({})", self.loras.len()))
            .default_open(!self.loras.is_empty())
            .show(ui, |ui| {
                if self.loras.is_empty() {
                    ui.small(format!(
                        "Put LoRA .safetensors files in {} (or add an A1111 / ComfyUI folder).",
                        self.paths.default_lora_dir().display()
                    ));
                }
                let filter = self.model_filter.to_lowercase();
                for l in self
                    .loras
                    .iter()
                    .filter(|l| l.name.to_lowercase().contains(&filter))
                {
                    let hash = match self.hashes.get(&l.path) {
                        Some(Ok(h)) => h.as_str(),
                        _ => "",
                    };
                    let response = ui
                        .horizontal(|ui| {
                            if let Some(t) = self.thumbs.get(&l.path) {
                                ui.add(
                                    egui::Image::new(t)
                                        .max_size(Vec2::splat(32.0))
                                        .alt_text(l.name.clone()),
                                );
                            }
                            ui.add(egui::Button::new(format!(
                                "{}  [{}]  {}  {hash}",
                                l.name,
                                l.family.unwrap_or("unreadable"),
                                human_size(l.size_bytes)
                            )))
                        })
                        .inner;
                    if response
                        .on_hover_text(format!("insert <lora:{}:1> into the prompt", l.name))
                        .clicked()
                    {
                        let prompt = &mut self.settings.params.prompt;
                        if !prompt.is_empty() && !prompt.ends_with(' ') {
                            prompt.push(' ');
                        }
                        prompt.push_str("<lora:");
                        prompt.push_str(&l.name);
                        prompt.push_str(":1>");
                    }
                }
            });
    }

    fn model_browser_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Models");
        ui.horizontal(|ui| {
            let l = ui.label("Filter");
            ui.text_edit_singleline(&mut self.model_filter).labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            if ui.button("Add folder…").clicked() {
                self.commands.push(Command::AddFolder);
            }
            if ui.button("Rescan").clicked() {
                self.commands.push(Command::Rescan);
            }
            if self.scanning {
                ui.spinner();
            }
        });
        ui.separator();
        if self.models.is_empty() && !self.scanning {
            ui.label(format!(
                "No models found. Put .safetensors checkpoints in\n{}\nor add your A1111 / ComfyUI folder.",
                self.paths.default_models_dir.display()
            ));
            return;
        }
        let filter = self.model_filter.to_lowercase();
        egui::ScrollArea::vertical().show(ui, |ui| {
            for m in self
                .models
                .iter()
                .filter(|m| m.name.to_lowercase().contains(&filter))
            {
                let selected = self.settings.selected_model.as_ref() == Some(&m.path);
                let badge = m.family.map_or("?", |f| f.label());
                let hash = match self.hashes.get(&m.path) {
                    Some(Ok(h)) => h.clone(),
                    Some(Err(_)) => "no hash".into(),
                    None if m.problem.is_none() && m.path.is_file() => "hashing…".into(),
                    None => String::new(),
                };
                let text = format!("{}  [{badge}]  {}  {hash}", m.name, human_size(m.size_bytes));
                let response = ui
                    .horizontal(|ui| {
                        if let Some(t) = self.thumbs.get(&m.path) {
                            ui.add(
                                egui::Image::new(t)
                                    .max_size(Vec2::splat(40.0))
                                    .alt_text(m.name.clone()),
                            );
                        }
                        ui.add_enabled(m.problem.is_none(), egui::Button::selectable(selected, text))
                    })
                    .inner;
                let response = match &m.problem {
                    Some(problem) => response.on_disabled_hover_text(problem),
                    None => response.on_hover_text(m.path.display().to_string()),
                };
                if response.clicked() {
                    self.commands.push(Command::SelectModel(m.path.clone()));
                }
            }
        });
    }

    fn progress_and_gallery_ui(&mut self, ui: &mut egui::Ui) {
        if let Some(r) = &self.running {
            match r.step {
                Some((info, its, eta)) => {
                    let done = info.batch * info.steps + info.step;
                    let total = (info.batch_count * info.steps).max(1);
                    ui.add(egui::ProgressBar::new(done as f32 / total as f32).text(format!(
                        "step {}/{} · {its:.2} it/s · ETA {eta:.0} s",
                        info.step, info.steps
                    )));
                }
                None => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("loading the model…");
                    });
                }
            }
        }
        ui.horizontal(|ui| {
            ui.label(format!("Gallery ({})", self.gallery.len()));
            if ui.small_button("Open folder").clicked() {
                self.commands.push(Command::OpenOutputs);
            }
        });
        egui::ScrollArea::horizontal().show(ui, |ui| {
            ui.horizontal(|ui| {
                for (i, (item, tex)) in self.gallery.iter().enumerate() {
                    let name = item
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let button = egui::Button::image(
                        egui::Image::new(tex)
                            .max_size(Vec2::splat(96.0))
                            .alt_text(name.clone()),
                    );
                    let response = ui
                        .add(button)
                        .on_hover_text(item.infotext.clone().unwrap_or(name));
                    if response.clicked() {
                        self.commands.push(Command::ShowGalleryItem(i));
                    }
                    response.context_menu(|ui| {
                        if let Some(text) = &item.infotext {
                            if ui.button("Use parameters").clicked() {
                                self.commands.push(Command::UseParameters(text.clone()));
                                ui.close();
                            }
                            if ui.button("Copy infotext").clicked() {
                                ui.copy_text(text.clone());
                                ui.close();
                            }
                        }
                        if ui.button("Delete…").clicked() {
                            self.confirm_delete = Some(i);
                            ui.close();
                        }
                    });
                }
            });
        });
    }

    fn canvas_ui(&mut self, ui: &mut egui::Ui) {
        for message in std::mem::take(&mut self.messages) {
            let keep = ui
                .horizontal_top(|ui| {
                    let dismissed = ui.small_button("×").on_hover_text("dismiss").clicked();
                    ui.add(
                        egui::Label::new(
                            egui::RichText::new(&message).color(Color32::from_rgb(230, 120, 100)),
                        )
                        .wrap(),
                    );
                    !dismissed
                })
                .inner;
            if keep {
                self.messages.push(message);
            }
        }
        if let Some(text) = self.shown_infotext.clone() {
            ui.horizontal(|ui| {
                ui.small(short(&text));
                if ui.small_button("Use parameters").clicked() {
                    self.commands.push(Command::UseParameters(text.clone()));
                }
            });
        }
        canvas::toolbar_ui(ui, &mut self.canvas, &mut self.settings.tools);
        // The "only masked" box: what the model will see, recomputed when the mask or settings change.
        self.canvas.context_box = match (
            &self.canvas.doc,
            self.settings.mode,
            self.settings.img2img.inpaint_area,
        ) {
            (Some(doc), Mode::ImageToImage, InpaintArea::OnlyMasked) if doc.has_mask() => {
                let s = &self.settings.img2img;
                let key = (
                    doc.revision(),
                    s.mask_blur,
                    s.padding,
                    s.invert_mask,
                    self.settings.params.width,
                    self.settings.params.height,
                );
                match self.context_cache {
                    Some((k, region)) if k == key || doc.stroking() => Some(region),
                    _ => {
                        let mask = crate::imaging::processed_mask(doc.mask(), s.invert_mask, s.mask_blur);
                        let region = crate::imaging::only_masked_region(
                            &mask,
                            s.padding,
                            self.settings.params.width,
                            self.settings.params.height,
                        );
                        if let Some(region) = region {
                            self.context_cache = Some((key, region));
                        }
                        region
                    }
                }
            }
            _ => None,
        };
        let hint = "Write a prompt and press Generate (Ctrl+Enter), or drop a picture here to paint on it";
        self.canvas.ui(ui, self.gpu, &mut self.settings.tools, hint);
    }

    fn dialogs_ui(&mut self, ctx: &egui::Context) {
        egui::Window::new("Shortcuts")
            .open(&mut self.show_shortcuts)
            .show(ctx, |ui| {
                egui::Grid::new("shortcuts").show(ui, |ui| {
                    for (keys, what) in [("Ctrl+Enter", "Generate"), ("Esc", "Cancel the running job")]
                        .into_iter()
                        .chain(canvas::SHORTCUTS)
                    {
                        ui.monospace(keys);
                        ui.label(what);
                        ui.end_row();
                    }
                });
            });
        egui::Window::new("About Easel")
            .open(&mut self.show_about)
            .show(ctx, |ui| {
                ui.label(format!("Easel {}", env!("CARGO_PKG_VERSION")));
                ui.label(format!("Data folder: {}", self.paths.data_dir.display()));
                ui.label(format!("Outputs: {}", self.paths.outputs_dir.display()));
                ui.label(format!("Log: {}", self.paths.log_file().display()));
            });
        let mut keep = None;
        let mut close_sweep = false;
        if let Some(sweep) = &self.sweep {
            let mut open = true;
            egui::Window::new("Strength sweep")
                .open(&mut open)
                .show(ctx, |ui| {
                    ui.label(format!(
                        "{} of {} done; click one to keep it as the next version",
                        sweep.results.len(),
                        sweep.jobs.len()
                    ));
                    ui.horizontal_wrapped(|ui| {
                        for (strength, rgb, tex) in &sweep.results {
                            ui.vertical(|ui| {
                                let label = format!("strength {strength:.1}");
                                let button = egui::Button::image(
                                    egui::Image::new(tex)
                                        .max_size(Vec2::splat(128.0))
                                        .alt_text(label.clone()),
                                );
                                if ui.add(button).on_hover_text("keep this one").clicked() {
                                    keep = Some(rgb.clone());
                                }
                                ui.label(label);
                            });
                        }
                    });
                });
            close_sweep = !open;
        }
        if let Some(rgb) = keep {
            self.canvas.set_picture(rgb);
            close_sweep = true;
        }
        if close_sweep {
            self.sweep = None;
        }
        if let Some(i) = self.confirm_delete {
            let mut decision = None;
            egui::Window::new("Delete image?")
                .collapsible(false)
                .show(ctx, |ui| {
                    ui.label("The PNG file is removed from the outputs folder.");
                    ui.horizontal(|ui| {
                        if ui.button("Delete").clicked() {
                            decision = Some(true);
                        }
                        if ui.button("Keep").clicked() {
                            decision = Some(false);
                        }
                    });
                });
            match decision {
                Some(true) => {
                    self.commands.push(Command::DeleteGalleryItem(i));
                    self.confirm_delete = None;
                }
                Some(false) => self.confirm_delete = None,
                None => {}
            }
        }
    }
}

impl EaselApp {
    fn logic_inner(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        while let Ok(event) = self.engine.events().try_recv() {
            self.handle_engine_event(event);
        }
        for reply in self.io.drain() {
            self.handle_reply(reply);
        }
        while let Ok(file) = self.image_picks.1.try_recv() {
            self.io.send(IoTask::LoadImage(file));
        }
        self.autosave_tick(ctx);
        while let Ok(folder) = self.folder_picks.1.try_recv() {
            if !self.settings.model_folders.contains(&folder) {
                self.settings.model_folders.push(folder);
            }
            self.rescan();
        }
        let (generate, cancel) =
            ctx.input_mut(|i| (i.consume_shortcut(&GENERATE), i.consume_shortcut(&CANCEL)));
        // Ctrl+V outside text fields pastes an image onto the canvas (egui turns it into a Paste event).
        let paste = !ctx.egui_wants_keyboard_input()
            && ctx.input(|i| i.events.iter().any(|e| matches!(e, egui::Event::Paste(_))));
        if paste {
            self.io.send(IoTask::PasteImage);
        }
        if generate {
            self.commands.push(Command::Generate);
        }
        if cancel {
            self.commands.push(Command::Cancel);
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        for path in dropped {
            self.io.send(IoTask::LoadImage(path));
        }
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
    }
}

impl eframe::App for EaselApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let frame_start = std::time::Instant::now();
        if let Some(started) = self.started.take() {
            tracing::info!(
                "first frame {:.0} ms after start",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        self.ui_inner(ui, frame);
        self.record_frame(frame_start);
    }

    fn logic(&mut self, ctx: &egui::Context, frame: &mut eframe::Frame) {
        self.logic_inner(ctx, frame);
    }

    fn save(&mut self, _storage: &mut dyn eframe::Storage) {
        // eframe keeps the window layout; the settings go to our own JSON file (RON cannot hold
        // A1111's names such as "Euler a" as enum variants).
        self.save_settings();
    }

    fn on_exit(&mut self) {
        // Whatever is unsaved goes to disk now, on this thread: the process is about to end.
        if let Some(doc) = &self.canvas.doc
            && self.autosave.0 != Some(doc.revision())
            && let Err(err) = super::io::save_document(&self.paths.document_dir(), doc.image(), doc.mask())
        {
            tracing::error!("{err}");
        }
    }
}

impl EaselApp {
    fn record_frame(&mut self, start: std::time::Instant) {
        let Some(stats) = &mut self.frame_stats else {
            return;
        };
        let secs = start.elapsed().as_secs_f64();
        if let Some(last) = stats.last_frame {
            stats.worst_interval = stats.worst_interval.max(start.duration_since(last).as_secs_f64());
        }
        stats.last_frame = Some(start);
        stats.frames += 1;
        stats.worst = stats.worst.max(secs);
        stats.total += secs;
        let window = *stats.window_start.get_or_insert(start);
        if window.elapsed().as_secs_f64() >= 5.0 {
            tracing::info!(
                "UI frames: {} in {:.1} s; UI code mean {:.2} ms, worst {:.2} ms; longest gap between frames {:.0} ms; generating: {}",
                stats.frames,
                window.elapsed().as_secs_f64(),
                stats.total / f64::from(stats.frames) * 1000.0,
                stats.worst * 1000.0,
                stats.worst_interval * 1000.0,
                self.running.is_some()
            );
            *stats = FrameStats {
                last_frame: stats.last_frame,
                ..FrameStats::default()
            };
        }
    }

    /// Writes the settings file now.
    pub fn save_settings(&mut self) {
        if let Err(err) = self.settings.save(&self.paths.settings_file()) {
            tracing::error!("could not save the settings: {err}");
        }
    }

    /// Shows a dismissible message.
    pub fn push_message(&mut self, message: String) {
        self.messages.push(message);
    }

    /// Remembers the process start, so the first frame logs how long start-up took.
    pub fn set_start_time(&mut self, started: std::time::Instant) {
        self.started = Some(started);
    }

    fn ui_inner(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if !self.gpu
            && let Some(render_state) = frame.wgpu_render_state()
        {
            CanvasResources::install(render_state);
            self.gpu = true;
        }
        egui::Panel::top("menu").show(ui, |ui| {
            egui::MenuBar::new().ui(ui, |ui| {
                ui.menu_button("File", |ui| {
                    if ui.button("Open image…").clicked() {
                        self.commands.push(Command::OpenImage);
                    }
                    if ui.button("Paste image").on_hover_text("Ctrl+V").clicked() {
                        self.io.send(IoTask::PasteImage);
                    }
                    if ui.button("Add model folder…").clicked() {
                        self.commands.push(Command::AddFolder);
                    }
                    if ui.button("Open outputs folder").clicked() {
                        self.commands.push(Command::OpenOutputs);
                    }
                });
                ui.menu_button("Help", |ui| {
                    if ui.button("Shortcuts").clicked() {
                        self.show_shortcuts = true;
                    }
                    if ui.button("About").clicked() {
                        self.show_about = true;
                    }
                });
            });
        });
        egui::Panel::bottom("gallery")
            .resizable(true)
            .default_size(150.0)
            .show(ui, |ui| self.progress_and_gallery_ui(ui));
        egui::Panel::left("prompt")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.prompt_panel_ui(ui));
            });
        egui::Panel::right("models")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| {
                self.model_browser_ui(ui);
                ui.separator();
                self.lora_browser_ui(ui);
            });
        egui::CentralPanel::default().show(ui, |ui| self.canvas_ui(ui));
        let ctx = ui.ctx().clone();
        self.dialogs_ui(&ctx);
    }
}

impl EaselApp {
    /// Saves the document a moment after the last edit (off the UI thread).
    fn autosave_tick(&mut self, ctx: &egui::Context) {
        let Some(doc) = &self.canvas.doc else {
            return;
        };
        if doc.stroking() {
            return;
        }
        let revision = doc.revision();
        let now = ctx.input(|i| i.time);
        let (saved, seen, changed_at) = self.autosave;
        if saved == Some(revision) {
            return;
        }
        if seen != Some(revision) {
            self.autosave = (saved, Some(revision), now);
            ctx.request_repaint_after(std::time::Duration::from_secs_f64(AUTOSAVE_DELAY_S));
            return;
        }
        if now - changed_at >= AUTOSAVE_DELAY_S {
            self.io.send(IoTask::SaveDocument(
                self.paths.document_dir(),
                Box::new((doc.image().clone(), doc.mask().clone())),
            ));
            self.autosave.0 = Some(revision);
        } else {
            ctx.request_repaint_after(std::time::Duration::from_secs_f64(
                AUTOSAVE_DELAY_S - (now - changed_at),
            ));
        }
    }

    /// Writes the document now (tests; the app autosaves by itself).
    pub fn save_document_now(&mut self) -> Result<(), String> {
        if let Some(doc) = &self.canvas.doc {
            super::io::save_document(&self.paths.document_dir(), doc.image(), doc.mask())?;
            self.autosave.0 = Some(doc.revision());
        }
        Ok(())
    }
}

/// The name typed so far after an unclosed `<lora:` at the end of the prompt.
fn open_lora_tag(prompt: &str) -> Option<&str> {
    let start = prompt.rfind("<lora:")?;
    let partial = &prompt[start + "<lora:".len()..];
    (!partial.contains(['>', ':', '<', '\n'])).then_some(partial)
}

fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_owned()
    }
}
