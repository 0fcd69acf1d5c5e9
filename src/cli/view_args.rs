//! The flags `list` and `groups` share: which library, which images (the view's filter) and whose
//! rewards, turned into a [`ViewFilter`] with the errors a user can act on.

use std::path::{Path, PathBuf};

use anyhow::Context;

use rewardlens::library::store::Store;
use rewardlens::library::views::{ScoreStatus, ViewFilter};

/// Which library and which of its images (`list` and `groups` take the same filters).
#[derive(clap::Args, Debug, Clone)]
pub struct ViewArgs {
    /// Library database; the platform data directory's `library.sqlite3` by default.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Rewards against this prompt instead of each image's own (a rerank), from stored scores.
    #[arg(long, value_parser = non_empty_prompt)]
    pub prompt: Option<String>,
    /// Only images whose prompt contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Only images made with this checkpoint (repeat for any of several).
    #[arg(long, value_name = "NAME")]
    pub checkpoint: Vec<String>,
    /// Only images written by this generator: a1111, comfyui, invokeai, … (repeat for several).
    #[arg(long, value_name = "NAME")]
    pub generator: Vec<String>,
    /// Only images made with this sampler (repeat for several).
    #[arg(long, value_name = "NAME")]
    pub sampler: Vec<String>,
    /// Only favorites.
    #[arg(long)]
    pub favorites: bool,
    /// Only images with a reward of at least X.
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = finite_f64)]
    pub min_score: Option<f64>,
    /// Only images with a reward of at most X.
    #[arg(long, value_name = "X", allow_negative_numbers = true, value_parser = finite_f64)]
    pub max_score: Option<f64>,
    /// Only images rated at least N (1..7).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=7))]
    pub min_rating: Option<u8>,
    /// Only images rated at most N (1..7).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=7))]
    pub max_rating: Option<u8>,
    /// Only images without a reward yet (readable files).
    #[arg(long, conflicts_with_all = ["failed", "min_score", "max_score"])]
    pub unscored: bool,
    /// Only images whose file could not be read or decoded.
    #[arg(long, conflicts_with_all = ["min_score", "max_score"])]
    pub failed: bool,
    /// Also images whose file has gone missing.
    #[arg(long)]
    pub include_missing: bool,
    /// Only images in these watched folders (as added with `rewardlens scan`).
    #[arg(value_name = "FOLDER")]
    pub folders: Vec<PathBuf>,
}

/// A prompt flag's value: not blank (a blank prompt ranks nothing).
fn non_empty_prompt(text: &str) -> Result<String, String> {
    if text.trim().is_empty() { Err("the prompt is empty".to_string()) } else { Ok(text.to_string()) }
}

/// A score bound: a finite number (NaN would silently match nothing).
fn finite_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{text:?} is not a finite number")),
    }
}

impl ViewArgs {
    /// The database file: `--db` or the platform default.
    pub fn db_path(&self) -> anyhow::Result<PathBuf> {
        match &self.db {
            Some(path) => Ok(path.clone()),
            None => Store::default_path().context("no place for the library database; pass --db"),
        }
    }

    /// Opens the library, refusing to create one where there is none (a typo in `--db` would
    /// otherwise list an empty library).
    pub fn open_store(&self) -> anyhow::Result<(Store, PathBuf)> {
        let path = self.db_path()?;
        if !path.is_file() {
            anyhow::bail!("no library database at {}; add folders with `rewardlens scan` first", path.display());
        }
        let store = Store::open(&path).context("cannot open the library")?;
        Ok((store, path))
    }

    /// The view's filter; each FOLDER must be a watched folder.
    pub fn filter(&self, store: &Store) -> anyhow::Result<ViewFilter> {
        let status = if self.unscored {
            Some(ScoreStatus::Unscored)
        } else if self.failed {
            Some(ScoreStatus::Failed)
        } else {
            None
        };
        Ok(ViewFilter {
            text: self.search.clone().filter(|t| !t.trim().is_empty()),
            checkpoints: self.checkpoint.clone(),
            generators: self.generator.clone(),
            samplers: self.sampler.clone(),
            folders: folder_ids(store, &self.folders)?,
            favorites: self.favorites,
            min_rating: self.min_rating,
            max_rating: self.max_rating,
            status,
            min_score: self.min_score,
            max_score: self.max_score,
            include_missing: self.include_missing,
            ..ViewFilter::default()
        })
    }
}

/// The model whose stored rewards a view shows: the one the library was last scored with. Says on
/// stderr when there is none, so empty rewards are not mistaken for a bug.
pub fn stored_model(store: &Store) -> anyhow::Result<Option<String>> {
    let model = store.last_model_id().context("cannot read the library")?;
    if model.is_none() {
        eprintln!("no model has scored this library yet; rewards are empty");
    }
    Ok(model)
}

/// Row ids of the watched folders named on the command line, matched by canonical path; a folder
/// that is not watched is an error naming it.
fn folder_ids(store: &Store, folders: &[PathBuf]) -> anyhow::Result<Vec<i64>> {
    if folders.is_empty() {
        return Ok(Vec::new());
    }
    let watched = store.folders().context("cannot read the library's folders")?;
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let watched: Vec<(i64, PathBuf, PathBuf)> =
        watched.into_iter().map(|f| (f.id, canonical(&f.path), f.path)).collect();
    folders
        .iter()
        .map(|folder| {
            let wanted = canonical(folder);
            watched
                .iter()
                .find(|(_, canon, stored)| *canon == wanted || stored == folder)
                .map(|(id, _, _)| *id)
                .with_context(|| {
                    format!(
                        "{} is not a watched folder of this library (add it with `rewardlens scan {}`)",
                        folder.display(),
                        folder.display()
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_bounds_must_be_finite_and_prompts_not_blank() {
        assert_eq!(finite_f64("-0.5"), Ok(-0.5));
        assert!(finite_f64("nan").is_err() && finite_f64("inf").is_err() && finite_f64("x").is_err());
        assert!(non_empty_prompt("  \n").is_err());
        assert_eq!(non_empty_prompt(" a cat"), Ok(" a cat".to_string()));
    }

    #[test]
    fn folders_match_by_canonical_path_and_an_unknown_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("photos");
        std::fs::create_dir(&watched).unwrap();
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let id = store.add_folder(&std::fs::canonicalize(&watched).unwrap()).unwrap();
        let dotted = dir.path().join("photos").join("..").join("photos");
        assert_eq!(folder_ids(&store, &[dotted]).unwrap(), vec![id]);
        let other = dir.path().join("elsewhere");
        let err = folder_ids(&store, std::slice::from_ref(&other)).unwrap_err();
        assert!(format!("{err:#}").contains(&other.display().to_string()), "{err:#}");
    }
}
