//! The image-to-image section of the prompt panel: mode switch, denoising strength, resize mode,
//! the inpaint settings, and the Refine, Strength sweep, Find/Fix faces and Find/Fix hands buttons.

use eframe::egui;

use super::{combo_row_ui, row_ui};
use crate::config::{Mode, Settings};
use crate::document::Document;
use crate::request::{InpaintArea, MaskedContent, ResizeMode, SoftInpainting, VaeEncoder};
use crate::ui::command::Command;
use crate::ui::i18n::tr;

/// A1111's resize modes, in the UI language.
fn resize_mode_label(mode: ResizeMode) -> &'static str {
    match mode {
        ResizeMode::JustResize => tr("Just resize"),
        ResizeMode::CropAndResize => tr("Crop and resize"),
        ResizeMode::ResizeAndFill => tr("Resize and fill"),
    }
}

/// A1111's masked-content choices, in the UI language.
fn masked_content_label(content: MaskedContent) -> &'static str {
    match content {
        MaskedContent::Fill => tr("fill"),
        MaskedContent::Original => tr("original"),
        MaskedContent::LatentNoise => tr("latent noise"),
        MaskedContent::LatentNothing => tr("latent nothing"),
    }
}

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
        ui.horizontal_wrapped(|ui| {
            ui.selectable_value(&mut settings.mode, Mode::TextToImage, tr("Text to image"));
            ui.selectable_value(&mut settings.mode, Mode::ImageToImage, tr("Image to image"))
                .on_hover_text(tr(
                    "start from the canvas picture; a painted mask makes it inpainting",
                ));
        });
        if settings.mode != Mode::ImageToImage {
            return;
        }
        let s = &mut settings.img2img;
        super::form_ui(ui, "img2img", |ui| {
            row_ui(ui, tr("Denoising strength"), |ui| {
                ui.add(egui::Slider::new(&mut settings.strength, 0.0..=1.0).step_by(0.01))
            });
            combo_row_ui(
                ui,
                tr("Resize mode"),
                "resize_mode",
                &mut s.resize_mode,
                &ResizeMode::ALL,
                resize_mode_label,
            );
            row_ui(ui, tr("Encoder"), |ui| {
                let mut taesd = settings.vae_encoder == VaeEncoder::Taesd;
                let response = ui.checkbox(&mut taesd, tr("Encode with TAESD")).on_hover_text(tr(
                    "encode the start image with the tiny autoencoder: faster, slightly softer \
                     (needs taesd_encoder.safetensors in the vae-approx folder)",
                ));
                if response.changed() {
                    settings.vae_encoder = if taesd {
                        VaeEncoder::Taesd
                    } else {
                        VaeEncoder::Full
                    };
                }
                response
            });
        });
        let masked = doc.is_some_and(Document::has_mask);
        egui::CollapsingHeader::new(if masked {
            tr("Inpaint (mask painted)")
        } else {
            tr("Inpaint")
        })
        .default_open(masked)
        .show(ui, |ui| {
            super::form_ui(ui, "inpaint", |ui| {
                row_ui(ui, tr("Mask blur"), |ui| {
                    ui.add(egui::DragValue::new(&mut s.mask_blur).range(0..=64))
                });
                combo_row_ui(
                    ui,
                    tr("Masked content"),
                    "masked_content",
                    &mut s.masked_content,
                    &MaskedContent::ALL,
                    masked_content_label,
                );
                row_ui(ui, tr("Inpaint area"), |ui| {
                    ui.horizontal_wrapped(|ui| {
                        ui.selectable_value(
                            &mut s.inpaint_area,
                            InpaintArea::WholePicture,
                            tr("Whole picture"),
                        );
                        ui.selectable_value(&mut s.inpaint_area, InpaintArea::OnlyMasked, tr("Only masked"));
                    })
                    .response
                });
                row_ui(ui, tr("Only masked padding"), |ui| {
                    ui.add(egui::DragValue::new(&mut s.padding).range(0..=256))
                });
                row_ui(ui, tr("Mask mode"), |ui| {
                    ui.checkbox(&mut s.invert_mask, tr("Inpaint not masked"))
                });
                row_ui(ui, tr("Soft inpainting"), |ui| {
                    let mut on = s.soft.is_some();
                    let response = ui.checkbox(&mut on, tr("blend by mask strength")).on_hover_text(tr(
                        "A1111's soft inpainting: a blurred mask edge blends gradually during sampling and in the final composite, so no seam shows (also used by Refine)",
                    ));
                    if response.changed() {
                        s.soft = on.then(SoftInpainting::default);
                    }
                    response
                });
                if let Some(soft) = &mut s.soft {
                    let sliders: [(&str, &mut f32, std::ops::RangeInclusive<f32>); 6] = [
                        (tr("Schedule bias"), &mut soft.schedule_bias, 0.0..=8.0),
                        (tr("Preservation strength"), &mut soft.preservation, 0.0..=8.0),
                        (tr("Transition contrast boost"), &mut soft.transition_boost, 1.0..=32.0),
                        (tr("Mask influence"), &mut soft.mask_influence, 0.0..=1.0),
                        (tr("Difference threshold"), &mut soft.difference_threshold, 0.01..=8.0),
                        (tr("Difference contrast"), &mut soft.difference_contrast, 0.0..=8.0),
                    ];
                    for (label, value, range) in sliders {
                        row_ui(ui, label, |ui| ui.add(egui::Slider::new(value, range)));
                    }
                }
                row_ui(ui, tr("Conditional mask weight"), |ui| {
                    ui.add(egui::Slider::new(&mut s.mask_weight, 0.0..=1.0))
                })
                .on_hover_text(tr("inpainting models only"));
            });
        });
    }

    /// Refine, Keep structure, Strength sweep, Find/Fix faces and Find/Fix hands: part of the action bar
    /// pinned below the prompt panel, so opening the sections above never hides them.
    pub fn actions_ui(
        ui: &mut egui::Ui,
        settings: &mut Settings,
        doc: Option<&Document>,
        commands: &mut Vec<Command>,
    ) {
        let masked = doc.is_some_and(Document::has_mask);
        // Rows wrap rather than run past the right edge of the narrowest panel.
        ui.horizontal_wrapped(|ui| {
            let has_doc = doc.is_some();
            if ui
                .add_enabled(has_doc && masked, egui::Button::new(tr("Refine")))
                .on_hover_text(tr("repaint only the masked area at full resolution (denoise 0.4, padding 32, blur 4): for faces and hands"))
                .on_disabled_hover_text(tr("paint a mask over the face or hand first"))
                .clicked()
            {
                commands.push(Command::Refine);
            }
            ui.checkbox(&mut settings.keep_structure, tr("Keep structure")).on_hover_text(tr(
                "Refine adds a ControlNet inpaint unit (or tile, when that is the one you have), so the repainted area keeps its shapes; needs control_v11p_sd15_inpaint or control_v11f1e_sd15_tile in a ControlNet folder",
            ));
            if ui
                .add_enabled(has_doc, egui::Button::new(tr("Strength sweep")))
                .on_hover_text(tr("one image per strength 0.3 … 0.8 with the same seed"))
                .clicked()
            {
                commands.push(Command::StrengthSweep);
            }
        });
        // Rows of two buttons that need a picture: what they say, their hover text, what they do.
        let rows: [[(&str, &str, Command); 2]; 3] = [
            [
                (
                    tr("Find faces"),
                    tr("mask every face the detector finds (MediaPipe, confidence 0.5, boxes grown by 4 px)"),
                    Command::FindFaces,
                ),
                (
                    tr("Fix faces"),
                    tr(
                        "repaint every face at full resolution, one after the other (ADetailer: denoise 0.4, padding 32, blur 4)",
                    ),
                    Command::FixFaces,
                ),
            ],
            [
                (
                    tr("Find hands"),
                    tr(
                        "mask every hand the detector finds (MediaPipe Hands, confidence 0.5, boxes grown by 4 px)",
                    ),
                    Command::FindHands,
                ),
                (
                    tr("Fix hands"),
                    tr(
                        "repaint every hand at full resolution, one after the other (ADetailer: denoise 0.4, padding 32, blur 4)",
                    ),
                    Command::FixHands,
                ),
            ],
            [
                (
                    tr("Select person"),
                    tr("mask the people in the picture (MediaPipe selfie segmentation)"),
                    Command::SelectPeople { background: false },
                ),
                (
                    tr("Select background"),
                    tr("mask everything but the people in the picture"),
                    Command::SelectPeople { background: true },
                ),
            ],
        ];
        for row in rows {
            ui.horizontal_wrapped(|ui| {
                for (label, hint, command) in row {
                    if ui
                        .add_enabled(doc.is_some(), egui::Button::new(label))
                        .on_hover_text(hint)
                        .on_disabled_hover_text(tr("open a picture first"))
                        .clicked()
                    {
                        commands.push(command);
                    }
                }
            });
        }
    }
}
