//! The user's judgments as preference data: pairwise comparisons and prompt-group rankings, each
//! with its time, prompt, the model in use and the rewards the images had at that moment, keyed by
//! content hash (so they survive moves and renames). An undo marks a judgment undone instead of
//! deleting it, so the history stays; every judgment is one committed transaction, so nothing shown
//! as saved is lost to a kill.

use rusqlite::{OptionalExtension, params};

use super::store::{Store, StoreError, now_secs};
use crate::image_file::ContentHash;

/// What the user said of two images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first is better.
    First,
    /// The second is better.
    Second,
    /// Neither (a tie teaches the pairwise loss nothing, but is kept).
    Tie,
}

/// A comparison to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewComparison {
    /// The prompt both images were made for.
    pub prompt: String,
    /// The image shown first (left).
    pub first: ContentHash,
    /// The image shown second (right).
    pub second: ContentHash,
    /// The user's verdict.
    pub verdict: Verdict,
    /// The model whose rewards were shown.
    pub model_id: Option<String>,
    /// The first image's reward then.
    pub first_reward: Option<f64>,
    /// The second image's reward then.
    pub second_reward: Option<f64>,
}

/// A stored, standing comparison (the better image first; for a tie, the order shown).
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Row id (for undo).
    pub id: i64,
    /// The prompt.
    pub prompt: String,
    /// The preferred image (either, for a tie).
    pub better: ContentHash,
    /// The other one.
    pub worse: ContentHash,
    /// Whether the user called it a tie.
    pub tie: bool,
    /// The model in use then.
    pub model_id: Option<String>,
    /// The better image's reward then.
    pub better_reward: Option<f64>,
    /// The worse image's reward then.
    pub worse_reward: Option<f64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// One image's place in a ranking: 1 is the best; ties share a rank.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedImage {
    /// The image.
    pub content_hash: ContentHash,
    /// Its rank.
    pub rank: u32,
    /// Its reward when ranked.
    pub reward: Option<f64>,
}

/// A stored, standing ranking of one prompt group.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Row id (for undo).
    pub id: i64,
    /// The prompt.
    pub prompt: String,
    /// The model in use then.
    pub model_id: Option<String>,
    /// The images, best first.
    pub images: Vec<RankedImage>,
    /// Unix seconds.
    pub created_at: i64,
}

/// Problem flags of the reference's annotation scheme, beside the 1-7 ratings.
pub mod flags {
    /// The image does not show what the prompt asks (objects, counts, attributes, relations).
    pub const MISALIGNMENT: u8 = 1;
    /// Distorted or incomplete bodies, limbs or faces.
    pub const BODY_PROBLEM: u8 = 2;
    /// Poor aesthetics.
    pub const POOR_AESTHETICS: u8 = 4;
    /// Toxic or disturbing content.
    pub const TOXIC: u8 = 8;
    /// Something else (the note says what).
    pub const OTHER: u8 = 16;
    /// Each flag with its name in datasets.
    pub const NAMES: [(u8, &str); 5] = [
        (MISALIGNMENT, "misalignment"),
        (BODY_PROBLEM, "body_problem"),
        (POOR_AESTHETICS, "poor_aesthetics"),
        (TOXIC, "toxic"),
        (OTHER, "other"),
    ];
}

impl Store {
    /// Records a comparison in one transaction; returns its id (for undo).
    pub fn record_comparison(&mut self, c: &NewComparison) -> Result<i64, StoreError> {
        let (better, worse, better_reward, worse_reward) = match c.verdict {
            Verdict::First | Verdict::Tie => (&c.first, &c.second, c.first_reward, c.second_reward),
            Verdict::Second => (&c.second, &c.first, c.second_reward, c.first_reward),
        };
        let tie = c.verdict == Verdict::Tie;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO comparisons (prompt, winner_hash, loser_hash, tie, created_at, model_id, winner_reward, loser_reward)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![c.prompt, better, worse, tie, now_secs(), c.model_id, better_reward, worse_reward],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Undoes a comparison (kept in the history, marked undone); `false` if it stood no longer.
    pub fn undo_comparison(&mut self, id: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE comparisons SET undone_at = ?2 WHERE id = ?1 AND undone_at IS NULL",
                params![id, now_secs()],
            )?;
            Ok(n > 0)
        })
    }

    /// Every standing comparison, oldest first.
    pub fn comparisons(&self) -> Result<Vec<Comparison>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, prompt, winner_hash, loser_hash, tie, model_id, winner_reward, loser_reward, created_at
                 FROM comparisons WHERE undone_at IS NULL ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Comparison {
                    id: r.get(0)?,
                    prompt: r.get(1)?,
                    better: r.get(2)?,
                    worse: r.get(3)?,
                    tie: r.get(4)?,
                    model_id: r.get(5)?,
                    better_reward: r.get(6)?,
                    worse_reward: r.get(7)?,
                    created_at: r.get(8)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Records a ranking of one prompt group (it replaces that prompt's earlier ranking, which
    /// stays in the history); returns its id.
    pub fn record_ranking(
        &mut self,
        prompt: &str,
        model_id: Option<&str>,
        images: &[RankedImage],
    ) -> Result<i64, StoreError> {
        self.write(|tx| {
            let now = now_secs();
            tx.execute(
                "UPDATE rankings SET undone_at = ?2 WHERE prompt = ?1 AND undone_at IS NULL",
                params![prompt, now],
            )?;
            tx.execute(
                "INSERT INTO rankings (prompt, model_id, created_at) VALUES (?1, ?2, ?3)",
                params![prompt, model_id, now],
            )?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO ranking_items (ranking_id, content_hash, rank, reward) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for image in images {
                insert.execute(params![id, image.content_hash, image.rank.max(1), image.reward])?;
            }
            Ok(id)
        })
    }

    /// Undoes a ranking; the prompt's previous ranking, if any, stands again.
    pub fn undo_ranking(&mut self, id: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let prompt: Option<String> = tx
                .query_row("SELECT prompt FROM rankings WHERE id = ?1 AND undone_at IS NULL", [id], |r| r.get(0))
                .optional()?;
            let Some(prompt) = prompt else { return Ok(false) };
            tx.execute("UPDATE rankings SET undone_at = ?2 WHERE id = ?1", params![id, now_secs()])?;
            tx.execute(
                "UPDATE rankings SET undone_at = NULL WHERE id = (
                    SELECT MAX(id) FROM rankings WHERE prompt = ?1 AND id < ?2 AND undone_at IS NOT NULL)",
                params![prompt, id],
            )?;
            Ok(true)
        })
    }

    /// The standing ranking of each prompt, oldest first.
    pub fn rankings(&self) -> Result<Vec<Ranking>, StoreError> {
        self.read(|c| {
            let mut heads = c.prepare_cached(
                "SELECT id, prompt, model_id, created_at FROM rankings WHERE undone_at IS NULL ORDER BY id",
            )?;
            let heads: Vec<(i64, String, Option<String>, i64)> =
                heads.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
            let mut items = c.prepare_cached(
                "SELECT content_hash, rank, reward FROM ranking_items WHERE ranking_id = ?1 ORDER BY rank, content_hash",
            )?;
            heads
                .into_iter()
                .map(|(id, prompt, model_id, created_at)| {
                    let images = items
                        .query_map([id], |r| Ok(RankedImage { content_hash: r.get(0)?, rank: r.get(1)?, reward: r.get(2)? }))?
                        .collect::<Result<_, _>>()?;
                    Ok(Ranking { id, prompt, model_id, images, created_at })
                })
                .collect()
        })
    }

    /// A file on disk with this content (the judgments know images by content only).
    pub fn path_of_content(&self, content_hash: &ContentHash) -> Result<Option<std::path::PathBuf>, StoreError> {
        let text: Option<String> = self.read(|c| {
            c.prepare_cached("SELECT path FROM images WHERE content_hash = ?1 AND missing = 0 ORDER BY id LIMIT 1")?
                .query_row([content_hash], |r| r.get(0))
                .optional()
        })?;
        Ok(text.map(|t| super::store::path_from_text(&t)))
    }

    /// Sets the problem flags and note of an image (its 1-7 ratings are kept).
    pub fn set_problems(
        &mut self,
        content_hash: &ContentHash,
        flags: u8,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        self.write(|tx| {
            tx.execute(
                "INSERT INTO ratings (content_hash, flags, note, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(content_hash) DO UPDATE SET flags = ?2, note = ?3, updated_at = ?4",
                params![content_hash, flags, note, now_secs()],
            )
            .map(|_| ())
        })
    }

    /// An image's problem flags and note.
    pub fn problems(&self, content_hash: &ContentHash) -> Result<(u8, Option<String>), StoreError> {
        self.read(|c| {
            c.query_row("SELECT flags, note FROM ratings WHERE content_hash = ?1", [content_hash], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map(|o| o.unwrap_or((0, None)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(seed: &str) -> ContentHash {
        ContentHash::of(seed.as_bytes())
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
        (dir, store)
    }

    #[test]
    fn comparisons_keep_the_better_first_with_their_rewards_and_undo_keeps_history() {
        let (_dir, mut store) = store();
        let new = |verdict| NewComparison {
            prompt: "a cat".into(),
            first: h("a"),
            second: h("b"),
            verdict,
            model_id: Some("m".into()),
            first_reward: Some(0.5),
            second_reward: Some(-0.2),
        };
        let second = store.record_comparison(&new(Verdict::Second)).unwrap();
        store.record_comparison(&new(Verdict::Tie)).unwrap();
        let all = store.comparisons().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((&all[0].better, &all[0].worse, all[0].tie), (&h("b"), &h("a"), false));
        assert_eq!((all[0].better_reward, all[0].worse_reward), (Some(-0.2), Some(0.5)));
        assert!(all[1].tie);
        assert!(store.undo_comparison(second).unwrap());
        assert!(!store.undo_comparison(second).unwrap(), "undone once");
        assert_eq!(store.comparisons().unwrap().len(), 1);
        let kept: i64 = store.read(|c| c.query_row("SELECT COUNT(*) FROM comparisons", [], |r| r.get(0))).unwrap();
        assert_eq!(kept, 2, "an undo keeps the history");
    }

    #[test]
    fn a_new_ranking_replaces_the_prompts_last_and_its_undo_brings_that_back() {
        let (_dir, mut store) = store();
        let ranked = |order: &[(&str, u32)]| -> Vec<RankedImage> {
            order.iter().map(|(s, r)| RankedImage { content_hash: h(s), rank: *r, reward: None }).collect()
        };
        let first = store.record_ranking("a cat", None, &ranked(&[("a", 1), ("b", 2), ("c", 2)])).unwrap();
        let second = store.record_ranking("a cat", Some("m"), &ranked(&[("c", 1), ("a", 2), ("b", 3)])).unwrap();
        store.record_ranking("a dog", None, &ranked(&[("d", 1), ("e", 2)])).unwrap();
        let standing = store.rankings().unwrap();
        assert_eq!(standing.len(), 2);
        assert_eq!(standing[0].id, second);
        assert_eq!(standing[0].images[0].content_hash, h("c"));
        assert!(store.undo_ranking(second).unwrap());
        let standing = store.rankings().unwrap();
        let cat = standing.iter().find(|r| r.prompt == "a cat").unwrap();
        assert_eq!(cat.id, first);
        assert_eq!(cat.images.iter().map(|i| i.rank).collect::<Vec<_>>(), [1, 2, 2]);
    }

    #[test]
    fn problem_flags_and_a_note_sit_beside_the_ratings() {
        let (_dir, mut store) = store();
        let hash = h("a");
        store.set_rating(&hash, super::super::store::Rating { overall: Some(6), ..Default::default() }).unwrap();
        store.set_problems(&hash, flags::BODY_PROBLEM | flags::OTHER, Some(" six fingers ")).unwrap();
        assert_eq!(store.problems(&hash).unwrap(), (flags::BODY_PROBLEM | flags::OTHER, Some("six fingers".into())));
        assert_eq!(store.rating(&hash).unwrap().unwrap().overall, Some(6), "ratings kept");
        assert_eq!(store.problems(&h("none")).unwrap(), (0, None));
    }
}
