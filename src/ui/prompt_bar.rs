//! The top bar: the rerank prompt box (type and Enter, paste, middle-click paste, drop a `.txt`
//! or an image on it), the sort, the filters (prompt text, checkpoint, favorites, rated, score
//! range), the thumbnail size and a jump to a position.

use egui::{Key, Ui};

use crate::library::views::ScoreStatus;

use super::app::{App, Command, Screen};
use super::jobs::{DialogPurpose, PromptSource};
use super::settings::{SortKey, THUMB_RANGE};

/// A prompt being dragged inside the app (from the details panel or a group header) onto the
/// rerank box: winit delivers no dropped text, so this is the in-app drag.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptChip(pub String);

/// A small chip that reranks by `prompt` when clicked or dragged onto the rerank box.
pub(super) fn prompt_chip_ui(ui: &mut Ui, id: egui::Id, prompt: &str) -> bool {
    let response = ui
        .dnd_drag_source(id, PromptChip(prompt.to_string()), |ui| {
            ui.add(egui::Label::new(egui::RichText::new("⤴ rerank by this").small()).sense(egui::Sense::click()))
        })
        .inner
        .on_hover_text("Click, or drag onto the rerank box, to rank the view by this prompt");
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, "Rerank by this prompt"));
    response.clicked()
}

/// A checkbox that turns a reward bound on (at 0) or off, and its value; whether it changed.
fn reward_bound_ui(ui: &mut Ui, label: &str, bound: &mut Option<f64>) -> bool {
    let mut on = bound.is_some();
    let mut changed = false;
    if ui.checkbox(&mut on, label).changed() {
        *bound = on.then_some(0.0);
        changed = true;
    }
    if let Some(value) = bound {
        changed |= ui.add(egui::DragValue::new(value).speed(0.05).range(-5.0..=5.0).fixed_decimals(2)).changed();
    }
    changed
}

impl App {
    pub(super) fn top_bar_ui(&mut self, ui: &mut Ui) {
        egui::Panel::top("top-bar").show(ui, |ui| {
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                ui.heading(egui::RichText::new("RewardLens").strong());
                ui.separator();
                self.prompt_box_ui(ui);
                ui.separator();
                self.sort_ui(ui);
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button("?").on_hover_text("Keyboard shortcuts (?)").clicked() {
                        self.help_open = !self.help_open;
                    }
                    if ui.button("⚙ Settings").clicked() {
                        self.settings_open = !self.settings_open;
                    }
                    if ui
                        .button("Cull…")
                        .on_hover_text("Send the worst-ranked images to the trash, after a review")
                        .clicked()
                    {
                        self.cull.open = !self.cull.open;
                    }
                    if ui
                        .button("Export…")
                        .on_hover_text("Copy or move the best or favorite images into a folder")
                        .clicked()
                    {
                        self.export.open = !self.export.open;
                    }
                    if ui.button("📂 Open folder…").on_hover_text("Add a folder to the library").clicked() {
                        self.commands.push(Command::PickFolder(DialogPurpose::AddFolder));
                    }
                });
            });
            ui.horizontal(|ui| self.filter_row_ui(ui));
            ui.add_space(2.0);
        });
    }

    fn prompt_box_ui(&mut self, ui: &mut Ui) {
        let reranking = self.rerank.is_some();
        let width = (ui.available_width() * 0.5).clamp(220.0, 640.0);
        let edit = egui::TextEdit::singleline(&mut self.prompt_input)
            .hint_text("Rerank by prompt… (type or paste; drop a .txt or an image here)")
            .desired_width(width);
        let response = ui.add(edit);
        super::name_text_edit(&response, "Rerank by prompt");
        self.prompt_box_rect = Some(response.rect);
        self.prompt_box_focused = response.has_focus();
        if std::mem::take(&mut self.focus_rerank) {
            response.request_focus();
        }
        let pasted = response.has_focus() && ui.input(|i| i.events.iter().any(|e| matches!(e, egui::Event::Paste(_))));
        let entered = response.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
        if entered || pasted {
            let text = self.prompt_input.clone();
            self.commands.push(if text.trim().is_empty() { Command::ClearRerank } else { Command::Rerank(text) });
        }
        if let Some(chip) = response.dnd_release_payload::<PromptChip>() {
            self.commands.push(Command::Rerank(chip.0.clone()));
        } else if response.dnd_hover_payload::<PromptChip>().is_some() {
            ui.painter().rect_stroke(
                response.rect.expand(2.0),
                4.0,
                egui::Stroke::new(2.0, ui.visuals().selection.stroke.color),
                egui::StrokeKind::Outside,
            );
        }
        if response.middle_clicked() {
            self.commands.push(Command::ReadPrompt(PromptSource::PrimarySelection));
        }
        if reranking || !self.prompt_input.is_empty() {
            let clear = ui.button("✖").on_hover_text("Back to each image's own prompt (Esc stops a rerank)");
            if clear.clicked() {
                self.commands.push(Command::ClearRerank);
            }
        }
        if self.rerank.is_some() {
            match self.rerank_progress() {
                Some((done, total)) => {
                    let fraction = done as f32 / total.max(1) as f32;
                    ui.add(
                        egui::ProgressBar::new(fraction)
                            .desired_width(170.0)
                            // Fully rounded, an empty bar's fill is a disc over the first letter.
                            .corner_radius(2.0)
                            .text(format!("reranking {done}/{total} · Esc stops")),
                    );
                }
                None => {
                    ui.label(egui::RichText::new("ranked by this prompt").weak());
                }
            }
        }
    }

    fn sort_ui(&mut self, ui: &mut Ui) {
        ui.label("Sort");
        let before = (self.settings.sort, self.settings.reverse);
        let sort = egui::ComboBox::from_id_salt("sort")
            .selected_text(self.settings.sort.label())
            .show_ui(ui, |ui| {
                for key in SortKey::ALL {
                    ui.selectable_value(&mut self.settings.sort, key, key.label());
                }
            })
            .response;
        super::name_combo(&sort, "Sort");
        let arrow = if self.settings.reverse { "⬆ reversed" } else { "⬇" };
        if ui.selectable_label(self.settings.reverse, arrow).on_hover_text("Reverse the order").clicked() {
            self.settings.reverse = !self.settings.reverse;
        }
        if before != (self.settings.sort, self.settings.reverse) {
            self.commands.push(Command::RefreshView);
        }
    }

    fn filter_row_ui(&mut self, ui: &mut Ui) {
        let mut changed = false;
        ui.label("Filter");
        let filter =
            egui::TextEdit::singleline(&mut self.filter_text).hint_text("prompt contains… (/)").desired_width(200.0);
        let response = ui.add(filter);
        super::name_text_edit(&response, "Filter by prompt");
        if std::mem::take(&mut self.focus_filter) {
            response.request_focus();
        }
        if response.changed() {
            changed = true;
        }
        let checkpoints: Vec<String> = self.leaderboard.checkpoints.iter().map(|c| c.checkpoint.clone()).collect();
        let current = self.query.filter.checkpoints.first().cloned();
        let label = current.clone().unwrap_or_else(|| "any checkpoint".into());
        let checkpoint_combo =
            egui::ComboBox::from_id_salt("checkpoint").selected_text(label).width(150.0).show_ui(ui, |ui| {
                if ui.selectable_label(current.is_none(), "any checkpoint").clicked() {
                    self.query.filter.checkpoints.clear();
                    changed = true;
                }
                for name in checkpoints {
                    if ui.selectable_label(current.as_ref() == Some(&name), &name).clicked() {
                        self.query.filter.checkpoints = vec![name];
                        changed = true;
                    }
                }
            });
        super::name_combo(&checkpoint_combo.response, "Checkpoint");
        changed |= ui.toggle_value(&mut self.query.filter.favorites, "♥ favorites").changed();
        let rated_label = match self.query.filter.rated {
            None => "rated or not",
            Some(true) => "rated",
            Some(false) => "unrated",
        };
        let rated_combo = egui::ComboBox::from_id_salt("rated").selected_text(rated_label).show_ui(ui, |ui| {
            for (value, text) in [(None, "rated or not"), (Some(true), "rated"), (Some(false), "unrated")] {
                if ui.selectable_label(self.query.filter.rated == value, text).clicked() {
                    self.query.filter.rated = value;
                    changed = true;
                }
            }
        });
        super::name_combo(&rated_combo.response, "Rated");
        let status_label = match self.query.filter.status {
            None => "any status",
            Some(ScoreStatus::Scored) => "scored",
            Some(ScoreStatus::Unscored) => "unscored",
            Some(ScoreStatus::Failed) => "failed",
        };
        let status_combo = egui::ComboBox::from_id_salt("status").selected_text(status_label).show_ui(ui, |ui| {
            for (value, text) in [
                (None, "any status"),
                (Some(ScoreStatus::Scored), "scored"),
                (Some(ScoreStatus::Unscored), "unscored"),
                (Some(ScoreStatus::Failed), "failed"),
            ] {
                if ui.selectable_label(self.query.filter.status == value, text).clicked() {
                    self.query.filter.status = value;
                    changed = true;
                }
            }
        });
        super::name_combo(&status_combo.response, "Scoring status");
        changed |= reward_bound_ui(ui, "reward ≥", &mut self.query.filter.min_score);
        changed |= reward_bound_ui(ui, "≤", &mut self.query.filter.max_score);
        if changed {
            self.commands.push(Command::RefreshView);
        }
        ui.separator();
        ui.label("Size");
        let slider = egui::Slider::new(&mut self.settings.thumb_px, THUMB_RANGE).show_value(false);
        ui.add_sized([90.0, 18.0], slider).on_hover_text("Thumbnail size (Ctrl+wheel, Ctrl+ +/−)");
        ui.separator();
        ui.label("Go to #");
        let jump = egui::TextEdit::singleline(&mut self.jump_input).desired_width(56.0).hint_text("1500");
        let response = ui.add(jump);
        super::name_text_edit(&response, "Go to position");
        if response.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
            if let Ok(position) = self.jump_input.trim().replace([',', '_'], "").parse::<usize>() {
                let index = position.saturating_sub(1);
                self.commands.push(Command::MoveCursor { index, extend: false, toggle: false });
                self.commands.push(Command::Show(Screen::Grid));
            }
            self.jump_input.clear();
        }
        ui.label(egui::RichText::new(format!("of {}", self.view.len())).weak());
    }
}
