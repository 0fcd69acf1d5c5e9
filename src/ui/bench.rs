//! The app benchmark, run inside the real window (`rewardlens bench --app N`): time to the first
//! frame with the grid filled, then frame times while the grid scrolls from top to bottom at a
//! steady speed, first with the model idle, then again while the scoring worker scores the library;
//! and resident memory after the first full scroll (before any model is loaded, so it is what the
//! app costs beyond the model's weights). The window closes itself and the report goes back to the
//! caller.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::app::{App, ModelStatus};

/// What the benchmark is asked to do.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The model scored with during the second scroll.
    pub model: PathBuf,
    /// Frames one scroll from top to bottom takes (a steady speed: the same distance each frame).
    pub scroll_frames: usize,
    /// Where the report goes when the run ends.
    pub report: Arc<Mutex<Option<BenchReport>>>,
}

/// Frame times of one scroll, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameStats {
    /// Frames measured.
    pub frames: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Longest.
    pub max_ms: f64,
    /// Of which, the app's own work per frame (layout, events, requests): median.
    pub app_p50_ms: f64,
    /// The app's own work per frame: 99th percentile.
    pub app_p99_ms: f64,
    /// CPU time per frame, app and rendering (eframe's count, no waiting): median.
    pub cpu_p50_ms: f64,
    /// CPU time per frame: 99th percentile.
    pub cpu_p99_ms: f64,
}

impl FrameStats {
    fn of(frames: &[f64], app: &[f64], cpu: &[f64]) -> Self {
        let q = |v: &[f64], p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            s[((s.len() - 1) as f64 * p).round() as usize]
        };
        Self {
            frames: frames.len(),
            p50_ms: q(frames, 0.5),
            p99_ms: q(frames, 0.99),
            max_ms: frames.iter().copied().fold(0.0, f64::max),
            app_p50_ms: q(app, 0.5),
            app_p99_ms: q(app, 0.99),
            cpu_p50_ms: q(cpu, 0.5),
            cpu_p99_ms: q(cpu, 0.99),
        }
    }
}

/// What the benchmark measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchReport {
    /// Images in the view.
    pub images: usize,
    /// From the app's start to the first frame with the first screen's rows and thumbnails drawn.
    pub first_frame_ms: f64,
    /// Scrolling top to bottom, model idle.
    pub scroll: FrameStats,
    /// Scrolling top to bottom while the worker scores.
    pub scroll_scoring: FrameStats,
    /// Standing still (the baseline: what the renderer costs per frame).
    pub idle: FrameStats,
    /// Images the worker scored during the second scroll.
    pub scored_during: usize,
    /// Resident memory after the first scroll, bytes (no model loaded yet).
    pub rss_bytes: u64,
    /// Of which anonymous memory (the heap: rows, textures' staging, caches); the rest is mapped
    /// files (the binary, the GPU driver, the library database's pages).
    pub rss_anon_bytes: u64,
    /// Textures held after the first scroll, and their bytes.
    pub textures: (usize, usize),
    /// The renderer eframe used (`wgpu`), for the record.
    pub renderer: String,
    /// When the first screen's parts arrived (the view, its rows, the first thumbnail) and the
    /// first frame was painted, ms from the start: where the first frame's time went.
    pub milestones: Vec<(&'static str, f64)>,
}

/// Frames measured standing still.
const IDLE_FRAMES: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for the first screen to be filled.
    Loading,
    /// Scrolling with no model.
    Scroll,
    /// Waiting for the model to load.
    Model,
    /// Scrolling while scoring.
    ScrollScoring,
    /// Standing still, repainting every frame.
    Idle,
    /// Report sent; closing.
    Done,
}

/// The benchmark's running state inside the app.
#[derive(Debug)]
pub struct BenchState {
    config: BenchConfig,
    started: Instant,
    phase: Phase,
    offset: f32,
    last_frame: Option<Instant>,
    frames: Vec<f64>,
    app_frames: Vec<f64>,
    cpu_frames: Vec<f64>,
    scored_before: usize,
    report: BenchReport,
}

impl BenchState {
    /// A benchmark starting now.
    pub fn new(config: BenchConfig) -> Self {
        Self {
            config,
            started: Instant::now(),
            phase: Phase::Loading,
            offset: 0.0,
            last_frame: None,
            frames: Vec::new(),
            app_frames: Vec::new(),
            cpu_frames: Vec::new(),
            scored_before: 0,
            report: BenchReport { renderer: "wgpu".into(), ..BenchReport::default() },
        }
    }

    /// Notes when `what` first happened while the first screen loads.
    pub fn milestone(&mut self, what: &'static str) {
        if self.phase == Phase::Loading && !self.report.milestones.iter().any(|(w, _)| *w == what) {
            self.report.milestones.push((what, self.started.elapsed().as_secs_f64() * 1000.0));
        }
    }

    /// The scroll offset the grid must show this frame, while a scroll phase runs.
    pub fn scroll_offset(&self) -> Option<f32> {
        matches!(self.phase, Phase::Scroll | Phase::ScrollScoring).then_some(self.offset)
    }
}

/// Resident memory of this process, from `/proc/self/status` (0 where there is none).
pub fn resident_bytes() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// One `kB` field of `/proc/self/status` (0 where there is none).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
}

impl App {
    /// Advances the benchmark by one frame: measures, scrolls, switches phases, and closes the
    /// window at the end. `app_ms` is the app's own time in the previous frame.
    pub(super) fn bench_frame(&mut self, ctx: &egui::Context, max_offset: f32, app_ms: f64, cpu_ms: f64) {
        let side = self.thumb_side(ctx.pixels_per_point());
        let Some(bench) = &mut self.bench else { return };
        let now = Instant::now();
        let interval = bench.last_frame.map(|t| now.duration_since(t).as_secs_f64() * 1000.0);
        // The first frame's paint (the renderer's pipelines built) lies between these two.
        bench.milestone(if interval.is_none() { "first frame started" } else { "second frame started" });
        bench.last_frame = Some(now);
        // While loading, frames come as the app's own do (the workers' wakers), so the benchmark
        // takes no CPU from the loading it times; the timed phases paint every frame.
        if bench.phase != Phase::Loading {
            ctx.request_repaint();
        }
        let mut start_model = None;
        match bench.phase {
            Phase::Loading => {
                let filled = self.view_received
                    && !self.view.is_empty()
                    && !self.visible.is_empty()
                    && self.visible.clone().all(|i| {
                        self.view.entries.get(i).and_then(|e| self.rows.get(&e.image_id)).is_some_and(|(_, row)| {
                            let hash = row.content_hash.clone();
                            hash.is_some_and(|h| {
                                self.thumb_failures.contains_key(&h)
                                    || self.textures.has(&super::textures::TextureKey::Thumb(h, side))
                            })
                        })
                    });
                if filled {
                    bench.report.first_frame_ms = bench.started.elapsed().as_secs_f64() * 1000.0;
                    bench.report.images = self.view.len();
                    bench.phase = Phase::Scroll;
                    eprintln!("bench: first frame after {:.0} ms; scrolling", bench.report.first_frame_ms);
                    bench.offset = 0.0;
                    bench.frames.clear();
                    bench.app_frames.clear();
                    bench.cpu_frames.clear();
                }
            }
            Phase::Scroll | Phase::ScrollScoring => {
                if let Some(ms) = interval {
                    bench.frames.push(ms);
                    bench.app_frames.push(app_ms);
                    bench.cpu_frames.push(cpu_ms);
                }
                bench.offset += (max_offset / bench.config.scroll_frames.max(1) as f32).max(1.0);
                if bench.offset > max_offset {
                    let stats = FrameStats::of(&bench.frames, &bench.app_frames, &bench.cpu_frames);
                    bench.frames.clear();
                    bench.app_frames.clear();
                    bench.cpu_frames.clear();
                    bench.offset = 0.0;
                    if bench.phase == Phase::Scroll {
                        bench.report.scroll = stats;
                        bench.report.rss_bytes = resident_bytes();
                        bench.report.rss_anon_bytes = status_kib("RssAnon:") * 1024;
                        bench.report.textures = (self.textures.len(), self.textures.bytes());
                        bench.phase = Phase::Model;
                        eprintln!("bench: first scroll done; loading the model");
                        start_model = Some(bench.config.model.clone());
                    } else {
                        bench.report.scroll_scoring = stats;
                        bench.report.scored_during = self.view.scored.saturating_sub(bench.scored_before);
                        bench.phase = Phase::Idle;
                    }
                }
            }
            Phase::Idle => {
                if let Some(ms) = interval {
                    bench.frames.push(ms);
                    bench.app_frames.push(app_ms);
                    bench.cpu_frames.push(cpu_ms);
                }
                if bench.frames.len() >= IDLE_FRAMES {
                    bench.report.idle = FrameStats::of(&bench.frames, &bench.app_frames, &bench.cpu_frames);
                    bench.phase = Phase::Done;
                    let report = bench.report.clone();
                    *bench.config.report.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
            Phase::Model => {
                if matches!(self.model, ModelStatus::Ready { .. }) {
                    bench.scored_before = self.view.scored;
                    bench.phase = Phase::ScrollScoring;
                    eprintln!("bench: model ready; scrolling while it scores");
                    bench.offset = 0.0;
                } else if let ModelStatus::Failed { error, .. } = &self.model {
                    bench.report.renderer = format!("model failed: {error}");
                    bench.phase = Phase::Done;
                    let report = bench.report.clone();
                    *bench.config.report.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
            Phase::Done => {}
        }
        if let Some(model) = start_model {
            self.model_override = Some(model);
            self.start_model();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_stats_take_quantiles_of_what_was_measured() {
        let frames: Vec<f64> = (1..=100).map(f64::from).collect();
        let stats = FrameStats::of(&frames, &[1.0, 3.0, 2.0], &[]);
        assert_eq!((stats.frames, stats.p50_ms, stats.p99_ms, stats.max_ms), (100, 51.0, 99.0, 100.0));
        assert_eq!((stats.app_p50_ms, stats.app_p99_ms), (2.0, 3.0));
        assert_eq!(stats.cpu_p50_ms, 0.0);
        assert!(resident_bytes() > 0 || !std::path::Path::new("/proc/self/status").exists());
    }
}
