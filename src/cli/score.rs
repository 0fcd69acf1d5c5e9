//! `rewardlens score`: rank image files by ImageReward, best first, on the scoring worker (the
//! app's code path), so scores are kept and never computed twice.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use rewardlens::model::locate::{CacheDirs, locate};

use super::interrupt::{INTERRUPTED_EXIT, stop_flag, stopped};
use super::json_path::JsonPath;
use rewardlens::image_file::collect_images;
use rewardlens::library::store::Store;
use rewardlens::scoring::{
    DeviceKind, EmbeddingCache, ModelSpec, ModelState, Precision, Priority, Progress, ScoreItem, ScoreRequest,
    ScoringEvent, ScoringWorker, WorkerConfig,
};

/// Arguments of `rewardlens score`.
#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    /// Model folder (ImageReward.pt or model.safetensors, med_config.json) or its weight file; by
    /// default the one `rewardlens model path` names (~/.cache/ImageReward, then the hub cache).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt to score every image against; without it each image's own generation prompt is used.
    #[arg(long)]
    pub prompt: Option<String>,
    /// One JSON object per line on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Images per forward pass; by default 8 on the CPU, 64 on a GPU.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: Option<u32>,
    /// auto, cpu, cuda or metal; a GPU that fails falls back to the CPU with a message.
    #[arg(long, default_value = "auto")]
    pub device: DeviceKind,
    /// f32, f16 or bf16; by default f16 on a GPU and f32 on the CPU.
    #[arg(long)]
    pub dtype: Option<Precision>,
    /// Library database where scores are kept (so nothing is scored twice); the platform data
    /// directory's by default.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Neither read nor save stored scores.
    #[arg(long, conflicts_with = "db")]
    pub no_store: bool,
    /// Folder of the image-embedding cache; the platform cache directory's by default.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Size cap of the image-embedding cache, in GiB.
    #[arg(long, default_value_t = 4.0)]
    pub cache_gib: f64,
    /// Do not use the image-embedding cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Image files or folders (searched recursively for .png, .jpg, .jpeg, .webp).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// One scored image, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// The file.
    #[serde(skip)]
    pub path: PathBuf,
    /// The file as JSON carries it (`path`, and `path_bytes` for a name that is not UTF-8).
    #[serde(flatten)]
    pub json_path: JsonPath,
    /// The prompt it was scored against.
    pub prompt: String,
    /// The normalised reward.
    pub score: f64,
}

/// The worker set-up the flags ask for.
fn worker_config(args: &ScoreArgs, model: PathBuf) -> anyhow::Result<WorkerConfig> {
    let db = if args.no_store {
        None
    } else {
        Some(match &args.db {
            Some(p) => p.clone(),
            None => Store::default_path().context("no place for the library database; pass --db or --no-store")?,
        })
    };
    let cache = if args.no_cache {
        None
    } else {
        let root = args.cache_dir.clone().or_else(EmbeddingCache::default_root);
        root.map(|r| (r, (args.cache_gib.max(0.0) * f64::from(1u32 << 30)) as u64))
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(WorkerConfig {
        model: ModelSpec { path: model, device: args.device, dtype: args.dtype, batch: args.batch.map(|b| b as usize) },
        db,
        embedding_cache: cache,
        decode_threads: cores,
        waker: None,
        background: false,
    })
}

/// Runs the subcommand on the scoring worker; exits non-zero when nothing could be scored.
pub fn run(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    let (files, walk_errors) = collect_images(&args.paths);
    for e in &walk_errors {
        eprintln!("{}: {}", e.path.display(), e.reason);
    }
    if files.is_empty() {
        anyhow::bail!("no image files found in the given paths");
    }
    stop_flag();
    let model = match &args.model {
        Some(path) => path.clone(),
        None => {
            let found = locate(None, &CacheDirs::from_env())?;
            eprintln!("model: {} (from {})", found.path.display(), found.origin);
            found.path
        }
    };
    let config = worker_config(args, model.clone())?;
    let (worker, events) = ScoringWorker::start(config).context("cannot start the scoring worker")?;
    wait_for_model(&events).with_context(|| format!("cannot load the model from {}", model.display()))?;
    let total = files.len();
    let request = ScoreRequest {
        items: files.into_iter().map(ScoreItem::file).collect(),
        prompt: args.prompt.clone(),
        priority: Priority::Library,
        supersede: false,
    };
    let ticket = worker.submit(request).map_err(|e| anyhow::anyhow!(e))?;
    let mut results = Vec::with_capacity(total);
    let progress = ProgressLine::new();
    while !stopped() {
        let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else { continue };
        match event {
            ScoringEvent::Scored(batch) => {
                results.extend(batch.into_iter().map(|r| Scored {
                    json_path: JsonPath::new(&r.path),
                    path: r.path,
                    prompt: r.prompt,
                    score: r.score,
                }));
            }
            ScoringEvent::Failed(failure) => progress.message(&failure.to_string()),
            ScoringEvent::Progress(p) => progress.update(&p),
            ScoringEvent::Warning(warning) => progress.message(&format!("note: {warning}")),
            ScoringEvent::Model(ModelState::Ready { device, dtype, note: Some(note), .. }) => {
                progress.message(&format!("note: {note} (now {device} {dtype})"));
            }
            ScoringEvent::Model(ModelState::Failed { error, .. }) => progress.message(&error.to_string()),
            ScoringEvent::Finished { ticket: t, .. } if t == ticket => break,
            ScoringEvent::Stopped => break,
            _ => {}
        }
    }
    progress.finish();
    let interrupted = stopped();
    worker.stop();
    if results.is_empty() {
        anyhow::bail!("no image was scored ({total} file(s) tried; see the messages above)");
    }
    results.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.path.cmp(&b.path)));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        for r in &results {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        print_table(&mut out, &results)?;
    }
    if interrupted {
        eprintln!("interrupted: {} of {total} images scored (saved; a new run goes on from there)", results.len());
        return Ok(ExitCode::from(INTERRUPTED_EXIT));
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the model to load; says on stderr where it runs and why, if not where asked.
pub fn wait_for_model(events: &Receiver<ScoringEvent>) -> anyhow::Result<String> {
    loop {
        match events.recv() {
            Ok(ScoringEvent::Model(ModelState::Ready { model_id, device, dtype, batch, note })) => {
                if let Some(note) = note {
                    eprintln!("note: {note}");
                }
                eprintln!("scoring on {device} in {dtype}, batch {batch}");
                return Ok(model_id);
            }
            Ok(ScoringEvent::Model(ModelState::Failed { error, .. })) => anyhow::bail!("{error}"),
            Ok(ScoringEvent::Warning(warning)) => eprintln!("note: {warning}"),
            Ok(_) => {}
            Err(_) => anyhow::bail!("the scoring worker stopped"),
        }
    }
}

fn print_table(out: &mut impl Write, results: &[Scored]) -> std::io::Result<()> {
    writeln!(out, "{:>5}  {:>8}  {:<40}  path", "rank", "score", "prompt")?;
    for (i, r) in results.iter().enumerate() {
        let one_line = r.prompt.replace('\n', " ");
        let prompt: String = if one_line.chars().count() > 40 {
            one_line.chars().take(39).chain(std::iter::once('…')).collect()
        } else {
            one_line
        };
        writeln!(out, "{:>5}  {:>8.4}  {:<40}  {}", i + 1, r.score, prompt, r.path.display())?;
    }
    Ok(())
}

/// Progress on stderr: a rewritten line on a terminal, a line every few seconds otherwise.
pub(crate) struct ProgressLine {
    tty: bool,
    last_line: Cell<Instant>,
    drawn: Cell<bool>,
}

impl ProgressLine {
    /// A progress line that has drawn nothing yet.
    pub(crate) fn new() -> Self {
        Self { tty: std::io::stderr().is_terminal(), last_line: Cell::new(Instant::now()), drawn: Cell::new(false) }
    }

    /// Shows the worker's latest counts.
    pub(crate) fn update(&self, p: &Progress) {
        let line = format!(
            "scored {}/{} images, {:.2} img/s, about {:.0} s left",
            p.done, p.total, p.images_per_sec, p.eta_secs
        );
        if self.tty {
            eprint!("\r{line}   ");
            self.drawn.set(true);
        } else if self.last_line.get().elapsed().as_secs_f64() >= 5.0 {
            eprintln!("{line}");
            self.last_line.set(Instant::now());
        }
    }

    /// A message on its own line, without breaking the progress line.
    pub(crate) fn message(&self, text: &str) {
        if self.drawn.replace(false) {
            eprintln!();
        }
        eprintln!("{text}");
    }

    /// Ends the progress line so what follows starts on a fresh line.
    pub(crate) fn finish(&self) {
        if self.drawn.get() {
            eprintln!();
        }
    }
}
