//! `rewardlens cull`: the images a view ranks worst, listed (`--dry-run`) or moved to the system
//! trash (`--trash`); favorites and rated images are kept unless asked for.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::interrupt::stop_flag;
use super::json_path::JsonPath;
use super::view_args::{ViewArgs, stored_model};
use rewardlens::library::cull::{CullRule, Keep, cull_candidates, trash_rows};
use rewardlens::library::views::{ViewOrder, ViewQuery};

/// Arguments of `rewardlens cull`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("rule").required(true).args(["below", "bottom_percent"]))]
#[command(group = clap::ArgGroup::new("action").required(true).args(["dry_run", "trash"]))]
pub struct CullArgs {
    /// Take the images whose reward is below X.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub below: Option<f64>,
    /// Take the worst P percent of the view's scored images.
    #[arg(long, value_name = "P")]
    pub bottom_percent: Option<f64>,
    /// Only list what would go.
    #[arg(long)]
    pub dry_run: bool,
    /// Move them to the system trash (undo from the desktop's trash).
    #[arg(long)]
    pub trash: bool,
    /// Take favorites too.
    #[arg(long)]
    pub include_favorites: bool,
    /// Take rated images too.
    #[arg(long)]
    pub include_rated: bool,
    /// One JSON object per image (`path`, `reward`, `status`, `reason`) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Which library and images (`--search`, `--checkpoint`, folders, …), as in `list`.
    #[command(flatten)]
    pub view: ViewArgs,
}

/// Runs the subcommand; exit status 1 when any file could not be moved.
pub fn run(args: &CullArgs) -> anyhow::Result<ExitCode> {
    let rule = match (args.below, args.bottom_percent) {
        (Some(x), _) if x.is_finite() => CullRule::Below(x),
        (None, Some(p)) if p > 0.0 && p <= 100.0 => CullRule::BottomPercent(p),
        _ => anyhow::bail!("--below takes a finite reward and --bottom-percent a percentage in (0, 100]"),
    };
    let (mut store, _) = args.view.open_store()?;
    let Some(model_id) = stored_model(&store)? else {
        anyhow::bail!("culling by reward needs rewards; score the library first");
    };
    let filter = args.view.filter(&store)?;
    let order = args.view.prompt.clone().map_or(ViewOrder::Reward, ViewOrder::RewardFor);
    let query = ViewQuery { filter, order, reverse: false, model_id: Some(model_id) };
    let keep = Keep { include_favorites: args.include_favorites, include_rated: args.include_rated };
    let rows = cull_candidates(&store, &query, rule, keep).context("cannot read the library")?;
    let mut out = std::io::stdout().lock();
    let line = |out: &mut std::io::StdoutLock,
                row: &rewardlens::library::views::SlimRow,
                status: &str,
                why: Option<String>| {
        if args.json {
            let mut v = serde_json::to_value(JsonPath::new(&row.path))?;
            v["reward"] = json!(row.reward);
            v["status"] = json!(status);
            v["reason"] = json!(why);
            writeln!(out, "{v}")
        } else {
            let reward = row.reward.map_or("-".into(), |r| format!("{r:.4}"));
            match why {
                Some(why) => writeln!(out, "{reward:>8}  {}  NOT MOVED: {why}", row.path.display()),
                None => writeln!(out, "{reward:>8}  {}", row.path.display()),
            }
        }
        .map_err(anyhow::Error::from)
    };
    if args.dry_run {
        for row in &rows {
            line(&mut out, row, "would_trash", None)?;
        }
        eprintln!("{} image(s) would go to the trash (favorites and rated images kept unless asked)", rows.len());
        return Ok(ExitCode::SUCCESS);
    }
    let total = rows.len();
    let summary = trash_rows(&mut store, rows, stop_flag());
    for row in &summary.trashed {
        line(&mut out, row, "trashed", None)?;
    }
    for (row, why) in &summary.failed {
        line(&mut out, row, "failed", Some(why.to_string()))?;
    }
    let left = total - summary.trashed.len() - summary.failed.len();
    eprintln!(
        "moved {} image(s) to the trash, {} could not be moved{}",
        summary.trashed.len(),
        summary.failed.len(),
        if left > 0 { format!(", {left} left (interrupted)") } else { String::new() }
    );
    Ok(if summary.failed.is_empty() && left == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
