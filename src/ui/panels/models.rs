//! The model browser (right): checkpoints to pick from and LoRAs to insert into the prompt, with
//! a name filter, preview pictures and file hashes as they arrive from the disk thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use eframe::egui::{self, TextureHandle, Vec2};

use super::texture;
use crate::config::AppPaths;
use crate::download::CivitaiInfo;
use crate::models::family::Family;
use crate::models::registry::{LoraEntry, LoraFit, ModelEntry};
use crate::ui::command::Command;
use crate::ui::i18n::{tr, trf};
use crate::ui::io::{IoTask, Rgba};
use crate::ui::text::human_size;

/// Side of a checkpoint's picture in the list, in points.
const MODEL_THUMB_PT: f32 = 40.0;
/// Side of a LoRA's picture in the list, in points.
const LORA_THUMB_PT: f32 = 32.0;

/// What the checkpoint and LoRA lists share: a named file, maybe a picture beside it.
trait BrowserEntry {
    fn name(&self) -> &str;
    fn path(&self) -> &Path;
    /// The A1111-style preview picture beside the file.
    fn thumbnail(&self) -> Option<&Path>;
    /// Whether the file can be hashed (a readable single file).
    fn hashable(&self) -> bool;
}

impl BrowserEntry for ModelEntry {
    fn name(&self) -> &str {
        &self.name
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn thumbnail(&self) -> Option<&Path> {
        self.thumbnail.as_deref()
    }
    fn hashable(&self) -> bool {
        self.problem.is_none() && self.path.is_file()
    }
}

impl BrowserEntry for LoraEntry {
    fn name(&self) -> &str {
        &self.name
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn thumbnail(&self) -> Option<&Path> {
        self.thumbnail.as_deref()
    }
    fn hashable(&self) -> bool {
        true
    }
}

/// The model browser and what it shows.
#[derive(Default)]
pub struct ModelsPanel {
    /// Name filter typed by the user (applies to both lists).
    filter: String,
    models: Vec<ModelEntry>,
    loras: Vec<LoraEntry>,
    /// A checkpoint scan is under way.
    scanning: bool,
    /// AutoV2 file hashes by path, as they arrive.
    hashes: HashMap<PathBuf, Result<String, String>>,
    /// Preview pictures by file path.
    thumbs: HashMap<PathBuf, TextureHandle>,
    /// What Civitai said about a file (opt-in lookup by hash).
    civitai: HashMap<PathBuf, CivitaiInfo>,
}

impl ModelsPanel {
    /// LoRAs found by the last scan.
    pub fn loras(&self) -> &[LoraEntry] {
        &self.loras
    }

    /// The family of the checkpoint at `path`, when the scan found it and could read its header.
    pub fn family_of(&self, path: Option<&Path>) -> Option<Family> {
        let path = path?;
        self.models.iter().find(|m| m.path == path)?.family
    }

    /// Shows the spinner until [`Self::set_models`].
    pub fn start_scan(&mut self) {
        self.scanning = true;
    }

    /// Takes a checkpoint scan's result; returns the disk work it calls for (pictures, hashes).
    pub fn set_models(&mut self, models: Vec<ModelEntry>) -> Vec<IoTask> {
        let tasks = self.follow_ups(&models);
        self.models = models;
        self.scanning = false;
        tasks
    }

    /// Takes a LoRA scan's result; returns the disk work it calls for (pictures, hashes).
    pub fn set_loras(&mut self, loras: Vec<LoraEntry>) -> Vec<IoTask> {
        let tasks = self.follow_ups(&loras);
        self.loras = loras;
        tasks
    }

    /// Records a file's hash, or why there is none.
    pub fn set_hash(&mut self, path: PathBuf, hash: Result<String, String>) {
        self.hashes.insert(path, hash);
    }

    /// Files hashed so far, with their hash.
    pub fn hashed(&self) -> Vec<(PathBuf, String)> {
        self.hashes
            .iter()
            .filter_map(|(p, h)| Some((p.clone(), h.as_ref().ok()?.clone())))
            .collect()
    }

    /// Whether a file has a preview picture (its own, or one from Civitai).
    pub fn has_picture(&self, path: &Path) -> bool {
        self.thumbs.contains_key(path)
            || self
                .models
                .iter()
                .any(|m| m.path == path && m.thumbnail.is_some())
            || self.loras.iter().any(|l| l.path == path && l.thumbnail.is_some())
    }

    /// Records what Civitai says about a file.
    pub fn set_civitai(&mut self, path: PathBuf, info: CivitaiInfo) {
        self.civitai.insert(path, info);
    }

    /// The Civitai line of a file's hover text, when the lookup found it.
    fn civitai_text(&self, path: &Path) -> String {
        self.civitai.get(path).map_or_else(String::new, |i| {
            let mut text = format!(
                "\nCivitai: {} — {} ({})",
                i.model_name, i.version_name, i.base_model
            );
            if !i.trained_words.is_empty() {
                text.push('\n');
                text.push_str(tr("trigger words: "));
                text.push_str(&i.trained_words.join(", "));
            }
            text
        })
    }

    /// Records a file's preview picture.
    pub fn set_thumbnail(&mut self, ctx: &egui::Context, path: PathBuf, rgba: &Rgba) {
        self.thumbs.insert(path, texture(ctx, "model-thumb", rgba));
    }

    /// Loading the pictures beside `entries`, and hashing the files not hashed yet.
    fn follow_ups<E: BrowserEntry>(&self, entries: &[E]) -> Vec<IoTask> {
        let pictures: Vec<(PathBuf, PathBuf)> = entries
            .iter()
            .filter_map(|e| Some((e.path().to_path_buf(), e.thumbnail()?.to_path_buf())))
            .collect();
        let unhashed: Vec<PathBuf> = entries
            .iter()
            .filter(|e| e.hashable() && !self.hashes.contains_key(e.path()))
            .map(|e| e.path().to_path_buf())
            .collect();
        let mut tasks = Vec::new();
        if !pictures.is_empty() {
            tasks.push(IoTask::Thumbnails(pictures));
        }
        if !unhashed.is_empty() {
            tasks.push(IoTask::Hash(unhashed));
        }
        tasks
    }

    /// Draws the filter, the checkpoint list and the LoRA list.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        selected: Option<&Path>,
        paths: &AppPaths,
        commands: &mut Vec<Command>,
    ) {
        self.models_ui(ui, selected, paths, commands);
        ui.separator();
        self.loras_ui(ui, self.family_of(selected), paths, commands);
    }

    fn models_ui(
        &mut self,
        ui: &mut egui::Ui,
        selected: Option<&Path>,
        paths: &AppPaths,
        commands: &mut Vec<Command>,
    ) {
        ui.heading(tr("Models"));
        ui.horizontal(|ui| {
            let l = ui.label(tr("Filter"));
            ui.add(egui::TextEdit::singleline(&mut self.filter).desired_width(f32::INFINITY))
                .labelled_by(l.id);
        });
        // Wraps rather than widening the panel.
        ui.horizontal_wrapped(|ui| {
            if ui.button(tr("Add folder…")).clicked() {
                commands.push(Command::AddFolder);
            }
            if ui.button(tr("Rescan")).clicked() {
                commands.push(Command::Rescan);
            }
            if ui.button(tr("Get models…")).clicked() {
                commands.push(Command::GetModels);
            }
            if self.scanning {
                ui.spinner();
            }
        });
        ui.separator();
        if self.models.is_empty() && !self.scanning {
            ui.label(trf(
                "No models found. Put .safetensors checkpoints in\n{folder}\nor add your A1111 / ComfyUI folder, or download one:",
                &[("folder", &paths.default_models_dir.display())],
            ));
            if ui
                .button(tr("Get models: SD 1.5, VAE, TAESD, LCM-LoRA, ControlNets…"))
                .clicked()
            {
                commands.push(Command::GetModels);
            }
            return;
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            for m in filtered(&self.models, &self.filter) {
                let hash = match self.hashes.get(&m.path) {
                    Some(Ok(h)) => h.clone(),
                    Some(Err(_)) => tr("no hash").into(),
                    None if m.hashable() => tr("hashing…").into(),
                    None => String::new(),
                };
                let badge = m.family.map_or("?", |f| f.label());
                let text = format!("{}  [{badge}]  {}  {hash}", m.name, human_size(m.size_bytes));
                let button = egui::Button::selectable(selected == Some(m.path.as_path()), text);
                let response = self.row_ui(ui, m, MODEL_THUMB_PT, m.problem.is_none(), button);
                let response = match &m.problem {
                    Some(problem) => response.on_disabled_hover_text(problem),
                    None => {
                        response.on_hover_text(format!("{}{}", m.path.display(), self.civitai_text(&m.path)))
                    }
                };
                if response.clicked() {
                    commands.push(Command::SelectModel(m.path.clone()));
                }
            }
        });
    }

    /// The LoRA list; one made for another family than the `checkpoint`'s is greyed, and says why.
    fn loras_ui(
        &self,
        ui: &mut egui::Ui,
        checkpoint: Option<Family>,
        paths: &AppPaths,
        commands: &mut Vec<Command>,
    ) {
        egui::CollapsingHeader::new(trf("LoRAs ({count})", &[("count", &self.loras.len())]))
            .default_open(!self.loras.is_empty())
            .show(ui, |ui| {
                if self.loras.is_empty() {
                    ui.small(trf(
                        "Put LoRA .safetensors files in {folder} (or add an A1111 / ComfyUI folder).",
                        &[("folder", &paths.default_lora_dir().display())],
                    ));
                }
                for l in filtered(&self.loras, &self.filter) {
                    let hash = match self.hashes.get(&l.path) {
                        Some(Ok(h)) => h.as_str(),
                        _ => "",
                    };
                    let text = format!(
                        "{}  [{}]  {}  {hash}",
                        l.name,
                        l.family.unwrap_or(tr("unreadable")),
                        human_size(l.size_bytes)
                    );
                    let fit = l.fit(checkpoint);
                    let fits = !matches!(fit, LoraFit::Mismatch { .. });
                    let response = self.row_ui(ui, l, LORA_THUMB_PT, fits, egui::Button::new(text));
                    if let LoraFit::Mismatch { lora, model } = fit {
                        response.on_disabled_hover_text(mismatch_text(lora, model));
                        continue;
                    }
                    if response
                        .on_hover_text(format!(
                            "{}{}",
                            trf(
                                "insert {tag} into the prompt",
                                &[("tag", &format!("<lora:{}:1>", l.name))]
                            ),
                            self.civitai_text(&l.path)
                        ))
                        .clicked()
                    {
                        commands.push(Command::InsertLora(l.name.clone()));
                    }
                }
            });
    }

    /// One list row: the entry's picture (once loaded), then its button.
    fn row_ui(
        &self,
        ui: &mut egui::Ui,
        entry: &impl BrowserEntry,
        thumb_pt: f32,
        enabled: bool,
        button: egui::Button<'_>,
    ) -> egui::Response {
        ui.horizontal(|ui| {
            if let Some(t) = self.thumbs.get(entry.path()) {
                ui.add(
                    egui::Image::new(t)
                        .max_size(Vec2::splat(thumb_pt))
                        .alt_text(entry.name()),
                );
            }
            // Long names are cut with '…' (the hover text has the path), never widening the panel.
            ui.add_enabled(enabled, button.truncate())
        })
        .inner
    }
}

/// Why a LoRA made for `lora` models is not offered for a `model` checkpoint.
pub(super) fn mismatch_text(lora: &str, model: &str) -> String {
    trf(
        "this LoRA is for {lora}; it will not apply to the selected {model} checkpoint",
        &[("lora", &lora), ("model", &model)],
    )
}

/// The entries whose name contains `filter`, ignoring case.
fn filtered<'a, E: BrowserEntry>(entries: &'a [E], filter: &str) -> impl Iterator<Item = &'a E> {
    let filter = filter.to_lowercase();
    entries
        .iter()
        .filter(move |e| e.name().to_lowercase().contains(&filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lora(name: &str, thumbnail: bool) -> LoraEntry {
        let path = PathBuf::from(format!("/loras/{name}.safetensors"));
        LoraEntry {
            name: name.into(),
            thumbnail: thumbnail.then(|| path.with_extension("png")),
            path,
            size_bytes: 1,
            family: Some("SD 1.5"),
        }
    }

    #[test]
    fn a_scan_asks_for_pictures_and_missing_hashes_only() {
        let mut panel = ModelsPanel::default();
        panel.set_hash("/loras/a.safetensors".into(), Ok("0123456789".into()));
        let tasks = panel.set_loras(vec![lora("a", true), lora("b", false)]);
        let [IoTask::Thumbnails(pictures), IoTask::Hash(unhashed)] = tasks.as_slice() else {
            panic!("pictures then hashes expected");
        };
        assert_eq!(
            pictures.as_slice(),
            [(
                PathBuf::from("/loras/a.safetensors"),
                PathBuf::from("/loras/a.png")
            )]
        );
        assert_eq!(unhashed.as_slice(), [PathBuf::from("/loras/b.safetensors")]);
        assert_eq!(filtered(panel.loras(), "B").count(), 1);
    }

    #[test]
    fn broken_or_missing_checkpoints_are_not_hashed() {
        let broken = ModelEntry {
            path: "/models/broken.safetensors".into(),
            name: "broken".into(),
            family: None,
            size_bytes: 1000,
            thumbnail: None,
            problem: Some("truncated".into()),
        };
        let mut panel = ModelsPanel::default();
        panel.start_scan();
        assert!(panel.set_models(vec![broken]).is_empty());
        assert!(!panel.scanning);
    }
}
