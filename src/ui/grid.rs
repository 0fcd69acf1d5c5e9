//! The virtualised thumbnail grid: only the rows on screen are laid out (a 100,000-image view
//! costs what one screen does), rows and thumbnails are asked for a screen ahead, and each cell
//! shows the reward with its percentile in the view, favorite and rating marks, the 35-token cut,
//! and pending or failed scoring.

use egui::{Align2, Color32, FontId, Rect, Sense, Stroke, Ui, Vec2, pos2, vec2};

use crate::library::views::SlimRow;

use super::app::{App, Command, ModelStatus, Screen};
use super::textures::TextureKey;

/// Space between cells, points.
const GAP: f32 = 8.0;
/// Height of the text under a thumbnail, points.
const LABEL_H: f32 = 38.0;

/// The colour of a reward by its percentile in the view: green at the top, amber in the middle,
/// red at the bottom, so the eye finds the best without reading numbers.
pub fn percentile_color(percentile: f32) -> Color32 {
    let t = (percentile / 100.0).clamp(0.0, 1.0);
    let (low, mid, high) = ((214.0, 76.0, 66.0), (230.0, 178.0, 60.0), (70.0, 190.0, 100.0));
    let lerp = |a: (f32, f32, f32), b: (f32, f32, f32), t: f32| {
        Color32::from_rgb((a.0 + (b.0 - a.0) * t) as u8, (a.1 + (b.1 - a.1) * t) as u8, (a.2 + (b.2 - a.2) * t) as u8)
    };
    if t < 0.5 { lerp(low, mid, t * 2.0) } else { lerp(mid, high, (t - 0.5) * 2.0) }
}

/// "top 3 %" from a percentile (100 = best): people read this, not logits.
pub fn top_percent(percentile: f32) -> String {
    let top = (100.0 - percentile).max(0.0);
    if top < 1.0 { "top 1 %".to_string() } else { format!("top {:.0} %", top.ceil()) }
}

/// Rating stars, `★★★☆☆`.
pub fn rating_dots(rating: u8) -> String {
    let filled = usize::from(rating.min(5));
    format!("{}{}", "★".repeat(filled), "☆".repeat(5 - filled))
}

/// The file name of a row, for labels and accessibility names.
pub fn file_name(row: &SlimRow) -> String {
    super::file_label(&row.path)
}

impl App {
    /// The longest side of the thumbnails to ask for at the current cell size and screen scale.
    pub(super) fn thumb_side(&self, pixels_per_point: f32) -> u32 {
        if self.settings.thumb_px * pixels_per_point <= 256.0 { 256 } else { 512 }
    }

    /// The grid, with what fills it when empty.
    pub(super) fn grid_ui(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        if ui.ui_contains_pointer() {
            let (zoom, command) = ui.input(|i| (i.zoom_delta(), i.modifiers.command));
            if command && (zoom - 1.0).abs() > 1e-3 {
                self.commands.push(Command::ThumbSize(if zoom > 1.0 { 16.0 } else { -16.0 }));
            }
        }
        let n = self.view.len();
        let cell = self.settings.thumb_px;
        let width = ui.available_width().max(cell);
        let cols = (((width + GAP) / (cell + GAP)).floor() as usize).max(1);
        let row_h = cell + LABEL_H + GAP;
        let total_rows = n.div_ceil(cols);
        let viewport_h = ui.available_height().max(row_h);
        if cols != self.grid_columns {
            self.scroll_to_cursor = true;
        }
        self.grid_columns = cols;
        self.grid_rows_visible = ((viewport_h / row_h).floor() as usize).max(1);

        let scroll_id = ui.make_persistent_id("grid-scroll");
        let mut area = egui::ScrollArea::vertical().id_salt("grid-scroll").auto_shrink([false, false]);
        if std::mem::take(&mut self.scroll_to_cursor) && n > 0 {
            let offset = ui.data(|d| d.get_temp::<f32>(scroll_id).unwrap_or(0.0));
            let top = (self.cursor / cols) as f32 * row_h;
            let target = if top < offset {
                top
            } else if top + row_h > offset + viewport_h {
                top + row_h - viewport_h
            } else {
                offset
            };
            area = area.vertical_scroll_offset(target.max(0.0));
        }
        self.grid_max_offset = (total_rows as f32 * row_h - viewport_h).max(0.0);
        if let Some(offset) = self.bench.as_ref().and_then(|b| b.scroll_offset()) {
            area = area.vertical_scroll_offset(offset.min(self.grid_max_offset));
        }
        let side = self.thumb_side(ctx.pixels_per_point());
        let output = area.show_viewport(ui, |ui, viewport| {
            ui.set_height(total_rows as f32 * row_h);
            ui.set_width(width);
            // The viewport comes from last frame's offset: a view that shrank since may put it past
            // the end, so both ends are clamped.
            let last_row = ((viewport.max.y / row_h).ceil().max(0.0) as usize).min(total_rows);
            let first_row = ((viewport.min.y / row_h).floor().max(0.0) as usize).min(last_row);
            let origin = ui.max_rect().min;
            for r in first_row..last_row {
                for c in 0..cols {
                    let index = r * cols + c;
                    if index >= n {
                        break;
                    }
                    let min = origin + vec2(c as f32 * (cell + GAP), r as f32 * row_h);
                    let rect = Rect::from_min_size(min, vec2(cell, cell + LABEL_H));
                    self.cell_ui(ui, index, rect, side);
                }
            }
            let end = (last_row * cols).min(n);
            (first_row * cols).min(end)..end
        });
        ui.data_mut(|d| d.insert_temp(scroll_id, output.state.clamped_offset().y));
        let visible = output.inner;
        if visible != self.visible {
            self.visible = visible.clone();
        }
        // Rows and thumbnails a screen ahead and behind; what is on screen is asked for last, so
        // the thumbnailer (newest first) makes it first.
        let screen = visible.len().max(cols);
        let window = visible.start.saturating_sub(screen)..(visible.end + screen).min(n);
        self.want_rows(window.clone());
        let ids = |range: std::ops::Range<usize>| -> Vec<i64> {
            self.view.entries[range].iter().map(|e| e.image_id).collect()
        };
        let behind = ids(window.start..visible.start);
        let ahead: Vec<i64> = ids(visible.end..window.end).into_iter().rev().collect();
        let on_screen: Vec<i64> = ids(visible.clone()).into_iter().rev().collect();
        self.want_thumbnails(&behind, side);
        self.want_thumbnails(&ahead, side);
        self.want_thumbnails(&on_screen, side);
        self.score_visible();
    }

    fn cell_ui(&mut self, ui: &mut Ui, index: usize, rect: Rect, side: u32) {
        let Some(entry) = self.view.entries.get(index).copied() else { return };
        let row = self.rows.get(&entry.image_id).map(|(_, r)| r.clone());
        let id = ui.make_persistent_id(("cell", entry.image_id));
        let response = ui.interact(rect, id, Sense::click());
        let name = row.as_ref().map_or_else(|| format!("image {}", index + 1), file_name);
        let rank = match (entry.reward, entry.percentile) {
            (Some(reward), Some(percentile)) => format!("{reward:+.2} · {}", self.rank_text(index, percentile)),
            _ => "not scored".to_string(),
        };
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, format!("{name} · {rank}")));
        if response.clicked() {
            let mods = ui.input(|i| i.modifiers);
            self.commands.push(Command::MoveCursor { index, extend: mods.shift, toggle: mods.command });
        }
        if response.double_clicked() {
            self.commands.push(Command::MoveCursor { index, extend: false, toggle: false });
            self.commands.push(Command::Show(Screen::Viewer));
        }
        if !ui.is_rect_visible(rect) {
            return;
        }
        let visuals = ui.visuals().clone();
        let painter = ui.painter_at(rect.expand(2.0));
        let selected = self.selected.contains(&entry.image_id);
        let hovered = response.hovered();
        let bg = if selected {
            visuals.selection.bg_fill.gamma_multiply(0.35)
        } else if hovered {
            visuals.widgets.hovered.bg_fill
        } else {
            visuals.faint_bg_color
        };
        painter.rect_filled(rect, 6.0, bg);
        if index == self.cursor {
            painter.rect_stroke(rect, 6.0, Stroke::new(2.0, visuals.selection.stroke.color), egui::StrokeKind::Inside);
        } else if selected {
            painter.rect_stroke(rect, 6.0, Stroke::new(1.5, visuals.selection.bg_fill), egui::StrokeKind::Inside);
        }
        let image_rect = Rect::from_min_size(rect.min, vec2(rect.width(), rect.width())).shrink(4.0);
        let weak = visuals.weak_text_color();
        let small = FontId::proportional(11.5);
        let Some(row) = row else {
            painter.text(image_rect.center(), Align2::CENTER_CENTER, "loading…", small, weak);
            return;
        };
        let hash = row.content_hash.clone();
        let failed_thumb = hash.as_ref().and_then(|h| self.thumb_failures.get(h)).cloned();
        let scoring_failure = hash.as_ref().and_then(|h| self.scoring_failures.get(h)).cloned();
        let texture = hash.as_ref().and_then(|h| self.textures.get(&TextureKey::Thumb(h.clone(), side)));
        if let Some(texture) = texture {
            let size = texture.size_vec2();
            let scale = (image_rect.width() / size.x).min(image_rect.height() / size.y);
            let shown = Rect::from_center_size(image_rect.center(), size * scale);
            let tint = if row.missing { Color32::from_white_alpha(70) } else { Color32::WHITE };
            painter.image(texture.id(), shown, Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), tint);
        } else {
            let text = if row.missing {
                "file missing".to_string()
            } else if let Some(error) = row.error.as_ref().or(failed_thumb.as_ref()) {
                format!("⚠ unreadable\n{}", short_reason(error))
            } else {
                file_name(&row)
            };
            painter.text(image_rect.center(), Align2::CENTER_CENTER, text, small.clone(), weak);
        }
        if row.missing {
            painter.text(image_rect.left_top() + vec2(4.0, 4.0), Align2::LEFT_TOP, "missing", small.clone(), weak);
        }
        self.cell_label(&painter, &row, entry, index, rect, scoring_failure.as_deref());
        if hovered {
            let hover = cell_tooltip(&row, scoring_failure.as_deref().or(failed_thumb.as_deref()));
            response.on_hover_text_at_pointer(hover);
        }
    }

    /// "top 3 %", or "top 1 of N" for the best image of a prompt group ranked by reward.
    fn rank_text(&self, index: usize, percentile: f32) -> String {
        let in_group = self.query.filter.prompt_group.is_some() && self.query.reward_prompt().is_none();
        let by_reward = matches!(self.query.order, crate::library::views::ViewOrder::Reward) && !self.query.reverse;
        if self.cull.review.is_some() {
            format!("{} of {} worst", index + 1, self.view.len())
        } else if in_group && by_reward && index == 0 {
            format!("top 1 of {}", self.view.len())
        } else {
            top_percent(percentile)
        }
    }

    fn cell_label(
        &self,
        painter: &egui::Painter,
        row: &SlimRow,
        entry: crate::library::views::ViewEntry,
        index: usize,
        rect: Rect,
        failure: Option<&str>,
    ) {
        let visuals = painter.ctx().global_style().visuals.clone();
        let text_color = visuals.text_color();
        let weak = visuals.weak_text_color();
        let line1 = pos2(rect.left() + 6.0, rect.bottom() - LABEL_H + 3.0);
        let line2 = pos2(rect.left() + 6.0, rect.bottom() - LABEL_H / 2.0 + 1.0);
        let font = FontId::proportional(13.0);
        let small = FontId::proportional(11.5);
        match (entry.reward, entry.percentile) {
            (Some(reward), Some(percentile)) => {
                // A cull review lists the worst images: its own percentiles would call them "top".
                let color = percentile_color(if self.cull.review.is_some() { 0.0 } else { percentile });
                let badge_text = format!("{reward:+.2}");
                let galley = painter.layout_no_wrap(badge_text, FontId::monospace(13.0), Color32::BLACK);
                let badge = Rect::from_min_size(line1, galley.size() + vec2(8.0, 2.0));
                painter.rect_filled(badge, 4.0, color);
                painter.galley(badge.min + vec2(4.0, 1.0), galley, Color32::BLACK);
                let rank = self.rank_text(index, percentile);
                painter.text(
                    pos2(badge.right() + 6.0, line1.y + 1.0),
                    Align2::LEFT_TOP,
                    rank,
                    font.clone(),
                    text_color,
                );
            }
            _ => {
                let (text, color) = if let Some(failure) = failure {
                    (format!("⚠ {}", short_reason(failure)), visuals.warn_fg_color)
                } else if row.missing || row.error.is_some() {
                    ("not scored".to_string(), weak)
                } else {
                    match &self.model {
                        ModelStatus::Ready { .. } => ("⏳ scoring queued".to_string(), weak),
                        ModelStatus::Loading(_) => ("model loading…".to_string(), weak),
                        ModelStatus::Missing | ModelStatus::Failed { .. } => ("no score yet".to_string(), weak),
                    }
                };
                painter.text(line1 + vec2(0.0, 1.0), Align2::LEFT_TOP, text, small.clone(), color);
            }
        }
        let mut marks = String::new();
        if row.favorite {
            marks.push_str("♥ ");
        }
        if let Some(rating) = row.rating {
            marks.push_str(&rating_dots(rating));
            marks.push(' ');
        }
        painter.text(line2, Align2::LEFT_TOP, marks.trim_end(), small.clone(), Color32::from_rgb(240, 200, 80));
        if row.truncated == Some(true) {
            painter.text(pos2(rect.right() - 6.0, line2.y), Align2::RIGHT_TOP, "35+", small, visuals.warn_fg_color);
        }
    }

    /// The grid screen: the model banner, the group header, then the grid or its empty state.
    pub(super) fn grid_screen_ui(&mut self, ui: &mut Ui) {
        egui::CentralPanel::default().show(ui, |ui| {
            self.model_banner_ui(ui);
            self.cull_header_ui(ui);
            if let Some(key) = self.query.filter.prompt_group.clone() {
                self.group_header_ui(ui, &key);
            }
            if self.view.is_empty() {
                self.empty_state_ui(ui);
            } else {
                self.grid_ui(ui);
            }
        });
    }

    fn group_header_ui(&mut self, ui: &mut Ui, key: &str) {
        let group = self.groups.iter().find(|g| g.group_key == key).cloned();
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button("⬅ All images").on_hover_text("Back to the whole library (Esc)").clicked() {
                    self.commands.push(Command::PromptGroup(None));
                }
                ui.strong("Prompt group");
                if let Some(group) = &group {
                    ui.label(format!("· {} images", group.images));
                    if let Some(best) = group.best_reward {
                        ui.label(format!("· best {best:+.2}"));
                    }
                    if let Some(mean) = group.mean_reward {
                        ui.label(format!("· mean {mean:+.2}"));
                    }
                }
            });
            let prompt = group.as_ref().map_or(key, |g| g.prompt.as_str()).to_string();
            ui.add(egui::Label::new(egui::RichText::new(&prompt).italics()).wrap());
            if super::prompt_bar::prompt_chip_ui(ui, egui::Id::unique(("group-chip", key)), &prompt) {
                self.commands.push(Command::Rerank(prompt.clone()));
            }
            if let Some(group) = &group {
                self.reward_strip_ui(ui, group);
            }
        });
        ui.add_space(4.0);
    }

    /// A strip chart of the group's rewards: one tick per scored image on the view's scale.
    fn reward_strip_ui(&self, ui: &mut Ui, _group: &crate::library::groups::PromptGroup) {
        let rewards: Vec<f32> = self.view.entries.iter().filter_map(|e| e.reward).collect();
        if rewards.len() < 2 {
            return;
        }
        let (lo, hi) = rewards.iter().fold((f32::MAX, f32::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let (rect, _) = ui.allocate_exact_size(vec2(ui.available_width().min(480.0), 18.0), Sense::hover());
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 3.0, ui.visuals().extreme_bg_color);
        let span = (hi - lo).max(1e-6);
        for (i, r) in self.view.entries.iter().filter_map(|e| e.reward.zip(e.percentile)).enumerate() {
            let x = rect.left() + 4.0 + (r.0 - lo) / span * (rect.width() - 8.0);
            let color = percentile_color(r.1);
            let stroke = Stroke::new(if i == 0 { 2.5 } else { 1.0 }, color);
            painter.line_segment([pos2(x, rect.top() + 3.0), pos2(x, rect.bottom() - 3.0)], stroke);
        }
        let text = format!("{lo:+.2} … {hi:+.2}");
        ui.label(egui::RichText::new(text).small().weak());
    }

    /// What an empty grid says: welcome, scanning, or "nothing matches".
    fn empty_state_ui(&mut self, ui: &mut Ui) {
        let filtered = self.query.filter != crate::library::views::ViewFilter::default();
        let scanning = !self.scans.is_empty();
        ui.vertical_centered(|ui| {
            ui.add_space((ui.available_height() * 0.25).min(160.0));
            if !self.view_received {
                ui.spinner();
                ui.label("Opening the library…");
            } else if self.folders.is_empty() {
                self.welcome_ui(ui);
            } else if scanning {
                ui.spinner();
                ui.heading("Reading your folders…");
                ui.label("Images appear here as they are found.");
            } else if filtered {
                ui.heading("No image matches");
                ui.label("Nothing in the library passes the current filters.");
                if ui.button("Clear filters").clicked() {
                    self.filter_text.clear();
                    self.query.filter = crate::library::views::ViewFilter::default();
                    self.commands.push(Command::RefreshView);
                }
            } else {
                ui.heading("No images in these folders yet");
                ui.label("PNG, JPEG and WebP files appear here as soon as they are written.");
            }
        });
    }

    /// The welcome screen: what RewardLens does and how to start.
    fn welcome_ui(&mut self, ui: &mut Ui) {
        ui.heading(egui::RichText::new("Welcome to RewardLens").size(26.0));
        ui.add_space(6.0);
        ui.label("RewardLens ranks your AI-generated images the way people would, with the ImageReward model.");
        ui.add_space(16.0);
        let (rect, _) = ui.allocate_exact_size(vec2(420.0_f32.min(ui.available_width()), 150.0), Sense::hover());
        ui.painter().rect_stroke(
            rect,
            12.0,
            Stroke::new(2.0, ui.visuals().weak_text_color()),
            egui::StrokeKind::Inside,
        );
        ui.painter().text(
            rect.center() - vec2(0.0, 14.0),
            Align2::CENTER_CENTER,
            "Drop a folder of generated images here",
            FontId::proportional(17.0),
            ui.visuals().text_color(),
        );
        ui.painter().text(
            rect.center() + vec2(0.0, 16.0),
            Align2::CENTER_CENTER,
            "Stable Diffusion, ComfyUI, Fooocus, InvokeAI, NovelAI…",
            FontId::proportional(12.5),
            ui.visuals().weak_text_color(),
        );
        ui.add_space(12.0);
        if ui.add(egui::Button::new("📂 Open folder…").min_size(Vec2::new(160.0, 30.0))).clicked() {
            self.commands.push(Command::PickFolder(super::jobs::DialogPurpose::AddFolder));
        }
        ui.add_space(6.0);
        ui.label(egui::RichText::new("or start with: rewardlens ~/sd/outputs").weak().monospace());
    }
}

/// The first line of a reason, shortened for a cell.
fn short_reason(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or(reason);
    // Reasons name the file first ("/path/x.png: truncated"); the cell already shows the file.
    let tail = line.rsplit_once(": ").map_or(line, |(_, t)| t);
    let mut short: String = tail.chars().take(28).collect();
    if tail.chars().count() > 28 {
        short.push('…');
    }
    short
}

/// What hovering a cell tells: the file, its prompt, and why it failed if it did.
fn cell_tooltip(row: &SlimRow, failure: Option<&str>) -> String {
    let mut text = row.path.display().to_string();
    if let (Some(w), Some(h)) = (row.width, row.height) {
        text.push_str(&format!("\n{w}×{h}"));
    }
    if let Some(prompt) = &row.prompt {
        let excerpt: String = prompt.chars().take(200).collect();
        text.push_str(&format!("\n\n{excerpt}"));
    }
    if row.truncated == Some(true) {
        text.push_str("\n\n35+: the model reads only the first 35 tokens of this prompt");
    }
    if let Some(error) = row.error.as_deref().or(failure) {
        text.push_str(&format!("\n\n⚠ {error}"));
    }
    if row.missing {
        text.push_str("\n\nThe file is missing (moved, deleted or on an unplugged drive).");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_read_as_top_shares_and_colours_run_red_to_green() {
        assert_eq!(top_percent(100.0), "top 1 %");
        assert_eq!(top_percent(97.2), "top 3 %");
        assert_eq!(top_percent(0.0), "top 100 %");
        let (best, worst) = (percentile_color(100.0), percentile_color(0.0));
        assert!(best.g() > best.r() && worst.r() > worst.g());
        assert_eq!(rating_dots(3), "★★★☆☆");
        assert_eq!(short_reason("/a/b.png: truncated file"), "truncated file");
    }
}
