//! The app's windows and banners: the shortcut sheet (`?`), settings, the trash confirmation,
//! and the banner that explains how to get scores when no model is set or it failed.

use egui::Ui;

use crate::scoring::{DeviceKind, Precision};

use super::app::{App, Command, FetchState, ModelStatus};
use super::jobs::DialogPurpose;
use super::settings::Theme;
use crate::model::hub::human_bytes;

/// Every key, where it acts, and what it does: the `?` sheet.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("← → ↑ ↓", "move in the grid (⬅/➡ previous/next in the viewer); Shift extends the selection"),
    ("Home / End", "first / last image"),
    ("PageUp / PageDown", "a screen up / down"),
    ("Enter", "open the viewer"),
    ("Esc", "back to the grid · stop a rerank · leave a prompt group · clear the selection"),
    ("F", "favorite / unfavorite"),
    ("1 – 5, 0", "rate, clear the rating"),
    ("Delete", "move to the system trash (asks first)"),
    ("Ctrl+C", "copy the selected files"),
    ("Ctrl+Shift+C", "copy the prompt"),
    ("Ctrl+V", "rerank by the pasted prompt"),
    ("/", "focus the prompt filter"),
    ("R", "focus the rerank prompt box"),
    ("G", "the cursor image's prompt group (again: all images)"),
    ("I", "details panel / viewer info"),
    ("L", "checkpoint leaderboard"),
    ("E", "export the best or favorite images into a folder"),
    ("X", "cull: review the worst-ranked images, then trash them"),
    ("Ctrl+wheel, Ctrl + / −", "thumbnail size (zoom in the viewer)"),
    ("Ctrl+1, Ctrl+0", "viewer: 100 %, fit"),
    ("Click, Shift+click, Ctrl+click", "select, select a range, add to the selection"),
    ("?", "this sheet"),
];

impl App {
    pub(super) fn help_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.help_open;
        egui::Window::new("Keyboard shortcuts").open(&mut open).collapsible(false).resizable(false).show(ctx, |ui| {
            egui::Grid::new("keys").striped(true).num_columns(2).spacing(egui::vec2(16.0, 4.0)).show(ui, |ui| {
                for (key, what) in SHORTCUTS {
                    ui.label(egui::RichText::new(*key).monospace().strong());
                    ui.label(*what);
                    ui.end_row();
                }
            });
        });
        self.help_open = open;
    }

    pub(super) fn confirm_trash_ui(&mut self, ctx: &egui::Context) {
        let Some(items) = self.confirm_trash.clone() else { return };
        let modal = egui::Modal::new(egui::Id::unique("confirm-trash")).show(ctx, |ui| {
            ui.set_max_width(420.0);
            let what = match items.as_slice() {
                [one] => super::file_label(&one.path),
                many => format!("{} images", many.len()),
            };
            ui.heading(format!("Move {what} to the trash?"));
            ui.label("They go to the system trash, where you can restore them. Ratings and scores are kept.");
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                let yes = ui.button("Move to trash");
                yes.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, "Move to trash"));
                let cancel = ui.button("Cancel");
                // Enter confirms unless another button (Cancel) has the keyboard focus.
                let focus = ui.ctx().memory(|m| m.focused());
                let enter = ui.input(|i| i.key_pressed(egui::Key::Enter)) && focus.is_none_or(|id| id == yes.id);
                if yes.clicked() || enter {
                    self.commands.push(Command::Trash(items.clone()));
                }
                if cancel.clicked() {
                    self.confirm_trash = None;
                }
            });
        });
        if modal.should_close() {
            self.confirm_trash = None;
        }
    }

    /// The banner above the grid when there are no scores to be had, saying how to get them: a
    /// model found on disk is used without a question; otherwise one click downloads it, with
    /// progress, cancel and resume.
    pub(super) fn model_banner_ui(&mut self, ui: &mut Ui) {
        let can_download = self.backends.fetch.as_ref().is_some_and(|f| f.can_download());
        let (title, detail) = match (&self.model, &self.fetch) {
            (ModelStatus::Missing, FetchState::Locating) => (
                "Looking for the ImageReward model…".to_string(),
                "in ~/.cache/ImageReward and the Hugging Face cache".to_string(),
            ),
            (ModelStatus::Missing, FetchState::Downloading(_)) => (
                "Downloading the ImageReward model (1.8 GB) into the Hugging Face cache…".to_string(),
                "Browsing works meanwhile; scoring starts when it is verified.".to_string(),
            ),
            (ModelStatus::Missing, FetchState::Paused(p)) => (
                "Download paused.".to_string(),
                match p {
                    Some(p) => {
                        format!("{} of {} kept; Resume goes on from there.", human_bytes(p.done), human_bytes(p.total))
                    }
                    None => "What arrived is kept; Resume goes on from there.".to_string(),
                },
            ),
            (ModelStatus::Missing, FetchState::Failed(error)) => {
                ("The model download stopped.".to_string(), error.clone())
            }
            (ModelStatus::Missing, _) => (
                "Scores need the ImageReward model (1.8 GB).".to_string(),
                if can_download {
                    "None was found on this computer. Download it from huggingface.co/THUDM/ImageReward, or point RewardLens at a folder holding ImageReward.pt and med_config.json; browsing works meanwhile.".to_string()
                } else {
                    "Point RewardLens at a folder holding ImageReward.pt and med_config.json (from huggingface.co/THUDM/ImageReward); browsing works meanwhile.".to_string()
                },
            ),
            (ModelStatus::Failed { path, error }, _) => {
                (format!("The model at {} did not load.", path.display()), error.clone())
            }
            _ => return,
        };
        egui::Frame::group(ui.style()).fill(ui.visuals().faint_bg_color).show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label(egui::RichText::new("ℹ").size(18.0));
                ui.vertical(|ui| {
                    ui.strong(title);
                    let detail = ui.label(egui::RichText::new(detail).weak());
                    if let FetchState::NotFound(looked) = &self.fetch {
                        detail.on_hover_text(looked.as_str());
                    }
                });
            });
            if let (ModelStatus::Missing, FetchState::Downloading(progress)) = (&self.model, &self.fetch) {
                let (fraction, text) = match progress {
                    Some(p) if p.total > 0 => {
                        let eta = p.eta.map_or_else(String::new, |d| {
                            format!(" · {}:{:02} left", d.as_secs() / 60, d.as_secs() % 60)
                        });
                        let text = format!(
                            "{} of {} · {}/s{eta}",
                            human_bytes(p.done),
                            human_bytes(p.total),
                            human_bytes(p.rate as u64)
                        );
                        (p.done as f32 / p.total as f32, text)
                    }
                    _ => (0.0, "asking the hub…".to_string()),
                };
                ui.horizontal(|ui| {
                    ui.add(egui::ProgressBar::new(fraction).text(text).desired_width(420.0));
                    if ui.button("Cancel").on_hover_text("Stops; what arrived is kept for Resume").clicked() {
                        self.commands.push(Command::CancelDownload);
                    }
                });
                return;
            }
            ui.horizontal(|ui| {
                if matches!(self.model, ModelStatus::Missing) && can_download {
                    let label = match self.fetch {
                        FetchState::Paused(_) | FetchState::Failed(_) => "Resume download",
                        _ => "Download ImageReward (1.8 GB)",
                    };
                    if ui.button(label).clicked() {
                        self.commands.push(Command::DownloadModel);
                    }
                }
                if ui.button("Use model files on disk…").clicked() {
                    self.commands.push(Command::PickFolder(DialogPurpose::ModelFolder));
                }
                if ui.button("Settings").clicked() {
                    self.settings_open = true;
                }
                ui.label(egui::RichText::new("or run: rewardlens model download").weak().monospace());
            });
        });
        ui.add_space(4.0);
    }

    pub(super) fn settings_window_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.settings_open;
        let mut apply_model = false;
        let mut theme_changed = false;
        egui::Window::new("Settings").open(&mut open).resizable(false).show(ctx, |ui| {
            ui.heading("Model");
            ui.horizontal(|ui| {
                ui.label("Folder");
                let edit = ui.add(
                    egui::TextEdit::singleline(&mut self.model_input)
                        .desired_width(300.0)
                        .hint_text("/path/to/ImageReward"),
                );
                super::name_text_edit(&edit, "Model folder");
                if ui.button("Browse…").clicked() {
                    self.commands.push(Command::PickFolder(DialogPurpose::ModelFolder));
                }
            });
            egui::Grid::new("model-settings").num_columns(2).show(ui, |ui| {
                ui.label("Device");
                let device = egui::ComboBox::from_id_salt("device")
                    .selected_text(self.settings.device.to_string())
                    .show_ui(ui, |ui| {
                        for d in [DeviceKind::Auto, DeviceKind::Cpu, DeviceKind::Cuda, DeviceKind::Metal] {
                            ui.selectable_value(&mut self.settings.device, d, d.to_string());
                        }
                    });
                super::name_combo(&device.response, "Device");
                ui.end_row();
                ui.label("Precision");
                let dtype = self.settings.dtype.map_or_else(|| "auto".to_string(), |d| d.to_string());
                let dtype = egui::ComboBox::from_id_salt("dtype").selected_text(dtype).show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.settings.dtype, None, "auto");
                    for p in [Precision::F32, Precision::F16, Precision::Bf16] {
                        ui.selectable_value(&mut self.settings.dtype, Some(p), p.to_string());
                    }
                });
                super::name_combo(&dtype.response, "Precision");
                ui.end_row();
                ui.label("Batch");
                let mut auto = self.settings.batch.is_none();
                ui.horizontal(|ui| {
                    if ui.checkbox(&mut auto, "auto").changed() {
                        self.settings.batch = if auto { None } else { Some(8) };
                    }
                    if let Some(batch) = &mut self.settings.batch {
                        ui.add(egui::DragValue::new(batch).range(1..=512));
                    }
                });
                ui.end_row();
            });
            if ui
                .button("Apply model settings")
                .on_hover_text("Loads the model; scoring starts over where needed")
                .clicked()
            {
                apply_model = true;
            }
            ui.separator();
            ui.heading("Caches");
            egui::Grid::new("cache-settings").num_columns(2).show(ui, |ui| {
                ui.label("Thumbnails on disk (MiB, next start)");
                ui.add(egui::DragValue::new(&mut self.settings.thumb_cache_mib).range(64..=65536));
                ui.end_row();
                ui.label("Image embeddings on disk (GiB)");
                ui.add(egui::DragValue::new(&mut self.settings.embedding_cache_gib).range(0.0..=256.0).speed(0.25));
                ui.end_row();
                ui.label("Thumbnails in memory (MiB)");
                if ui.add(egui::DragValue::new(&mut self.settings.texture_cache_mib).range(32..=4096)).changed() {
                    self.textures.set_cap(self.settings.texture_cache_mib as usize * 1024 * 1024);
                }
                ui.end_row();
            });
            ui.separator();
            ui.heading("Appearance");
            ui.horizontal(|ui| {
                ui.label("Theme");
                for (t, name) in [(Theme::Dark, "Dark"), (Theme::Light, "Light"), (Theme::System, "System")] {
                    theme_changed |= ui.selectable_value(&mut self.settings.theme, t, name).changed();
                }
            });
            ui.horizontal(|ui| {
                ui.label("Thumbnail size");
                ui.add(egui::Slider::new(&mut self.settings.thumb_px, super::settings::THUMB_RANGE));
            });
        });
        self.settings_open = open;
        if theme_changed {
            self.apply_theme(ctx);
        }
        if apply_model {
            let text = self.model_input.trim();
            self.settings.model_dir = (!text.is_empty()).then(|| std::path::PathBuf::from(text));
            self.commands.push(Command::ApplyModel);
        }
    }
}
