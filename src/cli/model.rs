//! `rewardlens model list|path|download`: which model would be used and why, and fetching the
//! published one into the Hugging Face cache the Python tools share.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rewardlens::model::hub::{Hub, HubSettings, Progress, human_bytes};
use rewardlens::model::locate::{CacheDirs, Candidate, candidates, locate};
use serde_json::json;

/// Arguments of `rewardlens model`.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ModelCommand {
    /// Every place a model is looked for, in order, with what each holds.
    List {
        /// A model folder to put first (as `--model` elsewhere).
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        /// One JSON object per place.
        #[arg(long)]
        json: bool,
    },
    /// The model folder that would be used, and why (exit 1 when there is none).
    Path {
        /// A model folder to check first (as `--model` elsewhere).
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        /// A JSON object with the folder and where it was found.
        #[arg(long)]
        json: bool,
    },
    /// Download ImageReward (THUDM/ImageReward: ImageReward.pt, med_config.json) into the Hugging
    /// Face hub cache, resuming an interrupted download; honours HF_ENDPOINT, HF_TOKEN, HF_HOME and
    /// HF_HUB_CACHE.
    Download {
        /// Another repository in the same format (OWNER/NAME).
        #[arg(long, default_value = rewardlens::model::locate::HUB_REPO)]
        repo: String,
        /// Branch, tag or commit.
        #[arg(long, default_value = "main")]
        revision: String,
        /// A JSON summary on stdout (progress still goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

/// Runs the subcommand.
pub fn run(args: &ModelArgs) -> anyhow::Result<ExitCode> {
    let dirs = CacheDirs::from_env();
    match &args.command {
        ModelCommand::List { model, json } => {
            let all = candidates(model.as_deref(), &dirs);
            let chosen = locate(model.as_deref(), &dirs).ok();
            let mut out = std::io::stdout().lock();
            for c in &all {
                let used = chosen.as_ref().is_some_and(|u| u.path == c.path);
                if *json {
                    writeln!(out, "{}", candidate_json(c, used))?;
                } else {
                    let state = match &c.found {
                        Ok(_) if used => "used".to_string(),
                        Ok(_) => "usable".to_string(),
                        Err(e) => e.clone(),
                    };
                    writeln!(out, "{}  [{}]  {}", c.path.display(), c.origin, state)?;
                }
            }
            if all.is_empty() && !json {
                writeln!(out, "no place to look: HOME is not set and no --model was given")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Path { model, json } => {
            let found = locate(model.as_deref(), &dirs)?;
            if *json {
                println!("{}", candidate_json(&found, true));
            } else {
                println!("{}", found.path.display());
                eprintln!("from {}", found.origin);
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Download { repo, revision, json } => {
            let mut settings = HubSettings::from_vars(|n| std::env::var_os(n), &dirs)
                .context("no cache folder: set HOME, HF_HOME or HF_HUB_CACHE")?;
            settings.repo = repo.clone();
            settings.revision = revision.clone();
            eprintln!(
                "downloading {} ({}) from {} into {}",
                settings.repo,
                settings.revision,
                settings.endpoint,
                settings.cache.display()
            );
            let hub = Hub::new(settings);
            // Ctrl-C stops between reads; what arrived stays for the next run to resume.
            let result = hub.download(&mut progress_line, super::interrupt::stop_flag());
            eprintln!();
            let got = result?;
            let secs = got.elapsed.as_secs_f64().max(1e-3);
            eprintln!(
                "done: {} fetched in {:.1} s ({}/s), {} already there",
                human_bytes(got.fetched),
                secs,
                human_bytes((got.fetched as f64 / secs) as u64),
                human_bytes(got.reused)
            );
            if *json {
                let summary = json!({
                    "path": got.dir, "commit": got.commit, "fetched_bytes": got.fetched,
                    "reused_bytes": got.reused, "seconds": secs,
                });
                println!("{summary}");
            } else {
                println!("{}", got.dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn candidate_json(c: &Candidate, used: bool) -> serde_json::Value {
    let (origin, revision) = match &c.origin {
        rewardlens::model::locate::ModelOrigin::Chosen => ("chosen", None),
        rewardlens::model::locate::ModelOrigin::ImageRewardCache => ("imagereward_cache", None),
        rewardlens::model::locate::ModelOrigin::HubCache { revision } => ("hub_cache", Some(revision.clone())),
    };
    json!({
        "path": c.path, "origin": origin, "revision": revision, "usable": c.is_usable(), "used": used,
        "problem": c.found.as_ref().err(),
    })
}

/// One line on stderr, rewritten in place on a terminal (a line every 5 s otherwise): bytes, rate
/// and time left.
fn progress_line(p: &Progress) {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !tty {
        let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed().as_secs() < 5) && p.done < p.total {
            return;
        }
        *last = Some(std::time::Instant::now());
    }
    let pct = if p.total > 0 { p.done as f64 * 100.0 / p.total as f64 } else { 0.0 };
    let eta = p.eta.map_or_else(|| "--".to_string(), |d| format!("{}:{:02}", d.as_secs() / 60, d.as_secs() % 60));
    let (start, end) = if tty { ("\r", "\x1b[K") } else { ("", "\n") };
    eprint!(
        "{start}{:>5.1}%  {} / {}  {}/s  {} left  {}{end}",
        pct,
        human_bytes(p.done),
        human_bytes(p.total),
        human_bytes(p.rate as u64),
        eta,
        p.file
    );
}
