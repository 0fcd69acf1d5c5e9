//! `rewardlens list`: the library as the app's grid shows it, best first (or by date, name, rating
//! or size), filtered like the app's views; with `--model` the images of the view that have no
//! reward yet are scored first on the scoring worker (against `--prompt` from cached image tokens).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::json_path::JsonPath;

use super::interrupt::{INTERRUPTED_EXIT, stop_flag, stopped};
use super::score::{ProgressLine, wait_for_model};
use super::view_args::{ViewArgs, stored_model};
use rewardlens::image_file::ContentHash;
use rewardlens::library::store::Store;
use rewardlens::library::views::{SlimRow, View, ViewFilter, ViewOrder, ViewQuery};
use rewardlens::scoring::{
    DeviceKind, EmbeddingCache, ModelSpec, ModelState, Precision, Priority, ScoringEvent, ScoringWorker, WorkerConfig,
};

/// Rows fetched per query when printing (what is printed is read by id, a page at a time).
const PAGE_ROWS: usize = 500;

/// Size cap of the image-embedding cache `--model` scores through, as `score` uses by default.
const CACHE_BYTES: u64 = 4 << 30;

/// How `list` orders the images.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Best reward first (against each image's own prompt, or `--prompt`); unscored last.
    #[default]
    Reward,
    /// Newest file first.
    Date,
    /// By path.
    Name,
    /// Highest overall rating first; unrated last.
    Rating,
    /// Most pixels first.
    Size,
}

/// Arguments of `rewardlens list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Which library and which images.
    #[command(flatten)]
    pub view: ViewArgs,
    /// Order: reward, date, name, rating or size.
    #[arg(long, value_enum, default_value_t = SortKey::Reward)]
    pub sort: SortKey,
    /// Reverse the order (unscored and unrated images stay last).
    #[arg(long)]
    pub reverse: bool,
    /// Print only the first N images.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// One JSON object per line on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Model folder: first score the view's images that have no reward yet (against `--prompt`, or
    /// their own prompts), then list with this model's rewards.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// auto, cpu, cuda or metal (with --model).
    #[arg(long, default_value = "auto", requires = "model")]
    pub device: DeviceKind,
    /// f32, f16 or bf16 (with --model); by default f16 on a GPU and f32 on the CPU.
    #[arg(long, requires = "model")]
    pub dtype: Option<Precision>,
    /// Images per forward pass (with --model); by default 8 on the CPU, 64 on a GPU.
    #[arg(long, requires = "model", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: Option<u32>,
    /// Folder of the image-embedding cache (with --model); the platform cache directory's by default.
    #[arg(long, value_name = "DIR", requires = "model")]
    pub cache_dir: Option<PathBuf>,
}

/// One listed image, as `--json` prints it (field names are a published format: keep them).
#[derive(Debug, Serialize)]
struct Listed<'a> {
    /// `path`, and `path_bytes` beside it when the name is not UTF-8.
    #[serde(flatten)]
    path: JsonPath,
    content_hash: Option<&'a ContentHash>,
    /// The image's own generation prompt.
    prompt: Option<&'a str>,
    checkpoint: Option<&'a str>,
    /// Against `--prompt` when given, else the image's own prompt; null when not scored.
    reward: Option<f64>,
    /// Percent of the view's scored images with a lower reward (best 100).
    percentile: Option<f32>,
    rating: Option<u8>,
    favorite: bool,
}

/// Runs the subcommand.
pub fn run(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let (store, db) = args.view.open_store()?;
    let order = match (&args.view.prompt, args.sort) {
        (Some(prompt), SortKey::Reward) => ViewOrder::RewardFor(prompt.clone()),
        (Some(_), other) => {
            let name = clap::ValueEnum::to_possible_value(&other).map_or(String::new(), |v| v.get_name().to_string());
            anyhow::bail!("--prompt ranks by reward against it; it cannot be combined with --sort {name}")
        }
        (None, SortKey::Reward) => ViewOrder::Reward,
        (None, SortKey::Date) => ViewOrder::Date,
        (None, SortKey::Name) => ViewOrder::Name,
        (None, SortKey::Rating) => ViewOrder::Rating,
        (None, SortKey::Size) => ViewOrder::Size,
    };
    let filter = args.view.filter(&store)?;
    let (model_id, interrupted) = match &args.model {
        Some(model) => {
            let (id, interrupted) = score_missing(args, model, &db, &filter, &order)?;
            (Some(id), interrupted)
        }
        None => (stored_model(&store)?, false),
    };
    let query = ViewQuery { filter, order, reverse: args.reverse, model_id };
    let view = store.view(&query).context("cannot read the library")?;
    if let (Some(prompt), Some(_), None) = (&args.view.prompt, &query.model_id, &args.model)
        && view.scored == 0
        && !view.is_empty()
    {
        eprintln!("no stored rewards against {prompt:?}; add --model DIR to compute them");
    }
    print_view(&store, &query, &view, args.limit, args.json)?;
    if interrupted {
        eprintln!("interrupted: the rewards computed so far are saved; a new run goes on from there");
        return Ok(ExitCode::from(INTERRUPTED_EXIT));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the first `limit` images of the view, reading their rows a page at a time.
fn print_view(store: &Store, query: &ViewQuery, view: &View, limit: Option<usize>, json: bool) -> anyhow::Result<()> {
    let shown = &view.entries[..limit.unwrap_or(view.len()).min(view.len())];
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !json {
        writeln!(out, "{:>6}  {:>8}  {:>5}  {:<4}  {:<40}  path", "rank", "reward", "pct", "rate", "prompt")?;
    }
    for (page, entries) in shown.chunks(PAGE_ROWS).enumerate() {
        let ids: Vec<i64> = entries.iter().map(|e| e.image_id).collect();
        let rows = store.slim_rows(&ids, query).context("cannot read the library")?;
        // Rows come back in the ids' order; an id that vanished meanwhile is skipped.
        let mut rows = rows.into_iter().peekable();
        for (i, entry) in entries.iter().enumerate() {
            let Some(row) = rows.next_if(|r| r.image_id == entry.image_id) else { continue };
            let listed = Listed {
                path: JsonPath::new(&row.path),
                content_hash: row.content_hash.as_ref(),
                prompt: row.prompt.as_deref(),
                checkpoint: row.checkpoint.as_deref(),
                reward: row.reward,
                percentile: entry.percentile,
                rating: row.rating,
                favorite: row.favorite,
            };
            if json {
                writeln!(out, "{}", serde_json::to_string(&listed)?)?;
            } else {
                table_row(&mut out, page * PAGE_ROWS + i + 1, &listed, &row)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// One line of the table: rank, reward (or why there is none), percentile, rating and favorite
/// marks, the prompt cut to 40 characters, the path.
fn table_row(out: &mut impl Write, rank: usize, listed: &Listed, row: &SlimRow) -> std::io::Result<()> {
    let reward = match (listed.reward, &row.error, row.missing) {
        (Some(r), _, _) => format!("{r:.4}"),
        (None, Some(_), _) => "failed".to_string(),
        (None, None, true) => "missing".to_string(),
        (None, None, false) => "-".to_string(),
    };
    let pct = listed.percentile.map_or("-".to_string(), |p| format!("{p:.0}"));
    let marks = format!(
        "{}{}",
        listed.rating.map_or(String::new(), |r| format!("★{r}")),
        if listed.favorite { "♥" } else { "" }
    );
    let one_line = listed.prompt.unwrap_or("").replace(['\n', '\r'], " ");
    let prompt: String = if one_line.chars().count() > 40 {
        one_line.chars().take(39).chain(std::iter::once('…')).collect()
    } else {
        one_line
    };
    writeln!(out, "{rank:>6}  {reward:>8}  {pct:>5}  {marks:<4}  {prompt:<40}  {}", row.path.display())
}

/// Scores the view's images that have no reward from the model yet, on the scoring worker, and
/// returns the model's id and whether Ctrl-C stopped it. Score bounds and status are left out of
/// the filter here: an image without a reward cannot pass them until it has one.
fn score_missing(
    args: &ListArgs,
    model: &Path,
    db: &Path,
    filter: &ViewFilter,
    order: &ViewOrder,
) -> anyhow::Result<(String, bool)> {
    stop_flag();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = WorkerConfig {
        model: ModelSpec {
            path: model.to_path_buf(),
            device: args.device,
            dtype: args.dtype,
            batch: args.batch.map(|b| b as usize),
        },
        db: Some(db.to_path_buf()),
        embedding_cache: args.cache_dir.clone().or_else(EmbeddingCache::default_root).map(|root| (root, CACHE_BYTES)),
        decode_threads: cores,
        waker: None,
        background: false,
    };
    let (worker, events) = ScoringWorker::start(config).context("cannot start the scoring worker")?;
    let model_id =
        wait_for_model(&events).with_context(|| format!("cannot load the model from {}", model.display()))?;
    // The worker enumerates the view's images that lack a reward itself (the app's code path).
    let query = ViewQuery {
        filter: ViewFilter { min_score: None, max_score: None, status: None, ..filter.clone() },
        order: order.clone(),
        reverse: false,
        model_id: Some(model_id.clone()),
    };
    let ticket = worker.score_view(query, Priority::View, false).map_err(|e| anyhow::anyhow!(e))?;
    let progress = ProgressLine::new();
    while !stopped() {
        let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else { continue };
        match event {
            ScoringEvent::Failed(failure) => progress.message(&failure.to_string()),
            ScoringEvent::Progress(p) => progress.update(&p),
            ScoringEvent::Warning(warning) => progress.message(&format!("note: {warning}")),
            ScoringEvent::Model(ModelState::Failed { error, .. }) => progress.message(&error.to_string()),
            ScoringEvent::Finished { ticket: t, scored, failed, .. } if t == ticket => {
                progress.finish();
                if scored + failed > 0 {
                    eprintln!("scored {scored} image(s) without a reward ({failed} failed)");
                }
                break;
            }
            ScoringEvent::Stopped => break,
            _ => {}
        }
    }
    progress.finish();
    let interrupted = stopped();
    worker.stop();
    Ok((model_id, interrupted))
}
