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
mod found;
mod i18n;
mod io;
mod jobs;
mod only_masked;
mod output_name;
mod panels;
mod staging;
mod text;
mod watch;

use crate::config::{AppPaths, Settings};
pub use app::EaselApp;
pub use panels::{PATH_LABEL, SOURCE_LABEL};

/// The smallest window, in points: the tool bar's row, a canvas and both side panels at their
/// minimum widths still fit.
const MIN_WINDOW_PT: [f32; 2] = [720.0, 480.0];

/// "1000x700" as a window size in points, at least [`MIN_WINDOW_PT`]; `None` when unreadable.
fn parse_window_size(text: &str) -> Option<[f32; 2]> {
    let (w, h) = text.trim().split_once(['x', '×'])?;
    let w: f32 = w.trim().parse().ok()?;
    let h: f32 = h.trim().parse().ok()?;
    Some([w.max(MIN_WINDOW_PT[0]), h.max(MIN_WINDOW_PT[1])])
}

/// Opens the window and runs until it is closed.
pub fn run(started: std::time::Instant) -> anyhow::Result<()> {
    let paths = AppPaths::platform();
    // EASEL_WINDOW_SIZE=1000x700 opens the window at that size (screenshots of smaller windows).
    let size = std::env::var("EASEL_WINDOW_SIZE")
        .ok()
        .and_then(|text| parse_window_size(&text))
        .unwrap_or([1280.0, 800.0]);
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Easel")
            .with_app_id("easel")
            .with_inner_size(size)
            .with_min_inner_size(MIN_WINDOW_PT)
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

#[cfg(test)]
mod tests {
    use super::parse_window_size;

    #[test]
    fn window_sizes_read_as_width_x_height_within_the_minimum() {
        assert_eq!(parse_window_size("1000x700"), Some([1000.0, 700.0]));
        assert_eq!(parse_window_size(" 800 × 600 "), Some([800.0, 600.0]));
        assert_eq!(parse_window_size("300x200"), Some([720.0, 480.0]));
        assert_eq!(parse_window_size("wide"), None);
    }
}
