//! The export dialog: which images of the view (all, favorites or the selection; all of them, the
//! best N, the best P % or those above a reward), into which folder, copied or moved; then a
//! progress bar with Cancel and a summary. The work runs on its own thread (`Jobs::export`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::library::export::{ExportProgress, Pick, Transfer};

use super::app::{App, Command, Level};
use super::jobs::{DialogPurpose, ExportReport, ExportRequest};

/// Which images of the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every image of the view.
    View,
    /// The view's favorites.
    Favorites,
    /// The selected images.
    Selection,
}

/// How many of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickKind {
    /// All.
    All,
    /// The N best.
    Top,
    /// The best P percent.
    TopPercent,
    /// Reward at least X.
    MinScore,
}

/// An export under way.
#[derive(Debug, Clone)]
pub struct Running {
    /// Its latest progress.
    pub progress: ExportProgress,
    /// Set by Cancel.
    pub cancel: Arc<AtomicBool>,
}

/// The dialog's choices, kept between openings.
#[derive(Debug, Clone)]
pub struct ExportDialog {
    /// Whether the window is shown.
    pub open: bool,
    /// Which images.
    pub scope: Scope,
    /// How many.
    pub pick: PickKind,
    /// N for [`PickKind::Top`].
    pub top_n: usize,
    /// P for [`PickKind::TopPercent`].
    pub top_percent: f64,
    /// X for [`PickKind::MinScore`].
    pub min_score: f64,
    /// The folder, as typed or picked.
    pub to: String,
    /// Copy or move.
    pub transfer: Transfer,
    /// The export under way.
    pub running: Option<Running>,
    /// The last export's outcome.
    pub last: Option<Result<ExportReport, String>>,
}

impl Default for ExportDialog {
    fn default() -> Self {
        Self {
            open: false,
            scope: Scope::View,
            pick: PickKind::All,
            top_n: 50,
            top_percent: 10.0,
            min_score: 0.0,
            to: String::new(),
            transfer: Transfer::Copy,
            running: None,
            last: None,
        }
    }
}

impl App {
    /// The export window.
    pub(super) fn export_window_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.export.open;
        let has_model = self.model_id().is_some();
        let selected = self.selected.len();
        egui::Window::new("Export images")
            .open(&mut open)
            .pivot(egui::Align2::CENTER_TOP)
            .default_pos(ctx.content_rect().center_top() + egui::vec2(0.0, 90.0))
            .resizable(false)
            .show(ctx, |ui| {
                ui.set_max_width(460.0);
                let d = &mut self.export;
                egui::Grid::new("export-choices").num_columns(2).spacing(egui::vec2(12.0, 6.0)).show(ui, |ui| {
                    ui.label("Images");
                    ui.vertical(|ui| {
                        ui.radio_value(&mut d.scope, Scope::View, format!("This view ({} images)", self.view.len()));
                        ui.radio_value(&mut d.scope, Scope::Favorites, "Favorites in this view");
                        ui.add_enabled_ui(selected > 0, |ui| {
                            ui.radio_value(&mut d.scope, Scope::Selection, format!("Selected ({selected})"));
                        });
                    });
                    ui.end_row();
                    ui.label("Which");
                    ui.vertical(|ui| {
                        ui.radio_value(&mut d.pick, PickKind::All, "All of them");
                        ui.add_enabled_ui(has_model && d.scope != Scope::Selection, |ui| {
                            ui.horizontal(|ui| {
                                ui.radio_value(&mut d.pick, PickKind::Top, "Best images:");
                                ui.add(egui::DragValue::new(&mut d.top_n).range(1..=1_000_000));
                            });
                            ui.horizontal(|ui| {
                                ui.radio_value(&mut d.pick, PickKind::TopPercent, "Best share:");
                                ui.add(
                                    egui::DragValue::new(&mut d.top_percent).range(0.1..=100.0).speed(0.5).suffix(" %"),
                                );
                            });
                            ui.horizontal(|ui| {
                                ui.radio_value(&mut d.pick, PickKind::MinScore, "Reward at least:");
                                ui.add(egui::DragValue::new(&mut d.min_score).speed(0.05).fixed_decimals(2));
                            });
                        });
                        if !has_model {
                            ui.label(egui::RichText::new("Best and reward choices need the model's scores.").weak());
                        }
                    });
                    ui.end_row();
                    ui.label("Into");
                    ui.horizontal(|ui| {
                        let edit = ui.add(
                            egui::TextEdit::singleline(&mut d.to).desired_width(280.0).hint_text("/path/to/folder"),
                        );
                        super::name_text_edit(&edit, "Export folder");
                        if ui.button("Browse…").clicked() {
                            self.commands.push(Command::PickFolder(DialogPurpose::ExportFolder));
                        }
                    });
                    ui.end_row();
                    ui.label("How");
                    ui.horizontal(|ui| {
                        ui.radio_value(&mut d.transfer, Transfer::Copy, "Copy");
                        ui.radio_value(&mut d.transfer, Transfer::Move, "Move (the originals leave their folders)");
                    });
                    ui.end_row();
                });
                ui.label(
                    egui::RichText::new(
                        "Each image goes with its .txt caption; files already there are never overwritten (a numbered \
                     name instead), and manifest.json and manifest.csv list prompt, seed, reward and rating.",
                    )
                    .weak(),
                );
                ui.add_space(6.0);
                if let Some(run) = &d.running {
                    ui.horizontal(|ui| {
                        let p = &run.progress;
                        let fraction = if p.total > 0 { p.done as f32 / p.total as f32 } else { 0.0 };
                        ui.add(
                            egui::ProgressBar::new(fraction)
                                .text(format!("{} of {}", p.done, p.total))
                                .desired_width(300.0),
                        );
                        if ui.button("Cancel").clicked() {
                            run.cancel.store(true, Ordering::Relaxed);
                        }
                    });
                } else {
                    let ready = !d.to.trim().is_empty();
                    if ui.add_enabled(ready, egui::Button::new("Export")).clicked() {
                        self.commands.push(Command::Export);
                    }
                }
                match &d.last {
                    Some(Ok(r)) => {
                        let verb = if r.moved { "Moved" } else { "Exported" };
                        let mut text =
                            format!("{verb} {} · {} already there · {} failed", r.exported, r.skipped, r.failed.len());
                        if r.cancelled {
                            text.push_str(" · cancelled (Export again finishes it)");
                        }
                        ui.label(text);
                        if !r.failed.is_empty() {
                            ui.label(egui::RichText::new("The log (status bar) says why each failed.").weak());
                        }
                    }
                    Some(Err(e)) => {
                        ui.colored_label(ui.visuals().error_fg_color, e);
                    }
                    None => {}
                }
            });
        self.export.open = open;
    }

    /// Starts the export the dialog describes.
    pub(super) fn start_export(&mut self) {
        if self.export.running.is_some() {
            return;
        }
        let d = &self.export;
        let mut query = self.query.clone();
        if d.scope == Scope::Favorites {
            query.filter.favorites = true;
        }
        let scored = self.model_id().is_some() && d.scope != Scope::Selection;
        let pick = match d.pick {
            PickKind::Top if scored => Pick::Top(d.top_n),
            PickKind::TopPercent if scored => Pick::TopPercent(d.top_percent),
            PickKind::MinScore if scored => {
                query.filter.min_score = Some(query.filter.min_score.map_or(d.min_score, |m| m.max(d.min_score)));
                Pick::All
            }
            _ => Pick::All,
        };
        let ids = (d.scope == Scope::Selection)
            .then(|| self.view.entries.iter().map(|e| e.image_id).filter(|id| self.selected.contains(id)).collect());
        let to = std::path::PathBuf::from(d.to.trim());
        let request = ExportRequest { query, ids, pick, to, transfer: d.transfer };
        let cancel = Arc::new(AtomicBool::new(false));
        match self.backends.jobs.export(request, cancel.clone()) {
            Ok(()) => {
                self.export.last = None;
                self.export.running = Some(Running { progress: ExportProgress { done: 0, total: 0 }, cancel });
            }
            Err(e) => self.log(Level::Error, format!("cannot start the export: {e}")),
        }
    }

    /// An export's outcome: the summary in the dialog, failures in the log.
    pub(super) fn on_exported(&mut self, result: Result<ExportReport, String>) {
        self.export.running = None;
        match &result {
            Ok(r) => {
                for (path, why) in &r.failed {
                    self.log_quiet(Level::Warning, format!("not exported: {}: {why}", path.display()));
                }
                let verb = if r.moved { "moved" } else { "exported" };
                self.log(
                    if r.failed.is_empty() { Level::Info } else { Level::Warning },
                    format!(
                        "{verb} {} image(s) to {} ({} already there, {} failed)",
                        r.exported,
                        r.to.display(),
                        r.skipped,
                        r.failed.len()
                    ),
                );
                if r.moved {
                    self.commands.push(Command::RefreshView);
                }
            }
            Err(e) => self.log(Level::Error, format!("export failed: {e}")),
        }
        self.export.last = Some(result);
    }
}
