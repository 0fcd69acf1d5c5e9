//! The viewer: one image at full resolution, fit to the window or zoomed (wheel at the pointer,
//! Ctrl+1 = 100 %, Ctrl+0 = fit) and panned by dragging; ←/→ walk the current order with the
//! neighbours decoded ahead; `I` shows the details beside it.

use egui::{Key, Modifiers, Rect, Sense, Ui, Vec2, pos2, vec2};

use super::app::{App, Command, Screen};
use super::grid::file_name;
use super::textures::TextureKey;

/// Zoom limits (1 = 100 %).
const ZOOM_RANGE: std::ops::RangeInclusive<f32> = 0.02..=32.0;

impl App {
    pub(super) fn viewer_ui(&mut self, ui: &mut Ui) {
        self.want_rows(self.cursor.saturating_sub(3)..self.cursor + 4);
        self.want_full_images();
        if self.settings.details_panel {
            egui::Panel::right("viewer-info").resizable(true).default_size(320.0).show(ui, |ui| {
                egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
                    self.details_contents_ui(ui, false);
                });
            });
        }
        egui::CentralPanel::default().frame(egui::Frame::NONE.fill(egui::Color32::from_gray(18))).show(ui, |ui| {
            self.viewer_header_ui(ui);
            self.viewer_image_ui(ui);
        });
    }

    fn viewer_header_ui(&mut self, ui: &mut Ui) {
        egui::Frame::NONE.inner_margin(6.0).fill(egui::Color32::from_gray(28)).show(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button("⬅ Grid").on_hover_text("Back to the grid (Esc)").clicked() {
                    self.commands.push(Command::Show(Screen::Grid));
                }
                let n = self.view.len();
                ui.label(egui::RichText::new(format!("{} / {n}", self.cursor + 1)).color(egui::Color32::LIGHT_GRAY));
                if ui.button("◀").on_hover_text("Previous (⬅)").clicked() && self.cursor > 0 {
                    self.commands.push(Command::MoveCursor { index: self.cursor - 1, extend: false, toggle: false });
                }
                if ui.button("▶").on_hover_text("Next (➡)").clicked() && self.cursor + 1 < n {
                    self.commands.push(Command::MoveCursor { index: self.cursor + 1, extend: false, toggle: false });
                }
                if let Some(row) = self.cursor_row() {
                    ui.label(egui::RichText::new(file_name(row)).color(egui::Color32::WHITE));
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button("Info (I)").clicked() {
                        self.settings.details_panel = !self.settings.details_panel;
                    }
                    if ui.button("100 %").on_hover_text("Ctrl+1").clicked() {
                        self.viewer_zoom = Some(1.0);
                        self.viewer_pan = Vec2::ZERO;
                    }
                    if ui.button("Fit").on_hover_text("Ctrl+0").clicked() {
                        self.viewer_zoom = None;
                        self.viewer_pan = Vec2::ZERO;
                    }
                    let zoom = self.viewer_zoom.map_or_else(|| "fit".to_string(), |z| format!("{:.0} %", z * 100.0));
                    ui.label(egui::RichText::new(zoom).color(egui::Color32::LIGHT_GRAY));
                });
            });
        });
    }

    fn viewer_image_ui(&mut self, ui: &mut Ui) {
        let area = ui.available_rect_before_wrap();
        let response = ui.allocate_rect(area, Sense::click_and_drag());
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "Image viewer"));
        let Some(row) = self.cursor_row().cloned() else {
            ui.painter().text(
                area.center(),
                egui::Align2::CENTER_CENTER,
                if self.view.is_empty() { "No image" } else { "Loading…" },
                egui::FontId::proportional(16.0),
                egui::Color32::GRAY,
            );
            return;
        };
        let hash = row.content_hash.clone();
        let side = self.thumb_side(ui.ctx().pixels_per_point());
        let full = hash.as_ref().and_then(|h| self.textures.get(&TextureKey::Full(h.clone())));
        let failure = hash.as_ref().and_then(|h| self.full_failures.get(h)).cloned();
        let texture =
            full.clone().or_else(|| hash.as_ref().and_then(|h| self.textures.get(&TextureKey::Thumb(h.clone(), side))));
        let Some(texture) = texture else {
            let text = if row.missing {
                "The file is missing (moved, deleted or on an unplugged drive).".to_string()
            } else if let Some(reason) = failure.or(row.error.clone()) {
                format!("⚠ Cannot show this image:\n{reason}")
            } else {
                "Decoding…".to_string()
            };
            ui.painter().text(
                area.center(),
                egui::Align2::CENTER_CENTER,
                text,
                egui::FontId::proportional(15.0),
                egui::Color32::LIGHT_GRAY,
            );
            return;
        };
        // The image's own pixel size: the full decode's, or the row's when showing the thumbnail.
        let image_size = match (&full, row.width, row.height) {
            (Some(t), _, _) => t.size_vec2(),
            (None, Some(w), Some(h)) => vec2(w as f32, h as f32),
            (None, _, _) => texture.size_vec2(),
        };
        let ppp = ui.ctx().pixels_per_point();
        let fit = ((area.width() / image_size.x).min(area.height() / image_size.y) * ppp).min(1.0);
        let (ctrl_one, ctrl_zero) = ui.input_mut(|i| {
            (i.consume_key(Modifiers::COMMAND, Key::Num1), i.consume_key(Modifiers::COMMAND, Key::Num0))
        });
        if ctrl_one {
            self.viewer_zoom = Some(1.0);
            self.viewer_pan = Vec2::ZERO;
        }
        if ctrl_zero {
            self.viewer_zoom = None;
            self.viewer_pan = Vec2::ZERO;
        }
        let mut zoom = self.viewer_zoom.unwrap_or(fit);
        if response.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y + (i.zoom_delta() - 1.0) * 200.0);
            if scroll.abs() > 0.1 {
                let factor = (scroll / 200.0).exp();
                let new_zoom = (zoom * factor).clamp(*ZOOM_RANGE.start(), *ZOOM_RANGE.end());
                // Keep the point under the pointer still.
                if let Some(pointer) = response.hover_pos() {
                    let center = area.center() + self.viewer_pan;
                    let offset = pointer - center;
                    self.viewer_pan += offset - offset * (new_zoom / zoom);
                }
                zoom = new_zoom;
                self.viewer_zoom = Some(zoom);
            }
        }
        if response.dragged() {
            self.viewer_pan += response.drag_delta();
            if self.viewer_zoom.is_none() {
                self.viewer_zoom = Some(zoom);
            }
        }
        if response.double_clicked() {
            self.viewer_zoom = if self.viewer_zoom.is_some() { None } else { Some(1.0) };
            self.viewer_pan = Vec2::ZERO;
        }
        let shown = image_size * zoom / ppp;
        let rect = Rect::from_center_size(area.center() + self.viewer_pan, shown);
        let painter = ui.painter_at(area);
        painter.image(texture.id(), rect, Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), egui::Color32::WHITE);
        if full.is_none() && !row.missing {
            painter.text(
                area.left_bottom() + vec2(10.0, -10.0),
                egui::Align2::LEFT_BOTTOM,
                "decoding full resolution…",
                egui::FontId::proportional(12.0),
                egui::Color32::GRAY,
            );
        }
    }
}
