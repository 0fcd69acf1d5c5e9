//! The details panel (`I`) and the viewer's info column: the image's generation parameters with
//! copy buttons, its rewards (own prompt, and the rerank prompt when set) with percentile, and its
//! rating and favorite.

use egui::Ui;

use super::app::{App, Command};
use super::grid::{file_name, top_percent};
use super::textures::TextureKey;

impl App {
    pub(super) fn details_ui(&mut self, ui: &mut Ui) {
        egui::Panel::right("details").resizable(true).default_size(300.0).show(ui, |ui| {
            egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
                self.details_contents_ui(ui, true);
            });
        });
    }

    /// The details of the image at the cursor; `preview` draws its thumbnail on top.
    pub(super) fn details_contents_ui(&mut self, ui: &mut Ui, preview: bool) {
        let Some(entry) = self.view.entries.get(self.cursor).copied() else {
            ui.label(egui::RichText::new("Select an image to see its details.").weak());
            return;
        };
        let Some(row) = self.row(entry.image_id).cloned() else {
            ui.spinner();
            return;
        };
        if preview && let Some(hash) = &row.content_hash {
            let side = self.thumb_side(ui.ctx().pixels_per_point());
            if let Some(texture) = self.textures.get(&TextureKey::Thumb(hash.clone(), side)) {
                let width = ui.available_width().min(280.0);
                let size = texture.size_vec2();
                let scale = (width / size.x).min(220.0 / size.y);
                ui.vertical_centered(|ui| ui.image((texture.id(), size * scale)));
            }
        }
        ui.strong(file_name(&row));
        ui.label(egui::RichText::new(row.path.display().to_string()).small().weak());
        if row.missing {
            ui.colored_label(ui.visuals().warn_fg_color, "⚠ the file is missing");
        }
        if let Some(error) = &row.error {
            ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ {error}"));
        }
        ui.separator();

        // Rewards.
        // A cull review's own percentiles would call its worst images "top".
        let percentile = if self.cull.review.is_some() {
            String::new()
        } else {
            entry.percentile.map(top_percent).unwrap_or_default()
        };
        match (self.query.reward_prompt(), entry.reward) {
            (Some(prompt), reward) => {
                let shown = reward.map_or_else(|| "not scored yet".to_string(), |r| format!("{r:+.3}  {percentile}"));
                ui.label(format!("Reward (rerank prompt): {shown}")).on_hover_text(format!("against “{prompt}”"));
                let own = self.own_rewards.get(&entry.image_id);
                ui.label(format!(
                    "Reward (own prompt): {}",
                    own.map_or_else(|| "–".to_string(), |r| format!("{r:+.3}"))
                ));
            }
            (None, Some(reward)) => {
                ui.label(egui::RichText::new(format!("Reward {reward:+.3}  {percentile}")).strong());
                ui.label(egui::RichText::new("against its own prompt").small().weak());
            }
            (None, None) => {
                ui.label(egui::RichText::new("No reward yet").weak());
            }
        }
        if row.truncated == Some(true) {
            ui.colored_label(ui.visuals().warn_fg_color, "35+: the model read only the first 35 tokens of the prompt");
        }

        // Rating and favorite.
        ui.horizontal(|ui| {
            ui.label("Rating");
            for n in 1..=5u8 {
                let filled = row.rating.is_some_and(|r| r >= n);
                let b = ui.selectable_label(filled, if filled { "★" } else { "☆" }).on_hover_text(format!("{n} ({n})"));
                b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("Rate {n}")));
                if b.clicked() {
                    self.commands.push(Command::Rate(Some(n)));
                }
            }
            if row.rating.is_some() && ui.small_button("clear").on_hover_text("0").clicked() {
                self.commands.push(Command::Rate(None));
            }
        });
        let star = if row.favorite { "♥ Favorite" } else { "♡ Favorite" };
        if ui.selectable_label(row.favorite, star).on_hover_text("F").clicked() {
            self.commands.push(Command::ToggleFavorite);
        }
        ui.separator();

        // Generation parameters.
        let params = self.params.as_ref().filter(|(id, _)| *id == entry.image_id).map(|(_, p)| p.clone());
        match params {
            None => {
                ui.spinner();
            }
            Some(None) => {
                ui.label(egui::RichText::new("No generation metadata in this file.").weak());
            }
            Some(Some(params)) => {
                let ctx = ui.ctx().clone();
                let text_field = |ui: &mut Ui, name: &str, value: Option<String>| {
                    let Some(value) = value.filter(|v| !v.is_empty()) else { return };
                    ui.horizontal(|ui| {
                        ui.strong(name);
                        let copy = ui.small_button("copy");
                        copy.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::Button, true, format!("Copy {name}"))
                        });
                        if copy.clicked() {
                            ctx.copy_text(value.clone());
                        }
                    });
                    ui.add(egui::Label::new(value).wrap().selectable(true));
                    ui.add_space(4.0);
                };
                text_field(ui, "Prompt", params.prompt.clone());
                if let Some(prompt) = params.prompt.as_deref().filter(|p| !p.trim().is_empty())
                    && super::prompt_bar::prompt_chip_ui(ui, egui::Id::unique(("prompt-chip", entry.image_id)), prompt)
                {
                    self.commands.push(Command::Rerank(prompt.to_string()));
                }
                text_field(ui, "Negative", params.negative_prompt.clone());
                egui::Grid::new("params").num_columns(2).striped(true).show(ui, |ui| {
                    let mut line = |name: &str, value: Option<String>| {
                        if let Some(value) = value {
                            ui.label(egui::RichText::new(name).weak());
                            ui.label(value);
                            ui.end_row();
                        }
                    };
                    line("Generator", params.generator.clone());
                    line("Checkpoint", params.model.clone());
                    line("Seed", params.seed.map(|s| s.to_string()));
                    line("Sampler", params.sampler.clone());
                    line("Scheduler", params.scheduler.clone());
                    line("Steps", params.steps.map(|s| s.to_string()));
                    line("CFG", params.cfg.map(|c| format!("{c}")));
                    let size = params.width.zip(params.height).or(row.width.zip(row.height));
                    line("Size", size.map(|(w, h)| format!("{w}×{h}")));
                });
                if !params.raw.is_empty() {
                    let copy = ui.small_button("Copy all parameters");
                    copy.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, "Copy all parameters"));
                    if copy.on_hover_text("The metadata text exactly as the generator wrote it").clicked() {
                        ui.ctx().copy_text(params.raw.clone());
                    }
                }
            }
        }
    }
}
