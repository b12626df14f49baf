//! The image-to-image section of the prompt panel: mode switch, denoising strength, resize mode,
//! the inpaint settings, and the Refine, Strength sweep, Find faces and Fix faces buttons.

use eframe::egui;

use super::{combo_row_ui, row_ui};
use crate::config::{Mode, Settings};
use crate::document::Document;
use crate::request::{InpaintArea, MaskedContent, ResizeMode};
use crate::ui::command::Command;

/// The image-to-image section (no state of its own: everything it edits is in the settings).
#[derive(Default)]
pub struct Img2ImgPanel;

impl Img2ImgPanel {
    /// Draws the section; `doc` is the canvas document the jobs would start from.
    #[expect(
        clippy::unused_self,
        reason = "every panel has the same `ui` shape; this one keeps all it edits in the settings"
    )]
    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &mut Settings, doc: Option<&Document>) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut settings.mode, Mode::TextToImage, "Text to image");
            ui.selectable_value(&mut settings.mode, Mode::ImageToImage, "Image to image")
                .on_hover_text("start from the canvas picture; a painted mask makes it inpainting");
        });
        if settings.mode != Mode::ImageToImage {
            return;
        }
        let s = &mut settings.img2img;
        egui::Grid::new("img2img").num_columns(2).show(ui, |ui| {
            row_ui(ui, "Denoising strength", |ui| {
                ui.add(egui::Slider::new(&mut settings.strength, 0.0..=1.0).step_by(0.01))
            });
            combo_row_ui(
                ui,
                "Resize mode",
                "resize_mode",
                &mut s.resize_mode,
                &ResizeMode::ALL,
                ResizeMode::label,
            );
        });
        let masked = doc.is_some_and(Document::has_mask);
        egui::CollapsingHeader::new(if masked {
            "Inpaint (mask painted)"
        } else {
            "Inpaint"
        })
        .default_open(masked)
        .show(ui, |ui| {
            egui::Grid::new("inpaint").num_columns(2).show(ui, |ui| {
                row_ui(ui, "Mask blur", |ui| {
                    ui.add(egui::DragValue::new(&mut s.mask_blur).range(0..=64))
                });
                combo_row_ui(
                    ui,
                    "Masked content",
                    "masked_content",
                    &mut s.masked_content,
                    &MaskedContent::ALL,
                    MaskedContent::label,
                );
                row_ui(ui, "Inpaint area", |ui| {
                    ui.horizontal(|ui| {
                        ui.selectable_value(&mut s.inpaint_area, InpaintArea::WholePicture, "Whole picture");
                        ui.selectable_value(&mut s.inpaint_area, InpaintArea::OnlyMasked, "Only masked");
                    })
                    .response
                });
                row_ui(ui, "Only masked padding", |ui| {
                    ui.add(egui::DragValue::new(&mut s.padding).range(0..=256))
                });
                row_ui(ui, "Mask mode", |ui| {
                    ui.checkbox(&mut s.invert_mask, "Inpaint not masked")
                });
                row_ui(ui, "Conditional mask weight", |ui| {
                    ui.add(egui::Slider::new(&mut s.mask_weight, 0.0..=1.0))
                })
                .on_hover_text("inpainting models only");
            });
        });
    }

    /// Refine, Keep structure, Strength sweep, Find faces and Fix faces: part of the action bar
    /// pinned below the prompt panel, so opening the sections above never hides them.
    pub fn actions_ui(
        ui: &mut egui::Ui,
        settings: &mut Settings,
        doc: Option<&Document>,
        commands: &mut Vec<Command>,
    ) {
        let masked = doc.is_some_and(Document::has_mask);
        ui.horizontal(|ui| {
            let has_doc = doc.is_some();
            if ui
                .add_enabled(has_doc && masked, egui::Button::new("Refine"))
                .on_hover_text("repaint only the masked area at full resolution (denoise 0.4, padding 32, blur 4): for faces and hands")
                .on_disabled_hover_text("paint a mask over the face or hand first")
                .clicked()
            {
                commands.push(Command::Refine);
            }
            ui.checkbox(&mut settings.keep_structure, "Keep structure").on_hover_text(
                "Refine adds a ControlNet inpaint unit (or tile, when that is the one you have), so the repainted area keeps its shapes; needs control_v11p_sd15_inpaint or control_v11f1e_sd15_tile in a ControlNet folder",
            );
            if ui
                .add_enabled(has_doc, egui::Button::new("Strength sweep"))
                .on_hover_text("one image per strength 0.3 … 0.8 with the same seed")
                .clicked()
            {
                commands.push(Command::StrengthSweep);
            }
        });
        ui.horizontal(|ui| {
            let has_doc = doc.is_some();
            if ui
                .add_enabled(has_doc, egui::Button::new("Find faces"))
                .on_hover_text("mask every face the detector finds (MediaPipe, confidence 0.5, boxes grown by 4 px)")
                .on_disabled_hover_text("open a picture first")
                .clicked()
            {
                commands.push(Command::FindFaces);
            }
            if ui
                .add_enabled(has_doc, egui::Button::new("Fix faces"))
                .on_hover_text("repaint every face at full resolution, one after the other (ADetailer: denoise 0.4, padding 32, blur 4)")
                .on_disabled_hover_text("open a picture first")
                .clicked()
            {
                commands.push(Command::FixFaces);
            }
        });
    }
}
