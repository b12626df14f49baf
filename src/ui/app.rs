//! `EaselApp`: `logic` drains engine and disk events and applies commands; `ui` only draws and queues commands.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use eframe::egui::{
    self, Color32, ColorImage, Key, KeyboardShortcut, Modifiers, TextureHandle, TextureOptions, Vec2,
};

use super::io::{GalleryItem, Io, Reply, Request, Rgba};
use super::{AppPaths, Settings};
use crate::diffusion::model::DeviceChoice;
use crate::diffusion::pipeline::StepInfo;
use crate::engine::{Engine, Event, JobId};
use crate::models::registry::ModelEntry;
use crate::params::{GenerationParams, RngSource, Sampler, Schedule};

const GENERATE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);
const CANCEL: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Escape);
const ZOOM_IN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Plus);
const ZOOM_OUT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Minus);
const ZOOM_FIT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Num0);
const ZOOM_ONE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Num1);

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

/// The canvas: the current picture with zoom and pan.
#[derive(Default)]
struct Canvas {
    texture: Option<TextureHandle>,
    /// Size the picture stands for (a preview is drawn at the size of the image it will become).
    image_size: Vec2,
    /// Points per image pixel; `None` = fit to the view.
    zoom: Option<f32>,
    pan: Vec2,
    /// Parameters of the image shown, when it came from a file that has them.
    infotext: Option<String>,
}

/// The Easel window.
pub struct EaselApp {
    settings: Settings,
    paths: AppPaths,
    engine: Engine,
    io: Io,
    models: Vec<ModelEntry>,
    scanning: bool,
    model_filter: String,
    gallery: Vec<(GalleryItem, TextureHandle)>,
    confirm_delete: Option<usize>,
    canvas: Canvas,
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
        if let Err(err) = std::fs::create_dir_all(&paths.default_models_dir) {
            tracing::warn!("could not create {}: {err}", paths.default_models_dir.display());
        }
        let mut app = Self {
            settings,
            paths,
            engine,
            io,
            models: Vec::new(),
            scanning: false,
            model_filter: String::new(),
            gallery: Vec::new(),
            confirm_delete: None,
            canvas: Canvas::default(),
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
        app.io.send(Request::LoadGallery(app.paths.outputs_dir.clone()));
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
        self.io.send(Request::Scan(folders));
    }

    fn texture(&self, name: &str, rgba: &Rgba) -> TextureHandle {
        let image = ColorImage::from_rgba_unmultiplied([rgba.width, rgba.height], &rgba.pixels);
        self.ctx.load_texture(name, image, TextureOptions::LINEAR)
    }

    fn show_on_canvas(&mut self, rgba: &Rgba, image_size: Vec2, infotext: Option<String>) {
        let image = ColorImage::from_rgba_unmultiplied([rgba.width, rgba.height], &rgba.pixels);
        match &mut self.canvas.texture {
            Some(t) if t.size() == [rgba.width, rgba.height] => t.set(image, TextureOptions::LINEAR),
            _ => self.canvas.texture = Some(self.ctx.load_texture("canvas", image, TextureOptions::LINEAR)),
        }
        if self.canvas.image_size != image_size {
            self.canvas.zoom = None;
            self.canvas.pan = Vec2::ZERO;
        }
        self.canvas.image_size = image_size;
        self.canvas.infotext = infotext;
    }

    fn submit(&mut self) {
        let Some(model) = self.settings.selected_model.clone() else {
            self.messages
                .push("choose a model in the model browser first".into());
            return;
        };
        if self.settings.random_seed {
            self.settings.params.seed = crate::params::random_seed();
        }
        let params = self.settings.params.clone();
        let summary = format!(
            "{} · {} steps · seed {}",
            short(&params.prompt),
            params.steps,
            params.seed
        );
        let (job, cancel) = self.engine.submit_job(model, DeviceChoice::Auto, params, true);
        self.queue.push_back(Queued { job, cancel, summary });
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
                    let rgba = Rgba {
                        width: image.width,
                        height: image.height,
                        pixels: image.rgba,
                    };
                    self.show_on_canvas(&rgba, size, None);
                }
            }
            Event::Image { image, .. } => {
                let rgba = Rgba {
                    width: image.width as usize,
                    height: image.height as usize,
                    pixels: image
                        .rgb
                        .chunks_exact(3)
                        .flat_map(|p| [p[0], p[1], p[2], 255])
                        .collect(),
                };
                let size = Vec2::new(image.width as f32, image.height as f32);
                self.show_on_canvas(&rgba, size, Some(image.infotext.clone()));
                self.io.send(Request::Save(self.paths.outputs_dir.clone(), image));
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
        }
        self.queue.retain(|q| q.job != job);
    }

    fn handle_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Models(models) => {
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
                let size = Vec2::new(rgba.width as f32, rgba.height as f32);
                self.show_on_canvas(&rgba, size, infotext);
            }
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
            Command::ShowGalleryItem(i) => {
                if let Some((item, _)) = self.gallery.get(i) {
                    self.io.send(Request::LoadImage(item.path.clone()));
                }
            }
            Command::UseParameters(text) => match GenerationParams::from_infotext(&text) {
                Ok(p) => {
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
                let text = format!("{}  [{badge}]  {}", m.name, human_size(m.size_bytes));
                let response = ui.add_enabled(m.problem.is_none(), egui::Button::selectable(selected, text));
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
        if let Some(text) = self.canvas.infotext.clone() {
            ui.horizontal(|ui| {
                ui.small(short(&text));
                if ui.small_button("Use parameters").clicked() {
                    self.commands.push(Command::UseParameters(text.clone()));
                }
            });
        }
        let (response, painter) = ui.allocate_painter(ui.available_size(), egui::Sense::click_and_drag());
        let view = response.rect;
        painter.rect_filled(view, 0.0, Color32::from_gray(24));
        let Some(texture) = &self.canvas.texture else {
            painter.text(
                view.center(),
                egui::Align2::CENTER_CENTER,
                "Write a prompt and press Generate (Ctrl+Enter)",
                egui::FontId::proportional(16.0),
                Color32::GRAY,
            );
            return;
        };
        let size = self.canvas.image_size;
        let fit = (view.width() / size.x).min(view.height() / size.y);
        let mut zoom = self.canvas.zoom.unwrap_or(fit);
        if response.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y + (i.zoom_delta() - 1.0) * 200.0);
            if scroll != 0.0 {
                zoom = (zoom * (scroll / 200.0).exp()).clamp(0.05, 32.0);
                self.canvas.zoom = Some(zoom);
            }
        }
        if response.dragged() {
            self.canvas.pan += response.drag_delta();
        }
        ui.input_mut(|i| {
            if i.consume_shortcut(&ZOOM_IN) {
                self.canvas.zoom = Some((zoom * 1.25).min(32.0));
            }
            if i.consume_shortcut(&ZOOM_OUT) {
                self.canvas.zoom = Some((zoom / 1.25).max(0.05));
            }
            if i.consume_shortcut(&ZOOM_FIT) {
                self.canvas.zoom = None;
                self.canvas.pan = Vec2::ZERO;
            }
            if i.consume_shortcut(&ZOOM_ONE) {
                self.canvas.zoom = Some(1.0);
            }
        });
        let rect = egui::Rect::from_center_size(view.center() + self.canvas.pan, size * zoom);
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        painter
            .with_clip_rect(view)
            .image(texture.id(), rect, uv, Color32::WHITE);
    }

    fn dialogs_ui(&mut self, ctx: &egui::Context) {
        egui::Window::new("Shortcuts")
            .open(&mut self.show_shortcuts)
            .show(ctx, |ui| {
                egui::Grid::new("shortcuts").show(ui, |ui| {
                    for (keys, what) in [
                        ("Ctrl+Enter", "Generate"),
                        ("Esc", "Cancel the running job"),
                        ("+ / -", "Zoom in / out"),
                        ("0", "Fit the picture"),
                        ("1", "100 %"),
                        ("Wheel / pinch", "Zoom"),
                        ("Drag", "Pan"),
                    ] {
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
            });
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

impl eframe::App for EaselApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        while let Ok(event) = self.engine.events().try_recv() {
            self.handle_engine_event(event);
        }
        for reply in self.io.drain() {
            self.handle_reply(reply);
        }
        while let Ok(folder) = self.folder_picks.1.try_recv() {
            if !self.settings.model_folders.contains(&folder) {
                self.settings.model_folders.push(folder);
            }
            self.rescan();
        }
        let (generate, cancel) =
            ctx.input_mut(|i| (i.consume_shortcut(&GENERATE), i.consume_shortcut(&CANCEL)));
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
            self.io.send(Request::LoadImage(path));
        }
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("menu").show(ui, |ui| {
            egui::MenuBar::new().ui(ui, |ui| {
                ui.menu_button("File", |ui| {
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
            .show(ui, |ui| self.model_browser_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.canvas_ui(ui));
        let ctx = ui.ctx().clone();
        self.dialogs_ui(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
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
