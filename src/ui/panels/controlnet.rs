//! The ControlNet section of the prompt panel: one unit (model, control image = the canvas picture
//! or a file, preprocessor with a live preview of its hint, weight, start/end, mode, resize).
//! The preview is computed on the disk thread; the section keeps only its newest answer.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::{self, TextureHandle};

use super::{row_ui, texture};
use crate::config::{ControlSettings, Settings};
use crate::diffusion::controlnet::ControlMode;
use crate::document::Document;
use crate::imaging::ops::HintResize;
use crate::models::registry::ControlNetEntry;
use crate::ui::command::{Command, PathKind};
use crate::ui::i18n::{tr, trf};
use crate::ui::io::{HintTask, IoTask, Rgba};

/// The preprocessors offered, by the extension's module names.
const PREPROCESSORS: [&str; 6] = [
    "none",
    "canny",
    "inpaint_only",
    "tile_resample",
    "lineart_standard",
    "scribble_xdog",
];

/// A control mode or resize mode label (stored in the settings in English, as A1111 writes it)
/// in the UI language.
fn shown(label: &str) -> &str {
    match label {
        "Balanced" => tr("Balanced"),
        "My prompt is more important" => tr("My prompt is more important"),
        "ControlNet is more important" => tr("ControlNet is more important"),
        "Just Resize" => tr("Just resize"),
        "Crop and Resize" => tr("Crop and resize"),
        "Resize and Fill" => tr("Resize and fill"),
        other => other,
    }
}

/// The ControlNet section's state.
#[derive(Default)]
pub struct ControlNetPanel {
    entries: Vec<ControlNetEntry>,
    scanned: bool,
    file_image: Option<(PathBuf, Arc<image::RgbImage>)>,
    preview: Option<TextureHandle>,
    preview_error: Option<String>,
    serial: u64,
    /// What the last preview request was computed from.
    asked_for: Option<String>,
    pending: Vec<IoTask>,
}

impl ControlNetPanel {
    /// The ControlNets found.
    pub fn entries(&self) -> &[ControlNetEntry] {
        &self.entries
    }

    /// A new folder scan's result.
    pub fn set_entries(&mut self, entries: Vec<ControlNetEntry>) {
        self.entries = entries;
        self.scanned = true;
    }

    /// A control image file finished loading.
    pub fn set_file_image(&mut self, path: PathBuf, image: Arc<image::RgbImage>) {
        self.file_image = Some((path, image));
        self.asked_for = None;
    }

    /// The control image file chosen for jobs, if loaded and still chosen.
    pub fn file_image(&self, settings: &ControlSettings) -> Option<&image::RgbImage> {
        let (path, image) = self.file_image.as_ref()?;
        (settings.image_file.as_ref() == Some(path)).then_some(image.as_ref())
    }

    /// A hint preview arrived.
    pub fn set_hint(&mut self, ctx: &egui::Context, serial: u64, result: Result<Rgba, String>) {
        if serial != self.serial {
            return;
        }
        match result {
            Ok(rgba) => {
                self.preview = Some(texture(ctx, "controlnet-hint", &rgba));
                self.preview_error = None;
            }
            Err(e) => {
                self.preview = None;
                self.preview_error = Some(e);
            }
        }
    }

    /// Disk work the section asked for since the last call.
    pub fn take_tasks(&mut self) -> Vec<IoTask> {
        std::mem::take(&mut self.pending)
    }

    /// Draws the section.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        settings: &mut Settings,
        doc: Option<&Document>,
        commands: &mut Vec<Command>,
    ) {
        let title = if settings.controlnet.enabled {
            tr("ControlNet (on)")
        } else {
            "ControlNet"
        };
        egui::CollapsingHeader::new(title)
            .id_salt("controlnet")
            .default_open(settings.controlnet.enabled)
            .show(ui, |ui| self.body_ui(ui, settings, doc, commands));
    }

    fn body_ui(
        &mut self,
        ui: &mut egui::Ui,
        settings: &mut Settings,
        doc: Option<&Document>,
        commands: &mut Vec<Command>,
    ) {
        let (width, height) = (settings.params.width, settings.params.height);
        let c = &mut settings.controlnet;
        ui.checkbox(&mut c.enabled, tr("Use ControlNet"))
            .on_hover_text(tr(
                "keep the structure of the control image (edges, lines, the picture itself) while generating",
            ));
        if self.scanned && self.entries.is_empty() {
            ui.small(tr("No ControlNet found. Put control_v11p_sd15_*.safetensors files in the controlnet folder (or a WebUI/ComfyUI folder added on the right), or use Get models…."));
        }
        super::form_ui(ui, "controlnet-grid", |ui| {
            row_ui(ui, tr("ControlNet model"), |ui| {
                let chosen = c
                    .model
                    .as_ref()
                    .and_then(|p| self.entries.iter().find(|e| &e.path == p))
                    .map_or_else(
                        || {
                            c.model
                                .as_ref()
                                .map_or(tr("(none)").to_owned(), |p| p.display().to_string())
                        },
                        |e| e.label.clone(),
                    );
                egui::ComboBox::from_id_salt("controlnet-model")
                    .selected_text(chosen)
                    .show_ui(ui, |ui| {
                        for e in &self.entries {
                            let r = ui.add_enabled(
                                e.family.is_ok(),
                                egui::Button::selectable(c.model.as_ref() == Some(&e.path), &e.label),
                            );
                            let r = match &e.family {
                                Ok(what) => r.on_hover_text(what),
                                Err(why) => r.on_disabled_hover_text(why),
                            };
                            if r.clicked() {
                                c.model = Some(e.path.clone());
                            }
                        }
                    })
                    .response
            });
            row_ui(ui, tr("Control image"), |ui| {
                ui.horizontal_wrapped(|ui| {
                    let file = c.image_file.clone();
                    if ui
                        .selectable_label(file.is_none(), tr("Canvas picture"))
                        .clicked()
                    {
                        c.image_file = None;
                    }
                    let name = file
                        .as_ref()
                        .and_then(|p| p.file_name())
                        .map_or(tr("File…").to_owned(), |n| n.to_string_lossy().into_owned());
                    if ui
                        .selectable_label(file.is_some(), name)
                        .on_hover_text(tr("use an image file as the control image"))
                        .clicked()
                    {
                        commands.push(Command::AskPath(PathKind::ControlImage));
                    }
                })
                .response
            });
            row_ui(ui, tr("Preprocessor"), |ui| {
                egui::ComboBox::from_id_salt("controlnet-preprocessor")
                    .selected_text(c.preprocessor.clone())
                    .show_ui(ui, |ui| {
                        for p in PREPROCESSORS {
                            ui.selectable_value(&mut c.preprocessor, p.to_owned(), p);
                        }
                    })
                    .response
            });
            match c.preprocessor.as_str() {
                "canny" => {
                    row_ui(ui, tr("Canny low threshold"), |ui| {
                        ui.add(egui::Slider::new(&mut c.canny_low, 1..=255))
                    });
                    row_ui(ui, tr("Canny high threshold"), |ui| {
                        ui.add(egui::Slider::new(&mut c.canny_high, 1..=255))
                    });
                }
                "tile_resample" => {
                    row_ui(ui, tr("Down sampling rate"), |ui| {
                        ui.add(egui::Slider::new(&mut c.tile_rate, 1.0..=8.0).step_by(0.01))
                    });
                }
                "scribble_xdog" => {
                    row_ui(ui, tr("XDoG threshold"), |ui| {
                        ui.add(egui::Slider::new(&mut c.xdog_threshold, 1..=64))
                    });
                }
                _ => {}
            }
            row_ui(ui, tr("Control weight"), |ui| {
                ui.add(egui::Slider::new(&mut c.weight, 0.0..=2.0).step_by(0.05))
            });
            row_ui(ui, tr("Starting control step"), |ui| {
                ui.add(egui::Slider::new(&mut c.start, 0.0..=1.0).step_by(0.01))
            });
            row_ui(ui, tr("Ending control step"), |ui| {
                ui.add(egui::Slider::new(&mut c.end, 0.0..=1.0).step_by(0.01))
            });
            if c.start > c.end {
                c.end = c.start;
            }
            row_ui(ui, tr("Control mode"), |ui| {
                egui::ComboBox::from_id_salt("controlnet-mode")
                    .selected_text(shown(&c.mode).to_owned())
                    .show_ui(ui, |ui| {
                        for m in ControlMode::ALL {
                            ui.selectable_value(&mut c.mode, m.label().to_owned(), shown(m.label()));
                        }
                    })
                    .response
            });
            row_ui(ui, tr("Resize mode"), |ui| {
                egui::ComboBox::from_id_salt("controlnet-resize")
                    .selected_text(shown(&c.resize).to_owned())
                    .show_ui(ui, |ui| {
                        for r in [
                            HintResize::JustResize,
                            HintResize::CropAndResize,
                            HintResize::ResizeAndFill,
                        ] {
                            ui.selectable_value(&mut c.resize, r.label().to_owned(), shown(r.label()));
                        }
                    })
                    .response
            });
            row_ui(ui, tr("Pixel perfect"), |ui| {
                ui.checkbox(&mut c.pixel_perfect, "")
            });
            if !c.pixel_perfect {
                row_ui(ui, tr("Preprocessor resolution"), |ui| {
                    ui.add(egui::DragValue::new(&mut c.processor_res).range(64..=2048))
                });
            }
        });
        self.preview_ui(ui, settings, doc, width, height);
    }

    /// The hint preview, recomputed (on the disk thread) when what it depends on changes.
    fn preview_ui(
        &mut self,
        ui: &mut egui::Ui,
        settings: &Settings,
        doc: Option<&Document>,
        width: u32,
        height: u32,
    ) {
        let c = &settings.controlnet;
        let file = match (&c.image_file, &self.file_image) {
            (Some(want), Some((have, img))) if want == have => Some(img.clone()),
            _ => None,
        };
        if c.image_file.is_some() && file.is_none() {
            ui.small(tr("Reading the control image…"));
            return;
        }
        if file.is_none() && doc.is_none() {
            ui.small(tr("The control image is the canvas picture: open or drop one."));
            return;
        }
        // The canvas picture's revision stands for its pixels; a stroke in progress waits.
        let source = match (&file, doc) {
            (Some(img), _) => format!("file {:p}", Arc::as_ptr(img)),
            (None, Some(d)) => format!("canvas {}", d.revision()),
            (None, None) => String::new(),
        };
        let key = format!("{c:?} {width}x{height} {source}");
        let refresh = ui
            .small_button(tr("Refresh preview"))
            .on_hover_text(tr("run the preprocessor again"))
            .clicked();
        let stroking = doc.is_some_and(Document::stroking);
        if refresh || (!stroking && self.asked_for.as_deref() != Some(key.as_str())) {
            self.asked_for = Some(key);
            self.serial += 1;
            let image = file.unwrap_or_else(|| Arc::new(doc.map(|d| d.image().clone()).unwrap_or_default()));
            let mask = doc.filter(|d| d.has_mask()).map(|d| Arc::new(d.mask().clone()));
            self.pending.push(IoTask::Hint(Box::new(HintTask {
                image,
                mask,
                unit: c.unit(PathBuf::new()),
                width,
                height,
                serial: self.serial,
            })));
        }
        if let Some(err) = &self.preview_error {
            ui.small(trf("preprocessor: {error}", &[("error", err)]));
        }
        if let Some(tex) = &self.preview {
            let size = tex.size_vec2();
            let scale = (ui.available_width() / size.x).min(1.0);
            ui.add(egui::Image::new(tex).fit_to_exact_size(size * scale))
                .on_hover_text(tr(
                    "what the ControlNet sees (black = the area an inpaint hint repaints)",
                ));
        }
    }
}
