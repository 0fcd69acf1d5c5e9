//! The checkpoint leaderboard: each checkpoint's mean reward with its 95 % interval drawn to
//! scale, and the paired comparisons on the prompts two checkpoints share (the fair test: the same
//! prompts, so a checkpoint is not flattered by easy ones).

use egui::{Sense, Stroke, Ui, pos2, vec2};

use super::app::{App, Command, Screen};

impl App {
    pub(super) fn leaderboard_ui(&mut self, ui: &mut Ui) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button("⬅ Grid").on_hover_text("Back to the grid (Esc)").clicked() {
                    self.commands.push(Command::Show(Screen::Grid));
                }
                ui.heading("Checkpoint leaderboard");
            });
            ui.label(
                egui::RichText::new(
                    "Mean ImageReward of each checkpoint's images against their own prompts, with 95 % intervals.",
                )
                .weak(),
            );
            ui.add_space(6.0);
            let board = self.leaderboard.clone();
            if board.checkpoints.is_empty() {
                ui.add_space(40.0);
                ui.vertical_centered(|ui| {
                    ui.heading("No checkpoints to compare yet");
                    ui.label(
                        "Checkpoint names come from the images' generation metadata; scored images fill this table.",
                    );
                });
                return;
            }
            let (lo, hi) = board
                .checkpoints
                .iter()
                .filter_map(|c| c.ci95.or(c.mean_reward.map(|m| (m, m))))
                .fold((f64::MAX, f64::MIN), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)));
            let span = (hi - lo).max(1e-6);
            egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
                egui::Grid::new("leaderboard").striped(true).num_columns(7).spacing(vec2(14.0, 6.0)).show(ui, |ui| {
                    for h in ["#", "Checkpoint", "Images", "Prompts", "Scored", "Mean reward", "95 % interval"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for (rank, c) in board.checkpoints.iter().enumerate() {
                        ui.label(format!("{}", rank + 1));
                        ui.label(&c.checkpoint).on_hover_text(c.checkpoint_hash.clone().unwrap_or_default());
                        ui.label(c.images.to_string());
                        ui.label(c.prompts.to_string());
                        ui.label(c.scored.to_string());
                        ui.label(c.mean_reward.map_or_else(|| "–".into(), |m| format!("{m:+.3}")));
                        let (rect, _) = ui.allocate_exact_size(vec2(220.0, 16.0), Sense::hover());
                        let x = |v: f64| rect.left() + 4.0 + ((v - lo) / span) as f32 * (rect.width() - 8.0);
                        let painter = ui.painter_at(rect.expand(2.0));
                        let color = ui.visuals().selection.bg_fill;
                        if let Some((a, b)) = c.ci95 {
                            painter.line_segment(
                                [pos2(x(a), rect.center().y), pos2(x(b), rect.center().y)],
                                Stroke::new(3.0, color),
                            );
                        }
                        if let Some(m) = c.mean_reward {
                            painter.circle_filled(pos2(x(m), rect.center().y), 4.5, ui.visuals().strong_text_color());
                        }
                        ui.end_row();
                    }
                });
                ui.add_space(14.0);
                ui.heading("Paired comparisons on shared prompts");
                if board.comparisons.is_empty() {
                    ui.label(egui::RichText::new("No two checkpoints share a scored prompt yet.").weak());
                    return;
                }
                egui::Grid::new("comparisons").striped(true).num_columns(5).spacing(vec2(14.0, 6.0)).show(ui, |ui| {
                    for h in ["A vs B", "Shared prompts", "Mean difference (A − B)", "95 % interval", "A wins"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for cmp in &board.comparisons {
                        ui.label(format!("{} vs {}", cmp.a, cmp.b));
                        ui.label(cmp.shared_prompts.to_string());
                        ui.label(format!("{:+.3}", cmp.mean_difference));
                        ui.label(cmp.ci95.map_or_else(|| "–".into(), |(a, b)| format!("{a:+.3} … {b:+.3}")));
                        ui.label(format!("{:.0} %", cmp.a_wins * 100.0));
                        ui.end_row();
                    }
                });
            });
        });
    }
}
