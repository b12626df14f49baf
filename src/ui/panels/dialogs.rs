//! The floating windows: Shortcuts and About (opened from the Help menu), and the strength sweep
//! picker while a sweep is open.

use eframe::egui::{self, Vec2};

use crate::config::AppPaths;
use crate::ui::canvas;
use crate::ui::command::Command;
use crate::ui::jobs::Sweep;

/// Side of a sweep result in the picker, in points.
const SWEEP_THUMB_PT: f32 = 128.0;

/// Which of the Help windows are open.
#[derive(Default)]
pub struct Dialogs {
    show_shortcuts: bool,
    show_about: bool,
}

impl Dialogs {
    /// The Help menu's entries (they open the windows).
    pub fn help_menu_ui(&mut self, ui: &mut egui::Ui) {
        if ui.button("Shortcuts").clicked() {
            self.show_shortcuts = true;
        }
        if ui.button("About").clicked() {
            self.show_about = true;
        }
    }

    /// Draws the open windows; `sweep` is the open strength sweep, if any.
    pub fn ui(
        &mut self,
        ui: &egui::Ui,
        paths: &AppPaths,
        sweep: Option<&Sweep>,
        commands: &mut Vec<Command>,
    ) {
        let ctx = ui.ctx();
        egui::Window::new("Shortcuts")
            .open(&mut self.show_shortcuts)
            .show(ctx, |ui| {
                egui::Grid::new("shortcuts").show(ui, |ui| {
                    for (keys, what) in [("Ctrl+Enter", "Generate"), ("Esc", "Cancel the running job")]
                        .into_iter()
                        .chain(canvas::SHORTCUTS)
                    {
                        ui.monospace(keys);
                        ui.label(what);
                        ui.end_row();
                    }
                });
            });
        egui::Window::new("About Easel")
            .open(&mut self.show_about)
            .show(ctx, |ui| {
                ui.label(format!("Easel {}", env!("CARGO_PKG_VERSION")));
                ui.label(format!("Data folder: {}", paths.data_dir.display()));
                ui.label(format!("Outputs: {}", paths.outputs_dir.display()));
                ui.label(format!("Log: {}", paths.log_file().display()));
            });
        if let Some(sweep) = sweep {
            sweep_ui(ctx, sweep, commands);
        }
    }
}

/// The strength sweep picker: a labelled row of results; a click keeps one as the next version.
fn sweep_ui(ctx: &egui::Context, sweep: &Sweep, commands: &mut Vec<Command>) {
    let mut open = true;
    egui::Window::new("Strength sweep")
        .open(&mut open)
        .show(ctx, |ui| {
            ui.label(format!(
                "{} of {} done; click one to keep it as the next version",
                sweep.results.len(),
                sweep.job_count()
            ));
            ui.horizontal_wrapped(|ui| {
                for (i, result) in sweep.results.iter().enumerate() {
                    ui.vertical(|ui| {
                        let label = format!("strength {:.1}", result.strength);
                        let button = egui::Button::image(
                            egui::Image::new(&result.texture)
                                .max_size(Vec2::splat(SWEEP_THUMB_PT))
                                .alt_text(label.clone()),
                        );
                        if ui.add(button).on_hover_text("keep this one").clicked() {
                            commands.push(Command::KeepSweepResult(i));
                        }
                        ui.label(label);
                    });
                }
            });
        });
    if !open {
        commands.push(Command::CloseSweep);
    }
}
