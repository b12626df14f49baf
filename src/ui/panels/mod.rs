//! The window's panels, each a struct that keeps its own state and has a `ui` method that draws
//! and pushes [`Command`](super::command::Command)s; plus the few widgets they share.

mod controlnet;
mod dialogs;
mod gallery;
mod get_models;
mod img2img;
mod models;
mod prompt;

use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions};

pub use dialogs::{Dialogs, PATH_LABEL};
pub use gallery::GalleryPanel;
pub use get_models::{GetModelsDialog, SOURCE_LABEL};
pub use models::ModelsPanel;
pub use prompt::{PromptPanel, apply_fast_preset};

use super::io::Rgba;

/// Uploads RGBA pixels from the disk thread as a texture.
fn texture(ctx: &egui::Context, name: &str, rgba: &Rgba) -> TextureHandle {
    let image = ColorImage::from_rgba_unmultiplied([rgba.width, rgba.height], &rgba.pixels);
    ctx.load_texture(name, image, TextureOptions::LINEAR)
}

/// One row of a two-column grid: `label`, then what `add` puts beside it, labelled by it (screen
/// readers and the UI tests find the widget by that label).
fn row_ui(
    ui: &mut egui::Ui,
    label: &str,
    add: impl FnOnce(&mut egui::Ui) -> egui::Response,
) -> egui::Response {
    let label = ui.label(label);
    let response = add(ui).labelled_by(label.id);
    ui.end_row();
    response
}

/// A grid row with a combo box over `choices`, each shown by `name`.
fn combo_row_ui<T: Copy + PartialEq>(
    ui: &mut egui::Ui,
    label: &str,
    id_salt: &str,
    value: &mut T,
    choices: &[T],
    name: fn(T) -> &'static str,
) {
    row_ui(ui, label, |ui| {
        egui::ComboBox::from_id_salt(id_salt)
            .selected_text(name(*value))
            .show_ui(ui, |ui| {
                for &choice in choices {
                    ui.selectable_value(value, choice, name(choice));
                }
            })
            .response
    });
}
