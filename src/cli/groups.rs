//! `rewardlens groups`: the library summed up by prompt (how many images, how good the best) or by
//! checkpoint (a leaderboard with 95% intervals, and paired comparisons on the prompts checkpoints
//! share), over the same filters as `list`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::view_args::{ViewArgs, stored_model};
use rewardlens::library::groups::{CheckpointComparison, CheckpointGroup, Leaderboard, PromptGroup};
use rewardlens::library::views::{ViewOrder, ViewQuery};

/// What `groups` groups by.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum By {
    /// Prompt groups (case and spacing ignored), best reward first.
    #[default]
    Prompt,
    /// The checkpoint leaderboard, best mean reward first, with paired comparisons.
    Checkpoint,
}

/// Arguments of `rewardlens groups`.
#[derive(clap::Args, Debug)]
pub struct GroupsArgs {
    /// Which library and which images.
    #[command(flatten)]
    pub view: ViewArgs,
    /// Group by prompt or checkpoint.
    #[arg(long, value_enum, default_value_t = By::Prompt)]
    pub by: By,
    /// One JSON object per line on stdout (each with a `kind`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One `--json` line: the figures of a group, a checkpoint or a comparison, tagged with its kind
/// (`prompt_group`, `checkpoint` or `comparison`) so one reader can tell the lines apart.
#[derive(Debug, Serialize)]
struct Line<'a, T: Serialize> {
    kind: &'static str,
    #[serde(flatten)]
    figures: &'a T,
}

/// Runs the subcommand.
pub fn run(args: &GroupsArgs) -> anyhow::Result<ExitCode> {
    let (store, _) = args.view.open_store()?;
    let filter = args.view.filter(&store)?;
    let order = args.view.prompt.clone().map_or(ViewOrder::Reward, ViewOrder::RewardFor);
    let query = ViewQuery { filter, order, reverse: false, model_id: stored_model(&store)? };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.by {
        By::Prompt => {
            let groups = store.prompt_groups(&query).context("cannot read the library")?;
            if args.json {
                for g in &groups {
                    writeln!(out, "{}", serde_json::to_string(&Line { kind: "prompt_group", figures: g })?)?;
                }
            } else {
                prompt_table(&mut out, &groups)?;
            }
        }
        By::Checkpoint => {
            let board = store.checkpoint_leaderboard(&query).context("cannot read the library")?;
            if args.json {
                for c in &board.checkpoints {
                    writeln!(out, "{}", serde_json::to_string(&Line { kind: "checkpoint", figures: c })?)?;
                }
                for c in &board.comparisons {
                    writeln!(out, "{}", serde_json::to_string(&Line { kind: "comparison", figures: c })?)?;
                }
            } else {
                leaderboard_table(&mut out, &board)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A number with 4 decimals, or `-`.
fn num(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.4}"))
}

/// A confidence interval as `[lo, hi]`, or `-`.
fn interval(ci: Option<(f64, f64)>) -> String {
    ci.map_or("-".to_string(), |(lo, hi)| format!("[{lo:.4}, {hi:.4}]"))
}

/// Text cut to `max` characters on one line, with `…` where it was cut.
fn cut(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() > max {
        one_line.chars().take(max.saturating_sub(1)).chain(std::iter::once('…')).collect()
    } else {
        one_line
    }
}

fn prompt_table(out: &mut impl Write, groups: &[PromptGroup]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>5}  {:>6}  {:>6}  {:>8}  {:>8}  {:>8}  prompt",
        "rank", "images", "scored", "best", "mean", "std"
    )?;
    for (i, g) in groups.iter().enumerate() {
        writeln!(
            out,
            "{:>5}  {:>6}  {:>6}  {:>8}  {:>8}  {:>8}  {}",
            i + 1,
            g.images,
            g.scored,
            num(g.best_reward),
            num(g.mean_reward),
            num(g.std_reward),
            cut(&g.prompt, 60)
        )?;
    }
    Ok(())
}

fn leaderboard_table(out: &mut impl Write, board: &Leaderboard) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>4}  {:<32}  {:<12}  {:>6}  {:>7}  {:>6}  {:>8}  95% interval",
        "rank", "checkpoint", "hash", "images", "prompts", "scored", "mean"
    )?;
    for (i, c) in board.checkpoints.iter().enumerate() {
        checkpoint_row(out, i + 1, c)?;
    }
    if board.comparisons.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "paired on shared prompts (A − B, mean per prompt):")?;
    writeln!(
        out,
        "{:<32}  {:<32}  {:>6}  {:>9}  {:<20}  {:>6}",
        "A", "B", "shared", "mean diff", "95% interval", "A wins"
    )?;
    for c in &board.comparisons {
        comparison_row(out, c)?;
    }
    Ok(())
}

fn checkpoint_row(out: &mut impl Write, rank: usize, c: &CheckpointGroup) -> std::io::Result<()> {
    writeln!(
        out,
        "{rank:>4}  {:<32}  {:<12}  {:>6}  {:>7}  {:>6}  {:>8}  {}",
        cut(&c.checkpoint, 32),
        cut(c.checkpoint_hash.as_deref().unwrap_or("-"), 12),
        c.images,
        c.prompts,
        c.scored,
        num(c.mean_reward),
        interval(c.ci95)
    )
}

fn comparison_row(out: &mut impl Write, c: &CheckpointComparison) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<32}  {:<32}  {:>6}  {:>9.4}  {:<20}  {:>5.0}%",
        cut(&c.a, 32),
        cut(&c.b, 32),
        c.shared_prompts,
        c.mean_difference,
        interval(c.ci95),
        c.a_wins * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_their_kind_beside_the_figures() {
        let c = CheckpointComparison {
            a: "x".into(),
            b: "y".into(),
            shared_prompts: 2,
            mean_difference: 0.5,
            ci95: Some((-1.0, 2.0)),
            a_wins: 0.75,
        };
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&Line { kind: "comparison", figures: &c }).unwrap()).unwrap();
        assert_eq!(v["kind"], "comparison");
        assert_eq!(v["ci95"], serde_json::json!([-1.0, 2.0]));
        assert_eq!(v["a_wins"], 0.75);
    }

    #[test]
    fn intervals_print_as_brackets_and_long_names_are_cut() {
        assert_eq!(interval(Some((-0.25, 1.5))), "[-0.2500, 1.5000]");
        assert_eq!(interval(None), "-");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("a\nb", 4), "a b");
    }
}
