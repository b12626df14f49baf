//! The floating windows: Shortcuts and About (opened from the Help menu), and the path window of
//! "Add model folder…", "Open image…", "Export picture…" and "Save as…".

use eframe::egui;

use crate::config::AppPaths;
use crate::ui::canvas;
use crate::ui::command::{Command, PathKind};
use crate::ui::i18n::{tr, tr_noop, trf};

/// The path window's prompt (also the accessible name of its text field).
pub const PATH_LABEL: &str = tr_noop("Type or paste a path, or browse for it:");

/// Which of the Help windows are open, and the path being typed, if that window is open.
#[derive(Default)]
pub struct Dialogs {
    show_shortcuts: bool,
    show_about: bool,
    path: Option<(PathKind, String)>,
}

/// The path a user typed or pasted: surrounding whitespace and quotes and a `file://` prefix
/// (what file managers put on the clipboard) removed.
pub fn typed_path(text: &str) -> std::path::PathBuf {
    let t = text.trim().trim_matches(|c| c == '"' || c == '\'');
    std::path::PathBuf::from(t.strip_prefix("file://").unwrap_or(t))
}

impl Dialogs {
    /// The Help menu's entries (they open the windows).
    pub fn help_menu_ui(&mut self, ui: &mut egui::Ui) {
        if ui.button(tr("Shortcuts")).clicked() {
            self.show_shortcuts = true;
        }
        if ui.button(tr("About")).clicked() {
            self.show_about = true;
        }
    }

    /// Opens the window that asks for a path of `kind` (typed, pasted, or from the native dialog).
    pub fn ask_path(&mut self, kind: PathKind) {
        self.path = Some((kind, String::new()));
    }

    /// Closes the path window (its path was used).
    pub fn close_path(&mut self) {
        self.path = None;
    }

    /// Draws the open windows.
    pub fn ui(&mut self, ui: &egui::Ui, paths: &AppPaths, commands: &mut Vec<Command>) {
        let ctx = ui.ctx();
        egui::Window::new(tr("Shortcuts"))
            .id(egui::Id::unique("shortcuts-window"))
            .open(&mut self.show_shortcuts)
            .show(ctx, |ui| {
                egui::Grid::new("shortcuts").show(ui, |ui| {
                    for (keys, what) in [
                        ("Ctrl+Enter", tr("Generate")),
                        ("Esc", tr("Cancel the running job")),
                        ("Left / Right", tr("Show the previous or next staged result")),
                        ("Enter", tr("Accept the staged result")),
                        ("Ctrl+S", tr("Save")),
                        ("Ctrl+Alt+S", tr("Save as…")),
                        ("Ctrl+Shift+S", tr("Export picture…")),
                    ]
                    .into_iter()
                    .chain(canvas::SHORTCUTS.map(|(keys, what)| (keys, tr(what))))
                    {
                        ui.monospace(tr(keys));
                        ui.label(what);
                        ui.end_row();
                    }
                });
            });
        egui::Window::new(tr("About Easel"))
            .id(egui::Id::unique("about-window"))
            .open(&mut self.show_about)
            .show(ctx, |ui| {
                ui.label(format!("Easel {}", env!("CARGO_PKG_VERSION")));
                ui.label(trf("Data folder: {path}", &[("path", &paths.data_dir.display())]));
                ui.label(trf("Outputs: {path}", &[("path", &paths.outputs_dir.display())]));
                ui.label(trf("Log: {path}", &[("path", &paths.log_file().display())]));
            });
        self.path_ui(ctx, commands);
    }

    /// The path window: a field for a typed or pasted path, Browse… for the system's dialog (which
    /// some systems lack), and the button that uses the path.
    fn path_ui(&mut self, ctx: &egui::Context, commands: &mut Vec<Command>) {
        let Some((kind, text)) = &mut self.path else {
            return;
        };
        let (title, hint, action) = match kind {
            PathKind::ModelFolder => (tr("Add a model folder"), "/path/to/models", tr("Add")),
            PathKind::Image => (tr("Open an image"), "/path/to/picture.png", tr("Open")),
            PathKind::ControlImage => (tr("Choose a control image"), "/path/to/control.png", tr("Use")),
            PathKind::Export => (tr("Export the picture"), "/path/to/picture.png", tr("Export")),
            PathKind::Document => (tr("Save the document"), "/path/to/picture.easel", tr("Save")),
        };
        let mut open = true;
        let mut cancel = false;
        egui::Window::new(title)
            .open(&mut open)
            .collapsible(false)
            .show(ctx, |ui| {
                let label = ui.label(tr(PATH_LABEL));
                let field = ui
                    .add(
                        egui::TextEdit::singleline(text)
                            .hint_text(hint)
                            .desired_width(360.0),
                    )
                    .labelled_by(label.id);
                let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                ui.horizontal(|ui| {
                    let typed = !text.trim().is_empty();
                    if ui.add_enabled(typed, egui::Button::new(action)).clicked() || (entered && typed) {
                        commands.push(Command::UsePath(*kind, typed_path(text)));
                    }
                    if ui.button(tr("Browse…")).clicked() {
                        commands.push(Command::Browse(*kind));
                    }
                    cancel = ui.button(tr("Cancel")).clicked();
                });
            });
        if !open || cancel {
            self.path = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::typed_path;

    #[test]
    fn typed_paths_lose_quotes_spaces_and_file_urls() {
        assert_eq!(typed_path("  /a/b c/  "), PathBuf::from("/a/b c/"));
        assert_eq!(
            typed_path("\"/a/model folder\"\n"),
            PathBuf::from("/a/model folder")
        );
        assert_eq!(typed_path("'/a/x.png'"), PathBuf::from("/a/x.png"));
        assert_eq!(typed_path("file:///a/x.png"), PathBuf::from("/a/x.png"));
    }
}
