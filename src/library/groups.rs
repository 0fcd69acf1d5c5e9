//! The library summed up: prompt groups ("which prompts do I have, how many images each, how good
//! is the best") and a checkpoint leaderboard ("which checkpoint gives me the best images"),
//! compared on the prompts checkpoints share, as ImageReward's paper compares generators (its
//! Table 1). Both honour a view's filter and rewards.

use std::collections::{BTreeMap, HashMap};

use rusqlite::params_from_iter;
use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError};
use super::views::ViewQuery;

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

/// One image as the groupings read it.
struct GroupRow {
    image_id: i64,
    group_key: Option<String>,
    prompt: Option<String>,
    checkpoint: Option<String>,
    checkpoint_hash: Option<String>,
    reward: Option<f64>,
}

impl Store {
    /// Every image of the view with its prompt group, checkpoint and reward.
    fn group_rows(&self, query: &ViewQuery) -> Result<Vec<GroupRow>, StoreError> {
        let sql = self.view_sql_parts(query)?;
        let text = format!(
            "SELECT i.id, p.group_key, p.text, i.checkpoint, i.checkpoint_hash, {}
             FROM images i LEFT JOIN prompts p ON p.id = i.prompt_id{}{}",
            sql.reward, sql.joins, sql.conditions
        );
        self.read(|c| {
            let mut stmt = c.prepare_cached(&text)?;
            let rows = stmt.query_map(params_from_iter(sql.args), |r| {
                Ok(GroupRow {
                    image_id: r.get(0)?,
                    group_key: r.get(1)?,
                    prompt: r.get(2)?,
                    checkpoint: r.get(3)?,
                    checkpoint_hash: r.get(4)?,
                    reward: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Prompt groups of the view, best reward first (unscored groups last, by size).
    pub fn prompt_groups(&self, query: &ViewQuery) -> Result<Vec<PromptGroup>, StoreError> {
        struct Acc {
            texts: HashMap<String, usize>,
            images: usize,
            rewards: Vec<f64>,
            best: Option<(f64, i64)>,
        }
        let mut groups: HashMap<String, Acc> = HashMap::new();
        for row in self.group_rows(query)? {
            let (Some(key), Some(prompt)) = (row.group_key, row.prompt) else { continue };
            let acc = groups.entry(key).or_insert_with(|| Acc {
                texts: HashMap::new(),
                images: 0,
                rewards: Vec::new(),
                best: None,
            });
            *acc.texts.entry(prompt).or_default() += 1;
            acc.images += 1;
            if let Some(r) = row.reward {
                acc.rewards.push(r);
                if acc.best.is_none_or(|(b, id)| r > b || (r == b && row.image_id < id)) {
                    acc.best = Some((r, row.image_id));
                }
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
            b.best_reward
                .is_some()
                .cmp(&a.best_reward.is_some())
                .then_with(|| b.best_reward.unwrap_or(0.0).total_cmp(&a.best_reward.unwrap_or(0.0)))
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
            prompts: std::collections::HashSet<String>,
            hashes: HashMap<String, usize>,
            /// Rewards per prompt group, for the paired comparisons.
            by_prompt: BTreeMap<String, Vec<f64>>,
        }
        let mut checkpoints: HashMap<String, Acc> = HashMap::new();
        for row in self.group_rows(query)? {
            let Some(name) = row.checkpoint else { continue };
            let acc = checkpoints.entry(name).or_default();
            acc.images += 1;
            if let Some(hash) = row.checkpoint_hash {
                *acc.hashes.entry(hash).or_default() += 1;
            }
            if let Some(key) = &row.group_key {
                acc.prompts.insert(key.clone());
            }
            if let Some(r) = row.reward {
                acc.rewards.push(r);
                if let Some(key) = row.group_key {
                    acc.by_prompt.entry(key).or_default().push(r);
                }
            }
        }
        let mut board: Vec<CheckpointGroup> = checkpoints
            .iter()
            .map(|(name, acc)| {
                let summary = summarize(&acc.rewards);
                CheckpointGroup {
                    checkpoint: name.clone(),
                    checkpoint_hash: acc
                        .hashes
                        .iter()
                        .max_by_key(|(h, n)| (**n, std::cmp::Reverse(*h)))
                        .map(|(h, _)| h.clone()),
                    images: acc.images,
                    prompts: acc.prompts.len(),
                    scored: acc.rewards.len(),
                    mean_reward: summary.map(|s| s.mean),
                    ci95: summary.and_then(|s| s.ci95),
                }
            })
            .collect();
        board.sort_by(|a, b| {
            b.mean_reward
                .is_some()
                .cmp(&a.mean_reward.is_some())
                .then_with(|| b.mean_reward.unwrap_or(0.0).total_cmp(&a.mean_reward.unwrap_or(0.0)))
                .then_with(|| a.checkpoint.cmp(&b.checkpoint))
        });
        let mut leading: Vec<&CheckpointGroup> = board.iter().collect();
        leading.sort_by(|a, b| b.images.cmp(&a.images).then_with(|| a.checkpoint.cmp(&b.checkpoint)));
        leading.truncate(COMPARED_CHECKPOINTS);
        let mut comparisons = Vec::new();
        for (i, a) in leading.iter().enumerate() {
            for b in &leading[i + 1..] {
                let (pa, pb) = (&checkpoints[&a.checkpoint].by_prompt, &checkpoints[&b.checkpoint].by_prompt);
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
                let diffs: Vec<f64> =
                    pa.iter().filter_map(|(key, ra)| pb.get(key).map(|rb| mean(ra) - mean(rb))).collect();
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
