//! `rewardlens bench --app N`: the real app window on a fixture library of N files, timed by the
//! app's own benchmark mode (first frame with the grid filled, frame times while scrolling with the
//! model idle and while it scores, resident memory beyond the model).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context as _;
use rewardlens::library::scan::{ScanOptions, scan_folders};
use rewardlens::library::store::Store;
use rewardlens::ui::bench::{BenchConfig, FrameStats};

/// Writes (or reuses) the library, then runs the app in benchmark mode and prints its table.
pub fn run(count: usize, px: u32, frames: usize, model: &Path, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let tmp;
    let root = match dir {
        Some(dir) => dir.to_path_buf(),
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    let images = root.join(format!("images-{count}-{px}"));
    let db = root.join(format!("library-{count}-{px}.sqlite3"));
    let marker = images.join(".complete");
    if !marker.exists() {
        std::fs::create_dir_all(&images).with_context(|| format!("cannot create {}", images.display()))?;
        let started = Instant::now();
        rewardlens::synthetic::write_fixture_library(&images, count, 12, px)?;
        eprintln!("wrote {count} images of {px} px in {:.1} s", started.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&db);
        let started = Instant::now();
        let mut store = Store::open(&db)?;
        let report = scan_folders(
            &mut store,
            std::slice::from_ref(&images),
            &ScanOptions::default(),
            |_| {},
            &AtomicBool::new(false),
        )?;
        eprintln!("scanned {} files in {:.1} s", report.seen, started.elapsed().as_secs_f64());
        std::fs::write(&marker, b"")?;
    }
    // Thumbnails and embeddings start cold every run: the first frame pays for its thumbnails.
    let caches = root.join("caches");
    let _ = std::fs::remove_dir_all(&caches);
    let result = Arc::new(Mutex::new(None));
    let mut config = rewardlens::ui::AppConfig::platform(Some(db), None, Vec::new())?;
    config.settings_path = None;
    config.thumb_cache_dir = caches.join("thumbnails");
    config.embedding_cache_dir = Some(caches.join("embeddings"));
    config.bench = Some(BenchConfig { model: model.to_path_buf(), scroll_frames: frames, report: Arc::clone(&result) });
    rewardlens::ui::run(config)?;
    let report =
        result.lock().unwrap_or_else(PoisonError::into_inner).take().context("the benchmark did not finish")?;
    let mib = |b: f64| b / (1024.0 * 1024.0);
    println!("app benchmark: {} images in the view, renderer {}", report.images, report.renderer);
    println!("{:<44} {:>10}", "first frame with the grid filled", format!("{:.0} ms", report.first_frame_ms));
    for (what, ms) in &report.milestones {
        println!("{:<44} {:>10}", format!("  {what}"), format!("{ms:.0} ms"));
    }
    let row = |name: &str, s: &FrameStats| {
        println!(
            "{name:<44} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}",
            format!("{:.1}", s.p50_ms),
            format!("{:.1}", s.p99_ms),
            format!("{:.1}", s.max_ms),
            format!("{:.1}", s.cpu_p50_ms),
            format!("{:.1}", s.cpu_p99_ms),
            format!("{:.2}", s.app_p50_ms),
            format!("{:.2}", s.app_p99_ms),
            s.frames
        );
    };
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "frame time, ms (wall; CPU; the app's part)",
        "p50",
        "p99",
        "max",
        "CPU p50",
        "CPU p99",
        "app p50",
        "app p99",
        "frames"
    );
    row("scrolling top to bottom, model idle", &report.scroll);
    row("scrolling top to bottom while scoring", &report.scroll_scoring);
    row("standing still (repainting every frame)", &report.idle);
    println!("{:<44} {:>10}", "images scored during the second scroll", report.scored_during);
    println!(
        "{:<44} {:>10}",
        "resident memory after a full scroll (no model)",
        format!("{:.0} MiB", mib(report.rss_bytes as f64))
    );
    println!("{:<44} {:>10}", "  of which anonymous (heap)", format!("{:.0} MiB", mib(report.rss_anon_bytes as f64)));
    println!(
        "{:<44} {:>10}",
        "textures held after the scroll",
        format!("{} ({:.0} MiB)", report.textures.0, mib(report.textures.1 as f64))
    );
    Ok(ExitCode::SUCCESS)
}

/// A fresh folder under the system temporary folder (kept: the library is reused by `--app-dir`).
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("rewardlens-bench-app-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
