//! The sidebar: the library's quick filters with counts, the watched folders with their state
//! (and removal, which never touches files), the prompt groups, and the checkpoints.

use egui::Ui;

use crate::library::views::ScoreStatus;

use super::app::{App, Command, Screen};
use super::jobs::DialogPurpose;
use super::textures::TextureKey;

impl App {
    pub(super) fn sidebar_ui(&mut self, ui: &mut Ui) {
        egui::Panel::left("sidebar").resizable(true).default_size(250.0).show(ui, |ui| {
            egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
                self.library_section_ui(ui);
                ui.add_space(8.0);
                self.folders_section_ui(ui);
                ui.add_space(8.0);
                self.groups_section_ui(ui);
                ui.add_space(8.0);
                self.checkpoints_section_ui(ui);
            });
        });
    }

    fn library_section_ui(&mut self, ui: &mut Ui) {
        ui.label(egui::RichText::new("LIBRARY").small().strong().weak());
        let filter = &self.query.filter;
        let all = filter.status.is_none() && !filter.favorites && filter.prompt_group.is_none();
        let entries = [
            ("All images", all, None, false),
            ("♥ Favorites", filter.favorites, None, true),
            ("Unscored", filter.status == Some(ScoreStatus::Unscored), Some(ScoreStatus::Unscored), false),
            ("Failed", filter.status == Some(ScoreStatus::Failed), Some(ScoreStatus::Failed), false),
        ];
        for (label, on, status, favorites) in entries {
            let text = if on { format!("{label}  ({})", self.view.len()) } else { label.to_string() };
            if ui.selectable_label(on, text).clicked() {
                self.query.filter.status = status;
                self.query.filter.favorites = favorites;
                self.query.filter.prompt_group = None;
                self.screen = Screen::Grid;
                self.commands.push(Command::RefreshView);
            }
        }
    }

    fn folders_section_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label(egui::RichText::new("FOLDERS").small().strong().weak());
            if ui.small_button("+").on_hover_text("Add a folder…").clicked() {
                self.commands.push(Command::PickFolder(DialogPurpose::AddFolder));
            }
        });
        if self.folders.is_empty() {
            ui.label(egui::RichText::new("None yet: drop a folder on the window.").weak());
        }
        let folders = self.folders.clone();
        for folder in folders {
            let name = super::file_label(&folder.path);
            let (state, hint) = if let Some((done, total)) = self.scans.get(&folder.path) {
                (format!("↻ {done}/{total}"), "scanning")
            } else if !folder.present {
                ("⚠ gone".to_string(), "the folder is gone (unplugged drive?); its images return with it")
            } else if folder.watching {
                ("•".to_string(), "watching for new images")
            } else {
                ("○".to_string(), "present but not watched (see the log)")
            };
            ui.horizontal(|ui| {
                ui.label(state).on_hover_text(hint);
                ui.label(name).on_hover_text(folder.path.display().to_string());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let remove =
                        ui.small_button("✖").on_hover_text("Remove from the library (the files stay where they are)");
                    remove.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, format!("Remove {}", folder.path.display()))
                    });
                    if remove.clicked() {
                        self.commands.push(Command::RemoveFolder(folder.path.clone()));
                    }
                });
            });
        }
    }

    fn groups_section_ui(&mut self, ui: &mut Ui) {
        ui.label(egui::RichText::new(format!("PROMPTS ({})", self.groups.len())).small().strong().weak());
        if self.groups.is_empty() {
            ui.label(egui::RichText::new("Images with a prompt in their metadata are grouped here.").weak());
            return;
        }
        let current = self.query.filter.prompt_group.clone();
        let groups = self.groups.iter().take(200).cloned().collect::<Vec<_>>();
        let side = self.thumb_side(ui.ctx().pixels_per_point());
        let bests: Vec<i64> =
            groups.iter().take(super::app::SIDEBAR_GROUP_THUMBS).filter_map(|g| g.best_image_id).rev().collect();
        self.want_thumbnails(&bests, side);
        for (index, group) in groups.into_iter().enumerate() {
            let mut title: String = group.prompt.chars().take(22).collect();
            if group.prompt.chars().count() > 22 {
                title.push('…');
            }
            let best = group.best_reward.map_or_else(|| "–".to_string(), |b| format!("{b:+.2}"));
            let on = current.as_deref() == Some(group.group_key.as_str());
            let best_hash = group
                .best_image_id
                .filter(|_| index < super::app::SIDEBAR_GROUP_THUMBS)
                .and_then(|id| self.row(id))
                .and_then(|r| r.content_hash.clone());
            let texture = best_hash.and_then(|h| self.textures.get(&TextureKey::Thumb(h, side)));
            let response = ui
                .horizontal(|ui| {
                    // The group's best image, small; a blank square keeps the titles aligned.
                    let (rect, _) = ui.allocate_exact_size(egui::vec2(22.0, 22.0), egui::Sense::hover());
                    match &texture {
                        Some(t) => {
                            let size = t.size_vec2();
                            let scale = (rect.width() / size.x).min(rect.height() / size.y);
                            let shown = egui::Rect::from_center_size(rect.center(), size * scale);
                            let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                            ui.painter().image(t.id(), shown, uv, egui::Color32::WHITE);
                        }
                        None => {
                            ui.painter().rect_filled(rect, 3.0, ui.visuals().faint_bg_color);
                        }
                    }
                    let r = ui.selectable_label(on, title);
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        ui.label(egui::RichText::new(format!("{} · {best}", group.images)).weak().small());
                    });
                    r
                })
                .inner;
            let hover = format!(
                "{}\n\n{} images, {} scored · best {best} · mean {}",
                group.prompt,
                group.images,
                group.scored,
                group.mean_reward.map_or_else(|| "–".into(), |m| format!("{m:+.2}"))
            );
            let response = response.on_hover_text(hover);
            if response.clicked() {
                self.commands.push(Command::PromptGroup(if on { None } else { Some(group.group_key.clone()) }));
            }
        }
        if self.groups.len() > 200 {
            ui.label(egui::RichText::new(format!("… and {} more groups", self.groups.len() - 200)).weak());
        }
    }

    fn checkpoints_section_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.label(egui::RichText::new("CHECKPOINTS").small().strong().weak());
            if ui
                .small_button("Leaderboard")
                .on_hover_text("Mean reward with intervals, paired comparisons (L)")
                .clicked()
            {
                self.commands.push(Command::Show(Screen::Leaderboard));
            }
        });
        if self.leaderboard.checkpoints.is_empty() {
            ui.label(egui::RichText::new("Open the leaderboard to compare checkpoints.").weak());
        }
        for c in self.leaderboard.checkpoints.iter().take(12) {
            ui.horizontal(|ui| {
                ui.label(&c.checkpoint);
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let mean = c.mean_reward.map_or_else(|| "–".to_string(), |m| format!("{m:+.2}"));
                    ui.label(egui::RichText::new(mean).monospace());
                });
            });
        }
    }
}
