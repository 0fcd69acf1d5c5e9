//! The status bar (scoring progress with rate and ETA, the model and where it runs, the folders'
//! state, the message count), the log panel with every message of the session, and toasts.

use egui::{Align2, Color32, Ui};

use super::app::{App, Level, ModelStatus};

/// Seconds as `1:45` or `2:03:10`.
pub fn format_eta(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn level_color(level: Level, ui: &Ui) -> Color32 {
    match level {
        Level::Info => ui.visuals().text_color(),
        Level::Warning => ui.visuals().warn_fg_color,
        Level::Error => ui.visuals().error_fg_color,
    }
}

impl App {
    pub(super) fn status_bar_ui(&mut self, ui: &mut Ui) {
        egui::Panel::bottom("status-bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                self.scoring_status_ui(ui);
                ui.separator();
                self.model_status_ui(ui);
                ui.separator();
                self.folder_status_ui(ui);
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let problems = self.messages.iter().filter(|m| m.level != Level::Info).count();
                    let text = match (self.messages.len(), problems) {
                        (0, _) => "no messages".to_string(),
                        (n, 0) => format!("{n} messages"),
                        (n, p) => format!("{n} messages, {p} ⚠"),
                    };
                    let arrow = if self.log_open { "⏷" } else { "⏶" };
                    if ui.selectable_label(self.log_open, format!("{text} {arrow}")).clicked() {
                        self.log_open = !self.log_open;
                    }
                    ui.label(egui::RichText::new(format!("{} images", self.view.len())).weak());
                });
            });
        });
    }

    fn scoring_status_ui(&self, ui: &mut Ui) {
        let scored = self.view.scored;
        let total = self.view.len();
        match (&self.model, self.progress) {
            (ModelStatus::Ready { .. }, Some(p)) if p.done < p.total => {
                ui.spinner();
                let rate = p.images_per_sec;
                if scored < total {
                    // Counted on the view the user sees, not on the worker's queue (which holds
                    // the same image once per request that wants it).
                    let eta = if rate > 0.0 { (total - scored) as f64 / rate } else { f64::INFINITY };
                    ui.label(format!("Scoring {scored}/{total} · {rate:.1} img/s · ETA {}", format_eta(eta)));
                } else {
                    ui.label(format!("{scored}/{total} scored · scoring the rest of the library, {rate:.1} img/s"));
                }
            }
            (ModelStatus::Ready { .. }, _) => {
                ui.label(format!("{scored}/{total} scored"));
            }
            (ModelStatus::Loading(_), _) => {
                ui.spinner();
                ui.label("Loading the model…");
            }
            (ModelStatus::Missing, _) => {
                ui.label(egui::RichText::new("No model: scores are off").weak());
            }
            (ModelStatus::Failed { .. }, _) => {
                ui.label(egui::RichText::new("⚠ Model failed to load").color(ui.visuals().error_fg_color));
            }
        }
    }

    fn model_status_ui(&self, ui: &mut Ui) {
        match &self.model {
            ModelStatus::Ready { runs_on, note, .. } => {
                let label = ui.label(format!("ImageReward · {runs_on}"));
                if let Some(note) = note {
                    label.on_hover_text(format!("Not on the GPU: {note}"));
                }
            }
            ModelStatus::Loading(path) => {
                ui.label(egui::RichText::new(path.display().to_string()).weak());
            }
            ModelStatus::Failed { error, .. } => {
                ui.label(egui::RichText::new("see Settings").weak()).on_hover_text(error.as_str());
            }
            ModelStatus::Missing => {}
        }
    }

    fn folder_status_ui(&self, ui: &mut Ui) {
        if let Some((folder, (done, total))) = self.scans.iter().next() {
            ui.spinner();
            let name = super::file_label(folder);
            ui.label(format!("scanning {name} {done}/{total}"));
            return;
        }
        let gone = self.folders.iter().filter(|f| !f.present).count();
        let text = match (self.folders.len(), gone) {
            (0, _) => "no folders".to_string(),
            (1, 0) => "watching 1 folder".to_string(),
            (n, 0) => format!("watching {n} folders"),
            (n, g) => format!("watching {} of {n} folders · ⚠ {g} gone", n - g),
        };
        ui.label(text);
    }

    pub(super) fn log_panel_ui(&mut self, ui: &mut Ui) {
        egui::Panel::bottom("log-panel").resizable(true).default_size(160.0).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("Messages of this session");
                if ui.button("Clear").clicked() {
                    self.messages.clear();
                }
            });
            egui::ScrollArea::vertical().stick_to_bottom(true).auto_shrink([false, false]).show(ui, |ui| {
                if self.messages.is_empty() {
                    ui.label(
                        egui::RichText::new("Nothing to report: every file read and scored so far went fine.").weak(),
                    );
                }
                for message in &self.messages {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(egui::RichText::new(&message.clock).monospace().weak());
                        ui.label(egui::RichText::new(&message.text).color(level_color(message.level, ui)));
                    });
                }
            });
        });
    }

    pub(super) fn toasts_ui(&self, ctx: &egui::Context) {
        let fresh: Vec<_> = self
            .messages
            .iter()
            .rev()
            .filter(|m| m.at.is_some_and(|at| at.elapsed().as_secs_f32() < super::app::TOAST_SECS))
            .take(3)
            .collect();
        if fresh.is_empty() {
            return;
        }
        egui::Area::new(egui::Id::unique("toasts"))
            .anchor(Align2::RIGHT_BOTTOM, egui::vec2(-12.0, -40.0))
            .interactable(false)
            .show(ctx, |ui| {
                for message in fresh.iter().rev() {
                    egui::Frame::popup(ui.style()).show(ui, |ui| {
                        ui.set_max_width(420.0);
                        let icon = match message.level {
                            Level::Info => "ℹ",
                            Level::Warning | Level::Error => "⚠",
                        };
                        ui.label(
                            egui::RichText::new(format!("{icon} {}", message.text))
                                .color(level_color(message.level, ui)),
                        );
                    });
                }
            });
        ctx.request_repaint_after(std::time::Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etas_read_as_clock_times() {
        assert_eq!(format_eta(105.0), "1:45");
        assert_eq!(format_eta(7390.0), "2:03:10");
        assert_eq!(format_eta(f64::INFINITY), "–");
    }
}
