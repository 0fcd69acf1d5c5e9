//! Culling in the app: choose "reward below X" or "the bottom P % of this view", review exactly
//! those images in the grid (worst first, with their count), then move them all to the system
//! trash in one step. Favorites and rated images stay out unless asked for.

use egui::Ui;

use crate::library::views::{ScoreStatus, ViewOrder, ViewQuery};

use super::app::{App, Command, Level};

/// The rule chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CullKind {
    /// Reward strictly below a value.
    Below,
    /// The worst P percent of the view's scored images.
    BottomPercent,
}

/// A review under way: the grid shows the images the rule takes.
#[derive(Debug, Clone)]
pub struct CullReview {
    /// The view to go back to.
    pub before: ViewQuery,
    /// The rule, in words.
    pub rule: String,
}

/// The dialog's choices, kept between openings.
#[derive(Debug, Clone)]
pub struct CullDialog {
    /// Whether the window is shown.
    pub open: bool,
    /// Which rule.
    pub kind: CullKind,
    /// X for [`CullKind::Below`].
    pub below: f64,
    /// P for [`CullKind::BottomPercent`].
    pub percent: f64,
    /// Take favorites too.
    pub include_favorites: bool,
    /// Take rated images too.
    pub include_rated: bool,
    /// The review shown, if any.
    pub review: Option<CullReview>,
}

impl Default for CullDialog {
    fn default() -> Self {
        Self {
            open: false,
            kind: CullKind::BottomPercent,
            below: -1.0,
            percent: 10.0,
            include_favorites: false,
            include_rated: false,
            review: None,
        }
    }
}

/// The highest reward the worst `percent` of `rewards` reach, a hair above it so the f32 copy
/// the view holds never cuts off the image itself.
pub fn bottom_percent_bound(rewards: &mut [f32], percent: f64) -> Option<f64> {
    if rewards.is_empty() {
        return None;
    }
    rewards.sort_by(f32::total_cmp);
    let take = crate::library::views::share_of(rewards.len(), percent).max(1);
    let bound = f64::from(rewards[take - 1]);
    Some(bound + 1e-6 * bound.abs().max(1.0))
}

impl App {
    /// The cull window.
    pub(super) fn cull_window_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.cull.open;
        let scored = self.view.scored;
        egui::Window::new("Cull low scorers")
            .open(&mut open)
            .pivot(egui::Align2::CENTER_TOP)
            .default_pos(ctx.content_rect().center_top() + egui::vec2(0.0, 90.0))
            .resizable(false)
            .show(ctx, |ui| {
                ui.set_max_width(420.0);
                let d = &mut self.cull;
                ui.horizontal(|ui| {
                    ui.radio_value(&mut d.kind, CullKind::BottomPercent, "The worst");
                    ui.add(egui::DragValue::new(&mut d.percent).range(0.1..=100.0).speed(0.5).suffix(" %"));
                    ui.label(format!("of this view's {scored} scored images"));
                });
                ui.horizontal(|ui| {
                    ui.radio_value(&mut d.kind, CullKind::Below, "Reward below");
                    ui.add(egui::DragValue::new(&mut d.below).speed(0.05).fixed_decimals(2));
                });
                ui.checkbox(&mut d.include_favorites, "Include favorites");
                ui.checkbox(&mut d.include_rated, "Include rated images");
                ui.label(
                egui::RichText::new(
                    "Review shows exactly these images in the grid, worst first; nothing moves until you say so, and \
                     then only to the system trash.",
                )
                .weak(),
            );
                // Enter reviews, as a dialog's default button would (unless a number is being typed).
                let enter = !ui.ctx().egui_wants_keyboard_input() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                let review = ui.add_enabled(scored > 0, egui::Button::new("Review (Enter)"));
                review.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, scored > 0, "Review"));
                if review.clicked() || (enter && scored > 0) {
                    self.commands.push(Command::CullReview);
                }
                if scored == 0 {
                    ui.label(egui::RichText::new("This view has no scores yet.").weak());
                }
            });
        self.cull.open = open;
    }

    /// Shows the images the dialog's rule takes, in place of the view (Cancel brings it back).
    pub(super) fn start_cull_review(&mut self) {
        let before = self.cull.review.as_ref().map_or_else(|| self.query.clone(), |r| r.before.clone());
        let d = &self.cull;
        let (bound, rule) = match d.kind {
            CullKind::Below => (Some(d.below.next_down()), format!("reward below {:+.2}", d.below)),
            CullKind::BottomPercent => {
                let mut rewards: Vec<f32> = self.view.entries.iter().filter_map(|e| e.reward).collect();
                (bottom_percent_bound(&mut rewards, d.percent), format!("the worst {} % of the view", d.percent))
            }
        };
        let Some(bound) = bound else {
            self.log(Level::Warning, "nothing to cull: this view has no scores");
            return;
        };
        let mut query = before.clone();
        query.filter.status = Some(ScoreStatus::Scored);
        query.filter.max_score = Some(before.filter.max_score.map_or(bound, |m| m.min(bound)));
        query.filter.not_favorites = !d.include_favorites;
        if !d.include_rated {
            query.filter.rated = Some(false);
        }
        if !matches!(query.order, ViewOrder::RewardFor(_)) {
            query.order = ViewOrder::Reward;
        }
        query.reverse = true;
        let mut kept = Vec::new();
        if !d.include_favorites {
            kept.push("favorites");
        }
        if !d.include_rated {
            kept.push("rated images");
        }
        let rule = if kept.is_empty() { rule } else { format!("{rule}, {} kept", kept.join(" and ")) };
        self.cull.review = Some(CullReview { before, rule });
        self.cull.open = false;
        self.query = query;
        self.selected.clear();
        self.commands.push(Command::RefreshView);
    }

    /// Leaves the review: the view as it was.
    pub(super) fn end_cull_review(&mut self) {
        if let Some(review) = self.cull.review.take() {
            self.query = review.before;
            self.selected.clear();
            self.commands.push(Command::RefreshView);
        }
    }

    /// The header of a review: what is shown, how many, and the one step that trashes them.
    pub(super) fn cull_header_ui(&mut self, ui: &mut Ui) {
        let Some(review) = &self.cull.review else { return };
        let n = self.view.len();
        let rule = review.rule.clone();
        egui::Frame::group(ui.style()).fill(ui.visuals().faint_bg_color).show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.strong("Cull review");
                ui.label(format!("· {n} images · {rule} · worst first"));
            });
            ui.horizontal(|ui| {
                let label = format!("Move {n} to the trash…");
                if ui.add_enabled(n > 0 && self.view_settled(), egui::Button::new(label)).clicked() {
                    self.selected = self.view.entries.iter().map(|e| e.image_id).collect();
                    self.commands.push(Command::AskTrash);
                }
                if ui.button("Change…").clicked() {
                    self.cull.open = true;
                }
                if ui.button(if n == 0 { "Done" } else { "Cancel" }).on_hover_text("Back to the view (Esc)").clicked() {
                    self.commands.push(Command::EndCullReview);
                }
            });
        });
        ui.add_space(4.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_takes_the_worst_share_rounded_up_and_keeps_the_last_one_in() {
        let mut r = vec![0.5, -1.0, 2.0, 0.1, -0.3, 1.2, 0.9, -2.0, 0.0, 0.4];
        let b = bottom_percent_bound(&mut r, 30.0).unwrap();
        assert!((-0.3..0.0).contains(&b), "{b}");
        let b = bottom_percent_bound(&mut r, 1.0).unwrap();
        assert!((-2.0..-1.0).contains(&b), "{b}");
        assert!(bottom_percent_bound(&mut [], 10.0).is_none());
    }
}
