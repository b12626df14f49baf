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

/// Below this width a form's labels go above their controls: beside them, a long label leaves
/// no room for a slider or a combo box in the narrowest left panel.
const NARROW_FORM_PT: f32 = 240.0;
/// Room for the number box beside a slider in a narrow form, in points.
const SLIDER_VALUE_PT: f32 = 80.0;

/// A form of [`row_ui`] rows: a two-column grid (labels, controls) where the panel is wide enough,
/// otherwise one column, each label above its control.
fn form_ui(ui: &mut egui::Ui, id_salt: &str, add: impl FnOnce(&mut egui::Ui)) {
    if ui.available_width() < NARROW_FORM_PT {
        ui.vertical(|ui| {
            // A slider's number box sits beside it: leave room for one.
            let room = ui.available_width() - SLIDER_VALUE_PT;
            let spacing = ui.spacing_mut();
            spacing.slider_width = spacing.slider_width.min(room);
            add(ui);
        });
    } else {
        egui::Grid::new(id_salt).num_columns(2).show(ui, add);
    }
}

/// One row of a two-column grid (or of a narrow [`form_ui`]): `label`, then what `add` puts beside it, labelled by it (screen
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
