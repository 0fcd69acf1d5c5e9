//! The library summed up: prompt groups ("which prompts do I have, how many images each, how good
//! is the best") and a checkpoint leaderboard ("which checkpoint gives me the best images"),
//! compared on the prompts checkpoints share, as ImageReward's paper compares generators (its
//! Table 1). Both honour a view's filter and rewards.

use std::collections::BTreeMap;

use ahash::{AHashMap as HashMap, AHashSet as HashSet};

use rusqlite::types::ValueRef;
use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError};
use super::views::{ViewQuery, cmp_reward};

/// How images are grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// By prompt (case and spacing ignored).
    #[default]
    Prompt,
    /// By checkpoint (name and hash).
    Checkpoint,
}

/// One prompt group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptGroup {
    /// The normalised prompt the group is keyed by.
    pub group_key: String,
    /// The prompt text most of its images carry.
    pub prompt: String,
    /// Images in the group.
    pub images: usize,
    /// Images with a reward.
    pub scored: usize,
    /// The best reward.
    pub best_reward: Option<f64>,
    /// The image with the best reward.
    pub best_image_id: Option<i64>,
    /// Mean reward of the scored images.
    pub mean_reward: Option<f64>,
    /// Sample standard deviation of the rewards (two or more scored images).
    pub std_reward: Option<f64>,
}

/// One checkpoint on the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointGroup {
    /// Checkpoint name.
    pub checkpoint: String,
    /// Its hash, when the generator recorded one.
    pub checkpoint_hash: Option<String>,
    /// Images made with it.
    pub images: usize,
    /// Distinct prompts (groups) among them.
    pub prompts: usize,
    /// Images with a reward.
    pub scored: usize,
    /// Mean reward.
    pub mean_reward: Option<f64>,
    /// 95% confidence interval of the mean (Student's t; two or more scored images).
    pub ci95: Option<(f64, f64)>,
}

/// Two checkpoints compared on the prompts both were used with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointComparison {
    /// The first checkpoint (name).
    pub a: String,
    /// The second checkpoint (name).
    pub b: String,
    /// Prompts both have scored images for.
    pub shared_prompts: usize,
    /// Mean over shared prompts of (A's mean reward − B's mean reward) on that prompt.
    pub mean_difference: f64,
    /// 95% confidence interval of that mean difference (two or more shared prompts).
    pub ci95: Option<(f64, f64)>,
    /// Share of shared prompts on which A's mean reward is higher (a tie counts half).
    pub a_wins: f64,
}

/// The checkpoint leaderboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Leaderboard {
    /// Checkpoints, best mean reward first.
    pub checkpoints: Vec<CheckpointGroup>,
    /// Every pair of the leading checkpoints that share a prompt.
    pub comparisons: Vec<CheckpointComparison>,
}

/// Checkpoints (by image count) compared pairwise; more would be a wall of numbers.
pub const COMPARED_CHECKPOINTS: usize = 12;

/// The upper 97.5% quantile of Student's t with `df` degrees of freedom (for 95% intervals):
/// exact to 3 decimals from a table up to 30, then the Cornish–Fisher expansion around 1.96.
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let z: f64 = 1.959_963_984_540_054;
            let v = df as f64;
            z + (z.powi(3) + z) / (4.0 * v) + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        }
    }
}

/// Mean, sample standard deviation and 95% interval of the mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Count.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1); `None` below two values.
    pub std: Option<f64>,
    /// mean ± t(0.975, n − 1)·s/√n; `None` below two values.
    pub ci95: Option<(f64, f64)>,
}

/// Summarises values; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let (std, ci95) = if n > 1 {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let std = var.sqrt();
        let half = t_975(n - 1) * std / (n as f64).sqrt();
        (Some(std), Some((mean - half, mean + half)))
    } else {
        (None, None)
    };
    Some(Summary { n, mean, std, ci95 })
}

/// Small numbers for a text column's distinct values, given while rows stream in, so grouping a
/// large view allocates one string per distinct value, not one per image.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    /// The number of a text value (`None` for NULL or anything not text).
    fn id(&mut self, value: ValueRef<'_>) -> Option<u32> {
        let ValueRef::Text(bytes) = value else { return None };
        let text = std::str::from_utf8(bytes).ok()?;
        if let Some(id) = self.ids.get(text) {
            return Some(*id);
        }
        let id = u32::try_from(self.names.len()).ok()?;
        self.names.push(text.to_string());
        self.ids.insert(text.to_string(), id);
        Some(id)
    }

    /// The text of a number.
    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

/// Whether a reward beats the best so far: higher, or equal on an image with a lower id.
fn better(reward: f64, image_id: i64, best: Option<(f64, i64)>) -> bool {
    best.is_none_or(|(b, id)| reward > b || (reward == b && image_id < id))
}

impl Store {
    /// Group key and text of each of these prompts.
    fn prompt_texts(&self, ids: &HashSet<i64>) -> Result<HashMap<i64, (String, String)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT id, group_key, text FROM prompts")?;
            let mut found = stmt.query([])?;
            let mut texts = HashMap::with_capacity(ids.len());
            while let Some(r) = found.next()? {
                let id: i64 = r.get(0)?;
                if ids.contains(&id) {
                    texts.insert(id, (r.get(1)?, r.get(2)?));
                }
            }
            Ok(texts)
        })
    }

    /// Prompt groups of the view, best reward first (unscored groups last, by size).
    pub fn prompt_groups(&self, query: &ViewQuery) -> Result<Vec<PromptGroup>, StoreError> {
        /// One prompt text's images, then one group's.
        #[derive(Default)]
        struct Acc {
            texts: Vec<(String, usize)>,
            images: usize,
            rewards: Vec<f64>,
            best: Option<(f64, i64)>,
        }
        // Per prompt id first (integer keys while rows stream), then per group.
        let mut per_prompt: HashMap<i64, Acc> = HashMap::new();
        for row in self.view_rows(query, "", |_| Ok(()))? {
            let Some(prompt_id) = row.prompt_id else { continue };
            let acc = per_prompt.entry(prompt_id).or_default();
            acc.images += 1;
            if let Some(r) = row.reward {
                acc.rewards.push(r);
                if better(r, row.image_id, acc.best) {
                    acc.best = Some((r, row.image_id));
                }
            }
        }
        let mut texts = self.prompt_texts(&per_prompt.keys().copied().collect())?;
        // In prompt id order, so sums come out the same on every run.
        let mut per_prompt: Vec<(i64, Acc)> = per_prompt.into_iter().collect();
        per_prompt.sort_unstable_by_key(|(id, _)| *id);
        let mut groups: HashMap<String, Acc> = HashMap::new();
        for (prompt_id, one) in per_prompt {
            let Some((key, text)) = texts.remove(&prompt_id) else { continue };
            let acc = groups.entry(key).or_default();
            acc.texts.push((text, one.images));
            acc.images += one.images;
            acc.rewards.extend(one.rewards);
            if let Some((r, id)) = one.best
                && better(r, id, acc.best)
            {
                acc.best = Some((r, id));
            }
        }
        let mut out: Vec<PromptGroup> = groups
            .into_iter()
            .map(|(group_key, acc)| {
                let prompt = acc
                    .texts
                    .into_iter()
                    .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                    .map(|(t, _)| t)
                    .unwrap_or_default();
                let summary = summarize(&acc.rewards);
                PromptGroup {
                    group_key,
                    prompt,
                    images: acc.images,
                    scored: acc.rewards.len(),
                    best_reward: acc.best.map(|b| b.0),
                    best_image_id: acc.best.map(|b| b.1),
                    mean_reward: summary.map(|s| s.mean),
                    std_reward: summary.and_then(|s| s.std),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            cmp_reward(b.best_reward, a.best_reward)
                .then_with(|| b.images.cmp(&a.images))
                .then_with(|| a.group_key.cmp(&b.group_key))
        });
        Ok(out)
    }

    /// The checkpoint leaderboard of the view, best mean reward first, with paired comparisons
    /// of the [`COMPARED_CHECKPOINTS`] most used checkpoints on the prompts they share.
    pub fn checkpoint_leaderboard(&self, query: &ViewQuery) -> Result<Leaderboard, StoreError> {
        #[derive(Default)]
        struct Acc {
            images: usize,
            rewards: Vec<f64>,
            /// Images per checkpoint hash (interned).
            hashes: HashMap<u32, usize>,
        }
        let (mut names, mut hashes) = (Interner::default(), Interner::default());
        let rows = self.view_rows(query, ", i.checkpoint, i.checkpoint_hash", |r| {
            Ok((names.id(r.get_ref(3)?), hashes.id(r.get_ref(4)?)))
        })?;
        let mut checkpoints: HashMap<u32, Acc> = HashMap::new();
        // Sum and count of rewards per (checkpoint, prompt id); every prompt a checkpoint has
        // images for is there, scored or not.
        let mut per_prompt: HashMap<(u32, i64), (f64, usize)> = HashMap::new();
        for row in rows {
            let (Some(name), hash) = row.extra else { continue };
            let acc = checkpoints.entry(name).or_default();
            acc.images += 1;
            if let Some(hash) = hash {
                *acc.hashes.entry(hash).or_default() += 1;
            }
            if let Some(r) = row.reward {
                acc.rewards.push(r);
            }
            if let Some(prompt_id) = row.prompt_id {
                let (sum, scored) = per_prompt.entry((name, prompt_id)).or_default();
                if let Some(r) = row.reward {
                    *sum += r;
                    *scored += 1;
                }
            }
        }
        // Prompts count and pair by group (case and spacing ignored); in id order, so sums come
        // out the same on every run.
        let mut per_prompt: Vec<((u32, i64), (f64, usize))> = per_prompt.into_iter().collect();
        per_prompt.sort_unstable_by_key(|(key, _)| *key);
        let prompt_ids: HashSet<i64> = per_prompt.iter().map(|((_, id), _)| *id).collect();
        let group_of: HashMap<i64, String> =
            self.prompt_texts(&prompt_ids)?.into_iter().map(|(id, (key, _))| (id, key)).collect();
        // Per checkpoint: its prompt groups, with the sum and count of their rewards.
        let mut groups_of: HashMap<u32, BTreeMap<&str, (f64, usize)>> = HashMap::new();
        for ((name, prompt_id), (sum, scored)) in &per_prompt {
            let Some(key) = group_of.get(prompt_id) else { continue };
            let group = groups_of.entry(*name).or_default().entry(key.as_str()).or_default();
            group.0 += sum;
            group.1 += scored;
        }
        let mut board: Vec<CheckpointGroup> = checkpoints
            .iter()
            .map(|(name, acc)| {
                let summary = summarize(&acc.rewards);
                CheckpointGroup {
                    checkpoint: names.name(*name).to_string(),
                    checkpoint_hash: acc
                        .hashes
                        .iter()
                        .map(|(h, n)| (hashes.name(*h), *n))
                        .max_by_key(|(h, n)| (*n, std::cmp::Reverse(*h)))
                        .map(|(h, _)| h.to_string()),
                    images: acc.images,
                    prompts: groups_of.get(name).map_or(0, BTreeMap::len),
                    scored: acc.rewards.len(),
                    mean_reward: summary.map(|s| s.mean),
                    ci95: summary.and_then(|s| s.ci95),
                }
            })
            .collect();
        board.sort_by(|a, b| cmp_reward(b.mean_reward, a.mean_reward).then_with(|| a.checkpoint.cmp(&b.checkpoint)));
        let mut leading: Vec<&CheckpointGroup> = board.iter().collect();
        leading.sort_by(|a, b| b.images.cmp(&a.images).then_with(|| a.checkpoint.cmp(&b.checkpoint)));
        leading.truncate(COMPARED_CHECKPOINTS);
        // Mean reward per scored prompt group of each leading checkpoint, in group order.
        let leading_groups: Vec<BTreeMap<&str, f64>> = leading
            .iter()
            .map(|c| {
                let groups = names.ids.get(&c.checkpoint).and_then(|id| groups_of.get(id));
                groups
                    .into_iter()
                    .flatten()
                    .filter(|(_, (_, n))| *n > 0)
                    .map(|(key, (sum, n))| (*key, sum / *n as f64))
                    .collect()
            })
            .collect();
        let mut comparisons = Vec::new();
        for (i, a) in leading.iter().enumerate() {
            for (j, b) in leading.iter().enumerate().skip(i + 1) {
                let (pa, pb) = (&leading_groups[i], &leading_groups[j]);
                let diffs: Vec<f64> = pa.iter().filter_map(|(key, ma)| pb.get(key).map(|mb| ma - mb)).collect();
                let Some(summary) = summarize(&diffs) else { continue };
                let wins = diffs
                    .iter()
                    .map(|d| {
                        if *d > 0.0 {
                            1.0
                        } else if *d == 0.0 {
                            0.5
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>();
                comparisons.push(CheckpointComparison {
                    a: a.checkpoint.clone(),
                    b: b.checkpoint.clone(),
                    shared_prompts: diffs.len(),
                    mean_difference: summary.mean,
                    ci95: summary.ci95,
                    a_wins: wins / diffs.len() as f64,
                });
            }
        }
        Ok(Leaderboard { checkpoints: board, comparisons })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;

    use crate::image_file::ContentHash;
    use crate::library::metadata::prompt_group_key;
    use crate::library::store::{ImageRecord, ScoreRow};
    use crate::library::views::{ViewFilter, ViewOrder};
    use crate::model::PromptTokenizer;

    /// A library of (checkpoint, prompt, reward) images, scored by model `m` against their own
    /// prompts; returns it with the image ids in the same order.
    fn library(images: &[(&str, &str, Option<f64>)]) -> (tempfile::TempDir, Store, Vec<i64>) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let tokenizer = PromptTokenizer::bundled().unwrap();
        let mut ids = Vec::new();
        for (i, (checkpoint, prompt, reward)) in images.iter().enumerate() {
            let hash = ContentHash::of(format!("image {i}").as_bytes());
            ids.push(
                store
                    .upsert_image(&ImageRecord {
                        path: PathBuf::from(format!("/lib/{i}.png")),
                        content_hash: Some(hash.clone()),
                        size: 1,
                        prompt: Some(prompt.to_string()),
                        prompt_key: Some(prompt_group_key(prompt)),
                        checkpoint: Some(checkpoint.to_string()),
                        checkpoint_hash: Some(format!("{checkpoint}-hash")),
                        ..ImageRecord::default()
                    })
                    .unwrap(),
            );
            let t = tokenizer.encode(prompt).unwrap();
            store.record_prompt_tokens("m", &[(prompt, t.key(), t.truncated)]).unwrap();
            if let Some(value) = reward {
                let row =
                    ScoreRow { content_hash: &hash, prompt, tokens: t.key(), truncated: t.truncated, value: *value };
                store.record_scores("m", &[row]).unwrap();
            }
        }
        (dir, store, ids)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn close_pair(a: Option<(f64, f64)>, b: (f64, f64)) -> bool {
        a.is_some_and(|(lo, hi)| close(lo, b.0) && close(hi, b.1))
    }

    /// 2 checkpoints × 3 prompts (one typed two ways), one image unscored; every figure worked
    /// out by hand below.
    const IMAGES: [(&str, &str, Option<f64>); 10] = [
        ("A", "a red cube", Some(1.0)),
        ("A", "a red cube", Some(2.0)),
        ("A", "a blue sphere", Some(0.5)),
        ("A", "a green cone", Some(-1.0)),
        ("A", "a green cone", Some(0.0)),
        ("B", "A RED  cube", Some(0.0)),
        ("B", "a blue sphere", Some(1.5)),
        ("B", "a blue sphere", Some(0.5)),
        ("B", "a green cone", Some(-2.0)),
        ("B", "a green cone", None),
    ];

    fn query() -> ViewQuery {
        ViewQuery { model_id: Some("m".into()), ..ViewQuery::default() }
    }

    #[test]
    fn the_leaderboard_and_its_paired_comparison_match_figures_worked_by_hand() {
        let (_dir, store, _) = library(&IMAGES);
        let board = store.checkpoint_leaderboard(&query()).unwrap();
        assert_eq!(board.checkpoints.len(), 2);
        let (a, b) = (&board.checkpoints[0], &board.checkpoints[1]);

        // A: rewards 1, 2, 0.5, −1, 0: mean 2.5/5 = 0.5; squared deviations 0.25 + 2.25 + 0 +
        // 2.25 + 0.25 = 5, variance 5/4, standard error √(1.25/5) = 0.5, t(0.975, 4) = 2.776.
        assert_eq!((a.checkpoint.as_str(), a.checkpoint_hash.as_deref()), ("A", Some("A-hash")));
        assert_eq!((a.images, a.prompts, a.scored), (5, 3, 5));
        assert!(close(a.mean_reward.unwrap(), 0.5));
        assert!(close_pair(a.ci95, (0.5 - 2.776 * 0.5, 0.5 + 2.776 * 0.5)), "{:?}", a.ci95);

        // B: rewards 0, 1.5, 0.5, −2 (one image unscored): mean 0; squared deviations 0 + 2.25 +
        // 0.25 + 4 = 6.5, variance 6.5/3, standard error √(6.5/3)/2, t(0.975, 3) = 3.182.
        assert_eq!((b.checkpoint.as_str(), b.images, b.prompts, b.scored), ("B", 5, 3, 4));
        assert!(close(b.mean_reward.unwrap(), 0.0));
        let half = 3.182 * (6.5f64 / 3.0).sqrt() / 2.0;
        assert!(close_pair(b.ci95, (-half, half)), "{:?}", b.ci95);

        // Paired on the 3 prompts both used ("a red cube" and "A RED  cube" are one prompt):
        // A's means 1.5, 0.5, −0.5; B's 0, 1, −2; differences 1.5, −0.5, 1.5 (sorted by prompt:
        // blue sphere −0.5, green cone 1.5, red cube 1.5): mean 2.5/3; squared deviations
        // (2/3)² + (4/3)² + (2/3)² = 8/3, variance 4/3, standard error √(4/3)/√3 = 2/3,
        // t(0.975, 2) = 4.303; A wins on 2 of 3.
        assert_eq!(board.comparisons.len(), 1);
        let c = &board.comparisons[0];
        assert_eq!((c.a.as_str(), c.b.as_str(), c.shared_prompts), ("A", "B", 3));
        let mean = 2.5 / 3.0;
        assert!(close(c.mean_difference, mean), "{}", c.mean_difference);
        assert!(close_pair(c.ci95, (mean - 4.303 * 2.0 / 3.0, mean + 4.303 * 2.0 / 3.0)), "{:?}", c.ci95);
        assert!(close(c.a_wins, 2.0 / 3.0));
    }

    #[test]
    fn prompt_groups_match_figures_worked_by_hand() {
        let (_dir, store, ids) = library(&IMAGES);
        let groups = store.prompt_groups(&query()).unwrap();
        let keys: Vec<&str> = groups.iter().map(|g| g.group_key.as_str()).collect();
        // Best reward first: red cube 2.0, blue sphere 1.5, green cone 0.0.
        assert_eq!(keys, ["a red cube", "a blue sphere", "a green cone"]);
        let (red, blue, green) = (&groups[0], &groups[1], &groups[2]);

        // Red cube: 1, 2 (A) and 0 (B, typed "A RED  cube"): mean 1, deviations 0, 1, −1: sd 1.
        assert_eq!((red.prompt.as_str(), red.images, red.scored), ("a red cube", 3, 3));
        assert_eq!((red.best_reward, red.best_image_id), (Some(2.0), Some(ids[1])));
        assert!(close(red.mean_reward.unwrap(), 1.0) && close(red.std_reward.unwrap(), 1.0));

        // Blue sphere: 0.5, 1.5, 0.5: mean 2.5/3; squared deviations 1/9 + 4/9 + 1/9 = 2/3,
        // variance 1/3.
        assert_eq!((blue.images, blue.scored, blue.best_image_id), (3, 3, Some(ids[6])));
        assert!(close(blue.mean_reward.unwrap(), 2.5 / 3.0));
        assert!(close(blue.std_reward.unwrap(), (1.0f64 / 3.0).sqrt()));

        // Green cone: −1, 0, −2 and one unscored: mean −1, sd 1, best 0.
        assert_eq!(
            (green.images, green.scored, green.best_reward, green.best_image_id),
            (4, 3, Some(0.0), Some(ids[4]))
        );
        assert!(close(green.mean_reward.unwrap(), -1.0) && close(green.std_reward.unwrap(), 1.0));
    }

    #[test]
    fn groups_honour_the_views_filter_and_ties_go_to_the_lower_id() {
        let (_dir, store, ids) = library(&[
            ("A", "a cat", Some(1.0)),
            ("A", "a cat", Some(1.0)),
            ("B", "a dog", Some(3.0)),
            ("B", "a dog", None),
        ]);
        let only_a =
            ViewQuery { filter: ViewFilter { checkpoints: vec!["A".into()], ..ViewFilter::default() }, ..query() };
        let groups = store.prompt_groups(&only_a).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].best_reward, groups[0].best_image_id), (Some(1.0), Some(ids[0])));
        assert_eq!(groups[0].std_reward, Some(0.0));
        // Without a model nothing is scored; groups are still counted, biggest first.
        let unscored = store.prompt_groups(&ViewQuery::default()).unwrap();
        assert!(unscored.iter().all(|g| g.scored == 0 && g.best_reward.is_none()));
        let board =
            store.checkpoint_leaderboard(&ViewQuery { order: ViewOrder::RewardFor("x".into()), ..query() }).unwrap();
        assert!(board.checkpoints.iter().all(|c| c.mean_reward.is_none() && c.ci95.is_none()));
        assert!(board.comparisons.is_empty(), "no scored prompt is shared");
        // One scored image per checkpoint: a mean but no interval.
        let single = store.checkpoint_leaderboard(&query()).unwrap();
        let b = single.checkpoints.iter().find(|c| c.checkpoint == "B").unwrap();
        assert_eq!((b.mean_reward, b.ci95, b.scored, b.images), (Some(3.0), None, 1, 2));
    }

    #[test]
    fn t_quantiles_match_the_table_and_approach_the_normal() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(10), 2.228);
        assert!((t_975(40) - 2.021).abs() < 1e-3, "{}", t_975(40));
        assert!((t_975(120) - 1.980).abs() < 1e-3, "{}", t_975(120));
        assert!((t_975(100_000) - 1.960).abs() < 1e-3);
    }

    #[test]
    fn summaries_are_mean_sample_sd_and_a_t_interval() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.mean, 2.5);
        let sd = (5.0f64 / 3.0).sqrt();
        assert!((s.std.unwrap() - sd).abs() < 1e-12);
        let half = 3.182 * sd / 2.0;
        let (lo, hi) = s.ci95.unwrap();
        assert!((lo - (2.5 - half)).abs() < 1e-12 && (hi - (2.5 + half)).abs() < 1e-12);
        assert_eq!(summarize(&[7.0]).unwrap().ci95, None);
        assert!(summarize(&[]).is_none());
    }
}
