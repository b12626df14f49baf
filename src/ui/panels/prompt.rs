//! The prompt panel (left): prompt and negative prompt with `<lora:` completion, the generation
//! parameters, the image-to-image section, Generate / Cancel and the queue.

use eframe::egui::{self, Color32};

use super::controlnet::ControlNetPanel;
use super::img2img::Img2ImgPanel;
use super::{combo_row_ui, row_ui};
use crate::config::{AppPaths, Settings};
use crate::document::Document;
use crate::models::family::Family;
use crate::models::registry::{LoraEntry, LoraFit};
use crate::params::{GenerationParams, RngSource, Sampler, Schedule};
use crate::request::VaeDecoder;
use crate::ui::command::Command;
use crate::ui::i18n::{tr, trf};
use crate::ui::jobs::Jobs;

/// Most LoRA names offered while a `<lora:` tag is typed.
const LORA_SUGGESTIONS: usize = 8;

/// The prompt panel.
#[derive(Default)]
pub struct PromptPanel {
    img2img: Img2ImgPanel,
    controlnet: ControlNetPanel,
    /// What the Fast preset set and what it is missing, until the next click.
    fast_note: Option<String>,
    /// The VAE files offered by the VAE picker, read again each time it opens.
    vae_files: Vec<std::path::PathBuf>,
}

/// Steps of the Fast preset (LCM-LoRA's recommended 4–8).
pub const FAST_STEPS: u32 = 6;
/// CFG scale of the Fast preset (LCM-LoRA's recommended 1–2).
pub const FAST_CFG: f32 = 1.5;

/// Whether a LoRA name looks like an LCM-LoRA: `lcm` in its name, or `pytorch_lora_weights`, the
/// file name of the catalogue's "LCM-LoRA for SD 1.5" (latent-consistency/lcm-lora-sdv1-5).
fn is_lcm_lora(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("lcm") || n == "pytorch_lora_weights"
}

/// The Fast preset: the LCM sampler, [`FAST_STEPS`] steps, CFG [`FAST_CFG`], TAESD decode when a
/// decoder is present, and an LCM-LoRA tag in the prompt when one is in the LoRA folders (one made
/// for another family than the `checkpoint`'s is passed over). Returns what it did and what is
/// missing, for the user.
pub fn apply_fast_preset(
    settings: &mut Settings,
    (loras, checkpoint): (&[LoraEntry], Option<Family>),
    taesd_found: bool,
) -> String {
    let p = &mut settings.params;
    p.sampler = Sampler::Lcm;
    p.schedule = Schedule::Automatic;
    p.steps = FAST_STEPS;
    p.cfg_scale = FAST_CFG;
    let mut notes = vec![trf(
        "Fast: LCM, {steps} steps, CFG {cfg}",
        &[("steps", &FAST_STEPS), ("cfg", &FAST_CFG)],
    )];
    let tagged = crate::prompt::extra_networks::extract_tags(&p.prompt)
        .is_ok_and(|(_, tags, _)| tags.iter().any(|t| is_lcm_lora(&t.name)));
    if !tagged {
        let fits = |l: &&LoraEntry| !matches!(l.fit(checkpoint), LoraFit::Mismatch { .. });
        match loras.iter().filter(fits).find(|l| is_lcm_lora(&l.name)) {
            Some(lora) => {
                if !p.prompt.is_empty() && !p.prompt.ends_with([' ', '\n']) {
                    p.prompt.push(' ');
                }
                p.prompt.push_str("<lora:");
                p.prompt.push_str(&lora.name);
                p.prompt.push_str(":1>");
                notes.push(trf("added {tag} to the prompt", &[("tag", &format!("<lora:{}:1>", lora.name))]));
            }
            None => notes.push(
                tr("needs an LCM-LoRA: put lcm-lora-sdv1-5.safetensors into a LoRA folder (File > Get models… > \
                 LCM-LoRA for SD 1.5) and add <lora:lcm-lora-sdv1-5:1> to the prompt; without it 6 LCM steps \
                 give a blurry picture")
                .to_owned(),
            ),
        }
    }
    if taesd_found {
        settings.vae_decoder = VaeDecoder::Taesd;
        notes.push(tr("decoding with TAESD").to_owned());
    } else {
        settings.vae_decoder = VaeDecoder::Full;
        notes.push(
            tr(
                "no TAESD decoder, so the full VAE decodes (slower): put taesd_decoder.safetensors into the \
             vae-approx folder (File > Get models… > TAESD decoder)",
            )
            .to_owned(),
        );
    }
    notes.join("; ")
}

impl PromptPanel {
    /// The "SD VAE" row: Automatic (the checkpoint's own VAE) or a file from the VAE folders.
    fn vae_row_ui(&mut self, ui: &mut egui::Ui, settings: &mut Settings, paths: &AppPaths) {
        let name = |p: &std::path::Path| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        let selected = settings
            .vae
            .as_deref()
            .map_or_else(|| tr("Automatic").to_owned(), name);
        let files = &mut self.vae_files;
        row_ui(ui, tr("SD VAE"), |ui| {
            let response = egui::ComboBox::from_id_salt("sd-vae")
                .selected_text(selected)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut settings.vae, None, tr("Automatic"))
                        .on_hover_text(tr("the checkpoint's own VAE"));
                    for file in files.iter() {
                        ui.selectable_value(&mut settings.vae, Some(file.clone()), name(file))
                            .on_hover_text(file.display().to_string());
                    }
                    if files.is_empty() {
                        ui.weak(tr(
                            "no .safetensors in the VAE folders (the app's vae folder, models/VAE)",
                        ));
                    }
                })
                .response;
            if response.clicked() {
                *files = crate::models::vae_file::list(&paths.vae_dirs(&settings.model_folders));
            }
            response.on_hover_text(tr(
                "a VAE file used instead of the checkpoint's, for decoding and encoding (A1111's SD VAE)",
            ))
        });
    }

    /// The ControlNet section.
    pub fn controlnet(&self) -> &ControlNetPanel {
        &self.controlnet
    }

    /// The ControlNet section, for replies from the disk thread.
    pub fn controlnet_mut(&mut self) -> &mut ControlNetPanel {
        &mut self.controlnet
    }

    /// Shows what the Fast preset did (set by the app after applying it).
    pub fn set_fast_note(&mut self, note: String) {
        self.fast_note = Some(note);
    }

    /// Draws the panel; edits go straight into `settings`, actions into `commands`. `loras` are
    /// offered for completion where they fit the selected checkpoint's family, `checkpoint`.
    #[expect(
        clippy::too_many_arguments,
        reason = "borrows disjoint parts of the app; a context struct for one caller would only rename them"
    )]
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        settings: &mut Settings,
        paths: &AppPaths,
        (loras, checkpoint): (&[LoraEntry], Option<Family>),
        jobs: &Jobs,
        doc: Option<&Document>,
        commands: &mut Vec<Command>,
    ) {
        prompts_ui(ui, &mut settings.params, loras, checkpoint);
        ui.separator();
        // Rows wrap rather than run past the right edge of the narrowest panel.
        ui.horizontal_wrapped(|ui| {
            if ui
                .button(tr("Fast"))
                .on_hover_text(trf(
                    "LCM sampler, {steps} steps, CFG {cfg}, TAESD decode: a picture in a fraction of \
                     the time (needs an LCM-LoRA in the prompt)",
                    &[("steps", &FAST_STEPS), ("cfg", &FAST_CFG)],
                ))
                .clicked()
            {
                commands.push(Command::FastPreset);
            }
            let mut taesd = settings.vae_decoder == VaeDecoder::Taesd;
            if ui
                .checkbox(&mut taesd, tr("Decode with TAESD"))
                .on_hover_text(tr(
                    "decode the final image with the tiny autoencoder: much faster, slightly softer \
                     (needs taesd_decoder.safetensors in the vae-approx folder)",
                ))
                .changed()
            {
                settings.vae_decoder = if taesd {
                    VaeDecoder::Taesd
                } else {
                    VaeDecoder::Full
                };
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label(tr("After generating, fix:"));
            let hint = tr("repaint each one found at full resolution, as ADetailer does (denoise 0.4, padding 32, blur 4)");
            ui.checkbox(&mut settings.fix_after.faces, tr("faces")).on_hover_text(hint);
            ui.checkbox(&mut settings.fix_after.hands, tr("hands")).on_hover_text(hint);
        });
        if let Some(note) = &self.fast_note {
            ui.small(note);
        }
        ui.separator();
        super::form_ui(ui, "params", |ui| {
            params_ui(ui, settings, jobs.last_seed());
            self.vae_row_ui(ui, settings, paths);
        });
        // Snap sizes to the multiple of 8 the model needs.
        let p = &mut settings.params;
        p.width = p.width / 8 * 8;
        p.height = p.height / 8 * 8;
        if let Some(doc) = doc {
            size_note_ui(ui, p, doc.size());
        }
        ui.separator();
        self.img2img.ui(ui, settings, doc);
        self.controlnet.ui(ui, settings, doc, commands);
    }

    /// Generate / Cancel and the queue: drawn below the scrolling part of the panel, so they stay
    /// in reach however long the sections above grow.
    pub fn actions_ui(
        ui: &mut egui::Ui,
        settings: &mut Settings,
        jobs: &Jobs,
        doc: Option<&Document>,
        commands: &mut Vec<Command>,
    ) {
        if settings.mode == crate::config::Mode::ImageToImage {
            Img2ImgPanel::actions_ui(ui, settings, doc, commands);
        }
        ui.horizontal(|ui| {
            let generate = ui.add_enabled(
                settings.selected_model.is_some(),
                egui::Button::new(tr("Generate")),
            );
            if generate.on_hover_text("Ctrl+Enter").clicked() {
                commands.push(Command::Generate);
            }
            if jobs.running().is_some() && ui.button(tr("Cancel")).on_hover_text("Esc").clicked() {
                commands.push(Command::Cancel);
            }
        });
        if settings.selected_model.is_none() {
            ui.small(tr("Choose a model on the right to start."));
        }
        queue_ui(ui, jobs, commands);
    }
}

/// The prompt and negative prompt fields.
fn prompts_ui(ui: &mut egui::Ui, p: &mut GenerationParams, loras: &[LoraEntry], checkpoint: Option<Family>) {
    multiline_ui(ui, tr("Prompt"), &mut p.prompt, 4);
    if let Err(err) = crate::prompt::editing::parse(&p.prompt) {
        ui.small(
            egui::RichText::new(trf(
                "prompt editing: {error}; the prompt is used as written",
                &[("error", &err)],
            ))
            .color(Color32::from_rgb(230, 160, 90)),
        );
    }
    bracket_warnings_ui(ui, &p.prompt);
    lora_completion_ui(ui, &mut p.prompt, loras, checkpoint);
    multiline_ui(ui, tr("Negative prompt"), &mut p.negative_prompt, 2);
}

/// Most bracket warnings listed under the prompt; the rest are counted.
const BRACKET_WARNINGS_SHOWN: usize = 3;

/// Under the prompt box: each bracket that does not pair up, where it is and how A1111 reads it.
fn bracket_warnings_ui(ui: &mut egui::Ui, prompt: &str) {
    use crate::prompt::brackets::{BracketIssue, bracket_warnings};
    let warnings = bracket_warnings(prompt);
    for w in warnings.iter().take(BRACKET_WARNINGS_SHOWN) {
        let pos = ("pos", &w.char_pos as &dyn std::fmt::Display);
        let text = match w.issue {
            BracketIssue::UnclosedRound => trf(
                "“(” at character {pos} is never closed: everything after it is strengthened",
                &[pos],
            ),
            BracketIssue::UnclosedSquare => trf(
                "“[” at character {pos} is never closed: everything after it is weakened",
                &[pos],
            ),
            BracketIssue::UnclosedTag => trf(
                "“<lora:” at character {pos} is never closed with “>”: it stays text and no LoRA is applied",
                &[pos],
            ),
            BracketIssue::StrayRound => trf("“)” at character {pos} closes nothing and stays text", &[pos]),
            BracketIssue::StraySquare => trf("“]” at character {pos} closes nothing and stays text", &[pos]),
        };
        ui.small(egui::RichText::new(text).color(Color32::from_rgb(230, 160, 90)));
    }
    if warnings.len() > BRACKET_WARNINGS_SHOWN {
        ui.small(
            egui::RichText::new(trf(
                "and {count} more unpaired brackets",
                &[("count", &(warnings.len() - BRACKET_WARNINGS_SHOWN))],
            ))
            .color(Color32::from_rgb(230, 160, 90)),
        );
    }
}

/// A label and a full-width text box of `rows` lines labelled by it.
fn multiline_ui(ui: &mut egui::Ui, label: &str, text: &mut String, rows: usize) {
    let label = ui.label(label);
    ui.add(
        egui::TextEdit::multiline(text)
            .desired_rows(rows)
            .desired_width(f32::INFINITY),
    )
    .labelled_by(label.id);
}

/// Typing `<lora:` offers the LoRAs whose names start with what follows; a click completes the tag.
/// LoRAs made for another family than the `checkpoint`'s are not offered (a note says how many);
/// one whose family could not be read is offered with a mark.
fn lora_completion_ui(
    ui: &mut egui::Ui,
    prompt: &mut String,
    loras: &[LoraEntry],
    checkpoint: Option<Family>,
) {
    let Some(partial) = open_lora_tag(prompt) else {
        return;
    };
    let partial = partial.to_lowercase();
    let (offered, hidden): (Vec<&LoraEntry>, Vec<&LoraEntry>) = loras
        .iter()
        .filter(|l| l.name.to_lowercase().starts_with(&partial))
        .partition(|l| !matches!(l.fit(checkpoint), LoraFit::Mismatch { .. }));
    if offered.is_empty() && hidden.is_empty() {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        ui.small(tr("LoRA:"));
        for l in offered.into_iter().take(LORA_SUGGESTIONS) {
            let (text, hover) = if l.family.is_some() {
                (l.name.clone(), tr("complete the tag").to_owned())
            } else {
                (
                    format!("{} (?)", l.name),
                    tr("complete the tag; which model family this LoRA is for could not be read from its file")
                        .to_owned(),
                )
            };
            if ui.small_button(text).on_hover_text(hover).clicked() {
                let cut = prompt.len() - partial.len();
                prompt.truncate(cut);
                prompt.push_str(&l.name);
                prompt.push_str(":1>");
            }
        }
        if !hidden.is_empty() {
            let why: Vec<String> = hidden
                .iter()
                .filter_map(|l| match l.fit(checkpoint) {
                    LoraFit::Mismatch { lora, model } => {
                        Some(format!("{}: {}", l.name, super::models::mismatch_text(lora, model)))
                    }
                    _ => None,
                })
                .collect();
            ui.small(
                egui::RichText::new(trf(
                    "{count} for other model families not offered",
                    &[("count", &hidden.len())],
                ))
                .weak(),
            )
            .on_hover_text(why.join("\n"));
        }
    });
}

/// The sampler, size, seed and batch rows of the parameter grid.
fn params_ui(ui: &mut egui::Ui, settings: &mut Settings, last_seed: Option<u64>) {
    let p = &mut settings.params;
    combo_row_ui(
        ui,
        tr("Sampler"),
        "sampler",
        &mut p.sampler,
        &Sampler::ALL,
        Sampler::a1111_name,
    );
    combo_row_ui(
        ui,
        tr("Schedule type"),
        "schedule",
        &mut p.schedule,
        &Schedule::ALL,
        Schedule::a1111_name,
    );
    row_ui(ui, tr("Steps"), |ui| {
        ui.add(egui::DragValue::new(&mut p.steps).range(1..=150))
    });
    row_ui(ui, tr("CFG scale"), |ui| {
        ui.add(
            egui::DragValue::new(&mut p.cfg_scale)
                .range(1.0..=30.0)
                .speed(0.1),
        )
    });
    let l = ui.label(tr("Seed"));
    // The grid's last column is as wide as the panel leaves it: wrap within it.
    ui.horizontal_wrapped(|ui| {
        ui.add_enabled(!settings.random_seed, egui::DragValue::new(&mut p.seed))
            .labelled_by(l.id);
        ui.checkbox(&mut settings.random_seed, tr("Random"))
            .on_hover_text(tr("pick a new seed for every generation"));
        if let Some(seed) = last_seed
            && ui
                .small_button(tr("Reuse"))
                .on_hover_text(trf("use the last image's seed ({seed})", &[("seed", &seed)]))
                .clicked()
        {
            p.seed = seed;
            settings.random_seed = false;
        }
    });
    ui.end_row();
    row_ui(ui, tr("Width"), |ui| {
        ui.add(egui::DragValue::new(&mut p.width).range(64..=2048).speed(8))
    });
    row_ui(ui, tr("Height"), |ui| {
        ui.add(egui::DragValue::new(&mut p.height).range(64..=2048).speed(8))
    });
    ui.label("");
    // A menu and a button; in the narrowest panel the button goes under the menu.
    ui.horizontal_wrapped(|ui| {
        ui.menu_button(tr("Presets"), |ui| {
            for (w, h) in [(512, 512), (512, 768), (768, 512)] {
                if ui.button(format!("{w}×{h}")).clicked() {
                    p.width = w;
                    p.height = h;
                    ui.close();
                }
            }
        });
        if ui
            .small_button(tr("Swap"))
            .on_hover_text(tr("swap width and height"))
            .clicked()
        {
            std::mem::swap(&mut p.width, &mut p.height);
        }
    });
    ui.end_row();
    row_ui(ui, tr("Batch count"), |ui| {
        ui.add(egui::DragValue::new(&mut p.batch_count).range(1..=100))
    });
    row_ui(ui, tr("Clip skip"), |ui| {
        ui.add(egui::DragValue::new(&mut p.clip_skip).range(1..=12))
    });
    combo_row_ui(
        ui,
        tr("RNG"),
        "rng",
        &mut p.rng,
        &RngSource::ALL,
        RngSource::a1111_name,
    );
}

/// Under the size fields with a picture open: the size it is generated at and what that implies
/// (scaled to a multiple of 8, or fitted back into the picture), and a way back to its size.
fn size_note_ui(ui: &mut egui::Ui, p: &mut GenerationParams, (w, h): (u32, u32)) {
    let working = crate::ui::jobs::working_size(w, h);
    let fields = (p.width, p.height);
    let note = if fields == (w, h) {
        trf("works at the picture's size, {w}×{h}", &[("w", &w), ("h", &h)])
    } else if fields == working {
        trf(
            "the {w}×{h} picture is scaled to {sw}×{sh} (the model needs multiples of 8; {dw} × {dh} px) and the result scaled back",
            &[
                ("w", &w),
                ("h", &h),
                ("sw", &working.0),
                ("sh", &working.1),
                ("dw", &format!("{:+}", i64::from(working.0) - i64::from(w))),
                ("dh", &format!("{:+}", i64::from(working.1) - i64::from(h))),
            ],
        )
    } else {
        trf(
            "differs from the {w}×{h} picture: the picture is scaled to {sw}×{sh} and the result fitted back into {w}×{h}",
            &[("w", &w), ("h", &h), ("sw", &fields.0), ("sh", &fields.1)],
        )
    };
    ui.horizontal_wrapped(|ui| {
        ui.small(note);
        if fields != working
            && ui
                .small_button(tr("Use the picture's size"))
                .on_hover_text(format!("{}×{}", working.0, working.1))
                .clicked()
        {
            (p.width, p.height) = working;
        }
    });
}

/// The jobs waiting, each with a button that takes it out of the queue.
fn queue_ui(ui: &mut egui::Ui, jobs: &Jobs, commands: &mut Vec<Command>) {
    let queue = jobs.queue();
    if queue.is_empty() {
        return;
    }
    ui.separator();
    ui.label(trf("Queue ({count})", &[("count", &queue.len())]));
    for q in queue {
        ui.horizontal(|ui| {
            if ui
                .small_button("×")
                .on_hover_text(tr("remove from the queue"))
                .clicked()
            {
                commands.push(Command::RemoveQueued(q.job));
            }
            ui.add(egui::Label::new(egui::RichText::new(&q.summary).small()).truncate());
        });
    }
}

/// The name typed so far after an unclosed `<lora:` at the end of the prompt.
fn open_lora_tag(prompt: &str) -> Option<&str> {
    let start = prompt.rfind("<lora:")?;
    let partial = &prompt[start + "<lora:".len()..];
    (!partial.contains(['>', ':', '<', '\n'])).then_some(partial)
}

#[cfg(test)]
mod tests {
    use super::open_lora_tag;

    #[test]
    fn an_open_lora_tag_yields_what_was_typed() {
        assert_eq!(open_lora_tag("a barn <lora:ti"), Some("ti"));
        assert_eq!(open_lora_tag("a barn <lora:"), Some(""));
        assert_eq!(open_lora_tag("a barn <lora:tiny:1>"), None);
        assert_eq!(open_lora_tag("a barn"), None);
    }
}
