//! The desktop app (eframe/egui): a grid of the library ranked by reward, prompt groups, a
//! checkpoint leaderboard, reranking by a prompt, and a viewer, all keyboard-driven. The UI thread
//! only draws and sends messages: the library, the watcher, the model, thumbnails, full-size
//! decodes and file errands each run on their own named thread and wake the UI when they answer.

pub mod app;
pub mod backends;
pub mod bench;
mod cull_dialog;
mod details;
mod dialogs;
mod export_dialog;
pub mod full_images;
mod grid;
pub mod jobs;
mod leaderboard;
pub mod model_fetch;
mod prompt_bar;
pub mod settings;
mod sidebar;
mod status_bar;
pub mod textures;
mod viewer;

pub use app::{App, Command, FetchState, Level, ModelStatus, Screen};
pub use backends::AppConfig;
pub use dialogs::SHORTCUTS;

/// A path's last part, for labels and messages (the whole path when it has none, as `/`).
pub(crate) fn file_label(path: &std::path::Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Gives a text field its accessible name (screen readers and kittest find it by this).
pub(crate) fn name_text_edit(response: &egui::Response, name: &str) {
    response.widget_info(|| egui::WidgetInfo {
        label: Some(name.to_string()),
        ..egui::WidgetInfo::new(egui::Role::TextInput)
    });
}

/// Gives a drop-down its accessible name.
pub(crate) fn name_combo(response: &egui::Response, name: &str) {
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, name));
}

/// Opens the window and runs the app until it is closed.
pub fn run(config: AppConfig) -> anyhow::Result<()> {
    // Only the window's place is read here; App::new loads (and reports a damaged file) for real.
    let saved = config.settings_path.as_deref().and_then(settings::peek).unwrap_or_default();
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("RewardLens")
        .with_app_id("rewardlens")
        .with_min_inner_size([640.0, 420.0])
        .with_drag_and_drop(true);
    viewport = match saved.window {
        Some(w) if w.width >= 320.0 && w.height >= 240.0 => {
            viewport.with_inner_size([w.width, w.height]).with_position([w.x, w.y])
        }
        _ => viewport.with_inner_size([1360.0, 860.0]),
    };
    let mut options = eframe::NativeOptions { viewport, ..Default::default() };
    if config.bench.is_some() {
        // The benchmark measures what a frame costs, not how long the swap chain waits for a refresh.
        options.wgpu_options.surface.present_mode = eframe::egui_wgpu::wgpu::PresentMode::AutoNoVsync;
    }
    eframe::run_native(
        "RewardLens",
        options,
        Box::new(move |cc| {
            let app = App::new(cc, config)
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { format!("{e:#}").into() })?;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
