//! `rewardlens scan`: add folders to the library and import them incrementally; `--watch` keeps
//! importing as files land until Ctrl-C; `--bench N` times a first import and an unchanged rescan
//! of N synthetic images.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::interrupt::{INTERRUPTED_EXIT, stop_flag, stopped};

use anyhow::Context;

use rewardlens::library::scan::{ScanOptions, ScanProgress, ScanReport, scan_folders};
use rewardlens::library::store::Store;
use rewardlens::library::watch::{LibraryWatcher, WatchEvent, WatchOptions};
use rewardlens::synthetic::write_synthetic_pngs_sized;

/// How often the progress line on stderr is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Arguments of `rewardlens scan`.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Library database; the platform data directory's `library.sqlite3` by default.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Threads hashing and parsing files; all cores by default.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Instead of scanning FOLDERs, write N synthetic PNGs to a temporary folder and time a first
    /// import and an unchanged rescan (uses a temporary database unless --db is given).
    #[arg(long, value_name = "N")]
    pub bench: Option<usize>,
    /// Side in pixels of the `--bench` images (noise, so file sizes are realistic at 512 or more).
    #[arg(long, default_value_t = 8, requires = "bench")]
    pub bench_px: u32,
    /// After scanning, keep watching the folders and import files as they are written, until Ctrl-C.
    #[arg(long, conflicts_with = "bench")]
    pub watch: bool,
    /// Folders to add to the library and scan (recursively, .png, .jpg, .jpeg, .webp).
    #[arg(required_unless_present = "bench")]
    pub folders: Vec<PathBuf>,
}

/// Runs the subcommand: each bad file is printed on stderr and the scan goes on.
pub fn run(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let options = ScanOptions { threads: args.threads.unwrap_or_else(|| ScanOptions::default().threads) };
    if let Some(count) = args.bench {
        return bench(args.db.as_deref(), count, args.bench_px, &options);
    }
    let db = match &args.db {
        Some(path) => path.clone(),
        None => Store::default_path().context("cannot open the library")?,
    };
    // Absolute paths, so the same folder is one row whichever directory we ran from.
    let folders: Vec<PathBuf> =
        args.folders.iter().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())).collect();
    if args.watch {
        return watch(&db, folders, options);
    }
    let mut store = Store::open(&db).context("cannot open the library")?;
    let (report, secs) = timed_scan(&mut store, &folders, &options)?;
    print_report(&report, secs)?;
    if report.cancelled {
        println!("cancelled: the files imported so far are saved; run again to go on");
        return Ok(ExitCode::from(INTERRUPTED_EXIT));
    }
    Ok(ExitCode::SUCCESS)
}

/// Scans, then watches until Ctrl-C, printing one line per change.
fn watch(db: &Path, folders: Vec<PathBuf>, options: ScanOptions) -> anyhow::Result<ExitCode> {
    stop_flag();
    let (watcher, events) =
        LibraryWatcher::start(db, folders, WatchOptions { scan: options, ..WatchOptions::default() })
            .context("cannot start watching")?;
    eprintln!("watching; Ctrl-C to stop");
    while !stopped() {
        let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else { continue };
        let mut out = std::io::stdout().lock();
        match event {
            WatchEvent::Scanned { folder, report } => {
                write!(out, "scanned {}: ", folder.display())?;
                drop(out);
                print_report(&report, 0.0)?;
            }
            WatchEvent::Updated { report, .. } => {
                for issue in &report.issues {
                    eprintln!("{}: {}", issue.path.display(), issue.reason);
                }
                writeln!(
                    out,
                    "changed: added {}, updated {}, moved {}, missing {}, errors {}",
                    report.added, report.updated, report.moved, report.missing, report.errors
                )?;
            }
            WatchEvent::FolderGone { folder } => {
                writeln!(out, "folder gone: {} (its images are kept as missing until it returns)", folder.display())?;
            }
            WatchEvent::Folders(_) => {}
            WatchEvent::Removed { folder } => writeln!(out, "folder removed: {}", folder.display())?,
            WatchEvent::FolderBack { folder } => writeln!(out, "folder back: {}", folder.display())?,
            WatchEvent::Error { message } => eprintln!("rewardlens: {message}"),
            // A rewritten line on a terminal only; logs get the "scanned" line.
            WatchEvent::ScanProgress { folder, done, total } if std::io::stderr().is_terminal() => {
                eprint!("\rscanning {}: {done}/{total} files", folder.display());
                if done == total {
                    eprintln!();
                }
            }
            WatchEvent::ScanProgress { .. } => {}
        }
    }
    watcher.stop();
    Ok(ExitCode::SUCCESS)
}

/// Scans with a throttled progress line on stderr; returns the report and wall seconds.
fn timed_scan(store: &mut Store, folders: &[PathBuf], options: &ScanOptions) -> anyhow::Result<(ScanReport, f64)> {
    let cancel: &AtomicBool = stop_flag();
    let last_drawn = Cell::new(Instant::now());
    // A rewritten line on a terminal; a line every few seconds in a log.
    let tty = std::io::stderr().is_terminal();
    let every = if tty { PROGRESS_EVERY } else { PROGRESS_EVERY * 25 };
    let progress = |p: ScanProgress| {
        if last_drawn.get().elapsed() >= every || (tty && p.done == p.total) {
            last_drawn.set(Instant::now());
            if tty {
                eprint!("\rscanning: {}/{}", p.done, p.total);
            } else {
                eprintln!("scanning: {}/{}", p.done, p.total);
            }
        }
    };
    let start = Instant::now();
    let report = scan_folders(store, folders, options, progress, cancel)
        .with_context(|| format!("scan of {} failed", store.path().display()))?;
    if tty {
        eprintln!();
    }
    Ok((report, start.elapsed().as_secs_f64()))
}

fn print_report(report: &ScanReport, secs: f64) -> std::io::Result<()> {
    for issue in &report.issues {
        eprintln!("{}: {}", issue.path.display(), issue.reason);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "seen {}, unchanged {}, added {}, updated {}, moved {}, missing {}, errors {}",
        report.seen, report.unchanged, report.added, report.updated, report.moved, report.missing, report.errors
    )?;
    if secs > 0.0 {
        writeln!(out, "{:.3} s, {:.0} images/s", secs, images_per_sec(report.seen, secs))?;
    }
    Ok(())
}

fn images_per_sec(count: usize, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Times a first import and an unchanged rescan of `count` synthetic PNGs (issue targets: first
/// import ≥ 500 images/s on 2 cores, rescan of 100k unchanged ≤ 3 s).
fn bench(db: Option<&Path>, count: usize, side_px: u32, options: &ScanOptions) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("rewardlens-scan-bench-{}", std::process::id()));
    let result = bench_in(&dir, db, count, side_px, options);
    // Best effort: a leftover temp folder is not worth failing the benchmark over.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench_in(
    dir: &Path,
    db: Option<&Path>,
    count: usize,
    side_px: u32,
    options: &ScanOptions,
) -> anyhow::Result<ExitCode> {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).with_context(|| format!("cannot create {}", images.display()))?;
    let start = Instant::now();
    write_synthetic_pngs_sized(&images, count, side_px)
        .with_context(|| format!("cannot write images to {}", images.display()))?;
    let bytes: u64 = std::fs::read_dir(&images)
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    eprintln!(
        "wrote {count} synthetic {side_px}x{side_px} PNGs ({:.1} MB) in {:.2} s",
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    let db_path = db.map_or_else(|| dir.join("bench.sqlite3"), Path::to_path_buf);
    let mut store = Store::open(&db_path).context("cannot open the benchmark library")?;
    let folders = [images];
    let (first, first_secs) = timed_scan(&mut store, &folders, options)?;
    let (again, again_secs) = timed_scan(&mut store, &folders, options)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "first import: {} images in {:.3} s = {:.0} images/s (added {}, errors {})",
        first.seen,
        first_secs,
        images_per_sec(first.seen, first_secs),
        first.added,
        first.errors
    )?;
    writeln!(
        out,
        "unchanged rescan: {} images in {:.3} s = {:.0} images/s (unchanged {}); 100k would take ~{:.2} s",
        again.seen,
        again_secs,
        images_per_sec(again.seen, again_secs),
        again.unchanged,
        again_secs * 100_000.0 / again.seen.max(1) as f64
    )?;
    Ok(ExitCode::SUCCESS)
}
