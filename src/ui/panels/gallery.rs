//! The bottom panel: the gallery of outputs (newest first) with
//! open, use parameters, copy infotext and delete (after a confirmation).

use eframe::egui::{self, TextureHandle, Vec2};

use super::texture;
use crate::ui::command::Command;
use crate::ui::i18n::{tr, trf};
use crate::ui::io::GalleryItem;

/// Side of a gallery thumbnail, in points.
const THUMB_PT: f32 = 96.0;

/// A gallery image and its thumbnail on the GPU.
struct Entry {
    item: GalleryItem,
    texture: TextureHandle,
}

/// The gallery strip.
#[derive(Default)]
pub struct GalleryPanel {
    /// Newest first.
    entries: Vec<Entry>,
    /// The image whose deletion waits for "Delete" or "Keep".
    confirm_delete: Option<usize>,
}

impl GalleryPanel {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The image at `index`, newest first.
    pub fn get(&self, index: usize) -> Option<&GalleryItem> {
        self.entries.get(index).map(|e| &e.item)
    }

    /// Takes the image at `index` out of the strip (the file stays; the caller deletes it).
    pub fn remove(&mut self, index: usize) -> Option<GalleryItem> {
        (index < self.entries.len()).then(|| self.entries.remove(index).item)
    }

    /// Puts a new output first.
    pub fn insert_newest(&mut self, ctx: &egui::Context, item: GalleryItem) {
        let texture = texture(ctx, "thumb", &item.thumbnail);
        self.entries.insert(0, Entry { item, texture });
    }

    /// Replaces the strip with the outputs folder's images, newest first.
    pub fn set_items(&mut self, ctx: &egui::Context, items: Vec<GalleryItem>) {
        self.entries = items
            .into_iter()
            .map(|item| Entry {
                texture: texture(ctx, "thumb", &item.thumbnail),
                item,
            })
            .collect();
    }

    /// Draws the strip and the delete confirmation (the job's progress is in the status bar).
    pub fn ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            ui.label(trf("Gallery ({count})", &[("count", &self.entries.len())]));
            if ui.small_button(tr("Open folder")).clicked() {
                commands.push(Command::OpenOutputs);
            }
        });
        // Thumbnails fit the panel's height, so the first image arriving never grows the panel
        // (and never moves the canvas above it).
        let spacing = ui.spacing();
        let side = (ui.available_height()
            - spacing.scroll.allocated_width()
            - 2.0 * spacing.button_padding.y
            - 2.0 * spacing.item_spacing.y)
            .clamp(24.0, THUMB_PT);
        egui::ScrollArea::horizontal().show(ui, |ui| {
            ui.horizontal(|ui| {
                for (i, Entry { item, texture }) in self.entries.iter().enumerate() {
                    let name = item
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let button = egui::Button::image(
                        egui::Image::new(texture)
                            .max_size(Vec2::splat(side))
                            .alt_text(name.clone()),
                    );
                    let response = ui
                        .add(button)
                        .on_hover_text(item.infotext.clone().unwrap_or(name));
                    if response.clicked() {
                        commands.push(Command::ShowGalleryItem(i));
                    }
                    response.context_menu(|ui| {
                        if let Some(text) = &item.infotext {
                            if ui.button(tr("Use parameters")).clicked() {
                                commands.push(Command::UseParameters(text.clone()));
                                ui.close();
                            }
                            if ui.button(tr("Copy infotext")).clicked() {
                                ui.copy_text(text.clone());
                                ui.close();
                            }
                        }
                        if ui.button(tr("Delete…")).clicked() {
                            self.confirm_delete = Some(i);
                            ui.close();
                        }
                    });
                }
            });
        });
        self.confirm_delete_ui(ui.ctx(), commands);
    }

    /// The "Delete image?" window, while a deletion waits for an answer.
    fn confirm_delete_ui(&mut self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        let Some(i) = self.confirm_delete else {
            return;
        };
        let mut decision = None;
        egui::Window::new(tr("Delete image?"))
            .id(egui::Id::unique("delete-image-window"))
            .collapsible(false)
            .show(ctx, |ui| {
                ui.label(tr("The PNG file is removed from the outputs folder."));
                ui.horizontal(|ui| {
                    if ui.button(tr("Delete")).clicked() {
                        decision = Some(true);
                    }
                    if ui.button(tr("Keep")).clicked() {
                        decision = Some(false);
                    }
                });
            });
        if let Some(delete) = decision {
            if delete {
                commands.push(Command::DeleteGalleryItem(i));
            }
            self.confirm_delete = None;
        }
    }
}
