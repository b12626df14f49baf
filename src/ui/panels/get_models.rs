//! The Get models window: the starter catalogue with sizes and licences and a Download button per
//! file, a field for any Hugging Face / Civitai / https source, and the downloads with progress,
//! Cancel and their errors.

use eframe::egui::{self, Color32};

use crate::download::{Catalogue, DownloadRequest, ModelKind, Source};
use crate::ui::command::Command;
use crate::ui::downloads::{DownloadState, Downloads, progress_text};
use crate::ui::i18n::{tr, tr_noop, trf};
use crate::ui::text::human_size;

/// The source field's label (also its accessible name).
pub const SOURCE_LABEL: &str =
    tr_noop("Hugging Face file (org/repo/file.safetensors), Civitai page or id, or https URL:");

/// The window's own state: open or not, the typed source and its kind.
pub struct GetModelsDialog {
    open: bool,
    catalogue: Result<Catalogue, String>,
    source: String,
    /// `None`: the kind the source says (Civitai), else checkpoint.
    kind: Option<ModelKind>,
    /// Why the typed source cannot be used.
    source_error: Option<String>,
}

impl Default for GetModelsDialog {
    fn default() -> Self {
        Self {
            open: false,
            catalogue: Catalogue::builtin(),
            source: String::new(),
            kind: None,
            source_error: None,
        }
    }
}

/// A download key for a catalogue entry.
fn catalogue_key(id: &str) -> String {
    format!("catalogue:{id}")
}

impl GetModelsDialog {
    /// Opens the window.
    pub fn open(&mut self) {
        self.open = true;
    }

    /// Draws the window when open.
    pub fn ui(&mut self, ctx: &egui::Context, downloads: &Downloads, commands: &mut Vec<Command>) {
        let mut open = self.open;
        egui::Window::new(tr("Get models"))
            .id(egui::Id::unique("get-models-window"))
            .open(&mut open)
            .default_width(640.0)
            .show(ctx, |ui| {
                self.catalogue_ui(ui, downloads, commands);
                ui.separator();
                self.source_ui(ui, commands);
                ui.separator();
                downloads_ui(ui, downloads, commands);
            });
        self.open = open;
    }

    fn catalogue_ui(&self, ui: &mut egui::Ui, downloads: &Downloads, commands: &mut Vec<Command>) {
        let catalogue = match &self.catalogue {
            Ok(c) => c,
            Err(message) => {
                ui.colored_label(Color32::from_rgb(230, 120, 100), message);
                return;
            }
        };
        ui.label(tr(
            "Starter files from Hugging Face, checked against their published SHA-256:",
        ));
        egui::Grid::new("catalogue").striped(true).show(ui, |ui| {
            for entry in &catalogue.entries {
                ui.label(&entry.name).on_hover_text(&entry.description);
                ui.label(entry.kind.name());
                ui.label(
                    entry
                        .size_bytes
                        .map_or_else(|| tr("size: see hub").into(), human_size),
                );
                ui.label(&entry.licence);
                let key = catalogue_key(&entry.id);
                let running = downloads.get(&key).is_some_and(|d| d.state.is_active());
                let button = ui
                    .add_enabled(!running, egui::Button::new(tr("Download")))
                    .on_hover_text(trf(
                        "{file} from {source}",
                        &[("file", &entry.file_name()), ("source", &entry.source)],
                    ));
                if button.clicked()
                    && let Ok(request) = entry.request()
                {
                    commands.push(Command::StartDownload {
                        key,
                        label: entry.name.clone(),
                        request: Box::new(request),
                    });
                }
                ui.end_row();
            }
        });
    }

    fn source_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        let label = ui.label(tr(SOURCE_LABEL));
        let field = ui
            .add(
                egui::TextEdit::singleline(&mut self.source)
                    .hint_text("https://civitai.com/models/…?modelVersionId=…")
                    .desired_width(480.0),
            )
            .labelled_by(label.id);
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.horizontal(|ui| {
            let kind_label = ui.label(tr("Kind"));
            egui::ComboBox::from_id_salt("download-kind")
                .selected_text(self.kind.map_or(tr("from the source"), ModelKind::name))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.kind, None, tr("from the source"));
                    for kind in ModelKind::ALL {
                        ui.selectable_value(&mut self.kind, Some(kind), kind.name());
                    }
                })
                .response
                .labelled_by(kind_label.id);
            let typed = !self.source.trim().is_empty();
            if ui
                .add_enabled(typed, egui::Button::new(tr("Download source")))
                .clicked()
                || (entered && typed)
            {
                match Source::parse(&self.source) {
                    Ok(source) => {
                        self.source_error = None;
                        commands.push(Command::StartDownload {
                            key: format!("source:{}", self.source.trim()),
                            label: crate::text::shorten(self.source.trim(), 80).into_owned(),
                            request: Box::new(DownloadRequest {
                                kind: self.kind,
                                ..DownloadRequest::new(source)
                            }),
                        });
                    }
                    Err(err) => self.source_error = Some(err.to_string()),
                }
            }
        });
        if let Some(err) = &self.source_error {
            ui.colored_label(Color32::from_rgb(230, 120, 100), err);
        }
        ui.small(tr(
            "Gated files need HF_TOKEN (Hugging Face) or CIVITAI_TOKEN set before Easel starts.",
        ));
    }
}

/// The downloads: progress and Cancel while running, where it went or why it failed after.
fn downloads_ui(ui: &mut egui::Ui, downloads: &Downloads, commands: &mut Vec<Command>) {
    if downloads.items().is_empty() {
        ui.weak(tr("No downloads yet."));
        return;
    }
    for item in downloads.items() {
        ui.horizontal(|ui| {
            ui.label(&item.label);
            match &item.state {
                DownloadState::Starting => {
                    ui.spinner();
                    ui.label(tr("asking the server…"));
                }
                DownloadState::Running(progress) => {
                    let bar = progress.map_or_else(
                        || egui::ProgressBar::new(0.0).animate(true),
                        |p| {
                            egui::ProgressBar::new(p.fraction().unwrap_or(0.0))
                                .text(progress_text(&p))
                                .animate(p.fraction().is_none())
                        },
                    );
                    ui.add(bar.desired_width(280.0));
                }
                DownloadState::Retrying(why) => {
                    ui.spinner();
                    ui.label(trf("resuming: {reason}", &[("reason", why)]));
                }
                DownloadState::Verifying => {
                    ui.spinner();
                    ui.label(tr("checking the SHA-256…"));
                }
                DownloadState::Done(path) => {
                    ui.label(trf("saved to {path}", &[("path", &path.display())]));
                }
                DownloadState::Failed(message) => {
                    ui.add(
                        egui::Label::new(
                            egui::RichText::new(message).color(Color32::from_rgb(230, 120, 100)),
                        )
                        .wrap(),
                    );
                }
            }
            if item.state.is_active() {
                if ui.button(tr("Cancel")).clicked() {
                    commands.push(Command::CancelDownload(item.key.clone()));
                }
            } else if ui
                .small_button("×")
                .on_hover_text(tr("remove from the list"))
                .clicked()
            {
                commands.push(Command::DismissDownload(item.key.clone()));
            }
        });
    }
}
