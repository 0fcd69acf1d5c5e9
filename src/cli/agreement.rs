//! `rewardlens agreement`: how often the scorer prefers the image the user preferred, on the
//! user's own comparisons and rankings (the paper's preference accuracy: human ties skipped, a
//! scorer tie counts as wrong), overall and per prompt group, with a 95 % Wilson interval.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::interrupt::{stop_flag, stopped};
use super::score::wait_for_model;
use rewardlens::library::agreement::{Agreement, PreferencePair, agreement, preference_pairs, stored_rewards};
use rewardlens::library::store::Store;
use rewardlens::scoring::{
    DeviceKind, EmbeddingCache, ModelSpec, Priority, ScoreItem, ScoreRequest, ScoringEvent, ScoringWorker, WorkerConfig,
};

/// How the report is broken down.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// One row per prompt group besides the overall one.
    Prompt,
}

/// Arguments of `rewardlens agreement`.
#[derive(clap::Args, Debug)]
pub struct AgreementArgs {
    /// Library database; the platform data directory's by default.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Score the judged images that have no reward yet with this model first (from the
    /// embedding cache where possible); without it, the rewards stored by the last model are used.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Also one row per prompt group.
    #[arg(long, value_name = "WHAT")]
    pub by: Option<By>,
    /// One JSON object per line: scorer, group (null overall), pairs, correct, accuracy, ci95.
    #[arg(long)]
    pub json: bool,
    /// auto, cpu, cuda or metal (with --model).
    #[arg(long, default_value = "auto")]
    pub device: DeviceKind,
}

/// Runs the subcommand.
pub fn run(args: &AgreementArgs) -> anyhow::Result<ExitCode> {
    let db = match &args.db {
        Some(p) => p.clone(),
        None => Store::default_path().context("no place for the library database; pass --db")?,
    };
    if !db.is_file() {
        anyhow::bail!("no library database at {}", db.display());
    }
    let store = Store::open(&db).context("cannot open the library")?;
    let pairs = preference_pairs(&store).context("cannot read the judgments")?;
    if pairs.is_empty() {
        eprintln!("no judgments yet: compare or rank images in the app first");
    }
    let model_id = match &args.model {
        Some(model) => Some(score_missing(args, model, &db, &store, &pairs)?),
        None => store.last_model_id().context("cannot read the library")?,
    };
    let Some(model_id) = model_id else {
        anyhow::bail!("no model has scored this library yet; pass --model DIR");
    };
    let rows = agreement(&pairs, &model_id, stored_rewards(&store, &model_id), args.by.is_some());
    print_rows(&rows, args.json)?;
    if let Some(overall) = rows.first() {
        if overall.unscored > 0 {
            eprintln!(
                "{} pair(s) left out: an image has no reward yet (add --model DIR to score them)",
                overall.unscored
            );
        }
        if overall.too_few() {
            eprintln!(
                "warning: {} pairs are too few to say how well the scorer agrees (the 95 % interval is wide)",
                overall.pairs
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_rows(rows: &[Agreement], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "{:<28}  {:<32}  {:>6}  {:>7}  {:>8}  95 % interval",
            "scorer", "group", "pairs", "correct", "accuracy"
        )?;
    }
    for r in rows {
        if json {
            let line = json!({
                "scorer": r.scorer, "group": r.group, "pairs": r.pairs, "correct": r.correct,
                "accuracy": r.accuracy, "ci95": r.ci95.map(|(lo, hi)| [lo, hi]), "unscored": r.unscored,
            });
            writeln!(out, "{line}")?;
        } else {
            let group = r.group.clone().unwrap_or_else(|| "(all)".into());
            let group: String =
                if group.chars().count() > 32 { group.chars().take(31).chain(['…']).collect() } else { group };
            let acc = r.accuracy.map_or("-".into(), |a| format!("{:.1} %", a * 100.0));
            let ci = r.ci95.map_or("-".into(), |(lo, hi)| format!("{:.1}–{:.1} %", lo * 100.0, hi * 100.0));
            writeln!(out, "{:<28}  {group:<32}  {:>6}  {:>7}  {acc:>8}  {ci}", r.scorer, r.pairs, r.correct)?;
        }
    }
    Ok(())
}

/// Scores, against each pair's prompt, the judged images that have no stored reward from `model`;
/// returns the model's id.
fn score_missing(
    args: &AgreementArgs,
    model: &std::path::Path,
    db: &std::path::Path,
    store: &Store,
    pairs: &[PreferencePair],
) -> anyhow::Result<String> {
    stop_flag();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = WorkerConfig {
        model: ModelSpec { path: model.to_path_buf(), device: args.device, dtype: None, batch: None },
        db: Some(db.to_path_buf()),
        embedding_cache: EmbeddingCache::default_root().map(|root| (root, 4 << 30)),
        decode_threads: cores,
        waker: None,
        background: false,
    };
    let (worker, events) = ScoringWorker::start(config).context("cannot start the scoring worker")?;
    let model_id =
        wait_for_model(&events).with_context(|| format!("cannot load the model from {}", model.display()))?;
    let mut wanted: BTreeMap<&str, BTreeSet<&rewardlens::image_file::ContentHash>> = BTreeMap::new();
    {
        let mut reward = stored_rewards(store, &model_id);
        for pair in pairs {
            for hash in [&pair.better, &pair.worse] {
                if reward(&pair.prompt, hash).is_none() {
                    wanted.entry(pair.prompt.as_str()).or_default().insert(hash);
                }
            }
        }
    }
    for (prompt, hashes) in wanted {
        let mut items = Vec::new();
        for hash in hashes {
            match store.path_of_content(hash)? {
                Some(path) => items.push(ScoreItem { path, content_hash: Some(hash.clone()), own_prompt: None }),
                None => eprintln!("{hash}: no file with this content in the library; its pairs are left out"),
            }
        }
        if items.is_empty() {
            continue;
        }
        let request =
            ScoreRequest { items, prompt: Some(prompt.to_string()), priority: Priority::Library, supersede: false };
        let ticket = worker.submit(request).map_err(|e| anyhow::anyhow!(e))?;
        while !stopped() {
            let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else { continue };
            match event {
                ScoringEvent::Failed(failure) => eprintln!("{failure}"),
                ScoringEvent::Finished { ticket: t, .. } if t == ticket => break,
                ScoringEvent::Stopped => anyhow::bail!("the scoring worker stopped"),
                _ => {}
            }
        }
    }
    worker.stop();
    Ok(model_id)
}
