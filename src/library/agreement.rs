//! How far a scorer agrees with the user: the paper's preference accuracy (ImageReward §5.4 of
//! the reference notes) on the user's own judgments. Every comparison and every pair of a ranking
//! with different ranks is one pair; human ties are skipped; the scorer is right when it gives the
//! preferred image a strictly higher reward (a tie of the scorer counts as wrong). Reported overall
//! and per prompt group, with the number of pairs and a 95 % Wilson interval.

use std::collections::{BTreeMap, HashMap};

use super::metadata::prompt_group_key;
use super::store::{Store, StoreError};
use crate::image_file::ContentHash;
use crate::model::TokenKey;

/// One judged pair: for `prompt`, the user preferred `better` to `worse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferencePair {
    /// The prompt both images answer.
    pub prompt: String,
    /// The preferred image.
    pub better: ContentHash,
    /// The other.
    pub worse: ContentHash,
}

/// A scorer's agreement with the user over a set of pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// The scorer (the model id).
    pub scorer: String,
    /// The prompt group's key, or `None` overall.
    pub group: Option<String>,
    /// Pairs the scorer has rewards for.
    pub pairs: usize,
    /// Of which it ranked as the user did.
    pub correct: usize,
    /// `correct / pairs`, when there are pairs.
    pub accuracy: Option<f64>,
    /// The 95 % Wilson interval of the accuracy.
    pub ci95: Option<(f64, f64)>,
    /// Pairs left out because a reward is missing.
    pub unscored: usize,
}

impl Agreement {
    /// Whether the interval is too wide to say anything (fewer than 20 pairs, or wider than ±15
    /// points).
    pub fn too_few(&self) -> bool {
        self.pairs < 20 || self.ci95.is_some_and(|(lo, hi)| hi - lo > 0.3)
    }
}

/// Every non-tie pair the user's standing judgments give: comparisons, then rankings (each pair of
/// images with different ranks; ties skipped, as the reference's training does).
pub fn preference_pairs(store: &Store) -> Result<Vec<PreferencePair>, StoreError> {
    let mut pairs: Vec<PreferencePair> = store
        .comparisons()?
        .into_iter()
        .filter(|c| !c.tie)
        .map(|c| PreferencePair { prompt: c.prompt, better: c.better, worse: c.worse })
        .collect();
    for ranking in store.rankings()? {
        let images = &ranking.images;
        for (i, a) in images.iter().enumerate() {
            for b in &images[i + 1..] {
                let (better, worse) = match a.rank.cmp(&b.rank) {
                    std::cmp::Ordering::Less => (a, b),
                    std::cmp::Ordering::Greater => (b, a),
                    std::cmp::Ordering::Equal => continue,
                };
                pairs.push(PreferencePair {
                    prompt: ranking.prompt.clone(),
                    better: better.content_hash.clone(),
                    worse: worse.content_hash.clone(),
                });
            }
        }
    }
    Ok(pairs)
}

/// The 95 % Wilson score interval of `correct` successes in `n` trials.
pub fn wilson(correct: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (n, p) = (n as f64, correct as f64 / n as f64);
    let denom = 1.0 + Z * Z / n;
    let centre = (p + Z * Z / (2.0 * n)) / denom;
    let half = Z * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The scorer's agreement over `pairs`, overall first, then (with `by_group`) per prompt group in
/// key order; `reward` gives an image's reward for a prompt, `None` when it has none.
pub fn agreement(
    pairs: &[PreferencePair],
    scorer: &str,
    mut reward: impl FnMut(&str, &ContentHash) -> Option<f64>,
    by_group: bool,
) -> Vec<Agreement> {
    #[derive(Default)]
    struct Tally {
        pairs: usize,
        correct: usize,
        unscored: usize,
    }
    let mut overall = Tally::default();
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    for pair in pairs {
        let outcome = match (reward(&pair.prompt, &pair.better), reward(&pair.prompt, &pair.worse)) {
            (Some(b), Some(w)) => Some(b > w),
            _ => None,
        };
        let count = |t: &mut Tally| match outcome {
            Some(right) => {
                t.pairs += 1;
                t.correct += usize::from(right);
            }
            None => t.unscored += 1,
        };
        count(&mut overall);
        if by_group {
            count(groups.entry(prompt_group_key(&pair.prompt)).or_default());
        }
    }
    let row = |group: Option<String>, t: &Tally| Agreement {
        scorer: scorer.to_string(),
        group,
        pairs: t.pairs,
        correct: t.correct,
        accuracy: (t.pairs > 0).then(|| t.correct as f64 / t.pairs as f64),
        ci95: wilson(t.correct, t.pairs),
        unscored: t.unscored,
    };
    let mut out = vec![row(None, &overall)];
    out.extend(groups.iter().map(|(k, t)| row(Some(k.clone()), t)));
    out
}

/// Rewards as stored for `model_id`: an image's score against what the model reads of the prompt
/// (a prompt differing only in case or spacing finds it too). Lookups are cached per prompt.
pub fn stored_rewards<'a>(store: &'a Store, model_id: &'a str) -> impl FnMut(&str, &ContentHash) -> Option<f64> + 'a {
    let mut keys: HashMap<String, Option<i64>> = HashMap::new();
    move |prompt, hash| {
        let key =
            *keys.entry(prompt.to_string()).or_insert_with(|| store.prompt_tokens_key(model_id, prompt).ok().flatten());
        store.score(hash, model_id, TokenKey(key?)).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::judgments::{NewComparison, RankedImage, Verdict};

    fn h(s: &str) -> ContentHash {
        ContentHash::of(s.as_bytes())
    }

    #[test]
    fn a_hand_made_set_gives_the_accuracy_worked_out_by_hand() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        let compare = |store: &mut Store, prompt: &str, a: &str, b: &str, verdict| {
            let c = NewComparison {
                prompt: prompt.into(),
                first: h(a),
                second: h(b),
                verdict,
                model_id: None,
                first_reward: None,
                second_reward: None,
            };
            store.record_comparison(&c).unwrap()
        };
        // "a cat": a > b, c > a (c chosen as second), a = d (a human tie: skipped), and one undone.
        compare(&mut store, "a cat", "a", "b", Verdict::First);
        compare(&mut store, "a cat", "a", "c", Verdict::Second);
        compare(&mut store, "a cat", "a", "d", Verdict::Tie);
        let undone = compare(&mut store, "a cat", "b", "a", Verdict::First);
        store.undo_comparison(undone).unwrap();
        // "A  Dog" (same group as "a dog"): ranking e=1, f=2, g=2, x=3 → pairs e>f, e>g, e>x, f>x, g>x
        // (f = g is a tie: skipped); x has no reward.
        let ranked: Vec<RankedImage> = [("e", 1), ("f", 2), ("g", 2), ("x", 3)]
            .iter()
            .map(|(s, r)| RankedImage { content_hash: h(s), rank: *r, reward: None })
            .collect();
        store.record_ranking("A  Dog", None, &ranked).unwrap();
        let pairs = preference_pairs(&store).unwrap();
        assert_eq!(pairs.len(), 2 + 5);

        // The scorer: a 1.0, b 0.0, c 0.5, e 2.0, f 2.0 (a tie with e: wrong), g 1.0.
        let rewards: HashMap<ContentHash, f64> =
            [("a", 1.0), ("b", 0.0), ("c", 0.5), ("e", 2.0), ("f", 2.0), ("g", 1.0)]
                .iter()
                .map(|(s, r)| (h(s), *r))
                .collect();
        let rows = agreement(&pairs, "m", |_, hash| rewards.get(hash).copied(), true);
        // By hand: a>b right; c>a wrong (0.5 < 1.0); e>f wrong (model tie); e>g right; e>x, f>x,
        // g>x unscored. Overall 2 of 4; "a cat" 1 of 2; "a dog" 1 of 2 with 3 unscored.
        assert_eq!(rows.len(), 3);
        let overall = &rows[0];
        assert_eq!((overall.group.as_deref(), overall.pairs, overall.correct, overall.unscored), (None, 4, 2, 3));
        assert_eq!(overall.accuracy, Some(0.5));
        let (lo, hi) = overall.ci95.unwrap();
        // Wilson, n = 4, p = 0.5: centre 0.5, half-width 1.96·sqrt(0.0625 + 0.9604/64)/1.9604 = 0.3498.
        assert!((lo - 0.1500).abs() < 1e-3 && (hi - 0.8500).abs() < 1e-3, "{lo} {hi}");
        assert!(overall.too_few());
        assert_eq!((rows[1].group.as_deref(), rows[1].pairs, rows[1].correct), (Some("a cat"), 2, 1));
        assert_eq!(
            (rows[2].group.as_deref(), rows[2].pairs, rows[2].correct, rows[2].unscored),
            (Some("a dog"), 2, 1, 3)
        );
    }

    #[test]
    fn the_wilson_interval_matches_known_values() {
        assert_eq!(wilson(0, 0), None);
        let (lo, hi) = wilson(65, 100).unwrap();
        assert!((lo - 0.5527).abs() < 1e-3 && (hi - 0.7364).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson(10, 10).unwrap();
        assert!((lo - 0.7225).abs() < 1e-3 && (hi - 1.0).abs() < 1e-9, "{lo} {hi}");
    }
}
