//! Getting the good images out: the chosen images of a view copied (or moved) into a folder with
//! their `.txt` sidecars and a manifest (`manifest.json`, `manifest.csv`) of what each one is.
//!
//! Nothing is ever overwritten: a name taken by another file gets a numbered suffix, each file is
//! written under a temporary name and linked into place only where nothing exists, and a file
//! already exported (same content under the name it would get) is recognised, so an export that
//! was interrupted and run again finishes without duplicates.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError};
use super::views::{SlimRow, ViewQuery};
use crate::image_file::ContentHash;

/// The manifest's file names in the export folder.
pub const MANIFEST_JSON: &str = "manifest.json";
/// The manifest as a table, for spreadsheets.
pub const MANIFEST_CSV: &str = "manifest.csv";
/// Prefix of files being written (left only by a kill; removed by the next export).
const TEMP_PREFIX: &str = ".rewardlens-export-";

/// Which of the view's images (ordered best first) are exported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    /// Every image of the view.
    All,
    /// The N best.
    Top(usize),
    /// The best P percent (rounded up, at least one when the view has any).
    TopPercent(f64),
}

/// Copy or move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transfer {
    /// The originals stay.
    Copy,
    /// The originals go (their library rows are marked missing until the folder is scanned).
    Move,
}

/// One image to export, with what the manifest says of it.
#[derive(Debug, Clone)]
pub struct ExportItem {
    /// The image's row.
    pub row: SlimRow,
    /// Its negative prompt, seed, sampler, steps and CFG.
    pub params: Option<crate::library::metadata::GenerationParams>,
    /// Percent of the library's scored images with a lower reward.
    pub percentile: Option<f64>,
    /// The prompt the reward was computed against.
    pub reward_prompt: Option<String>,
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Where the image came from.
    pub source_path: String,
    /// Its file name in the export folder.
    pub exported_name: String,
    /// The `.txt` sidecar's name beside it, when one was exported.
    pub sidecar_name: Option<String>,
    /// BLAKE3 of its content.
    pub content_hash: Option<String>,
    /// Positive prompt.
    pub prompt: Option<String>,
    /// Negative prompt.
    pub negative_prompt: Option<String>,
    /// Checkpoint.
    pub checkpoint: Option<String>,
    /// Seed.
    pub seed: Option<i64>,
    /// Sampler.
    pub sampler: Option<String>,
    /// Steps.
    pub steps: Option<u32>,
    /// CFG scale.
    pub cfg: Option<f64>,
    /// Reward.
    pub reward: Option<f64>,
    /// The prompt the reward is against.
    pub reward_prompt: Option<String>,
    /// Reward percentile in the library.
    pub percentile: Option<f64>,
    /// Overall rating 1..7.
    pub rating: Option<u8>,
    /// Favorite.
    pub favorite: bool,
}

/// The manifest file: who wrote it and every image exported into the folder so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `"rewardlens"`: a manifest.json that says otherwise is not ours and is left alone.
    pub generator: String,
    /// The model whose rewards are listed.
    pub model_id: Option<String>,
    /// The images, in export order.
    pub images: Vec<ManifestEntry>,
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written under this name.
    Exported(String),
    /// Already there from an earlier export, under this name.
    AlreadyThere(String),
    /// Not exported, and why (the original is untouched).
    Failed(String),
}

/// Progress, after each image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportProgress {
    /// Images handled.
    pub done: usize,
    /// Images chosen.
    pub total: usize,
}

/// What an export did.
#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    /// Each image's source and outcome, in order.
    pub outcomes: Vec<(PathBuf, Outcome)>,
    /// Whether it was cancelled before the end.
    pub cancelled: bool,
}

impl ExportSummary {
    /// Images newly written.
    pub fn exported(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Exported(_))).count()
    }

    /// Images found already exported.
    pub fn skipped(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::AlreadyThere(_))).count()
    }

    /// Images that failed, with why.
    pub fn failed(&self) -> Vec<(&Path, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(p, o)| match o {
                Outcome::Failed(why) => Some((p.as_path(), why.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// Why an export could not start or could not record what it did.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The library could not be read.
    #[error("cannot read the library: {0}")]
    Store(#[from] StoreError),
    /// The folder cannot be made or written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A `manifest.json` that RewardLens did not write is in the way.
    #[error("{} exists and was not written by RewardLens; export into another folder", .0.display())]
    ForeignManifest(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_path_buf(), source }
}

/// The view's images best first, picked, with what the manifest needs of each. Images without a
/// reward come last in the view and count for `Top`/`TopPercent` only when there are too few
/// scored ones.
pub fn plan(store: &Store, query: &ViewQuery, pick: Pick) -> Result<Vec<ExportItem>, ExportError> {
    let view = store.view(query)?;
    let take = match pick {
        Pick::All => view.len(),
        Pick::Top(n) => n.min(view.len()),
        Pick::TopPercent(p) => super::views::share_of(view.len(), p),
    };
    let ids: Vec<i64> = view.entries[..take].iter().map(|e| e.image_id).collect();
    plan_ids(store, &ids, query)
}

/// These images (a selection), in this order, with what the manifest needs of each, their rewards
/// as `query` gives them.
pub fn plan_ids(store: &Store, ids: &[i64], query: &ViewQuery) -> Result<Vec<ExportItem>, ExportError> {
    let percentiles = library_percentiles(store, query)?;
    let mut items = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        for row in store.slim_rows(chunk, query)? {
            let params = store.image_params(row.image_id)?;
            let reward_prompt =
                row.reward.and(query.reward_prompt().map(str::to_string).or_else(|| row.prompt.clone()));
            items.push(ExportItem { percentile: percentiles.get(&row.image_id).copied(), params, reward_prompt, row });
        }
    }
    Ok(items)
}

/// Each scored image's reward percentile among all the library's scored images (same model and
/// prompt rule as `query`): 100 the best, 0 the worst.
fn library_percentiles(store: &Store, query: &ViewQuery) -> Result<HashMap<i64, f64>, ExportError> {
    let all = ViewQuery { filter: Default::default(), ..query.clone() };
    let view = store.view(&all)?;
    let mut scored: Vec<(i64, f32)> = view.entries.iter().filter_map(|e| Some((e.image_id, e.reward?))).collect();
    scored.sort_by(|a, b| a.1.total_cmp(&b.1));
    let n = scored.len();
    let mut out = HashMap::with_capacity(n);
    let mut i = 0;
    while i < n {
        // Ties share the percentile of the lowest of them.
        let mut j = i;
        while j + 1 < n && scored[j + 1].1 == scored[i].1 {
            j += 1;
        }
        let pct = if n > 1 { i as f64 * 100.0 / (n - 1) as f64 } else { 100.0 };
        for s in &scored[i..=j] {
            out.insert(s.0, pct);
        }
        i = j + 1;
    }
    Ok(out)
}

/// Exports `items` into `to` (made if absent), then writes the manifest with every image exported
/// there so far. `progress` hears after each image; `cancel` stops between images.
pub fn export(
    store: &mut Store,
    items: &[ExportItem],
    to: &Path,
    transfer: Transfer,
    model_id: Option<&str>,
    progress: &mut dyn FnMut(&ExportProgress),
    cancel: &AtomicBool,
) -> Result<ExportSummary, ExportError> {
    std::fs::create_dir_all(to).map_err(io_err(to))?;
    let manifest_path = to.join(MANIFEST_JSON);
    let mut manifest = read_manifest(&manifest_path)?.unwrap_or_else(|| Manifest {
        generator: "rewardlens".into(),
        model_id: None,
        images: Vec::new(),
    });
    manifest.model_id = model_id.map(str::to_string).or(manifest.model_id);
    remove_leftover_temps(to);
    let mut by_hash: HashMap<String, usize> = HashMap::new();
    for (i, e) in manifest.images.iter().enumerate() {
        if let Some(h) = &e.content_hash {
            by_hash.insert(h.clone(), i);
        }
    }
    let mut summary = ExportSummary::default();
    for (done, item) in items.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            summary.cancelled = true;
            break;
        }
        let outcome = export_one(store, item, to, transfer, &manifest, &by_hash);
        let name = match &outcome {
            Outcome::Exported(n) | Outcome::AlreadyThere(n) => Some(n.clone()),
            Outcome::Failed(_) => None,
        };
        if let Some(name) = name {
            let entry = manifest_entry(item, &name, to);
            match manifest.images.iter().position(|e| e.exported_name == name) {
                Some(i) => manifest.images[i] = entry,
                None => {
                    if let Some(h) = &entry.content_hash {
                        by_hash.insert(h.clone(), manifest.images.len());
                    }
                    manifest.images.push(entry);
                }
            }
        }
        summary.outcomes.push((item.row.path.clone(), outcome));
        progress(&ExportProgress { done: done + 1, total: items.len() });
    }
    write_manifest(to, &manifest)?;
    Ok(summary)
}

fn export_one(
    store: &mut Store,
    item: &ExportItem,
    to: &Path,
    transfer: Transfer,
    manifest: &Manifest,
    by_hash: &HashMap<String, usize>,
) -> Outcome {
    let src = &item.row.path;
    let Some(file_name) = src.file_name() else { return Outcome::Failed("the path has no file name".into()) };
    // Exported before (the manifest knows it and the file is still there, same size).
    if let Some(hash) = &item.row.content_hash
        && let Some(&i) = by_hash.get(hash.as_str())
    {
        let name = &manifest.images[i].exported_name;
        let there = to.join(name);
        if same_content(&there, hash) {
            if transfer == Transfer::Move && src.is_file() {
                // Moved before, but the source came back: the copy there is the one kept.
                return match finish_move(store, src) {
                    Ok(()) => Outcome::AlreadyThere(name.clone()),
                    Err(e) => Outcome::Failed(e),
                };
            }
            return Outcome::AlreadyThere(name.clone());
        }
    }
    let bytes_len = match std::fs::metadata(src) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Outcome::Failed("not a regular file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Failed("the file is gone".into()),
        Err(e) => return Outcome::Failed(format!("cannot read it: {e}")),
    };
    let sidecar = src.with_extension("txt");
    let sidecar = sidecar.is_file().then_some(sidecar);
    for n in 0..10_000u32 {
        let name = numbered(Path::new(file_name), n);
        let target = to.join(&name);
        let target_txt = target.with_extension("txt");
        if target.exists() || std::fs::symlink_metadata(&target).is_ok() {
            // An interrupted run's file: the same content under the name it would get.
            if let Some(hash) = &item.row.content_hash
                && std::fs::metadata(&target).is_ok_and(|m| m.len() == bytes_len)
                && same_content(&target, hash)
            {
                if let Some(txt) = &sidecar
                    && !target_txt.exists()
                {
                    let _ = place(txt, &target_txt, Transfer::Copy);
                }
                if transfer == Transfer::Move
                    && let Err(e) = finish_move(store, src)
                {
                    return Outcome::Failed(e);
                }
                return Outcome::AlreadyThere(name.to_string_lossy().into_owned());
            }
            continue;
        }
        if sidecar.is_some() && target_txt.exists() {
            continue;
        }
        match place(src, &target, transfer) {
            Ok(true) => {}
            Ok(false) => continue, // taken meanwhile
            Err(e) => return Outcome::Failed(e),
        }
        if let Some(txt) = &sidecar
            && let Err(e) = place(txt, &target_txt, transfer).and_then(|placed| {
                if placed { Ok(()) } else { Err(format!("{} appeared meanwhile", target_txt.display())) }
            })
        {
            return Outcome::Failed(format!("exported as {}, but not its sidecar: {e}", name.to_string_lossy()));
        }
        if transfer == Transfer::Move
            && let Err(e) = store.mark_missing(src)
        {
            return Outcome::Failed(format!(
                "moved as {}, but the library was not updated: {e}",
                name.to_string_lossy()
            ));
        }
        return Outcome::Exported(name.to_string_lossy().into_owned());
    }
    Outcome::Failed("every numbered name up to 9999 is taken".into())
}

/// Removes the original of an image already in the export folder and marks its row missing.
fn finish_move(store: &mut Store, src: &Path) -> Result<(), String> {
    std::fs::remove_file(src).map_err(|e| format!("cannot remove the original: {e}"))?;
    let txt = src.with_extension("txt");
    let _ = std::fs::remove_file(txt);
    store.mark_missing(src).map(|_| ()).map_err(|e| format!("the library was not updated: {e}"))
}

/// `name.png`, `name-1.png`, `name-2.png`, …
fn numbered(name: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return name.to_path_buf();
    }
    let stem = name.file_stem().unwrap_or_default().to_string_lossy();
    match name.extension() {
        Some(ext) => PathBuf::from(format!("{stem}-{n}.{}", ext.to_string_lossy())),
        None => PathBuf::from(format!("{stem}-{n}")),
    }
}

fn same_content(path: &Path, hash: &ContentHash) -> bool {
    std::fs::read(path).is_ok_and(|bytes| ContentHash::of(&bytes) == *hash)
}

/// Puts `src` at `target` only if nothing is there (`Ok(false)` when something is): a move is a
/// hard link then an unlink on the same file system; otherwise the bytes go to a temporary name,
/// are flushed to disk, and are linked into place (a link never replaces an existing file).
fn place(src: &Path, target: &Path, transfer: Transfer) -> Result<bool, String> {
    if transfer == Transfer::Move {
        match std::fs::hard_link(src, target) {
            Ok(()) => {
                std::fs::remove_file(src).map_err(|e| format!("linked, but cannot remove the original: {e}"))?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(_) => {} // another file system: copy, then remove
        }
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!("{TEMP_PREFIX}{}-{}.tmp", std::process::id(), unique()));
    let copied = std::fs::copy(src, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .map_err(|e| format!("cannot copy into {}: {e}", dir.display()));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let linked = std::fs::hard_link(&tmp, target);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(format!("cannot name it {}: {e}", target.display())),
    }
    if transfer == Transfer::Move {
        std::fs::remove_file(src).map_err(|e| format!("copied, but cannot remove the original: {e}"))?;
    }
    Ok(true)
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn remove_leftover_temps(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn manifest_entry(item: &ExportItem, name: &str, to: &Path) -> ManifestEntry {
    let p = item.params.as_ref();
    let sidecar = Path::new(name).with_extension("txt");
    ManifestEntry {
        source_path: item.row.path.to_string_lossy().into_owned(),
        exported_name: name.to_string(),
        sidecar_name: to.join(&sidecar).is_file().then(|| sidecar.to_string_lossy().into_owned()),
        content_hash: item.row.content_hash.as_ref().map(|h| h.as_str().to_string()),
        prompt: item.row.prompt.clone(),
        negative_prompt: p.and_then(|p| p.negative_prompt.clone()),
        checkpoint: item.row.checkpoint.clone(),
        seed: p.and_then(|p| p.seed),
        sampler: p.and_then(|p| p.sampler.clone()),
        steps: p.and_then(|p| p.steps),
        cfg: p.and_then(|p| p.cfg),
        reward: item.row.reward,
        reward_prompt: item.reward_prompt.clone(),
        percentile: item.percentile,
        rating: item.row.rating,
        favorite: item.row.favorite,
    }
}

/// The folder's manifest, if it has one of ours; an error if it has someone else's.
pub fn read_manifest(path: &Path) -> Result<Option<Manifest>, ExportError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ExportError::Io { path: path.to_path_buf(), source: e }),
    };
    match serde_json::from_str::<Manifest>(&text) {
        Ok(m) if m.generator == "rewardlens" => Ok(Some(m)),
        _ => Err(ExportError::ForeignManifest(path.to_path_buf())),
    }
}

fn write_manifest(to: &Path, manifest: &Manifest) -> Result<(), ExportError> {
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| ExportError::Io { path: to.join(MANIFEST_JSON), source: std::io::Error::other(e) })?;
    write_replacing(&to.join(MANIFEST_JSON), &json)?;
    write_replacing(&to.join(MANIFEST_CSV), manifest_csv(manifest).as_bytes())
}

/// Writes one of our own files through a temporary name, so a kill leaves the old one whole.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let tmp = path.with_file_name(format!("{TEMP_PREFIX}{}-{}.tmp", std::process::id(), unique()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ExportError::Io { path: path.to_path_buf(), source: e }
    })
}

/// The manifest as CSV (RFC 4180 quoting), one row per image.
pub fn manifest_csv(manifest: &Manifest) -> String {
    const HEADER: &str = "source_path,exported_name,sidecar_name,content_hash,prompt,negative_prompt,checkpoint,\
                          seed,sampler,steps,cfg,reward,reward_prompt,percentile,rating,favorite";
    let mut out = String::from(HEADER);
    out.push_str("\r\n");
    let opt = |v: Option<String>| v.unwrap_or_default();
    for e in &manifest.images {
        let fields = [
            e.source_path.clone(),
            e.exported_name.clone(),
            opt(e.sidecar_name.clone()),
            opt(e.content_hash.clone()),
            opt(e.prompt.clone()),
            opt(e.negative_prompt.clone()),
            opt(e.checkpoint.clone()),
            opt(e.seed.map(|v| v.to_string())),
            opt(e.sampler.clone()),
            opt(e.steps.map(|v| v.to_string())),
            opt(e.cfg.map(|v| v.to_string())),
            opt(e.reward.map(|v| format!("{v:.6}"))),
            opt(e.reward_prompt.clone()),
            opt(e.percentile.map(|v| format!("{v:.2}"))),
            opt(e.rating.map(|v| v.to_string())),
            e.favorite.to_string(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::library::scan::{ScanOptions, scan_folders};
    use crate::library::store::ScoreRow;
    use crate::library::views::{ViewFilter, ViewOrder};
    use crate::model::PromptTokenizer;

    /// The fake model the test library is scored with.
    pub(crate) const MODEL: &str = "imagereward-test";

    /// A scanned library of `n` synthetic PNGs in `DIR/images`, image i scored i/10 (so
    /// `img_000000` is the worst), with a `.txt` sidecar beside the first two.
    pub(crate) fn scored_library(n: usize) -> (tempfile::TempDir, Store, Vec<SlimRow>) {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        crate::synthetic::write_synthetic_pngs(&images, n).unwrap();
        for i in 0..2 {
            std::fs::write(images.join(format!("img_{i:06}.txt")), format!("caption {i}")).unwrap();
        }
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let stop = AtomicBool::new(false);
        scan_folders(&mut store, std::slice::from_ref(&images), &ScanOptions::default(), |_| {}, &stop).unwrap();
        let query = ViewQuery { order: ViewOrder::Name, ..ViewQuery::default() };
        let ids: Vec<i64> = store.view(&query).unwrap().entries.iter().map(|e| e.image_id).collect();
        let rows = store.slim_rows(&ids, &query).unwrap();
        let tokenizer = PromptTokenizer::bundled().unwrap();
        let prompts: Vec<String> = rows.iter().map(|r| r.prompt.clone().unwrap()).collect();
        let keys: Vec<_> = prompts.iter().map(|p| tokenizer.encode(p).unwrap()).collect();
        let token_rows: Vec<(&str, _, bool)> =
            prompts.iter().zip(&keys).map(|(p, k)| (p.as_str(), k.key(), k.truncated)).collect();
        store.record_prompt_tokens(MODEL, &token_rows).unwrap();
        let scores: Vec<ScoreRow> = rows
            .iter()
            .zip(&prompts)
            .zip(&keys)
            .enumerate()
            .map(|(i, ((r, p), k))| ScoreRow {
                content_hash: r.content_hash.as_ref().unwrap(),
                prompt: p,
                tokens: k.key(),
                truncated: k.truncated,
                value: i as f64 / 10.0,
            })
            .collect();
        store.record_scores(MODEL, &scores).unwrap();
        (dir, store, rows)
    }

    fn query(filter: ViewFilter) -> ViewQuery {
        ViewQuery { filter, model_id: Some(MODEL.into()), ..ViewQuery::default() }
    }

    fn run(store: &mut Store, items: &[ExportItem], to: &Path, transfer: Transfer) -> ExportSummary {
        export(store, items, to, transfer, Some(MODEL), &mut |_| {}, &AtomicBool::new(false)).unwrap()
    }

    #[test]
    fn the_best_are_copied_with_sidecars_and_a_manifest() {
        let (dir, mut store, rows) = scored_library(10);
        store.add_favorite(rows[1].content_hash.as_ref().unwrap()).unwrap();
        let items = plan(&store, &query(ViewFilter::default()), Pick::Top(3)).unwrap();
        let names: Vec<_> = items.iter().map(|i| i.row.path.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["img_000009.png", "img_000008.png", "img_000007.png"]);
        let to = dir.path().join("out");
        let summary = run(&mut store, &items, &to, Transfer::Copy);
        assert_eq!((summary.exported(), summary.skipped(), summary.failed().len()), (3, 0, 0));
        for item in &items {
            let name = item.row.path.file_name().unwrap();
            assert_eq!(std::fs::read(to.join(name)).unwrap(), std::fs::read(&item.row.path).unwrap());
            assert!(item.row.path.exists(), "a copy leaves the original");
        }
        let manifest = read_manifest(&to.join(MANIFEST_JSON)).unwrap().unwrap();
        assert_eq!(manifest.images.len(), 3);
        let best = &manifest.images[0];
        assert_eq!(best.exported_name, "img_000009.png");
        assert_eq!(best.reward, Some(0.9));
        assert_eq!(best.percentile, Some(100.0));
        assert_eq!(best.seed, Some(9));
        assert_eq!(best.steps, Some(20));
        assert_eq!(best.prompt.as_deref(), Some("synthetic image 9"));
        assert_eq!(best.reward_prompt.as_deref(), Some("synthetic image 9"));
        assert_eq!(best.content_hash.as_deref(), rows[9].content_hash.as_ref().map(|h| h.as_str()));
        let csv = std::fs::read_to_string(to.join(MANIFEST_CSV)).unwrap();
        assert_eq!(csv.lines().count(), 4, "{csv}");
        assert!(csv.lines().nth(1).unwrap().contains("img_000009.png"), "{csv}");

        // Favorites only: the one favorite, with its sidecar.
        let fav = plan(&store, &query(ViewFilter { favorites: true, ..ViewFilter::default() }), Pick::All).unwrap();
        let to_fav = dir.path().join("favorites");
        run(&mut store, &fav, &to_fav, Transfer::Copy);
        assert_eq!(std::fs::read_to_string(to_fav.join("img_000001.txt")).unwrap(), "caption 1");
        let m = read_manifest(&to_fav.join(MANIFEST_JSON)).unwrap().unwrap();
        assert!(m.images[0].favorite);
        assert_eq!(m.images[0].sidecar_name.as_deref(), Some("img_000001.txt"));
    }

    #[test]
    fn files_already_in_the_folder_are_never_overwritten() {
        let (dir, mut store, _) = scored_library(4);
        let to = dir.path().join("out");
        std::fs::create_dir(&to).unwrap();
        std::fs::write(to.join("img_000003.png"), b"the user's own file").unwrap();
        std::fs::write(to.join("img_000002.png"), b"another").unwrap();
        std::fs::write(to.join("img_000002-1.png"), b"and another").unwrap();
        let items = plan(&store, &query(ViewFilter::default()), Pick::Top(2)).unwrap();
        let summary = run(&mut store, &items, &to, Transfer::Copy);
        assert_eq!(summary.exported(), 2);
        assert_eq!(std::fs::read(to.join("img_000003.png")).unwrap(), b"the user's own file");
        assert_eq!(std::fs::read(to.join("img_000002.png")).unwrap(), b"another");
        assert_eq!(std::fs::read(to.join("img_000002-1.png")).unwrap(), b"and another");
        assert_eq!(std::fs::read(to.join("img_000003-1.png")).unwrap(), std::fs::read(&items[0].row.path).unwrap());
        assert_eq!(std::fs::read(to.join("img_000002-2.png")).unwrap(), std::fs::read(&items[1].row.path).unwrap());
        // A manifest.json someone else wrote is left alone and the export refuses to start.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(MANIFEST_JSON), "{\"name\": \"theirs\"}").unwrap();
        let err = export(&mut store, &items, &other, Transfer::Copy, None, &mut |_| {}, &AtomicBool::new(false));
        assert!(matches!(err, Err(ExportError::ForeignManifest(_))), "{err:?}");
        assert_eq!(std::fs::read_to_string(other.join(MANIFEST_JSON)).unwrap(), "{\"name\": \"theirs\"}");
    }

    #[test]
    fn an_interrupted_export_run_again_finishes_without_duplicates() {
        let (dir, mut store, _) = scored_library(6);
        let items = plan(&store, &query(ViewFilter::default()), Pick::TopPercent(50.0)).unwrap();
        assert_eq!(items.len(), 3);
        let to = dir.path().join("out");
        // The first run is stopped after one image, before its manifest (as a kill would), and leaves
        // a temporary file behind.
        let cancel = AtomicBool::new(false);
        export(&mut store, &items, &to, Transfer::Copy, None, &mut |_| cancel.store(true, Ordering::Relaxed), &cancel)
            .unwrap();
        std::fs::remove_file(to.join(MANIFEST_JSON)).unwrap();
        std::fs::write(to.join(format!("{TEMP_PREFIX}1-1.tmp")), b"half").unwrap();
        let again = run(&mut store, &items, &to, Transfer::Copy);
        assert_eq!((again.exported(), again.skipped()), (2, 1));
        let third = run(&mut store, &items, &to, Transfer::Copy);
        assert_eq!((third.exported(), third.skipped()), (0, 3));
        let mut files: Vec<_> =
            std::fs::read_dir(&to).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        assert_eq!(files, ["img_000003.png", "img_000004.png", "img_000005.png", MANIFEST_CSV, MANIFEST_JSON]);
        assert_eq!(read_manifest(&to.join(MANIFEST_JSON)).unwrap().unwrap().images.len(), 3);
    }

    #[test]
    fn a_move_takes_the_originals_and_marks_their_rows_missing() {
        let (dir, mut store, rows) = scored_library(3);
        let items =
            plan(&store, &query(ViewFilter { min_score: Some(0.05), ..ViewFilter::default() }), Pick::All).unwrap();
        assert_eq!(items.len(), 2);
        let to = dir.path().join("out");
        let bytes = std::fs::read(&rows[1].path).unwrap();
        let summary = run(&mut store, &items, &to, Transfer::Move);
        assert_eq!(summary.exported(), 2);
        assert!(!rows[1].path.exists() && !rows[1].path.with_extension("txt").exists());
        assert_eq!(std::fs::read(to.join("img_000001.png")).unwrap(), bytes);
        assert_eq!(std::fs::read_to_string(to.join("img_000001.txt")).unwrap(), "caption 1");
        assert!(store.image_by_path(&rows[1].path).unwrap().unwrap().missing);
        assert!(rows[0].path.exists(), "the one below the bound stays");
        // A source that is gone is reported, not fatal.
        let again = run(&mut store, &items, &dir.path().join("elsewhere"), Transfer::Copy);
        assert_eq!(again.failed().len(), 2);
        assert!(again.failed()[0].1.contains("gone"), "{:?}", again.failed());
    }
}
