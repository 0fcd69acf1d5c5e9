//! The user's judgments as training data, and back: ImageRewardDB-style rows (and the reference
//! training code's `{id, prompt, generations, ranking}` file), preference pairs for pairwise reward
//! training or DPO-style tuning, and reward-weighted rows; importing rows and pairs merges datasets
//! across machines (duplicates found by content hash, a malformed line reported with its number).
//!
//! Output is deterministic (prompts and images in a fixed order, no timestamps), so exporting,
//! importing into a fresh library and exporting again gives identical files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::agreement::stored_rewards;
use super::judgments::{NewComparison, RankedImage, Verdict, flags};
use super::store::{Rating, Store, StoreError};
use crate::image_file::ContentHash;

/// The three dataset shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ImageRewardDB-style rows plus the training code's ranking file.
    ImageReward,
    /// `{"prompt", "chosen", "rejected"}` pairs.
    Pairs,
    /// `{"prompt", "image", "reward", "label"}` rows.
    Weighted,
}

/// File names in the dataset folder.
pub const ROWS_FILE: &str = "imagereward.jsonl";
/// The reference training code's `{id, prompt, generations, ranking}` list.
pub const RANKING_FILE: &str = "imagereward.json";
/// Preference pairs.
pub const PAIRS_FILE: &str = "pairs.jsonl";
/// Reward-weighted rows.
pub const WEIGHTED_FILE: &str = "weighted.jsonl";

/// Why a dataset could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The library.
    #[error("cannot read the library: {0}")]
    Store(#[from] StoreError),
    /// A file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io { path: path.to_path_buf(), source }
}

/// One row of the ImageRewardDB-style file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRow {
    /// A stable id of the prompt (the first 12 hex digits of its BLAKE3 hash).
    pub prompt_id: String,
    /// The prompt.
    pub prompt: String,
    /// The image, relative to the file when it lies under its folder.
    pub image_path: String,
    /// The image's content hash.
    #[serde(default)]
    pub content_hash: Option<String>,
    /// 1 = best; ties share a rank.
    pub rank: u32,
    /// `"ranking"` when the user ranked the group; `"comparisons"` when the rank is worked out from
    /// pairwise comparisons (wins minus losses), which an import does not turn into a ranking.
    #[serde(default)]
    pub rank_from: Option<String>,
    /// Images of this prompt in the file.
    #[serde(default)]
    pub image_amount_in_total: Option<usize>,
    /// 1..7.
    pub overall_rating: Option<u8>,
    /// 1..7.
    pub image_text_alignment_rating: Option<u8>,
    /// 1..7.
    pub fidelity_rating: Option<u8>,
    /// Problem flags by name.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The user's note.
    #[serde(default)]
    pub note: Option<String>,
}

/// One preference pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRow {
    /// The prompt.
    pub prompt: String,
    /// The preferred image's path.
    pub chosen: String,
    /// The other image's path.
    pub rejected: String,
    /// The preferred image's content hash.
    #[serde(default)]
    pub chosen_hash: Option<String>,
    /// The other image's content hash.
    #[serde(default)]
    pub rejected_hash: Option<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Prompts with judgments.
    pub prompts: usize,
    /// Images written.
    pub images: usize,
    /// Non-tie pairs.
    pub pairs: usize,
    /// Judged images with no file on disk (left out).
    pub missing: usize,
}

/// Everything judged for one prompt.
#[derive(Default)]
struct Judged {
    /// The standing ranking, if any.
    ranking: Option<Vec<RankedImage>>,
    /// Non-tie pairs (better, worse), deduplicated.
    pairs: BTreeSet<(ContentHash, ContentHash)>,
    /// Every image judged (compared, not only tied, or ranked).
    images: BTreeSet<ContentHash>,
}

fn judged(store: &Store) -> Result<BTreeMap<String, Judged>, StoreError> {
    let mut out: BTreeMap<String, Judged> = BTreeMap::new();
    for c in store.comparisons()? {
        // A tie carries no preference: its images enter the dataset through other judgments only.
        if c.tie {
            continue;
        }
        let j = out.entry(c.prompt).or_default();
        j.images.insert(c.better.clone());
        j.images.insert(c.worse.clone());
        j.pairs.insert((c.better, c.worse));
    }
    for r in store.rankings()? {
        let j = out.entry(r.prompt).or_default();
        for (i, a) in r.images.iter().enumerate() {
            j.images.insert(a.content_hash.clone());
            for b in &r.images[i + 1..] {
                match a.rank.cmp(&b.rank) {
                    std::cmp::Ordering::Less => j.pairs.insert((a.content_hash.clone(), b.content_hash.clone())),
                    std::cmp::Ordering::Greater => j.pairs.insert((b.content_hash.clone(), a.content_hash.clone())),
                    std::cmp::Ordering::Equal => false,
                };
            }
        }
        j.ranking = Some(r.images);
    }
    Ok(out)
}

/// Ranks from pairwise wins minus losses (Copeland): 1 + the number of images scoring higher.
fn ranks_from_pairs(
    images: &BTreeSet<ContentHash>,
    pairs: &BTreeSet<(ContentHash, ContentHash)>,
) -> BTreeMap<ContentHash, u32> {
    let mut score: BTreeMap<&ContentHash, i64> = images.iter().map(|h| (h, 0)).collect();
    for (better, worse) in pairs {
        *score.entry(better).or_default() += 1;
        *score.entry(worse).or_default() -= 1;
    }
    images.iter().map(|h| (h.clone(), 1 + score.values().filter(|s| **s > score[h]).count() as u32)).collect()
}

/// The id a prompt has in every dataset: the first 12 hex digits of its BLAKE3 hash.
pub fn prompt_id(prompt: &str) -> String {
    blake3::hash(prompt.as_bytes()).to_hex()[..12].to_string()
}

/// Writes the user's judgments as `format` into `to`; with `copy_images`, the images go into
/// `to/images/<content hash>.<ext>` and the rows point there. `model_id` gives the weighted rows
/// their rewards.
pub fn export_dataset(
    store: &Store,
    format: Format,
    to: &Path,
    copy_images: bool,
    model_id: Option<&str>,
) -> Result<ExportSummary, DatasetError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    let judged = judged(store)?;
    let mut summary = ExportSummary { prompts: judged.len(), ..ExportSummary::default() };
    // Each judged image's path as the dataset names it.
    let mut paths: BTreeMap<ContentHash, String> = BTreeMap::new();
    for hash in judged.values().flat_map(|j| j.images.iter()) {
        if paths.contains_key(hash) {
            continue;
        }
        match store.path_of_content(hash)? {
            Some(src) => {
                paths.insert(hash.clone(), dataset_path(&src, hash, to, copy_images)?);
            }
            None => summary.missing += 1,
        }
    }
    let mut lines = Vec::new();
    match format {
        Format::ImageReward => {
            let mut training = Vec::new();
            for (prompt, j) in &judged {
                let ranks: BTreeMap<ContentHash, u32> = match &j.ranking {
                    Some(r) => r.iter().map(|i| (i.content_hash.clone(), i.rank)).collect(),
                    None => ranks_from_pairs(&j.images, &j.pairs),
                };
                let mut ordered: Vec<(&ContentHash, u32)> =
                    ranks.iter().filter(|(h, _)| paths.contains_key(*h)).map(|(h, r)| (h, *r)).collect();
                ordered.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
                let id = prompt_id(prompt);
                for (hash, rank) in &ordered {
                    let rating = store.rating(hash)?.unwrap_or_default();
                    let (bits, note) = store.problems(hash)?;
                    let row = ImageRow {
                        prompt_id: id.clone(),
                        prompt: prompt.clone(),
                        image_path: paths[*hash].clone(),
                        content_hash: Some(hash.as_str().to_string()),
                        rank: *rank,
                        rank_from: Some(if j.ranking.is_some() { "ranking" } else { "comparisons" }.into()),
                        image_amount_in_total: Some(ordered.len()),
                        overall_rating: rating.overall,
                        image_text_alignment_rating: rating.alignment,
                        fidelity_rating: rating.fidelity,
                        flags: flags::NAMES.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| n.to_string()).collect(),
                        note,
                    };
                    lines.push(json_line(&row));
                    summary.images += 1;
                }
                summary.pairs += j.pairs.len();
                training.push(serde_json::json!({
                    "id": id,
                    "prompt": prompt,
                    "generations": ordered.iter().map(|(h, _)| paths[*h].clone()).collect::<Vec<_>>(),
                    "ranking": ordered.iter().map(|(_, r)| r).collect::<Vec<_>>(),
                }));
            }
            write_file(&to.join(ROWS_FILE), &lines, &mut summary)?;
            let text = serde_json::to_string_pretty(&training).unwrap_or_default() + "\n";
            write_file(&to.join(RANKING_FILE), &[text.trim_end().to_string()], &mut summary)?;
        }
        Format::Pairs => {
            for (prompt, j) in &judged {
                for (better, worse) in &j.pairs {
                    let (Some(chosen), Some(rejected)) = (paths.get(better), paths.get(worse)) else { continue };
                    let row = PairRow {
                        prompt: prompt.clone(),
                        chosen: chosen.clone(),
                        rejected: rejected.clone(),
                        chosen_hash: Some(better.as_str().into()),
                        rejected_hash: Some(worse.as_str().into()),
                    };
                    lines.push(json_line(&row));
                    summary.pairs += 1;
                }
            }
            write_file(&to.join(PAIRS_FILE), &lines, &mut summary)?;
        }
        Format::Weighted => {
            let mut reward = model_id.map(|m| stored_rewards(store, m));
            for (prompt, j) in &judged {
                for hash in j.images.iter().filter(|h| paths.contains_key(*h)) {
                    let won = j.pairs.iter().filter(|(b, _)| b == hash).count();
                    let lost = j.pairs.iter().filter(|(_, w)| w == hash).count();
                    let label = (won + lost > 0).then(|| won as f64 / (won + lost) as f64);
                    let row = serde_json::json!({
                        "prompt": prompt,
                        "image": paths[hash],
                        "content_hash": hash.as_str(),
                        "reward": reward.as_mut().and_then(|r| r(prompt, hash)),
                        "label": label,
                        "pairs": won + lost,
                    });
                    lines.push(row.to_string());
                    summary.images += 1;
                }
                summary.pairs += j.pairs.len();
            }
            write_file(&to.join(WEIGHTED_FILE), &lines, &mut summary)?;
        }
    }
    Ok(summary)
}

/// A row as one JSON line.
fn json_line<T: Serialize>(row: &T) -> String {
    serde_json::to_string(row).unwrap_or_default()
}

fn dataset_path(src: &Path, hash: &ContentHash, to: &Path, copy: bool) -> Result<String, DatasetError> {
    if copy {
        let ext = src.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_else(|| "png".into());
        let name = format!("images/{}.{ext}", hash.as_str());
        let dest = to.join(&name);
        let same =
            std::fs::metadata(&dest).ok().zip(std::fs::metadata(src).ok()).is_some_and(|(d, s)| d.len() == s.len());
        if !same {
            std::fs::create_dir_all(to.join("images")).map_err(io(to))?;
            let tmp = dest.with_extension("tmp");
            std::fs::copy(src, &tmp).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        }
        return Ok(name);
    }
    let abs_to = std::fs::canonicalize(to).unwrap_or_else(|_| to.to_path_buf());
    Ok(match src.strip_prefix(&abs_to) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => src.to_string_lossy().into_owned(),
    })
}

fn write_file(path: &Path, lines: &[String], summary: &mut ExportSummary) -> Result<(), DatasetError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        for l in lines {
            f.write_all(l.as_bytes())?;
            f.write_all(b"\n")?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(io(path))?;
    summary.files.push(path.to_path_buf());
    Ok(())
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Comparisons added.
    pub comparisons: usize,
    /// Rankings added.
    pub rankings: usize,
    /// Ratings, flags or notes added (an image's existing ones are kept).
    pub ratings: usize,
    /// Lines that were already in the library.
    pub duplicates: usize,
    /// Folders added to the library for images it did not have.
    pub folders_added: Vec<PathBuf>,
    /// Lines not imported, with their number and why.
    pub errors: Vec<(usize, String)>,
}

/// Imports an ImageRewardDB-style rows file or a pairs file (told apart by their fields). Paths are
/// resolved relative to the file; images the library lacks have their folders added and scanned.
pub fn import_dataset(store: &mut Store, file: &Path) -> Result<ImportSummary, DatasetError> {
    let base = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(io(file))?);
    let mut summary = ImportSummary::default();
    let mut rows: Vec<(usize, ImageRow)> = Vec::new();
    let mut pairs: Vec<(usize, PairRow)> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(io(file))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                summary.errors.push((n, format!("not JSON: {e}")));
                continue;
            }
        };
        if value.get("chosen").is_some() {
            match serde_json::from_value::<PairRow>(value) {
                Ok(p) => pairs.push((n, p)),
                Err(e) => summary.errors.push((n, format!("not a pair: {e}"))),
            }
        } else {
            match serde_json::from_value::<ImageRow>(value) {
                Ok(r) => rows.push((n, r)),
                Err(e) => summary.errors.push((n, format!("not an image row: {e}"))),
            }
        }
    }
    // Every image named, by content hash: from the line, else by hashing the file.
    let mut hashes: BTreeMap<String, Option<ContentHash>> = BTreeMap::new();
    let mut resolve = |path: &str, given: Option<&String>| -> Option<ContentHash> {
        let full = base.join(path);
        hashes
            .entry(full.to_string_lossy().into_owned())
            .or_insert_with(|| {
                given
                    .and_then(|g| ContentHash::parse(g))
                    .or_else(|| std::fs::read(&full).ok().map(|b| ContentHash::of(&b)))
            })
            .clone()
    };
    let mut row_hashes = Vec::new();
    for (n, r) in &rows {
        row_hashes.push((*n, resolve(&r.image_path, r.content_hash.as_ref())));
    }
    let mut pair_hashes = Vec::new();
    for (n, p) in &pairs {
        pair_hashes.push((
            *n,
            resolve(&p.chosen, p.chosen_hash.as_ref()),
            resolve(&p.rejected, p.rejected_hash.as_ref()),
        ));
    }
    // Folders of images the library lacks.
    let mut folders = BTreeSet::new();
    let image_paths = rows
        .iter()
        .map(|(_, r)| r.image_path.as_str())
        .chain(pairs.iter().flat_map(|(_, p)| [p.chosen.as_str(), p.rejected.as_str()]));
    for path in image_paths {
        let full = base.join(path);
        if let Some(Some(hash)) = hashes.get(&*full.to_string_lossy())
            && store.path_of_content(hash)?.is_none()
            && full.is_file()
            && let Some(dir) = full.parent().and_then(|d| std::fs::canonicalize(d).ok())
        {
            folders.insert(dir);
        }
    }
    if !folders.is_empty() {
        let folders: Vec<PathBuf> = folders.into_iter().collect();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let options = super::scan::ScanOptions::default();
        super::scan::scan_folders(store, &folders, &options, |_| {}, &stop)
            .map_err(|e| DatasetError::Io { path: folders[0].clone(), source: std::io::Error::other(e.to_string()) })?;
        summary.folders_added = folders;
    }
    import_rows(store, &rows, &row_hashes, &mut summary)?;
    import_pairs(store, &pairs, &pair_hashes, &mut summary)?;
    summary.errors.sort();
    Ok(summary)
}

fn import_rows(
    store: &mut Store,
    rows: &[(usize, ImageRow)],
    hashes: &[(usize, Option<ContentHash>)],
    summary: &mut ImportSummary,
) -> Result<(), DatasetError> {
    let mut rankings: BTreeMap<&str, Vec<RankedImage>> = BTreeMap::new();
    for ((n, row), (_, hash)) in rows.iter().zip(hashes) {
        let Some(hash) = hash else {
            summary.errors.push((*n, format!("{}: no such file and no content_hash", row.image_path)));
            continue;
        };
        if row.rank_from.as_deref() != Some("comparisons") {
            rankings.entry(&row.prompt).or_default().push(RankedImage {
                content_hash: hash.clone(),
                rank: row.rank.max(1),
                reward: None,
            });
        }
        let given = Rating {
            overall: row.overall_rating,
            alignment: row.image_text_alignment_rating,
            fidelity: row.fidelity_rating,
        };
        let valid = |v: Option<u8>| v.is_none_or(|v| (1..=7).contains(&v));
        if !(valid(given.overall) && valid(given.alignment) && valid(given.fidelity)) {
            summary.errors.push((*n, "a rating outside 1..7".into()));
            continue;
        }
        let has_rating = given.overall.is_some() || given.alignment.is_some() || given.fidelity.is_some();
        if has_rating && store.rating(hash)?.is_none_or(|r| r == Rating::default()) {
            store.set_rating(hash, given)?;
            summary.ratings += 1;
        }
        let bits = row
            .flags
            .iter()
            .filter_map(|f| flags::NAMES.iter().find(|(_, n)| n == f).map(|(b, _)| *b))
            .fold(0, |a, b| a | b);
        if (bits != 0 || row.note.is_some()) && store.problems(hash)? == (0, None) {
            store.set_problems(hash, bits, row.note.as_deref())?;
        }
    }
    let standing = store.rankings()?;
    for (prompt, mut images) in rankings {
        images.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.content_hash.cmp(&b.content_hash)));
        let same = standing.iter().any(|r| {
            r.prompt == prompt && {
                let mut theirs: Vec<(&ContentHash, u32)> = r.images.iter().map(|i| (&i.content_hash, i.rank)).collect();
                theirs.sort();
                let mut ours: Vec<(&ContentHash, u32)> = images.iter().map(|i| (&i.content_hash, i.rank)).collect();
                ours.sort();
                theirs == ours
            }
        });
        if same {
            summary.duplicates += images.len();
        } else {
            store.record_ranking(prompt, None, &images)?;
            summary.rankings += 1;
        }
    }
    Ok(())
}

fn import_pairs(
    store: &mut Store,
    pairs: &[(usize, PairRow)],
    hashes: &[(usize, Option<ContentHash>, Option<ContentHash>)],
    summary: &mut ImportSummary,
) -> Result<(), DatasetError> {
    let mut known: BTreeSet<(String, ContentHash, ContentHash)> = BTreeSet::new();
    for (prompt, j) in judged(store)? {
        for (b, w) in j.pairs {
            known.insert((prompt.clone(), b, w));
        }
    }
    for ((n, pair), (_, chosen, rejected)) in pairs.iter().zip(hashes) {
        let (Some(chosen), Some(rejected)) = (chosen, rejected) else {
            summary.errors.push((*n, "an image is neither on disk nor named by its content hash".into()));
            continue;
        };
        let key = (pair.prompt.clone(), chosen.clone(), rejected.clone());
        if known.contains(&key) {
            summary.duplicates += 1;
            continue;
        }
        let c = NewComparison {
            prompt: pair.prompt.clone(),
            first: chosen.clone(),
            second: rejected.clone(),
            verdict: Verdict::First,
            model_id: None,
            first_reward: None,
            second_reward: None,
        };
        store.record_comparison(&c)?;
        known.insert(key);
        summary.comparisons += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::export::tests::{MODEL, scored_library};

    fn hash(rows: &[crate::library::views::SlimRow], i: usize) -> ContentHash {
        rows[i].content_hash.clone().unwrap()
    }

    #[test]
    fn export_import_into_a_fresh_library_and_export_again_gives_identical_files() {
        let (dir, mut store, rows) = scored_library(6);
        let p0 = rows[0].prompt.clone().unwrap();
        let compare = |store: &mut Store, prompt: &str, a: usize, b: usize, verdict| {
            let c = NewComparison {
                prompt: prompt.into(),
                first: hash(&rows, a),
                second: hash(&rows, b),
                verdict,
                model_id: Some(MODEL.into()),
                first_reward: None,
                second_reward: None,
            };
            store.record_comparison(&c).unwrap();
        };
        compare(&mut store, &p0, 0, 1, Verdict::First);
        compare(&mut store, &p0, 1, 2, Verdict::First);
        compare(&mut store, &p0, 2, 3, Verdict::Tie);
        let ranked =
            [(3, 1), (4, 2), (5, 2)].map(|(i, r)| RankedImage { content_hash: hash(&rows, i), rank: r, reward: None });
        store.record_ranking("a ranked prompt", Some(MODEL), &ranked).unwrap();
        store.set_rating(&hash(&rows, 3), Rating { overall: Some(6), alignment: Some(5), fidelity: Some(7) }).unwrap();
        store.set_problems(&hash(&rows, 4), flags::BODY_PROBLEM, Some("extra finger")).unwrap();

        let first = dir.path().join("first");
        let a = export_dataset(&store, Format::ImageReward, &first, false, None).unwrap();
        assert_eq!((a.prompts, a.images, a.pairs), (2, 3 + 3, 2 + 2));
        let b = export_dataset(&store, Format::Pairs, &first, false, None).unwrap();
        assert_eq!(b.pairs, 4);
        let w = export_dataset(&store, Format::Weighted, &first, false, Some(MODEL)).unwrap();
        assert_eq!(w.images, 6);
        let weighted = std::fs::read_to_string(first.join(WEIGHTED_FILE)).unwrap();
        // Image 0 is scored against its own prompt p0, and won its only pair.
        let first_image: serde_json::Value = weighted
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["content_hash"] == hash(&rows, 0).as_str())
            .unwrap();
        assert_eq!(
            (first_image["reward"].as_f64(), first_image["label"].as_f64()),
            (Some(0.0), Some(1.0)),
            "{first_image}"
        );
        let rows_text = std::fs::read_to_string(first.join(ROWS_FILE)).unwrap();
        assert!(
            rows_text.contains("\"flags\":[\"body_problem\"]") && rows_text.contains("\"overall_rating\":6"),
            "{rows_text}"
        );
        let training: serde_json::Value =
            serde_json::from_slice(&std::fs::read(first.join(RANKING_FILE)).unwrap()).unwrap();
        assert_eq!(training[0]["ranking"], serde_json::json!([1, 2, 2]));
        assert_eq!(training[1]["ranking"], serde_json::json!([1, 2, 3]), "wins minus losses");

        // A fresh library on another "machine": the images' folder is added and scanned on import.
        let mut fresh = Store::open(&dir.path().join("fresh.sqlite3")).unwrap();
        let got = import_dataset(&mut fresh, &first.join(ROWS_FILE)).unwrap();
        assert_eq!((got.rankings, got.ratings, got.folders_added.len()), (1, 1, 1), "{got:?}");
        let got = import_dataset(&mut fresh, &first.join(PAIRS_FILE)).unwrap();
        assert_eq!((got.comparisons, got.duplicates), (2, 2), "the ranking's pairs are known: {got:?}");
        let second = dir.path().join("second");
        export_dataset(&fresh, Format::ImageReward, &second, false, None).unwrap();
        export_dataset(&fresh, Format::Pairs, &second, false, None).unwrap();
        for file in [ROWS_FILE, RANKING_FILE, PAIRS_FILE] {
            assert_eq!(
                std::fs::read_to_string(first.join(file)).unwrap(),
                std::fs::read_to_string(second.join(file)).unwrap(),
                "{file}"
            );
        }
        // The same files again add nothing.
        let again = import_dataset(&mut fresh, &first.join(ROWS_FILE)).unwrap();
        let pairs_again = import_dataset(&mut fresh, &first.join(PAIRS_FILE)).unwrap();
        assert_eq!((again.rankings, again.ratings, pairs_again.comparisons), (0, 0, 0));
        assert_eq!(fresh.comparisons().unwrap().len(), 2);
    }

    #[test]
    fn a_malformed_line_is_reported_by_number_and_the_rest_imported() {
        let (dir, mut store, rows) = scored_library(3);
        let file = dir.path().join("pairs.jsonl");
        let good = |a: usize, b: usize| {
            serde_json::json!({"prompt": "p", "chosen": rows[a].path, "rejected": rows[b].path}).to_string()
        };
        let text = [good(0, 1), "{not json".to_string(), "{\"chosen\": 3}".to_string(), good(1, 2)].join("\n");
        std::fs::write(&file, text).unwrap();
        let got = import_dataset(&mut store, &file).unwrap();
        assert_eq!(got.comparisons, 2);
        assert_eq!(got.errors.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2, 3]);
        assert!(got.errors[0].1.contains("not JSON"), "{:?}", got.errors);
    }
}
