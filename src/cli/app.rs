//! No subcommand: the desktop app, on the folders given (made absolute) or the library as the
//! last run left it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// Opens the app window.
pub fn run(model: Option<PathBuf>, db: Option<PathBuf>, folders: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let absolute = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
    let folders = folders.into_iter().map(absolute).collect();
    let config = rewardlens::ui::AppConfig::platform(db.map(absolute), model.map(absolute), folders)?;
    rewardlens::ui::run(config)?;
    Ok(ExitCode::SUCCESS)
}
