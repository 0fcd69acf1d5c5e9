//! `rewardlens export`: the chosen images of a view copied (or moved) into a folder with their
//! `.txt` sidecars and a manifest; never overwrites, and a run again after an interruption
//! finishes without duplicates.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::interrupt::stop_flag;
use super::json_path::JsonPath;
use super::view_args::{ViewArgs, stored_model};
use rewardlens::library::export::{ExportProgress, Outcome, Pick, Transfer, export, plan};
use rewardlens::library::metadata::prompt_group_key;
use rewardlens::library::views::{ViewOrder, ViewQuery};

/// Arguments of `rewardlens export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The folder to export into (made if absent; files there are never overwritten).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Only the N best of the view.
    #[arg(long, value_name = "N", conflicts_with_all = ["top_percent", "min_score"])]
    pub top: Option<usize>,
    /// Only the best P percent of the view.
    #[arg(long, value_name = "P", conflicts_with = "min_score", value_parser = percent)]
    pub top_percent: Option<f64>,
    /// Only the images of one prompt group (its key as `rewardlens groups` prints it, or the prompt).
    #[arg(long, value_name = "PROMPT_KEY")]
    pub group: Option<String>,
    /// Move the images (and sidecars) instead of copying them; their library rows go missing until
    /// the export folder is scanned, which finds them again with their ratings and scores.
    #[arg(long = "move")]
    pub move_files: bool,
    /// One JSON object per image (`path`, `exported`, `status`, `reason`) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Which library and images (`--favorites`, `--min-score X`, `--search`, …), as in `list`.
    #[command(flatten)]
    pub view: ViewArgs,
}

/// A percentage: 0 < P ≤ 100.
fn percent(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 100.0 => Ok(v),
        _ => Err(format!("{text:?} is not a percentage in (0, 100]")),
    }
}

/// Runs the subcommand; exit status 1 when any image failed (the others are exported).
pub fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let (mut store, _) = args.view.open_store()?;
    let mut filter = args.view.filter(&store)?;
    filter.prompt_group = args.group.as_deref().map(prompt_group_key);
    let order = args.view.prompt.clone().map_or(ViewOrder::Reward, ViewOrder::RewardFor);
    let model_id = stored_model(&store)?;
    let scored_pick = args.top.is_some() || args.top_percent.is_some() || args.view.min_score.is_some();
    if scored_pick && model_id.is_none() {
        anyhow::bail!("--top, --top-percent and --min-score need rewards; score the library first");
    }
    let query = ViewQuery { filter, order, reverse: false, model_id: model_id.clone() };
    let pick = match (args.top, args.top_percent) {
        (Some(n), _) => Pick::Top(n),
        (None, Some(p)) => Pick::TopPercent(p),
        (None, None) => Pick::All,
    };
    let items = plan(&store, &query, pick).context("cannot choose the images")?;
    if items.is_empty() {
        eprintln!("no image matches; nothing exported");
        return Ok(ExitCode::SUCCESS);
    }
    let transfer = if args.move_files { Transfer::Move } else { Transfer::Copy };
    let tty = std::io::stderr().is_terminal();
    let mut report = |p: &ExportProgress| {
        if tty {
            eprint!("\rexporting {}/{}   ", p.done, p.total);
        }
    };
    let summary = export(&mut store, &items, &args.to, transfer, model_id.as_deref(), &mut report, stop_flag())
        .with_context(|| format!("cannot export into {}", args.to.display()))?;
    if tty {
        eprintln!();
    }
    let mut out = std::io::stdout().lock();
    for (path, outcome) in &summary.outcomes {
        let (status, exported, reason) = match outcome {
            Outcome::Exported(n) => ("exported", Some(n.as_str()), None),
            Outcome::AlreadyThere(n) => ("already_there", Some(n.as_str()), None),
            Outcome::Failed(why) => ("failed", None, Some(why.as_str())),
        };
        if args.json {
            let mut line = serde_json::to_value(JsonPath::new(path))?;
            line["exported"] = json!(exported);
            line["status"] = json!(status);
            line["reason"] = json!(reason);
            writeln!(out, "{line}")?;
        } else if let Some(why) = reason {
            eprintln!("{}: {why}", path.display());
        }
    }
    let failed = summary.failed().len();
    let verb = if args.move_files { "moved" } else { "exported" };
    let line = format!(
        "{verb} {} image(s) to {}, {} already there, {failed} failed{}; manifest: {}",
        summary.exported(),
        args.to.display(),
        summary.skipped(),
        if summary.cancelled { " (interrupted: run again to finish)" } else { "" },
        args.to.join(rewardlens::library::export::MANIFEST_JSON).display()
    );
    if args.json {
        eprintln!("{line}")
    } else {
        writeln!(out, "{line}")?
    }
    Ok(if failed > 0 || summary.cancelled { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
