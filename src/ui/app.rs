//! `EaselApp`, the window's shell: `logic` drains engine and disk events and applies the queued
//! commands; `ui` lays out the panels, which draw and queue commands.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use eframe::egui::{self, Color32, Key, KeyboardShortcut, Modifiers, Vec2};

use super::autosave::{Autosave, AutosaveStep};
use super::canvas::{self, CanvasView};
use super::canvas_gpu::CanvasResources;
use super::civitai::CivitaiLookup;
use super::command::{Command, PathKind};
use super::downloads::Downloads;
use super::i18n::{tr, tr_noop, trf};
use super::io::{DocumentSave, Io, IoTask, Origin, Reply};
use super::jobs::{Effect, JobResult, Jobs, Submit};
use super::only_masked::OnlyMaskedBox;
use super::panels::{Dialogs, GalleryPanel, GetModelsDialog, ModelsPanel, PromptPanel};
use super::staging::{Accept, Candidate, Staging};
use super::text::short;
use crate::config::{AppPaths, Mode, Settings};
use crate::document::Document;
use crate::engine::{Engine, Event};
use crate::params::GenerationParams;

const GENERATE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);
const CANCEL: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Escape);
const EXPORT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), Key::S);
const SAVE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
const SAVE_AS: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::ALT), Key::S);
/// The unsaved-changes mark after the document's name.
const UNSAVED_MARK: &str = " •";
/// What the empty canvas says.
const EMPTY_CANVAS_HINT: &str =
    tr_noop("Write a prompt and press Generate (Ctrl+Enter), or drop a picture here to paint on it");
/// Seconds between two `EASEL_FRAME_STATS` log lines.
const FRAME_STATS_WINDOW_SECS: f64 = 5.0;
/// Newest messages shown over the canvas at once (older ones wait behind a "+N more" line).
const SHOWN_MESSAGES: usize = 4;
/// Side panel widths as shares of the window width, and their limits in points: the side panels
/// shrink with the window before the canvas does.
const LEFT_SHARE: f32 = 0.26;
const LEFT_WIDTH_PT: (f32, f32) = (180.0, 420.0);
const RIGHT_SHARE: f32 = 0.18;
const RIGHT_WIDTH_PT: (f32, f32) = (150.0, 320.0);
/// Width of the status bar's progress bar, in points.
const PROGRESS_WIDTH_PT: f32 = 140.0;

/// What a native file dialog picked.
enum Picked {
    /// A folder to add to the model folders.
    ModelFolder(PathBuf),
    /// An image to open on the canvas.
    Image(PathBuf),
    /// The ControlNet section's control image.
    ControlImage(PathBuf),
    /// Where to export the canvas picture.
    Export(PathBuf),
    /// Where to save the document.
    SaveAs(PathBuf),
}

/// Where the dialog threads send what the user picked.
struct Picks {
    sender: SyncSender<Picked>,
    receiver: Receiver<Picked>,
}

/// UI frame cost while the app runs (logged, for the notes; not a test).
#[derive(Default)]
struct FrameStats {
    window_start: Option<Instant>,
    last_frame: Option<Instant>,
    frames: u32,
    worst_secs: f64,
    total_secs: f64,
    worst_interval_secs: f64,
}

/// Which collapsible panels are open (the View menu toggles them; dragging an edge past its
/// minimum closes one).
struct OpenPanels {
    prompt: bool,
    models: bool,
    gallery: bool,
}

impl Default for OpenPanels {
    fn default() -> Self {
        Self {
            prompt: true,
            models: true,
            gallery: true,
        }
    }
}

/// Width of the staging bar's "k of n", in points (room for "99 of 99" in either language).
const STAGING_COUNT_PT: f32 = 90.0;

/// The Easel window.
pub struct EaselApp {
    settings: Settings,
    paths: AppPaths,
    engine: Engine,
    io: Io,
    /// Asks for a rescan when a model, LoRA, embedding or ControlNet folder changes.
    watcher: super::watch::FolderWatcher,
    jobs: Jobs,
    canvas: CanvasView,
    prompt: PromptPanel,
    models: ModelsPanel,
    gallery: GalleryPanel,
    dialogs: Dialogs,
    /// The Get models window.
    get_models: GetModelsDialog,
    /// Model downloads (each on its own thread).
    downloads: Downloads,
    /// The Civitai lookup thread, started the first time the (opt-in) lookup is needed.
    civitai: Option<CivitaiLookup>,
    /// Parameters of the picture shown, when it came from a file that has them.
    shown_infotext: Option<String>,
    /// The last file operation that went well ("exported to …"), shown in the status bar.
    notice: Option<String>,
    /// The faces or hands of the last Find, listed so each one can be dropped from the mask.
    found: Option<super::found::Found>,
    /// The document's file, once saved to or opened from one.
    doc_file: Option<PathBuf>,
    /// The document revision that is in that file.
    doc_saved: Option<u64>,
    /// Counts the documents opened in place of another, so a late save reply for an earlier one
    /// is not taken for this one.
    doc_serial: u64,
    /// The window title last sent.
    shown_title: String,
    /// A document file that was opened while the open document had unsaved changes, waiting for
    /// the user to say whether it replaces them.
    pending_open: Option<(PathBuf, Box<crate::document::file::Opened>)>,
    /// The tool that wrote those parameters, and what could not be read, for the line above them.
    shown_note: Option<String>,
    /// Dismissible messages, oldest first.
    messages: Vec<String>,
    /// The "only masked" box, kept up to date in `logic` for the canvas to draw.
    only_masked: OnlyMaskedBox,
    autosave: Autosave,
    picks: Picks,
    /// Commands queued by this frame's panels, applied in the next `logic`.
    commands: Vec<Command>,
    /// The GPU canvas pipeline is installed.
    gpu: bool,
    /// The document size the size fields last followed.
    followed_size: Option<(u32, u32)>,
    /// A result of another size that was fitted into the picture, offered at its own size until
    /// the user answers or the picture changes.
    own_size_offer: Option<image::RgbImage>,
    /// Results staged over the picture, waiting to be accepted or discarded.
    staging: Option<Staging>,
    /// The staged candidate whose parameters are shown (to follow browsing).
    staged_shown: Option<u64>,
    /// The document picture whose parameters are shown (to follow undo and redo).
    shown_picture: Option<u64>,
    /// Which side panels and the gallery are open (View menu).
    open_panels: OpenPanels,
    /// Frame timing (`EASEL_FRAME_STATS=1` logs it every 5 s).
    frame_stats: Option<FrameStats>,
    /// When the process started (for the time-to-first-frame log line).
    started: Option<Instant>,
    ctx: egui::Context,
}

impl EaselApp {
    /// Starts the engine and disk workers and asks for the model list, the gallery and the
    /// autosaved document.
    pub fn new(ctx: &egui::Context, paths: AppPaths, settings: Settings) -> anyhow::Result<Self> {
        super::i18n::set_language(settings.ui_language());
        super::i18n::install_fonts(ctx);
        let wake = {
            let ctx = ctx.clone();
            move || ctx.request_repaint()
        };
        let engine = Engine::spawn(Some(Box::new(wake.clone())))?;
        let watcher = super::watch::FolderWatcher::spawn(
            paths.clone(),
            settings.model_folders.clone(),
            super::watch::POLL,
            wake.clone(),
        )?;
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
        let (sender, receiver) = sync_channel(4);
        let mut app = Self {
            settings,
            paths,
            engine,
            io,
            watcher,
            jobs: Jobs::default(),
            canvas: CanvasView::default(),
            prompt: PromptPanel::default(),
            models: ModelsPanel::default(),
            gallery: GalleryPanel::default(),
            dialogs: Dialogs::default(),
            get_models: GetModelsDialog::default(),
            downloads: Downloads::default(),
            civitai: None,
            shown_infotext: None,
            notice: None,
            found: None,
            doc_file: None,
            doc_saved: None,
            doc_serial: 0,
            shown_title: String::new(),
            pending_open: None,
            shown_note: None,
            messages: Vec::new(),
            only_masked: OnlyMaskedBox::default(),
            autosave: Autosave::default(),
            picks: Picks { sender, receiver },
            commands: Vec::new(),
            gpu: false,
            followed_size: None,
            own_size_offer: None,
            staging: None,
            staged_shown: None,
            shown_picture: None,
            open_panels: OpenPanels::default(),
            frame_stats: std::env::var_os("EASEL_FRAME_STATS").map(|_| FrameStats::default()),
            started: None,
            ctx: ctx.clone(),
        };
        app.rescan();
        app.io.send(IoTask::LoadGallery(app.paths.outputs_dir.clone()));
        app.io.send(IoTask::LoadDocument(app.paths.document_dir()));
        if let Some(file) = app.settings.controlnet.image_file.clone() {
            app.io.send(IoTask::LoadControlImage(file));
        }
        Ok(app)
    }

    /// How many ControlNets the ControlNet folders hold (as last scanned).
    pub fn control_model_count(&self) -> usize {
        self.prompt.controlnet().entries().len()
    }

    /// The persisted settings (tests read them).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The settings, mutable (tests set fields that have no quick widget path).
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// The status bar's job line ("loading the model…", "job 2 of 6 · step 3/9 …", "cancelled").
    pub fn job_status(&self) -> String {
        self.jobs.status_text()
    }

    /// The canvas area on screen, in points (layout tests measure it).
    pub fn canvas_view_rect(&self) -> Option<egui::Rect> {
        self.canvas.view_rect
    }

    /// Number of images in the gallery.
    pub fn gallery_len(&self) -> usize {
        self.gallery.len()
    }

    /// True while a job runs or waits.
    pub fn is_busy(&self) -> bool {
        self.jobs.is_busy()
    }

    /// Dismissible messages currently shown.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// Infotext of the newest gallery image.
    pub fn newest_infotext(&self) -> Option<&str> {
        self.gallery.get(0).and_then(|item| item.infotext.as_deref())
    }

    /// LoRA names the browser knows (tests read them).
    pub fn lora_names(&self) -> Vec<String> {
        self.models.loras().iter().map(|l| l.name.clone()).collect()
    }

    /// The open document, for tests.
    pub fn document(&self) -> Option<&Document> {
        self.canvas.doc.as_ref()
    }

    /// The parameters shown over the canvas (tests).
    pub fn shown_infotext(&self) -> Option<&str> {
        self.shown_infotext.as_deref()
    }

    /// The labels of the results staged over the picture, in browsing order, and the shown one's
    /// index (tests).
    pub fn staged(&self) -> Option<(Vec<String>, usize)> {
        let staging = self.staging.as_ref()?;
        let labels = staging.candidates().iter().map(|c| c.label.clone()).collect();
        Some((labels, staging.position()))
    }

    /// Where the canvas picture is on screen, in points (tests aim the pointer with it).
    pub fn canvas_image_rect(&self) -> Option<egui::Rect> {
        self.canvas.image_rect
    }

    /// The open document, mutable, for tests.
    pub fn document_mut(&mut self) -> Option<&mut Document> {
        self.canvas.doc.as_mut()
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
    pub fn set_start_time(&mut self, started: Instant) {
        self.started = Some(started);
    }

    /// Writes the document now (tests; the app autosaves by itself).
    pub fn save_document_now(&mut self) -> Result<(), String> {
        if let Some(doc) = &self.canvas.doc {
            let revision = doc.revision();
            if let Some(save) = self.document_save() {
                let mut pngs = crate::document::file::PngCache::default();
                super::io::save_document(&self.paths.document_dir(), &save, &mut pngs)?;
            }
            self.autosave.mark_saved(revision);
        }
        Ok(())
    }

    /// The file the document was last saved to or opened from.
    pub fn document_file(&self) -> Option<&std::path::Path> {
        self.doc_file.as_deref()
    }

    /// True when the open document has changes its file (if any) does not have.
    pub fn has_unsaved_changes(&self) -> bool {
        self.canvas
            .doc
            .as_ref()
            .is_some_and(|doc| self.doc_saved != Some(doc.revision()))
    }

    /// The document's name for the title and status bar: its file name (or "untitled"), with
    /// the unsaved-changes mark.
    pub fn document_title(&self) -> Option<String> {
        self.canvas.doc.as_ref()?;
        let mut name = self
            .doc_file
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or_else(|| tr("untitled").to_owned(), |n| n.to_string_lossy().into_owned());
        if self.has_unsaved_changes() {
            name.push_str(UNSAVED_MARK);
        }
        Some(name)
    }

    /// What to hand the disk thread to save the open document.
    fn document_save(&self) -> Option<DocumentSave> {
        let doc = self.canvas.doc.as_ref()?;
        let (versions, current) = doc.versions();
        Some(DocumentSave {
            versions,
            current,
            serial: self.doc_serial,
            revision: doc.revision(),
            origin: Origin {
                file: self.doc_file.clone(),
                saved: self.doc_saved == Some(doc.revision()),
            },
        })
    }

    /// Saves the document to its file, or asks where the first time.
    fn save(&mut self) {
        match self.doc_file.clone() {
            Some(path) => self.save_to(path),
            None if self.canvas.doc.is_some() => self.dialogs.ask_path(PathKind::Document),
            None => self.messages.push(tr("open a picture first").into()),
        }
    }

    /// Saves the document to `path` off the UI thread (a `.easel` file; a path without an
    /// extension gets one). A path that cannot work is refused at once.
    fn save_to(&mut self, mut path: PathBuf) {
        let Some(save) = self.document_save() else {
            self.messages.push(tr("open a picture first").into());
            return;
        };
        if path.extension().is_none() && path.file_name().is_some() {
            path.set_extension(crate::document::file::EXTENSION);
        }
        let shown = crate::text::shorten(&path.display().to_string(), 300).into_owned();
        if !crate::document::file::is_document_path(&path) {
            self.messages.push(trf(
                "{path}: save documents as .easel files (Export picture… writes PNG, JPEG or WebP)",
                &[("path", &shown)],
            ));
            return;
        }
        if let Some(message) = unwritable(&path, &shown) {
            self.messages.push(message);
            return;
        }
        self.dialogs.close_path();
        self.io.send(IoTask::SaveFile(path, Box::new(save)));
    }

    /// Shows an opened document file in place of the open document.
    fn open_document(&mut self, path: Option<PathBuf>, opened: crate::document::file::Opened) {
        let Some(doc) = Document::from_versions(opened.versions, opened.current) else {
            return;
        };
        self.doc_serial += 1;
        self.doc_saved = path.is_some().then_some(doc.revision());
        self.doc_file = path;
        self.shown_infotext = doc.label().map(str::to_owned);
        self.shown_note = None;
        // Another document: the autosave has not written this one yet.
        self.autosave = Autosave::default();
        self.canvas.open_document(doc);
    }

    /// Keeps the window title on the document's name and unsaved-changes mark.
    fn update_title(&mut self, ctx: &egui::Context) {
        let title = match self.document_title() {
            Some(name) => format!("{name} — Easel"),
            None => "Easel".to_owned(),
        };
        if title != self.shown_title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.shown_title = title;
        }
    }

    /// Lists the checkpoint, LoRA and ControlNet folders again (the Rescan button, and the folder
    /// watcher when they change).
    fn rescan(&mut self) {
        let mut folders = vec![self.paths.default_models_dir.clone()];
        folders.extend(self.settings.model_folders.iter().cloned());
        self.models.start_scan();
        self.watcher.set_folders(self.settings.model_folders.clone());
        self.io.send(IoTask::Scan(folders));
        let lora_dirs = self.paths.lora_dirs(&self.settings.model_folders);
        self.io.send(IoTask::ScanLoras(lora_dirs));
        let control_dirs = self.paths.controlnet_dirs(&self.settings.model_folders);
        self.io.send(IoTask::ScanControlNets(control_dirs));
    }

    /// Starts jobs with `start` (one of `Jobs`' submit methods); shows why not when it fails.
    fn submit(&mut self, start: fn(&mut Jobs, Submit<'_>) -> Result<(), String>) {
        let to = Submit {
            engine: &self.engine,
            settings: &mut self.settings,
            paths: &self.paths,
            doc: self.canvas.doc.as_ref(),
            control_image: None,
            control_models: self.prompt.controlnet().entries(),
        };
        let to = Submit {
            control_image: self.prompt.controlnet().file_image(&to.settings.controlnet),
            ..to
        };
        if let Err(message) = start(&mut self.jobs, to) {
            tracing::info!("job refused: {message}");
            self.messages.push(message);
        }
    }

    /// Puts a finished picture on the canvas as the next version. A picture of another size than
    /// the open one is fitted into it (scaled, and blended through its job's mask), so a result
    /// never changes the picture's size or drops its mask; opening the result from the gallery
    /// works at its own size.
    /// Stages a job's result over the picture (with no picture open, it becomes the picture).
    /// A result of another size is fitted into the picture through its job's mask; accepting it
    /// then offers it at its own size.
    fn stage_result(&mut self, result: JobResult) {
        let JobResult {
            picture,
            mask,
            seed,
            strength,
            infotext,
        } = result;
        let Some(doc) = &self.canvas.doc else {
            // Nothing to stage over: the first result is the picture, the next ones stage over it.
            self.canvas.set_picture(picture);
            return;
        };
        let (w, h) = doc.size();
        let (rw, rh) = picture.dimensions();
        let (shown, own_size) = if (rw, rh) == (w, h) {
            (picture, None)
        } else {
            let fitted = super::jobs::fit_into(doc.image(), &picture, mask.as_deref());
            tracing::info!("a {rw}×{rh} result fitted into the {w}×{h} picture");
            // Rounding to the model's multiple of 8 is expected and needs no question.
            let offer = (super::jobs::working_size(w, h) != (rw, rh)).then_some(picture);
            (fitted, offer)
        };
        let label = match strength {
            Some(strength) => trf(
                "strength {strength} · seed {seed}",
                &[("strength", &format!("{strength:.1}")), ("seed", &seed)],
            ),
            None => trf("seed {seed}", &[("seed", &seed)]),
        };
        let mut candidate = Candidate::new(shown, label);
        candidate.accept = Accept::Fitted { own_size };
        candidate.infotext = Some(infotext);
        candidate.strength = strength;
        let revision = doc.picture_revision();
        self.stage(candidate, revision);
    }

    /// Stages a picture read from a file (a gallery image) over the open picture; one of another
    /// size is accepted at its own size.
    fn stage_file(&mut self, path: &std::path::Path, rgba: super::io::Rgba, infotext: Option<String>) {
        let Some(image) = image::RgbaImage::from_raw(rgba.width as u32, rgba.height as u32, rgba.pixels)
        else {
            return;
        };
        let picture = crate::imaging::flatten_on_white(&image::DynamicImage::ImageRgba8(image));
        let Some(doc) = &self.canvas.doc else {
            self.canvas.set_picture(picture);
            self.shown_infotext = infotext;
            return;
        };
        let fits = doc.size() == picture.dimensions();
        let revision = doc.picture_revision();
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut candidate = Candidate::new(picture, name);
        if !fits {
            candidate.accept = Accept::OwnSize;
        }
        candidate.infotext = infotext;
        self.stage(candidate, revision);
    }

    /// Adds a candidate to the staging over the picture at `revision` (a new staging when the
    /// picture changed since the last one).
    fn stage(&mut self, candidate: Candidate, revision: u64) {
        let staging = match &mut self.staging {
            Some(staging) if staging.picture_revision() == revision => staging,
            _ => self.staging.insert(Staging::new(revision)),
        };
        staging.add(candidate);
    }

    /// Makes the shown staged result the document's next version (undoable; the mask stays when
    /// the size does) and ends the staging.
    fn accept_staged(&mut self) {
        let Some(candidate) = self.staging.take().and_then(Staging::accept) else {
            return;
        };
        tracing::info!("accepted the staged result {}", candidate.label);
        self.canvas.set_picture(candidate.picture);
        if let Some(doc) = self.canvas.doc.as_mut() {
            doc.set_label(candidate.infotext.clone());
        }
        if let Accept::Fitted { own_size } = candidate.accept {
            self.own_size_offer = own_size;
        }
        if let Some(text) = candidate.infotext {
            self.shown_infotext = Some(text);
        }
    }

    /// Drops the staging when the picture it was made over is gone, and keeps the canvas and the
    /// shown parameters on the current candidate.
    fn sync_staging(&mut self) {
        let revision = self.canvas.doc.as_ref().map(Document::picture_revision);
        if self
            .staging
            .as_ref()
            .is_some_and(|s| s.is_empty() || Some(s.picture_revision()) != revision)
        {
            tracing::info!("the picture changed: staged results dropped (they stay in the gallery)");
            self.staging = None;
        }
        // Undo, redo or a new version shows another picture: its own parameters, if it has any.
        if revision != self.shown_picture {
            self.shown_picture = revision;
            if let Some(doc) = &self.canvas.doc
                && self.staging.is_none()
                && doc.label() != self.shown_infotext.as_deref()
            {
                self.shown_infotext = doc.label().map(str::to_owned);
                self.shown_note = None;
            }
        }
        let current = self.staging.as_ref().and_then(Staging::current);
        self.canvas
            .show_staged(&self.ctx, current.map(|c| (&c.picture, c.id)));
        if let Some(c) = current
            && self.staged_shown != Some(c.id)
        {
            self.staged_shown = Some(c.id);
            if let Some(text) = &c.infotext {
                self.shown_infotext = Some(text.clone());
                self.shown_note = None;
            }
        }
    }

    /// The bar under a staged result: previous/next with "k of n", Accept, Discard, and its
    /// label last. Anchored at the canvas's lower left with fixed-width parts, so no button moves
    /// as the shown result changes.
    fn staging_bar_ui(&mut self, ui: &mut egui::Ui, view: egui::Rect) {
        let Some(staging) = &self.staging else {
            return;
        };
        let Some(current) = staging.current() else {
            return;
        };
        let height = ui.spacing().interact_size.y + 16.0;
        let bar = egui::Rect::from_min_max(
            egui::pos2(view.min.x + 6.0, view.max.y - height - 6.0),
            egui::pos2(view.max.x - 6.0, view.max.y - 6.0),
        );
        let mut child = ui.new_child(
            egui::UiBuilder::new()
                .id_salt("staging-bar")
                .max_rect(bar)
                .layout(egui::Layout::bottom_up(egui::Align::Min)),
        );
        egui::Frame::popup(child.style())
            .fill(Color32::from_black_alpha(220))
            .show(&mut child, |ui| {
                ui.horizontal(|ui| {
                    let many = staging.len() > 1;
                    if ui
                        .add_enabled(many, egui::Button::new("‹"))
                        .on_hover_text(tr("previous result (Left arrow key)"))
                        .clicked()
                    {
                        self.commands.push(Command::StagedPrevious);
                    }
                    let count = trf(
                        "{k} of {n}",
                        &[("k", &(staging.position() + 1)), ("n", &staging.len())],
                    );
                    ui.add_sized([STAGING_COUNT_PT, ui.spacing().interact_size.y], egui::Label::new(count));
                    if ui
                        .add_enabled(many, egui::Button::new("›"))
                        .on_hover_text(tr("next result (Right arrow key)"))
                        .clicked()
                    {
                        self.commands.push(Command::StagedNext);
                    }
                    let accept_hint = match &current.accept {
                        Accept::OwnSize => trf(
                            "make it the picture at {w}×{h}; the mask does not fit it and is cleared (undo brings both back)",
                            &[("w", &current.picture.width()), ("h", &current.picture.height())],
                        ),
                        Accept::Fitted { .. } => tr(
                            "make it the picture's next version (Enter); the mask stays; undo goes back",
                        )
                        .to_owned(),
                    };
                    if ui.button(tr("Accept")).on_hover_text(accept_hint).clicked() {
                        self.commands.push(Command::AcceptStaged);
                    }
                    if ui
                        .button(tr("Discard"))
                        .on_hover_text(tr("keep the picture as it is; the results stay in the gallery"))
                        .clicked()
                    {
                        self.commands.push(Command::DiscardStaged);
                    }
                    ui.add(egui::Label::new(current.label.as_str()).truncate());
                });
            });
    }

    /// The question after a result of another size was fitted into the picture.
    fn own_size_offer_ui(&mut self, ui: &mut egui::Ui) {
        let (Some(offer), Some(doc)) = (&self.own_size_offer, &self.canvas.doc) else {
            return;
        };
        let (rw, rh) = offer.dimensions();
        let (w, h) = doc.size();
        ui.horizontal_wrapped(|ui| {
            ui.label(
                egui::RichText::new(trf(
                    "The result is {rw}×{rh}: it was fitted into the {w}×{h} picture, which keeps its size and mask.",
                    &[("rw", &rw), ("rh", &rh), ("w", &w), ("h", &h)],
                ))
                .color(Color32::from_rgb(240, 200, 120)),
            );
            if ui
                .small_button(trf("Use it at {rw}×{rh}", &[("rw", &rw), ("rh", &rh)]))
                .on_hover_text(tr(
                    "make the result the picture at its own size (a new version; the mask is cleared)",
                ))
                .clicked()
            {
                self.commands.push(Command::ResultAtOwnSize(true));
            }
            if ui.small_button(tr("Keep it fitted")).clicked() {
                self.commands.push(Command::ResultAtOwnSize(false));
            }
        });
    }

    /// With a picture open, Width and Height follow it (at the model's multiple of 8) whenever
    /// its size changes: a new picture opened, dropped, pasted or restored.
    fn follow_document_size(&mut self) {
        let size = self.canvas.doc.as_ref().map(Document::size);
        if size == self.followed_size {
            return;
        }
        self.followed_size = size;
        // The offer was about the picture that was open.
        self.own_size_offer = None;
        if let Some((w, h)) = size {
            let (fw, fh) = super::jobs::working_size(w, h);
            self.settings.params.width = fw;
            self.settings.params.height = fh;
        }
    }

    fn handle_engine_event(&mut self, event: Event) {
        for effect in self.jobs.handle_event(event) {
            match effect {
                Effect::Preview { image, size, region } => {
                    let size_px = Vec2::new(size.width_px as f32, size.height_px as f32);
                    self.canvas.set_preview(
                        &self.ctx,
                        &image.rgba,
                        [image.width, image.height],
                        size_px,
                        region,
                    );
                }
                Effect::ClearPreview => self.canvas.clear_preview(),
                Effect::Result(result) => self.stage_result(result),
                Effect::Output(image) => {
                    // The version it became (if shown as it is) keeps its parameters as its label.
                    if let Some(doc) = self.canvas.doc.as_mut()
                        && doc.size() == (image.width, image.height)
                        && doc.image().as_raw() == &image.rgb
                    {
                        doc.set_label(Some(image.infotext.clone()));
                    }
                    // With results staged, the parameters shown are the shown result's (see
                    // `sync_staging`), not the newest's.
                    if self.staging.is_none() {
                        self.shown_infotext = Some(image.infotext.clone());
                        self.shown_note = None;
                    }
                    self.io.send(IoTask::Save(
                        self.paths.outputs_dir.clone(),
                        image,
                        self.settings.output_format,
                    ));
                }
                Effect::Message(message) => self.messages.push(message),
            }
        }
    }

    fn handle_reply(&mut self, reply: Reply) {
        match reply {
            Reply::Models(models) => {
                for task in self.models.set_models(models) {
                    self.io.send(task);
                }
            }
            Reply::Loras(loras) => {
                for task in self.models.set_loras(loras) {
                    self.io.send(task);
                }
            }
            Reply::Saved(item) => self.gallery.insert_newest(&self.ctx, item),
            Reply::Gallery(items) => self.gallery.set_items(&self.ctx, items),
            Reply::Image(rgba, metadata) => {
                if let Some(img) =
                    image::RgbaImage::from_raw(rgba.width as u32, rgba.height as u32, rgba.pixels)
                {
                    let rgb = crate::imaging::flatten_on_white(&image::DynamicImage::ImageRgba8(img));
                    self.canvas.set_picture(rgb);
                    if let Some(doc) = self.canvas.doc.as_mut() {
                        doc.set_label(metadata.as_ref().map(|m| m.infotext()));
                    }
                }
                self.shown_note = metadata.as_ref().map(|m| {
                    let mut note = trf(
                        "parameters from {generator} ({source})",
                        &[("generator", &m.generator), ("source", &m.source)],
                    );
                    for warning in &m.warnings {
                        note.push_str(tr("; "));
                        note.push_str(warning);
                    }
                    note
                });
                self.shown_infotext = metadata.map(|m| m.infotext());
            }
            Reply::Staged(path, rgba, metadata) => {
                self.stage_file(&path, rgba, metadata.map(|m| m.infotext()));
            }
            Reply::Hashed(path, hash) => {
                if let Ok(hash) = &hash {
                    self.look_up(vec![(path.clone(), hash.clone())]);
                }
                self.models.set_hash(path, hash);
            }
            Reply::Thumbnail(path, rgba) => self.models.set_thumbnail(&self.ctx, path, &rgba),
            Reply::Document(opened, origin) => {
                if self.canvas.doc.is_none() {
                    self.open_document(None, *opened);
                    // It came from the autosave: nothing to autosave until it changes.
                    if let Some(doc) = &self.canvas.doc {
                        self.autosave.mark_saved(doc.revision());
                        self.doc_saved = origin.saved.then_some(doc.revision());
                    }
                    self.doc_file = origin.file;
                }
            }
            Reply::OpenedFile(path, opened) => {
                tracing::info!("opened the document {}", path.display());
                if self.has_unsaved_changes() {
                    self.pending_open = Some((path, opened));
                } else {
                    self.open_document(Some(path), *opened);
                }
            }
            Reply::SavedFile(path, serial, revision) => {
                tracing::info!("saved the document to {}", path.display());
                self.notice = Some(trf("saved to {path}", &[("path", &path.display())]));
                if serial == self.doc_serial {
                    self.doc_file = Some(path);
                    self.doc_saved = Some(revision);
                }
            }
            Reply::ControlNets(entries) => self.prompt.controlnet_mut().set_entries(entries),
            Reply::ControlImage(path, image) => self.prompt.controlnet_mut().set_file_image(path, image),
            Reply::Hint(serial, result) => self.prompt.controlnet_mut().set_hint(&self.ctx, serial, result),
            Reply::Faces(revision, target, found) => match found {
                // Only onto the picture it was computed for.
                Ok(regions) => match self.canvas.doc.as_mut() {
                    Some(doc) if doc.revision() == revision => {
                        if regions.is_empty() {
                            self.messages.push(if target == crate::request::FixTarget::Hands {
                                tr("no hand found").into()
                            } else {
                                tr("no face found").into()
                            });
                        }
                        let found = super::found::Found::new(target, regions);
                        doc.set_mask(&found.mask(doc.size()));
                        self.found = (!found.is_empty()).then_some(found);
                    }
                    _ => {}
                },
                Err(message) => self.messages.push(message),
            },
            Reply::People(revision, found) => match found {
                Ok((true, mask)) => {
                    if let Some(doc) = self.canvas.doc.as_mut().filter(|d| d.revision() == revision) {
                        doc.set_mask(&mask);
                    }
                }
                Ok((false, _)) => self.messages.push(tr("no person found").into()),
                Err(message) => self.messages.push(message),
            },
            Reply::Exported(path) => {
                tracing::info!("exported the picture to {}", path.display());
                self.notice = Some(trf("exported to {path}", &[("path", &path.display())]));
            }
            Reply::Done => {}
            Reply::Failed(message) => self.messages.push(message),
        }
    }

    /// Asks Civitai about these hashed files when the user turned the lookup on (never otherwise).
    fn look_up(&mut self, files: Vec<(PathBuf, String)>) {
        if !self.settings.civitai_lookup || files.is_empty() {
            return;
        }
        if self.civitai.is_none() {
            let ctx = self.ctx.clone();
            match CivitaiLookup::spawn(&self.paths, Box::new(move || ctx.request_repaint())) {
                Ok(lookup) => self.civitai = Some(lookup),
                Err(err) => {
                    self.messages.push(trf(
                        "could not start the Civitai lookup: {error}",
                        &[("error", &err)],
                    ));
                    return;
                }
            }
        }
        if let Some(lookup) = &self.civitai {
            for (path, hash) in files {
                lookup.ask(path, hash);
            }
        }
    }

    /// A typed path: used when it is the right kind of thing, otherwise a message says why.
    fn use_path(&mut self, kind: PathKind, path: PathBuf) {
        if kind == PathKind::Export {
            self.export_to(path);
            return;
        }
        if kind == PathKind::Document {
            self.save_to(path);
            return;
        }
        let (ok, wanted) = match kind {
            PathKind::ModelFolder => (path.is_dir(), tr("a folder")),
            PathKind::Image | PathKind::ControlImage | PathKind::Export | PathKind::Document => {
                (path.is_file(), tr("an image file"))
            }
        };
        if !ok {
            let why = if path.exists() {
                tr("is not")
            } else {
                tr("does not exist; expected")
            };
            let shown = crate::text::shorten(&path.display().to_string(), 300).into_owned();
            self.messages.push(format!("{shown} {why} {wanted}"));
            return;
        }
        self.handle_pick(match kind {
            PathKind::ModelFolder => Picked::ModelFolder(path),
            PathKind::Image => Picked::Image(path),
            PathKind::ControlImage => Picked::ControlImage(path),
            PathKind::Export => Picked::Export(path),
            PathKind::Document => Picked::SaveAs(path),
        });
    }

    /// The question when a document file was opened while the open document has unsaved changes.
    fn pending_open_ui(&mut self, ctx: &egui::Context) {
        let Some((path, _)) = &self.pending_open else {
            return;
        };
        let name = |p: &std::path::Path| {
            p.file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
        };
        let open = name(path);
        let current = self
            .doc_file
            .as_deref()
            .map_or_else(|| tr("untitled").to_owned(), name);
        egui::Window::new(tr("Unsaved changes"))
            .id(egui::Id::unique("open-over-unsaved"))
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                ui.label(trf(
                    "{current} has changes that no file holds. Opening {open} in its place loses them.",
                    &[("current", &current), ("open", &open)],
                ));
                ui.horizontal(|ui| {
                    if ui.button(tr("Open anyway")).clicked() {
                        self.commands.push(Command::OpenOverUnsaved(true));
                    }
                    if ui.button(tr("Cancel")).clicked() {
                        self.commands.push(Command::OpenOverUnsaved(false));
                    }
                });
            });
    }

    /// The window that lists the faces or hands of the last Find: unticking one takes it out of
    /// the mask (and ticking puts it back); closing the window keeps the mask as it is.
    fn found_ui(&mut self, ctx: &egui::Context) {
        let size = self.canvas.doc.as_ref().map(Document::size);
        if self.found.as_ref().is_some_and(|f| f.size() != size) {
            // Another picture is open: these regions belong to the old one.
            self.found = None;
        }
        let Some(found) = &mut self.found else {
            return;
        };
        let mut open = true;
        let mut changed = false;
        egui::Window::new(found.title())
            .id(egui::Id::unique("found-regions"))
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                ui.small(tr(
                    "untick one to leave it out of the mask; grow or shrink a box that misses or overshoots",
                ));
                changed = found.ui(ui);
            });
        if changed && let (Some(doc), Some(size)) = (self.canvas.doc.as_mut(), size) {
            doc.set_mask(&found.mask(size));
        }
        if !open {
            self.found = None;
        }
    }

    /// Writes the canvas picture to `path` off the UI thread, in the format its extension names,
    /// with the parameters shown for it (if any) as A1111 writes them. A path that cannot work
    /// (no picture, unknown extension, a folder, a missing folder) is refused at once.
    fn export_to(&mut self, path: PathBuf) {
        let Some(doc) = &self.canvas.doc else {
            self.messages.push(tr("open a picture first").into());
            return;
        };
        let shown = crate::text::shorten(&path.display().to_string(), 300).into_owned();
        let Some(format) = crate::infotext::OutputFormat::from_path(&path) else {
            self.messages.push(trf(
                "{path}: export as .png, .jpg or .webp (the extension picks the format)",
                &[("path", &shown)],
            ));
            return;
        };
        if let Some(message) = unwritable(&path, &shown) {
            self.messages.push(message);
            return;
        }
        self.dialogs.close_path();
        self.io.send(IoTask::Export {
            path,
            picture: Box::new(doc.image().clone()),
            parameters: self.shown_infotext.clone().unwrap_or_default(),
            format,
        });
    }

    fn handle_pick(&mut self, picked: Picked) {
        self.dialogs.close_path();
        match picked {
            Picked::Image(file) => self.io.send(IoTask::LoadImage(file)),
            Picked::ControlImage(file) => {
                self.settings.controlnet.image_file = Some(file.clone());
                self.io.send(IoTask::LoadControlImage(file));
            }
            Picked::Export(path) => self.export_to(path),
            Picked::SaveAs(path) => self.save_to(path),
            Picked::ModelFolder(folder) => {
                if !self.settings.model_folders.contains(&folder) {
                    self.settings.model_folders.push(folder);
                }
                self.rescan();
            }
        }
    }

    /// Applies one command from the panels.
    fn apply(&mut self, command: Command) {
        match command {
            Command::Generate => self.submit(Jobs::generate),
            Command::Refine => self.submit(Jobs::refine),
            Command::StrengthSweep => self.submit(Jobs::strength_sweep),
            Command::FixFaces => self.submit(Jobs::fix_faces),
            Command::FindFaces => {
                if let Some(doc) = &self.canvas.doc {
                    self.io
                        .send(IoTask::FindFaces(Box::new(doc.image().clone()), doc.revision()));
                }
            }
            Command::FixHands => self.submit(Jobs::fix_hands),
            Command::FindHands => {
                if let Some(doc) = &self.canvas.doc {
                    self.io
                        .send(IoTask::FindHands(Box::new(doc.image().clone()), doc.revision()));
                }
            }
            Command::SelectPeople { background } => {
                if let Some(doc) = &self.canvas.doc {
                    self.io.send(IoTask::SelectPeople(
                        Box::new(doc.image().clone()),
                        doc.revision(),
                        background,
                    ));
                }
            }
            Command::Cancel => self.jobs.cancel_running(),
            Command::RemoveQueued(job) => self.jobs.remove_queued(job),
            Command::StagedPrevious => {
                if let Some(staging) = &mut self.staging {
                    staging.previous();
                }
            }
            Command::StagedNext => {
                if let Some(staging) = &mut self.staging {
                    staging.next();
                }
            }
            Command::AcceptStaged => self.accept_staged(),
            Command::DiscardStaged => {
                if self.staging.take().is_some() {
                    tracing::info!("staged results discarded");
                }
            }
            Command::ResultAtOwnSize(take) => {
                if let Some(picture) = self.own_size_offer.take()
                    && take
                {
                    self.canvas.set_picture(picture);
                }
            }
            Command::SelectModel(path) => self.settings.selected_model = Some(path),
            Command::InsertLora(name) => {
                let prompt = &mut self.settings.params.prompt;
                if !prompt.is_empty() && !prompt.ends_with(' ') {
                    prompt.push(' ');
                }
                prompt.push_str("<lora:");
                prompt.push_str(&name);
                prompt.push_str(":1>");
            }
            Command::AddFolder => self.dialogs.ask_path(PathKind::ModelFolder),
            Command::OpenImage => self.dialogs.ask_path(PathKind::Image),
            Command::AskPath(kind) => self.dialogs.ask_path(kind),
            Command::Browse(PathKind::ControlImage) => {
                self.open_dialog("control-image-dialog", tr("file dialog"), || {
                    rfd::FileDialog::new()
                        .set_title(tr("Choose a control image"))
                        .add_filter(tr("Images"), &["png", "jpg", "jpeg", "webp"])
                        .pick_file()
                        .map(Picked::ControlImage)
                });
            }
            Command::Browse(PathKind::ModelFolder) => {
                self.open_dialog("folder-dialog", tr("folder dialog"), || {
                    rfd::FileDialog::new()
                        .set_title(tr("Add a model folder"))
                        .pick_folder()
                        .map(Picked::ModelFolder)
                });
            }
            Command::Browse(PathKind::Image) => self.open_dialog("image-dialog", tr("file dialog"), || {
                rfd::FileDialog::new()
                    .set_title(tr("Open an image"))
                    .add_filter(tr("Images"), &["png", "jpg", "jpeg", "webp", "easel"])
                    .pick_file()
                    .map(Picked::Image)
            }),
            Command::Browse(PathKind::Export) => self.open_dialog("export-dialog", tr("file dialog"), || {
                rfd::FileDialog::new()
                    .set_title(tr("Export the picture"))
                    .add_filter("PNG", &["png"])
                    .add_filter("JPEG", &["jpg", "jpeg"])
                    .add_filter("WebP", &["webp"])
                    .set_file_name("picture.png")
                    .save_file()
                    .map(Picked::Export)
            }),
            Command::Browse(PathKind::Document) => {
                let name = self.doc_file.as_ref().and_then(|p| p.file_name()).map_or_else(
                    || "picture.easel".to_owned(),
                    |n| n.to_string_lossy().into_owned(),
                );
                self.open_dialog("save-dialog", tr("file dialog"), move || {
                    rfd::FileDialog::new()
                        .set_title(tr("Save the document"))
                        .add_filter(tr("Easel documents"), &["easel"])
                        .set_file_name(name)
                        .save_file()
                        .map(Picked::SaveAs)
                });
            }
            Command::Save => self.save(),
            Command::OpenOverUnsaved(open) => {
                if let Some((path, opened)) = self.pending_open.take()
                    && open
                {
                    self.open_document(Some(path), *opened);
                }
            }
            Command::UsePath(kind, path) => self.use_path(kind, path),
            Command::PasteImage => self.io.send(IoTask::PasteImage),
            Command::Rescan => self.rescan(),
            Command::ShowGalleryItem(index) => {
                if let Some(item) = self.gallery.get(index) {
                    // Over an open picture it is staged, so neither the picture nor the mask is lost.
                    self.io.send(if self.canvas.doc.is_some() {
                        IoTask::StageImage(item.path.clone())
                    } else {
                        IoTask::LoadImage(item.path.clone())
                    });
                }
            }
            Command::UseParameters(text) => self.use_parameters(&text),
            Command::SetOutputFormat(format) => self.settings.output_format = format,
            Command::SetLanguage(language) => {
                self.settings.language = language;
                super::i18n::set_language(self.settings.ui_language());
                self.save_settings();
            }
            Command::DeleteGalleryItem(index) => {
                if let Some(item) = self.gallery.remove(index)
                    && let Err(err) = std::fs::remove_file(&item.path)
                {
                    self.messages.push(trf(
                        "could not delete {path}: {error}",
                        &[("path", &item.path.display()), ("error", &err)],
                    ));
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
                match std::process::Command::new(opener).arg(dir).spawn() {
                    // Reap the opener off the UI thread so that it leaves no zombie behind.
                    Ok(mut child) => {
                        let reaper = std::thread::Builder::new().name("folder-opener".into());
                        if reaper.spawn(move || child.wait()).is_err() {
                            tracing::debug!("could not start a thread to wait for the folder opener");
                        }
                    }
                    // "No such file or directory" here is about the opener, not the folder.
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => self.messages.push(trf(
                        "could not show the folder: this system has no `{opener}` program; the outputs are in {folder}",
                        &[("opener", &opener), ("folder", &dir.display())],
                    )),
                    Err(err) => self.messages.push(trf(
                        "could not show the folder with `{opener}` ({error}); the outputs are in {folder}",
                        &[("opener", &opener), ("error", &err), ("folder", &dir.display())],
                    )),
                }
            }
            Command::DismissMessage(index) => {
                if index < self.messages.len() {
                    self.messages.remove(index);
                }
            }
            Command::GetModels => self.get_models.open(),
            Command::FastPreset => {
                // A handful of file checks, on a click only.
                let taesd = crate::models::registry::find_taesd_decoder(
                    &self.paths.vae_approx_dirs(&self.settings.model_folders),
                )
                .is_some();
                let checkpoint = self.models.family_of(self.settings.selected_model.as_deref());
                let note = super::panels::apply_fast_preset(
                    &mut self.settings,
                    (self.models.loras(), checkpoint),
                    taesd,
                );
                self.prompt.set_fast_note(note);
            }
            Command::SetCivitaiLookup(on) => {
                self.settings.civitai_lookup = on;
                let hashed = self.models.hashed();
                self.look_up(hashed);
            }
            Command::StartDownload { key, label, request } => {
                let ctx = self.ctx.clone();
                self.downloads.start(
                    key,
                    label,
                    *request,
                    &self.paths,
                    Box::new(move || ctx.request_repaint()),
                );
            }
            Command::CancelDownload(key) => self.downloads.cancel(&key),
            Command::DismissDownload(key) => self.downloads.dismiss(&key),
        }
    }

    /// Takes over an A1111 infotext's parameters (and its img2img settings, when it has them),
    /// keeping the batch settings.
    /// Settings Easel cannot run (a sampler or schedule it lacks) keep the panel's current choice,
    /// and each is reported in a message.
    fn use_parameters(&mut self, text: &str) {
        let Some(metadata) = crate::infotext::read_infotext(text) else {
            self.messages.push(
                tr("these parameters could not be used: no generation settings were found in them").into(),
            );
            return;
        };
        let (mut p, problems) = metadata.generation_params();
        for problem in problems {
            match problem {
                crate::infotext::ReplayProblem::Sampler(_) => p.sampler = self.settings.params.sampler,
                crate::infotext::ReplayProblem::Schedule(_) => p.schedule = self.settings.params.schedule,
                crate::infotext::ReplayProblem::Other(_) => {}
            }
            self.messages.push(trf(
                "{problem}; the current choice is kept",
                &[("problem", &problem)],
            ));
        }
        for warning in metadata.warnings {
            self.messages.push(trf(
                "parameters from {generator}: {warning}",
                &[("generator", &metadata.generator), ("warning", &warning)],
            ));
        }
        if let Some(strength) = p.denoising_strength {
            self.settings.img2img = crate::infotext::read_img2img(&p.extra);
            self.settings.strength = strength;
            self.settings.mode = Mode::ImageToImage;
        }
        crate::infotext::strip_img2img(&mut p.extra);
        // The decode and encode the text names (absent: the full VAE), so the picture comes back.
        let method = |key: &str| {
            if crate::infotext::reads_taesd(&p.extra, key) {
                crate::request::VaeDecoder::Taesd
            } else {
                crate::request::VaeDecoder::Full
            }
        };
        self.settings.vae_decoder = method(crate::infotext::VAE_DECODER);
        self.settings.vae_encoder = method(crate::infotext::VAE_ENCODER);
        for key in [crate::infotext::VAE_DECODER, crate::infotext::VAE_ENCODER] {
            crate::infotext::write_vae_method(&mut p.extra, key, false);
        }
        self.use_control_parameters(&p.extra);
        crate::infotext::controlnet::strip(&mut p.extra);
        self.settings.params = GenerationParams {
            batch_count: self.settings.params.batch_count,
            batch_size: self.settings.params.batch_size,
            ..p
        };
        self.settings.random_seed = false;
    }

    /// Takes over the first `ControlNet N` unit of an infotext into the ControlNet section (the
    /// section runs one unit); says when the model is not in the ControlNet folders.
    fn use_control_parameters(&mut self, extra: &[(String, String)]) {
        let units = crate::infotext::controlnet::read(extra);
        let Some(info) = units.first() else {
            return;
        };
        if units.len() > 1 {
            self.messages.push(trf(
                "these parameters use {count} ControlNet units; the ControlNet section takes the first",
                &[("count", &units.len())],
            ));
        }
        let entries = self.prompt.controlnet().entries();
        let named: Vec<_> = entries.iter().filter(|e| e.name == info.model_name()).collect();
        let found = named.iter().find(|e| e.label == info.model).or(named.first());
        let c = &mut self.settings.controlnet;
        if let Some(entry) = found {
            c.model = Some(entry.path.clone());
            c.enabled = true;
        } else {
            c.enabled = false;
            self.messages.push(trf(
                "these parameters use ControlNet '{model}', which is not in your ControlNet folders; ControlNet is off",
                &[("model", &info.model)],
            ));
        }
        c.preprocessor.clone_from(&info.module);
        let threshold = |v: f64| v.round().clamp(0.0, 255.0) as u8;
        match info.module.as_str() {
            "canny" => {
                c.canny_low = threshold(info.threshold_a);
                c.canny_high = threshold(info.threshold_b);
            }
            "tile_resample" => c.tile_rate = info.threshold_a as f32,
            "scribble_xdog" => c.xdog_threshold = threshold(info.threshold_a),
            _ => {}
        }
        c.weight = info.weight;
        c.start = info.guidance_start;
        c.end = info.guidance_end;
        c.mode.clone_from(&info.control_mode);
        c.resize.clone_from(&info.resize_mode);
        c.pixel_perfect = info.pixel_perfect;
        c.processor_res = info.processor_res;
    }

    /// Runs a native dialog (`what`, for the error message) on a thread named `thread`, so the
    /// window keeps drawing; what the user picks arrives in `logic`.
    fn open_dialog(
        &mut self,
        thread: &str,
        what: &str,
        dialog: impl FnOnce() -> Option<Picked> + Send + 'static,
    ) {
        let sender = self.picks.sender.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new().name(thread.into()).spawn(move || {
            if let Some(picked) = dialog() {
                let _ = sender.send(picked);
                ctx.request_repaint();
            }
        });
        if let Err(err) = spawned {
            self.messages.push(trf(
                "could not open the {what}: {error}",
                &[("what", &what), ("error", &err)],
            ));
        }
    }

    /// Saves the document a moment after the last edit (off the UI thread).
    fn autosave_tick(&mut self, ctx: &egui::Context) {
        let Some(doc) = &self.canvas.doc else {
            return;
        };
        if doc.stroking() {
            return;
        }
        let revision = doc.revision();
        match self.autosave.step(revision, ctx.input(|i| i.time)) {
            AutosaveStep::Idle => {}
            AutosaveStep::WaitFor(delay) => ctx.request_repaint_after(delay),
            AutosaveStep::SaveNow => {
                if let Some(save) = self.document_save() {
                    self.io
                        .send(IoTask::SaveDocument(self.paths.document_dir(), Box::new(save)));
                }
                self.autosave.mark_saved(revision);
            }
        }
    }

    /// Shortcuts, paste and dropped files of this frame, as commands or disk work.
    fn read_input(&mut self, ctx: &egui::Context) {
        let (generate, cancel, export, save_as, save) = ctx.input_mut(|i| {
            (
                i.consume_shortcut(&GENERATE),
                i.consume_shortcut(&CANCEL),
                // Ctrl+S would also match Ctrl+Shift+S and Ctrl+Alt+S: those are taken first.
                i.consume_shortcut(&EXPORT),
                i.consume_shortcut(&SAVE_AS),
                i.consume_shortcut(&SAVE),
            )
        });
        if export {
            self.commands.push(Command::AskPath(PathKind::Export));
        }
        if save_as {
            self.commands.push(Command::AskPath(PathKind::Document));
        }
        if save {
            self.commands.push(Command::Save);
        }
        // Ctrl+V outside text fields pastes an image onto the canvas (egui turns it into a Paste event).
        let paste = !ctx.egui_wants_keyboard_input()
            && ctx.input(|i| i.events.iter().any(|e| matches!(e, egui::Event::Paste(_))));
        if paste {
            self.commands.push(Command::PasteImage);
        }
        if generate {
            self.commands.push(Command::Generate);
        }
        if cancel {
            self.commands.push(Command::Cancel);
        }
        // Staged results: Left/Right browse them, Enter accepts the shown one (outside text fields).
        if self.staging.is_some() && !ctx.egui_wants_keyboard_input() {
            let keys = ctx.input_mut(|i| {
                [
                    (Key::ArrowLeft, Command::StagedPrevious),
                    (Key::ArrowRight, Command::StagedNext),
                    (Key::Enter, Command::AcceptStaged),
                ]
                .into_iter()
                .filter(|(key, _)| i.consume_key(Modifiers::NONE, *key))
                .map(|(_, command)| command)
                .collect::<Vec<_>>()
            });
            self.commands.extend(keys);
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
    }

    /// The central panel: the canvas, with the messages and the shown picture's parameters over
    /// its top edge (so they never move the tool bar or the picture).
    fn central_ui(&mut self, ui: &mut egui::Ui) {
        self.canvas
            .ui(ui, self.gpu, &mut self.settings.tools, tr(EMPTY_CANVAS_HINT));
        let Some(view) = self.canvas.view_rect else {
            return;
        };
        if !self.messages.is_empty()
            || self.shown_note.is_some()
            || self.shown_infotext.is_some()
            || self.own_size_offer.is_some()
        {
            let mut overlay = ui.new_child(
                egui::UiBuilder::new()
                    .id_salt("canvas-notices")
                    .max_rect(view.shrink(6.0))
                    .layout(egui::Layout::top_down(egui::Align::Min)),
            );
            egui::Frame::popup(overlay.style())
                .fill(Color32::from_black_alpha(200))
                .show(&mut overlay, |ui| self.notices_ui(ui));
        }
        self.staging_bar_ui(ui, view);
    }

    /// The newest messages (each dismissible), the own-size question and the shown picture's
    /// parameters.
    fn notices_ui(&mut self, ui: &mut egui::Ui) {
        self.own_size_offer_ui(ui);
        let hidden = self.messages.len().saturating_sub(SHOWN_MESSAGES);
        if hidden > 0 {
            ui.horizontal(|ui| {
                ui.small(trf("+{count} older messages", &[("count", &hidden)]));
                if ui.small_button(tr("dismiss all")).clicked() {
                    for i in (0..self.messages.len()).rev() {
                        self.commands.push(Command::DismissMessage(i));
                    }
                }
            });
        }
        for (i, message) in self.messages.iter().enumerate().skip(hidden) {
            ui.horizontal_top(|ui| {
                if ui.small_button("×").on_hover_text(tr("dismiss")).clicked() {
                    self.commands.push(Command::DismissMessage(i));
                }
                // A message may quote a huge value (a path, a tag, a file's text): show its ends only.
                let shown = crate::text::shorten(message, crate::text::MESSAGE_LIMIT);
                ui.add(
                    egui::Label::new(
                        egui::RichText::new(shown.as_ref()).color(Color32::from_rgb(240, 140, 120)),
                    )
                    .wrap(),
                );
            });
        }
        if let Some(note) = &self.shown_note {
            ui.add(egui::Label::new(egui::RichText::new(note.as_str()).small()).truncate());
        }
        if let Some(text) = &self.shown_infotext {
            ui.horizontal(|ui| {
                if ui.small_button(tr("Use parameters")).clicked() {
                    self.commands.push(Command::UseParameters(text.clone()));
                }
                ui.add(egui::Label::new(egui::RichText::new(short(text)).small()).truncate());
            });
        }
    }

    /// The status bar: picture size, zoom, tool, and the job line with its progress.
    fn status_ui(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let picture = match (self.canvas.doc.as_ref(), self.canvas.shown_zoom) {
                (Some(doc), Some(zoom)) => {
                    let (w, h) = doc.size();
                    format!("{w}×{h} px · {:.0} %", zoom * 100.0)
                }
                (Some(doc), None) => {
                    let (w, h) = doc.size();
                    format!("{w}×{h} px")
                }
                _ => tr("no picture").to_owned(),
            };
            let tools = &self.settings.tools;
            let tool = match (tools.tool, tools.brush.erase) {
                (crate::document::Tool::Brush, false) => tr("Brush"),
                (crate::document::Tool::Brush, true) => tr("Brush (erase)"),
                (crate::document::Tool::Rect, false) => tr("Rectangle"),
                (crate::document::Tool::Rect, true) => tr("Rectangle (erase)"),
                (crate::document::Tool::Lasso, false) => tr("Lasso"),
                (crate::document::Tool::Lasso, true) => tr("Lasso (erase)"),
            };
            match self.document_title() {
                Some(name) => ui.label(format!("{name} · {picture} · {tool}")),
                None => ui.label(format!("{picture} · {tool}")),
            };
            ui.separator();
            if self.jobs.running().is_some() {
                ui.add(
                    egui::ProgressBar::new(self.jobs.fraction_done())
                        .desired_width(PROGRESS_WIDTH_PT)
                        .desired_height(ui.spacing().interact_size.y * 0.6),
                );
            }
            let mut status = self.jobs.status_text();
            if let Some(notice) = &self.notice {
                status.push_str(" · ");
                status.push_str(notice);
            }
            ui.add(egui::Label::new(status).truncate());
        });
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button(tr("File"), |ui| {
                let items = [
                    (tr("Open image…"), None, Command::OpenImage),
                    (tr("Save"), Some("Ctrl+S"), Command::Save),
                    (tr("Save as…"), Some("Ctrl+Alt+S"), Command::AskPath(PathKind::Document)),
                    (tr("Paste image"), Some("Ctrl+V"), Command::PasteImage),
                    (tr("Export picture…"), Some("Ctrl+Shift+S"), Command::AskPath(PathKind::Export)),
                    (tr("Add model folder…"), None, Command::AddFolder),
                    (tr("Get models…"), None, Command::GetModels),
                    (tr("Open outputs folder"), None, Command::OpenOutputs),
                ];
                for (label, hint, command) in items {
                    let mut response = ui.button(label);
                    if let Some(hint) = hint {
                        response = response.on_hover_text(hint);
                    }
                    if response.clicked() {
                        self.commands.push(command);
                    }
                }
            });
            ui.menu_button(tr("Settings"), |ui| {
                ui.label(tr("Save images as"));
                for format in crate::infotext::OutputFormat::ALL {
                    let label = match format {
                        crate::infotext::OutputFormat::Png => tr("PNG (parameters text chunk)"),
                        crate::infotext::OutputFormat::Jpeg => tr("JPEG (A1111 EXIF UserComment)"),
                        crate::infotext::OutputFormat::WebP => tr("WebP, lossless (A1111 EXIF UserComment)"),
                    };
                    if ui.radio(self.settings.output_format == format, label).clicked() {
                        self.commands.push(Command::SetOutputFormat(format));
                    }
                }
                ui.separator();
                let mut on = self.settings.civitai_lookup;
                if ui
                    .checkbox(&mut on, tr("Look models up on Civitai by hash"))
                    .on_hover_text(tr("Sends each model file's AutoV2 hash to civitai.com to show its name, trigger words and preview; off by default"))
                    .changed()
                {
                    self.commands.push(Command::SetCivitaiLookup(on));
                }
            });
            ui.menu_button(tr("View"), |ui| {
                ui.checkbox(&mut self.open_panels.prompt, tr("Prompt panel"));
                ui.checkbox(&mut self.open_panels.models, tr("Models panel"));
                ui.checkbox(&mut self.open_panels.gallery, tr("Gallery"));
            });
            super::i18n::language_menu_ui(ui, self.settings.language, &mut self.commands);
            ui.menu_button(tr("Help"), |ui| self.dialogs.help_menu_ui(ui));
        });
    }

    fn record_frame(&mut self, start: Instant) {
        let Some(stats) = &mut self.frame_stats else {
            return;
        };
        let secs = start.elapsed().as_secs_f64();
        if let Some(last) = stats.last_frame {
            stats.worst_interval_secs = stats
                .worst_interval_secs
                .max(start.duration_since(last).as_secs_f64());
        }
        stats.last_frame = Some(start);
        stats.frames += 1;
        stats.worst_secs = stats.worst_secs.max(secs);
        stats.total_secs += secs;
        let window = *stats.window_start.get_or_insert(start);
        if window.elapsed().as_secs_f64() >= FRAME_STATS_WINDOW_SECS {
            tracing::info!(
                "UI frames: {} in {:.1} s; UI code mean {:.2} ms, worst {:.2} ms; longest gap between frames {:.0} ms; generating: {}",
                stats.frames,
                window.elapsed().as_secs_f64(),
                stats.total_secs / f64::from(stats.frames) * 1000.0,
                stats.worst_secs * 1000.0,
                stats.worst_interval_secs * 1000.0,
                self.jobs.running().is_some()
            );
            *stats = FrameStats {
                last_frame: stats.last_frame,
                ..FrameStats::default()
            };
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
        if self.watcher.take_change() {
            self.rescan();
        }
        while let Ok(picked) = self.picks.receiver.try_recv() {
            self.handle_pick(picked);
        }
        let downloaded = self.downloads.poll();
        for done in &downloaded {
            self.messages.push(trf(
                "downloaded {file} ({kind}) to {folder}",
                &[
                    (
                        "file",
                        &done
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default(),
                    ),
                    ("kind", &done.kind.name()),
                    (
                        "folder",
                        &done
                            .path
                            .parent()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                    ),
                ],
            ));
        }
        if !downloaded.is_empty() {
            self.rescan();
        }
        for found in self
            .civitai
            .as_ref()
            .map(CivitaiLookup::drain)
            .unwrap_or_default()
        {
            if let Some(preview) = found.preview
                && !self.models.has_picture(&found.path)
            {
                self.io
                    .send(IoTask::Thumbnails(vec![(found.path.clone(), preview)]));
            }
            self.models.set_civitai(found.path, found.info);
        }
        self.autosave_tick(ctx);
        self.read_input(ctx);
        self.update_title(ctx);
        self.follow_document_size();
        for command in std::mem::take(&mut self.commands) {
            self.apply(command);
        }
        self.sync_staging();
        for task in self.prompt.controlnet_mut().take_tasks() {
            self.io.send(task);
        }
        self.canvas.context_box = self.only_masked.update(self.canvas.doc.as_ref(), &self.settings);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let frame_start = Instant::now();
        if let Some(started) = self.started.take() {
            tracing::info!(
                "first frame {:.0} ms after start",
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        if !self.gpu
            && let Some(render_state) = frame.wgpu_render_state()
        {
            CanvasResources::install(render_state);
            self.gpu = true;
        }
        let window = ui.ctx().content_rect().size();
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::top("canvas-toolbar").show(ui, |ui| {
            canvas::toolbar_ui(ui, &mut self.canvas, &mut self.settings.tools);
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::bottom("gallery")
            .resizable(true)
            .default_size(150.0)
            .size_range(80.0..=(window.y * 0.35).max(80.0))
            .show_collapsible(ui, &mut self.open_panels.gallery, |ui| {
                self.gallery.ui(ui, &mut self.commands);
            });
        let share = |share: f32, (min, max): (f32, f32)| (window.x * share).clamp(min, max);
        egui::Panel::left("prompt")
            .resizable(true)
            .default_size(300.0)
            .size_range(LEFT_WIDTH_PT.0..=share(LEFT_SHARE, LEFT_WIDTH_PT))
            .show_collapsible(ui, &mut self.open_panels.prompt, |ui| {
                egui::Panel::bottom("prompt-actions").show(ui, |ui| {
                    ui.add_space(4.0);
                    PromptPanel::actions_ui(
                        ui,
                        &mut self.settings,
                        &self.jobs,
                        self.canvas.doc.as_ref(),
                        &mut self.commands,
                    );
                });
                egui::ScrollArea::vertical().show(ui, |ui| {
                    let checkpoint = self.models.family_of(self.settings.selected_model.as_deref());
                    self.prompt.ui(
                        ui,
                        &mut self.settings,
                        &self.paths,
                        (self.models.loras(), checkpoint),
                        &self.jobs,
                        self.canvas.doc.as_ref(),
                        &mut self.commands,
                    );
                });
            });
        egui::Panel::right("models")
            .resizable(true)
            .default_size(240.0)
            .size_range(RIGHT_WIDTH_PT.0..=share(RIGHT_SHARE, RIGHT_WIDTH_PT))
            .show_collapsible(ui, &mut self.open_panels.models, |ui| {
                self.models.ui(
                    ui,
                    self.settings.selected_model.as_deref(),
                    &self.paths,
                    &mut self.commands,
                );
            });
        egui::CentralPanel::default().show(ui, |ui| self.central_ui(ui));
        self.dialogs.ui(ui, &self.paths, &mut self.commands);
        self.get_models.ui(ui.ctx(), &self.downloads, &mut self.commands);
        self.found_ui(ui.ctx());
        self.pending_open_ui(ui.ctx());
        // What this frame queued or changed is applied in `logic`: make sure a next frame comes.
        if !self.commands.is_empty()
            || self
                .only_masked
                .is_stale(self.canvas.doc.as_ref(), &self.settings)
        {
            ui.ctx().request_repaint();
        }
        self.record_frame(frame_start);
    }

    fn save(&mut self, _storage: &mut dyn eframe::Storage) {
        // eframe keeps the window layout; the settings go to our own JSON file (RON cannot hold
        // A1111's names such as "Euler a" as enum variants).
        self.save_settings();
    }

    fn on_exit(&mut self) {
        // Whatever is unsaved goes to disk now, on this thread: the process is about to end.
        if let Some(doc) = &self.canvas.doc
            && !self.autosave.is_saved(doc.revision())
            && let Some(save) = self.document_save()
        {
            let mut pngs = crate::document::file::PngCache::default();
            if let Err(err) = super::io::save_document(&self.paths.document_dir(), &save, &mut pngs) {
                tracing::error!("{err}");
            }
        }
    }
}

/// Why `path` cannot be written (it is a folder, or its folder is missing), naming it as `shown`:
/// Save as and Export refuse such a path at once instead of failing on the disk thread.
fn unwritable(path: &std::path::Path, shown: &str) -> Option<String> {
    let folder_ok = path
        .parent()
        .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir());
    (path.is_dir() || !folder_ok).then(|| {
        trf(
            "{path}: the folder does not exist or the path is a folder",
            &[("path", &shown)],
        )
    })
}
