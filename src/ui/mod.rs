//! The desktop app (eframe/egui, wgpu renderer): prompt panel, canvas, model browser, gallery.
//! Knows nothing of tensors: it sends `Request`s to the engine and draws the events that come back.
//!
//! `app` is the shell (event and command handling, layout); `jobs` holds the job state and
//! `downloads` the model downloads; `panels` draw and queue `Command`s; `canvas` shows and edits the document; `io` is the disk thread.

mod app;
mod autosave;
mod canvas;
mod canvas_gpu;
mod civitai;
mod command;
mod downloads;
mod i18n;
mod io;
mod jobs;
mod only_masked;
mod output_name;
mod panels;
mod text;

use crate::config::{AppPaths, Settings};
pub use app::EaselApp;
pub use panels::{PATH_LABEL, SOURCE_LABEL};

/// Opens the window and runs until it is closed.
pub fn run(started: std::time::Instant) -> anyhow::Result<()> {
    let paths = AppPaths::platform();
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Easel")
            .with_app_id("easel")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([720.0, 480.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "easel",
        options,
        Box::new(move |cc| {
            // EASEL_SETTINGS=file.json starts from given settings (scripts, screenshots, benchmarks).
            let scripted = std::env::var_os("EASEL_SETTINGS").and_then(|path| {
                let text = std::fs::read_to_string(&path)
                    .inspect_err(|e| tracing::warn!("EASEL_SETTINGS: {e}"))
                    .ok()?;
                serde_json::from_str::<Settings>(&text)
                    .inspect_err(|e| tracing::warn!("EASEL_SETTINGS: {e}"))
                    .ok()
            });
            let (stored, warning) = Settings::load(&paths.settings_file());
            let settings = scripted.unwrap_or(stored);
            let mut app = EaselApp::new(&cc.egui_ctx, paths, settings)?;
            i18n::add_system_cjk_font(&cc.egui_ctx);
            app.set_start_time(started);
            if let Some(warning) = warning {
                tracing::warn!("{warning}");
                app.push_message(warning);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}
